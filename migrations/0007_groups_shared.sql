-- Groups, group membership (with an optional tenant role), and shared records (issue 3).
-- Memberships and shared records hang off users with ON DELETE CASCADE, so forgetting a user
-- forgets them too; a shared record is encrypted under its user's key besides.

CREATE TABLE groups (
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    id          bigserial,
    name        text   NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    description text   NOT NULL DEFAULT '',
    grouptype   text   NOT NULL DEFAULT '',
    created_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT groups_name_key UNIQUE (tenant_id, name)
);

-- One membership per user and group; role_id names a tenant role (roles table), or NULL.
-- Roles are never deleted, so the role link needs no ON DELETE action.
CREATE TABLE group_members (
    tenant_id  bigint NOT NULL,
    group_id   bigint NOT NULL,
    user_id    bigint NOT NULL,
    role_id    bigint,
    created_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id)
);
CREATE INDEX group_members_user ON group_members (tenant_id, user_id);

-- A shared record: a snapshot of some of a user's fields (profile or one app's data), encrypted
-- under the user's key, readable by uuid until expires_at.
CREATE TABLE shared_records (
    tenant_id  bigint NOT NULL,
    uuid       text   NOT NULL,
    user_id    bigint NOT NULL,
    partner    text   NOT NULL DEFAULT '',
    data       bytea  NOT NULL,
    expires_at bigint NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, uuid),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX shared_records_user ON shared_records (tenant_id, user_id);
CREATE INDEX shared_records_expiry ON shared_records (tenant_id, expires_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['groups', 'group_members', 'shared_records']
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

GRANT USAGE ON SEQUENCE groups_id_seq TO strongroom_tenant;
