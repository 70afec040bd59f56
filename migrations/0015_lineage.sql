-- Issue 12: every credential and lease names what minted it, so that revoking a credential or a
-- lease reaches everything minted from it, however many generations down.
--
-- credentials.parent_id: the credential that created this one (NULL: init, TenantCreate, a
-- root rotation or generate-root). leases.root_credential_id: the credential at the root of the
-- lease's lineage (NULL: a portal sign-in, which no credential minted); leases.parent_lease_id:
-- the lease that minted this one (xtoken -> xtoken).
ALTER TABLE credentials ADD COLUMN parent_id bigint;
ALTER TABLE leases ADD COLUMN root_credential_id bigint, ADD COLUMN parent_lease_id text;
-- Leases minted before this migration by a credential descend from it; leases minted by leases
-- before it have no recorded root and end at their own hard expiry (at most the lease max TTL).
UPDATE leases SET root_credential_id = credential_id WHERE credential_id IS NOT NULL;
CREATE INDEX credentials_parent ON credentials (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX leases_root_credential ON leases (tenant_id, root_credential_id) WHERE root_credential_id IS NOT NULL;
CREATE INDEX leases_parent ON leases (tenant_id, parent_lease_id) WHERE parent_lease_id IS NOT NULL;

-- A tenant role the Vault/OpenBao plugin may mint leases for: only when the tenant says so
-- (RoleCreate/RoleUpdate `mintable`), and then only while it holds no management right.
ALTER TABLE roles ADD COLUMN mintable boolean NOT NULL DEFAULT false;
