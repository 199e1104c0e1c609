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
        Statement::CreateIndex { table, index_name, concurrent: false, unique } if large(table) => {
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
            .filter_map(|(c, column)| index_in_alter(table, c, column))
            .collect(),
        _ => Vec::new(),
    }
}

/// ADD PRIMARY KEY / UNIQUE / EXCLUDE (also inline in ADD COLUMN) builds an
/// index inside ALTER TABLE, under its ACCESS EXCLUSIVE lock.
fn index_in_alter(table: &Table, c: &Constraint, new_column: Option<&Column>) -> Option<Finding> {
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
        "Fill the column (migrate_backfill) before building the index.\n"
    } else {
        ""
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
        Statement::CreateIndex { table, index_name: Some("users_email_idx".into()), concurrent, unique: false }
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
        let found = check(&alter(table("public.users", 2_000_000), vec![add(ConstraintKind::PrimaryKey)]), &ctx());
        assert!(found[0].hint.contains("ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pkey"), "{}", found[0].hint);
        assert!(check(&alter(table("public.users", 10), vec![add(ConstraintKind::Unique)]), &ctx()).is_empty());
        assert!(check(&alter(new_table("public.users"), vec![add(ConstraintKind::Unique)]), &ctx()).is_empty());
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
