-- Databunker's expiration flow (issue 13): an operator starts it for a user, the person gets
-- "keep my data" / "delete now" links carrying the exptoken, and unanswered the record goes
-- when endtime passes. The deletion itself is the retention sweeper's: starting sets the
-- user's final_at to endtime; retaining or cancelling puts back the retention it replaced
-- (prior_sliding_secs, prior_final_at). Dies with the user.
CREATE TABLE user_expirations (
    tenant_id          bigint NOT NULL,
    user_id            bigint NOT NULL,
    exptoken           text,            -- a uuid while the links work; NULL once retained
    status             text   NOT NULL CHECK (status IN ('wait', 'retain', 'expired')),
    endtime            bigint NOT NULL, -- 0 once retained
    prior_sliding_secs bigint,
    prior_final_at     bigint,
    updated_at         bigint NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX user_expirations_token ON user_expirations (tenant_id, exptoken) WHERE exptoken IS NOT NULL;
ALTER TABLE user_expirations ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_expirations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_expirations
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON user_expirations TO strongroom_tenant;
