//! blocking_index: index work that blocks writes (or everything) on a large
//! table: CREATE INDEX, DROP INDEX and REINDEX without CONCURRENTLY, and ADD
//! PRIMARY KEY / UNIQUE without USING INDEX (which builds the index in place).

use super::{with_concurrently, Finding, Rule};
use crate::guard::facts::{Action, Column, Constraint, ConstraintKind, Context, Statement, Table};

const OUTSIDE_TRANSACTION: &str = "It cannot run inside a transaction block: put it in a revision marked \
                                   \"-- Transactional: false\", which pg_migrate applies with migrate_plan().";

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let large = |t: &crate::guard::facts::Table| t.shared() && t.is_large(&ctx.thresholds);
    match statement {
        Statement::CreateIndex { partitions: Some(_), only: true, .. } => Vec::new(),
        Statement::CreateIndex { table, index_name, concurrent: false, unique, partitions: Some(partitions), .. } if large(table) => {
            vec![Finding::new(
                Rule::BlockingIndex,
                format!("CREATE INDEX on {} blocks writes to every partition while it builds", table.described()),
                format!(
                    "A plain CREATE INDEX on a partitioned table builds the index on each partition under a SHARE lock: \
                     INSERT, UPDATE and DELETE on {} wait. CONCURRENTLY is not allowed on a partitioned table.",
                    table.name
                ),
                through_partitions(table, index_name.as_deref(), *unique, partitions, ctx.sql.as_deref()),
            )]
        }
        Statement::CreateIndex { table, index_name, concurrent: false, unique, .. } if large(table) => {
            let name = index_name.clone().unwrap_or_else(|| "<name>".into());
            let safe = ctx.sql.as_deref().and_then(|sql| with_concurrently(sql, if *unique { 3 } else { 2 })).unwrap_or_else(|| {
                format!("CREATE {}INDEX CONCURRENTLY {name} ON {} (...)", if *unique { "UNIQUE " } else { "" }, table.name)
            });
            vec![Finding::new(
                Rule::BlockingIndex,
                format!("CREATE INDEX on {} blocks writes while it builds", table.described()),
                format!("A plain CREATE INDEX holds a SHARE lock on {} for the whole build: INSERT, UPDATE and DELETE wait.", table.name),
                format!("{};\n{OUTSIDE_TRANSACTION}", safe.trim_end_matches(';')),
            )]
        }
        Statement::DropIndex { indexes, concurrent: false } => indexes
            .iter()
            .filter(|(_, table)| large(table))
            .map(|(index, table)| {
                if table.partitioned {
                    return Finding::new(
                        Rule::BlockingIndex,
                        format!("DROP INDEX {index} locks {} and all its partitions completely", table.described()),
                        format!(
                            "DROP INDEX takes ACCESS EXCLUSIVE on {} and on every partition: it waits for every running query \
                             on them and blocks all new ones until it is done.",
                            table.name
                        ),
                        "PostgreSQL cannot drop a partitioned index CONCURRENTLY. The drop itself is catalog work, not a scan: \
                         set lock_timeout, run it when the tables are quiet, and acknowledge it."
                            .into(),
                    );
                }
                Finding::new(
                    Rule::BlockingIndex,
                    format!("DROP INDEX {index} locks {} completely", table.described()),
                    format!("DROP INDEX takes ACCESS EXCLUSIVE on {}: it waits for every running query and blocks all new ones.", table.name),
                    format!("DROP INDEX CONCURRENTLY IF EXISTS {index};\n{OUTSIDE_TRANSACTION}"),
                )
            })
            .collect(),
        Statement::Reindex { target, kind, table: Some(table), concurrent: false } if large(table) => vec![Finding::new(
            Rule::BlockingIndex,
            format!("REINDEX {kind} {target} blocks writes to {}", table.described()),
            format!("A plain REINDEX holds a SHARE lock on {} (and ACCESS EXCLUSIVE on the index) while it rebuilds.", table.name),
            format!("REINDEX {kind} CONCURRENTLY {target};\n{OUTSIDE_TRANSACTION}"),
        )],
        Statement::AlterTable { table, actions, .. } if large(table) => actions
            .iter()
            .flat_map(|action| match action {
                Action::AddConstraint(c) => vec![(c, None)],
                Action::AddColumn { column, constraints, .. } => constraints.iter().map(|c| (c, Some(column))).collect(),
                _ => Vec::new(),
            })
            .filter_map(|(c, column)| {
                // Key columns the primary key would make NOT NULL by scanning.
                let unproven: Vec<&str> = actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::SetNotNull { column, has_validated_check: false, by_primary_key: true } => Some(column.as_str()),
                        _ => None,
                    })
                    .collect();
                index_in_alter(table, c, column, if c.kind == ConstraintKind::PrimaryKey { &unproven } else { &[] })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The partitioned way: an empty index on the parent only, each partition's
/// index built concurrently and attached; the parent's index is then valid.
fn through_partitions(table: &Table, index_name: Option<&str>, unique: bool, partitions: &[String], sql: Option<&str>) -> String {
    const LISTED: usize = 20;
    let name = index_name.unwrap_or("<name>");
    let unique = if unique { "UNIQUE " } else { "" };
    // What follows the table name ("USING gist (at) WHERE ..."), from the text when known.
    let keys = sql
        .and_then(|sql| {
            let on = sql.to_ascii_uppercase().find(" ON ")?;
            let rest = sql[on + 4..].trim_start();
            let end_of_table = rest.find(|c: char| c.is_whitespace() || c == '(')?;
            Some(rest[end_of_table..].trim().trim_end_matches(';').trim_end().to_string())
        })
        .filter(|keys| !keys.is_empty())
        .unwrap_or_else(|| "(...)".into());
    let mut lines = vec![format!("CREATE {unique}INDEX {name} ON ONLY {} {keys};  -- no build: invalid until every partition has its index", table.name)];
    for partition in partitions.iter().take(LISTED) {
        let short = partition.rsplit('.').next().unwrap_or(partition).trim_matches('"');
        let own = format!("{short}_{}", name.trim_matches('"'));
        lines.push(format!("CREATE {unique}INDEX CONCURRENTLY {own} ON {partition} {keys};"));
        lines.push(format!("ALTER INDEX {name} ATTACH PARTITION {own};"));
    }
    if partitions.len() > LISTED {
        lines.push(format!("... and the same for the other {} partitions.", partitions.len() - LISTED));
    }
    lines.push(
        "A partition that is itself partitioned takes the same steps. Run the CONCURRENTLY statements outside a \
         transaction block (a \"-- Transactional: false\" revision)."
            .into(),
    );
    lines.join("\n")
}

/// ADD PRIMARY KEY / UNIQUE / EXCLUDE (also inline in ADD COLUMN) builds an
/// index inside ALTER TABLE, under its ACCESS EXCLUSIVE lock.
fn index_in_alter(table: &Table, c: &Constraint, new_column: Option<&Column>, nullable_keys: &[&str]) -> Option<Finding> {
    let what = match c.kind {
        ConstraintKind::PrimaryKey => "PRIMARY KEY",
        ConstraintKind::Unique => "UNIQUE",
        ConstraintKind::Exclusion => "EXCLUDE",
        _ => return None,
    };
    if c.using_index {
        return None;
    }
    let short = table.name.rsplit('.').next().unwrap_or(&table.name);
    let name = c.name.clone().unwrap_or_else(|| {
        let suffix = match c.kind {
            ConstraintKind::PrimaryKey => "pkey",
            ConstraintKind::Exclusion => "excl",
            _ => "key",
        };
        if c.kind == ConstraintKind::PrimaryKey { format!("{short}_{suffix}") } else { format!("{short}_{}_{suffix}", c.columns.join("_")) }
    });
    let message = match new_column {
        Some(column) => format!("ADD COLUMN {} ... {what} on {} builds its index under ACCESS EXCLUSIVE", column.name, table.described()),
        None => format!("ADD {what} on {} builds its index under ACCESS EXCLUSIVE", table.described()),
    };
    let detail = format!(
        "The index is built inside ALTER TABLE, which holds ACCESS EXCLUSIVE on {}: every read and write waits until the build is done.",
        table.name
    );
    if c.kind == ConstraintKind::Exclusion {
        return Some(Finding::new(
            Rule::BlockingIndex,
            message,
            detail,
            format!(
                "PostgreSQL has no non-blocking way to add an exclusion constraint (there is no EXCLUDE ... USING INDEX): \
                 run it in a maintenance window, with lock_timeout set, and acknowledge it."
            ),
        ));
    }
    let add_column = new_column.map_or(String::new(), |column| {
        format!("ALTER TABLE {} ADD COLUMN {} {};\n", table.name, column.name, column.type_name)
    });
    let fill = if new_column.is_some() && c.kind == ConstraintKind::PrimaryKey {
        "Fill the column (migrate_backfill) before building the index.\n".to_string()
    } else {
        // Without this, ADD PRIMARY KEY ... USING INDEX would scan for NULLs.
        nullable_keys
            .iter()
            .map(|column| format!("CALL migrate_set_not_null('{}', '{column}');\n", table.name))
            .collect()
    };
    Some(Finding::new(
        Rule::BlockingIndex,
        message,
        detail,
        format!(
            "{add_column}{fill}CREATE UNIQUE INDEX CONCURRENTLY {name} ON {} ({});\n\
             ALTER TABLE {} ADD CONSTRAINT {name} {what} USING INDEX {name};\n\
             Run CREATE INDEX CONCURRENTLY outside a transaction block (a \"-- Transactional: false\" revision).",
            table.name,
            c.columns.join(", "),
            table.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::{Constraint, Context};
    use crate::guard::rules::test_support::*;

    fn create(table: crate::guard::facts::Table, concurrent: bool) -> Statement {
        Statement::CreateIndex { table, index_name: Some("users_email_idx".into()), concurrent, unique: false, only: false, partitions: None }
    }

    #[test]
    fn create_index_on_a_large_table_gets_the_concurrent_statement() {
        let c = Context { sql: Some("CREATE INDEX users_email_idx ON users (email);".into()), ..ctx() };
        let found = check(&create(table("public.users", 2_000_000), false), &c);
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.starts_with("CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n"), "{}", found[0].hint);
        assert!(found[0].hint.contains("Transactional: false"));
    }

    #[test]
    fn quiet_when_small_new_or_concurrent() {
        assert!(check(&create(table("public.users", 50), false), &ctx()).is_empty());
        assert!(check(&create(new_table("public.users"), false), &ctx()).is_empty());
        assert!(check(&create(table("public.users", 2_000_000), true), &ctx()).is_empty());
    }

    #[test]
    fn drop_and_reindex_without_concurrently() {
        let drop = Statement::DropIndex { indexes: vec![("public.i".into(), table("public.users", 2_000_000))], concurrent: false };
        assert_eq!(check(&drop, &ctx())[0].hint.lines().next(), Some("DROP INDEX CONCURRENTLY IF EXISTS public.i;"));
        let parent = crate::guard::facts::Table { partitioned: true, ..table("public.events", 2_000_000) };
        let drop = Statement::DropIndex { indexes: vec![("public.events_at_idx".into(), parent)], concurrent: false };
        assert!(check(&drop, &ctx())[0].hint.starts_with("PostgreSQL cannot drop a partitioned index CONCURRENTLY"));
        let reindex = Statement::Reindex { target: "public.users".into(), kind: "TABLE".into(), table: Some(table("public.users", 2_000_000)), concurrent: false };
        assert_eq!(check(&reindex, &ctx())[0].hint.lines().next(), Some("REINDEX TABLE CONCURRENTLY public.users;"));
    }

    #[test]
    fn unique_constraint_needs_using_index() {
        let constraint = |using_index| Action::AddConstraint(Constraint {
            kind: ConstraintKind::Unique, name: Some("users_email_key".into()), not_valid: false, using_index,
            on_delete_given: false, columns: vec!["email".into()],
        });
        let found = check(&alter(table("public.users", 2_000_000), vec![constraint(false)]), &ctx());
        assert!(found[0].hint.starts_with("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON public.users (email);"));
        assert!(check(&alter(table("public.users", 2_000_000), vec![constraint(true)]), &ctx()).is_empty());
    }

    fn unique(kind: ConstraintKind, name: Option<&str>, columns: &[&str]) -> Constraint {
        Constraint { kind, name: name.map(Into::into), not_valid: false, using_index: false, on_delete_given: false,
                     columns: columns.iter().map(|c| c.to_string()).collect() }
    }

    #[test]
    fn unique_or_primary_key_inline_in_add_column_builds_an_index() {
        let add = |kind| Action::AddColumn {
            column: column("email", "text"), not_null: false, has_default: false,
            constraints: vec![unique(kind, None, &["email"])],
        };
        let found = check(&alter(table("public.users", 2_000_000), vec![add(ConstraintKind::Unique)]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("ADD COLUMN email ... UNIQUE on public.users"), "{}", found[0].message);
        assert_eq!(
            found[0].hint.lines().take(3).collect::<Vec<_>>(),
            ["ALTER TABLE public.users ADD COLUMN email text;",
             "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON public.users (email);",
             "ALTER TABLE public.users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;"]
        );
        let pk = Action::AddConstraint(unique(ConstraintKind::PrimaryKey, Some("users_pkey"), &["id"]));
        let not_null = Action::SetNotNull { column: "id".into(), has_validated_check: false, by_primary_key: true };
        let found = check(&alter(table("public.users", 2_000_000), vec![not_null, pk]), &ctx());
        assert!(found[0].hint.starts_with("CALL migrate_set_not_null('public.users', 'id');\nCREATE UNIQUE INDEX CONCURRENTLY users_pkey"), "{}", found[0].hint);
        let found = check(&alter(table("public.users", 2_000_000), vec![add(ConstraintKind::PrimaryKey)]), &ctx());
        assert!(found[0].hint.contains("ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pkey"), "{}", found[0].hint);
        assert!(check(&alter(table("public.users", 10), vec![add(ConstraintKind::Unique)]), &ctx()).is_empty());
        assert!(check(&alter(new_table("public.users"), vec![add(ConstraintKind::Unique)]), &ctx()).is_empty());
    }

    #[test]
    fn partitioned_tables_go_through_their_partitions() {
        let create = |only| Statement::CreateIndex {
            table: table("public.events", 2_000_000), index_name: Some("events_at_idx".into()), concurrent: false, unique: false,
            only, partitions: Some(vec!["public.events_2025".into(), "public.events_2026".into()]),
        };
        let c = Context { sql: Some("CREATE INDEX events_at_idx ON events (at);".into()), ..ctx() };
        let found = check(&create(false), &c);
        assert_eq!(
            found[0].hint.lines().take(5).collect::<Vec<_>>(),
            ["CREATE INDEX events_at_idx ON ONLY public.events (at);  -- no build: invalid until every partition has its index",
             "CREATE INDEX CONCURRENTLY events_2025_events_at_idx ON public.events_2025 (at);",
             "ALTER INDEX events_at_idx ATTACH PARTITION events_2025_events_at_idx;",
             "CREATE INDEX CONCURRENTLY events_2026_events_at_idx ON public.events_2026 (at);",
             "ALTER INDEX events_at_idx ATTACH PARTITION events_2026_events_at_idx;"]
        );
        assert!(check(&create(true), &c).is_empty(), "ON ONLY builds nothing");
        let c = Context { sql: Some("CREATE INDEX events_at_idx ON events USING brin(at) WHERE at > '2020-01-01'".into()), ..ctx() };
        assert!(check(&create(false), &c)[0].hint.starts_with("CREATE INDEX events_at_idx ON ONLY public.events USING brin(at) WHERE at > '2020-01-01';"));
    }

    #[test]
    fn exclusion_constraints_have_no_concurrent_way() {
        let exclude = Action::AddConstraint(unique(ConstraintKind::Exclusion, Some("no_overlap"), &[]));
        let found = check(&alter(table("public.bookings", 2_000_000), vec![exclude]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("ADD EXCLUDE on public.bookings"));
        assert!(found[0].hint.contains("no non-blocking way"));
    }
}
