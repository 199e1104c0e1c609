//! not_null_without_default: ADD COLUMN ... NOT NULL with no default on a table
//! that has rows. It fails on the existing rows; the safe way has three steps.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let Some((table, actions)) = statement.shared_alter().filter(|(t, _)| t.has_rows()) else { return Vec::new() };
    actions
        .iter()
        .filter_map(|action| match action {
            Action::AddColumn { column, not_null: true, has_default: false, .. } => Some(Finding::new(
                Rule::NotNullWithoutDefault,
                format!("adding NOT NULL column {} without a default to {}", column.name, table.described()),
                "The existing rows have no value for it, so the ALTER fails, after waiting for ACCESS EXCLUSIVE.".into(),
                format!(
                    "Add it in three steps:\n\
                     ALTER TABLE {t} ADD COLUMN {c} {ty};\n\
                     CALL migrate_backfill('{t}', $${c} = <value>$$, '{c} IS NULL');\n\
                     CALL migrate_set_not_null('{t}', '{c}');\n\
                     (Or, if one constant fits every row: ADD COLUMN {c} {ty} NOT NULL DEFAULT <constant>, which needs no rewrite.)",
                    t = table.name,
                    c = column.name,
                    ty = column.type_name
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

    fn add(not_null: bool, has_default: bool) -> Vec<Action> {
        vec![Action::AddColumn { column: column("role", "text"), not_null, has_default, constraints: vec![] }]
    }

    #[test]
    fn fires_with_rows_and_no_default() {
        let found = check(&alter(table("public.users", 10), add(true, false)), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.contains("CALL migrate_backfill('public.users', $$role = <value>$$, 'role IS NULL');"));
    }

    #[test]
    fn quiet_with_default_nullable_empty_or_new() {
        assert!(check(&alter(table("public.users", 10), add(true, true)), &ctx()).is_empty());
        assert!(check(&alter(table("public.users", 10), add(false, false)), &ctx()).is_empty());
        assert!(check(&alter(table("public.users", 0), add(true, false)), &ctx()).is_empty());
        assert!(check(&alter(new_table("public.users"), add(true, false)), &ctx()).is_empty());
    }
}
