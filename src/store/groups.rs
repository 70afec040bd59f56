//! Groups of a tenant and their members; a membership may carry one tenant role.

use sqlx::Row;

use super::{now_secs, TenantTx};
use crate::error::{on_constraint, Result};

#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub grouptype: String,
}

/// One of a user's groups, with the tenant role held in it (if any).
#[derive(Debug, Clone)]
pub struct MembershipRow {
    pub group: GroupRow,
    pub role_id: Option<i64>,
    pub role_name: Option<String>,
}

const GROUP_TAKEN: &[(&str, &str)] = &[("groups_name_key", "group name already exists")];

fn group_from_row(r: &sqlx::postgres::PgRow) -> GroupRow {
    GroupRow { id: r.get(0), name: r.get(1), description: r.get(2), grouptype: r.get(3) }
}

impl TenantTx {
    pub async fn insert_group(&mut self, name: &str, description: &str, grouptype: &str) -> Result<i64> {
        let tenant = self.tenant_id();
        sqlx::query_scalar(
            "INSERT INTO groups (tenant_id, name, description, grouptype, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant)
        .bind(name)
        .bind(description)
        .bind(grouptype)
        .bind(now_secs())
        .fetch_one(self.conn())
        .await
        .map_err(|e| on_constraint(e, GROUP_TAKEN))
    }

    /// A group by id, by name, or by both (then both must match: an id with another group's
    /// name finds nothing rather than the group the id names).
    pub async fn find_group(&mut self, id: Option<i64>, name: Option<&str>) -> Result<Option<GroupRow>> {
        if id.is_none() && name.is_none() {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT id, name, description, grouptype FROM groups
              WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR name = $2)",
        )
        .bind(id)
        .bind(name)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.as_ref().map(group_from_row))
    }

    pub async fn list_groups(&mut self) -> Result<Vec<GroupRow>> {
        let rows = sqlx::query("SELECT id, name, description, grouptype FROM groups ORDER BY id").fetch_all(self.conn()).await?;
        Ok(rows.iter().map(group_from_row).collect())
    }

    /// Changes the given fields; false when there is no such group.
    pub async fn update_group(&mut self, id: i64, name: Option<&str>, description: Option<&str>, grouptype: Option<&str>) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE groups SET name = COALESCE($2, name), description = COALESCE($3, description), grouptype = COALESCE($4, grouptype)
             WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(grouptype)
        .execute(self.conn())
        .await
        .map_err(|e| on_constraint(e, GROUP_TAKEN))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Deletes a group and (by cascade) its memberships; false when there was none.
    pub async fn delete_group(&mut self, id: i64) -> Result<bool> {
        let n = sqlx::query("DELETE FROM groups WHERE id = $1").bind(id).execute(self.conn()).await?.rows_affected();
        Ok(n == 1)
    }

    /// Adds memberships `(group_id, user_id, role_id)`. An existing membership stays; a role
    /// given replaces the one it had.
    pub async fn add_group_members(&mut self, members: &[(i64, i64, Option<i64>)]) -> Result<()> {
        let tenant = self.tenant_id();
        let groups: Vec<i64> = members.iter().map(|m| m.0).collect();
        let users: Vec<i64> = members.iter().map(|m| m.1).collect();
        let roles: Vec<Option<i64>> = members.iter().map(|m| m.2).collect();
        sqlx::query(
            "INSERT INTO group_members (tenant_id, group_id, user_id, role_id, created_at)
             SELECT $1, g, u, r, $5 FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[]) AS x(g, u, r)
             ON CONFLICT (tenant_id, group_id, user_id) DO UPDATE SET role_id = COALESCE(EXCLUDED.role_id, group_members.role_id)",
        )
        .bind(tenant)
        .bind(&groups)
        .bind(&users)
        .bind(&roles)
        .bind(now_secs())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Removes a membership; false when the user was not in the group.
    pub async fn remove_group_member(&mut self, group_id: i64, user_id: i64) -> Result<bool> {
        let n = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// A user's groups with the role held in each, by group id.
    pub async fn user_groups(&mut self, user_id: i64) -> Result<Vec<MembershipRow>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, g.description, g.grouptype, m.role_id, r.name
             FROM group_members m
             JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
             LEFT JOIN roles r ON r.tenant_id = m.tenant_id AND r.id = m.role_id
             WHERE m.user_id = $1 ORDER BY g.id",
        )
        .bind(user_id)
        .fetch_all(self.conn())
        .await?;
        Ok(rows.iter().map(|r| MembershipRow { group: group_from_row(r), role_id: r.get(4), role_name: r.get(5) }).collect())
    }
}
