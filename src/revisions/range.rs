//! Revision ranges, as Alembic's `-r lower:upper`:
//! - [`history`]: the revisions `alembic history -r lower:upper` lists;
//! - [`script_range`]: where an offline script starts and what it moves to
//!   (`alembic upgrade from:to --sql`), from the graph alone.
//!
//! An empty lower end is `base`, an empty upper end `heads`. As in Alembic,
//! `-N` at the start counts down from the end of the range (`-3:` is the head
//! and the 3 revisions below it) and `+N` at the end counts up from its start
//! (`:+1` is the first revision); `current` is the applied heads.
//!
//! Pure: the graph (and, for `current`, the applied set) is given.

use std::collections::HashSet;
use std::fmt;

use crate::revisions::check_interrupts;
use crate::revisions::graph::{Direction, GraphError, RevisionGraph};
use crate::revisions::target::{parse_target, Anchor, BranchTarget, Target, TargetError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// The text is not `[lower]:[upper]`, or an end has a form a range cannot use.
    Syntax { input: String, reason: String },
    Target(TargetError),
    Graph(GraphError),
    /// A lower end that no upper end descends from (Alembic's RangeNotAncestorError).
    NotAncestor { range: String, lower: String },
    /// `current` in a range that is resolved from the graph alone.
    NeedsState { range: String },
}

impl From<GraphError> for RangeError {
    fn from(error: GraphError) -> Self {
        RangeError::Graph(error)
    }
}

impl RangeError {
    pub fn message(&self) -> String {
        match self {
            RangeError::Syntax { input, reason } => format!("invalid revision range \"{input}\": {reason}"),
            RangeError::Target(error) => error.message(),
            RangeError::Graph(error) => error.message(),
            RangeError::NotAncestor { range, lower } => format!(
                "revision range \"{range}\" does not run along one line of history: no end of it descends from \"{lower}\""
            ),
            RangeError::NeedsState { range } => format!(
                "revision range \"{range}\" names \"current\", but an offline script is made from the graph alone"
            ),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            RangeError::Syntax { .. } => Some(
                "Write lower:upper, lower: or :upper. Each end is a revision (id, unique prefix or branch label), \
                 base, head, heads, current, <label>@head or <rev>+N/<rev>-N; -N may start a range and +N end it."
                    .into(),
            ),
            RangeError::Target(error) => error.hint(),
            RangeError::Graph(error) => error.hint(),
            RangeError::NotAncestor { .. } => {
                Some("Put the older revision first (lower:upper), on the same line of history.".into())
            }
            RangeError::NeedsState { .. } => Some(
                "Name the revision the target database is at (migrate_current() there), e.g. migrate_sql('ae10:head', 'upgrade')."
                    .into(),
            ),
        }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for RangeError {}

/// The two ends of `lower:upper`, trimmed ("" when left out).
fn split(range: &str) -> Result<(&str, &str), RangeError> {
    let syntax = |reason: &str| RangeError::Syntax { input: range.trim().to_string(), reason: reason.to_string() };
    let mut parts = range.trim().split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(lower), Some(upper), None) => Ok((lower.trim(), upper.trim())),
        (_, None, _) => Err(syntax("a range needs a colon: lower:upper, lower: or :upper")),
        _ => Err(syntax("a range has one colon")),
    }
}

fn is_current(text: &str) -> bool {
    text.eq_ignore_ascii_case("current")
}

fn owned(ids: Vec<&str>) -> Vec<String> {
    ids.into_iter().map(str::to_string).collect()
}

/// The single head of branch `label`.
fn branch_head(graph: &RevisionGraph, label: &str) -> Result<String, GraphError> {
    let heads: Vec<&str> = graph
        .branch_members(label)?
        .into_iter()
        .filter(|id| {
            check_interrupts();
            graph.children(id).is_empty()
        })
        .collect();
    match heads.as_slice() {
        [only] => Ok(only.to_string()),
        _ => Err(GraphError::MultipleHeads { heads: owned(heads) }),
    }
}

fn branch_revision(graph: &RevisionGraph, label: &str, revision: &str) -> Result<String, GraphError> {
    let id = graph.resolve_revision(revision)?;
    if !graph.branch_members(label)?.contains(&id) {
        return Err(GraphError::NotInBranch { revision: id.to_string(), label: label.to_string() });
    }
    Ok(id.to_string())
}

/// An end that names revisions by itself (no counting from the other end).
/// None is base: below every revision.
fn fixed_end(graph: &RevisionGraph, range: &str, text: &str, target: &Target) -> Result<Option<Vec<String>>, RangeError> {
    let form = |reason: String| RangeError::Syntax { input: range.trim().to_string(), reason };
    Ok(match target {
        Target::Base => None,
        Target::Heads => Some(owned(graph.heads())),
        Target::Head => match graph.heads().as_slice() {
            [only] => Some(vec![only.to_string()]),
            [] => Some(Vec::new()),
            several => return Err(GraphError::MultipleHeads { heads: owned(several.to_vec()) }.into()),
        },
        Target::Revision(revision) => Some(vec![graph.resolve_revision(revision)?.to_string()]),
        Target::Relative { anchor: Anchor::Revision(revision), delta } => {
            graph.step_from(revision, *delta)?.map(|id| vec![id.to_string()])
        }
        Target::Branch { label, at: BranchTarget::Head } => Some(vec![branch_head(graph, label)?]),
        Target::Branch { label, at: BranchTarget::Base } => match graph.label_revision(label) {
            Some(id) => Some(vec![id.to_string()]),
            None => return Err(GraphError::UnknownBranchLabel { label: label.clone() }.into()),
        },
        Target::Branch { label, at: BranchTarget::Revision(revision) } => Some(vec![branch_revision(graph, label, revision)?]),
        Target::Branch { at: BranchTarget::Relative(_), .. } => {
            return Err(form(format!("\"{text}\" counts from the applied state of a branch, which a range does not have")))
        }
        Target::Relative { anchor: Anchor::Current, .. } => {
            return Err(form(format!("\"{text}\" counts from the other end of the range, which counts too")))
        }
    })
}

/// One end of a range: `current` (the applied heads), or a target form.
enum End {
    Current,
    At(Target),
}

impl End {
    fn parse(text: &str, when_empty: Target) -> Result<End, RangeError> {
        Ok(match text {
            "" => End::At(when_empty),
            text if is_current(text) => End::Current,
            text => End::At(parse_target(text).map_err(RangeError::Target)?),
        })
    }

    /// `-N` / `+N`: counts from the other end of the range.
    fn counts(&self) -> Option<i64> {
        match self {
            End::At(Target::Relative { anchor: Anchor::Current, delta }) => Some(*delta),
            _ => None,
        }
    }
}

/// `+N` from each lower end (from base: the single root is base+1).
fn count_up(graph: &RevisionGraph, lower: Option<&[String]>, delta: i64) -> Result<Vec<String>, RangeError> {
    match lower {
        Some(lower) => {
            let mut ends = Vec::with_capacity(lower.len());
            for id in lower {
                check_interrupts();
                ends.extend(graph.step_from(id, delta)?.map(str::to_string));
            }
            Ok(ends)
        }
        None => match graph.bases().as_slice() {
            [] => Ok(Vec::new()),
            [root] => Ok(graph.step_from(root, delta - 1)?.map(str::to_string).into_iter().collect()),
            several => Err(GraphError::AmbiguousStep { from: "base".into(), candidates: owned(several.to_vec()) }.into()),
        },
    }
}

/// The revisions `alembic history -r <range>` lists, in upgrade order.
/// `applied` serves the `current` ends.
pub fn history(graph: &RevisionGraph, applied: &HashSet<String>, range: &str) -> Result<Vec<String>, RangeError> {
    let (lower_text, upper_text) = split(range)?;
    let syntax = |reason: &str| RangeError::Syntax { input: range.trim().to_string(), reason: reason.to_string() };
    let lower_end = End::parse(lower_text, Target::Base)?;
    let upper_end = End::parse(upper_text, Target::Heads)?;
    match (lower_end.counts(), upper_end.counts()) {
        (Some(_), Some(_)) => return Err(syntax("only one end can count from the other")),
        (Some(delta), None) if delta > 0 => {
            return Err(syntax("+N counts up from the start of the range, so it belongs at the end (:+N)"))
        }
        (None, Some(delta)) if delta < 0 => {
            return Err(syntax("-N counts down from the end of the range, so it belongs at the start (-N:)"))
        }
        _ => {}
    }
    let current = || owned(graph.current_heads(applied));
    let resolve_upper = || -> Result<Vec<String>, RangeError> {
        match &upper_end {
            End::Current => Ok(current()),
            End::At(target) => Ok(fixed_end(graph, range, upper_text, target)?.unwrap_or_default()),
        }
    };

    if let Some(delta) = lower_end.counts() {
        // -N: from each upper end, N revisions down, that end included.
        let mut members: HashSet<String> = HashSet::new();
        for end in resolve_upper()? {
            check_interrupts();
            let start = graph.step_from(&end, delta)?.map(|id| vec![id]);
            members.extend(graph.between(start.as_deref(), &[end.as_str()]).into_iter().map(str::to_string));
        }
        return Ok(in_upgrade_order(graph, &members));
    }

    let lower = match &lower_end {
        End::Current => Some(current()).filter(|heads| !heads.is_empty()),
        End::At(target) => fixed_end(graph, range, lower_text, target)?,
    };
    let upper = match upper_end.counts() {
        Some(delta) => count_up(graph, lower.as_deref(), delta)?,
        None => resolve_upper()?,
    };
    let upper_refs: Vec<&str> = upper.iter().map(String::as_str).collect();
    let lower_refs: Option<Vec<&str>> = lower.as_ref().map(|ids| ids.iter().map(String::as_str).collect());
    let members = graph.between(lower_refs.as_deref(), &upper_refs);
    if !upper.is_empty() {
        if let Some(missing) = lower.iter().flatten().find(|id| !members.contains(&id.as_str())) {
            return Err(RangeError::NotAncestor { range: range.trim().to_string(), lower: missing.clone() });
        }
    }
    Ok(owned(members))
}

fn in_upgrade_order(graph: &RevisionGraph, members: &HashSet<String>) -> Vec<String> {
    graph.topo_order().into_iter().filter(|id| members.contains(*id)).map(str::to_string).collect()
}

/// Where an offline script for `from:to` starts and where it goes, as
/// `alembic upgrade from:to --sql` (and `downgrade from:to --sql`) see it:
/// the revisions in effect at `from` (assumed applied; empty for base) and
/// the target. An empty `from` is base for an upgrade and heads for a
/// downgrade; an empty `to` is heads for an upgrade and base for a
/// downgrade. Relative targets (`+N`, `-N`) count from `from`.
pub fn script_range(
    graph: &RevisionGraph,
    range: &str,
    direction: Direction,
) -> Result<(HashSet<String>, Target), RangeError> {
    let (from_text, to_text) = split(range)?;
    let needs_state = || RangeError::NeedsState { range: range.trim().to_string() };
    let (from_default, to_default) = match direction {
        Direction::Upgrade => (Target::Base, Target::Heads),
        Direction::Downgrade => (Target::Heads, Target::Base),
    };
    let from_target = match End::parse(from_text, from_default)? {
        End::Current => return Err(needs_state()),
        End::At(Target::Relative { anchor: Anchor::Current, .. }) => {
            return Err(RangeError::Syntax {
                input: range.trim().to_string(),
                reason: "the start of a script range is where the database is; +N and -N count from it, so they belong at the end".into(),
            })
        }
        End::At(target) => target,
    };
    let from = fixed_end(graph, range, from_text, &from_target)?.unwrap_or_default();
    let from_refs: Vec<&str> = from.iter().map(String::as_str).collect();
    let applied: HashSet<String> = graph.with_ancestors(&from_refs).into_iter().map(str::to_string).collect();
    let to = match End::parse(to_text, to_default)? {
        End::Current => return Err(needs_state()),
        End::At(target) => target,
    };
    Ok((applied, to))
}

#[cfg(test)]
mod tests;
