//! drop_table: DROP TABLE on a table that has rows loses them.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let Statement::DropTable { tables } = statement else { return Vec::new() };
    tables
        .iter()
        .filter(|(table, _)| table.shared() && table.has_rows())
        .map(|(table, _)| {
            Finding::new(
                Rule::DropTable,
                format!("dropping {} loses its rows", table.described()),
                "DROP TABLE discards the data for good; only a backup brings it back.".into(),
                format!(
                    "Rename it first and drop it after a grace period (ALTER TABLE {name} RENAME TO {short}_old;), \
                     or keep a dump (pg_dump -t {name}), then acknowledge the drop.",
                    name = table.name,
                    short = table.name.rsplit('.').next().unwrap_or(&table.name)
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn fires_only_for_shared_tables_with_rows() {
        let stmt = |t| Statement::DropTable { tables: vec![(t, vec![])] };
        assert_eq!(check(&stmt(table("public.orders", 5)), &ctx()).len(), 1);
        assert!(check(&stmt(table("public.orders", 0)), &ctx()).is_empty());
        assert!(check(&stmt(new_table("public.orders")), &ctx()).is_empty());
    }
}
