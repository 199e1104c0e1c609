//! #[pg_test]s of the guard from SQL text, as squawk tests its rules: each case
//! goes through the server's parser, extract.rs (the parse tree and the live
//! catalog to facts) and the rules, in check mode (check_script, what
//! migrate_guard_check runs) and, where a single session can show it, live
//! (the event triggers, in a subtransaction that is rolled back).
//!
//! A table created in the test's own transaction counts as new (nobody else can
//! see it), so the tables the rules judge are made once, at CREATE EXTENSION of
//! the test build, and released from the extension: schema `gfx`. The
//! thresholds are set low in each test's transaction (1,000 rows).
//!
//! Not here: lock_queue (needs a second session holding a lock: tests/e2e),
//! and the hook's live verdicts on TRUNCATE, REINDEX, VACUUM FULL and CLUSTER
//! (pg_test does not preload the library: tests/e2e/test_guard_preload.py).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::guard::rules::{Finding, Level};
    use crate::guard::triggers::check_script;
    use crate::subxact::{self, Keep};

    pgrx::extension_sql!(
        r#"
CREATE SCHEMA gfx;
CREATE TABLE gfx.big (id int NOT NULL, v int, t text, vc varchar(20), w int CONSTRAINT big_w_nn CHECK (w IS NOT NULL), ref_id int);
INSERT INTO gfx.big SELECT i, i, 'x' || i, 'y', i, 1 FROM generate_series(1, 2000) i;
CREATE INDEX big_v_idx ON gfx.big (v);
CREATE TABLE gfx.small (id int, v int);
INSERT INTO gfx.small VALUES (1, 1), (2, 2), (3, 3);
CREATE TABLE gfx.empty (id int, v int);
CREATE TABLE gfx."Mixed Case" (id int, "Odd Col" text);
INSERT INTO gfx."Mixed Case" SELECT i, 'z' FROM generate_series(1, 2000) i;
CREATE TABLE gfx.parent (id int CONSTRAINT parent_pkey PRIMARY KEY);
INSERT INTO gfx.parent VALUES (1);
CREATE TABLE gfx.raw (id int, v int) WITH (autovacuum_enabled = false);
INSERT INTO gfx.raw SELECT i, i FROM generate_series(1, 20000) i;
CREATE TABLE gfx.part (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE gfx.part_1 PARTITION OF gfx.part FOR VALUES FROM (0) TO (1000);
CREATE TABLE gfx.part_2 PARTITION OF gfx.part FOR VALUES FROM (1000) TO (3000);
INSERT INTO gfx.part SELECT i, i FROM generate_series(1, 2999) i;
CREATE TABLE gfx.loose (id int, v int);
INSERT INTO gfx.loose SELECT i, i FROM generate_series(3000, 4999) i;
CREATE TABLE gfx.lpart (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE gfx.lpart_default PARTITION OF gfx.lpart DEFAULT;
INSERT INTO gfx.lpart SELECT i, i FROM generate_series(1, 2000) i;
CREATE MATERIALIZED VIEW gfx.mv AS SELECT id FROM gfx.big;
CREATE TYPE gfx.mood AS ENUM ('a', 'b');
CREATE DOMAIN gfx.posint AS int;
CREATE TABLE gfx.with_domain (d gfx.posint);
INSERT INTO gfx.with_domain SELECT i FROM generate_series(1, 2000) i;
CREATE TYPE gfx.kind AS ENUM ('k1', 'k2');
CREATE TABLE gfx.typed (id int, k gfx.kind);
INSERT INTO gfx.typed SELECT i, 'k1' FROM generate_series(1, 2000) i;
CREATE SCHEMA gfx_doomed;
CREATE TABLE gfx_doomed.t (id int);
INSERT INTO gfx_doomed.t SELECT i FROM generate_series(1, 2000) i;
ANALYZE gfx.big, gfx.small, gfx.empty, gfx."Mixed Case", gfx.parent, gfx.part, gfx.part_1, gfx.part_2, gfx.loose,
        gfx.lpart, gfx.lpart_default, gfx.mv, gfx.with_domain, gfx.typed, gfx_doomed.t;
-- Shared tables of the database, not the extension's: DROP SCHEMA ... CASCADE
-- and DROP TYPE ... CASCADE must reach the sql_drop event.
ALTER EXTENSION pg_migrate DROP SCHEMA gfx;
ALTER EXTENSION pg_migrate DROP SCHEMA gfx_doomed;
ALTER EXTENSION pg_migrate DROP TABLE gfx.big;
ALTER EXTENSION pg_migrate DROP TABLE gfx.small;
ALTER EXTENSION pg_migrate DROP TABLE gfx.empty;
ALTER EXTENSION pg_migrate DROP TABLE gfx."Mixed Case";
ALTER EXTENSION pg_migrate DROP TABLE gfx.parent;
ALTER EXTENSION pg_migrate DROP TABLE gfx.raw;
ALTER EXTENSION pg_migrate DROP TABLE gfx.part;
ALTER EXTENSION pg_migrate DROP TABLE gfx.part_1;
ALTER EXTENSION pg_migrate DROP TABLE gfx.part_2;
ALTER EXTENSION pg_migrate DROP TABLE gfx.loose;
ALTER EXTENSION pg_migrate DROP TABLE gfx.lpart;
ALTER EXTENSION pg_migrate DROP TABLE gfx.lpart_default;
ALTER EXTENSION pg_migrate DROP MATERIALIZED VIEW gfx.mv;
ALTER EXTENSION pg_migrate DROP TYPE gfx.mood;
ALTER EXTENSION pg_migrate DROP DOMAIN gfx.posint;
ALTER EXTENSION pg_migrate DROP TABLE gfx.with_domain;
ALTER EXTENSION pg_migrate DROP TYPE gfx.kind;
ALTER EXTENSION pg_migrate DROP TABLE gfx.typed;
ALTER EXTENSION pg_migrate DROP TABLE gfx_doomed.t;
"#,
        name = "guard_test_fixture",
    );

    /// (statement number, rule, level, SQLSTATE), sorted.
    type Found = Vec<(i32, String, String, String)>;

    /// What each test starts from: "large" is 1,000 rows (never bytes), and
    /// lock_timeout is set so that only missing_lock_timeout's own cases see it 0.
    fn thresholds() {
        Spi::run(
            "SET LOCAL pg_migrate.guard_min_rows = 1000; SET LOCAL pg_migrate.guard_min_size = '1GB';
             SET LOCAL lock_timeout = '10s'",
        )
        .unwrap();
    }

    fn found(findings: &[(i32, Finding, Level)]) -> Found {
        let mut out: Found = findings
            .iter()
            .map(|(n, f, l)| (*n, f.rule.name().to_string(), l.as_str().to_string(), f.rule.sqlstate().to_string()))
            .collect();
        out.sort();
        out
    }

    fn expect(list: &[(i32, &str, &str, &str)]) -> Found {
        let mut out: Found = list.iter().map(|(n, r, l, s)| (*n, r.to_string(), l.to_string(), s.to_string())).collect();
        out.sort();
        out
    }

    /// Run `setup` (in this test's transaction: what it creates is new), then
    /// check `sql` without running it, then run it; all undone afterwards.
    /// Returns the check-mode findings and the SQLSTATE the live run raised.
    fn case_full(setup: &str, sql: &str, live: bool) -> (Vec<(i32, Finding, Level)>, Option<String>) {
        subxact::run(Keep::Rollback, || {
            if !setup.is_empty() {
                Spi::run(setup).unwrap();
            }
            let checked = check_script(sql, &[]);
            let raised = live.then(|| subxact::run(Keep::Rollback, || Spi::run(sql)).err().map(|f| f.sqlstate)).flatten();
            (checked, raised)
        })
        .unwrap_or_else(|failure| panic!("setup or check of {sql:?} failed: {failure:?}"))
    }

    /// The check-mode findings of `sql`, after `setup`.
    fn findings(setup: &str, sql: &str) -> Found {
        found(&case_full(setup, sql, false).0)
    }

    /// Check mode and live: the findings, and the SQLSTATE of the live refusal.
    fn both(setup: &str, sql: &str) -> (Found, Option<String>) {
        let (checked, raised) = case_full(setup, sql, true);
        (found(&checked), raised)
    }

    fn live(setup: &str, sql: &str) -> Option<String> {
        case_full(setup, sql, true).1
    }

    fn state(code: &str) -> Option<String> {
        Some(code.to_string())
    }

    /// The one finding of `sql`, for its DETAIL and HINT.
    fn only_finding(sql: &str) -> Finding {
        let (checked, _) = case_full("", sql, false);
        assert_eq!(checked.len(), 1, "{sql}: {checked:?}");
        let finding = checked[0].1.clone();
        assert!(!finding.detail.is_empty() && !finding.hint.is_empty(), "{finding:?}");
        finding
    }

    #[pg_test]
    fn drop_column_in_every_form() {
        thresholds();
        let dropped = expect(&[(1, "drop_column", "error", "MG002")]);
        assert_eq!(both("", "ALTER TABLE gfx.big DROP COLUMN t"), (dropped.clone(), state("MG002")));
        // One of several subcommands.
        assert_eq!(both("", "ALTER TABLE gfx.big ADD COLUMN n2 bigint, DROP COLUMN t"), (dropped.clone(), state("MG002")));
        assert_eq!(both("", "ALTER TABLE IF EXISTS gfx.big DROP COLUMN IF EXISTS t"), (dropped.clone(), state("MG002")));
        assert_eq!(both("", "ALTER TABLE ONLY gfx.big DROP COLUMN t"), (dropped.clone(), state("MG002")));
        // Unqualified, through search_path.
        assert_eq!(both("SET LOCAL search_path = gfx, public", "ALTER TABLE big DROP COLUMN t"), (dropped.clone(), state("MG002")));
        assert_eq!(both("", r#"ALTER TABLE gfx."Mixed Case" DROP COLUMN "Odd Col""#), (dropped.clone(), state("MG002")));
        // A partitioned table: its rows are its partitions'.
        assert_eq!(both("", "ALTER TABLE gfx.part DROP COLUMN v"), (dropped.clone(), state("MG002")));
        // Data loss needs rows, not size: a small table counts.
        assert_eq!(both("", "ALTER TABLE gfx.small DROP COLUMN v"), (dropped.clone(), state("MG002")));
        // A table never analyzed (reltuples -1) is sized by its pages.
        assert_eq!(both("", "ALTER TABLE gfx.raw DROP COLUMN v"), (dropped, state("MG002")));
        // Nothing to lose, or nobody else's table.
        assert_eq!(both("", "ALTER TABLE gfx.empty DROP COLUMN v"), (vec![], None));
        assert_eq!(both("", "ALTER TABLE IF EXISTS gfx.nosuch DROP COLUMN v"), (vec![], None));
        assert_eq!(both("", "CREATE TABLE gfx.fresh (id int, v int); ALTER TABLE gfx.fresh DROP COLUMN v"), (vec![], None));
        let filled = "CREATE TABLE gfx.fresh (id int, v int); INSERT INTO gfx.fresh SELECT i, i FROM generate_series(1, 2000) i";
        assert_eq!(both(filled, "ALTER TABLE gfx.fresh DROP COLUMN v"), (vec![], None));
        let temporary = "CREATE TEMP TABLE scratch AS SELECT i AS id, i AS v FROM generate_series(1, 2000) i";
        assert_eq!(both(temporary, "ALTER TABLE scratch DROP COLUMN v"), (vec![], None));
        assert!(only_finding("ALTER TABLE gfx.big DROP COLUMN t").hint.contains("backup"));
    }

    #[pg_test]
    fn drop_table_and_truncate() {
        thresholds();
        assert_eq!(both("", "DROP TABLE gfx.big"), (expect(&[(1, "drop_table", "error", "MG003")]), state("MG003")));
        assert_eq!(
            both("", "DROP TABLE IF EXISTS gfx.nosuch, gfx.small, gfx.empty"),
            (expect(&[(1, "drop_table", "error", "MG003")]), state("MG003"))
        );
        assert_eq!(both("", "DROP TABLE gfx.empty"), (vec![], None));
        assert_eq!(both("", "CREATE TABLE gfx.fresh (id int); DROP TABLE gfx.fresh"), (vec![], None));
        assert!(only_finding("DROP TABLE gfx.big").hint.contains("RENAME TO"));
        // TRUNCATE fires no event trigger: live, only the preloaded hook sees it.
        assert_eq!(
            findings("", "TRUNCATE gfx.big, gfx.small, gfx.empty"),
            expect(&[(1, "truncate", "error", "MG004"), (1, "truncate", "error", "MG004")])
        );
        assert_eq!(findings("", "TRUNCATE ONLY gfx.part_1"), expect(&[(1, "truncate", "error", "MG004")]));
        assert_eq!(findings("", "TRUNCATE gfx.empty"), vec![]);
    }

    #[pg_test]
    fn blocking_index_forms() {
        thresholds();
        let blocking = expect(&[(1, "blocking_index", "error", "MG005")]);
        assert_eq!(both("", "CREATE INDEX big_t_idx ON gfx.big (t)"), (blocking.clone(), state("MG005")));
        assert_eq!(both("", "CREATE UNIQUE INDEX big_id_key ON gfx.big (id)"), (blocking.clone(), state("MG005")));
        assert!(only_finding("CREATE INDEX big_t_idx ON gfx.big (t)").hint.contains("CREATE INDEX CONCURRENTLY big_t_idx"));
        // CONCURRENTLY cannot run in the test's transaction block: check mode only.
        assert_eq!(findings("", "CREATE INDEX CONCURRENTLY big_t_idx ON gfx.big (t)"), vec![]);
        assert_eq!(
            findings("", "CREATE INDEX ON gfx.big (t)"),
            expect(&[(1, "blocking_index", "error", "MG005"), (1, "unnamed_constraint", "warning", "MG101")])
        );
        assert_eq!(both("", "CREATE INDEX small_v_idx ON gfx.small (v)"), (vec![], None));
        assert_eq!(both("", "CREATE TABLE gfx.fresh (id int); CREATE INDEX fresh_id_idx ON gfx.fresh (id)"), (vec![], None));
        // Partitioned: CONCURRENTLY is refused there, the HINT goes through the partitions.
        assert_eq!(both("", "CREATE INDEX part_v_idx ON gfx.part (v)"), (blocking.clone(), state("MG005")));
        assert!(only_finding("CREATE INDEX part_v_idx ON gfx.part (v)").hint.contains("ON ONLY"));
        assert_eq!(both("", "CREATE INDEX part_v_idx ON ONLY gfx.part (v)"), (vec![], None));
        assert_eq!(both("", "DROP INDEX gfx.big_v_idx"), (blocking.clone(), state("MG005")));
        assert!(only_finding("DROP INDEX gfx.big_v_idx").hint.contains("DROP INDEX CONCURRENTLY"));
        assert_eq!(findings("", "DROP INDEX CONCURRENTLY gfx.big_v_idx"), vec![]);
        assert_eq!(findings("", "DROP INDEX IF EXISTS gfx.nosuch_idx"), vec![]);
        // REINDEX fires no event trigger: check mode.
        assert_eq!(findings("", "REINDEX INDEX gfx.big_v_idx"), blocking.clone());
        assert_eq!(findings("", "REINDEX TABLE gfx.big"), blocking.clone());
        assert!(only_finding("REINDEX TABLE gfx.big").hint.contains("REINDEX TABLE CONCURRENTLY gfx.big"));
        assert_eq!(findings("", "REINDEX TABLE CONCURRENTLY gfx.big"), vec![]);
        assert_eq!(findings("", "REINDEX (VERBOSE) TABLE gfx.small"), vec![]);
        // Index builds hidden in ALTER TABLE.
        assert_eq!(
            both("", "ALTER TABLE gfx.big ADD COLUMN code int CONSTRAINT big_code_key UNIQUE"),
            (blocking.clone(), state("MG005"))
        );
        assert_eq!(both("", "ALTER TABLE gfx.big ADD CONSTRAINT big_t_key UNIQUE (t)"), (blocking.clone(), state("MG005")));
        assert!(only_finding("ALTER TABLE gfx.big ADD CONSTRAINT big_t_key UNIQUE (t)").hint.contains("USING INDEX"));
        assert_eq!(
            both("", "ALTER TABLE gfx.big ADD CONSTRAINT big_v_excl EXCLUDE USING btree (v WITH =)"),
            (blocking.clone(), state("MG005"))
        );
        assert_eq!(both("", "ALTER TABLE gfx.big ADD CONSTRAINT big_pkey PRIMARY KEY (id)"), (blocking, state("MG005")));
        // A nullable key column is made NOT NULL by a scan as well.
        assert_eq!(
            both("", "ALTER TABLE gfx.big ADD CONSTRAINT big_pkey PRIMARY KEY (v)"),
            (expect(&[(1, "blocking_index", "error", "MG005"), (1, "set_not_null", "error", "MG008")]), state("MG005"))
        );
        assert_eq!(
            both(
                "SET LOCAL pg_migrate.allow = 'blocking_index: the test builds it'; CREATE UNIQUE INDEX big_id_key ON gfx.big (id);
                 SET LOCAL pg_migrate.allow = ''",
                "ALTER TABLE gfx.big ADD CONSTRAINT big_id_key UNIQUE USING INDEX big_id_key"
            ),
            (vec![], None)
        );
    }

    #[pg_test]
    fn columns_defaults_and_not_null() {
        thresholds();
        let nn = expect(&[(1, "not_null_without_default", "error", "MG006")]);
        assert_eq!(both("", "ALTER TABLE gfx.big ADD COLUMN nn int NOT NULL"), (nn.clone(), state("MG006")));
        assert_eq!(both("", "ALTER TABLE gfx.small ADD COLUMN nn int CONSTRAINT small_nn NOT NULL"), (nn, state("MG006")));
        assert!(only_finding("ALTER TABLE gfx.big ADD COLUMN nn int NOT NULL").hint.contains("migrate_backfill"));
        assert_eq!(both("", "ALTER TABLE gfx.big ADD COLUMN nn int NOT NULL DEFAULT 0"), (vec![], None));
        assert_eq!(both("", "ALTER TABLE gfx.empty ADD COLUMN nn int NOT NULL"), (vec![], None));
        assert_eq!(
            both("", "ALTER TABLE gfx.big ADD COLUMN nn bigint GENERATED ALWAYS AS IDENTITY"),
            // Not a missing default; the identity fills every row, which rewrites.
            (expect(&[(1, "table_rewrite", "error", "MG007")]), state("MG007"))
        );

        let snn = expect(&[(1, "set_not_null", "error", "MG008")]);
        assert_eq!(both("", "ALTER TABLE gfx.big ALTER COLUMN v SET NOT NULL"), (snn.clone(), state("MG008")));
        assert_eq!(both("", "ALTER TABLE ONLY gfx.big ALTER v SET NOT NULL, ALTER t SET DEFAULT 'x'"), (snn, state("MG008")));
        assert!(only_finding("ALTER TABLE gfx.big ALTER COLUMN v SET NOT NULL").hint.contains("migrate_set_not_null"));
        // A validated CHECK (w IS NOT NULL) proves it without a scan.
        assert_eq!(both("", "ALTER TABLE gfx.big ALTER COLUMN w SET NOT NULL"), (vec![], None));
        assert_eq!(both("", "ALTER TABLE gfx.small ALTER COLUMN v SET NOT NULL"), (vec![], None));
    }

    #[pg_test]
    fn rewrites_are_judged_live() {
        thresholds();
        // The table_rewrite event is the live signal; check mode decides the
        // same rewrites statically from the catalog (static_rewrite.rs).
        let rewrite = (expect(&[(1, "table_rewrite", "error", "MG007")]), state("MG007"));
        assert_eq!(both("", "ALTER TABLE gfx.big ALTER COLUMN v TYPE bigint"), rewrite);
        assert_eq!(both("", "ALTER TABLE gfx.big ALTER COLUMN v TYPE bigint USING v::bigint"), rewrite);
        assert_eq!(both("", "ALTER TABLE gfx.big ADD COLUMN r float8 DEFAULT random()"), rewrite);
        assert_eq!(both("", "ALTER TABLE gfx.big SET UNLOGGED"), rewrite);
        // Binary coercible, a constant default: no rewrite.
        assert_eq!(both("", "ALTER TABLE gfx.big ALTER COLUMN vc TYPE text"), (vec![], None));
        assert_eq!(both("", "ALTER TABLE gfx.big ADD COLUMN c int DEFAULT 7"), (vec![], None));
        assert_eq!(live("", "ALTER TABLE gfx.small ALTER COLUMN v TYPE bigint"), None);
    }

    #[pg_test]
    fn constraints_validate_unless_not_valid() {
        thresholds();
        let validating = expect(&[(1, "validating_constraint", "error", "MG009")]);
        let check = "ALTER TABLE gfx.big ADD CONSTRAINT big_v_pos CHECK (v > 0)";
        assert_eq!(both("", check), (validating.clone(), state("MG009")));
        assert!(only_finding(check).hint.contains("NOT VALID"));
        assert_eq!(both("", "ALTER TABLE gfx.big ADD CONSTRAINT big_v_pos CHECK (v > 0) NOT VALID"), (vec![], None));
        let fk = "ALTER TABLE gfx.big ADD CONSTRAINT big_ref_fk FOREIGN KEY (ref_id) REFERENCES gfx.parent (id) ON DELETE CASCADE";
        assert_eq!(both("", fk), (validating.clone(), state("MG009")));
        assert_eq!(both("", &format!("{fk} NOT VALID")), (vec![], None));
        assert_eq!(
            both("", "ALTER TABLE gfx.big ADD COLUMN p_id int CONSTRAINT big_p_fk REFERENCES gfx.parent ON DELETE SET NULL"),
            (validating.clone(), state("MG009"))
        );
        assert_eq!(
            both("", "ALTER TABLE gfx.big ADD COLUMN q int CONSTRAINT big_q_pos CHECK (q > 0)"),
            (validating, state("MG009"))
        );
        assert_eq!(both("", "ALTER TABLE gfx.big VALIDATE CONSTRAINT big_w_nn"), (vec![], None));
        assert_eq!(both("", "ALTER TABLE gfx.small ADD CONSTRAINT small_v_pos CHECK (v > 0)"), (vec![], None));

        // foreign_key_on_delete: the parse tree cannot tell NO ACTION from none; the text can.
        let no_on_delete = expect(&[(1, "foreign_key_on_delete", "warning", "MG102")]);
        assert_eq!(
            both("", "ALTER TABLE gfx.big ADD CONSTRAINT big_ref_fk FOREIGN KEY (ref_id) REFERENCES gfx.parent (id) NOT VALID"),
            (no_on_delete.clone(), None)
        );
        assert_eq!(
            both("", "CREATE TABLE gfx.child (id bigint, p int CONSTRAINT child_p_fk REFERENCES gfx.parent (id))"),
            (no_on_delete, None)
        );
        assert_eq!(
            both("", "CREATE TABLE gfx.child (id bigint, p int CONSTRAINT child_p_fk REFERENCES gfx.parent (id) ON DELETE NO ACTION)"),
            (vec![], None)
        );
    }

    #[pg_test]
    fn missing_lock_timeout_and_set_local() {
        thresholds();
        let no_timeout = "SET LOCAL lock_timeout = 0";
        assert_eq!(
            both(no_timeout, "ALTER TABLE gfx.big ADD COLUMN x int"),
            (expect(&[(1, "missing_lock_timeout", "error", "MG010")]), state("MG010"))
        );
        assert!(only_finding_after(no_timeout, "ALTER TABLE gfx.small ADD COLUMN x int").hint.contains("lock_timeout"));
        assert_eq!(both(no_timeout, "ALTER TABLE gfx.empty ADD COLUMN x int"), (vec![], None));
        // SHARE UPDATE EXCLUSIVE queues no reader.
        assert_eq!(both(no_timeout, "ALTER TABLE gfx.big VALIDATE CONSTRAINT big_w_nn"), (vec![], None));
        // A SET LOCAL earlier in the script counts, live and in check mode.
        assert_eq!(both(no_timeout, "SET LOCAL lock_timeout = '2s'; ALTER TABLE gfx.big ADD COLUMN x int"), (vec![], None));
    }

    fn only_finding_after(setup: &str, sql: &str) -> Finding {
        let (checked, _) = case_full(setup, sql, false);
        assert_eq!(checked.len(), 1, "{sql}: {checked:?}");
        checked[0].1.clone()
    }

    #[pg_test]
    fn copies_refreshes_partitions_domains() {
        thresholds();
        let copy = expect(&[(1, "table_copy", "error", "MG020")]);
        // VACUUM and CLUSTER fire no event trigger (live: the preloaded hook).
        assert_eq!(findings("", "VACUUM FULL gfx.big"), copy.clone());
        assert_eq!(findings("", "VACUUM (FULL, ANALYZE) gfx.big"), copy.clone());
        assert_eq!(findings("", "VACUUM gfx.big"), vec![]);
        assert_eq!(findings("", "VACUUM FULL gfx.small"), vec![]);
        assert_eq!(findings("", "CLUSTER gfx.big USING big_v_idx"), copy.clone());
        assert_eq!(both("", "ALTER TABLE gfx.big SET TABLESPACE pg_default"), (copy.clone(), state("MG020")));
        assert_eq!(both("", "ALTER INDEX gfx.big_v_idx SET TABLESPACE pg_default"), (copy.clone(), state("MG020")));
        assert!(only_finding("ALTER INDEX gfx.big_v_idx SET TABLESPACE pg_default").hint.contains("CONCURRENTLY"));

        let refresh = expect(&[(1, "refresh_materialized_view", "error", "MG021")]);
        assert_eq!(both("", "REFRESH MATERIALIZED VIEW gfx.mv"), (refresh, state("MG021")));
        assert!(only_finding("REFRESH MATERIALIZED VIEW gfx.mv").hint.contains("CONCURRENTLY"));
        assert_eq!(both("", "REFRESH MATERIALIZED VIEW gfx.mv WITH NO DATA"), (vec![], None));

        let attach = expect(&[(1, "attach_partition", "error", "MG022")]);
        assert_eq!(
            both("", "ALTER TABLE gfx.part ATTACH PARTITION gfx.loose FOR VALUES FROM (3000) TO (6000)"),
            (attach.clone(), state("MG022"))
        );
        assert_eq!(
            both(
                "SET LOCAL pg_migrate.allow = 'validating_constraint: the test proves the bound';
                 ALTER TABLE gfx.loose ADD CONSTRAINT loose_bound CHECK (id IS NOT NULL AND id >= 3000 AND id < 6000);
                 SET LOCAL pg_migrate.allow = ''",
                "ALTER TABLE gfx.part ATTACH PARTITION gfx.loose FOR VALUES FROM (3000) TO (6000)"
            ),
            (vec![], None)
        );
        // A new partition of a parent with a DEFAULT partition: the default is scanned.
        assert_eq!(
            both("", "CREATE TABLE gfx.lpart_high PARTITION OF gfx.lpart FOR VALUES FROM (10000) TO (20000)"),
            (attach, state("MG022"))
        );
        assert_eq!(both("", "CREATE TABLE gfx.part_3 PARTITION OF gfx.part FOR VALUES FROM (3000) TO (4000)"), (vec![], None));

        let domain = expect(&[(1, "domain_constraint", "error", "MG023")]);
        assert_eq!(both("", "ALTER DOMAIN gfx.posint ADD CONSTRAINT posint_pos CHECK (VALUE > 0)"), (domain.clone(), state("MG023")));
        assert_eq!(both("", "ALTER DOMAIN gfx.posint SET NOT NULL"), (domain, state("MG023")));
        assert_eq!(both("", "ALTER DOMAIN gfx.posint ADD CONSTRAINT posint_pos CHECK (VALUE > 0) NOT VALID"), (vec![], None));
    }

    #[pg_test]
    fn rename_by_drop_forgets_a_rolled_back_savepoint() {
        thresholds();
        // Refused (so rolled back with its savepoint): the column is still there,
        // and a later ADD COLUMN of the same type is no rename.
        assert_eq!(live("", "ALTER TABLE gfx.big DROP COLUMN t"), state("MG002"));
        assert_eq!(live("", "ALTER TABLE gfx.big ADD COLUMN t2 text"), None);
        // Dropped and added in one savepoint: a rename, as before.
        let acknowledged = "SET LOCAL pg_migrate.allow = 'drop_column: the test drops it'";
        assert_eq!(live(acknowledged, "ALTER TABLE gfx.big DROP COLUMN t; ALTER TABLE gfx.big ADD COLUMN t2 text"), state("MG001"));
        // That savepoint rolled back too.
        assert_eq!(live("", "ALTER TABLE gfx.big ADD COLUMN t2 text"), None);
    }

    #[pg_test]
    fn rename_by_drop_in_one_statement_or_a_script() {
        thresholds();
        assert_eq!(
            both("", "ALTER TABLE gfx.big DROP COLUMN t, ADD COLUMN t2 text"),
            (expect(&[(1, "drop_column", "error", "MG002"), (1, "rename_by_drop", "error", "MG001")]), state("MG001"))
        );
        assert_eq!(
            findings("", "ALTER TABLE gfx.big DROP COLUMN t; ALTER TABLE gfx.big ADD COLUMN t2 text"),
            expect(&[(1, "drop_column", "error", "MG002"), (2, "rename_by_drop", "error", "MG001")])
        );
        let (checked, _) = case_full("", "ALTER TABLE gfx.big ADD COLUMN t2 text, DROP COLUMN t", false);
        let rename = checked.iter().find(|(_, f, _)| f.rule.name() == "rename_by_drop").expect("rename_by_drop");
        assert!(rename.1.hint.contains("RENAME COLUMN t TO t2"), "{:?}", rename.1);
        assert_eq!(
            findings("", "DROP TABLE gfx.small; CREATE TABLE gfx.small_new (id int, v int)"),
            expect(&[(1, "drop_table", "error", "MG003"), (2, "rename_by_drop", "error", "MG001")])
        );
        // Another type is not a rename.
        assert_eq!(
            findings("", "ALTER TABLE gfx.big DROP COLUMN t; ALTER TABLE gfx.big ADD COLUMN t2 bigint"),
            expect(&[(1, "drop_column", "error", "MG002")])
        );
    }

    #[pg_test]
    fn cascades_are_judged_live() {
        thresholds();
        // The sql_drop event lists what a cascade dropped. Check mode does not
        // compute a drop's closure: it says nothing about these today.
        assert_eq!(live("", "DROP SCHEMA gfx_doomed CASCADE"), state("MG012"));
        assert_eq!(live("", "DROP TYPE gfx.kind CASCADE"), state("MG013"));
        assert_eq!(live("", "CREATE TYPE gfx.k2 AS ENUM ('a'); CREATE TABLE gfx.fresh (k gfx.k2); DROP TYPE gfx.k2 CASCADE"), None);
        // DDL inside a DO block fires the event triggers live as well.
        assert_eq!(live("", "DO $$ BEGIN ALTER TABLE gfx.big DROP COLUMN t; END $$"), state("MG002"));
    }

    #[pg_test]
    fn warnings_and_advisories() {
        thresholds();
        assert_eq!(
            both("", "CREATE TABLE gfx.fresh (id bigint, c int, UNIQUE (c))"),
            (expect(&[(1, "unnamed_constraint", "warning", "MG101")]), None)
        );
        assert_eq!(both("", "CREATE TABLE gfx.fresh (id bigint, c int CONSTRAINT fresh_c_key UNIQUE)"), (vec![], None));
        assert_eq!(
            both("", "ALTER TYPE gfx.mood ADD VALUE 'c'"),
            (expect(&[(1, "enum_value_in_transaction", "warning", "MG103")]), None)
        );
        let advisory = "CREATE TABLE gfx.adv (id int CONSTRAINT adv_pkey PRIMARY KEY, j json, ts timestamp)";
        assert_eq!(both("", advisory), (vec![], None));
        let on = "SET LOCAL pg_migrate.guard_levels = 'prefer_jsonb=notice, prefer_timestamptz=notice, prefer_bigint_pk=error'";
        assert_eq!(
            both(on, advisory),
            (
                expect(&[
                    (1, "prefer_bigint_pk", "error", "MG203"),
                    (1, "prefer_jsonb", "notice", "MG201"),
                    (1, "prefer_timestamptz", "notice", "MG202"),
                ]),
                state("MG203")
            )
        );
        assert_eq!(both(on, "CREATE TABLE gfx.adv (id bigint CONSTRAINT adv_pkey PRIMARY KEY, j jsonb, ts timestamptz)"), (vec![], None));
    }

    #[pg_test]
    fn migrate_guard_check_reports_the_same() {
        thresholds();
        let row = Spi::get_three::<String, String, String>(
            "SELECT rule, level, sqlstate FROM migrate_guard_check('ALTER TABLE gfx.big DROP COLUMN t')",
        )
        .unwrap();
        assert_eq!(row, (Some("drop_column".into()), Some("error".into()), Some("MG002".into())));
    }
}
