//! TRUNCATE, REINDEX, VACUUM FULL and CLUSTER fire no event trigger in
//! PostgreSQL 15. With `shared_preload_libraries = 'pg_migrate'` a
//! ProcessUtility hook checks them with the same rules. It also runs the event
//! triggers' checks while `session_replication_role = replica`, which skips
//! every event trigger (enabled ORIGIN, as CREATE EVENT TRIGGER makes them). Without the preload the hook is not installed at all:
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
    if !node.is_null() && checked_here(node) {
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

/// Statements no event trigger sees: TRUNCATE, REINDEX, VACUUM FULL (plain
/// VACUUM and ANALYZE only pay this test), CLUSTER; and, while
/// session_replication_role = replica, those the event triggers would check.
unsafe fn checked_here(node: *mut pg_sys::Node) -> bool {
    if pgrx::is_a(node, NodeTag::T_TruncateStmt) || pgrx::is_a(node, NodeTag::T_ReindexStmt) || pgrx::is_a(node, NodeTag::T_ClusterStmt) {
        return true;
    }
    if pgrx::is_a(node, NodeTag::T_VacuumStmt) {
        return super::extract::is_vacuum_full(&*(node as *mut pg_sys::VacuumStmt));
    }
    pg_sys::SessionReplicationRole == pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32 && super::triggers::event_trigger_node(node)
}
