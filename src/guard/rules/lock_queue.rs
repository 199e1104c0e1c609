//! lock_queue: the statement would queue behind a transaction that holds a
//! conflicting lock on the table and has been open longer than the threshold.
//! Every later query on the table would then pile up behind this statement.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Some(blocker) = ctx.blockers.iter().max_by_key(|b| b.transaction_age_ms) else { return Vec::new() };
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
            "pid {} holds {} on {} (query started {}: {}). Until it ends, this statement waits, and every later \
             query on {} waits behind it.",
            blocker.pid, blocker.mode, table.name, blocker.query_start, blocker.query, table.name
        ),
        format!(
            "Retry when pid {pid} is done, or end it: SELECT pg_cancel_backend({pid}); \
             and set lock_timeout so DDL gives up instead of queueing (SET lock_timeout = '2s').",
            pid = blocker.pid
        ),
    )]
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

    #[test]
    fn names_the_oldest_blocker() {
        let blocker = |pid, age| Blocker {
            pid, table: "public.users".into(), mode: "AccessShareLock".into(), transaction_age_ms: age,
            query_start: "2026-11-22 10:00:00".into(), query: "SELECT ...".into(),
        };
        let c = Context { blockers: vec![blocker(11, 90_000), blocker(12, 600_000)], ..ctx() };
        let found = check(&alter(table("public.users", 10), vec![Action::Other]), &c);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("pid 12, whose transaction has been open for 10 min"), "{}", found[0].message);
        assert!(check(&alter(table("public.users", 10), vec![Action::Other]), &ctx()).is_empty());
    }
}
