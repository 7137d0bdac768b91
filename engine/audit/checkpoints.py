"""Signed checkpoints of the audit log: the tree size, its Merkle root and the time, signed with an
Ed25519 key the database does not hold, and published outside it (a folder that can sit on
other storage; webhook subscribers). An auditor or a witness keeps them; `ioc audit verify`
then proves the records in the database are the ones each checkpoint signed (anchors:
Certificate Transparency RFC 9162, Trillian, Sigstore Rekor).

A checkpoint is a small JSON file. What is signed is its `note`, one line per field:

    ioc-audit-checkpoint/1
    <origin>
    <size>
    <root, hex>
    <time, ISO 8601 UTC>
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from engine import private_files

FORMAT = "ioc-audit-checkpoint/1"
ORIGIN = "ioc-scenario-engine/audit"


class CheckpointError(ValueError):
    """A checkpoint file or key that cannot be read or does not verify; says which and why."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed tree head."""

    size: int
    root: str  # hex
    time: str  # ISO 8601, UTC
    key_id: str
    signature: str  # base64
    origin: str = ORIGIN
    format: str = FORMAT

    @property
    def note(self) -> bytes:
        """The signed text."""
        return f"{self.format}\n{self.origin}\n{self.size}\n{self.root}\n{self.time}\n".encode()

    def to_json(self) -> str:
        """The checkpoint as published."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


# -- keys ----------------------------------------------------------------------------------------

def signing_key(path: Path) -> Ed25519PrivateKey:
    """The private key in `path` (PEM), generated there once when the file is missing."""
    data, _ = private_files.read_or_create(path, lambda: Ed25519PrivateKey.generate()
                                           .private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return _ed25519(lambda: serialization.load_pem_private_key(data, password=None), path,
                    Ed25519PrivateKey, "private")


def _ed25519(load, path, kind: type, what: str):
    """The key `load()` reads from `path`, if it is an Ed25519 key of `kind`."""
    try:
        key = load()
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a PEM {what} key ({exc})") from None
    if not isinstance(key, kind):
        raise CheckpointError(f"{path}: the audit key must be Ed25519")
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    """The public half, as the PEM an auditor keeps."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def read_public_key(path: Path) -> Ed25519PublicKey:
    """An auditor's copy of the public key (PEM)."""
    return _ed25519(lambda: serialization.load_pem_public_key(Path(path).read_bytes()), path,
                    Ed25519PublicKey, "public")


def key_id(public: Ed25519PublicKey) -> str:
    """A short name of the key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# -- signing and checking ------------------------------------------------------------------------

def sign(key: Ed25519PrivateKey, size: int, root: bytes, at: datetime) -> Checkpoint:
    """A checkpoint of a tree of `size` records with this root."""
    moment = at.astimezone(timezone.utc).isoformat(timespec="seconds")
    unsigned = Checkpoint(size, root.hex(), moment, key_id(key.public_key()), "")
    signature = base64.b64encode(key.sign(unsigned.note)).decode()
    return Checkpoint(size, root.hex(), moment, unsigned.key_id, signature)


def check(checkpoint: Checkpoint, public: Ed25519PublicKey) -> None:
    """Raise CheckpointError unless the key signed exactly this checkpoint."""
    if checkpoint.key_id != key_id(public):
        raise CheckpointError(f"checkpoint of size {checkpoint.size} was signed by key "
                              f"{checkpoint.key_id}, not by {key_id(public)}")
    try:
        public.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.note)
    except (InvalidSignature, ValueError):
        raise CheckpointError(f"checkpoint of size {checkpoint.size} ({checkpoint.time}): the "
                              "signature does not match its contents (forged or edited)") \
            from None


def parse(text: str, where: str) -> Checkpoint:
    """A checkpoint from its published JSON; CheckpointError naming `where` otherwise."""
    try:
        data = json.loads(text)
        checkpoint = Checkpoint(**{k: data[k] for k in ("size", "root", "time", "key_id",
                                                        "signature", "origin", "format")})
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{where}: not a checkpoint ({exc})") from None
    if checkpoint.format != FORMAT or not isinstance(checkpoint.size, int) or \
            checkpoint.size < 0 or len(checkpoint.root) != 64:
        raise CheckpointError(f"{where}: not a {FORMAT} checkpoint")
    return checkpoint


# -- publishing ----------------------------------------------------------------------------------

def file_name(checkpoint: Checkpoint) -> str:
    """`<size, 12 digits>-<time>.json`: sorted by size, one file per signing."""
    return f"{checkpoint.size:012d}-{checkpoint.time.replace(':', '')}.json"


def publish(folder: Path, checkpoint: Checkpoint) -> Path:
    """Write the checkpoint into `folder` (whole or not at all); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(checkpoint)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".checkpoint-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(checkpoint.to_json())
    os.replace(tmp, path)
    return path


def kept(folder: Path) -> list[tuple[Path, Checkpoint]]:
    """Every checkpoint in `folder`, smallest tree first; CheckpointError names a bad file."""
    if not folder.is_dir():
        return []
    return sorted(((path, parse(path.read_text(encoding="utf-8"), str(path)))
                   for path in folder.glob("*.json")), key=lambda item: item[1].size)
