"""The extension's objects describe themselves in psql (\\df+, \\dt+, \\dv+, \\dy+)."""

from conftest import connect, refused

UNCOMMENTED = r"""
WITH members AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
     WHERE e.extname = 'pg_migrate' AND d.deptype = 'e'
       AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
)
SELECT pg_catalog.pg_describe_object(m.classid, m.objid, 0)
  FROM members m JOIN pg_catalog.pg_class c ON c.oid = m.classid
 WHERE c.relname IN ('pg_proc', 'pg_class', 'pg_namespace', 'pg_event_trigger', 'pg_type')
   AND NOT (c.relname = 'pg_class' AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = m.objid) IN ('S', 'i'))
   AND pg_catalog.obj_description(m.objid, c.relname::text) IS NULL
UNION ALL
-- Triggers on the extension's tables.
SELECT pg_catalog.pg_describe_object('pg_catalog.pg_trigger'::pg_catalog.regclass, t.oid, 0)
  FROM members m JOIN pg_catalog.pg_trigger t
    ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND t.tgrelid = m.objid AND NOT t.tgisinternal
 WHERE pg_catalog.obj_description(t.oid, 'pg_trigger') IS NULL
ORDER BY 1
"""


def test_every_object_has_a_comment(db):
    with connect(db) as conn:
        missing = [row[0] for row in conn.execute(UNCOMMENTED)]
    assert missing == [], "objects without a COMMENT:\n" + "\n".join(missing)


def test_audit_logs_cannot_be_truncated(db):
    with connect(db) as conn:
        for table in ("migrate.events", "migrate.guard_log"):
            error = refused(conn, f"TRUNCATE {table}", "42501")
            assert error.diag.message_primary == f"{table} is append-only"
