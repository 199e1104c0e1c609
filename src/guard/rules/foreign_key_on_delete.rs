//! foreign_key_on_delete (warning): a foreign key without an explicit ON DELETE
//! silently means NO ACTION; say what deleting the parent should do.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Constraint, ConstraintKind, Context, Statement};

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let (table, constraints): (&str, Vec<&Constraint>) = match statement {
        Statement::CreateTable { name, constraints, .. } => (name, constraints.iter().collect()),
        Statement::AlterTable { table, actions, .. } => (
            &table.name,
            actions
                .iter()
                .flat_map(|a| match a {
                    Action::AddConstraint(c) => vec![c],
                    Action::AddColumn { constraints, .. } => constraints.iter().collect(),
                    _ => vec![],
                })
                .collect(),
        ),
        _ => return Vec::new(),
    };
    constraints
        .into_iter()
        .filter(|c| c.kind == ConstraintKind::ForeignKey && !c.on_delete_given)
        .map(|c| {
            Finding::new(
                Rule::ForeignKeyOnDelete,
                format!(
                    "foreign key {}on {table} has no ON DELETE",
                    c.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default()
                ),
                "Without it, deleting a referenced row fails (NO ACTION); that may be intended, but say so.".into(),
                "Add ON DELETE CASCADE, ON DELETE SET NULL, ON DELETE RESTRICT or ON DELETE NO ACTION explicitly.".into(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn only_foreign_keys_without_on_delete() {
        let fk = |given| Constraint { kind: ConstraintKind::ForeignKey, name: Some("f".into()), not_valid: false, using_index: false, on_delete_given: given, columns: vec![] };
        assert_eq!(check(&alter(table("public.t", 1), vec![Action::AddConstraint(fk(false))]), &ctx()).len(), 1);
        assert!(check(&alter(table("public.t", 1), vec![Action::AddConstraint(fk(true))]), &ctx()).is_empty());
    }
}
