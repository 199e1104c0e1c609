"""create audit log

Revision ID: 7c8a9bbdce07
Revises: 4f5d6e7a8b04
Create Date: 2026-02-12 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = "7c8a9bbdce07"
down_revision = "4f5d6e7a8b04"
branch_labels = ("audit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_audit_log_account_id", ondelete="SET NULL"),
    )


def downgrade() -> None:
    op.drop_table("audit_log")
