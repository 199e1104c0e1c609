//! #[pg_test]s for the SQL surface. Each runs inside a transaction that is rolled
//! back; errors are caught in a subtransaction so their SQLSTATE can be checked.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::sql_api::test_support::{chain, count, error_of, load, rev, text};

    fn load_error(source: &str) -> (PgSqlErrorCode, String) {
        error_of(&format!("SELECT migrate_load({})", pgrx::spi::quote_literal(source)))
    }

    #[pg_test]
    fn upgrade_applies_in_order_and_records_everything() {
        chain();
        let rows = count("SELECT count(*) FROM migrate_upgrade('head')");
        assert_eq!(rows, 3);
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname IN ('t1','t2','t3')"), 3);
        // sha256 of the upgrade text, computed by the server for comparison.
        assert_eq!(
            count(
                "SELECT count(*) FROM migrate.applied a JOIN migrate.revisions r USING (revision_id)
                  WHERE a.checksum = encode(sha256(convert_to(r.upgrade_sql, 'UTF8')), 'hex')
                    AND a.applied_by = current_user AND a.duration IS NOT NULL AND a.method = 'function'"
            ),
            3
        );
        assert_eq!(count("SELECT count(*) FROM migrate.events WHERE action = 'upgrade'"), 3);
        assert_eq!(text("SELECT revision FROM migrate_current()").as_deref(), Some("cccc3333"));
        assert_eq!(count("SELECT count(*) FROM migrate_upgrade('head')"), 0);
    }

    #[pg_test]
    fn downgrade_relative_and_to_base() {
        chain();
        Spi::run("SELECT * FROM migrate_upgrade('head')").unwrap();
        let first = text("SELECT revision || ':' || direction FROM migrate_downgrade('-1')");
        assert_eq!(first.as_deref(), Some("cccc3333:downgrade"));
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname = 't3'"), 0);
        assert_eq!(count("SELECT count(*) FROM migrate_downgrade('base')"), 2);
        assert_eq!(count("SELECT count(*) FROM migrate.applied"), 0);
        assert_eq!(count("SELECT count(*) FROM migrate_upgrade('+2')"), 2);
        assert_eq!(text("SELECT revision FROM migrate_current()").as_deref(), Some("bbbb2222"));
    }

    #[pg_test]
    fn failing_revision_names_itself_and_leaves_nothing() {
        chain();
        load(&rev("dddd4444", "cccc3333", "CREATE TABLE t4 (id int);\nCREATE TABLE t1 (id int);", ""));
        let (code, message) = error_of("SELECT * FROM migrate_upgrade('head')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE);
        assert!(message.contains("revision dddd4444 (line 8) failed"), "{message}");
        assert!(message.contains("relation \"t1\" already exists"), "{message}");
        assert_eq!(count("SELECT count(*) FROM migrate.applied"), 0);
        assert_eq!(count("SELECT count(*) FROM migrate.events WHERE action = 'upgrade'"), 0);
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname IN ('t2','t3','t4')"), 0);
    }

    #[pg_test]
    fn malformed_files_have_their_own_sqlstates() {
        use PgSqlErrorCode::*;
        let cases = [
            ("-- m\n\n-- migrate:upgrade\nSELECT 1;\n", ERRCODE_NULL_VALUE_NOT_ALLOWED),
            ("-- m\n-- Revision ID: x1\n-- Revises:\n-- Colour: red\n\n-- migrate:upgrade\nSELECT 1;\n", ERRCODE_UNDEFINED_PARAMETER),
            ("-- m\n-- Revision ID: x1\n\n-- migrate:downgrade\nSELECT 1;\n", ERRCODE_INVALID_OBJECT_DEFINITION),
            ("-- m\n-- Revision ID: bad-id\n\n-- migrate:upgrade\nSELECT 1;\n", ERRCODE_INVALID_NAME),
            ("-- m\n-- Revision ID: x1\n-- Revision ID: x2\n\n-- migrate:upgrade\nSELECT 1;\n", ERRCODE_DUPLICATE_OBJECT),
            ("-- m\n-- Revision ID: x1\n\n-- migrate:upgrade\nSELEC 1;\n", ERRCODE_SYNTAX_ERROR),
            ("-- m\n-- Revision ID: x1\n\n-- migrate:upgrade\nBEGIN;\nSELECT 1;\nCOMMIT;\n", ERRCODE_INVALID_TRANSACTION_TERMINATION),
            ("-- m\n-- Revision ID: x1\n\n-- migrate:upgrade\nCREATE INDEX CONCURRENTLY i ON t (x);\n", ERRCODE_ACTIVE_SQL_TRANSACTION),
        ];
        for (source, expected) in cases {
            let (code, message) = load_error(source);
            assert_eq!(code, expected, "{source}: {message}");
        }
        let (_, message) = load_error("-- m\n-- Revision ID: x1\n-- Colour: red\n\n-- migrate:upgrade\nSELECT 1;\n");
        assert!(message.contains("line 3"), "{message}");
        let (_, message) = load_error("-- m\n-- Revision ID: x1\n\n-- migrate:upgrade\nSELECT 1;\n\nSELEC 2;\n");
        assert!(message.contains("line 7"), "{message}");
        assert_eq!(count("SELECT count(*) FROM migrate.revisions"), 0);
    }

    #[pg_test]
    fn duplicate_ids_in_a_directory_load_nothing() {
        let dir = std::env::temp_dir().join(format!("pgm_dup_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.sql"), rev("dup00001", "", "SELECT 1;", "")).unwrap();
        std::fs::write(dir.join("b.sql"), rev("dup00001", "", "SELECT 2;", "")).unwrap();
        let (code, message) = error_of(&format!("SELECT * FROM migrate_load_dir('{}')", dir.display()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(code, PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT);
        assert!(message.contains("a.sql") && message.contains("b.sql"), "{message}");
        assert_eq!(count("SELECT count(*) FROM migrate.revisions"), 0);
    }

    #[pg_test]
    fn cycles_and_missing_parents_are_refused() {
        load(&rev("cyc00001", "", "SELECT 1;", ""));
        load(&rev("cyc00002", "cyc00001", "SELECT 1;", ""));
        let (code, _) = load_error(&rev("cyc00001", "cyc00002", "SELECT 1;", ""));
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_RECURSION);

        load(&rev("orph0001", "notloaded", "SELECT 1;", ""));
        let (code, message) = error_of("SELECT * FROM migrate_upgrade('orph0001')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION);
        assert!(message.contains("notloaded"), "{message}");
    }

    #[pg_test]
    fn reloading_an_applied_revision_needs_force() {
        chain();
        Spi::run("SELECT * FROM migrate_upgrade('aaaa1111')").unwrap();
        // Not applied: replaced freely.
        load(&rev("bbbb2222", "aaaa1111", "CREATE TABLE t2b (id int);", "DROP TABLE t2b;"));
        // Applied, different upgrade text: refused.
        let changed = rev("aaaa1111", "", "CREATE TABLE t1 (id bigint);", "DROP TABLE t1;");
        let (code, message) = load_error(&changed);
        assert_eq!(code, PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert!(message.contains("aaaa1111 is applied"), "{message}");
        // Applied, only the downgrade changed: fine.
        load(&rev("aaaa1111", "", "CREATE TABLE t1 (id int);", "DROP TABLE IF EXISTS t1;"));
        // Forced: replaced, applied checksum follows, and the audit log says so.
        Spi::run_with_args("SELECT migrate_load($1, force => true)", &[changed.as_str().into()]).unwrap();
        assert_eq!(count("SELECT count(*) FROM migrate_verify()"), 0);
        assert_eq!(count("SELECT count(*) FROM migrate.events WHERE action = 'reload' AND detail = 'forced'"), 1);
    }

    #[pg_test]
    fn verify_finds_drift_and_undefined_revisions() {
        chain();
        Spi::run("SELECT * FROM migrate_upgrade('head')").unwrap();
        Spi::run("UPDATE migrate.revisions SET checksum = 'x' WHERE revision_id = 'bbbb2222'").unwrap();
        Spi::run("DELETE FROM migrate.revisions WHERE revision_id = 'cccc3333'").unwrap();
        let problems = text("SELECT string_agg(revision || ': ' || problem, '; ' ORDER BY revision) FROM migrate_verify()");
        assert_eq!(
            problems.as_deref(),
            Some("bbbb2222: upgrade text changed since it was applied; cccc3333: applied but no definition is loaded")
        );
    }

    #[pg_test]
    fn branches_merges_labels_and_targets() {
        load(&rev("root0001", "", "SELECT 1;", ""));
        load(&format!(
            "-- a\n-- Revision ID: alfa0001\n-- Revises: root0001\n-- Branch Labels: alpha\n\n-- migrate:upgrade\nCREATE TABLE a (x int);\n-- migrate:downgrade\nDROP TABLE a;\n"
        ));
        load(&format!(
            "-- b\n-- Revision ID: beta0001\n-- Revises: root0001\n-- Branch Labels: beta\n-- Depends On: alfa0001\n\n-- migrate:upgrade\nCREATE TABLE b (x int);\n-- migrate:downgrade\nDROP TABLE b;\n"
        ));
        let (code, message) = error_of("SELECT * FROM migrate_upgrade('head')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_CARDINALITY_VIOLATION, "{message}");
        assert_eq!(count("SELECT count(*) FROM migrate_heads()"), 2);
        assert_eq!(text("SELECT children::text FROM migrate_branches()").as_deref(), Some("{alfa0001,beta0001}"));

        // Depends On pulls the other branch in first.
        let applied = text("SELECT string_agg(revision, ',') FROM migrate_upgrade('beta@head')");
        assert_eq!(applied.as_deref(), Some("root0001,alfa0001,beta0001"));
        // Downgrading beta leaves alpha applied.
        Spi::run("SELECT * FROM migrate_downgrade('beta@base')").unwrap();
        assert_eq!(text("SELECT string_agg(revision, ',') FROM migrate_current()").as_deref(), Some("alfa0001"));

        Spi::run("SELECT * FROM migrate_upgrade('heads')").unwrap();
        let merge = Spi::get_one::<String>("SELECT revision FROM migrate_merge(ARRAY['alfa', 'beta0001'], 'join')").unwrap().unwrap();
        assert_eq!(
            text(&format!("SELECT parents::text FROM migrate_show('{merge}')")).as_deref(),
            Some("{alfa0001,beta0001}")
        );
        assert_eq!(count("SELECT count(*) FROM migrate_upgrade('head')"), 1);
        assert_eq!(count("SELECT count(*) FROM migrate_history() WHERE is_current"), 1);
        assert_eq!(count("SELECT count(*) FROM migrate.events WHERE action = 'merge'"), 1);

        // Prefixes: unique ones resolve, ambiguous ones list the candidates.
        load(&rev("abcd0001", "", "SELECT 1;", ""));
        load(&rev("abcd0002", "", "SELECT 1;", ""));
        let (code, message) = error_of("SELECT * FROM migrate_show('abcd')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_AMBIGUOUS_ALIAS);
        assert!(message.contains("abcd0001") && message.contains("abcd0002"), "{message}");
        assert_eq!(text("SELECT revision FROM migrate_show('abcd0002')").as_deref(), Some("abcd0002"));
    }

    #[pg_test]
    fn stamp_moves_state_without_running_sql() {
        chain();
        assert_eq!(count("SELECT count(*) FROM migrate_stamp('bbbb2222')"), 2);
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname = 't1'"), 0);
        assert_eq!(count("SELECT count(*) FROM migrate.applied WHERE method = 'stamp' AND duration IS NULL"), 2);
        assert_eq!(count("SELECT count(*) FROM migrate_stamp('aaaa1111')"), 1);
        assert_eq!(text("SELECT revision FROM migrate_current()").as_deref(), Some("aaaa1111"));
        // purge forgets revisions that are not even defined.
        Spi::run("INSERT INTO migrate.applied VALUES ('ghost', NULL, now(), 'x', NULL, 'stamp')").unwrap();
        Spi::run("SELECT * FROM migrate_stamp('cccc3333', purge => true)").unwrap();
        assert_eq!(text("SELECT string_agg(revision_id, ',' ORDER BY revision_id) FROM migrate.applied").as_deref(),
                   Some("aaaa1111,bbbb2222,cccc3333"));
        assert_eq!(count("SELECT count(*) FROM migrate.events WHERE action = 'unstamp'"), 3);
    }

    #[pg_test]
    fn offline_sql_has_alembic_shape() {
        chain();
        let script = text("SELECT migrate_sql('head')").unwrap();
        assert!(script.contains("BEGIN;"));
        assert!(script.contains("-- Running upgrade  -> aaaa1111, revision aaaa1111"), "{script}");
        assert!(script.contains("-- Running upgrade aaaa1111 -> bbbb2222"));
        assert!(script.contains("CREATE TABLE t2 (id int);"));
        assert!(script.contains("SELECT migrate.end_step('cccc3333', 'upgrade', "));
        assert!(script.trim_end().ends_with("SELECT migrate.unlock();"));
        assert_eq!(count("SELECT count(*) FROM migrate.applied"), 0);
    }

    #[pg_test]
    fn roundtrip_reports_failures_and_missing_downgrades() {
        load(&rev("rt000001", "", "CREATE TABLE r1 (id int);", "DROP TABLE r1;"));
        load(&format!("-- no down\n-- Revision ID: rt000002\n-- Revises: rt000001\n\n-- migrate:upgrade\nCREATE TABLE r2 (id int);\n"));
        let problems = text(
            "SELECT string_agg(phase || ' ' || revision || ' ' || status, '; ') FROM migrate_test_roundtrip() WHERE status <> 'ok'",
        );
        assert_eq!(
            problems.as_deref(),
            Some("downgrade rt000002 no downgrade; upgrade again rt000002 failed")
        );
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname IN ('r1', 'r2')"), 0);
        assert_eq!(count("SELECT count(*) FROM migrate.applied"), 0);
    }

    #[pg_test]
    fn audit_log_is_append_only() {
        chain();
        let (code, _) = error_of("UPDATE migrate.events SET action = 'load'");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
        let (code, _) = error_of("DELETE FROM migrate.events");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
    }

    #[pg_test]
    fn targets_with_bad_grammar_are_syntax_errors() {
        chain();
        let (code, _) = error_of("SELECT * FROM migrate_upgrade('head+x')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_SYNTAX_ERROR);
        let (code, _) = error_of("SELECT * FROM migrate_upgrade('nosuchrev')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT);
        let (code, _) = error_of("SELECT * FROM migrate_downgrade('cccc3333')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
    }
}
