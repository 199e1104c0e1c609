//! cascade_drop_column: a command that drops a column it does not name in
//! ALTER TABLE ... DROP COLUMN loses that column's values: DROP TYPE or
//! DROP DOMAIN ... CASCADE (a column of that type), DROP FUNCTION or DROP
//! OPERATOR ... CASCADE (a generated column that uses it), DROP COLLATION
//! ... CASCADE, DROP TABLE/VIEW ... CASCADE (a column of its row type),
//! ALTER TYPE ... DROP ATTRIBUTE ... CASCADE (typed tables). The sql_drop
//! event lists such a column as a dropped `table column` of a table that stays.

use super::{Finding, Rule};
use crate::guard::facts::{Context, DroppedColumn, Statement};

const NAMED: usize = 5;

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let Statement::Dropped { command, columns, .. } = statement else { return Vec::new() };
    let lost: Vec<&DroppedColumn> = columns.iter().filter(|c| c.table.shared() && c.table.has_rows()).collect();
    if lost.is_empty() {
        return Vec::new();
    }
    let message = match lost.as_slice() {
        [one] => format!("{command} drops column {} of {} with its data", one.column, one.table.described()),
        _ => format!("{command} drops {} columns of tables with rows", lost.len()),
    };
    let mut named: Vec<String> =
        lost.iter().take(NAMED).map(|c| format!("{} of {}", c.column, c.table.described())).collect();
    if lost.len() > NAMED {
        named.push(format!("and {} more", lost.len() - NAMED));
    }
    let first = lost[0];
    vec![Finding::new(
        Rule::CascadeDropColumn,
        message,
        format!(
            "These columns go because they depend on what the statement drops (their type, domain, collation \
             or generation expression): {}. Their values are gone for good; only a backup brings them back.",
            named.join(", ")
        ),
        format!(
            "Run the statement with RESTRICT (the default) to see every dependent object. Move the data off \
             first: change the column's type (ALTER TABLE {table} ALTER COLUMN {col} TYPE <another type>), \
             or keep a copy (CREATE TABLE {short}_{col}_backup AS SELECT <primary key>, {col} FROM {table};) \
             and drop the column explicitly with ALTER TABLE ... DROP COLUMN.",
            table = first.table.name,
            col = first.column,
            short = first.table.name.rsplit('.').next().unwrap_or(&first.table.name).trim_matches('"'),
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::Table;
    use crate::guard::rules::test_support::*;

    fn dropped(columns: Vec<(Table, &str)>) -> Statement {
        Statement::Dropped {
            command: "DROP TYPE".into(),
            tables: vec![],
            columns: columns.into_iter().map(|(table, column)| DroppedColumn { table, column: column.into() }).collect(),
        }
    }

    #[test]
    fn fires_for_a_dependent_column_of_a_table_with_rows() {
        let found = check(&dropped(vec![(table("public.orders", 1200), "status")]), &ctx());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, Rule::CascadeDropColumn);
        assert!(found[0].message.starts_with("DROP TYPE drops column status of public.orders (~1,200 rows"), "{}", found[0].message);
        assert!(found[0].hint.contains("ALTER TABLE public.orders ALTER COLUMN status TYPE"), "{}", found[0].hint);
        assert!(found[0].hint.contains("CREATE TABLE orders_status_backup"), "{}", found[0].hint);
    }

    #[test]
    fn counts_only_columns_of_shared_tables_with_rows() {
        let found = check(&dropped(vec![(table("public.a", 3), "x"), (table("public.b", 0), "y"), (new_table("public.c"), "z")]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("column x of public.a"), "{}", found[0].message);
        assert!(check(&dropped(vec![(table("public.b", 0), "y")]), &ctx()).is_empty());
        let two = check(&dropped(vec![(table("public.a", 3), "x"), (table("public.d", 3), "w")]), &ctx());
        assert!(two[0].message.contains("2 columns"), "{}", two[0].message);
    }
}
