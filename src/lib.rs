//! pg_migrate: Alembic-style schema revisions applied from inside PostgreSQL.
//!
//! Layout: `revisions` is the pure core (file parser, revision graph, target
//! grammar) with no pgrx in it; `server_sql` wraps the server's SQL parser;
//! `store` reads and writes schema `migrate`; `engine` runs revisions;
//! `sql_api` is the thin SQL surface.
//!
//! Imports go one way: `sql_api` -> `engine`, `guard`, `backfill` -> `store`,
//! `revisions` -> `errors`. `guard::context` is a leaf that `engine` and
//! `backfill` use to tell the guard what they are running.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod backfill;
mod engine;
pub mod guard;
mod introspect;
mod errors;
mod pg_report;
pub mod format;
pub mod autogen;
pub mod revisions;
mod server_sql;
mod sql_api;
mod store;
mod subxact;
mod superseded;

extension_sql_file!("schema.sql", name = "schema", bootstrap);
// Last, once every object exists: the description of each one.
extension_sql_file!("comments.sql", name = "comments", finalize);

#[pg_guard]
extern "C-unwind" fn _PG_init() {
    guard::settings::define();
    guard::context::register();
    guard::hook::install();
    revisions::set_interrupt_check(check_interrupts);
}

/// CHECK_FOR_INTERRUPTS for the database-free core's loops.
fn check_interrupts() {
    pgrx::check_for_interrupts!();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
