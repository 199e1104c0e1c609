use super::*;
use crate::revisions::graph::RevisionNode;
use crate::revisions::test_node;

fn node(id: &str, parents: &[&str], labels: &[&str]) -> RevisionNode {
    RevisionNode { branch_labels: labels.iter().map(|s| s.to_string()).collect(), ..test_node(id, parents) }
}

/// root <- aaaa1 (label alpha) <- aaaa2 ; root <- bbbb1 (label beta)
fn forked() -> RevisionGraph {
    RevisionGraph::new(vec![
        node("root0001", &[], &[]),
        node("aaaa0001", &["root0001"], &["alpha"]),
        node("aaaa0002", &["aaaa0001"], &[]),
        node("bbbb0001", &["root0001"], &["beta"]),
    ])
    .unwrap()
}

fn chain() -> RevisionGraph {
    RevisionGraph::new(vec![node("root0001", &[], &[]), node("next0002", &["root0001"], &[])]).unwrap()
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn head_is_the_single_head_and_nothing_in_an_empty_graph() {
    assert_eq!(parents_for_new(&chain(), "head", false), Ok(strings(&["next0002"])));
    let empty = RevisionGraph::new(Vec::new()).unwrap();
    assert_eq!(parents_for_new(&empty, "head", false), Ok(Vec::new()));
    assert_eq!(parents_for_new(&chain(), "base", false), Ok(Vec::new()));
}

#[test]
fn an_ambiguous_head_lists_the_heads() {
    let error = parents_for_new(&forked(), "head", false).unwrap_err();
    assert_eq!(error, PlacementError::SeveralHeads { heads: strings(&["aaaa0002", "bbbb0001"]) });
    assert!(error.message().contains("aaaa0002, bbbb0001"), "{}", error.message());
    assert!(error.hint().unwrap().contains("migrate_merge('heads')"));
}

#[test]
fn label_at_head_and_revisions_name_one_parent() {
    let g = forked();
    assert_eq!(parents_for_new(&g, "alpha@head", false), Ok(strings(&["aaaa0002"])));
    assert_eq!(parents_for_new(&g, "beta@head", false), Ok(strings(&["bbbb0001"])));
    assert_eq!(parents_for_new(&g, "aaaa0002", false), Ok(strings(&["aaaa0002"])));
    assert_eq!(parents_for_new(&g, "bbbb", false), Ok(strings(&["bbbb0001"])));
    assert_eq!(parents_for_new(&g, "beta", false), Ok(strings(&["bbbb0001"])));
    assert!(matches!(
        parents_for_new(&g, "gamma@head", false),
        Err(PlacementError::Graph(GraphError::UnknownBranchLabel { .. }))
    ));
}

#[test]
fn a_revision_with_children_needs_splice() {
    let g = forked();
    let error = parents_for_new(&g, "root0001", false).unwrap_err();
    assert_eq!(
        error,
        PlacementError::NotAHead { revision: "root0001".into(), children: strings(&["aaaa0001", "bbbb0001"]) }
    );
    assert!(error.hint().unwrap().contains("splice => true"));
    assert_eq!(parents_for_new(&g, "root0001", true), Ok(strings(&["root0001"])));
}

#[test]
fn forms_that_name_no_place_are_refused() {
    let g = forked();
    for input in ["heads", "+1", "-1", "aaaa0001+1", "alpha@base", "alpha@-1", "alpha@aaaa0002"] {
        assert!(matches!(parents_for_new(&g, input, false), Err(PlacementError::NotAPlace { .. })), "{input}");
    }
    assert!(matches!(parents_for_new(&g, "", false), Err(PlacementError::Target(_))));
}

#[test]
fn merge_accepts_heads_labels_and_revisions() {
    let g = forked();
    assert_eq!(merge_parents_for(&g, &["heads"]), Ok(strings(&["aaaa0002", "bbbb0001"])));
    assert_eq!(merge_parents_for(&g, &["alpha@head", "beta@head"]), Ok(strings(&["aaaa0002", "bbbb0001"])));
    assert_eq!(merge_parents_for(&g, &["bbbb", "aaaa0002", "heads"]), Ok(strings(&["bbbb0001", "aaaa0002"])));
}

#[test]
fn merge_refuses_ancestors_a_single_head_and_what_is_merged() {
    let g = forked();
    assert!(matches!(
        merge_parents_for(&g, &["aaaa0001", "aaaa0002"]),
        Err(PlacementError::Graph(GraphError::MergeOfAncestor { .. }))
    ));
    assert!(matches!(
        merge_parents_for(&chain(), &["heads"]),
        Err(PlacementError::Graph(GraphError::MergeNeedsTwo { .. }))
    ));
    let merged = RevisionGraph::new(vec![
        node("root0001", &[], &[]),
        node("aaaa0001", &["root0001"], &[]),
        node("bbbb0001", &["root0001"], &[]),
        node("mmmm0001", &["aaaa0001", "bbbb0001"], &[]),
    ])
    .unwrap();
    assert!(matches!(
        merge_parents_for(&merged, &["aaaa0001", "bbbb0001"]),
        Err(PlacementError::Graph(GraphError::AlreadyMerged { .. }))
    ));
    assert!(matches!(merge_parents_for(&g, &["base", "heads"]), Err(PlacementError::NotAPlace { .. })));
}

#[test]
fn dependencies_resolve_to_ids_once() {
    let g = forked();
    assert_eq!(
        resolve_dependencies(&g, &strings(&["beta", "aaaa0002", "bbbb"])),
        Ok(strings(&["bbbb0001", "aaaa0002"]))
    );
    assert!(matches!(
        resolve_dependencies(&g, &strings(&["zzzz"])),
        Err(GraphError::UnknownRevision { .. })
    ));
}

#[test]
fn revision_ids_are_the_last_twelve_hex_digits() {
    assert_eq!(revision_id_from_uuid("3F2504E0-4F89-41D3-9A0C-0305E82C3301"), "0305e82c3301");
    assert_eq!(revision_id_from_uuid("3f2504e04f8941d39a0c0305e82c3301").len(), 12);
}

#[test]
fn only_an_unapplied_revision_nothing_needs_may_be_unloaded() {
    let mut nodes = vec![
        node("root0001", &[], &[]),
        node("aaaa0001", &["root0001"], &[]),
        node("bbbb0001", &["root0001"], &[]),
    ];
    nodes[2].depends_on = vec!["aaaa0001".into()];
    let g = RevisionGraph::new(nodes).unwrap();
    assert_eq!(unload_refusal(&g, "bbbb0001", false), None);
    assert_eq!(unload_refusal(&g, "bbbb0001", true), Some(UnloadRefusal::Applied));
    assert_eq!(
        unload_refusal(&g, "aaaa0001", false),
        Some(UnloadRefusal::Needed { children: vec![], dependents: strings(&["bbbb0001"]) })
    );
    assert_eq!(
        unload_refusal(&g, "root0001", false),
        Some(UnloadRefusal::Needed { children: strings(&["aaaa0001", "bbbb0001"]), dependents: vec![] })
    );
}
