//! Pro-style roles, JSON policies, their links, and the casbin rules translated from them.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::{on_constraint, Result};

#[derive(Debug, Clone)]
pub struct RoleRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// The tenant lets the Vault plugin mint leases of this role (see `auth::roles`).
    pub mintable: bool,
}

#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub document: String,
}

/// One translated rule: (sub, obj, act, eft, cond).
pub type Rule = (String, String, String, String, String);

const ROLE_TAKEN: &[(&str, &str)] = &[("roles_name_key", "role name already exists")];
const POLICY_TAKEN: &[(&str, &str)] = &[("policies_name_key", "policy name already exists")];

impl TenantTx {
    pub async fn insert_role(&mut self, name: &str, description: &str, mintable: bool) -> Result<i64> {
        let tenant = self.tenant_id();
        sqlx::query_scalar(
            "INSERT INTO roles (tenant_id, name, description, created_at, mintable) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant)
        .bind(name)
        .bind(description)
        .bind(now_secs())
        .bind(mintable)
        .fetch_one(self.conn())
        .await
        .map_err(|e| on_constraint(e, ROLE_TAKEN))
    }

    pub async fn update_role(&mut self, id: i64, name: Option<&str>, description: Option<&str>, mintable: Option<bool>) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE roles SET name = COALESCE($2, name), description = COALESCE($3, description), mintable = COALESCE($4, mintable) WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(mintable)
            .execute(self.conn())
            .await
            .map_err(|e| on_constraint(e, ROLE_TAKEN))?
            .rows_affected();
        Ok(n == 1)
    }

    /// A role by id or, failing that, by name.
    pub async fn find_role(&mut self, id: Option<i64>, name: Option<&str>) -> Result<Option<RoleRow>> {
        let row = sqlx::query("SELECT id, name, description, mintable FROM roles WHERE id = $1 OR ($1 IS NULL AND name = $2)")
            .bind(id)
            .bind(name)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| RoleRow { id: r.get("id"), name: r.get("name"), description: r.get("description"), mintable: r.get("mintable") }))
    }

    /// The resource patterns of every allow rule translated for casbin subject `subject`.
    pub async fn allowed_resources(&mut self, subject: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT obj FROM policy_rules WHERE sub = $1 AND eft = 'allow'").bind(subject).fetch_all(self.conn()).await?)
    }

    pub async fn insert_policy(&mut self, name: &str, description: &str, document: &str) -> Result<i64> {
        let tenant = self.tenant_id();
        let now = now_secs();
        sqlx::query_scalar("INSERT INTO policies (tenant_id, name, description, document, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
            .bind(tenant)
            .bind(name)
            .bind(description)
            .bind(document)
            .bind(now)
            .fetch_one(self.conn())
            .await
            .map_err(|e| on_constraint(e, POLICY_TAKEN))
    }

    pub async fn update_policy(&mut self, id: i64, name: Option<&str>, description: Option<&str>, document: Option<&str>) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE policies SET name = COALESCE($2, name), description = COALESCE($3, description), document = COALESCE($4, document), updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(document)
        .bind(now_secs())
        .execute(self.conn())
        .await
        .map_err(|e| on_constraint(e, POLICY_TAKEN))?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn find_policy(&mut self, id: Option<i64>, name: Option<&str>) -> Result<Option<PolicyRow>> {
        let row = sqlx::query("SELECT id, name, description, document FROM policies WHERE id = $1 OR ($1 IS NULL AND name = $2)")
            .bind(id)
            .bind(name)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| PolicyRow { id: r.get(0), name: r.get(1), description: r.get(2), document: r.get(3) }))
    }

    pub async fn list_policies(&mut self) -> Result<Vec<PolicyRow>> {
        let rows = sqlx::query("SELECT id, name, description, document FROM policies ORDER BY id").fetch_all(self.conn()).await?;
        Ok(rows.iter().map(|r| PolicyRow { id: r.get(0), name: r.get(1), description: r.get(2), document: r.get(3) }).collect())
    }

    pub async fn link_role_policy(&mut self, role_id: i64, policy_id: i64) -> Result<()> {
        let tenant = self.tenant_id();
        sqlx::query("INSERT INTO role_policies (tenant_id, role_id, policy_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant)
            .bind(role_id)
            .bind(policy_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Every (role name, policy document) pair linked in this tenant.
    pub async fn linked_policies(&mut self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT r.name, p.document FROM role_policies rp JOIN roles r ON r.tenant_id = rp.tenant_id AND r.id = rp.role_id JOIN policies p ON p.tenant_id = rp.tenant_id AND p.id = rp.policy_id ORDER BY rp.policy_id, r.name")
            .fetch_all(self.conn())
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn role_names(&mut self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT name FROM roles ORDER BY name").fetch_all(self.conn()).await?)
    }

    /// Replaces the tenant's translated rules and bumps its policy version.
    pub async fn replace_policy_rules(&mut self, rules: &[Rule]) -> Result<i32> {
        let tenant = self.tenant_id();
        sqlx::query("DELETE FROM policy_rules").execute(self.conn()).await?;
        let col = |f: fn(&Rule) -> &String| rules.iter().map(f).map(String::as_str).collect::<Vec<&str>>();
        sqlx::query("INSERT INTO policy_rules (tenant_id, sub, obj, act, eft, cond) SELECT $1, s, o, a, e, c FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(s, o, a, e, c)")
            .bind(tenant)
            .bind(col(|r| &r.0))
            .bind(col(|r| &r.1))
            .bind(col(|r| &r.2))
            .bind(col(|r| &r.3))
            .bind(col(|r| &r.4))
            .execute(self.conn())
            .await?;
        let version: i32 = self
            .as_directory(async |c| {
                sqlx::query_scalar("UPDATE tenants SET policy_version = policy_version + 1 WHERE id = $1 RETURNING policy_version")
                    .bind(tenant)
                    .fetch_one(c)
                    .await
            })
            .await?;
        self.policy_version = version;
        Ok(version)
    }

    pub async fn policy_rules(&mut self) -> Result<Vec<Rule>> {
        let rows = sqlx::query("SELECT sub, obj, act, eft, cond FROM policy_rules").fetch_all(self.conn()).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect())
    }
}
