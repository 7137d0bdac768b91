"""audit details as canonical text: each record's details are stored as the exact text its
hashes cover (sorted keys, no spaces, UTF-8) instead of JSONB, so verifying the log hashes what it
reads instead of parsing and re-serialising every record

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 20:30:00
"""
import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from engine.audit.models import canonical

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BATCH = 5000


def _rewrite_canonical() -> None:
    """Every record's details re-written in canonical form (the same content: the hashes
    already covered this form), in batches by id."""
    conn = op.get_bind()
    records = sa.table('audit_records', sa.column('id', sa.Integer), sa.column('details', sa.Text))
    last = 0
    while True:
        rows = conn.execute(sa.select(records.c.id, records.c.details)
                            .where(records.c.id > last).order_by(records.c.id)
                            .limit(BATCH)).all()
        if not rows:
            return
        changed = [{"key": id_, "text": canonical(json.loads(text))} for id_, text in rows]
        changed = [row for row, (_, text) in zip(changed, rows) if row["text"] != text]
        if changed:
            conn.execute(records.update().where(records.c.id == sa.bindparam("key"))
                         .values(details=sa.bindparam("text")), changed)
        last = rows[-1][0]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('audit_records', 'details', type_=sa.Text(),
                        postgresql_using='details::text')
    else:
        with op.batch_alter_table('audit_records', schema=None) as batch_op:
            batch_op.alter_column('details', type_=sa.Text(), existing_nullable=False)
    _rewrite_canonical()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column('audit_records', 'details', type_=postgresql.JSONB(),
                        postgresql_using='details::jsonb')
    else:
        with op.batch_alter_table('audit_records', schema=None) as batch_op:
            batch_op.alter_column('details', type_=sa.JSON(), existing_nullable=False)
