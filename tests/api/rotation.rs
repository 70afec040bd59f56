//! Tenant data-key rotation: new writes switch at once, a background re-wrap moves the old keys,
//! old versions retire, and nothing becomes unreadable, also under a steady load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, PgConnection};
use strongroom::custody::rotation;

use crate::helpers::*;

async fn key_versions_in_use(app: &TestApp, tenant: i64) -> Vec<i32> {
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::query_scalar("SELECT DISTINCT key_version FROM users WHERE tenant_id = $1 ORDER BY 1")
        .bind(tenant)
        .fetch_all(&mut su)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rotation_switches_new_writes_at_once_and_the_rewrap_retires_the_old_key() {
    let app = TestApp::spawn().await;
    let (tid, x) = app.create_tenant("rotor").await;
    let mut tokens = Vec::new();
    for i in 0..7 {
        tokens.push(app.create_user(&x, Some("rotor"), json!({"email": format!("r{i}@example.com"), "n": i})).await);
    }
    // An event about no user: its key is wrapped by the tenant data key itself.
    app.call("UserGet", Some(&x), Some("rotor"), json!({"mode": "email", "identity": "nobody@example.com"})).await.err(404);
    let mut su = PgConnection::connect(&app.db_url).await.unwrap();
    let tenant_wrapped: String =
        sqlx::query_scalar("SELECT uuid FROM audit_events WHERE tenant_id = $1 AND user_token IS NULL ORDER BY seq DESC LIMIT 1")
            .bind(tid)
            .fetch_one(&mut su)
            .await
            .unwrap();
    let r = app.post_sys("rotate-tenant-key", json!({"tenantid": tid})).await;
    assert_eq!(r.ok()["version"], 2);
    let fresh = app.create_user(&x, Some("rotor"), json!({"email": "after@example.com"})).await;
    assert_eq!(key_versions_in_use(&app, tid).await, [1, 2], "the new user is wrapped by version 2, the old ones not yet");

    let status = app.post_sys("tenant-key-status", json!({"tenantid": tid})).await;
    assert_eq!(status.ok()["versions"], json!([1, 2]));
    assert_eq!(status.ok()["pending_users"], 7);
    assert_eq!(status.ok()["pending_events"], 1, "events about users are wrapped by the user's key");

    let ring = app.state.vault().keyring().unwrap();
    let mut passes = 0;
    while rotation::rewrap_pass(&app.db, app.state.vault().tenant_keks(), &ring, tid).await.unwrap() > 0 {
        passes += 1;
        assert!(passes < 100);
    }
    let status = app.post_sys("tenant-key-status", json!({"tenantid": tid})).await;
    assert_eq!(status.ok()["versions"], json!([2]), "version 1 retired");
    assert_eq!(status.ok()["pending_users"], 0);
    assert_eq!(key_versions_in_use(&app, tid).await, [2]);

    for (i, t) in tokens.iter().chain([&fresh]).enumerate() {
        let got = app.call("UserGet", Some(&x), Some("rotor"), json!({"mode": "token", "identity": t})).await;
        assert!(got.ok()["profile"]["email"].as_str().unwrap().ends_with("@example.com"), "user {i}");
    }
    // Audit details written under version 1 still open, and the chain is intact.
    let rows =
        app.call("AuditListUserEvents", Some(&x), Some("rotor"), json!({"mode": "token", "identity": tokens[0], "limit": 100})).await;
    let oldest = rows.ok()["rows"].as_array().unwrap().last().unwrap()["auditeventuuid"].as_str().unwrap().to_string();
    let ev = app.call("AuditGetEvent", Some(&x), Some("rotor"), json!({"auditeventuuid": oldest})).await;
    assert_eq!(ev.ok()["eventtype"], "UserCreate");
    let ev = app.call("AuditGetEvent", Some(&x), Some("rotor"), json!({"auditeventuuid": tenant_wrapped})).await;
    // A lookup that missed records the identity only as its blind index.
    assert_eq!(ev.ok()["details"]["identity_index"].as_str().map(str::len), Some(64));
    assert!(ev.ok()["details"].get("identity").is_none());
    assert!(strongroom::audit::verify(&app.db).await.unwrap().broken.is_empty());
    // Another tenant was not touched.
    assert_eq!(app.post_sys("tenant-key-status", json!({"tenantid": 1})).await.ok()["versions"], json!([1]));
}

#[tokio::test]
async fn rotation_needs_root_and_an_existing_tenant() {
    let app = TestApp::spawn().await;
    let (tid, x) = app.create_tenant("guarded").await;
    let denied = app
        .raw(
            reqwest::Method::POST,
            "/v1/sys/rotate-tenant-key",
            &[("x-bunker-token", &x)],
            serde_json::to_vec(&json!({"tenantid": tid})).unwrap(),
        )
        .await;
    denied.err(403);
    app.post_sys("rotate-tenant-key", json!({"tenantid": 999})).await.err(404);
    app.post_sys("rotate-tenant-key", json!({"tenantid": "x"})).await.err(400);
    app.post_sys("rotate-tenant-key", json!({})).await.err(400);
}

#[tokio::test]
async fn another_instance_writes_with_the_new_version_right_after_a_rotation() {
    let a = TestApp::spawn().await;
    let (tid, x) = a.create_tenant("fleet").await;
    let mut b = TestApp::serve_on(a.db_url.clone()).await;
    b.root_token = a.root_token.clone();
    b.unseal(&a.shares[0]).await.ok();
    b.unseal(&a.shares[1]).await.ok();
    b.create_user(&x, Some("fleet"), json!({"login": "before"})).await; // b caches version 1
    a.post_sys("rotate-tenant-key", json!({"tenantid": tid})).await.ok();
    b.create_user(&x, Some("fleet"), json!({"login": "after"})).await;
    let mut su = PgConnection::connect(&a.db_url).await.unwrap();
    let v: Vec<i32> =
        sqlx::query_scalar("SELECT key_version FROM users WHERE tenant_id = $1 ORDER BY id").bind(tid).fetch_all(&mut su).await.unwrap();
    assert_eq!(v, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_completes_under_load_with_zero_failed_requests() {
    let app = Arc::new(TestApp::spawn_configured(|c| c.rewrap_interval_ms = 50).await);
    app.state.start_rewrap();
    let (tid, x) = app.create_tenant("busy").await;
    let bulk: Vec<_> = (0..1200).map(|i| json!({"profile": {"email": format!("pre{i}@example.com"), "n": i}})).collect();
    app.call("UserCreateBulk", Some(&x), Some("busy"), json!({"records": bulk})).await.ok();

    let stop = Arc::new(AtomicBool::new(false));
    let (ops, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (app, x, stop, ops, failures) = (app.clone(), x.clone(), stop.clone(), ops.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 5000 {
                let created =
                    app.call("UserCreate", Some(&x), Some("busy"), json!({"profile": {"email": format!("c{c}-{i}@example.com")}})).await;
                let ok = created.code == 200;
                if ok {
                    mine.push(created.body["token"].as_str().unwrap().to_string());
                }
                let read = app
                    .call(
                        "UserGet",
                        Some(&x),
                        Some("busy"),
                        json!({"mode": "email", "identity": format!("pre{}@example.com", (i * 7 + c) % 1200)}),
                    )
                    .await;
                if !ok || read.code != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                ops.fetch_add(2, Ordering::Relaxed);
                i += 1;
            }
            mine
        }));
    }
    while ops.load(Ordering::Relaxed) < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.post_sys("rotate-tenant-key", json!({"tenantid": tid})).await.ok();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = app.post_sys("tenant-key-status", json!({"tenantid": tid})).await;
        if s.ok()["versions"] == json!([2]) {
            break;
        }
        assert!(Instant::now() < deadline, "re-wrap did not finish: {}", s.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut created = Vec::new();
    for c in clients {
        created.extend(c.await.unwrap());
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests during rotation");
    assert!(ops.load(Ordering::Relaxed) > 40);
    for t in created.iter().step_by(7) {
        app.call("UserGet", Some(&x), Some("busy"), json!({"mode": "token", "identity": t})).await.ok();
    }
    for i in (0..1200).step_by(97) {
        app.call("UserGet", Some(&x), Some("busy"), json!({"mode": "email", "identity": format!("pre{i}@example.com")})).await.ok();
    }
    assert_eq!(key_versions_in_use(&app, tid).await, [2]);
}

#[tokio::test]
async fn tokens_are_re_encrypted_by_the_rewrap_and_stay_readable() {
    let app = TestApp::spawn().await;
    let (tid, x) = app.create_tenant("tokrot").await;
    let card = app.call("TokenCreate", Some(&x), Some("tokrot"), json!({"tokentype": "creditcard", "record": "4111 1111 1111 1111"})).await;
    let tokenbase = card.ok()["tokenbase"].as_str().unwrap().to_string();
    app.post_sys("rotate-tenant-key", json!({"tenantid": tid})).await.ok();
    let status = app.post_sys("tenant-key-status", json!({"tenantid": tid})).await;
    assert_eq!(status.ok()["pending_events"], 2, "the token and its TokenCreate event (wrapped by the data key) wait");
    let ring = app.state.vault().keyring().unwrap();
    while rotation::rewrap_pass(&app.db, app.state.vault().tenant_keks(), &ring, tid).await.unwrap() > 0 {}
    let status = app.post_sys("tenant-key-status", json!({"tenantid": tid})).await;
    assert_eq!(status.ok()["versions"], json!([2]), "version 1 retired once the token moved");
    let got = app.call("TokenGet", Some(&x), Some("tokrot"), json!({"token": tokenbase})).await;
    assert_eq!(got.ok()["record"], "4111111111111111");
}

#[tokio::test]
async fn sessions_of_no_user_are_re_encrypted_by_the_rewrap_and_stay_readable() {
    let app = TestApp::spawn().await;
    let (tid, x) = app.create_tenant("sesrot").await;
    let s = uuid::Uuid::new_v4().to_string();
    app.call("SessionUpsert", Some(&x), Some("sesrot"), json!({"sessionuuid": s, "sessiondata": {"k": 1}})).await.ok();
    app.post_sys("rotate-tenant-key", json!({"tenantid": tid})).await.ok();
    let pending = app.post_sys("tenant-key-status", json!({"tenantid": tid})).await.ok()["pending_events"].as_i64().unwrap();
    assert!(pending >= 1, "the session waits for the rewrap");
    let ring = app.state.vault().keyring().unwrap();
    while rotation::rewrap_pass(&app.db, app.state.vault().tenant_keks(), &ring, tid).await.unwrap() > 0 {}
    let status = app.post_sys("tenant-key-status", json!({"tenantid": tid})).await;
    assert_eq!(status.ok()["versions"], json!([2]), "version 1 retired once the session moved");
    let got = app.call("SessionGet", Some(&x), Some("sesrot"), json!({"sessionuuid": s})).await;
    assert_eq!(got.ok()["sessiondata"], json!({"k": 1}));
}
