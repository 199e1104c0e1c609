"""audit invoices

Revision ID: 8d9bacceef08
Revises: 7c8a9bbdce07
Create Date: 2026-02-13 13:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = "8d9bacceef08"
down_revision = "7c8a9bbdce07"
branch_labels = None
# The invoice reference needs the billing branch's table, whichever order the
# branches are applied in.
depends_on = "billing"


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("invoice_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key("fk_audit_log_invoice_id", "audit_log", "invoices", ["invoice_id"], ["id"])


def downgrade() -> None:
    op.drop_constraint("fk_audit_log_invoice_id", "audit_log", type_="foreignkey")
    op.drop_column("audit_log", "invoice_id")
