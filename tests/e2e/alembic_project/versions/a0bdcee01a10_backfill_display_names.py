"""backfill display names

Revision ID: a0bdcee01a10
Revises: 9eacbddf0f09
Create Date: 2026-03-01 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = "a0bdcee01a10"
down_revision = "9eacbddf0f09"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A Python data migration: it reads rows and decides per row.
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, email FROM accounts WHERE display_name = ''")).fetchall()
    for account_id, email in rows:
        bind.execute(sa.text("UPDATE accounts SET display_name = :name WHERE id = :id"),
                     {"name": email.split("@")[0].title(), "id": account_id})
    op.create_index("ix_accounts_display_name", "accounts", ["display_name"])


def downgrade() -> None:
    op.drop_index("ix_accounts_display_name", table_name="accounts")
