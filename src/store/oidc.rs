//! OIDC trusts of a tenant: which identity-token issuer it accepts, and how a claim maps to a
//! role. Each hangs off an `oidc-trust` credential, its lineage root.

use std::collections::BTreeMap;

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::TenantTx;
use crate::error::Result;

/// A stored trust. `roles` maps a value of `role_claim` to a working role's name.
#[derive(Debug, Clone)]
pub struct OidcTrust {
    pub credential_id: i64,
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
    pub role_claim: String,
    pub roles: BTreeMap<String, String>,
    pub created_at: i64,
}

const COLUMNS: &str = "t.credential_id, t.issuer, t.jwks_url, t.audience, t.role_claim, t.roles::text AS roles, t.created_at";

fn trust(r: PgRow) -> Result<OidcTrust> {
    Ok(OidcTrust {
        credential_id: r.try_get("credential_id")?,
        issuer: r.try_get("issuer")?,
        jwks_url: r.try_get("jwks_url")?,
        audience: r.try_get("audience")?,
        role_claim: r.try_get("role_claim")?,
        roles: serde_json::from_str(r.try_get::<&str, _>("roles")?)?,
        created_at: r.try_get("created_at")?,
    })
}

impl TenantTx {
    /// The live trust for `issuer` (its credential not revoked), if any.
    pub async fn oidc_trust(&mut self, issuer: &str) -> Result<Option<OidcTrust>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM oidc_trusts t JOIN credentials c ON c.tenant_id = t.tenant_id AND c.id = t.credential_id
              WHERE t.issuer = $1 AND c.revoked_at IS NULL"
        );
        sqlx::query(&sql).bind(issuer).fetch_optional(self.conn()).await?.map(trust).transpose()
    }

    /// Every live trust, by issuer.
    pub async fn oidc_trusts(&mut self) -> Result<Vec<OidcTrust>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM oidc_trusts t JOIN credentials c ON c.tenant_id = t.tenant_id AND c.id = t.credential_id
              WHERE c.revoked_at IS NULL ORDER BY t.issuer"
        );
        sqlx::query(&sql).fetch_all(self.conn()).await?.into_iter().map(trust).collect()
    }

    /// Stores a trust under credential `credential_id` (just created), replacing the row of a
    /// revoked trust for the same issuer.
    pub async fn insert_oidc_trust(&mut self, credential_id: i64, t: &OidcTrust) -> Result<()> {
        sqlx::query("DELETE FROM oidc_trusts WHERE issuer = $1").bind(&t.issuer).execute(self.conn()).await?;
        sqlx::query(
            "INSERT INTO oidc_trusts (tenant_id, credential_id, issuer, jwks_url, audience, role_claim, roles, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
        )
        .bind(self.tenant_id())
        .bind(credential_id)
        .bind(&t.issuer)
        .bind(&t.jwks_url)
        .bind(&t.audience)
        .bind(&t.role_claim)
        .bind(serde_json::to_string(&t.roles)?)
        .bind(super::now_secs())
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
