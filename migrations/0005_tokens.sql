-- Format-preserving tokenization (issue 3). A token stands in for a credit card number or an
-- email address. Both the original (`record`) and the token value (`tokenbase`) are stored only
-- encrypted under the tenant data key of version key_version (associated data: tenant, table
-- label, token uuid, version). Lookups go through keyed hashes (HMAC under a per-tenant key):
-- token_hash finds a token by its value; record_hash, set only for `unique` tokens, makes the
-- same original map to the same token within a tenant. expires_at NULL: no expiry; an expired
-- token is never returned, whether or not a sweeper has deleted it yet.
CREATE TABLE tokens (
    tenant_id    bigint  NOT NULL,
    uuid         text    NOT NULL,
    tokentype    text    NOT NULL CHECK (tokentype IN ('creditcard', 'email')),
    token_hash   bytea   NOT NULL,
    record_hash  bytea,
    key_version  integer NOT NULL,
    record       bytea   NOT NULL,
    tokenbase    bytea   NOT NULL,
    sliding_secs bigint,
    final_at     bigint,
    expires_at   bigint,
    created_at   bigint  NOT NULL,
    PRIMARY KEY (tenant_id, uuid),
    CONSTRAINT tokens_token_hash_key UNIQUE (tenant_id, token_hash),
    CONSTRAINT tokens_record_hash_key UNIQUE (tenant_id, record_hash),
    -- A data-key version cannot be retired while a token is still encrypted under it.
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_keys (tenant_id, version)
);
CREATE INDEX tokens_expiry ON tokens (tenant_id, expires_at) WHERE expires_at IS NOT NULL;

ALTER TABLE tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tokens
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON tokens TO strongroom_tenant;
