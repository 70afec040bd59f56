-- Per-tenant UI settings (issue 16): the logo link, company title and the like that
-- TenantGetUIConf serves to the SDKs and the portal shows. Not personal data; stored plainly.
CREATE TABLE tenant_ui (
    tenant_id  bigint NOT NULL PRIMARY KEY REFERENCES tenants (id),
    settings   text   NOT NULL,  -- a JSON object, written by the API only
    updated_at bigint NOT NULL
);
ALTER TABLE tenant_ui ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_ui FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_ui
    USING (tenant_id = current_setting('strongroom.tenant_id')::bigint)
    WITH CHECK (tenant_id = current_setting('strongroom.tenant_id')::bigint);
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_ui TO strongroom_tenant;
