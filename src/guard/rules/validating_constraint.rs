//! validating_constraint: ADD FOREIGN KEY or ADD CHECK on a large table without
//! NOT VALID scans the table while holding its lock.

use super::{Finding, Rule};
use crate::guard::facts::{Action, ConstraintKind, Context, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Some((table, actions)) = statement.shared_alter().filter(|(t, _)| t.is_large(&ctx.thresholds)) else {
        return Vec::new();
    };
    let single_action = actions.len() == 1;
    actions
        .iter()
        .filter_map(|action| match action {
            Action::AddConstraint(c) if matches!(c.kind, ConstraintKind::ForeignKey | ConstraintKind::Check) && !c.not_valid => {
                let what = if c.kind == ConstraintKind::ForeignKey { "FOREIGN KEY" } else { "CHECK" };
                let name = c.name.clone().unwrap_or_else(|| "<constraint>".into());
                let add = match ctx.sql.as_deref() {
                    Some(sql) if single_action => format!("{} NOT VALID;", sql.trim().trim_end_matches(';')),
                    _ => format!("ALTER TABLE {} ADD CONSTRAINT {name} {what} (...) NOT VALID;", table.name),
                };
                Some(Finding::new(
                    Rule::ValidatingConstraint,
                    format!("ADD {what} on {} validates every row while holding its lock", table.described()),
                    format!(
                        "Checking existing rows reads the whole table inside ALTER TABLE, blocking writes to {}{}.",
                        table.name,
                        if c.kind == ConstraintKind::ForeignKey { " and to the referenced table" } else { "" }
                    ),
                    format!(
                        "{add}\nThen, in a separate transaction (reads and writes go on):\nALTER TABLE {} VALIDATE CONSTRAINT {name};",
                        table.name
                    ),
                ))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::{Constraint, Context};
    use crate::guard::rules::test_support::*;

    fn fk(not_valid: bool) -> Action {
        Action::AddConstraint(Constraint {
            kind: ConstraintKind::ForeignKey, name: Some("orders_user_id_fkey".into()), not_valid, using_index: false,
            on_delete_given: true, columns: vec!["user_id".into()],
        })
    }

    #[test]
    fn foreign_key_needs_not_valid() {
        let c = Context { sql: Some("ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;".into()), ..ctx() };
        let found = check(&alter(table("public.orders", 2_000_000), vec![fk(false)]), &c);
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.starts_with("ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID;"), "{}", found[0].hint);
        assert!(found[0].hint.ends_with("ALTER TABLE public.orders VALIDATE CONSTRAINT orders_user_id_fkey;"));
        assert!(check(&alter(table("public.orders", 2_000_000), vec![fk(true)]), &ctx()).is_empty());
        assert!(check(&alter(table("public.orders", 10), vec![fk(false)]), &ctx()).is_empty());
    }
}
