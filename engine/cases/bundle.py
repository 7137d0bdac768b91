"""Evidence bundles (Xuất hồ sơ): one case as a zip that anyone can verify offline, without the
database. Inside:

- `case.json`: the case file as data; `process.bpmn`: the diagram of the version that ran;
- `case.pdf`: the readable copy (Vietnamese, English beside, with the painted diagram);
- `records.json`: the case's audit records, each with its inclusion proof to the checkpoint;
- `checkpoint.json`: the signed checkpoint (as published) the proofs lead to;
- `manifest.json`: every file's SHA-256, and `manifest.sig`: the manifest signed with the audit
  key (Ed25519).

`verify(data, public_key)` checks all of it and names what was changed.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import checkpoints, merkle
from engine.audit import service as audit
from engine.audit.models import AuditCheckpoint
from engine.cases import pdf
from engine.cases.service import case_file

FORMAT = "ioc-evidence-bundle/1"
README = """Gói hồ sơ chứng cứ / Evidence bundle

Kiểm tra ngoại tuyến, không cần cơ sở dữ liệu / verify offline, without the database:

    ioc audit verify-bundle THIS.zip --key auditor.pub

auditor.pub là khóa công khai kiểm toán viên đã giữ (ioc audit public-key) / is the public key
the auditor kept. The manifest's signature covers every file's SHA-256; each audit record's
inclusion proof leads to the root of the signed checkpoint.
"""
# A zip entry this big is not one of ours: refused before it is read.
MAX_ENTRY_BYTES = 50_000_000


class BundleError(ValueError):
    """A case that cannot be exported (yet); says why."""


def _canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, indent=1).encode("utf-8")


def _checkpoint_holding(session: Session, publisher, size: int) -> checkpoints.Checkpoint:
    """The newest signed checkpoint that holds `size` records, signing one now if none does."""
    row = session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.size >= size)
                          .order_by(AuditCheckpoint.size.desc()).limit(1)).first()
    if row is not None:
        return checkpoints.Checkpoint(row.size, row.root, row.time, row.key_id, row.signature)
    signed = publisher.checkpoint(session)
    if signed is None or signed.size < size:
        raise BundleError("no checkpoint holds the case's records yet")
    return signed


def build(session: Session, runtime, publisher, key, instance_id: int, *, actor: str,
          now: str) -> bytes:
    """The evidence bundle of one case (a zip)."""
    case = case_file(session, runtime, instance_id)
    if case is None:
        raise BundleError(f"there is no case {instance_id}")
    records = case["records"]
    last = max((r["seq"] for r in records), default=0)
    checkpoint = _checkpoint_holding(session, publisher, last)
    paths = audit.inclusions(session, [r["seq"] for r in records], checkpoint.size)
    proven = [{"record": r, "leaf_index": r["seq"] - 1,
               "path": [node.hex() for node in paths[r["seq"]]]} for r in records]
    files = {
        "case.json": _canonical({k: v for k, v in case.items() if k != "bpmn"}),
        "process.bpmn": case["bpmn"].encode("utf-8"),
        "records.json": _canonical(proven),
        "checkpoint.json": checkpoint.to_json().encode("utf-8"),
        "case.pdf": pdf.render(case, now, actor),
        "README.txt": README.encode("utf-8"),
    }
    manifest = _canonical({"format": FORMAT, "case": instance_id, "exported_at": now,
                           "exported_by": actor, "key_id": checkpoint.key_id,
                           "files": {name: hashlib.sha256(data).hexdigest()
                                     for name, data in sorted(files.items())}})
    files["manifest.json"] = manifest
    files["manifest.sig"] = base64.b64encode(key.sign(manifest)) + b"\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(name, files[name])
    return buffer.getvalue()


@dataclass
class Verdict:
    """What verifying a bundle found: `problems` empty means every file and record holds."""

    case: int | None = None
    records: int = 0
    checkpoint_size: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was changed."""
        return not self.problems


def _read(data: bytes, verdict: Verdict) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out = {}
            for info in zf.infolist():
                if info.file_size > MAX_ENTRY_BYTES:
                    verdict.problems.append(f"{info.filename} is larger than any bundle file")
                    continue
                out[info.filename] = zf.read(info)
            return out
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        verdict.problems.append(f"not a bundle: the zip cannot be read ({exc})")
        return {}


def verify(data: bytes, public: Ed25519PublicKey) -> Verdict:
    """Check a bundle offline with the auditor's public key; name each change."""
    verdict = Verdict()
    files = _read(data, verdict)
    if not files:
        return verdict
    manifest_bytes, signature = files.get("manifest.json"), files.get("manifest.sig")
    if manifest_bytes is None or signature is None:
        verdict.problems.append("manifest.json or manifest.sig is missing: not a bundle")
        return verdict
    try:
        public.verify(base64.b64decode(signature.strip(), validate=True), manifest_bytes)
    except (InvalidSignature, ValueError):
        verdict.problems.append("manifest.json was changed, or signed by another key: its "
                                "signature does not match")
    try:
        manifest = json.loads(manifest_bytes)
        listed = dict(manifest["files"])
        verdict.case = manifest.get("case")
    except (ValueError, KeyError, TypeError):
        verdict.problems.append("manifest.json cannot be read")
        return verdict
    for name, digest in sorted(listed.items()):
        if name not in files:
            verdict.problems.append(f"{name} is missing")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            verdict.problems.append(f"{name} was changed (its SHA-256 is not the signed one)")
    for name in sorted(set(files) - set(listed) - {"manifest.json", "manifest.sig"}):
        verdict.problems.append(f"{name} was added")
    _verify_records(files, public, verdict)
    return verdict


def _verify_records(files: dict[str, bytes], public, verdict: Verdict) -> None:
    """Each record's hash is its contents', and its proof leads to the signed root."""
    try:
        checkpoint = checkpoints.parse(files.get("checkpoint.json", b"").decode("utf-8"),
                                       "checkpoint.json")
        checkpoints.check(checkpoint, public)
        verdict.checkpoint_size = checkpoint.size
    except (checkpoints.CheckpointError, UnicodeDecodeError) as exc:
        verdict.problems.append(f"checkpoint.json: {exc}")
        return
    try:
        proven = json.loads(files.get("records.json", b"[]"))
        case = json.loads(files.get("case.json", b"{}"))
    except ValueError:
        verdict.problems.append("records.json or case.json cannot be read")
        return
    root = bytes.fromhex(checkpoint.root)
    for item in proven:
        record = item.get("record", {})
        seq = record.get("seq")
        try:
            digest, leaf = audit.hashes_of(record)
            path = [bytes.fromhex(node) for node in item["path"]]
            if digest != record["hash"]:
                verdict.problems.append(f"record {seq} ({record.get('action')}) was changed: "
                                        "its contents do not give its hash")
            elif merkle.root_from_inclusion(leaf, item["leaf_index"],
                                            checkpoint.size, path) != root:
                verdict.problems.append(f"record {seq} is not in the signed log: its proof "
                                        "does not lead to the checkpoint's root")
            else:
                verdict.records += 1
        except (KeyError, TypeError, ValueError) as exc:
            verdict.problems.append(f"record {seq}: cannot be checked ({exc})")
    if case.get("records") != [item.get("record") for item in proven]:
        verdict.problems.append("case.json's audit records are not the proven ones")
