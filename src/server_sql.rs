//! The server's own SQL parser, used to split a revision's text into statements
//! and to learn what each statement is. We never tokenize SQL by hand: dollar
//! quotes, `BEGIN ATOMIC` bodies and nested comments are the grammar's business.

use std::cell::Cell;
use std::ffi::{c_void, CStr, CString};

use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;
use pgrx::{is_a, PgList};

/// One top-level statement of a revision's SQL.
#[derive(Debug, Clone)]
pub struct Statement {
    pub text: String,
    /// Line breaks before the statement's first real token: it starts
    /// `lines_before` lines below the text's first line (see [`Statement::line`]).
    pub lines_before: usize,
    pub kind: StatementKind,
}

impl Statement {
    /// 1-based line of the statement when the text starts on `first_line`.
    pub fn line(&self, first_line: usize) -> usize {
        first_line + self.lines_before
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    Ordinary,
    /// BEGIN, COMMIT, SAVEPOINT ...: pg_migrate owns the transaction boundaries.
    TransactionControl,
    /// Cannot run inside a transaction block or a function.
    TopLevelOnly {
        what: &'static str,
        concurrent_index: Option<ConcurrentIndex>,
    },
}

/// `CREATE INDEX CONCURRENTLY`: a failed build leaves an INVALID index behind,
/// which a rerun has to notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrentIndex {
    pub index_name: Option<String>,
    pub table_schema: Option<String>,
    pub table_name: String,
}

#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    /// Byte offset of the error inside the parsed text, when the parser gave one.
    pub offset: Option<usize>,
    pub code: PgSqlErrorCode,
}

thread_local! {
    // Filled by an error-context callback while the parser raises: pgrx flushes the
    // error state before we can read its cursor position, the callback runs first.
    static LAST_ERROR_POSITION: Cell<i32> = const { Cell::new(0) };
}

unsafe extern "C-unwind" fn remember_error_position(_arg: *mut c_void) {
    LAST_ERROR_POSITION.with(|position| position.set(pg_sys::geterrposition()));
}

/// Run the server's raw parser over `sql`: a List of RawStmt, or the syntax
/// error with its position.
fn raw_parse(sql: &str) -> Result<*mut pg_sys::List, SyntaxError> {
    let Ok(c_sql) = CString::new(sql) else {
        return Err(SyntaxError {
            message: "the SQL text contains a NUL byte".into(),
            offset: sql.find('\0'),
            code: PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        });
    };

    LAST_ERROR_POSITION.with(|position| position.set(0));
    let mut callback = pg_sys::ErrorContextCallback {
        // SAFETY: reading the backend-global context stack; we restore it below.
        previous: unsafe { pg_sys::error_context_stack },
        callback: Some(remember_error_position),
        arg: std::ptr::null_mut(),
    };
    unsafe { pg_sys::error_context_stack = &mut callback };

    let parsed = PgTryBuilder::new(|| unsafe {
        Ok(pg_sys::raw_parser(c_sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT))
    })
    .catch_others(|caught| match caught {
        pg_sys::panic::CaughtError::PostgresError(report) => Err(SyntaxError {
            message: report.message().to_string(),
            offset: None,
            code: report.sql_error_code(),
        }),
        other => other.rethrow(),
    })
    .execute();

    // SAFETY: pgrx restored the stack to what it was before the call, which still
    // points at our callback; pop it before `callback` goes out of scope.
    unsafe { pg_sys::error_context_stack = callback.previous };

    parsed.map_err(|mut error| {
        let position = LAST_ERROR_POSITION.with(|position| position.get());
        error.offset = char_position_to_byte_offset(sql, position);
        error
    })
}

/// The raw statements of `sql` (each with its location and length), for the
/// callers that read or change the parse tree itself (autogenerate's desired DDL).
pub fn parse_raw_statements(sql: &str) -> Result<Vec<*mut pg_sys::RawStmt>, SyntaxError> {
    let list = raw_parse(sql)?;
    // SAFETY: raw_parser returns a List of RawStmt.
    Ok(unsafe { PgList::<pg_sys::RawStmt>::from_pg(list) }.iter_ptr().collect())
}

/// The raw parse trees of the statements in `sql`, for shape checks.
pub fn parse_nodes(sql: &str) -> Result<Vec<*mut pg_sys::Node>, SyntaxError> {
    let list = raw_parse(sql)?;
    let statements = unsafe { PgList::<pg_sys::RawStmt>::from_pg(list) };
    // SAFETY: raw_parser returns a List of RawStmt.
    Ok(statements.iter_ptr().map(|raw| unsafe { (*raw).stmt }).collect())
}

/// Split `sql` into top-level statements with the server's raw parser.
pub fn split_statements(sql: &str) -> Result<Vec<Statement>, SyntaxError> {
    let list = raw_parse(sql)?;
    let statements = unsafe { PgList::<pg_sys::RawStmt>::from_pg(list) };
    let mut result = Vec::with_capacity(statements.len());
    // Statements come in text order, so lines are counted in one forward pass.
    let mut lines = LineCounter::new(sql);
    for raw in statements.iter_ptr() {
        pgrx::check_for_interrupts!();
        // SAFETY: raw_parser returns a List of RawStmt.
        let raw = unsafe { &*raw };
        let start = usize::try_from(raw.stmt_location).unwrap_or(0).min(sql.len());
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.len(),
            Ok(len) => (start + len).min(sql.len()),
        };
        let Some(chunk) = sql.get(start..end) else { continue };
        let lead = leading_trivia_len(chunk);
        let text = chunk[lead..].trim_end().to_string();
        if text.is_empty() {
            continue;
        }
        let offset = start + lead;
        let lines_before = lines.breaks_before(offset);
        result.push(Statement { text, lines_before, kind: classify(raw.stmt) });
    }
    Ok(result)
}

/// Counts line breaks up to increasing offsets without rescanning the text.
pub struct LineCounter<'a> {
    text: &'a [u8],
    position: usize,
    breaks: usize,
}

impl<'a> LineCounter<'a> {
    pub fn new(text: &'a str) -> Self {
        LineCounter { text: text.as_bytes(), position: 0, breaks: 0 }
    }

    /// Line breaks before `offset`. Offsets must not decrease; a smaller one
    /// is answered by counting again from the start.
    pub fn breaks_before(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if offset < self.position {
            self.position = 0;
            self.breaks = 0;
        }
        self.breaks += self.text[self.position..offset].iter().filter(|&&byte| byte == b'\n').count();
        self.position = offset;
        self.breaks
    }
}

/// PostgreSQL reports 1-based character positions; we slice Rust strings by byte.
fn char_position_to_byte_offset(sql: &str, position: i32) -> Option<usize> {
    let index = usize::try_from(position).ok()?.checked_sub(1)?;
    sql.char_indices().nth(index).map(|(byte, _)| byte).or(Some(sql.len()))
}

/// Length of the whitespace and `--` comments in front of a statement, so that the
/// reported line is the statement's, not the comment's above it.
fn leading_trivia_len(chunk: &str) -> usize {
    let mut rest = chunk;
    loop {
        let trimmed = rest.trim_start();
        if let Some(comment) = trimmed.strip_prefix("--") {
            rest = comment.find('\n').map_or("", |newline| &comment[newline + 1..]);
        } else {
            return chunk.len() - trimmed.len();
        }
    }
}

/// 1-based line of a byte offset, counting from the line the text started on.
/// It scans from the start: for one position (an error's); a statement knows its own line.
pub fn line_of(text: &str, offset: usize, first_line: usize) -> usize {
    let upto = text.get(..offset.min(text.len())).unwrap_or(text);
    first_line + upto.bytes().filter(|byte| *byte == b'\n').count()
}

fn classify(node: *mut pg_sys::Node) -> StatementKind {
    use StatementKind::*;
    let top_level = |what| TopLevelOnly { what, concurrent_index: None };
    // SAFETY: every branch checks the node tag before casting.
    unsafe {
        if is_a(node, NodeTag::T_TransactionStmt) {
            TransactionControl
        } else if is_a(node, NodeTag::T_IndexStmt) {
            let index = &*(node as *mut pg_sys::IndexStmt);
            if !index.concurrent || index.relation.is_null() {
                return Ordinary;
            }
            let relation = &*index.relation;
            TopLevelOnly {
                what: "CREATE INDEX CONCURRENTLY",
                concurrent_index: Some(ConcurrentIndex {
                    index_name: c_string(index.idxname),
                    table_schema: c_string(relation.schemaname),
                    table_name: c_string(relation.relname).unwrap_or_default(),
                }),
            }
        } else if is_a(node, NodeTag::T_DropStmt) {
            let drop = &*(node as *mut pg_sys::DropStmt);
            if drop.concurrent { top_level("DROP INDEX CONCURRENTLY") } else { Ordinary }
        } else if is_a(node, NodeTag::T_ReindexStmt) {
            let reindex = &*(node as *mut pg_sys::ReindexStmt);
            if has_option(reindex.params, "concurrently") {
                top_level("REINDEX CONCURRENTLY")
            } else {
                Ordinary
            }
        } else if is_a(node, NodeTag::T_CallStmt) {
            let call = &*(node as *mut pg_sys::CallStmt);
            match committing_procedure(call.funccall) {
                Some(what) => top_level(what),
                None => Ordinary,
            }
        } else if is_a(node, NodeTag::T_VacuumStmt) {
            top_level("VACUUM")
        } else if is_a(node, NodeTag::T_CreatedbStmt) {
            top_level("CREATE DATABASE")
        } else if is_a(node, NodeTag::T_DropdbStmt) {
            top_level("DROP DATABASE")
        } else if is_a(node, NodeTag::T_AlterSystemStmt) {
            top_level("ALTER SYSTEM")
        } else if is_a(node, NodeTag::T_CreateTableSpaceStmt) {
            top_level("CREATE TABLESPACE")
        } else if is_a(node, NodeTag::T_DropTableSpaceStmt) {
            top_level("DROP TABLESPACE")
        } else {
            Ordinary
        }
    }
}

/// pg_migrate's procedures that COMMIT after every batch or step.
unsafe fn committing_procedure(call: *mut pg_sys::FuncCall) -> Option<&'static str> {
    if call.is_null() {
        return None;
    }
    let name = PgList::<pg_sys::Node>::from_pg((*call).funcname).iter_ptr().last()?;
    if !is_a(name, NodeTag::T_String) {
        return None;
    }
    match c_string((*(name as *mut pg_sys::String)).sval)?.as_str() {
        "migrate_backfill" => Some("CALL migrate_backfill"),
        "migrate_backfill_resume" => Some("CALL migrate_backfill_resume"),
        "migrate_set_not_null" => Some("CALL migrate_set_not_null"),
        _ => None,
    }
}

unsafe fn has_option(options: *mut pg_sys::List, name: &str) -> bool {
    PgList::<pg_sys::DefElem>::from_pg(options)
        .iter_ptr()
        .any(|option| c_string((*option).defname).as_deref() == Some(name))
}

unsafe fn c_string(pointer: *const std::ffi::c_char) -> Option<String> {
    (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
}

/// Rewrite a concurrent index statement into its in-transaction twin, for the
/// round-trip test, which has to run everything inside one transaction.
/// Only the first `CONCURRENTLY` token is the keyword: it precedes every name.
pub fn without_concurrently(statement: &str) -> Option<String> {
    let upper = statement.to_ascii_uppercase();
    let at = upper.find("CONCURRENTLY")?;
    let rewritten = format!("{}{}", &statement[..at], &statement[at + "CONCURRENTLY".len()..]);
    // Trust the rewrite only if the parser now sees an ordinary statement.
    match split_statements(&rewritten) {
        Ok(parsed) if parsed.len() == 1 && parsed[0].kind == StatementKind::Ordinary => {
            Some(rewritten)
        }
        _ => None,
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn splits_with_dollar_quotes_and_comments() {
        let sql = "-- lead\nCREATE TABLE a (x int);\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n\n-- tail comment\nSELECT 2";
        let statements = split_statements(sql).unwrap();
        assert_eq!(statements.len(), 3);
        assert_eq!(statements[0].text, "CREATE TABLE a (x int)");
        assert_eq!(statements[0].line(1), 2);
        assert!(statements[1].text.contains("SELECT 1; $$"));
        assert_eq!(statements[2].text, "SELECT 2");
        assert_eq!(statements[2].line(1), 6);
    }

    #[pg_test]
    fn reports_syntax_error_position() {
        let sql = "SELECT 1;\nSELECT 2;\nCRATE TABLE t (x int);";
        let error = split_statements(sql).unwrap_err();
        assert_eq!(error.code, PgSqlErrorCode::ERRCODE_SYNTAX_ERROR);
        assert!(error.message.contains("CRATE"), "{}", error.message);
        assert_eq!(line_of(sql, error.offset.unwrap(), 1), 3);
    }

    #[pg_test]
    fn classifies_top_level_only_statements() {
        let sql = "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (x); DROP INDEX CONCURRENTLY i; \
                   REINDEX (CONCURRENTLY) INDEX i; VACUUM t; BEGIN; CREATE INDEX j ON t (x); \
                   CALL migrate_backfill('t', 'x = 1'); CALL other_proc()";
        let kinds: Vec<_> = split_statements(sql).unwrap().into_iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds[0],
            StatementKind::TopLevelOnly {
                what: "CREATE INDEX CONCURRENTLY",
                concurrent_index: Some(ConcurrentIndex {
                    index_name: Some("i".into()),
                    table_schema: Some("s".into()),
                    table_name: "t".into()
                })
            }
        );
        assert!(matches!(kinds[1], StatementKind::TopLevelOnly { what: "DROP INDEX CONCURRENTLY", .. }));
        assert!(matches!(kinds[2], StatementKind::TopLevelOnly { what: "REINDEX CONCURRENTLY", .. }));
        assert!(matches!(kinds[3], StatementKind::TopLevelOnly { what: "VACUUM", .. }));
        assert_eq!(kinds[4], StatementKind::TransactionControl);
        assert_eq!(kinds[5], StatementKind::Ordinary);
        assert!(matches!(kinds[6], StatementKind::TopLevelOnly { what: "CALL migrate_backfill", .. }));
        assert_eq!(kinds[7], StatementKind::Ordinary);
    }

    #[pg_test]
    fn strips_concurrently_only_when_safe() {
        assert_eq!(
            without_concurrently("CREATE INDEX CONCURRENTLY \"concurrently\" ON t (x)").as_deref(),
            Some("CREATE INDEX  \"concurrently\" ON t (x)")
        );
        assert_eq!(without_concurrently("VACUUM t"), None);
    }
}

#[cfg(test)]
mod line_tests {
    use super::{line_of, LineCounter};

    #[test]
    fn line_counter_agrees_with_line_of() {
        let text = "a\nbb\n\nccc\nd";
        let mut counter = LineCounter::new(text);
        for offset in [0, 1, 2, 5, 6, 10, 11, 99] {
            assert_eq!(1 + counter.breaks_before(offset), line_of(text, offset, 1), "offset {offset}");
        }
        // Going back is answered too, by counting again.
        assert_eq!(counter.breaks_before(2), 1);
    }
}
