//! The built-in roles, end to end: a tenant admin mints credentials, and each role is allowed
//! and denied what `policies/policy.csv` says, every decision audited.

use serde_json::{json, Value};

use crate::helpers::*;

pub async fn mint(app: &TestApp, admin: &str, tenant: &str, role: &str) -> (i64, String) {
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", admin), ("x-bunker-tenant", tenant)],
            serde_json::to_vec(&json!({"role": role})).unwrap(),
        )
        .await;
    let b = r.ok();
    (b["credentialid"].as_i64().unwrap(), b["token"].as_str().unwrap().to_string())
}

fn body_for(endpoint: &str, token: &str) -> Value {
    match endpoint {
        "UserCreate" => json!({"profile": {"login": format!("new-{}", uuid::Uuid::new_v4().simple())}}),
        "UserCreateBulk" => json!({"records": [{"profile": {"login": format!("b-{}", uuid::Uuid::new_v4().simple())}}]}),
        "UserUpdate" => json!({"mode": "token", "identity": token, "profile": {"touched": true}}),
        "UserPatch" => json!({"mode": "token", "identity": token, "patch": [{"op": "add", "path": "/p", "value": 1}]}),
        "TenantCreate" => json!({"tenantname": format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]), "tenantorg": "x"}),
        "TenantGet" => json!({"tenantid": 2}),
        "TenantListTenants" => json!({}),
        _ => json!({"mode": "token", "identity": token}),
    }
}

#[tokio::test]
async fn each_built_in_role_is_allowed_and_denied_as_the_policy_says() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("matrix").await;
    // (role, allowed endpoints, denied endpoints). UserDelete runs last so the record survives.
    let matrix: &[(&str, &[&str], &[&str])] = &[
        (
            "tenant-admin",
            &["UserCreate", "UserGet", "UserUpdate", "UserListVersions", "AuditListUserEvents", "TenantGet"],
            &["TenantCreate", "TenantListTenants"],
        ),
        ("dpo", &["UserGet", "UserListVersions", "AuditListUserEvents"], &["UserCreate", "UserUpdate", "UserPatch", "TenantGet"]),
        ("auditor", &["AuditListUserEvents"], &["UserGet", "UserCreate", "UserListVersions", "UserDelete"]),
        (
            "app-writer",
            &["UserCreate", "UserCreateBulk", "UserGet", "UserUpdate", "UserPatch"],
            &["UserDelete", "AuditListUserEvents", "TenantGet"],
        ),
        ("app-reader", &["UserGet", "UserListVersions"], &["UserCreate", "UserUpdate", "UserDelete", "AuditListUserEvents"]),
        ("vault-plugin", &[], &["UserGet", "UserCreate", "AuditListUserEvents", "TenantGet"]),
    ];
    for (role, allowed, denied) in matrix {
        let token = if *role == "tenant-admin" { admin.clone() } else { mint(&app, &admin, "matrix", role).await.1 };
        let user = app.create_user(&admin, Some("matrix"), json!({"login": format!("u-{role}")})).await;
        for ep in *allowed {
            let r = app.call(ep, Some(&token), Some("matrix"), body_for(ep, &user)).await;
            assert_eq!(r.code, 200, "{role} should be allowed {ep}: {}", r.body);
        }
        for ep in *denied {
            let r = app.call(ep, Some(&token), Some("matrix"), body_for(ep, &user)).await;
            assert_eq!(r.err(403), "access denied", "{role} must be denied {ep}");
        }
    }
    // The DPO executes erasure; the record is then gone for everyone.
    let dpo = mint(&app, &admin, "matrix", "dpo").await.1;
    let victim = app.create_user(&admin, Some("matrix"), json!({"login": "erase-me"})).await;
    app.call("UserDelete", Some(&dpo), Some("matrix"), json!({"mode": "token", "identity": victim})).await.ok();
    app.call("UserGet", Some(&admin), Some("matrix"), json!({"mode": "token", "identity": victim})).await.err(404);
}

#[tokio::test]
async fn a_denied_call_is_audited_as_denied() {
    let app = TestApp::spawn().await;
    let (tid, admin) = app.create_tenant("denials").await;
    let auditor = mint(&app, &admin, "denials", "auditor").await.1;
    app.call("UserCreate", Some(&auditor), Some("denials"), json!({"profile": {"login": "x"}})).await.err(403);
    let mut tx = app.db.tenant_tx(tid).await.unwrap();
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM audit_events WHERE event_type = 'UserCreate' ORDER BY seq DESC LIMIT 1")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(outcome, "denied");
}

#[tokio::test]
async fn credentials_are_minted_for_built_in_roles_only_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("creds").await;
    let post = |token: String, path: &'static str, body: Value| {
        let app = &app;
        async move {
            app.raw(
                reqwest::Method::POST,
                path,
                &[("x-bunker-token", &token), ("x-bunker-tenant", "creds")],
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        }
    };
    post(admin.clone(), "/v1/credentials/create", json!({"role": "root"})).await.err(400);
    post(admin.clone(), "/v1/credentials/create", json!({"role": "user-self"})).await.err(400);
    post(admin.clone(), "/v1/credentials/create", json!({})).await.err(400);
    let (id, reader) = mint(&app, &admin, "creds", "app-reader").await;
    // An app-reader may not mint or revoke credentials.
    post(reader.clone(), "/v1/credentials/create", json!({"role": "app-writer"})).await.err(403);
    let user = app.create_user(&admin, Some("creds"), json!({"login": "r"})).await;
    app.call("UserGet", Some(&reader), Some("creds"), json!({"mode": "token", "identity": user})).await.ok();
    post(admin.clone(), "/v1/credentials/revoke", json!({"credentialid": id})).await.ok();
    app.call("UserGet", Some(&reader), Some("creds"), json!({"mode": "token", "identity": user})).await.err(403);
    post(admin.clone(), "/v1/credentials/revoke", json!({"credentialid": id})).await.err(404);
    // Another tenant's admin cannot revoke this tenant's credentials: not found there.
    let (_, other) = app.create_tenant("creds2").await;
    let (id2, _) = mint(&app, &admin, "creds", "auditor").await;
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/revoke",
            &[("x-bunker-token", &other), ("x-bunker-tenant", "creds2")],
            serde_json::to_vec(&json!({"credentialid": id2})).unwrap(),
        )
        .await;
    r.err(404);
}

#[tokio::test]
async fn the_root_token_rotates_revokes_and_comes_back_from_key_shares() {
    let mut app = TestApp::spawn().await;
    let old = app.root_token.clone();
    let rotated = app.post_sys("root-token/rotate", json!({})).await;
    let new = rotated.ok()["root_token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    app.call("TenantListTenants", Some(&old), None, json!({})).await.err(403);
    app.call("TenantListTenants", Some(&new), None, json!({})).await.ok();
    app.root_token = new.clone();
    // A tenant admin may not rotate root.
    let (_, admin) = app.create_tenant("rooty").await;
    app.raw(reqwest::Method::POST, "/v1/sys/root-token/rotate", &[("x-bunker-token", &admin)], Vec::new()).await.err(403);
    // Revoke: nothing is root any more, until a quorum of shares makes a new one.
    app.post_sys("root-token/revoke", json!({})).await.ok();
    app.call("TenantListTenants", Some(&new), None, json!({})).await.err(403);
    app.post_sys("generate-root", json!({"keys": [app.shares[0]]})).await.err(400);
    let other = TestApp::spawn().await;
    app.post_sys("generate-root", json!({"keys": [app.shares[0], other.shares[1]]})).await.err(400);
    let regenerated = app.post_sys("generate-root", json!({"keys": [app.shares[2], app.shares[0]]})).await;
    let fresh = regenerated.ok()["root_token"].as_str().unwrap().to_string();
    app.call("TenantListTenants", Some(&fresh), None, json!({})).await.ok();
    // No credential is stored in plaintext.
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM credentials").fetch_all(&mut su).await.unwrap();
    for h in hashes {
        assert!(memchr::memmem::find(&h, fresh.as_bytes()).is_none() && h.len() == 32);
    }
}
