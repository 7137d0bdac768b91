"""What rules remember between events, as a batch sees it: rows of `rule_states`, one per key.

A temporal window (engine/rules/temporal.py) and a correlation's waiting events
(engine/rules/correlation.py) are each one row, keyed by (scenario version, rule, key). A batch
reads and locks the rows its events may need at once (`prefetch`), changes them in memory, and
stores each once (`write`) in its own transaction, so the state commits with the events that
changed it, or not at all (`discard`).

Two workers may handle events of one key at the same moment (a key that is not the events'
partition: no subject, or a rule correlating on another field). On PostgreSQL each key is
locked with a transaction-level advisory lock before its row is read: that also covers a key
with no row yet, which `FOR UPDATE` cannot lock, so two batches never both create it. Keys are
locked in one sorted order; a key needed later (`get`) may deadlock, which PostgreSQL breaks and
the pipeline retries (db.is_transient). SQLite has one writer at a time and needs no lock.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session

from engine.rules.models import RuleState

StateKey = tuple[int, str, str]  # (scenario version id, rule key, key text)

_LOCK = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(:keys) AS k").bindparams(
    bindparam("keys", type_=ARRAY(BIGINT)))


def key_text(values: list[Any]) -> str:
    """The key of some field values, as stored: '["HS-1"]'; a long one as its SHA-256."""
    text_ = json.dumps([_canonical(v) for v in values], ensure_ascii=False, default=str)
    # Long keys are hashed so that the key column and timer refs stay bounded.
    return text_ if len(text_) <= 200 else "sha256:" + hashlib.sha256(text_.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    # 5 and 5.0 are one key: a number's JSON text must not depend on how a source wrote it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def lock_id(key: StateKey) -> int:
    """The advisory lock of a key: a signed 64-bit number from its SHA-256."""
    digest = hashlib.sha256(json.dumps(list(key), ensure_ascii=False).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class _Row:
    row: RuleState | None  # None while the key has no stored row
    state: dict
    changed: bool = False


class RuleStates:
    """The rule_states rows of one batch: read and locked once, written once at its end."""

    def __init__(self) -> None:
        self._rows: dict[StateKey, _Row] = {}

    def prefetch(self, session: Session, keys: Iterable[StateKey]) -> None:
        """Lock and read at once the rows of these keys (one lock order for every worker)."""
        wanted = sorted(set(keys) - self._rows.keys())
        if wanted:
            self._read(session, wanted)

    def get(self, session: Session, key: StateKey) -> dict:
        """The state of one key (a copy; {} when it has none), locked until the batch ends."""
        if key not in self._rows:
            self._read(session, [key])
        return dict(self._rows[key].state)

    def put(self, key: StateKey, state: dict) -> None:
        """Change the state of a key read by this batch; {} removes its row at `write`."""
        entry = self._rows[key]
        entry.state, entry.changed = state, True

    def write(self, session: Session) -> None:
        """Store every changed row once, in the caller's transaction."""
        gone = []
        for (version_id, rule_key, key), entry in self._rows.items():
            if not entry.changed:
                continue
            entry.changed = False
            if entry.row is None:
                if entry.state:
                    entry.row = RuleState(scenario_version_id=version_id, rule_key=rule_key,
                                          key=key, state=entry.state)
                    session.add(entry.row)
            elif entry.state:
                entry.row.state = entry.state
            elif entry.row in session.new:
                session.expunge(entry.row)  # created and ended within the batch
                entry.row = None
            else:
                gone.append(entry.row.id)
                entry.row = None
        if gone:  # an ended correlation or window keeps no row: the table holds what is open
            session.execute(delete(RuleState).where(RuleState.id.in_(gone)))

    def discard(self) -> None:
        """Forget everything read (the batch ended: committed, or rolled back)."""
        self._rows.clear()

    def _read(self, session: Session, keys: list[StateKey]) -> None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_LOCK, {"keys": sorted(lock_id(k) for k in keys)})
        found = {}
        for start in range(0, len(keys), 500):
            for row in session.scalars(select(RuleState).where(tuple_(
                    RuleState.scenario_version_id, RuleState.rule_key, RuleState.key)
                    .in_(keys[start:start + 500]))):
                found[(row.scenario_version_id, row.rule_key, row.key)] = row
        for key in keys:
            row = found.get(key)
            self._rows[key] = _Row(row, dict(row.state) if row is not None else {})
