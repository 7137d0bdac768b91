"""What each audit action means, as the pages say it: Vietnamese, then English."""
from __future__ import annotations

ACTION_NAMES = {
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


# The fields of account and access records, as the history tables label them.
FIELD_NAMES = {
    "role": "Vai trò / Role", "department": "Đơn vị / Unit", "department_key": "Đơn vị / Unit",
    "full_name": "Họ và tên / Name", "email": "Thư điện tử / E-mail",
    "api_token": "Khóa API / API token", "replaced": "Thay khóa cũ / Replaced an earlier one",
    "fields": "Đã sửa / Changed", "address": "Địa chỉ / Address", "reason": "Lý do / Reason",
    "via": "Qua / Via", "allowed_types": "Loại sự kiện / Event types",
    "rate_limit_per_minute": "Giới hạn mỗi phút / Per-minute limit",
    "disabled": "Tạm dừng / Disabled", "signed": "Chữ ký HMAC / HMAC signature",
}
_HIDDEN = {"username", "name"}  # the subject itself, already the page's


def _value(field: str, value, unit_name) -> str:
    """One value as people read it: names for roles and units, có/không for yes/no."""
    from engine.auth.permissions import ROLE_NAMES

    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "có / yes" if value else "không / no"
    if field == "role" and value in ROLE_NAMES:
        return f"{ROLE_NAMES[value][0]} / {ROLE_NAMES[value][1]}"
    if field in ("department", "department_key"):
        return unit_name(value)
    if field == "reason" and value in LOGIN_REASONS:
        return " / ".join(LOGIN_REASONS[value])
    if field == "fields":
        return ", ".join(FIELD_NAMES.get(name, name) for name in value)
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _is_change(field: str, value) -> bool:
    """Whether a detail is a change recorded as [before, after]."""
    if not isinstance(value, list) or len(value) != 2 or field == "fields":
        return False
    # allowed_types is a list of types when a source is created, a pair of lists when changed.
    return field != "allowed_types" or all(isinstance(v, list) for v in value)


def details_lines(details: dict, unit_name) -> list[tuple[str, str]]:
    """A record's details as (label, text) lines; a change [before, after] as "before → after"."""
    lines = []
    for field, value in details.items():
        if field in _HIDDEN:
            continue
        text = (f"{_value(field, value[0], unit_name)} → {_value(field, value[1], unit_name)}"
                if _is_change(field, value) else _value(field, value, unit_name))
        lines.append((FIELD_NAMES.get(field, field), text))
    return lines


def actor_name(actor: str) -> str:
    """Who did it, as people read it: a username, the command line, or nobody logged in."""
    kind, _, name = actor.partition(":")
    if kind == "user" and name:
        return name
    return {"cli": "dòng lệnh / command line", "anonymous": "chưa đăng nhập / not logged in",
            "engine": "hệ thống / the engine", "scheduler": "bộ hẹn giờ / the scheduler",
            "demo": "dữ liệu mẫu / the demo"}.get(actor, actor)
