//! Tenant isolation through the API and directly in SQL, and nothing readable at rest.

use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use strongroom::keys::{keyring, shamir, unseal};

use crate::helpers::*;

const B_PROFILE_LOGIN: &str = "bee-login";

/// Tenants `alpha` and `beta`, with one user in beta; returns (app, alpha xtoken, beta xtoken,
/// beta user token).
async fn two_tenants() -> (TestApp, String, String, String) {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("alpha").await;
    let (_, b) = app.create_tenant("beta").await;
    let token = app
        .create_user(
            &b,
            Some("beta"),
            json!({"login": B_PROFILE_LOGIN, "email": "bee@example.com", "phone": "+44 20 7946 0000", "custom": "B-42", "name": "Bee"}),
        )
        .await;
    (app, a, b, token)
}

#[tokio::test]
async fn a_tenant_cannot_read_update_delete_or_detect_another_tenants_user() {
    let (app, a, b, token) = two_tenants().await;
    let identities = [
        ("token", token.as_str()),
        ("login", B_PROFILE_LOGIN),
        ("email", "bee@example.com"),
        ("phone", "442079460000"),
        ("custom", "B-42"),
    ];
    for (mode, identity) in identities {
        let lookup = json!({"mode": mode, "identity": identity});
        for ep in ["UserGet", "UserListVersions", "UserDelete", "AuditListUserEvents"] {
            let r = app.call(ep, Some(&a), Some("alpha"), lookup.clone()).await;
            assert_eq!(r.err(404), "user record not found", "{ep} by {mode}");
        }
        let upd = app
            .call("UserUpdate", Some(&a), Some("alpha"), json!({"mode": mode, "identity": identity, "profile": {"name": "Mallory"}}))
            .await;
        upd.err(404);
        let patch = app
            .call(
                "UserPatch",
                Some(&a),
                Some("alpha"),
                json!({"mode": mode, "identity": identity, "patch": [{"op": "replace", "path": "/name", "value": "M"}]}),
            )
            .await;
        patch.err(404);
    }
    // The same identities are free in alpha: no cross-tenant uniqueness leak.
    app.create_user(&a, Some("alpha"), json!({"login": B_PROFILE_LOGIN, "email": "bee@example.com"})).await;
    let still = app.call("UserGet", Some(&b), Some("beta"), json!({"mode": "token", "identity": token})).await;
    assert_eq!(still.ok()["profile"]["name"], "Bee");
    assert_eq!(still.ok()["version"], 1);
}

#[tokio::test]
async fn a_credential_is_refused_in_any_tenant_but_its_own() {
    let (app, a, _b, token) = two_tenants().await;
    let lookup = json!({"mode": "token", "identity": token});
    app.call("UserGet", Some(&a), Some("beta"), lookup.clone()).await.err(403);
    app.call("UserGet", Some(&app.root_token), Some("beta"), lookup.clone()).await.err(403);
    app.call("UserGet", Some(&a), None, lookup).await.err(403);
}

#[tokio::test]
async fn in_sql_a_tenant_transaction_sees_and_writes_only_its_own_rows() {
    let (app, a, _b, _token) = two_tenants().await;
    app.create_user(&a, Some("alpha"), json!({"login": "ay"})).await;
    let alpha: i64 = 2;
    let beta: i64 = 3;
    let mut tx = app.db.tenant_tx(alpha).await.unwrap();
    for table in ["users", "user_index", "user_versions", "credentials", "tenant_keys", "audit_events", "audit_heads"] {
        let foreign: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE tenant_id <> $1"))
            .bind(alpha)
            .fetch_one(tx.conn())
            .await
            .unwrap();
        assert_eq!(foreign, 0, "{table} shows another tenant's rows");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(tx.conn()).await.unwrap();
    assert_eq!(users, 1, "no tenant filter in the query, only alpha's one user visible");
    let insert = sqlx::query("INSERT INTO users (tenant_id, token, version, key_version, user_key, profile, digest, created_at, updated_at) VALUES ($1, 'x', 1, 1, '\\x00', '\\x00', 'd', 0, 0)")
        .bind(beta)
        .execute(tx.conn())
        .await;
    let err = insert.expect_err("insert of a beta row from alpha's transaction must fail").to_string();
    assert!(err.contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // The superuser sees both tenants: the rows exist, RLS is what hid them.
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    let all: i64 = sqlx::query_scalar("SELECT count(DISTINCT tenant_id) FROM users").fetch_one(&mut su).await.unwrap();
    assert_eq!(all, 2);
}

#[tokio::test]
async fn a_pooled_connection_never_carries_a_tenant_into_the_next_use() {
    let app = TestApp::spawn().await;
    // One connection in the pool, so every use below is the same server session.
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&app.db_url).await.unwrap();
    let db = strongroom::store::Db::from_pool(pool.clone());
    let mut tx = db.tenant_tx(1).await.unwrap();
    let inside =
        sqlx::query("SELECT current_setting('strongroom.tenant_id') AS t, current_user::text AS u").fetch_one(tx.conn()).await.unwrap();
    assert_eq!(inside.get::<String, _>("t"), "1");
    assert_eq!(inside.get::<String, _>("u"), "strongroom_tenant");
    tx.commit().await.unwrap();

    let after =
        sqlx::query("SELECT current_setting('strongroom.tenant_id', true) AS t, current_user::text AS u").fetch_one(&pool).await.unwrap();
    assert!(after.get::<Option<String>, _>("t").unwrap_or_default().is_empty(), "tenant setting leaked past commit");
    assert_ne!(after.get::<String, _>("u"), "strongroom_tenant", "role leaked past commit");

    // The tenant role with no tenant set fails closed instead of seeing everything.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET ROLE strongroom_tenant").execute(&mut *conn).await.unwrap();
    let unscoped = sqlx::query("SELECT count(*) FROM users").fetch_one(&mut *conn).await;
    assert!(unscoped.is_err(), "a tenant-role query with no tenant set must fail");
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn nothing_secret_is_readable_at_rest() {
    let app = TestApp::spawn().await;
    let marker = format!("zq{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let email = format!("{marker}@example.com");
    let name = format!("Name-{marker}");
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": email, "name": name})).await;
    app.root("UserGet", json!({"mode": "email", "identity": email})).await.ok();
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": format!("{name}-2")}})).await.ok();

    // Rebuild the master key from two shares, as an officer would, to know what to look for.
    let (_, s0) = unseal::decode_share(&app.shares[0]).unwrap();
    let (_, s2) = unseal::decode_share(&app.shares[2]).unwrap();
    let uk = strongroom::keys::envelope::Key::from_bytes(shamir::combine(&[s0, s2]).unwrap());
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    let row = sqlx::query("SELECT vault_id, mk_by_uk FROM vault_meta").fetch_one(&mut su).await.unwrap();
    let mk = keyring::unwrap_master(&uk, &row.get::<String, _>(0), "unseal", &row.get::<Vec<u8>, _>(1)).unwrap();
    sqlx::query("CHECKPOINT").execute(&mut su).await.unwrap();

    // 1. A logical dump of the database.
    let c = cluster();
    let dump = std::process::Command::new(strongroom::localpg::find_bin_dir().unwrap().join("pg_dump"))
        .arg("--dbname")
        .arg(&app.db_url)
        .output()
        .expect("pg_dump");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let text = dump.stdout;
    assert!(text.len() > 1000);
    for needle in [email.as_bytes(), name.as_bytes(), marker.as_bytes(), mk.expose().as_slice(), uk.expose().as_slice()] {
        assert!(memchr::memmem::find(&text, needle).is_none(), "dump contains a secret");
    }
    let hex_mk = hex::encode(mk.expose());
    assert!(!String::from_utf8_lossy(&text).contains(&hex_mk));

    // 2. The files PostgreSQL wrote for it: this database's heap and indexes, the shared
    //    catalogs, the WAL (every change passes through it) and the server log.
    let oid: sqlx::postgres::types::Oid =
        sqlx::query_scalar("SELECT oid FROM pg_database WHERE datname = current_database()").fetch_one(&mut su).await.unwrap();
    let root = c.pg.cluster_dir();
    let mut files = Vec::new();
    for sub in [format!("base/{}", oid.0), "global".into(), "pg_wal".into()] {
        files_under(&root.join(sub), &mut files);
    }
    files.push(root.join("postgres.log"));
    assert!(files.len() > 50, "{} files", files.len());
    let needles = [marker.as_bytes(), mk.expose().as_slice(), uk.expose().as_slice()];
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else { continue };
        for needle in needles {
            assert!(memchr::memmem::find(&bytes, needle).is_none(), "{} holds a secret", f.display());
        }
    }
}

/// Every tenant-directory change (`TenantTx::as_directory`: creating, updating, locking and
/// deleting tenants, key rotation, policy versions) returns to the transaction's own tenant
/// scope: the tenant role and this tenant, never the owner or the tenant just touched.
#[tokio::test]
async fn directory_changes_return_to_the_tenant_scope() {
    let app = TestApp::spawn().await;
    let scope = async |tx: &mut strongroom::store::TenantTx| -> (String, String) {
        let r =
            sqlx::query("SELECT current_setting('strongroom.tenant_id') AS t, current_user::text AS u").fetch_one(tx.conn()).await.unwrap();
        (r.get("t"), r.get("u"))
    };
    let main = ("1".to_string(), "strongroom_tenant".to_string());
    let mut tx = app.db.tenant_tx(1).await.unwrap();
    let id = tx.create_tenant("scoped", "Scoped Inc", None, None, |_| vec![0u8; 60], &[7u8; 32]).await.unwrap();
    assert_eq!(scope(&mut tx).await, main, "after create_tenant");
    assert!(tx.update_tenant(id, None, Some("Renamed"), None).await.unwrap());
    assert_eq!(scope(&mut tx).await, main, "after update_tenant");
    assert!(tx.lock_tenant(id).await.unwrap().is_some());
    assert_eq!(scope(&mut tx).await, main, "after lock_tenant");
    assert!(tx.delete_tenant(id).await.unwrap() >= 1);
    assert_eq!(scope(&mut tx).await, main, "after delete_tenant");
    assert!(tx.rotate_data_key(|_| vec![0u8; 60]).await.unwrap() >= 2);
    assert_eq!(scope(&mut tx).await, main, "after rotate_data_key");
    assert!(tx.replace_policy_rules(&[]).await.unwrap() >= 1);
    assert_eq!(scope(&mut tx).await, main, "after replace_policy_rules");
    tx.rollback().await.unwrap();
}
