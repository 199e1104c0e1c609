//! attach_partition: ATTACH PARTITION scans the table being attached, under
//! ACCESS EXCLUSIVE on it, to prove every row fits the partition bound, unless
//! a validated CHECK constraint already proves it. ATTACH and CREATE TABLE ...
//! PARTITION OF also scan the parent's DEFAULT partition, under ACCESS
//! EXCLUSIVE, for rows that belong to the new partition.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Context, DefaultPartition, Statement, Table};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let large = |t: &Table| t.shared() && t.is_large(&ctx.thresholds);
    let default_scan = |default: &Option<DefaultPartition>, what: &str| {
        default
            .as_ref()
            .filter(|d| !d.has_validated_check && large(&d.table))
            .map(|d| scans_default(&d.table, what))
    };
    match statement {
        Statement::CreateTable { name, default_partition, .. } => {
            default_scan(default_partition, &format!("CREATE TABLE {name} ... PARTITION OF")).into_iter().collect()
        }
        Statement::AlterTable { table: parent, actions, .. } => actions
            .iter()
            .flat_map(|action| match action {
                Action::AttachPartition { partition, has_validated_check, default_partition } => {
                    let mut found = Vec::new();
                    if !has_validated_check && large(partition) {
                        found.push(scans_partition(parent, partition));
                    }
                    found.extend(default_scan(default_partition, "ATTACH PARTITION"));
                    found
                }
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn scans_partition(parent: &Table, partition: &Table) -> Finding {
    let short = partition.name.rsplit('.').next().unwrap_or(&partition.name).trim_matches('"');
    let check = format!("{short}_bound");
    Finding::new(
        Rule::AttachPartition,
        format!("ATTACH PARTITION scans {} under ACCESS EXCLUSIVE", partition.described()),
        format!(
            "To prove every row fits the partition bound, PostgreSQL reads the whole table holding ACCESS EXCLUSIVE on {}: \
             every read and write of it waits. A validated CHECK constraint that implies the bound skips the scan.",
            partition.name
        ),
        format!(
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            "ALTER TABLE {p} ADD CONSTRAINT {check} CHECK (<the partition bound as a condition on the key>) NOT VALID;\n\
             ALTER TABLE {p} VALIDATE CONSTRAINT {check};  -- reads and writes go on\n\
             ALTER TABLE {parent} ATTACH PARTITION {p} FOR VALUES ...;  -- no scan now\n\
             ALTER TABLE {p} DROP CONSTRAINT {check};",
            p = partition.name,
            parent = parent.name
        ),
    )
}

fn scans_default(default: &Table, what: &str) -> Finding {
    let short = default.name.rsplit('.').next().unwrap_or(&default.name).trim_matches('"');
    let check = format!("{short}_excludes_new");
    Finding::new(
        Rule::AttachPartition,
        format!("{what} scans the default partition {} under ACCESS EXCLUSIVE", default.described()),
        format!(
            "PostgreSQL reads the whole default partition, holding ACCESS EXCLUSIVE on {}, to make sure none of its rows \
             belongs to the new partition: every read and write of it waits. A validated CHECK constraint on it that \
             rules out the new bound skips the scan.",
            default.name
        ),
        format!(
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            "ALTER TABLE {d} ADD CONSTRAINT {check} CHECK (NOT (<the new partition's bound as a condition on the key>)) NOT VALID;\n\
             ALTER TABLE {d} VALIDATE CONSTRAINT {check};  -- reads and writes go on\n\
             then the same {what} (no scan now); the constraint may stay, or be dropped after.",
            d = default.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn attaching_a_large_table_without_a_check() {
        let attach = |partition, has_validated_check| {
            alter(table("public.events", 0), vec![Action::AttachPartition { partition, has_validated_check, default_partition: None }])
        };
        let found = check(&attach(table("public.events_2026", 2_000_000), false), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.starts_with("ALTER TABLE public.events_2026 ADD CONSTRAINT events_2026_bound CHECK"));
        assert!(found[0].hint.contains("ALTER TABLE public.events ATTACH PARTITION public.events_2026"));
        assert!(check(&attach(table("public.events_2026", 2_000_000), true), &ctx()).is_empty());
        assert!(check(&attach(table("public.events_2026", 10), false), &ctx()).is_empty());
        assert!(check(&attach(new_table("public.events_2026"), false), &ctx()).is_empty());
    }

    #[test]
    fn a_large_default_partition_is_scanned_for_the_new_bound() {
        let default = |checked| Some(DefaultPartition { table: table("public.events_other", 2_000_000), has_validated_check: checked });
        let create = |d| Statement::CreateTable {
            name: "public.events_2027".into(), columns: vec![], constraints: vec![], primary_key_types: vec![], default_partition: d,
        };
        let found = check(&create(default(false)), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("CREATE TABLE public.events_2027 ... PARTITION OF scans the default partition public.events_other"));
        assert!(found[0].hint.starts_with("ALTER TABLE public.events_other ADD CONSTRAINT events_other_excludes_new CHECK (NOT ("));
        assert!(check(&create(default(true)), &ctx()).is_empty());
        assert!(check(&create(None), &ctx()).is_empty());
        let attach = alter(table("public.events", 0), vec![Action::AttachPartition {
            partition: table("public.events_2027", 10), has_validated_check: false, default_partition: default(false),
        }]);
        assert!(check(&attach, &ctx())[0].message.starts_with("ATTACH PARTITION scans the default partition"));
    }
}
