//! prefer_timestamptz (advisory, off by default): timestamp without time zone
//! stores wall-clock time with no zone, which breaks across time zones and DST.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Column, Context, Statement};

/// Columns a statement creates, with their table.
pub(crate) fn columns_of(statement: &Statement) -> Vec<(String, &Column)> {
    match statement {
        Statement::CreateTable { name, columns, .. } => columns.iter().map(|c| (name.clone(), c)).collect(),
        Statement::AlterTable { table, actions, .. } => actions
            .iter()
            .filter_map(|a| match a {
                Action::AddColumn { column, .. } => Some((table.name.clone(), column)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    columns_of(statement)
        .into_iter()
        .filter(|(_, c)| c.type_name.starts_with("timestamp") && c.type_name.ends_with("without time zone"))
        .map(|(table, c)| {
            Finding::new(
                Rule::PreferTimestamptz,
                format!("column {}.{} is timestamp without time zone", table, c.name),
                "It records a wall-clock time without saying where; timestamptz records an instant.".into(),
                format!("Use timestamptz: {} timestamptz", c.name),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn timestamp_without_zone_only() {
        let create = Statement::CreateTable {
            name: "t".into(),
            columns: vec![column("a", "timestamp without time zone"), column("b", "timestamp with time zone"), column("c", "timestamp(3) without time zone")],
            constraints: vec![], primary_key_types: vec![], default_partition: None,
        };
        assert_eq!(check(&create, &ctx()).len(), 2);
    }
}
