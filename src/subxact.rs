//! Internal subtransactions, the way PL/pgSQL runs an EXCEPTION block: used where
//! a failure must be caught and the work undone without ending the caller's
//! transaction (the round-trip test).

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::{self, panic::CaughtError};
use pgrx::prelude::*;

/// What a caught PostgreSQL error said.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
}

/// Run `work` in a subtransaction. On success keep (`Keep::Commit`) or undo it
/// (`Keep::Rollback`); on an ERROR roll it back and return what it said.
pub fn run<R>(keep: Keep, work: impl FnOnce() -> R) -> Result<R, Failure> {
    // SAFETY: the same sequence PL/pgSQL uses (pl_exec.c, exec_stmt_block); the
    // caller's memory context and resource owner are restored on both paths.
    let (old_context, old_owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(old_context);
    }
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| Ok(work())))
        .catch_others(|caught| match caught {
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => Err(Failure {
                code: report.sql_error_code(),
                message: report.message().to_string(),
                detail: report.detail().map(str::to_string),
            }),
            other => other.rethrow(),
        })
        .execute();
    unsafe {
        match (&outcome, keep) {
            (Ok(_), Keep::Commit) => pg_sys::ReleaseCurrentSubTransaction(),
            _ => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(old_context);
        pg_sys::CurrentResourceOwner = old_owner;
    }
    outcome
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Commit,
    Rollback,
}
