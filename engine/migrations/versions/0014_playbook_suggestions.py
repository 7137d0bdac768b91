"""playbook suggestions: a detection's proposal of an emergency playbook, waiting for a
commander to start or dismiss it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 00:10:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import engine.db

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'playbook_suggestions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scenario_version_id', sa.Integer(), nullable=False),
        sa.Column('scenario_key', sa.String(length=100), nullable=False),
        sa.Column('rule_key', sa.String(length=100), nullable=False),
        sa.Column('match_id', sa.Integer(), nullable=False),
        sa.Column('title_vi', sa.String(length=500), nullable=False),
        sa.Column('title_en', sa.String(length=500), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=True),
        sa.Column('data', JSON, nullable=False),
        sa.Column('event_ids', JSON, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('suggested_at', engine.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('decided_at', engine.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=100), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('instance_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                                name=op.f('fk_playbook_suggestions_instance_id_process_instances')),
        sa.ForeignKeyConstraint(['match_id'], ['rule_matches.id'],
                                name=op.f('fk_playbook_suggestions_match_id_rule_matches')),
        sa.ForeignKeyConstraint(['scenario_version_id'], ['scenario_versions.id'],
                                name=op.f('fk_playbook_suggestions_scenario_version_id_scenario_versions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_playbook_suggestions')),
        sa.UniqueConstraint('match_id', name=op.f('uq_playbook_suggestions_match_id')),
    )
    with op.batch_alter_table('playbook_suggestions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_playbook_suggestions_scenario_key'), ['scenario_key'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_playbook_suggestions_status'), ['status'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('playbook_suggestions')
