"""display name, wider project names

Revision ID: 2d3b4c5e6f02
Revises: 1c2a3e4f5a01
Create Date: 2026-01-12 10:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = "2d3b4c5e6f02"
down_revision = "1c2a3e4f5a01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("display_name", sa.String(100), server_default="", nullable=False))
    op.alter_column("projects", "name", existing_type=sa.String(80), type_=sa.String(200), nullable=False)
    op.drop_column("accounts", "legacy_flag")


def downgrade() -> None:
    op.add_column("accounts", sa.Column("legacy_flag", sa.Boolean(), nullable=True))
    op.alter_column("projects", "name", existing_type=sa.String(200), type_=sa.String(80), nullable=True)
    op.drop_column("accounts", "display_name")
