-- Coming from Alembic (docs/from-alembic.md): migrate_adopt_alembic() and the
-- version tables it keeps in sync.

-- Alembic version tables that pg_migrate keeps up to date (keep_in_sync).
CREATE TABLE migrate.alembic_sync (
    version_table text PRIMARY KEY,
    since         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by        text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE migrate.alembic_sync IS 'Alembic version tables pg_migrate keeps up to date (migrate_adopt_alembic(keep_in_sync => true))';
COMMENT ON COLUMN migrate.alembic_sync.version_table IS 'The version table, schema-qualified as regclass prints it';
GRANT SELECT ON migrate.alembic_sync TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.alembic_sync', '');

-- After every change of the applied state (upgrade, downgrade, stamp, a plan's
-- step): each version table in migrate.alembic_sync gets the applied heads, as
-- Alembic would have written them (revisions that no other applied revision
-- names as parent or dependency). Runs as the role that changed the state.
CREATE FUNCTION migrate.sync_alembic_versions() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    target pg_catalog.text;
    resolved pg_catalog.regclass;
BEGIN
    FOR target IN SELECT s.version_table FROM migrate.alembic_sync s ORDER BY 1 LOOP
        resolved := pg_catalog.to_regclass(target);
        IF resolved IS NULL THEN
            RAISE EXCEPTION 'the Alembic version table % that pg_migrate keeps in sync does not exist', target
                USING ERRCODE = 'undefined_table',
                      DETAIL = 'migrate_adopt_alembic(keep_in_sync => true) asked pg_migrate to write the applied heads there after every change.',
                      HINT = pg_catalog.format('Create it again, or stop keeping it in sync: DELETE FROM migrate.alembic_sync WHERE version_table = %L;', target);  -- sql-lint: allow(a HINT for the user to read, never run by pg_migrate)
        END IF;
        EXECUTE pg_catalog.format('DELETE FROM %s', resolved);
        EXECUTE pg_catalog.format(
            'INSERT INTO %s (version_num)
             SELECT a.revision_id FROM migrate.applied a
             EXCEPT
             SELECT p.id FROM migrate.applied b
               JOIN migrate.revisions r ON r.revision_id OPERATOR(pg_catalog.=) b.revision_id
              CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.array_cat(r.down_revisions, r.depends_on)) AS p(id)',
            resolved);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER applied_alembic_sync AFTER INSERT OR DELETE ON migrate.applied
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.sync_alembic_versions();
COMMENT ON TRIGGER applied_alembic_sync ON migrate.applied IS 'Keeps the Alembic version tables in migrate.alembic_sync at the applied heads';

-- The version table is resolved with the caller's search_path, when called.
CREATE FUNCTION migrate_adopt_alembic(
    version_table regclass DEFAULT 'alembic_version'::pg_catalog.text::pg_catalog.regclass,
    keep_in_sync boolean DEFAULT false)
RETURNS TABLE (revision text, direction text, message text, duration interval)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM migrate.adopt_alembic(version_table::pg_catalog.oid, keep_in_sync)
$$;
