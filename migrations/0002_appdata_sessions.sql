-- App data and sessions (issue 3). Both are encrypted under the owning user's key and hang off
-- users with ON DELETE CASCADE, so forgetting a user forgets them too.

-- App data: one JSON object per user and app name; the current version lives here.
CREATE TABLE appdata (
    tenant_id  bigint  NOT NULL,
    id         bigserial,
    user_id    bigint  NOT NULL,
    appname    text    NOT NULL CHECK (appname ~ '^[A-Za-z0-9_.-]{1,64}$'),
    version    integer NOT NULL,
    data       bytea   NOT NULL,
    digest     text    NOT NULL,
    created_at bigint  NOT NULL,
    updated_at bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT appdata_user_app_key UNIQUE (tenant_id, user_id, appname),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX appdata_appname ON appdata (tenant_id, appname);

-- Earlier versions of app data (the ciphertext moves as is: its associated data names the
-- user token, app name and version, not the table).
CREATE TABLE appdata_versions (
    tenant_id  bigint  NOT NULL,
    appdata_id bigint  NOT NULL,
    version    integer NOT NULL,
    data       bytea   NOT NULL,
    digest     text    NOT NULL,
    optime     bigint  NOT NULL,
    PRIMARY KEY (tenant_id, appdata_id, version),
    FOREIGN KEY (tenant_id, appdata_id) REFERENCES appdata (tenant_id, id) ON DELETE CASCADE
);

-- Sessions, bound to a user. expires_at NULL: no expiry. sliding_secs extends expires_at on
-- each access, never past final_at.
CREATE TABLE sessions (
    tenant_id    bigint NOT NULL,
    uuid         text   NOT NULL,
    user_id      bigint NOT NULL,
    data         bytea  NOT NULL,
    sliding_secs bigint,
    final_at     bigint,
    expires_at   bigint,
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, uuid),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_expiry ON sessions (tenant_id, expires_at) WHERE expires_at IS NOT NULL;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['appdata', 'appdata_versions', 'sessions']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I
                          USING (tenant_id = current_setting(''strongroom.tenant_id'')::bigint)
                          WITH CHECK (tenant_id = current_setting(''strongroom.tenant_id'')::bigint)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO strongroom_tenant', t);
    END LOOP;
END
$$;

GRANT USAGE ON SEQUENCE appdata_id_seq TO strongroom_tenant;
