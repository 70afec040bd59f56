-- User requests and DPO approval (issue 3). A request holds a change to a user's data, filed by
-- an app or by the data subject, until a DPO (or tenant admin) approves or cancels it. The
-- change (and the decision's reason) are personal data: sealed under the user's key. Requests
-- hang off users with ON DELETE CASCADE, so forgetting a user forgets its requests too.
CREATE TABLE user_requests (
    tenant_id   bigint NOT NULL,
    uuid        text   NOT NULL,
    user_id     bigint NOT NULL,
    kind        text   NOT NULL CHECK (kind IN ('update', 'patch', 'delete', 'appdata-update', 'agreement-cancel')),
    change      bytea  NOT NULL,
    status      text   NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'cancelled')),
    filed_by    text   NOT NULL,
    created_at  bigint NOT NULL,
    reason      bytea,
    decided_by  text,
    decided_at  bigint,
    PRIMARY KEY (tenant_id, uuid),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX user_requests_user ON user_requests (tenant_id, user_id, created_at);
CREATE INDEX user_requests_created ON user_requests (tenant_id, created_at);

ALTER TABLE user_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_requests
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON user_requests TO strongroom_tenant;
