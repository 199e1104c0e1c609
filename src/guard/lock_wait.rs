//! A checked statement that fails on lock_timeout (55P03) says only "canceling
//! statement due to lock timeout". Before it waits, the guard already knows who
//! holds a conflicting lock (the lock_queue facts, of any age); this keeps that
//! and adds it to the 55P03 report as DETAIL and HINT, from an error context
//! callback, so the SQLSTATE and the message stay PostgreSQL's own. After the
//! error the wait is over and nothing may be queried, so nothing is looked up then.
//!
//! The callback is one static node pushed on `error_context_stack` (never twice:
//! a node on the stack twice would make a loop). Whoever pushed below it pops it
//! when they restore the stack (ProcessUtilitySlow's PG_TRY, a PL/pgSQL frame,
//! the error recovery of the main loop). Left on the stack after a statement
//! that succeeded, it does nothing: the facts are tied to the start time of the
//! statement they were taken for, and each checked statement replaces them.

use std::cell::RefCell;
use std::ffi::{c_void, CString};
use std::ptr::addr_of_mut;

use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;

use super::facts::{Blocker, Statement};
use super::rules;

struct Expected {
    statement_start: pg_sys::TimestampTz,
    detail: CString,
    hint: CString,
}

thread_local! {
    static EXPECTED: RefCell<Option<Expected>> = const { RefCell::new(None) };
}

static mut NODE: pg_sys::ErrorContextCallback =
    pg_sys::ErrorContextCallback { previous: std::ptr::null_mut(), callback: Some(name_the_blockers), arg: std::ptr::null_mut() };

/// Keep what a lock_timeout of `statement` should say (or forget the previous
/// statement's, when nobody holds a conflicting lock).
pub fn expect(statement: &Statement, blockers: &[Blocker]) {
    let Some((detail, hint)) = rules::waited_behind(statement, blockers) else {
        EXPECTED.with(|e| *e.borrow_mut() = None);
        return;
    };
    let c = |text: String| CString::new(text.replace('\0', " ")).unwrap_or_default();
    // SAFETY: a read of the current statement's start time.
    let statement_start = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    EXPECTED.with(|e| *e.borrow_mut() = Some(Expected { statement_start, detail: c(detail), hint: c(hint) }));
    // SAFETY: NODE is static, so it outlives any place on the stack; it is
    // pushed only when it is not on the stack already.
    unsafe {
        let node = addr_of_mut!(NODE);
        let mut entry = pg_sys::error_context_stack;
        while !entry.is_null() {
            if entry == node {
                return;
            }
            entry = (*entry).previous;
        }
        (*node).previous = pg_sys::error_context_stack;
        pg_sys::error_context_stack = node;
    }
}

/// Called by errfinish for every report while the node is on the stack: cheap
/// unless the report is a 55P03 of the statement the facts were taken for.
unsafe extern "C-unwind" fn name_the_blockers(_arg: *mut c_void) {
    if crate::pg_report::reporting_sqlstate() != PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE as i32 {
        return;
    }
    let statement_start = pg_sys::GetCurrentStatementStartTimestamp();
    EXPECTED.with(|e| {
        if let Some(expected) = e.borrow().as_ref().filter(|x| x.statement_start == statement_start) {
            crate::pg_report::add_detail_and_hint(&expected.detail, &expected.hint);
        }
    });
}
