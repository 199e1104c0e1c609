//! The database-free core of pg_migrate: parsing migration files and target
//! expressions, and planning upgrades and downgrades over the revision graph.
//! Nothing here touches PostgreSQL, so all of it is unit-tested with `cargo test`.

pub mod adopt;
pub mod authoring;
pub mod graph;
pub mod inverse;
pub mod parser;
pub mod range;
pub mod target;
pub mod writer;

pub use graph::{Direction, GraphError, RevisionGraph, RevisionNode, Step};
pub use parser::{
    parse_migration, validate_identifier, MigrationFile, ParseError, ParseErrorKind,
    MAX_IDENTIFIER_LEN,
};
pub use target::{parse_target, Anchor, BranchTarget, Target, TargetError};

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::sync::OnceLock;

static INTERRUPT_CHECK: OnceLock<fn()> = OnceLock::new();

/// Install the host's interrupt check (PostgreSQL's CHECK_FOR_INTERRUPTS).
/// The core has no PostgreSQL in it, so the extension hands it in once at load.
pub fn set_interrupt_check(check: fn()) {
    let _ = INTERRUPT_CHECK.set(check);
}

/// Called once per item by every loop over statements, lines or revisions,
/// so a long call honours statement_timeout and pg_cancel_backend. It may not
/// return (PostgreSQL raises the cancel as an ERROR). A no-op in unit tests.
#[inline]
pub fn check_interrupts() {
    if let Some(check) = INTERRUPT_CHECK.get() {
        check();
    }
}

/// Lowercase hex SHA-256 of the text's UTF-8 bytes; used to notice a file
/// that was edited after it was applied.
pub fn checksum(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing into a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Small edit distance, for "did you mean" suggestions in hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// "a, b, c", or the first few and a count when the list is long, so one
/// ambiguous prefix cannot produce a multi-kilobyte error message.
pub(crate) fn list_for_message<S: AsRef<str>>(items: &[S]) -> String {
    const SHOWN: usize = 10;
    let shown: Vec<&str> = items.iter().take(SHOWN).map(AsRef::as_ref).collect();
    let mut text = shown.join(", ");
    if items.len() > SHOWN {
        let _ = write!(text, " and {} more", items.len() - SHOWN);
    }
    text
}

/// A revision for the pure cores' tests: `id` revising `parents`.
#[cfg(test)]
pub(crate) fn test_node(id: &str, parents: &[&str]) -> RevisionNode {
    RevisionNode {
        id: id.into(),
        parents: parents.iter().map(|s| s.to_string()).collect(),
        depends_on: Vec::new(),
        branch_labels: Vec::new(),
        message: format!("revision {id}"),
        transactional: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_lowercase_hex_sha256() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn checksum_changes_with_any_byte() {
        assert_ne!(checksum("SELECT 1;"), checksum("SELECT 1; "));
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("revises", "revises"), 0);
        assert_eq!(edit_distance("revison id", "revision id"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn long_lists_are_shortened_in_messages() {
        let items: Vec<String> = (0..13).map(|i| format!("r{i}")).collect();
        let text = list_for_message(&items);
        assert!(text.starts_with("r0, r1, "), "{text}");
        assert!(text.ends_with("r9 and 3 more"), "{text}");
        assert_eq!(list_for_message(&["a", "b"]), "a, b");
    }
}
