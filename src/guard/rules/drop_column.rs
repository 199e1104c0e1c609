//! drop_column: DROP COLUMN on a table that has rows loses that column's data.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let Some((table, actions)) = statement.shared_alter().filter(|(t, _)| t.has_rows()) else { return Vec::new() };
    actions
        .iter()
        .filter_map(|action| match action {
            Action::DropColumn { column } => Some(Finding::new(
                Rule::DropColumn,
                format!("dropping column {} of {} loses its data", column.name, table.described()),
                format!("DROP COLUMN discards the values for good and takes ACCESS EXCLUSIVE on {}.", table.name),
                format!(
                    "First deploy code that no longer reads or writes {col}; keep a copy if it may be needed \
                     (CREATE TABLE {short}_{col}_backup AS SELECT <primary key>, {col} FROM {name};), then acknowledge the drop.",
                    col = column.name,
                    name = table.name,
                    short = table.name.rsplit('.').next().unwrap_or(&table.name)
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
    fn fires_on_a_table_with_rows() {
        let found = check(&alter(table("public.users", 1200), vec![Action::DropColumn { column: column("name", "text") }]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("dropping column name of public.users (~1,200 rows"), "{}", found[0].message);
    }

    #[test]
    fn quiet_on_empty_or_new_tables() {
        let drop = || vec![Action::DropColumn { column: column("name", "text") }];
        assert!(check(&alter(table("public.users", 0), drop()), &ctx()).is_empty());
        assert!(check(&alter(new_table("public.users"), drop()), &ctx()).is_empty());
    }
}
