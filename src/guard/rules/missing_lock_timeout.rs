//! missing_lock_timeout: DDL that takes ACCESS EXCLUSIVE on a table with rows
//! while lock_timeout is 0. Waiting for that lock queues every later query on
//! the table behind it, for as long as the wait lasts.

use super::{Finding, Rule};
use crate::guard::facts::{Context, LockLevel, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    if ctx.lock_timeout_ms > 0 {
        return Vec::new();
    }
    let Some((table, _)) = statement
        .locks()
        .into_iter()
        .find(|(t, level)| *level == LockLevel::AccessExclusive && t.shared() && t.has_rows())
    else {
        return Vec::new();
    };
    vec![Finding::new(
        Rule::MissingLockTimeout,
        format!("ACCESS EXCLUSIVE on {} with no lock_timeout", table.described()),
        format!(
            "If another transaction holds any lock on {}, this statement waits for it with no limit, \
             and every later query on the table queues behind it.",
            table.name
        ),
        "SET lock_timeout = '2s';  (or SET LOCAL inside a transaction), then retry on timeout.".into(),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::{Action, Context};
    use crate::guard::rules::test_support::*;

    #[test]
    fn fires_only_without_lock_timeout() {
        let stmt = alter(table("public.users", 10), vec![Action::Other]);
        assert!(check(&stmt, &ctx()).is_empty());
        let no_timeout = Context { lock_timeout_ms: 0, ..ctx() };
        assert_eq!(check(&stmt, &no_timeout).len(), 1);
        assert!(check(&alter(new_table("public.users"), vec![Action::Other]), &no_timeout).is_empty());
        let weak = Statement::CreateIndex { table: table("public.users", 10), index_name: None, concurrent: true, unique: false, only: false, partitions: None };
        assert!(check(&weak, &no_timeout).is_empty());
    }
}
