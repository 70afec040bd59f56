-- Callbacks that still fail after their last attempt are kept as dead letters instead of being
-- deleted: a forget-me or user-purged notice that never arrived must stay visible (GDPR art. 19:
-- recipients are told of erasures), for operators to see and requeue. The dispatcher skips them.
ALTER TABLE callback_outbox ADD COLUMN dead_at bigint;
CREATE INDEX callback_outbox_dead ON callback_outbox (tenant_id, dead_at) WHERE dead_at IS NOT NULL;
