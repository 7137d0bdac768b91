"""process incidents: a scenario's failed step, kept to retry

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:40:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401 - autogenerate renders JSONB(astext_type=Text())
from sqlalchemy.dialects import postgresql

import engine.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'process_incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('scenario_key', sa.String(length=100), nullable=False),
        sa.Column('scenario_version_id', sa.Integer(), nullable=True),
        sa.Column('instance_id', sa.Integer(), nullable=True),
        sa.Column('element', sa.String(length=200), nullable=True),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                    'postgresql'), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', engine.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('last_attempt_at', engine.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', engine.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column('resolved_by', sa.String(length=200), nullable=True),
        sa.Column('resolution', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_process_incidents')),
    )
    with op.batch_alter_table('process_incidents', schema=None) as batch_op:
        batch_op.create_index('ix_process_incidents_status_id', ['status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_process_incidents_instance_id'), ['instance_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_process_incidents_scenario_key'), ['scenario_key'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('process_incidents')
