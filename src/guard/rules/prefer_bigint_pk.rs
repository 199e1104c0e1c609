//! prefer_bigint_pk (advisory, off by default): an int/serial primary key runs
//! out at 2^31 rows, and widening it later rewrites the table.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let Statement::CreateTable { name, primary_key_types, .. } = statement else { return Vec::new() };
    if !primary_key_types.iter().any(|t| t == "integer" || t == "smallint") {
        return Vec::new();
    }
    vec![Finding::new(
        Rule::PreferBigintPk,
        format!("primary key of {name} is {}", primary_key_types.join(", ")),
        "An integer key runs out at 2,147,483,647; changing its type later rewrites the table and every referencing one.".into(),
        "Use bigint: id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY".into(),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn integer_keys_only() {
        let create = |t: &str| Statement::CreateTable { name: "t".into(), columns: vec![], constraints: vec![], primary_key_types: vec![t.into()], default_partition: None };
        assert_eq!(check(&create("integer"), &ctx()).len(), 1);
        assert!(check(&create("bigint"), &ctx()).is_empty());
    }
}
