//! Migration files: an Alembic-style comment header followed by dbmate-style
//! `-- migrate:upgrade` / `-- migrate:downgrade` sections.
//!
//! The header is the leading run of `--` lines. Its first line is the message
//! (unless it is a known `Key: value` line); later `Key: value` lines must use a
//! known key, so a typo such as `Revison ID` is an error rather than silently
//! ignored. Comment lines between the header and the first section are free
//! text, except that a known key there is still honoured (someone separated
//! the keys from the message with a blank line, and dropping their `Revises`
//! would corrupt the graph) and a near-miss of a known key is an error.

use std::fmt;

use crate::revisions::edit_distance;

/// Longest allowed revision id, parent, dependency or branch label.
pub const MAX_IDENTIFIER_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    pub revision_id: String,
    pub message: String,
    pub down_revisions: Vec<String>,
    pub branch_labels: Vec<String>,
    pub depends_on: Vec<String>,
    pub transactional: bool,
    pub create_date: Option<String>,
    /// `-- Allow: <rule> <reason>` lines: dangerous operations this revision acknowledges.
    pub allow: Vec<String>,
    pub upgrade_sql: String,
    pub downgrade_sql: Option<String>,
    /// 1-based line of the first upgrade-body line (the line after the marker
    /// when the body is empty).
    pub upgrade_line: usize,
    pub downgrade_line: Option<usize>,
}

/// An empty transactional revision: the starting point for writing one
/// (see `writer::render`, which ignores the line numbers).
impl Default for MigrationFile {
    fn default() -> Self {
        MigrationFile {
            revision_id: String::new(),
            message: String::new(),
            down_revisions: Vec::new(),
            branch_labels: Vec::new(),
            depends_on: Vec::new(),
            transactional: true,
            create_date: None,
            allow: Vec::new(),
            upgrade_sql: String::new(),
            downgrade_sql: None,
            upgrade_line: 1,
            downgrade_line: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    MissingRevisionId,
    DuplicateHeaderKey {
        key: String,
    },
    UnknownHeaderKey {
        key: String,
    },
    MissingUpgradeSection,
    DuplicateSection {
        section: String,
    },
    UnknownSection {
        marker: String,
    },
    SqlOutsideSection,
    /// what: "revision id" | "parent" | "dependency" | "branch label"
    InvalidIdentifier {
        what: &'static str,
        value: String,
        reason: String,
    },
    InvalidValue {
        key: String,
        value: String,
    },
    /// A header line holds a control character: a bare carriage return would
    /// end the `-- ...` comment that generated plans and scripts write it into.
    ControlCharacter {
        character: char,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub line: Option<usize>,
}

const UPGRADE_MARKER: &str = "-- migrate:upgrade";
const DOWNGRADE_MARKER: &str = "-- migrate:downgrade";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderKey {
    RevisionId,
    Revises,
    CreateDate,
    BranchLabels,
    DependsOn,
    Transactional,
    Allow,
}

impl HeaderKey {
    const ALL: [HeaderKey; 7] = [
        HeaderKey::RevisionId,
        HeaderKey::Revises,
        HeaderKey::CreateDate,
        HeaderKey::BranchLabels,
        HeaderKey::DependsOn,
        HeaderKey::Transactional,
        HeaderKey::Allow,
    ];

    fn name(self) -> &'static str {
        match self {
            HeaderKey::RevisionId => "Revision ID",
            HeaderKey::Revises => "Revises",
            HeaderKey::CreateDate => "Create Date",
            HeaderKey::BranchLabels => "Branch Labels",
            HeaderKey::DependsOn => "Depends On",
            HeaderKey::Transactional => "Transactional",
            HeaderKey::Allow => "Allow",
        }
    }

    /// `key` must already be normalised (see [`normalise_key`]).
    fn from_normalised(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|known| known.name().eq_ignore_ascii_case(key))
    }

    /// The known key closest to an unknown one, if it is plausibly a typo.
    fn closest(key: &str, max_distance: usize) -> Option<Self> {
        let key = key.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .map(|known| {
                (
                    edit_distance(&key, &known.name().to_ascii_lowercase()),
                    known,
                )
            })
            .filter(|(distance, _)| *distance <= max_distance)
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, known)| known)
    }
}

fn known_keys_list() -> String {
    HeaderKey::ALL.map(HeaderKey::name).join(", ")
}

/// Lowercase-insensitive comparison is done later; here only runs of spaces
/// collapse, so `Revision   ID` and `Revision ID` are the same key.
fn normalise_key(key: &str) -> String {
    key.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Splits `Key: value` where Key matches `[A-Za-z][A-Za-z ]*`. Returns the
/// normalised key (original case) and the trimmed value.
fn split_key_line(text: &str) -> Option<(String, &str)> {
    let (key, value) = text.split_once(':')?;
    if !key.chars().next()?.is_ascii_alphabetic() {
        return None;
    }
    if !key.chars().all(|c| c.is_ascii_alphabetic() || c == ' ') {
        return None;
    }
    Some((normalise_key(key), value.trim()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Upgrade,
    Downgrade,
}

enum Marker<'a> {
    Known(Section),
    Unknown(&'a str),
}

/// Recognises `-- migrate:<name>` (case-insensitive, space after `--`
/// optional) in an already-trimmed line.
fn section_marker(trimmed: &str) -> Option<Marker<'_>> {
    let rest = trimmed.strip_prefix("--")?.trim_start();
    let prefix = rest.get(..8)?;
    if !prefix.eq_ignore_ascii_case("migrate:") {
        return None;
    }
    let name = rest[8..].trim();
    Some(if name.eq_ignore_ascii_case("upgrade") {
        Marker::Known(Section::Upgrade)
    } else if name.eq_ignore_ascii_case("downgrade") {
        Marker::Known(Section::Downgrade)
    } else {
        Marker::Unknown(trimmed)
    })
}

/// Checks one revision id, parent, dependency or branch label. They must
/// survive being embedded in targets such as `billing@ab12+2` and in
/// comma-separated header lists, hence the forbidden characters.
pub fn validate_identifier(what: &'static str, value: &str) -> Result<(), ParseErrorKind> {
    let invalid = |reason: String| ParseErrorKind::InvalidIdentifier {
        what,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    let length = value.chars().count();
    if length > MAX_IDENTIFIER_LEN {
        return Err(invalid(format!(
            "it is {length} characters long and the limit is {MAX_IDENTIFIER_LEN}"
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace()) {
        let name = if c == ' ' {
            "a space".to_string()
        } else {
            format!("whitespace ({c:?})")
        };
        return Err(invalid(format!("it contains {name}")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '@' | '-' | '+' | ':' | ','))
    {
        return Err(invalid(format!("it contains '{c}'")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("it contains a control character".into()));
    }
    for reserved in ["head", "heads", "base"] {
        if value.eq_ignore_ascii_case(reserved) {
            return Err(invalid(format!("'{reserved}' is a reserved word")));
        }
    }
    Ok(())
}

impl ParseError {
    fn at(kind: ParseErrorKind, line: usize) -> Self {
        ParseError {
            kind,
            line: Some(line),
        }
    }

    fn on_line(&self) -> String {
        match self.line {
            Some(line) => format!(" on line {line}"),
            None => String::new(),
        }
    }

    /// One readable sentence, naming the line when it is known.
    pub fn message(&self) -> String {
        let on_line = self.on_line();
        match &self.kind {
            ParseErrorKind::MissingRevisionId => {
                format!("the migration header has no \"Revision ID\" key{on_line}")
            }
            ParseErrorKind::DuplicateHeaderKey { key } => {
                format!("header key \"{key}\" is given more than once (again{on_line})")
            }
            ParseErrorKind::UnknownHeaderKey { key } => {
                format!("unknown header key \"{key}\"{on_line}")
            }
            ParseErrorKind::MissingUpgradeSection => {
                format!("the file has no \"{UPGRADE_MARKER}\" section{on_line}")
            }
            ParseErrorKind::DuplicateSection { section } => {
                format!("section \"{section}\" appears more than once (again{on_line})")
            }
            ParseErrorKind::UnknownSection { marker } => {
                format!("unknown section marker \"{marker}\"{on_line}")
            }
            ParseErrorKind::SqlOutsideSection => {
                format!("SQL{on_line} comes before the first section marker, outside any section")
            }
            ParseErrorKind::InvalidIdentifier {
                what,
                value,
                reason,
            } => {
                format!("invalid {what} \"{value}\"{on_line}: {reason}")
            }
            ParseErrorKind::InvalidValue { key, value } => {
                format!("invalid value \"{value}\" for \"{key}\"{on_line}")
            }
            ParseErrorKind::ControlCharacter { character } => {
                format!("the header line{on_line} contains a control character ({:?})", character)
            }
        }
    }

    /// What to write instead, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        let hint = match &self.kind {
            ParseErrorKind::MissingRevisionId => format!(
                "Start the file with a header of \"--\" lines such as \"-- Revision ID: 3f2a9c1e7b10\"; known keys are: {}.",
                known_keys_list()
            ),
            ParseErrorKind::DuplicateHeaderKey { key } => match HeaderKey::from_normalised(key) {
                Some(HeaderKey::Revises | HeaderKey::BranchLabels | HeaderKey::DependsOn) => format!(
                    "Give \"{key}\" once, with all its values separated by commas, e.g. \"-- {key}: a1b2c3d4e5f6, 0f9e8d7c6b5a\"."
                ),
                _ => format!("Give \"{key}\" only once."),
            },
            ParseErrorKind::UnknownHeaderKey { key } => {
                let suggestion = match HeaderKey::closest(key, 3) {
                    Some(known) => format!("Did you mean \"{}\"? ", known.name()),
                    None => String::new(),
                };
                format!(
                    "{suggestion}Known keys are: {}. Free-text comments containing ':' belong below the header, after a blank line.",
                    known_keys_list()
                )
            }
            ParseErrorKind::MissingUpgradeSection => format!(
                "Put the SQL that applies the migration under a line \"{UPGRADE_MARKER}\" (and the SQL that reverts it under \"{DOWNGRADE_MARKER}\")."
            ),
            ParseErrorKind::DuplicateSection { section } => format!(
                "Put all the statements for one direction under a single \"{section}\" marker."
            ),
            ParseErrorKind::UnknownSection { marker } => {
                let lower = marker.to_ascii_lowercase();
                let name = lower
                    .trim_start_matches('-')
                    .trim_start()
                    .trim_start_matches("migrate:")
                    .trim();
                if name.contains("transaction") {
                    "Write the section marker alone and put \"-- Transactional: false\" in the header to run a migration outside a transaction.".to_string()
                } else if name == "up" {
                    format!("Write \"{UPGRADE_MARKER}\".")
                } else if name == "down" {
                    format!("Write \"{DOWNGRADE_MARKER}\".")
                } else {
                    format!(
                        "The only section markers are \"{UPGRADE_MARKER}\" and \"{DOWNGRADE_MARKER}\"."
                    )
                }
            }
            ParseErrorKind::SqlOutsideSection => format!(
                "Only comments and blank lines may come before \"{UPGRADE_MARKER}\"; move the statement into a section."
            ),
            ParseErrorKind::InvalidIdentifier { value, .. } => {
                let mut hint = String::new();
                if value.contains('-') {
                    hint.push_str("Use '_' instead of '-'. ");
                }
                hint.push_str(&format!(
                    "Identifiers are 1 to {MAX_IDENTIFIER_LEN} characters without whitespace or any of @ - + : , (they are used in targets such as \"billing@head\" and \"ab12+2\"), and cannot be head, heads or base."
                ));
                hint
            }
            ParseErrorKind::ControlCharacter { .. } => {
                "Header lines (the message, keys and values) may hold tabs but no other control character; a carriage return is only allowed as part of a CRLF line ending.".to_string()
            }
            ParseErrorKind::InvalidValue { key, .. } => match HeaderKey::from_normalised(key) {
                Some(HeaderKey::Transactional) => {
                    "Use true or false (yes/no and on/off also work).".to_string()
                }
                _ => format!("List each value of \"{key}\" once, separated by commas."),
            },
        };
        Some(hint)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ParseError {}

/// Header values as they are read; `seen` catches duplicates even for keys
/// whose value is empty.
#[derive(Default)]
struct Header {
    seen: [bool; HeaderKey::ALL.len()],
    revision_id: Option<String>,
    down_revisions: Vec<String>,
    branch_labels: Vec<String>,
    depends_on: Vec<String>,
    transactional: Option<bool>,
    create_date: Option<String>,
    allow: Vec<String>,
}

impl Header {
    fn set(&mut self, key: HeaderKey, value: &str, line: usize) -> Result<(), ParseError> {
        let slot = key as usize;
        // Allow may be given once per acknowledged rule.
        if self.seen[slot] && key != HeaderKey::Allow {
            return Err(ParseError::at(
                ParseErrorKind::DuplicateHeaderKey {
                    key: key.name().to_string(),
                },
                line,
            ));
        }
        self.seen[slot] = true;
        match key {
            HeaderKey::RevisionId => {
                validate_identifier("revision id", value).map_err(|k| ParseError::at(k, line))?;
                self.revision_id = Some(value.to_string());
            }
            HeaderKey::Revises => self.down_revisions = parse_list(key, "parent", value, line)?,
            HeaderKey::BranchLabels => {
                self.branch_labels = parse_list(key, "branch label", value, line)?
            }
            HeaderKey::DependsOn => self.depends_on = parse_list(key, "dependency", value, line)?,
            HeaderKey::Transactional => {
                let flag = match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" => true,
                    "false" | "no" | "off" => false,
                    _ => {
                        return Err(ParseError::at(
                            ParseErrorKind::InvalidValue {
                                key: key.name().to_string(),
                                value: value.to_string(),
                            },
                            line,
                        ))
                    }
                };
                self.transactional = Some(flag);
            }
            HeaderKey::CreateDate => {
                self.create_date = (!value.is_empty()).then(|| value.to_string());
            }
            // "<rule> <reason>"; the guard checks the rule name and the reason.
            HeaderKey::Allow => self.allow.push(value.to_string()),
        }
        Ok(())
    }
}

/// Comma-separated identifiers. Empty, `None` and `<base>` (what Alembic
/// writes for a root revision) mean no entries.
fn parse_list(
    key: HeaderKey,
    what: &'static str,
    value: &str,
    line: usize,
) -> Result<Vec<String>, ParseError> {
    if value.is_empty() || value.eq_ignore_ascii_case("none") || value == "<base>" {
        return Ok(Vec::new());
    }
    let mut items: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim) {
        validate_identifier(what, item).map_err(|k| ParseError::at(k, line))?;
        if items.iter().any(|seen| seen == item) {
            return Err(ParseError::at(
                ParseErrorKind::InvalidValue {
                    key: key.name().to_string(),
                    value: value.to_string(),
                },
                line,
            ));
        }
        items.push(item.to_string());
    }
    Ok(items)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HeaderState {
    NotStarted,
    InLeadingRun,
    Ended,
}

/// The first control character other than a tab: \x00-\x1f and \x7f. A line
/// here has lost its line ending, so a carriage return in it stands alone.
fn control_character(line: &str) -> Option<char> {
    line.chars().find(|&c| (c < ' ' && c != '\t') || c == '\x7f')
}

/// Section text with leading and trailing blank lines removed, and the
/// 1-based line of its first kept line.
fn section_body(lines: &[&str], marker_index: usize, end: usize) -> (String, usize) {
    let body = &lines[marker_index + 1..end];
    let first = body.iter().position(|l| !l.trim().is_empty());
    let last = body.iter().rposition(|l| !l.trim().is_empty());
    match (first, last) {
        (Some(first), Some(last)) => (body[first..=last].join("\n"), marker_index + 1 + first + 1),
        _ => (String::new(), marker_index + 2),
    }
}

pub fn parse_migration(source: &str) -> Result<MigrationFile, ParseError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let lines: Vec<&str> = source
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();

    let mut header = Header::default();
    let mut message = String::new();
    let mut state = HeaderState::NotStarted;
    // (section, index of its marker line), in file order.
    let mut sections: Vec<(Section, usize)> = Vec::new();

    for (index, line) in lines.iter().enumerate() {
        crate::revisions::check_interrupts();
        let line_no = index + 1;
        let trimmed = line.trim();
        if let Some(marker) = section_marker(trimmed) {
            let section = match marker {
                Marker::Known(section) => section,
                Marker::Unknown(marker) => {
                    return Err(ParseError::at(
                        ParseErrorKind::UnknownSection {
                            marker: marker.to_string(),
                        },
                        line_no,
                    ))
                }
            };
            if sections.iter().any(|(seen, _)| *seen == section) {
                let name = match section {
                    Section::Upgrade => UPGRADE_MARKER,
                    Section::Downgrade => DOWNGRADE_MARKER,
                };
                return Err(ParseError::at(
                    ParseErrorKind::DuplicateSection {
                        section: name.to_string(),
                    },
                    line_no,
                ));
            }
            sections.push((section, index));
            continue;
        }
        if !sections.is_empty() {
            continue; // section bodies are SQL and are not interpreted here
        }
        if let Some(character) = control_character(line) {
            return Err(ParseError::at(ParseErrorKind::ControlCharacter { character }, line_no));
        }
        if trimmed.is_empty() {
            if state == HeaderState::InLeadingRun {
                state = HeaderState::Ended;
            }
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            return Err(ParseError::at(ParseErrorKind::SqlOutsideSection, line_no));
        };
        let text = comment.trim();
        let key_line =
            split_key_line(text).map(|(key, value)| (HeaderKey::from_normalised(&key), key, value));
        match (state, key_line) {
            (_, Some((Some(known), _, value))) => header.set(known, value, line_no)?,
            (HeaderState::InLeadingRun, Some((None, key, _))) => {
                return Err(ParseError::at(
                    ParseErrorKind::UnknownHeaderKey { key },
                    line_no,
                ))
            }
            // Outside the strict part of the header a `Word: text` line is
            // usually prose, so only an obvious typo of a key is refused.
            (HeaderState::NotStarted | HeaderState::Ended, Some((None, key, _)))
                if HeaderKey::closest(&key, 1).is_some() =>
            {
                return Err(ParseError::at(
                    ParseErrorKind::UnknownHeaderKey { key },
                    line_no,
                ))
            }
            (HeaderState::NotStarted, _) => message = text.to_string(),
            _ => {}
        }
        if state == HeaderState::NotStarted {
            state = HeaderState::InLeadingRun;
        }
    }

    let Some(revision_id) = header.revision_id else {
        return Err(ParseError {
            kind: ParseErrorKind::MissingRevisionId,
            line: None,
        });
    };
    let mut upgrade = None;
    let mut downgrade = None;
    for (position, &(section, marker_index)) in sections.iter().enumerate() {
        let end = sections
            .get(position + 1)
            .map_or(lines.len(), |&(_, next)| next);
        let body = section_body(&lines, marker_index, end);
        match section {
            Section::Upgrade => upgrade = Some(body),
            Section::Downgrade => downgrade = Some(body),
        }
    }
    let Some((upgrade_sql, upgrade_line)) = upgrade else {
        return Err(ParseError {
            kind: ParseErrorKind::MissingUpgradeSection,
            line: None,
        });
    };
    let (downgrade_sql, downgrade_line) = match downgrade {
        Some((sql, line)) => (Some(sql), Some(line)),
        None => (None, None),
    };

    Ok(MigrationFile {
        revision_id,
        message,
        down_revisions: header.down_revisions,
        branch_labels: header.branch_labels,
        depends_on: header.depends_on,
        transactional: header.transactional.unwrap_or(true),
        create_date: header.create_date,
        allow: header.allow,
        upgrade_sql,
        downgrade_sql,
        upgrade_line,
        downgrade_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "\
-- Add user preferences table
--
-- Revision ID: 3f2a9c1e7b10
-- Revises: 9b1d77aa0c42
-- Create Date: 2026-11-20 10:00:00
-- Branch Labels: billing
-- Depends On: 1a2b3c4d5e6f
-- Transactional: false

-- migrate:upgrade
CREATE TABLE user_preferences (
    id bigint PRIMARY KEY,
    prefs jsonb
);

-- migrate:downgrade
DROP TABLE user_preferences;
";

    fn parse_err(source: &str) -> ParseError {
        match parse_migration(source) {
            Ok(file) => panic!("expected an error, parsed {file:?}"),
            Err(error) => error,
        }
    }

    fn with_header(header_lines: &str) -> String {
        format!("-- Message\n{header_lines}\n-- migrate:upgrade\nSELECT 1;\n")
    }

    #[test]
    fn full_file_parses_every_field() {
        let file = parse_migration(FULL).expect("valid file");
        assert_eq!(
            file,
            MigrationFile {
                revision_id: "3f2a9c1e7b10".into(),
                message: "Add user preferences table".into(),
                down_revisions: vec!["9b1d77aa0c42".into()],
                branch_labels: vec!["billing".into()],
                depends_on: vec!["1a2b3c4d5e6f".into()],
                transactional: false,
                create_date: Some("2026-11-20 10:00:00".into()),
                allow: vec![],
                upgrade_sql: "CREATE TABLE user_preferences (\n    id bigint PRIMARY KEY,\n    prefs jsonb\n);".into(),
                downgrade_sql: Some("DROP TABLE user_preferences;".into()),
                upgrade_line: 11,
                downgrade_line: Some(17),
            }
        );
    }

    #[test]
    fn crlf_line_endings_parse_like_lf() {
        let crlf = FULL.replace('\n', "\r\n");
        let file = parse_migration(&crlf).expect("valid CRLF file");
        assert_eq!(file, parse_migration(FULL).expect("valid file"));
        assert!(!file.upgrade_sql.contains('\r'));
    }

    #[test]
    fn a_bare_carriage_return_in_the_message_is_refused() {
        let source = "-- x\rSELECT 1/0;\n-- Revision ID: abc123\n-- migrate:upgrade\nSELECT 1;\n";
        let error = parse_migration(source).unwrap_err();
        assert_eq!(error.kind, ParseErrorKind::ControlCharacter { character: '\r' });
        assert_eq!(error.line, Some(1));
        assert!(error.message().contains("on line 1"), "{}", error.message());
    }

    #[test]
    fn control_characters_in_header_values_are_refused() {
        for bad in ["\r", "\u{0}", "\u{1b}", "\u{7f}", "\u{b}", "\u{c}"] {
            let source = format!("-- message\n-- Revision ID: abc123\n-- Create Date: 2026{bad}x\n-- migrate:upgrade\nSELECT 1;");
            let error = parse_migration(&source).unwrap_err();
            assert!(matches!(error.kind, ParseErrorKind::ControlCharacter { .. }), "{bad:?}: {error:?}");
            assert_eq!(error.line, Some(3), "{bad:?}");
        }
        // A tab is fine, and so is a CRLF line ending.
        let file = parse_migration("-- a\tmessage\r\n-- Revision ID: abc123\r\n-- migrate:upgrade\r\nSELECT 1;\r\n").unwrap();
        assert_eq!(file.message, "a\tmessage");
    }

    #[test]
    fn control_characters_in_section_bodies_are_left_to_sql() {
        let file = parse_migration("-- Revision ID: abc123\n-- migrate:upgrade\nSELECT 'a\rb';").unwrap();
        assert_eq!(file.upgrade_sql, "SELECT 'a\rb';");
    }

    #[test]
    fn minimal_file_uses_defaults() {
        let file = parse_migration("-- Revision ID: abc123\n-- migrate:upgrade\nSELECT 1;")
            .expect("valid");
        assert_eq!(
            file.message, "",
            "a key line as the first line is not a message"
        );
        assert!(file.down_revisions.is_empty());
        assert!(file.branch_labels.is_empty());
        assert!(file.depends_on.is_empty());
        assert!(file.transactional);
        assert_eq!(file.create_date, None);
        assert_eq!(file.upgrade_sql, "SELECT 1;");
        assert_eq!(file.upgrade_line, 3);
        assert_eq!(file.downgrade_sql, None);
        assert_eq!(file.downgrade_line, None);
    }

    #[test]
    fn leading_blank_lines_and_bom_are_allowed() {
        let file = parse_migration(
            "\u{feff}\n\n  \n-- Hello\n-- Revision ID: abc123\n-- migrate:upgrade\nSELECT 1;",
        )
        .expect("valid");
        assert_eq!(file.message, "Hello");
        assert_eq!(file.upgrade_line, 7);
    }

    #[test]
    fn message_may_contain_a_colon_when_it_is_not_a_known_key() {
        let file = parse_migration(
            "-- Billing: add invoices\n-- Revision ID: abc123\n-- migrate:upgrade\n",
        )
        .expect("valid");
        assert_eq!(file.message, "Billing: add invoices");
    }

    #[test]
    fn alembic_revises_none_and_base_mean_root() {
        for value in ["None", "none", "<base>", ""] {
            let file = parse_migration(&with_header(&format!(
                "-- Revision ID: abc123\n-- Revises: {value}"
            )))
            .unwrap_or_else(|e| panic!("Revises: {value:?} failed: {e}"));
            assert!(file.down_revisions.is_empty(), "Revises: {value:?}");
        }
    }

    #[test]
    fn merge_revision_lists_several_parents() {
        let file = parse_migration(&with_header(
            "-- Revision ID: m1\n-- Revises: a1b2, c3d4 ,e5f6\n-- Depends On: x1, y2\n-- Branch Labels: one, two",
        ))
        .expect("valid");
        assert_eq!(file.down_revisions, vec!["a1b2", "c3d4", "e5f6"]);
        assert_eq!(file.depends_on, vec!["x1", "y2"]);
        assert_eq!(file.branch_labels, vec!["one", "two"]);
    }

    #[test]
    fn keys_are_case_insensitive_and_whitespace_normalised() {
        let file = parse_migration(&with_header(
            "--revision   id:abc123\n--   REVISES :  parent1\n-- depends on: dep1\n-- TRANSACTIONAL: No",
        ))
        .expect("valid");
        assert_eq!(file.revision_id, "abc123");
        assert_eq!(file.down_revisions, vec!["parent1"]);
        assert_eq!(file.depends_on, vec!["dep1"]);
        assert!(!file.transactional);
    }

    #[test]
    fn transactional_accepts_every_spelling() {
        for (value, expected) in [
            ("true", true),
            ("TRUE", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("False", false),
            ("no", false),
            ("OFF", false),
        ] {
            let file = parse_migration(&with_header(&format!(
                "-- Revision ID: abc123\n-- Transactional: {value}"
            )))
            .unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(file.transactional, expected, "{value}");
        }
    }

    #[test]
    fn bad_transactional_value_is_rejected_with_line() {
        let error = parse_err(&with_header(
            "-- Revision ID: abc123\n-- Transactional: maybe",
        ));
        assert_eq!(
            error.kind,
            ParseErrorKind::InvalidValue {
                key: "Transactional".into(),
                value: "maybe".into()
            }
        );
        assert_eq!(error.line, Some(3));
        assert!(error.message().contains("line 3"), "{}", error.message());
        assert!(error.hint().unwrap_or_default().contains("true or false"));
    }

    #[test]
    fn missing_revision_id_is_an_error() {
        let error =
            parse_err("-- Just a message\n-- Revises: abc123\n\n-- migrate:upgrade\nSELECT 1;");
        assert_eq!(error.kind, ParseErrorKind::MissingRevisionId);
        assert_eq!(error.line, None);
        assert!(error.hint().unwrap_or_default().contains("Revision ID: "));
    }

    #[test]
    fn empty_file_is_missing_revision_id() {
        assert_eq!(parse_err("").kind, ParseErrorKind::MissingRevisionId);
    }

    #[test]
    fn empty_revision_id_is_an_invalid_identifier() {
        let error = parse_err(&with_header("-- Revision ID:"));
        assert!(
            matches!(
                error.kind,
                ParseErrorKind::InvalidIdentifier { what: "revision id", ref value, .. } if value.is_empty()
            ),
            "{error:?}"
        );
    }

    #[test]
    fn duplicate_revision_id_key_is_an_error_at_the_second_line() {
        let error = parse_err(&with_header(
            "-- Revision ID: abc123\n-- Revision ID: def456",
        ));
        assert_eq!(
            error.kind,
            ParseErrorKind::DuplicateHeaderKey {
                key: "Revision ID".into()
            }
        );
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn duplicate_list_key_hint_suggests_commas() {
        let error = parse_err(&with_header(
            "-- Revision ID: m1\n-- Revises: a1\n-- revises: b2",
        ));
        assert_eq!(
            error.kind,
            ParseErrorKind::DuplicateHeaderKey {
                key: "Revises".into()
            }
        );
        assert_eq!(error.line, Some(4));
        assert!(error
            .hint()
            .unwrap_or_default()
            .contains("separated by commas"));
    }

    #[test]
    fn duplicate_key_with_empty_value_is_still_a_duplicate() {
        let error = parse_err(&with_header(
            "-- Revision ID: m1\n-- Revises:\n-- Revises: a1",
        ));
        assert_eq!(
            error.kind,
            ParseErrorKind::DuplicateHeaderKey {
                key: "Revises".into()
            }
        );
    }

    #[test]
    fn unknown_key_reports_line_and_suggests_known_key() {
        let error = parse_err("-- Message\n--\n-- Revison ID: abc123\n-- migrate:upgrade\n");
        assert_eq!(
            error.kind,
            ParseErrorKind::UnknownHeaderKey {
                key: "Revison ID".into()
            }
        );
        assert_eq!(error.line, Some(3));
        assert!(error.message().contains("line 3"), "{}", error.message());
        let hint = error.hint().unwrap_or_default();
        assert!(hint.contains("Did you mean \"Revision ID\""), "{hint}");
        assert!(hint.contains("Depends On"), "{hint}");
    }

    #[test]
    fn unknown_key_in_header_is_an_error_even_if_unlike_any_key() {
        let error = parse_err(&with_header("-- Revision ID: abc123\n-- Author: someone"));
        assert_eq!(
            error.kind,
            ParseErrorKind::UnknownHeaderKey {
                key: "Author".into()
            }
        );
        assert_eq!(error.line, Some(3));
        assert!(!error.hint().unwrap_or_default().contains("Did you mean"));
    }

    #[test]
    fn typo_of_a_key_on_the_first_line_is_an_error_not_a_message() {
        let error = parse_err("-- Revison ID: abc123\n-- migrate:upgrade\n");
        assert_eq!(
            error.kind,
            ParseErrorKind::UnknownHeaderKey {
                key: "Revison ID".into()
            }
        );
        assert_eq!(error.line, Some(1));
    }

    #[test]
    fn free_text_header_lines_are_ignored() {
        let file = parse_migration(
            "-- Message\n-- more words about it, without a colon\n--\n-- Revision ID: abc123\n-- 2nd: not a key\n-- migrate:upgrade\n",
        )
        .expect("valid");
        assert_eq!(file.revision_id, "abc123");
    }

    #[test]
    fn comments_after_the_header_may_contain_colons() {
        let file = parse_migration(
            "-- Revision ID: abc123\n\n-- Note: this one locks the table\n-- migrate:upgrade\nSELECT 1;",
        )
        .expect("valid");
        assert_eq!(file.upgrade_sql, "SELECT 1;");
    }

    #[test]
    fn known_key_below_a_blank_line_is_still_honoured() {
        let file = parse_migration(
            "-- Add things\n\n-- Revision ID: abc123\n-- Revises: parent1\n\n-- migrate:upgrade\nSELECT 1;",
        )
        .expect("valid");
        assert_eq!(file.message, "Add things");
        assert_eq!(file.revision_id, "abc123");
        assert_eq!(file.down_revisions, vec!["parent1"]);
    }

    #[test]
    fn key_typo_below_a_blank_line_is_an_error() {
        let error = parse_err("-- Revision ID: abc123\n\n-- Depend On: x1\n-- migrate:upgrade\n");
        assert_eq!(
            error.kind,
            ParseErrorKind::UnknownHeaderKey {
                key: "Depend On".into()
            }
        );
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn missing_upgrade_section_is_an_error() {
        let error = parse_err("-- Revision ID: abc123\n\n-- migrate:downgrade\nDROP TABLE t;");
        assert_eq!(error.kind, ParseErrorKind::MissingUpgradeSection);
        assert!(error
            .hint()
            .unwrap_or_default()
            .contains("-- migrate:upgrade"));
    }

    #[test]
    fn file_without_any_section_is_missing_upgrade() {
        let error = parse_err("-- Revision ID: abc123\n");
        assert_eq!(error.kind, ParseErrorKind::MissingUpgradeSection);
    }

    #[test]
    fn sql_before_the_first_section_is_an_error() {
        let error = parse_err("-- Revision ID: abc123\n\nCREATE TABLE t ();\n-- migrate:upgrade\n");
        assert_eq!(error.kind, ParseErrorKind::SqlOutsideSection);
        assert_eq!(error.line, Some(3));
        assert!(error.message().contains("line 3"));
    }

    #[test]
    fn sql_at_the_very_top_is_an_error() {
        let error = parse_err("CREATE TABLE t ();\n-- Revision ID: abc123\n-- migrate:upgrade\n");
        assert_eq!(error.kind, ParseErrorKind::SqlOutsideSection);
        assert_eq!(error.line, Some(1));
    }

    #[test]
    fn duplicate_upgrade_section_is_an_error() {
        let error = parse_err(
            "-- Revision ID: abc123\n-- migrate:upgrade\nSELECT 1;\n-- migrate:upgrade\nSELECT 2;",
        );
        assert_eq!(
            error.kind,
            ParseErrorKind::DuplicateSection {
                section: UPGRADE_MARKER.into()
            }
        );
        assert_eq!(error.line, Some(4));
    }

    #[test]
    fn duplicate_downgrade_section_is_an_error() {
        let error = parse_err(
            "-- Revision ID: abc123\n-- migrate:upgrade\n-- migrate:downgrade\n--migrate:DOWNGRADE\n",
        );
        assert_eq!(
            error.kind,
            ParseErrorKind::DuplicateSection {
                section: DOWNGRADE_MARKER.into()
            }
        );
        assert_eq!(error.line, Some(4));
    }

    #[test]
    fn unknown_section_marker_is_an_error_with_dbmate_hint() {
        let error = parse_err("-- Revision ID: abc123\n-- migrate:up\nSELECT 1;");
        assert_eq!(
            error.kind,
            ParseErrorKind::UnknownSection {
                marker: "-- migrate:up".into()
            }
        );
        assert_eq!(error.line, Some(2));
        assert!(error
            .hint()
            .unwrap_or_default()
            .contains("-- migrate:upgrade"));
    }

    #[test]
    fn dbmate_transaction_option_points_to_the_header_key() {
        let error = parse_err("-- Revision ID: abc123\n-- migrate:upgrade transaction:false\n");
        assert!(matches!(error.kind, ParseErrorKind::UnknownSection { .. }));
        assert!(error
            .hint()
            .unwrap_or_default()
            .contains("Transactional: false"));
    }

    #[test]
    fn unknown_marker_inside_a_section_is_an_error() {
        let error = parse_err(
            "-- Revision ID: abc123\n-- migrate:upgrade\nSELECT 1;\n-- migrate:sideways\n",
        );
        assert_eq!(error.line, Some(4));
        assert!(
            matches!(error.kind, ParseErrorKind::UnknownSection { ref marker } if marker == "-- migrate:sideways")
        );
    }

    #[test]
    fn markers_are_case_insensitive_and_need_no_space() {
        let file = parse_migration("-- Revision ID: abc123\n  --MIGRATE:Upgrade  \nSELECT 1;\n--migrate:downgrade\nSELECT 2;")
            .expect("valid");
        assert_eq!(file.upgrade_sql, "SELECT 1;");
        assert_eq!(file.downgrade_sql.as_deref(), Some("SELECT 2;"));
    }

    #[test]
    fn downgrade_may_come_first() {
        let file = parse_migration(
            "-- Revision ID: abc123\n-- migrate:downgrade\nDROP TABLE t;\n-- migrate:upgrade\nCREATE TABLE t ();",
        )
        .expect("valid");
        assert_eq!(file.upgrade_sql, "CREATE TABLE t ();");
        assert_eq!(file.upgrade_line, 5);
        assert_eq!(file.downgrade_sql.as_deref(), Some("DROP TABLE t;"));
        assert_eq!(file.downgrade_line, Some(3));
    }

    #[test]
    fn empty_sections_give_empty_text() {
        let file = parse_migration(
            "-- Revision ID: abc123\n-- migrate:upgrade\n\n   \n-- migrate:downgrade\n",
        )
        .expect("valid");
        assert_eq!(file.upgrade_sql, "");
        assert_eq!(file.upgrade_line, 3);
        assert_eq!(file.downgrade_sql.as_deref(), Some(""));
        assert_eq!(file.downgrade_line, Some(6));
    }

    #[test]
    fn section_text_keeps_inner_text_byte_exact() {
        let body = "  SELECT 1;  \n\n\t-- keep this comment\nSELECT $$\n  two\n$$;\t";
        let file = parse_migration(&format!(
            "-- Revision ID: abc123\n-- migrate:upgrade\n\n\n{body}\n\n  \n"
        ))
        .expect("valid");
        assert_eq!(file.upgrade_sql, body);
        assert_eq!(file.upgrade_line, 5);
    }

    #[test]
    fn invalid_revision_id_characters_are_rejected() {
        for (id, needle) in [
            ("abc-123", "'-'"),
            ("abc@123", "'@'"),
            ("abc+123", "'+'"),
            ("abc:123", "':'"),
            ("abc,123", "','"),
            ("abc\t123", "whitespace"),
        ] {
            let error = parse_err(&with_header(&format!("-- Revision ID: {id}")));
            match &error.kind {
                ParseErrorKind::InvalidIdentifier {
                    what,
                    value,
                    reason,
                } => {
                    assert_eq!(*what, "revision id");
                    assert_eq!(value, id);
                    assert!(reason.contains(needle), "{id}: {reason}");
                }
                other => panic!("{id}: unexpected {other:?}"),
            }
            assert_eq!(error.line, Some(2), "{id}");
        }
    }

    #[test]
    fn revision_id_with_inner_space_is_rejected() {
        let error = parse_err(&with_header("-- Revision ID: abc 123"));
        assert!(
            matches!(
                error.kind,
                ParseErrorKind::InvalidIdentifier { ref reason, .. } if reason.contains("a space")
            ),
            "{error:?}"
        );
    }

    #[test]
    fn reserved_words_are_rejected_in_any_case() {
        for word in ["head", "HEADS", "Base"] {
            let error = parse_err(&with_header(&format!("-- Revision ID: {word}")));
            assert!(
                matches!(
                    error.kind,
                    ParseErrorKind::InvalidIdentifier { ref reason, .. } if reason.contains("reserved")
                ),
                "{word}: {error:?}"
            );
        }
    }

    #[test]
    fn each_list_key_names_what_is_invalid() {
        for (line, what) in [
            ("-- Revises: good1, bad-one", "parent"),
            ("-- Depends On: heads", "dependency"),
            ("-- Branch Labels: user-auth", "branch label"),
        ] {
            let error = parse_err(&with_header(&format!("-- Revision ID: abc123\n{line}")));
            match error.kind {
                ParseErrorKind::InvalidIdentifier { what: got, .. } => assert_eq!(got, what),
                other => panic!("{line}: unexpected {other:?}"),
            }
            assert_eq!(error.line, Some(3));
        }
    }

    #[test]
    fn dash_in_label_hint_suggests_underscore() {
        let error = parse_err(&with_header(
            "-- Revision ID: abc123\n-- Branch Labels: user-auth",
        ));
        assert!(error
            .hint()
            .unwrap_or_default()
            .starts_with("Use '_' instead of '-'"));
    }

    #[test]
    fn empty_list_entry_is_rejected() {
        let error = parse_err(&with_header("-- Revision ID: m1\n-- Revises: a1,,b2"));
        assert!(
            matches!(
                error.kind,
                ParseErrorKind::InvalidIdentifier { what: "parent", ref reason, .. } if reason.contains("empty")
            ),
            "{error:?}"
        );
    }

    #[test]
    fn repeated_list_entry_is_rejected() {
        let error = parse_err(&with_header("-- Revision ID: m1\n-- Revises: a1, a1"));
        assert_eq!(
            error.kind,
            ParseErrorKind::InvalidValue {
                key: "Revises".into(),
                value: "a1, a1".into()
            }
        );
    }

    #[test]
    fn identifier_length_limit() {
        let longest = "a".repeat(MAX_IDENTIFIER_LEN);
        assert!(validate_identifier("revision id", &longest).is_ok());
        let too_long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        match validate_identifier("revision id", &too_long) {
            Err(ParseErrorKind::InvalidIdentifier { reason, .. }) => {
                assert!(reason.contains("129"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn identifiers_may_use_dots_underscores_and_unicode() {
        for id in ["0001_init", "v1.2", "ärger", "headless", "baseline"] {
            assert_eq!(validate_identifier("revision id", id), Ok(()), "{id}");
        }
    }

    #[test]
    fn control_characters_are_rejected() {
        assert!(validate_identifier("revision id", "ab\u{7}c").is_err());
    }

    #[test]
    fn display_matches_message() {
        let error = parse_err("-- Revision ID: abc123\n");
        assert_eq!(error.to_string(), error.message());
    }

    #[test]
    fn every_error_has_a_hint() {
        let kinds = [
            ParseErrorKind::MissingRevisionId,
            ParseErrorKind::DuplicateHeaderKey {
                key: "Transactional".into(),
            },
            ParseErrorKind::UnknownHeaderKey { key: "Foo".into() },
            ParseErrorKind::MissingUpgradeSection,
            ParseErrorKind::DuplicateSection {
                section: UPGRADE_MARKER.into(),
            },
            ParseErrorKind::UnknownSection {
                marker: "-- migrate:down".into(),
            },
            ParseErrorKind::SqlOutsideSection,
            ParseErrorKind::InvalidIdentifier {
                what: "parent",
                value: "x y".into(),
                reason: "r".into(),
            },
            ParseErrorKind::InvalidValue {
                key: "Revises".into(),
                value: "a, a".into(),
            },
        ];
        for kind in kinds {
            let error = ParseError { kind, line: None };
            assert!(!error.message().contains("line"), "{}", error.message());
            assert!(error.hint().is_some_and(|h| !h.is_empty()), "{error:?}");
        }
    }

    #[test]
    fn unknown_down_marker_hint_names_downgrade() {
        let error = ParseError {
            kind: ParseErrorKind::UnknownSection {
                marker: "-- migrate:down".into(),
            },
            line: Some(9),
        };
        assert_eq!(
            error.hint().as_deref(),
            Some("Write \"-- migrate:downgrade\".")
        );
        assert_eq!(
            error.message(),
            "unknown section marker \"-- migrate:down\" on line 9"
        );
    }
}

#[cfg(test)]
mod allow_tests {
    use super::*;

    #[test]
    fn allow_may_repeat_and_keeps_its_text() {
        let file = parse_migration(
            "-- m\n-- Revision ID: a1\n-- Allow: drop_column legacy name, unused since v42\n-- Allow: truncate staging only\n\n-- migrate:upgrade\nSELECT 1;\n",
        )
        .unwrap();
        assert_eq!(file.allow, vec!["drop_column legacy name, unused since v42", "truncate staging only"]);
    }
}
