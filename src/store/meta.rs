//! The vault's identity row (global, not tenant-scoped): vault id, Shamir parameters and the
//! master key wrapped by the unseal key.

use sqlx::Row;

use super::{now_secs, Db};

#[derive(Clone)]
pub struct VaultMeta {
    pub vault_id: String,
    pub threshold: i32,
    pub share_count: i32,
    pub mk_by_uk: Vec<u8>,
}

impl Db {
    pub async fn vault_meta(&self) -> Result<Option<VaultMeta>, sqlx::Error> {
        let row = sqlx::query("SELECT vault_id, threshold, share_count, mk_by_uk FROM vault_meta WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| VaultMeta { vault_id: r.get(0), threshold: r.get(1), share_count: r.get(2), mk_by_uk: r.get(3) }))
    }

    /// Stores the vault identity together with the default tenant's first data key and the root
    /// credential, in one transaction. Returns false when the vault was already initialized
    /// (another instance won the race); nothing is written then.
    pub async fn initialize(&self, meta: &VaultMeta, default_dek_wrapped: &[u8], root_hash: &[u8]) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO vault_meta (id, vault_id, threshold, share_count, mk_by_uk, created_at)
             VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&meta.vault_id)
        .bind(meta.threshold)
        .bind(meta.share_count)
        .bind(&meta.mk_by_uk)
        .bind(now_secs())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        super::enter_tenant(&mut tx, 1).await?;
        super::tenants::insert_tenant_secrets(&mut tx, 1, default_dek_wrapped, root_hash, "root").await?;
        tx.commit().await?;
        Ok(true)
    }
}
