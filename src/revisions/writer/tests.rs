use super::*;

fn parts(message: &str) -> MigrationFile {
    MigrationFile {
        revision_id: "3f2a9c1e7b10".into(),
        message: message.into(),
        down_revisions: vec!["9b1d77aa0c42".into()],
        create_date: Some("2026-12-02 11:00:00.000000+00:00".into()),
        transactional: true,
        upgrade_sql: "CREATE TABLE t (id int);".into(),
        downgrade_sql: Some("DROP TABLE t;".into()),
        ..Default::default()
    }
}

#[test]
fn what_is_written_reads_back_exactly() {
    for message in ["Add user preferences", "O'Brien's \"quoted\" $$ table", "Ajouter les préférences — ünïcødé ✓", "a\ttab", "Fix: a colon"] {
        let mut p = parts(message);
        p.branch_labels = vec!["billing".into()];
        p.depends_on = vec!["1a2b3c4d5e6f".into()];
        p.transactional = false;
        p.allow = vec!["drop_table the downgrade removes what it adds".into()];
        let text = render(&p).unwrap_or_else(|e| panic!("{message:?}: {e:?}"));
        let back = parse_migration(&text).unwrap();
        assert_eq!(back.message, message.trim());
        assert_eq!(back.revision_id, p.revision_id);
        assert_eq!(back.down_revisions, p.down_revisions);
        assert_eq!(back.branch_labels, p.branch_labels);
        assert_eq!(back.depends_on, p.depends_on);
        assert!(!back.transactional);
        assert_eq!(back.create_date, p.create_date);
        assert_eq!(back.allow, p.allow);
        assert_eq!(back.upgrade_sql, "CREATE TABLE t (id int);");
        assert_eq!(back.downgrade_sql.as_deref(), Some("DROP TABLE t;"));
    }
}

#[test]
fn a_root_has_an_empty_revises_and_no_downgrade_means_none() {
    let mut p = parts("root");
    p.down_revisions.clear();
    p.downgrade_sql = None;
    let text = render(&p).unwrap();
    assert!(text.contains("-- Revises:\n"), "{text}");
    assert!(!text.contains("migrate:downgrade"), "{text}");
    assert_eq!(parse_migration(&text).unwrap().downgrade_sql, None);
    p.downgrade_sql = Some(String::new());
    assert_eq!(parse_migration(&render(&p).unwrap()).unwrap().downgrade_sql.as_deref(), Some(""));
}

#[test]
fn control_characters_and_bad_parts_are_refused() {
    for message in ["a\rb", "a\nSELECT 1", "a\u{0}b", "a\u{7f}"] {
        assert!(matches!(render(&parts(message)), Err(WriteError::ControlCharacter { .. })), "{message:?}");
    }
    assert_eq!(render(&parts("  ")), Err(WriteError::EmptyMessage));
    let mut p = parts("x");
    p.revision_id = "head".into();
    assert!(matches!(render(&p), Err(WriteError::InvalidIdentifier(_))));
    assert!(matches!(render(&parts("Revises: abc")), Err(WriteError::DoesNotReadBack { .. })));
    let mut p = parts("x");
    p.upgrade_sql = "SELECT 1;\n-- migrate:downgrade\nSELECT 2;".into();
    assert!(matches!(render(&p), Err(WriteError::DoesNotReadBack { .. })));
}

#[test]
fn sections_are_normalised_as_the_parser_reads_them() {
    let mut p = parts("x");
    p.upgrade_sql = "\n\r\nSELECT 1;\r\nSELECT 2;\n\n".into();
    let back = parse_migration(&render(&p).unwrap()).unwrap();
    assert_eq!(back.upgrade_sql, "SELECT 1;\nSELECT 2;");
}

#[test]
fn file_names_follow_alembic() {
    assert_eq!(file_name("ab12", "Add user preferences table"), "ab12_add_user_preferences_table.sql");
    assert_eq!(file_name("ab12", "O'Brien: fix!"), "ab12_o_brien_fix.sql");
    assert_eq!(file_name("ab12", "?!"), "ab12.sql");
    let long = file_name("ab12", "one two three four five six seven eight nine ten");
    assert_eq!(long, "ab12_one_two_three_four_five_six_seven_eight_.sql");
}
