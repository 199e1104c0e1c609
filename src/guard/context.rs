//! What the guard knows about the work going on in this backend, in one place:
//! the extension's own DDL (bypass), the statement pg_migrate is running, the
//! revision whose "-- Allow:" lines apply, and this transaction's drops and adds.
//!
//! A revision's Allow lines are tied to the step that runs it:
//! - inside migrate_upgrade()/apply_step() (`in_revision`), to that call, in
//!   its transaction, for the role that made the call;
//! - in a psql plan (`begin_plan_step` .. `end_plan_step`), to the statements
//!   of that revision only, run by the role that called begin_step, until
//!   end_step, unlock, or the first aborted transaction. A step begun inside a
//!   transaction block (an offline script) also ends with that transaction.
//!
//! A leaf: it uses nothing of pg_migrate but the rules' and revisions' types.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::c_void;
use std::time::Instant;

use pgrx::pg_sys;

use super::facts::History;
use super::rules::Allowance;
use crate::revisions::graph::Direction;

/// A revision whose Allow lines may apply.
#[derive(Clone)]
pub struct Revision {
    pub id: String,
    pub allowances: Vec<Allowance>,
    /// The role that started it: nobody else's statements are covered.
    role: pg_sys::Oid,
}

/// A revision whose statements psql runs one by one, between begin_step and end_step.
pub struct PlanStep {
    revision: Revision,
    pub direction: Direction,
    /// The revision's own statements, as split_statements gives them.
    statements: HashSet<String>,
    /// Begun inside a transaction block: the step ends with that transaction.
    in_transaction_block: bool,
    pub started_at_us: i64,
    pub clock: Instant,
    /// Some transaction aborted since begin_step: the Allow lines are void and
    /// end_step must not record the revision.
    pub aborted: bool,
}

thread_local! {
    static BYPASS: Cell<u32> = const { Cell::new(0) };
    static STATEMENT: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_CALL: RefCell<Option<(Revision, pg_sys::LocalTransactionId)>> = const { RefCell::new(None) };
    static PLAN_STEP: RefCell<Option<PlanStep>> = const { RefCell::new(None) };
    static HISTORY: RefCell<TransactionHistory> = RefCell::new(TransactionHistory::default());
}

/// Restores a thread-local when dropped, also when an ERROR unwinds.
struct Restore<F: FnMut()>(F);
impl<F: FnMut()> Drop for Restore<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

fn current_lxid() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is this backend's PGPROC; lxid changes with every transaction.
    unsafe { (*pg_sys::MyProc).lxid }
}

fn current_role() -> pg_sys::Oid {
    // SAFETY: a read of the backend's current user id.
    unsafe { pg_sys::GetUserId() }
}

/// Watch transaction ends; called once per backend, from _PG_init.
pub fn register() {
    // SAFETY: the callbacks touch only this module's thread-locals.
    unsafe {
        pg_sys::RegisterXactCallback(Some(transaction_ended), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subtransaction_event), std::ptr::null_mut());
    }
}

/// A savepoint rolled back undoes the DDL in it, so rename_by_drop must forget
/// what was recorded there (a DROP COLUMN refused inside a savepoint, then an
/// ADD COLUMN, is not a rename).
unsafe extern "C-unwind" fn subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    use pg_sys::SubXactEvent::*;
    let lxid = current_lxid();
    let _ = HISTORY.try_with(|h| {
        let Ok(mut h) = h.try_borrow_mut() else { return };
        h.start(lxid);
        match event {
            SUBXACT_EVENT_START_SUB => {
                let mark = h.lengths();
                h.savepoints.push((subid, mark));
            }
            SUBXACT_EVENT_COMMIT_SUB => h.forget_savepoint(subid, false),
            SUBXACT_EVENT_ABORT_SUB => h.forget_savepoint(subid, true),
            _ => {}
        }
    });
}

/// rename_by_drop's history of this transaction, with where each open
/// savepoint began in it.
#[derive(Default)]
struct TransactionHistory {
    lxid: pg_sys::LocalTransactionId,
    history: History,
    savepoints: Vec<(pg_sys::SubTransactionId, [usize; 3])>,
}

impl TransactionHistory {
    /// A new transaction starts from nothing.
    fn start(&mut self, lxid: pg_sys::LocalTransactionId) {
        if self.lxid != lxid {
            *self = TransactionHistory { lxid, ..Default::default() };
        }
    }

    fn lengths(&self) -> [usize; 3] {
        [self.history.dropped_columns.len(), self.history.added_columns.len(), self.history.dropped_tables.len()]
    }

    /// The savepoint `subid` ended: on rollback, drop what was recorded since it began.
    fn forget_savepoint(&mut self, subid: pg_sys::SubTransactionId, rolled_back: bool) {
        let Some(at) = self.savepoints.iter().position(|(id, _)| *id == subid) else { return };
        let [columns_dropped, columns_added, tables_dropped] = self.savepoints[at].1;
        self.savepoints.truncate(at);
        if rolled_back {
            self.history.dropped_columns.truncate(columns_dropped);
            self.history.added_columns.truncate(columns_added);
            self.history.dropped_tables.truncate(tables_dropped);
        }
    }
}

unsafe extern "C-unwind" fn transaction_ended(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    let aborted = matches!(event, XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT);
    let committed = matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PREPARE);
    if !aborted && !committed {
        return;
    }
    let _ = IN_CALL.try_with(|call| {
        if let Ok(mut call) = call.try_borrow_mut() {
            *call = None;
        }
    });
    let _ = STATEMENT.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            *s = None;
        }
    });
    let _ = PLAN_STEP.try_with(|step| {
        let Ok(mut slot) = step.try_borrow_mut() else { return };
        let Some(step) = slot.as_mut() else { return };
        if aborted {
            step.aborted = true;
        }
        // MyProc->lxid is already cleared here, but a transaction block is
        // the only one open while it lasts: this commit is its end.
        if committed && step.in_transaction_block {
            *slot = None;
        }
    });
}

/// Run the extension's own DDL (migrate_set_not_null's steps) past the guard.
pub fn bypassed<R>(work: impl FnOnce() -> R) -> R {
    BYPASS.with(|b| b.set(b.get() + 1));
    let _restore = Restore(|| BYPASS.with(|b| b.set(b.get().saturating_sub(1))));
    work()
}

pub fn is_bypassed() -> bool {
    BYPASS.with(Cell::get) > 0
}

/// While a revision runs inside one function call (migrate_upgrade,
/// apply_step, the round-trip test): its Allow lines apply, and the audit log names it.
pub fn in_revision<R>(revision: &str, allow: &[String], work: impl FnOnce() -> R) -> R {
    let value = (Revision { id: revision.to_string(), allowances: allowances(allow), role: current_role() }, current_lxid());
    let previous = IN_CALL.with(|r| r.replace(Some(value)));
    let mut previous = Some(previous);
    let _restore = Restore(move || {
        let value = previous.take().flatten();
        let _ = IN_CALL.try_with(|r| *r.borrow_mut() = value);
    });
    work()
}

/// The text of the statement being run, for HINTs that write out the safe version.
pub fn with_statement<R>(sql: &str, work: impl FnOnce() -> R) -> R {
    let previous = STATEMENT.with(|s| s.replace(Some(sql.to_string())));
    let mut previous = Some(previous);
    let _restore = Restore(move || {
        let value = previous.take().flatten();
        let _ = STATEMENT.try_with(|s| *s.borrow_mut() = value);
    });
    work()
}

/// The statement pg_migrate itself is running, if any.
pub fn statement() -> Option<String> {
    STATEMENT.with(|s| s.borrow().clone())
}

/// begin_step: the revision's `statements` may use its Allow lines from now on.
pub fn begin_plan_step(revision: &str, direction: Direction, allow: &[String], statements: Vec<String>, started_at_us: i64) {
    // SAFETY: a read of the transaction state.
    let in_block = unsafe { pg_sys::IsTransactionBlock() };
    let step = PlanStep {
        revision: Revision { id: revision.to_string(), allowances: allowances(allow), role: current_role() },
        direction,
        statements: statements.into_iter().collect(),
        in_transaction_block: in_block,
        started_at_us,
        clock: Instant::now(),
        aborted: false,
    };
    PLAN_STEP.with(|s| *s.borrow_mut() = Some(step));
}

/// end_step: the step that began, if it is this revision's; it ends here either way.
pub fn end_plan_step(revision: &str, direction: Direction) -> Option<PlanStep> {
    PLAN_STEP
        .with(|s| s.borrow_mut().take())
        .filter(|step| step.revision.id == revision && step.direction == direction)
}

/// unlock: whatever step was in progress is over.
pub fn end_all() {
    PLAN_STEP.with(|s| *s.borrow_mut() = None);
}

/// The revision whose Allow lines apply to the statement being checked.
/// `top_level` is the client's statement, split as the plan splits a revision.
pub fn revision_in_force(top_level: impl FnOnce() -> Option<String>) -> Option<Revision> {
    let role = current_role();
    let lxid = current_lxid();
    if let Some((revision, _)) = IN_CALL.with(|r| r.borrow().clone()).filter(|(_, t)| *t == lxid) {
        return (revision.role == role).then_some(revision);
    }
    let usable = PLAN_STEP.with(|s| s.borrow().as_ref().is_some_and(|step| !step.aborted && step.revision.role == role));
    if !usable {
        return None;
    }
    let text = top_level()?;
    PLAN_STEP.with(|s| s.borrow().as_ref().filter(|step| step.statements.contains(&text)).map(|step| step.revision.clone()))
}

/// Whether the statement being run is pg_migrate's own work on a revision:
/// inside a function call that runs one (in this transaction), or one of the
/// statements of the psql plan step in progress. Any role: a SET ROLE inside a
/// revision is still the revision's. Drift capture leaves such work out.
pub fn is_revision_work(top_level: impl FnOnce() -> Option<String>) -> bool {
    let lxid = current_lxid();
    if IN_CALL.with(|r| r.borrow().as_ref().is_some_and(|(_, t)| *t == lxid)) {
        return true;
    }
    if !PLAN_STEP.with(|s| s.borrow().as_ref().is_some_and(|step| !step.aborted)) {
        return false;
    }
    let Some(text) = top_level() else { return false };
    PLAN_STEP.with(|s| s.borrow().as_ref().is_some_and(|step| step.statements.contains(&text)))
}

/// Transaction-local history for rename_by_drop: reset when a new transaction
/// starts, cut back when a savepoint rolls back.
pub fn with_history<R>(work: impl FnOnce(&mut History) -> R) -> R {
    let lxid = current_lxid();
    HISTORY.with(|h| {
        let mut h = h.borrow_mut();
        h.start(lxid);
        work(&mut h.history)
    })
}

fn allowances(allow: &[String]) -> Vec<Allowance> {
    allow.iter().filter_map(|line| super::rules::parse_header_allowance(line).ok()).collect()
}
