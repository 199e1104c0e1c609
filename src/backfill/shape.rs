//! Is the statement a batch runs really the batch pg_migrate built? The SET list
//! and the condition are spliced into the UPDATE's text, so a comment, a quote,
//! a parenthesis or a keyword in them could change what the statement does
//! (`n = 1 --` would comment out the keyset bounds: every batch would update the
//! whole table). The server parses the exact text that runs; `procedure` sums the
//! parse tree up as a [`ParsedUpdate`], and [`check`] compares it with what was
//! built ([`BatchUpdate`]): one UPDATE of one relation, every SET target inside
//! the SET list's span, each keyset bound at the place it was put, the condition
//! as the one remaining predicate, and no assignment to a key column. No pgrx here.

use std::ops::Range;

use super::planner::BatchUpdate;

/// What the server's parser saw in a batch's UPDATE text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    pub statements: usize,
    pub is_update: bool,
    pub has_from: bool,
    pub has_returning: bool,
    pub has_with: bool,
    pub targets: Vec<Target>,
    pub filter: Option<Predicate>,
}

/// One `column = value` of the SET list (multi-column assignments give one each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub column: String,
    /// Byte offset of the target in the statement text, or -1.
    pub at: i32,
}

/// A node of the WHERE clause: its location, the operator's qualified name when
/// it is an operator expression, and its arguments when it is an AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    pub at: i32,
    pub operator: Option<Vec<String>>,
    pub and_args: Option<Vec<Predicate>>,
}

/// Why a batch statement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// The SET list or condition reaches outside its place (SQLSTATE 42601).
    Escapes(String),
    /// The SET list assigns to a column of the key the batches walk (SQLSTATE 22023).
    AssignsKey(String),
}

impl ShapeError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ShapeError::Escapes(_) => "42601",
            ShapeError::AssignsKey(_) => "22023",
        }
    }
}

fn within(at: i32, span: &Range<usize>) -> bool {
    usize::try_from(at).is_ok_and(|at| span.contains(&at))
}

/// Check the parsed batch statement against the one built. `key_columns` are
/// the key's column names, unquoted.
pub fn check(built: &BatchUpdate, parsed: &ParsedUpdate, key_columns: &[String]) -> Result<(), ShapeError> {
    let escapes = |why: &str| Err(ShapeError::Escapes(why.to_string()));
    if parsed.statements != 1 {
        return escapes("the batch statement would be more than one statement");
    }
    if !parsed.is_update || parsed.has_with {
        return escapes("the batch statement would not be a plain UPDATE");
    }
    if parsed.has_from {
        return escapes("the SET list adds a FROM clause: the batch would update through another relation");
    }
    if parsed.has_returning {
        return escapes("the SET list adds a RETURNING clause");
    }
    if parsed.targets.is_empty() || parsed.targets.iter().any(|target| !within(target.at, &built.set_span)) {
        return escapes("the SET list does not stay inside its place in the batch statement");
    }
    if let Some(target) = parsed.targets.iter().find(|target| key_columns.contains(&target.column)) {
        return Err(ShapeError::AssignsKey(target.column.clone()));
    }
    let expected = built.bounds.len() + usize::from(built.condition_span.is_some());
    let predicates: Vec<&Predicate> = match (&parsed.filter, expected) {
        (None, 0) => Vec::new(),
        (Some(_), 0) | (None, _) => return escapes("the batch statement's WHERE clause is not the one built"),
        (Some(only), 1) => vec![only],
        (Some(filter), _) => match &filter.and_args {
            Some(args) if args.len() == expected => args.iter().collect(),
            _ => return escapes("the condition or the SET list changes the batch's keyset bounds"),
        },
    };
    for (bound, predicate) in built.bounds.iter().zip(&predicates) {
        let operator = ["pg_catalog".to_string(), bound.operator.to_string()];
        let placed = usize::try_from(predicate.at).ok() == Some(bound.at)
            && predicate.operator.as_deref() == Some(&operator[..]);
        if !placed {
            return escapes("the condition or the SET list changes the batch's keyset bounds");
        }
    }
    if let Some(span) = &built.condition_span {
        let condition = predicates[built.bounds.len()];
        // A condition's top node has a location inside its span, unless it is
        // one of the few raw nodes without one.
        let end_inclusive = span.start..span.end + 1;
        if condition.at >= 0 && !within(condition.at, &end_inclusive) {
            return escapes("the condition does not stay inside its parentheses in the batch statement");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::planner::{update_sql, KeyColumn};

    fn keys() -> Vec<KeyColumn> {
        vec![KeyColumn { name: "id".into(), type_sql: "bigint".into() }]
    }

    fn bound_at(built: &BatchUpdate, i: usize) -> Predicate {
        Predicate {
            at: built.bounds[i].at as i32,
            operator: Some(vec!["pg_catalog".into(), built.bounds[i].operator.into()]),
            and_args: None,
        }
    }

    fn parsed(targets: Vec<Target>, filter: Option<Predicate>) -> ParsedUpdate {
        ParsedUpdate {
            statements: 1,
            is_update: true,
            has_from: false,
            has_returning: false,
            has_with: false,
            targets,
            filter,
        }
    }

    fn and(args: Vec<Predicate>) -> Option<Predicate> {
        Some(Predicate { at: 1, operator: None, and_args: Some(args) })
    }

    fn target(built: &BatchUpdate, column: &str) -> Target {
        Target { column: column.into(), at: built.set_span.start as i32 }
    }

    #[test]
    fn the_statement_as_built_passes() {
        let built = update_sql("t", &keys(), "n = n + 1", Some("n IS NULL"), true, true);
        let cond = Predicate { at: built.condition_span.clone().unwrap().start as i32 + 2, operator: None, and_args: None };
        let tree = parsed(vec![target(&built, "n")], and(vec![bound_at(&built, 0), bound_at(&built, 1), cond]));
        assert_eq!(check(&built, &tree, &["id".into()]), Ok(()));
        let first = update_sql("t", &keys(), "n = 1", None, false, false);
        assert_eq!(check(&first, &parsed(vec![target(&first, "n")], None), &["id".into()]), Ok(()));
    }

    #[test]
    fn a_comment_that_swallows_the_bounds_is_refused() {
        // `n = 1 --`: the parser sees no WHERE at all.
        let built = update_sql("t", &keys(), "n = 1 --", None, true, true);
        let error = check(&built, &parsed(vec![target(&built, "n")], None), &["id".into()]).unwrap_err();
        assert_eq!(error.sqlstate(), "42601");
    }

    #[test]
    fn bounds_rebuilt_inside_the_set_list_are_refused() {
        // The SET list brings its own WHERE and comments out the real one: the
        // operators stand inside the SET list's span, not where they were put.
        let built = update_sql("t", &keys(), "n = 1 WHERE (id) OPERATOR(pg_catalog.>) ($1[1]::bigint) --", None, true, false);
        let fake = Predicate { at: built.set_span.start as i32 + 20, operator: Some(vec!["pg_catalog".into(), ">".into()]), and_args: None };
        assert!(check(&built, &parsed(vec![target(&built, "n")], Some(fake)), &[]).is_err());
    }

    #[test]
    fn a_condition_that_breaks_out_of_its_parentheses_is_refused() {
        // `true) OR (true`: the top of the WHERE clause is an OR, not the AND built.
        let built = update_sql("t", &keys(), "n = 1", Some("true) OR (true"), true, true);
        let or = Predicate { at: built.condition_span.clone().unwrap().start as i32 + 6, operator: None, and_args: None };
        assert!(check(&built, &parsed(vec![target(&built, "n")], Some(or)), &[]).is_err());
        // Three predicates where two bounds and a condition were built: one too many.
        let c = built.condition_span.clone().unwrap().start as i32;
        let extra = and(vec![bound_at(&built, 0), bound_at(&built, 1), Predicate { at: c, operator: None, and_args: None },
                             Predicate { at: c + 10, operator: None, and_args: None }]);
        assert!(check(&built, &parsed(vec![target(&built, "n")], extra), &[]).is_err());
    }

    #[test]
    fn from_returning_and_several_statements_are_refused() {
        let built = update_sql("t", &keys(), "n = 1", None, false, false);
        let ok = parsed(vec![target(&built, "n")], None);
        for tree in [
            ParsedUpdate { has_from: true, ..ok.clone() },
            ParsedUpdate { has_returning: true, ..ok.clone() },
            ParsedUpdate { statements: 2, ..ok.clone() },
            ParsedUpdate { is_update: false, ..ok.clone() },
            ParsedUpdate { targets: vec![Target { column: "n".into(), at: 0 }], ..ok.clone() },
        ] {
            assert_eq!(check(&built, &tree, &[]).unwrap_err().sqlstate(), "42601", "{tree:?}");
        }
    }

    #[test]
    fn assignments_to_a_key_column_are_refused() {
        let built = update_sql("t", &keys(), "(id, n) = (id + 1, 0)", None, false, false);
        let tree = parsed(vec![target(&built, "id"), target(&built, "n")], None);
        assert_eq!(check(&built, &tree, &["tenant".into(), "id".into()]), Err(ShapeError::AssignsKey("id".into())));
        assert_eq!(check(&built, &tree, &["tenant".into()]), Ok(()));
    }
}
