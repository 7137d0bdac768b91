"""audit checkpoints: the signed tree heads of the audit log, each with its tree's frontier;
each audit record's Merkle leaf hash (None for the records written before)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 17:15:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leaf', sa.String(length=64), nullable=True))
    op.create_table(
        'audit_checkpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('root', sa.String(length=64), nullable=False),
        sa.Column('time', sa.String(length=40), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('signature', sa.String(length=100), nullable=False),
        sa.Column('frontier', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                  nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints')),
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_size'), ['size'], unique=False)


def downgrade() -> None:
    op.drop_table('audit_checkpoints')
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_column('leaf')
