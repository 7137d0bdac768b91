"""audit records by subject: the records about one person or source, newest first, for the
administration pages, without reading the whole log

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 20:15:00
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.create_index('ix_audit_records_subject', ['subject_type', 'subject_id', 'seq'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_records_subject')
