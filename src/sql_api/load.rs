//! Registering migration files: migrate_load(), migrate_load_dir().

use std::collections::{HashMap, HashSet};
use std::path::Path;

use pgrx::prelude::*;

use crate::engine::{acquire_lock, LockScope};
use crate::errors::{raise, raise_graph_error, raise_parse_error, OrRaise};
use crate::revisions::checksum;
use crate::revisions::graph::{RevisionGraph, RevisionNode};
use crate::revisions::parser::{parse_migration, MigrationFile};
use crate::server_sql::{self, line_of, StatementKind};
use crate::store;

/// One file's text and where it came from.
pub struct Source {
    pub text: String,
    pub file: Option<String>,
}

pub struct Loaded {
    pub revision: String,
    pub file: Option<String>,
    pub status: &'static str,
}

/// Register one migration file's text. Returns its revision id.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_load(
    source: Option<&str>,
    file_name: default!(Option<&str>, "NULL"),
    force: default!(bool, false),
) -> String {
    let Some(source) = source else {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "migrate_load: source must not be NULL",
            None,
            Some("Give the text of a migration file, e.g. migrate_load(pg_read_file('...')).".into()),
        )
    };
    let loaded = load_sources(
        vec![Source { text: source.to_string(), file: file_name.map(str::to_string) }],
        force,
        "load",
    );
    loaded.into_iter().next().map(|l| l.revision).unwrap_or_default()
}

/// Register every *.sql file of a directory on the server.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_load_dir(
    path: &str,
    force: default!(bool, false),
) -> TableIterator<'static, (name!(revision, String), name!(file, Option<String>), name!(status, String))> {
    require_server_file_access(path);
    let sources = read_directory(path);
    let loaded = load_sources(sources, force, "load");
    TableIterator::new(loaded.into_iter().map(|l| (l.revision, l.file, l.status.to_string())))
}

fn require_server_file_access(path: &str) {
    let allowed = Spi::get_one::<bool>(
        "SELECT pg_catalog.pg_has_role(current_user, 'pg_read_server_files', 'USAGE')",
    )
    .or_raise("check privileges")
    .unwrap_or(false);
    if !allowed {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to read migration files from server directory \"{path}\""),
            Some("Only superusers and members of pg_read_server_files may read files on the server.".into()),
            Some(
                "Load from your own machine instead: scripts/migrate-load-local DIR | psql \"$DATABASE_URL\", \
                 or ask an administrator to GRANT pg_read_server_files TO you."
                    .into(),
            ),
        );
    }
}

fn read_directory(path: &str) -> Vec<Source> {
    let entries = std::fs::read_dir(path).unwrap_or_else(|error| {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
            format!("could not open migration directory \"{path}\": {error}"),
            None,
            Some("The path is read by the database server, not by psql.".into()),
        )
    });
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    if files.is_empty() {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
            format!("no *.sql files in migration directory \"{path}\""),
            None,
            None,
        );
    }
    files.iter().map(|file| read_file(file)).collect()
}

fn read_file(path: &Path) -> Source {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let display = path.display();
    let bytes = std::fs::read(path).unwrap_or_else(|error| {
        raise(PgSqlErrorCode::ERRCODE_IO_ERROR, format!("could not read \"{display}\": {error}"), None, None)
    });
    let text = String::from_utf8(bytes).unwrap_or_else(|error| {
        raise(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            format!("\"{display}\" is not valid UTF-8: {error}"),
            None,
            None,
        )
    });
    Source { text, file: name }
}

/// Parse, validate and store a batch of files, all or nothing.
pub fn load_sources(sources: Vec<Source>, force: bool, action: &str) -> Vec<Loaded> {
    let mut parsed: Vec<(MigrationFile, Source)> = Vec::with_capacity(sources.len());
    let mut seen: HashMap<String, Option<String>> = HashMap::new();
    for source in sources {
        pgrx::check_for_interrupts!();
        let file = parse_migration(&source.text)
            .unwrap_or_else(|error| raise_parse_error(source.file.as_deref(), &error));
        validate_sql(&file, source.file.as_deref());
        for line in &file.allow {
            if let Err(error) = crate::guard::rules::parse_header_allowance(line) {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("{}: invalid \"Allow\" header: {error}", source.file.as_deref().unwrap_or(&file.revision_id)),
                    Some("Nothing was loaded.".into()),
                    Some("Write \"-- Allow: <rule> <why this is safe>\", for example \"-- Allow: drop_column unused since v42\".".into()),
                );
            }
        }
        if let Some(first) = seen.insert(file.revision_id.clone(), source.file.clone()) {
            raise(
                PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                format!(
                    "duplicate Revision ID {} in {} and {}",
                    file.revision_id,
                    first.as_deref().unwrap_or("(text)"),
                    source.file.as_deref().unwrap_or("(text)")
                ),
                Some("Nothing was loaded.".into()),
                Some("Every migration file needs its own Revision ID.".into()),
            );
        }
        parsed.push((file, source));
    }

    Spi::connect_mut(|client| {
        acquire_lock(client, LockScope::Transaction);
        // Only the batch's own rows: a call's cost follows the files it loads,
        // not the number of revisions already loaded.
        let ids: Vec<String> = parsed.iter().map(|(f, _)| f.revision_id.clone()).collect();
        let existing = store::definitions_of(client, &ids);
        let applied = store::applied_of(client, &ids);
        let old_sources = existing_sources(client, &ids);
        refuse_invalid_graph(client, parsed.iter().map(|(f, _)| node_of(f)).collect(), &ids);

        let existing: HashMap<&str, &store::Definition> =
            existing.iter().map(|d| (d.node.id.as_str(), d)).collect();
        let mut loaded = Vec::with_capacity(parsed.len());
        for (file, source) in &parsed {
            pgrx::check_for_interrupts!();
            let new_checksum = checksum(&file.upgrade_sql);
            let id = file.revision_id.as_str();
            let status = match existing.get(id) {
                None => "loaded",
                Some(_) if old_sources.get(id) == Some(&source.text) => "unchanged",
                Some(old) => {
                    if let Some(applied_checksum) = applied.get(id) {
                        refuse_changing_applied(file, old, &new_checksum, source, force);
                        if force && applied_checksum.as_deref() != Some(new_checksum.as_str()) {
                            accept_new_checksum(client, id, &new_checksum);
                        }
                    }
                    "replaced"
                }
            };
            if status != "unchanged" {
                store::save_definition(client, file, &new_checksum, &source.text, source.file.as_deref());
                let event = if status == "replaced" { "reload" } else { action };
                let detail = match (&source.file, force && status == "replaced") {
                    (Some(name), true) => Some(format!("file {name}, forced")),
                    (Some(name), false) => Some(format!("file {name}")),
                    (None, true) => Some("forced".to_string()),
                    (None, false) => None,
                };
                store::log_event(client, event, Some(id), Some(&new_checksum), detail);
            }
            loaded.push(Loaded { revision: id.to_string(), file: source.file.clone(), status });
        }
        loaded
    })
}

/// Refuse, before any write, a batch that would make a cycle or a label clash.
/// The loaded graph is valid, so a problem involves a revision of the batch:
/// only what touches the batch is read (by key, through the indexes on
/// migrate.revisions). On any sign of trouble the whole graph is built as it
/// would be, and its error names the problem exactly as it always has.
fn refuse_invalid_graph(client: &pgrx::spi::SpiClient<'_>, batch: Vec<RevisionNode>, ids: &[String]) {
    let labels: Vec<String> = batch.iter().flat_map(|n| n.branch_labels.iter().cloned()).collect();
    // A cycle through the batch either stays inside it, or leaves it and comes
    // back through a revision outside the batch that names a batch revision.
    let may_close_a_cycle = || {
        store::named_from_outside(client, ids)
            && match batch.as_slice() {
                [single] => {
                    let references: Vec<String> =
                        single.parents.iter().chain(&single.depends_on).cloned().collect();
                    store::ancestors_reach(client, &references, &single.id)
                }
                _ => true,
            }
    };
    let suspicious = RevisionGraph::new(batch.clone()).is_err()
        || store::label_clash_outside(client, ids, &labels)
        || may_close_a_cycle();
    if !suspicious {
        return;
    }
    let replaced: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut nodes: Vec<RevisionNode> = store::definitions(client)
        .into_iter()
        .filter(|d| !replaced.contains(d.node.id.as_str()))
        .map(|d| d.node)
        .collect();
    nodes.extend(batch);
    if let Err(error) = RevisionGraph::new(nodes) {
        raise_graph_error(&error);
    }
}

/// An applied revision's upgrade text and place in the graph are history; changing
/// them silently would make migrate_verify() and every other database disagree.
fn refuse_changing_applied(
    file: &MigrationFile,
    old: &store::Definition,
    new_checksum: &str,
    source: &Source,
    force: bool,
) {
    let text_changed = old.checksum != new_checksum;
    let graph_changed = old.node.parents != file.down_revisions || old.node.depends_on != file.depends_on;
    if force || !(text_changed || graph_changed) {
        return;
    }
    let what = if text_changed { "upgrade text" } else { "Revises/Depends On" };
    let call = match &source.file {
        Some(name) => format!("migrate_load(<text>, '{name}', force => true)"),
        None => "migrate_load(<text>, force => true)".to_string(),
    };
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("revision {} is applied and its {what} differs from the loaded definition", file.revision_id),
        Some(format!(
            "Applied checksum {}, new checksum {new_checksum}. Databases that already ran the old text \
             would silently differ from new ones. Nothing was loaded.",
            old.checksum
        )),
        Some(format!(
            "Put the change in a new revision. If the applied text really must be replaced, \
             load it with {call}; that is recorded in migrate.events."
        )),
    );
}

fn accept_new_checksum(client: &mut pgrx::spi::SpiClient<'_>, id: &str, new_checksum: &str) {
    client
        .update(
            "UPDATE migrate.applied SET checksum = $2 WHERE revision_id OPERATOR(pg_catalog.=) $1",
            None,
            &[id.to_string().into(), new_checksum.to_string().into()],
        )
        .or_raise("update an applied checksum");
}

fn existing_sources(client: &pgrx::spi::SpiClient<'_>, ids: &[String]) -> HashMap<String, String> {
    client
        .select(
            "SELECT revision_id, source FROM migrate.revisions WHERE revision_id OPERATOR(pg_catalog.=) ANY($1)",
            None,
            &[ids.to_vec().into()],
        )
        .or_raise("read migrate.revisions")
        .filter_map(|row| match (row.get::<String>(1), row.get::<String>(2)) {
            (Ok(Some(id)), Ok(Some(source))) => Some((id, source)),
            _ => None,
        })
        .collect()
}

pub fn node_of(file: &MigrationFile) -> RevisionNode {
    RevisionNode {
        id: file.revision_id.clone(),
        parents: file.down_revisions.clone(),
        depends_on: file.depends_on.clone(),
        branch_labels: file.branch_labels.clone(),
        message: file.message.clone(),
        transactional: file.transactional,
    }
}

/// Check both sections with the server's parser at load time, so a typo is
/// reported with its file and line now rather than halfway through an upgrade.
fn validate_sql(file: &MigrationFile, source_file: Option<&str>) {
    let name = source_file.unwrap_or(&file.revision_id);
    let sections = [
        ("upgrade", Some(file.upgrade_sql.as_str()), file.upgrade_line),
        ("downgrade", file.downgrade_sql.as_deref(), file.downgrade_line.unwrap_or(1)),
    ];
    for (section, sql, first_line) in sections {
        let Some(sql) = sql else { continue };
        let statements = server_sql::split_statements(sql).unwrap_or_else(|error| {
            let line = line_of(sql, error.offset.unwrap_or(0), first_line);
            raise(
                error.code,
                format!("{name}, line {line}: {}", error.message),
                Some(format!("In the {section} section of revision {}. Nothing was loaded.", file.revision_id)),
                None,
            )
        });
        for statement in statements {
            pgrx::check_for_interrupts!();
            let line = statement.line(first_line);
            match statement.kind {
                StatementKind::Ordinary => {}
                StatementKind::TransactionControl => raise(
                    PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
                    format!("{name}, line {line}: transaction control is not allowed in a revision"),
                    Some(format!("Statement: {}. Nothing was loaded.", crate::engine::excerpt(&statement.text))),
                    Some(
                        "pg_migrate runs each revision in its own transaction; remove BEGIN/COMMIT. \
                         For statements that must run outside a transaction, use \"-- Transactional: false\"."
                            .into(),
                    ),
                ),
                StatementKind::TopLevelOnly { what, .. } if file.transactional => raise(
                    PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
                    format!("{name}, line {line}: {what} cannot run inside a transaction block"),
                    Some(format!(
                        "Revision {} is transactional, so its {section} runs inside one transaction. \
                         Nothing was loaded.",
                        file.revision_id
                    )),
                    Some(
                        "Add the header line \"-- Transactional: false\" (best in a revision of its own) \
                         and apply it with: SELECT * FROM migrate_plan('head') \\gexec"
                            .into(),
                    ),
                ),
                StatementKind::TopLevelOnly { .. } => {}
            }
        }
    }
}
