-- Idempotency-Key (issue 17): a creating call's answer kept with its key for a day, committed in
-- the same transaction as the change, so a client that retries after a lost answer (a
-- connection cut while COMMIT waited for the standby) gets the first answer instead of a
-- duplicate or a 409. key_hash is a keyed hash (tenant keys) of the caller, endpoint and key;
-- request_hash the SHA-256 of the body, so a key reused for another request is refused.
-- The answers hold tokens (references), never profile data or secrets.
CREATE TABLE idempotency_keys (
    tenant_id    bigint NOT NULL,
    key_hash     bytea  NOT NULL,
    request_hash bytea  NOT NULL,
    answer       text   NOT NULL,
    created_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, key_hash)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (tenant_id, created_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO strongroom_tenant;
