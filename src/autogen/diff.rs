//! The comparison: a live schema and a desired one in, the ordered changes out,
//! each written in its safe form with its downgrade. A change is shaped by
//! whether its table already exists (never by its size: the revision is
//! written on a development database and runs on production's tables).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::*;

/// Where a change runs: the revisions are written in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// ALTER TYPE ... ADD VALUE that later statements use: committed first.
    EnumValues,
    /// Everything that runs in one transaction.
    Main,
    /// CREATE / DROP INDEX CONCURRENTLY, outside a transaction.
    Concurrent,
    /// The placeholder where existing rows get their value.
    Backfill,
    /// VALIDATE, SET NOT NULL and the constraints adopting a concurrent index.
    Finish,
}

// Order inside a phase (see `Step::bucket`).
// Views go first (their text names the old columns), then renames, so a
// downgrade renames back before it recreates the old views.
const DROP_VIEW: u8 = 0;
const RENAME: u8 = 1;
const DROP_FOREIGN_KEY: u8 = 2;
const DROP_CONSTRAINT: u8 = 3;
const RELAX_COLUMN: u8 = 4;
const DROP_COLUMN: u8 = 5;
const DROP_TABLE: u8 = 6;
const CREATE_TYPE: u8 = 7;
const CREATE_SEQUENCE: u8 = 8;
const CREATE_TABLE: u8 = 9;
const ADD_COLUMN: u8 = 10;
const ALTER_COLUMN: u8 = 11;
const ALTER_SEQUENCE: u8 = 12;
const ADD_CONSTRAINT: u8 = 13;
const ADD_FOREIGN_KEY: u8 = 14;
const DROP_SEQUENCE: u8 = 16;
const DROP_TYPE: u8 = 17;
const CREATE_VIEW: u8 = 18;
const COMMENT: u8 = 19;
// Phase::Concurrent
const DROP_INDEX: u8 = 0;
const CREATE_INDEX: u8 = 1;
// Phase::Finish
const VALIDATE: u8 = 0;
const IDENTITY: u8 = 1;
const ADOPT_INDEX: u8 = 2;

/// One difference and what takes the live schema across it and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub phase: Phase,
    pub bucket: u8,
    /// "column public.users.name": what migrate_check reports.
    pub object: String,
    pub difference: String,
    /// Statements, without their final semicolon.
    pub up: Vec<String>,
    /// Run in this order when going back.
    pub down: Vec<String>,
    /// `-- Review:` lines written above the statements.
    pub review: Vec<String>,
    /// `-- Allow:` header lines the revision needs (a drop the desired schema asks for).
    pub allow: Vec<String>,
}

/// A difference no statement can make: reported, and autogenerate refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub object: String,
    pub difference: String,
    pub explanation: String,
}

/// An object of a kind that is not compared, present on one side only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncompared {
    pub object: String,
    pub difference: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub steps: Vec<Step>,
    pub refusals: Vec<Refusal>,
    pub uncompared: Vec<Uncompared>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.refusals.is_empty() && self.uncompared.is_empty()
    }

    /// (object, difference) rows, in the order the changes would run.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> =
            self.steps.iter().map(|s| (s.object.clone(), s.difference.clone())).collect();
        rows.extend(self.refusals.iter().map(|r| (r.object.clone(), format!("{} (cannot be generated: {})", r.difference, r.explanation))));
        rows.extend(self.uncompared.iter().map(|u| (u.object.clone(), u.difference.clone())));
        rows
    }
}

/// Compare `live` with `desired`; `schema` is the quoted namespace name the
/// statements qualify tables with.
pub fn diff(live: &Schema, desired: &Schema, schema: &str) -> Diff {
    let mut out = Builder { schema: schema.to_string(), diff: Diff::default(), enum_names: BTreeSet::new() };
    out.compare(live, desired);
    let mut diff = out.diff;
    // A stable sort: inside a bucket, the order the comparison found them in.
    diff.steps.sort_by_key(|s| (s.phase, s.bucket));
    diff
}

struct Builder {
    schema: String,
    diff: Diff,
    enum_names: BTreeSet<String>,
}

/// A name as written inside an identifier: quotes taken off.
pub fn unquote(name: &str) -> String {
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => name.to_string(),
    }
}

/// A new identifier made from raw parts: always quoted, cut to 63 bytes.
fn made_name(raw: &str) -> String {
    let mut cut = raw.to_string();
    while cut.len() > 63 {
        cut.pop();
    }
    format!("\"{}\"", cut.replace('"', "\"\""))
}

fn not_null_check_name(table: &str, column: &str) -> String {
    made_name(&format!("{}_{}_not_null", unquote(table), unquote(column)))
}

/// Pair what disappeared with what appeared when exactly one of each fits,
/// trying the tests in order (strictest first) on what is still unpaired.
fn unique_pairs<'a, T>(gone: &[&'a T], new: &[&'a T], same: impl Fn(&T, &T) -> bool) -> Vec<(&'a T, &'a T)> {
    pair_up(gone, new, &[&same])
}

fn pair_up<'a, T>(gone: &[&'a T], new: &[&'a T], tests: &[&dyn Fn(&T, &T) -> bool]) -> Vec<(&'a T, &'a T)> {
    let mut pairs: Vec<(&'a T, &'a T)> = Vec::new();
    let mut gone: Vec<&'a T> = gone.to_vec();
    let mut new: Vec<&'a T> = new.to_vec();
    for same in tests {
        let mut found = Vec::new();
        for n in &new {
            crate::revisions::check_interrupts();
            let fits: Vec<&&T> = gone.iter().filter(|g| same(g, n)).collect();
            if fits.len() != 1 {
                continue;
            }
            let g = *fits[0];
            if new.iter().filter(|other| same(g, other)).count() == 1 {
                found.push((g, *n));
            }
        }
        gone.retain(|g| !found.iter().any(|(f, _)| std::ptr::eq(*f, *g)));
        new.retain(|n| !found.iter().any(|(_, f)| std::ptr::eq(*f, *n)));
        pairs.extend(found);
    }
    pairs
}

fn column_shape(table: &Table) -> Vec<(String, String)> {
    let mut shape: Vec<(String, String)> = table.columns.iter().map(|c| (c.name.clone(), c.type_sql.clone())).collect();
    shape.sort();
    shape
}

impl Builder {
    fn q(&self, name: &str) -> String {
        format!("{}.{}", self.schema, name)
    }

    fn push(&mut self, step: Step) {
        self.diff.steps.push(step);
    }

    fn step(&self, phase: Phase, bucket: u8, object: String, difference: String) -> Step {
        Step { phase, bucket, object, difference, up: vec![], down: vec![], review: vec![], allow: vec![] }
    }

    fn compare(&mut self, live: &Schema, desired: &Schema) {
        self.enum_names = desired.enums.keys().chain(live.enums.keys()).cloned().collect();
        self.compare_enums(live, desired);

        // Tables: by name, then a dropped and an added one of the same shape are a rename.
        let gone: Vec<&Table> = live.tables.values().filter(|t| !desired.tables.contains_key(&t.name)).collect();
        let new: Vec<&Table> = desired.tables.values().filter(|t| !live.tables.contains_key(&t.name)).collect();
        let renames = unique_pairs(&gone, &new, |a, b| column_shape(a) == column_shape(b));
        let renamed_from: HashMap<&str, &str> = renames.iter().map(|(g, n)| (n.name.as_str(), g.name.as_str())).collect();
        let renamed_to: HashMap<&str, &str> = renames.iter().map(|(g, n)| (g.name.as_str(), n.name.as_str())).collect();

        // Sequences renamed with their table or column, so that defaults compare equal.
        let sequence_renames = self.sequence_renames(live, desired, &renamed_to);

        for (old, new_table) in &renames {
            let mut step = self.step(Phase::Main, RENAME, format!("table {}", self.q(&old.name)), format!("renamed to {} (same columns)", new_table.name));
            step.up.push(format!("ALTER TABLE {} RENAME TO {}", self.q(&old.name), new_table.name));
            step.down.push(format!("ALTER TABLE {} RENAME TO {}", self.q(&new_table.name), old.name));
            step.review.push(format!(
                "{} is not in the desired schema and {} has the same columns: written as a rename, which keeps the rows. \
                 If a new table is really meant, replace this with DROP TABLE {} and CREATE TABLE {}.",
                old.name, new_table.name, self.q(&old.name), self.q(&new_table.name)
            ));
            self.push(step);
        }
        for (old, new_seq) in &sequence_renames {
            let mut step = self.step(Phase::Main, RENAME, format!("sequence {}", self.q(old)), format!("renamed to {new_seq}"));
            step.up.push(format!("ALTER SEQUENCE {} RENAME TO {}", self.q(old), new_seq));
            step.down.push(format!("ALTER SEQUENCE {} RENAME TO {}", self.q(new_seq), old));
            self.push(step);
        }

        let dropped_tables: BTreeSet<&str> =
            gone.iter().map(|t| t.name.as_str()).filter(|n| !renamed_to.contains_key(n)).collect();
        let mut dropped_columns: BTreeSet<(String, String)> = BTreeSet::new();
        let mut reshaped_tables: BTreeSet<String> = BTreeSet::new();

        for wanted in desired.tables.values() {
            crate::revisions::check_interrupts();
            let existing = live
                .tables
                .get(&wanted.name)
                .or_else(|| renamed_from.get(wanted.name.as_str()).and_then(|old| live.tables.get(*old)));
            match existing {
                Some(current) => {
                    let reshaped = self.compare_table(current, wanted, &sequence_renames, &mut dropped_columns);
                    if reshaped {
                        reshaped_tables.insert(wanted.name.clone());
                        reshaped_tables.insert(current.name.clone());
                    }
                }
                None => self.create_table(wanted, desired),
            }
        }
        for name in &dropped_tables {
            self.drop_table(&live.tables[*name], live);
        }

        self.compare_sequences(live, desired, &sequence_renames, &dropped_tables, &dropped_columns, &renamed_to);
        self.compare_views(live, desired, &dropped_tables, &reshaped_tables);
        self.compare_uncompared(live, desired);
        self.place_enum_values();
    }

    // ---- enums ------------------------------------------------------------

    fn compare_enums(&mut self, live: &Schema, desired: &Schema) {
        for wanted in desired.enums.values() {
            crate::revisions::check_interrupts();
            let object = format!("type {}", self.q(&wanted.name));
            let Some(current) = live.enums.get(&wanted.name) else {
                let mut step = self.step(Phase::Main, CREATE_TYPE, object, "only in the desired schema".into());
                step.up.push(self.create_enum(wanted));
                if wanted.comment.is_some() {
                    step.up.push(format!("COMMENT ON TYPE {} IS {}", self.q(&wanted.name), comment_literal(wanted.comment.as_deref())));
                }
                step.down.push(format!("DROP TYPE {}", self.q(&wanted.name)));
                self.push(step);
                continue;
            };
            let removed: Vec<&String> = current.values.iter().filter(|v| !wanted.values.contains(v)).collect();
            if !removed.is_empty() {
                self.diff.refusals.push(Refusal {
                    object: object.clone(),
                    difference: format!("values {} are not in the desired type", removed.iter().map(|v| literal(v)).collect::<Vec<_>>().join(", ")),
                    explanation: "PostgreSQL cannot drop a value from an enum type. Create a new type without it, \
                                  move each column to it (ALTER COLUMN ... TYPE new USING col::text::new), then drop the old type, \
                                  in a revision written by hand."
                        .into(),
                });
                continue;
            }
            let common_live: Vec<&String> = current.values.iter().collect();
            let common_wanted: Vec<&String> = wanted.values.iter().filter(|v| current.values.contains(v)).collect();
            if common_live != common_wanted {
                self.diff.refusals.push(Refusal {
                    object: object.clone(),
                    difference: "the values are in another order".into(),
                    explanation: "PostgreSQL cannot reorder the values of an enum type; a new type is needed (a revision written by hand).".into(),
                });
                continue;
            }
            for (position, value) in wanted.values.iter().enumerate() {
                if current.values.contains(value) {
                    continue;
                }
                let placement = match position.checked_sub(1).map(|p| &wanted.values[p]) {
                    Some(previous) => format!(" AFTER {}", literal(previous)),
                    None => match wanted.values.get(1) {
                        Some(next) => format!(" BEFORE {}", literal(next)),
                        None => String::new(),
                    },
                };
                let mut step = self.step(Phase::Main, CREATE_TYPE, object.clone(), format!("value {} only in the desired type", literal(value)));
                step.up.push(format!("ALTER TYPE {} ADD VALUE IF NOT EXISTS {}{placement}", self.q(&wanted.name), literal(value)));
                step.review.push(format!(
                    "PostgreSQL cannot drop an enum value: the downgrade leaves {} in {}.",
                    literal(value),
                    wanted.name
                ));
                self.push(step);
            }
            self.comment_step(&object, "TYPE", &self.q(&wanted.name), current.comment.as_deref(), wanted.comment.as_deref());
        }
        for current in live.enums.values().filter(|e| !desired.enums.contains_key(&e.name)) {
            let mut step = self.step(Phase::Main, DROP_TYPE, format!("type {}", self.q(&current.name)), "not in the desired schema".into());
            step.up.push(format!("DROP TYPE {}", self.q(&current.name)));
            step.down.push(self.create_enum(current));
            if current.comment.is_some() {
                step.down.push(format!("COMMENT ON TYPE {} IS {}", self.q(&current.name), comment_literal(current.comment.as_deref())));
            }
            self.push(step);
        }
    }

    fn create_enum(&self, e: &EnumType) -> String {
        let values: Vec<String> = e.values.iter().map(|v| literal(v)).collect();
        format!("CREATE TYPE {} AS ENUM ({})", self.q(&e.name), values.join(", "))
    }

    /// ADD VALUE cannot be used in the transaction that adds it: when any other
    /// change names the type, the values go first, in a revision of their own.
    fn place_enum_values(&mut self) {
        let adds: Vec<usize> = (0..self.diff.steps.len())
            .filter(|&i| self.diff.steps[i].up.iter().any(|s| s.starts_with("ALTER TYPE ") && s.contains(" ADD VALUE ")))
            .collect();
        for index in adds {
            let type_name = self.diff.steps[index].object.trim_start_matches("type ").to_string();
            let bare = type_name.rsplit('.').next().unwrap_or(&type_name).to_string();
            // Our own statements only: a false match merely commits the values earlier.
            let used = self.diff.steps.iter().enumerate().any(|(i, s)| {
                i != index && !s.up.iter().any(|u| u.starts_with("ALTER TYPE ")) && s.up.iter().any(|u| u.contains(&bare))
            });
            if used {
                self.diff.steps[index].phase = Phase::EnumValues;
            }
        }
    }

    // ---- tables -----------------------------------------------------------

    fn column_sql(&self, c: &Column, with_not_null: bool) -> String {
        let mut sql = format!("{} {}", c.name, c.type_sql);
        if let Some(collation) = &c.collation {
            sql.push_str(&format!(" COLLATE {collation}"));
        }
        if let Some(expression) = &c.generated {
            sql.push_str(&format!(" GENERATED ALWAYS AS ({expression}) STORED"));
        }
        if let Some(identity) = c.identity {
            sql.push_str(&format!(" GENERATED {} AS IDENTITY", identity.sql()));
        }
        if let Some(default) = &c.default {
            sql.push_str(&format!(" DEFAULT {default}"));
        }
        if with_not_null && c.not_null && c.identity.is_none() {
            sql.push_str(" NOT NULL");
        }
        sql
    }

    /// CREATE TABLE with its own constraints (foreign keys apart), indexes and comments.
    fn table_statements(&self, t: &Table) -> (Vec<String>, Vec<String>) {
        let columns: Vec<String> = t.columns.iter().map(|c| format!("    {}", self.column_sql(c, true))).collect();
        let mut statements = vec![format!("CREATE TABLE {} (\n{}\n)", self.q(&t.name), columns.join(",\n"))];
        let mut foreign_keys = Vec::new();
        for c in t.constraints.values() {
            let sql = format!("ALTER TABLE {} ADD CONSTRAINT {} {}", self.q(&t.name), c.name, c.definition);
            if c.kind == ConstraintKind::ForeignKey {
                foreign_keys.push(sql);
            } else {
                statements.push(sql);
            }
        }
        for i in t.indexes.values() {
            statements.push(self.create_index(&t.name, i, false));
        }
        if t.comment.is_some() {
            statements.push(format!("COMMENT ON TABLE {} IS {}", self.q(&t.name), comment_literal(t.comment.as_deref())));
        }
        for c in t.columns.iter().filter(|c| c.comment.is_some()) {
            statements.push(format!("COMMENT ON COLUMN {}.{} IS {}", self.q(&t.name), c.name, comment_literal(c.comment.as_deref())));
        }
        for c in t.constraints.values().filter(|c| c.comment.is_some() && c.kind != ConstraintKind::ForeignKey) {
            statements.push(format!("COMMENT ON CONSTRAINT {} ON {} IS {}", c.name, self.q(&t.name), comment_literal(c.comment.as_deref())));
        }
        for i in t.indexes.values().filter(|i| i.comment.is_some()) {
            statements.push(format!("COMMENT ON INDEX {} IS {}", self.q(&i.name), comment_literal(i.comment.as_deref())));
        }
        (statements, foreign_keys)
    }

    fn create_index(&self, table: &str, i: &Index, concurrently: bool) -> String {
        format!(
            "CREATE {}INDEX {}{} ON {} {}",
            if i.unique { "UNIQUE " } else { "" },
            if concurrently { "CONCURRENTLY IF NOT EXISTS " } else { "" },
            i.name,
            self.q(table),
            i.tail
        )
    }

    /// The sequences a table's columns own, created before it (its defaults use them).
    fn owned_sequences<'a>(&self, schema: &'a Schema, table: &str, column: Option<&str>) -> Vec<&'a Sequence> {
        schema
            .sequences
            .values()
            .filter(|s| s.owned_by.as_ref().is_some_and(|(t, c)| t == table && column.is_none_or(|col| col == c)))
            .collect()
    }

    fn create_sequence(&self, s: &Sequence) -> String {
        format!(
            "CREATE SEQUENCE {} AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
            self.q(&s.name),
            s.data_type,
            s.increment,
            s.min,
            s.max,
            s.start,
            s.cache,
            if s.cycle { "CYCLE" } else { "NO CYCLE" }
        )
    }

    fn owned_by_sql(&self, s: &Sequence) -> String {
        match &s.owned_by {
            Some((table, column)) => format!("ALTER SEQUENCE {} OWNED BY {}.{}", self.q(&s.name), self.q(table), column),
            None => format!("ALTER SEQUENCE {} OWNED BY NONE", self.q(&s.name)),
        }
    }

    fn create_table(&mut self, t: &Table, desired: &Schema) {
        let (statements, foreign_keys) = self.table_statements(t);
        let mut step = self.step(Phase::Main, CREATE_TABLE, format!("table {}", self.q(&t.name)), "only in the desired schema".into());
        step.up = statements;
        step.down.push(format!("DROP TABLE {}", self.q(&t.name)));
        step.allow.push(format!("drop_table the downgrade drops {}, which this revision creates (migrate_autogenerate)", unquote(&t.name)));
        self.push(step);
        // Sequences it owns are created (before) and attached (after) by compare_sequences.
        let _ = desired;
        for (name, fk) in t.constraints.values().filter(|c| c.kind == ConstraintKind::ForeignKey).map(|c| c.name.clone()).zip(foreign_keys) {
            let mut step = self.step(Phase::Main, ADD_FOREIGN_KEY, format!("constraint {} on {}", name, self.q(&t.name)), "only in the desired schema".into());
            step.up.push(fk);
            step.down.push(format!("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", self.q(&t.name), name));
            self.push(step);
        }
    }

    fn drop_table(&mut self, t: &Table, live: &Schema) {
        let (mut statements, foreign_keys) = self.table_statements(t);
        let owned = self.owned_sequences(live, &t.name, None);
        let mut down: Vec<String> = owned.iter().map(|s| self.create_sequence(s)).collect();
        down.append(&mut statements);
        down.extend(foreign_keys);
        down.extend(owned.iter().map(|s| self.owned_by_sql(s)));
        let mut step = self.step(Phase::Main, DROP_TABLE, format!("table {}", self.q(&t.name)), "not in the desired schema".into());
        step.up.push(format!("DROP TABLE {}", self.q(&t.name)));
        step.down = down;
        step.review.push(format!(
            "{} is not in the desired schema: DROP TABLE loses its rows, and the downgrade recreates it empty. \
             If it was renamed, write ALTER TABLE {} RENAME TO <new name> instead.",
            t.name,
            self.q(&t.name)
        ));
        step.allow.push(format!("drop_table {} is not in the desired schema (migrate_autogenerate)", unquote(&t.name)));
        self.push(step);
    }

    /// Returns whether columns were dropped or changed type (views on it are rebuilt).
    fn compare_table(
        &mut self,
        current: &Table,
        wanted: &Table,
        sequence_renames: &[(String, String)],
        dropped_columns: &mut BTreeSet<(String, String)>,
    ) -> bool {
        let table = self.q(&wanted.name);
        let mut reshaped = false;

        let gone: Vec<&Column> = current.columns.iter().filter(|c| wanted.column(&c.name).is_none()).collect();
        let new: Vec<&Column> = wanted.columns.iter().filter(|c| current.column(&c.name).is_none()).collect();
        // Same type, and if that leaves a choice, the same NULL-ability and default too.
        let strict = |a: &Column, b: &Column| {
            a.type_sql == b.type_sql && a.collation == b.collation && a.not_null == b.not_null && a.default == b.default
        };
        let loose = |a: &Column, b: &Column| a.type_sql == b.type_sql && a.collation == b.collation;
        let renames = pair_up(&gone, &new, &[&strict, &loose]);
        for (old, new_column) in &renames {
            let mut step = self.step(Phase::Main, RENAME, format!("column {table}.{}", old.name), format!("renamed to {} (same type {})", new_column.name, old.type_sql));
            step.up.push(format!("ALTER TABLE {table} RENAME COLUMN {} TO {}", old.name, new_column.name));
            step.down.push(format!("ALTER TABLE {table} RENAME COLUMN {} TO {}", new_column.name, old.name));
            step.review.push(format!(
                "{table}.{} is not in the desired schema and {} has the same type: written as a rename, which keeps the data. \
                 If a new column is really meant, replace this with ALTER TABLE {table} DROP COLUMN {}, ADD COLUMN {} {}.",
                old.name, new_column.name, old.name, new_column.name, new_column.type_sql
            ));
            self.push(step);
        }
        let renamed_to: HashMap<&str, &Column> = renames.iter().map(|(o, n)| (o.name.as_str(), *n)).collect();
        let renamed_new: BTreeSet<&str> = renames.iter().map(|(_, n)| n.name.as_str()).collect();

        for column in &current.columns {
            crate::revisions::check_interrupts();
            let target = wanted.column(&column.name).or_else(|| renamed_to.get(column.name.as_str()).copied());
            match target {
                Some(target) => reshaped |= self.alter_column(&wanted.name, column, target, sequence_renames),
                None => {
                    reshaped = true;
                    dropped_columns.insert((current.name.clone(), column.name.clone()));
                    self.drop_column(&wanted.name, column);
                }
            }
        }
        for column in wanted.columns.iter().filter(|c| current.column(&c.name).is_none() && !renamed_new.contains(c.name.as_str())) {
            self.add_column(&wanted.name, column);
        }
        self.compare_constraints(current, wanted);
        self.compare_indexes(current, wanted);
        self.comment_step(&format!("table {table}"), "TABLE", &table, current.comment.as_deref(), wanted.comment.as_deref());
        reshaped
    }

    fn drop_column(&mut self, table: &str, column: &Column) {
        let q = self.q(table);
        let mut step = self.step(Phase::Main, DROP_COLUMN, format!("column {q}.{}", column.name), "not in the desired schema".into());
        step.up.push(format!("ALTER TABLE {q} DROP COLUMN {}", column.name));
        let restorable = !column.not_null || column.default.is_some() || column.identity.is_some() || column.generated.is_some();
        step.down.push(format!("ALTER TABLE {q} ADD COLUMN {}", self.column_sql(column, restorable)));
        if column.comment.is_some() {
            step.down.push(format!("COMMENT ON COLUMN {q}.{} IS {}", column.name, comment_literal(column.comment.as_deref())));
        }
        step.review.push(format!(
            "{q}.{} is not in the desired schema: DROP COLUMN loses its data, and the downgrade adds it back empty{}.",
            column.name,
            if restorable { "" } else { " (and nullable: it was NOT NULL without a default)" }
        ));
        step.allow.push(format!("drop_column {}.{} is not in the desired schema (migrate_autogenerate)", unquote(table), unquote(&column.name)));
        self.push(step);
    }

    fn add_column(&mut self, table: &str, column: &Column) {
        let q = self.q(table);
        let object = format!("column {q}.{}", column.name);
        let mut step = self.step(Phase::Main, ADD_COLUMN, object.clone(), "only in the desired schema".into());
        step.down.push(format!("ALTER TABLE {q} DROP COLUMN {}", column.name));
        step.allow.push(format!(
            "drop_column the downgrade drops {}.{}, which this revision adds (migrate_autogenerate)",
            unquote(table),
            unquote(&column.name)
        ));
        let needs_backfill = column.not_null && column.default.is_none() && column.identity.is_none() && column.generated.is_none();
        if needs_backfill {
            step.up.push(format!("ALTER TABLE {q} ADD COLUMN {}", self.column_sql(column, false)));
            step.review.push(format!("{q}.{} is NOT NULL with no default: added nullable here, filled in by the next revision, then made NOT NULL.", column.name));
            self.push(step);
            let mut fill = self.step(Phase::Backfill, 0, object.clone(), "existing rows need a value before NOT NULL".into());
            fill.review.push(format!("fill {q}.{} for the rows that exist, before the next revision makes it NOT NULL. For example:", column.name));
            fill.review.push(format!( // sql-lint: allow(a line of the user's revision, written for them to fill in)
                "  CALL migrate_backfill('{}', $${} = <value>$$, $${} IS NULL$$);",
                q.replace('\'', "''"),
                column.name,
                column.name
            ));
            fill.review.push("(replace this comment with that statement; an UPDATE works too on a small table)".into());
            self.push(fill);
            self.set_not_null_finish(table, &column.name, &object, "only in the desired schema (NOT NULL)".into(), false);
        } else {
            step.up.push(format!("ALTER TABLE {q} ADD COLUMN {}", self.column_sql(column, true)));
            if column.identity.is_some() || column.generated.is_some() {
                step.review.push(format!("adding {q}.{} (identity or generated) rewrites the table under an ACCESS EXCLUSIVE lock.", column.name));
            }
            self.push(step);
        }
        if column.comment.is_some() {
            let mut c = self.step(Phase::Finish, COMMENT, object, "comment only in the desired schema".into());
            c.up.push(format!("COMMENT ON COLUMN {q}.{} IS {}", column.name, comment_literal(column.comment.as_deref())));
            self.push(c);
        }
    }

    /// SET NOT NULL on an existing column through a validated check: the
    /// check is added NOT VALID in the main revision (`add_check`) or here,
    /// validated without blocking writes, then SET NOT NULL uses it.
    fn set_not_null_finish(&mut self, table: &str, column: &str, object: &str, difference: String, check_in_main: bool) {
        let q = self.q(table);
        let check = not_null_check_name(table, column);
        let add = format!("ALTER TABLE {q} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID");
        if check_in_main {
            let mut main = self.step(Phase::Main, ADD_CONSTRAINT, object.to_string(), difference.clone());
            main.up.push(add.clone());
            main.down.push(format!("ALTER TABLE {q} DROP CONSTRAINT IF EXISTS {check}"));
            self.push(main);
        }
        let mut finish = self.step(Phase::Finish, VALIDATE, object.to_string(), difference);
        if !check_in_main {
            finish.up.push(add);
        }
        finish.up.push(format!("ALTER TABLE {q} VALIDATE CONSTRAINT {check}"));
        finish.up.push(format!("ALTER TABLE {q} ALTER COLUMN {column} SET NOT NULL"));
        finish.up.push(format!("ALTER TABLE {q} DROP CONSTRAINT {check}"));
        finish.down.push(format!("ALTER TABLE {q} ALTER COLUMN {column} DROP NOT NULL"));
        self.push(finish);
    }

    /// The statements that make a column NOT NULL again, for a downgrade.
    fn not_null_again(&self, table: &str, column: &str) -> Vec<String> {
        let q = self.q(table);
        let check = not_null_check_name(table, column);
        vec![
            format!("ALTER TABLE {q} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"),
            format!("ALTER TABLE {q} VALIDATE CONSTRAINT {check}"),
            format!("ALTER TABLE {q} ALTER COLUMN {column} SET NOT NULL"),
            format!("ALTER TABLE {q} DROP CONSTRAINT {check}"),
        ]
    }

    /// Returns whether the type changed.
    fn alter_column(&mut self, table: &str, current: &Column, wanted: &Column, sequence_renames: &[(String, String)]) -> bool {
        let q = self.q(table);
        let name = &wanted.name;
        let object = format!("column {q}.{name}");

        if current.generated != wanted.generated {
            match (&current.generated, &wanted.generated) {
                (Some(_), None) => {
                    let mut step = self.step(Phase::Main, ALTER_COLUMN, object.clone(), "generated only in the live schema".into());
                    step.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} DROP EXPRESSION"));
                    step.review.push(format!("{q}.{name} stops being generated; PostgreSQL cannot make a column generated again, so the downgrade leaves it plain."));
                    self.push(step);
                }
                _ => self.diff.refusals.push(Refusal {
                    object: object.clone(),
                    difference: format!(
                        "generated as {}, desired {}",
                        current.generated.as_deref().unwrap_or("(not generated)"),
                        wanted.generated.as_deref().unwrap_or("(not generated)")
                    ),
                    explanation: "PostgreSQL cannot give an existing column a (new) generation expression: drop the column and add it again, in a revision written by hand.".into(),
                }),
            }
        }

        let type_changed = current.type_sql != wanted.type_sql;
        let collation_changed = current.collation != wanted.collation;
        let live_default = current.default.as_deref().map(|d| renamed_default(d, sequence_renames));
        let default_changed = live_default.as_deref() != wanted.default.as_deref();

        // Loosening first (in the main revision, early): identity, default, NOT NULL.
        let mut relax = self.step(Phase::Main, RELAX_COLUMN, object.clone(), String::new());
        let mut relaxed = Vec::new();
        if current.identity.is_some() && wanted.identity.is_none() {
            relax.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} DROP IDENTITY"));
            relax.down.insert(0, format!("ALTER TABLE {q} ALTER COLUMN {name} ADD GENERATED {} AS IDENTITY", current.identity.map_or("", |i| i.sql())));
            relaxed.push("identity only in the live schema".to_string());
        }
        if default_changed && current.default.is_some() {
            relax.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} DROP DEFAULT"));
            relax.down.insert(0, format!("ALTER TABLE {q} ALTER COLUMN {name} SET DEFAULT {}", live_default.clone().unwrap_or_default()));
        }
        if current.not_null && !wanted.not_null && wanted.identity.is_none() {
            relax.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} DROP NOT NULL"));
            let mut again = self.not_null_again(table, name);
            again.append(&mut relax.down);
            relax.down = again;
            relaxed.push("NOT NULL only in the live schema".to_string());
        }
        if !relax.up.is_empty() {
            if default_changed && current.default.is_some() {
                relaxed.push(format!("default {}, desired {}", live_default.as_deref().unwrap_or(""), wanted.default.as_deref().unwrap_or("none")));
            }
            relax.difference = relaxed.join("; ");
            self.push(relax);
        }

        if type_changed || collation_changed {
            let to = |c: &Column| match &c.collation {
                Some(collation) => format!("{} COLLATE {collation}", c.type_sql),
                None if collation_changed => format!("{} COLLATE pg_catalog.\"default\"", c.type_sql),
                None => c.type_sql.clone(),
            };
            let using = |c: &Column| if type_changed { format!(" USING {name}::{}", c.type_sql) } else { String::new() };
            let mut step = self.step(Phase::Main, ALTER_COLUMN, object.clone(), format!("type {}, desired {}", to(current), to(wanted)));
            step.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} TYPE {}{}", to(wanted), using(wanted)));
            step.down.push(format!("ALTER TABLE {q} ALTER COLUMN {name} TYPE {}{}", to(current), using(current)));
            step.review.push(format!(
                "changing the type of {q}.{name} takes an ACCESS EXCLUSIVE lock and rewrites the table (and its indexes) unless the types are binary coercible; check the USING expression."
            ));
            self.push(step);
        }
        if default_changed {
            if let Some(default) = &wanted.default {
                let mut step = self.step(Phase::Main, ALTER_COLUMN, object.clone(), format!("default {}, desired {default}", live_default.as_deref().unwrap_or("none")));
                step.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} SET DEFAULT {default}"));
                step.down.push(format!("ALTER TABLE {q} ALTER COLUMN {name} DROP DEFAULT"));
                self.push(step);
            }
        }
        if !current.not_null && wanted.not_null && wanted.identity.is_none() {
            self.set_not_null_finish(table, name, &object, "NOT NULL only in the desired schema".into(), true);
        }
        match (current.identity, wanted.identity) {
            (None, Some(identity)) => {
                let mut step = self.step(Phase::Finish, IDENTITY, object.clone(), "identity only in the desired schema".into());
                if !current.not_null {
                    step.up.extend(self.not_null_again(table, name));
                }
                step.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} ADD GENERATED {} AS IDENTITY", identity.sql()));
                step.down.push(format!("ALTER TABLE {q} ALTER COLUMN {name} DROP IDENTITY"));
                if !current.not_null {
                    step.down.push(format!("ALTER TABLE {q} ALTER COLUMN {name} DROP NOT NULL"));
                }
                step.review.push(format!(
                    "the identity sequence of {q}.{name} starts at 1: move it past the existing values, e.g. \
                     SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('{}', '{}'), (SELECT max({name}) FROM {q}));",
                    q.replace('\'', "''"),
                    unquote(name).replace('\'', "''")
                ));
                self.push(step);
            }
            (Some(a), Some(b)) if a != b => {
                let mut step = self.step(Phase::Main, ALTER_COLUMN, object.clone(), format!("GENERATED {}, desired GENERATED {}", a.sql(), b.sql()));
                step.up.push(format!("ALTER TABLE {q} ALTER COLUMN {name} SET GENERATED {}", b.sql()));
                step.down.push(format!("ALTER TABLE {q} ALTER COLUMN {name} SET GENERATED {}", a.sql()));
                self.push(step);
            }
            _ => {}
        }
        if current.comment != wanted.comment {
            let target = format!("{q}.{name}");
            self.comment_step(&object, "COLUMN", &target, current.comment.as_deref(), wanted.comment.as_deref());
        }
        type_changed
    }

    // ---- constraints and indexes -----------------------------------------

    fn compare_constraints(&mut self, current: &Table, wanted: &Table) {
        let q = self.q(&wanted.name);
        let gone: Vec<&Constraint> = current.constraints.values().filter(|c| !wanted.constraints.contains_key(&c.name)).collect();
        let new: Vec<&Constraint> = wanted.constraints.values().filter(|c| !current.constraints.contains_key(&c.name)).collect();
        let renames = unique_pairs(&gone, &new, |a, b| a.kind == b.kind && a.definition == b.definition);
        let renamed_old: BTreeSet<&str> = renames.iter().map(|(o, _)| o.name.as_str()).collect();
        let renamed_new: BTreeSet<&str> = renames.iter().map(|(_, n)| n.name.as_str()).collect();
        for (old, new_constraint) in &renames {
            let mut step = self.step(Phase::Main, RENAME, format!("constraint {} on {q}", old.name), format!("renamed to {} (same definition)", new_constraint.name));
            step.up.push(format!("ALTER TABLE {q} RENAME CONSTRAINT {} TO {}", old.name, new_constraint.name));
            step.down.push(format!("ALTER TABLE {q} RENAME CONSTRAINT {} TO {}", new_constraint.name, old.name));
            self.push(step);
            self.comment_on_constraint(&q, &new_constraint.name, old.comment.as_deref(), new_constraint.comment.as_deref());
        }
        for old in current.constraints.values() {
            crate::revisions::check_interrupts();
            match wanted.constraints.get(&old.name) {
                Some(new_constraint) if new_constraint.kind == old.kind && new_constraint.definition == old.definition => {
                    self.comment_on_constraint(&q, &old.name, old.comment.as_deref(), new_constraint.comment.as_deref());
                }
                Some(new_constraint) => {
                    self.drop_constraint(&q, old, "definition differs".into());
                    self.add_constraint(&wanted.name, new_constraint, format!("{}, desired {}", old.definition, new_constraint.definition));
                }
                None if renamed_old.contains(old.name.as_str()) => {}
                None => self.drop_constraint(&q, old, "not in the desired schema".into()),
            }
        }
        for new_constraint in wanted.constraints.values() {
            if !current.constraints.contains_key(&new_constraint.name) && !renamed_new.contains(new_constraint.name.as_str()) {
                self.add_constraint(&wanted.name, new_constraint, "only in the desired schema".into());
            }
        }
    }

    fn comment_on_constraint(&mut self, q: &str, name: &str, current: Option<&str>, wanted: Option<&str>) {
        if current != wanted {
            let mut step = self.step(Phase::Finish, COMMENT, format!("constraint {name} on {q}"), format!("comment {}, desired {}", comment_literal(current), comment_literal(wanted)));
            step.up.push(format!("COMMENT ON CONSTRAINT {name} ON {q} IS {}", comment_literal(wanted)));
            step.down.push(format!("COMMENT ON CONSTRAINT {name} ON {q} IS {}", comment_literal(current)));
            self.push(step);
        }
    }

    /// Statements that add `c` back in a downgrade (not validated under a long lock).
    fn readd_constraint(&self, q: &str, c: &Constraint) -> Vec<String> {
        match c.kind {
            ConstraintKind::Check | ConstraintKind::ForeignKey if !c.definition.ends_with("NOT VALID") => vec![
                format!("ALTER TABLE {q} ADD CONSTRAINT {} {} NOT VALID", c.name, c.definition),
                format!("ALTER TABLE {q} VALIDATE CONSTRAINT {}", c.name),
            ],
            _ => vec![format!("ALTER TABLE {q} ADD CONSTRAINT {} {}", c.name, c.definition)],
        }
    }

    fn drop_constraint(&mut self, q: &str, c: &Constraint, difference: String) {
        let bucket = if c.kind == ConstraintKind::ForeignKey { DROP_FOREIGN_KEY } else { DROP_CONSTRAINT };
        let mut step = self.step(Phase::Main, bucket, format!("constraint {} on {q}", c.name), difference);
        step.up.push(format!("ALTER TABLE {q} DROP CONSTRAINT {}", c.name));
        step.down = self.readd_constraint(q, c);
        if c.comment.is_some() {
            step.down.push(format!("COMMENT ON CONSTRAINT {} ON {q} IS {}", c.name, comment_literal(c.comment.as_deref())));
        }
        self.push(step);
    }

    fn add_constraint(&mut self, table: &str, c: &Constraint, difference: String) {
        let q = self.q(table);
        let object = format!("constraint {} on {q}", c.name);
        match c.kind {
            ConstraintKind::Check | ConstraintKind::ForeignKey => {
                let bucket = if c.kind == ConstraintKind::ForeignKey { ADD_FOREIGN_KEY } else { ADD_CONSTRAINT };
                let mut step = self.step(Phase::Main, bucket, object.clone(), difference.clone());
                let already_not_valid = c.definition.ends_with("NOT VALID");
                step.up.push(format!(
                    "ALTER TABLE {q} ADD CONSTRAINT {} {}{}",
                    c.name,
                    c.definition,
                    if already_not_valid { "" } else { " NOT VALID" }
                ));
                step.down.push(format!("ALTER TABLE {q} DROP CONSTRAINT IF EXISTS {}", c.name));
                self.push(step);
                if !already_not_valid {
                    let mut validate = self.step(Phase::Finish, VALIDATE, object.clone(), difference);
                    validate.up.push(format!("ALTER TABLE {q} VALIDATE CONSTRAINT {}", c.name));
                    self.push(validate);
                }
            }
            ConstraintKind::PrimaryKey | ConstraintKind::Unique if c.index_tail.is_some() => {
                let tail = c.index_tail.clone().unwrap_or_default();
                let mut build = self.step(Phase::Concurrent, CREATE_INDEX, object.clone(), difference.clone());
                build.up.push(format!("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {q} {tail}", c.name));
                build.down.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {}", self.q(&c.name)));
                self.push(build);
                let what = if c.kind == ConstraintKind::PrimaryKey { "PRIMARY KEY" } else { "UNIQUE" };
                let mut adopt = self.step(Phase::Finish, ADOPT_INDEX, object.clone(), difference);
                adopt.up.push(format!("ALTER TABLE {q} ADD CONSTRAINT {} {what} USING INDEX {}{}", c.name, c.name, deferrability(&c.definition)));
                adopt.down.push(format!("ALTER TABLE {q} DROP CONSTRAINT IF EXISTS {}", c.name));
                self.push(adopt);
            }
            _ => {
                let mut step = self.step(Phase::Main, ADD_CONSTRAINT, object.clone(), difference);
                step.up.push(format!("ALTER TABLE {q} ADD CONSTRAINT {} {}", c.name, c.definition));
                step.down.push(format!("ALTER TABLE {q} DROP CONSTRAINT IF EXISTS {}", c.name));
                step.review.push(format!(
                    "{} cannot be added NOT VALID nor from a concurrent index: its index is built under a lock that blocks writes to {q}.",
                    c.kind.describe()
                ));
                self.push(step);
            }
        }
        if c.comment.is_some() {
            self.comment_on_constraint(&q, &c.name, None, c.comment.as_deref());
        }
    }

    fn compare_indexes(&mut self, current: &Table, wanted: &Table) {
        let q = self.q(&wanted.name);
        let gone: Vec<&Index> = current.indexes.values().filter(|i| !wanted.indexes.contains_key(&i.name)).collect();
        let new: Vec<&Index> = wanted.indexes.values().filter(|i| !current.indexes.contains_key(&i.name)).collect();
        let renames = unique_pairs(&gone, &new, |a, b| a.unique == b.unique && a.tail == b.tail);
        let renamed_old: BTreeSet<&str> = renames.iter().map(|(o, _)| o.name.as_str()).collect();
        let renamed_new: BTreeSet<&str> = renames.iter().map(|(_, n)| n.name.as_str()).collect();
        for (old, new_index) in &renames {
            let mut step = self.step(Phase::Main, RENAME, format!("index {}", self.q(&old.name)), format!("renamed to {} (same definition)", new_index.name));
            step.up.push(format!("ALTER INDEX {} RENAME TO {}", self.q(&old.name), new_index.name));
            step.down.push(format!("ALTER INDEX {} RENAME TO {}", self.q(&new_index.name), old.name));
            self.push(step);
            self.comment_step(&format!("index {}", self.q(&new_index.name)), "INDEX", &self.q(&new_index.name), old.comment.as_deref(), new_index.comment.as_deref());
        }
        for old in current.indexes.values() {
            crate::revisions::check_interrupts();
            match wanted.indexes.get(&old.name) {
                Some(new_index) if new_index.unique == old.unique && new_index.tail == old.tail => {
                    self.comment_step(&format!("index {}", self.q(&old.name)), "INDEX", &self.q(&old.name), old.comment.as_deref(), new_index.comment.as_deref());
                }
                Some(new_index) => {
                    let mut step = self.step(Phase::Concurrent, CREATE_INDEX, format!("index {}", self.q(&old.name)), format!("{}, desired {}", old.tail, new_index.tail));
                    step.up.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {}", self.q(&old.name)));
                    step.up.push(self.create_index(&wanted.name, new_index, true));
                    step.down.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {}", self.q(&old.name)));
                    step.down.push(self.create_index(&wanted.name, old, true));
                    self.push(step);
                    self.comment_step(&format!("index {}", self.q(&old.name)), "INDEX", &self.q(&old.name), None, new_index.comment.as_deref());
                }
                None if renamed_old.contains(old.name.as_str()) => {}
                None => {
                    let mut step = self.step(Phase::Concurrent, DROP_INDEX, format!("index {}", self.q(&old.name)), format!("on {q}: not in the desired schema"));
                    step.up.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {}", self.q(&old.name)));
                    step.down.push(self.create_index(&wanted.name, old, true));
                    self.push(step);
                }
            }
        }
        for new_index in wanted.indexes.values() {
            if current.indexes.contains_key(&new_index.name) || renamed_new.contains(new_index.name.as_str()) {
                continue;
            }
            let mut step = self.step(Phase::Concurrent, CREATE_INDEX, format!("index {}", self.q(&new_index.name)), format!("on {q}: only in the desired schema"));
            step.up.push(self.create_index(&wanted.name, new_index, true));
            step.down.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {}", self.q(&new_index.name)));
            self.push(step);
            self.comment_step(&format!("index {}", self.q(&new_index.name)), "INDEX", &self.q(&new_index.name), None, new_index.comment.as_deref());
        }
    }

    fn comment_step(&mut self, object: &str, kind: &str, target: &str, current: Option<&str>, wanted: Option<&str>) {
        if current == wanted {
            return;
        }
        let mut step = self.step(Phase::Finish, COMMENT, object.to_string(), format!("comment {}, desired {}", comment_literal(current), comment_literal(wanted)));
        step.up.push(format!("COMMENT ON {kind} {target} IS {}", comment_literal(wanted)));
        step.down.push(format!("COMMENT ON {kind} {target} IS {}", comment_literal(current)));
        self.push(step);
    }

    // ---- sequences --------------------------------------------------------

    fn sequence_renames(&self, live: &Schema, desired: &Schema, renamed_tables: &HashMap<&str, &str>) -> Vec<(String, String)> {
        let gone: Vec<&Sequence> = live.sequences.values().filter(|s| !desired.sequences.contains_key(&s.name)).collect();
        let new: Vec<&Sequence> = desired.sequences.values().filter(|s| !live.sequences.contains_key(&s.name)).collect();
        let owner = |s: &Sequence| {
            s.owned_by.as_ref().map(|(t, c)| (renamed_tables.get(t.as_str()).map_or(t.clone(), |n| n.to_string()), c.clone()))
        };
        unique_pairs(&gone, &new, |a, b| {
            let (oa, ob) = (owner(a), owner(b));
            oa.is_some() && oa == ob.map(|(t, c)| (t, c)) && a.data_type == b.data_type
        })
        .into_iter()
        .map(|(a, b)| (a.name.clone(), b.name.clone()))
        .collect()
    }

    fn compare_sequences(
        &mut self,
        live: &Schema,
        desired: &Schema,
        renames: &[(String, String)],
        dropped_tables: &BTreeSet<&str>,
        dropped_columns: &BTreeSet<(String, String)>,
        renamed_tables: &HashMap<&str, &str>,
    ) {
        let renamed_new: HashMap<&str, &str> = renames.iter().map(|(o, n)| (n.as_str(), o.as_str())).collect();
        let renamed_old: BTreeSet<&str> = renames.iter().map(|(o, _)| o.as_str()).collect();
        for wanted in desired.sequences.values() {
            crate::revisions::check_interrupts();
            let current = live.sequences.get(&wanted.name).or_else(|| renamed_new.get(wanted.name.as_str()).and_then(|o| live.sequences.get(*o)));
            let object = format!("sequence {}", self.q(&wanted.name));
            match current {
                None => {
                    let mut step = self.step(Phase::Main, CREATE_SEQUENCE, object.clone(), "only in the desired schema".into());
                    step.up.push(self.create_sequence(wanted));
                    if wanted.comment.is_some() {
                        step.up.push(format!("COMMENT ON SEQUENCE {} IS {}", self.q(&wanted.name), comment_literal(wanted.comment.as_deref())));
                    }
                    step.down.push(format!("DROP SEQUENCE IF EXISTS {}", self.q(&wanted.name)));
                    self.push(step);
                    if wanted.owned_by.is_some() {
                        let mut own = self.step(Phase::Main, ALTER_SEQUENCE, object.clone(), "owned by a column in the desired schema".into());
                        own.up.push(self.owned_by_sql(wanted));
                        own.down.push(format!("ALTER SEQUENCE {} OWNED BY NONE", self.q(&wanted.name)));
                        self.push(own);
                    }
                }
                Some(current) => {
                    let params = |s: &Sequence| (s.data_type.clone(), s.start, s.increment, s.min, s.max, s.cache, s.cycle);
                    if params(current) != params(wanted) {
                        let options = |s: &Sequence| {
                            format!(
                                "AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
                                s.data_type, s.increment, s.min, s.max, s.start, s.cache, if s.cycle { "CYCLE" } else { "NO CYCLE" }
                            )
                        };
                        let mut step = self.step(Phase::Main, ALTER_SEQUENCE, object.clone(), format!("{}, desired {}", options(current), options(wanted)));
                        step.up.push(format!("ALTER SEQUENCE {} {}", self.q(&wanted.name), options(wanted)));
                        step.down.push(format!("ALTER SEQUENCE {} {}", self.q(&wanted.name), options(current)));
                        self.push(step);
                    }
                    let current_owner = current.owned_by.as_ref().map(|(t, c)| (renamed_tables.get(t.as_str()).map_or(t.clone(), |n| n.to_string()), c.clone()));
                    if current_owner != wanted.owned_by {
                        let mut step = self.step(Phase::Main, ALTER_SEQUENCE, object.clone(), "owner column differs".into());
                        step.up.push(self.owned_by_sql(wanted));
                        let mut back = current.clone();
                        back.name = wanted.name.clone();
                        back.owned_by = current_owner;
                        step.down.push(self.owned_by_sql(&back));
                        self.push(step);
                    }
                    self.comment_step(&object, "SEQUENCE", &self.q(&wanted.name), current.comment.as_deref(), wanted.comment.as_deref());
                }
            }
        }
        for current in live.sequences.values() {
            if desired.sequences.contains_key(&current.name) || renamed_old.contains(current.name.as_str()) {
                continue;
            }
            // DROP TABLE / DROP COLUMN take the sequences they own with them.
            let taken = current.owned_by.as_ref().is_some_and(|(t, c)| {
                dropped_tables.contains(t.as_str()) || dropped_columns.contains(&(t.clone(), c.clone()))
            });
            if taken {
                continue;
            }
            let mut step = self.step(Phase::Main, DROP_SEQUENCE, format!("sequence {}", self.q(&current.name)), "not in the desired schema".into());
            step.up.push(format!("DROP SEQUENCE {}", self.q(&current.name)));
            step.down.push(self.create_sequence(current));
            if current.owned_by.is_some() {
                step.down.push(self.owned_by_sql(current));
            }
            self.push(step);
        }
    }

    // ---- views ------------------------------------------------------------

    fn compare_views(&mut self, live: &Schema, desired: &Schema, dropped_tables: &BTreeSet<&str>, reshaped: &BTreeSet<String>) {
        let same = |a: &View, b: &View| a.materialized == b.materialized && a.definition == b.definition;
        // Rebuilt: changed or gone, or reading a table whose columns change,
        // and then every view that reads one of those.
        let mut rebuilt: BTreeSet<String> = live
            .views
            .values()
            .filter(|v| {
                desired.views.get(&v.name).is_none_or(|d| !same(v, d))
                    || v.depends_on.iter().any(|t| reshaped.contains(t) || dropped_tables.contains(t.as_str()))
            })
            .map(|v| v.name.clone())
            .collect();
        loop {
            crate::revisions::check_interrupts();
            let more: Vec<String> = live
                .views
                .values()
                .filter(|v| !rebuilt.contains(&v.name) && v.depends_on.iter().any(|d| rebuilt.contains(d)))
                .map(|v| v.name.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            rebuilt.extend(more);
        }
        let kind = |v: &View| if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
        let create = |this: &Builder, v: &View| {
            let mut statements = vec![format!("CREATE {} {} AS\n{}", kind(v), this.q(&v.name), v.definition)];
            if v.comment.is_some() {
                statements.push(format!("COMMENT ON {} {} IS {}", kind(v), this.q(&v.name), comment_literal(v.comment.as_deref())));
            }
            statements
        };
        // Dropped readers first.
        for name in dependency_order(&live.views, &rebuilt).into_iter().rev() {
            let v = &live.views[&name];
            let difference = match desired.views.get(&name) {
                None => "not in the desired schema".to_string(),
                Some(d) if !same(v, d) => "definition differs (dropped and created again)".to_string(),
                Some(_) => "rebuilt: it reads a table or view that changes".to_string(),
            };
            let mut step = self.step(Phase::Main, DROP_VIEW, format!("{} {}", kind(v).to_lowercase(), self.q(&name)), difference);
            step.up.push(format!("DROP {} {}", kind(v), self.q(&name)));
            step.down = create(self, v);
            if v.materialized {
                step.review.push(format!("the materialized view {name} is created again WITH DATA: that runs its query in full."));
            }
            self.push(step);
        }
        let wanted: BTreeSet<String> = desired
            .views
            .values()
            .filter(|v| !live.views.contains_key(&v.name) || rebuilt.contains(&v.name))
            .map(|v| v.name.clone())
            .collect();
        for name in dependency_order(&desired.views, &wanted) {
            let v = &desired.views[&name];
            let difference = if live.views.contains_key(&name) { "created again".to_string() } else { "only in the desired schema".to_string() };
            let mut step = self.step(Phase::Main, CREATE_VIEW, format!("{} {}", kind(v).to_lowercase(), self.q(&name)), difference);
            step.up = create(self, v);
            step.down.push(format!("DROP {} {}", kind(v), self.q(&name)));
            self.push(step);
        }
        for v in desired.views.values() {
            if let Some(current) = live.views.get(&v.name).filter(|_| !rebuilt.contains(&v.name)) {
                self.comment_step(&format!("{} {}", kind(v).to_lowercase(), self.q(&v.name)), kind(v), &self.q(&v.name), current.comment.as_deref(), v.comment.as_deref());
            }
        }
    }

    fn compare_uncompared(&mut self, live: &Schema, desired: &Schema) {
        for (label, kind) in &live.uncompared {
            if !desired.uncompared.contains_key(label) {
                self.diff.uncompared.push(Uncompared {
                    object: label.clone(),
                    difference: format!("only in the live schema; {kind} are not compared, so no revision drops it"),
                });
            }
        }
        for (label, kind) in &desired.uncompared {
            if !live.uncompared.contains_key(label) {
                self.diff.uncompared.push(Uncompared {
                    object: label.clone(),
                    difference: format!("only in the desired DDL; {kind} are not compared: write it in a revision by hand"),
                });
            }
        }
    }
}

/// `names` in an order where each view comes after the views it reads.
fn dependency_order(views: &BTreeMap<String, View>, names: &BTreeSet<String>) -> Vec<String> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    // Iterative depth-first walk: views can be nested deeply.
    for start in names {
        let mut stack: Vec<(String, bool)> = vec![(start.clone(), false)];
        while let Some((name, expanded)) = stack.pop() {
            crate::revisions::check_interrupts();
            if done.contains(&name) {
                continue;
            }
            if expanded {
                done.insert(name.clone());
                order.push(name);
                continue;
            }
            stack.push((name.clone(), true));
            if let Some(v) = views.get(&name) {
                for dep in &v.depends_on {
                    if names.contains(dep) && !done.contains(dep) && dep != &name {
                        stack.push((dep.clone(), false));
                    }
                }
            }
        }
    }
    order
}

/// A live default with the sequences renamed by the same run, as it will read after them.
fn renamed_default(default: &str, renames: &[(String, String)]) -> String {
    let mut text = default.to_string();
    for (old, new) in renames {
        text = text.replace(&format!("nextval({}::regclass)", literal(old)), &format!("nextval({}::regclass)", literal(new)));
    }
    text
}

/// " DEFERRABLE [INITIALLY DEFERRED]" from the end of a constraint definition.
fn deferrability(definition: &str) -> &'static str {
    if definition.ends_with("DEFERRABLE INITIALLY DEFERRED") {
        " DEFERRABLE INITIALLY DEFERRED"
    } else if definition.ends_with("DEFERRABLE") && !definition.ends_with("NOT DEFERRABLE") {
        " DEFERRABLE"
    } else {
        ""
    }
}
