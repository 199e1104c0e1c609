"""Alembic's generic env.py, with the URL taken from `-x url=...` and a
transaction per migration (the docs' advice for autocommit_block())."""

from alembic import context
from sqlalchemy import create_engine, pool

url = context.get_x_argument(as_dictionary=True).get("url")


def run_migrations_offline():
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
