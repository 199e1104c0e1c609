//! refresh_materialized_view: REFRESH MATERIALIZED VIEW without CONCURRENTLY
//! holds ACCESS EXCLUSIVE on the view for the whole refresh, so every read of
//! it waits for the view's query to run again.

use super::{Finding, Rule};
use crate::guard::facts::{Context, Statement};

pub fn check(statement: &Statement, ctx: &Context) -> Vec<Finding> {
    let Statement::RefreshMaterializedView { view, concurrent: false, populated: true, with_no_data: false, has_unique_index } = statement
    else {
        // CONCURRENTLY blocks no reads; a view never populated cannot be read
        // (nor refreshed concurrently); WITH NO DATA only empties it.
        return Vec::new();
    };
    if !view.shared() || !view.is_large(&ctx.thresholds) {
        return Vec::new();
    }
    let short = view.name.rsplit('.').next().unwrap_or(&view.name).trim_matches('"');
    let refresh = format!("REFRESH MATERIALIZED VIEW CONCURRENTLY {};", view.name);
    let hint = if *has_unique_index {
        format!("{refresh}\n(CONCURRENTLY takes EXCLUSIVE: reads of the view go on while it refreshes.)")
    } else {
        format!(
            // sql-lint: allow(a HINT written for the user to read, never run by pg_migrate)
            "CREATE UNIQUE INDEX CONCURRENTLY {short}_key ON {} (<columns that identify a row>);\n{refresh}\n\
             CONCURRENTLY needs a unique index on plain columns covering all rows, and then lets reads go on while it refreshes.",
            view.name
        )
    };
    vec![Finding::new(
        Rule::RefreshMaterializedView,
        format!("REFRESH MATERIALIZED VIEW {} blocks its readers for the whole refresh", view.described()),
        format!("Without CONCURRENTLY the refresh holds ACCESS EXCLUSIVE on {}: every query reading it waits until the view's query has run again.", view.name),
        hint,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::facts::Table;
    use crate::guard::rules::test_support::*;

    fn refresh(view: Table, concurrent: bool, has_unique_index: bool) -> Statement {
        Statement::RefreshMaterializedView { view, concurrent, populated: true, with_no_data: false, has_unique_index }
    }

    #[test]
    fn plain_refresh_of_a_large_view() {
        let found = check(&refresh(table("public.totals", 2_000_000), false, true), &ctx());
        assert_eq!(found.len(), 1);
        assert!(found[0].hint.starts_with("REFRESH MATERIALIZED VIEW CONCURRENTLY public.totals;"));
        let found = check(&refresh(table("public.totals", 2_000_000), false, false), &ctx());
        assert!(found[0].hint.starts_with("CREATE UNIQUE INDEX CONCURRENTLY totals_key ON public.totals"), "{}", found[0].hint);
    }

    #[test]
    fn quiet_when_concurrent_small_or_unpopulated() {
        assert!(check(&refresh(table("public.totals", 2_000_000), true, true), &ctx()).is_empty());
        assert!(check(&refresh(table("public.totals", 10), false, true), &ctx()).is_empty());
        let unpopulated = Statement::RefreshMaterializedView {
            view: table("public.totals", 2_000_000), concurrent: false, populated: false, with_no_data: false, has_unique_index: false,
        };
        assert!(check(&unpopulated, &ctx()).is_empty());
    }
}
