//! What group-relative policies decide on: a record's groups and roles, the records holding a
//! role in given groups, and whether a record has an agreement. Live records only (not expired,
//! not soft-deleted).

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::Result;

/// One group membership: the group, and the name of the tenant role held in it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub group_id: i64,
    pub role: Option<String>,
}

impl TenantTx {
    /// The live record with token `token`: its id.
    pub async fn live_user_id(&mut self, token: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE token = $1 AND deleted_at IS NULL AND (expires_at IS NULL OR expires_at > $2)")
            .bind(token)
            .bind(now_secs())
            .fetch_optional(self.conn())
            .await?)
    }

    /// Every group of record `user_id`, with the role it holds there.
    pub async fn memberships_of(&mut self, user_id: i64) -> Result<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT gm.group_id, r.name AS role FROM group_members gm
               LEFT JOIN roles r ON r.tenant_id = gm.tenant_id AND r.id = gm.role_id
              WHERE gm.user_id = $1 ORDER BY gm.group_id",
        )
        .bind(user_id)
        .fetch_all(self.conn())
        .await?;
        Ok(rows.iter().map(|r| Membership { group_id: r.get("group_id"), role: r.get("role") }).collect())
    }

    /// The tokens of the live records holding role `role` in any of `groups`.
    pub async fn members_with_role(&mut self, groups: &[i64], role: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT u.token FROM group_members gm
               JOIN roles r ON r.tenant_id = gm.tenant_id AND r.id = gm.role_id
               JOIN users u ON u.tenant_id = gm.tenant_id AND u.id = gm.user_id
              WHERE gm.group_id = ANY($1) AND r.name = $2
                AND u.deleted_at IS NULL AND (u.expires_at IS NULL OR u.expires_at > $3)",
        )
        .bind(groups)
        .bind(role)
        .bind(now_secs())
        .fetch_all(self.conn())
        .await?)
    }

    /// Whether record `user_id` has the agreement `brief` in force (accepted, not withdrawn,
    /// not past its final time).
    pub async fn agreement_in_force(&mut self, user_id: i64, brief: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM agreements a JOIN legal_bases b ON b.tenant_id = a.tenant_id AND b.id = a.basis_id
              WHERE a.user_id = $1 AND b.brief = $2 AND a.status = 'active' AND a.withdrawn_at IS NULL
                AND (a.finaltime = 0 OR a.finaltime > $3)",
        )
        .bind(user_id)
        .bind(brief)
        .bind(now_secs())
        .fetch_one(self.conn())
        .await?;
        Ok(n > 0)
    }
}
