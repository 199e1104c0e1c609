use super::diff::{diff, unquote, Phase};
use super::model::*;
use super::render::plan_revisions;

fn column(name: &str, type_sql: &str) -> Column {
    Column { name: name.into(), type_sql: type_sql.into(), ..Default::default() }
}

fn table(name: &str, columns: Vec<Column>) -> Table {
    Table { name: name.into(), columns, ..Default::default() }
}

fn schema(tables: Vec<Table>) -> Schema {
    Schema { tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(), ..Default::default() }
}

fn users() -> Table {
    let mut id = column("id", "bigint");
    id.not_null = true;
    let mut t = table("users", vec![id, column("name", "text")]);
    t.constraints.insert(
        "users_pkey".into(),
        Constraint { name: "users_pkey".into(), kind: ConstraintKind::PrimaryKey, definition: "PRIMARY KEY (id)".into(), index_tail: Some("USING btree (id)".into()), comment: None },
    );
    t
}

fn all_up(d: &super::Diff) -> Vec<String> {
    d.steps.iter().flat_map(|s| s.up.clone()).collect()
}

#[test]
fn equal_schemas_differ_in_nothing() {
    let live = schema(vec![users()]);
    let d = diff(&live, &live.clone(), "public");
    assert!(d.is_empty(), "{d:?}");
    assert!(plan_revisions(&d, &[]).is_empty());
}

#[test]
fn a_column_dropped_and_added_with_the_same_type_is_a_rename() {
    let live = schema(vec![users()]);
    let mut wanted = users();
    wanted.columns[1].name = "full_name".into();
    let d = diff(&live, &schema(vec![wanted]), "public");
    assert_eq!(all_up(&d), vec!["ALTER TABLE public.users RENAME COLUMN name TO full_name"]);
    assert_eq!(d.steps[0].down, vec!["ALTER TABLE public.users RENAME COLUMN full_name TO name"]);
    assert!(d.steps[0].review[0].contains("DROP COLUMN name, ADD COLUMN full_name text"), "{:?}", d.steps[0].review);
    let revisions = plan_revisions(&d, &[]);
    assert_eq!(revisions.len(), 1);
    assert!(revisions[0].upgrade.contains("-- Review: public.users.name is not in the desired schema"), "{}", revisions[0].upgrade);
}

#[test]
fn two_candidates_are_not_guessed_into_a_rename() {
    let live = schema(vec![table("t", vec![column("a", "text"), column("b", "text")])]);
    let wanted = schema(vec![table("t", vec![column("c", "text"), column("d", "text")])]);
    let d = diff(&live, &wanted, "public");
    let up = all_up(&d);
    assert!(up.iter().all(|s| !s.contains("RENAME")), "{up:?}");
    assert_eq!(up.iter().filter(|s| s.contains("DROP COLUMN")).count(), 2);
    assert!(d.steps.iter().any(|s| s.allow.iter().any(|a| a.starts_with("drop_column t.a "))));
}

#[test]
fn a_table_dropped_and_added_with_the_same_columns_is_a_rename() {
    let live = schema(vec![users()]);
    let mut people = users();
    people.name = "people".into();
    people.constraints.clear();
    people.constraints.insert(
        "people_pkey".into(),
        Constraint { name: "people_pkey".into(), kind: ConstraintKind::PrimaryKey, definition: "PRIMARY KEY (id)".into(), index_tail: Some("USING btree (id)".into()), comment: None },
    );
    let d = diff(&live, &schema(vec![people]), "public");
    assert_eq!(
        all_up(&d),
        vec!["ALTER TABLE public.users RENAME TO people", "ALTER TABLE public.people RENAME CONSTRAINT users_pkey TO people_pkey"]
    );
    assert!(d.steps[0].review[0].contains("DROP TABLE public.users"));
}

#[test]
fn an_index_on_an_existing_table_is_built_concurrently_in_its_own_revision() {
    let live = schema(vec![users()]);
    let mut wanted = users();
    wanted.indexes.insert("users_name_idx".into(), Index { name: "users_name_idx".into(), unique: false, tail: "USING btree (lower(name)) WHERE (name IS NOT NULL)".into(), comment: None });
    let d = diff(&live, &schema(vec![wanted]), "public");
    assert_eq!(d.steps.len(), 1);
    assert_eq!(d.steps[0].phase, Phase::Concurrent);
    assert_eq!(d.steps[0].up, vec!["CREATE INDEX CONCURRENTLY IF NOT EXISTS users_name_idx ON public.users USING btree (lower(name)) WHERE (name IS NOT NULL)"]);
    assert_eq!(d.steps[0].down, vec!["DROP INDEX CONCURRENTLY IF EXISTS public.users_name_idx"]);
    let revisions = plan_revisions(&d, &[]);
    assert_eq!(revisions.len(), 1);
    assert!(!revisions[0].transactional);
    assert!(!revisions[0].upgrade.contains("lock_timeout"));
}

#[test]
fn an_index_on_a_new_table_is_plain() {
    let mut t = table("events", vec![column("at", "timestamp with time zone")]);
    t.indexes.insert("events_at_idx".into(), Index { name: "events_at_idx".into(), unique: false, tail: "USING btree (at)".into(), comment: Some("by time".into()) });
    let d = diff(&Schema::default(), &schema(vec![t]), "public");
    assert_eq!(d.steps.len(), 1);
    assert_eq!(d.steps[0].phase, Phase::Main);
    assert_eq!(d.steps[0].up[1], "CREATE INDEX events_at_idx ON public.events USING btree (at)");
    assert_eq!(d.steps[0].up[2], "COMMENT ON INDEX public.events_at_idx IS 'by time'");
    assert_eq!(d.steps[0].down, vec!["DROP TABLE public.events"]);
}

#[test]
fn a_unique_constraint_on_an_existing_table_adopts_a_concurrent_index() {
    let live = schema(vec![users()]);
    let mut wanted = users();
    wanted.constraints.insert(
        "users_name_key".into(),
        Constraint { name: "users_name_key".into(), kind: ConstraintKind::Unique, definition: "UNIQUE (name) DEFERRABLE".into(), index_tail: Some("USING btree (name)".into()), comment: None },
    );
    let d = diff(&live, &schema(vec![wanted]), "public");
    let phases: Vec<Phase> = d.steps.iter().map(|s| s.phase).collect();
    assert_eq!(phases, vec![Phase::Concurrent, Phase::Finish]);
    assert_eq!(d.steps[0].up, vec!["CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_name_key ON public.users USING btree (name)"]);
    assert_eq!(d.steps[1].up, vec!["ALTER TABLE public.users ADD CONSTRAINT users_name_key UNIQUE USING INDEX users_name_key DEFERRABLE"]);
    let revisions = plan_revisions(&d, &[]);
    assert_eq!(revisions.iter().map(|r| r.transactional).collect::<Vec<_>>(), vec![false, true]);
}

#[test]
fn a_foreign_key_or_check_on_an_existing_table_is_added_not_valid_then_validated() {
    let live = schema(vec![users(), table("posts", vec![column("user_id", "bigint")])]);
    let mut posts = table("posts", vec![column("user_id", "bigint")]);
    posts.constraints.insert(
        "posts_user_fk".into(),
        Constraint { name: "posts_user_fk".into(), kind: ConstraintKind::ForeignKey, definition: "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED".into(), index_tail: None, comment: None },
    );
    posts.constraints.insert(
        "posts_user_positive".into(),
        Constraint { name: "posts_user_positive".into(), kind: ConstraintKind::Check, definition: "CHECK ((user_id > 0))".into(), index_tail: None, comment: None },
    );
    let d = diff(&live, &schema(vec![users(), posts]), "public");
    let up = all_up(&d);
    assert_eq!(
        up,
        vec![
            "ALTER TABLE public.posts ADD CONSTRAINT posts_user_positive CHECK ((user_id > 0)) NOT VALID",
            "ALTER TABLE public.posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED NOT VALID",
            "ALTER TABLE public.posts VALIDATE CONSTRAINT posts_user_fk",
            "ALTER TABLE public.posts VALIDATE CONSTRAINT posts_user_positive",
        ]
    );
}

#[test]
fn not_null_on_an_existing_column_goes_through_a_validated_check() {
    let live = schema(vec![users()]);
    let mut wanted = users();
    wanted.columns[1].not_null = true;
    let d = diff(&live, &schema(vec![wanted]), "public");
    let revisions = plan_revisions(&d, &[]);
    assert_eq!(revisions.len(), 2);
    assert!(revisions[0].upgrade.contains("ADD CONSTRAINT \"users_name_not_null\" CHECK (name IS NOT NULL) NOT VALID;"), "{}", revisions[0].upgrade);
    let finish = &revisions[1].upgrade;
    let validate = finish.find("VALIDATE CONSTRAINT \"users_name_not_null\"").unwrap();
    let set = finish.find("ALTER COLUMN name SET NOT NULL").unwrap();
    let drop = finish.find("DROP CONSTRAINT \"users_name_not_null\"").unwrap();
    assert!(validate < set && set < drop, "{finish}");
    assert!(revisions[1].downgrade.contains("ALTER COLUMN name DROP NOT NULL"));
}

#[test]
fn a_new_not_null_column_without_default_takes_three_steps() {
    let live = schema(vec![users()]);
    let mut wanted = users();
    let mut role = column("role", "text");
    role.not_null = true;
    wanted.columns.push(role);
    let d = diff(&live, &schema(vec![wanted]), "public");
    let revisions = plan_revisions(&d, &[]);
    let phases: Vec<Phase> = revisions.iter().map(|r| r.phase).collect();
    assert_eq!(phases, vec![Phase::Main, Phase::Backfill, Phase::Finish]);
    assert!(revisions[0].upgrade.contains("ALTER TABLE public.users ADD COLUMN role text;"), "{}", revisions[0].upgrade);
    assert!(revisions[1].upgrade.contains("-- Review:   CALL migrate_backfill('public.users', $$role = <value>$$, $$role IS NULL$$);"), "{}", revisions[1].upgrade);
    assert!(!revisions[1].transactional);
    assert!(revisions[2].upgrade.contains("ALTER TABLE public.users ALTER COLUMN role SET NOT NULL;"));
    assert!(revisions[0].downgrade.contains("DROP COLUMN role"));
}

#[test]
fn a_not_null_column_with_a_default_is_one_statement() {
    let live = schema(vec![users()]);
    let mut wanted = users();
    let mut role = column("role", "text");
    role.not_null = true;
    role.default = Some("'member'::text".into());
    wanted.columns.push(role);
    let d = diff(&live, &schema(vec![wanted]), "public");
    assert_eq!(all_up(&d), vec!["ALTER TABLE public.users ADD COLUMN role text DEFAULT 'member'::text NOT NULL"]);
}

fn mood(values: &[&str]) -> EnumType {
    EnumType { name: "mood".into(), values: values.iter().map(|v| v.to_string()).collect(), comment: None }
}

#[test]
fn an_enum_value_added_is_add_value_committed_first_when_used() {
    let mut live = schema(vec![users()]);
    live.enums.insert("mood".into(), mood(&["sad", "happy"]));
    let mut desired = live.clone();
    desired.enums.insert("mood".into(), mood(&["sad", "ok", "happy"]));
    let d = diff(&live, &desired, "public");
    assert_eq!(all_up(&d), vec!["ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'ok' AFTER 'sad'".to_string()]);
    assert_eq!(d.steps[0].phase, Phase::Main, "nothing else uses it");

    let mut uses = desired.clone();
    uses.tables.get_mut("users").unwrap().columns[1].default = Some("'ok'::mood".into());
    uses.tables.get_mut("users").unwrap().columns[1].type_sql = "text".into();
    let d = diff(&live, &uses, "public");
    assert_eq!(d.steps[0].phase, Phase::EnumValues);
    let revisions = plan_revisions(&d, &[]);
    assert!(!revisions[0].transactional);
    assert!(revisions[0].downgrade.trim().is_empty());
}

#[test]
fn an_enum_value_removed_is_refused_with_an_explanation() {
    let mut live = Schema::default();
    live.enums.insert("mood".into(), mood(&["sad", "happy"]));
    let mut desired = Schema::default();
    desired.enums.insert("mood".into(), mood(&["happy"]));
    let d = diff(&live, &desired, "public");
    assert!(d.steps.is_empty());
    assert_eq!(d.refusals.len(), 1);
    assert!(d.refusals[0].explanation.contains("cannot drop a value"));
    assert!(d.rows()[0].1.contains("'sad'"));
}

#[test]
fn views_are_dropped_readers_first_and_created_in_dependency_order() {
    let view = |name: &str, def: &str, deps: &[&str]| View { name: name.into(), materialized: false, definition: def.into(), depends_on: deps.iter().map(|d| d.to_string()).collect(), comment: None };
    let mut live = schema(vec![users()]);
    live.views.insert("a".into(), view("a", " SELECT id FROM users", &["users"]));
    live.views.insert("b".into(), view("b", " SELECT id FROM a", &["a"]));
    let mut desired = live.clone();
    desired.views.insert("a".into(), view("a", " SELECT id, name FROM users", &["users"]));
    let d = diff(&live, &desired, "public");
    assert_eq!(
        all_up(&d),
        vec!["DROP VIEW public.b", "DROP VIEW public.a", "CREATE VIEW public.a AS\n SELECT id, name FROM users", "CREATE VIEW public.b AS\n SELECT id FROM a"]
    );
}

#[test]
fn a_dropped_table_names_its_allowance_and_comes_back_in_the_downgrade() {
    let live = schema(vec![users()]);
    let d = diff(&live, &Schema::default(), "public");
    let revisions = plan_revisions(&d, &["functions f() only in the live schema".into()]);
    assert_eq!(revisions[0].allow, vec!["drop_table users is not in the desired schema (migrate_autogenerate)"]);
    assert!(revisions[0].upgrade.starts_with("-- Review: functions f() only in the live schema\n"));
    assert!(revisions[0].downgrade.contains("CREATE TABLE public.users (\n    id bigint NOT NULL,\n    name text\n)"), "{}", revisions[0].downgrade);
}

#[test]
fn comments_and_types_are_compared() {
    let live = schema(vec![users()]);
    let mut wanted = users();
    wanted.comment = Some("people's accounts".into());
    wanted.columns[1].type_sql = "character varying(80)".into();
    let d = diff(&live, &schema(vec![wanted]), "public");
    let up = all_up(&d);
    assert!(up.contains(&"ALTER TABLE public.users ALTER COLUMN name TYPE character varying(80) USING name::character varying(80)".to_string()), "{up:?}");
    assert!(up.contains(&"COMMENT ON TABLE public.users IS 'people''s accounts'".to_string()));
}

#[test]
fn uncompared_kinds_are_reported_not_ignored() {
    let mut live = Schema::default();
    live.uncompared.insert("function public.f()".into(), "functions".into());
    let d = diff(&live, &Schema::default(), "public");
    assert!(!d.is_empty());
    assert!(d.rows()[0].1.contains("not compared"));
}

#[test]
fn unquote_reads_quoted_names() {
    assert_eq!(unquote("\"Odd\"\"Name\""), "Odd\"Name");
    assert_eq!(unquote("plain"), "plain");
}
