-- Every bytea column holds ciphertext, a wrapped key or a keyed digest: incompressible. With the
-- default storage (EXTENDED) PostgreSQL first tries to pglz-compress any value over ~2 kB (a
-- 120-field profile's ciphertext is ~2.7 kB) and gives up; EXTERNAL skips that attempt and
-- still moves large values out of line. Metadata only: no table is rewritten, and rows already
-- stored keep their current form.
DO $strongroom$
DECLARE c record;
BEGIN
    FOR c IN SELECT table_name::text AS t, column_name::text AS col FROM information_schema.columns
              WHERE table_schema = current_schema() AND data_type = 'bytea' LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STORAGE EXTERNAL', c.t, c.col);
    END LOOP;
END
$strongroom$;
