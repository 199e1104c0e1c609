//! TRUNCATE and REINDEX fire no event trigger in PostgreSQL 15. With
//! `shared_preload_libraries = 'pg_migrate'` a ProcessUtility hook checks them
//! with the same rules. Without the preload the hook is not installed at all:
//! a hook that only worked in sessions which happened to load the library
//! earlier would guard TRUNCATE sometimes, which is worse than never.

use std::ffi::c_char;

use pgrx::pg_sys::{self, NodeTag};

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

// Called unguarded: an ERROR inside the statement must longjmp through this
// hook with its own SQLSTATE, not be re-raised by pgrx as XX000.
unsafe extern "C-unwind" {
    fn standard_ProcessUtility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

/// Install the hook; only while shared_preload_libraries loads the library.
pub fn install() {
    // SAFETY: _PG_init runs once per process, before any statement.
    unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress {
            return;
        }
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let node = (*pstmt).utilityStmt;
    if !node.is_null() && (pgrx::is_a(node, NodeTag::T_TruncateStmt) || pgrx::is_a(node, NodeTag::T_ReindexStmt)) {
        let error = pg_sys::panic::pgrx_extern_c_guard(|| super::triggers::check_utility(node));
        if let Some(error) = error {
            crate::pg_report::throw(error);
        }
    }
    match PREVIOUS {
        Some(previous) => previous(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc),
        None => standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc),
    }
}
