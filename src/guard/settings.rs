//! The guard's settings, all under `pg_migrate.`. Everything that can weaken the
//! guard is superuser-only (SUSET); only the per-transaction acknowledgement
//! `pg_migrate.allow` is open to every role, and it needs a reason.

use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};

use super::facts::Thresholds;
use super::rules::Levels;

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
pub static ALLOW: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
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
    GucRegistry::define_string_guc(
        c"pg_migrate.allow",
        c"Acknowledged dangerous operations for this transaction: 'rule: reason; rule: reason'.",
        c"Use SET LOCAL. Each acknowledged operation is recorded in migrate.guard_log.",
        &ALLOW,
        GucContext::Userset,
        GucFlags::default(),
    );
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
        c"Large tables trigger blocking_index, table_rewrite, set_not_null and validating_constraint.",
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

pub fn allow_text() -> String {
    text(&ALLOW)
}

pub fn levels() -> Result<Levels, String> {
    Levels::parse(&text(&LEVELS))
}
