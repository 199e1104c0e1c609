//! cascade_drop_table: a command that drops tables it does not name in DROP
//! TABLE (DROP SCHEMA/TYPE/DOMAIN/FUNCTION/EXTENSION ... CASCADE, DROP OWNED,
//! an extension's member tables) loses their rows. PostgreSQL computes the
//! closure of the drop; the sql_drop event lists it and this rule judges it.
//! Tables named in DROP TABLE are drop_table's, before the command runs.

use super::{Finding, Rule};
use crate::guard::facts::{thousands, Context, Statement, Table};

/// How many tables the message and DETAIL name before "and N more".
const NAMED: usize = 5;

pub fn check(statement: &Statement, _ctx: &Context) -> Vec<Finding> {
    let Statement::Dropped { command, tables, .. } = statement else { return Vec::new() };
    let lost: Vec<&Table> = tables.iter().filter(|t| t.shared() && t.has_rows()).collect();
    if lost.is_empty() {
        return Vec::new();
    }
    let rows: i64 = lost.iter().map(|t| t.rows.max(0)).sum();
    let message = match lost.as_slice() {
        [table] => format!("{command} drops table {} with its rows", table.described()),
        _ => format!("{command} drops {} tables with rows (~{} rows in all)", lost.len(), thousands(rows)),
    };
    let mut named: Vec<String> = lost.iter().take(NAMED).map(|t| t.described()).collect();
    if lost.len() > NAMED {
        named.push(format!("and {} more", lost.len() - NAMED));
    }
    let dumps: Vec<String> = lost.iter().take(NAMED).map(|t| format!("-t {}", t.name)).collect();
    vec![Finding::new(
        Rule::CascadeDropTable,
        message,
        format!(
            "These tables go because they depend on what the statement drops (CASCADE, DROP OWNED, an \
             extension's or schema's contents): {}. Their rows are gone for good; only a backup brings them back.",
            named.join(", ")
        ),
        safe_way(command, &lost, &dumps.join(" ")),
    )]
}

/// The safe way depends on how the command reaches the tables.
fn safe_way(command: &str, lost: &[&Table], dumps: &str) -> String {
    let first = &lost[0].name;
    match command {
        "DROP OWNED" => format!(
            "To keep the role's tables, give them away first: REASSIGN OWNED BY <role> TO <new owner>; then DROP \
             OWNED drops only its privileges. Or keep a dump (pg_dump {dumps}) and drop the tables explicitly with \
             DROP TABLE before the rest."
        ),
        "DROP EXTENSION" => format!(
            "To keep a member table, take it out of the extension first: ALTER EXTENSION <extension> DROP TABLE \
             {first}; Or keep a dump (pg_dump {dumps}) and drop the tables explicitly before the rest."
        ),
        _ => format!(
            "Run the statement with RESTRICT (the default) to see every dependent object; check each table, \
             keep a dump (pg_dump {dumps}), and drop the tables explicitly with DROP TABLE before the rest."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    fn dropped(tables: Vec<Table>) -> Statement {
        Statement::Dropped { command: "DROP SCHEMA".into(), tables, columns: vec![] }
    }

    #[test]
    fn fires_for_a_dependent_table_with_rows() {
        let found = check(&dropped(vec![table("app.orders", 1_000_000)]), &ctx());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, Rule::CascadeDropTable);
        assert!(found[0].message.starts_with("DROP SCHEMA drops table app.orders (~1,000,000 rows"), "{}", found[0].message);
        assert!(found[0].hint.contains("pg_dump -t app.orders"), "{}", found[0].hint);
    }

    #[test]
    fn one_finding_names_every_table_with_rows() {
        let found = check(&dropped(vec![table("app.a", 10), table("app.empty", 0), table("app.b", 5)]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("2 tables with rows (~15 rows in all)"), "{}", found[0].message);
        assert!(found[0].detail.contains("app.a (~10 rows") && found[0].detail.contains("app.b (~5 rows"), "{}", found[0].detail);
        assert!(!found[0].detail.contains("app.empty"), "{}", found[0].detail);
        let many: Vec<Table> = (0..8).map(|i| table(&format!("app.t{i}"), 1)).collect();
        assert!(check(&dropped(many), &ctx())[0].detail.contains("and 3 more"));
    }

    #[test]
    fn the_safe_way_fits_the_command() {
        let found = |command: &str| {
            let statement = Statement::Dropped { command: command.into(), tables: vec![table("public.jobs", 3)], columns: vec![] };
            check(&statement, &ctx()).remove(0).hint
        };
        assert!(found("DROP OWNED").contains("REASSIGN OWNED BY <role> TO <new owner>"));
        assert!(found("DROP EXTENSION").contains("ALTER EXTENSION <extension> DROP TABLE public.jobs;"));
        assert!(found("DROP TYPE").contains("RESTRICT"));
    }

    #[test]
    fn quiet_for_empty_new_and_temporary_tables() {
        let temporary = Table { temporary: true, ..table("pg_temp_3.t", 50) };
        assert!(check(&dropped(vec![table("app.empty", 0), new_table("app.new"), temporary]), &ctx()).is_empty());
        assert!(check(&dropped(vec![]), &ctx()).is_empty());
    }
}
