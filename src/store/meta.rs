//! The vault's identity row (global, not tenant-scoped): vault id, Shamir parameters and the
//! master key wrapped by the unseal key.

use sqlx::Row;

use super::{now_secs, Db};

#[derive(Clone)]
pub struct VaultMeta {
    pub vault_id: String,
    pub threshold: i32,
    pub share_count: i32,
    pub share_generation: i32,
    pub mk_by_uk: Vec<u8>,
    pub mk_by_wk: Option<Vec<u8>>,
}

impl Db {
    pub async fn vault_meta(&self) -> Result<Option<VaultMeta>, sqlx::Error> {
        let row = sqlx::query("SELECT vault_id, threshold, share_count, share_generation, mk_by_uk, mk_by_wk FROM vault_meta WHERE id = 1")
            .fetch_optional(&self.pool())
            .await?;
        Ok(row.map(|r| VaultMeta {
            vault_id: r.get(0),
            threshold: r.get(1),
            share_count: r.get(2),
            share_generation: r.get(3),
            mk_by_uk: r.get(4),
            mk_by_wk: r.get(5),
        }))
    }

    /// Replaces the Shamir parameters and the unseal-key wrapping after a rekey. `expected_uk`
    /// guards against two concurrent rekeys: only the one that saw the current blob wins.
    pub async fn rekey(
        &self,
        expected_uk: &[u8],
        threshold: i32,
        share_count: i32,
        generation: i32,
        mk_by_uk: &[u8],
    ) -> Result<bool, sqlx::Error> {
        let n = sqlx::query(
            "UPDATE vault_meta SET threshold = $2, share_count = $3, share_generation = $4, mk_by_uk = $5, rekeyed_at = $6
             WHERE id = 1 AND mk_by_uk = $1",
        )
        .bind(expected_uk)
        .bind(threshold)
        .bind(share_count)
        .bind(generation)
        .bind(mk_by_uk)
        .bind(now_secs())
        .execute(&self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Stores the master key wrapped by a new operational wrapping key.
    pub async fn set_wrapping(&self, mk_by_wk: &[u8]) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE vault_meta SET mk_by_wk = $1, wrapping_key_at = $2 WHERE id = 1")
            .bind(mk_by_wk)
            .bind(now_secs())
            .execute(&self.pool())
            .await?;
        Ok(())
    }

    /// Stores the vault identity together with the default tenant's first data key, its KEK id
    /// (`None`: database-only custody) and the root credential, in one transaction. Returns
    /// false when the vault was already initialized (another instance won the race); nothing is
    /// written then.
    pub async fn initialize(
        &self,
        meta: &VaultMeta,
        default_kek_id: Option<&str>,
        default_dek_wrapped: &[u8],
        root_hash: &[u8],
    ) -> Result<bool, sqlx::Error> {
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
        sqlx::query("UPDATE tenants SET kek_id = $1 WHERE id = 1").bind(default_kek_id).execute(&mut *tx).await?;
        super::enter_tenant(&mut tx, 1).await?;
        super::tenants::insert_tenant_secrets(&mut tx, 1, default_dek_wrapped, root_hash, "root").await?;
        tx.commit().await?;
        Ok(true)
    }
}
