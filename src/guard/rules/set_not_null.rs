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
            Action::SetNotNull { column, has_validated_check: false } => Some(Finding::new(
                Rule::SetNotNull,
                format!("SET NOT NULL on {}.{column} scans {} under ACCESS EXCLUSIVE", table.name, table.described()),
                "Without a validated CHECK (column IS NOT NULL), PostgreSQL reads every row to prove there is no NULL, \
                 blocking all reads and writes meanwhile."
                    .into(),
                format!(
                    "CALL migrate_set_not_null('{t}', '{column}');\n\
                     It runs: ADD CONSTRAINT ... CHECK ({column} IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT (reads and writes go on); \
                     SET NOT NULL (no scan); DROP CONSTRAINT.",
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
        let stmt = |checked| alter(table("public.users", 2_000_000), vec![Action::SetNotNull { column: "role".into(), has_validated_check: checked }]);
        assert_eq!(check(&stmt(false), &ctx()).len(), 1);
        assert!(check(&stmt(true), &ctx()).is_empty());
        let small = alter(table("public.users", 10), vec![Action::SetNotNull { column: "role".into(), has_validated_check: false }]);
        assert!(check(&small, &ctx()).is_empty());
    }
}
