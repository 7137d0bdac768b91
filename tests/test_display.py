"""How the pages word the engine's data (designer/display.py): Vietnamese numbers, names for
units, roles, severities and steps, labelled case data; no keys, codes or Python reprs."""
from __future__ import annotations

from datetime import datetime, timezone

from designer import display
from engine.events.vocabulary import Vocabulary

UNITS = {"phuong-thu-dau-mot": "Phường Thủ Dầu Một (Thu Dau Mot Ward)",
         "trung-tam-phvhcc": "Trung tâm Phục vụ hành chính công"}


def unit_name(key):
    return UNITS.get(key, key)


def test_numbers_and_percentages_are_written_the_vietnamese_way():
    assert display.number(7.8) == "7,8"
    assert display.number(1234567.25, 2) == "1.234.567,25"
    assert display.number(12.0) == "12"
    assert display.number(7.8, locale="en") == "7.8"
    assert display.percent(98.46) == "98,5 %"
    assert display.percent(100.0) == "100 %"
    assert display.percent(37.5, 0) == "38 %"


def test_record_details_name_units_roles_severities_and_changes():
    lines = display.details_lines({"username": "an", "role": ["civil_servant", "department_head"],
                                   "department_key": [None, "trung-tam-phvhcc"]}, unit_name)
    assert lines == [("Vai trò / Role", "Cán bộ, công chức / Civil servant → "
                                        "Lãnh đạo sở / phòng / Department head"),
                     ("Đơn vị / Unit", "— → Trung tâm Phục vụ hành chính công")]
    process = display.details_lines(
        {"task": "verify", "name": "Xác minh", "department": "trung-tam-phvhcc",
         "severity": "high", "event_ids": [1, 2], "data": {"x": 1},
         "due_at": "2026-03-02T10:00:00+00:00", "elapsed_s": 27000, "answers": {"ok": True}},
        unit_name, display.PROCESS_HIDDEN)
    assert process == [("Tên / Name", "Xác minh"),
                       ("Đơn vị / Unit", "Trung tâm Phục vụ hành chính công"),
                       ("Mức độ / Severity", "Cao / High"), ("Sự kiện / Events", "#1, #2"),
                       ("Hạn / Due", "02/03/2026 17:00"), ("Đã dùng / Used", "7,5 giờ / h"),
                       ("Kết quả xử lý / Answers", "ok: có / yes")]


def test_a_cases_data_is_labelled_from_the_vocabulary_without_internals():
    labels = display.field_labels(Vocabulary.load())
    lines = dict(display.context_lines(
        {"violation_type": "repeated-supplement-request", "dossier_id": "H05.1",
         "unit": "phuong-thu-dau-mot", "first_reason": None, "violation_id": 1,
         "due_at": "2026-03-02T10:00:00+00:00",
         "rule_window": {"form": "all"}, "event_ids": [1, 2]}, labels, unit_name))
    assert lines == {"Loại vi phạm / Violation type": "repeated-supplement-request",
                     "Mã hồ sơ / dossier number": "H05.1",
                     "Đơn vị xử lý (sở, phường, xã) / processing unit":
                         "Phường Thủ Dầu Một (Thu Dau Mot Ward)",
                     "Lý do lần 1 / First reason": "—", "Vi phạm / Violation": "#1",
                     "Hạn trả kết quả / legal deadline": "02/03/2026 17:00"}


def test_answers_actors_and_actions_read_as_words():
    enum = {"id": "finding", "type": "enum", "options": [{"id": "confirmed",
                                                          "label": "Có vi phạm"}]}
    assert display.answer_text(enum, "confirmed") == "Có vi phạm"
    assert display.answer_text({"type": "date"}, "2026-03-09") == "09/03/2026"
    assert display.answer_text({"type": "long"}, 12000) == "12.000"
    assert display.answer_text({"type": "boolean"}, False) == "không / no"
    assert display.actor_name("user:phvhcc.minh") == "phvhcc.minh"
    assert display.actor_name("rule:dossier-violations/repeated") == "quy tắc / rule repeated"
    assert display.actor_name("cli") == "dòng lệnh / command line"
    assert display.action_name("task.assigned") == "Giao cho cán bộ / Task handed to an officer"
    assert display.action_name("made.up") == "made.up"
    assert display.local_text(datetime(2026, 3, 2, 1, 5, tzinfo=timezone.utc)) == \
        "02/03/2026 08:05"
