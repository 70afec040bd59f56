//! Credentials of a tenant, found by keyed hash only.

use sqlx::Row;

use super::TenantTx;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: i64,
    pub kind: String,
}

impl TenantTx {
    pub async fn credential_by_hash(&mut self, hash: &[u8]) -> Result<Option<CredentialRow>> {
        let row = sqlx::query("SELECT id, kind FROM credentials WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| CredentialRow { id: r.get("id"), kind: r.get("kind") }))
    }
}

impl TenantTx {
    /// Stores a new credential (keyed hash only), minted by credential `parent` (`None`: by
    /// init, TenantCreate or a root rotation); returns its id.
    pub async fn insert_credential(&mut self, hash: &[u8], kind: &str, parent: Option<i64>) -> Result<i64> {
        let tenant = self.tenant_id();
        let id = sqlx::query_scalar(
            "INSERT INTO credentials (tenant_id, token_hash, kind, created_at, parent_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant)
        .bind(hash)
        .bind(kind)
        .bind(super::now_secs())
        .bind(parent)
        .fetch_one(self.conn())
        .await?;
        Ok(id)
    }

    /// Holds credential `id` live for the rest of this transaction (a share lock), so that what
    /// is minted from it cannot slip past a concurrent revocation, which locks the row first and
    /// only then looks for descendants. `false` when it is revoked.
    pub async fn hold_live_credential(&mut self, id: i64) -> Result<bool> {
        let row: Option<i64> = sqlx::query_scalar("SELECT id FROM credentials WHERE id = $1 AND revoked_at IS NULL FOR SHARE")
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.is_some())
    }

    /// Revokes a live credential other than root, every credential minted from it (however many
    /// generations down), and every lease whose lineage starts at any of them; `false` when
    /// there is no such live credential.
    pub async fn revoke_credential(&mut self, id: i64) -> Result<bool> {
        self.changing_credentials().await?;
        let n = sqlx::query("UPDATE credentials SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL AND kind <> 'root'")
            .bind(id)
            .bind(super::now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        if n == 1 {
            self.revoke_credential_descendants(id).await?;
        }
        Ok(n == 1)
    }

    /// Takes this tenant's row lock (bumping its credential version, migration 0024) before any
    /// credential row. The version trigger takes it after each row it changes; two revocations
    /// that took credential rows first would each hold a row the other's cascade needs, and wait
    /// for the tenant row the other holds: a deadlock. Tenant first, they queue.
    async fn changing_credentials(&mut self) -> Result<()> {
        let tenant = self.tenant_id();
        self.as_directory(async |c| {
            sqlx::query("UPDATE tenants SET credential_version = credential_version + 1 WHERE id = $1").bind(tenant).execute(c).await
        })
        .await?;
        Ok(())
    }

    /// The cascade of a revocation of credential `id` (already revoked in this transaction): one
    /// generation of credentials per statement, each statement seeing what committed before it
    /// (a credential or lease minted concurrently held its parent's row with a share lock, so it
    /// either committed before our lock was granted and is found now, or waits for our commit
    /// and is then refused), then every lease rooted in any of them.
    async fn revoke_credential_descendants(&mut self, id: i64) -> Result<()> {
        let now = super::now_secs();
        let mut all = vec![id];
        let mut generation = vec![id];
        while !generation.is_empty() {
            generation =
                sqlx::query_scalar("UPDATE credentials SET revoked_at = $2 WHERE parent_id = ANY($1) AND revoked_at IS NULL RETURNING id")
                    .bind(&generation)
                    .bind(now)
                    .fetch_all(self.conn())
                    .await?;
            all.extend(&generation);
        }
        // What the credentials minted (xtokens, Vault leases, portal console sessions, and the
        // leases those minted) dies with them.
        sqlx::query("UPDATE leases SET revoked_at = $2 WHERE root_credential_id = ANY($1) AND revoked_at IS NULL")
            .bind(&all)
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

impl TenantTx {
    /// Replaces every live root credential with one new one (rotation, or recovery through
    /// generate-root); returns the new credential id.
    ///
    /// A rotation hands over, it does not revoke for cause: the credentials the old root created
    /// now descend from the new one; the leases it minted end with it (their lineage check finds
    /// their root revoked).
    pub async fn replace_root(&mut self, hash: &[u8]) -> Result<i64> {
        self.changing_credentials().await?;
        let old: Vec<i64> =
            sqlx::query_scalar("UPDATE credentials SET revoked_at = $1 WHERE kind = 'root' AND revoked_at IS NULL RETURNING id")
                .bind(super::now_secs())
                .fetch_all(self.conn())
                .await?;
        let new = self.insert_credential(hash, "root", None).await?;
        sqlx::query("UPDATE credentials SET parent_id = $2 WHERE parent_id = ANY($1)").bind(&old).bind(new).execute(self.conn()).await?;
        sqlx::query("UPDATE leases SET revoked_at = $2 WHERE root_credential_id = ANY($1) AND revoked_at IS NULL")
            .bind(&old)
            .bind(super::now_secs())
            .execute(self.conn())
            .await?;
        Ok(new)
    }

    /// Revokes a root credential (the caller's own), and everything minted from it.
    pub async fn revoke_root(&mut self, id: i64) -> Result<bool> {
        self.changing_credentials().await?;
        let n = sqlx::query("UPDATE credentials SET revoked_at = $2 WHERE id = $1 AND kind = 'root' AND revoked_at IS NULL")
            .bind(id)
            .bind(super::now_secs())
            .execute(self.conn())
            .await?
            .rows_affected();
        if n == 1 {
            self.revoke_credential_descendants(id).await?;
        }
        Ok(n == 1)
    }
}
