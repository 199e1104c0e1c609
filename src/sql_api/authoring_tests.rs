//! #[pg_test]s for writing revisions (migrate_revision, migrate_merge,
//! migrate_unload) and for ranges (migrate_history(range), migrate_sql('a:b')).
//! Each runs inside a transaction that is rolled back.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::sql_api::test_support::{chain, count, error_of, load, rev, text};

    /// (revision, file_name, source) of a call returning one such row.
    fn written(sql: &str) -> (String, String, String) {
        let (revision, file_name, source) = Spi::get_three::<String, String, String>(sql).unwrap();
        (revision.unwrap(), file_name.unwrap(), source.unwrap())
    }

    #[pg_test]
    fn a_new_revision_is_loaded_on_the_head_not_applied() {
        chain();
        let (id, file_name, source) = written(
            "SELECT * FROM migrate_revision('Add preferences', 'CREATE TABLE prefs (id int);', 'DROP TABLE prefs;')",
        );
        assert!(id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{id}");
        assert_eq!(file_name, format!("{id}_add_preferences.sql"));
        assert!(source.starts_with(&format!("-- Add preferences\n--\n-- Revision ID: {id}\n-- Revises: cccc3333\n-- Create Date: ")), "{source}");
        assert!(source.contains("-- migrate:upgrade\nCREATE TABLE prefs (id int);\n"), "{source}");
        // Loaded through migrate_load's path: text, file name, checksum, event.
        let q = pgrx::spi::quote_literal(&id);
        assert_eq!(text(&format!("SELECT source FROM migrate.revisions WHERE revision_id = {q}")), Some(source.clone()));
        assert_eq!(text(&format!("SELECT source_file FROM migrate.revisions WHERE revision_id = {q}")), Some(file_name));
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM migrate.events e JOIN migrate.revisions r USING (revision_id)
                  WHERE e.action = 'revision' AND r.revision_id = {q}
                    AND e.checksum = encode(sha256(convert_to(r.upgrade_sql, 'UTF8')), 'hex')"
            )),
            1
        );
        assert_eq!(count(&format!("SELECT count(*) FROM migrate.applied WHERE revision_id = {q}")), 0);
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname = 'prefs'"), 0);
        assert_eq!(text("SELECT revision FROM migrate_heads()"), Some(id.clone()));
        // The text is exactly what migrate_load accepts: loading it again changes nothing.
        let events = count("SELECT count(*) FROM migrate.events");
        assert_eq!(load(&source), id);
        assert_eq!(count("SELECT count(*) FROM migrate.events"), events);
        // And it applies.
        assert_eq!(count("SELECT count(*) FROM migrate_upgrade('head')"), 4);
        assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname = 'prefs'"), 1);
    }

    #[pg_test]
    fn where_a_new_revision_goes() {
        chain();
        // base: a new root, with a branch label and a dependency given by prefix.
        let (root, _, source) = written(
            "SELECT * FROM migrate_revision('Start billing', head => 'base', branch_label => 'billing', depends_on => ARRAY['bbbb'])",
        );
        assert!(source.contains("-- Revises:\n") && source.contains("-- Branch Labels: billing\n"), "{source}");
        assert!(source.contains("-- Depends On: bbbb2222\n"), "{source}");
        // Nothing given: a template with both sections, empty.
        assert!(source.contains("-- migrate:upgrade\n\n-- migrate:downgrade\n"), "{source}");
        // Two heads now: 'head' is ambiguous and the error lists them.
        let (code, message) = error_of("SELECT * FROM migrate_revision('x')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_CARDINALITY_VIOLATION);
        assert!(message.contains("cccc3333") && message.contains(&root), "{message}");
        // label@head and a revision name one head each.
        let (on_billing, _, source) = written("SELECT * FROM migrate_revision('Invoices', 'SELECT 1;', head => 'billing@head')");
        assert!(source.contains(&format!("-- Revises: {root}\n")), "{source}");
        // An upgrade without a downgrade has no downgrade section.
        assert!(!source.contains("migrate:downgrade"), "{source}");
        let (_, _, source) = written("SELECT * FROM migrate_revision('Main', head => 'cccc3333', transactional => false)");
        assert!(source.contains("-- Revises: cccc3333\n") && source.contains("-- Transactional: false\n"), "{source}");
        // A revision that is not a head needs splice.
        let (code, message) = error_of("SELECT * FROM migrate_revision('Side', head => 'aaaa1111')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert!(message.contains("not a head"), "{message}");
        let (_, _, source) = written("SELECT * FROM migrate_revision('Side', head => 'aaaa1111', splice => true)");
        assert!(source.contains("-- Revises: aaaa1111\n"), "{source}");
        // Refusals load nothing.
        let before = count("SELECT count(*) FROM migrate.revisions");
        for (sql, expected) in [
            ("SELECT * FROM migrate_revision(NULL)", PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED),
            ("SELECT * FROM migrate_revision('  ')", PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED),
            ("SELECT * FROM migrate_revision(E'two\\nlines', head => 'base')", PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
            ("SELECT * FROM migrate_revision('x', 'SELEC 1;', head => 'base')", PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            ("SELECT * FROM migrate_revision('x', head => 'heads')", PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE),
            ("SELECT * FROM migrate_revision('x', head => 'nope@head')", PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT),
            ("SELECT * FROM migrate_revision('x', head => 'base', branch_label => 'billing')", PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT),
            ("SELECT * FROM migrate_revision('x', head => 'base', depends_on => ARRAY[NULL])", PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED),
            ("SELECT * FROM migrate_revision('x', head => 'base', transactional => NULL)", PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED),
        ] {
            assert_eq!(error_of(sql).0, expected, "{sql}");
        }
        assert_eq!(count("SELECT count(*) FROM migrate.revisions"), before);
        let _ = on_billing;
    }

    #[pg_test]
    fn merges_take_heads_and_labels_and_return_the_file() {
        chain();
        let (root, _, _) = written("SELECT * FROM migrate_revision('Billing', 'SELECT 1;', '', head => 'base', branch_label => 'billing')");
        let (merge, file_name, source) = written("SELECT * FROM migrate_merge('heads')");
        assert_eq!(file_name, format!("{merge}_merge_heads.sql"));
        let mut parents = [root.clone(), "cccc3333".to_string()];
        parents.sort();
        assert!(source.contains(&format!("-- Revises: {}\n", parents.join(", "))), "{source}");
        assert_eq!(text(&format!("SELECT source FROM migrate.revisions WHERE revision_id = '{merge}'")), Some(source));
        assert_eq!(count(&format!("SELECT count(*) FROM migrate.events WHERE action = 'merge' AND revision_id = '{merge}'")), 1);
        // Already merged, and a revision with its own ancestor, are refused.
        let (code, message) = error_of(&format!("SELECT * FROM migrate_merge(ARRAY['{root}', 'cccc3333'])"));
        assert_eq!(code, PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT);
        assert!(message.contains(&merge), "{message}");
        // billing@head is now the merge itself, which contains cccc3333.
        assert_eq!(error_of("SELECT * FROM migrate_merge(ARRAY['billing@head', 'cccc3333'])").0, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert_eq!(error_of("SELECT * FROM migrate_merge('cccc3333, aaaa1111')").0, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        // One head left: nothing to merge.
        assert_eq!(error_of("SELECT * FROM migrate_merge()").0, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
    }

    #[pg_test]
    fn unload_removes_only_what_nothing_needs() {
        chain();
        load(&format!(
            "-- side\n-- Revision ID: dddd4444\n-- Revises:\n-- Depends On: cccc3333\n\n-- migrate:upgrade\nSELECT 1;\n"
        ));
        Spi::run("SELECT * FROM migrate_upgrade('aaaa1111')").unwrap();
        let (code, message) = error_of("SELECT * FROM migrate_unload('aaaa1111')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
        assert!(message.contains("applied"), "{message}");
        let (code, message) = error_of("SELECT * FROM migrate_unload('bbbb2222')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST);
        assert!(message.contains("revised by cccc3333"), "{message}");
        let (code, message) = error_of("SELECT * FROM migrate_unload('cccc3333')");
        assert_eq!(code, PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST);
        assert!(message.contains("depended on by dddd4444"), "{message}");
        assert_eq!(error_of("SELECT * FROM migrate_unload(NULL)").0, PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED);
        assert_eq!(count("SELECT count(*) FROM migrate.revisions"), 4);

        let source = text("SELECT source FROM migrate_unload('dddd')").unwrap();
        assert_eq!(count("SELECT count(*) FROM migrate.revisions WHERE revision_id = 'dddd4444'"), 0);
        assert_eq!(count("SELECT count(*) FROM migrate.events WHERE action = 'unload' AND revision_id = 'dddd4444'"), 1);
        // What was removed loads again as it was.
        assert_eq!(load(&source), "dddd4444");
        Spi::run("SELECT * FROM migrate_unload('dddd4444')").unwrap();
        Spi::run("SELECT * FROM migrate_unload('cccc3333')").unwrap();
        assert_eq!(text("SELECT revision FROM migrate_heads()").as_deref(), Some("bbbb2222"));
    }

    #[pg_test]
    fn history_ranges_follow_alembic() {
        chain();
        let ids = |range: &str| {
            text(&format!("SELECT string_agg(revision, ',') FROM migrate_history('{range}')")).unwrap_or_default()
        };
        assert_eq!(ids("aaaa1111:bbbb2222"), "aaaa1111,bbbb2222");
        assert_eq!(ids("bbbb:"), "bbbb2222,cccc3333");
        assert_eq!(ids(":bbbb2222"), "aaaa1111,bbbb2222");
        assert_eq!(ids("-1:"), "bbbb2222,cccc3333");
        assert_eq!(ids("base:heads"), "aaaa1111,bbbb2222,cccc3333");
        Spi::run("SELECT * FROM migrate_upgrade('aaaa1111')").unwrap();
        assert_eq!(ids("current:"), "aaaa1111,bbbb2222,cccc3333");
        assert_eq!(ids(":current"), "aaaa1111");
        assert_eq!(text("SELECT is_current::text FROM migrate_history('aaaa1111:aaaa1111')").as_deref(), Some("true"));
        assert_eq!(error_of("SELECT * FROM migrate_history('cccc3333:aaaa1111')").0, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
        assert_eq!(error_of("SELECT * FROM migrate_history('aaaa1111')").0, PgSqlErrorCode::ERRCODE_SYNTAX_ERROR);

        let (id, file_name, _) = written("SELECT * FROM migrate_revision('Later', 'SELECT 1;')");
        let verbose = Spi::get_three::<String, String, String>(&format!(
            "SELECT create_date, file_name, checksum FROM migrate_history_verbose('{id}:')"
        ))
        .unwrap();
        assert!(verbose.0.is_some_and(|date| date.len() >= 26), "a Create Date");
        assert_eq!(verbose.1, Some(file_name));
        assert_eq!(verbose.2.map(|c| c.len()), Some(64));
        assert_eq!(count("SELECT count(*) FROM migrate_history_verbose()"), 4);
    }

    #[pg_test]
    fn range_scripts_come_from_the_graph_alone() {
        chain();
        // Everything applied here: a range script still starts where it says.
        Spi::run("SELECT * FROM migrate_upgrade('head')").unwrap();
        let script = text("SELECT migrate_sql('aaaa1111:head')").unwrap();
        assert!(script.contains("(2 revisions)"), "{script}");
        assert!(script.contains("SELECT migrate.begin_step('bbbb2222', 'upgrade'"), "{script}");
        assert!(script.contains("SELECT migrate.end_step('cccc3333', 'upgrade'"), "{script}");
        assert!(!script.contains("'aaaa1111', 'upgrade'"), "{script}");
        let script = text("SELECT migrate_sql('bbbb2222:cccc3333')").unwrap();
        assert!(script.contains("(1 revision)"), "{script}");
        let script = text("SELECT migrate_sql('cccc3333:aaaa1111', 'downgrade')").unwrap();
        assert!(script.contains("(2 revisions)") && script.contains("DROP TABLE t3;") && !script.contains("DROP TABLE t1;"), "{script}");
        let script = text("SELECT migrate_sql(':', 'downgrade')").unwrap();
        assert!(script.contains("(3 revisions)"), "{script}");
        assert_eq!(error_of("SELECT migrate_sql('current:head')").0, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE);
    }

    #[pg_test]
    fn a_script_opens_no_empty_transaction() {
        load("-- concurrent first\n-- Revision ID: eeee0001\n-- Revises:\n-- Transactional: false\n\n-- migrate:upgrade\nCREATE INDEX CONCURRENTLY i ON pg_class (oid);\n");
        load(&rev("eeee0002", "eeee0001", "SELECT 1;", "SELECT 1;"));
        for sql in ["SELECT migrate_sql('head')", "SELECT migrate_sql(':head')"] {
            let script = text(sql).unwrap();
            assert!(!script.contains("BEGIN;\n\nCOMMIT;"), "{script}");
            let begin = script.find("BEGIN;").expect("the transactional revision has a transaction");
            assert!(script.find("CREATE INDEX CONCURRENTLY").unwrap() < begin, "{script}");
            assert!(script.contains("(2 revisions)"), "{script}");
        }
    }
}
