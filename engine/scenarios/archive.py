"""A scenario as a zip: the same files as its folder, under one top folder named by its key.

`to_zip` writes the files of a stored version; `from_zip` reads an uploaded zip back into the
files `service.check` takes, refusing anything that is not a plain scenario folder. Uploads are
outside input: sizes are measured while decompressing (zip headers can lie), never trusted.
"""
from __future__ import annotations

import codecs
import io
import re
import zipfile
import zlib
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.scenarios.models import PUBLISHED, ScenarioVersion
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.service import MAX_FILE_BYTES, SOURCE_SUFFIXES

MAX_ENTRIES = 50
MAX_TOTAL_BYTES = 5 * MAX_FILE_BYTES
# Any fixed moment will do: the same files must give the same bytes (zip needs a year >= 1980).
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
# Reading an entry can fail in many ways on a damaged or crafted zip; each names the entry.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
                NotImplementedError, ValueError)


def to_zip(key: str, files: dict[str, str]) -> bytes:
    """The zip of a scenario's files under `<key>/`, byte for byte the same for the same files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(files):
            if "/" in name or "\\" in name or name in ("", ".", ".."):
                raise ValueError(f"{name!r} is not a plain file name")
            info = zipfile.ZipInfo(f"{key}/{name}", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the platform, for the same bytes everywhere
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            zf.writestr(info, files[name].encode("utf-8"))
    return buffer.getvalue()


def _problem(source: str, entry: str, vi: str, en: str, line: int | None = None) -> Problem:
    """A problem of one entry: the zip is the file, the entry its path."""
    return Problem(source, f"{vi} / {en}", line, entry)


def _ignored(parts: tuple[str, ...]) -> bool:
    """Litter to skip rather than refuse."""
    # Archivers add these beside the files (macOS resource forks, .DS_Store, editor files).
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def _unsafe(name: str) -> bool:
    """An absolute path (also C:) or one that climbs out with '..' (also with backslashes)."""
    path = name.replace("\\", "/")
    return (path.startswith("/") or (len(path) > 1 and path[1] == ":")
            or ".." in path.split("/"))


def _layout(source: str, infos: list[zipfile.ZipInfo]) -> tuple[list, list[Problem]]:
    """The entries to read, as (info, file name), and the problems of the zip's layout."""
    problems: list[Problem] = []
    wanted: list[tuple[zipfile.ZipInfo, str]] = []
    tops: dict[str, str] = {}  # top folder → first entry in it
    at_root: list[str] = []
    for info in infos:
        entry = info.filename
        if _unsafe(entry):
            problems.append(_problem(source, entry, "đường dẫn tuyệt đối hoặc có '..'",
                                     "absolute path or '..' in the path"))
            continue
        parts = tuple(entry.replace("\\", "/").split("/"))
        if info.is_dir():
            parts = parts[:-1]
        if not parts or _ignored(parts):
            continue
        if "" in parts or len(parts) > 2 or (info.is_dir() and len(parts) > 1):
            problems.append(_problem(source, entry, "thư mục lồng nhau",
                                     "nested folders: a scenario is one flat folder"))
            continue
        if len(parts) == 2 or info.is_dir():
            tops.setdefault(parts[0], entry)
        else:
            at_root.append(entry)
        if info.is_dir():
            continue
        name = parts[-1]
        if PurePosixPath(name).suffix not in SOURCE_SUFFIXES:
            problems.append(_problem(source, entry, "không phải tệp nguồn của kịch bản",
                                     f"not a scenario source file ({', '.join(SOURCE_SUFFIXES)})"))
            continue
        wanted.append((info, name))
    if len(tops) > 1:
        second = sorted(tops)[1]
        problems.append(_problem(source, tops[second], "có nhiều hơn một thư mục gốc",
                                 f"more than one top folder ({', '.join(sorted(tops))})"))
    if tops and at_root:
        problems.append(_problem(source, at_root[0], "tệp nằm ngoài thư mục kịch bản",
                                 f"a file beside the folder {sorted(tops)[0]}/: put every "
                                 "file in the folder or every file at the root"))
    return wanted, problems


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the entry: one more than allowed proves it is too large."""
    with zf.open(info) as f:
        return f.read(limit + 1)


def _contents(zf: zipfile.ZipFile, source: str, wanted: list) -> tuple[dict, list[Problem]]:
    """The text of each wanted entry by file name, and the problems of reading them."""
    files: dict[str, str] = {}
    problems: list[Problem] = []
    seen: set[str] = set()
    total = 0
    for info, name in wanted:
        entry = info.filename
        if name in seen:
            problems.append(_problem(source, entry, f"tệp {name} xuất hiện hai lần",
                                     f"{name} appears twice"))
            continue
        seen.add(name)
        budget = min(MAX_FILE_BYTES, MAX_TOTAL_BYTES - total)
        try:
            raw = _read(zf, info, budget)
        except _READ_ERRORS as exc:
            problems.append(_problem(source, entry, "không đọc được", f"cannot be read ({exc})"))
            continue
        if len(raw) > MAX_FILE_BYTES:
            problems.append(_problem(source, entry, f"lớn hơn {MAX_FILE_BYTES} byte",
                                     f"larger than {MAX_FILE_BYTES} bytes uncompressed"))
            continue
        if len(raw) > budget:
            problems.append(_problem(source, entry, f"tổng dung lượng vượt {MAX_TOTAL_BYTES} byte",
                                     f"the files together exceed {MAX_TOTAL_BYTES} bytes "
                                     "uncompressed"))
            break
        total += len(raw)
        try:
            files[name] = read_text(raw, name)
        except NotText as exc:
            problems.append(_problem(source, entry, exc.vi, exc.en, exc.line))
    return files, problems


class NotText(ValueError):
    """An uploaded file that is not text in an encoding we read; says why and where."""

    def __init__(self, vi: str, en: str, line: int):
        super().__init__(en)
        self.vi, self.en, self.line = vi, en, line


# An XML declaration naming its encoding: other modellers write ISO-8859-1, windows-1252, UTF-16.
_DECLARED = re.compile(rb'^<\?xml[^>]*?encoding\s*=\s*["\']([A-Za-z0-9._-]+)["\']')


def read_text(raw: bytes, name: str) -> str:
    """An uploaded scenario file's text, UTF-8 as stored: an XML file may be in the encoding its
    declaration names (the declaration then says UTF-8); raises NotText with the line."""
    text = _decoded(raw, name)
    if "\x00" in text:
        raise NotText("có ký tự NUL: không phải tệp văn bản",
                       "contains a NUL character: not a text file",
                       text[:text.index("\x00")].count("\n") + 1)
    # As reading the folder in text mode does, so a zip and its folder hash the same.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decoded(raw: bytes, name: str) -> str:
    xml = name.endswith((".bpmn", ".dmn"))
    declared = _DECLARED.match(raw.lstrip(codecs.BOM_UTF8)) if xml else None
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"  # a byte-order mark cannot lie about its encoding
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise NotText(f"khai báo bảng mã {encoding} không biết", f"declares the encoding "
                       f"{encoding}, which is not known: save it as UTF-8", 1) from None
    try:
        text = raw.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        raise NotText(f"không phải văn bản {encoding.upper()}", f"not {encoding.upper()} text "
                       f"({exc.reason}): save it as UTF-8",
                       raw[:exc.start].count(b"\n") + 1) from None
    if xml and encoding != "utf-8":
        # Stored as UTF-8 text, so the declaration must say so for every reader after us.
        text = re.sub(r'^(\ufeff?<\?xml[^>]*?encoding\s*=\s*["\'])[A-Za-z0-9._-]+',
                      r"\g<1>UTF-8", text).lstrip("\ufeff")
    return text


def from_zip(data: bytes, source: str = "upload") -> dict[str, str]:
    """The scenario files of a zip (one top folder, or files at the root) by name; raises
    ScenarioInvalid naming each bad entry."""
    if len(data) > MAX_TOTAL_BYTES:
        raise ScenarioInvalid([Problem(source, f"tệp zip lớn hơn {MAX_TOTAL_BYTES} byte / "
                                               f"the zip is larger than {MAX_TOTAL_BYTES} bytes")])
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise ScenarioInvalid([Problem(source, "không phải tệp zip / not a zip file")]) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ScenarioInvalid([Problem(source, f"zip có {len(infos)} mục, tối đa "
                                           f"{MAX_ENTRIES} / the zip has {len(infos)} entries, "
                                           f"at most {MAX_ENTRIES}")])
        wanted, problems = _layout(source, infos)
        files, unreadable = _contents(zf, source, wanted)
    if problems or unreadable:
        raise ScenarioInvalid(problems + unreadable)
    if not files:
        raise ScenarioInvalid([Problem(source, "zip không có tệp kịch bản nào / the zip holds "
                                               "no scenario files")])
    return files


def stored_version(session: Session, key: str, number: int | None = None
                   ) -> ScenarioVersion | None:
    """Version `number` of a scenario; without a number the published one, else the highest."""
    query = select(ScenarioVersion).where(ScenarioVersion.key == key)
    if number is not None:
        return session.scalars(query.where(ScenarioVersion.version == number)).first()
    return (session.scalars(query.where(ScenarioVersion.status == PUBLISHED)).first()
            or session.scalars(query.order_by(ScenarioVersion.version.desc())).first())
