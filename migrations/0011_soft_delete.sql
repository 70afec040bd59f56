-- Soft delete for SystemDeleteUserProfiles: the row (profile, versions, blind indexes, app data,
-- agreements) stays for the restore window with deleted_at set; every lookup treats a row with
-- deleted_at as absent, and the retention sweeper deletes it for good once the window has
-- passed. The blind-index rows are kept on purpose: the identity stays reserved, so a restore
-- can never collide with a user created meanwhile (creating one with that identity is a 409).
-- UserDelete (the data subject's erasure) and retention expiry still delete at once.
ALTER TABLE users ADD COLUMN deleted_at bigint;
CREATE INDEX users_soft_deleted ON users (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
