//! The guard's rules: one file each, pure decisions over `facts`. This module
//! is the registry of stable names, SQLSTATEs and default levels.

use super::facts::{Context, Statement};

mod attach_partition;
mod blocking_index;
mod cascade_drop_column;
mod cascade_drop_table;
mod domain_constraint;
mod drop_column;
mod drop_table;
mod foreign_key_on_delete;
mod lock_queue;
mod missing_lock_timeout;
mod not_null_without_default;
mod prefer_bigint_pk;
mod prefer_jsonb;
mod prefer_timestamptz;
mod refresh_materialized_view;
mod rename_by_drop;
mod set_not_null;
mod table_copy;
mod table_rewrite;
mod truncate;
mod unnamed_constraint;
mod enum_value_in_transaction;
mod validating_constraint;

pub use lock_queue::waited_behind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    RenameByDrop,
    DropColumn,
    DropTable,
    Truncate,
    BlockingIndex,
    NotNullWithoutDefault,
    TableRewrite,
    SetNotNull,
    ValidatingConstraint,
    MissingLockTimeout,
    LockQueue,
    TableCopy,
    RefreshMaterializedView,
    AttachPartition,
    DomainConstraint,
    UnnamedConstraint,
    ForeignKeyOnDelete,
    EnumValueInTransaction,
    PreferJsonb,
    PreferTimestamptz,
    PreferBigintPk,
    CascadeDropTable,
    CascadeDropColumn,
}

/// What a finding does: refuse the statement, warn, or just inform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off,
    Notice,
    Warning,
    Error,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Some(Level::Off),
            "notice" => Some(Level::Notice),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

impl Rule {
    pub const ALL: [Rule; 23] = [
        Rule::RenameByDrop,
        Rule::DropColumn,
        Rule::DropTable,
        Rule::Truncate,
        Rule::BlockingIndex,
        Rule::NotNullWithoutDefault,
        Rule::TableRewrite,
        Rule::SetNotNull,
        Rule::ValidatingConstraint,
        Rule::MissingLockTimeout,
        Rule::LockQueue,
        Rule::TableCopy,
        Rule::RefreshMaterializedView,
        Rule::AttachPartition,
        Rule::DomainConstraint,
        Rule::UnnamedConstraint,
        Rule::ForeignKeyOnDelete,
        Rule::EnumValueInTransaction,
        Rule::PreferJsonb,
        Rule::PreferTimestamptz,
        Rule::PreferBigintPk,
        Rule::CascadeDropTable,
        Rule::CascadeDropColumn,
    ];

    /// Stable name, used in pg_migrate.allow, pg_migrate.guard_levels and the docs.
    pub fn name(self) -> &'static str {
        match self {
            Rule::RenameByDrop => "rename_by_drop",
            Rule::DropColumn => "drop_column",
            Rule::DropTable => "drop_table",
            Rule::Truncate => "truncate",
            Rule::BlockingIndex => "blocking_index",
            Rule::NotNullWithoutDefault => "not_null_without_default",
            Rule::TableRewrite => "table_rewrite",
            Rule::SetNotNull => "set_not_null",
            Rule::ValidatingConstraint => "validating_constraint",
            Rule::MissingLockTimeout => "missing_lock_timeout",
            Rule::LockQueue => "lock_queue",
            Rule::TableCopy => "table_copy",
            Rule::RefreshMaterializedView => "refresh_materialized_view",
            Rule::AttachPartition => "attach_partition",
            Rule::DomainConstraint => "domain_constraint",
            Rule::UnnamedConstraint => "unnamed_constraint",
            Rule::ForeignKeyOnDelete => "foreign_key_on_delete",
            Rule::EnumValueInTransaction => "enum_value_in_transaction",
            Rule::PreferJsonb => "prefer_jsonb",
            Rule::PreferTimestamptz => "prefer_timestamptz",
            Rule::PreferBigintPk => "prefer_bigint_pk",
            Rule::CascadeDropTable => "cascade_drop_table",
            Rule::CascadeDropColumn => "cascade_drop_column",
        }
    }

    /// Own SQLSTATE of each rule, in class MG ("migrate guard").
    pub fn sqlstate(self) -> &'static str {
        match self {
            Rule::RenameByDrop => "MG001",
            Rule::DropColumn => "MG002",
            Rule::DropTable => "MG003",
            Rule::Truncate => "MG004",
            Rule::BlockingIndex => "MG005",
            Rule::NotNullWithoutDefault => "MG006",
            Rule::TableRewrite => "MG007",
            Rule::SetNotNull => "MG008",
            Rule::ValidatingConstraint => "MG009",
            Rule::MissingLockTimeout => "MG010",
            Rule::LockQueue => "MG011",
            // Data lost by cascade.
            Rule::CascadeDropTable => "MG012",
            Rule::CascadeDropColumn => "MG013",
            // Long locks the event triggers cannot see (or that ALTER TABLE hides).
            Rule::TableCopy => "MG020",
            Rule::RefreshMaterializedView => "MG021",
            Rule::AttachPartition => "MG022",
            Rule::DomainConstraint => "MG023",
            Rule::UnnamedConstraint => "MG101",
            Rule::ForeignKeyOnDelete => "MG102",
            Rule::EnumValueInTransaction => "MG103",
            Rule::PreferJsonb => "MG201",
            Rule::PreferTimestamptz => "MG202",
            Rule::PreferBigintPk => "MG203",
        }
    }

    pub fn default_level(self) -> Level {
        match self {
            Rule::UnnamedConstraint | Rule::ForeignKeyOnDelete | Rule::EnumValueInTransaction => Level::Warning,
            Rule::PreferJsonb | Rule::PreferTimestamptz | Rule::PreferBigintPk => Level::Off,
            _ => Level::Error,
        }
    }

    pub fn from_name(name: &str) -> Option<Rule> {
        let name = name.trim();
        Rule::ALL.into_iter().find(|rule| rule.name().eq_ignore_ascii_case(name))
    }

    fn check(self, statement: &Statement, ctx: &Context) -> Vec<Finding> {
        match self {
            Rule::RenameByDrop => rename_by_drop::check(statement, ctx),
            Rule::DropColumn => drop_column::check(statement, ctx),
            Rule::DropTable => drop_table::check(statement, ctx),
            Rule::Truncate => truncate::check(statement, ctx),
            Rule::BlockingIndex => blocking_index::check(statement, ctx),
            Rule::NotNullWithoutDefault => not_null_without_default::check(statement, ctx),
            Rule::TableRewrite => table_rewrite::check(statement, ctx),
            Rule::SetNotNull => set_not_null::check(statement, ctx),
            Rule::ValidatingConstraint => validating_constraint::check(statement, ctx),
            Rule::MissingLockTimeout => missing_lock_timeout::check(statement, ctx),
            Rule::LockQueue => lock_queue::check(statement, ctx),
            Rule::TableCopy => table_copy::check(statement, ctx),
            Rule::RefreshMaterializedView => refresh_materialized_view::check(statement, ctx),
            Rule::AttachPartition => attach_partition::check(statement, ctx),
            Rule::DomainConstraint => domain_constraint::check(statement, ctx),
            Rule::UnnamedConstraint => unnamed_constraint::check(statement, ctx),
            Rule::ForeignKeyOnDelete => foreign_key_on_delete::check(statement, ctx),
            Rule::EnumValueInTransaction => enum_value_in_transaction::check(statement, ctx),
            Rule::PreferJsonb => prefer_jsonb::check(statement, ctx),
            Rule::PreferTimestamptz => prefer_timestamptz::check(statement, ctx),
            Rule::PreferBigintPk => prefer_bigint_pk::check(statement, ctx),
            Rule::CascadeDropTable => cascade_drop_table::check(statement, ctx),
            Rule::CascadeDropColumn => cascade_drop_column::check(statement, ctx),
        }
    }
}

/// One thing the guard has to say about a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub message: String,
    pub detail: String,
    pub hint: String,
}

impl Finding {
    pub fn new(rule: Rule, message: String, detail: String, hint: String) -> Finding {
        Finding { rule, message, detail, hint }
    }
}

/// Per-rule levels: the defaults, changed by `pg_migrate.guard_levels`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Levels {
    overrides: Vec<(Rule, Level)>,
}

impl Levels {
    /// `'prefer_jsonb=notice, blocking_index=warning'`.
    pub fn parse(text: &str) -> Result<Levels, String> {
        let mut overrides = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, level) = item.split_once('=').ok_or_else(|| format!("\"{item}\" is not rule=level"))?;
            let rule = Rule::from_name(name).ok_or_else(|| format!("unknown rule \"{}\"", name.trim()))?;
            let level = Level::parse(level).ok_or_else(|| format!("unknown level \"{}\" (off, notice, warning, error)", level.trim()))?;
            overrides.push((rule, level));
        }
        Ok(Levels { overrides })
    }

    pub fn level(&self, rule: Rule) -> Level {
        self.overrides.iter().rev().find(|(r, _)| *r == rule).map_or(rule.default_level(), |(_, l)| *l)
    }
}

/// An acknowledged dangerous operation: `drop_column: old column, unused since v42`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    pub rule: Rule,
    pub reason: String,
}

/// `pg_migrate.allow`: `rule: reason` items separated by `;`. A reason is required.
pub fn parse_allowances(text: &str) -> Result<Vec<Allowance>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, reason) = item
                .split_once(':')
                .ok_or_else(|| format!("\"{item}\" has no reason: write '<rule>: <why this is safe>'"))?;
            let rule = Rule::from_name(name).ok_or_else(|| format!("unknown rule \"{}\"", name.trim()))?;
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(format!("allowing {} needs a reason: '{}: <why this is safe>'", rule.name(), rule.name()));
            }
            check_reason(rule, reason)?;
            Ok(Allowance { rule, reason: reason.to_string() })
        })
        .collect()
}

/// The header line of a migration file, `drop_column <reason>`.
pub fn parse_header_allowance(text: &str) -> Result<Allowance, String> {
    let text = text.trim();
    let (name, reason) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rule = Rule::from_name(name.trim_end_matches(':')).ok_or_else(|| format!("unknown rule \"{name}\""))?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(format!("\"Allow: {}\" needs a reason after the rule name", rule.name()));
    }
    check_reason(rule, reason)?;
    Ok(Allowance { rule, reason: reason.to_string() })
}

/// Words that stand for a reason without giving one.
const PLACEHOLDER_REASONS: &[&str] = &[
    "reason", "the reason", "a reason", "why", "why this is safe", "because", "todo", "to do", "tbd", "tba",
    "fixme", "xxx", "n/a", "na", "none", "null", "nil", "nothing", "ok", "okay", "yes", "safe", "it is safe",
    "whatever", "test", "asdf", "foo", "bar", "reason here", "your reason", "insert reason",
];

/// A reason is written for whoever reads migrate.guard_log later: refuse the
/// HINT's own placeholder (`<reason>`), a template left unfilled, and words
/// that say nothing ("todo", "n/a", "-").
fn check_reason(rule: Rule, reason: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "\"{reason}\" is {why}: write why {} is safe here (it is recorded in migrate.guard_log)",
            rule.name()
        ))
    };
    if has_template_slot(reason) {
        return refuse("a placeholder");
    }
    let letters = reason.chars().filter(|c| c.is_alphanumeric()).count();
    if letters < 3 {
        return refuse("not a reason");
    }
    let normalized: String = reason
        .trim_matches(|c: char| !c.is_alphanumeric())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if PLACEHOLDER_REASONS.contains(&normalized.as_str()) {
        return refuse("a placeholder");
    }
    Ok(())
}

/// `<reason>`, `<why this is safe>`: angle brackets around words only.
fn has_template_slot(text: &str) -> bool {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('>') {
            let inside = &rest[..close];
            if !inside.trim().is_empty() && inside.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-')) {
                return true;
            }
        }
    }
    false
}

/// Every rule's findings for one statement, with the level each one has.
pub fn evaluate(statement: &Statement, ctx: &Context, levels: &Levels) -> Vec<(Finding, Level)> {
    let mut out = Vec::new();
    for rule in Rule::ALL {
        let level = levels.level(rule);
        if level == Level::Off {
            continue;
        }
        out.extend(rule.check(statement, ctx).into_iter().map(|finding| (finding, level)));
    }
    out
}

/// The statement with `CONCURRENTLY` after its leading `CREATE [UNIQUE] INDEX`,
/// `DROP INDEX` or `REINDEX ... <kind>` words, when the text is known.
pub(crate) fn with_concurrently(sql: &str, after_words: usize) -> Option<String> {
    let mut rest = sql.trim_start();
    let mut prefix = String::new();
    for _ in 0..after_words {
        let word_end = rest.find(char::is_whitespace)?;
        prefix.push_str(&rest[..word_end]);
        prefix.push(' ');
        rest = rest[word_end..].trim_start();
    }
    if rest.to_ascii_uppercase().starts_with("CONCURRENTLY") {
        return None;
    }
    Some(format!("{prefix}CONCURRENTLY {rest}"))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::super::facts::*;

    pub fn table(name: &str, rows: i64) -> Table {
        Table { name: name.into(), rows, rows_from_size: false, bytes: rows * 100, created_in_transaction: false, temporary: false, partitioned: false, oid: 1 }
    }

    pub fn new_table(name: &str) -> Table {
        Table { created_in_transaction: true, ..table(name, 0) }
    }

    pub fn column(name: &str, type_name: &str) -> Column {
        Column { name: name.into(), type_name: type_name.into() }
    }

    pub fn ctx() -> Context {
        Context { lock_timeout_ms: 2000, ..Context::default() }
    }

    pub fn alter(table: Table, actions: Vec<Action>) -> Statement {
        Statement::AlterTable { table, actions, lock: LockLevel::AccessExclusive }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_a_distinct_name_and_sqlstate() {
        let mut names: Vec<_> = Rule::ALL.iter().map(|r| r.name()).collect();
        let mut states: Vec<_> = Rule::ALL.iter().map(|r| r.sqlstate()).collect();
        names.sort();
        names.dedup();
        states.sort();
        states.dedup();
        assert_eq!(names.len(), Rule::ALL.len());
        assert_eq!(states.len(), Rule::ALL.len());
        assert!(Rule::ALL.iter().all(|r| Rule::from_name(r.name()) == Some(*r)));
        assert!(states.iter().all(|s| s.len() == 5 && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())));
    }

    #[test]
    fn allowances_need_a_reason() {
        assert_eq!(
            parse_allowances("drop_column: unused since v42; truncate: staging data").unwrap(),
            vec![
                Allowance { rule: Rule::DropColumn, reason: "unused since v42".into() },
                Allowance { rule: Rule::Truncate, reason: "staging data".into() }
            ]
        );
        assert!(parse_allowances("drop_column").unwrap_err().contains("no reason"));
        assert!(parse_allowances("drop_column:   ").unwrap_err().contains("needs a reason"));
        assert!(parse_allowances("drop_colum: x").unwrap_err().contains("unknown rule"));
        assert_eq!(parse_allowances("").unwrap(), vec![]);
        assert_eq!(parse_header_allowance("drop_column legacy field").unwrap().reason, "legacy field");
    }

    #[test]
    fn placeholder_reasons_are_refused() {
        for reason in ["<reason>", "< reason >", "<why this is safe>", "moved to <table>", "todo", "TODO.", "n/a", "-",
                       "...", "x", "ok", "  tbd  ", "FIXME!", "why this is safe", "the reason"] {
            let error = parse_allowances(&format!("drop_column: {reason}")).unwrap_err();
            assert!(error.contains("drop_column is safe"), "{reason}: {error}");
            assert!(parse_header_allowance(&format!("drop_column {reason}")).is_err(), "{reason}");
        }
        for reason in ["testing", "a < b, so no rows", "unused since v42", "dropped in v42 (ticket #12)"] {
            assert!(parse_allowances(&format!("drop_column: {reason}")).is_ok(), "{reason}");
        }
        assert!(parse_header_allowance("drop_column").is_err());
    }

    #[test]
    fn levels_override_defaults() {
        let levels = Levels::parse("prefer_jsonb=notice, blocking_index = warning").unwrap();
        assert_eq!(levels.level(Rule::PreferJsonb), Level::Notice);
        assert_eq!(levels.level(Rule::BlockingIndex), Level::Warning);
        assert_eq!(levels.level(Rule::DropColumn), Level::Error);
        assert_eq!(levels.level(Rule::PreferTimestamptz), Level::Off);
        assert!(Levels::parse("nope=error").is_err());
        assert!(Levels::parse("drop_column=loud").is_err());
    }

    #[test]
    fn concurrently_goes_after_the_leading_words() {
        assert_eq!(
            with_concurrently("CREATE UNIQUE INDEX users_email_key ON users (email)", 3).as_deref(),
            Some("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
        );
        assert_eq!(with_concurrently("DROP INDEX i", 2).as_deref(), Some("DROP INDEX CONCURRENTLY i"));
        assert_eq!(with_concurrently("DROP INDEX CONCURRENTLY i", 2), None);
    }
}
