-- Privacy portal (issue 8): one-time sign-in codes. A challenge exists for every sign-in
-- attempt, whether or not the identity belongs to a user (user_token NULL), so the portal
-- answers the same either way. The identity is kept only as its blind index, the requesting
-- address only as a keyed hash (of its /64 for IPv6), the code only as a keyed hash bound to
-- tenant and challenge. A challenge dies after `tries` reaches the limit, at `expires_at`, or
-- when used; rows stay an hour (the failed-try budget per user counts them), then go.
CREATE TABLE portal_codes (
    tenant_id      bigint  NOT NULL REFERENCES tenants (id),
    challenge      text    NOT NULL,
    identity_index bytea   NOT NULL,
    requester      bytea   NOT NULL,
    user_token     text,
    code_hash      bytea   NOT NULL,
    tries          integer NOT NULL DEFAULT 0,
    used           boolean NOT NULL DEFAULT false,
    expires_at     bigint  NOT NULL,
    created_at     bigint  NOT NULL,
    PRIMARY KEY (tenant_id, challenge)
);
CREATE INDEX portal_codes_identity ON portal_codes (tenant_id, identity_index, created_at);
CREATE INDEX portal_codes_user ON portal_codes (tenant_id, user_token, created_at) WHERE user_token IS NOT NULL;
CREATE INDEX portal_codes_expiry ON portal_codes (expires_at);

ALTER TABLE portal_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE portal_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON portal_codes
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON portal_codes TO strongroom_tenant;
