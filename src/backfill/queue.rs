//! Pure decisions for background backfills: what a worker is told when it is
//! started, how many queued jobs may start, and the words the status view and
//! the job row use for what a job waits for. No pgrx here.

/// The `application_name` of every backfill worker: the status view tells a
/// live worker from another process that took its pid by it.
pub const WORKER_APPLICATION_NAME: &str = "pg_migrate backfill";

/// What a worker needs before it can read any table: which database to connect
/// to, as which (login) role, and which transaction to wait for first (the one
/// that queued the job: until it commits, the job's row is not visible, and if
/// it rolls back there is no job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerArgs {
    pub database: u32,
    pub login_role: u32,
    pub wait_for_xid: u32,
}

impl WorkerArgs {
    /// The worker's `bgw_extra` text (at most 128 bytes; three u32 fit easily).
    pub fn to_extra(self) -> String {
        format!("{} {} {}", self.database, self.login_role, self.wait_for_xid)
    }

    pub fn from_extra(extra: &str) -> Option<WorkerArgs> {
        let mut parts = extra.split(' ').map(|part| part.parse::<u32>().ok());
        let args = WorkerArgs {
            database: parts.next()??,
            login_role: parts.next()??,
            wait_for_xid: parts.next()??,
        };
        if parts.next().is_some() || args.database == 0 || args.login_role == 0 {
            return None;
        }
        Some(args)
    }
}

/// How many of the queued jobs may be given a worker now: the free places
/// under `max_workers`, no more than are queued.
pub fn free_places(max_workers: i32, running: i64, queued: usize) -> usize {
    let free = i64::from(max_workers.max(0)) - running.max(0);
    usize::try_from(free.max(0)).unwrap_or(0).min(queued)
}

/// Why a queued job waits for the others.
pub fn queue_reason(max_workers: i32, running: i64) -> String {
    format!(
        "queue: {running} background job{} running, pg_migrate.max_backfill_workers = {max_workers}",
        if running == 1 { "" } else { "s" }
    )
}

/// Why a queued job that had its turn has no worker yet.
pub fn no_worker_slot_reason(max_worker_processes: i32) -> String {
    format!(
        "worker slot: no free background worker slot (max_worker_processes = {max_worker_processes}); \
         the job starts when one is free"
    )
}

/// Why a job that is still marked running shows as stalled: its process is
/// gone (the session ended, the worker was killed, the server restarted).
pub fn stalled_reason(runs_in: &str, pid: Option<i32>, preloaded: bool) -> String {
    let pid = pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default();
    match runs_in {
        "background" if preloaded => format!(
            "its background worker{pid} is gone; the launcher starts it again after a restart, \
             or resume it: CALL migrate_backfill_resume(job_name)"
        ),
        "background" => format!(
            "its background worker{pid} is gone and pg_migrate is not in shared_preload_libraries, \
             so nothing restarts it: CALL migrate_backfill_resume(job_name)"
        ),
        _ => format!("the session that ran it{pid} is gone: CALL migrate_backfill_resume(job_name)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_args_round_trip_and_refuse_anything_else() {
        let args = WorkerArgs { database: 16384, login_role: 10, wait_for_xid: 742 };
        assert_eq!(WorkerArgs::from_extra(&args.to_extra()), Some(args));
        assert!(args.to_extra().len() < 128);
        for bad in ["", "1 2", "1 2 3 4", "0 10 5", "1 0 5", "a b c", "1  2 3", "-1 2 3"] {
            assert_eq!(WorkerArgs::from_extra(bad), None, "{bad:?}");
        }
        assert_eq!(WorkerArgs::from_extra("5 6 0").map(|a| a.wait_for_xid), Some(0));
    }

    #[test]
    fn free_places_never_exceed_the_limit_or_the_queue() {
        assert_eq!(free_places(2, 0, 5), 2);
        assert_eq!(free_places(2, 1, 5), 1);
        assert_eq!(free_places(2, 2, 5), 0);
        assert_eq!(free_places(2, 3, 5), 0, "more running than allowed (the limit was lowered)");
        assert_eq!(free_places(4, 0, 1), 1);
        assert_eq!(free_places(0, 0, 3), 0);
        assert_eq!(free_places(-1, 0, 3), 0);
    }

    /// The status view and the runner check (SQL) know workers by this name.
    #[test]
    fn the_sql_knows_workers_by_their_application_name() {
        let sql = include_str!("backfill.sql");
        assert!(sql.contains(&format!("a.application_name OPERATOR(pg_catalog.=) '{WORKER_APPLICATION_NAME}'")));
    }

    #[test]
    fn reasons_say_what_to_do() {
        assert_eq!(queue_reason(2, 1), "queue: 1 background job running, pg_migrate.max_backfill_workers = 2");
        assert!(queue_reason(2, 2).contains("2 background jobs running"));
        assert!(no_worker_slot_reason(8).contains("max_worker_processes = 8"));
        assert!(stalled_reason("background", Some(42), false).contains("not in shared_preload_libraries"));
        assert!(stalled_reason("background", Some(42), true).contains("launcher"));
        assert!(stalled_reason("foreground", None, false).starts_with("the session that ran it is gone"));
    }
}
