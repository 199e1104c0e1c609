//! Every refusal becomes a PostgreSQL ERROR with a real SQLSTATE, a DETAIL and,
//! where there is one, a HINT. pgrx's `error!()` would give XX000, which tells a
//! DBA nothing, so everything user-facing goes through [`raise`].
//!
//! pgrx 0.18 maps unknown SQLSTATEs to XX000 when it re-throws, so we only use
//! codes from PostgreSQL's own table (docs/errors.md lists which means what).

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::revisions::graph::GraphError;
use crate::revisions::parser::{ParseError, ParseErrorKind};
use crate::revisions::authoring::PlacementError;
use crate::revisions::target::TargetError;

/// Raise an ERROR. Never returns: pgrx unwinds to the SQL boundary and reports it.
pub fn raise(
    code: PgSqlErrorCode,
    message: impl Into<String>,
    detail: Option<String>,
    hint: Option<String>,
) -> ! {
    let mut report = ErrorReport::new(code, message.into(), "pg_migrate");
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

pub fn parse_error_code(kind: &ParseErrorKind) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match kind {
        ParseErrorKind::MissingRevisionId => ERRCODE_NULL_VALUE_NOT_ALLOWED,
        ParseErrorKind::DuplicateHeaderKey { .. } => ERRCODE_DUPLICATE_OBJECT,
        ParseErrorKind::UnknownHeaderKey { .. } => ERRCODE_UNDEFINED_PARAMETER,
        ParseErrorKind::MissingUpgradeSection => ERRCODE_INVALID_OBJECT_DEFINITION,
        ParseErrorKind::DuplicateSection { .. }
        | ParseErrorKind::UnknownSection { .. }
        | ParseErrorKind::SqlOutsideSection => ERRCODE_SYNTAX_ERROR,
        ParseErrorKind::InvalidIdentifier { .. } => ERRCODE_INVALID_NAME,
        ParseErrorKind::InvalidValue { .. } | ParseErrorKind::ControlCharacter { .. } => {
            ERRCODE_INVALID_PARAMETER_VALUE
        }
    }
}

pub fn graph_error_code(error: &GraphError) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match error {
        GraphError::DuplicateRevision { .. }
        | GraphError::DuplicateBranchLabel { .. }
        | GraphError::LabelClashesWithRevision { .. } => ERRCODE_DUPLICATE_OBJECT,
        GraphError::Cycle { .. } => ERRCODE_INVALID_RECURSION,
        // A parent that is not there is a dangling reference, like a foreign key.
        GraphError::MissingReference { .. } => ERRCODE_FOREIGN_KEY_VIOLATION,
        GraphError::UnknownRevision { .. } | GraphError::UnknownBranchLabel { .. } => {
            ERRCODE_UNDEFINED_OBJECT
        }
        GraphError::NoRevisions => ERRCODE_UNDEFINED_OBJECT,
        GraphError::AmbiguousPrefix { .. } => ERRCODE_AMBIGUOUS_ALIAS,
        GraphError::PrefixTooShort { .. }
        | GraphError::NotInBranch { .. }
        | GraphError::InvalidForDirection { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
        GraphError::MultipleHeads { .. }
        | GraphError::MultipleCurrentHeads { .. }
        | GraphError::AmbiguousStep { .. } => ERRCODE_CARDINALITY_VIOLATION,
        GraphError::StepOutOfRange { .. } => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        GraphError::NotApplied { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        GraphError::MergeNeedsTwo { .. } | GraphError::MergeOfAncestor { .. } => {
            ERRCODE_INVALID_PARAMETER_VALUE
        }
        GraphError::AlreadyMerged { .. } => ERRCODE_DUPLICATE_OBJECT,
    }
}

/// Report a file-format error, naming the file (and line, which the message carries).
pub fn raise_parse_error(file: Option<&str>, error: &ParseError) -> ! {
    let message = match file {
        Some(file) => format!("{file}: {}", error.message()),
        None => error.message(),
    };
    raise(
        parse_error_code(&error.kind),
        message,
        Some("Nothing was loaded.".into()),
        error.hint(),
    )
}

pub fn raise_graph_error(error: &GraphError) -> ! {
    raise(graph_error_code(error), error.message(), None, error.hint())
}

/// Where a new revision or merge cannot go.
pub fn raise_placement_error(error: &PlacementError) -> ! {
    let code = match error {
        PlacementError::Graph(graph) => graph_error_code(graph),
        PlacementError::Target(_) => PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
        PlacementError::SeveralHeads { .. } => PgSqlErrorCode::ERRCODE_CARDINALITY_VIOLATION,
        PlacementError::NotAHead { .. } | PlacementError::NotAPlace { .. } => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
    };
    raise(code, error.message(), Some("Nothing was written or loaded.".into()), error.hint())
}

pub fn raise_target_error(error: &TargetError) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
        error.message(),
        None,
        error.hint(),
    )
}

/// Unwrap an SPI result on our own catalog queries. These fail only if the
/// extension's schema was tampered with, which is an internal error.
pub trait OrRaise<T> {
    fn or_raise(self, what: &str) -> T;
}

impl<T> OrRaise<T> for Result<T, pgrx::spi::SpiError> {
    fn or_raise(self, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("pg_migrate could not {what}: {error}"),
                Some("The tables in schema migrate may have been altered by hand.".into()),
                None,
            ),
        }
    }
}
