-- Bulk unlock: a short-lived, tenant-bound uuid that bulk and search endpoints require.
-- Only a keyed hash of the uuid is stored.
CREATE TABLE bulk_unlocks (
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    uuid_hash  bytea  NOT NULL,
    actor      text   NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, uuid_hash)
);

ALTER TABLE bulk_unlocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE bulk_unlocks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON bulk_unlocks
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON bulk_unlocks TO strongroom_tenant;
