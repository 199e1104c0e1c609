//! Reading one namespace into the autogenerate model, with the server's own
//! deparsers. Every query is pg_catalog-qualified; the search_path is set to
//! the namespace (and `also_visible`) only so that the deparsers print names
//! of that namespace unqualified, which is what makes a scratch namespace and
//! the live one print the same text. The caller scopes that setting to a
//! subtransaction (see `read_namespace`).
//!
//! Objects that belong to an extension are left out: they are the extension's.

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::autogen::model::*;
use crate::errors::OrRaise;
use crate::subxact::{self, Keep};

// Shared filter: not a member of an extension.
const NOT_EXTENSION_MEMBER: &str = "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
      WHERE e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
        AND e.objid OPERATOR(pg_catalog.=) c.oid AND e.deptype OPERATOR(pg_catalog.=) 'e')";

/// Read `namespace` with the search_path set to `path` (quoted names, comma
/// separated) for the deparsers, inside a subtransaction that is rolled back.
pub fn read_namespace(namespace: &str, path: &str) -> Schema {
    let outcome = subxact::run(Keep::Rollback, || {
        // `update` makes the queries below take a fresh snapshot (pgrx runs
        // SPI read-only until the subtransaction has an xid, and a read-only
        // query uses the caller's snapshot, which cannot see a scratch
        // namespace made since it was taken).
        Spi::connect_mut(|client| {
            client
                .update("SELECT pg_catalog.set_config('search_path', $1, true)", None, &[path.into()])
                .or_raise("set the search_path for the catalog read");
            read(client, namespace)
        })
    });
    outcome.unwrap_or_else(|failure| {
        crate::errors::raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_migrate could not read schema \"{namespace}\": {}", failure.message),
            failure.detail,
            None,
        )
    })
}

fn text(row: &pgrx::spi::SpiHeapTupleData<'_>, ordinal: usize) -> Option<String> {
    row.get::<String>(ordinal).ok().flatten()
}

fn read(client: &SpiClient<'_>, namespace: &str) -> Schema {
    let mut schema = Schema::default();
    let nsp = "(SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $1)";

    // Tables.
    let sql = format!(
        "SELECT pg_catalog.quote_ident(c.relname), pg_catalog.obj_description(c.oid, 'pg_class')
           FROM pg_catalog.pg_class c
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND c.relkind OPERATOR(pg_catalog.=) 'r'
            AND NOT c.relispartition AND {NOT_EXTENSION_MEMBER}"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read tables") {
        pgrx::check_for_interrupts!();
        let name = text(&row, 1).unwrap_or_default();
        schema.tables.insert(name.clone(), Table { name, comment: text(&row, 2), ..Default::default() });
    }

    // Columns, in attribute order.
    let sql = format!(
        "SELECT pg_catalog.quote_ident(c.relname), pg_catalog.quote_ident(a.attname),
                pg_catalog.format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) t.typcollation THEN
                  (SELECT pg_catalog.concat(pg_catalog.quote_ident(cn.nspname), '.', pg_catalog.quote_ident(co.collname))
                     FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid OPERATOR(pg_catalog.=) co.collnamespace
                    WHERE co.oid OPERATOR(pg_catalog.=) a.attcollation) END,
                a.attnotnull,
                CASE WHEN a.attgenerated OPERATOR(pg_catalog.=) '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
                a.attidentity::pg_catalog.text,
                CASE WHEN a.attgenerated OPERATOR(pg_catalog.=) 's' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
                pg_catalog.col_description(a.attrelid, a.attnum)
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
           JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND c.relkind OPERATOR(pg_catalog.=) 'r' AND NOT c.relispartition
            AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND {NOT_EXTENSION_MEMBER}
          ORDER BY c.relname, a.attnum"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read columns") {
        pgrx::check_for_interrupts!();
        let Some(table) = text(&row, 1).and_then(|t| schema.tables.get_mut(&t)) else { continue };
        let identity = match text(&row, 7).as_deref() {
            Some("a") => Some(Identity::Always),
            Some("d") => Some(Identity::ByDefault),
            _ => None,
        };
        table.columns.push(Column {
            name: text(&row, 2).unwrap_or_default(),
            type_sql: text(&row, 3).unwrap_or_default(),
            collation: text(&row, 4),
            not_null: row.get::<bool>(5).ok().flatten().unwrap_or(false),
            default: text(&row, 6),
            identity,
            generated: text(&row, 8),
            comment: text(&row, 9),
        });
    }

    // Constraints (NOT NULL is a column property in PostgreSQL 15).
    let sql = format!(
        "SELECT pg_catalog.quote_ident(c.relname), pg_catalog.quote_ident(k.conname), k.contype::pg_catalog.text,
                pg_catalog.pg_get_constraintdef(k.oid),
                CASE WHEN k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::pg_catalog.\"char\"[]) THEN pg_catalog.pg_get_indexdef(k.conindid) END,
                pg_catalog.obj_description(k.oid, 'pg_constraint'), pg_catalog.quote_ident(n.nspname)
           FROM pg_catalog.pg_constraint k
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) k.conrelid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND c.relkind OPERATOR(pg_catalog.=) 'r' AND NOT c.relispartition
            AND k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u', 'c', 'x', 'f']::pg_catalog.\"char\"[])
            AND {NOT_EXTENSION_MEMBER}"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read constraints") {
        pgrx::check_for_interrupts!();
        let table_name = text(&row, 1).unwrap_or_default();
        let Some(kind) = text(&row, 3).as_deref().and_then(ConstraintKind::from_contype) else { continue };
        let qualified = format!("{}.{}", text(&row, 7).unwrap_or_default(), table_name);
        let index_tail = text(&row, 5).map(|def| index_tail(&def, &qualified, &table_name));
        let Some(table) = schema.tables.get_mut(&table_name) else { continue };
        let name = text(&row, 2).unwrap_or_default();
        table.constraints.insert(
            name.clone(),
            Constraint { name, kind, definition: text(&row, 4).unwrap_or_default(), index_tail, comment: text(&row, 6) },
        );
    }

    // Indexes that back no constraint of their table.
    let sql = format!(
        "SELECT pg_catalog.quote_ident(c.relname), pg_catalog.quote_ident(i.relname), x.indisunique,
                pg_catalog.pg_get_indexdef(x.indexrelid), pg_catalog.obj_description(i.oid, 'pg_class'),
                pg_catalog.quote_ident(n.nspname)
           FROM pg_catalog.pg_index x
           JOIN pg_catalog.pg_class i ON i.oid OPERATOR(pg_catalog.=) x.indexrelid
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.indrelid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND c.relkind OPERATOR(pg_catalog.=) 'r' AND NOT c.relispartition
            AND {NOT_EXTENSION_MEMBER}
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                             WHERE k.conindid OPERATOR(pg_catalog.=) x.indexrelid AND k.conrelid OPERATOR(pg_catalog.=) x.indrelid
                               AND k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u', 'x']::pg_catalog.\"char\"[]))"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read indexes") {
        pgrx::check_for_interrupts!();
        let table_name = text(&row, 1).unwrap_or_default();
        let qualified = format!("{}.{}", text(&row, 6).unwrap_or_default(), table_name);
        let tail = index_tail(&text(&row, 4).unwrap_or_default(), &qualified, &table_name);
        let Some(table) = schema.tables.get_mut(&table_name) else { continue };
        let name = text(&row, 2).unwrap_or_default();
        table.indexes.insert(
            name.clone(),
            Index { name, unique: row.get::<bool>(3).ok().flatten().unwrap_or(false), tail, comment: text(&row, 5) },
        );
    }

    // Enum types and their labels.
    let sql = format!(
        "SELECT pg_catalog.quote_ident(t.typname),
                ARRAY(SELECT e.enumlabel::pg_catalog.text FROM pg_catalog.pg_enum e
                       WHERE e.enumtypid OPERATOR(pg_catalog.=) t.oid ORDER BY e.enumsortorder),
                pg_catalog.obj_description(t.oid, 'pg_type')
           FROM pg_catalog.pg_type t
          WHERE t.typnamespace OPERATOR(pg_catalog.=) {nsp} AND t.typtype OPERATOR(pg_catalog.=) 'e'
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                             WHERE e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                               AND e.objid OPERATOR(pg_catalog.=) t.oid AND e.deptype OPERATOR(pg_catalog.=) 'e')"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read enum types") {
        pgrx::check_for_interrupts!();
        let name = text(&row, 1).unwrap_or_default();
        let values = row.get::<Vec<String>>(2).ok().flatten().unwrap_or_default();
        schema.enums.insert(name.clone(), EnumType { name, values, comment: text(&row, 3) });
    }

    // Sequences, except an identity column's own.
    let sql = format!(
        "SELECT pg_catalog.quote_ident(c.relname), pg_catalog.format_type(s.seqtypid, NULL),
                s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                pg_catalog.quote_ident(o.relname), pg_catalog.quote_ident(a.attname),
                pg_catalog.obj_description(c.oid, 'pg_class')
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_sequence s ON s.seqrelid OPERATOR(pg_catalog.=) c.oid
           LEFT JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                AND d.deptype OPERATOR(pg_catalog.=) 'a'
           LEFT JOIN pg_catalog.pg_class o ON o.oid OPERATOR(pg_catalog.=) d.refobjid AND o.relnamespace OPERATOR(pg_catalog.=) c.relnamespace
           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) o.oid AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND c.relkind OPERATOR(pg_catalog.=) 'S' AND {NOT_EXTENSION_MEMBER}
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend i
                             WHERE i.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                               AND i.objid OPERATOR(pg_catalog.=) c.oid AND i.deptype OPERATOR(pg_catalog.=) 'i')"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read sequences") {
        pgrx::check_for_interrupts!();
        let name = text(&row, 1).unwrap_or_default();
        let number = |i: usize| row.get::<i64>(i).ok().flatten().unwrap_or_default();
        let owned_by = match (text(&row, 9), text(&row, 10)) {
            (Some(t), Some(c)) => Some((t, c)),
            _ => None,
        };
        schema.sequences.insert(
            name.clone(),
            Sequence {
                name,
                data_type: text(&row, 2).unwrap_or_default(),
                start: number(3),
                increment: number(4),
                min: number(5),
                max: number(6),
                cache: number(7),
                cycle: row.get::<bool>(8).ok().flatten().unwrap_or(false),
                owned_by,
                comment: text(&row, 11),
            },
        );
    }

    // Views and materialized views, with what they read in this namespace.
    let sql = format!(
        "SELECT pg_catalog.quote_ident(c.relname), c.relkind OPERATOR(pg_catalog.=) 'm', pg_catalog.pg_get_viewdef(c.oid),
                pg_catalog.obj_description(c.oid, 'pg_class'),
                ARRAY(SELECT DISTINCT pg_catalog.quote_ident(r.relname)
                        FROM pg_catalog.pg_rewrite w
                        JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                             AND d.objid OPERATOR(pg_catalog.=) w.oid
                             AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                        JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) d.refobjid
                       WHERE w.ev_class OPERATOR(pg_catalog.=) c.oid AND r.oid OPERATOR(pg_catalog.<>) c.oid
                         AND r.relnamespace OPERATOR(pg_catalog.=) c.relnamespace)
           FROM pg_catalog.pg_class c
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp}
            AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['v', 'm']::pg_catalog.\"char\"[]) AND {NOT_EXTENSION_MEMBER}"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read views") {
        pgrx::check_for_interrupts!();
        let name = text(&row, 1).unwrap_or_default();
        let definition = text(&row, 3).unwrap_or_default();
        let definition = definition.trim_end().trim_end_matches(';').to_string();
        schema.views.insert(
            name.clone(),
            View {
                name,
                materialized: row.get::<bool>(2).ok().flatten().unwrap_or(false),
                definition,
                depends_on: row.get::<Vec<String>>(5).ok().flatten().unwrap_or_default(),
                comment: text(&row, 4),
            },
        );
    }

    // Everything else in the namespace: listed, by kind, so a difference in
    // it is reported instead of passing unnoticed.
    let sql = format!(
        "SELECT pg_catalog.concat(CASE WHEN p.prokind OPERATOR(pg_catalog.=) 'p' THEN 'procedure ' WHEN p.prokind OPERATOR(pg_catalog.=) 'a' THEN 'aggregate ' ELSE 'function ' END,
                                  pg_catalog.quote_ident(p.proname), '(', pg_catalog.pg_get_function_identity_arguments(p.oid), ')'),
                'functions and procedures'
           FROM pg_catalog.pg_proc p
          WHERE p.pronamespace OPERATOR(pg_catalog.=) {nsp}
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                             AND e.objid OPERATOR(pg_catalog.=) p.oid AND e.deptype OPERATOR(pg_catalog.=) 'e')
         UNION ALL
         SELECT pg_catalog.concat('trigger ', pg_catalog.quote_ident(g.tgname), ' on ', pg_catalog.quote_ident(c.relname)), 'triggers'
           FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) g.tgrelid
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND NOT g.tgisinternal
         UNION ALL
         SELECT pg_catalog.concat('policy ', pg_catalog.quote_ident(y.polname), ' on ', pg_catalog.quote_ident(c.relname)), 'row security policies'
           FROM pg_catalog.pg_policy y JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) y.polrelid
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp}
         UNION ALL
         SELECT pg_catalog.concat('rule ', pg_catalog.quote_ident(w.rulename), ' on ', pg_catalog.quote_ident(c.relname)), 'rules'
           FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) w.ev_class
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND w.rulename OPERATOR(pg_catalog.<>) '_RETURN'
         UNION ALL
         SELECT pg_catalog.concat(CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN 'domain ' WHEN t.typtype OPERATOR(pg_catalog.=) 'r' THEN 'range type ' ELSE 'composite type ' END,
                                  pg_catalog.quote_ident(t.typname)), 'domains, composite and range types'
           FROM pg_catalog.pg_type t
          WHERE t.typnamespace OPERATOR(pg_catalog.=) {nsp}
            AND (t.typtype OPERATOR(pg_catalog.=) ANY (ARRAY['d', 'r']::pg_catalog.\"char\"[])
                 OR (t.typtype OPERATOR(pg_catalog.=) 'c' AND (SELECT r.relkind FROM pg_catalog.pg_class r WHERE r.oid OPERATOR(pg_catalog.=) t.typrelid) OPERATOR(pg_catalog.=) 'c'))
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                             AND e.objid OPERATOR(pg_catalog.=) t.oid AND e.deptype OPERATOR(pg_catalog.=) 'e')
         UNION ALL
         SELECT pg_catalog.concat(CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p' THEN 'partitioned table '
                                       WHEN c.relkind OPERATOR(pg_catalog.=) 'f' THEN 'foreign table '
                                       WHEN c.relkind OPERATOR(pg_catalog.=) 'i' THEN 'index on a materialized view '
                                       ELSE 'partition ' END, pg_catalog.quote_ident(c.relname)),
                'partitioned and foreign tables, partitions, materialized view indexes'
           FROM pg_catalog.pg_class c
          WHERE c.relnamespace OPERATOR(pg_catalog.=) {nsp} AND {NOT_EXTENSION_MEMBER}
            AND (c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'f']::pg_catalog.\"char\"[])
                 OR (c.relkind OPERATOR(pg_catalog.=) 'r' AND c.relispartition)
                 OR (c.relkind OPERATOR(pg_catalog.=) 'i' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class m ON m.oid OPERATOR(pg_catalog.=) x.indrelid
                                                   WHERE x.indexrelid OPERATOR(pg_catalog.=) c.oid AND m.relkind OPERATOR(pg_catalog.=) 'm')))"
    );
    for row in client.select(&sql, None, &[namespace.into()]).or_raise("read the objects that are not compared") {
        pgrx::check_for_interrupts!();
        if let (Some(label), Some(kind)) = (text(&row, 1), text(&row, 2)) {
            schema.uncompared.insert(label, kind);
        }
    }
    schema
}

/// What follows "ON <table> " in pg_get_indexdef's output (the table is
/// printed qualified or not, depending on its visibility).
fn index_tail(definition: &str, qualified: &str, bare: &str) -> String {
    for table in [qualified, bare] {
        for only in ["", "ONLY "] {
            let marker = format!(" ON {only}{table} ");
            if let Some(at) = definition.find(&marker) {
                return definition[at + marker.len()..].to_string();
            }
        }
    }
    definition.to_string()
}
