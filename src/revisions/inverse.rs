//! The mechanical inverse of recorded DDL, for migrate_revision_from_drift (issue 12):
//! the downgrade of a revision made from drift. Pure: the pgrx layer extracts a
//! [`Change`] from each statement's parse tree; this module decides whether it
//! can be undone and writes the statement that undoes it.
//!
//! Only changes whose inverse loses nothing the change added are inverted:
//! CREATE TABLE/INDEX/VIEW/MATERIALIZED VIEW/SEQUENCE/TYPE (DROP), ADD COLUMN
//! (DROP COLUMN), ADD CONSTRAINT (DROP CONSTRAINT), a RENAME (renamed back), and
//! a column type change when the old type holds every value of the new one.
//! Anything else (a DROP, a type change that may lose values, a constraint
//! without a name) has no inverse: the revision then has no downgrade section
//! and a comment names what could not be inverted.

use super::check_interrupts;

/// A schema-qualified name, as the parse tree gives it (schema optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub schema: Option<String>,
    pub name: String,
}

impl Name {
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        Name { schema: schema.map(str::to_string), name: name.to_string() }
    }

    fn sql(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }

    /// The same object after a RENAME TO `new_name` (a rename keeps the schema).
    fn renamed(&self, new_name: &str) -> Name {
        Name { schema: self.schema.clone(), name: new_name.to_string() }
    }
}

/// Objects a CREATE or RENAME can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    Index,
    View,
    MaterializedView,
    Sequence,
    Type,
}

impl ObjectKind {
    fn keyword(self) -> &'static str {
        match self {
            ObjectKind::Table => "TABLE",
            ObjectKind::Index => "INDEX",
            ObjectKind::View => "VIEW",
            ObjectKind::MaterializedView => "MATERIALIZED VIEW",
            ObjectKind::Sequence => "SEQUENCE",
            ObjectKind::Type => "TYPE",
        }
    }
}

/// What one recorded statement did, as far as inverting it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// CREATE <kind> name. `if_not_exists`: it may have created nothing, so
    /// dropping it could remove an object that existed before.
    Create { kind: ObjectKind, name: Name, if_not_exists: bool },
    /// ALTER TABLE table ADD COLUMN column (without IF NOT EXISTS).
    AddColumn { table: Name, column: String },
    /// ALTER TABLE table ADD CONSTRAINT constraint; `None` when the statement
    /// named none (the server chose a name the statement does not tell).
    AddConstraint { table: Name, constraint: Option<String> },
    /// ALTER <kind> name RENAME TO new_name.
    Rename { kind: ObjectKind, name: Name, new_name: String },
    /// ALTER TABLE table RENAME COLUMN column TO new_name.
    RenameColumn { table: Name, column: String, new_name: String },
    /// ALTER TABLE table ALTER COLUMN column TYPE new_type, from old_type
    /// (as format_type gives them). `lossless`: every value of new_type fits
    /// old_type again, so the change back loses nothing.
    AlterColumnType { table: Name, column: String, old_type: String, new_type: String, lossless: bool },
    /// Anything else: `what` names it for the comment (its command tag and object).
    Other { what: String },
}

/// Why a change has no inverse, for the revision's comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInvertible {
    pub what: String,
    pub why: &'static str,
}

/// The statement that undoes `change`, or why there is none.
pub fn inverse(change: &Change) -> Result<String, NotInvertible> {
    match change {
        Change::Create { kind, name, if_not_exists: false } => Ok(format!("DROP {} {};", kind.keyword(), name.sql())),
        Change::Create { kind, name, if_not_exists: true } => Err(NotInvertible {
            what: format!("CREATE {} IF NOT EXISTS {}", kind.keyword(), name.sql()),
            why: "it may have created nothing, and a DROP would remove what was there before",
        }),
        Change::AddColumn { table, column } => {
            Ok(format!("ALTER TABLE {} DROP COLUMN {};", table.sql(), quote_ident(column)))
        }
        Change::AddConstraint { table, constraint: Some(constraint) } => {
            Ok(format!("ALTER TABLE {} DROP CONSTRAINT {};", table.sql(), quote_ident(constraint)))
        }
        Change::AddConstraint { table, constraint: None } => Err(NotInvertible {
            what: format!("ALTER TABLE {} ADD a constraint without a name", table.sql()),
            why: "the statement does not name the constraint the server created",
        }),
        Change::Rename { kind, name, new_name } => Ok(format!(
            "ALTER {} {} RENAME TO {};",
            kind.keyword(),
            name.renamed(new_name).sql(),
            quote_ident(&name.name)
        )),
        Change::RenameColumn { table, column, new_name } => Ok(format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {};",
            table.sql(),
            quote_ident(new_name),
            quote_ident(column)
        )),
        Change::AlterColumnType { table, column, old_type, lossless: true, .. } => Ok(format!(
            "ALTER TABLE {} ALTER COLUMN {} TYPE {};",
            table.sql(),
            quote_ident(column),
            old_type
        )),
        Change::AlterColumnType { table, column, old_type, new_type, lossless: false } => Err(NotInvertible {
            what: format!("ALTER TABLE {} ALTER COLUMN {} TYPE {}", table.sql(), quote_ident(column), new_type),
            why: if old_type.is_empty() { "the old type is not known" } else { "changing it back could lose values" },
        }),
        Change::Other { what } => Err(NotInvertible { what: what.clone(), why: "pg_migrate knows no mechanical inverse for it" }),
    }
}

/// The downgrade of a revision whose upgrade made `changes`, in that order:
/// their inverses in reverse order when every change has one; otherwise no
/// downgrade, and the changes that have none.
pub fn downgrade(changes: &[Change]) -> Result<Vec<String>, Vec<NotInvertible>> {
    let mut statements = Vec::with_capacity(changes.len());
    let mut missing = Vec::new();
    for change in changes.iter().rev() {
        check_interrupts();
        match inverse(change) {
            Ok(statement) => statements.push(statement),
            Err(reason) => missing.push(reason),
        }
    }
    if missing.is_empty() {
        Ok(statements)
    } else {
        missing.reverse();
        Err(missing)
    }
}

/// The comment lines that stand in for an absent downgrade section.
pub fn not_inverted_comment(missing: &[NotInvertible]) -> String {
    let mut text = String::from("-- No downgrade: these changes have no mechanical inverse:\n");
    for item in missing {
        text.push_str(&format!("--   {}: {}\n", one_line(&item.what), item.why));
    }
    text
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A type change goes back without loss only when both spellings name the same
/// set of values: the same type respelled (int4 and integer), or text and
/// unbounded varchar. A widening (integer to bigint, varchar(10) to varchar(20))
/// is not: values written since may not fit the old type. `old` and `new` are
/// format_type spellings.
pub fn type_change_is_lossless(old: &str, new: &str) -> bool {
    let canonical = |t: &str| -> String {
        let t = t.trim().to_ascii_lowercase();
        match t.as_str() {
            "varchar" | "character varying" => "character varying".into(),
            "int" | "int4" | "integer" => "integer".into(),
            "int8" | "bigint" => "bigint".into(),
            "int2" | "smallint" => "smallint".into(),
            "float8" | "double precision" => "double precision".into(),
            "float4" | "real" => "real".into(),
            "bool" | "boolean" => "boolean".into(),
            "timestamptz" | "timestamp with time zone" => "timestamp with time zone".into(),
            "timestamp" | "timestamp without time zone" => "timestamp without time zone".into(),
            _ => t,
        }
    };
    let (old, new) = (canonical(old), canonical(new));
    // text and unbounded varchar hold exactly the same values.
    old == new || matches!((old.as_str(), new.as_str()), ("text", "character varying") | ("character varying", "text"))
}

/// An identifier as SQL must spell it: bare when it is a lower-case plain word
/// and not a reserved word, double-quoted otherwise (as quote_ident does).
pub fn quote_ident(ident: &str) -> String {
    let plain = !ident.is_empty()
        && ident.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED.contains(&ident);
    if plain {
        ident.to_string()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// Reserved words that cannot be bare identifiers (PostgreSQL's reserved list,
/// the ones a table or column is likely to be called).
const RESERVED: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "check", "collate", "column", "constraint",
    "create", "default", "desc", "distinct", "do", "else", "end", "except", "false", "for", "foreign", "from",
    "grant", "group", "having", "in", "into", "limit", "not", "null", "offset", "on", "only", "or", "order",
    "primary", "references", "select", "table", "then", "to", "true", "union", "unique", "user", "using", "when",
    "where", "with",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Name {
        Name::new(Some("public"), name)
    }

    #[test]
    fn creates_are_dropped() {
        for (kind, word) in [
            (ObjectKind::Table, "TABLE"),
            (ObjectKind::Index, "INDEX"),
            (ObjectKind::View, "VIEW"),
            (ObjectKind::MaterializedView, "MATERIALIZED VIEW"),
            (ObjectKind::Sequence, "SEQUENCE"),
            (ObjectKind::Type, "TYPE"),
        ] {
            let change = Change::Create { kind, name: t("thing"), if_not_exists: false };
            assert_eq!(inverse(&change).unwrap(), format!("DROP {word} public.thing;"));
        }
    }

    #[test]
    fn create_if_not_exists_has_no_inverse() {
        let change = Change::Create { kind: ObjectKind::Table, name: t("thing"), if_not_exists: true };
        let error = inverse(&change).unwrap_err();
        assert!(error.what.contains("IF NOT EXISTS public.thing"), "{error:?}");
    }

    #[test]
    fn columns_and_constraints() {
        assert_eq!(
            inverse(&Change::AddColumn { table: t("users"), column: "Email".into() }).unwrap(),
            "ALTER TABLE public.users DROP COLUMN \"Email\";"
        );
        assert_eq!(
            inverse(&Change::AddConstraint { table: t("users"), constraint: Some("users_email_key".into()) }).unwrap(),
            "ALTER TABLE public.users DROP CONSTRAINT users_email_key;"
        );
        assert!(inverse(&Change::AddConstraint { table: t("users"), constraint: None }).is_err());
    }

    #[test]
    fn renames_go_back() {
        assert_eq!(
            inverse(&Change::Rename { kind: ObjectKind::Table, name: t("old"), new_name: "new".into() }).unwrap(),
            "ALTER TABLE public.new RENAME TO old;"
        );
        assert_eq!(
            inverse(&Change::RenameColumn { table: Name::new(None, "users"), column: "a".into(), new_name: "b".into() })
                .unwrap(),
            "ALTER TABLE users RENAME COLUMN b TO a;"
        );
    }

    #[test]
    fn type_changes_back_only_when_nothing_is_lost() {
        assert!(type_change_is_lossless("text", "character varying"));
        assert!(type_change_is_lossless("int4", "integer"));
        assert!(!type_change_is_lossless("integer", "bigint"));
        assert!(!type_change_is_lossless("text", "integer"));
        let back = Change::AlterColumnType {
            table: t("users"),
            column: "name".into(),
            old_type: "text".into(),
            new_type: "character varying".into(),
            lossless: true,
        };
        assert_eq!(inverse(&back).unwrap(), "ALTER TABLE public.users ALTER COLUMN name TYPE text;");
        let lossy = Change::AlterColumnType {
            table: t("users"),
            column: "name".into(),
            old_type: "text".into(),
            new_type: "smallint".into(),
            lossless: false,
        };
        assert_eq!(inverse(&lossy).unwrap_err().why, "changing it back could lose values");
    }

    #[test]
    fn downgrade_runs_backwards_or_not_at_all() {
        let changes = vec![
            Change::Create { kind: ObjectKind::Table, name: t("a"), if_not_exists: false },
            Change::AddColumn { table: t("a"), column: "b".into() },
        ];
        assert_eq!(
            downgrade(&changes).unwrap(),
            vec!["ALTER TABLE public.a DROP COLUMN b;".to_string(), "DROP TABLE public.a;".to_string()]
        );
        let mut with_drop = changes.clone();
        with_drop.push(Change::Other { what: "DROP TABLE public.c".into() });
        let missing = downgrade(&with_drop).unwrap_err();
        assert_eq!(missing.len(), 1);
        let comment = not_inverted_comment(&missing);
        assert!(comment.contains("DROP TABLE public.c: pg_migrate knows no mechanical inverse"), "{comment}");
        assert!(comment.lines().all(|line| line.starts_with("--")), "{comment}");
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        assert_eq!(quote_ident("users"), "users");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("My Table"), "\"My Table\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1st"), "\"1st\"");
    }
}
