//! attach_partition: ATTACH PARTITION scans the table being attached, under
//! ACCESS EXCLUSIVE on it, to prove every row fits the partition bound, unless
//! a validated CHECK constraint already proves it.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Context, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Statement::AlterTable { table: parent, actions, .. } = statement else { return Vec::new() };
    actions
        .iter()
        .filter_map(|action| match action {
            Action::AttachPartition { partition, has_validated_check: false }
                if partition.shared() && partition.is_large(&ctx.thresholds) =>
            {
                let short = partition.name.rsplit('.').next().unwrap_or(&partition.name).trim_matches('"');
                let check = format!("{short}_bound");
                Some(Finding::new(
                    Rule::AttachPartition,
                    format!("ATTACH PARTITION scans {} under ACCESS EXCLUSIVE", partition.described()),
                    format!(
                        "To prove every row fits the partition bound, PostgreSQL reads the whole table holding ACCESS EXCLUSIVE on {}: \
                         every read and write of it waits. A validated CHECK constraint that implies the bound skips the scan.",
                        partition.name
                    ),
                    format!(
                        "ALTER TABLE {p} ADD CONSTRAINT {check} CHECK (<the partition bound as a condition on the key>) NOT VALID;\n\
                         ALTER TABLE {p} VALIDATE CONSTRAINT {check};  -- reads and writes go on\n\
                         ALTER TABLE {parent} ATTACH PARTITION {p} FOR VALUES ...;  -- no scan now\n\
                         ALTER TABLE {p} DROP CONSTRAINT {check};",
                        p = partition.name,
                        parent = parent.name
                    ),
                ))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn attaching_a_large_table_without_a_check() {
        let attach = |partition, has_validated_check| {
            alter(table("public.events", 0), vec![Action::AttachPartition { partition, has_validated_check }])
        };
        let found = check(&attach(table("public.events_2026", 2_000_000), false), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.starts_with("ALTER TABLE public.events_2026 ADD CONSTRAINT events_2026_bound CHECK"));
        assert!(found[0].hint.contains("ALTER TABLE public.events ATTACH PARTITION public.events_2026"));
        assert!(check(&attach(table("public.events_2026", 2_000_000), true), &ctx()).is_empty());
        assert!(check(&attach(table("public.events_2026", 10), false), &ctx()).is_empty());
        assert!(check(&attach(new_table("public.events_2026"), false), &ctx()).is_empty());
    }
}
