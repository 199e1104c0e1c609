//! Drift (issue 12): DDL run outside any pg_migrate revision.
//!
//! `capture` holds the event triggers that record each such command in
//! migrate.drift; `gaps` (pure) counts the commands whose row could not be
//! written; `changes` reads what a recorded statement changed from its parse
//! tree; `revision` (pure) writes the sections of the revision that
//! migrate_revision_from_drift makes from the unabsorbed rows.

pub mod capture;
pub mod changes;
pub mod gaps;
pub mod revision;
mod tests;
