"""rules in the database: events no longer numbered for matchers to catch up

Every state a rule keeps between events (the waiting events of `all:` rules too) is a row of
rule_states now, so no worker replays or catches up on what others processed, and the
processing order of a partition (processed_seq) has no reader left.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 07:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_partition_processed_seq')
        batch_op.drop_column('processed_seq')


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('processed_seq', sa.Integer(), nullable=True))
        batch_op.create_index('ix_events_partition_processed_seq', ['partition', 'processed_seq'],
                              unique=False)
