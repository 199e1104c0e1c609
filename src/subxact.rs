//! Internal subtransactions, the way PL/pgSQL runs an EXCEPTION block: used where
//! a failure must be caught and the work undone without ending the caller's
//! transaction (the round-trip test).

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::{self, panic::CaughtError, panic::ErrorReportWithLevel};
use pgrx::prelude::*;

use crate::pg_report;

/// What a caught PostgreSQL error said.
#[derive(Debug, Clone)]
pub struct Failure {
    /// pgrx's name for the code: XX000 for any code outside PostgreSQL's own table.
    pub code: PgSqlErrorCode,
    /// The real five characters, e.g. "AB123" from a user's RAISE ... USING ERRCODE.
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
}

/// Run `work` in a subtransaction. On success keep (`Keep::Commit`) or undo it
/// (`Keep::Rollback`); on an ERROR roll it back and return what it said.
/// A cancel, a statement timeout or a shutdown is not a failure of the work:
/// it is rolled back and raised again, as PL/pgSQL's WHEN OTHERS does.
pub fn run<R>(keep: Keep, work: impl FnOnce() -> R) -> Result<R, Failure> {
    // SAFETY: the same sequence PL/pgSQL uses (pl_exec.c, exec_stmt_block); the
    // caller's memory context and resource owner are restored on both paths.
    let (old_context, old_owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(old_context);
    }
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| Ok(pg_report::noting_sqlstate(work))))
        .catch_others(|caught| {
            let noted = pg_report::noted_sqlstate();
            Err((caught, noted))
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
    outcome.map_err(|(caught, noted)| {
        let failure = match &caught {
            CaughtError::PostgresError(report) => failure(report, noted),
            // Raised from Rust: it never passed errfinish, so only a carried code can differ.
            CaughtError::ErrorReport(report) => failure(report, None),
            CaughtError::RustPanic { .. } => None,
        };
        let Some(failure) = failure else { caught.rethrow() };
        if is_interrupt(&failure.sqlstate) {
            caught.rethrow()
        }
        failure
    })
}

/// query_canceled (cancel, statement_timeout) and the admin_shutdown family.
fn is_interrupt(sqlstate: &str) -> bool {
    matches!(sqlstate, "57014" | "57P01" | "57P02" | "57P03")
}

/// The real SQLSTATE: one carried beside a re-raised message (engine.rs does
/// that for a revision's statement), else the one errfinish last noted, else pgrx's.
fn failure(report: &ErrorReportWithLevel, noted: Option<String>) -> Option<Failure> {
    let code = report.sql_error_code();
    let message = report.message().to_string();
    let sqlstate = pg_report::carried(&message)
        .or(noted)
        .unwrap_or_else(|| pg_report::decode_sqlstate(code as i32));
    Some(Failure { code, sqlstate, message, detail: report.detail().map(str::to_string) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Commit,
    Rollback,
}
