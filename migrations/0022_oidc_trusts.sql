-- Issue 14, the second path: for Vault deployments that cannot load plugins, Strongroom trusts
-- identity tokens (JWTs) from a Vault/OpenBao identity engine (identity/oidc/token/<role>). A
-- tenant admin names the issuer, its JWKS URL, the audience (the OIDC role's client_id) and which
-- claim value maps to which working role.
--
-- Each trust hangs off a credential of kind 'oidc-trust' (whose hash matches no token anyone
-- holds): tokens it admits act with that credential as their lineage root, so revoking the
-- credential, deleting the trust, or revoking the admin credential that made it reaches
-- everything, like any other credential's descendants.
ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('root', 'tenant-admin', 'dpo', 'auditor', 'app-writer', 'app-reader', 'vault-plugin', 'oidc-trust'));

CREATE TABLE oidc_trusts (
    tenant_id     bigint NOT NULL,
    credential_id bigint NOT NULL,
    issuer        text   NOT NULL,
    jwks_url      text   NOT NULL,
    audience      text   NOT NULL,
    -- The claim whose string value picks the role, and {value: role} (working roles only).
    role_claim    text   NOT NULL,
    roles         jsonb  NOT NULL,
    created_at    bigint NOT NULL,
    PRIMARY KEY (tenant_id, credential_id),
    CONSTRAINT oidc_trusts_issuer_key UNIQUE (tenant_id, issuer),
    FOREIGN KEY (tenant_id, credential_id) REFERENCES credentials (tenant_id, id)
);
ALTER TABLE oidc_trusts ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_trusts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oidc_trusts
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON oidc_trusts TO strongroom_tenant;
