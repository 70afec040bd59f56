-- Files (issue 3). The content and the file's name and type are encrypted under the owning
-- user's key; the row hangs off users with ON DELETE CASCADE, so forgetting a user forgets them.
-- name_hash and digest are keyed hashes (of the file name and of the content) for look-up and
-- per-user duplicate detection. expires_at NULL: no expiry.
CREATE TABLE files (
    tenant_id    bigint NOT NULL,
    uuid         text   NOT NULL,
    user_id      bigint NOT NULL,
    meta         bytea  NOT NULL,
    name_hash    text   NOT NULL,
    data         bytea  NOT NULL,
    digest       text   NOT NULL,
    size         bigint NOT NULL,
    sliding_secs bigint,
    final_at     bigint,
    expires_at   bigint,
    created_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, uuid),
    CONSTRAINT files_user_digest_key UNIQUE (tenant_id, user_id, digest),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX files_user_name ON files (tenant_id, user_id, name_hash);

ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON files
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON files TO strongroom_tenant;
