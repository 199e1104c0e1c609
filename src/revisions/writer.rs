//! Writing migration files: the text `migrate_load` accepts, made from parts.
//!
//! [`render`] is the one place that writes a revision file (migrate_revision,
//! merges, revisions made from drift). It refuses what the parser would refuse
//! or read back differently (control characters in the message, a message that
//! reads as a header key, a section that contains a section marker), by parsing
//! its own output and comparing: what it returns is exactly what loads.

use crate::revisions::parser::{parse_migration, validate_identifier, MigrationFile, ParseErrorKind};

/// Why a file could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    EmptyMessage,
    ControlCharacter { field: &'static str, character: char },
    InvalidIdentifier(ParseErrorKind),
    /// The text would not read back as written (e.g. a message such as
    /// "Revises: x", or a section holding a "-- migrate:" marker line).
    DoesNotReadBack { field: &'static str },
}

impl WriteError {
    pub fn message(&self) -> String {
        match self {
            WriteError::EmptyMessage => "a revision needs a message".to_string(),
            WriteError::ControlCharacter { field, character } => {
                format!("the {field} contains a control character ({character:?})")
            }
            WriteError::InvalidIdentifier(kind) => match kind {
                ParseErrorKind::InvalidIdentifier { what, value, reason } => {
                    format!("invalid {what} \"{value}\": {reason}")
                }
                other => format!("{other:?}"),
            },
            WriteError::DoesNotReadBack { field } => {
                format!("the {field} would not read back as written in a migration file")
            }
        }
    }

    pub fn hint(&self) -> String {
        match self {
            WriteError::EmptyMessage => "Say in a few words what the revision does, as alembic revision -m does.".into(),
            WriteError::ControlCharacter { .. } => {
                "The message and header values are header lines: tabs are allowed, other control characters (line breaks included) are not.".into()
            }
            WriteError::InvalidIdentifier(_) => {
                "Identifiers are 1 to 128 characters without whitespace or any of @ - + : , and cannot be head, heads or base.".into()
            }
            WriteError::DoesNotReadBack { .. } => {
                "A message may not look like a header key (\"Revises: ...\"), and a section may not hold a \"-- migrate:\" marker line.".into()
            }
        }
    }
}

fn control(text: &str) -> Option<char> {
    text.chars().find(|&c| (c < ' ' && c != '\t') || c == '\x7f')
}

/// A section as the parser reads it back: CRLF as LF, leading and trailing
/// blank lines dropped.
pub fn normalise_section(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    match (first, last) {
        (Some(first), Some(last)) => lines[first..=last].join("\n"),
        _ => String::new(),
    }
}

/// The message as the file's first line will hold it (trimmed), or why it cannot.
pub fn check_message(message: &str) -> Result<&str, WriteError> {
    let message = message.trim();
    if message.is_empty() {
        return Err(WriteError::EmptyMessage);
    }
    if let Some(character) = control(message) {
        return Err(WriteError::ControlCharacter { field: "message", character });
    }
    Ok(message)
}

/// The file's text, checked to parse back to exactly these parts. The parts
/// are a [`MigrationFile`] as the parser would return it; its line numbers
/// (where a parsed file's sections start) are not read.
pub fn render(parts: &MigrationFile) -> Result<String, WriteError> {
    let message = check_message(&parts.message)?;
    validate_identifier("revision id", &parts.revision_id).map_err(WriteError::InvalidIdentifier)?;
    for (what, list) in [("parent", &parts.down_revisions), ("branch label", &parts.branch_labels), ("dependency", &parts.depends_on)] {
        for item in list {
            crate::revisions::check_interrupts();
            validate_identifier(what, item).map_err(WriteError::InvalidIdentifier)?;
        }
    }
    let mut text = format!("-- {message}\n--\n-- Revision ID: {}\n", parts.revision_id);
    text.push_str(&format!("-- Revises: {}\n", parts.down_revisions.join(", ")).replace(": \n", ":\n"));
    if let Some(date) = parts.create_date.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        if let Some(character) = control(date) {
            return Err(WriteError::ControlCharacter { field: "create date", character });
        }
        text.push_str(&format!("-- Create Date: {date}\n"));
    }
    if !parts.branch_labels.is_empty() {
        text.push_str(&format!("-- Branch Labels: {}\n", parts.branch_labels.join(", ")));
    }
    if !parts.depends_on.is_empty() {
        text.push_str(&format!("-- Depends On: {}\n", parts.depends_on.join(", ")));
    }
    if !parts.transactional {
        text.push_str("-- Transactional: false\n");
    }
    for line in &parts.allow {
        crate::revisions::check_interrupts();
        if let Some(character) = control(line) {
            return Err(WriteError::ControlCharacter { field: "Allow line", character });
        }
        text.push_str(&format!("-- Allow: {}\n", line.trim()));
    }
    let upgrade = normalise_section(&parts.upgrade_sql);
    text.push_str("\n-- migrate:upgrade\n");
    if !upgrade.is_empty() {
        text.push_str(&upgrade);
        text.push('\n');
    }
    let downgrade = parts.downgrade_sql.as_deref().map(normalise_section);
    if let Some(downgrade) = &downgrade {
        text.push_str("\n-- migrate:downgrade\n");
        if !downgrade.is_empty() {
            text.push_str(downgrade);
            text.push('\n');
        }
    }

    let back = parse_migration(&text).map_err(|_| WriteError::DoesNotReadBack { field: "text" })?;
    let create_date = parts.create_date.as_deref().map(str::trim).filter(|d| !d.is_empty());
    let checks: [(&'static str, bool); 10] = [
        ("message", back.message == message),
        ("revision id", back.revision_id == parts.revision_id),
        ("parents", back.down_revisions == parts.down_revisions),
        ("create date", back.create_date.as_deref() == create_date),
        ("Allow lines", back.allow.iter().eq(parts.allow.iter().map(|line| line.trim()))),
        ("branch labels", back.branch_labels == parts.branch_labels),
        ("dependencies", back.depends_on == parts.depends_on),
        ("transactional flag", back.transactional == parts.transactional),
        ("upgrade section", back.upgrade_sql == upgrade),
        ("downgrade section", back.downgrade_sql == downgrade),
    ];
    if let Some((field, _)) = checks.iter().find(|(_, same)| !same) {
        return Err(WriteError::DoesNotReadBack { field });
    }
    Ok(text)
}

/// `<revision>_<slug>.sql`, Alembic's file name: the message's words,
/// lowercased and joined by '_', cut at a word boundary after 40 characters.
pub fn file_name(revision_id: &str, message: &str) -> String {
    const SLUG_LEN: usize = 40;
    let words: Vec<String> = message
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut slug = words.join("_");
    if slug.chars().count() > SLUG_LEN {
        let cut: String = slug.chars().take(SLUG_LEN).collect();
        slug = match cut.rsplit_once('_') {
            Some((head, _)) => format!("{head}_"),
            None => cut,
        };
    }
    if slug.is_empty() {
        format!("{revision_id}.sql")
    } else {
        format!("{revision_id}_{slug}.sql")
    }
}

#[cfg(test)]
mod tests;
