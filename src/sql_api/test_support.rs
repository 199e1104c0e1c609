//! Helpers shared by the #[pg_test]s of the SQL surface (sql_api/tests.rs,
//! sql_api/authoring_tests.rs).

#[cfg(any(test, feature = "pg_test"))]
pub use helpers::*;

#[cfg(any(test, feature = "pg_test"))]
mod helpers {
    use pgrx::prelude::*;

    use crate::subxact::{self, Keep};

    /// A migration file's text.
    pub fn rev(id: &str, revises: &str, upgrade: &str, downgrade: &str) -> String {
        format!(
            "-- revision {id}\n--\n-- Revision ID: {id}\n-- Revises: {revises}\n\n\
             -- migrate:upgrade\n{upgrade}\n\n-- migrate:downgrade\n{downgrade}\n"
        )
    }

    pub fn load(source: &str) -> String {
        Spi::get_one_with_args::<String>("SELECT migrate_load($1)", &[source.into()])
            .unwrap()
            .unwrap()
    }

    pub fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap_or(0)
    }

    pub fn text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).unwrap()
    }

    /// SQLSTATE and message of the error `sql` raises.
    pub fn error_of(sql: &str) -> (PgSqlErrorCode, String) {
        match subxact::run(Keep::Rollback, || Spi::run(sql)) {
            Err(failure) => (failure.code, failure.message),
            Ok(result) => panic!("expected an error from {sql}, got {result:?}"),
        }
    }

    pub fn chain() {
        load(&rev("aaaa1111", "", "CREATE TABLE t1 (id int);", "DROP TABLE t1;"));
        load(&rev("bbbb2222", "aaaa1111", "CREATE TABLE t2 (id int);", "DROP TABLE t2;"));
        load(&rev("cccc3333", "bbbb2222", "CREATE TABLE t3 (id int);", "DROP TABLE t3;"));
    }
}
