//! The changes grouped into revisions: one per phase that has any, in phase
//! order, each with its downgrade (the phase's steps undone in reverse).

use super::diff::{Diff, Phase, Step};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRevision {
    pub phase: Phase,
    pub transactional: bool,
    /// What this part does, added to the user's message when there are several.
    pub title: &'static str,
    pub upgrade: String,
    pub downgrade: String,
    pub allow: Vec<String>,
}

fn title(phase: Phase) -> &'static str {
    match phase {
        Phase::EnumValues => "enum values",
        Phase::Main => "schema changes",
        Phase::Concurrent => "concurrent indexes",
        Phase::Backfill => "backfill",
        Phase::Finish => "validate and finish",
    }
}

fn review_lines(text: &mut String, lines: &[String]) {
    for line in lines {
        text.push_str("-- Review: ");
        text.push_str(line);
        text.push('\n');
    }
}

fn statements(text: &mut String, statements: &[String]) {
    for statement in statements {
        text.push_str(statement);
        text.push_str(";\n");
    }
}

/// The revisions that take the live schema to the desired one. `notes` are
/// `-- Review:` lines for the first revision (differences not compared).
pub fn plan_revisions(diff: &Diff, notes: &[String]) -> Vec<PlannedRevision> {
    let phases = [Phase::EnumValues, Phase::Main, Phase::Concurrent, Phase::Backfill, Phase::Finish];
    let mut out = Vec::new();
    for phase in phases {
        let steps: Vec<&Step> = diff.steps.iter().filter(|s| s.phase == phase).collect();
        if steps.is_empty() {
            continue;
        }
        let transactional = matches!(phase, Phase::Main | Phase::Finish);
        let mut upgrade = String::new();
        if out.is_empty() {
            review_lines(&mut upgrade, notes);
        }
        // ACCESS EXCLUSIVE locks on existing tables must not queue for long.
        let locks = transactional && steps.iter().any(|s| !s.up.is_empty());
        if locks {
            upgrade.push_str("SET LOCAL lock_timeout = '5s';\n");
        }
        let mut downgrade = String::new();
        if locks {
            downgrade.push_str("SET LOCAL lock_timeout = '5s';\n");
        }
        let mut allow: Vec<(String, Vec<String>)> = Vec::new();
        for step in &steps {
            crate::revisions::check_interrupts();
            upgrade.push('\n');
            review_lines(&mut upgrade, &step.review);
            statements(&mut upgrade, &step.up);
            // One Allow line per rule, its reasons joined.
            for line in &step.allow {
                let (rule, reason) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                match allow.iter_mut().find(|(r, _): &&mut (String, Vec<String>)| r == rule) {
                    Some((_, reasons)) => {
                        if !reasons.iter().any(|r| r == reason) {
                            reasons.push(reason.to_string());
                        }
                    }
                    None => allow.push((rule.to_string(), vec![reason.to_string()])),
                }
            }
        }
        for step in steps.iter().rev() {
            crate::revisions::check_interrupts();
            if !step.down.is_empty() {
                downgrade.push('\n');
                statements(&mut downgrade, &step.down);
            }
        }
        let allow = allow.into_iter().map(|(rule, reasons)| format!("{rule} {}", reasons.join("; "))).collect();
        out.push(PlannedRevision { phase, transactional, title: title(phase), upgrade, downgrade, allow });
    }
    out
}
