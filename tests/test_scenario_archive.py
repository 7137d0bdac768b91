"""Scenario zips: the same bytes for the same files, every bad upload refused by entry name, and
`ioc scenarios load`/`export` carrying a scenario from one database to another unchanged."""
from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from engine.scenarios import archive, service
from engine.scenarios.models import PUBLISHED, RETIRED, ScenarioVersion
from engine.scenarios.problems import ScenarioInvalid
from tests.conftest import SCENARIOS

HOTLINE = Path(SCENARIOS) / "hotline-ticket"


def _zip(entries: dict[str, bytes | str]) -> bytes:
    """A zip with exactly these entries, in this order (duplicates allowed through a list)."""
    return _zip_items(list(entries.items()))


def _zip_items(items: list[tuple[str, bytes | str]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we want
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, content in items:
                zf.writestr(name, content)
    return buffer.getvalue()


def _refused(data: bytes, source: str = "upload"):
    with pytest.raises(ScenarioInvalid) as info:
        archive.from_zip(data, source)
    return info.value


# -- to_zip / from_zip ---------------------------------------------------------------------------

@pytest.mark.parametrize("folder", service.folders(SCENARIOS), ids=lambda p: p.name)
def test_every_shipped_scenario_round_trips(folder):
    files = service.read_folder(folder)
    data = archive.to_zip(folder.name, files)
    assert archive.from_zip(data) == files
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert names == sorted(f"{folder.name}/{n}" for n in files)


def test_the_same_files_give_the_same_bytes():
    files = service.read_folder(HOTLINE)
    reordered = dict(reversed(list(files.items())))
    first = archive.to_zip("hotline-ticket", files)
    assert archive.to_zip("hotline-ticket", reordered) == first
    assert {i.date_time for i in zipfile.ZipFile(io.BytesIO(first)).infolist()} == \
        {archive.FIXED_TIME}
    changed = dict(files, **{"rules.yaml": files["rules.yaml"] + "\n"})
    assert archive.to_zip("hotline-ticket", changed) != first


def test_vietnamese_text_survives_as_utf8():
    files = {"scenario.yaml": "name: {vi: Phản ánh tổng đài 1022, en: Hotline}\n"}
    data = archive.to_zip("phan-anh", files)
    assert zipfile.ZipFile(io.BytesIO(data)).read("phan-anh/scenario.yaml") == \
        files["scenario.yaml"].encode("utf-8")
    assert archive.from_zip(data) == files


def test_files_at_the_root_and_archiver_litter_are_accepted():
    data = _zip({"scenario.yaml": "key: a\n", "rules.yaml": "rules: []\n",
                 ".DS_Store": b"\0\1", "__MACOSX/._scenario.yaml": b"\0\1"})
    assert archive.from_zip(data) == {"scenario.yaml": "key: a\n", "rules.yaml": "rules: []\n"}
    inside = _zip({"a/": b"", "a/scenario.yaml": "key: a\n", "a/.hidden.yaml": "x"})
    assert archive.from_zip(inside) == {"scenario.yaml": "key: a\n"}


def test_line_endings_read_as_from_the_folder(tmp_path):
    # A zip made on Windows hashes like the folder it came from (read in text mode).
    (tmp_path / "scenario.yaml").write_bytes(b"key: a\r\nversion: 1\r\n")
    zipped = archive.from_zip(_zip({"a/scenario.yaml": b"key: a\r\nversion: 1\r\n"}))
    assert zipped == service.read_folder(tmp_path) == {"scenario.yaml": "key: a\nversion: 1\n"}


# -- refusals, each naming the entry -------------------------------------------------------------

@pytest.mark.parametrize("entries, entry, says", [
    ({"/etc/scenario.yaml": "x"}, "/etc/scenario.yaml", "absolute"),
    ({"a/../../scenario.yaml": "x"}, "a/../../scenario.yaml", "'..'"),
    ({"a/scenario.yaml": "x", "a/sub/rules.yaml": "x"}, "a/sub/rules.yaml", "nested"),
    ({"a/scenario.yaml": "x", "a/sub/": b""}, "a/sub/", "nested"),
    ({"a/scenario.yaml": "x", "b/rules.yaml": "x"}, "b/rules.yaml", "more than one top folder"),
    ({"a/scenario.yaml": "x", "rules.yaml": "x"}, "rules.yaml", "beside the folder"),
    ({"a/scenario.yaml": "x", "a/run.sh": "rm -rf /"}, "a/run.sh", "not a scenario source"),
    ({"a/scenario.yaml": "key: a\n", "a/rules.yaml": b"# B\xe1o c\xe1o\n"}, "a/rules.yaml",
     "not UTF-8"),
])
def test_a_bad_entry_is_refused_by_name(entries, entry, says):
    exc = _refused(_zip(entries), "kich-ban.zip")
    assert [p.path for p in exc.problems] == [entry]
    assert says in exc.problems[0].message and entry in str(exc) and "kich-ban.zip" in str(exc)
    assert " / " in exc.problems[0].message  # Vietnamese first, then English


def test_not_utf8_names_the_line():
    exc = _refused(_zip({"a/rules.yaml": b"rules:\n  - key: a\n    name: B\xe1o\n"}))
    assert exc.problems[0].line == 3


def test_duplicate_names_are_refused():
    exc = _refused(_zip_items([("a/scenario.yaml", "key: a\n"), ("a/scenario.yaml", "key: b\n")]))
    assert [p.path for p in exc.problems] == ["a/scenario.yaml"]
    assert "twice" in exc.problems[0].message


def test_not_a_zip_names_the_upload():
    exc = _refused(b"PK but not really a zip", "ho-so.zip")
    assert str(exc).startswith("ho-so.zip: ") and "not a zip" in str(exc)


def test_too_many_entries():
    exc = _refused(_zip({f"a/{i}.md": "x" for i in range(archive.MAX_ENTRIES + 1)}))
    assert f"{archive.MAX_ENTRIES + 1} entries" in str(exc)


def test_an_empty_zip_is_refused():
    assert "no scenario files" in str(_refused(_zip({"__MACOSX/._x": b"\0"})))


def test_a_file_too_large_when_uncompressed():
    big = b"a" * (service.MAX_FILE_BYTES + 1)  # compresses to about a kilobyte
    exc = _refused(_zip({"a/scenario.yaml": "key: a\n", "a/notes.md": big}))
    assert [p.path for p in exc.problems] == ["a/notes.md"]
    assert "larger than" in str(exc)


def _lie_about_sizes(data: bytes, size: int) -> bytes:
    """The zip with every entry's uncompressed size in its headers replaced by `size`."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = out.find(signature)
        while at != -1:
            out[at + offset:at + offset + 4] = struct.pack("<I", size)
            at = out.find(signature, at + 4)
    return bytes(out)


def test_a_header_that_lies_about_the_size_is_not_trusted():
    bomb = _lie_about_sizes(_zip({"a/rules.yaml": b"#" * (service.MAX_FILE_BYTES * 3)}), 10)
    assert zipfile.ZipFile(io.BytesIO(bomb)).getinfo("a/rules.yaml").file_size == 10
    exc = _refused(bomb)
    assert [p.path for p in exc.problems] == ["a/rules.yaml"]


def test_many_files_too_large_together():
    near = b"#" * service.MAX_FILE_BYTES
    entries = {f"a/{i}.md": near for i in range(archive.MAX_TOTAL_BYTES // len(near) + 1)}
    exc = _refused(_zip(entries))
    assert "together exceed" in str(exc)
    assert exc.problems[-1].path == f"a/{len(entries) - 1}.md"


def test_a_zip_larger_than_the_limit_is_not_opened():
    assert "larger than" in str(_refused(b"\0" * (archive.MAX_TOTAL_BYTES + 1)))


def test_to_zip_takes_plain_file_names_only():
    with pytest.raises(ValueError):
        archive.to_zip("a", {"../scenario.yaml": "x"})


# -- the command line ----------------------------------------------------------------------------

def _ioc(url: str, *args: str):
    return CliRunner().invoke(main, list(args), env={"IOC_DATABASE_URL": url})


def _versions(url: str) -> dict[str, tuple[int, str, str]]:
    from engine.db import Database

    db = Database(url)
    try:
        with db.read() as s:
            return {v.key: (v.version, v.status, v.content_hash)
                    for v in s.scalars(select(ScenarioVersion))}
    finally:
        db.dispose()


def test_export_then_load_into_a_fresh_database_gives_the_same_content(ioc, tmp_path):
    loaded = _ioc(ioc.db.url, "scenarios", "load", SCENARIOS)
    assert loaded.exit_code == 0, loaded.output
    before = _versions(ioc.db.url)
    assert len(before) == len(service.folders(SCENARIOS))

    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    for setup in (("db", "upgrade"), ("org", "load")):
        assert _ioc(fresh, *setup).exit_code == 0
    for key in before:
        zipped = tmp_path / f"{key}.zip"
        out = _ioc(ioc.db.url, "scenarios", "export", key, "-o", str(zipped))
        assert out.exit_code == 0, out.output
        assert f"exported    {key} v{before[key][0]} to {zipped}" in out.output
        reload = _ioc(fresh, "scenarios", "load", str(zipped), "--actor", "thanh-tra")
        assert reload.exit_code == 0, reload.output
        assert f"published   {key} v{before[key][0]}" in reload.output
    assert _versions(fresh) == before


def test_export_picks_the_published_version_else_the_highest(ioc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _ioc(ioc.db.url, "scenarios", "load", str(HOTLINE)).exit_code == 0
    files = service.read_folder(HOTLINE)
    v3 = dict(files, **{"scenario.yaml": files["scenario.yaml"].replace("version: 2",
                                                                         "version: 3")})
    (tmp_path / "v3.zip").write_bytes(archive.to_zip("hotline-ticket", v3))
    assert _ioc(ioc.db.url, "scenarios", "load", "v3.zip").exit_code == 0

    def exported(*args: str) -> dict[str, str]:
        out = _ioc(ioc.db.url, "scenarios", "export", "hotline-ticket", *args)
        assert out.exit_code == 0, out.output
        name = out.output.split(" to ")[-1].strip()
        return archive.from_zip((tmp_path / name).read_bytes())

    assert exported() == v3 and (tmp_path / "hotline-ticket-v3.zip").is_file()
    assert exported("--version", "2") == files
    with ioc.db.session() as s:
        for version in s.scalars(select(ScenarioVersion)):
            version.status = RETIRED
    assert exported("-o", "latest.zip") == v3

    stdout = _ioc(ioc.db.url, "scenarios", "export", "hotline-ticket", "--version", "2",
                  "-o", "-")
    assert archive.from_zip(stdout.stdout_bytes) == files


def test_export_of_what_is_not_stored_says_so(ioc, tmp_path):
    assert _ioc(ioc.db.url, "scenarios", "load", str(HOTLINE)).exit_code == 0
    missing = _ioc(ioc.db.url, "scenarios", "export", "khong-co", "-o", str(tmp_path / "x.zip"))
    assert missing.exit_code == 1 and "no scenario khong-co" in missing.output
    old = _ioc(ioc.db.url, "scenarios", "export", "hotline-ticket", "--version", "7")
    assert old.exit_code == 1 and "no version 7 of hotline-ticket" in old.output
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_a_bad_zip_and_stores_nothing(ioc, tmp_path):
    files = service.read_folder(HOTLINE)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_zip({f"hotline-ticket/{n}": t for n, t in files.items()}
                         | {"hotline-ticket/sub/x.md": "x"}))
    out = _ioc(ioc.db.url, "scenarios", "load", str(bad))
    assert out.exit_code == 1
    assert f"{bad}: hotline-ticket/sub/x.md: thư mục lồng nhau" in out.output

    invalid = tmp_path / "invalid.zip"
    broken = dict(files, **{"scenario.yaml": files["scenario.yaml"].replace("severity: low",
                                                                             "severity: khẩn")})
    invalid.write_bytes(archive.to_zip("hotline-ticket", broken))
    out = _ioc(ioc.db.url, "scenarios", "load", str(invalid))
    assert out.exit_code == 1
    assert f"{invalid}/scenario.yaml:9: severity: must be one of" in out.output
    validate = _ioc(ioc.db.url, "scenarios", "validate", str(invalid), str(HOTLINE))
    assert validate.exit_code == 1 and f"ok          {HOTLINE}" in validate.output
    with ioc.db.read() as s:
        assert s.scalars(select(ScenarioVersion)).first() is None


def test_loading_the_same_zip_twice_changes_nothing(ioc, tmp_path):
    zipped = tmp_path / "hotline.zip"
    zipped.write_bytes(archive.to_zip("hotline-ticket", service.read_folder(HOTLINE)))
    assert "published   hotline-ticket v2" in _ioc(ioc.db.url, "scenarios", "load",
                                                   str(zipped)).output
    again = _ioc(ioc.db.url, "scenarios", "load", str(zipped))
    assert again.exit_code == 0 and "unchanged   hotline-ticket v2" in again.output
    folder = _ioc(ioc.db.url, "scenarios", "load", str(HOTLINE))
    assert "unchanged   hotline-ticket v2" in folder.output
    assert _versions(ioc.db.url)["hotline-ticket"][1] == PUBLISHED
