-- Ready to scale out (issue 17): Citus distributes a table by tenant_id only with a primary key
-- that includes it. policy_rules had none (identical rules may repeat), so it gains a
-- surrogate id; the key is (tenant_id, id). Nothing reads the id.
ALTER TABLE policy_rules ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE policy_rules ADD PRIMARY KEY (tenant_id, id);
