//! unnamed_constraint (warning): an index or constraint without an explicit
//! name gets a generated one, which differs between environments and makes
//! later migrations guess.
//!
//! Deliberately let through: an unnamed PRIMARY KEY in CREATE TABLE. A table
//! has one primary key, and PostgreSQL names it `<table>_pkey` (ChooseConstraintName
//! with the "pkey" label and no columns), the same in every database where the
//! migration creates the table, so a later `DROP CONSTRAINT orders_pkey` does not
//! guess. Warning on it would flag nearly every CREATE TABLE and teach people to
//! ignore the rule. Unnamed UNIQUE, CHECK, FOREIGN KEY and EXCLUDE constraints
//! still warn: their generated names depend on the column list and on which names
//! are taken. `ALTER TABLE ... ADD PRIMARY KEY` on an existing table still warns:
//! a table renamed into place (the swap pattern) may keep an older `<table>_pkey`
//! elsewhere in the schema, and PostgreSQL then picks `<table>_pkey1`.

use super::{Finding, Rule};
use crate::guard::facts::{Action, Constraint, ConstraintKind, Context, Statement};

fn kind_word(kind: ConstraintKind) -> &'static str {
    match kind {
        ConstraintKind::PrimaryKey => "primary key",
        ConstraintKind::Unique => "unique constraint",
        ConstraintKind::ForeignKey => "foreign key",
        ConstraintKind::Check => "check constraint",
        ConstraintKind::Exclusion => "exclusion constraint",
        ConstraintKind::Other => "constraint",
    }
}

fn unnamed(table: &str, constraints: &[&Constraint]) -> Vec<Finding> {
    constraints
        .iter()
        .filter(|c| c.name.is_none() && c.kind != ConstraintKind::Other)
        .map(|c| {
            let short = table.rsplit('.').next().unwrap_or(table);
            let suffix = match c.kind {
                ConstraintKind::PrimaryKey => "pkey",
                ConstraintKind::Unique => "key",
                ConstraintKind::ForeignKey => "fkey",
                ConstraintKind::Check => "check",
                _ => "excl",
            };
            // PostgreSQL's own naming scheme, written out.
            let name = if c.kind == ConstraintKind::PrimaryKey {
                format!("{short}_pkey")
            } else {
                format!("{short}_{}_{suffix}", c.columns.join("_"))
            };
            Finding::new(
                Rule::UnnamedConstraint,
                format!("{} on {table} has no explicit name", kind_word(c.kind)),
                "A generated name depends on what else exists, so it can differ between databases.".into(),
                format!("Name it: CONSTRAINT {name} ..."),
            )
        })
        .collect()
}

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    match statement {
        Statement::CreateIndex { table, index_name: None, .. } => vec![Finding::new(
            Rule::UnnamedConstraint,
            format!("index on {} has no explicit name", table.name),
            "A generated name depends on what else exists, so it can differ between databases.".into(),
            format!("Name it: CREATE INDEX {}_<columns>_idx ON {} ...", table.name.rsplit('.').next().unwrap_or(&table.name), table.name),
        )],
        Statement::CreateTable { name, constraints, .. } => {
            let named_by_postgres = |c: &&Constraint| c.kind == ConstraintKind::PrimaryKey;
            unnamed(name, &constraints.iter().filter(|c| !named_by_postgres(c)).collect::<Vec<_>>())
        }
        Statement::AlterTable { table, actions, .. } => {
            let constraints: Vec<&Constraint> = actions
                .iter()
                .flat_map(|a| match a {
                    Action::AddConstraint(c) => vec![c],
                    Action::AddColumn { constraints, .. } => constraints.iter().collect(),
                    _ => vec![],
                })
                .collect();
            unnamed(&table.name, &constraints)
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn unnamed_index_and_constraints() {
        let index = Statement::CreateIndex { table: table("public.users", 1), index_name: None, concurrent: true, unique: false, only: false, partitions: None };
        assert_eq!(check(&index, &ctx()).len(), 1);
        let c = Constraint { kind: ConstraintKind::ForeignKey, name: None, not_valid: false, using_index: false, on_delete_given: true, columns: vec!["user_id".into()] };
        let create = Statement::CreateTable { name: "public.orders".into(), columns: vec![], constraints: vec![c.clone()], primary_key_types: vec![], default_partition: None };
        assert_eq!(check(&create, &ctx())[0].hint, "Name it: CONSTRAINT orders_user_id_fkey ...");
        let named = Constraint { name: Some("orders_user_id_fkey".into()), ..c };
        let create = Statement::CreateTable { name: "public.orders".into(), columns: vec![], constraints: vec![named], primary_key_types: vec![], default_partition: None };
        assert!(check(&create, &ctx()).is_empty());
    }

    #[test]
    fn a_new_tables_primary_key_needs_no_name() {
        let pk = Constraint { kind: ConstraintKind::PrimaryKey, name: None, not_valid: false, using_index: false, on_delete_given: false, columns: vec!["id".into()] };
        let unique = Constraint { kind: ConstraintKind::Unique, columns: vec!["email".into()], ..pk.clone() };
        let create = Statement::CreateTable { name: "public.users".into(), columns: vec![], constraints: vec![pk.clone(), unique], primary_key_types: vec![], default_partition: None };
        let found = check(&create, &ctx());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].message, "unique constraint on public.users has no explicit name");
        // Added to an existing table, an unnamed primary key still warns.
        let added = alter(table("public.users", 10), vec![Action::AddConstraint(pk)]);
        assert_eq!(check(&added, &ctx())[0].hint, "Name it: CONSTRAINT users_pkey ...");
    }
}
