-- A per-tenant counter of credential changes, so that an instance may remember credentials it
-- has verified: each call reads the counter as it enters its tenant (the statement that reads
-- the tenant row anyway), and a remembered verification counts only at the counter's value it
-- was made at. Any update or deletion of a credential row (a revocation, a cascade, a hand-made
-- fix) bumps it in the same transaction, so a revocation holds on every instance from its next
-- call on. A new credential does not bump it: nothing remembered can be wrong because of it.
-- Revocations take the tenant row first (store::credentials), so that two along one lineage
-- queue instead of deadlocking on credential rows and this counter.
ALTER TABLE tenants ADD COLUMN credential_version bigint NOT NULL DEFAULT 0;

-- SECURITY DEFINER: tenant traffic may not write the directory; this function, owned by the
-- schema owner, writes one column of the changed row's own tenant and nothing else.
CREATE FUNCTION bump_credential_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $strongroom$
BEGIN
    EXECUTE format('UPDATE %I.tenants SET credential_version = credential_version + 1 WHERE id = $1', TG_TABLE_SCHEMA)
        USING OLD.tenant_id;
    RETURN NULL;
END
$strongroom$;
REVOKE ALL ON FUNCTION bump_credential_version() FROM PUBLIC;

CREATE TRIGGER credentials_changed AFTER UPDATE OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION bump_credential_version();

-- TRUNCATE fires no row trigger: every tenant's counter moves.
CREATE FUNCTION bump_every_credential_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $strongroom$
BEGIN
    EXECUTE format('UPDATE %I.tenants SET credential_version = credential_version + 1', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$strongroom$;
REVOKE ALL ON FUNCTION bump_every_credential_version() FROM PUBLIC;

CREATE TRIGGER credentials_truncated AFTER TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION bump_every_credential_version();
