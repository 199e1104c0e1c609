//! The schema model both sides are read into: the live namespace and the
//! desired DDL (run in a scratch namespace). Every text in it is PostgreSQL's
//! own: identifiers as `quote_ident` gives them, types from `format_type`,
//! expressions and definitions from `pg_get_expr` / `pg_get_constraintdef` /
//! `pg_get_indexdef` / `pg_get_viewdef`, all deparsed with the compared
//! namespace alone on the search_path, so that both sides print the same
//! text for the same object whatever the namespace is called.

use std::collections::BTreeMap;

/// One namespace's objects, keyed by quoted name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    pub enums: BTreeMap<String, EnumType>,
    /// Sequences that are not an identity column's own.
    pub sequences: BTreeMap<String, Sequence>,
    pub views: BTreeMap<String, View>,
    /// Objects of kinds that are not compared, by label ("function f(integer)"):
    /// only their presence on each side is compared, and reported.
    pub uncompared: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// In attribute order.
    pub columns: Vec<Column>,
    pub constraints: BTreeMap<String, Constraint>,
    /// Indexes that back no constraint.
    pub indexes: BTreeMap<String, Index>,
    pub comment: Option<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// format_type(atttypid, atttypmod).
    pub type_sql: String,
    /// The quoted collation name when it is not the type's default.
    pub collation: Option<String>,
    pub not_null: bool,
    pub default: Option<String>,
    pub identity: Option<Identity>,
    /// The expression of a GENERATED ALWAYS AS (...) STORED column.
    pub generated: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Always,
    ByDefault,
}

impl Identity {
    pub fn sql(self) -> &'static str {
        match self {
            Identity::Always => "ALWAYS",
            Identity::ByDefault => "BY DEFAULT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    Check,
    Exclusion,
    ForeignKey,
}

impl ConstraintKind {
    pub fn from_contype(contype: &str) -> Option<ConstraintKind> {
        match contype {
            "p" => Some(ConstraintKind::PrimaryKey),
            "u" => Some(ConstraintKind::Unique),
            "c" => Some(ConstraintKind::Check),
            "x" => Some(ConstraintKind::Exclusion),
            "f" => Some(ConstraintKind::ForeignKey),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ConstraintKind::PrimaryKey => "primary key",
            ConstraintKind::Unique => "unique constraint",
            ConstraintKind::Check => "check constraint",
            ConstraintKind::Exclusion => "exclusion constraint",
            ConstraintKind::ForeignKey => "foreign key",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    /// pg_get_constraintdef: actions, deferrability and NOT VALID included.
    pub definition: String,
    /// For a primary key or unique constraint: its index's definition after
    /// "ON <table> " (e.g. "USING btree (email)"), to build it concurrently.
    pub index_tail: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// pg_get_indexdef after "ON <table> ": method, keys, INCLUDE, WITH, WHERE.
    pub tail: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnumType {
    pub name: String,
    /// The labels as stored (not quoted), in sort order.
    pub values: Vec<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub name: String,
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    /// (table, column) of OWNED BY.
    pub owned_by: Option<(String, String)>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub name: String,
    pub materialized: bool,
    /// pg_get_viewdef, without its final semicolon.
    pub definition: String,
    /// Tables and views of the same namespace it reads.
    pub depends_on: Vec<String>,
    pub comment: Option<String>,
}

/// `'text'` as a standard-conforming SQL literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A comment's literal, or NULL.
pub fn comment_literal(comment: Option<&str>) -> String {
    comment.map_or_else(|| "NULL".to_string(), literal)
}
