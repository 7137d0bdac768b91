"""How the pages show the engine's data to people: audit actions and their details by name,
units by name, numbers and percentages in Vietnamese format (Babel), a task's or case's data
as labelled lines; Vietnamese first, English beside."""
from __future__ import annotations

from datetime import datetime

from babel.numbers import format_decimal, format_percent

from engine.auth.permissions import ROLE_NAMES
from engine.org.service import local_time

LOCALE = "vi"


def number(value, digits: int = 1, locale: str = LOCALE) -> str:
    """A number as Vietnamese write it: 1.234,5 (at most `digits` decimals); `locale="en"`
    for the English beside it."""
    return format_decimal(value, format=f"#,##0.{'#' * digits}" if digits else "#,##0",
                          locale=locale)


def percent(value, digits: int = 1) -> str:
    """A percentage given in percent (98.5 → "98,5 %")."""
    return format_percent(value / 100, format=f"#,##0.{'#' * digits} %" if digits
                          else "#,##0 %", locale=LOCALE)

ACTION_NAMES = {
    "instance.started": ("Bắt đầu quy trình", "Process started"),
    "instance.ended": ("Kết thúc quy trình", "Process ended"),
    "instance.restarted": ("Chạy lại quy trình", "Process restarted"),
    "rule.matched": ("Quy tắc phát hiện khớp", "Rule matched"),
    "task.created": ("Giao nhiệm vụ", "Task assigned to the unit"),
    "task.claimed": ("Nhận xử lý", "Task claimed"),
    "task.released": ("Trả lại cho đơn vị", "Task released"),
    "task.assigned": ("Giao cho cán bộ", "Task handed to an officer"),
    "task.completed": ("Hoàn thành nhiệm vụ", "Task completed"),
    "task.cancelled": ("Hủy nhiệm vụ (quy trình đi tiếp)", "Task withdrawn"),
    "task.escalated": ("Chuyển lên cấp trên", "Task escalated"),
    "task.reassigned": ("Chuyển đơn vị xử lý", "Task moved to another unit"),
    "task.handed_over": ("Chuyển sang đơn vị mới sau sáp nhập", "Task handed over after a merger"),
    "task.answer_kept": ("Lưu kết quả, chờ sửa lỗi quy trình", "Answer kept for a retry"),
    "gateway.decided": ("Rẽ nhánh", "Branch taken"),
    "message.correlated": ("Nhận tin báo", "Message received"),
    "message.late": ("Tin báo đến muộn", "Message arrived late"),
    "timer.fired": ("Hết thời gian chờ", "Timer fired"),
    "timer.failed": ("Lỗi hẹn giờ", "Timer failed"),
    "script.ran": ("Chạy bước tự động", "Script step ran"),
    "end_event.reached": ("Đến điểm kết thúc", "End reached"),
    "incident.opened": ("Lỗi quy trình", "Process incident"),
    "incident.failed_again": ("Chạy lại vẫn lỗi", "Retry failed again"),
    "sla.started": ("Bắt đầu tính thời hạn", "SLA clock started"),
    "sla.paused": ("Tạm dừng thời hạn", "SLA clock paused"),
    "sla.resumed": ("Tiếp tục tính thời hạn", "SLA clock resumed"),
    "sla.stopped": ("Dừng tính thời hạn", "SLA clock stopped"),
    "sla.level_reached": ("Đến mốc thời hạn", "SLA level reached"),
    "sla.handed_over": ("Chuyển thời hạn sang đơn vị mới", "SLA handed over"),
    "notification.queued": ("Chuẩn bị thông báo", "Notification queued"),
    "notification.sent": ("Đã gửi thông báo", "Notification sent"),
    "notification.failed": ("Gửi thông báo lỗi", "Notification failed"),
    "violation.closed": ("Đóng vi phạm", "Violation closed"),
    "scenario.draft.created": ("Tạo bản nháp", "Draft created"),
    "scenario.draft.saved": ("Lưu bản nháp", "Draft saved"),
    "scenario.draft.file_deleted": ("Xóa tệp", "File deleted"),
    "scenario.draft.published": ("Xuất bản bản nháp", "Draft published"),
    "scenario.draft.discarded": ("Hủy bản nháp", "Draft discarded"),
    "scenario.published": ("Xuất bản", "Published"),
    "scenario.retired": ("Ngừng áp dụng", "Retired"),
    "auth.login": ("Đăng nhập", "Logged in"),
    "auth.login_failed": ("Đăng nhập không thành công", "Failed login"),
    "auth.logout": ("Đăng xuất", "Logged out"),
    "user.created": ("Tạo tài khoản", "Account created"),
    "user.role_changed": ("Đổi vai trò hoặc đơn vị", "Role or unit changed"),
    "user.updated": ("Sửa thông tin", "Details changed"),
    "user.activated": ("Mở lại tài khoản", "Account activated"),
    "user.deactivated": ("Khóa tài khoản", "Account deactivated"),
    "user.password_changed": ("Đặt mật khẩu mới", "Password changed"),
    "user.token_issued": ("Cấp khóa API", "API token issued"),
    "user.token_revoked": ("Thu hồi khóa API", "API token revoked"),
    "user.handed_over": ("Chuyển sang đơn vị mới sau sáp nhập", "Handed over after a merger"),
    "source.created": ("Đăng ký nguồn", "Source registered"),
    "source.changed": ("Sửa cấu hình nguồn", "Source changed"),
    "source.token_rotated": ("Đổi khóa API của nguồn", "Source token rotated"),
    "case.viewed": ("Xem hồ sơ", "Case file viewed"),
    "case.exported": ("Xuất hồ sơ", "Case exported"),
}

# Why a login failed, as the access log says it.
LOGIN_REASONS = {
    "unknown_user": ("tên đăng nhập không có", "unknown username"),
    "inactive": ("tài khoản đã khóa", "account deactivated"),
    "no_password": ("chưa có mật khẩu", "no password set"),
    "wrong_password": ("sai mật khẩu", "wrong password"),
    "throttled": ("thử quá nhiều lần, phải đợi", "too many attempts: throttled"),
}


def action_name(action: str) -> str:
    """'Vietnamese / English' for an audit action; the action itself when it has no name."""
    vi, en = ACTION_NAMES.get(action, (action, ""))
    return f"{vi} / {en}" if en else vi


# States of instances, tasks, notifications and incidents.
STATUS_NAMES = {"running": "Đang xử lý / running", "completed": "Đã kết thúc / completed",
                "cancelled": "Đã hủy / cancelled", "error": "Lỗi / error",
                "open": "Chờ nhận / open", "claimed": "Đang xử lý / claimed",
                "pending": "Chờ gửi / pending", "sent": "Đã gửi / sent",
                "failed": "Gửi lỗi / failed", "resolved": "Đã xử lý / resolved"}


def status_name(value: str) -> str:
    """A state in Vietnamese and English."""
    return STATUS_NAMES.get(value, value)


EVENT_STATE_NAMES = {"pending": "chờ xử lý / pending", "processed": "đã xử lý / processed",
                     "failed": "lỗi / failed", "discarded": "đã bỏ qua / discarded"}
SLA_STATUS_NAMES = {"running": "đang tính / running", "paused": "tạm dừng / paused",
                    "met": "đúng hạn / met", "breached": "quá hạn / breached"}
SEVERITY_NAMES = {"low": "Thấp / Low", "medium": "Trung bình / Medium", "high": "Cao / High",
                  "critical": "Nghiêm trọng / Critical"}

# The fields of audit records, as the history tables label them (a case's data is labelled from
# the event vocabulary instead: context_lines).
FIELD_NAMES = {
    "role": "Vai trò / Role", "department": "Đơn vị / Unit", "department_key": "Đơn vị / Unit",
    "full_name": "Họ và tên / Name", "email": "Thư điện tử / E-mail",
    "api_token": "Khóa API / API token", "replaced": "Thay khóa cũ / Replaced an earlier one",
    "fields": "Đã sửa / Changed", "address": "Địa chỉ / Address", "reason": "Lý do / Reason",
    "via": "Qua / Via", "allowed_types": "Loại sự kiện / Event types",
    "rate_limit_per_minute": "Giới hạn mỗi phút / Per-minute limit",
    "disabled": "Tạm dừng / Disabled", "signed": "Chữ ký HMAC / HMAC signature",
    "scenario": "Kịch bản / Scenario", "version": "Phiên bản / Version", "name": "Tên / Name",
    "task": "Bước / Step", "message": "Tin báo / Message", "event_id": "Sự kiện / Event",
    "event_ids": "Sự kiện / Events", "timers": "Hẹn giờ / Timers", "due_at": "Hạn / Due",
    "taken": "Nhánh đi / Branch taken", "answers": "Kết quả xử lý / Answers",
    "status": "Trạng thái / Status", "outcome": "Kết quả / Outcome", "sla": "Thời hạn / SLA",
    "elapsed_s": "Đã dùng / Used", "from": "Từ / From", "to": "Đến / To",
    "level": "Mức / Level", "title": "Tiêu đề / Title", "severity": "Mức độ / Severity",
    "rule": "Quy tắc / Rule", "kind": "Loại / Kind", "channel": "Kênh / Channel",
    "error": "Lỗi / Error", "element": "Bước lỗi / Failed step",
    "resolution": "Cách xử lý / Resolution", "incident": "Lỗi quy trình / Incident",
}
# Shown elsewhere on the page: the subject of an account page, a case's data (its own box).
ACCOUNT_HIDDEN = ("username", "name")
PROCESS_HIDDEN = ("data", "user_id", "ref", "gateway", "event")
_MOMENTS = ("due_at",)


def _value(field: str, value, unit_name) -> str:
    """One value as people read it: names for roles, units and severities, có/không for yes/no,
    Vietnamese numbers, local times."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "có / yes" if value else "không / no"
    if isinstance(value, (int, float)):
        if field == "elapsed_s":
            return f"{number(value / 3600)} giờ / h"
        return f"#{value}" if field in ("event_id", "incident") else number(value, 2)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_value(key, item, unit_name)}" for key, item in value.items())
    if isinstance(value, list):
        if field in ("event_ids",):
            return ", ".join(f"#{item}" for item in value)
        if field == "fields":
            return ", ".join(FIELD_NAMES.get(name, name) for name in value)
        return ", ".join(_value(field, item, unit_name) for item in value)
    if field == "role" and value in ROLE_NAMES:
        return f"{ROLE_NAMES[value][0]} / {ROLE_NAMES[value][1]}"
    if field in ("department", "department_key", "from", "to"):
        return unit_name(value)  # a unit's name; a username is shown as it is
    if field == "severity" and value in SEVERITY_NAMES:
        return SEVERITY_NAMES[value]
    if field == "reason" and value in LOGIN_REASONS:
        return " / ".join(LOGIN_REASONS[value])
    if field in _MOMENTS:
        return local_text(value)
    return str(value)


def local_text(moment, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A stored (UTC) moment, a datetime or ISO text, on the province's clocks (Asia/Ho_Chi_Minh)
    in `fmt`; "" for none, text that is not a moment as it is."""
    if not moment:
        return ""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return moment
    return (local_time(moment) if moment.tzinfo else moment).strftime(fmt)


def _is_change(field: str, value) -> bool:
    """Whether a detail is a change recorded as [before, after]."""
    if not isinstance(value, list) or len(value) != 2 or field in ("fields", "event_ids",
                                                                    "taken", "timers"):
        return False
    # allowed_types is a list of types when a source is created, a pair of lists when changed.
    return field != "allowed_types" or all(isinstance(v, list) for v in value)


def details_lines(details: dict, unit_name, hidden=ACCOUNT_HIDDEN) -> list[tuple[str, str]]:
    """A record's details as (label, text) lines; a change [before, after] as "before → after";
    the fields in `hidden` left out."""
    lines = []
    for field, value in details.items():
        if field in hidden or field == "task" and details.get("name"):
            continue
        text = (f"{_value(field, value[0], unit_name)} → {_value(field, value[1], unit_name)}"
                if _is_change(field, value) else _value(field, value, unit_name))
        lines.append((FIELD_NAMES.get(field, field), text))
    return lines


def answer_text(field: dict, value) -> str:
    """A task form's answer as people read it: an option's label, có/không, a local date."""
    if value is None or value == "":
        return "—"
    if field.get("type") == "enum":
        return next((o["label"] for o in field.get("options", []) if o["id"] == value),
                    str(value))
    if isinstance(value, bool):
        return "có / yes" if value else "không / no"
    if field.get("type") == "date" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%d/%m/%Y")
        except ValueError:
            return value
    if isinstance(value, (int, float)):
        return number(value, 2)
    return str(value)


def event_name(vocabulary, type_name: str) -> str:
    """An event type as its vocabulary describes it ("Trả kết quả / result returned…")."""
    found = vocabulary.get(type_name)
    return found.description if found is not None and found.description else type_name


def field_labels(vocabulary) -> dict[str, list[tuple[str, str, str | None]]]:
    """Every event field of the vocabulary: name → its (label, type, ref) in the types that
    have it, one entry per meaning ("unit" is a processing unit in dossiers, a measurement unit
    in readings)."""
    labels: dict[str, list[tuple[str, str, str | None]]] = {}
    for event_type in vocabulary.types.values():
        for name, spec in event_type.fields.items():
            entry = (spec.description, spec.type, spec.ref)
            known = labels.setdefault(name, [])
            if spec.description and all(ref != spec.ref for _, _, ref in known):
                known.append(entry)
    return labels


def _meaning(key: str, value, labels: dict, unit_name) -> tuple[str, str, str | None]:
    """The label, type and ref of a data field: the organisation unit's meaning when the value
    names a unit, another one when it does not."""
    if key in CASE_FIELDS:
        return CASE_FIELDS[key]
    found = labels.get(key) or [(key.replace("_", " ").capitalize(), "", None)]
    is_unit = isinstance(value, str) and unit_name(value) != value
    return next((entry for entry in found if (entry[2] == "org-unit") == is_unit), found[0])


# A case's own data the scenarios add (not event fields), and what is internal to the engine.
CASE_FIELDS = {
    "violation_type": ("Loại vi phạm / Violation type", "string", None),
    "violation_id": ("Vi phạm / Violation", "integer", None),
    "first_reason": ("Lý do lần 1 / First reason", "string", None),
    "second_reason": ("Lý do lần 2 / Second reason", "string", None),
    "ward": ("Phường, xã / Ward", "string", "org-unit"),
    "severity": ("Mức độ / Severity", "string", None),
}
CASE_HIDDEN = {"rule_window", "event_ids"}


def context_lines(context: dict, labels: dict, unit_name) -> list[tuple[str, str]]:
    """A task's or case's data as (label, text) lines: labelled from the event vocabulary, units
    by name, moments local, numbers Vietnamese; the engine's own bookkeeping left out."""
    lines = []
    for key, value in (context or {}).items():
        if key in CASE_HIDDEN or key.startswith("_"):
            continue
        label, kind, ref = _meaning(key, value, labels, unit_name)
        if ref == "org-unit" and isinstance(value, str):
            text = unit_name(value)
        elif kind == "datetime" and isinstance(value, str):
            text = local_text(value)
        elif key == "violation_id" and isinstance(value, int):
            text = f"#{value}"
        else:
            text = _value(key, value, unit_name)
        lines.append((label, text))
    return lines
def actor_name(actor: str) -> str:
    """Who did it, as people read it: a username, the command line, or nobody logged in."""
    kind, _, name = actor.partition(":")
    if kind == "user" and name:
        return name
    if kind == "rule" and name:  # rule:<scenario>/<rule>
        return f"quy tắc / rule {name.rpartition('/')[2]}"
    if kind == "source" and name:
        return f"nguồn / source {name}"
    return {"cli": "dòng lệnh / command line", "anonymous": "chưa đăng nhập / not logged in",
            "engine": "hệ thống / the engine", "scheduler": "bộ hẹn giờ / the scheduler",
            "sla": "theo dõi thời hạn / SLA tracking", "org": "tổ chức / organisation change",
            "demo": "dữ liệu mẫu / the demo"}.get(actor, actor)
