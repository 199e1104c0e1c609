//! rename_by_drop: a DROP COLUMN and an ADD COLUMN of the same type on the same
//! table in one transaction (either order, one ALTER or several), or a DROP
//! TABLE followed by a CREATE TABLE with the same columns. It looks like a
//! rename, and it loses the data a rename would have kept.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Column, Context, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    match statement {
        Statement::AlterTable { table, actions, .. } if table.shared() => {
            let dropped: Vec<&Column> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::DropColumn { column } => Some(column),
                    _ => None,
                })
                .chain(ctx.history.dropped_columns.iter().filter(|(t, _)| *t == table.name).map(|(_, c)| c))
                .collect();
            let added: Vec<&Column> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::AddColumn { column, .. } => Some(column),
                    _ => None,
                })
                .chain(ctx.history.added_columns.iter().filter(|(t, _)| *t == table.name).map(|(_, c)| c))
                .collect();
            // Only pairs that involve this statement: earlier pairs were reported then.
            let in_statement = |c: &Column| {
                actions.iter().any(|a| matches!(a, Action::DropColumn { column } | Action::AddColumn { column, .. } if column == c))
            };
            let mut findings = Vec::new();
            for old in &dropped {
                for new in &added {
                    if old.type_name == new.type_name && old.name != new.name && (in_statement(old) || in_statement(new)) {
                        findings.push(column_rename(&table.name, old, new));
                    }
                }
            }
            findings
        }
        Statement::CreateTable { name, columns, .. } => ctx
            .history
            .dropped_tables
            .iter()
            // A different name only: dropping and re-creating the same table is
            // drop_table's business (and what a downgrade-upgrade round trip does).
            .filter(|(old, old_columns)| old != name && same_columns(old_columns, columns))
            .map(|(old, _)| table_rename(old, name))
            .collect(),
        _ => Vec::new(),
    }
}

fn same_columns(a: &[Column], b: &[Column]) -> bool {
    let mut a: Vec<_> = a.to_vec();
    let mut b: Vec<_> = b.to_vec();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    !a.is_empty() && a == b
}

fn column_rename(table: &str, old: &Column, new: &Column) -> Finding {
    let short = table.rsplit('.').next().unwrap_or(table);
    Finding::new(
        Rule::RenameByDrop,
        format!(
            "dropping {short}.{} and adding {short}.{} ({}) looks like a rename",
            old.name, new.name, old.type_name
        ),
        format!(
            "The data in {short}.{} would be lost: DROP COLUMN discards it and the new column starts empty.",
            old.name
        ),
        format!("ALTER TABLE {table} RENAME COLUMN {} TO {};", old.name, new.name),
    )
}

fn table_rename(old: &str, new: &str) -> Finding {
    Finding::new(
        Rule::RenameByDrop,
        format!("dropping {old} and creating {new} with the same columns looks like a rename"),
        format!("The rows of {old} would be lost."),
        format!("ALTER TABLE {old} RENAME TO {};", new.rsplit('.').next().unwrap_or(new)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::History;
    use crate::guard::rules::test_support::*;

    fn add(name: &str, ty: &str) -> Action {
        Action::AddColumn { column: column(name, ty), not_null: false, has_default: false, constraints: vec![] }
    }

    fn drop(name: &str, ty: &str) -> Action {
        Action::DropColumn { column: column(name, ty) }
    }

    #[test]
    fn drop_and_add_in_one_alter() {
        let found = check(&alter(table("public.users", 10), vec![drop("name", "text"), add("full_name", "text")]), &ctx());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "dropping users.name and adding users.full_name (text) looks like a rename");
        assert_eq!(found[0].hint, "ALTER TABLE public.users RENAME COLUMN name TO full_name;");
    }

    #[test]
    fn either_order_across_statements() {
        let mut c = ctx();
        c.history.added_columns.push(("public.users".into(), column("full_name", "text")));
        assert_eq!(check(&alter(table("public.users", 10), vec![drop("name", "text")]), &c).len(), 1);
        let c = Context { history: History { dropped_columns: vec![("public.users".into(), column("name", "text"))], ..History::default() }, ..ctx() };
        assert_eq!(check(&alter(table("public.users", 10), vec![add("full_name", "text")]), &c).len(), 1);
    }

    #[test]
    fn quiet_for_other_types_tables_and_new_tables() {
        assert!(check(&alter(table("public.users", 10), vec![drop("name", "text"), add("age", "integer")]), &ctx()).is_empty());
        let mut c = ctx();
        c.history.dropped_columns.push(("public.orders".into(), column("name", "text")));
        assert!(check(&alter(table("public.users", 10), vec![add("full_name", "text")]), &c).is_empty());
        assert!(check(&alter(new_table("public.users"), vec![drop("name", "text"), add("full_name", "text")]), &ctx()).is_empty());
    }

    #[test]
    fn drop_table_then_create_with_same_columns() {
        let mut c = ctx();
        let cols = vec![column("id", "bigint"), column("name", "text")];
        c.history.dropped_tables.push(("public.customers".into(), cols.clone()));
        let create = Statement::CreateTable { name: "public.clients".into(), columns: cols, constraints: vec![], primary_key_types: vec![], default_partition: None };
        let found = check(&create, &c);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hint, "ALTER TABLE public.customers RENAME TO clients;");
        let again = Statement::CreateTable { name: "public.customers".into(), columns: c.history.dropped_tables[0].1.clone(), constraints: vec![], primary_key_types: vec![], default_partition: None };
        assert!(check(&again, &c).is_empty(), "re-creating the same table is not a rename");
    }
}
