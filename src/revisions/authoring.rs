//! Writing revisions into the graph, as Alembic decides it:
//! - `alembic revision --head X`: the parents of a new revision ([`parents_for_new`]);
//! - `alembic merge X Y`: the revisions a merge joins ([`merge_parents_for`]);
//! - `--depends-on`: dependency names resolved to revision ids ([`resolve_dependencies`]);
//! - taking a loaded revision back out ([`unload_refusal`]).
//!
//! Pure: the graph is given, nothing is read or written.

use std::fmt;

use crate::revisions::check_interrupts;
use crate::revisions::graph::{GraphError, RevisionGraph};
use crate::revisions::list_for_message;
use crate::revisions::target::{parse_target, BranchTarget, Target, TargetError};

/// Why a new revision could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    Graph(GraphError),
    Target(TargetError),
    /// `head` is ambiguous: the graph has several heads.
    SeveralHeads { heads: Vec<String> },
    /// A revision that already has children: a new revision on it starts a
    /// new branch, which Alembic only does with `--splice`.
    NotAHead { revision: String, children: Vec<String> },
    /// A target that names no single place for a new revision (`heads`, `+1`, `label@base`).
    NotAPlace { input: String, what: &'static str },
}

impl From<GraphError> for PlacementError {
    fn from(error: GraphError) -> Self {
        PlacementError::Graph(error)
    }
}

impl PlacementError {
    pub fn message(&self) -> String {
        match self {
            PlacementError::Graph(error) => error.message(),
            PlacementError::Target(error) => error.message(),
            PlacementError::SeveralHeads { heads } => format!(
                "there are several heads ({}), so the new revision's parent \"head\" is ambiguous",
                list_for_message(heads)
            ),
            PlacementError::NotAHead { revision, children } => format!(
                "revision \"{revision}\" is not a head: {} already revise{} it",
                list_for_message(children),
                if children.len() == 1 { "s" } else { "" }
            ),
            PlacementError::NotAPlace { input, what } => {
                format!("\"{input}\" does not name a place for a new revision: {what}")
            }
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            PlacementError::Graph(error) => error.hint(),
            PlacementError::Target(error) => error.hint(),
            PlacementError::SeveralHeads { heads } => Some(format!(
                "Name the parent: head => '{}' (a revision or '<label>@head'), or merge the heads first: \
                 SELECT * FROM migrate_merge('heads');",
                heads.first().map(String::as_str).unwrap_or("<revision>")
            )),
            PlacementError::NotAHead { revision, .. } => Some(format!(
                "Put the new revision on a head (migrate_heads() lists them), or start a new branch \
                 from \"{revision}\" on purpose with splice => true."
            )),
            PlacementError::NotAPlace { .. } => Some(
                "Use head, <label>@head, a revision id (or unique prefix, or branch label), or base for a new root."
                    .into(),
            ),
        }
    }
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PlacementError {}

/// The heads on branch `label` (the labelled revision and its descendants).
fn branch_heads<'g>(graph: &'g RevisionGraph, label: &str) -> Result<Vec<&'g str>, GraphError> {
    let members = graph.branch_members(label)?;
    Ok(members
        .into_iter()
        .filter(|id| {
            check_interrupts();
            graph.children(id).is_empty()
        })
        .collect())
}

fn single<'g>(heads: Vec<&'g str>) -> Result<&'g str, PlacementError> {
    match heads.as_slice() {
        [only] => Ok(*only),
        [] => Err(PlacementError::Graph(GraphError::NoRevisions)),
        _ => Err(PlacementError::SeveralHeads { heads: heads.iter().map(|h| h.to_string()).collect() }),
    }
}

/// The parents of a new revision placed at `head`: `head` (the single head;
/// none in an empty graph, as `alembic revision` starts the first revision),
/// `<label>@head`, `base` (a new root), or a revision (id, unique prefix or
/// branch label) that must be a head unless `splice`.
pub fn parents_for_new(graph: &RevisionGraph, head: &str, splice: bool) -> Result<Vec<String>, PlacementError> {
    let target = parse_target(head).map_err(PlacementError::Target)?;
    let not_a_place = |what: &'static str| PlacementError::NotAPlace { input: head.trim().to_string(), what };
    match target {
        Target::Base => Ok(Vec::new()),
        Target::Head if graph.is_empty() => Ok(Vec::new()),
        Target::Head => Ok(vec![single(graph.heads())?.to_string()]),
        Target::Heads => Err(not_a_place("a new revision has one parent; to join several heads, merge them")),
        Target::Branch { label, at: BranchTarget::Head } => Ok(vec![single(branch_heads(graph, &label)?)?.to_string()]),
        Target::Revision(revision) => {
            let id = graph.resolve_revision(&revision)?;
            let children = graph.children(id);
            if !children.is_empty() && !splice {
                return Err(PlacementError::NotAHead {
                    revision: id.to_string(),
                    children: children.iter().map(|c| c.to_string()).collect(),
                });
            }
            Ok(vec![id.to_string()])
        }
        Target::Relative { .. } => Err(not_a_place("relative steps move the applied state, they do not name a revision to build on")),
        Target::Branch { .. } => Err(not_a_place("only <label>@head names where a branch grows")),
    }
}

/// The revisions a merge joins: each input is `heads` (every head), `head`,
/// `<label>@head` or a revision; duplicates are dropped, and the graph then
/// refuses fewer than two, a revision with its own ancestor, and revisions
/// that some revision already merges.
pub fn merge_parents_for(graph: &RevisionGraph, inputs: &[&str]) -> Result<Vec<String>, PlacementError> {
    let mut named: Vec<String> = Vec::new();
    for input in inputs {
        check_interrupts();
        let target = parse_target(input).map_err(PlacementError::Target)?;
        let not_a_place = |what: &'static str| PlacementError::NotAPlace { input: input.trim().to_string(), what };
        match target {
            Target::Heads => named.extend(graph.heads().into_iter().map(str::to_string)),
            Target::Head => named.push(single(graph.heads())?.to_string()),
            Target::Branch { label, at: BranchTarget::Head } => {
                named.push(single(branch_heads(graph, &label)?)?.to_string())
            }
            Target::Revision(revision) => named.push(graph.resolve_revision(&revision)?.to_string()),
            Target::Base => return Err(not_a_place("base is below every revision, there is nothing to merge")),
            Target::Relative { .. } | Target::Branch { .. } => {
                return Err(not_a_place("a merge joins heads, <label>@head or revisions"))
            }
        }
    }
    let names: Vec<&str> = named.iter().map(String::as_str).collect();
    Ok(graph.merge_parents(&names)?)
}

/// Dependencies named by id, unique prefix or branch label, as full revision
/// ids (the graph resolves dependencies by id only), without repeats.
pub fn resolve_dependencies(graph: &RevisionGraph, names: &[String]) -> Result<Vec<String>, GraphError> {
    let mut resolved: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        check_interrupts();
        let id = graph.resolve_revision(name.trim())?.to_string();
        if !resolved.contains(&id) {
            resolved.push(id);
        }
    }
    Ok(resolved)
}

/// A new revision id the way Alembic makes one (`uuid.uuid4().hex[-12:]`):
/// the last 12 hex digits of a random UUID, which are all random bits.
pub fn revision_id_from_uuid(uuid: &str) -> String {
    let hex: String = uuid.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_lowercase();
    hex[hex.len().saturating_sub(12)..].to_string()
}

/// Why a loaded revision cannot be removed from the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnloadRefusal {
    /// Its changes are in the database; removing the definition would orphan them.
    Applied,
    /// Other revisions revise it (name it in Revises) or depend on it.
    Needed { children: Vec<String>, dependents: Vec<String> },
}

/// None when `id` may be unloaded: not applied, and nothing revises or depends on it.
pub fn unload_refusal(graph: &RevisionGraph, id: &str, applied: bool) -> Option<UnloadRefusal> {
    if applied {
        return Some(UnloadRefusal::Applied);
    }
    let children: Vec<String> = graph.children(id).into_iter().map(str::to_string).collect();
    let dependents: Vec<String> = graph.dependents(id).into_iter().map(str::to_string).collect();
    if children.is_empty() && dependents.is_empty() {
        None
    } else {
        Some(UnloadRefusal::Needed { children, dependents })
    }
}

#[cfg(test)]
mod tests;
