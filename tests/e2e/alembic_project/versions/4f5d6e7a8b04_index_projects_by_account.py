"""index projects by account

Revision ID: 4f5d6e7a8b04
Revises: 3e4c5d6f7a03
Create Date: 2026-02-02 08:15:00.000000

"""
from alembic import op

revision = "4f5d6e7a8b04"
down_revision = "3e4c5d6f7a03"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_projects_account_id", "projects", ["account_id"],
                        postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_projects_account_id", table_name="projects",
                      postgresql_concurrently=True, if_exists=True)
