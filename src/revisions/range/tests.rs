//! Expected rows are what `alembic history -r <range>` (Alembic 1.20.1, the
//! bench venv) printed for the same graphs, in upgrade order here.
use super::*;
use crate::revisions::graph::RevisionNode;
use crate::revisions::test_node as node;

/// rev1 <- rev2 <- rev3 <- rev4 <- rev5
fn chain() -> RevisionGraph {
    RevisionGraph::new(vec![
        node("rev1", &[]),
        node("rev2", &["rev1"]),
        node("rev3", &["rev2"]),
        node("rev4", &["rev3"]),
        node("rev5", &["rev4"]),
    ])
    .unwrap()
}

/// The chain, and brn1 <- brn2 branching off rev2.
fn forked() -> RevisionGraph {
    let mut nodes: Vec<RevisionNode> = chain().nodes().to_vec();
    nodes.push(node("brn1", &["rev2"]));
    nodes.push(node("brn2", &["brn1"]));
    RevisionGraph::new(nodes).unwrap()
}

fn rows(graph: &RevisionGraph, range: &str) -> Vec<String> {
    history(graph, &HashSet::new(), range).unwrap_or_else(|e| panic!("{range}: {e}"))
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn explicit_ends_are_inclusive() {
    let g = chain();
    assert_eq!(rows(&g, "rev2:rev4"), strings(&["rev2", "rev3", "rev4"]));
    assert_eq!(rows(&g, "rev3:"), strings(&["rev3", "rev4", "rev5"]));
    assert_eq!(rows(&g, ":rev3"), strings(&["rev1", "rev2", "rev3"]));
    assert_eq!(rows(&g, "rev3:rev3"), strings(&["rev3"]));
    assert_eq!(rows(&g, "head:"), strings(&["rev5"]));
    assert_eq!(rows(&g, ":head"), rows(&g, "base:heads"));
    assert_eq!(rows(&g, ":").len(), 5);
    assert!(rows(&g, "base:base").is_empty());
    assert!(rows(&g, ":base").is_empty());
}

#[test]
fn minus_n_counts_down_from_the_end_and_plus_n_up_from_the_start() {
    let g = chain();
    assert_eq!(rows(&g, "-3:"), strings(&["rev2", "rev3", "rev4", "rev5"]));
    assert_eq!(rows(&g, "-1:"), strings(&["rev4", "rev5"]));
    assert_eq!(rows(&g, "-4:").len(), 5);
    assert_eq!(rows(&g, "-3:rev4"), strings(&["rev1", "rev2", "rev3", "rev4"]));
    assert_eq!(rows(&g, ":+1"), strings(&["rev1"]));
    assert_eq!(rows(&g, "rev2:+1"), strings(&["rev2", "rev3"]));
    assert_eq!(rows(&g, ":rev2+1"), strings(&["rev1", "rev2", "rev3"]));
    assert_eq!(rows(&g, "rev4-1:"), strings(&["rev3", "rev4", "rev5"]));
}

#[test]
fn branches_follow_alembic() {
    let g = forked();
    assert_eq!(sorted(rows(&g, "rev2:")), strings(&["brn1", "brn2", "rev2", "rev3", "rev4", "rev5"]));
    assert_eq!(rows(&g, "rev3:"), strings(&["rev3", "rev4", "rev5"]));
    assert_eq!(rows(&g, "base:heads").len(), 7);
    // -1: from each head.
    assert_eq!(sorted(rows(&g, "-1:")), strings(&["brn1", "brn2", "rev4", "rev5"]));
    let rows = rows(&g, ":");
    let at = |id: &str| rows.iter().position(|r| r == id).unwrap();
    assert!(at("rev2") < at("brn1") && at("brn1") < at("brn2"), "upgrade order: {rows:?}");
}

#[test]
fn counting_down_through_a_merge_is_ambiguous_as_in_alembic() {
    // Alembic: "Ambiguous walk".
    let mut nodes = forked().nodes().to_vec();
    nodes.push(node("mrg1", &["rev5", "brn2"]));
    let g = RevisionGraph::new(nodes).unwrap();
    assert!(matches!(history(&g, &HashSet::new(), "-1:"), Err(RangeError::Graph(GraphError::AmbiguousStep { .. }))));
    assert_eq!(rows(&g, "rev5:").len(), 2);
}

#[test]
fn a_lower_end_must_lie_below_an_upper_end() {
    let g = forked();
    for range in ["rev4:rev2", "brn1:rev5"] {
        assert!(matches!(history(&g, &HashSet::new(), range), Err(RangeError::NotAncestor { .. })), "{range}");
    }
}

#[test]
fn current_is_the_applied_heads() {
    let g = forked();
    let applied: HashSet<String> = strings(&["rev1", "rev2", "rev3"]).into_iter().collect();
    assert_eq!(history(&g, &applied, "current:"), Ok(strings(&["rev3", "rev4", "rev5"])));
    assert_eq!(history(&g, &applied, ":current"), Ok(strings(&["rev1", "rev2", "rev3"])));
    assert_eq!(history(&g, &HashSet::new(), ":current"), Ok(Vec::new()));
    assert_eq!(history(&g, &HashSet::new(), "current:").map(|r| r.len()), Ok(7));
}

#[test]
fn malformed_ranges_are_refused() {
    let g = chain();
    for range in ["rev2", "a:b:c", "+1:", ":-1", "-1:+1", "rev2@head:"] {
        assert!(history(&g, &HashSet::new(), range).is_err(), "{range}");
    }
    let error = history(&g, &HashSet::new(), "rev2").unwrap_err();
    assert!(error.message().contains("colon"), "{}", error.message());
    assert!(matches!(history(&g, &HashSet::new(), "zzzz:"), Err(RangeError::Graph(GraphError::UnknownRevision { .. }))));
}

#[test]
fn script_ranges_start_from_what_is_in_effect() {
    let g = forked();
    let (applied, target) = script_range(&g, "rev3:rev5", Direction::Upgrade).unwrap();
    assert_eq!(sorted(applied.into_iter().collect()), strings(&["rev1", "rev2", "rev3"]));
    assert_eq!(target, Target::Revision("rev5".into()));
    let (applied, target) = script_range(&g, ":", Direction::Upgrade).unwrap();
    assert!(applied.is_empty());
    assert_eq!(target, Target::Heads);
    let (applied, target) = script_range(&g, "rev5:rev2", Direction::Downgrade).unwrap();
    assert_eq!(applied.len(), 5);
    assert_eq!(target, Target::Revision("rev2".into()));
    let (applied, target) = script_range(&g, ":", Direction::Downgrade).unwrap();
    assert_eq!(applied.len(), 7);
    assert_eq!(target, Target::Base);
    assert!(matches!(script_range(&g, "current:head", Direction::Upgrade), Err(RangeError::NeedsState { .. })));
    assert!(matches!(script_range(&g, "-1:head", Direction::Upgrade), Err(RangeError::Syntax { .. })));
}

#[test]
fn dependencies_are_in_effect_but_do_not_descend() {
    // dep1 (its own root) <- dep2; rev3 depends on dep2.
    let mut nodes: Vec<RevisionNode> = chain().nodes().to_vec();
    nodes.push(node("dep1", &[]));
    nodes.push(node("dep2", &["dep1"]));
    for n in nodes.iter_mut().filter(|n| n.id == "rev3") {
        n.depends_on = vec!["dep2".into()];
    }
    let g = RevisionGraph::new(nodes).unwrap();
    assert_eq!(sorted(rows(&g, ":rev3")), strings(&["dep1", "dep2", "rev1", "rev2", "rev3"]));
    // From rev2 up, dep1 and dep2 are not above rev2 (Alembic: no implicit base).
    assert_eq!(rows(&g, "rev2:rev3"), strings(&["rev2", "rev3"]));
    assert_eq!(rows(&g, "dep1:rev3"), strings(&["dep1", "dep2"]));
}
