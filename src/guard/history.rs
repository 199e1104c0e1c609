//! An index over a checked script's history (what earlier statements dropped
//! and added), so that each statement gets only the entries rename_by_drop can
//! pair it with. Copying, or even scanning, the whole history for every
//! statement made migrate_guard_check and migrate_review quadratic.
//!
//! Pure: unit-tested without PostgreSQL.

use std::collections::{HashMap, HashSet};

use super::facts::{Action, Column, History, Statement};

/// (table, column type): a dropped and an added column pair only when both match.
type ColumnKey = (String, String);
/// A table's columns, sorted: a re-created table matches a dropped one only then.
type ShapeKey = Vec<(String, String)>;

#[derive(Default)]
pub struct HistoryIndex {
    dropped_columns: HashMap<ColumnKey, Vec<Column>>,
    added_columns: HashMap<ColumnKey, Vec<Column>>,
    dropped_tables: HashMap<ShapeKey, Vec<(String, Vec<Column>)>>,
}

fn column_key(table: &str, column: &Column) -> ColumnKey {
    (table.to_string(), column.type_name.clone())
}

fn shape_key(columns: &[Column]) -> ShapeKey {
    let mut key: ShapeKey = columns.iter().map(|c| (c.name.clone(), c.type_name.clone())).collect();
    key.sort();
    key
}

impl HistoryIndex {
    /// Take in what a statement recorded.
    pub fn add(&mut self, history: &History) {
        for (table, column) in &history.dropped_columns {
            self.dropped_columns.entry(column_key(table, column)).or_default().push(column.clone());
        }
        for (table, column) in &history.added_columns {
            self.added_columns.entry(column_key(table, column)).or_default().push(column.clone());
        }
        for (table, columns) in &history.dropped_tables {
            self.dropped_tables.entry(shape_key(columns)).or_default().push((table.clone(), columns.clone()));
        }
    }

    /// The history `statement` can be paired with: earlier drops of the types
    /// it adds, earlier adds of the types it drops, earlier dropped tables of
    /// its shape. Each lookup is by key, whatever the size of the history.
    pub fn relevant(&self, statement: &Statement) -> History {
        let mut relevant = History::default();
        match statement {
            Statement::AlterTable { table, actions, .. } => {
                // Each (kind, type) once: two added text columns need the dropped text columns once.
                let mut seen: HashSet<(bool, &str)> = HashSet::new();
                for action in actions {
                    let (column, from, into) = match action {
                        Action::AddColumn { column, .. } => (column, &self.dropped_columns, &mut relevant.dropped_columns),
                        Action::DropColumn { column } => (column, &self.added_columns, &mut relevant.added_columns),
                        _ => continue,
                    };
                    if !seen.insert((matches!(action, Action::AddColumn { .. }), column.type_name.as_str())) {
                        continue;
                    }
                    if let Some(found) = from.get(&column_key(&table.name, column)) {
                        into.extend(found.iter().map(|earlier| (table.name.clone(), earlier.clone())));
                    }
                }
            }
            Statement::CreateTable { columns, .. } => {
                if let Some(found) = self.dropped_tables.get(&shape_key(columns)) {
                    relevant.dropped_tables = found.clone();
                }
            }
            _ => {}
        }
        relevant
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::{LockLevel, Table};

    fn column(name: &str, type_name: &str) -> Column {
        Column { name: name.into(), type_name: type_name.into() }
    }

    fn table(name: &str) -> Table {
        Table { name: name.into(), rows: 0, rows_from_size: false, bytes: 0, created_in_transaction: false, temporary: false, partitioned: false, oid: 1 }
    }

    fn alter(name: &str, actions: Vec<Action>) -> Statement {
        Statement::AlterTable { table: table(name), actions, lock: LockLevel::AccessExclusive }
    }

    fn add(c: Column) -> Action {
        Action::AddColumn { column: c, not_null: false, has_default: false, constraints: vec![] }
    }

    #[test]
    fn an_add_sees_earlier_drops_of_its_type_on_its_table_only() {
        let history = History {
            dropped_columns: vec![
                ("public.users".into(), column("name", "text")),
                ("public.users".into(), column("age", "integer")),
                ("public.orders".into(), column("name", "text")),
            ],
            added_columns: vec![("public.users".into(), column("nick", "text"))],
            dropped_tables: vec![],
        };
        let mut index = HistoryIndex::default();
        index.add(&history);
        let relevant = index.relevant(&alter("public.users", vec![add(column("full_name", "text"))]));
        assert_eq!(relevant.dropped_columns, vec![("public.users".to_string(), column("name", "text"))]);
        assert!(relevant.added_columns.is_empty(), "an add only pairs with earlier drops");
        let relevant = index.relevant(&alter("public.users", vec![Action::DropColumn { column: column("x", "text") }]));
        assert_eq!(relevant.added_columns, vec![("public.users".to_string(), column("nick", "text"))]);
        assert!(relevant.dropped_columns.is_empty());
    }

    #[test]
    fn a_created_table_sees_dropped_tables_of_its_shape() {
        let shape = vec![column("id", "bigint"), column("name", "text")];
        let mut index = HistoryIndex::default();
        index.add(&History { dropped_tables: vec![("public.customers".into(), shape.clone())], ..History::default() });
        index.add(&History { dropped_tables: vec![("public.other".into(), vec![column("id", "bigint")])], ..History::default() });
        let reversed: Vec<Column> = shape.iter().rev().cloned().collect();
        let create = Statement::CreateTable { name: "public.clients".into(), columns: reversed, constraints: vec![], primary_key_types: vec![], default_partition: None };
        assert_eq!(index.relevant(&create).dropped_tables, vec![("public.customers".to_string(), shape)]);
    }

    #[test]
    fn other_statements_see_nothing() {
        let mut index = HistoryIndex::default();
        index.add(&History { dropped_columns: vec![("public.users".into(), column("name", "text"))], ..History::default() });
        assert_eq!(index.relevant(&Statement::Truncate { tables: vec![table("public.users")] }), History::default());
    }
}
