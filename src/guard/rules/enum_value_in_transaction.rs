//! enum_value_in_transaction (warning): ALTER TYPE ... ADD VALUE inside a
//! transaction block: the new value cannot be used until the transaction commits.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    match statement {
        Statement::AddEnumValue { type_name, value, in_transaction_block: true } => vec![Finding::new(
            Rule::EnumValueInTransaction,
            format!("adding value '{value}' to {type_name} inside a transaction block"),
            "The new value cannot be used (\"unsafe use of new value\") until this transaction commits.".into(),
            "Put ALTER TYPE ... ADD VALUE in a revision of its own marked \"-- Transactional: false\".".into(),
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn only_inside_a_transaction_block() {
        let stmt = |block| Statement::AddEnumValue { type_name: "status".into(), value: "x".into(), in_transaction_block: block };
        assert_eq!(check(&stmt(true), &ctx()).len(), 1);
        assert!(check(&stmt(false), &ctx()).is_empty());
    }
}
