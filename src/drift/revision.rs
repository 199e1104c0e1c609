//! The sections of a revision made from recorded drift (migrate_revision_from_drift).
//! Pure: the pgrx layer reads the rows and the parse trees; this module writes
//! the upgrade (the recorded statements, in order, each under a comment saying
//! who ran it and when) and the downgrade (their mechanical inverses, or none
//! and a comment naming what has no inverse).

use crate::revisions::inverse::{self, Change};

/// One recorded command, as the revision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub drift_id: i64,
    pub command_tag: String,
    pub object_identity: Option<String>,
    pub performed_by: String,
    pub occurred_at: String,
    pub statement: String,
    /// What the statement changed, as far as inverting it needs (one per
    /// ALTER TABLE subcommand).
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sections {
    pub upgrade: String,
    /// None: some change has no inverse; the upgrade ends with a comment naming it.
    pub downgrade: Option<String>,
}

/// The upgrade and downgrade of the revision that reproduces `entries`.
pub fn sections(entries: &[Entry]) -> Sections {
    let mut upgrade = String::new();
    for entry in entries {
        crate::revisions::check_interrupts();
        let object = entry.object_identity.as_deref().map(|o| format!(" {}", one_line(o))).unwrap_or_default();
        upgrade.push_str(&format!(
            "-- drift {}: {}{} by {} at {}\n",
            entry.drift_id,
            entry.command_tag,
            object,
            one_line(&entry.performed_by),
            one_line(&entry.occurred_at)
        ));
        upgrade.push_str(entry.statement.trim_end());
        if !entry.statement.trim_end().ends_with(';') {
            upgrade.push(';');
        }
        upgrade.push_str("\n\n");
    }
    let changes: Vec<Change> = entries.iter().flat_map(|e| e.changes.iter().cloned()).collect();
    let downgrade = match inverse::downgrade(&changes) {
        Ok(statements) => Some(statements.join("\n")),
        Err(missing) => {
            upgrade.push_str(&inverse::not_inverted_comment(&missing));
            None
        }
    };
    Sections { upgrade: upgrade.trim_end().to_string() + "\n", downgrade }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revisions::inverse::{Name, ObjectKind};

    fn entry(id: i64, statement: &str, changes: Vec<Change>) -> Entry {
        Entry {
            drift_id: id,
            command_tag: "CREATE TABLE".into(),
            object_identity: Some("public.t".into()),
            performed_by: "alice".into(),
            occurred_at: "2026-12-02 03:00:00+00".into(),
            statement: statement.into(),
            changes,
        }
    }

    #[test]
    fn statements_in_order_and_inverses_backwards() {
        let t = Name::new(None, "t");
        let sections = sections(&[
            entry(1, "CREATE TABLE t (id int)", vec![Change::Create { kind: ObjectKind::Table, name: t.clone(), if_not_exists: false }]),
            entry(2, "ALTER TABLE t ADD COLUMN b text;", vec![Change::AddColumn { table: t, column: "b".into() }]),
        ]);
        assert_eq!(
            sections.upgrade,
            "-- drift 1: CREATE TABLE public.t by alice at 2026-12-02 03:00:00+00\nCREATE TABLE t (id int);\n\n\
             -- drift 2: CREATE TABLE public.t by alice at 2026-12-02 03:00:00+00\nALTER TABLE t ADD COLUMN b text;\n"
        );
        assert_eq!(sections.downgrade.as_deref(), Some("ALTER TABLE t DROP COLUMN b;\nDROP TABLE t;"));
    }

    #[test]
    fn no_downgrade_when_a_change_has_no_inverse() {
        let sections = sections(&[
            entry(1, "CREATE TABLE t (id int)", vec![Change::Create { kind: ObjectKind::Table, name: Name::new(None, "t"), if_not_exists: false }]),
            entry(2, "DROP TABLE old", vec![Change::Other { what: "DROP TABLE public.old".into() }]),
        ]);
        assert_eq!(sections.downgrade, None);
        assert!(sections.upgrade.contains("DROP TABLE old;\n"), "{}", sections.upgrade);
        assert!(sections.upgrade.contains("--   DROP TABLE public.old: pg_migrate knows no mechanical inverse"), "{}", sections.upgrade);
    }
}
