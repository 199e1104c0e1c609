//! Background backfills: `migrate_backfill_start` queues a job and starts a
//! dynamic background worker for it; the worker runs the very batches of
//! `migrate.backfill_batch` (the same job row, the same commit per batch), so a
//! background job is a foreground job without a client.
//!
//! The shape is pg_cron's: a worker per job, connected to the job's database as
//! the login role of the session that started it (no more rights than that
//! session had; every batch still switches to the job's role and search_path);
//! waits are WaitLatch with WL_POSTMASTER_DEATH, then CHECK_FOR_INTERRUPTS;
//! state lives in migrate.backfills. With `shared_preload_libraries =
//! 'pg_migrate'` a launcher starts again, after a restart or a crash, the jobs
//! whose worker was gone.
//!
//! The queue: at most `pg_migrate.max_backfill_workers` background jobs run at
//! once in a database. Every queued job that gets its turn is given a worker;
//! the worker claims the job under an advisory lock, so that the limit holds
//! however many workers start at once. A job that could not get a worker slot
//! stays queued and says why; whichever job ends next (or the next start)
//! gives it its worker.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, JsonB};

use super::procedure::{self, RunsIn};
use super::queue::{self, WorkerArgs};
use crate::errors::OrRaise;

/// pg_migrate.max_backfill_workers.
pub static MAX_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(2);

/// Set in the postmaster when the library is preloaded (inherited by every
/// process it starts): then the launcher restarts jobs after a restart.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// The advisory lock (two-key form, so apart from migrate.lock's one-key lock)
/// that serialises claims of a queue place in a database.
const CLAIM_LOCK: (i32, i32) = (0x0070_676d, 1);

const LIBRARY: &str = "pg_migrate";
const WORKER_TYPE: &str = "pg_migrate backfill";

pub fn define_settings() {
    GucRegistry::define_int_guc(
        c"pg_migrate.max_backfill_workers",
        c"How many background backfill jobs run at once in a database; further jobs wait in a queue, in order.",
        c"Superuser-only. Each running job uses one background worker process, out of max_worker_processes.",
        &MAX_WORKERS,
        0,
        1024,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// From _PG_init: with the preload, register the launcher (not during
/// pg_upgrade, whose server must start no worker).
pub fn register_launcher() {
    // SAFETY: reads of postmaster globals, in _PG_init.
    let (preloading, binary_upgrade) =
        unsafe { (pg_sys::process_shared_preload_libraries_in_progress, pg_sys::IsBinaryUpgrade) };
    if !preloading || binary_upgrade {
        return;
    }
    PRELOADED.store(true, Ordering::Relaxed);
    BackgroundWorkerBuilder::new("pg_migrate backfill launcher")
        .set_type("pg_migrate launcher")
        .set_library(LIBRARY)
        .set_function("pg_migrate_backfill_launcher")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .load();
}

/// The background jobs of this database whose worker is alive.
fn running_in_background(client: &SpiClient<'_>) -> i64 {
    client
        .select(
            "SELECT pg_catalog.count(*) FROM migrate.backfills b
              WHERE b.status OPERATOR(pg_catalog.=) 'running' AND b.runs_in OPERATOR(pg_catalog.=) 'background'
                AND migrate.backfill_runner_alive(b.runs_in, b.run_by_pid, b.runner_epoch)",
            None,
            &[],
        )
        .and_then(|rows| rows.first().get_one::<i64>())
        .or_raise("count the running background jobs")
        .unwrap_or(0)
}

fn set_waiting_for(client: &mut SpiClient<'_>, job_id: i64, reason: &str) {
    client
        .update(
            "UPDATE migrate.backfills SET waiting_for = $2
              WHERE job_id OPERATOR(pg_catalog.=) $1 AND (waiting_for IS NULL OR waiting_for OPERATOR(pg_catalog.<>) $2)",
            None,
            &[job_id.into(), reason.into()],
        )
        .or_raise("record what the job waits for");
}

/// Give the oldest queued jobs of this database a worker each, as many as
/// there are free places. Each worker first waits for this transaction to end
/// (until then it would not see the job), so this can run anywhere in it.
pub(super) fn launch_queued(client: &mut SpiClient<'_>) {
    let queued: Vec<(i64, i64)> = client
        .select(
            "SELECT job_id, session_role::pg_catalog.int8 FROM migrate.backfills
              WHERE status OPERATOR(pg_catalog.=) 'queued' AND session_role IS NOT NULL
              ORDER BY queued_at, job_id",
            None,
            &[],
        )
        .or_raise("read the queue")
        .map(|row| (row.get::<i64>(1).ok().flatten().unwrap_or(0), row.get::<i64>(2).ok().flatten().unwrap_or(0)))
        .collect();
    if queued.is_empty() {
        return;
    }
    let running = running_in_background(client);
    let max_workers = MAX_WORKERS.get();
    let places = queue::free_places(max_workers, running, queued.len());
    // SAFETY: reads of backend globals; assigning an xid is what an UPDATE would do.
    let (database, xid, max_processes) =
        unsafe { (pg_sys::MyDatabaseId, pg_sys::GetTopTransactionId(), pg_sys::max_worker_processes) };
    for (position, (job_id, login_role)) in queued.into_iter().enumerate() {
        if position >= places {
            set_waiting_for(client, job_id, &queue::queue_reason(max_workers, running));
            continue;
        }
        let args = WorkerArgs {
            database: database.to_u32(),
            login_role: u32::try_from(login_role).unwrap_or(0),
            wait_for_xid: xid.into_inner(),
        };
        if !start_worker(job_id, args) {
            set_waiting_for(client, job_id, &queue::no_worker_slot_reason(max_processes));
        }
    }
}

/// Register a dynamic background worker for a job; false when no slot is free.
fn start_worker(job_id: i64, args: WorkerArgs) -> bool {
    BackgroundWorkerBuilder::new(&format!("pg_migrate backfill job {job_id}"))
        .set_type(WORKER_TYPE)
        .set_library(LIBRARY)
        .set_function("pg_migrate_backfill_worker")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_argument(job_id.into_datum())
        .set_extra(&args.to_extra())
        .load_dynamic()
        .is_ok()
}

/// migrate_backfill_start's work: every check of migrate_backfill, then the job
/// is queued and given a worker if a place is free. Returns the job name.
#[pg_extern(volatile, schema = "migrate", name = "backfill_start")]
#[search_path(pg_catalog, pg_temp)]
fn start_job(
    table: Option<pg_sys::Oid>,
    set_expression: Option<&str>,
    where_condition: Option<&str>,
    job_name: Option<&str>,
    options: Option<JsonB>,
    search_path: Option<&str>,
) -> String {
    let job_id =
        procedure::prepare(table, set_expression, where_condition, job_name, options, search_path, RunsIn::Background);
    Spi::connect_mut(|client| {
        launch_queued(client);
        client
            .select("SELECT job_name FROM migrate.backfills WHERE job_id OPERATOR(pg_catalog.=) $1", None, &[job_id.into()])
            .and_then(|rows| rows.first().get_one::<String>())
            .or_raise("read the job name")
            .unwrap_or_default()
    })
}

/// After migrate_backfill_resume queued a background job: its worker (it waits
/// for the procedure's COMMIT).
#[pg_extern(volatile, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_launch_queued() {
    Spi::connect_mut(|client| launch_queued(client));
}

/// Why a job marked running shows as stalled in migrate_backfill_status.
#[pg_extern(stable, schema = "migrate")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_stalled_reason(runs_in: Option<&str>, pid: Option<i32>) -> String {
    queue::stalled_reason(runs_in.unwrap_or("foreground"), pid, PRELOADED.load(Ordering::Relaxed))
}

/// What a caught error said: its SQLSTATE and message.
struct Failure {
    sqlstate: String,
    message: String,
}

/// One transaction of a worker. An ERROR aborts it and comes back as a Failure;
/// a FATAL (pg_terminate_backend, shutdown) ends the process as in any backend.
fn transaction<R>(work: impl FnOnce() -> R) -> Result<R, Failure> {
    // SAFETY: the sequence of pgrx's BackgroundWorker::transaction; on an ERROR
    // the transaction is aborted as PostgresMain's error recovery does.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| Ok(work()))).catch_others(Err).execute();
    match outcome {
        Ok(value) => {
            unsafe {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Ok(value)
        }
        Err(caught) => {
            let failure = match &caught {
                CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => Some(Failure {
                    sqlstate: crate::pg_report::decode_sqlstate(report.sql_error_code() as i32),
                    message: report.message().to_string(),
                }),
                CaughtError::RustPanic { .. } => None,
            };
            let Some(failure) = failure else { caught.rethrow() };
            // SAFETY: not inside a transaction block: this ends the worker's transaction.
            unsafe { pg_sys::AbortCurrentTransaction() };
            Err(failure)
        }
    }
}

/// Sleep on the latch; end the process if the postmaster died; then
/// CHECK_FOR_INTERRUPTS, so a terminate ends a sleeping worker at once.
fn sleep_ms(ms: i32) {
    let events = (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_POSTMASTER_DEATH) as i32;
    // SAFETY: the worker's own latch.
    let woke = unsafe {
        let woke = pg_sys::WaitLatch(pg_sys::MyLatch, events, i64::from(ms.max(1)) as _, pg_sys::PG_WAIT_EXTENSION);
        pg_sys::ResetLatch(pg_sys::MyLatch);
        woke
    };
    if woke & pg_sys::WL_POSTMASTER_DEATH as i32 != 0 {
        // SAFETY: as every process does when the postmaster is gone.
        unsafe { pg_sys::proc_exit(1) };
    }
    pgrx::check_for_interrupts!();
}

extern "C-unwind" {
    /// PostgreSQL's own SIGTERM handler of a backend (tcop/postgres.c): it sets
    /// ProcDiePending, which the next CHECK_FOR_INTERRUPTS turns into a FATAL.
    fn die(postgres_signal_arg: std::ffi::c_int);
}

/// SIGTERM as in a backend (die: the next CHECK_FOR_INTERRUPTS ends the
/// process, between two statements of a batch or during a sleep), instead of
/// the default of background workers (exit inside the signal handler).
fn handle_signals() {
    // SAFETY: signal set-up at process start, before signals are unblocked.
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(die));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
}

/// Read what the worker was told (bgw_extra), set up its signals, and connect
/// to that database as that role. None: the worker was not started by pg_migrate.
fn connect_as_told() -> Option<WorkerArgs> {
    let args = WorkerArgs::from_extra(BackgroundWorker::get_extra())?;
    handle_signals();
    BackgroundWorker::connect_worker_to_spi_by_oid(
        Some(pg_sys::Oid::from(args.database)),
        Some(pg_sys::Oid::from(args.login_role)),
    );
    Some(args)
}

/// Take a queued job, if a place is free. Under the claim lock, so that
/// workers starting together never run more than max_backfill_workers jobs.
fn claim(job_id: i64) -> bool {
    Spi::connect_mut(|client| {
        for (setting, value) in [("application_name", queue::WORKER_APPLICATION_NAME), ("search_path", "pg_catalog, pg_temp")] {
            client
                .update("SELECT pg_catalog.set_config($1, $2, false)", None, &[setting.into(), value.into()])
                .or_raise("set up the worker");
        }
        client
            .update("SELECT pg_catalog.pg_advisory_xact_lock($1, $2)", None, &[CLAIM_LOCK.0.into(), CLAIM_LOCK.1.into()])
            .or_raise("take the queue lock");
        let status: Option<String> = client
            .update(
                "SELECT status FROM migrate.backfills WHERE job_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
                None,
                &[job_id.into()],
            )
            .and_then(|rows| if rows.is_empty() { Ok(None) } else { rows.first().get_one() })
            .or_raise("read the job");
        if status.as_deref() != Some("queued") {
            return false; // rolled back, paused, cancelled, or taken by another worker
        }
        let running = running_in_background(client);
        let max_workers = MAX_WORKERS.get();
        if queue::free_places(max_workers, running, 1) == 0 {
            set_waiting_for(client, job_id, &queue::queue_reason(max_workers, running));
            return false;
        }
        client
            .update(
                "UPDATE migrate.backfills
                    SET status = 'running', run_by_pid = pg_catalog.pg_backend_pid(),
                        runner_epoch = pg_catalog.pg_postmaster_start_time(), waiting_for = NULL,
                        resumed_at = pg_catalog.clock_timestamp(), scanned_at_resume = rows_scanned,
                        updated_at = pg_catalog.clock_timestamp()
                  WHERE job_id OPERATOR(pg_catalog.=) $1",
                None,
                &[job_id.into()],
            )
            .or_raise("claim the job");
        true
    })
}

/// A job's worker: wait for the transaction that queued the job, claim it,
/// then one transaction per batch until the job is done, paused, cancelled or
/// failed; then give the next queued job its worker.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_migrate_backfill_worker(argument: pg_sys::Datum) {
    let job_id = argument.value() as i64;
    let Some(args) = connect_as_told() else {
        return;
    };
    if args.wait_for_xid != 0 {
        let waited = transaction(|| unsafe {
            // SAFETY: waits until that transaction commits or aborts (at once if it has).
            pg_sys::XactLockTableWait(
                pg_sys::TransactionId::from(args.wait_for_xid),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                pg_sys::XLTW_Oper::XLTW_None,
            )
        });
        if waited.is_err() {
            return;
        }
    }
    match transaction(|| claim(job_id)) {
        Ok(true) => {}
        Ok(false) => return,
        Err(failure) => {
            log!("pg_migrate: backfill job {job_id} could not be claimed: {} ({})", failure.message, failure.sqlstate);
            return;
        }
    }
    loop {
        let step = transaction(|| {
            Spi::get_one_with_args::<i32>("SELECT migrate.backfill_batch($1)", &[job_id.into()])
                .or_raise("run a batch")
        });
        match step {
            Ok(Some(wait_ms)) if wait_ms >= 0 => {
                if wait_ms > 0 {
                    sleep_ms(wait_ms);
                }
                pgrx::check_for_interrupts!();
            }
            Ok(_) => break,
            Err(failure) => {
                // The batch records its own failures; this is one around it
                // (the job's role was dropped, its row altered ...).
                let _ = transaction(|| record_failure(job_id, &failure));
                break;
            }
        }
    }
    let _ = transaction(|| Spi::connect_mut(|client| launch_queued(client)));
}

fn record_failure(job_id: i64, failure: &Failure) {
    Spi::connect_mut(|client| {
        client
            .update(
                "UPDATE migrate.backfills
                    SET status = 'failed', last_error = $2, last_sqlstate = $3, waiting_for = NULL,
                        updated_at = pg_catalog.clock_timestamp()
                  WHERE job_id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'running'
                    AND run_by_pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()",
                None,
                &[job_id.into(), failure.message.clone().into(), failure.sqlstate.clone().into()],
            )
            .or_raise("record the failure");
    })
}

/// The launcher (preload only): once the server accepts connections, start a
/// restarter in every database that allows connections. It connects to
/// `postgres` only to read pg_database.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_migrate_backfill_launcher(_argument: pg_sys::Datum) {
    handle_signals();
    BackgroundWorker::connect_worker_to_spi(Some("postgres"), None);
    let databases = transaction(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT oid::pg_catalog.int8 FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate",
                    None,
                    &[],
                )
                .or_raise("list the databases")
                .filter_map(|row| row.get::<i64>(1).ok().flatten())
                .collect::<Vec<i64>>()
        })
    });
    let Ok(databases) = databases else { return };
    for database in databases {
        let args = WorkerArgs {
            database: u32::try_from(database).unwrap_or(0),
            login_role: pg_sys::BOOTSTRAP_SUPERUSERID,
            wait_for_xid: 0,
        };
        let registered = BackgroundWorkerBuilder::new("pg_migrate backfill restarter")
            .set_type("pg_migrate launcher")
            .set_library(LIBRARY)
            .set_function("pg_migrate_backfill_restarter")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .set_extra(&args.to_extra())
            .load_dynamic()
            .is_ok();
        if !registered {
            log!("pg_migrate: no free background worker slot to restart the backfills of database {database}");
        }
    }
}

/// In one database: the background jobs whose worker is gone (the server
/// stopped or crashed under them) go back to the queue, ahead of later jobs,
/// and the queue is given its workers. Nothing happens in a database without
/// pg_migrate 0.2.0 or later.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_migrate_backfill_restarter(_argument: pg_sys::Datum) {
    if connect_as_told().is_none() {
        return;
    }
    let outcome = transaction(|| {
        Spi::connect_mut(|client| {
            client
                .update("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)", None, &[])
                .or_raise("set up the restarter");
            let installed: bool = client
                .select(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                                     WHERE attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('migrate.backfills')
                                       AND attname OPERATOR(pg_catalog.=) 'runs_in')",
                    None,
                    &[],
                )
                .and_then(|rows| rows.first().get_one())
                .or_raise("look for pg_migrate")
                .unwrap_or(false);
            if !installed {
                return 0;
            }
            let requeued = client
                .update(
                    "UPDATE migrate.backfills b
                        SET status = 'queued', run_by_pid = NULL, runner_epoch = NULL,
                            queued_at = COALESCE(b.queued_at, b.started_at),
                            waiting_for = 'queue: restarted after the server restarted'
                      WHERE b.status OPERATOR(pg_catalog.=) 'running' AND b.runs_in OPERATOR(pg_catalog.=) 'background'
                        AND NOT migrate.backfill_runner_alive(b.runs_in, b.run_by_pid, b.runner_epoch)
                     RETURNING b.job_id",
                    None,
                    &[],
                )
                .or_raise("queue the interrupted jobs")
                .len();
            launch_queued(client);
            requeued
        })
    });
    match outcome {
        Ok(0) => {}
        Ok(requeued) => log!("pg_migrate: {requeued} interrupted background backfill(s) queued again"),
        Err(failure) => log!("pg_migrate: the backfills could not be restarted: {} ({})", failure.message, failure.sqlstate),
    }
}
