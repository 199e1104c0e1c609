//! table_copy: commands that copy a whole table (or index) under ACCESS
//! EXCLUSIVE and fire no table_rewrite event: VACUUM FULL, CLUSTER, ALTER
//! TABLE / MATERIALIZED VIEW / INDEX ... SET TABLESPACE, and ALTER ... ALL IN
//! TABLESPACE. VACUUM and CLUSTER fire no event trigger at all: they are checked
//! live by the ProcessUtility hook (library preloaded).

use super::{Finding, Rule};
use crate::guard::facts::{Action, Context, CopyCommand, Statement, Table};

fn waits(table: &Table) -> String {
    format!("every read and write of {} waits until it finishes", table.name)
}

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let large = |t: &Table| t.shared() && t.is_large(&ctx.thresholds);
    match statement {
        Statement::TableCopy { copies } => copies.iter().filter(|(t, _)| large(t)).map(|(t, command)| copy(t, command)).collect(),
        Statement::AlterTable { table, actions, .. } if large(table) => actions
            .iter()
            .filter_map(|action| match action {
                Action::SetTablespace { tablespace } => Some(Finding::new(
                    Rule::TableCopy,
                    format!("SET TABLESPACE copies {} under ACCESS EXCLUSIVE", table.described()),
                    format!("ALTER TABLE ... SET TABLESPACE copies the table's files to {tablespace} holding ACCESS EXCLUSIVE: {}.", waits(table)),
                    format!(
                        "PostgreSQL has no non-blocking way to move a table: run ALTER TABLE {} SET TABLESPACE {tablespace}; \
                         in a maintenance window and acknowledge it, or move it online with pg_repack --tablespace (outside core).",
                        table.name
                    ),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn copy(table: &Table, command: &CopyCommand) -> Finding {
    match command {
        CopyCommand::VacuumFull => Finding::new(
            Rule::TableCopy,
            format!("VACUUM FULL rewrites {} under ACCESS EXCLUSIVE", table.described()),
            format!("VACUUM FULL copies the whole table into new files holding ACCESS EXCLUSIVE: {}.", waits(table)),
            format!(
                "VACUUM {};  (plain VACUUM blocks no reads or writes and makes the space reusable)\n\
                 To give the space back to the operating system online, use pg_repack or pg_squeeze (outside core); \
                 PostgreSQL has no non-blocking VACUUM FULL.",
                table.name
            ),
        ),
        CopyCommand::Cluster { index, .. } => Finding::new(
            Rule::TableCopy,
            format!("CLUSTER rewrites {} under ACCESS EXCLUSIVE", table.described()),
            format!("CLUSTER copies the whole table in index order and rebuilds its indexes holding ACCESS EXCLUSIVE: {}.", waits(table)),
            format!(
                "PostgreSQL has no non-blocking CLUSTER: run CLUSTER {}{} in a maintenance window and acknowledge it, \
                 or reorder online with pg_repack --order-by (outside core).",
                table.name,
                index.as_ref().map_or(String::new(), |i| format!(" USING {i}"))
            ),
        ),
        CopyCommand::MoveAll { from, to, kind } => Finding::new(
            Rule::TableCopy,
            format!("ALTER {kind} ALL IN TABLESPACE {from} SET TABLESPACE {to} copies every one of them under ACCESS EXCLUSIVE, the largest being {}", table.described()),
            format!(
                "PostgreSQL locks every relation it moves before it copies the first, and holds the locks until the last is copied: \
                 {}, and so does every query on the others.",
                waits(table)
            ),
            if kind == "INDEX" {
                format!(
                    "Rebuild each index in {to} without blocking: CREATE INDEX CONCURRENTLY <name>_new ON ... TABLESPACE {to}; \
                     DROP INDEX CONCURRENTLY <name>; ALTER INDEX <name>_new RENAME TO <name>;"
                )
            } else {
                format!(
                    "There is no non-blocking way to move a table: move them one at a time (ALTER {kind} <name> SET TABLESPACE {to};) \
                     in a maintenance window and acknowledge it, or use pg_repack --tablespace (outside core)."
                )
            },
        ),
        CopyCommand::IndexSetTablespace { index, tablespace, definition } => Finding::new(
            Rule::TableCopy,
            format!("ALTER INDEX {index} SET TABLESPACE copies the index under ACCESS EXCLUSIVE, blocking {}", table.described()),
            format!(
                "The index is copied holding ACCESS EXCLUSIVE on it, and every query on {} has to lock its indexes: {}.",
                table.name,
                waits(table)
            ),
            match definition.as_deref().and_then(|d| rebuilt_elsewhere(index, d, tablespace)) {
                Some(statements) => statements,
                None => format!(
                    "{index} belongs to a constraint, so it cannot be swapped for a concurrently built copy without changing the \
                     constraint: move it in a maintenance window and acknowledge it."
                ),
            },
        ),
    }
}

/// `CREATE INDEX CONCURRENTLY` of a copy in the new tablespace, then the swap.
fn rebuilt_elsewhere(index: &str, definition: &str, tablespace: &str) -> Option<String> {
    let on = definition.find(" ON ")?;
    let head = &definition[..on];
    let unique = if head.starts_with("CREATE UNIQUE INDEX") { "UNIQUE " } else { "" };
    let short = index.rsplit('.').next().unwrap_or(index).trim_matches('"');
    let schema = index.rsplit_once('.').map_or(String::new(), |(s, _)| format!("{s}."));
    let rest = &definition[on..];
    // A partial index's WHERE comes after the TABLESPACE clause.
    let (columns, predicate) = match rest.find(" WHERE ") {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    Some(format!(
        "CREATE {unique}INDEX CONCURRENTLY {short}_new{columns} TABLESPACE {tablespace}{predicate};\n\
         DROP INDEX CONCURRENTLY {index};\n\
         ALTER INDEX {schema}{short}_new RENAME TO {short};\n\
         Run the CONCURRENTLY statements outside a transaction block (a \"-- Transactional: false\" revision)."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    fn copies(table: Table, command: CopyCommand) -> Statement {
        Statement::TableCopy { copies: vec![(table, command)] }
    }

    #[test]
    fn vacuum_full_and_cluster_on_large_tables() {
        let found = check(&copies(table("public.events", 2_000_000), CopyCommand::VacuumFull), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("VACUUM FULL rewrites public.events"));
        assert!(found[0].hint.starts_with("VACUUM public.events;"));
        let found = check(&copies(table("public.events", 2_000_000), CopyCommand::Cluster { index: Some("events_pkey".into()), bare: false }), &ctx());
        assert!(found[0].hint.contains("CLUSTER public.events USING events_pkey"));
    }

    #[test]
    fn quiet_for_small_new_or_temporary_tables() {
        assert!(check(&copies(table("public.events", 10), CopyCommand::VacuumFull), &ctx()).is_empty());
        assert!(check(&copies(new_table("public.events"), CopyCommand::VacuumFull), &ctx()).is_empty());
        let temp = Table { temporary: true, ..table("pg_temp.events", 2_000_000) };
        assert!(check(&copies(temp, CopyCommand::Cluster { index: None, bare: true }), &ctx()).is_empty());
    }

    #[test]
    fn set_tablespace_of_a_table_and_of_an_index() {
        let found = check(&alter(table("public.events", 2_000_000), vec![Action::SetTablespace { tablespace: "archive".into() }]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.contains("ALTER TABLE public.events SET TABLESPACE archive;"));
        let index = CopyCommand::IndexSetTablespace {
            index: "public.events_at_idx".into(),
            tablespace: "fast".into(),
            definition: Some("CREATE INDEX events_at_idx ON public.events USING btree (at) WHERE (at IS NOT NULL)".into()),
        };
        let found = check(&copies(table("public.events", 2_000_000), index), &ctx());
        assert_eq!(
            found[0].hint.lines().take(3).collect::<Vec<_>>(),
            ["CREATE INDEX CONCURRENTLY events_at_idx_new ON public.events USING btree (at) TABLESPACE fast WHERE (at IS NOT NULL);",
             "DROP INDEX CONCURRENTLY public.events_at_idx;",
             "ALTER INDEX public.events_at_idx_new RENAME TO events_at_idx;"]
        );
        let constraint_index = CopyCommand::IndexSetTablespace { index: "public.events_pkey".into(), tablespace: "fast".into(), definition: None };
        assert!(check(&copies(table("public.events", 2_000_000), constraint_index), &ctx())[0].hint.contains("maintenance window"));
    }

    #[test]
    fn move_all_names_the_largest() {
        let command = CopyCommand::MoveAll { from: "pg_default".into(), to: "archive".into(), kind: "TABLE".into() };
        let found = check(&copies(table("public.events", 2_000_000), command), &ctx());
        assert!(found[0].message.contains("the largest being public.events"), "{}", found[0].message);
    }
}
