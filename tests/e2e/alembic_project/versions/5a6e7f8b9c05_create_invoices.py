"""create invoices

Revision ID: 5a6e7f8b9c05
Revises: 4f5d6e7a8b04
Create Date: 2026-02-10 11:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = "5a6e7f8b9c05"
down_revision = "4f5d6e7a8b04"
branch_labels = ("billing",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("currency", sa.CHAR(3), server_default="EUR", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_invoices"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_invoices_account_id"),
        sa.CheckConstraint("amount_cents >= 0", name="ck_invoices_amount_nonnegative"),
    )


def downgrade() -> None:
    op.drop_table("invoices")
