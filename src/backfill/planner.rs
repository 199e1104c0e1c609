//! Pure decisions for batched backfills: the keyset SQL of a batch, the adaptive
//! batch size, retry backoff and progress text. No pgrx here; identifiers arrive
//! already quoted by the server (regclass output, quote_ident).

use std::ops::Range;

use crate::format::thousands;

/// One column of the key the batches walk, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// Quoted identifier, e.g. `id` or `"Order Id"`.
    pub name: String,
    /// SQL type, e.g. `bigint`, `uuid`, `character varying(20)`.
    pub type_sql: String,
}

fn key_list(keys: &[KeyColumn]) -> String {
    keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// `($1[1]::bigint, $1[2]::text)`: a key passed as text[] cast back to its types.
fn key_param(keys: &[KeyColumn], param: usize) -> String {
    let parts: Vec<String> =
        keys.iter().enumerate().map(|(i, k)| format!("${param}[{}]::{}", i + 1, k.type_sql)).collect();
    format!("({})", parts.join(", "))
}

/// `(a, b) OPERATOR(pg_catalog.>) ($1[1]::int, $1[2]::uuid)`: row comparison keeps
/// composite keys in index order, so the primary-key index serves it as a range.
/// The operator is qualified: the UPDATE runs under the job's search_path.
fn key_bound(keys: &[KeyColumn], operator: &str, param: usize) -> String {
    format!("({}) OPERATOR(pg_catalog.{operator}) {}", key_list(keys), key_param(keys, param))
}

/// Keyset batches: `key > last ORDER BY key LIMIT n`. The first batch has no
/// `last`. Each statement is built for the case at hand (rather than
/// `$1 IS NULL OR ...`) so the planner can always use the index.
///
/// The key that ends this batch: `$1` = last key (text[], when `after`), then the
/// batch size. No row means fewer keys than a batch remain.
pub fn batch_end_sql(table: &str, keys: &[KeyColumn], after: bool) -> String {
    let as_text: Vec<String> = keys.iter().map(|k| format!("{}::pg_catalog.text", k.name)).collect();
    let (filter, size) = if after { (format!(" WHERE {}", key_bound(keys, ">", 1)), "$2") } else { (String::new(), "$1") };
    format!(
        "SELECT ARRAY[{}] FROM {table}{filter} ORDER BY {} OFFSET {size} OPERATOR(pg_catalog.-) 1 LIMIT 1",
        as_text.join(", "),
        key_list(keys)
    )
}

/// One of the keyset bounds pg_migrate puts into a batch's UPDATE: where its
/// operator stands in the statement text, and which operator it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub at: usize,
    pub operator: &'static str,
}

/// A batch's UPDATE and where each part of it stands, so that the parse tree of
/// exactly this text can be checked (see `shape`): the SET list and the
/// condition must stay inside their own spans, the bounds where they were put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchUpdate {
    pub sql: String,
    pub set_span: Range<usize>,
    pub condition_span: Option<Range<usize>>,
    pub bounds: Vec<Bound>,
}

/// The batch's UPDATE: keys after `$1` (when `after`) up to and including the
/// batch end (when `end`, else to the end of the table), rows matching `condition`.
pub fn update_sql(
    table: &str,
    keys: &[KeyColumn],
    set_list: &str,
    condition: Option<&str>,
    after: bool,
    end: bool,
) -> BatchUpdate {
    let mut sql = format!("UPDATE {table} SET ");
    let set_span = sql.len()..sql.len() + set_list.len();
    sql.push_str(set_list);
    let mut bounds = Vec::new();
    let mut wanted: Vec<(&'static str, usize)> = Vec::new();
    if after {
        wanted.push((">", 1));
    }
    if end {
        wanted.push(("<=", if after { 2 } else { 1 }));
    }
    let mut joiner = " WHERE ";
    for (operator, param) in wanted {
        sql.push_str(joiner);
        joiner = " AND ";
        let text = key_bound(keys, operator, param);
        bounds.push(Bound { at: sql.len() + text.find("OPERATOR").unwrap_or(0), operator });
        sql.push_str(&text);
    }
    let mut condition_span = None;
    if let Some(condition) = condition {
        sql.push_str(joiner);
        sql.push('(');
        condition_span = Some(sql.len()..sql.len() + condition.len());
        sql.push_str(condition);
        sql.push(')');
    }
    BatchUpdate { sql, set_span, condition_span, bounds }
}

/// How many keys the final batch covered: `$1` = last key (when `after`).
pub fn remaining_sql(table: &str, keys: &[KeyColumn], after: bool) -> String {
    if after {
        format!("SELECT pg_catalog.count(*) FROM {table} WHERE {}", key_bound(keys, ">", 1))
    } else {
        format!("SELECT pg_catalog.count(*) FROM {table}")
    }
}

/// The column name a quoted identifier stands for (quote_ident's inverse).
pub fn unquote_identifier(quoted: &str) -> String {
    match quoted.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => quoted.to_string(),
    }
}

/// Limits of the adaptive batch size.
pub const MIN_BATCH: i32 = 100;
pub const MAX_BATCH: i32 = 100_000;

/// Next batch size for a target duration, as GitLab's batch optimizer does:
/// scale by target/actual, but never more than double or halve in one step.
pub fn next_batch_size(current: i32, target_ms: Option<i32>, actual_ms: f64) -> i32 {
    let Some(target) = target_ms.filter(|t| *t > 0) else { return current };
    let current = f64::from(current.max(1));
    let scaled = if actual_ms <= 0.0 { current * 2.0 } else { current * f64::from(target) / actual_ms };
    let bounded = scaled.clamp(current / 2.0, current * 2.0).round();
    (bounded as i32).clamp(MIN_BATCH, MAX_BATCH)
}

/// How far past `rows_per_batch` the keys a batch walks may grow on a sparse table.
pub const KEY_WINDOW_FACTOR: i32 = 16;

/// Keys the next batch walks, when no target duration is set and a condition
/// picks the rows: on a sparse table, walk more keys (reads) so that each batch
/// still updates about `rows_per_batch` rows (writes, row locks, WAL). Grows at
/// most twofold per batch, up to KEY_WINDOW_FACTOR x rows_per_batch; shrinks
/// at once when a batch updated more than rows_per_batch.
pub fn next_key_window(window: i32, rows_per_batch: i32, updated: i64) -> i32 {
    let window = f64::from(window.max(1));
    let per_batch = f64::from(rows_per_batch.max(1));
    let wanted = if updated <= 0 { window * 2.0 } else { window * per_batch / updated as f64 };
    let largest = (per_batch * f64::from(KEY_WINDOW_FACTOR)).min(f64::from(MAX_BATCH));
    wanted.min(window * 2.0).clamp(per_batch.min(largest), largest).round() as i32
}

/// Backoff before retry `attempt` (1-based) after a lock timeout, deadlock or
/// serialization failure: 100 ms, 200 ms, 400 ms ... capped at 5 s.
pub fn retry_backoff_ms(attempt: u32) -> u64 {
    let exponent = attempt.saturating_sub(1).min(16);
    (100u64 << exponent).min(5_000)
}

/// SQLSTATEs worth retrying: lock_not_available, deadlock_detected, serialization_failure.
pub fn is_retryable(sqlstate: &str) -> bool {
    matches!(sqlstate, "55P03" | "40P01" | "40001")
}

/// "1,200,000 of ~5,000,000 keys (24.0%), 40,000 keys/s, about 1m35s left".
/// The rate is this run's (`scanned_this_run` over `elapsed_s`), so a resumed
/// job does not count the keys of earlier runs against this run's time.
pub fn progress_text(scanned: i64, scanned_this_run: i64, estimated_total: Option<i64>, elapsed_s: f64) -> String {
    let rate = if elapsed_s > 0.0 { scanned_this_run.max(0) as f64 / elapsed_s } else { 0.0 };
    let mut text = match estimated_total.filter(|t| *t > 0) {
        Some(total) => {
            let percent = (100.0 * scanned as f64 / total as f64).min(100.0);
            format!("{} of ~{} keys ({percent:.1}%)", thousands(scanned), thousands(total))
        }
        None => format!("{} keys", thousands(scanned)),
    };
    if rate >= 1.0 {
        text.push_str(&format!(", {} keys/s", thousands(rate as i64)));
        if let Some(left) = estimated_total.map(|total| total - scanned).filter(|left| *left > 0) {
            text.push_str(&format!(", about {} left", duration_text((left as f64 / rate).round() as u64)));
        }
    }
    text
}


fn duration_text(seconds: u64) -> String {
    match seconds {
        0 => "<1s".to_string(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<KeyColumn> {
        vec![
            KeyColumn { name: "tenant".into(), type_sql: "integer".into() },
            KeyColumn { name: "\"Order Id\"".into(), type_sql: "uuid".into() },
        ]
    }

    #[test]
    fn composite_keys_use_row_comparison_in_index_order() {
        assert_eq!(
            batch_end_sql("public.orders", &keys(), true),
            "SELECT ARRAY[tenant::pg_catalog.text, \"Order Id\"::pg_catalog.text] FROM public.orders \
             WHERE (tenant, \"Order Id\") OPERATOR(pg_catalog.>) ($1[1]::integer, $1[2]::uuid) \
             ORDER BY tenant, \"Order Id\" OFFSET $2 OPERATOR(pg_catalog.-) 1 LIMIT 1"
        );
        let update = update_sql("public.orders", &keys(), "state = 'x'", Some("state IS NULL"), true, true);
        assert_eq!(
            update.sql,
            "UPDATE public.orders SET state = 'x' \
             WHERE (tenant, \"Order Id\") OPERATOR(pg_catalog.>) ($1[1]::integer, $1[2]::uuid) \
             AND (tenant, \"Order Id\") OPERATOR(pg_catalog.<=) ($2[1]::integer, $2[2]::uuid) AND (state IS NULL)"
        );
        assert_eq!(&update.sql[update.set_span.clone()], "state = 'x'");
        assert_eq!(&update.sql[update.condition_span.clone().unwrap()], "state IS NULL");
        let operators: Vec<&str> = update.bounds.iter().map(|b| &update.sql[b.at..b.at + 24]).collect();
        assert_eq!(operators, ["OPERATOR(pg_catalog.>) (", "OPERATOR(pg_catalog.<=) "]);
    }

    #[test]
    fn first_and_last_batches_drop_the_missing_bound() {
        let one = vec![KeyColumn { name: "id".into(), type_sql: "bigint".into() }];
        assert_eq!(
            batch_end_sql("t", &one, false),
            "SELECT ARRAY[id::pg_catalog.text] FROM t ORDER BY id OFFSET $1 OPERATOR(pg_catalog.-) 1 LIMIT 1"
        );
        assert_eq!(update_sql("t", &one, "n = n + 1", None, false, true).sql,
                   "UPDATE t SET n = n + 1 WHERE (id) OPERATOR(pg_catalog.<=) ($1[1]::bigint)");
        assert_eq!(update_sql("t", &one, "n = n + 1", None, true, false).sql,
                   "UPDATE t SET n = n + 1 WHERE (id) OPERATOR(pg_catalog.>) ($1[1]::bigint)");
        let only_condition = update_sql("t", &one, "n = 1", Some("n IS NULL"), false, false);
        assert_eq!(only_condition.sql, "UPDATE t SET n = 1 WHERE (n IS NULL)");
        assert!(only_condition.bounds.is_empty());
        assert_eq!(remaining_sql("t", &one, true),
                   "SELECT pg_catalog.count(*) FROM t WHERE (id) OPERATOR(pg_catalog.>) ($1[1]::bigint)");
        assert_eq!(remaining_sql("t", &one, false), "SELECT pg_catalog.count(*) FROM t");
    }

    #[test]
    fn quoted_identifiers_unquote() {
        assert_eq!(unquote_identifier("id"), "id");
        assert_eq!(unquote_identifier("\"Order Id\""), "Order Id");
        assert_eq!(unquote_identifier("\"a\"\"b\""), "a\"b");
    }

    #[test]
    fn batch_size_follows_the_target_within_bounds() {
        assert_eq!(next_batch_size(1000, None, 5000.0), 1000);
        assert_eq!(next_batch_size(1000, Some(100), 50.0), 2000);
        assert_eq!(next_batch_size(1000, Some(100), 10.0), 2000, "at most doubles");
        assert_eq!(next_batch_size(1000, Some(100), 400.0), 500, "at most halves");
        assert_eq!(next_batch_size(1000, Some(100), 125.0), 800);
        assert_eq!(next_batch_size(150, Some(10), 1000.0), MIN_BATCH);
        assert_eq!(next_batch_size(90_000, Some(100), 1.0), MAX_BATCH);
        assert_eq!(next_batch_size(1000, Some(100), 0.0), 2000);
    }

    #[test]
    fn key_window_follows_density_within_bounds() {
        assert_eq!(next_key_window(1000, 1000, 1000), 1000, "dense: one key, one row");
        assert_eq!(next_key_window(1000, 1000, 100), 2000, "sparse: grows, at most twofold");
        assert_eq!(next_key_window(1000, 1000, 0), 2000, "nothing matched: grows");
        assert_eq!(next_key_window(16_000, 1000, 10), 16_000, "capped at 16x rows_per_batch");
        assert_eq!(next_key_window(16_000, 1000, 16_000), 1000, "dense again: back at once");
        assert_eq!(next_key_window(4000, 1000, 2000), 2000);
        assert_eq!(next_key_window(80_000, 10_000, 1), 100_000, "never past MAX_BATCH");
        assert_eq!(next_key_window(100_000, 50_000, 1), 100_000);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(retry_backoff_ms(1), 100);
        assert_eq!(retry_backoff_ms(2), 200);
        assert_eq!(retry_backoff_ms(4), 800);
        assert_eq!(retry_backoff_ms(30), 5_000);
    }

    #[test]
    fn retries_only_transient_failures() {
        assert!(is_retryable("55P03") && is_retryable("40P01") && is_retryable("40001"));
        assert!(!is_retryable("57014"), "a cancel is the user's decision");
        assert!(!is_retryable("22012"));
    }

    #[test]
    fn progress_reads_well() {
        assert_eq!(progress_text(1_200_000, 1_200_000, Some(5_000_000), 30.0),
                   "1,200,000 of ~5,000,000 keys (24.0%), 40,000 keys/s, about 1m35s left");
        assert_eq!(progress_text(1_200_000, 200_000, Some(5_000_000), 10.0),
                   "1,200,000 of ~5,000,000 keys (24.0%), 20,000 keys/s, about 3m10s left",
                   "a resumed run's rate counts only its own keys");
        assert_eq!(progress_text(500, 500, None, 1.0), "500 keys, 500 keys/s");
        assert_eq!(progress_text(10, 10, Some(0), 0.0), "10 keys");
        assert_eq!(progress_text(6_000, 6_000, Some(5_000), 2.0), "6,000 of ~5,000 keys (100.0%), 3,000 keys/s");
        assert_eq!(duration_text(7322), "2h02m");
        assert_eq!(duration_text(0), "<1s");
    }
}
