"""The example set in migrations/: applied one revision at a time through the
psql plan, rows inserted between the steps, downgraded one revision at a time to
base with every surviving row checked, then upgraded to head again."""

from conftest import MIGRATIONS, connect, psql, scalar

TABLES = ["users", "projects", "tasks", "invoices", "invoice_lines", "notifications"]

# Downgrade targets that remove one revision each from the head of the example set.
ONE_BY_ONE_DOWN = ["-1", "-1", "notifications@-1", "notifications@-1", "notifications@-1",
                   "billing@-1", "billing@-1"] + ["-1"] * 8


def run_plan(dbname, target, direction="upgrade"):
    return psql(dbname, f"SELECT * FROM migrate_plan('{target}', '{direction}') \\gexec\n")


def existing_tables(conn):
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
    ).fetchall()
    return {r[0] for r in rows}


def counts(conn):
    present = existing_tables(conn)
    return {t: scalar(conn, f"SELECT count(*) FROM {t}") for t in TABLES if t in present}


def seed(conn, n):
    """Insert one row into every table that exists at this step."""
    present = existing_tables(conn)
    user = scalar(conn, "INSERT INTO users (email) VALUES (%s) RETURNING id", (f"user{n}@example.com",))
    if "projects" in present:
        project = scalar(conn, "INSERT INTO projects (owner_id, name) VALUES (%s, %s) RETURNING id", (user, f"p{n}"))
        if "tasks" in present:
            task = scalar(conn, "INSERT INTO tasks (project_id, title, started_at) VALUES (%s, %s, now()) RETURNING id",
                          (project, f"t{n}"))
            if "notifications" in present:
                conn.execute("INSERT INTO notifications (user_id, task_id, kind) VALUES (%s, %s, 'assigned')",
                             (user, task))
    if "invoices" in present:
        invoice = scalar(conn, "INSERT INTO invoices (customer_id, number) VALUES (%s, %s) RETURNING id",
                         (user, f"INV-{n}"))
        if "invoice_lines" in present:
            conn.execute("INSERT INTO invoice_lines (invoice_id, description, unit_price_cents) VALUES (%s, 'x', 100)",
                         (invoice,))


def test_example_set_round_trip_keeps_rows(db):
    conn = connect(db)
    loaded = conn.execute("SELECT * FROM migrate_load_dir(%s)", (str(MIGRATIONS),)).fetchall()
    assert len(loaded) == 15 and {r[2] for r in loaded} == {"loaded"}
    order = [r[0] for r in conn.execute("SELECT revision FROM migrate_history()")]
    assert len(order) == 15

    # Up, one revision per plan, seeding rows after each step.
    for n, rev in enumerate(order):
        run_plan(db, rev)
        assert scalar(conn, "SELECT count(*) FROM migrate.applied") == n + 1
        seed(conn, n)
    at_head = counts(conn)
    assert at_head["users"] == 15 and set(at_head) == set(TABLES)
    assert [r[0] for r in conn.execute("SELECT revision FROM migrate_current()")] == [order[-1]]
    assert scalar(conn, "SELECT count(*) FROM tasks WHERE status IS NULL") == 0
    assert scalar(conn, """SELECT attnotnull FROM pg_attribute
                          WHERE attrelid = 'tasks'::regclass AND attname = 'status'""")
    assert scalar(conn, """SELECT indisvalid FROM pg_index
                          WHERE indexrelid = 'notifications_user_id_unread_idx'::regclass""")
    conn.execute("UPDATE tasks SET status = 'blocked' WHERE id = (SELECT min(id) FROM tasks)")

    # Down, one revision at a time: every row of every surviving table survives.
    before = at_head
    for n, target in enumerate(ONE_BY_ONE_DOWN):
        applied_before = scalar(conn, "SELECT count(*) FROM migrate.applied")
        run_plan(db, target, "downgrade")
        assert scalar(conn, "SELECT count(*) FROM migrate.applied") == applied_before - 1, target
        after = counts(conn)
        for table, count in after.items():
            assert count == before[table], f"{table} lost rows at downgrade step {n} ({target})"
        before = after
    assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 0
    assert existing_tables(conn) == set()
    assert scalar(conn, "SELECT count(*) FROM pg_type WHERE typname LIKE 'task_status%'") == 0

    # And up again, in one plan.
    run_plan(db, "head")
    assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 15
    seed(conn, 100)
    assert counts(conn) == {t: 1 for t in TABLES}
    # 15 up + 15 down + 15 up, each in the audit log.
    assert scalar(conn, "SELECT count(*) FROM migrate.events WHERE action IN ('upgrade', 'downgrade')") == 45
    assert conn.execute("SELECT * FROM migrate_verify()").fetchall() == []


def test_roundtrip_function_on_example_set(db):
    conn = connect(db)
    conn.execute("SELECT * FROM migrate_load_dir(%s)", (str(MIGRATIONS),))
    rows = conn.execute("SELECT phase, revision, status, detail FROM migrate_test_roundtrip()").fetchall()
    assert len(rows) == 45, rows
    assert {r[2] for r in rows} == {"ok"}, [r for r in rows if r[2] != "ok"]
    # Everything was rolled back.
    assert scalar(conn, "SELECT count(*) FROM migrate.applied") == 0
    assert scalar(conn, "SELECT count(*) FROM pg_class WHERE relname = 'users'") == 0
