//! Batched backfills as server-side procedures that commit after every batch.
//!
//! Pure parts: `planner` (batch SQL, adaptive size, backoff, progress text),
//! `shape` (is the statement that runs the batch that was built?), `options`
//! (a job's options as one typed struct). `procedure` holds the SQL functions,
//! one batch at a time; `backfill.sql` holds the PL/pgSQL procedures that loop
//! and COMMIT. `worker` runs the same batches in background workers
//! (migrate_backfill_start), with the queue's pure decisions in `queue`.

pub mod options;
pub mod planner;
mod procedure;
pub mod queue;
pub mod shape;
pub mod throttle;
pub mod worker;

pgrx::extension_sql_file!(
    "backfill.sql",
    name = "backfill",
    requires = [
        procedure::backfill_check_context,
        procedure::prepare_job,
        procedure::backfill_resume_prepare,
        procedure::backfill_batch,
        procedure::failed_job_report,
        procedure::not_null_check_name,
        procedure::set_not_null_step,
        worker::start_job,
        worker::backfill_launch_queued,
        worker::backfill_stalled_reason,
    ],
);
