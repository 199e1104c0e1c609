//! #[pg_test]s: what a recorded statement changed, read from the server's own
//! parse tree (changes.rs), and the inverse the revision gets from it.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::drift::changes::{changes, TypeChange};
    use crate::revisions::inverse::{self, Change};

    fn downgrade(sql: &str, types: &[TypeChange]) -> Result<Vec<String>, Vec<inverse::NotInvertible>> {
        inverse::downgrade(&changes(sql, "the statement", types))
    }

    #[pg_test]
    fn creates_are_dropped_with_the_names_as_written() {
        assert_eq!(downgrade("CREATE TABLE s.\"Orders\" (id int)", &[]).unwrap(), vec!["DROP TABLE s.\"Orders\";"]);
        assert_eq!(downgrade("CREATE INDEX orders_idx ON s.orders (id)", &[]).unwrap(), vec!["DROP INDEX s.orders_idx;"]);
        assert_eq!(downgrade("CREATE VIEW v AS SELECT 1", &[]).unwrap(), vec!["DROP VIEW v;"]);
        assert_eq!(downgrade("CREATE MATERIALIZED VIEW mv AS SELECT 1", &[]).unwrap(), vec!["DROP MATERIALIZED VIEW mv;"]);
        assert_eq!(downgrade("CREATE SEQUENCE seq", &[]).unwrap(), vec!["DROP SEQUENCE seq;"]);
        assert_eq!(downgrade("CREATE TYPE mood AS ENUM ('ok')", &[]).unwrap(), vec!["DROP TYPE mood;"]);
        assert_eq!(downgrade("CREATE TYPE pair AS (a int, b int)", &[]).unwrap(), vec!["DROP TYPE pair;"]);
    }

    #[pg_test]
    fn alter_table_subcommands_are_undone_backwards() {
        assert_eq!(
            downgrade("ALTER TABLE t ADD COLUMN a int, ADD CONSTRAINT t_a_check CHECK (a > 0)", &[]).unwrap(),
            vec!["ALTER TABLE t DROP CONSTRAINT t_a_check;", "ALTER TABLE t DROP COLUMN a;"]
        );
        assert_eq!(downgrade("ALTER TABLE t RENAME COLUMN a TO b", &[]).unwrap(), vec!["ALTER TABLE t RENAME COLUMN b TO a;"]);
        assert_eq!(downgrade("ALTER TABLE t RENAME TO u", &[]).unwrap(), vec!["ALTER TABLE u RENAME TO t;"]);
        assert_eq!(downgrade("ALTER TYPE mood RENAME TO feeling", &[]).unwrap(), vec!["ALTER TYPE feeling RENAME TO mood;"]);
    }

    #[pg_test]
    fn a_type_change_goes_back_only_when_nothing_was_lost() {
        let recorded = |from: &str, to: &str| vec![TypeChange { column: "c".into(), from: from.into(), to: Some(to.into()) }];
        assert_eq!(
            downgrade("ALTER TABLE t ALTER COLUMN c TYPE varchar", &recorded("text", "character varying")).unwrap(),
            vec!["ALTER TABLE t ALTER COLUMN c TYPE text;"]
        );
        let lossy = downgrade("ALTER TABLE t ALTER COLUMN c TYPE bigint", &recorded("integer", "bigint")).unwrap_err();
        assert_eq!(lossy[0].why, "changing it back could lose values");
        let unknown = downgrade("ALTER TABLE t ALTER COLUMN c TYPE bigint", &[]).unwrap_err();
        assert_eq!(unknown[0].why, "the old type is not known");
    }

    #[pg_test]
    fn what_cannot_be_undone_is_named() {
        for sql in [
            "DROP TABLE t",
            "CREATE INDEX ON t (id)",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            "CREATE TABLE IF NOT EXISTS t (id int)",
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS a int",
            "ALTER TABLE t DROP COLUMN a",
            "ALTER TABLE t ADD CHECK (a > 0)",
            "GRANT SELECT ON t TO PUBLIC",
        ] {
            assert!(downgrade(sql, &[]).is_err(), "{sql} has no mechanical inverse");
        }
        assert!(matches!(changes("DROP TABLE t", "DROP TABLE public.t", &[]).as_slice(), [Change::Other { what }] if what == "DROP TABLE public.t"));
    }
}
