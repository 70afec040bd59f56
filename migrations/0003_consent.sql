-- Consent: legal bases, users' agreements to them, processing activities and their links.
-- Rows are keyed by surrogate ids so a rename (LegalBasisUpdate newbrief, ProcessingActivityUpdate
-- newactivity) touches one row and every reference follows.

CREATE TABLE legal_bases (
    tenant_id    bigint  NOT NULL REFERENCES tenants (id),
    id           bigserial,
    brief        text    NOT NULL,
    status       text    NOT NULL CHECK (status IN ('active', 'inactive')),
    module       text    NOT NULL DEFAULT '',
    fulldesc     text    NOT NULL DEFAULT '',
    shortdesc    text    NOT NULL DEFAULT '',
    basistype    text    NOT NULL DEFAULT '',
    requiredmsg  text    NOT NULL DEFAULT '',
    requiredflag boolean NOT NULL DEFAULT false,
    created_at   bigint  NOT NULL,
    updated_at   bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT legal_bases_brief_key UNIQUE (tenant_id, brief)
);

-- One agreement per user and legal basis. `personal` holds agreementmethod, referencecode and
-- lastmodifiedby as JSON sealed under the user's key (row id "<token>/<basis id>"), so it dies
-- with the user. A withdrawn agreement stays, with the time of withdrawal. Deleting the user
-- deletes its agreements; a legal basis is deleted only without live agreements (enforced by
-- the API), and takes its withdrawn or expired agreements with it.
CREATE TABLE agreements (
    tenant_id    bigint NOT NULL,
    user_id      bigint NOT NULL,
    basis_id     bigint NOT NULL,
    status       text   NOT NULL CHECK (status IN ('pending', 'active', 'expired', 'withdrawn')),
    starttime    bigint NOT NULL,
    finaltime    bigint NOT NULL DEFAULT 0,
    withdrawn_at bigint,
    personal     bytea  NOT NULL,
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, user_id, basis_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, basis_id) REFERENCES legal_bases (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX agreements_basis ON agreements (tenant_id, basis_id);

CREATE TABLE processing_activities (
    tenant_id    bigint NOT NULL REFERENCES tenants (id),
    id           bigserial,
    activity     text   NOT NULL,
    title        text   NOT NULL DEFAULT '',
    script       text   NOT NULL DEFAULT '',
    fulldesc     text   NOT NULL DEFAULT '',
    applicableto text   NOT NULL DEFAULT '',
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT processing_activities_activity_key UNIQUE (tenant_id, activity)
);

CREATE TABLE activity_legal_bases (
    tenant_id   bigint NOT NULL,
    activity_id bigint NOT NULL,
    basis_id    bigint NOT NULL,
    PRIMARY KEY (tenant_id, activity_id, basis_id),
    FOREIGN KEY (tenant_id, activity_id) REFERENCES processing_activities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, basis_id) REFERENCES legal_bases (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX activity_legal_bases_basis ON activity_legal_bases (tenant_id, basis_id);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['legal_bases', 'agreements', 'processing_activities', 'activity_legal_bases']
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

GRANT USAGE ON SEQUENCE legal_bases_id_seq, processing_activities_id_seq TO strongroom_tenant;
