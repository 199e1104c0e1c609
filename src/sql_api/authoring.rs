//! Writing revisions from psql: migrate_revision(), migrate_merge(),
//! migrate_unload(). A new revision is rendered by `revisions::writer` and then
//! loaded through the same path as migrate_load (checks, checksum, event), so
//! the text returned is exactly what was loaded and what the DBA saves.

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::engine::{acquire_lock, LockScope};
use crate::errors::{raise, raise_graph_error, raise_placement_error, OrRaise};
use crate::revisions::authoring::{
    merge_parents_for, parents_for_new, resolve_dependencies, revision_id_from_uuid, unload_refusal, UnloadRefusal,
};
use crate::revisions::graph::RevisionGraph;
use crate::revisions::parser::MigrationFile;
use crate::revisions::writer::{self, WriteError};
use crate::revisions::list_for_message;
use crate::sql_api::load::{load_sources, Source};
use crate::store;

/// What the author of a new revision chooses. The id, the parents (from
/// `head`) and the Create Date are made by [`create_revision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionSpec {
    pub message: String,
    pub upgrade: String,
    /// None: no downgrade section (the revision cannot be downgraded).
    pub downgrade: Option<String>,
    /// Where the revision goes: `head`, `<label>@head`, a revision (id,
    /// unique prefix or branch label) or `base` for a new root.
    pub head: String,
    /// Allow `head` to name a revision that is not a head (a new branch), as
    /// `alembic revision --splice`.
    pub splice: bool,
    pub branch_labels: Vec<String>,
    /// Revision ids, unique prefixes or branch labels; stored as full ids.
    pub depends_on: Vec<String>,
    pub transactional: bool,
    /// `-- Allow: <rule> <reason>` header lines.
    pub allow: Vec<String>,
}

impl Default for RevisionSpec {
    fn default() -> Self {
        RevisionSpec {
            message: String::new(),
            upgrade: String::new(),
            downgrade: None,
            head: "head".into(),
            splice: false,
            branch_labels: Vec::new(),
            depends_on: Vec::new(),
            transactional: true,
            allow: Vec::new(),
        }
    }
}

/// A revision that was written and loaded (not applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRevision {
    pub revision: String,
    /// Alembic's `<revision>_<slug>.sql`.
    pub file_name: String,
    /// The file's full text, exactly as loaded.
    pub source: String,
}

/// Create a revision from `spec` on top of the graph and load it, in the
/// caller's transaction and under the migration lock. Refusals are ERRORs
/// (nothing is loaded). The event is "revision".
pub fn create_revision(spec: &RevisionSpec) -> NewRevision {
    // The simplest mistake first: it needs no look at the graph.
    writer::check_message(&spec.message).unwrap_or_else(|error| raise_write_error(&error));
    let file = Spi::connect(|client| {
        acquire_lock(client, LockScope::Transaction);
        let loaded = store::load_graph(client);
        let graph = &loaded.graph;
        let parents = parents_for_new(graph, &spec.head, spec.splice).unwrap_or_else(|e| raise_placement_error(&e));
        let depends_on = resolve_dependencies(graph, &spec.depends_on).unwrap_or_else(|e| raise_graph_error(&e));
        MigrationFile {
            revision_id: new_revision_id(client, graph),
            message: spec.message.clone(),
            down_revisions: parents,
            branch_labels: spec.branch_labels.clone(),
            depends_on,
            transactional: spec.transactional,
            create_date: Some(create_date(client)),
            allow: spec.allow.clone(),
            upgrade_sql: spec.upgrade.clone(),
            downgrade_sql: spec.downgrade.clone(),
            ..MigrationFile::default()
        }
    });
    write_and_load(&file, "revision")
}

/// Render `file`, load it as migrate_load does, and return what was loaded.
fn write_and_load(file: &MigrationFile, action: &str) -> NewRevision {
    let source = writer::render(file).unwrap_or_else(|error| raise_write_error(&error));
    let file_name = writer::file_name(&file.revision_id, file.message.trim());
    load_sources(vec![Source { text: source.clone(), file: Some(file_name.clone()) }], false, action);
    NewRevision { revision: file.revision_id.clone(), file_name, source }
}

fn raise_write_error(error: &WriteError) -> ! {
    let code = match error {
        WriteError::EmptyMessage => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        WriteError::InvalidIdentifier(_) => PgSqlErrorCode::ERRCODE_INVALID_NAME,
        WriteError::ControlCharacter { .. } => PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        WriteError::DoesNotReadBack { .. } => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
    };
    raise(code, error.message(), Some("Nothing was written or loaded.".into()), Some(error.hint()))
}

/// A random id no revision or branch label uses yet.
fn new_revision_id(client: &SpiClient<'_>, graph: &RevisionGraph) -> String {
    loop {
        pgrx::check_for_interrupts!();
        let uuid: String = client
            .select("SELECT pg_catalog.gen_random_uuid()::pg_catalog.text", None, &[])
            .and_then(|rows| rows.first().get_one())
            .or_raise("generate a revision id")
            .unwrap_or_default();
        let id = revision_id_from_uuid(&uuid);
        if graph.resolve_revision(&id).is_err() {
            return id;
        }
    }
}

/// Now, as Alembic writes it with a timezone configured: 2026-12-02 15:04:05.123456+00:00.
fn create_date(client: &SpiClient<'_>) -> String {
    client
        .select(
            "SELECT pg_catalog.to_char(pg_catalog.clock_timestamp(), 'YYYY-MM-DD HH24:MI:SS.USTZH:TZM')",
            None,
            &[],
        )
        .and_then(|rows| rows.first().get_one())
        .or_raise("read the clock")
        .unwrap_or_default()
}

/// A NULL where a value is needed, refused with the argument's name.
fn required<T>(value: Option<T>, function: &str, argument: &str, hint: &str) -> T {
    value.unwrap_or_else(|| {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{function}: {argument} must not be NULL"),
            Some("Nothing was written or loaded.".into()),
            Some(hint.to_string()),
        )
    })
}

fn names(values: Option<Vec<Option<String>>>, function: &str, argument: &str) -> Vec<String> {
    values
        .unwrap_or_default()
        .into_iter()
        .map(|value| required(value, function, &format!("an element of {argument}"), "Leave NULLs out of the array."))
        .collect()
}

fn row(new: NewRevision) -> TableIterator<'static, (String, String, String)> {
    TableIterator::once((new.revision, new.file_name, new.source))
}

/// Write and load a new revision, as `alembic revision -m message` does.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn migrate_revision(
    message: Option<&str>,
    upgrade: default!(Option<&str>, "NULL"),
    downgrade: default!(Option<&str>, "NULL"),
    head: default!(Option<&str>, "'head'"),
    branch_label: default!(Option<&str>, "NULL"),
    depends_on: default!(Option<Vec<Option<String>>>, "NULL"),
    transactional: default!(Option<bool>, "true"),
    splice: default!(Option<bool>, "false"),
    allow: default!(Option<Vec<Option<String>>>, "NULL"),
) -> TableIterator<'static, (name!(revision, String), name!(file_name, String), name!(source, String))> {
    const F: &str = "migrate_revision";
    let message = required(message, F, "message", "Say in a few words what the revision does.");
    // A revision written with nothing in it is a template to fill in: both
    // sections, empty. With an upgrade but no downgrade, there is no
    // downgrade section, so nothing pretends to undo the upgrade.
    let downgrade = match (upgrade, downgrade) {
        (None, None) => Some(String::new()),
        (_, downgrade) => downgrade.map(str::to_string),
    };
    let spec = RevisionSpec {
        message: message.to_string(),
        upgrade: upgrade.unwrap_or_default().to_string(),
        downgrade,
        head: required(head, F, "head", "Use 'head', '<label>@head', a revision, or 'base'.").to_string(),
        splice: required(splice, F, "splice", "Use true or false."),
        branch_labels: branch_label.map(|label| vec![label.trim().to_string()]).unwrap_or_default(),
        depends_on: names(depends_on, F, "depends_on"),
        transactional: required(transactional, F, "transactional", "Use true or false."),
        allow: names(allow, F, "allow"),
    };
    row(create_revision(&spec))
}

/// Write and load a revision that merges `inputs` (each `heads`, `head`,
/// `<label>@head` or a revision), as `alembic merge` does. Its sections are
/// empty. The message becomes the file's first header line, so control
/// characters (a line break would end it) become spaces.
fn create_merge(inputs: &[String], message: &str, branch_label: Option<&str>) -> NewRevision {
    let file = Spi::connect(|client| {
        acquire_lock(client, LockScope::Transaction);
        let loaded = store::load_graph(client);
        let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let parents = merge_parents_for(&loaded.graph, &names).unwrap_or_else(|e| raise_placement_error(&e));
        MigrationFile {
            revision_id: new_revision_id(client, &loaded.graph),
            message: message.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect(),
            down_revisions: parents,
            branch_labels: branch_label.map(|label| vec![label.trim().to_string()]).unwrap_or_default(),
            create_date: Some(create_date(client)),
            downgrade_sql: Some(String::new()),
            ..MigrationFile::default()
        }
    });
    write_and_load(&file, "merge")
}

/// Merge the revisions of an array: ARRAY['heads'], ARRAY['f05c', '6a1c'].
#[pg_extern(volatile, name = "migrate_merge")]
#[search_path(pg_catalog, pg_temp)]
fn migrate_merge_revisions(
    revisions: Option<Vec<Option<String>>>,
    message: default!(Option<&str>, "'merge heads'"),
    branch_label: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(revision, String), name!(file_name, String), name!(source, String))> {
    const F: &str = "migrate_merge";
    let inputs = names(Some(required(revisions, F, "revisions", "Give the revisions to merge, or 'heads'.")), F, "revisions");
    let message = required(message, F, "message", "Say what the merge joins, or leave the default 'merge heads'.");
    row(create_merge(&inputs, message, branch_label))
}

/// Merge the revisions named in one text, separated by commas or spaces:
/// migrate_merge() and migrate_merge('heads') are `alembic merge heads`.
#[pg_extern(volatile, name = "migrate_merge")]
#[search_path(pg_catalog, pg_temp)]
fn migrate_merge_named(
    revisions: default!(Option<&str>, "'heads'"),
    message: default!(Option<&str>, "'merge heads'"),
    branch_label: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(revision, String), name!(file_name, String), name!(source, String))> {
    const F: &str = "migrate_merge";
    let revisions = required(revisions, F, "revisions", "Give the revisions to merge, or 'heads'.");
    let inputs: Vec<String> = revisions
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    let message = required(message, F, "message", "Say what the merge joins, or leave the default 'merge heads'.");
    row(create_merge(&inputs, message, branch_label))
}

/// Take a loaded revision back out of the graph: one that is not applied and
/// that nothing revises or depends on. Returns what was removed, so the same
/// text can be loaded again. The event is "unload".
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_unload(revision: Option<&str>) -> TableIterator<'static, (name!(revision, String), name!(file_name, Option<String>), name!(source, String))> {
    let input = required(revision, "migrate_unload", "revision", "Give the id of the revision to unload.");
    let removed = Spi::connect_mut(|client| {
        acquire_lock(client, LockScope::Transaction);
        let loaded = store::load_graph(client);
        let id = loaded.graph.resolve_revision(input.trim()).unwrap_or_else(|e| raise_graph_error(&e)).to_string();
        let applied = client
            .select(
                "SELECT EXISTS (SELECT FROM migrate.applied WHERE revision_id OPERATOR(pg_catalog.=) $1)",
                None,
                &[id.clone().into()],
            )
            .and_then(|rows| rows.first().get_one::<bool>())
            .or_raise("read migrate.applied")
            .unwrap_or(false);
        if let Some(refusal) = unload_refusal(&loaded.graph, &id, applied) {
            let parents = loaded.graph.get(&id).map(|n| n.parents.clone()).unwrap_or_default();
            raise_unload_refusal(&id, &parents, &refusal);
        }
        let row = client
            .update(
                "DELETE FROM migrate.revisions WHERE revision_id OPERATOR(pg_catalog.=) $1
                 RETURNING source_file, source, checksum, message",
                None,
                &[id.clone().into()],
            )
            .or_raise("delete from migrate.revisions");
        let row = row.first();
        let file: Option<String> = row.get(1).or_raise("read a file name");
        let source: String = row.get(2).or_raise("read a source").unwrap_or_default();
        let checksum: Option<String> = row.get(3).or_raise("read a checksum");
        let message: String = row.get(4).or_raise("read a message").unwrap_or_default();
        let detail = match &file {
            Some(name) => format!("{message} (file {name})"),
            None => message,
        };
        store::log_event(client, "unload", Some(&id), checksum.as_deref(), Some(detail));
        (id, file, source)
    });
    TableIterator::once(removed)
}

fn raise_unload_refusal(id: &str, parents: &[String], refusal: &UnloadRefusal) -> ! {
    match refusal {
        UnloadRefusal::Applied => {
            let downgrade = if parents.len() <= 1 {
                // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
                format!("SELECT * FROM migrate_downgrade('{id}-1');")
            } else {
                "migrate_downgrade() to below it".to_string()
            };
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("revision {id} is applied, so it cannot be unloaded"),
                Some("Its changes are in this database and migrate.applied records it; without its definition it could not be downgraded. Nothing was unloaded.".into()),
                Some(format!("Downgrade it first ({downgrade}), then unload it.")),
            )
        }
        UnloadRefusal::Needed { children, dependents } => {
            let mut needing = Vec::new();
            if !children.is_empty() {
                needing.push(format!("revised by {}", list_for_message(children)));
            }
            if !dependents.is_empty() {
                needing.push(format!("depended on by {}", list_for_message(dependents)));
            }
            raise(
                PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!("revision {id} cannot be unloaded: it is {}", needing.join(" and ")),
                Some("Those revisions would be left naming a revision that is not loaded. Nothing was unloaded.".into()),
                Some("Unload the revisions built on it first (the newest first), or keep it.".into()),
            )
        }
    }
}
