//! The tenant directory (global table) and per-tenant key material, and deleting a tenant.
//! Invariant: a tenant's deletion removes its rows from every table that has a `tenant_id`
//! column, found in the catalog at the time (so a table added later is covered without a code
//! change), children before parents, and the directory row last, in the caller's transaction.

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
    /// Returns to this transaction's tenant scope after writing in a new tenant's scope (its
    /// first key and admin credential). Directory changes themselves go through
    /// [`TenantTx::as_directory`]; doing either in this transaction lets the change and its audit
    /// event commit together.
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
        let now = now_secs();
        let id: i64 = self
            .as_directory(async |c| {
                sqlx::query_scalar(
                    "INSERT INTO tenants (name, org, email, kek_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                )
                .bind(name)
                .bind(org)
                .bind(email)
                .bind(kek_id)
                .bind(now)
                .fetch_one(c)
                .await
                .map_err(|e| on_constraint(e, NAME_TAKEN))
            })
            .await?;
        // The new tenant's first key and admin credential are written in its own scope.
        super::enter_tenant(&mut self.tx, id).await?;
        insert_tenant_secrets(self.conn(), id, &wrap_dek(id), admin_hash, "tenant-admin").await?;
        self.reenter_scope().await?;
        Ok(id)
    }

    /// Updates the given fields of a tenant; `Ok(false)` when no such tenant.
    pub async fn update_tenant(&mut self, id: i64, name: Option<&str>, org: Option<&str>, email: Option<&str>) -> Result<bool> {
        let n = self
            .as_directory(async |c| {
                sqlx::query(
                    "UPDATE tenants SET name = COALESCE($2, name), org = COALESCE($3, org), email = COALESCE($4, email), updated_at = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(name)
                .bind(org)
                .bind(email)
                .bind(now_secs())
                .execute(c)
                .await
                .map_err(|e| on_constraint(e, NAME_TAKEN))
            })
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}

/// `"name"`: an identifier from the catalog, quoted for SQL text (values are always bound).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The order to delete from `tables` so that no row is deleted before the rows referring to it:
/// `refs` are `(referring table, referenced table)` foreign keys. `None` on a cycle (the caller
/// refuses rather than guess). Ties are broken by name, so the order is stable.
pub(crate) fn deletion_order(tables: &[String], refs: &[(String, String)]) -> Option<Vec<String>> {
    let mut left: Vec<String> = tables.to_vec();
    left.sort();
    left.dedup();
    let mut order = Vec::with_capacity(left.len());
    while !left.is_empty() {
        // A table nothing left refers to (self-references aside) can go now.
        let free: Vec<String> = left
            .iter()
            .filter(|t| !refs.iter().any(|(child, parent)| parent == *t && child != *t && left.contains(child)))
            .cloned()
            .collect();
        if free.is_empty() {
            return None;
        }
        left.retain(|t| !free.contains(t));
        order.extend(free);
    }
    Some(order)
}

impl TenantTx {
    /// Locks tenant `id`'s directory row (`FOR UPDATE`) until this transaction ends: a second
    /// deletion, a key rotation or a directory update of it waits, and so does every write in
    /// the tenant that checks a foreign key to the row. `None` when there is no such tenant,
    /// else its KEK id (`None` inside: database-only custody).
    pub async fn lock_tenant(&mut self, id: i64) -> Result<Option<Option<String>>> {
        self.as_directory(async |c| {
            sqlx::query_scalar("SELECT kek_id FROM tenants WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(c).await
        })
        .await
        .map_err(Into::into)
    }

    /// Deletes every row of tenant `id` from every table with a `tenant_id` column (found in the
    /// catalog; children before parents), then its directory row, inside this transaction, and
    /// returns to this transaction's own tenant scope. Runs as the migration owner with the
    /// row-level-security setting on `id` (FORCE applies to the owner too), so a statement
    /// cannot reach another tenant's rows even if its WHERE clause were wrong. Returns the
    /// number of rows deleted, the directory row included.
    pub async fn delete_tenant(&mut self, id: i64) -> Result<u64> {
        self.as_directory(async |c| {
            sqlx::query("SELECT set_config('strongroom.tenant_id', $1, true)").bind(id.to_string()).execute(&mut *c).await?;
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT c.table_name::text FROM information_schema.columns c
                   JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                  WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
                    AND c.table_name <> 'tenants'",
            )
            .fetch_all(&mut *c)
            .await?;
            let refs: Vec<(String, String)> = sqlx::query_as(
                "SELECT ch.relname::text, pa.relname::text FROM pg_constraint k
                   JOIN pg_class ch ON ch.oid = k.conrelid
                   JOIN pg_class pa ON pa.oid = k.confrelid
                   JOIN pg_namespace n ON n.oid = ch.relnamespace
                  WHERE k.contype = 'f' AND n.nspname = current_schema()",
            )
            .fetch_all(&mut *c)
            .await?;
            let order = deletion_order(&tables, &refs)
                .ok_or_else(|| crate::error::Error::Internal(anyhow::anyhow!("tenant tables refer to each other in a cycle")))?;
            let mut deleted = 0;
            for table in &order {
                // The table name comes from the catalog, quoted; the tenant id is a bind parameter.
                let sql = format!("DELETE FROM {} WHERE tenant_id = $1", quote_ident(table));
                deleted += sqlx::query(&sql).bind(id).execute(&mut *c).await?.rows_affected();
            }
            deleted += sqlx::query("DELETE FROM tenants WHERE id = $1").bind(id).execute(&mut *c).await?.rows_affected();
            Ok(deleted)
        })
        .await
    }
}

impl Db {
    pub async fn tenant(&self, id: i64) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, org, email FROM tenants WHERE id = $1").bind(id).fetch_optional(&self.pool()).await?;
        Ok(row.as_ref().map(tenant_from_row))
    }

    pub async fn list_tenants(&self, offset: i64, limit: i64) -> Result<(i64, Vec<Tenant>)> {
        let rows = sqlx::query("SELECT id, name, org, email FROM tenants ORDER BY id OFFSET $1 LIMIT $2")
            .bind(offset)
            .bind(limit)
            .fetch_all(&self.pool())
            .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&self.pool()).await?;
        Ok((total, rows.iter().map(tenant_from_row).collect()))
    }

    /// Up to `limit` KEK ids of tenants in service (for probing the tenant key store).
    pub async fn sample_kek_ids(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT kek_id FROM tenants WHERE kek_id IS NOT NULL AND shredding_at IS NULL ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool())
            .await?)
    }

    /// Tenants in service (not being deleted), for the background loops.
    pub async fn tenant_ids(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM tenants WHERE shredding_at IS NULL ORDER BY id").fetch_all(&self.pool()).await?)
    }

    /// Begins deleting tenant `id`: with the tenant row locked, `check(kek_id, already)` runs
    /// (`already`: an earlier attempt began and may have destroyed the KEK), then the tombstone
    /// is committed. `None`: no such tenant. Returns the tenant's KEK id and `already`.
    pub async fn begin_tenant_deletion<F, Fut>(&self, id: i64, check: F) -> Result<Option<(Option<String>, bool)>>
    where
        F: FnOnce(Option<String>, bool) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let mut tx = self.pool().begin().await?;
        let row: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT kek_id, shredding_at FROM tenants WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(&mut *tx).await?;
        let Some((kek_id, shredding_at)) = row else { return Ok(None) };
        let already = shredding_at.is_some();
        check(kek_id.clone(), already).await?;
        if !already {
            sqlx::query("UPDATE tenants SET shredding_at = $2 WHERE id = $1").bind(id).bind(super::now_secs()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some((kek_id, already)))
    }
}

impl TenantTx {
    /// This tenant's wrapped data keys, `(version, wrapped)`.
    pub async fn wrapped_data_keys(&mut self) -> Result<Vec<(i32, Vec<u8>)>> {
        let rows = sqlx::query("SELECT version, wrapped FROM tenant_keys ORDER BY version").fetch_all(self.conn()).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl TenantTx {
    /// The tenant's UI settings as stored, a JSON object (`None`: never set).
    pub async fn ui_settings(&mut self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT settings FROM tenant_ui").fetch_optional(self.conn()).await?)
    }

    /// Replaces the tenant's UI settings (a JSON object).
    pub async fn set_ui_settings(&mut self, settings: &str) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query(
            "INSERT INTO tenant_ui (tenant_id, settings, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at",
        )
        .bind(tenant)
        .bind(settings)
        .bind(now_secs())
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn refs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn children_are_deleted_before_what_they_refer_to() {
        let tables = names(&["users", "tenant_keys", "user_versions", "audit_events", "callback_outbox"]);
        let fks = refs(&[
            ("users", "tenant_keys"),
            ("users", "tenants"),
            ("user_versions", "users"),
            ("audit_events", "tenant_keys"),
            ("users", "users"),
        ]);
        let order = deletion_order(&tables, &fks).unwrap();
        let pos = |t: &str| order.iter().position(|x| x == t).unwrap();
        assert_eq!(order.len(), 5);
        assert!(pos("user_versions") < pos("users"));
        assert!(pos("users") < pos("tenant_keys"));
        assert!(pos("audit_events") < pos("tenant_keys"));
        assert!(deletion_order(&names(&["a", "b"]), &refs(&[("a", "b"), ("b", "a")])).is_none());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
