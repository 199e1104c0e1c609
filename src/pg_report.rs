//! Reports that carry a SQLSTATE pgrx has no name for: the guard's own class MG,
//! or a user's own code raised inside a revision.
//!
//! pgrx re-raises every error with a code from its `PgSqlErrorCode` table, so
//! `MG001` would reach the client as XX000. These functions call elog.c
//! directly, the way pgrx's own `do_ereport` does. An ERROR longjmps out of
//! `errfinish`, so [`throw`] may only run where no Rust value with a destructor
//! is alive: the outermost frame of a hand-written C entry point.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CString};

// Not wrapped by pgrx's FFI guard on purpose: that guard would catch the
// longjmp and turn the report back into XX000.
unsafe extern "C-unwind" {
    fn errstart(elevel: c_int, domain: *const c_char) -> bool;
    fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
    fn errcode(sqlerrcode: c_int) -> c_int;
    fn errmsg(fmt: *const c_char, ...) -> c_int;
    fn errdetail(fmt: *const c_char, ...) -> c_int;
    fn errhint(fmt: *const c_char, ...) -> c_int;
    fn geterrcode() -> c_int;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Notice,
    Warning,
    Error,
}

impl Severity {
    fn elevel(self) -> c_int {
        (match self {
            Severity::Notice => pgrx::pg_sys::NOTICE,
            Severity::Warning => pgrx::pg_sys::WARNING,
            Severity::Error => pgrx::pg_sys::PGERROR,
        }) as c_int
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub severity: Severity,
    /// Five characters of [0-9A-Z], e.g. "MG001".
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: String,
    pub hint: String,
}

/// PostgreSQL's MAKE_SQLSTATE: six bits per character.
fn encode_sqlstate(sqlstate: &str) -> c_int {
    let bytes = sqlstate.as_bytes();
    if bytes.len() != 5 || !bytes.iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        return encode_sqlstate("XX000");
    }
    bytes.iter().enumerate().map(|(i, b)| (c_int::from(b.wrapping_sub(b'0')) & 0x3F) << (6 * i)).sum()
}

fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

/// Fill the error data of a report that errstart accepted. elog.c copies every
/// string, so the CStrings are dropped before the caller's errfinish.
unsafe fn fill(report: &Report) {
    const PERCENT_S: &std::ffi::CStr = c"%s";
    let (message, detail, hint) = (c_text(&report.message), c_text(&report.detail), c_text(&report.hint));
    errcode(encode_sqlstate(report.sqlstate));
    errmsg(PERCENT_S.as_ptr(), message.as_ptr());
    if !report.detail.is_empty() {
        errdetail(PERCENT_S.as_ptr(), detail.as_ptr());
    }
    if !report.hint.is_empty() {
        errhint(PERCENT_S.as_ptr(), hint.as_ptr());
    }
}

/// Send a NOTICE or WARNING; returns normally. An ERROR report is sent as a
/// WARNING here: only [`throw`] may abort.
pub fn emit(report: &Report) {
    let severity = report.severity.min(Severity::Warning);
    // SAFETY: below ERROR, errfinish returns; all strings are copied by elog.c.
    unsafe {
        if errstart(severity.elevel(), std::ptr::null()) {
            fill(report);
            errfinish(c"pg_migrate".as_ptr(), 0, c"guard".as_ptr());
        }
    }
}

/// Raise `report` as an ERROR with its own SQLSTATE. Never returns.
///
/// # Safety
/// errfinish longjmps over the caller's frames: call this only from a C entry
/// point's outermost frame, with no live Rust value that needs dropping.
pub unsafe fn throw(report: Report) -> ! {
    if errstart(Severity::Error.elevel(), std::ptr::null()) {
        fill(&report);
        drop(report);
        errfinish(c"pg_migrate".as_ptr(), 0, c"guard".as_ptr());
    }
    unreachable!("errfinish does not return at ERROR")
}

/// The packed SQLSTATE of the report being made, for an error context callback.
pub fn reporting_sqlstate() -> c_int {
    // SAFETY: elog.c's accessor of the innermost report; only called by a
    // context callback, which errfinish calls while that report is made.
    unsafe { geterrcode() }
}

/// Add a DETAIL and a HINT to the report being made (from an error context
/// callback: errfinish calls them before the report is sent).
pub fn add_detail_and_hint(detail: &std::ffi::CStr, hint: &std::ffi::CStr) {
    // SAFETY: as errcontext does from a callback; elog.c copies the strings.
    unsafe {
        errdetail(c"%s".as_ptr(), detail.as_ptr());
        errhint(c"%s".as_ptr(), hint.as_ptr());
    }
}

/// The five characters of a packed SQLSTATE (PostgreSQL's unpack_sql_state).
pub fn decode_sqlstate(code: c_int) -> String {
    (0..5).map(|i| char::from(((code >> (6 * i)) & 0x3F) as u8 + b'0')).collect()
}

thread_local! {
    static LAST_SQLSTATE: Cell<c_int> = const { Cell::new(0) };
    static CARRIED: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

unsafe extern "C-unwind" fn note_sqlstate(_arg: *mut c_void) {
    // Called by errfinish for every report inside; the ERROR that ends the
    // work is the last one.
    LAST_SQLSTATE.with(|last| last.set(geterrcode()));
}

/// Pops the error context callback, also when an ERROR unwinds.
struct PopContext(*mut pgrx::pg_sys::ErrorContextCallback);
impl Drop for PopContext {
    fn drop(&mut self) {
        // SAFETY: the callback pushed by noting_sqlstate is still on the stack
        // (pgrx restores the stack to where it was when it caught an ERROR).
        unsafe { pgrx::pg_sys::error_context_stack = (*self.0).previous };
    }
}

/// Run `work`, noting the real SQLSTATE of an ERROR raised inside it, which
/// pgrx may turn into XX000 on the way out; [`noted_sqlstate`] gives it.
pub fn noting_sqlstate<R>(work: impl FnOnce() -> R) -> R {
    LAST_SQLSTATE.with(|last| last.set(0));
    let mut callback = pgrx::pg_sys::ErrorContextCallback {
        // SAFETY: a read of the backend's error context stack.
        previous: unsafe { pgrx::pg_sys::error_context_stack },
        callback: Some(note_sqlstate),
        arg: std::ptr::null_mut(),
    };
    // SAFETY: `callback` outlives its place on the stack: PopContext removes it first.
    unsafe { pgrx::pg_sys::error_context_stack = &mut callback };
    let _pop = PopContext(&mut callback);
    work()
}

/// The SQLSTATE of the last report inside [`noting_sqlstate`], if any.
pub fn noted_sqlstate() -> Option<String> {
    let code = LAST_SQLSTATE.with(Cell::get);
    (code != 0).then(|| decode_sqlstate(code))
}

/// Remember the SQLSTATE an error re-raised (as XX000) with `message` really has.
pub fn carry(sqlstate: String, message: String) {
    CARRIED.with(|carried| *carried.borrow_mut() = Some((sqlstate, message)));
}

/// The carried SQLSTATE of the error with `message`, left in place for the
/// PL/pgSQL wrapper further out.
pub fn carried(message: &str) -> Option<String> {
    CARRIED.with(|carried| carried.borrow().as_ref().filter(|(_, m)| m == message).map(|(code, _)| code.clone()))
}

/// The carried SQLSTATE of the error with `message`; the PL/pgSQL wrappers of
/// migrate_upgrade and friends re-raise with it. Cleared once asked.
pub fn take_carried(message: &str) -> Option<String> {
    CARRIED.with(|carried| carried.borrow_mut().take()).filter(|(_, m)| m == message).map(|(code, _)| code)
}

#[cfg(test)]
mod tests {
    use super::{decode_sqlstate, encode_sqlstate};

    #[test]
    fn sqlstates_decode_as_they_encode() {
        for state in ["XX000", "23505", "MG001", "AB123", "P0001"] {
            assert_eq!(decode_sqlstate(encode_sqlstate(state)), state);
        }
    }

    #[test]
    fn sqlstates_encode_as_postgres_does() {
        // ERRCODE_INTERNAL_ERROR is MAKE_SQLSTATE('X','X','0','0','0') = 2600.
        assert_eq!(encode_sqlstate("XX000"), 2600);
        // ERRCODE_UNIQUE_VIOLATION, 23505.
        assert_eq!(encode_sqlstate("23505"), 2 | 3 << 6 | 5 << 12 | 0 << 18 | 5 << 24);
        assert_eq!(encode_sqlstate("bad"), 2600);
    }
}

/// The C entry points PostgreSQL calls for an event trigger function (their SQL
/// is written by hand: pgrx has no event trigger support). `$work` takes the
/// FunctionCallInfo and runs under pgrx's guard, so a Rust panic or a
/// PostgreSQL error inside it is reported as usual; the Report it returns, if
/// any, is thrown after that, from this outermost frame, with its own SQLSTATE.
macro_rules! event_trigger_function {
    ($symbol:ident, $info:ident, $work:expr) => {
        #[no_mangle]
        pub extern "C-unwind" fn $info() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record = ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        /// # Safety
        /// Called by PostgreSQL's function manager as an event trigger function.
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $symbol(fcinfo: ::pgrx::pg_sys::FunctionCallInfo) -> ::pgrx::pg_sys::Datum {
            let work: fn(::pgrx::pg_sys::FunctionCallInfo) -> Option<$crate::pg_report::Report> = $work;
            if let Some(error) = ::pgrx::pg_sys::panic::pgrx_extern_c_guard(|| work(fcinfo)) {
                $crate::pg_report::throw(error);
            }
            ::pgrx::pg_sys::Datum::from(0usize)
        }
    };
}
pub(crate) use event_trigger_function;
