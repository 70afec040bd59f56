//! The two cluster-wide roles the schema relies on, and what the migrating owner needs before
//! migration 0001 can create or grant them.
//!
//! Tenant traffic runs as `strongroom_tenant` (row-level security applies); cross-tenant reads
//! of the directory run as `strongroom_reader`, which bypasses it. Migration 0001 creates both
//! when missing and grants them to the owner. A managed database (RDS, Aurora, Cloud SQL) hands
//! out no superuser, and only a superuser may create a role that bypasses row-level security:
//! there an administrator creates the roles once. This check runs before a database's first
//! migration and names every statement the owner cannot run itself, and who must run it,
//! instead of letting 0001 fail on the first. Migrations already applied are never edited
//! (their checksums are recorded), so the check lives here, not in 0001.

use sqlx::PgConnection;

/// A role migration 0001 needs: its name, the statement creating it, and whether creating it
/// takes a superuser rather than `CREATEROLE`.
struct ClusterRole {
    name: &'static str,
    create: &'static str,
    superuser_only: bool,
}

const ROLES: [ClusterRole; 2] = [
    ClusterRole { name: "strongroom_tenant", create: "CREATE ROLE strongroom_tenant NOLOGIN NOBYPASSRLS;", superuser_only: false },
    ClusterRole { name: "strongroom_reader", create: "CREATE ROLE strongroom_reader NOLOGIN BYPASSRLS;", superuser_only: true },
];

/// The role running the migrations, and what it may do to roles.
pub struct Owner {
    /// Quoted as an identifier, ready for a statement.
    pub name: String,
    pub superuser: bool,
    createrole: bool,
    server_version: i32,
}

impl Owner {
    pub async fn current(conn: &mut PgConnection) -> Result<Owner, sqlx::Error> {
        let (name, superuser, createrole, server_version): (String, bool, bool, i32) = sqlx::query_as(
            "SELECT quote_ident(current_user), rolsuper, rolcreaterole, current_setting('server_version_num')::int
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(Owner { name, superuser, createrole, server_version })
    }
}

/// What `owner` lacks, as the statements an administrator must run for it; empty when it can
/// run migration 0001 itself.
pub async fn missing(conn: &mut PgConnection, owner: &Owner) -> Result<Vec<String>, sqlx::Error> {
    if owner.superuser {
        return Ok(vec![]);
    }
    let (createrole, version) = (owner.createrole, owner.server_version);
    let mut create = Vec::new();
    let mut grant = Vec::new();
    for role in &ROLES {
        let admin: Option<bool> =
            sqlx::query_scalar("SELECT pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION') FROM pg_roles WHERE rolname = $1")
                .bind(role.name)
                .fetch_optional(&mut *conn)
                .await?;
        // Up to PostgreSQL 15, CREATEROLE may grant any role that is not a superuser; from 16
        // on it takes the admin option like anyone else.
        let may_grant = admin == Some(true) || (createrole && version < 160000);
        match admin {
            None if role.superuser_only || !createrole => {
                create.push(role.create.to_string());
                grant.push(role.name);
            }
            None => {}
            Some(_) if !may_grant => grant.push(role.name),
            Some(_) => {}
        }
    }
    if !grant.is_empty() {
        create.push(format!("GRANT {} TO {} WITH ADMIN OPTION;", grant.join(", "), owner.name));
    }
    Ok(create)
}

/// The error for an owner that lacks `statements`: what to run, as whom, and why.
pub fn explain(owner: &str, statements: &[String]) -> String {
    let mut msg = format!(
        "migration 0001 needs the cluster roles strongroom_tenant and strongroom_reader, and {owner} may not create or grant them \
         (it is not a superuser; only a superuser may create strongroom_reader, a role that bypasses row-level security). \
         Have a superuser (on a managed database, the administrator role) run:\n"
    );
    for s in statements {
        msg.push_str("    ");
        msg.push_str(s);
        msg.push('\n');
    }
    msg.push_str("then run `strongroom migrate` again. Nothing was migrated.");
    msg
}
