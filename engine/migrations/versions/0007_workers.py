"""workers: event partitions, attempts and backoff

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 02:15:07.040651
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401 - autogenerate renders JSONB(astext_type=Text())
from sqlalchemy.dialects import postgresql  # noqa: F401

import engine.db
from engine.events.partitions import partition_of

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partition', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('next_attempt_at', engine.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('processed_seq', sa.Integer(), nullable=True))
        batch_op.create_index('ix_events_status_partition_id', ['status', 'partition', 'id'], unique=False)
        batch_op.create_index('ix_events_partition_processed_seq', ['partition', 'processed_seq'], unique=False)

    # Events still waiting keep their key's order only in their key's partition.
    bind = op.get_bind()
    events = sa.table('events', sa.column('id', sa.Integer), sa.column('subject', sa.String),
                      sa.column('ce_source', sa.String), sa.column('ce_id', sa.String),
                      sa.column('status', sa.String), sa.column('partition', sa.Integer))
    rows = bind.execute(sa.select(events.c.id, events.c.subject, events.c.ce_source,
                                  events.c.ce_id).where(events.c.status == 'pending')).all()
    for row in rows:
        bind.execute(events.update().where(events.c.id == row.id).values(
            partition=partition_of(row.subject, row.ce_source, row.ce_id)))


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_partition_processed_seq')
        batch_op.drop_index('ix_events_status_partition_id')
        batch_op.drop_column('processed_seq')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('partition')
