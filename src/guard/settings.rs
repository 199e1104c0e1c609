//! The guard's settings, all under `pg_migrate.`. Everything that can weaken the
//! guard is superuser-only (SUSET); only the per-transaction acknowledgement
//! `pg_migrate.allow` is open to every role, and it needs a reason.
//!
//! `pg_migrate.allow` acknowledges only when SET LOCAL (or set_config(..., true))
//! gave it its value in the current transaction. A check hook refuses values
//! stored for later (ALTER ROLE/DATABASE SET, a function's SET clause,
//! postgresql.conf, connection options); a session-wide SET is accepted as a
//! setting but acknowledges nothing, which the guard's HINT then says.

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::pg_sys::{self, GucSource};
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

use super::facts::Thresholds;
use super::rules::{self, Allowance, Levels};

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum GuardMode {
    #[name = c"enforce"]
    Enforce,
    #[name = c"warn"]
    Warn,
    #[name = c"off"]
    Off,
}

pub static GUARD: GucSetting<GuardMode> = GucSetting::<GuardMode>::new(GuardMode::Enforce);
/// pg_migrate.allow's value; PostgreSQL owns the string.
static mut ALLOW: *mut c_char = std::ptr::null_mut();
const ALLOW_NAME: &CStr = c"pg_migrate.allow";
pub static LEVELS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static MIN_ROWS: GucSetting<i32> = GucSetting::<i32>::new(100_000);
pub static MIN_SIZE_KB: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);
pub static LOCK_QUEUE_AGE_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);

pub fn define() {
    GucRegistry::define_enum_guc(
        c"pg_migrate.guard",
        c"What the DDL guard does with a dangerous statement: enforce (ERROR), warn (WARNING) or off.",
        c"Superuser-only, so an application role cannot switch the guard off.",
        &GUARD,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Defined by hand: GucRegistry has no check hooks.
    // SAFETY: called from _PG_init; ALLOW lives as long as the process.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            ALLOW_NAME.as_ptr(),
            c"Acknowledged dangerous operations for this transaction: 'rule: reason; rule: reason'.".as_ptr(),
            c"Only SET LOCAL in the statement's transaction acknowledges. Each acknowledged operation is recorded in migrate.guard_log.".as_ptr(),
            &raw mut ALLOW,
            std::ptr::null(),
            pg_sys::GucContext::PGC_USERSET,
            0,
            Some(check_allow),
            None,
            None,
        );
    }
    GucRegistry::define_string_guc(
        c"pg_migrate.guard_levels",
        c"Per-rule levels: 'rule=off|notice|warning|error, ...'.",
        c"Superuser-only. Advisory rules (prefer_jsonb, prefer_timestamptz, prefer_bigint_pk) are off by default.",
        &LEVELS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_migrate.guard_min_rows",
        c"A table with at least this many rows (estimated) is large.",
        c"Large tables trigger the rules about long locks (blocking_index, table_rewrite, table_copy, set_not_null, validating_constraint, ...). A table never analyzed is sized by its pages.",
        &MIN_ROWS,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_migrate.guard_min_size",
        c"A table at least this big on disk is large.",
        c"Either threshold makes a table large.",
        &MIN_SIZE_KB,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"pg_migrate.guard_lock_queue_age",
        c"A transaction holding a conflicting lock for longer than this makes lock_queue fire.",
        c"",
        &LOCK_QUEUE_AGE_MS,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    // SAFETY: a plain call at load time; reserves the prefix so typos are errors.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_migrate".as_ptr()) };
}

pub fn thresholds() -> Thresholds {
    Thresholds {
        min_rows: i64::from(MIN_ROWS.get()),
        min_bytes: i64::from(MIN_SIZE_KB.get()) * 1024,
        lock_queue_age_ms: i64::from(LOCK_QUEUE_AGE_MS.get()),
    }
}

fn text(setting: &GucSetting<Option<CString>>) -> String {
    setting.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn allow_text() -> String {
    // SAFETY: ALLOW is NULL or PostgreSQL's NUL-terminated copy of the value.
    unsafe {
        let value = ALLOW;
        if value.is_null() { String::new() } else { CStr::from_ptr(value).to_string_lossy().into_owned() }
    }
}

/// What pg_migrate.allow acknowledges for the statement being checked.
#[derive(Default)]
pub struct Acknowledgements {
    pub allowances: Vec<Allowance>,
    /// It has a value, but not one this transaction gave it with SET LOCAL.
    pub set_but_not_local: bool,
}

pub fn acknowledgements() -> Result<Acknowledgements, String> {
    let text = allow_text();
    if text.trim().is_empty() {
        return Ok(Acknowledgements::default());
    }
    if !allow_is_transaction_local() {
        return Ok(Acknowledgements { allowances: Vec::new(), set_but_not_local: true });
    }
    Ok(Acknowledgements { allowances: rules::parse_allowances(&text)?, set_but_not_local: false })
}

/// Whether pg_migrate.allow's current value came from SET LOCAL (or
/// set_config(..., true)) in this transaction: the top of the setting's own
/// stack of saved values says so. A plain SET leaves GUC_SET there, a
/// function's SET clause GUC_SAVE; a value from the role, the database or the
/// session start has no stack entry at all (every stack is empty between
/// transactions).
fn allow_is_transaction_local() -> bool {
    // SAFETY: the server's array of settings, read in this backend; every
    // entry is a valid config_generic.
    unsafe {
        let variables = pg_sys::get_guc_variables();
        let count = usize::try_from(pg_sys::GetNumConfigOptions()).unwrap_or(0);
        if variables.is_null() {
            return false;
        }
        for index in 0..count {
            let variable = *variables.add(index);
            if variable.is_null() || (*variable).name.is_null() || CStr::from_ptr((*variable).name) != ALLOW_NAME {
                continue;
            }
            let stack = (*variable).stack;
            return !stack.is_null()
                && matches!((*stack).state, pg_sys::GucStackState::GUC_LOCAL | pg_sys::GucStackState::GUC_SET_LOCAL);
        }
        false
    }
}

/// Why PostgreSQL must not take `value` for pg_migrate.allow from `source`:
/// (message, hint), or None to accept it.
fn allow_refusal(value: &str, source: GucSource::Type) -> Option<(String, String)> {
    if value.trim().is_empty() {
        return None;
    }
    const HINT: &str = "Acknowledge in the statement's own transaction: \
                        BEGIN; SET LOCAL pg_migrate.allow = '<rule>: <why this is safe>'; <the statement>; COMMIT;";
    let stored = match source {
        GucSource::PGC_S_DEFAULT | GucSource::PGC_S_DYNAMIC_DEFAULT | GucSource::PGC_S_SESSION
        | GucSource::PGC_S_OVERRIDE | GucSource::PGC_S_INTERACTIVE => None,
        GucSource::PGC_S_TEST => Some("a role's, database's or function's settings (ALTER ROLE/DATABASE/FUNCTION ... SET)"),
        GucSource::PGC_S_USER | GucSource::PGC_S_DATABASE | GucSource::PGC_S_DATABASE_USER | GucSource::PGC_S_GLOBAL => {
            Some("a role's or database's settings (ALTER ROLE/DATABASE ... SET)")
        }
        GucSource::PGC_S_CLIENT => Some("the connection's options"),
        _ => Some("the server's configuration"),
    };
    if let Some(place) = stored {
        return Some((
            format!("pg_migrate.allow cannot be set in {place}: an acknowledgement counts only for the transaction that makes it"),
            HINT.to_string(),
        ));
    }
    rules::parse_allowances(value).err().map(|error| (format!("invalid pg_migrate.allow: {error}"), HINT.to_string()))
}

#[pg_guard]
unsafe extern "C-unwind" fn check_allow(newval: *mut *mut c_char, _extra: *mut *mut c_void, source: GucSource::Type) -> bool {
    // SAFETY: PostgreSQL passes the new value, NULL or a NUL-terminated string.
    let value = unsafe {
        if newval.is_null() || (*newval).is_null() { String::new() } else { CStr::from_ptr(*newval).to_string_lossy().into_owned() }
    };
    let Some((message, hint)) = allow_refusal(&value, source) else { return true };
    // SAFETY: the GUC check-hook protocol: messages palloc'd in the current context.
    unsafe {
        pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE as i32);
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(CString::new(message).unwrap_or_default().as_ptr());
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(CString::new(hint).unwrap_or_default().as_ptr());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_acknowledgements_are_refused_and_session_values_checked() {
        assert!(allow_refusal("drop_column: moved in v42", GucSource::PGC_S_SESSION).is_none());
        assert!(allow_refusal("", GucSource::PGC_S_USER).is_none());
        for source in [GucSource::PGC_S_TEST, GucSource::PGC_S_USER, GucSource::PGC_S_DATABASE_USER,
                       GucSource::PGC_S_DATABASE, GucSource::PGC_S_CLIENT, GucSource::PGC_S_FILE] {
            let (message, hint) = allow_refusal("drop_column: moved in v42", source).unwrap();
            assert!(message.starts_with("pg_migrate.allow cannot be set in"), "{message}");
            assert!(hint.contains("BEGIN; SET LOCAL"), "{hint}");
        }
        let (message, _) = allow_refusal("drop_column: <reason>", GucSource::PGC_S_SESSION).unwrap();
        assert!(message.contains("placeholder"), "{message}");
    }
}

pub fn levels() -> Result<Levels, String> {
    Levels::parse(&text(&LEVELS))
}
