//! prefer_jsonb (advisory, off by default): a json column; jsonb is indexable
//! and compares by value.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    super::prefer_timestamptz::columns_of(statement)
        .into_iter()
        .filter(|(_, c)| c.type_name == "json")
        .map(|(table, c)| {
            Finding::new(
                Rule::PreferJsonb,
                format!("column {}.{} is json", table, c.name),
                "json keeps the text as written; it has no equality operator and no GIN indexing.".into(),
                format!("Use jsonb: {} jsonb", c.name),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn json_columns_only() {
        let create = Statement::CreateTable { name: "t".into(), columns: vec![column("a", "json"), column("b", "jsonb")], constraints: vec![], primary_key_types: vec![], default_partition: None };
        assert_eq!(check(&create, &ctx()).len(), 1);
    }
}
