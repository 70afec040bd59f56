//! The tenant directory (global table) and per-tenant key material.

use sqlx::{PgConnection, Row};

use super::{now_secs, Db, TenantTx};
use crate::error::{on_constraint, Result};

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub org: String,
    pub email: Option<String>,
}

const NAME_TAKEN: &[(&str, &str)] = &[("tenants_name_key", "tenant name already exists")];

/// Writes a new tenant's first data key and its first credential (already in the tenant's scope).
pub(super) async fn insert_tenant_secrets(
    conn: &mut PgConnection,
    tenant_id: i64,
    dek_wrapped: &[u8],
    cred_hash: &[u8],
    kind: &str,
) -> Result<(), sqlx::Error> {
    let now = now_secs();
    sqlx::query("INSERT INTO tenant_keys (tenant_id, version, wrapped, created_at) VALUES ($1, 1, $2, $3)")
        .bind(tenant_id)
        .bind(dek_wrapped)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO audit_heads (tenant_id, lane, seq, hash) SELECT $1, lane, 0, $2 FROM generate_series(0, $3 - 1) AS lane ON CONFLICT (tenant_id, lane) DO NOTHING",
    )
        .bind(tenant_id)
        .bind(&crate::audit::GENESIS[..])
        .bind(crate::audit::LANES)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO credentials (tenant_id, token_hash, kind, created_at) VALUES ($1, $2, $3, $4)")
        .bind(tenant_id)
        .bind(cred_hash)
        .bind(kind)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn tenant_from_row(r: &sqlx::postgres::PgRow) -> Tenant {
    Tenant { id: r.get("id"), name: r.get("name"), org: r.get("org"), email: r.get("email") }
}

impl TenantTx {
    /// Returns to this transaction's tenant scope after a tenant-directory change made as the
    /// migration owner (`RESET ROLE`; the directory is not a tenant table). Doing both in one
    /// transaction lets the change and its audit event commit together.
    async fn reenter_scope(&mut self) -> Result<(), sqlx::Error> {
        let id = self.tenant_id();
        super::enter_tenant(&mut self.tx, id).await
    }

    /// Creates a tenant with its first data key (wrapped by `wrap_dek`, given the new id) and
    /// its admin credential, inside this transaction. `kek_id` names the tenant's key-encryption
    /// key in the tenant key store (already stored there), `None` for database-only custody.
    pub async fn create_tenant(
        &mut self,
        name: &str,
        org: &str,
        email: Option<&str>,
        kek_id: Option<&str>,
        wrap_dek: impl FnOnce(i64) -> Vec<u8>,
        admin_hash: &[u8],
    ) -> Result<i64> {
        sqlx::query("RESET ROLE").execute(self.conn()).await?;
        let now = now_secs();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (name, org, email, kek_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(name)
        .bind(org)
        .bind(email)
        .bind(kek_id)
        .bind(now)
        .fetch_one(self.conn())
        .await
        .map_err(|e| on_constraint(e, NAME_TAKEN))?;
        super::enter_tenant(&mut self.tx, id).await?;
        insert_tenant_secrets(self.conn(), id, &wrap_dek(id), admin_hash, "tenant-admin").await?;
        self.reenter_scope().await?;
        Ok(id)
    }

    /// Updates the given fields of a tenant; `Ok(false)` when no such tenant.
    pub async fn update_tenant(&mut self, id: i64, name: Option<&str>, org: Option<&str>, email: Option<&str>) -> Result<bool> {
        sqlx::query("RESET ROLE").execute(self.conn()).await?;
        let n = sqlx::query(
            "UPDATE tenants SET name = COALESCE($2, name), org = COALESCE($3, org), email = COALESCE($4, email), updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(org)
        .bind(email)
        .bind(now_secs())
        .execute(self.conn())
        .await
        .map_err(|e| on_constraint(e, NAME_TAKEN))?
        .rows_affected();
        self.reenter_scope().await?;
        Ok(n == 1)
    }
}

impl Db {
    pub async fn tenant(&self, id: i64) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, org, email FROM tenants WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(tenant_from_row))
    }

    pub async fn list_tenants(&self, offset: i64, limit: i64) -> Result<(i64, Vec<Tenant>)> {
        let rows = sqlx::query("SELECT id, name, org, email FROM tenants ORDER BY id OFFSET $1 LIMIT $2")
            .bind(offset)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(self.pool()).await?;
        Ok((total, rows.iter().map(tenant_from_row).collect()))
    }

    pub async fn tenant_ids(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM tenants ORDER BY id").fetch_all(self.pool()).await?)
    }
}

impl TenantTx {
    /// This tenant's wrapped data keys, `(version, wrapped)`.
    pub async fn wrapped_data_keys(&mut self) -> Result<Vec<(i32, Vec<u8>)>> {
        let rows = sqlx::query("SELECT version, wrapped FROM tenant_keys ORDER BY version").fetch_all(self.conn()).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
