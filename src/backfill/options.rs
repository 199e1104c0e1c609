//! A backfill job's options as one typed struct. The procedure passes its named
//! arguments as one jsonb object; the job stores the checked struct in its
//! `options` column (jsonb); every batch reads it back. Adding an option is a
//! field here (with its default and check) plus its argument in backfill.sql; a
//! test below keeps the two in step. No pgrx here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a job batches, throttles and reports. `None` means "off".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackfillOptions {
    /// Rows a batch should update; the keys it walks grow past it on a sparse table.
    pub batch_size: i32,
    /// Sleep between batches, outside any transaction.
    pub pause_ms: i32,
    /// Adapt the batch size to hold this duration.
    pub target_batch_ms: Option<i32>,
    /// Wait before a batch while a standby replays further behind than this.
    pub max_replication_lag_ms: Option<i32>,
    /// lock_timeout of every batch.
    pub lock_timeout_ms: i32,
    /// Retries of one batch after a lock timeout, deadlock or serialization failure.
    pub max_retries: i32,
    /// Interval of progress NOTICEs.
    pub notice_interval_ms: i32,
    /// Wait before a batch while the server writes more WAL than this, in bytes per second.
    pub max_wal_rate: Option<i64>,
    /// Wait before a batch while a replication slot retains more WAL than this, in bytes.
    pub max_slot_lag: Option<i64>,
    /// Wait before a batch while a VACUUM (autovacuum's included) works on the table.
    pub pause_during_autovacuum: bool,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            batch_size: 1000,
            pause_ms: 0,
            target_batch_ms: None,
            max_replication_lag_ms: None,
            lock_timeout_ms: 1000,
            max_retries: 10,
            notice_interval_ms: 10_000,
            max_wal_rate: None,
            max_slot_lag: None,
            pause_during_autovacuum: false,
        }
    }
}

/// Why an argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    /// An argument that must have a value was NULL (SQLSTATE 22004).
    Null { argument: String },
    /// A value out of its range, or of the wrong type, or unknown (SQLSTATE 22023).
    Invalid { argument: String, why: String },
}

impl OptionError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            OptionError::Null { .. } => "22004",
            OptionError::Invalid { .. } => "22023",
        }
    }

    pub fn message(&self) -> String {
        match self {
            OptionError::Null { argument } => format!("{argument} must not be NULL"),
            OptionError::Invalid { argument, why } => format!("{argument} {why}"),
        }
    }
}

/// The arguments of this name that may be NULL (meaning "off").
const NULLABLE: [&str; 4] = ["target_batch_ms", "max_replication_lag_ms", "max_wal_rate", "max_slot_lag"];
/// Byte counts: bigint arguments.
const BIGINT: [&str; 2] = ["max_wal_rate", "max_slot_lag"];
/// Switches: boolean arguments.
const BOOLEAN: [&str; 1] = ["pause_during_autovacuum"];

impl BackfillOptions {
    /// Check the procedure's arguments (a jsonb object, NULLs included) and turn
    /// them into options. A missing key takes its default; a NULL is refused
    /// unless the option can be off.
    pub fn from_arguments(arguments: &Value) -> Result<Self, OptionError> {
        let Some(given) = arguments.as_object() else {
            return Err(OptionError::Invalid { argument: "options".into(), why: "must be a json object".into() });
        };
        let mut merged: Map<String, Value> = match serde_json::to_value(BackfillOptions::default()) {
            Ok(Value::Object(defaults)) => defaults,
            _ => Map::new(),
        };
        for (name, value) in given {
            if !merged.contains_key(name) {
                return Err(OptionError::Invalid { argument: name.clone(), why: "is not a backfill option".into() });
            }
            if value.is_null() && !NULLABLE.contains(&name.as_str()) {
                return Err(OptionError::Null { argument: name.clone() });
            }
            let fits = if value.is_null() {
                true
            } else if BOOLEAN.contains(&name.as_str()) {
                value.is_boolean()
            } else if BIGINT.contains(&name.as_str()) {
                value.as_i64().is_some()
            } else {
                value.as_i64().and_then(|v| i32::try_from(v).ok()).is_some()
            };
            if !fits {
                let kind = if BOOLEAN.contains(&name.as_str()) { "a boolean" } else { "an integer" };
                return Err(OptionError::Invalid { argument: name.clone(), why: format!("must be {kind}") });
            }
            merged.insert(name.clone(), value.clone());
        }
        let options: BackfillOptions = serde_json::from_value(Value::Object(merged))
            .map_err(|error| OptionError::Invalid { argument: "options".into(), why: error.to_string() })?;
        options.check()?;
        Ok(options)
    }

    /// The ranges, checked before a job starts (a -1 lag limit would wait forever).
    pub fn check(&self) -> Result<(), OptionError> {
        let invalid = |argument: &str, why: &str| Err(OptionError::Invalid { argument: argument.into(), why: why.into() });
        if self.batch_size < 1 {
            return invalid("batch_size", "must be at least 1");
        }
        for (argument, value) in [
            ("pause_ms", self.pause_ms),
            ("lock_timeout_ms", self.lock_timeout_ms),
            ("max_retries", self.max_retries),
            ("notice_interval_ms", self.notice_interval_ms),
        ] {
            if value < 0 {
                return invalid(argument, "must not be negative");
            }
        }
        if self.target_batch_ms.is_some_and(|ms| ms < 1) {
            return invalid("target_batch_ms", "must be at least 1 (or NULL: no target)");
        }
        if self.max_replication_lag_ms.is_some_and(|ms| ms < 0) {
            return invalid("max_replication_lag_ms", "must not be negative (or NULL: no limit)");
        }
        if self.max_wal_rate.is_some_and(|rate| rate < 1) {
            return invalid("max_wal_rate", "must be at least 1 byte per second (or NULL: no limit)");
        }
        if self.max_slot_lag.is_some_and(|bytes| bytes < 0) {
            return invalid("max_slot_lag", "must not be negative (or NULL: no limit)");
        }
        Ok(())
    }

    /// The option names.
    #[cfg(test)]
    pub fn names() -> Vec<String> {
        match serde_json::to_value(BackfillOptions::default()) {
            Ok(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The stored form, as the job's `options` column holds it.
    #[cfg(test)]
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_become_options() {
        let options = BackfillOptions::from_arguments(&json!({
            "batch_size": 500, "pause_ms": 20, "target_batch_ms": null, "max_replication_lag_ms": 300,
            "lock_timeout_ms": 100, "max_retries": 2, "notice_interval_ms": 0
        }))
        .unwrap();
        assert_eq!(options.batch_size, 500);
        assert_eq!(options.max_replication_lag_ms, Some(300));
        assert_eq!(options.target_batch_ms, None);
        assert_eq!(BackfillOptions::from_arguments(&json!({})).unwrap(), BackfillOptions::default());
    }

    #[test]
    fn nulls_and_out_of_range_values_are_refused_with_their_sqlstate() {
        let null = BackfillOptions::from_arguments(&json!({"batch_size": null})).unwrap_err();
        assert_eq!((null.sqlstate(), null.message().as_str()), ("22004", "batch_size must not be NULL"));
        let lag = BackfillOptions::from_arguments(&json!({"max_replication_lag_ms": -1})).unwrap_err();
        assert_eq!(lag.sqlstate(), "22023");
        assert!(lag.message().starts_with("max_replication_lag_ms must not be negative"));
        for bad in [json!({"batch_size": 0}), json!({"pause_ms": -5}), json!({"target_batch_ms": 0}),
                    json!({"max_retries": -1}), json!({"batch_size": 1.5}), json!({"batch_size": 5_000_000_000i64}),
                    json!({"nope": 1}), json!([1])] {
            assert_eq!(BackfillOptions::from_arguments(&bad).unwrap_err().sqlstate(), "22023", "{bad}");
        }
        assert_eq!(BackfillOptions::from_arguments(&json!({"pause_ms": null})).unwrap_err().sqlstate(), "22004");
        assert_eq!(BackfillOptions::from_arguments(&json!({"pause_during_autovacuum": null})).unwrap_err().sqlstate(), "22004");
        for bad in [json!({"max_wal_rate": 0}), json!({"max_slot_lag": -1}), json!({"pause_during_autovacuum": 1}),
                    json!({"max_wal_rate": true})] {
            assert_eq!(BackfillOptions::from_arguments(&bad).unwrap_err().sqlstate(), "22023", "{bad}");
        }
        let health = BackfillOptions::from_arguments(&json!({
            "max_wal_rate": 5_000_000_000i64, "max_slot_lag": 0, "pause_during_autovacuum": true
        }))
        .unwrap();
        assert_eq!((health.max_wal_rate, health.max_slot_lag, health.pause_during_autovacuum),
                   (Some(5_000_000_000), Some(0), true));
    }

    #[test]
    fn stored_options_round_trip_and_take_defaults_for_new_fields() {
        let options = BackfillOptions { batch_size: 7, max_replication_lag_ms: Some(0), ..Default::default() };
        assert_eq!(serde_json::from_value::<BackfillOptions>(options.to_json()).unwrap(), options);
        let old: BackfillOptions = serde_json::from_value(json!({"batch_size": 50})).unwrap();
        assert_eq!((old.batch_size, old.lock_timeout_ms), (50, 1000));
    }

    /// backfill.sql's migrate_backfill and migrate_backfill_start pass every
    /// option, by name, with the same default as here.
    #[test]
    fn the_procedure_passes_every_option_with_its_default() {
        let sql = include_str!("backfill.sql");
        for (header, end) in [("CREATE PROCEDURE migrate_backfill(", "END\n$$;"), ("CREATE FUNCTION migrate_backfill_start(", "\n$$;")] {
            let start = sql.find(header).unwrap_or_else(|| panic!("{header} in backfill.sql"));
            passes_every_option(&sql[start..], end);
        }
    }

    fn passes_every_option(procedure: &str, end: &str) {
        let signature = &procedure[..procedure.find("LANGUAGE").unwrap()];
        let body = &procedure[..procedure.find(end).unwrap()];
        let defaults = BackfillOptions::default().to_json();
        for name in BackfillOptions::names() {
            let line = signature
                .lines()
                .find(|line| line.trim_start().starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} is not an argument of migrate_backfill"));
            let default = line.split("DEFAULT").nth(1).unwrap().trim().trim_end_matches(',').trim_end_matches(')');
            let expected = match &defaults[&name] {
                Value::Null => "NULL".to_string(),
                value => value.to_string(),
            };
            let kind = if BOOLEAN.contains(&name.as_str()) {
                "boolean"
            } else if BIGINT.contains(&name.as_str()) {
                "bigint"
            } else {
                "integer"
            };
            assert!(line.contains(&format!("{name} {kind} ")), "{name} should be {kind}: {line}");
            assert_eq!(default, expected, "default of {name}");
            assert!(body.contains(&format!("'{name}', {name}")), "{name} is not passed to backfill_prepare");
        }
    }
}
