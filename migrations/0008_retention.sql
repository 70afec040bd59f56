-- User retention: a sliding expiry (extended on every read, never past the final time) and a
-- final time. expires_at is what the sweeper and every lookup look at; null means never.
ALTER TABLE users ADD COLUMN sliding_secs bigint;
ALTER TABLE users ADD COLUMN final_at bigint;
ALTER TABLE users ADD COLUMN expires_at bigint;
CREATE INDEX users_expiry ON users (tenant_id, expires_at) WHERE expires_at IS NOT NULL;
-- The sweeper deletes old leases of a tenant by expiry.
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (tenant_id, expires_at);
