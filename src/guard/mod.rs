//! The DDL guard: event triggers that check dangerous schema changes as they
//! run, from any client.
//!
//! `facts` and `rules/` are pure (one rule per file, registry in rules/mod.rs);
//! `extract` turns the raw parse tree and the live catalog into facts;
//! `cascade` reads what an sql_drop event dropped (tables and columns lost by
//! CASCADE, DROP OWNED and the like); `settings` holds the GUCs; `context` what
//! is running (the revision whose Allow lines apply, the extension's own DDL),
//! tied to its step's transaction;
//! `triggers` wires the event triggers, acknowledgements, the audit log and the
//! checks behind migrate_guard_check(); `hook` adds TRUNCATE, REINDEX, VACUUM FULL
//! and CLUSTER (and everything while session_replication_role = replica) when
//! the library is in shared_preload_libraries; `lock_wait` names the sessions
//! a checked statement waited behind when it fails on lock_timeout.

mod cascade;
pub mod context;
mod extract;
pub mod facts;
mod history;
mod lock_wait;
pub mod rules;
mod script_settings;
pub mod settings;
mod static_rewrite;
pub mod triggers;
pub mod hook;
mod tests;
