"""project status paused

Revision ID: 3e4c5d6f7a03
Revises: 2d3b4c5e6f02
Create Date: 2026-01-20 14:00:00.000000

"""
from alembic import op

revision = "3e4c5d6f7a03"
down_revision = "2d3b4c5e6f02"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE project_status ADD VALUE 'paused' AFTER 'active'")


def downgrade() -> None:
    # PostgreSQL cannot remove a value from an enum.
    pass
