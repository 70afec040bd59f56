//! Lease rows behind role tokens.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct Lease {
    pub lease_id: String,
    pub role: String,
    pub expires_at: i64,
    pub max_expires_at: i64,
    pub revoked: bool,
    /// The credential at the root of the lease's lineage.
    pub root_credential_id: Option<i64>,
}

/// What a live lease is bound to.
#[derive(Debug, Clone)]
pub struct LiveLease {
    /// The record a user-self token may act on.
    pub user_token: Option<String>,
    /// The credential at the root of the lease's lineage (`None`: minted by a portal sign-in).
    pub root_credential_id: Option<i64>,
    /// The lease's hard expiry: nothing minted from it lives longer.
    pub max_expires_at: i64,
}

impl TenantTx {
    /// Stores a lease. `credential_id` is the credential that minted it, which also becomes the
    /// root of its lineage (a lease minted by a lease records its parent with
    /// [`TenantTx::set_lease_parent`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_lease(
        &mut self,
        lease_id: &str,
        role: &str,
        credential_id: Option<i64>,
        user_token: Option<&str>,
        expires_at: i64,
        max_expires_at: i64,
        sliding_secs: Option<i64>,
    ) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO leases (tenant_id, lease_id, role, credential_id, root_credential_id, user_token, issued_at, expires_at, max_expires_at, sliding_secs)
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant)
        .bind(lease_id)
        .bind(role)
        .bind(credential_id)
        .bind(user_token)
        .bind(now_secs())
        .bind(expires_at)
        .bind(max_expires_at)
        .bind(sliding_secs)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn lease(&mut self, lease_id: &str) -> Result<Option<Lease>> {
        let row = sqlx::query(
            "SELECT lease_id, role, expires_at, max_expires_at, revoked_at IS NOT NULL, root_credential_id FROM leases WHERE lease_id = $1 FOR UPDATE",
        )
        .bind(lease_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| Lease {
            lease_id: r.get("lease_id"),
            role: r.get("role"),
            expires_at: r.get("expires_at"),
            max_expires_at: r.get("max_expires_at"),
            revoked: r.get(4),
            root_credential_id: r.get("root_credential_id"),
        }))
    }

    /// A live lease (not revoked, not expired, and the credential at the root of its lineage not
    /// revoked either): what the token it backs is bound to. `None` when it is not live.
    pub async fn live_lease(&mut self, lease_id: &str) -> Result<Option<LiveLease>> {
        let now = now_secs();
        let row = sqlx::query(
            "SELECT l.user_token, l.sliding_secs, l.root_credential_id, l.max_expires_at FROM leases l
              WHERE l.lease_id = $1 AND l.revoked_at IS NULL AND l.expires_at > $2
                AND (l.root_credential_id IS NULL OR EXISTS (
                     SELECT 1 FROM credentials c WHERE c.tenant_id = l.tenant_id AND c.id = l.root_credential_id AND c.revoked_at IS NULL))",
        )
        .bind(lease_id)
        .bind(now)
        .fetch_optional(self.conn())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let sliding: Option<i64> = r.get("sliding_secs");
        let live = LiveLease {
            user_token: r.get("user_token"),
            root_credential_id: r.get("root_credential_id"),
            max_expires_at: r.get("max_expires_at"),
        };
        if sliding.is_some() {
            // Idle timeout: this use keeps the lease alive for another sliding period.
            sqlx::query("UPDATE leases SET expires_at = LEAST($2 + sliding_secs, max_expires_at) WHERE lease_id = $1 AND expires_at < LEAST($2 + sliding_secs, max_expires_at)")
                .bind(lease_id)
                .bind(now)
                .execute(self.conn())
                .await?;
        }
        Ok(Some(live))
    }

    /// Holds the lease `lease_id` live for the rest of this transaction, so that a lease minted
    /// from it cannot slip past a concurrent revocation (which takes the row lock first and only
    /// then looks for descendants); `None` when it is no longer live.
    pub async fn hold_live_lease(&mut self, lease_id: &str) -> Result<Option<LiveLease>> {
        let row = sqlx::query(
            "SELECT user_token, root_credential_id, max_expires_at FROM leases
              WHERE lease_id = $1 AND revoked_at IS NULL AND expires_at > $2 FOR SHARE",
        )
        .bind(lease_id)
        .bind(now_secs())
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| LiveLease {
            user_token: r.get("user_token"),
            root_credential_id: r.get("root_credential_id"),
            max_expires_at: r.get("max_expires_at"),
        }))
    }

    /// Records that lease `child` was minted by lease `parent` and shares its lineage root.
    pub async fn set_lease_parent(&mut self, child: &str, parent: &str, root_credential_id: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE leases SET parent_lease_id = $2, root_credential_id = $3 WHERE lease_id = $1")
            .bind(child)
            .bind(parent)
            .bind(root_credential_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn extend_lease(&mut self, lease_id: &str, expires_at: i64) -> Result<()> {
        sqlx::query("UPDATE leases SET expires_at = $2 WHERE lease_id = $1").bind(lease_id).bind(expires_at).execute(self.conn()).await?;
        Ok(())
    }

    /// Revokes a lease and every lease minted from it, however many generations down; `false`
    /// when the lease was not live. The lease's own row is locked first and its descendants are
    /// then found one generation per statement, each statement seeing what committed before it,
    /// so a child minted concurrently (which holds its parent's row, see
    /// [`TenantTx::hold_live_lease`]) is either found or refused.
    pub async fn revoke_lease(&mut self, lease_id: &str) -> Result<bool> {
        let now = now_secs();
        let n = sqlx::query("UPDATE leases SET revoked_at = $2 WHERE lease_id = $1 AND revoked_at IS NULL")
            .bind(lease_id)
            .bind(now)
            .execute(self.conn())
            .await?
            .rows_affected();
        if n == 1 {
            self.revoke_lease_descendants(vec![lease_id.to_string()], now).await?;
        }
        Ok(n == 1)
    }

    async fn revoke_lease_descendants(&mut self, mut generation: Vec<String>, now: i64) -> Result<()> {
        while !generation.is_empty() {
            generation = sqlx::query_scalar(
                "UPDATE leases SET revoked_at = $2 WHERE parent_lease_id = ANY($1) AND revoked_at IS NULL RETURNING lease_id",
            )
            .bind(&generation)
            .bind(now)
            .fetch_all(self.conn())
            .await?;
        }
        Ok(())
    }

    /// Deletes up to `limit` leases that expired at or before `before` (the sweeper passes a
    /// day back: a lease row outlives its token by a day) and that no other transaction holds
    /// (concurrent sweepers skip each other's rows); returns how many.
    pub async fn sweep_leases(&mut self, before: i64, limit: i64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM leases WHERE lease_id = ANY(ARRAY(
                 SELECT lease_id FROM leases WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .bind(before)
        .bind(limit)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n)
    }
}
