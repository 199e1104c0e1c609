//! Reports that carry a SQLSTATE pgrx has no name for: the guard's own class MG.
//!
//! pgrx re-raises every error with a code from its `PgSqlErrorCode` table, so
//! `MG001` would reach the client as XX000. These functions call elog.c
//! directly, the way pgrx's own `do_ereport` does. An ERROR longjmps out of
//! `errfinish`, so [`throw`] may only run where no Rust value with a destructor
//! is alive: the outermost frame of a hand-written C entry point.

use std::ffi::{c_char, c_int, CString};

// Not wrapped by pgrx's FFI guard on purpose: that guard would catch the
// longjmp and turn the report back into XX000.
unsafe extern "C-unwind" {
    fn errstart(elevel: c_int, domain: *const c_char) -> bool;
    fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
    fn errcode(sqlerrcode: c_int) -> c_int;
    fn errmsg(fmt: *const c_char, ...) -> c_int;
    fn errdetail(fmt: *const c_char, ...) -> c_int;
    fn errhint(fmt: *const c_char, ...) -> c_int;
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

#[cfg(test)]
mod tests {
    use super::encode_sqlstate;

    #[test]
    fn sqlstates_encode_as_postgres_does() {
        // ERRCODE_INTERNAL_ERROR is MAKE_SQLSTATE('X','X','0','0','0') = 2600.
        assert_eq!(encode_sqlstate("XX000"), 2600);
        // ERRCODE_UNIQUE_VIOLATION, 23505.
        assert_eq!(encode_sqlstate("23505"), 2 | 3 << 6 | 5 << 12 | 0 << 18 | 5 << 24);
        assert_eq!(encode_sqlstate("bad"), 2600);
    }
}
