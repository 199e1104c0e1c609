//! domain_constraint: ALTER DOMAIN ... ADD CONSTRAINT CHECK, SET NOT NULL and
//! VALIDATE CONSTRAINT read every stored value of the domain, holding SHARE on
//! each table with such a column (PostgreSQL 15's validateDomainConstraint):
//! writes to all of them wait.

use super::{Finding, Rule};
use crate::guard::facts::{Context, DomainCheck, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Statement::AlterDomain { domain, check, tables } = statement else { return Vec::new() };
    let large: Vec<_> = tables.iter().filter(|t| t.shared() && t.is_large(&ctx.thresholds)).collect();
    let Some(largest) = large.iter().max_by_key(|t| (t.rows, t.bytes)) else { return Vec::new() };
    let others = match large.len() {
        1 => String::new(),
        n => format!(" and {} other large table{}", n - 1, if n == 2 { "" } else { "s" }),
    };
    let short = domain.rsplit('.').next().unwrap_or(domain).trim_matches('"');
    let (what, hint) = match check {
        DomainCheck::AddCheck { name } => {
            let name = name.clone().unwrap_or_else(|| format!("{short}_check"));
            (
                "ADD CONSTRAINT".to_string(),
                format!(
                    // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
                    "ALTER DOMAIN {domain} ADD CONSTRAINT {name} CHECK (...) NOT VALID;  -- new values are checked at once, no scan\n\
                     Validating the existing values later (ALTER DOMAIN {domain} VALIDATE CONSTRAINT {name};) still blocks \
                     writes while it scans in PostgreSQL 15: do that in a quiet period and acknowledge it, or leave it NOT VALID."
                ),
            )
        }
        DomainCheck::SetNotNull => (
            "SET NOT NULL".to_string(),
            format!(
                "ALTER DOMAIN {domain} ADD CONSTRAINT {short}_not_null CHECK (VALUE IS NOT NULL) NOT VALID;  -- new values are checked at once, no scan\n\
                 Validating the existing values still blocks writes while it scans in PostgreSQL 15: do that in a quiet period and acknowledge it."
            ),
        ),
        DomainCheck::Validate { name } => (
            format!("VALIDATE CONSTRAINT {name}"),
            "PostgreSQL 15 has no way to validate a domain constraint without blocking writes: run it in a quiet period, \
             with lock_timeout set, and acknowledge it; or leave the constraint NOT VALID (new values are checked anyway)."
                .to_string(),
        ),
    };
    vec![Finding::new(
        Rule::DomainConstraint,
        format!("ALTER DOMAIN {domain} {what} scans every {domain} value, in {}{others}", largest.described()),
        format!(
            "PostgreSQL checks each stored value holding a SHARE lock on every table with a {domain} column: \
             INSERT, UPDATE and DELETE on {}{others} wait until the scan is done.",
            largest.name
        ),
        hint,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::rules::test_support::*;

    #[test]
    fn checks_of_existing_values_on_large_tables() {
        let stmt = |check, tables| Statement::AlterDomain { domain: "public.email".into(), check, tables };
        let found = check(&stmt(DomainCheck::AddCheck { name: Some("email_at".into()) },
                                vec![table("public.users", 2_000_000), table("public.orders", 3_000_000), table("public.tiny", 3)]), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("in public.orders (~3,000,000 rows"), "{}", found[0].message);
        assert!(found[0].message.ends_with("and 1 other large table"), "{}", found[0].message);
        assert!(found[0].hint.starts_with("ALTER DOMAIN public.email ADD CONSTRAINT email_at CHECK (...) NOT VALID;"));
        let found = check(&stmt(DomainCheck::SetNotNull, vec![table("public.users", 2_000_000)]), &ctx());
        assert!(found[0].hint.contains("CHECK (VALUE IS NOT NULL) NOT VALID"));
        assert!(check(&stmt(DomainCheck::SetNotNull, vec![table("public.tiny", 3), new_table("public.fresh")]), &ctx()).is_empty());
    }
}
