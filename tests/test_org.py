"""The organisation file: the shipped Bình Dương data, dated lookups, successors, and invalid files."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from engine.org.models import OrgUnit
from engine.org.service import (
    OrgFileInvalid,
    current,
    display_name,
    known_keys,
    load_file,
    resolvable,
    resolve,
    units,
)

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "organisation" / "binh-duong.yaml"
BEFORE_MERGER = date(2025, 2, 28)
AFTER_MERGER = date(2025, 3, 1)
LAST_DISTRICT_DAY = date(2025, 6, 30)
TWO_TIER = date(2025, 7, 1)


@pytest.fixture
def loaded(db):
    with db.session() as s:
        load_file(s, SHIPPED)
    return db


def _count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(OrgUnit))


# ---------------------------------------------------------------------------------- shipped file


def test_shipped_file_loads_every_unit(db):
    expected = len(yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["units"])
    with db.session() as s:
        assert load_file(s, SHIPPED) == expected
    assert _count(db) == expected


def test_shipped_file_has_the_36_wards_and_communes(loaded):
    with loaded.session() as s:
        local = units(s, on=TWO_TIER, kinds={"ward", "commune"})
        assert len(local) == 36
        assert sum(u.kind == "ward" for u in local) == 24
        assert sum(u.kind == "commune" for u in local) == 12
        assert all(u.valid_from == TWO_TIER and u.valid_to is None for u in local)
        # None of them existed the day before.
        assert units(s, on=LAST_DISTRICT_DAY, kinds={"ward", "commune"}) == []

        assert current(s, "phuong-thu-dau-mot", TWO_TIER).name_vi == "Phường Thủ Dầu Một"
        assert current(s, "phuong-thu-dau-mot", TWO_TIER).name_en == "Thu Dau Mot Ward"
        assert current(s, "phuong-tan-dong-hiep", TWO_TIER).name_vi == "Phường Tân Đông Hiệp"
        assert current(s, "xa-tru-van-tho", TWO_TIER).name_vi == "Xã Trừ Văn Thố"
        assert current(s, "xa-dau-tieng", TWO_TIER).kind == "commune"
        assert display_name(current(s, "xa-dau-tieng", TWO_TIER)) == "Xã Dầu Tiếng (Dau Tieng Commune)"


def test_shipped_file_has_the_current_departments_and_bodies(loaded):
    with loaded.session() as s:
        keys = known_keys(s, TWO_TIER)
        for key in ("trung-tam-phvhcc", "van-phong-ubnd", "thanh-tra", "so-noi-vu", "so-tu-phap",
                    "so-tai-chinh", "so-cong-thuong", "so-nong-nghiep-moi-truong", "so-xay-dung",
                    "so-khoa-hoc-cong-nghe", "so-van-hoa-the-thao-du-lich", "so-giao-duc-dao-tao",
                    "so-y-te", "cong-an", "pccc", "cap-cuu-115", "bql-kcn", "ioc"):
            assert key in keys, key
        assert "so-tai-nguyen-moi-truong" not in keys
        assert "thanh-pho-thu-dau-mot" not in keys
        assert current(s, "so-nong-nghiep-moi-truong", TWO_TIER).name_vi == "Sở Nông nghiệp và Môi trường"
        assert current(s, "cap-cuu-115", TWO_TIER).parent_key == "so-y-te"
        depts = [u.key for u in units(s, on=TWO_TIER, kinds=["department"])]
        assert len(depts) == 10


def test_units_are_in_vietnamese_alphabetical_order(loaded):
    with loaded.session() as s:
        names = [u.name_vi for u in units(s, on=TWO_TIER, kinds={"ward"})]
    # đ comes after d as a letter of its own; tone marks do not move a word past its letters.
    assert names.index("Phường Dĩ An") < names.index("Phường Đông Hòa") < names.index("Phường Hòa Lợi")
    assert names.index("Phường Thới Hòa") < names.index("Phường Thủ Dầu Một") < names.index("Phường Thuận An")
    assert names[0] == "Phường An Phú" and names[-1] == "Phường Vĩnh Tân"


def test_default_date_is_today(loaded):
    with loaded.session() as s:
        assert current(s, "so-y-te") is not None
        assert resolve(s, "so-tai-nguyen-moi-truong").key == "so-nong-nghiep-moi-truong"
        assert "so-y-te" in known_keys(s)


# ---------------------------------------------------------------------------------- reload


def test_reload_is_idempotent(loaded):
    with loaded.session() as s:
        before = {(u.key, u.valid_from): u.id for u in s.scalars(select(OrgUnit))}
        assert load_file(s, SHIPPED) == len(before)
    with loaded.session() as s:
        after = {(u.key, u.valid_from): u.id for u in s.scalars(select(OrgUnit))}
    assert after == before


def test_reload_updates_in_place_and_drops_versions_the_file_no_longer_lists(db, tmp_path):
    first = _write(tmp_path, [
        _unit("a", valid_to=date(2025, 2, 28)),
        _unit("a", valid_from=date(2025, 3, 1), name_vi="Sở A mới"),
    ], name="first.yaml")
    with db.session() as s:
        load_file(s, first)
    second = _write(tmp_path, [_unit("a", name_vi="Sở Ă")], name="second.yaml")
    with db.session() as s:
        load_file(s, second)
    with db.session() as s:
        rows = list(s.scalars(select(OrgUnit)))
    assert [(r.key, r.name_vi, r.valid_to) for r in rows] == [("a", "Sở Ă", None)]


# ---------------------------------------------------------------------------------- dated lookups


def test_current_and_past_versions(loaded):
    with loaded.session() as s:
        # A merged department exists up to its last day, not after.
        assert current(s, "so-tai-nguyen-moi-truong", BEFORE_MERGER).name_vi == "Sở Tài nguyên và Môi trường"
        assert current(s, "so-tai-nguyen-moi-truong", AFTER_MERGER) is None
        assert current(s, "so-nong-nghiep-moi-truong", BEFORE_MERGER) is None
        assert current(s, "so-nong-nghiep-moi-truong", AFTER_MERGER) is not None

        # The IOC keeps its key; its version (name, parent) depends on the date.
        old_ioc = current(s, "ioc", date(2024, 6, 1))
        new_ioc = current(s, "ioc", TWO_TIER)
        assert old_ioc.parent_key == "so-thong-tin-truyen-thong"
        assert new_ioc.parent_key == "so-khoa-hoc-cong-nghe"
        assert old_ioc.id != new_ioc.id

        # District-level units until 30 June 2025, wards and communes from 1 July.
        assert current(s, "huyen-dau-tieng", LAST_DISTRICT_DAY).name_vi == "Huyện Dầu Tiếng"
        assert current(s, "huyen-dau-tieng", TWO_TIER) is None
        before, after = known_keys(s, LAST_DISTRICT_DAY), known_keys(s, TWO_TIER)
        assert "thanh-pho-thu-dau-mot" in before and "phuong-thu-dau-mot" not in before
        assert "phuong-thu-dau-mot" in after and "thanh-pho-thu-dau-mot" not in after
        assert len(units(s, on=date(2024, 1, 1), kinds={"district"})) == 9
        assert current(s, "no-such-unit", TWO_TIER) is None


def test_resolve_follows_successors_of_merged_departments(loaded):
    with loaded.session() as s:
        assert resolve(s, "so-tai-nguyen-moi-truong", AFTER_MERGER).key == "so-nong-nghiep-moi-truong"
        assert resolve(s, "so-nong-nghiep-ptnt", TWO_TIER).key == "so-nong-nghiep-moi-truong"
        assert resolve(s, "so-thong-tin-truyen-thong", TWO_TIER).key == "so-khoa-hoc-cong-nghe"
        assert resolve(s, "so-giao-thong-van-tai", TWO_TIER).key == "so-xay-dung"
        assert resolve(s, "so-ke-hoach-dau-tu", TWO_TIER).key == "so-tai-chinh"
        assert resolve(s, "so-lao-dong-tbxh", TWO_TIER).key == "so-noi-vu"
        # Before the merger the old department is itself the answer.
        assert resolve(s, "so-tai-nguyen-moi-truong", BEFORE_MERGER).key == "so-tai-nguyen-moi-truong"
        # A unit that does not exist yet is not resolved backwards.
        assert resolve(s, "so-nong-nghiep-moi-truong", BEFORE_MERGER) is None
        assert resolve(s, "no-such-unit", TWO_TIER) is None


def test_resolve_follows_successors_of_former_districts(loaded):
    with loaded.session() as s:
        assert resolve(s, "huyen-dau-tieng", LAST_DISTRICT_DAY).key == "huyen-dau-tieng"
        assert resolve(s, "huyen-dau-tieng", TWO_TIER).key == "xa-dau-tieng"
        assert resolve(s, "thanh-pho-thu-dau-mot", TWO_TIER).name_vi == "Phường Thủ Dầu Một"
        assert resolve(s, "thanh-pho-di-an", TWO_TIER).key == "phuong-di-an"


def test_resolve_matches_aliases(loaded):
    with loaded.session() as s:
        assert resolve(s, "stnmt", date(2024, 1, 1)).key == "so-tai-nguyen-moi-truong"
        assert resolve(s, "STNMT", TWO_TIER).key == "so-nong-nghiep-moi-truong"
        assert resolve(s, "so-tttt", TWO_TIER).key == "so-khoa-hoc-cong-nghe"
        # current() matches keys only.
        assert current(s, "stnmt", date(2024, 1, 1)) is None


def test_resolvable_answers_like_resolve_for_many_keys_at_once(loaded):
    keys = {"so-nong-nghiep-moi-truong", "phuong-di-an", "so-tai-nguyen-moi-truong", "STNMT",
            "so-tttt", "no-such-unit", "thanh-pho-thu-dau-mot"}
    with loaded.session() as s:
        for on in (date(2024, 1, 1), BEFORE_MERGER, TWO_TIER):
            assert resolvable(s, keys, on) == {k for k in keys if resolve(s, k, on) is not None}
        assert resolvable(s, keys, TWO_TIER) >= {"so-tai-nguyen-moi-truong", "STNMT", "so-tttt"}
        assert "no-such-unit" not in resolvable(s, keys, TWO_TIER)
        assert resolvable(s, [], TWO_TIER) == set()


def test_resolve_follows_a_chain_of_successors(db, tmp_path):
    path = _write(tmp_path, [
        _unit("x", valid_to=date(2025, 1, 31), successor="y"),
        _unit("y", valid_from=date(2025, 2, 1), valid_to=date(2025, 3, 31), successor="z"),
        _unit("z", valid_from=date(2025, 4, 1)),
    ])
    with db.session() as s:
        load_file(s, path)
        assert resolve(s, "x", date(2025, 2, 15)).key == "y"
        assert resolve(s, "x", date(2025, 5, 1)).key == "z"


# ---------------------------------------------------------------------------------- invalid files


def _unit(key: str, **fields) -> dict:
    unit = {"key": key, "name_vi": f"Sở {key.upper()}", "name_en": f"Department {key.upper()}",
            "kind": "department", "parent": None, "valid_from": None, "valid_to": None, "successor": None}
    unit.update(fields)
    return unit


def _write(tmp_path: Path, unit_list: list[dict], name: str = "org.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"units": unit_list}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _without(unit: dict, field: str) -> dict:
    return {k: v for k, v in unit.items() if k != field}


INVALID = {
    "missing field": (
        [_unit("a"), _without(_unit("b"), "name_en")],
        ["units[1] (b).name_en", "missing field 'name_en'"],
    ),
    "bad kind": (
        [_unit("a", kind="ministry")],
        ["units[0] (a).kind", "'ministry' is not one of"],
    ),
    "unknown parent": (
        [_unit("a", parent="nowhere")],
        ["units[0] (a).parent", "unknown parent 'nowhere'"],
    ),
    "unknown successor": (
        [_unit("a", valid_to=date(2025, 2, 28), successor="nobody")],
        ["units[0] (a).successor", "unknown successor 'nobody'"],
    ),
    "valid_to before valid_from": (
        [_unit("a", valid_from=date(2025, 7, 1), valid_to=date(2025, 6, 30))],
        ["units[0] (a).valid_to", "valid_to 2025-06-30 is before valid_from 2025-07-01"],
    ),
    "overlapping duplicate key": (
        [_unit("a", valid_from=date(2025, 1, 1), valid_to=date(2025, 6, 30)),
         _unit("a", valid_from=date(2025, 6, 1))],
        ["units[1] (a).valid_from", "duplicate key 'a'", "overlaps units[0]"],
    ),
    "exact duplicate": (
        [_unit("a"), _unit("a")],
        ["units[1] (a).valid_from", "duplicate key 'a'"],
    ),
    "bad date": (
        [_unit("a", valid_from="first of July")],
        ["units[0] (a).valid_from", "is not a date"],
    ),
    "successor not yet valid": (
        [_unit("a", valid_to=date(2025, 2, 28), successor="b"), _unit("b", valid_from=date(2025, 7, 1))],
        ["units[0] (a).successor", "not valid on 2025-03-01"],
    ),
    "unknown field": (
        [_unit("a", colour="red")],
        ["units[0] (a).colour", "unknown field 'colour'"],
    ),
    "ambiguous alias": (
        [_unit("a", aliases=["old"]), _unit("b", aliases=["OLD"])],
        ["units[1] (b).aliases", "alias 'OLD' is also an alias of 'a'"],
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_file_is_rejected_with_a_clear_error_and_nothing_written(db, tmp_path, case):
    unit_list, expected = INVALID[case]
    path = _write(tmp_path, unit_list)
    with pytest.raises(OrgFileInvalid) as err:
        with db.session() as s:
            load_file(s, path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message
    assert _count(db) == 0


def test_every_problem_is_listed_at_once(db, tmp_path):
    path = _write(tmp_path, [
        _unit("a", kind="ministry", parent="nowhere"),
        _unit("b", valid_from=date(2025, 7, 1), valid_to=date(2025, 1, 1)),
        _without(_unit("c"), "kind"),
    ])
    with pytest.raises(OrgFileInvalid) as err:
        with db.session() as s:
            load_file(s, path)
    paths = {p.path for p in err.value.problems}
    assert paths == {"units[0] (a).kind", "units[0] (a).parent", "units[1] (b).valid_to", "units[2] (c).kind"}
    # Each problem points at the line of the field in the file.
    assert all(p.line is not None and p.file == str(path) for p in err.value.problems)


def test_invalid_file_leaves_loaded_data_untouched(loaded, tmp_path):
    before = _count(loaded)
    path = _write(tmp_path, [_unit("so-y-te", name_vi="Sở Y tế (sửa)"), _unit("x", kind="ministry")])
    with pytest.raises(OrgFileInvalid):
        with loaded.session() as s:
            load_file(s, path)
    assert _count(loaded) == before
    with loaded.session() as s:
        assert current(s, "so-y-te", TWO_TIER).name_vi == "Sở Y tế"


def test_unreadable_yaml_names_file_and_line(db, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("units:\n  - key: a\n    name_vi: [unclosed\n", encoding="utf-8")
    with pytest.raises(OrgFileInvalid) as err:
        with db.session() as s:
            load_file(s, path)
    assert str(path) in str(err.value) and "YAML syntax error" in str(err.value)
    # The list opened on line 3 is still open when the file ends (line 4).
    assert err.value.problems[0].line == 4
    assert _count(db) == 0
