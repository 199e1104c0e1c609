//! #[pg_test]s for reading both sides: the catalog reader and the desired DDL
//! run in a scratch namespace, from SQL text through the server's parser.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::introspect::{catalog, desired};

    const PLAIN: &str = "
        CREATE TYPE ag_mood AS ENUM ('sad', 'happy');
        CREATE TABLE ag_users (id serial PRIMARY KEY, name text COLLATE \"C\" NOT NULL DEFAULT 'x', feeling ag_mood);
        CREATE TABLE ag_posts (id bigint GENERATED ALWAYS AS IDENTITY, user_id integer REFERENCES ag_users (id) ON DELETE SET NULL DEFERRABLE,
                               total numeric GENERATED ALWAYS AS (id * 2) STORED, CHECK (user_id > 0));
        CREATE INDEX ag_posts_user_idx ON ag_posts (user_id) WHERE user_id IS NOT NULL;
        CREATE VIEW ag_names AS SELECT id, name FROM ag_users;
        COMMENT ON COLUMN ag_users.name IS 'shown';
    ";

    /// The same schema as pg_dump --schema-only writes it.
    const DUMPED: &str = r#"\restrict Qk2bT8oRkMUu
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
CREATE SCHEMA public;
ALTER SCHEMA public OWNER TO pg_database_owner;
COMMENT ON SCHEMA public IS 'standard public schema';
CREATE TYPE public.ag_mood AS ENUM ('sad', 'happy');
ALTER TYPE public.ag_mood OWNER TO postgres;
CREATE TABLE public.ag_users (id integer NOT NULL, name text COLLATE pg_catalog."C" DEFAULT 'x'::text NOT NULL, feeling public.ag_mood);
CREATE SEQUENCE public.ag_users_id_seq AS integer START WITH 1 INCREMENT BY 1 NO MINVALUE NO MAXVALUE CACHE 1;
ALTER SEQUENCE public.ag_users_id_seq OWNED BY public.ag_users.id;
CREATE TABLE public.ag_posts (id bigint NOT NULL, user_id integer, total numeric GENERATED ALWAYS AS ((id * 2)) STORED,
    CONSTRAINT ag_posts_user_id_check CHECK ((user_id > 0)));
ALTER TABLE public.ag_posts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ag_posts_id_seq START WITH 1 INCREMENT BY 1 NO MINVALUE NO MAXVALUE CACHE 1
);
CREATE VIEW public.ag_names AS SELECT ag_users.id, ag_users.name FROM public.ag_users;
ALTER TABLE ONLY public.ag_users ALTER COLUMN id SET DEFAULT nextval('public.ag_users_id_seq'::regclass);
ALTER TABLE ONLY public.ag_users ADD CONSTRAINT ag_users_pkey PRIMARY KEY (id);
CREATE INDEX ag_posts_user_idx ON public.ag_posts USING btree (user_id) WHERE (user_id IS NOT NULL);
ALTER TABLE ONLY public.ag_posts ADD CONSTRAINT ag_posts_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.ag_users(id) ON DELETE SET NULL DEFERRABLE;
COMMENT ON COLUMN public.ag_users.name IS 'shown';
GRANT ALL ON TABLE public.ag_users TO PUBLIC;
\unrestrict Qk2bT8oRkMUu
"#;

    #[pg_test]
    fn pg_dump_output_reads_as_the_plain_ddl_and_as_the_live_schema() {
        let plain = desired::read_desired(PLAIN, "public");
        let dumped = desired::read_desired(DUMPED, "public");
        assert!(plain.skipped.is_empty(), "{:?}", plain.skipped);
        assert!(dumped.skipped.is_empty(), "{:?}", dumped.skipped);
        assert_eq!(plain.schema, dumped.schema);
        let users = &plain.schema.tables["ag_users"];
        assert_eq!(users.column("name").unwrap().collation.as_deref(), Some("pg_catalog.\"C\""));
        assert_eq!(users.column("id").unwrap().default.as_deref(), Some("nextval('ag_users_id_seq'::regclass)"));
        assert_eq!(plain.schema.sequences["ag_users_id_seq"].owned_by, Some(("ag_users".into(), "id".into())));
        assert!(!plain.schema.sequences.contains_key("ag_posts_id_seq"), "an identity's own sequence is the column's");
        assert_eq!(
            plain.schema.tables["ag_posts"].constraints["ag_posts_user_id_fkey"].definition,
            "FOREIGN KEY (user_id) REFERENCES ag_users(id) ON DELETE SET NULL DEFERRABLE"
        );
        assert_eq!(plain.schema.tables["ag_posts"].indexes["ag_posts_user_idx"].tail, "USING btree (user_id) WHERE (user_id IS NOT NULL)");
        assert_eq!(plain.schema.views["ag_names"].depends_on, vec!["ag_users".to_string()]);

        // Nothing of the desired run is left, and the live schema is still empty of it.
        let left = Spi::get_one::<i64>("SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname LIKE '%migrate\\_desired%'").unwrap();
        assert_eq!(left, Some(0));
        let live = catalog::read_namespace("public", "public");
        assert!(!live.tables.contains_key("ag_users"));

        Spi::run(PLAIN).unwrap();
        let live = catalog::read_namespace("public", "public");
        for name in ["ag_users", "ag_posts"] {
            assert_eq!(live.tables[name], plain.schema.tables[name], "{name}");
        }
        assert_eq!(live.views["ag_names"], plain.schema.views["ag_names"]);
        assert_eq!(live.enums["ag_mood"], plain.schema.enums["ag_mood"]);
    }

    #[pg_test]
    fn statements_not_compared_are_listed_not_run() {
        let read = desired::read_desired("CREATE TABLE ag_t (x integer); INSERT INTO ag_t VALUES (1); CREATE EXTENSION IF NOT EXISTS plpgsql;", "public");
        assert!(read.schema.tables.contains_key("ag_t"));
        assert_eq!(read.skipped.len(), 2, "{:?}", read.skipped);
        assert!(read.skipped[0].starts_with("statement 2 (INSERT) was not run"), "{:?}", read.skipped);
    }

    #[pg_test]
    fn a_backslash_inside_a_string_is_not_a_meta_command() {
        let read = desired::read_desired("CREATE TABLE ag_t (x text DEFAULT '\n\\restrict not a command');", "public");
        assert_eq!(
            read.schema.tables["ag_t"].columns[0].default.as_deref(),
            Some("'\n\\restrict not a command'::text")
        );
    }

    #[pg_test]
    fn migrate_check_reports_each_difference() {
        Spi::run("CREATE TABLE ag_t (x integer, y text)").unwrap();
        let rows = Spi::get_one::<i64>("SELECT count(*) FROM migrate_check('CREATE TABLE ag_t (x integer, y text)')").unwrap();
        assert_eq!(rows, Some(0));
        let difference = Spi::get_one::<String>(
            "SELECT difference FROM migrate_check('CREATE TABLE ag_t (x bigint, y text)') WHERE object = 'column public.ag_t.x'",
        )
        .unwrap();
        assert_eq!(difference.as_deref(), Some("type integer, desired bigint"));
    }
}
