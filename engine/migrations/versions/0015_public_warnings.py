"""public warnings: CAP 1.2 alerts drafted from a playbook run, published once approved, with
the XML kept as sent

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 00:40:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import engine.db

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
MOMENT = engine.db.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'public_warnings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('msg_type', sa.String(length=16), nullable=False),
        sa.Column('references_id', sa.Integer(), nullable=True),
        sa.Column('category', sa.String(length=16), nullable=False),
        sa.Column('event', sa.String(length=200), nullable=False),
        sa.Column('urgency', sa.String(length=16), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('certainty', sa.String(length=16), nullable=False),
        sa.Column('headline_vi', sa.String(length=300), nullable=False),
        sa.Column('headline_en', sa.String(length=300), nullable=False),
        sa.Column('description_vi', sa.Text(), nullable=False),
        sa.Column('description_en', sa.Text(), nullable=False),
        sa.Column('instruction_vi', sa.Text(), nullable=False),
        sa.Column('instruction_en', sa.Text(), nullable=False),
        sa.Column('wards', JSON, nullable=False),
        sa.Column('expires', MOMENT, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('drafted_by', sa.String(length=100), nullable=False),
        sa.Column('drafted_at', MOMENT, nullable=False),
        sa.Column('identifier', sa.String(length=200), nullable=True),
        sa.Column('approved_by', sa.String(length=100), nullable=True),
        sa.Column('sent', MOMENT, nullable=True),
        sa.Column('xml', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'],
                                name=op.f('fk_public_warnings_instance_id_process_instances')),
        sa.ForeignKeyConstraint(['references_id'], ['public_warnings.id'],
                                name=op.f('fk_public_warnings_references_id_public_warnings')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_public_warnings')),
        sa.UniqueConstraint('identifier', name=op.f('uq_public_warnings_identifier')),
    )
    with op.batch_alter_table('public_warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_public_warnings_instance_id'), ['instance_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_public_warnings_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_public_warnings_sent'), ['sent'], unique=False)


def downgrade() -> None:
    op.drop_table('public_warnings')
