"""A description of every object of the pg_migrate extension, one line per fact,
so that two databases can be compared with a readable diff.

Objects are the extension's members (pg_depend deptype 'e'), named by
pg_describe_object, never by oid. For each: its definition as PostgreSQL's own
deparsers give it, its privileges and its comment; for tables, every column in
order, constraint, index, trigger, policy and column privilege; and which
tables pg_dump keeps (pg_extension_config_dump).
"""

OBJECT_FACTS = r"""
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_catalog.pg_extension WHERE extname = 'pg_migrate'),
members AS (
    SELECT d.classid, d.objid, d.objsubid,
           pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS name
      FROM pg_catalog.pg_depend d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT m.name, 'member' AS fact, '' AS value FROM members m
UNION ALL
SELECT m.name, 'comment', pg_catalog.obj_description(m.objid, c.relname::text)
  FROM members m JOIN pg_catalog.pg_class c ON c.oid = m.classid
 WHERE pg_catalog.obj_description(m.objid, c.relname::text) IS NOT NULL
UNION ALL
-- Functions and procedures: the whole CREATE statement, privileges, owner-independent.
SELECT m.name, 'definition', pg_catalog.pg_get_functiondef(p.oid)
  FROM members m JOIN pg_catalog.pg_proc p ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = m.objid
UNION ALL
SELECT m.name, 'privileges', pg_catalog.array_to_string(p.proacl, ' ')
  FROM members m JOIN pg_catalog.pg_proc p ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = m.objid
UNION ALL
-- Relations.
SELECT m.name, 'kind', r.relkind::text || ' persistence ' || r.relpersistence::text
       || ' options ' || coalesce(pg_catalog.array_to_string(r.reloptions, ','), '')
  FROM members m JOIN pg_catalog.pg_class r ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.oid = m.objid
UNION ALL
SELECT m.name, 'privileges', pg_catalog.array_to_string(r.relacl, ' ')
  FROM members m JOIN pg_catalog.pg_class r ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.oid = m.objid
UNION ALL
SELECT m.name, 'view', pg_catalog.pg_get_viewdef(r.oid)
  FROM members m JOIN pg_catalog.pg_class r ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.oid = m.objid
 WHERE r.relkind IN ('v', 'm')
UNION ALL
-- Columns by position among the live ones: a column dropped by an update
-- leaves a gap in attnum that a fresh install does not have.
SELECT m.name, pg_catalog.format('column %s', pg_catalog.lpad(
           (pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum))::text, 3, '0')),
       pg_catalog.concat_ws(' ', pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod),
                 CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                 'DEFAULT ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid),
                 CASE a.attidentity WHEN 'a' THEN 'IDENTITY ALWAYS' WHEN 'd' THEN 'IDENTITY BY DEFAULT' END,
                 CASE a.attgenerated WHEN 's' THEN 'GENERATED' END,
                 'COLLATE ' || NULLIF(a.attcollation, 0)::pg_catalog.regcollation::text,
                 'ACL ' || pg_catalog.array_to_string(a.attacl, ' '),
                 'COMMENT ' || pg_catalog.col_description(a.attrelid, a.attnum))
  FROM members m
  JOIN pg_catalog.pg_attribute a ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND a.attrelid = m.objid
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT m.name, 'constraint ' || co.conname, pg_catalog.pg_get_constraintdef(co.oid)
  FROM members m JOIN pg_catalog.pg_constraint co
    ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND co.conrelid = m.objid
UNION ALL
SELECT m.name, 'index ' || i.indexrelid::pg_catalog.regclass::text, pg_catalog.pg_get_indexdef(i.indexrelid)
  FROM members m JOIN pg_catalog.pg_index i
    ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.indrelid = m.objid
UNION ALL
SELECT m.name, 'trigger ' || t.tgname, pg_catalog.pg_get_triggerdef(t.oid)
  FROM members m JOIN pg_catalog.pg_trigger t
    ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND t.tgrelid = m.objid AND NOT t.tgisinternal
UNION ALL
SELECT m.name, 'policy ' || po.polname, pg_catalog.pg_get_expr(po.polqual, po.polrelid)
  FROM members m JOIN pg_catalog.pg_policy po
    ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND po.polrelid = m.objid
UNION ALL
SELECT m.name, 'kept by pg_dump', coalesce(e.extcondition[pg_catalog.array_position(e.extconfig, m.objid)], '')
  FROM members m, ext e
 WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objid = ANY (e.extconfig)
UNION ALL
-- Schemas, types, event triggers.
SELECT m.name, 'privileges', pg_catalog.array_to_string(n.nspacl, ' ')
  FROM members m JOIN pg_catalog.pg_namespace n
    ON m.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND n.oid = m.objid
UNION ALL
SELECT m.name, 'type', t.typtype::text || ' ' || coalesce(
           (SELECT pg_catalog.string_agg(e.enumlabel::text, ',' ORDER BY e.enumsortorder)
              FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '')
  FROM members m JOIN pg_catalog.pg_type t ON m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t.oid = m.objid
UNION ALL
SELECT m.name, 'event trigger', pg_catalog.concat_ws(' ', et.evtevent::text, et.evtenabled::text,
           et.evtfoid::pg_catalog.regprocedure::text, pg_catalog.array_to_string(et.evttags, ','))
  FROM members m JOIN pg_catalog.pg_event_trigger et
    ON m.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass AND et.oid = m.objid
"""


def describe(conn):
    """Every fact about the extension's objects, as sorted lines."""
    rows = conn.execute(OBJECT_FACTS).fetchall()
    return sorted(f"{name} :: {fact} = {value}" for name, fact, value in rows)


def diff(expected, actual, expected_name="fresh install", actual_name="updated"):
    """A unified diff of two descriptions; empty when they are equal."""
    import difflib

    return "\n".join(difflib.unified_diff(expected, actual, expected_name, actual_name, lineterm="", n=0))
