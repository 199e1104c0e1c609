//! The revision graph and upgrade/downgrade/stamp planning, with Alembic's
//! semantics. Nodes are kept sorted by id and referred to by index, so "ties
//! broken by id" is just "lowest index first", and every index is a HashMap
//! or a Vec: building, sorting and planning stay O(n log n).
//!
//! The applied set is taken as given: ids unknown to the graph are ignored, and
//! an applied revision is assumed to have its ancestors in effect (upgrade
//! planning does not look below an applied revision, as Alembic does not
//! look below its version table's heads).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use crate::revisions::check_interrupts;
use crate::revisions::list_for_message;
use crate::revisions::parser::MigrationFile;
use crate::revisions::target::{Anchor, BranchTarget, Target};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionNode {
    pub id: String,
    pub parents: Vec<String>,
    pub depends_on: Vec<String>,
    pub branch_labels: Vec<String>,
    pub message: String,
    pub transactional: bool,
}

impl From<&MigrationFile> for RevisionNode {
    fn from(file: &MigrationFile) -> Self {
        RevisionNode {
            id: file.revision_id.clone(),
            parents: file.down_revisions.clone(),
            depends_on: file.depends_on.clone(),
            branch_labels: file.branch_labels.clone(),
            message: file.message.clone(),
            transactional: file.transactional,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upgrade,
    Downgrade,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upgrade => "upgrade",
            Direction::Downgrade => "downgrade",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One migration to run (or record, for stamp).
/// Upgrade of r: from = r.parents, to = [r]. Downgrade of r: from = [r], to = r.parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub revision: String,
    pub direction: Direction,
    pub from: Vec<String>,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    DuplicateRevision {
        id: String,
    },
    DuplicateBranchLabel {
        label: String,
        revisions: Vec<String>,
    },
    LabelClashesWithRevision {
        label: String,
    },
    /// Each revision in the path revises or depends on the next; the last
    /// element repeats the first.
    Cycle {
        path: Vec<String>,
    },
    /// kind: "parent" | "dependency"
    MissingReference {
        revision: String,
        missing: String,
        kind: &'static str,
    },
    UnknownRevision {
        input: String,
    },
    PrefixTooShort {
        input: String,
    },
    AmbiguousPrefix {
        input: String,
        candidates: Vec<String>,
    },
    MultipleHeads {
        heads: Vec<String>,
    },
    NoRevisions,
    UnknownBranchLabel {
        label: String,
    },
    NotInBranch {
        revision: String,
        label: String,
    },
    NotApplied {
        revision: String,
    },
    /// A relative step reached a fork (several children) or a merge (several parents).
    AmbiguousStep {
        from: String,
        candidates: Vec<String>,
    },
    /// `requested` keeps the sign of the step (+ up, - down); `available` is
    /// how many steps could be taken.
    StepOutOfRange {
        from: String,
        requested: i64,
        available: i64,
    },
    MultipleCurrentHeads {
        heads: Vec<String>,
    },
    InvalidForDirection {
        target: String,
        direction: Direction,
    },
    /// A merge was asked for fewer than two different revisions.
    MergeNeedsTwo {
        heads: Vec<String>,
    },
    /// A merge was asked for a revision together with one of its ancestors.
    MergeOfAncestor {
        ancestor: String,
        descendant: String,
    },
    /// The revisions to merge already have a common descendant.
    AlreadyMerged {
        revisions: Vec<String>,
        merge: String,
    },
}

/// Shortest prefix Alembic-style users may abbreviate a revision id to.
pub const MIN_PREFIX_LEN: usize = 4;

impl GraphError {
    pub fn message(&self) -> String {
        match self {
            GraphError::DuplicateRevision { id } => {
                format!("revision \"{id}\" is defined more than once")
            }
            GraphError::DuplicateBranchLabel { label, revisions } => format!(
                "branch label \"{label}\" is used by more than one revision: {}",
                list_for_message(revisions)
            ),
            GraphError::LabelClashesWithRevision { label } => {
                format!("branch label \"{label}\" is also the id of a revision")
            }
            GraphError::Cycle { path } => format!(
                "the revisions form a cycle: {} (each revises or depends on the next)",
                path.join(" -> ")
            ),
            GraphError::MissingReference { revision, missing, kind } => format!(
                "revision \"{revision}\" names {kind} \"{missing}\", which is not a known revision"
            ),
            GraphError::UnknownRevision { input } => format!("no revision matches \"{input}\""),
            GraphError::PrefixTooShort { input } => format!(
                "\"{input}\" is too short to abbreviate a revision id (at least {MIN_PREFIX_LEN} characters are needed)"
            ),
            GraphError::AmbiguousPrefix { input, candidates } => format!(
                "\"{input}\" matches more than one revision: {}",
                list_for_message(candidates)
            ),
            GraphError::MultipleHeads { heads } => format!(
                "there are several heads ({}), so \"head\" is ambiguous",
                list_for_message(heads)
            ),
            GraphError::NoRevisions => "no revisions are loaded".to_string(),
            GraphError::UnknownBranchLabel { label } => {
                format!("no branch is labelled \"{label}\"")
            }
            GraphError::NotInBranch { revision, label } => {
                format!("revision \"{revision}\" is not on branch \"{label}\"")
            }
            GraphError::NotApplied { revision } => format!(
                "revision \"{revision}\" is not applied, so it cannot be a downgrade target"
            ),
            GraphError::AmbiguousStep { from, candidates } => format!(
                "the step from \"{from}\" is ambiguous: it could go to any of {}",
                list_for_message(candidates)
            ),
            GraphError::StepOutOfRange { from, requested, available } => {
                let way = if *requested < 0 { "down" } else { "up" };
                let count = requested.unsigned_abs();
                let noun = if count == 1 { "revision" } else { "revisions" };
                format!(
                    "cannot move {count} {noun} {way} from \"{from}\": only {available} available"
                )
            }
            GraphError::MultipleCurrentHeads { heads } => format!(
                "several heads are applied ({}), so a relative step from the current revision is ambiguous",
                list_for_message(heads)
            ),
            GraphError::InvalidForDirection { target, direction } => {
                format!("\"{target}\" is not a valid {direction} target")
            }
            GraphError::MergeNeedsTwo { .. } => "a merge needs at least two different revisions".to_string(),
            GraphError::MergeOfAncestor { ancestor, descendant } => format!(
                "cannot merge \"{descendant}\" with its own ancestor \"{ancestor}\""
            ),
            GraphError::AlreadyMerged { revisions, merge } => format!(
                "revisions {} are already merged by \"{merge}\"",
                list_for_message(revisions)
            ),
        }
    }

    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            GraphError::DuplicateRevision { .. } => {
                "Each migration file needs its own Revision ID; give one of them a new id.".to_string()
            }
            GraphError::DuplicateBranchLabel { .. } => {
                "A branch label names one revision (where the branch starts); remove it from the others.".to_string()
            }
            GraphError::LabelClashesWithRevision { .. } => {
                "Labels and revision ids share one namespace in targets; rename the label.".to_string()
            }
            GraphError::Cycle { .. } => {
                "Remove one of these Revises or Depends On references to break the cycle.".to_string()
            }
            GraphError::MissingReference { revision, kind, missing } => {
                let key = if *kind == "parent" { "Revises" } else { "Depends On" };
                format!("Load the migration file of \"{missing}\", or fix the {key} line of \"{revision}\".")
            }
            GraphError::UnknownRevision { .. } => format!(
                "Use a full revision id, a unique prefix of at least {MIN_PREFIX_LEN} characters, a branch label, or head, heads or base."
            ),
            GraphError::PrefixTooShort { .. } => format!(
                "Give at least {MIN_PREFIX_LEN} characters of the revision id, or all of it."
            ),
            GraphError::AmbiguousPrefix { .. } => {
                "Give more characters of the revision id.".to_string()
            }
            GraphError::MultipleHeads { heads } => format!(
                "Use \"heads\" for all of them, \"<label>@head\" for one branch, or create a merge revision with \"-- Revises: {}\".",
                heads.join(", ")
            ),
            GraphError::NoRevisions => "Load migration files first.".to_string(),
            GraphError::UnknownBranchLabel { .. } => {
                "Branch labels come from the \"Branch Labels\" header line of the revision that starts the branch.".to_string()
            }
            GraphError::NotInBranch { label, .. } => format!(
                "Revisions on branch \"{label}\" are the labelled revision and its descendants; drop the \"{label}@\" prefix to use any revision."
            ),
            GraphError::NotApplied { revision } => format!(
                "Downgrade to an applied revision, or upgrade to move forward to \"{revision}\"."
            ),
            GraphError::AmbiguousStep { .. } => {
                "Name the target revision instead, or use <label>@+N / <label>@-N to stay on one branch.".to_string()
            }
            GraphError::StepOutOfRange { .. } => {
                "Use a smaller step, or name the target revision.".to_string()
            }
            GraphError::MultipleCurrentHeads { .. } => {
                "Say which branch to move: <label>@+N / <label>@-N, or <rev>+N / <rev>-N.".to_string()
            }
            GraphError::InvalidForDirection { direction, .. } => match direction {
                Direction::Upgrade => {
                    "Upgrade targets are head, heads, <rev>, +N, <rev>+N, <rev>-N, <label>@head, <label>@+N and <label>@<rev>.".to_string()
                }
                Direction::Downgrade => {
                    "Downgrade targets are base, <rev>, -N, <rev>-N, <rev>+N, <label>@base, <label>@-N and <label>@<rev>.".to_string()
                }
            },
            GraphError::MergeNeedsTwo { heads } => format!("The current heads are: {}.", list_for_message(heads)),
            GraphError::MergeOfAncestor { descendant, .. } => format!(
                "\"{descendant}\" already contains its ancestor; merge heads of different lines of history."
            ),
            GraphError::AlreadyMerged { merge, .. } => format!(
                "Merge \"{merge}\" (or a head above it) with the other heads instead; the current heads are listed by migrate_heads()."
            ),
        };
        Some(hint)
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for GraphError {}

#[derive(Debug, Clone)]
pub struct RevisionGraph {
    /// Sorted by id; everything else refers to nodes by index into this.
    nodes: Vec<RevisionNode>,
    index: HashMap<String, usize>,
    labels: HashMap<String, usize>,
    /// Known references only, deduplicated, in the order the file lists them.
    parents: Vec<Vec<usize>>,
    dependencies: Vec<Vec<usize>>,
    /// Sorted by index (= by id).
    children: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    topo: Vec<usize>,
    topo_position: Vec<usize>,
}

/// Where a walk down the parents ended: on a revision, or past a root (the
/// "base" of that line of history).
enum Landing {
    At(usize),
    BeforeRoot(usize),
}

/// A branch as planning sees it: its root and a membership mask.
struct Branch {
    name: String,
    root: usize,
    members: Vec<bool>,
}

fn known_unique(names: &[String], index: &HashMap<String, usize>) -> Vec<usize> {
    let mut found: Vec<usize> = Vec::with_capacity(names.len());
    for name in names {
        if let Some(&i) = index.get(name) {
            if !found.contains(&i) {
                found.push(i);
            }
        }
    }
    found
}

impl RevisionGraph {
    /// Fails on duplicate ids, duplicate labels, a label equal to an id, and
    /// cycles among the known nodes. Unknown parents/dependencies are allowed
    /// here (see [`RevisionGraph::check_complete`]).
    pub fn new(nodes: Vec<RevisionNode>) -> Result<Self, GraphError> {
        let mut nodes = nodes;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(pair) = nodes.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(GraphError::DuplicateRevision {
                id: pair[0].id.clone(),
            });
        }
        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id.clone(), i))
            .collect();

        let mut labels: HashMap<String, usize> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            check_interrupts();
            for label in &node.branch_labels {
                if index.contains_key(label) {
                    return Err(GraphError::LabelClashesWithRevision {
                        label: label.clone(),
                    });
                }
                match labels.get(label) {
                    Some(&owner) if owner != i => {
                        let revisions = nodes
                            .iter()
                            .filter(|n| n.branch_labels.contains(label))
                            .map(|n| n.id.clone())
                            .collect();
                        return Err(GraphError::DuplicateBranchLabel {
                            label: label.clone(),
                            revisions,
                        });
                    }
                    _ => {
                        labels.insert(label.clone(), i);
                    }
                }
            }
        }

        let parents: Vec<Vec<usize>> = nodes
            .iter()
            .map(|node| known_unique(&node.parents, &index))
            .collect();
        let dependencies: Vec<Vec<usize>> = nodes
            .iter()
            .map(|node| known_unique(&node.depends_on, &index))
            .collect();
        let mut children = vec![Vec::new(); nodes.len()];
        let mut dependents = vec![Vec::new(); nodes.len()];
        for i in 0..nodes.len() {
            check_interrupts();
            for &p in &parents[i] {
                children[p].push(i);
            }
            for &d in &dependencies[i] {
                dependents[d].push(i);
            }
        }

        let mut graph = RevisionGraph {
            nodes,
            index,
            labels,
            parents,
            dependencies,
            children,
            dependents,
            topo: Vec::new(),
            topo_position: Vec::new(),
        };
        graph.sort_topologically()?;
        Ok(graph)
    }

    /// Kahn's algorithm with a min-heap, so ties go to the smallest id. A
    /// node left over sits on or below a cycle, which is then reported.
    fn sort_topologically(&mut self) -> Result<(), GraphError> {
        let n = self.nodes.len();
        let mut waiting: Vec<usize> = (0..n)
            .map(|i| self.parents[i].len() + self.dependencies[i].len())
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(i)) = ready.pop() {
            check_interrupts();
            order.push(i);
            for &next in self.children[i].iter().chain(&self.dependents[i]) {
                waiting[next] -= 1;
                if waiting[next] == 0 {
                    ready.push(Reverse(next));
                }
            }
        }
        if order.len() < n {
            return Err(GraphError::Cycle {
                path: self.find_cycle(&waiting),
            });
        }
        let mut position = vec![0; n];
        for (at, &i) in order.iter().enumerate() {
            position[i] = at;
        }
        self.topo = order;
        self.topo_position = position;
        Ok(())
    }

    /// Every node Kahn could not emit has an unemitted parent or dependency,
    /// so following those references must come back to a node already seen.
    fn find_cycle(&self, waiting: &[usize]) -> Vec<String> {
        let stuck = |i: usize| waiting[i] > 0;
        let Some(start) = (0..self.nodes.len()).find(|&i| stuck(i)) else {
            return Vec::new();
        };
        let mut seen_at: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let mut path: Vec<usize> = Vec::new();
        let mut current = start;
        loop {
            check_interrupts();
            if let Some(at) = seen_at[current] {
                let mut cycle: Vec<String> = path[at..]
                    .iter()
                    .map(|&i| self.nodes[i].id.clone())
                    .collect();
                cycle.push(self.nodes[current].id.clone());
                return cycle;
            }
            seen_at[current] = Some(path.len());
            path.push(current);
            let next = self.parents[current]
                .iter()
                .chain(&self.dependencies[current])
                .copied()
                .filter(|&i| stuck(i))
                .min();
            match next {
                Some(next) => current = next,
                None => return path.iter().map(|&i| self.nodes[i].id.clone()).collect(),
            }
        }
    }

    /// The first parent or dependency (by revision id, then as listed) that
    /// is not a known revision.
    pub fn check_complete(&self) -> Result<(), GraphError> {
        for node in &self.nodes {
            check_interrupts();
            let references = node
                .parents
                .iter()
                .map(|p| (p, "parent"))
                .chain(node.depends_on.iter().map(|d| (d, "dependency")));
            for (name, kind) in references {
                if !self.index.contains_key(name) {
                    return Err(GraphError::MissingReference {
                        revision: node.id.clone(),
                        missing: name.clone(),
                        kind,
                    });
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&RevisionNode> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All nodes, sorted by id.
    pub fn nodes(&self) -> &[RevisionNode] {
        &self.nodes
    }

    /// The revision a branch label is attached to.
    pub fn label_revision(&self, label: &str) -> Option<&str> {
        self.labels.get(label).map(|&i| self.id(i))
    }

    fn id(&self, i: usize) -> &str {
        &self.nodes[i].id
    }

    fn ids(&self, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| self.id(i).to_string()).collect()
    }

    /// Children via parents only, sorted by id; empty for an unknown id.
    pub fn children(&self, id: &str) -> Vec<&str> {
        match self.index.get(id) {
            Some(&i) => self.children[i].iter().map(|&c| self.id(c)).collect(),
            None => Vec::new(),
        }
    }

    /// Revisions that name `id` in Depends On, sorted by id; empty for an unknown id.
    pub fn dependents(&self, id: &str) -> Vec<&str> {
        match self.index.get(id) {
            Some(&i) => self.dependents[i].iter().map(|&d| self.id(d)).collect(),
            None => Vec::new(),
        }
    }

    fn head_indices(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.children[i].is_empty())
            .collect()
    }

    /// Revisions with no children (dependents do not count), sorted.
    pub fn heads(&self) -> Vec<&str> {
        self.head_indices()
            .into_iter()
            .map(|i| self.id(i))
            .collect()
    }

    fn base_indices(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].parents.is_empty())
            .collect()
    }

    /// Revisions that revise nothing, sorted.
    pub fn bases(&self) -> Vec<&str> {
        self.base_indices()
            .into_iter()
            .map(|i| self.id(i))
            .collect()
    }

    /// Revisions with two or more children, sorted.
    pub fn branch_points(&self) -> Vec<&str> {
        (0..self.nodes.len())
            .filter(|&i| self.children[i].len() >= 2)
            .map(|i| self.id(i))
            .collect()
    }

    /// Every revision after its parents and dependencies; ties broken by id.
    pub fn topo_order(&self) -> Vec<&str> {
        self.topo.iter().map(|&i| self.id(i)).collect()
    }

    fn applied_mask(&self, applied: &HashSet<String>) -> Vec<bool> {
        let mut mask = vec![false; self.nodes.len()];
        for id in applied {
            if let Some(&i) = self.index.get(id) {
                mask[i] = true;
            }
        }
        mask
    }

    fn current_head_indices(&self, applied: &[bool], within: Option<&Branch>) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| applied[i] && within.is_none_or(|b| b.members[i]))
            .filter(|&i| !self.children[i].iter().any(|&c| applied[c]))
            .collect()
    }

    /// Applied revisions none of whose children is applied, sorted. Applied
    /// ids unknown to the graph are ignored.
    pub fn current_heads(&self, applied: &HashSet<String>) -> Vec<&str> {
        let mask = self.applied_mask(applied);
        self.current_head_indices(&mask, None)
            .into_iter()
            .map(|i| self.id(i))
            .collect()
    }

    /// An exact id, else an exact branch label (naming its revision, as in
    /// Alembic), else a unique prefix of at least 4 characters.
    pub fn resolve_revision(&self, input: &str) -> Result<&str, GraphError> {
        self.resolve_index(input).map(|i| self.id(i))
    }

    /// The parents of a new merge revision: `inputs` resolved and deduplicated.
    /// Refuses fewer than two, a revision with its own ancestor (it already
    /// contains it), and revisions that some revision already merges.
    pub fn merge_parents(&self, inputs: &[&str]) -> Result<Vec<String>, GraphError> {
        let mut chosen: Vec<usize> = Vec::new();
        for input in inputs {
            check_interrupts();
            let i = self.resolve_index(input)?;
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        if chosen.len() < 2 {
            return Err(GraphError::MergeNeedsTwo {
                heads: self.ids(&self.head_indices()),
            });
        }
        let masks: Vec<Vec<bool>> = chosen.iter().map(|&i| self.descendant_mask(i)).collect();
        for (a, mask) in chosen.iter().zip(&masks) {
            if let Some(&d) = chosen.iter().find(|&&d| d != *a && mask[d]) {
                return Err(GraphError::MergeOfAncestor {
                    ancestor: self.id(*a).to_string(),
                    descendant: self.id(d).to_string(),
                });
            }
        }
        let common = self.topo.iter().copied().find(|&n| masks.iter().all(|mask| mask[n]));
        if let Some(merge) = common {
            return Err(GraphError::AlreadyMerged {
                revisions: self.ids(&chosen),
                merge: self.id(merge).to_string(),
            });
        }
        Ok(self.ids(&chosen))
    }

    fn resolve_index(&self, input: &str) -> Result<usize, GraphError> {
        if let Some(&i) = self.index.get(input) {
            return Ok(i);
        }
        if let Some(&i) = self.labels.get(input) {
            return Ok(i);
        }
        let unknown = || GraphError::UnknownRevision {
            input: input.to_string(),
        };
        if input.is_empty() {
            return Err(unknown());
        }
        // Nodes are sorted by id, so the ids starting with `input` are contiguous.
        let start = self.nodes.partition_point(|node| node.id.as_str() < input);
        let candidates: Vec<usize> = (start..self.nodes.len())
            .take_while(|&i| self.nodes[i].id.starts_with(input))
            .collect();
        match candidates.as_slice() {
            [] => Err(unknown()),
            _ if input.chars().count() < MIN_PREFIX_LEN => Err(GraphError::PrefixTooShort {
                input: input.to_string(),
            }),
            [only] => Ok(*only),
            _ => Err(GraphError::AmbiguousPrefix {
                input: input.to_string(),
                candidates: self.ids(&candidates),
            }),
        }
    }

    /// The revision `delta` steps from `anchor` (children up for `+`, parents
    /// down for `-`), as in the target `<rev>+N`; None when the walk ends just
    /// below a root (the base of that line).
    pub fn step_from(&self, anchor: &str, delta: i64) -> Result<Option<&str>, GraphError> {
        Ok(match self.relative_position(anchor, delta)? {
            Landing::At(i) => Some(self.id(i)),
            Landing::BeforeRoot(_) => None,
        })
    }

    /// `ids` and everything they revise or depend on, directly or not, in
    /// upgrade order: what is in effect once `ids` are applied. Unknown ids are skipped.
    pub fn with_ancestors(&self, ids: &[&str]) -> Vec<&str> {
        let reached = self.reach(ids, |i| self.parents[i].iter().chain(&self.dependencies[i]));
        self.topo.iter().filter(|&&i| reached[i]).map(|&i| self.id(i)).collect()
    }

    /// The nodes reachable from the known `ids` (included) through `next`.
    fn reach<'g, I: Iterator<Item = &'g usize>>(&'g self, ids: &[&str], next: impl Fn(usize) -> I) -> Vec<bool> {
        let mut reached = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = Vec::new();
        for id in ids {
            if let Some(&i) = self.index.get(*id) {
                if !reached[i] {
                    reached[i] = true;
                    stack.push(i);
                }
            }
        }
        while let Some(i) = stack.pop() {
            check_interrupts();
            for &n in next(i) {
                if !reached[n] {
                    reached[n] = true;
                    stack.push(n);
                }
            }
        }
        reached
    }

    /// The revisions of a history range, as `alembic history -r lower:upper`
    /// lists them, in upgrade order: those in effect at `upper` (see
    /// [`Self::with_ancestors`]) that are `lower` or descend from it through
    /// Revises. `lower` None is base (no lower bound). Unknown ids are skipped.
    pub fn between(&self, lower: Option<&[&str]>, upper: &[&str]) -> Vec<&str> {
        let in_effect = self.with_ancestors(upper);
        let Some(lower) = lower else { return in_effect };
        // One walk up from every lower end at once, so the cost stays linear.
        let above = self.reach(lower, |i| self.children[i].iter());
        in_effect.into_iter().filter(|id| above[self.index[*id]]).collect()
    }

    fn descendant_mask(&self, root: usize) -> Vec<bool> {
        let mut members = vec![false; self.nodes.len()];
        members[root] = true;
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            check_interrupts();
            for &c in &self.children[i] {
                if !members[c] {
                    members[c] = true;
                    stack.push(c);
                }
            }
        }
        members
    }

    /// The branch labels `id` is on: its own and its ancestors' (through
    /// Revises), in topological order. One walk, whatever the number of labels.
    pub fn branch_labels_of(&self, id: &str) -> Vec<String> {
        let Some(&start) = self.index.get(id) else { return Vec::new() };
        let mut ancestors = vec![false; self.nodes.len()];
        ancestors[start] = true;
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            check_interrupts();
            for &p in &self.parents[i] {
                if !ancestors[p] {
                    ancestors[p] = true;
                    stack.push(p);
                }
            }
        }
        let mut labels: Vec<String> = self
            .topo
            .iter()
            .filter(|&&i| ancestors[i])
            .flat_map(|&i| self.nodes[i].branch_labels.iter().cloned())
            .collect();
        labels.dedup();
        labels
    }

    /// The labelled revision and all its descendants, in topological order
    /// (the labelled revision first).
    pub fn branch_members(&self, label: &str) -> Result<Vec<&str>, GraphError> {
        let Some(&root) = self.labels.get(label) else {
            return Err(GraphError::UnknownBranchLabel {
                label: label.to_string(),
            });
        };
        let members = self.descendant_mask(root);
        Ok(self
            .topo
            .iter()
            .filter(|&&i| members[i])
            .map(|&i| self.id(i))
            .collect())
    }

    /// A branch named by its label or, as Alembic allows in `<rev>@head`, by
    /// a revision, meaning that revision and its descendants.
    fn branch(&self, label: &str) -> Result<Branch, GraphError> {
        let root = match self.labels.get(label) {
            Some(&root) => root,
            None => match self.resolve_index(label) {
                Ok(root) => root,
                Err(error @ GraphError::AmbiguousPrefix { .. }) => return Err(error),
                Err(_) => {
                    return Err(GraphError::UnknownBranchLabel {
                        label: label.to_string(),
                    })
                }
            },
        };
        Ok(Branch {
            name: label.to_string(),
            root,
            members: self.descendant_mask(root),
        })
    }

    fn branch_revision(&self, branch: &Branch, revision: &str) -> Result<usize, GraphError> {
        let i = self.resolve_index(revision)?;
        if !branch.members[i] {
            return Err(GraphError::NotInBranch {
                revision: self.id(i).to_string(),
                label: branch.name.clone(),
            });
        }
        Ok(i)
    }

    fn single_head(&self, candidates: Vec<usize>) -> Result<usize, GraphError> {
        match candidates.as_slice() {
            [] => Err(GraphError::NoRevisions),
            [only] => Ok(*only),
            _ => Err(GraphError::MultipleHeads {
                heads: self.ids(&candidates),
            }),
        }
    }

    /// Walk `steps` children up from `start`. `already` steps were taken to
    /// reach `start` (it counts toward `available` in the error).
    fn walk_children(
        &self,
        start: usize,
        steps: u64,
        requested: i64,
        from: &str,
        already: i64,
    ) -> Result<usize, GraphError> {
        let mut current = start;
        for taken in 0..steps {
            check_interrupts();
            match self.children[current].as_slice() {
                [] => {
                    return Err(GraphError::StepOutOfRange {
                        from: from.to_string(),
                        requested,
                        available: i64::try_from(taken)
                            .unwrap_or(i64::MAX)
                            .saturating_add(already),
                    })
                }
                [only] => current = *only,
                several => {
                    return Err(GraphError::AmbiguousStep {
                        from: self.id(current).to_string(),
                        candidates: self.ids(several),
                    })
                }
            }
        }
        Ok(current)
    }

    /// Walk `steps` parents down from `start` to an absolute position.
    fn walk_parents(
        &self,
        start: usize,
        steps: u64,
        requested: i64,
    ) -> Result<Landing, GraphError> {
        let mut current = start;
        let mut taken: u64 = 0;
        while taken < steps {
            check_interrupts();
            match self.parents[current].as_slice() {
                [] if taken + 1 == steps => return Ok(Landing::BeforeRoot(current)),
                [] => {
                    return Err(GraphError::StepOutOfRange {
                        from: self.id(start).to_string(),
                        requested,
                        available: i64::try_from(taken + 1).unwrap_or(i64::MAX),
                    })
                }
                [only] => current = *only,
                several => {
                    return Err(GraphError::AmbiguousStep {
                        from: self.id(current).to_string(),
                        candidates: self.ids(several),
                    })
                }
            }
            taken += 1;
        }
        Ok(Landing::At(current))
    }

    /// Resolve `<rev>+N` / `<rev>-N` to a position.
    fn relative_position(&self, anchor: &str, delta: i64) -> Result<Landing, GraphError> {
        let start = self.resolve_index(anchor)?;
        if delta >= 0 {
            let steps = delta.unsigned_abs();
            self.walk_children(start, steps, delta, self.id(start), 0)
                .map(Landing::At)
        } else {
            self.walk_parents(start, delta.unsigned_abs(), delta)
        }
    }

    /// `+N` (or `<label>@+N`): N steps up from the single applied head, or
    /// from just below the base (the branch's labelled revision) if nothing
    /// is applied there yet.
    fn step_up_from_current(
        &self,
        applied: &[bool],
        delta: i64,
        branch: Option<&Branch>,
    ) -> Result<usize, GraphError> {
        let steps = delta.unsigned_abs();
        let heads = self.current_head_indices(applied, branch);
        match heads.as_slice() {
            [head] => self.walk_children(*head, steps, delta, self.id(*head), 0),
            [] => {
                let (start, from) = match branch {
                    Some(branch) => (branch.root, format!("{}@base", branch.name)),
                    None => match self.base_indices().as_slice() {
                        [] => return Err(GraphError::NoRevisions),
                        [only] => (*only, "base".to_string()),
                        several => {
                            return Err(GraphError::AmbiguousStep {
                                from: "base".to_string(),
                                candidates: self.ids(several),
                            })
                        }
                    },
                };
                self.walk_children(start, steps - 1, delta, &from, 1)
            }
            several => Err(GraphError::MultipleCurrentHeads {
                heads: self.ids(several),
            }),
        }
    }

    /// `-N` (or `<label>@-N`): the N revisions to remove walking parents down
    /// from the single applied head. A merge can be removed, but walking on
    /// past it would have to pick a parent.
    fn step_down_from_current(
        &self,
        applied: &[bool],
        delta: i64,
        branch: Option<&Branch>,
    ) -> Result<Vec<usize>, GraphError> {
        let steps = delta.unsigned_abs();
        let heads = self.current_head_indices(applied, branch);
        let head = match heads.as_slice() {
            [head] => *head,
            [] => {
                let from = match branch {
                    Some(branch) => format!("{}@base", branch.name),
                    None => "base".to_string(),
                };
                return Err(GraphError::StepOutOfRange {
                    from,
                    requested: delta,
                    available: 0,
                });
            }
            several => {
                return Err(GraphError::MultipleCurrentHeads {
                    heads: self.ids(several),
                })
            }
        };
        let mut removed = vec![head];
        let mut current = head;
        while (removed.len() as u64) < steps {
            check_interrupts();
            let below: Vec<usize> = self.parents[current]
                .iter()
                .copied()
                .filter(|&p| branch.is_none_or(|b| b.members[p]))
                .collect();
            match below.as_slice() {
                [only] if applied[*only] => current = *only,
                [] | [_] => {
                    return Err(GraphError::StepOutOfRange {
                        from: self.id(head).to_string(),
                        requested: delta,
                        available: i64::try_from(removed.len()).unwrap_or(i64::MAX),
                    })
                }
                several => {
                    return Err(GraphError::AmbiguousStep {
                        from: self.id(current).to_string(),
                        candidates: self.ids(several),
                    })
                }
            }
            removed.push(current);
        }
        Ok(removed)
    }

    fn invalid(target: &Target, direction: Direction) -> GraphError {
        GraphError::InvalidForDirection {
            target: target.to_string(),
            direction,
        }
    }

    /// The revisions an upgrade must reach.
    fn upgrade_targets(&self, applied: &[bool], target: &Target) -> Result<Vec<usize>, GraphError> {
        let invalid = || Self::invalid(target, Direction::Upgrade);
        match target {
            Target::Head => Ok(vec![self.single_head(self.head_indices())?]),
            Target::Heads => {
                if self.is_empty() {
                    return Err(GraphError::NoRevisions);
                }
                Ok(self.head_indices())
            }
            Target::Base => Ok(Vec::new()),
            Target::Revision(revision) => Ok(vec![self.resolve_index(revision)?]),
            Target::Relative {
                anchor: Anchor::Current,
                delta,
            } => match delta {
                d if *d < 0 => Err(invalid()),
                0 => Ok(Vec::new()),
                _ => Ok(vec![self.step_up_from_current(applied, *delta, None)?]),
            },
            Target::Relative {
                anchor: Anchor::Revision(revision),
                delta,
            } => match self.relative_position(revision, *delta)? {
                Landing::At(i) => Ok(vec![i]),
                Landing::BeforeRoot(_) => Ok(Vec::new()),
            },
            Target::Branch { label, at } => {
                let branch = self.branch(label)?;
                match at {
                    BranchTarget::Head => {
                        let heads = self
                            .head_indices()
                            .into_iter()
                            .filter(|&i| branch.members[i])
                            .collect();
                        Ok(vec![self.single_head(heads)?])
                    }
                    BranchTarget::Base => Err(invalid()),
                    BranchTarget::Relative(delta) => match delta {
                        d if *d < 0 => Err(invalid()),
                        0 => Ok(Vec::new()),
                        _ => Ok(vec![self.step_up_from_current(
                            applied,
                            *delta,
                            Some(&branch),
                        )?]),
                    },
                    BranchTarget::Revision(revision) => {
                        Ok(vec![self.branch_revision(&branch, revision)?])
                    }
                }
            }
        }
    }

    /// Unapplied revisions needed to reach `targets`, parents and
    /// dependencies first. Does not descend below applied revisions.
    fn upgrade_steps(&self, applied: &[bool], targets: &[usize]) -> Vec<Step> {
        let mut needed = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = Vec::new();
        for &t in targets {
            if !applied[t] && !needed[t] {
                needed[t] = true;
                stack.push(t);
            }
        }
        let mut collected: Vec<usize> = Vec::new();
        while let Some(i) = stack.pop() {
            check_interrupts();
            collected.push(i);
            for &next in self.parents[i].iter().chain(&self.dependencies[i]) {
                if !applied[next] && !needed[next] {
                    needed[next] = true;
                    stack.push(next);
                }
            }
        }
        collected.sort_by_key(|&i| self.topo_position[i]);
        collected
            .into_iter()
            .map(|i| {
                let node = &self.nodes[i];
                Step {
                    revision: node.id.clone(),
                    direction: Direction::Upgrade,
                    from: node.parents.clone(),
                    to: vec![node.id.clone()],
                }
            })
            .collect()
    }

    /// Revisions a downgrade starts by removing (before the closure).
    fn downgrade_seeds(&self, applied: &[bool], target: &Target) -> Result<Vec<usize>, GraphError> {
        let invalid = || Self::invalid(target, Direction::Downgrade);
        let keep = |i: usize| -> Result<Vec<usize>, GraphError> {
            if !applied[i] {
                return Err(GraphError::NotApplied {
                    revision: self.id(i).to_string(),
                });
            }
            Ok(self.children[i].clone())
        };
        match target {
            Target::Head | Target::Heads => Err(invalid()),
            Target::Base => Ok((0..self.nodes.len()).filter(|&i| applied[i]).collect()),
            Target::Revision(revision) => keep(self.resolve_index(revision)?),
            Target::Relative {
                anchor: Anchor::Current,
                delta,
            } => match delta {
                d if *d > 0 => Err(invalid()),
                0 => Ok(Vec::new()),
                _ => self.step_down_from_current(applied, *delta, None),
            },
            Target::Relative {
                anchor: Anchor::Revision(revision),
                delta,
            } => match self.relative_position(revision, *delta)? {
                Landing::At(i) => keep(i),
                Landing::BeforeRoot(root) => Ok(vec![root]),
            },
            Target::Branch { label, at } => {
                let branch = self.branch(label)?;
                match at {
                    BranchTarget::Head => Err(invalid()),
                    BranchTarget::Base => Ok(vec![branch.root]),
                    BranchTarget::Relative(delta) => match delta {
                        d if *d > 0 => Err(invalid()),
                        0 => Ok(Vec::new()),
                        _ => self.step_down_from_current(applied, *delta, Some(&branch)),
                    },
                    BranchTarget::Revision(revision) => {
                        keep(self.branch_revision(&branch, revision)?)
                    }
                }
            }
        }
    }

    /// Applied revisions among the seeds and everything that descends from
    /// or depends on them, children and dependents first.
    fn downgrade_steps(&self, applied: &[bool], seeds: Vec<usize>) -> Vec<Step> {
        let mut reached = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = Vec::new();
        for s in seeds {
            if !reached[s] {
                reached[s] = true;
                stack.push(s);
            }
        }
        // Walk through unapplied revisions too, so an inconsistent applied set
        // (a gap in the middle) still loses everything built on the removal.
        while let Some(i) = stack.pop() {
            check_interrupts();
            for &next in self.children[i].iter().chain(&self.dependents[i]) {
                if !reached[next] {
                    reached[next] = true;
                    stack.push(next);
                }
            }
        }
        let mut removed: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| reached[i] && applied[i])
            .collect();
        removed.sort_by_key(|&i| Reverse(self.topo_position[i]));
        removed
            .into_iter()
            .map(|i| {
                let node = &self.nodes[i];
                Step {
                    revision: node.id.clone(),
                    direction: Direction::Downgrade,
                    from: vec![node.id.clone()],
                    to: node.parents.clone(),
                }
            })
            .collect()
    }

    /// Revisions to apply, in order. Empty when there is nothing to do.
    pub fn upgrade_plan(
        &self,
        applied: &HashSet<String>,
        target: &Target,
    ) -> Result<Vec<Step>, GraphError> {
        self.check_complete()?;
        let mask = self.applied_mask(applied);
        let targets = self.upgrade_targets(&mask, target)?;
        Ok(self.upgrade_steps(&mask, &targets))
    }

    /// Revisions to revert, in order. Empty when there is nothing to do.
    pub fn downgrade_plan(
        &self,
        applied: &HashSet<String>,
        target: &Target,
    ) -> Result<Vec<Step>, GraphError> {
        self.check_complete()?;
        let mask = self.applied_mask(applied);
        let seeds = self.downgrade_seeds(&mask, target)?;
        Ok(self.downgrade_steps(&mask, seeds))
    }

    /// For stamp: the upgrade steps if the target is ahead of what is
    /// applied, otherwise the downgrade steps back to it (e.g. `base` clears
    /// everything, an applied `<rev>` drops its descendants).
    pub fn stamp_plan(
        &self,
        applied: &HashSet<String>,
        target: &Target,
    ) -> Result<Vec<Step>, GraphError> {
        match self.upgrade_plan(applied, target) {
            Ok(steps) if !steps.is_empty() => Ok(steps),
            Ok(_) => match self.downgrade_plan(applied, target) {
                Err(GraphError::InvalidForDirection { .. }) => Ok(Vec::new()),
                other => other,
            },
            Err(GraphError::InvalidForDirection { .. }) => self.downgrade_plan(applied, target),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revisions::target::parse_target;

    fn node(id: &str, parents: &[&str]) -> RevisionNode {
        crate::revisions::test_node(id, parents)
    }

    fn labelled(id: &str, parents: &[&str], labels: &[&str]) -> RevisionNode {
        RevisionNode {
            branch_labels: labels.iter().map(|s| s.to_string()).collect(),
            ..node(id, parents)
        }
    }

    fn depending(id: &str, parents: &[&str], depends_on: &[&str]) -> RevisionNode {
        RevisionNode {
            depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
            ..node(id, parents)
        }
    }

    fn graph(nodes: Vec<RevisionNode>) -> RevisionGraph {
        RevisionGraph::new(nodes).unwrap_or_else(|e| panic!("graph: {e}"))
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn target(text: &str) -> Target {
        parse_target(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn up(g: &RevisionGraph, applied: &[&str], to: &str) -> Result<Vec<String>, GraphError> {
        g.upgrade_plan(&set(applied), &target(to))
            .map(|steps| steps.into_iter().map(|s| s.revision).collect())
    }

    fn down(g: &RevisionGraph, applied: &[&str], to: &str) -> Result<Vec<String>, GraphError> {
        g.downgrade_plan(&set(applied), &target(to))
            .map(|steps| steps.into_iter().map(|s| s.revision).collect())
    }

    fn ok(result: Result<Vec<String>, GraphError>) -> Vec<String> {
        result.unwrap_or_else(|e| panic!("unexpected error: {e}"))
    }

    fn fail(result: Result<Vec<String>, GraphError>) -> GraphError {
        match result {
            Ok(plan) => panic!("expected an error, got plan {plan:?}"),
            Err(error) => error,
        }
    }

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// a <- b <- c <- d
    fn chain() -> RevisionGraph {
        graph(vec![
            node("d4d4", &["c3c3"]),
            node("a1a1", &[]),
            node("c3c3", &["b2b2"]),
            node("b2b2", &["a1a1"]),
        ])
    }

    /// root <- x1 (label x) <- x2 ; root <- y1 (label y) <- y2
    fn forked() -> RevisionGraph {
        graph(vec![
            node("root", &[]),
            labelled("x1", &["root"], &["xbranch"]),
            node("x2", &["x1"]),
            labelled("y1", &["root"], &["ybranch"]),
            node("y2", &["y1"]),
        ])
    }

    /// forked() plus m merging x2 and y2.
    fn merged() -> RevisionGraph {
        graph(vec![
            node("root", &[]),
            labelled("x1", &["root"], &["xbranch"]),
            node("x2", &["x1"]),
            labelled("y1", &["root"], &["ybranch"]),
            node("y2", &["y1"]),
            node("m", &["x2", "y2"]),
        ])
    }

    #[test]
    fn branch_labels_of_a_revision_come_from_its_ancestors() {
        let g = merged();
        assert_eq!(g.branch_labels_of("m"), vec!["xbranch", "ybranch"]);
        assert_eq!(g.branch_labels_of("x2"), vec!["xbranch"]);
        assert!(g.branch_labels_of("root").is_empty());
        assert!(g.branch_labels_of("nope").is_empty());
    }

    // ----- merges -----

    #[test]
    fn merge_parents_of_two_heads() {
        let g = forked();
        assert_eq!(g.merge_parents(&["x2", "y2", "x2"]).unwrap(), vec!["x2", "y2"]);
    }

    #[test]
    fn merge_refuses_fewer_than_two() {
        let g = forked();
        assert!(matches!(g.merge_parents(&["x2", "x2"]), Err(GraphError::MergeNeedsTwo { .. })));
    }

    #[test]
    fn merge_refuses_a_revision_with_its_own_ancestor() {
        let g = forked();
        assert_eq!(
            g.merge_parents(&["x2", "root"]),
            Err(GraphError::MergeOfAncestor { ancestor: "root".into(), descendant: "x2".into() })
        );
        assert_eq!(
            g.merge_parents(&["x1", "x2"]),
            Err(GraphError::MergeOfAncestor { ancestor: "x1".into(), descendant: "x2".into() })
        );
    }

    #[test]
    fn merge_refuses_heads_already_merged() {
        let g = merged();
        assert_eq!(
            g.merge_parents(&["x2", "y2"]),
            Err(GraphError::AlreadyMerged { revisions: vec!["x2".into(), "y2".into()], merge: "m".into() })
        );
        // Below the merge too: x1 and y1 are both contained in m.
        assert!(matches!(g.merge_parents(&["x1", "y1"]), Err(GraphError::AlreadyMerged { .. })));
    }

    #[test]
    fn merge_of_a_merge_with_a_new_line_is_fine() {
        let mut nodes = vec![
            node("root", &[]),
            node("x2", &["root"]),
            node("y2", &["root"]),
            node("m", &["x2", "y2"]),
            node("z1", &["y2"]),
        ];
        let g = graph(std::mem::take(&mut nodes));
        assert_eq!(g.merge_parents(&["m", "z1"]).unwrap(), vec!["m", "z1"]);
    }

    // ----- construction -----

    #[test]
    fn empty_graph_is_fine() {
        let g = graph(Vec::new());
        assert!(g.is_empty());
        assert_eq!(g.len(), 0);
        assert!(g.heads().is_empty());
        assert_eq!(g.check_complete(), Ok(()));
        assert_eq!(fail(up(&g, &[], "head")), GraphError::NoRevisions);
        assert_eq!(fail(up(&g, &[], "heads")), GraphError::NoRevisions);
        assert_eq!(fail(up(&g, &[], "+1")), GraphError::NoRevisions);
        assert!(ok(up(&g, &[], "base")).is_empty());
        assert!(ok(down(&g, &[], "base")).is_empty());
    }

    #[test]
    fn duplicate_revision_is_rejected() {
        let error = RevisionGraph::new(vec![node("a1", &[]), node("b2", &[]), node("a1", &["b2"])])
            .unwrap_err();
        assert_eq!(error, GraphError::DuplicateRevision { id: "a1".into() });
    }

    #[test]
    fn duplicate_branch_label_lists_both_revisions() {
        let error = RevisionGraph::new(vec![
            labelled("b2", &[], &["billing"]),
            labelled("a1", &[], &["billing"]),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            GraphError::DuplicateBranchLabel {
                label: "billing".into(),
                revisions: strings(&["a1", "b2"])
            }
        );
        assert!(error.message().contains("a1, b2"));
    }

    #[test]
    fn same_label_twice_on_one_revision_is_harmless() {
        let g = graph(vec![labelled("a1", &[], &["billing", "billing"])]);
        assert_eq!(g.branch_members("billing"), Ok(vec!["a1"]));
    }

    #[test]
    fn label_equal_to_a_revision_id_is_rejected() {
        let error = RevisionGraph::new(vec![node("a1", &[]), labelled("b2", &["a1"], &["a1"])])
            .unwrap_err();
        assert_eq!(
            error,
            GraphError::LabelClashesWithRevision { label: "a1".into() }
        );
    }

    #[test]
    fn cycle_through_parents_is_reported_as_a_path() {
        let error = RevisionGraph::new(vec![
            node("a", &["b"]),
            node("b", &["a"]),
            node("c", &["a"]),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            GraphError::Cycle {
                path: strings(&["a", "b", "a"])
            }
        );
        assert_eq!(
            error.message(),
            "the revisions form a cycle: a -> b -> a (each revises or depends on the next)"
        );
    }

    #[test]
    fn cycle_path_leaves_out_revisions_below_the_cycle() {
        // "a" is stuck only because it sits on top of the p -> q -> r -> p cycle.
        let error = RevisionGraph::new(vec![
            node("a", &["p"]),
            node("p", &["r"]),
            node("q", &["p"]),
            node("r", &["q"]),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            GraphError::Cycle {
                path: strings(&["p", "r", "q", "p"])
            }
        );
    }

    #[test]
    fn self_parent_is_a_cycle() {
        let error = RevisionGraph::new(vec![node("a", &["a"])]).unwrap_err();
        assert_eq!(
            error,
            GraphError::Cycle {
                path: strings(&["a", "a"])
            }
        );
    }

    #[test]
    fn cycle_through_depends_on_is_reported() {
        let error = RevisionGraph::new(vec![
            node("a", &[]),
            depending("b", &["a"], &["c"]),
            depending("c", &[], &["b"]),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            GraphError::Cycle {
                path: strings(&["b", "c", "b"])
            }
        );
    }

    #[test]
    fn missing_references_are_allowed_until_check_complete() {
        let g = graph(vec![node("b2", &["a1"]), depending("c3", &["b2"], &["zz"])]);
        assert_eq!(
            g.check_complete(),
            Err(GraphError::MissingReference {
                revision: "b2".into(),
                missing: "a1".into(),
                kind: "parent"
            })
        );
        let g = graph(vec![
            node("a1", &[]),
            node("b2", &["a1"]),
            depending("c3", &["b2"], &["zz"]),
        ]);
        let error = g.check_complete().unwrap_err();
        assert_eq!(
            error,
            GraphError::MissingReference {
                revision: "c3".into(),
                missing: "zz".into(),
                kind: "dependency"
            }
        );
        assert!(error
            .hint()
            .unwrap_or_default()
            .contains("Depends On line of \"c3\""));
    }

    #[test]
    fn plans_refuse_an_incomplete_graph() {
        let g = graph(vec![node("b2", &["a1"])]);
        let missing = GraphError::MissingReference {
            revision: "b2".into(),
            missing: "a1".into(),
            kind: "parent",
        };
        assert_eq!(fail(up(&g, &[], "head")), missing);
        assert_eq!(fail(down(&g, &[], "base")), missing);
        assert_eq!(g.stamp_plan(&set(&[]), &Target::Head), Err(missing));
    }

    // ----- structure queries -----

    #[test]
    fn linear_chain_structure() {
        let g = chain();
        assert_eq!(g.len(), 4);
        assert_eq!(g.heads(), vec!["d4d4"]);
        assert_eq!(g.bases(), vec!["a1a1"]);
        assert!(g.branch_points().is_empty());
        assert_eq!(g.topo_order(), vec!["a1a1", "b2b2", "c3c3", "d4d4"]);
        assert_eq!(g.children("b2b2"), vec!["c3c3"]);
        assert!(g.children("nope").is_empty());
        assert_eq!(
            g.get("c3c3").map(|n| n.parents.clone()),
            Some(strings(&["b2b2"]))
        );
        assert!(g.get("c3").is_none(), "get is exact, not by prefix");
    }

    #[test]
    fn two_roots_structure_and_deterministic_topo_order() {
        let g = graph(vec![
            node("b2", &["b1"]),
            node("a2", &["a1"]),
            node("b1", &[]),
            node("a1", &[]),
        ]);
        assert_eq!(g.bases(), vec!["a1", "b1"]);
        assert_eq!(g.heads(), vec!["a2", "b2"]);
        assert_eq!(g.topo_order(), vec!["a1", "a2", "b1", "b2"]);
    }

    #[test]
    fn branches_and_merge_structure() {
        let g = merged();
        assert_eq!(g.branch_points(), vec!["root"]);
        assert_eq!(g.children("root"), vec!["x1", "y1"]);
        assert_eq!(g.heads(), vec!["m"]);
        assert_eq!(g.topo_order(), vec!["root", "x1", "x2", "y1", "y2", "m"]);
        assert_eq!(g.branch_members("xbranch"), Ok(vec!["x1", "x2", "m"]));
        assert_eq!(
            g.branch_members("nope"),
            Err(GraphError::UnknownBranchLabel {
                label: "nope".into()
            })
        );
        assert_eq!(g.label_revision("ybranch"), Some("y1"));
    }

    #[test]
    fn topo_order_puts_dependencies_first_and_heads_ignore_dependents() {
        let g = graph(vec![
            node("a1", &[]),
            depending("b1", &[], &["a2"]),
            node("a2", &["a1"]),
        ]);
        assert_eq!(g.topo_order(), vec!["a1", "a2", "b1"]);
        assert_eq!(g.heads(), vec!["a2", "b1"]);
    }

    #[test]
    fn current_heads_ignore_unknown_ids() {
        let g = forked();
        assert_eq!(
            g.current_heads(&set(&["root", "x1", "y1", "zzz"])),
            vec!["x1", "y1"]
        );
        assert_eq!(g.current_heads(&set(&["root"])), vec!["root"]);
        assert!(g.current_heads(&set(&[])).is_empty());
    }

    // ----- revision resolution -----

    #[test]
    fn resolve_exact_id_beats_a_longer_prefix_match() {
        let g = graph(vec![node("abcd", &[]), node("abcdef", &["abcd"])]);
        assert_eq!(g.resolve_revision("abcd"), Ok("abcd"));
        assert_eq!(g.resolve_revision("abcde"), Ok("abcdef"));
    }

    #[test]
    fn resolve_ambiguous_prefix_lists_candidates() {
        let g = graph(vec![
            node("abcd1", &[]),
            node("abcd2", &["abcd1"]),
            node("abce3", &["abcd2"]),
        ]);
        assert_eq!(
            g.resolve_revision("abcd"),
            Err(GraphError::AmbiguousPrefix {
                input: "abcd".into(),
                candidates: strings(&["abcd1", "abcd2"])
            })
        );
    }

    #[test]
    fn resolve_short_prefix_is_refused_even_if_unique() {
        let g = chain();
        assert_eq!(
            g.resolve_revision("b2b"),
            Err(GraphError::PrefixTooShort {
                input: "b2b".into()
            })
        );
        assert_eq!(g.resolve_revision("b2b2"), Ok("b2b2"));
    }

    #[test]
    fn resolve_short_exact_id_is_fine() {
        let g = graph(vec![node("a", &[])]);
        assert_eq!(g.resolve_revision("a"), Ok("a"));
    }

    #[test]
    fn resolve_unknown() {
        let g = chain();
        assert_eq!(
            g.resolve_revision("ffff"),
            Err(GraphError::UnknownRevision {
                input: "ffff".into()
            })
        );
        assert_eq!(
            g.resolve_revision("ff"),
            Err(GraphError::UnknownRevision { input: "ff".into() })
        );
        assert_eq!(
            g.resolve_revision(""),
            Err(GraphError::UnknownRevision { input: "".into() })
        );
    }

    #[test]
    fn resolve_branch_label_names_its_revision() {
        let g = forked();
        assert_eq!(g.resolve_revision("ybranch"), Ok("y1"));
        assert_eq!(ok(up(&g, &[], "ybranch")), strings(&["root", "y1"]));
    }

    // ----- upgrade -----

    #[test]
    fn upgrade_linear_chain_to_head() {
        let g = chain();
        assert_eq!(
            ok(up(&g, &[], "head")),
            strings(&["a1a1", "b2b2", "c3c3", "d4d4"])
        );
        assert_eq!(
            ok(up(&g, &["a1a1", "b2b2"], "head")),
            strings(&["c3c3", "d4d4"])
        );
        assert!(ok(up(&g, &["a1a1", "b2b2", "c3c3", "d4d4"], "head")).is_empty());
    }

    #[test]
    fn upgrade_steps_carry_from_and_to() {
        let g = merged();
        let steps = g
            .upgrade_plan(&set(&["root", "x1", "x2", "y1", "y2"]), &Target::Head)
            .unwrap();
        assert_eq!(
            steps,
            vec![Step {
                revision: "m".into(),
                direction: Direction::Upgrade,
                from: strings(&["x2", "y2"]),
                to: strings(&["m"]),
            }]
        );
    }

    #[test]
    fn upgrade_to_revision_by_prefix() {
        let g = chain();
        assert_eq!(ok(up(&g, &[], "b2b2")), strings(&["a1a1", "b2b2"]));
        assert!(ok(up(&g, &["a1a1", "b2b2", "c3c3"], "b2b2")).is_empty());
    }

    #[test]
    fn upgrade_base_is_empty() {
        assert!(ok(up(&chain(), &[], "base")).is_empty());
    }

    #[test]
    fn upgrade_head_with_several_heads_is_refused_with_hint() {
        let g = forked();
        let error = fail(up(&g, &[], "head"));
        assert_eq!(
            error,
            GraphError::MultipleHeads {
                heads: strings(&["x2", "y2"])
            }
        );
        let hint = error.hint().unwrap_or_default();
        assert!(
            hint.contains("\"heads\"")
                && hint.contains("<label>@head")
                && hint.contains("Revises: x2, y2"),
            "{hint}"
        );
    }

    #[test]
    fn upgrade_heads_takes_every_branch() {
        let g = forked();
        assert_eq!(
            ok(up(&g, &[], "heads")),
            strings(&["root", "x1", "x2", "y1", "y2"])
        );
        assert_eq!(
            ok(up(&g, &["root", "x1", "x2"], "heads")),
            strings(&["y1", "y2"])
        );
    }

    #[test]
    fn upgrade_two_roots_heads() {
        let g = graph(vec![node("a1", &[]), node("a2", &["a1"]), node("b1", &[])]);
        assert_eq!(ok(up(&g, &[], "heads")), strings(&["a1", "a2", "b1"]));
        assert!(matches!(
            fail(up(&g, &[], "head")),
            GraphError::MultipleHeads { .. }
        ));
    }

    #[test]
    fn upgrade_merge_pulls_in_both_parents() {
        let g = merged();
        assert_eq!(
            ok(up(&g, &["root", "x1"], "head")),
            strings(&["x2", "y1", "y2", "m"])
        );
    }

    #[test]
    fn upgrade_branch_head_stays_on_the_branch() {
        let g = forked();
        assert_eq!(
            ok(up(&g, &[], "xbranch@head")),
            strings(&["root", "x1", "x2"])
        );
        assert_eq!(
            ok(up(&g, &["root", "x1", "x2"], "ybranch@head")),
            strings(&["y1", "y2"])
        );
    }

    #[test]
    fn upgrade_branch_head_by_revision_as_alembic_allows() {
        let g = forked();
        assert_eq!(ok(up(&g, &[], "y1@head")), strings(&["root", "y1", "y2"]));
        assert_eq!(
            fail(up(&g, &[], "nolabel@head")),
            GraphError::UnknownBranchLabel {
                label: "nolabel".into()
            }
        );
    }

    #[test]
    fn upgrade_branch_revision_must_be_a_member() {
        let g = forked();
        assert_eq!(
            ok(up(&g, &[], "xbranch@x2")),
            strings(&["root", "x1", "x2"])
        );
        assert_eq!(
            fail(up(&g, &[], "xbranch@y2")),
            GraphError::NotInBranch {
                revision: "y2".into(),
                label: "xbranch".into()
            }
        );
    }

    #[test]
    fn upgrade_depends_on_pulls_in_the_other_branch() {
        // a1 <- a2 ; b1 <- b2, and b2 depends on a2.
        let g = graph(vec![
            node("a1", &[]),
            node("a2", &["a1"]),
            node("b1", &[]),
            depending("b2", &["b1"], &["a2"]),
        ]);
        assert_eq!(ok(up(&g, &["b1"], "b2")), strings(&["a1", "a2", "b2"]));
        assert_eq!(g.heads(), vec!["a2", "b2"]);
    }

    #[test]
    fn upgrade_does_not_look_below_an_applied_revision() {
        let g = chain();
        // b2b2 stamped without a1a1: a1a1 counts as in effect.
        assert_eq!(ok(up(&g, &["b2b2"], "head")), strings(&["c3c3", "d4d4"]));
    }

    #[test]
    fn upgrade_relative_from_current() {
        let g = chain();
        assert_eq!(ok(up(&g, &[], "+1")), strings(&["a1a1"]));
        assert_eq!(ok(up(&g, &[], "+2")), strings(&["a1a1", "b2b2"]));
        assert_eq!(ok(up(&g, &["a1a1"], "+2")), strings(&["b2b2", "c3c3"]));
        assert_eq!(
            ok(up(&g, &[], "+4")),
            strings(&["a1a1", "b2b2", "c3c3", "d4d4"])
        );
    }

    #[test]
    fn upgrade_relative_out_of_range() {
        let g = chain();
        assert_eq!(
            fail(up(&g, &["a1a1", "b2b2"], "+3")),
            GraphError::StepOutOfRange {
                from: "b2b2".into(),
                requested: 3,
                available: 2
            }
        );
        assert_eq!(
            fail(up(&g, &[], "+5")),
            GraphError::StepOutOfRange {
                from: "base".into(),
                requested: 5,
                available: 4
            }
        );
        assert_eq!(
            fail(up(&g, &[], "+9223372036854775807")),
            GraphError::StepOutOfRange {
                from: "base".into(),
                requested: i64::MAX,
                available: 4
            }
        );
        let error = fail(up(&g, &["a1a1", "b2b2"], "+3"));
        assert_eq!(
            error.message(),
            "cannot move 3 revisions up from \"b2b2\": only 2 available"
        );
    }

    #[test]
    fn upgrade_relative_at_a_fork_is_ambiguous() {
        let g = forked();
        assert_eq!(
            fail(up(&g, &["root"], "+1")),
            GraphError::AmbiguousStep {
                from: "root".into(),
                candidates: strings(&["x1", "y1"])
            }
        );
        assert_eq!(
            fail(up(&g, &[], "+2")),
            GraphError::AmbiguousStep {
                from: "root".into(),
                candidates: strings(&["x1", "y1"])
            }
        );
    }

    #[test]
    fn upgrade_relative_with_several_roots_is_ambiguous() {
        let g = graph(vec![node("a1", &[]), node("b1", &[])]);
        assert_eq!(
            fail(up(&g, &[], "+1")),
            GraphError::AmbiguousStep {
                from: "base".into(),
                candidates: strings(&["a1", "b1"])
            }
        );
    }

    #[test]
    fn upgrade_relative_with_several_current_heads_is_refused() {
        let g = forked();
        let error = fail(up(&g, &["root", "x1", "y1"], "+1"));
        assert_eq!(
            error,
            GraphError::MultipleCurrentHeads {
                heads: strings(&["x1", "y1"])
            }
        );
        assert!(error.hint().unwrap_or_default().contains("<label>@+N"));
    }

    #[test]
    fn upgrade_relative_from_revision() {
        let g = chain();
        assert_eq!(
            ok(up(&g, &[], "a1a1+2")),
            strings(&["a1a1", "b2b2", "c3c3"])
        );
        assert_eq!(ok(up(&g, &[], "d4d4-2")), strings(&["a1a1", "b2b2"]));
        assert!(
            ok(up(&g, &[], "b2b2-2")).is_empty(),
            "past the root is base"
        );
        assert_eq!(
            fail(up(&g, &[], "b2b2-3")),
            GraphError::StepOutOfRange {
                from: "b2b2".into(),
                requested: -3,
                available: 2
            }
        );
        assert_eq!(
            fail(up(&g, &[], "c3c3+2")),
            GraphError::StepOutOfRange {
                from: "c3c3".into(),
                requested: 2,
                available: 1
            }
        );
    }

    #[test]
    fn upgrade_relative_from_a_merge_revision_downward_is_ambiguous() {
        let g = merged();
        assert_eq!(
            fail(up(&g, &[], "m-1")),
            GraphError::AmbiguousStep {
                from: "m".into(),
                candidates: strings(&["x2", "y2"])
            }
        );
    }

    #[test]
    fn upgrade_branch_relative_walks_the_branch() {
        let g = forked();
        // Nothing of the branch applied: +1 is the labelled revision itself.
        assert_eq!(
            ok(up(&g, &["root", "x1", "x2"], "ybranch@+1")),
            strings(&["y1"])
        );
        assert_eq!(
            ok(up(&g, &[], "ybranch@+2")),
            strings(&["root", "y1", "y2"])
        );
        assert_eq!(
            ok(up(&g, &["root", "y1", "x1"], "ybranch@+1")),
            strings(&["y2"])
        );
        assert_eq!(
            fail(up(&g, &["root", "y1"], "ybranch@+2")),
            GraphError::StepOutOfRange {
                from: "y1".into(),
                requested: 2,
                available: 1
            }
        );
        assert_eq!(
            fail(up(&g, &[], "ybranch@+3")),
            GraphError::StepOutOfRange {
                from: "ybranch@base".into(),
                requested: 3,
                available: 2
            }
        );
    }

    #[test]
    fn upgrade_refuses_downgrade_only_targets() {
        let g = forked();
        for text in ["-1", "xbranch@base", "xbranch@-1"] {
            let error = fail(up(&g, &["root", "x1"], text));
            assert_eq!(
                error,
                GraphError::InvalidForDirection {
                    target: text.into(),
                    direction: Direction::Upgrade
                },
                "{text}"
            );
            assert!(error
                .hint()
                .unwrap_or_default()
                .starts_with("Upgrade targets are"));
        }
    }

    #[test]
    fn upgrade_unknown_label_and_revision() {
        let g = forked();
        assert_eq!(
            fail(up(&g, &[], "nothere")),
            GraphError::UnknownRevision {
                input: "nothere".into()
            }
        );
        assert_eq!(
            fail(up(&g, &[], "nothere@+1")),
            GraphError::UnknownBranchLabel {
                label: "nothere".into()
            }
        );
    }

    // ----- downgrade -----

    #[test]
    fn downgrade_linear_chain() {
        let g = chain();
        let all = ["a1a1", "b2b2", "c3c3", "d4d4"];
        assert_eq!(
            ok(down(&g, &all, "base")),
            strings(&["d4d4", "c3c3", "b2b2", "a1a1"])
        );
        assert_eq!(ok(down(&g, &all, "b2b2")), strings(&["d4d4", "c3c3"]));
        assert!(ok(down(&g, &all, "d4d4")).is_empty());
        assert_eq!(ok(down(&g, &all, "-1")), strings(&["d4d4"]));
        assert_eq!(
            ok(down(&g, &all, "-4")),
            strings(&["d4d4", "c3c3", "b2b2", "a1a1"])
        );
        assert_eq!(
            ok(down(&g, &all, "d4d4-3")),
            strings(&["d4d4", "c3c3", "b2b2"])
        );
        assert_eq!(
            ok(down(&g, &all, "b2b2-2")),
            strings(&["d4d4", "c3c3", "b2b2", "a1a1"]),
            "past the root"
        );
        assert_eq!(ok(down(&g, &all, "a1a1+1")), strings(&["d4d4", "c3c3"]));
    }

    #[test]
    fn downgrade_steps_carry_from_and_to() {
        let g = merged();
        let steps = g
            .downgrade_plan(&set(&["root", "x1", "x2", "y1", "y2", "m"]), &target("-1"))
            .unwrap();
        assert_eq!(
            steps,
            vec![Step {
                revision: "m".into(),
                direction: Direction::Downgrade,
                from: strings(&["m"]),
                to: strings(&["x2", "y2"]),
            }]
        );
    }

    #[test]
    fn downgrade_to_unapplied_revision_is_refused() {
        let g = chain();
        let error = fail(down(&g, &["a1a1"], "c3c3"));
        assert_eq!(
            error,
            GraphError::NotApplied {
                revision: "c3c3".into()
            }
        );
        assert_eq!(
            fail(down(&g, &["a1a1", "b2b2"], "d4d4-1")),
            GraphError::NotApplied {
                revision: "c3c3".into()
            }
        );
    }

    #[test]
    fn downgrade_relative_out_of_range() {
        let g = chain();
        assert_eq!(
            fail(down(&g, &["a1a1", "b2b2"], "-3")),
            GraphError::StepOutOfRange {
                from: "b2b2".into(),
                requested: -3,
                available: 2
            }
        );
        assert_eq!(
            fail(down(&g, &[], "-1")),
            GraphError::StepOutOfRange {
                from: "base".into(),
                requested: -1,
                available: 0
            }
        );
        let error = fail(down(&g, &["a1a1", "b2b2"], "-3"));
        assert_eq!(
            error.message(),
            "cannot move 3 revisions down from \"b2b2\": only 2 available"
        );
    }

    #[test]
    fn downgrade_relative_stops_at_a_gap_in_applied() {
        let g = chain();
        assert_eq!(
            fail(down(&g, &["c3c3", "d4d4"], "-3")),
            GraphError::StepOutOfRange {
                from: "d4d4".into(),
                requested: -3,
                available: 2
            }
        );
    }

    #[test]
    fn downgrade_merge_can_be_removed_but_not_walked_past() {
        let g = merged();
        let all = ["root", "x1", "x2", "y1", "y2", "m"];
        assert_eq!(ok(down(&g, &all, "-1")), strings(&["m"]));
        assert_eq!(
            fail(down(&g, &all, "-2")),
            GraphError::AmbiguousStep {
                from: "m".into(),
                candidates: strings(&["x2", "y2"])
            }
        );
    }

    #[test]
    fn downgrade_one_branch_leaves_the_other_applied() {
        let g = forked();
        let all = ["root", "x1", "x2", "y1", "y2"];
        assert_eq!(ok(down(&g, &all, "xbranch@base")), strings(&["x2", "x1"]));
        assert_eq!(ok(down(&g, &all, "xbranch@-1")), strings(&["x2"]));
        assert_eq!(ok(down(&g, &all, "ybranch@y1")), strings(&["y2"]));
        assert_eq!(ok(down(&g, &all, "x1")), strings(&["x2"]));
    }

    #[test]
    fn downgrade_below_a_merge_keeps_the_other_parent_line() {
        let g = merged();
        let all = ["root", "x1", "x2", "y1", "y2", "m"];
        assert_eq!(ok(down(&g, &all, "x1")), strings(&["m", "x2"]));
        assert_eq!(
            ok(down(&g, &all, "ybranch@base")),
            strings(&["m", "y2", "y1"])
        );
    }

    #[test]
    fn downgrade_branch_relative_does_not_leave_the_branch() {
        let g = forked();
        let all = ["root", "x1", "x2", "y1", "y2"];
        assert_eq!(ok(down(&g, &all, "xbranch@-2")), strings(&["x2", "x1"]));
        assert_eq!(
            fail(down(&g, &all, "xbranch@-3")),
            GraphError::StepOutOfRange {
                from: "x2".into(),
                requested: -3,
                available: 2
            }
        );
        assert_eq!(
            fail(down(&g, &["root", "y1"], "xbranch@-1")),
            GraphError::StepOutOfRange {
                from: "xbranch@base".into(),
                requested: -1,
                available: 0
            }
        );
    }

    #[test]
    fn downgrade_relative_with_several_current_heads_is_refused() {
        let g = forked();
        assert_eq!(
            fail(down(&g, &["root", "x1", "y1"], "-1")),
            GraphError::MultipleCurrentHeads {
                heads: strings(&["x1", "y1"])
            }
        );
    }

    #[test]
    fn downgrade_removes_dependents_on_other_branches() {
        // a1 <- a2 ; b1 <- b2 (depends on a2) <- b3 ; c1 depends on b1.
        let g = graph(vec![
            node("a1", &[]),
            node("a2", &["a1"]),
            node("b1", &[]),
            depending("b2", &["b1"], &["a2"]),
            node("b3", &["b2"]),
            depending("c1", &[], &["b1"]),
        ]);
        let all = ["a1", "a2", "b1", "b2", "b3", "c1"];
        assert_eq!(ok(down(&g, &all, "a1")), strings(&["b3", "b2", "a2"]));
        // Taking out b2 alone must not touch branch a or c1.
        assert_eq!(ok(down(&g, &all, "b1")), strings(&["b3", "b2"]));
        assert_eq!(
            ok(down(&g, &all, "b1-1")),
            strings(&["c1", "b3", "b2", "b1"])
        );
    }

    #[test]
    fn downgrade_branch_base_when_branch_not_applied_is_empty() {
        let g = forked();
        assert!(ok(down(&g, &["root", "x1"], "ybranch@base")).is_empty());
    }

    #[test]
    fn downgrade_branch_revision_must_be_a_member() {
        let g = forked();
        assert_eq!(
            fail(down(&g, &["root", "x1", "y1"], "ybranch@x1")),
            GraphError::NotInBranch {
                revision: "x1".into(),
                label: "ybranch".into()
            }
        );
    }

    #[test]
    fn downgrade_refuses_upgrade_only_targets() {
        let g = chain();
        for text in ["head", "heads", "+1", "a1a1@head", "a1a1@+1"] {
            let error = fail(down(&g, &["a1a1"], text));
            assert_eq!(
                error,
                GraphError::InvalidForDirection {
                    target: text.into(),
                    direction: Direction::Downgrade
                },
                "{text}"
            );
            assert_eq!(
                error.message(),
                format!("\"{text}\" is not a valid downgrade target")
            );
        }
    }

    #[test]
    fn zero_delta_built_by_hand_is_a_no_op() {
        let g = chain();
        let zero = Target::Relative {
            anchor: Anchor::Current,
            delta: 0,
        };
        assert!(g.upgrade_plan(&set(&["a1a1"]), &zero).unwrap().is_empty());
        assert!(g.downgrade_plan(&set(&["a1a1"]), &zero).unwrap().is_empty());
        let min = Target::Relative {
            anchor: Anchor::Current,
            delta: i64::MIN,
        };
        assert!(matches!(
            g.downgrade_plan(&set(&["a1a1"]), &min),
            Err(GraphError::StepOutOfRange { .. })
        ));
    }

    // ----- stamp -----

    #[test]
    fn stamp_forward_uses_upgrade_steps() {
        let g = chain();
        let steps = g.stamp_plan(&set(&["a1a1"]), &target("c3c3")).unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s.revision.as_str()).collect();
        assert_eq!(ids, vec!["b2b2", "c3c3"]);
        assert!(steps.iter().all(|s| s.direction == Direction::Upgrade));
    }

    #[test]
    fn stamp_backward_uses_downgrade_steps() {
        let g = chain();
        let all = set(&["a1a1", "b2b2", "c3c3", "d4d4"]);
        let steps = g.stamp_plan(&all, &target("b2b2")).unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s.revision.as_str()).collect();
        assert_eq!(ids, vec!["d4d4", "c3c3"]);
        assert!(steps.iter().all(|s| s.direction == Direction::Downgrade));
        assert_eq!(g.stamp_plan(&all, &Target::Base).unwrap().len(), 4);
        assert_eq!(g.stamp_plan(&all, &target("-1")).unwrap().len(), 1);
    }

    #[test]
    fn stamp_at_the_target_is_empty() {
        let g = chain();
        let all = set(&["a1a1", "b2b2", "c3c3", "d4d4"]);
        assert!(g.stamp_plan(&all, &Target::Head).unwrap().is_empty());
        assert!(g.stamp_plan(&all, &target("d4d4")).unwrap().is_empty());
        assert!(g.stamp_plan(&set(&[]), &Target::Base).unwrap().is_empty());
    }

    #[test]
    fn stamp_sibling_branch_adds_it_without_removing_the_other() {
        let g = forked();
        let steps = g
            .stamp_plan(&set(&["root", "x1", "x2"]), &target("y1"))
            .unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s.revision.as_str()).collect();
        assert_eq!(ids, vec!["y1"]);
    }

    #[test]
    fn stamp_passes_real_errors_through() {
        let g = forked();
        assert!(matches!(
            g.stamp_plan(&set(&[]), &Target::Head),
            Err(GraphError::MultipleHeads { .. })
        ));
        assert!(matches!(
            g.stamp_plan(&set(&[]), &target("zzzz")),
            Err(GraphError::UnknownRevision { .. })
        ));
    }

    // ----- errors -----

    #[test]
    fn every_graph_error_has_message_and_hint() {
        let errors = vec![
            GraphError::DuplicateRevision { id: "a".into() },
            GraphError::DuplicateBranchLabel {
                label: "l".into(),
                revisions: strings(&["a", "b"]),
            },
            GraphError::LabelClashesWithRevision { label: "a".into() },
            GraphError::Cycle {
                path: strings(&["a", "b", "a"]),
            },
            GraphError::MissingReference {
                revision: "a".into(),
                missing: "b".into(),
                kind: "parent",
            },
            GraphError::UnknownRevision { input: "x".into() },
            GraphError::PrefixTooShort { input: "x".into() },
            GraphError::AmbiguousPrefix {
                input: "abcd".into(),
                candidates: strings(&["abcd1", "abcd2"]),
            },
            GraphError::MultipleHeads {
                heads: strings(&["a", "b"]),
            },
            GraphError::NoRevisions,
            GraphError::UnknownBranchLabel { label: "l".into() },
            GraphError::NotInBranch {
                revision: "a".into(),
                label: "l".into(),
            },
            GraphError::NotApplied {
                revision: "a".into(),
            },
            GraphError::AmbiguousStep {
                from: "a".into(),
                candidates: strings(&["b", "c"]),
            },
            GraphError::StepOutOfRange {
                from: "a".into(),
                requested: 1,
                available: 0,
            },
            GraphError::MultipleCurrentHeads {
                heads: strings(&["a", "b"]),
            },
            GraphError::InvalidForDirection {
                target: "head".into(),
                direction: Direction::Downgrade,
            },
            GraphError::MergeNeedsTwo { heads: strings(&["a", "b"]) },
            GraphError::MergeOfAncestor { ancestor: "a".into(), descendant: "b".into() },
            GraphError::AlreadyMerged { revisions: strings(&["a", "b"]), merge: "m".into() },
        ];
        for error in errors {
            assert!(!error.message().is_empty());
            assert_eq!(error.to_string(), error.message());
            assert!(error.hint().is_some_and(|h| h.ends_with('.')), "{error:?}");
        }
        let one = GraphError::StepOutOfRange {
            from: "a".into(),
            requested: -1,
            available: 0,
        };
        assert_eq!(
            one.message(),
            "cannot move 1 revision down from \"a\": only 0 available"
        );
    }

    #[test]
    fn direction_names() {
        assert_eq!(Direction::Upgrade.as_str(), "upgrade");
        assert_eq!(Direction::Downgrade.to_string(), "downgrade");
    }

    #[test]
    fn node_from_migration_file() {
        let file = crate::revisions::parse_migration(
            "-- Msg\n-- Revision ID: r2\n-- Revises: r1\n-- Depends On: d1\n-- Branch Labels: lab\n-- Transactional: no\n-- migrate:upgrade\n",
        )
        .unwrap();
        let n = RevisionNode::from(&file);
        assert_eq!(
            n,
            RevisionNode {
                id: "r2".into(),
                parents: strings(&["r1"]),
                depends_on: strings(&["d1"]),
                branch_labels: strings(&["lab"]),
                message: "Msg".into(),
                transactional: false,
            }
        );
    }

    // ----- scale -----

    #[test]
    fn five_thousand_revision_chain_builds_sorts_and_plans() {
        let n = 5_000;
        let id = |i: usize| format!("r{i:05}");
        // Shuffled insertion order (a fixed stride) so sorting is exercised.
        let nodes: Vec<RevisionNode> = (0..n)
            .map(|k| (k * 7_919) % n)
            .map(|i| {
                let parent = if i == 0 { Vec::new() } else { vec![id(i - 1)] };
                RevisionNode {
                    parents: parent,
                    ..node(&id(i), &[])
                }
            })
            .collect();
        let g = graph(nodes);
        assert_eq!(g.len(), n);
        assert_eq!(g.heads(), vec![id(n - 1).as_str()]);
        let order = g.topo_order();
        assert_eq!(order.len(), n);
        assert!(order.iter().enumerate().all(|(i, rid)| *rid == id(i)));

        let plan = g.upgrade_plan(&HashSet::new(), &Target::Head).unwrap();
        assert_eq!(plan.len(), n);
        assert!(plan
            .iter()
            .enumerate()
            .all(|(i, step)| step.revision == id(i)));

        let applied: HashSet<String> = (0..n).map(id).collect();
        let plan = g.downgrade_plan(&applied, &Target::Base).unwrap();
        assert_eq!(plan.len(), n);
        assert_eq!(plan[0].revision, id(n - 1));
        let plan = g.downgrade_plan(&applied, &target("-4999")).unwrap();
        assert_eq!(plan.len(), 4_999);
        assert_eq!(
            g.resolve_revision("r0420"),
            Err(GraphError::AmbiguousPrefix {
                input: "r0420".into(),
                candidates: (4200..4210).map(id).collect(),
            })
        );
    }
}
