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

    /// A file with branch labels and dependencies.
    fn rev_with(id: &str, revises: &str, labels: &str, depends_on: &str) -> String {
        format!(
            "-- revision {id}\n--\n-- Revision ID: {id}\n-- Revises: {revises}\n-- Branch Labels: {labels}\n\
             -- Depends On: {depends_on}\n\n-- migrate:upgrade\nSELECT 1;\n\n-- migrate:downgrade\nSELECT 1;\n"
        )
    }

    /// Loading file by file reads only what touches the new file; every cycle and
    /// clash the whole-graph check refused is still refused, with its message.
    #[pg_test]
    fn per_file_loads_refuse_cycles_and_clashes_through_loaded_revisions() {
        use PgSqlErrorCode::*;
        for (id, revises) in [("lc01", ""), ("lc02", "lc01"), ("lc03", "lc02"), ("lc04", "lc03")] {
            load(&rev_with(id, revises, "", ""));
        }
        // A reloaded middle revision that revises a later one.
        let (code, message) = load_error(&rev_with("lc02", "lc04", "", ""));
        assert_eq!(code, ERRCODE_INVALID_RECURSION, "{message}");
        assert!(message.contains("lc02 -> lc04 -> lc03 -> lc02"), "{message}");
        // Through a dependency, and onto itself.
        let (code, _) = load_error(&rev_with("lc01", "", "", "lc03"));
        assert_eq!(code, ERRCODE_INVALID_RECURSION);
        let (code, _) = load_error(&rev_with("lc03", "lc03", "", ""));
        assert_eq!(code, ERRCODE_INVALID_RECURSION);
        // Children loaded before their parents: fine, until the parent closes a loop.
        load(&rev_with("lr03", "lr02", "", ""));
        load(&rev_with("lr02", "lr01", "", ""));
        let (code, message) = load_error(&rev_with("lr01", "lr03", "", ""));
        assert_eq!(code, ERRCODE_INVALID_RECURSION, "{message}");
        // A reload that moves a revision without making a loop is fine.
        load(&rev_with("lc04", "lc02", "", ""));

        load(&rev_with("lb01", "lc04", "billing", ""));
        for (source, what) in [
            (rev_with("lb02", "lb01", "billing", ""), "branch label \"billing\" is used by more than one revision"),
            (rev_with("lb02", "lb01", "lc01", ""), "branch label \"lc01\" is also the id of a revision"),
            (rev_with("billing", "lb01", "", ""), "branch label \"billing\" is also the id of a revision"),
        ] {
            let (code, message) = load_error(&source);
            assert_eq!(code, ERRCODE_DUPLICATE_OBJECT, "{message}");
            assert!(message.contains(what), "{message}");
        }
        // Its own label again, on reload, is no clash.
        load(&rev_with("lb01", "lc04", "billing", ""));
        assert_eq!(count("SELECT count(*) FROM migrate.revisions WHERE revision_id LIKE 'l%'"), 7);
    }

    /// The current heads as the graph computes them (migrate_history's is_current).
    fn heads_from_graph() -> Option<String> {
        text("SELECT string_agg(revision, ',' ORDER BY revision) FROM migrate_history() WHERE is_current")
    }

    fn heads_kept() -> Option<String> {
        text("SELECT string_agg(revision, ',' ORDER BY revision) FROM migrate_current()")
    }

    /// migrate.applied_heads stays exactly what the graph says, whoever writes
    /// migrate.applied or migrate.revisions and however.
    #[pg_test]
    fn applied_heads_follow_every_change_of_the_applied_state_and_the_graph() {
        load(&rev_with("hd01", "", "", ""));
        load(&rev_with("hd02", "hd01", "", ""));
        load(&rev_with("hd03", "hd01", "", ""));
        load(&rev_with("hd04", "hd02, hd03", "", ""));
        load(&rev_with("hd05", "hd04", "", "hd01"));
        let same = |step: &str, expected: &str| {
            assert_eq!(heads_kept(), heads_from_graph(), "after {step}");
            assert_eq!(heads_kept().unwrap_or_default(), expected, "after {step}");
        };
        same("nothing applied", "");
        Spi::run("SELECT * FROM migrate_upgrade('hd02')").unwrap();
        same("upgrade to hd02", "hd02");
        Spi::run("SELECT * FROM migrate_upgrade('hd03')").unwrap();
        same("upgrade to hd03", "hd02,hd03");
        Spi::run("SELECT * FROM migrate_upgrade('head')").unwrap();
        same("upgrade to head", "hd05");
        Spi::run("SELECT * FROM migrate_downgrade('hd04')").unwrap();
        same("downgrade to hd04", "hd04");
        Spi::run("SELECT * FROM migrate_downgrade('hd02')").unwrap();
        same("downgrade of the merge", "hd02,hd03");
        Spi::run("SELECT * FROM migrate_stamp('hd05')").unwrap();
        same("stamp", "hd05");
        // Hand edits of migrate.applied.
        Spi::run("DELETE FROM migrate.applied WHERE revision_id = 'hd05'").unwrap();
        same("a hand delete", "hd04");
        Spi::run("INSERT INTO migrate.applied (revision_id, applied_at, applied_by, method)
                  VALUES ('zz99', now(), 'x', 'stamp')").unwrap();
        same("a hand insert of an unknown revision", "hd04,zz99");
        // The graph changing under applied revisions.
        load(&rev_with("zz99", "hd04", "", ""));
        same("loading the unknown revision as a child", "zz99");
        Spi::run("DELETE FROM migrate.revisions WHERE revision_id = 'zz99'").unwrap();
        same("deleting its definition", "hd04,zz99");
        Spi::run("UPDATE migrate.revisions SET down_revisions = '{hd02}' WHERE revision_id = 'hd04'").unwrap();
        same("re-parenting hd04", "hd03,hd04,zz99");
        Spi::run("UPDATE migrate.applied SET revision_id = 'hd05' WHERE revision_id = 'zz99'").unwrap();
        same("renaming an applied row", "hd03,hd05");
        Spi::run("SELECT * FROM migrate_stamp('hd01', purge => true)").unwrap();
        same("stamp with purge", "hd01");
        Spi::run("TRUNCATE migrate.revisions").unwrap();
        same("truncating the definitions", "hd01");
        assert_eq!(text("SELECT message FROM migrate_current()").as_deref(), Some("(no definition loaded)"));
        Spi::run("TRUNCATE migrate.applied").unwrap();
        same("truncating the applied state", "");
    }
}
