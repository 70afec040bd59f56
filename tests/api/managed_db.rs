//! A managed database (RDS, Aurora, Cloud SQL) hands out no superuser. `migrate` as such an
//! owner names every statement it cannot run and who must run it, migrates nothing, and once an
//! administrator has run exactly those statements, migrates and serves.

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::*;

/// The statements a migrate error asks an administrator to run (its indented lines).
fn asked(err: &str) -> Vec<String> {
    err.lines().filter(|l| l.starts_with("    ")).map(|l| l.trim().to_string()).collect()
}

async fn owner_db(admin: &mut PgConnection, pg: &strongroom::localpg::LocalPg, owner: &str, attrs: &str) -> strongroom::store::Db {
    admin.execute(format!("CREATE ROLE {owner} LOGIN PASSWORD 'pw-{owner}' {attrs}").as_str()).await.unwrap();
    admin.execute(format!("CREATE DATABASE {owner} OWNER {owner}").as_str()).await.unwrap();
    let url = format!("postgres://{owner}:pw-{owner}@127.0.0.1:{}/{owner}", pg.port());
    strongroom::store::Db::connect(&url, 4).await.unwrap()
}

async fn migrated(admin_url: &str) -> bool {
    let mut c = PgConnection::connect(admin_url).await.unwrap();
    sqlx::query_scalar::<_, Option<String>>("SELECT to_regclass('vault_meta')::text").fetch_one(&mut c).await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_without_a_superuser_names_what_an_administrator_must_run() {
    // A cluster of its own: the roles are cluster-wide and the shared one has them already.
    let dir = temp_dir("managed-db");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pg = strongroom::localpg::LocalPg::start(&dir).expect("start PostgreSQL");
    pg.remove_when_process_exits(std::process::id(), &dir).unwrap();
    let mut admin = PgConnection::connect(&pg.url("postgres")).await.unwrap();

    // An RDS-like master user: CREATEROLE, no superuser. It may create the tenant role itself;
    // the reader role, which bypasses row-level security, takes a superuser.
    let db = owner_db(&mut admin, &pg, "app_owner", "CREATEROLE").await;
    let err = format!("{:#}", db.migrate().await.expect_err("no superuser, no roles"));
    assert_eq!(
        asked(&err),
        ["CREATE ROLE strongroom_reader NOLOGIN BYPASSRLS;", "GRANT strongroom_reader TO app_owner WITH ADMIN OPTION;"],
        "{err}"
    );
    assert!(err.contains("superuser") && err.contains("Nothing was migrated"), "{err}");
    let owner_url = pg.url("app_owner");
    assert!(!migrated(&owner_url).await, "nothing applied before the roles exist");

    // The administrator runs exactly what was asked; then the owner migrates and the vault serves.
    for s in asked(&err) {
        admin.execute(s.as_str()).await.unwrap();
    }
    db.migrate().await.expect("migrate once the roles exist");
    assert!(migrated(&owner_url).await);
    db.migrate().await.expect("a second migrate is a no-op");
    // FORCE was lifted for each migration's transaction only: every tenant table has it back.
    let mut c = PgConnection::connect(&owner_url).await.unwrap();
    let unforced: Vec<String> =
        sqlx::query_scalar("SELECT relname::text FROM pg_class WHERE relrowsecurity AND NOT relforcerowsecurity AND relkind = 'r'")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert!(unforced.is_empty(), "tables left without FORCE ROW LEVEL SECURITY: {unforced:?}");
    let forced: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relforcerowsecurity").fetch_one(&mut c).await.unwrap();
    assert!(forced >= 20, "{forced} forced tables");

    let mut app = TestApp::serve_on(format!("postgres://app_owner:pw-app_owner@127.0.0.1:{}/app_owner", pg.port())).await;
    let init = app.post_sys("init", json!({})).await.ok().clone();
    app.root_token = init["root_token"].as_str().unwrap().to_string();
    for k in init["keys"].as_array().unwrap().iter().take(2) {
        app.unseal(k.as_str().unwrap()).await.ok();
    }
    let token = app.create_user(&app.root_token, None, json!({"email": "managed@example.com"})).await;
    assert_eq!(app.root("UserGet", json!({"mode": "token", "identity": token})).await.code, 200);
    let t = app.root("TenantCreate", json!({"tenantname": "managed", "tenantorg": "Managed"})).await;
    assert_eq!(t.code, 200, "{:?}", t.body);

    // A plain owner (no CREATEROLE) on the same cluster: both roles exist now, it only needs
    // them granted.
    let plain = owner_db(&mut admin, &pg, "plain_owner", "").await;
    let err = format!("{:#}", plain.migrate().await.expect_err("not a member"));
    assert_eq!(asked(&err), ["GRANT strongroom_tenant, strongroom_reader TO plain_owner WITH ADMIN OPTION;"], "{err}");
    for s in asked(&err) {
        admin.execute(s.as_str()).await.unwrap();
    }
    plain.migrate().await.expect("migrate once granted");
    pg.stop().unwrap();
}
