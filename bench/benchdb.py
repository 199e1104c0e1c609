"""The benchmark cluster every bench script talks to, and fresh databases on it."""

import os

import psycopg

PORT = int(os.environ.get("BENCH_PORT", "54332"))


def dsn(db, port=PORT):
    return f"host=127.0.0.1 port={port} user=postgres dbname={db}"


def fresh_db(name, extension=True, port=PORT):
    """Drop and create database `name`, with pg_migrate installed if `extension`."""
    with psycopg.connect(dsn("postgres", port), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    if extension:
        with psycopg.connect(dsn(name, port), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_migrate")
