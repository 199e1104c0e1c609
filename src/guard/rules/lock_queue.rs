//! lock_queue: the statement would queue behind a transaction that holds a
//! conflicting lock on the table and has been open longer than the threshold.
//! Every later query on the table would then pile up behind this statement.
//!
//! The HINT ends the holder the way that works for its state: a session idle
//! in a transaction runs no query for pg_cancel_backend to cancel, so it gets
//! pg_terminate_backend. A younger holder does not make the rule fire; if the
//! statement then fails on lock_timeout (55P03), [`waited_behind`] names it.

use super::{Finding, Rule};
use crate::guard::facts::{Blocker, Context, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Some(blocker) = ctx
        .blockers
        .iter()
        .filter(|b| b.transaction_age_ms >= ctx.thresholds.lock_queue_age_ms)
        .max_by_key(|b| b.transaction_age_ms)
    else {
        return Vec::new();
    };
    let Some((table, level)) = statement.locks().into_iter().find(|(t, _)| t.name == blocker.table) else {
        return Vec::new();
    };
    vec![Finding::new(
        Rule::LockQueue,
        format!(
            "{} on {} would wait behind pid {}, whose transaction has been open for {}",
            level.name(),
            table.name,
            blocker.pid,
            age_text(blocker.transaction_age_ms)
        ),
        format!(
            "pid {} ({}) holds {} on {} (query started {}: {}). Until it ends, this statement waits, and every later \
             query on {} waits behind it.",
            blocker.pid, blocker.state, blocker.mode, table.name, blocker.query_start, blocker.query_text(), table.name
        ),
        format!(
            "Retry when pid {} is done, or end it: {} \
             and set lock_timeout so DDL gives up instead of queueing (SET lock_timeout = '2s').",
            blocker.pid,
            blocker.ending_call()
        ),
    )]
}

/// DETAIL and HINT for a statement that failed on lock_timeout: the sessions
/// that held a conflicting lock when it started to wait, oldest first (at most
/// three named). None when nobody did.
pub fn waited_behind(statement: &Statement, blockers: &[Blocker]) -> Option<(String, String)> {
    let mut blockers: Vec<&Blocker> = blockers.iter().collect();
    blockers.sort_by_key(|b| std::cmp::Reverse(b.transaction_age_ms));
    let oldest = blockers.first()?;
    let level = statement
        .locks()
        .into_iter()
        .find(|(t, _)| t.name == oldest.table)
        .map_or("its lock", |(_, level)| level.name());
    let named: Vec<String> = blockers
        .iter()
        .take(3)
        .map(|b| {
            format!(
                "pid {} ({}, transaction open for {}) held {} on {}, query started {}: {}",
                b.pid,
                b.state,
                age_text(b.transaction_age_ms),
                b.mode,
                b.table,
                b.query_start,
                b.query_text()
            )
        })
        .collect();
    let more = match blockers.len() {
        n if n > 3 => format!(" (and {} more)", n - 3),
        _ => String::new(),
    };
    let detail = format!(
        "It waited for {level} on {} behind: {}{more}.",
        oldest.table,
        named.join("; ")
    );
    let hint = format!("Retry when pid {} is done, or end it: {}", oldest.pid, oldest.ending_call());
    Some((detail, hint))
}

fn age_text(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::{Action, Blocker, Context};
    use crate::guard::rules::test_support::*;

    fn blocker(pid: i32, age: i64, state: &str) -> Blocker {
        Blocker {
            pid, table: "public.users".into(), mode: "AccessShareLock".into(), state: state.into(), transaction_age_ms: age,
            query_start: "2026-11-22 10:00:00".into(), query: "SELECT ...".into(),
        }
    }

    #[test]
    fn names_the_oldest_blocker() {
        let c = Context { blockers: vec![blocker(11, 90_000, "active"), blocker(12, 600_000, "active")], ..ctx() };
        let found = check(&alter(table("public.users", 10), vec![Action::Other]), &c);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("pid 12, whose transaction has been open for 10 min"), "{}", found[0].message);
        assert!(found[0].hint.contains("SELECT pg_cancel_backend(12);"), "{}", found[0].hint);
        assert!(check(&alter(table("public.users", 10), vec![Action::Other]), &ctx()).is_empty());
    }

    #[test]
    fn young_holders_do_not_fire() {
        let c = Context { blockers: vec![blocker(11, 5_000, "active")], ..ctx() };
        assert!(check(&alter(table("public.users", 10), vec![Action::Other]), &c).is_empty());
    }

    #[test]
    fn an_idle_transaction_is_terminated_not_cancelled() {
        for state in ["idle in transaction", "idle in transaction (aborted)"] {
            let c = Context { blockers: vec![blocker(12, 600_000, state)], ..ctx() };
            let found = check(&alter(table("public.users", 10), vec![Action::Other]), &c);
            assert!(found[0].hint.contains("SELECT pg_terminate_backend(12);"), "{}", found[0].hint);
            assert!(!found[0].hint.contains("pg_cancel_backend"), "{}", found[0].hint);
            assert!(found[0].detail.contains(&format!("pid 12 ({state})")), "{}", found[0].detail);
        }
    }

    #[test]
    fn a_lock_timeout_names_who_it_waited_behind() {
        let statement = alter(table("public.users", 10), vec![Action::Other]);
        assert_eq!(waited_behind(&statement, &[]), None);
        let long = Blocker { query: format!("SELECT   {}\n FROM users", "x, ".repeat(60)), ..blocker(7, 3_000, "active") };
        let (detail, hint) = waited_behind(&statement, &[long, blocker(8, 4_000, "idle in transaction")]).unwrap();
        assert!(detail.starts_with("It waited for ACCESS EXCLUSIVE on public.users behind: pid 8 (idle in transaction, \
                                    transaction open for 4 s) held AccessShareLock on public.users, query started 2026-11-22 10:00:00: SELECT ...; pid 7"),
                "{detail}");
        assert!(detail.contains("SELECT x, x,") && detail.ends_with("....") && !detail.contains('\n'), "{detail}");
        assert_eq!(hint, "Retry when pid 8 is done, or end it: SELECT pg_terminate_backend(8);");
        let many: Vec<Blocker> = (1..=5).map(|pid| blocker(pid, i64::from(pid) * 1000, "active")).collect();
        let (detail, _) = waited_behind(&statement, &many).unwrap();
        assert!(detail.ends_with("(and 2 more)."), "{detail}");
    }
}
