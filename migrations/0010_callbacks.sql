-- Callbacks (issue 3): a transactional outbox. API calls that withdraw consent, forget a user or
-- change a profile insert a row here in the same transaction as the change, so nothing is sent
-- for a change that rolled back; a background dispatcher POSTs the payloads to the configured
-- URL and deletes them once delivered. Payloads are JSON without personal data (event, tenant
-- name, user token, time and, for consent, the brief).
CREATE TABLE callback_outbox (
    tenant_id  bigint  NOT NULL,
    id         bigserial,
    event      text    NOT NULL,
    user_token text,
    payload    text    NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    -- Milliseconds since the epoch: when the row may next be claimed.
    next_at    bigint  NOT NULL,
    created_at bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX callback_outbox_due ON callback_outbox (tenant_id, next_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['callback_outbox']
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

GRANT USAGE ON SEQUENCE callback_outbox_id_seq TO strongroom_tenant;
