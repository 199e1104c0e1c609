"""create accounts and projects

Revision ID: 1c2a3e4f5a01
Revises:
Create Date: 2026-01-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = "1c2a3e4f5a01"
down_revision = None
branch_labels = None
depends_on = None

project_status = sa.Enum("active", "archived", name="project_status")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("legacy_flag", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("email", name="uq_accounts_email"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(80), nullable=True),
        sa.Column("status", project_status, server_default="active", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_projects_account_id", ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("projects")
    op.drop_table("accounts")
    project_status.drop(op.get_bind(), checkfirst=False)
