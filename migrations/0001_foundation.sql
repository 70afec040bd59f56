-- Strongroom foundation schema.
-- Tenant tables: tenant_id leads every key and index; ENABLE + FORCE row-level security with a
-- policy on the transaction-local setting strongroom.tenant_id (unset -> error, fail closed).
-- Migrations are never edited once landed: add a new file instead.

-- Roles are cluster-wide; create them once, grant them to whoever runs the migrations so the
-- application (connected as that owner) can SET ROLE for tenant traffic.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'strongroom_tenant') THEN
        CREATE ROLE strongroom_tenant NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'strongroom_reader') THEN
        CREATE ROLE strongroom_reader NOLOGIN BYPASSRLS;
    END IF;
    EXECUTE format('GRANT strongroom_tenant, strongroom_reader TO %I', current_user);
END
$$;

-- One row: the vault's identity and its master key wrapped by the Shamir-split unseal key
-- (share_generation counts rekeys) and, optionally, by an operational wrapping key kept in a
-- secret manager for auto-unseal.
CREATE TABLE vault_meta (
    id               smallint PRIMARY KEY CHECK (id = 1),
    vault_id         text     NOT NULL,
    threshold        integer  NOT NULL CHECK (threshold >= 2),
    share_count      integer  NOT NULL CHECK (share_count >= threshold),
    share_generation integer  NOT NULL DEFAULT 1,
    mk_by_uk         bytea    NOT NULL,
    mk_by_wk         bytea,
    created_at       bigint   NOT NULL,
    rekeyed_at       bigint,
    wrapping_key_at  bigint
);

CREATE TABLE tenants (
    id         bigserial PRIMARY KEY,
    name       text   NOT NULL CONSTRAINT tenants_name_key UNIQUE,
    org        text   NOT NULL,
    email      text,
    -- The data-key version new writes use; bumped by a rotation, read on every request so the
    -- whole fleet switches at once.
    key_version integer NOT NULL DEFAULT 1,
    -- Bumped whenever the tenant's roles or policies change; read on every request so every
    -- instance rebuilds its enforcer for the tenant at once.
    policy_version integer NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
INSERT INTO tenants (id, name, org, created_at, updated_at)
VALUES (1, 'default', 'Default tenant', extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint);
SELECT setval('tenants_id_seq', 1);

-- Per-tenant data keys, wrapped by the master key, versioned for rotation.
CREATE TABLE tenant_keys (
    tenant_id  bigint  NOT NULL REFERENCES tenants (id),
    version    integer NOT NULL,
    wrapped    bytea   NOT NULL,
    created_at bigint  NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- Credentials: only a keyed hash of the token is stored.
CREATE TABLE credentials (
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    id         bigserial,
    token_hash bytea  NOT NULL,
    kind       text   NOT NULL CHECK (kind IN ('root', 'tenant-admin', 'dpo', 'auditor', 'app-writer', 'app-reader', 'vault-plugin')),
    created_at bigint NOT NULL,
    revoked_at bigint,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT credentials_token_hash_key UNIQUE (tenant_id, token_hash)
);

-- A user's profile (every version) is encrypted under a random per-user key, stored here
-- wrapped by the tenant data key of version key_version. Deleting the row destroys the key:
-- whatever else was encrypted under it (audit details) becomes unreadable. Rotating the data
-- key re-wraps these small keys only.
-- Leases behind short-lived role tokens (JWTs minted for HashiCorp Vault or XTokenCreateForRole).
-- A token is valid only while its lease row is live, so a revocation holds on every instance.
CREATE TABLE leases (
    tenant_id      bigint NOT NULL REFERENCES tenants (id),
    lease_id       text   NOT NULL,
    role           text   NOT NULL,
    credential_id  bigint,
    -- For a user login token (role user-self): the one record it may act on.
    user_token     text,
    issued_at      bigint NOT NULL,
    expires_at     bigint NOT NULL,
    max_expires_at bigint NOT NULL,
    -- Idle timeout: each use moves expires_at to now + sliding_secs, never past max_expires_at.
    sliding_secs   bigint,
    revoked_at     bigint,
    PRIMARY KEY (tenant_id, lease_id)
);

-- Pro-style roles and JSON policies of a tenant, and the casbin rules translated from them.
CREATE TABLE roles (
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    id          bigserial,
    name        text   NOT NULL,
    description text   NOT NULL DEFAULT '',
    created_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT roles_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE policies (
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    id          bigserial,
    name        text   NOT NULL,
    description text   NOT NULL DEFAULT '',
    document    text   NOT NULL,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT policies_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE role_policies (
    tenant_id bigint NOT NULL,
    role_id   bigint NOT NULL,
    policy_id bigint NOT NULL,
    PRIMARY KEY (tenant_id, role_id, policy_id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, policy_id) REFERENCES policies (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE policy_rules (
    tenant_id bigint NOT NULL REFERENCES tenants (id),
    sub       text   NOT NULL,
    obj       text   NOT NULL,
    act       text   NOT NULL,
    eft       text   NOT NULL CHECK (eft IN ('allow', 'deny')),
    cond      text   NOT NULL DEFAULT ''
);
CREATE INDEX policy_rules_tenant ON policy_rules (tenant_id);

CREATE TABLE users (
    tenant_id   bigint  NOT NULL REFERENCES tenants (id),
    id          bigserial,
    token       text    NOT NULL,
    version     integer NOT NULL,
    key_version integer NOT NULL,
    user_key    bytea   NOT NULL,
    profile     bytea   NOT NULL,
    digest      text    NOT NULL,
    created_at  bigint  NOT NULL,
    updated_at  bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_token_key UNIQUE (tenant_id, token),
    -- A data-key version cannot be retired while anything is still wrapped by it.
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_keys (tenant_id, version)
);

-- Earlier versions of a profile (the current one lives in users).
CREATE TABLE user_versions (
    tenant_id   bigint  NOT NULL,
    user_id     bigint  NOT NULL,
    version     integer NOT NULL,
    profile     bytea   NOT NULL,
    digest      text    NOT NULL,
    optime      bigint  NOT NULL,
    PRIMARY KEY (tenant_id, user_id, version),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- Blind indexes: HMAC of mode:normalized value. The primary key makes an identity unique per
-- tenant and mode, which is what turns a duplicate email into a 409.
CREATE TABLE user_index (
    tenant_id bigint NOT NULL,
    mode      text   NOT NULL CHECK (mode IN ('login', 'email', 'phone', 'custom')),
    hash      bytea  NOT NULL,
    user_id   bigint NOT NULL,
    CONSTRAINT user_index_pkey PRIMARY KEY (tenant_id, mode, hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX user_index_user ON user_index (tenant_id, user_id);

-- Audit trail, hash-chained per tenant. details is encrypted under a random per-event key;
-- event_key holds that key wrapped by the tenant data key (key_version) or, for an event about a
-- user, by that user's key (key_version NULL), so forgetting the user erases the details. The
-- chain covers details but not the wrapping, so keys can be re-wrapped without breaking it.
-- Each tenant has several chains ("lanes", see audit_heads) so that concurrent calls of one
-- tenant do not queue behind a single lock; id orders events across lanes.
CREATE TABLE audit_events (
    tenant_id   bigint   NOT NULL REFERENCES tenants (id),
    id          bigserial,
    lane        smallint NOT NULL,
    seq         bigint   NOT NULL,
    uuid        text    NOT NULL,
    event_type  text    NOT NULL,
    user_token  text,
    actor       text    NOT NULL,
    outcome     text    NOT NULL,
    created_at  bigint  NOT NULL,
    key_version integer,
    event_key   bytea   NOT NULL,
    details     bytea   NOT NULL,
    prev_hash   bytea   NOT NULL,
    hash        bytea   NOT NULL,
    PRIMARY KEY (tenant_id, lane, seq),
    CONSTRAINT audit_events_uuid_key UNIQUE (tenant_id, uuid),
    FOREIGN KEY (tenant_id, key_version) REFERENCES tenant_keys (tenant_id, version)
);
CREATE INDEX audit_events_user ON audit_events (tenant_id, user_token, id);
CREATE INDEX audit_events_order ON audit_events (tenant_id, id);

-- The head of each of a tenant's chains; an append locks one free head (SKIP LOCKED), so up to
-- as many appends as there are lanes run at once, and each chain stays linear.
CREATE TABLE audit_heads (
    tenant_id bigint   NOT NULL REFERENCES tenants (id),
    lane      smallint NOT NULL,
    seq       bigint   NOT NULL,
    hash      bytea    NOT NULL,
    PRIMARY KEY (tenant_id, lane)
);

INSERT INTO audit_heads (tenant_id, lane, seq, hash)
SELECT 1, lane, 0, '\x0000000000000000000000000000000000000000000000000000000000000000' FROM generate_series(0, 7) AS lane;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_keys', 'credentials', 'leases', 'roles', 'policies', 'role_policies', 'policy_rules', 'users', 'user_versions', 'user_index',
                             'audit_events', 'audit_heads']
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

GRANT USAGE ON SEQUENCE credentials_id_seq, users_id_seq, roles_id_seq, policies_id_seq, audit_events_id_seq TO strongroom_tenant;
-- Tenant traffic resolves its tenant by name; it may read the directory, never change it.
GRANT SELECT (id, name, key_version, policy_version) ON tenants TO strongroom_tenant;
-- Cross-tenant System* operations read users only.
GRANT SELECT ON users TO strongroom_reader;
