//! truncate: TRUNCATE on a table that has rows.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let Statement::Truncate { tables } = statement else { return Vec::new() };
    tables
        .iter()
        .filter(|table| table.shared() && table.has_rows())
        .map(|table| {
            Finding::new(
                Rule::Truncate,
                format!("truncating {} loses its rows", table.described()),
                "TRUNCATE removes every row at once, under ACCESS EXCLUSIVE.".into(),
                format!("Delete what must go in batches (DELETE FROM {} WHERE ...), or acknowledge the truncate.", table.name),
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
        assert_eq!(check(&Statement::Truncate { tables: vec![table("public.t", 3)] }, &ctx()).len(), 1);
        assert!(check(&Statement::Truncate { tables: vec![table("public.t", 0)] }, &ctx()).is_empty());
    }
}
