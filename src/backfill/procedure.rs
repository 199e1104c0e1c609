//! The SQL side of batched backfills. The PL/pgSQL procedures in backfill.sql
//! own the transaction boundaries (COMMIT after every batch); the functions here
//! do one step each inside the current transaction.

use std::cell::Cell;
use std::time::{Duration, Instant};

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};

use super::planner::{self, KeyColumn};
use crate::errors::{raise, OrRaise};
use crate::server_sql;
use crate::subxact::{self, Keep};

/// The five-character SQLSTATE of an error code (PostgreSQL's PGUNSIXBIT).
fn sqlstate(code: PgSqlErrorCode) -> String {
    let value = code as i32;
    (0..5).map(|i| char::from(b'0' + ((value >> (6 * i)) & 0x3F) as u8)).collect()
}

/// The error code of a five-character SQLSTATE (PostgreSQL's MAKE_SQLSTATE).
fn error_code(sqlstate: &str) -> PgSqlErrorCode {
    let packed = sqlstate.bytes().take(5).enumerate().fold(0i32, |acc, (i, byte)| {
        acc | (i32::from(byte.wrapping_sub(b'0') & 0x3F) << (6 * i))
    });
    PgSqlErrorCode::from(packed)
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
    let tag = unsafe {
        let portal = pg_sys::ActivePortal;
        if portal.is_null() { None } else { Some((*portal).commandTag) }
    };
    if !matches!(tag, Some(pg_sys::CommandTag::CMDTAG_CALL | pg_sys::CommandTag::CMDTAG_DO)) {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
            format!("{procedure} must be called with CALL at top level"),
            Some("Called from a function or a SELECT, it could not commit after each batch.".into()),
            Some(format!("Run it directly from psql: CALL {procedure}(...);")),
        );
    }
}

/// `SET LOCAL lock_timeout`: every batch and step waits at most this long for a lock.
fn set_lock_timeout(client: &mut SpiClient<'_>, ms: i32) {
    client
        .update("SELECT pg_catalog.set_config('lock_timeout', $1, true)", None, &[format!("{ms}ms").into()])
        .or_raise("set lock_timeout");
}

/// A job row, as the batch function needs it.
struct Job {
    name: String,
    table: String,
    set_expression: String,
    where_condition: Option<String>,
    keys: Vec<KeyColumn>,
    batch_size: i32,
    rows_per_batch: i32,
    pause_ms: i32,
    target_batch_ms: Option<i32>,
    max_replication_lag_ms: Option<i32>,
    lock_timeout_ms: i32,
    max_retries: i32,
    notice_interval_ms: i32,
    last_key: Option<Vec<String>>,
    rows_done: i64,
    rows_scanned: i64,
    scanned_at_resume: i64,
    estimated_total: Option<i64>,
    status: String,
    seconds_since_resume: f64,
}

fn load_job(client: &mut SpiClient<'_>, job: i64) -> Job {
    // update(), not select(): a read-only SPI query may not lock rows.
    let rows = client
        .update(
            "SELECT job_name, table_name, set_expression, where_condition, key_columns, key_types,
                    batch_size, pause_ms, target_batch_ms, max_replication_lag_ms, lock_timeout_ms,
                    max_retries, notice_interval_ms, last_key, rows_done, rows_scanned,
                    scanned_at_resume, estimated_total, status,
                    extract(epoch FROM pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) resumed_at)::double precision, rows_per_batch
               FROM migrate.backfills WHERE job_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
            None,
            &[job.into()],
        )
        .or_raise("read a backfill job");
    let Some(row) = rows.into_iter().next() else {
        raise(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("backfill job {job} does not exist"), None, None)
    };
    let names: Vec<String> = row.get(5).or_raise("read key columns").unwrap_or_default();
    let types: Vec<String> = row.get(6).or_raise("read key types").unwrap_or_default();
    Job {
        name: row.get(1).or_raise("read the job name").unwrap_or_default(),
        table: row.get(2).or_raise("read the table").unwrap_or_default(),
        set_expression: row.get(3).or_raise("read the SET list").unwrap_or_default(),
        where_condition: row.get(4).or_raise("read the condition"),
        keys: names.into_iter().zip(types).map(|(name, type_sql)| KeyColumn { name, type_sql }).collect(),
        batch_size: row.get(7).or_raise("read batch_size").unwrap_or(1000),
        pause_ms: row.get(8).or_raise("read pause_ms").unwrap_or(0),
        target_batch_ms: row.get(9).or_raise("read target_batch_ms"),
        max_replication_lag_ms: row.get(10).or_raise("read max_replication_lag_ms"),
        lock_timeout_ms: row.get(11).or_raise("read lock_timeout_ms").unwrap_or(1000),
        max_retries: row.get(12).or_raise("read max_retries").unwrap_or(10),
        notice_interval_ms: row.get(13).or_raise("read notice_interval_ms").unwrap_or(10_000),
        last_key: row.get(14).or_raise("read last_key"),
        rows_done: row.get(15).or_raise("read rows_done").unwrap_or(0),
        rows_scanned: row.get(16).or_raise("read rows_scanned").unwrap_or(0),
        scanned_at_resume: row.get(17).or_raise("read scanned_at_resume").unwrap_or(0),
        estimated_total: row.get(18).or_raise("read estimated_total"),
        status: row.get(19).or_raise("read status").unwrap_or_default(),
        seconds_since_resume: row.get(20).or_raise("read the elapsed time").unwrap_or(0.0),
        rows_per_batch: row.get::<i32>(21).or_raise("read rows_per_batch").unwrap_or(0),
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

/// The primary key's columns, quoted, with their types, in index order.
fn primary_key(client: &SpiClient<'_>, table: pg_sys::Oid, table_name: &str) -> Vec<KeyColumn> {
    let rows = client
        .select(
            "SELECT pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod)
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.attnum
              WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary
              ORDER BY k.position",
            None,
            &[table.into()],
        )
        .or_raise("read the primary key");
    let keys: Vec<KeyColumn> = rows
        .map(|row| KeyColumn {
            name: row.get(1).ok().flatten().unwrap_or_default(),
            type_sql: row.get(2).ok().flatten().unwrap_or_default(),
        })
        .collect();
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
    keys
}

/// Plan (without running) every statement a batch will run, so that unknown
/// columns and type errors are reported before the first row changes.
fn check_statements(client: &SpiClient<'_>, table: &str, keys: &[KeyColumn], set: &str, condition: Option<&str>) {
    let text_array = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
    let int4 = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
    let statements = [
        (planner::batch_end_sql(table, keys, true), vec![text_array, int4]),
        (planner::update_sql(table, keys, set, condition, true, true), vec![text_array, text_array]),
    ];
    for (sql, types) in statements {
        let prepared = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
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

#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_prepare(
    table: pg_sys::Oid,
    set_expression: &str,
    where_condition: Option<&str>,
    job_name: Option<&str>,
    batch_size: i32,
    pause_ms: i32,
    target_batch_ms: Option<i32>,
    max_replication_lag_ms: Option<i32>,
    lock_timeout_ms: i32,
    max_retries: i32,
    notice_interval_ms: i32,
) -> i64 {
    if batch_size < 1 || pause_ms < 0 || lock_timeout_ms < 0 || max_retries < 0 || notice_interval_ms < 0 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "batch_size must be positive; pause_ms, lock_timeout_ms, max_retries and notice_interval_ms must not be negative",
            None,
            None,
        );
    }
    let where_condition = where_condition.filter(|c| !c.trim().is_empty());
    validate_expressions(set_expression, where_condition);
    Spi::connect_mut(|client| {
        let (table_name, relkind, estimate): (Option<String>, Option<String>, Option<i64>) = client
            .select(
                "SELECT c.oid::pg_catalog.regclass::pg_catalog.text, c.relkind::pg_catalog.text,
                        CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p'
                             THEN (SELECT pg_catalog.sum(greatest(p.reltuples, 0))::bigint FROM pg_catalog.pg_partition_tree(c.oid) t
                                     JOIN pg_catalog.pg_class p ON p.oid OPERATOR(pg_catalog.=) t.relid WHERE t.isleaf)
                             WHEN c.reltuples OPERATOR(pg_catalog.>=) 0 THEN c.reltuples::bigint END
                   FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
                None,
                &[table.into()],
            )
            .and_then(|rows| rows.first().get_three())
            .or_raise("read the table");
        let Some(table_name) = table_name else {
            raise(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, format!("table with OID {table:?} does not exist"), None, None)
        };
        if !matches!(relkind.as_deref(), Some("r" | "p")) {
            raise(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, format!("{table_name} is not a table"), None, None);
        }
        let keys = primary_key(client, table, &table_name);
        // Planning the UPDATE takes a lock on the table: bounded like every batch.
        set_lock_timeout(client, lock_timeout_ms);
        check_statements(client, &table_name, &keys, set_expression, where_condition);

        let name = job_name.map(str::to_string).unwrap_or_else(|| default_job_name(&table_name, set_expression));
        let existing = client
            .update(
                "SELECT job_id, table_oid OPERATOR(pg_catalog.=) $2 AND set_expression OPERATOR(pg_catalog.=) $3 AND coalesce(where_condition OPERATOR(pg_catalog.=) $4, where_condition IS NULL AND $4 IS NULL),
                        status FROM migrate.backfills WHERE job_name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
                None,
                &[name.clone().into(), table.into(), set_expression.into(), where_condition.into()],
            )
            .or_raise("look up the job");
        if let Some(row) = existing.into_iter().next() {
            let id: i64 = row.get(1).or_raise("read job id").unwrap_or_default();
            let same: bool = row.get(2).or_raise("compare the job").unwrap_or(false);
            if !same {
                raise(
                    PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                    format!("backfill job \"{name}\" already exists for a different table, SET list or condition"),
                    None,
                    Some("Give this backfill its own job_name => '...'.".into()),
                );
            }
            return resume(client, id, &name);
        }
        let key_names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
        let key_types: Vec<String> = keys.iter().map(|k| k.type_sql.clone()).collect();
        let id: i64 = client
            .update(
                "INSERT INTO migrate.backfills
                     (job_name, table_name, table_oid, set_expression, where_condition, key_columns, key_types,
                      batch_size, pause_ms, target_batch_ms, max_replication_lag_ms, lock_timeout_ms,
                      max_retries, notice_interval_ms, estimated_total, run_by_pid, rows_per_batch)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, pg_catalog.pg_backend_pid(), $8)
                 RETURNING job_id",
                None,
                &[
                    name.clone().into(),
                    table_name.clone().into(),
                    table.into(),
                    set_expression.into(),
                    where_condition.into(),
                    key_names.into(),
                    key_types.into(),
                    batch_size.into(),
                    pause_ms.into(),
                    target_batch_ms.into(),
                    max_replication_lag_ms.into(),
                    lock_timeout_ms.into(),
                    max_retries.into(),
                    notice_interval_ms.into(),
                    estimate.into(),
                ],
            )
            .and_then(|rows| rows.first().get_one())
            .or_raise("create the job")
            .unwrap_or_default();
        let total = estimate.map_or("an unknown number of".into(), |n| format!("~{n}"));
        notice!("backfill \"{name}\" started on {table_name}: {total} rows in batches of {batch_size}");
        id
    })
}

fn default_job_name(table: &str, set_expression: &str) -> String {
    let digest = crate::revisions::checksum(set_expression);
    format!("{}:{}", table, &digest[..8])
}

/// Mark a job running again, unless another live session is running it.
fn resume(client: &mut SpiClient<'_>, id: i64, name: &str) -> i64 {
    let row = client
        .select(
            "SELECT b.status, b.run_by_pid,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                             WHERE a.pid OPERATOR(pg_catalog.=) b.run_by_pid AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
                               AND a.state OPERATOR(pg_catalog.=) 'active')
               FROM migrate.backfills b WHERE b.job_id OPERATOR(pg_catalog.=) $1",
            None,
            &[id.into()],
        )
        .and_then(|rows| rows.first().get_three::<String, i32, bool>())
        .or_raise("read the job");
    match row {
        (Some(status), _, _) if status == "done" => {
            notice!("backfill \"{name}\" is already done");
        }
        (Some(status), _, _) if status == "cancelled" => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("backfill \"{name}\" was cancelled and cannot be resumed"),
            None,
            Some("Start a new job with another job_name.".into()),
        ),
        (Some(status), Some(pid), Some(true)) if status == "running" => raise(
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            format!("backfill \"{name}\" is already running in pid {pid}"),
            None,
            Some(format!("Pause it first: SELECT migrate_backfill_pause('{name}');")),
        ),
        _ => {
            client
                .update(
                    "UPDATE migrate.backfills
                        SET status = 'running', run_by_pid = pg_catalog.pg_backend_pid(), last_error = NULL,
                            last_sqlstate = NULL, resumed_at = pg_catalog.clock_timestamp(),
                            scanned_at_resume = rows_scanned, finished_at = NULL
                      WHERE job_id OPERATOR(pg_catalog.=) $1",
                    None,
                    &[id.into()],
                )
                .or_raise("resume the job");
            notice!("backfill \"{name}\" resumes after the last committed batch");
        }
    }
    id
}

#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_resume_prepare(job_name: &str) -> i64 {
    Spi::connect_mut(|client| {
        let id: Option<i64> = client
            .update("SELECT job_id FROM migrate.backfills WHERE job_name OPERATOR(pg_catalog.=) $1 FOR UPDATE", None, &[job_name.into()])
            .and_then(|rows| if rows.is_empty() { Ok(None) } else { rows.first().get_one() })
            .or_raise("look up the job");
        let Some(id) = id else {
            raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("backfill job \"{job_name}\" does not exist"),
                None,
                Some("SELECT job_name, status FROM migrate_backfill_status; lists the jobs.".into()),
            )
        };
        resume(client, id, job_name)
    })
}

thread_local! {
    // When this backend last reported progress, so NOTICEs come at an interval.
    static LAST_NOTICE: Cell<Option<Instant>> = const { Cell::new(None) };
}

struct BatchOutcome {
    updated: i64,
    scanned: i64,
    end: Option<Vec<String>>,
}

fn run_batch(client: &mut SpiClient<'_>, job: &Job) -> BatchOutcome {
    let after = job.last_key.clone();
    let end_sql = planner::batch_end_sql(&job.table, &job.keys, after.is_some());
    let mut args = Vec::new();
    if let Some(last) = &after {
        args.push(last.clone().into());
    }
    args.push(job.batch_size.into());
    let end_rows = client.update(end_sql.as_str(), None, &args).or_raise("find the batch end");
    let end: Option<Vec<String>> =
        if end_rows.is_empty() { None } else { end_rows.first().get_one().or_raise("read the batch end") };

    let update = planner::update_sql(
        &job.table,
        &job.keys,
        &job.set_expression,
        job.where_condition.as_deref(),
        after.is_some(),
        end.is_some(),
    );
    let mut args = Vec::new();
    if let Some(last) = &after {
        args.push(last.clone().into());
    }
    if let Some(end) = &end {
        args.push(end.clone().into());
    }
    let updated = client.update(update.as_str(), None, &args).or_raise("update a batch").len() as i64;
    let scanned = if end.is_some() {
        i64::from(job.batch_size)
    } else {
        let remaining = planner::remaining_sql(&job.table, &job.keys, after.is_some());
        let args: Vec<_> = after.iter().map(|last| last.clone().into()).collect();
        client
            .update(remaining.as_str(), None, &args)
            .and_then(|rows| rows.first().get_one::<i64>())
            .or_raise("count the last batch")
            .unwrap_or(0)
    };
    BatchOutcome { updated, scanned, end }
}

fn replication_lag_ms(client: &SpiClient<'_>) -> f64 {
    client
        .select(
            "SELECT coalesce(pg_catalog.max(extract(epoch FROM replay_lag) OPERATOR(pg_catalog.*) 1000), 0)::double precision FROM pg_catalog.pg_stat_replication",
            None,
            &[],
        )
        .and_then(|rows| rows.first().get_one::<f64>())
        .or_raise("read pg_stat_replication")
        .unwrap_or(0.0)
}

/// One batch of a job, in the caller's transaction (the procedure commits it).
/// Returns how long to wait before the next call, or -1 when the job stopped
/// (done, paused, cancelled, failed).
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_batch(job_id: i64) -> i32 {
    Spi::connect_mut(|client| {
        let job = load_job(client, job_id);
        if job.status != "running" {
            if job.status == "paused" {
                notice!("backfill \"{}\" paused; continue with CALL migrate_backfill_resume('{}');", job.name, job.name);
            } else if job.status == "cancelled" {
                notice!("backfill \"{}\" cancelled", job.name);
            }
            return -1;
        }
        if let Some(max_lag) = job.max_replication_lag_ms {
            let lag = replication_lag_ms(client);
            if lag > f64::from(max_lag) {
                client
                    .update(
                        "UPDATE migrate.backfills SET lag_waits = lag_waits OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.clock_timestamp()
                          WHERE job_id OPERATOR(pg_catalog.=) $1",
                        None,
                        &[job_id.into()],
                    )
                    .or_raise("record a lag wait");
                maybe_notice(&job, || format!("waiting: a standby replays {lag:.0} ms behind (limit {max_lag} ms)"));
                return max_lag.clamp(50, 1000);
            }
        }
        set_lock_timeout(client, job.lock_timeout_ms);

        let mut attempt: u32 = 0;
        let (outcome, elapsed_ms) = loop {
            let clock = Instant::now();
            match subxact::run(Keep::Commit, || run_batch(client, &job)) {
                Ok(outcome) => break (outcome, clock.elapsed().as_secs_f64() * 1000.0),
                Err(failure) => {
                    let code = sqlstate(failure.code);
                    if planner::is_retryable(&code) && attempt < job.max_retries.max(0) as u32 {
                        attempt += 1;
                        let wait = planner::retry_backoff_ms(attempt);
                        notice!("backfill \"{}\": {} ({code}); retry {attempt} in {wait} ms", job.name, failure.message);
                        std::thread::sleep(Duration::from_millis(wait));
                        continue;
                    }
                    if matches!(code.as_str(), "57014" | "57P01" | "57P02" | "57P03") {
                        // Cancelled or shutting down: stop now; the job resumes from its last commit.
                        raise(failure.code, failure.message, failure.detail, None);
                    }
                    client
                        .update(
                            "UPDATE migrate.backfills
                                SET status = 'failed', last_error = $2, last_sqlstate = $3, retries = retries OPERATOR(pg_catalog.+) $4,
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
        let next_size = if job.target_batch_ms.is_some() {
            planner::next_batch_size(job.batch_size, job.target_batch_ms, elapsed_ms)
        } else if job.where_condition.is_some() && !finished {
            let rows_per_batch = if job.rows_per_batch > 0 { job.rows_per_batch } else { job.batch_size };
            planner::next_key_window(job.batch_size, rows_per_batch, outcome.updated)
        } else {
            job.batch_size
        };
        client
            .update(
                "UPDATE migrate.backfills
                    SET last_key = coalesce($2, last_key), rows_done = rows_done OPERATOR(pg_catalog.+) $3, rows_scanned = rows_scanned OPERATOR(pg_catalog.+) $4,
                        batches = batches OPERATOR(pg_catalog.+) 1, retries = retries OPERATOR(pg_catalog.+) $5, batch_size = $6,
                        status = CASE WHEN $7 THEN 'done' ELSE status END,
                        finished_at = CASE WHEN $7 THEN pg_catalog.clock_timestamp() END,
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
                job.name,
                job.rows_done + outcome.updated,
                scanned
            );
            return -1;
        }
        maybe_notice(&job, || {
            let elapsed = job.seconds_since_resume + elapsed_ms / 1000.0;
            planner::progress_text(scanned, scanned - job.scanned_at_resume, job.estimated_total, elapsed)
        });
        job.pause_ms
    })
}

fn maybe_notice(job: &Job, text: impl FnOnce() -> String) {
    let due = LAST_NOTICE.with(|last| match last.get() {
        Some(at) if at.elapsed() < Duration::from_millis(job.notice_interval_ms.max(0) as u64) => false,
        _ => {
            last.set(Some(Instant::now()));
            true
        }
    });
    if due {
        notice!("backfill \"{}\": {}", job.name, text());
    }
}

/// After the loop: a failed job's error, raised now that its state is committed.
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_report(job_id: i64) {
    let row = Spi::get_three_with_args::<String, String, String>(
        "SELECT job_name, last_error, last_sqlstate FROM migrate.backfills WHERE job_id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'failed'",
        &[job_id.into()],
    );
    if let Ok((Some(name), Some(error), sqlstate_text)) = row {
        let code = error_code(sqlstate_text.as_deref().unwrap_or("22000"));
        raise(
            code,
            format!("backfill \"{name}\" failed: {error}"),
            Some(format!(
                "SQLSTATE {}. Batches before the failing one are committed; the failing batch was rolled back.",
                sqlstate_text.unwrap_or_default()
            )),
            Some(format!("Fix the cause, then continue: CALL migrate_backfill_resume('{name}');")),
        );
    }
}

fn set_status(job_name: &str, to: &str, from: &[&str]) -> String {
    let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
    let changed = Spi::get_one_with_args::<String>(
        "UPDATE migrate.backfills SET status = $2, updated_at = pg_catalog.clock_timestamp()
          WHERE job_name OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) ANY($3) RETURNING status",
        &[job_name.into(), to.into(), from.into()],
    )
    .or_raise("change the job status");
    if changed.is_some() {
        return format!("backfill \"{job_name}\" {to}: the running procedure stops at its next batch");
    }
    let current = Spi::get_one_with_args::<String>(
        "SELECT status FROM migrate.backfills WHERE job_name OPERATOR(pg_catalog.=) $1",
        &[job_name.into()],
    )
    .or_raise("read the job");
    match current {
        None => raise(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("backfill job \"{job_name}\" does not exist"), None, None),
        Some(status) => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("backfill \"{job_name}\" is {status}, so it cannot be {to}"),
            None,
            None,
        ),
    }
}

/// Ask a running backfill to stop at its next batch boundary; resume it later.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_backfill_pause(job_name: &str) -> String {
    set_status(job_name, "paused", &["running"])
}

/// Stop a backfill for good at its next batch boundary.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn migrate_backfill_cancel(job_name: &str) -> String {
    set_status(job_name, "cancelled", &["running", "paused", "failed"])
}

/// Name of the temporary CHECK used by migrate_set_not_null, or NULL when the
/// column is already NOT NULL.
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn not_null_check_name(table: pg_sys::Oid, column_name: &str) -> Option<String> {
    let (table_name, not_null) = Spi::get_two_with_args::<String, bool>(
        "SELECT $1::pg_catalog.regclass::pg_catalog.text, a.attnotnull FROM pg_catalog.pg_attribute a
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
        &[table.into(), column_name.into()],
    )
    .or_raise("read the column");
    let Some(table_name) = table_name else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{column_name}\" of relation with OID {table:?} does not exist"),
            None,
            None,
        )
    };
    if not_null == Some(true) {
        notice!("column {} of {table_name} is already NOT NULL", quote_identifier(column_name));
        return None;
    }
    let base = table_name.rsplit('.').next().unwrap_or(&table_name).trim_matches('"').to_string();
    let name: String = format!("{base}_{column_name}_not_null").chars().take(63).collect();
    Some(name)
}

/// One step of migrate_set_not_null, under its own lock_timeout, with retries.
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn set_not_null_step(table: pg_sys::Oid, column_name: &str, check_name: &str, step: &str, lock_timeout_ms: i32) {
    let column = quote_identifier(column_name);
    let check = quote_identifier(check_name);
    Spi::connect_mut(|client| {
        let table_name: String = client
            .select("SELECT $1::pg_catalog.regclass::pg_catalog.text", None, &[table.into()])
            .and_then(|rows| rows.first().get_one())
            .or_raise("read the table")
            .unwrap_or_default();
        let check_state: Option<bool> = client
            .select(
                "SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid OPERATOR(pg_catalog.=) $1 AND conname OPERATOR(pg_catalog.=) $2",
                None,
                &[table.into(), check_name.into()],
            )
            .and_then(|rows| if rows.is_empty() { Ok(None) } else { rows.first().get_one() })
            .or_raise("read the check");
        let statements: Vec<String> = match step {
            "add" if check_state.is_none() => vec![format!(
                "ALTER TABLE {table_name} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
            )],
            "validate" if check_state == Some(false) => {
                vec![format!("ALTER TABLE {table_name} VALIDATE CONSTRAINT {check}")]
            }
            "set" => vec![
                format!("ALTER TABLE {table_name} ALTER COLUMN {column} SET NOT NULL"),
                format!("ALTER TABLE {table_name} DROP CONSTRAINT IF EXISTS {check}"),
            ],
            _ => Vec::new(),
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
                    std::thread::sleep(Duration::from_millis(wait));
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
