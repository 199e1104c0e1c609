"""merge billing and audit

Revision ID: 9eacbddf0f09
Revises: 6b7f8a9cad06, 8d9bacceef08
Create Date: 2026-02-20 10:00:00.000000

"""

revision = "9eacbddf0f09"
down_revision = ("6b7f8a9cad06", "8d9bacceef08")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
