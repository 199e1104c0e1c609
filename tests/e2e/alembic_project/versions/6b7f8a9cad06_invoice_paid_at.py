"""invoice paid_at

Revision ID: 6b7f8a9cad06
Revises: 5a6e7f8b9c05
Create Date: 2026-02-11 16:45:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = "6b7f8a9cad06"
down_revision = "5a6e7f8b9c05"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_invoices_unpaid", "invoices", ["account_id"],
                    postgresql_where=sa.text("paid_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_invoices_unpaid", table_name="invoices")
    op.drop_column("invoices", "paid_at")
