//! Adopting a database that Alembic migrated: its version table lists the heads
//! it is at, and every ancestor of a head (through `Revises` and `Depends On`,
//! as Alembic counts them) is applied too. The stamps that record exactly that.

use std::collections::HashSet;

use crate::revisions::graph::{GraphError, RevisionGraph, Step};
use crate::revisions::target::Target;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptError {
    /// Heads of the version table that no loaded revision has as its id.
    NotLoaded { missing: Vec<String> },
    /// Revisions pg_migrate records as applied that the version table does not
    /// reach: adopting would leave a state neither tool had.
    Diverged { extra: Vec<String> },
    Graph(GraphError),
}

/// The upgrade steps (to record as stamps) that take `applied` to the state
/// Alembic's `heads` mean. Empty when pg_migrate already records that state.
pub fn adoption_steps(
    graph: &RevisionGraph,
    applied: &HashSet<String>,
    heads: &[String],
) -> Result<Vec<Step>, AdoptError> {
    let mut missing: Vec<String> = heads.iter().filter(|h| graph.get(h).is_none()).cloned().collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        return Err(AdoptError::NotLoaded { missing });
    }

    // Everything the heads stand for, from nothing.
    let mut wanted: HashSet<String> = HashSet::new();
    for head in heads {
        crate::revisions::check_interrupts();
        if wanted.contains(head) {
            continue;
        }
        let steps = graph
            .upgrade_plan(&wanted, &Target::Revision(head.clone()))
            .map_err(AdoptError::Graph)?;
        wanted.extend(steps.into_iter().map(|s| s.revision));
        wanted.insert(head.clone());
    }
    let mut extra: Vec<String> = applied.iter().filter(|id| !wanted.contains(*id)).cloned().collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(AdoptError::Diverged { extra });
    }

    let mut state = applied.clone();
    let mut result = Vec::new();
    for head in heads {
        crate::revisions::check_interrupts();
        if state.contains(head) {
            continue;
        }
        let steps = graph
            .upgrade_plan(&state, &Target::Revision(head.clone()))
            .map_err(AdoptError::Graph)?;
        state.extend(steps.iter().map(|s| s.revision.clone()));
        result.extend(steps);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revisions::graph::RevisionNode;

    fn node(id: &str, parents: &[&str], depends_on: &[&str]) -> RevisionNode {
        RevisionNode {
            id: id.into(),
            parents: parents.iter().map(|s| s.to_string()).collect(),
            depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
            branch_labels: Vec::new(),
            message: format!("revision {id}"),
            transactional: true,
        }
    }

    /// a1 - a2 - a3 on one branch, b1 - b2 on another from a1; b2 depends on a2; m merges a3, b2.
    fn graph() -> RevisionGraph {
        RevisionGraph::new(vec![
            node("a1", &[], &[]),
            node("a2", &["a1"], &[]),
            node("a3", &["a2"], &[]),
            node("b1", &["a1"], &[]),
            node("b2", &["b1"], &["a2"]),
            node("m", &["a3", "b2"], &[]),
        ])
        .unwrap()
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn heads(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn stamped(applied: &[&str], version_table: &[&str]) -> Vec<String> {
        adoption_steps(&graph(), &set(applied), &heads(version_table))
            .unwrap()
            .into_iter()
            .map(|s| s.revision)
            .collect()
    }

    #[test]
    fn a_head_stamps_itself_and_its_ancestors_in_upgrade_order() {
        assert_eq!(stamped(&[], &["a3"]), ["a1", "a2", "a3"]);
    }

    #[test]
    fn a_dependency_counts_as_an_ancestor() {
        let ids = stamped(&[], &["b2"]);
        assert_eq!(set(&ids.iter().map(String::as_str).collect::<Vec<_>>()), set(&["a1", "a2", "b1", "b2"]));
        assert!(ids.iter().position(|i| i == "a2") < ids.iter().position(|i| i == "b2"));
    }

    #[test]
    fn two_heads_stamp_both_branches_once() {
        let ids = stamped(&[], &["a3", "b1"]);
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert_eq!(set(&ids.iter().map(String::as_str).collect::<Vec<_>>()), set(&["a1", "a2", "a3", "b1"]));
    }

    #[test]
    fn an_empty_version_table_stamps_nothing() {
        assert!(stamped(&[], &[]).is_empty());
    }

    #[test]
    fn adopting_twice_stamps_nothing_the_second_time() {
        assert!(stamped(&["a1", "a2", "a3"], &["a3"]).is_empty());
        assert_eq!(stamped(&["a1"], &["a3"]), ["a2", "a3"]);
    }

    #[test]
    fn a_head_that_is_not_loaded_is_named() {
        let error = adoption_steps(&graph(), &set(&[]), &heads(&["zz9", "a3", "aa1"])).unwrap_err();
        assert_eq!(error, AdoptError::NotLoaded { missing: heads(&["aa1", "zz9"]) });
    }

    #[test]
    fn applied_revisions_beyond_the_version_table_are_refused() {
        let error = adoption_steps(&graph(), &set(&["a1", "b1"]), &heads(&["a2"])).unwrap_err();
        assert_eq!(error, AdoptError::Diverged { extra: heads(&["b1"]) });
    }
}
