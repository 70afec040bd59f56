-- Sessions that name no user (issue 16): Pro's SessionUpsert takes only a uuid, data and times,
-- as a web framework's session store calls it before anyone signs in. Such a session is
-- encrypted under the tenant's data key (key_version, re-encrypted by data-key rotation like a
-- token); a user's session stays under that user's key, so forgetting the user forgets it.
ALTER TABLE sessions ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE sessions ADD COLUMN key_version integer;
ALTER TABLE sessions ADD CONSTRAINT sessions_key_version_fkey
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_keys (tenant_id, version);
ALTER TABLE sessions ADD CONSTRAINT sessions_one_owner CHECK ((user_id IS NULL) = (key_version IS NOT NULL));
CREATE INDEX sessions_key_version ON sessions (tenant_id, key_version) WHERE key_version IS NOT NULL;
