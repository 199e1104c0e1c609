//! table_rewrite: PostgreSQL is about to rewrite a large table (the
//! table_rewrite event is the authoritative signal, so binary-coercible type
//! changes such as varchar(n) to text never get here). Check mode builds the
//! same Statement::Rewrite from guard/static_rewrite.rs, which takes
//! PostgreSQL's own decision on the catalog.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

// AT_REWRITE_* bits from PostgreSQL's event_trigger.h.
const ALTER_PERSISTENCE: u32 = 0x01;
const DEFAULT_VAL: u32 = 0x02;
const COLUMN_REWRITE: u32 = 0x04;
const ACCESS_METHOD: u32 = 0x08;

/// Each reason PostgreSQL gives: what it means, and the way around it.
const REASONS: [(u32, &str, &str); 4] = [
    (
        COLUMN_REWRITE,
        "a column changes type (or storage)",
        "Change a type without a rewrite in steps: add a new column, fill it with migrate_backfill, move reads and writes to it, then drop the old one.",
    ),
    (
        DEFAULT_VAL,
        "a new column gets a volatile default",
        "Add the column without a default, then SET DEFAULT (no rewrite), then fill existing rows with migrate_backfill.",
    ),
    (
        ALTER_PERSISTENCE,
        "the table changes between LOGGED and UNLOGGED",
        // sql-lint: allow(a hint, not SQL)
        "SET LOGGED/UNLOGGED always rewrites: do it in a maintenance window.",
    ),
    (ACCESS_METHOD, "the table changes access method", "Changing the access method always rewrites: do it in a maintenance window."),
];

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Statement::Rewrite { table, reason } = statement else { return Vec::new() };
    if !table.shared() || !table.is_large(&ctx.thresholds) {
        return Vec::new();
    }
    let (mut why, hints): (Vec<&str>, Vec<&str>) =
        REASONS.iter().filter(|(bit, ..)| reason & bit != 0).map(|(_, why, hint)| (*why, *hint)).unzip();
    if why.is_empty() {
        why.push("ALTER TABLE needs it");
    }
    vec![Finding::new(
        Rule::TableRewrite,
        format!("this rewrites {}: {}", table.described(), why.join(", ")),
        format!("The whole table is copied under ACCESS EXCLUSIVE: no reads or writes of {} until it finishes.", table.name),
        hints.join("\n"),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn names_the_reason() {
        let found = check(&Statement::Rewrite { table: table("public.users", 2_000_000), reason: COLUMN_REWRITE }, &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("a column changes type"));
        assert!(found[0].hint.contains("migrate_backfill"));
        let found = check(&Statement::Rewrite { table: table("public.users", 2_000_000), reason: DEFAULT_VAL }, &ctx());
        assert!(found[0].message.contains("volatile default"));
    }

    #[test]
    fn quiet_for_small_or_new_tables() {
        assert!(check(&Statement::Rewrite { table: table("public.users", 10), reason: COLUMN_REWRITE }, &ctx()).is_empty());
        assert!(check(&Statement::Rewrite { table: new_table("public.users"), reason: COLUMN_REWRITE }, &ctx()).is_empty());
    }
}
