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
            Action::AddColumn { column, constraints, .. } => constraints
                .iter()
                .find(|c| matches!(c.kind, ConstraintKind::ForeignKey | ConstraintKind::Check) && !c.not_valid)
                .map(|c| {
                    let what = if c.kind == ConstraintKind::ForeignKey { "REFERENCES" } else { "CHECK" };
                    let short = table.name.rsplit('.').next().unwrap_or(&table.name).trim_matches('"');
                    let name = c.name.clone().unwrap_or_else(|| {
                        format!("{short}_{}_{}", column.name, if c.kind == ConstraintKind::ForeignKey { "fkey" } else { "check" })
                    });
                    let constraint = if c.kind == ConstraintKind::ForeignKey {
                        format!("FOREIGN KEY ({}) REFERENCES ...", column.name)
                    } else {
                        "CHECK (...)".to_string()
                    };
                    Finding::new(
                        Rule::ValidatingConstraint,
                        format!("ADD COLUMN {} ... {what} on {} validates every row while holding its lock", column.name, table.described()),
                        format!(
                            "The new column's constraint is checked against every existing row inside ALTER TABLE, \
                             under ACCESS EXCLUSIVE on {}: every read and write waits.",
                            table.name
                        ),
                        format!(
                            "ALTER TABLE {t} ADD COLUMN {} {};\nALTER TABLE {t} ADD CONSTRAINT {name} {constraint} NOT VALID;\n\
                             Then, in a separate transaction (reads and writes go on):\nALTER TABLE {t} VALIDATE CONSTRAINT {name};",
                            column.name,
                            column.type_name,
                            t = table.name
                        ),
                    )
                }),
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

    #[test]
    fn constraints_inline_in_add_column_validate_too() {
        let add = Action::AddColumn {
            column: column("qty", "integer"), not_null: false, has_default: false,
            constraints: vec![Constraint { kind: ConstraintKind::Check, name: None, not_valid: false, using_index: false,
                                           on_delete_given: false, columns: vec!["qty".into()] }],
        };
        let found = check(&alter(table("public.orders", 2_000_000), vec![add.clone()]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.starts_with("ADD COLUMN qty ... CHECK on public.orders"));
        assert!(found[0].hint.starts_with("ALTER TABLE public.orders ADD COLUMN qty integer;\nALTER TABLE public.orders ADD CONSTRAINT orders_qty_check CHECK (...) NOT VALID;"), "{}", found[0].hint);
        assert!(check(&alter(new_table("public.orders"), vec![add]), &ctx()).is_empty());
    }
}
