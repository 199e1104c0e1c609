//! set_not_null: ALTER COLUMN ... SET NOT NULL on a large table without a
//! validated CHECK (col IS NOT NULL): it scans the table under ACCESS EXCLUSIVE.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Context, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Some((table, actions)) = statement.shared_alter().filter(|(t, _)| t.is_large(&ctx.thresholds)) else {
        return Vec::new();
    };
    actions
        .iter()
        .filter_map(|action| match action {
            Action::SetNotNull { column, has_validated_check: false, by_primary_key } => Some(Finding::new(
                Rule::SetNotNull,
                if *by_primary_key {
                    format!("ADD PRIMARY KEY makes {}.{column} NOT NULL, which scans {} under ACCESS EXCLUSIVE", table.name, table.described())
                } else {
                    format!("SET NOT NULL on {}.{column} scans {} under ACCESS EXCLUSIVE", table.name, table.described())
                },
                "Without a validated CHECK (column IS NOT NULL), PostgreSQL reads every row to prove there is no NULL, \
                 blocking all reads and writes meanwhile."
                    .into(),
                format!(
                    "CALL migrate_set_not_null('{t}', '{column}');\n\
                     It runs: ADD CONSTRAINT ... CHECK ({column} IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT (reads and writes go on); \
                     SET NOT NULL (no scan); DROP CONSTRAINT.{}",
                    if *by_primary_key { "\nThen ADD PRIMARY KEY (USING INDEX) finds the column NOT NULL and scans nothing." } else { "" },
                    t = table.name
                ),
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn fires_without_a_validated_check() {
        let stmt = |checked| alter(table("public.users", 2_000_000), vec![Action::SetNotNull { column: "role".into(), has_validated_check: checked, by_primary_key: false }]);
        assert_eq!(check(&stmt(false), &ctx()).len(), 1);
        assert!(check(&stmt(true), &ctx()).is_empty());
        let small = alter(table("public.users", 10), vec![Action::SetNotNull { column: "role".into(), has_validated_check: false, by_primary_key: false }]);
        assert!(check(&small, &ctx()).is_empty());
    }

    #[test]
    fn primary_key_on_a_nullable_column_scans_too() {
        let stmt = alter(table("public.users", 2_000_000), vec![Action::SetNotNull { column: "id".into(), has_validated_check: false, by_primary_key: true }]);
        let found = check(&stmt, &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("ADD PRIMARY KEY makes public.users.id NOT NULL"), "{}", found[0].message);
        assert!(found[0].hint.starts_with("CALL migrate_set_not_null('public.users', 'id');"));
    }
}
