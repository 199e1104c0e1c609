//! blocking_index: index work that blocks writes (or everything) on a large
//! table: CREATE INDEX, DROP INDEX and REINDEX without CONCURRENTLY, and ADD
//! PRIMARY KEY / UNIQUE without USING INDEX (which builds the index in place).

use super::{with_concurrently, Finding, Rule};
use crate::guard::facts::{Action, ConstraintKind, Context, Statement};

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
            .filter_map(|action| match action {
                Action::AddConstraint(c)
                    if matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique) && !c.using_index =>
                {
                    let short = table.name.rsplit('.').next().unwrap_or(&table.name);
                    let what = if c.kind == ConstraintKind::PrimaryKey { "PRIMARY KEY" } else { "UNIQUE" };
                    let name = c.name.clone().unwrap_or_else(|| {
                        format!("{short}_{}_{}", c.columns.join("_"), if c.kind == ConstraintKind::PrimaryKey { "pkey" } else { "key" })
                    });
                    Some(Finding::new(
                        Rule::BlockingIndex,
                        format!("ADD {what} on {} builds its index under ACCESS EXCLUSIVE", table.described()),
                        format!("The unique index is built inside ALTER TABLE, which blocks all reads and writes of {} until it is done.", table.name),
                        format!(
                            "CREATE UNIQUE INDEX CONCURRENTLY {name} ON {} ({});\n\
                             ALTER TABLE {} ADD CONSTRAINT {name} {what} USING INDEX {name};\n\
                             Run the first statement outside a transaction block (a \"-- Transactional: false\" revision).",
                            table.name,
                            c.columns.join(", "),
                            table.name
                        ),
                    ))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
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
}
