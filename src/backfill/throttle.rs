//! The health throttles, as pure decisions: given what the server looks like
//! before a batch, whether the batch waits, for how long, and what the job says
//! it waits for. Each throttle has its own counter in migrate.backfills. No pgrx.

use super::options::BackfillOptions;

/// What the batch looked at before it started. `None`: not measured (the
/// throttle is off, or there is nothing to measure yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// The largest replay lag of a standby, in ms.
    pub replication_lag_ms: Option<f64>,
    /// WAL written since the job's previous batch started, and the seconds since.
    pub wal_since_last_batch: Option<(i64, f64)>,
    /// The replication slot that retains the most WAL, and how many bytes.
    pub slot_lag: Option<(String, i64)>,
    /// Whether a VACUUM works on the table.
    pub vacuuming: bool,
}

/// Which throttle holds a batch back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    ReplicationLag,
    WalRate,
    SlotLag,
    Vacuum,
}

impl Throttle {
    /// The job's counter of this throttle's waits.
    pub fn counter(self) -> &'static str {
        match self {
            Throttle::ReplicationLag => "lag_waits",
            Throttle::WalRate => "wal_waits",
            Throttle::SlotLag => "slot_waits",
            Throttle::Vacuum => "vacuum_waits",
        }
    }
}

/// A batch held back: by what, how long to wait before looking again, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub throttle: Throttle,
    pub wait_ms: i32,
    pub reason: String,
}

/// The WAL rate over a window, in bytes per second (None for an empty window).
pub fn wal_rate(bytes: i64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| bytes.max(0) as f64 / seconds)
}

/// The first throttle that holds the batch back, if any.
pub fn hold(options: &BackfillOptions, health: &Health) -> Option<Hold> {
    if let (Some(limit), Some(lag)) = (options.max_replication_lag_ms, health.replication_lag_ms) {
        if lag > f64::from(limit) {
            return Some(Hold {
                throttle: Throttle::ReplicationLag,
                wait_ms: limit.clamp(50, 1000),
                reason: format!("replication lag: a standby replays {lag:.0} ms behind (limit {limit} ms)"),
            });
        }
    }
    if let (Some(limit), Some((bytes, seconds))) = (options.max_wal_rate, health.wal_since_last_batch) {
        if let Some(rate) = wal_rate(bytes, seconds).filter(|rate| *rate > limit as f64) {
            // Long enough for the window's average to fall to the limit.
            let needed_s = bytes as f64 / limit as f64 - seconds;
            return Some(Hold {
                throttle: Throttle::WalRate,
                wait_ms: ((needed_s * 1000.0).round() as i64).clamp(50, 1000) as i32,
                reason: format!("WAL rate: {rate:.0} bytes/s since the last batch (limit {limit} bytes/s)"),
            });
        }
    }
    if let (Some(limit), Some((slot, bytes))) = (options.max_slot_lag, &health.slot_lag) {
        if *bytes > limit {
            return Some(Hold {
                throttle: Throttle::SlotLag,
                wait_ms: 1000,
                reason: format!("slot lag: replication slot {slot} retains {bytes} bytes of WAL (limit {limit} bytes)"),
            });
        }
    }
    if options.pause_during_autovacuum && health.vacuuming {
        return Some(Hold {
            throttle: Throttle::Vacuum,
            wait_ms: 1000,
            reason: "vacuum: a VACUUM works on the table (pause_during_autovacuum)".into(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BackfillOptions {
        BackfillOptions {
            max_replication_lag_ms: Some(500),
            max_wal_rate: Some(1_000_000),
            max_slot_lag: Some(10_000_000),
            pause_during_autovacuum: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_healthy_server_holds_nothing_back() {
        let healthy = Health {
            replication_lag_ms: Some(100.0),
            wal_since_last_batch: Some((500_000, 1.0)),
            slot_lag: Some(("sub".into(), 1_000)),
            vacuuming: false,
        };
        assert_eq!(hold(&options(), &healthy), None);
        assert_eq!(hold(&options(), &Health::default()), None, "nothing measured yet");
    }

    #[test]
    fn each_throttle_holds_back_with_its_counter_and_reason() {
        let lag = hold(&options(), &Health { replication_lag_ms: Some(900.0), ..Default::default() }).unwrap();
        assert_eq!((lag.throttle.counter(), lag.wait_ms), ("lag_waits", 500));
        assert!(lag.reason.starts_with("replication lag: a standby replays 900 ms"));

        let wal = hold(&options(), &Health { wal_since_last_batch: Some((3_000_000, 1.0)), ..Default::default() }).unwrap();
        assert_eq!(wal.throttle.counter(), "wal_waits");
        assert_eq!(wal.wait_ms, 1000, "3 MB in 1 s at 1 MB/s: wait 2 s, in steps of at most 1 s");
        assert!(wal.reason.contains("3000000 bytes/s") && wal.reason.contains("limit 1000000"));
        let nearly = hold(&options(), &Health { wal_since_last_batch: Some((1_100_000, 1.0)), ..Default::default() }).unwrap();
        assert_eq!(nearly.wait_ms, 100);

        let slot = hold(&options(), &Health { slot_lag: Some(("sub".into(), 20_000_000)), ..Default::default() }).unwrap();
        assert_eq!(slot.throttle.counter(), "slot_waits");
        assert!(slot.reason.contains("slot sub retains 20000000 bytes"));

        let vacuum = hold(&options(), &Health { vacuuming: true, ..Default::default() }).unwrap();
        assert_eq!(vacuum.throttle, Throttle::Vacuum);
        assert_eq!(vacuum.throttle.counter(), "vacuum_waits");
    }

    #[test]
    fn throttles_that_are_off_hold_nothing_back() {
        let sick = Health {
            replication_lag_ms: Some(1e9),
            wal_since_last_batch: Some((1 << 40, 1.0)),
            slot_lag: Some(("s".into(), 1 << 40)),
            vacuuming: true,
        };
        assert_eq!(hold(&BackfillOptions::default(), &sick), None);
        assert_eq!(wal_rate(100, 0.0), None);
        assert_eq!(wal_rate(-5, 1.0), Some(0.0));
    }
}
