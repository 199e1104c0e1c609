//! The SQL side of batched backfills. The PL/pgSQL procedures in backfill.sql
//! own the transaction boundaries (COMMIT after every batch); the functions here
//! do one step each inside the current transaction.
//!
//! Every batch runs as the role that started the job, with the job's recorded
//! search_path for the user's SET list and condition; pg_migrate's own queries
//! run under the pinned path. The table is found by its oid for every batch.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::{is_a, JsonB, PgList};
use serde::{Deserialize, Serialize};

use super::options::BackfillOptions;
use super::planner::{self, BatchUpdate, KeyColumn};
use super::shape::{self, ParsedUpdate, Predicate, ShapeError, Target};
use super::throttle::{self, Health};
use crate::errors::{raise, OrRaise};
use crate::server_sql;
use crate::subxact::{self, Keep};

/// The five-character SQLSTATE of an error code (PostgreSQL's PGUNSIXBIT).
fn sqlstate(code: PgSqlErrorCode) -> String {
    crate::pg_report::decode_sqlstate(code as i32)
}

/// The error code of a five-character SQLSTATE (PostgreSQL's MAKE_SQLSTATE);
/// codes pgrx has no name for come out as XX000, so user codes are re-raised
/// by the PL/pgSQL side (migrate.reraise), never through this.
fn error_code(sqlstate: &str) -> PgSqlErrorCode {
    let packed = sqlstate.bytes().take(5).enumerate().fold(0i32, |acc, (i, byte)| {
        acc | (i32::from(byte.wrapping_sub(b'0') & 0x3F) << (6 * i))
    });
    PgSqlErrorCode::from(packed)
}

/// A NULL where a value is needed: 22004, naming the argument.
fn required<T>(value: Option<T>, argument: &str, procedure: &str) -> T {
    match value {
        Some(value) => value,
        None => raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{procedure}: {argument} must not be NULL"),
            None,
            Some(format!("Give {argument} a value; see docs/backfill.md for {procedure}'s arguments.")),
        ),
    }
}

/// A procedure that commits cannot run in an atomic context: inside BEGIN ...
/// COMMIT, or called from a function. PostgreSQL would only say "invalid
/// transaction termination" at the first COMMIT, after the job was set up.
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_check_context(procedure: &str) {
    // SAFETY: reads of backend-global transaction state.
    let in_block = unsafe { pg_sys::IsTransactionBlock() };
    if in_block {
        raise(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!("{procedure} cannot run inside a transaction block"),
            Some("It commits after every batch, so that no lock or row version is held for long.".into()),
            Some(format!("Run it on its own, in autocommit mode: CALL {procedure}(...); (not between BEGIN and COMMIT)")),
        );
    }
    if !called_by_call() {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
            format!("{procedure} must be called with CALL at top level"),
            Some("Called from a function or a SELECT, it could not commit after each batch.".into()),
            Some(format!("Run it directly from psql: CALL {procedure}(...);")),
        );
    }
}

/// Whether the statement running is a CALL (or a DO block), as for every
/// procedure that commits.
fn called_by_call() -> bool {
    // SAFETY: a read of the backend's active portal.
    let tag = unsafe {
        let portal = pg_sys::ActivePortal;
        if portal.is_null() { None } else { Some((*portal).commandTag) }
    };
    matches!(tag, Some(pg_sys::CommandTag::CMDTAG_CALL | pg_sys::CommandTag::CMDTAG_DO))
}

/// `SET LOCAL lock_timeout`: every batch and step waits at most this long for a lock.
fn set_lock_timeout(client: &mut SpiClient<'_>, ms: i32) {
    client
        .update("SELECT pg_catalog.set_config('lock_timeout', $1, true)", None, &[format!("{ms}ms").into()])
        .or_raise("set lock_timeout");
}

/// Sleep `ms`, waking for a cancel or a terminate at once (as pg_sleep and
/// pg_cron do): WaitLatch, then CHECK_FOR_INTERRUPTS.
fn interruptible_sleep(ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        pgrx::check_for_interrupts!();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let events = (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32;
        // SAFETY: the backend's own latch, as pg_sleep uses it.
        unsafe {
            pg_sys::WaitLatch(pg_sys::MyLatch, events, left.as_millis().max(1) as _, pg_sys::PG_WAIT_EXTENSION);
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
    }
}

/// While alive, the current user is the job's role (as a SECURITY DEFINER
/// function would switch) and, when given, search_path is the job's. Dropped,
/// both are back; an ERROR inside a subtransaction restores both anyway.
struct AsJob {
    saved_user: pg_sys::Oid,
    saved_context: i32,
    guc_level: i32,
}

impl AsJob {
    fn enter(role: pg_sys::Oid, search_path: Option<&str>) -> AsJob {
        let mut saved_user = pg_sys::InvalidOid;
        let mut saved_context = 0;
        // SAFETY: the sequence fmgr_security_definer uses for proconfig and prosecdef.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
            let guc_level = pg_sys::NewGUCNestLevel();
            if let Some(path) = search_path {
                let value = CString::new(path.replace('\0', " ")).unwrap_or_default();
                pg_sys::set_config_option(
                    c"search_path".as_ptr(),
                    value.as_ptr(),
                    pg_sys::GucContext::PGC_USERSET,
                    pg_sys::GucSource::PGC_S_SESSION,
                    pg_sys::GucAction::GUC_ACTION_SAVE,
                    true,
                    pg_sys::PGERROR as i32,
                    false,
                );
            }
            pg_sys::SetUserIdAndSecContext(role, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
            AsJob { saved_user, saved_context, guc_level }
        }
    }
}

impl Drop for AsJob {
    fn drop(&mut self) {
        // SAFETY: undoes exactly what enter() did.
        unsafe {
            pg_sys::SetUserIdAndSecContext(self.saved_user, self.saved_context);
            pg_sys::AtEOXact_GUC(true, self.guc_level);
        }
    }
}

fn current_user() -> pg_sys::Oid {
    // SAFETY: a read of the backend's current user.
    unsafe { pg_sys::GetUserId() }
}

/// The role this session logged in as (SET ROLE does not change it).
fn session_user() -> pg_sys::Oid {
    // SAFETY: a read of the backend's session user.
    unsafe { pg_sys::GetSessionUserId() }
}

/// A job row, read as one jsonb object into one typed struct.
#[derive(Debug, Deserialize)]
struct Job {
    job_id: i64,
    job_name: String,
    table_oid: u32,
    set_expression: String,
    where_condition: Option<String>,
    key_columns: Vec<String>,
    key_types: Vec<String>,
    /// Keys the next batch walks (adapted); options.batch_size is the rows wanted.
    batch_size: i32,
    options: BackfillOptions,
    last_key: Option<Vec<String>>,
    rows_done: i64,
    rows_scanned: i64,
    scanned_at_resume: i64,
    estimated_total: Option<i64>,
    status: String,
    run_as: u32,
    search_path: String,
    run_by_pid: Option<i32>,
    seconds_since_resume: f64,
    /// foreground or background (see RunsIn).
    #[serde(default = "foreground")]
    runs_in: String,
}

fn foreground() -> String {
    RunsIn::Foreground.as_str().into()
}

/// Where a job's batches run: inside the CALL of the session that started or
/// resumed it, or in a background worker (migrate_backfill_start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunsIn {
    Foreground,
    Background,
}

impl RunsIn {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            RunsIn::Foreground => "foreground",
            RunsIn::Background => "background",
        }
    }

    fn of(job: &Job) -> RunsIn {
        if job.runs_in == "background" { RunsIn::Background } else { RunsIn::Foreground }
    }
}

impl Job {
    fn keys(&self) -> Vec<KeyColumn> {
        self.key_columns
            .iter()
            .zip(&self.key_types)
            .map(|(name, type_sql)| KeyColumn { name: name.clone(), type_sql: type_sql.clone() })
            .collect()
    }

    fn key_names(&self) -> Vec<String> {
        self.key_columns.iter().map(|name| planner::unquote_identifier(name)).collect()
    }

    fn table(&self) -> pg_sys::Oid {
        pg_sys::Oid::from(self.table_oid)
    }

    fn role(&self) -> pg_sys::Oid {
        pg_sys::Oid::from(self.run_as)
    }

    fn job_id(&self) -> i64 {
        self.job_id
    }
}

/// A new job's row: what `Job` reads back, less the progress. Inserted through
/// jsonb_populate_record, so a column is one field here.
#[derive(Debug, Serialize)]
struct NewJob<'a> {
    job_name: &'a str,
    table_oid: u32,
    set_expression: &'a str,
    where_condition: Option<&'a str>,
    key_columns: Vec<String>,
    key_types: Vec<String>,
    batch_size: i32,
    options: &'a BackfillOptions,
    estimated_total: Option<i64>,
    run_as: u32,
    search_path: &'a str,
    /// The login role of this session: a background worker connects as it.
    session_role: u32,
}

/// `lock` is FOR UPDATE (the batch holds its job row) or empty.
fn read_job(client: &mut SpiClient<'_>, job: i64, lock: &str) -> Option<Job> {
    // update(), not select(): a read-only SPI query may not lock rows.
    let sql = format!(
        "SELECT pg_catalog.to_jsonb(b) OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
                    'table_oid', b.table_oid::pg_catalog.int8, 'run_as', b.run_as::pg_catalog.int8,
                    'seconds_since_resume',
                    EXTRACT(epoch FROM pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) b.resumed_at)::pg_catalog.float8)
           FROM migrate.backfills b WHERE b.job_id OPERATOR(pg_catalog.=) $1 {lock}"
    );
    let rows = client.update(sql.as_str(), None, &[job.into()]).or_raise("read a backfill job");
    let row: Option<JsonB> = if rows.is_empty() { None } else { rows.first().get_one().or_raise("read a backfill job") };
    let JsonB(value) = row?;
    match serde_json::from_value::<Job>(value) {
        Ok(job) => Some(job),
        Err(error) => raise(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("backfill job {job} cannot be read: {error}"),
            Some("The row in migrate.backfills may have been altered by hand.".into()),
            None,
        ),
    }
}

fn load_job(client: &mut SpiClient<'_>, job: i64) -> Job {
    match read_job(client, job, "FOR UPDATE") {
        Some(found) => found,
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("backfill job {job} does not exist"),
            None,
            Some("SELECT job_name, status FROM migrate_backfill_status; lists the jobs.".into()),
        ),
    }
}

/// Parse `text` as `wrapper(text)` and check that the server sees exactly the
/// shape expected: one statement, nothing smuggled in or around it.
fn require_single(text: &str, what: &str, example: &str, sql: String, accept: impl Fn(*mut pg_sys::Node) -> bool) {
    let refuse = |why: String| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            format!("invalid {what}: {why}"),
            Some(format!("The {what} was: {text}. Nothing was changed.")),
            Some(format!("Give a single {what}, for example {example}.")),
        )
    };
    match server_sql::parse_nodes(&sql) {
        Ok(nodes) if nodes.len() == 1 && accept(nodes[0]) => {}
        Ok(nodes) if nodes.len() > 1 => refuse("it contains more than one statement".into()),
        Ok(_) => refuse("it is not a single expression".into()),
        Err(error) => refuse(error.message),
    }
}

/// The SET list and the condition on their own: friendly messages for the
/// plain mistakes. The statements that run are checked as a whole by
/// [`require_batch_shape`].
fn validate_expressions(set_expression: &str, where_condition: Option<&str>) {
    require_single(
        set_expression,
        "SET list",
        "$$role = 'member'$$",
        format!("UPDATE t SET {set_expression}"),
        |node| unsafe {
            pgrx::is_a(node, pg_sys::NodeTag::T_UpdateStmt) && {
                let update = &*(node as *mut pg_sys::UpdateStmt);
                update.whereClause.is_null()
                    && update.fromClause.is_null()
                    && update.returningList.is_null()
                    && update.withClause.is_null()
            }
        },
    );
    if let Some(condition) = where_condition {
        require_single(
            condition,
            "WHERE condition",
            "$$role IS NULL$$",
            format!("SELECT 1 WHERE {condition}"),
            |node| unsafe {
                pgrx::is_a(node, pg_sys::NodeTag::T_SelectStmt) && {
                    let select = &*(node as *mut pg_sys::SelectStmt);
                    select.op == pg_sys::SetOperation::SETOP_NONE
                        && select.fromClause.is_null()
                        && select.groupClause.is_null()
                        && select.havingClause.is_null()
                        && select.sortClause.is_null()
                        && select.limitCount.is_null()
                        && select.limitOffset.is_null()
                        && select.lockingClause.is_null()
                        && select.withClause.is_null()
                        && select.windowClause.is_null()
                        && select.distinctClause.is_null()
                        && select.intoClause.is_null()
                }
            },
        );
    }
}

unsafe fn c_string(pointer: *const std::ffi::c_char) -> String {
    if pointer.is_null() { String::new() } else { CStr::from_ptr(pointer).to_string_lossy().into_owned() }
}

/// Sum up a WHERE node: its location, its operator, and (at the top) its AND arguments.
unsafe fn predicate(node: *mut pg_sys::Node, top: bool) -> Predicate {
    // exprLocation gives the leftmost token (for `a > b`, the start of a);
    // an operator expression is checked at its operator.
    let mut at = pg_sys::exprLocation(node);
    let mut operator = None;
    let mut and_args = None;
    if is_a(node, pg_sys::NodeTag::T_A_Expr) {
        let expr = &*(node as *mut pg_sys::A_Expr);
        if expr.kind == pg_sys::A_Expr_Kind::AEXPR_OP {
            at = expr.location;
            let names = PgList::<pg_sys::Node>::from_pg(expr.name)
                .iter_ptr()
                .map(|name| if is_a(name, pg_sys::NodeTag::T_String) { c_string((*(name as *mut pg_sys::String)).sval) } else { String::new() })
                .collect();
            operator = Some(names);
        }
    } else if top && is_a(node, pg_sys::NodeTag::T_BoolExpr) {
        let expr = &*(node as *mut pg_sys::BoolExpr);
        if expr.boolop == pg_sys::BoolExprType::AND_EXPR {
            and_args = Some(PgList::<pg_sys::Node>::from_pg(expr.args).iter_ptr().map(|arg| predicate(arg, false)).collect());
        }
    }
    Predicate { at, operator, and_args }
}

/// What the server's parser makes of a batch's UPDATE text.
fn parse_update(sql: &str) -> Result<ParsedUpdate, String> {
    let nodes = server_sql::parse_nodes(sql).map_err(|error| error.message)?;
    let mut parsed = ParsedUpdate {
        statements: nodes.len(),
        is_update: false,
        has_from: false,
        has_returning: false,
        has_with: false,
        targets: Vec::new(),
        filter: None,
    };
    // SAFETY: every cast follows a node tag check; raw_parser's lists hold ResTargets.
    unsafe {
        if let [node] = nodes[..] {
            if is_a(node, pg_sys::NodeTag::T_UpdateStmt) {
                let update = &*(node as *mut pg_sys::UpdateStmt);
                parsed.is_update = true;
                parsed.has_from = !update.fromClause.is_null();
                parsed.has_returning = !update.returningList.is_null();
                parsed.has_with = !update.withClause.is_null();
                parsed.targets = PgList::<pg_sys::ResTarget>::from_pg(update.targetList)
                    .iter_ptr()
                    .map(|target| Target { column: c_string((*target).name), at: (*target).location })
                    .collect();
                if !update.whereClause.is_null() {
                    parsed.filter = Some(predicate(update.whereClause, true));
                }
            }
        }
    }
    Ok(parsed)
}

/// The statement about to run must be exactly the batch that was built: no
/// comment, quote, parenthesis or keyword in the SET list or the condition may
/// change its shape, and the SET list may not assign to the key.
fn require_batch_shape(built: &BatchUpdate, key_names: &[String], set_expression: &str, condition: Option<&str>) {
    let problem = match parse_update(&built.sql) {
        Ok(parsed) => shape::check(built, &parsed, key_names).err(),
        Err(syntax) => Some(ShapeError::Escapes(format!("the batch statement does not parse: {syntax}"))),
    };
    let statement = format!(
        "SET list: {set_expression}{}",
        condition.map(|c| format!("; condition: {c}")).unwrap_or_default()
    );
    let Some(problem) = problem else { return };
    let code = error_code(problem.sqlstate());
    match problem {
        ShapeError::AssignsKey(column) => raise(
            code,
            format!("the SET list assigns to key column \"{column}\", which the batches walk"),
            Some(format!("{statement}. A changed key would move rows ahead of the batches, which would update them again and again. Nothing was changed.")),
            Some("Backfill a new column instead, then swap it in with a revision.".into()),
        ),
        ShapeError::Escapes(why) => raise(
            code,
            format!("invalid SET list or WHERE condition: {why}"),
            Some(format!("{statement}. Batch statement: {}. Nothing was changed.", built.sql)),
            Some("Give plain expressions: no comment, unbalanced quote or parenthesis, FROM, WHERE or RETURNING.".into()),
        ),
    }
}

/// The primary key's columns, quoted, with their types, in index order.
fn primary_key(client: &SpiClient<'_>, table: pg_sys::Oid) -> Vec<KeyColumn> {
    let rows = client
        .select(
            "SELECT pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod)
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
                                             AND a.attnum OPERATOR(pg_catalog.=) k.attnum
              WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary
              ORDER BY k.position",
            None,
            &[table.into()],
        )
        .or_raise("read the primary key");
    rows.map(|row| KeyColumn {
        name: row.get(1).ok().flatten().unwrap_or_default(),
        type_sql: row.get(2).ok().flatten().unwrap_or_default(),
    })
    .collect()
}

/// The four shapes a batch's UPDATE takes (first/later batch, last/not last).
fn every_batch_shape(table: &str, keys: &[KeyColumn], set: &str, condition: Option<&str>) -> Vec<BatchUpdate> {
    [(true, true), (false, true), (true, false), (false, false)]
        .into_iter()
        .map(|(after, end)| planner::update_sql(table, keys, set, condition, after, end))
        .collect()
}

/// Plan (without running) every statement a batch will run, as the job will
/// run it, so that unknown columns and type errors are reported before the
/// first row changes.
fn check_statements(client: &SpiClient<'_>, table: &str, keys: &[KeyColumn], set: &str, condition: Option<&str>, search_path: &str) {
    let text_array = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
    let int4 = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
    let statements = [
        (planner::batch_end_sql(table, keys, true), vec![text_array, int4], None),
        (planner::update_sql(table, keys, set, condition, true, true).sql, vec![text_array, text_array], Some(search_path)),
    ];
    for (sql, types, path) in statements {
        let prepared = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
            let _as_job = AsJob::enter(current_user(), path);
            client.prepare(sql.as_str(), &types).map(|_| ()).map_err(|e| e.to_string())
        }))
        .catch_others(|caught| match caught {
            pgrx::pg_sys::panic::CaughtError::PostgresError(report) => raise(
                report.sql_error_code(),
                format!("migrate_backfill: {}", report.message()),
                Some(format!("Checked before any batch ran: UPDATE {table} SET {set}{}. Nothing was changed.",
                             condition.map(|c| format!(" WHERE {c}")).unwrap_or_default())),
                report.hint().map(str::to_string),
            ),
            other => other.rethrow(),
        })
        .execute();
        if let Err(error) = prepared {
            raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("migrate_backfill: {error}"), None, None);
        }
    }
}

/// The table of `oid`: its name (qualified as needed under the pinned path),
/// relkind and estimated rows; None when no such table exists any more.
fn table_info(client: &SpiClient<'_>, table: pg_sys::Oid) -> Option<(String, String, Option<i64>)> {
    let rows = client
        .select(
            "SELECT c.oid::pg_catalog.regclass::pg_catalog.text, c.relkind::pg_catalog.text,
                    CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p'
                         THEN (SELECT pg_catalog.sum(GREATEST(p.reltuples, 0))::pg_catalog.int8
                                 FROM pg_catalog.pg_partition_tree(c.oid) t
                                 JOIN pg_catalog.pg_class p ON p.oid OPERATOR(pg_catalog.=) t.relid WHERE t.isleaf)
                         WHEN c.reltuples OPERATOR(pg_catalog.>=) 0 THEN c.reltuples::pg_catalog.int8 END
               FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
            None,
            &[table.into()],
        )
        .or_raise("read the table");
    if rows.is_empty() {
        return None;
    }
    let (name, relkind, estimate) = rows.first().get_three::<String, String, i64>().or_raise("read the table");
    Some((name.unwrap_or_default(), relkind.unwrap_or_default(), estimate))
}

// Its own C symbol: the 0.1.0 function of this name took eleven arguments, and
// its old symbol now only refuses (see crate::superseded).
#[pg_extern(volatile, schema = "migrate", name = "backfill_prepare")]
#[search_path(pg_catalog, pg_temp)]
fn prepare_job(
    table: Option<pg_sys::Oid>,
    set_expression: Option<&str>,
    where_condition: Option<&str>,
    job_name: Option<&str>,
    options: Option<JsonB>,
    search_path: Option<&str>,
) -> i64 {
    prepare(table, set_expression, where_condition, job_name, options, search_path, RunsIn::Foreground)
}

/// Check a backfill's arguments, statements and the caller's privileges, then
/// create its job (or continue the job of that name), to run `runs_in`.
pub(super) fn prepare(
    table: Option<pg_sys::Oid>,
    set_expression: Option<&str>,
    where_condition: Option<&str>,
    job_name: Option<&str>,
    options: Option<JsonB>,
    search_path: Option<&str>,
    runs_in: RunsIn,
) -> i64 {
    let procedure = match runs_in {
        RunsIn::Foreground => "migrate_backfill",
        RunsIn::Background => "migrate_backfill_start",
    };
    let table = required(table, "table_name", procedure);
    let set_expression = required(set_expression, "set_expression", procedure);
    let JsonB(arguments) = required(options, "options", procedure);
    let search_path = required(search_path, "search_path", procedure);
    let options = match BackfillOptions::from_arguments(&arguments) {
        Ok(options) => options,
        Err(error) => raise(
            error_code(error.sqlstate()),
            format!("{procedure}: {}", error.message()),
            None,
            Some("See docs/backfill.md: batch_size at least 1; pause_ms, lock_timeout_ms, max_retries, \
                  notice_interval_ms and max_replication_lag_ms not negative; target_batch_ms and \
                  max_replication_lag_ms may be NULL (off)."
                .into()),
        ),
    };
    if job_name.is_some_and(|name| name.trim().is_empty()) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{procedure}: job_name must not be empty"),
            None,
            Some("Leave job_name out (NULL) for a name made of the table and the SET list.".into()),
        );
    }
    let where_condition = where_condition.filter(|c| !c.trim().is_empty());
    validate_expressions(set_expression, where_condition);
    Spi::connect_mut(|client| {
        let Some((table_name, relkind, estimate)) = table_info(client, table) else {
            raise(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, format!("table with OID {table:?} does not exist"), None, None)
        };
        if !matches!(relkind.as_str(), "r" | "p") {
            raise(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, format!("{table_name} is not a table"), None, None);
        }
        let keys = primary_key(client, table);
        if keys.is_empty() {
            raise(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("table {table_name} has no primary key; migrate_backfill walks batches by primary key"),
                Some("Without a key, batches cannot resume exactly where they stopped.".into()),
                Some(format!(
                    "Add one first (ALTER TABLE {table_name} ADD PRIMARY KEY USING INDEX <unique index>), \
                     or, for a small table, run a single UPDATE."
                )),
            );
        }
        let key_names: Vec<String> = keys.iter().map(|k| planner::unquote_identifier(&k.name)).collect();
        for built in every_batch_shape(&table_name, &keys, set_expression, where_condition) {
            require_batch_shape(&built, &key_names, set_expression, where_condition);
        }
        // Planning the UPDATE takes a lock on the table: bounded like every batch.
        set_lock_timeout(client, options.lock_timeout_ms);
        check_statements(client, &table_name, &keys, set_expression, where_condition, search_path);
        require_privileges(client, table, &table_name, set_expression, procedure);

        let name = job_name.map(str::to_string).unwrap_or_else(|| default_job_name(&table_name, set_expression));
        let existing = client
            .update(
                "SELECT job_id,
                        table_oid OPERATOR(pg_catalog.=) $2 AND set_expression OPERATOR(pg_catalog.=) $3
                        AND COALESCE(where_condition OPERATOR(pg_catalog.=) $4,
                                 where_condition IS NULL AND $4 IS NULL)
                   FROM migrate.backfills WHERE job_name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
                None,
                &[name.clone().into(), table.into(), set_expression.into(), where_condition.into()],
            )
            .or_raise("look up the job");
        if !existing.is_empty() {
            let (id, same) = existing.first().get_two::<i64, bool>().or_raise("read the job");
            if same != Some(true) {
                raise(
                    PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                    format!("backfill job \"{name}\" already exists for a different table, SET list or condition"),
                    None,
                    Some("Give this backfill its own job_name => '...'.".into()),
                );
            }
            return resume(client, id.unwrap_or_default(), &name, Some(runs_in));
        }
        let row = NewJob {
            job_name: &name,
            table_oid: table.to_u32(),
            set_expression,
            where_condition,
            key_columns: keys.iter().map(|k| k.name.clone()).collect(),
            key_types: keys.iter().map(|k| k.type_sql.clone()).collect(),
            batch_size: options.batch_size,
            options: &options,
            estimated_total: estimate,
            run_as: current_user().to_u32(),
            search_path,
            session_role: session_user().to_u32(),
        };
        let row = serde_json::to_value(&row).unwrap_or_default();
        let id: i64 = client
            .update(
                "INSERT INTO migrate.backfills
                     (job_name, table_oid, set_expression, where_condition, key_columns, key_types, batch_size,
                      options, estimated_total, run_as, search_path, session_role,
                      runs_in, status, run_by_pid, runner_epoch, queued_at, waiting_for)
                 SELECT r.job_name, r.table_oid, r.set_expression, r.where_condition, r.key_columns, r.key_types,
                        r.batch_size, r.options, r.estimated_total, r.run_as, r.search_path, r.session_role,
                        $2, CASE WHEN $3 THEN 'queued' ELSE 'running' END,
                        CASE WHEN NOT $3 THEN pg_catalog.pg_backend_pid() END,
                        CASE WHEN NOT $3 THEN pg_catalog.pg_postmaster_start_time() END,
                        CASE WHEN $3 THEN pg_catalog.clock_timestamp() END,
                        CASE WHEN $3 THEN 'queue: waiting for a worker' END
                   FROM pg_catalog.jsonb_populate_record(NULL::migrate.backfills, $1) r
                 RETURNING job_id",
                None,
                &[JsonB(row).into(), runs_in.as_str().into(), (runs_in == RunsIn::Background).into()],
            )
            .and_then(|rows| rows.first().get_one())
            .or_raise("create the job")
            .unwrap_or_default();
        let total = estimate.map_or("an unknown number of".into(), |n| format!("~{n}"));
        notice!("backfill \"{name}\" started on {table_name}: {total} rows in batches of {}", options.batch_size);
        id
    })
}

fn default_job_name(table: &str, set_expression: &str) -> String {
    let digest = crate::revisions::checksum(set_expression);
    format!("{}:{}", table, &digest[..8])
}

/// Only a member of the role that started a job (who could SET ROLE to it
/// anyway) may run or steer it: its batches run as that role.
fn require_job_role(client: &SpiClient<'_>, job: &Job) {
    let member: Option<bool> = client
        .select(
            "SELECT pg_catalog.pg_has_role(r.oid, 'MEMBER') FROM pg_catalog.pg_roles r
              WHERE r.oid OPERATOR(pg_catalog.=) $1",
            None,
            &[job.role().into()],
        )
        .and_then(|rows| if rows.is_empty() { Ok(None) } else { rows.first().get_one() })
        .or_raise("check the job's role");
    match member {
        Some(true) => {}
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("the role that started backfill \"{}\" no longer exists", job.job_name),
            Some("Every batch runs as the role that started the job.".into()),
            Some(format!("Cancel it (SELECT migrate_backfill_cancel('{}');) and start a new job.", job.job_name)),
        ),
        Some(false) => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("backfill \"{}\" belongs to another role", job.job_name),
            Some("Every batch runs as the role that started the job; only a member of that role may run, pause or cancel it.".into()),
            Some("Run it as that role (or a member of it).".into()),
        ),
    }
}

/// The table of a job, found by its oid, or a clear refusal when it was dropped.
fn job_table(client: &SpiClient<'_>, job: &Job) -> String {
    match table_info(client, job.table()) {
        Some((name, _, _)) => name,
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("the table of backfill \"{}\" (OID {}) no longer exists", job.job_name, job.table_oid),
            Some("A backfill follows its table by OID: a rename keeps it, but a table dropped and created again \
                  under the same name is another table, which the job will not touch."
                .into()),
            Some(format!("Cancel it: SELECT migrate_backfill_cancel('{}'); then start a new backfill.", job.job_name)),
        ),
    }
}

/// Mark a job running again (or queued, to run in the background), unless
/// another live session or worker is running it. `runs_in` None keeps where
/// the job ran (migrate_backfill_resume).
fn resume(client: &mut SpiClient<'_>, id: i64, name: &str, runs_in: Option<RunsIn>) -> i64 {
    let Some(job) = read_job(client, id, "") else {
        raise(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("backfill job \"{name}\" does not exist"), None, None)
    };
    require_job_role(client, &job);
    let runs_in = runs_in.unwrap_or(RunsIn::of(&job));
    // A background worker is live while its process is; a session only while
    // its statement is active (a cancelled CALL leaves the job to anyone).
    let live_elsewhere: bool = client
        .select(
            "SELECT b.run_by_pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
                    AND migrate.backfill_runner_alive(b.runs_in, b.run_by_pid, b.runner_epoch)
                    AND (b.runs_in OPERATOR(pg_catalog.=) 'background'
                         OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                                     WHERE a.pid OPERATOR(pg_catalog.=) b.run_by_pid
                                       AND a.state OPERATOR(pg_catalog.=) 'active'))
               FROM migrate.backfills b WHERE b.job_id OPERATOR(pg_catalog.=) $1",
            None,
            &[id.into()],
        )
        .and_then(|rows| rows.first().get_one())
        .or_raise("read the job's session")
        .unwrap_or(false);
    match job.status.as_str() {
        "done" => {
            notice!("backfill \"{name}\" is already done");
            return id;
        }
        "cancelled" => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("backfill \"{name}\" was cancelled and cannot be resumed"),
            None,
            Some("Start a new job with another job_name.".into()),
        ),
        "running" if live_elsewhere => raise(
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            format!("backfill \"{name}\" is already running in pid {}", job.run_by_pid.unwrap_or_default()),
            None,
            Some(format!("Pause it first: SELECT migrate_backfill_pause('{name}');")),
        ),
        "queued" if runs_in == RunsIn::Background => {
            notice!("backfill \"{name}\" is already queued to run in the background");
            return id;
        }
        _ => {}
    }
    let table = job_table(client, &job);
    let keys: Vec<String> = primary_key(client, job.table()).into_iter().map(|k| k.name).collect();
    if keys != job.key_columns {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the primary key of {table} changed since backfill \"{name}\" started"),
            Some(format!("The job walks ({}); the key now is ({}).", job.key_columns.join(", "), keys.join(", "))),
            Some(format!("Cancel it: SELECT migrate_backfill_cancel('{name}'); then start a new backfill.")),
        );
    }
    let background = runs_in == RunsIn::Background;
    client
        .update(
            "UPDATE migrate.backfills
                SET status = CASE WHEN $3 THEN 'queued' ELSE 'running' END, runs_in = $2,
                    run_by_pid = CASE WHEN NOT $3 THEN pg_catalog.pg_backend_pid() END,
                    runner_epoch = CASE WHEN NOT $3 THEN pg_catalog.pg_postmaster_start_time() END,
                    queued_at = CASE WHEN $3 THEN pg_catalog.clock_timestamp() END,
                    waiting_for = CASE WHEN $3 THEN 'queue: waiting for a worker' END,
                    session_role = $4, last_error = NULL,
                    last_sqlstate = NULL, resumed_at = pg_catalog.clock_timestamp(),
                    scanned_at_resume = rows_scanned, finished_at = NULL,
                    updated_at = pg_catalog.clock_timestamp()
              WHERE job_id OPERATOR(pg_catalog.=) $1",
            None,
            &[id.into(), runs_in.as_str().into(), background.into(), session_user().into()],
        )
        .or_raise("resume the job");
    if background {
        notice!("backfill \"{name}\" is queued to resume in the background after its last committed batch");
    } else {
        notice!("backfill \"{name}\" resumes after the last committed batch");
    }
    id
}

/// The caller must be allowed to run the batches itself: UPDATE on every column
/// the SET list assigns and SELECT on the table (the batches read its keys).
/// Checked before the job is created, so that a role without the right never
/// gets a job that would only fail in its first batch (or in a worker).
fn require_privileges(client: &SpiClient<'_>, table: pg_sys::Oid, table_name: &str, set_expression: &str, procedure: &str) {
    let targets: Vec<String> = parse_update(&format!("UPDATE t SET {set_expression}"))
        .map(|parsed| parsed.targets.into_iter().map(|target| target.column).collect())
        .unwrap_or_default();
    let refused: Option<String> = client
        .select(
            "SELECT CASE WHEN NOT pg_catalog.has_any_column_privilege($1, 'SELECT') THEN 'SELECT'
                         ELSE (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ')
                                 FROM pg_catalog.unnest($2::pg_catalog.text[]) c
                                WHERE NOT pg_catalog.has_column_privilege($1, c, 'UPDATE')) END",
            None,
            &[table.into(), targets.into()],
        )
        .and_then(|rows| rows.first().get_one())
        .or_raise("check the privileges");
    if let Some(missing) = refused {
        let what = if missing == "SELECT" { "SELECT on it".to_string() } else { format!("UPDATE of {missing}") };
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("{procedure}: permission denied for table {table_name}: the batches need {what}"),
            Some("Every batch runs as the role that starts the job, with that role's privileges. Nothing was changed.".into()),
            Some(format!("Start it as a role with UPDATE on {table_name} (GRANT UPDATE ON {table_name} TO ...).")),
        );
    }
}

#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_resume_prepare(job_name: Option<&str>) -> i64 {
    let job_name = required(job_name, "job_name", "migrate_backfill_resume");
    Spi::connect_mut(|client| {
        let id = lock_job_by_name(client, job_name);
        let Some(id) = id else {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("backfill job \"{job_name}\" does not exist"),
                None,
                Some("SELECT job_name, status FROM migrate_backfill_status; lists the jobs.".into()),
            )
        };
        resume(client, id, job_name, None)
    })
}

thread_local! {
    // When this backend last reported progress, so NOTICEs come at an interval.
    static LAST_NOTICE: Cell<Option<Instant>> = const { Cell::new(None) };
    // Where the WAL was when this backend's last batch of a job started (for max_wal_rate).
    static WAL_SAMPLE: Cell<Option<(i64, Instant, i64)>> = const { Cell::new(None) };
}

struct BatchOutcome {
    updated: i64,
    scanned: i64,
    end: Option<Vec<String>>,
}

/// One batch, as the job's role. The table is locked by its oid first, so the
/// name it is reached by cannot change under the batch (a rename needs ACCESS
/// EXCLUSIVE), then resolved.
fn run_batch(client: &mut SpiClient<'_>, job: &Job) -> BatchOutcome {
    // SAFETY: a lock by oid, under the batch's lock_timeout; a dropped table's
    // oid locks nothing real, and the lookup below says so.
    unsafe { pg_sys::LockRelationOid(job.table(), pg_sys::RowExclusiveLock as pg_sys::LOCKMODE) };
    let table = job_table(client, job);
    let keys = job.keys();
    let _as_job = AsJob::enter(job.role(), None);
    let after = job.last_key.clone();
    let end_sql = planner::batch_end_sql(&table, &keys, after.is_some());
    let mut args = Vec::new();
    if let Some(last) = &after {
        args.push(last.clone().into());
    }
    args.push(job.batch_size.into());
    let end_rows = client.update(end_sql.as_str(), None, &args).or_raise("find the batch end");
    let end: Option<Vec<String>> =
        if end_rows.is_empty() { None } else { end_rows.first().get_one().or_raise("read the batch end") };

    let update = planner::update_sql(
        &table,
        &keys,
        &job.set_expression,
        job.where_condition.as_deref(),
        after.is_some(),
        end.is_some(),
    );
    require_batch_shape(&update, &job.key_names(), &job.set_expression, job.where_condition.as_deref());
    let mut args = Vec::new();
    if let Some(last) = &after {
        args.push(last.clone().into());
    }
    if let Some(end) = &end {
        args.push(end.clone().into());
    }
    let updated = {
        // The user's SET list and condition: the job's search_path.
        let _path = AsJob::enter(job.role(), Some(&job.search_path));
        client.update(update.sql.as_str(), None, &args).or_raise("update a batch").len() as i64
    };
    let scanned = if end.is_some() {
        i64::from(job.batch_size)
    } else {
        let remaining = planner::remaining_sql(&table, &keys, after.is_some());
        let args: Vec<_> = after.iter().map(|last| last.clone().into()).collect();
        client
            .update(remaining.as_str(), None, &args)
            .and_then(|rows| rows.first().get_one::<i64>())
            .or_raise("count the last batch")
            .unwrap_or(0)
    };
    BatchOutcome { updated, scanned, end }
}

/// What the throttles that are on look at, before a batch; and the WAL
/// position now, when the WAL rate is throttled (the next window starts here
/// if the batch runs).
fn measure_health(client: &SpiClient<'_>, job: &Job) -> (Health, Option<i64>) {
    let options = &job.options;
    let mut health = Health::default();
    if options.max_replication_lag_ms.is_some() {
        health.replication_lag_ms = Some(replication_lag_ms(client));
    }
    let mut wal_position = None;
    if options.max_wal_rate.is_some() {
        let position: i64 = client
            .select(
                "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), '0/0')::pg_catalog.int8",
                None,
                &[],
            )
            .and_then(|rows| rows.first().get_one())
            .or_raise("read the WAL position")
            .unwrap_or(0);
        health.wal_since_last_batch = WAL_SAMPLE.with(|sample| match sample.get() {
            Some((id, at, previous)) if id == job.job_id() => Some((position - previous, at.elapsed().as_secs_f64())),
            _ => None,
        });
        wal_position = Some(position);
    }
    if options.max_slot_lag.is_some() {
        let rows = client
            .select(
                "SELECT slot_name::pg_catalog.text,
                        pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::pg_catalog.int8
                   FROM pg_catalog.pg_replication_slots WHERE restart_lsn IS NOT NULL
                  ORDER BY 2 DESC LIMIT 1",
                None,
                &[],
            )
            .or_raise("read pg_replication_slots");
        if !rows.is_empty() {
            if let (Some(slot), Some(bytes)) = rows.first().get_two::<String, i64>().or_raise("read pg_replication_slots") {
                health.slot_lag = Some((slot, bytes));
            }
        }
    }
    if options.pause_during_autovacuum {
        // A VACUUM holds SHARE UPDATE EXCLUSIVE on the table (pg_locks shows it
        // to every role; pg_stat_progress_vacuum hides other roles' relids).
        health.vacuuming = client
            .select(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                                 WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'
                                   AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                  WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
                                   AND (l.relation OPERATOR(pg_catalog.=) $1
                                        OR l.relation OPERATOR(pg_catalog.=) ANY (ARRAY(
                                               SELECT t.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree($1) t)))
                                   AND l.mode OPERATOR(pg_catalog.=) 'ShareUpdateExclusiveLock' AND l.granted
                                   AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid())",
                None,
                &[job.table().into()],
            )
            .and_then(|rows| rows.first().get_one())
            .or_raise("look for a VACUUM of the table")
            .unwrap_or(false);
    }
    (health, wal_position)
}

fn replication_lag_ms(client: &SpiClient<'_>) -> f64 {
    client
        .select(
            "SELECT COALESCE(pg_catalog.max(EXTRACT(epoch FROM replay_lag) OPERATOR(pg_catalog.*) 1000), 0)::pg_catalog.float8
               FROM pg_catalog.pg_stat_replication",
            None,
            &[],
        )
        .and_then(|rows| rows.first().get_one::<f64>())
        .or_raise("read pg_stat_replication")
        .unwrap_or(0.0)
}

/// The real SQLSTATE of a batch's failure: pgrx turns codes it has no name for
/// (a user's RAISE ... USING ERRCODE = 'AB123') into XX000; the error context
/// callback of pg_report noted the real one.
fn failure_sqlstate(failure: &subxact::Failure, noted: Option<String>) -> String {
    let mapped = sqlstate(failure.code);
    match noted {
        Some(real) if mapped == "XX000" && !real.starts_with("00") && !real.starts_with("01") => real,
        _ => mapped,
    }
}

/// One batch of a job, in the caller's transaction (the procedure commits it).
/// Returns how long to wait before the next call, or -1 when the job stopped
/// (done, paused, cancelled, failed).
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_batch(job_id: i64) -> i32 {
    Spi::connect_mut(|client| {
        let job = load_job(client, job_id);
        require_job_role(client, &job);
        if job.status != "running" {
            if job.status == "paused" {
                notice!("backfill \"{}\" paused; continue with CALL migrate_backfill_resume('{}');", job.job_name, job.job_name);
            } else if job.status == "cancelled" {
                notice!("backfill \"{}\" cancelled", job.job_name);
            } else if job.status == "queued" {
                notice!("backfill \"{}\" runs in the background; SELECT * FROM migrate_backfill_status; shows it", job.job_name);
            }
            return -1;
        }
        let mine: bool = client
            .select("SELECT $1 OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()", None, &[job.run_by_pid.into()])
            .and_then(|rows| rows.first().get_one())
            .or_raise("check the job's session")
            .unwrap_or(false);
        if !mine && RunsIn::of(&job) == RunsIn::Background {
            // A worker took it (migrate_backfill_resume of a background job queues it).
            notice!("backfill \"{}\" runs in a background worker (pid {})", job.job_name, job.run_by_pid.unwrap_or_default());
            return -1;
        }
        if !mine {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("backfill \"{}\" is not running in this session", job.job_name),
                Some("Batches run only inside CALL migrate_backfill or CALL migrate_backfill_resume.".into()),
                Some(format!("CALL migrate_backfill_resume('{}');", job.job_name)),
            );
        }
        let options = &job.options;
        let (health, wal_position) = measure_health(client, &job);
        if let Some(held) = throttle::hold(options, &health) {
            let counter = held.throttle.counter();
            let sql = format!(
                "UPDATE migrate.backfills
                    SET {counter} = {counter} OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.clock_timestamp(),
                        waiting_for = $2
                  WHERE job_id OPERATOR(pg_catalog.=) $1"
            );
            client.update(sql.as_str(), None, &[job_id.into(), held.reason.clone().into()]).or_raise("record a wait");
            maybe_notice(&job, || format!("waiting: {}", held.reason));
            return held.wait_ms;
        }
        if let Some(position) = wal_position {
            WAL_SAMPLE.with(|sample| sample.set(Some((job_id, Instant::now(), position))));
        }
        set_lock_timeout(client, options.lock_timeout_ms);

        let mut attempt: u32 = 0;
        let (outcome, elapsed_ms) = loop {
            let clock = Instant::now();
            let result = subxact::run(Keep::Commit, || crate::pg_report::noting_sqlstate(|| run_batch(client, &job)));
            match result {
                Ok(outcome) => break (outcome, clock.elapsed().as_secs_f64() * 1000.0),
                Err(failure) => {
                    let code = failure_sqlstate(&failure, crate::pg_report::noted_sqlstate());
                    if planner::is_retryable(&code) && attempt < options.max_retries.max(0) as u32 {
                        attempt += 1;
                        let wait = planner::retry_backoff_ms(attempt);
                        notice!("backfill \"{}\": {} ({code}); retry {attempt} in {wait} ms", job.job_name, failure.message);
                        interruptible_sleep(wait);
                        continue;
                    }
                    if matches!(code.as_str(), "57014" | "57P01" | "57P02" | "57P03") {
                        // Cancelled or shutting down: stop now; the job resumes from its last commit.
                        raise(failure.code, failure.message, failure.detail, None);
                    }
                    client
                        .update(
                            "UPDATE migrate.backfills
                                SET status = 'failed', last_error = $2, last_sqlstate = $3, waiting_for = NULL,
                                    retries = retries OPERATOR(pg_catalog.+) $4,
                                    updated_at = pg_catalog.clock_timestamp()
                              WHERE job_id OPERATOR(pg_catalog.=) $1",
                            None,
                            &[job_id.into(), failure.message.clone().into(), code.into(), i64::from(attempt).into()],
                        )
                        .or_raise("record a failure");
                    return -1;
                }
            }
        };

        let finished = outcome.end.is_none();
        let next_size = if options.target_batch_ms.is_some() {
            planner::next_batch_size(job.batch_size, options.target_batch_ms, elapsed_ms)
        } else if job.where_condition.is_some() && !finished {
            planner::next_key_window(job.batch_size, options.batch_size, outcome.updated)
        } else {
            job.batch_size
        };
        client
            .update(
                "UPDATE migrate.backfills
                    SET last_key = COALESCE($2, last_key),
                        rows_done = rows_done OPERATOR(pg_catalog.+) $3,
                        rows_scanned = rows_scanned OPERATOR(pg_catalog.+) $4,
                        batches = batches OPERATOR(pg_catalog.+) 1,
                        retries = retries OPERATOR(pg_catalog.+) $5, batch_size = $6,
                        status = CASE WHEN $7 THEN 'done' ELSE status END,
                        finished_at = CASE WHEN $7 THEN pg_catalog.clock_timestamp() END,
                        waiting_for = NULL,
                        updated_at = pg_catalog.clock_timestamp()
                  WHERE job_id OPERATOR(pg_catalog.=) $1",
                None,
                &[
                    job_id.into(),
                    outcome.end.clone().into(),
                    outcome.updated.into(),
                    outcome.scanned.into(),
                    i64::from(attempt).into(),
                    next_size.into(),
                    finished.into(),
                ],
            )
            .or_raise("record progress");
        let scanned = job.rows_scanned + outcome.scanned;
        if finished {
            notice!(
                "backfill \"{}\" done: {} rows updated, {} keys walked",
                job.job_name,
                job.rows_done + outcome.updated,
                scanned
            );
            return -1;
        }
        maybe_notice(&job, || {
            let elapsed = job.seconds_since_resume + elapsed_ms / 1000.0;
            planner::progress_text(scanned, scanned - job.scanned_at_resume, job.estimated_total, elapsed)
        });
        options.pause_ms
    })
}

fn maybe_notice(job: &Job, text: impl FnOnce() -> String) {
    let interval = Duration::from_millis(job.options.notice_interval_ms.max(0) as u64);
    let due = LAST_NOTICE.with(|last| match last.get() {
        Some(at) if at.elapsed() < interval => false,
        _ => {
            last.set(Some(Instant::now()));
            true
        }
    });
    if due {
        notice!("backfill \"{}\": {}", job.job_name, text());
    }
}

/// After the loop: a failed job's error, for backfill_run to raise (with
/// migrate.reraise, which keeps any SQLSTATE) now that its state is committed.
/// No row when the job did not fail.
// Its own C symbol: in 0.1.0 this function returned nothing (see crate::superseded).
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, schema = "migrate", name = "backfill_report")]
#[search_path(pg_catalog, pg_temp)]
fn failed_job_report(
    job_id: i64,
) -> TableIterator<
    'static,
    (
        name!(sqlstate, Option<String>),
        name!(message, Option<String>),
        name!(detail, Option<String>),
        name!(hint, Option<String>),
    ),
> {
    let row = Spi::connect(|client| {
        let rows = client
            .select(
                "SELECT job_name, last_error, last_sqlstate FROM migrate.backfills
                  WHERE job_id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'failed'",
                None,
                &[job_id.into()],
            )
            .or_raise("read the job");
        if rows.is_empty() {
            return None;
        }
        Some(rows.first().get_three::<String, String, String>().or_raise("read the job"))
    });
    let failure = row.map(|(name, error, code)| {
        let name = name.unwrap_or_default();
        let code = code.filter(|c| c.len() == 5).unwrap_or_else(|| "XX000".into());
        (
            Some(code.clone()),
            Some(format!("backfill \"{name}\" failed: {}", error.unwrap_or_default())),
            Some(format!(
                "SQLSTATE {code}. Batches before the failing one are committed; the failing batch was rolled back."
            )),
            Some(format!("Fix the cause, then continue: CALL migrate_backfill_resume('{name}');")),
        )
    });
    TableIterator::new(failure)
}

/// The id of the job called `job_name`, its row locked until this transaction ends.
fn lock_job_by_name(client: &mut SpiClient<'_>, job_name: &str) -> Option<i64> {
    client
        .update(
            "SELECT job_id FROM migrate.backfills WHERE job_name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
            None,
            &[job_name.into()],
        )
        .and_then(|rows| if rows.is_empty() { Ok(None) } else { rows.first().get_one() })
        .or_raise("look up the job")
}

fn set_status(job_name: Option<&str>, to: &str, from: &[&str], function: &str) -> String {
    let job_name = required(job_name, "job_name", function);
    Spi::connect_mut(|client| {
        let id = lock_job_by_name(client, job_name);
        let Some(job) = id.and_then(|id| read_job(client, id, "")) else {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("backfill job \"{job_name}\" does not exist"),
                None,
                Some("SELECT job_name, status FROM migrate_backfill_status; lists the jobs.".into()),
            )
        };
        require_job_role(client, &job);
        if !from.contains(&job.status.as_str()) {
            raise(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("backfill \"{job_name}\" is {}, so it cannot be {to}", job.status),
                None,
                Some(format!("Only a job that is {} can be {to}.", from.join(" or "))),
            );
        }
        client
            .update(
                "UPDATE migrate.backfills SET status = $2, waiting_for = NULL, updated_at = pg_catalog.clock_timestamp()
                  WHERE job_name OPERATOR(pg_catalog.=) $1",
                None,
                &[job_name.into(), to.into()],
            )
            .or_raise("change the job status");
        if job.status == "queued" {
            format!("backfill \"{job_name}\" {to}: it was queued and does not start")
        } else {
            format!("backfill \"{job_name}\" {to}: it stops at its next batch")
        }
    })
}

/// Ask a running backfill to stop at its next batch boundary; resume it later.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_backfill_pause(job_name: Option<&str>) -> String {
    set_status(job_name, "paused", &["running", "queued"], "migrate_backfill_pause")
}

/// Stop a backfill for good at its next batch boundary.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_backfill_cancel(job_name: Option<&str>) -> String {
    set_status(job_name, "cancelled", &["running", "queued", "paused", "failed"], "migrate_backfill_cancel")
}

/// A column of a table: the table's name (qualified as needed), whether the
/// column is NOT NULL, and the name of migrate_set_not_null's check for it.
struct NotNullTarget {
    table_name: String,
    not_null: bool,
    check_name: String,
}

fn not_null_target(table: pg_sys::Oid, column_name: &str) -> NotNullTarget {
    let found = Spi::connect(|client| {
        let rows = client
            .select(
                "SELECT c.oid::pg_catalog.regclass::pg_catalog.text, c.relname::pg_catalog.text, a.attnotnull
                   FROM pg_catalog.pg_class c
                   LEFT JOIN pg_catalog.pg_attribute a
                          ON a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attname OPERATOR(pg_catalog.=) $2
                         AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                  WHERE c.oid OPERATOR(pg_catalog.=) $1",
                None,
                &[table.into(), column_name.into()],
            )
            .or_raise("read the column");
        if rows.is_empty() {
            return None;
        }
        Some(rows.first().get_three::<String, String, bool>().or_raise("read the column"))
    });
    let Some((Some(table_name), base, not_null)) = found else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("migrate_set_not_null: table with OID {table:?} does not exist"),
            None,
            None,
        )
    };
    let Some(not_null) = not_null else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{column_name}\" of relation {table_name} does not exist"),
            None,
            Some(format!("\\d {table_name} lists its columns.")),
        )
    };
    let base = base.unwrap_or_default();
    let check_name: String = format!("{base}_{column_name}_not_null").chars().take(63).collect();
    NotNullTarget { table_name, not_null, check_name }
}

/// Name of the temporary CHECK used by migrate_set_not_null, or NULL when the
/// column is already NOT NULL.
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn not_null_check_name(table: Option<pg_sys::Oid>, column_name: Option<&str>) -> Option<String> {
    let table = required(table, "table_name", "migrate_set_not_null");
    let column_name = required(column_name, "column_name", "migrate_set_not_null");
    let target = not_null_target(table, column_name);
    if target.not_null {
        notice!("column {} of {} is already NOT NULL", quote_identifier(column_name), target.table_name);
        return None;
    }
    Some(target.check_name)
}

/// One step of migrate_set_not_null, under its own lock_timeout, with retries.
/// It runs pg_migrate's own DDL past the guard, so it only ever does what the
/// procedure does: only under CALL, only with the check name derived for this
/// column, and SET NOT NULL only once that check is validated (so that
/// PostgreSQL skips its full-table scan under ACCESS EXCLUSIVE).
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn set_not_null_step(
    table: Option<pg_sys::Oid>,
    column_name: Option<&str>,
    check_name: Option<&str>,
    step: Option<&str>,
    lock_timeout_ms: Option<i32>,
) {
    const PROCEDURE: &str = "migrate_set_not_null";
    let table = required(table, "table_name", PROCEDURE);
    let column_name = required(column_name, "column_name", PROCEDURE);
    let check_name = required(check_name, "check_name", PROCEDURE);
    let step = required(step, "step", PROCEDURE);
    let lock_timeout_ms = required(lock_timeout_ms, "lock_timeout_ms", PROCEDURE);
    let refuse = |why: String| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("migrate.set_not_null_step is a step of migrate_set_not_null: {why}"),
            None,
            Some(format!("CALL {PROCEDURE}(table_name, column_name);")),
        )
    };
    // SAFETY: a read of backend-global transaction state.
    if unsafe { pg_sys::IsTransactionBlock() } || !called_by_call() {
        refuse("it runs only inside CALL migrate_set_not_null".into());
    }
    if lock_timeout_ms < 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{PROCEDURE}: lock_timeout_ms must not be negative"),
            None,
            None,
        );
    }
    let target = not_null_target(table, column_name);
    if check_name != target.check_name {
        refuse(format!("its check is named \"{}\" for this column, not \"{check_name}\"", target.check_name));
    }
    let table_name = target.table_name;
    let column = quote_identifier(column_name);
    let check = quote_identifier(check_name);
    Spi::connect_mut(|client| {
        let check_state: Option<(bool, bool)> = client
            .select(
                "SELECT convalidated,
                        contype OPERATOR(pg_catalog.=) 'c'
                        AND pg_catalog.pg_get_expr(conbin, conrelid) OPERATOR(pg_catalog.=) pg_catalog.format('(%s IS NOT NULL)', $3)
                   FROM pg_catalog.pg_constraint WHERE conrelid OPERATOR(pg_catalog.=) $1 AND conname OPERATOR(pg_catalog.=) $2",
                None,
                &[table.into(), check_name.into(), column.clone().into()],
            )
            .and_then(|rows| {
                if rows.is_empty() {
                    Ok(None)
                } else {
                    rows.first().get_two::<bool, bool>().map(|(valid, ours)| Some((valid == Some(true), ours == Some(true))))
                }
            })
            .or_raise("read the check");
        if check_state.is_some_and(|(_, ours)| !ours) {
            raise(
                PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                format!("{PROCEDURE}: constraint {check} on {table_name} exists and is not its check ({column} IS NOT NULL)"),
                None,
                Some("Rename or drop that constraint, then CALL migrate_set_not_null again.".into()),
            );
        }
        let statements: Vec<String> = match step {
            "add" if check_state.is_none() && !target.not_null => vec![format!(
                "ALTER TABLE {table_name} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
            )],
            "add" => Vec::new(),
            "validate" if check_state == Some((false, true)) => {
                vec![format!("ALTER TABLE {table_name} VALIDATE CONSTRAINT {check}")]
            }
            "validate" => Vec::new(),
            "set" if check_state == Some((true, true)) => vec![
                format!("ALTER TABLE {table_name} ALTER COLUMN {column} SET NOT NULL"),
                format!("ALTER TABLE {table_name} DROP CONSTRAINT {check}"),
            ],
            "set" if target.not_null => Vec::new(),
            "set" => refuse("SET NOT NULL needs the validated check first (steps add, validate)".into()),
            other => raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{PROCEDURE}: unknown step \"{other}\""),
                None,
                Some("The steps are add, validate and set.".into()),
            ),
        };
        if statements.is_empty() {
            return;
        }
        notice!("migrate_set_not_null: {}", statements.join("; "));
        set_lock_timeout(client, lock_timeout_ms);
        let mut attempt = 0;
        loop {
            // pg_migrate's own DDL: the safe sequence itself, so past the guard.
            let result = subxact::run(Keep::Commit, || {
                crate::guard::context::bypassed(|| {
                    for statement in &statements {
                        client.update(statement.as_str(), None, &[]).or_raise("run a step");
                    }
                })
            });
            match result {
                Ok(()) => return,
                Err(failure) if sqlstate(failure.code) == "55P03" && attempt < 10 => {
                    attempt += 1;
                    let wait = planner::retry_backoff_ms(attempt);
                    notice!("migrate_set_not_null: {}; retry {attempt} in {wait} ms", failure.message);
                    interruptible_sleep(wait);
                }
                Err(failure) => raise(
                    failure.code,
                    format!("migrate_set_not_null failed at \"{}\": {}", statements[0], failure.message),
                    failure.detail,
                    Some("Earlier steps are committed; fix the cause and CALL migrate_set_not_null again.".into()),
                ),
            }
        }
    })
}
