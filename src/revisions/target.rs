//! The target grammar of upgrade/downgrade/stamp, parsed without looking at
//! the graph (resolution happens in `graph`).
//!
//! ```text
//! head | heads | base | <rev> | +N | -N | <rev>+N | <rev>-N
//! <label>@head | <label>@base | <label>@+N | <label>@-N | <label>@<rev>
//! ```
//! Identifiers cannot contain `+ - @`, so every split below is unambiguous.

use std::fmt;

use crate::revisions::parser::{validate_identifier, ParseErrorKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Head,
    Heads,
    Base,
    /// A full id, a unique prefix, or a branch label (which names its revision).
    Revision(String),
    Relative {
        anchor: Anchor,
        delta: i64,
    },
    Branch {
        label: String,
        at: BranchTarget,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    Current,
    Revision(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchTarget {
    Head,
    Base,
    Relative(i64),
    Revision(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub input: String,
    pub reason: String,
}

impl TargetError {
    pub fn message(&self) -> String {
        format!(
            "invalid migration target \"{}\": {}",
            self.input, self.reason
        )
    }

    pub fn hint(&self) -> Option<String> {
        Some(
            "Targets are: head, heads, base, <rev>, +N, -N, <rev>+N, <rev>-N, <label>@head, \
             <label>@base, <label>@+N, <label>@-N, <label>@<rev> \
             (<rev> is a revision id, a unique prefix of at least 4 characters, or a branch label; N is a whole number of at least 1)."
                .to_string(),
        )
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for TargetError {}

/// Canonical text of a target, as accepted by [`parse_target`]; used in messages.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Head => f.write_str("head"),
            Target::Heads => f.write_str("heads"),
            Target::Base => f.write_str("base"),
            Target::Revision(rev) => f.write_str(rev),
            Target::Relative {
                anchor: Anchor::Current,
                delta,
            } => write!(f, "{delta:+}"),
            Target::Relative {
                anchor: Anchor::Revision(rev),
                delta,
            } => write!(f, "{rev}{delta:+}"),
            Target::Branch { label, at } => match at {
                BranchTarget::Head => write!(f, "{label}@head"),
                BranchTarget::Base => write!(f, "{label}@base"),
                BranchTarget::Relative(delta) => write!(f, "{label}@{delta:+}"),
                BranchTarget::Revision(rev) => write!(f, "{label}@{rev}"),
            },
        }
    }
}

pub fn parse_target(input: &str) -> Result<Target, TargetError> {
    let text = input.trim();
    let fail = |reason: String| TargetError {
        input: text.to_string(),
        reason,
    };
    if text.is_empty() {
        return Err(fail("the target is empty".into()));
    }

    if let Some((label, rest)) = text.split_once('@') {
        if rest.contains('@') {
            return Err(fail("only one '@' is allowed".into()));
        }
        check_identifier("branch label", label).map_err(&fail)?;
        let at = if rest.is_empty() {
            return Err(fail(format!(
                "nothing follows '@'; write {label}@head, {label}@base, {label}@+N, {label}@-N or {label}@<rev>"
            )));
        } else if rest.eq_ignore_ascii_case("head") {
            BranchTarget::Head
        } else if rest.eq_ignore_ascii_case("base") {
            BranchTarget::Base
        } else if rest.eq_ignore_ascii_case("heads") {
            return Err(fail(format!("a branch has one head; write {label}@head")));
        } else if rest.starts_with(['+', '-']) {
            BranchTarget::Relative(parse_steps(rest).map_err(&fail)?)
        } else if rest.contains(['+', '-']) {
            return Err(fail(format!(
                "a relative step cannot follow a revision inside a branch; write <rev>+N, <rev>-N, {label}@+N or {label}@-N"
            )));
        } else {
            check_identifier("revision", rest).map_err(&fail)?;
            BranchTarget::Revision(rest.to_string())
        };
        return Ok(Target::Branch {
            label: label.to_string(),
            at,
        });
    }

    if text.eq_ignore_ascii_case("head") {
        return Ok(Target::Head);
    }
    if text.eq_ignore_ascii_case("heads") {
        return Ok(Target::Heads);
    }
    if text.eq_ignore_ascii_case("base") {
        return Ok(Target::Base);
    }
    if text.starts_with(['+', '-']) {
        let delta = parse_steps(text).map_err(&fail)?;
        return Ok(Target::Relative {
            anchor: Anchor::Current,
            delta,
        });
    }
    if let Some(sign_at) = text.find(['+', '-']) {
        let (anchor, steps) = text.split_at(sign_at);
        if ["head", "heads", "base"]
            .iter()
            .any(|word| anchor.eq_ignore_ascii_case(word))
        {
            return Err(fail(format!(
                "'{anchor}' cannot be the start of a relative step; write +N or -N to move from the current revision, or <rev>+N / <rev>-N"
            )));
        }
        check_identifier("revision", anchor).map_err(&fail)?;
        let delta = parse_steps(steps).map_err(&fail)?;
        return Ok(Target::Relative {
            anchor: Anchor::Revision(anchor.to_string()),
            delta,
        });
    }
    check_identifier("revision", text).map_err(&fail)?;
    Ok(Target::Revision(text.to_string()))
}

fn check_identifier(what: &'static str, value: &str) -> Result<(), String> {
    match validate_identifier(what, value) {
        Ok(()) => Ok(()),
        Err(ParseErrorKind::InvalidIdentifier { reason, .. }) => {
            Err(format!("\"{value}\" is not a valid {what}: {reason}"))
        }
        Err(other) => Err(format!("\"{value}\" is not a valid {what}: {other:?}")),
    }
}

/// `+N` or `-N` with N a whole number >= 1 that fits in i64.
fn parse_steps(text: &str) -> Result<i64, String> {
    let (negative, digits) = match text.split_at_checked(1) {
        Some(("+", digits)) => (false, digits),
        Some(("-", digits)) => (true, digits),
        _ => return Err(format!("\"{text}\" is not a step; write +N or -N")),
    };
    if digits.is_empty() {
        return Err(format!("'{text}' must be followed by a number of steps"));
    }
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "\"{digits}\" after '{}' is not a whole number of steps",
            &text[..1]
        ));
    }
    let count: i64 = digits
        .parse()
        .map_err(|_| format!("the step count {digits} is too large"))?;
    if count == 0 {
        return Err("a step count of 0 does nothing; use 1 or more".into());
    }
    Ok(if negative { -count } else { count })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Target {
        parse_target(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    fn err(input: &str) -> TargetError {
        match parse_target(input) {
            Ok(target) => panic!("{input:?} parsed as {target:?}"),
            Err(error) => error,
        }
    }

    fn rev(id: &str) -> Target {
        Target::Revision(id.into())
    }

    fn branch(label: &str, at: BranchTarget) -> Target {
        Target::Branch {
            label: label.into(),
            at,
        }
    }

    #[test]
    fn keywords_in_any_case() {
        assert_eq!(ok("head"), Target::Head);
        assert_eq!(ok("HEAD"), Target::Head);
        assert_eq!(ok("Heads"), Target::Heads);
        assert_eq!(ok("base"), Target::Base);
        assert_eq!(ok("  BASE \n"), Target::Base);
    }

    #[test]
    fn plain_revision_and_words_that_only_start_like_keywords() {
        assert_eq!(ok("3f2a9c1e7b10"), rev("3f2a9c1e7b10"));
        assert_eq!(ok(" 3f2a "), rev("3f2a"));
        assert_eq!(ok("headless"), rev("headless"));
        assert_eq!(ok("baseline"), rev("baseline"));
    }

    #[test]
    fn relative_from_current() {
        assert_eq!(
            ok("+1"),
            Target::Relative {
                anchor: Anchor::Current,
                delta: 1
            }
        );
        assert_eq!(
            ok("-3"),
            Target::Relative {
                anchor: Anchor::Current,
                delta: -3
            }
        );
        assert_eq!(
            ok("+007"),
            Target::Relative {
                anchor: Anchor::Current,
                delta: 7
            }
        );
    }

    #[test]
    fn relative_from_revision() {
        assert_eq!(
            ok("ae10+2"),
            Target::Relative {
                anchor: Anchor::Revision("ae10".into()),
                delta: 2
            }
        );
        assert_eq!(
            ok("ae1027a6acf-1"),
            Target::Relative {
                anchor: Anchor::Revision("ae1027a6acf".into()),
                delta: -1
            }
        );
    }

    #[test]
    fn branch_forms() {
        assert_eq!(ok("billing@head"), branch("billing", BranchTarget::Head));
        assert_eq!(ok("billing@HEAD"), branch("billing", BranchTarget::Head));
        assert_eq!(ok("billing@base"), branch("billing", BranchTarget::Base));
        assert_eq!(
            ok("billing@+2"),
            branch("billing", BranchTarget::Relative(2))
        );
        assert_eq!(
            ok("billing@-1"),
            branch("billing", BranchTarget::Relative(-1))
        );
        assert_eq!(
            ok("billing@ae10"),
            branch("billing", BranchTarget::Revision("ae10".into()))
        );
    }

    #[test]
    fn largest_step_is_accepted() {
        assert_eq!(
            ok("-9223372036854775807"),
            Target::Relative {
                anchor: Anchor::Current,
                delta: -i64::MAX
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "head",
            "heads",
            "base",
            "ae10",
            "+2",
            "-1",
            "ae10+3",
            "ae10-2",
            "billing@head",
            "billing@base",
            "billing@+2",
            "billing@-4",
            "billing@ae10",
        ] {
            assert_eq!(ok(text).to_string(), text);
            assert_eq!(ok(&ok(text).to_string()), ok(text));
        }
    }

    #[test]
    fn empty_and_blank_input_is_an_error() {
        assert!(err("").reason.contains("empty"));
        assert!(err("   ").reason.contains("empty"));
    }

    #[test]
    fn zero_steps_is_an_error() {
        for input in ["+0", "-0", "ae10+0", "billing@-00"] {
            assert!(err(input).reason.contains("0"), "{input}");
        }
    }

    #[test]
    fn overflowing_steps_is_an_error() {
        let e = err("+9223372036854775808");
        assert!(e.reason.contains("too large"), "{}", e.reason);
        assert!(err("billing@-99999999999999999999")
            .reason
            .contains("too large"));
    }

    #[test]
    fn sign_without_number_is_an_error() {
        assert!(err("+").reason.contains("number of steps"));
        assert!(err("ae10-").reason.contains("number of steps"));
        assert!(err("billing@+").reason.contains("number of steps"));
    }

    #[test]
    fn non_numeric_steps_are_errors() {
        for input in [
            "+x", "+2a", "--1", "+-1", "ae10+1.5", "ae10-2-1", "+ 1", "-abc",
        ] {
            assert!(
                err(input).reason.contains("whole number"),
                "{input}: {}",
                err(input).reason
            );
        }
    }

    #[test]
    fn keyword_anchor_for_relative_step_is_an_error() {
        let e = err("head-1");
        assert!(
            e.reason.contains("'head' cannot be the start"),
            "{}",
            e.reason
        );
        assert!(err("BASE+1").reason.contains("cannot be the start"));
    }

    #[test]
    fn invalid_revision_characters_are_errors() {
        let e = err("ab:cd");
        assert!(e.reason.contains("':'"), "{}", e.reason);
        assert!(err("ab cd").reason.contains("space"));
        assert!(err("ab,cd").reason.contains("','"));
    }

    #[test]
    fn branch_errors() {
        assert!(err("@head").reason.contains("branch label"));
        assert!(err("billing@").reason.contains("nothing follows '@'"));
        assert!(err("a@b@c").reason.contains("one '@'"));
        assert!(err("billing@heads").reason.contains("billing@head"));
        assert!(err("head@head").reason.contains("reserved"));
        assert!(err("billing@ae10+2")
            .reason
            .contains("cannot follow a revision"));
        assert!(err("bill ing@head").reason.contains("space"));
        assert!(err("billing@a:b").reason.contains("':'"));
    }

    #[test]
    fn error_message_quotes_the_input_and_hint_lists_the_grammar() {
        let e = err(" +0 ");
        assert_eq!(e.input, "+0");
        assert!(
            e.message().starts_with("invalid migration target \"+0\": "),
            "{}",
            e.message()
        );
        assert_eq!(e.to_string(), e.message());
        let hint = e.hint().unwrap_or_default();
        for form in ["heads", "<rev>+N", "<label>@-N", "<label>@<rev>"] {
            assert!(hint.contains(form), "{form} missing from {hint}");
        }
    }
}
