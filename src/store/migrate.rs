//! The schema's migrations and how they are applied.
//!
//! A superuser applies them as written. An owner that is not one (a managed database) first
//! needs the cluster roles ([`cluster_roles`]); and since it is subject to the row-level
//! security it forces on its own tables, a migration that reads rows (0015 fills a new column
//! of `leases`; 0017 validates a new foreign key over `sessions`) fails on the unset tenant
//! setting. For such an owner every migration runs with FORCE lifted from the owner's tables
//! for its own transaction and restored before it commits (tenant traffic runs as
//! `strongroom_tenant`, never as the owner, so it stays fenced throughout). The recorded
//! checksum stays the file's, so a database migrated either way verifies the same.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::PgPool;

use super::cluster_roles;

/// Embedded migrations, in order. Never edit a landed file; add the next one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../../migrations/0001_foundation.sql")),
    (2, "appdata and sessions", include_str!("../../migrations/0002_appdata_sessions.sql")),
    (3, "consent", include_str!("../../migrations/0003_consent.sql")),
    (4, "bulk unlock", include_str!("../../migrations/0004_bulk_unlock.sql")),
    (5, "tokens", include_str!("../../migrations/0005_tokens.sql")),
    (6, "user requests", include_str!("../../migrations/0006_requests.sql")),
    (7, "groups and shared records", include_str!("../../migrations/0007_groups_shared.sql")),
    (8, "user retention", include_str!("../../migrations/0008_retention.sql")),
    (9, "files", include_str!("../../migrations/0009_files.sql")),
    (10, "callbacks", include_str!("../../migrations/0010_callbacks.sql")),
    (11, "soft delete", include_str!("../../migrations/0011_soft_delete.sql")),
    (12, "tenant shredding", include_str!("../../migrations/0012_tenant_shredding.sql")),
    (13, "privacy portal", include_str!("../../migrations/0013_portal.sql")),
    (14, "callback dead letters", include_str!("../../migrations/0014_callback_dead_letters.sql")),
    (15, "lineage", include_str!("../../migrations/0015_lineage.sql")),
    (16, "file tags", include_str!("../../migrations/0016_file_tags.sql")),
    (17, "sessions of no user", include_str!("../../migrations/0017_userless_sessions.sql")),
    (18, "tenant ui settings", include_str!("../../migrations/0018_tenant_ui.sql")),
    (19, "user expiration flow", include_str!("../../migrations/0019_user_expiration.sql")),
    (20, "idempotency keys", include_str!("../../migrations/0020_idempotency.sql")),
    (21, "policy rules key", include_str!("../../migrations/0021_policy_rules_key.sql")),
    (22, "oidc trusts", include_str!("../../migrations/0022_oidc_trusts.sql")),
    (23, "ciphertext storage", include_str!("../../migrations/0023_ciphertext_storage.sql")),
    (24, "credential version", include_str!("../../migrations/0024_credential_version.sql")),
];

/// Lifts FORCE ROW LEVEL SECURITY from the owner's tables for this transaction, remembering which.
const LIFT_FORCE: &str = "DO $strongroom$ DECLARE t text; lifted text[] := '{}'; BEGIN
    FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relforcerowsecurity AND pg_has_role(c.relowner, 'USAGE') LOOP
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        lifted := lifted || t;
    END LOOP;
    PERFORM set_config('strongroom.force_lifted', array_to_string(lifted, ','), true);
END $strongroom$;
";

/// Restores FORCE ROW LEVEL SECURITY on every table [`LIFT_FORCE`] lifted it from.
const RESTORE_FORCE: &str = "
DO $strongroom$ DECLARE t text; BEGIN
    FOREACH t IN ARRAY string_to_array(current_setting('strongroom.force_lifted'), ',') LOOP
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END $strongroom$;
";

/// The migrator: each migration as written for a superuser; for another owner, wrapped in
/// [`LIFT_FORCE`] and [`RESTORE_FORCE`] (same transaction, same checksum).
pub fn migrator(superuser: bool) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(v, d, sql)| {
            let written = Migration::new(*v, Cow::Borrowed(*d), MigrationType::Simple, Cow::Borrowed(*sql), false);
            if superuser {
                return written;
            }
            Migration { sql: Cow::Owned(format!("{LIFT_FORCE}\n{sql}\n{RESTORE_FORCE}")), ..written }
        })
        .collect::<Vec<_>>();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// Applies every migration not yet applied. Before a database's first, checks that the owner
/// can create or grant the cluster roles, and names what it lacks when it cannot.
pub async fn run(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let recorded: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text").fetch_one(&mut *conn).await?;
    let first_done = match recorded {
        Some(_) => {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = 1 AND success)").fetch_one(&mut *conn).await?
        }
        None => false,
    };
    let owner = cluster_roles::Owner::current(&mut conn).await?;
    if !first_done {
        let lacking = cluster_roles::missing(&mut conn, &owner).await?;
        if !lacking.is_empty() {
            anyhow::bail!(cluster_roles::explain(&owner.name, &lacking));
        }
    }
    drop(conn);
    migrator(owner.superuser).run(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_migration_keeps_the_checksum_of_its_file() {
        let (plain, wrapped) = (migrator(true), migrator(false));
        for (a, b) in plain.migrations.iter().zip(wrapped.migrations.iter()) {
            assert_eq!(a.checksum, b.checksum, "migration {}", a.version);
        }
        assert!(wrapped.migrations.iter().all(|m| m.sql.contains("NO FORCE ROW LEVEL SECURITY") && m.sql.ends_with(RESTORE_FORCE)));
        assert!(plain.migrations.iter().all(|m| !m.sql.contains("strongroom.force_lifted")));
    }
}
