"""A log that proves itself (issue 20): the audit records are the leaves of an RFC 9162 Merkle
tree whose heads are signed (Ed25519) and published outside the database. Given one earlier
checkpoint, every tampering an administrator with plain SQL can do is detected and named: an
edit, a deletion, a truncated tail with the head rewound, a wiped log with its head reset, and a
full recompute of the chain after an edit (which the hash chain alone passes)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from engine.audit import checkpoints, merkle
from engine.audit import service as audit
from engine.audit.models import AuditCheckpoint
from engine.cli import main

# RFC 6962/9162 reference leaves and the tree heads of their first 0..8 (CT's test vectors).
REFERENCE_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                    "606162636465666768696a6b6c6d6e6f"]
REFERENCE_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]


def test_tree_heads_and_proofs_are_rfc_9162s():
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in REFERENCE_LEAVES]
    assert [merkle.root(leaves[:n]).hex() for n in range(9)] == REFERENCE_ROOTS
    assert [p.hex()[:16] for p in merkle.inclusion_proof(leaves, 0, 8)] == [
        "96a296d224f285c6", "5f083f0a1a33ca07", "6b47aaf29ee3c2af"]
    for size in range(1, 34):
        tree = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(size)]
        head = merkle.root(tree)
        for index in range(size):
            path = merkle.inclusion_proof(tree, index, size)
            assert len(path) <= size.bit_length()  # O(log n)
            assert merkle.root_from_inclusion(tree[index], index, size, path) == head
            other = merkle.leaf_hash(b"forged")
            assert merkle.root_from_inclusion(other, index, size, path) != head


def test_a_frontier_kept_and_grown_gives_the_same_heads():
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(100)]
    frontier = merkle.Frontier()
    for i, leaf in enumerate(leaves):
        if i % 7 == 0:  # stored and read back, as each checkpoint does
            frontier = merkle.Frontier.from_state(frontier.size, frontier.state())
        frontier.append(leaf)
        assert frontier.root() == merkle.root(leaves[:i + 1])
    with pytest.raises(ValueError):
        merkle.Frontier.from_state(5, frontier.state())


def _write(db, n, start=0):
    with db.session() as s:
        for i in range(start, start + n):
            audit.record(s, "test.step", actor="can-bo", subject_type="thing", subject_id=i,
                         details={"i": i, "note": "Bước kiểm thử"})


def _checkpoint(ioc):
    with ioc.db.session() as s:
        return ioc.publisher.checkpoint(s)


def _verify(ioc):
    kept = [c for _, c in checkpoints.kept(ioc.settings.checkpoint_path)]
    with ioc.db.read() as s:
        return audit.verify(s, kept)


def _rehash_from(db, first_seq):
    """What an administrator can do without any key: renumber and recompute every hash from
    `first_seq` on, and the head, so that the chain alone verifies."""
    records = audit.RECORDS
    with db.engine.begin() as conn:
        rows = conn.execute(select(*audit._COLUMNS).order_by(records.c.seq)).all()
        prev = audit.GENESIS
        for n, row in enumerate(rows, start=1):
            if n >= first_seq:
                digest, _ = audit._hashes(n, *row[1:8], prev)
                conn.execute(records.update().where(records.c.seq == row[0]).values(
                    seq=n, prev_hash=prev, hash=digest))
                prev = digest
            else:
                prev = row[9]
        conn.execute(audit.HEAD.update().values(seq=len(rows), hash=prev))


@pytest.fixture
def signed_log(ioc):
    """30 records under a signed checkpoint, then 10 more."""
    _write(ioc.db, 30)
    signed = _checkpoint(ioc)
    assert (signed.size, _checkpoint(ioc)) == (30, None)  # nothing new: nothing signed
    _write(ioc.db, 10, start=30)
    result = _verify(ioc)
    assert (result.ok, result.checked, result.proved) == (True, 40, 1)
    return ioc


def test_an_edited_record_is_named(signed_log):
    with signed_log.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET actor = 'nguoi-khac' WHERE seq = 12"))
    result = _verify(signed_log)
    assert (result.ok, result.broken_seq) == (False, 12)
    assert "record 12 (test.step) was altered" in result.reason


def test_a_full_recompute_after_an_edit_passes_the_chain_but_not_the_checkpoint(signed_log):
    db = signed_log.db
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET actor = 'nguoi-khac' WHERE seq = 12"))
    _rehash_from(db, 12)
    with db.read() as s:
        assert audit.verify(s).ok  # the chain alone: "intact"
    result = _verify(signed_log)
    assert (result.ok, result.broken_seq) == (False, 1)
    assert "records 1–30 are not the ones the checkpoint of" in result.reason
    assert "changed, removed or inserted after it was signed" in result.reason


def test_an_earlier_checkpoint_narrows_where_the_change_is(ioc):
    _write(ioc.db, 10)
    _checkpoint(ioc)
    _write(ioc.db, 20, start=10)
    _checkpoint(ioc)
    with ioc.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET action = 'test.other' WHERE seq = 17"))
    _rehash_from(ioc.db, 17)
    result = _verify(ioc)
    assert (result.ok, result.broken_seq) == (False, 11)
    assert "records 11–30 are not the ones the checkpoint of" in result.reason


def test_a_deleted_record_renumbered_and_rehashed_is_detected(signed_log):
    with signed_log.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq = 7"))
    _rehash_from(signed_log.db, 7)
    with signed_log.db.read() as s:
        assert audit.verify(s).ok
    result = _verify(signed_log)
    assert not result.ok and "records 1–30 are not the ones" in result.reason


def test_a_cut_tail_with_the_head_rewound_is_detected(signed_log):
    with signed_log.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq > 20"))
        conn.execute(text("UPDATE audit_head SET seq = 20, hash = (SELECT hash FROM "
                          "audit_records WHERE seq = 20)"))
    with signed_log.db.read() as s:
        assert audit.verify(s).ok  # plain SQL, no hashing: the chain alone passes
    result = _verify(signed_log)
    assert (result.ok, result.broken_seq) == (False, 21)
    assert "the log holds 20 records, but the checkpoint of" in result.reason
    assert "signed 30: records 21–30 were removed" in result.reason


def test_a_wiped_log_with_its_head_reset_is_detected(signed_log):
    with signed_log.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records"))
        conn.execute(text(f"UPDATE audit_head SET seq = 0, hash = '{audit.GENESIS}'"))
    with signed_log.db.read() as s:
        assert audit.verify(s).ok
    result = _verify(signed_log)
    assert not result.ok
    assert "the log is empty, but the checkpoint of" in result.reason
    assert "signed 30 records: every record was deleted" in result.reason


def test_a_checkpoint_edited_or_signed_by_another_key_is_refused(signed_log, tmp_path):
    [(path, kept)] = checkpoints.kept(signed_log.settings.checkpoint_path)
    public = checkpoints.signing_key(signed_log.settings.audit_key_path).public_key()
    checkpoints.check(kept, public)
    data = json.loads(path.read_text())
    forged = checkpoints.parse(json.dumps({**data, "size": 20}), "forged.json")
    with pytest.raises(checkpoints.CheckpointError, match="signature does not match"):
        checkpoints.check(forged, public)
    other = checkpoints.signing_key(tmp_path / "other.pem")
    with pytest.raises(checkpoints.CheckpointError, match="was signed by key"):
        checkpoints.check(checkpoints.sign(other, 30, bytes.fromhex(kept.root),
                                           signed_log.clock.now()), public)
    with pytest.raises(checkpoints.CheckpointError, match="not a checkpoint"):
        checkpoints.parse("{}", "empty.json")


def _cli(ioc, monkeypatch, *args):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    monkeypatch.setenv("IOC_AUDIT_KEY_FILE", str(ioc.settings.audit_key_path))
    monkeypatch.setenv("IOC_AUDIT_CHECKPOINT_DIR", str(ioc.settings.checkpoint_path))
    return CliRunner().invoke(main, ["audit", *args])


def test_the_cli_signs_verifies_with_the_auditors_key_and_proves_a_record(ioc, monkeypatch,
                                                                          tmp_path):
    _write(ioc.db, 25)
    done = _cli(ioc, monkeypatch, "checkpoint")
    assert done.exit_code == 0 and "checkpoint signed: 25 records" in done.output
    pem = tmp_path / "auditor.pub"
    pem.write_text(_cli(ioc, monkeypatch, "public-key").output)
    # The auditor's own copy of the checkpoints, on other storage.
    copy = tmp_path / "kept"
    copy.mkdir()
    for path, _ in checkpoints.kept(ioc.settings.checkpoint_path):
        (copy / path.name).write_text(path.read_text())
    done = _cli(ioc, monkeypatch, "verify", "--checkpoints", str(copy), "--key", str(pem))
    assert done.exit_code == 0, done.output
    assert "audit log intact: 25 records verified, proved against 1 signed checkpoint" \
        in done.output
    proof = json.loads(_cli(ioc, monkeypatch, "prove", "13").output)
    path = [bytes.fromhex(node) for node in proof["path"]]
    assert len(path) == 5  # ceil(log2 25)
    assert merkle.root_from_inclusion(bytes.fromhex(proof["leaf_hash"]), 12, 25, path).hex() \
        == proof["checkpoint"]["root"]
    # Someone "fixes" the kept checkpoint: the signature no longer matches, and verify says so.
    [kept] = list(copy.glob("*.json"))
    kept.write_text(kept.read_text().replace('"size": 25', '"size": 24'))
    done = _cli(ioc, monkeypatch, "verify", "--checkpoints", str(copy), "--key", str(pem))
    assert done.exit_code == 1 and "audit checkpoints REFUSED" in done.output
    with ioc.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq > 20"))
        conn.execute(text("UPDATE audit_head SET seq = 20, hash = (SELECT hash FROM "
                          "audit_records WHERE seq = 20)"))
    done = _cli(ioc, monkeypatch, "verify", "--key", str(pem))
    assert done.exit_code == 1
    assert "audit log BROKEN at record 21: the log holds 20 records" in done.output


def test_the_engine_signs_on_its_own_timer_and_tells_the_auditors_webhooks(ioc):
    from engine.clock import ManualClock
    from engine.notify import service as notify
    from engine.notify.models import Notification
    from engine.services import Services
    from tests.time_helpers import local

    clock = ManualClock(local("2026-03-02 09:00"))
    engine = Services(ioc.settings, db=ioc.db, vocabulary=ioc.vocabulary, clock=clock)
    with ioc.db.session() as s:
        notify.add_webhook(s, "https://kiem-toan.example/hook", "bi-mat-webhook-dai-du-32-ky-tu",
                           role="auditor")
    _write(ioc.db, 5)
    engine.schedule_checkpoints()
    engine.schedule_checkpoints()  # a second process starting: still one timer
    clock.advance(minutes=9)
    engine.run_pending()
    assert checkpoints.kept(ioc.settings.checkpoint_path) == []
    clock.advance(minutes=1)
    engine.run_pending()
    [(_, first)] = checkpoints.kept(ioc.settings.checkpoint_path)
    assert first.size >= 5 and first.time == "2026-03-02T02:10:00+00:00"
    clock.advance(minutes=10)  # only the webhook's own audit records since: signed again
    engine.run_pending()
    clock.advance(minutes=10)
    engine.run_pending()
    sizes = [c.size for _, c in checkpoints.kept(ioc.settings.checkpoint_path)]
    assert sizes == sorted(set(sizes)) and sizes[0] == first.size
    with ioc.db.read() as s:
        sent = s.scalars(select(Notification).where(Notification.kind == "audit.checkpoint")
                         .order_by(Notification.id)).all()
        stored = s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size)).all()
        pending = s.execute(text("SELECT count(*) FROM timers WHERE kind = 'audit' AND "
                                 "status = 'pending'")).scalar_one()
    assert json.loads(sent[0].text)["root"] == first.root and sent[0].channel == "webhook"
    assert [c.size for c in stored] == sizes and pending == 1
    result = _verify(ioc)
    assert result.ok and result.proved == len(sizes)
    assert clock.now() - timedelta(minutes=30) == local("2026-03-02 09:00")


def test_a_large_log_read_by_several_processes_finds_the_same(ioc, monkeypatch):
    """On PostgreSQL a log past PARALLEL_FROM is checked by one process per core: the same
    verdicts, named the same, at the ranges' seams too (here 3 processes over 31 records, in
    ranges of whole blocks of 4: 1–12, 13–24, 25–31)."""
    monkeypatch.setattr(audit, "PARALLEL_FROM", 10)
    _write(ioc.db, 31)
    _checkpoint(ioc)

    def verdict():
        kept = [c for _, c in checkpoints.kept(ioc.settings.checkpoint_path)]
        with ioc.db.read() as s:
            result = audit.verify(s, kept, processes=3, block_height=2)
        return result.ok, result.checked, result.broken_seq, result.reason

    ok, checked, _, _ = verdict()
    assert (ok, checked) == (True, 31)
    with ioc.db.engine.begin() as conn:  # the first record of the second range
        conn.execute(text("UPDATE audit_records SET actor = 'x' WHERE seq = 13"))
    assert verdict()[:3] == (False, 12, 13)
    with ioc.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET actor = 'can-bo' WHERE seq = 13"))
        conn.execute(text("DELETE FROM audit_records WHERE seq = 24"))  # a range's last
    assert verdict() == (False, 23, 24, "record 24 is missing (next found is 25)")
    _rehash_from(ioc.db, 24)
    _, checked, broken, reason = verdict()  # one record fewer than the checkpoint signed
    assert (checked, broken) == (30, 31)
    assert "the log holds 30 records, but the checkpoint of" in reason


@pytest.mark.parametrize("processes", [1, 2])
def test_whole_blocks_hashed_apart_give_the_tree_of_every_record(ioc, monkeypatch, processes):
    """The stretches hash their whole blocks (here of 4 records) into subtree roots; joined,
    they are the tree a record at a time gives, and a checkpoint signed inside a block, on its
    edge or across several is still compared at its own size."""
    monkeypatch.setattr(audit, "PARALLEL_FROM", 10)
    for upto in (5, 8, 16, 30):
        _write(ioc.db, upto - ioc_size(ioc), start=ioc_size(ioc))
        _checkpoint(ioc)
    _write(ioc.db, 7, start=30)
    kept = [c for _, c in checkpoints.kept(ioc.settings.checkpoint_path)]

    def verify(height):
        with ioc.db.read() as s:
            return audit.verify(s, kept, processes=processes, block_height=height)
    by_block, by_record = verify(2), verify(0)
    with ioc.db.read() as s:
        tree = audit.tree_head(s)
    assert (by_block.ok, by_block.checked, by_block.proved) == (True, 37, 4)
    assert by_block.root == by_record.root == tree.root().hex()
    with ioc.db.engine.begin() as conn:  # inside the block 17–20, after the checkpoint of 16
        conn.execute(text("UPDATE audit_records SET actor = 'x' WHERE seq = 19"))
    _rehash_from(ioc.db, 19)
    by_block, by_record = verify(2), verify(0)
    assert (by_block.ok, by_block.broken_seq, by_block.reason) == \
        (by_record.ok, by_record.broken_seq, by_record.reason) == \
        (False, 17, by_record.reason)
    assert "records 17–30 are not the ones the checkpoint" in by_block.reason


def ioc_size(ioc) -> int:
    """How many records the log holds."""
    with ioc.db.read() as s:
        return s.execute(text("SELECT count(*) FROM audit_records")).scalar_one()


def test_the_auditors_page_lists_checkpoints_gives_the_key_and_verifies(ioc, people):
    """The auditor sees the signed checkpoints and the public key, runs the verification from
    the page, and after tampering is told where; a civil servant may not open it; the API says
    the same."""
    from engine.app import create_app
    from tests.test_web import _csrf, _login

    _write(ioc.db, 12)
    _checkpoint(ioc)
    client = create_app(services=ioc).test_client()
    assert _login(client, "auditor").status_code == 302
    page = client.get("/audit").get_data(as_text=True)
    assert "Nhật ký kiểm toán" in page and "BEGIN PUBLIC KEY" in page
    [(_, kept)] = checkpoints.kept(ioc.settings.checkpoint_path)
    assert kept.root[:16] in page and "hợp lệ <small>valid" in page
    done = client.post("/audit/verify", data={"csrf_token": _csrf(page)}).get_data(as_text=True)
    assert "Toàn vẹn" in done and "proved against 1 signed checkpoint" in done
    with ioc.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq > 5"))
        conn.execute(text("UPDATE audit_head SET seq = 5, hash = (SELECT hash FROM "
                          "audit_records WHERE seq = 5)"))
    done = client.post("/audit/verify", data={"csrf_token": _csrf(page)}).get_data(as_text=True)
    assert "The log was tampered with at record 6" in done
    token = people["auditor"][1]
    body = client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}) \
        .get_json()
    assert (body["ok"], body["broken_seq"], body["checkpoints"]) == (False, 6, 1)
    clerk = create_app(services=ioc).test_client()
    _login(clerk, "phvhcc")
    assert clerk.get("/audit").status_code == 403


def test_records_written_before_leaves_were_stored_are_proved_the_same(ioc):
    """Records from before migration 0011 have no stored leaf: checkpoints and proofs compute
    it from their contents, and give the same root and paths."""
    _write(ioc.db, 9)
    with ioc.db.read() as s:
        head = audit.tree_head(s).root()
        paths = audit.inclusions(s, [2, 7], 9)
    with ioc.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET leaf = NULL WHERE seq IN (2, 3, 7)"))
    with ioc.db.read() as s:
        assert audit.tree_head(s).root() == head
        assert audit.inclusions(s, [2, 7], 9) == paths
    assert _checkpoint(ioc).root == head.hex()


def test_a_key_file_that_is_not_an_ed25519_pem_is_named(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    garbage = tmp_path / "rac.pem"
    garbage.write_text("không phải khóa")
    with pytest.raises(checkpoints.CheckpointError, match="rac.pem: not a PEM private key"):
        checkpoints.signing_key(garbage)
    with pytest.raises(checkpoints.CheckpointError, match="rac.pem: not a PEM public key"):
        checkpoints.read_public_key(garbage)
    other = tmp_path / "ec.pub"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(checkpoints.CheckpointError, match="the audit key must be Ed25519"):
        checkpoints.read_public_key(other)
    with pytest.raises(checkpoints.CheckpointError, match="not a PEM public key"):
        checkpoints.read_public_key(tmp_path / "khong-co.pub")
