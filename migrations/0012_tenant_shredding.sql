-- Tenant crypto-shredding (issue 5): a tenant created while a tenant key store is configured
-- (STRONGROOM_TENANT_KEYS) has a key-encryption key (KEK) held outside the database, named here
-- by a random UUID. Its data keys are wrapped, and its blind-index and digest keys derived, from
-- master key || KEK; destroying the KEK makes every row of the tenant unreadable, in backups
-- taken before too. NULL: database-only custody (tenants created before this migration or
-- without a store), exactly as before.
-- Tenant traffic (strongroom_tenant) is not granted this column: the id is read by the owner
-- when a transaction resolves its tenant, before entering the tenant's scope.
ALTER TABLE tenants ADD COLUMN kek_id text
    CONSTRAINT tenants_kek_id_uuid CHECK (kek_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');
CREATE UNIQUE INDEX tenants_kek_id_key ON tenants (kek_id) WHERE kek_id IS NOT NULL;

-- Set when a TenantDelete begins, committed before the KEK is destroyed: from then on no
-- instance serves the tenant (request lookups skip it, whatever keys an instance has cached),
-- and a retry after a failure part-way knows the KEK may already be gone.
ALTER TABLE tenants ADD COLUMN shredding_at bigint;
