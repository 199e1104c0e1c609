//! C entry points of released functions whose SQL signature has since changed.
//!
//! After a new package is installed, a database stays at its old extension
//! version until `ALTER EXTENSION pg_migrate UPDATE`, and its old SQL definitions
//! call this library by symbol name. Where an argument list or result type
//! changed, the current function has a symbol of its own, and the old symbol
//! lands here: a clear error instead of arguments of the wrong type (which
//! would be read as pointers). The frozen install scripts of released versions
//! (sql/pg_migrate--<version>.sql) also need every symbol they name to exist.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// Refuse a call through a definition older than the library.
fn superseded(function: &str) -> ! {
    crate::errors::raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "{function} of this database's pg_migrate is older than the installed library ({})",
            env!("CARGO_PKG_VERSION")
        ),
        Some("The package was updated, but the extension in this database was not: its SQL objects still have the old definitions.".into()),
        // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
        Some("ALTER EXTENSION pg_migrate UPDATE;".into()),
    )
}

macro_rules! superseded_symbol {
    ($symbol:ident, $info:ident, $function:literal) => {
        #[no_mangle]
        pub extern "C-unwind" fn $info() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        /// # Safety
        /// Called by PostgreSQL's function manager; reads no argument.
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $symbol(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            pg_sys::panic::pgrx_extern_c_guard(|| superseded($function))
        }
    };
}

// 0.1.0: migrate.backfill_prepare(oid, text, text, text, integer x 7) RETURNS bigint.
superseded_symbol!(backfill_prepare_wrapper, pg_finfo_backfill_prepare_wrapper, "migrate.backfill_prepare");
// 0.1.0: migrate.backfill_report(bigint) RETURNS void.
superseded_symbol!(backfill_report_wrapper, pg_finfo_backfill_report_wrapper, "migrate.backfill_report");
// 0.1.0: migrate_review(text) RETURNS TABLE (revision, statement, rule, level, sqlstate, message, hint).
superseded_symbol!(migrate_review_wrapper, pg_finfo_migrate_review_wrapper, "migrate_review");
// 0.1.0: migrate_merge(text[], text) RETURNS text (the revision id; now the file too).
superseded_symbol!(migrate_merge_wrapper, pg_finfo_migrate_merge_wrapper, "migrate_merge");
