//! Retention: `slidingtime`/`finaltime` on users (reported by UserGet, sliding extended on
//! read, expired users absent at once), and the background sweeper that deletes whatever has
//! expired (users with a `UserExpired` audit event, sessions, tokens, shared records, bulk
//! unlocks, old leases), safely with several instances at once. Waits poll a condition with a
//! deadline; nothing sleeps a fixed time and hopes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;
use strongroom::config::Config;

use crate::helpers::*;

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&app.db_url).await.unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn get(app: &TestApp, token: &str) -> Reply {
    app.root("UserGet", json!({"mode": "token", "identity": token})).await
}

async fn create(app: &TestApp, body: Value) -> String {
    app.root("UserCreate", body).await.ok()["token"].as_str().unwrap().to_string()
}

/// A count from SQL run as the superuser (no tenant scope).
async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut su = superuser(app).await;
    sqlx::query_scalar(sql).fetch_one(&mut su).await.unwrap()
}

/// Polls `cond` every 50 ms until it holds; fails after `secs`.
async fn wait_for<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sweeping_app() -> TestApp {
    TestApp::spawn_configured(|c| c.sweep_interval_ms = 100).await
}

#[tokio::test]
async fn a_user_with_a_short_finaltime_is_absent_then_swept_and_audited() {
    let app = sweeping_app().await;
    let t0 = now();
    let token = create(&app, json!({"profile": {"login": "brief", "name": "B"}, "finaltime": "2s"})).await;
    let keeper = create(&app, json!({"profile": {"login": "keeper"}})).await;

    let got = get(&app, &token).await;
    let b = got.ok();
    let exp = b["expirationtime"].as_i64().unwrap();
    assert!((t0 + 2..=now() + 2).contains(&exp), "expirationtime {exp}, created at {t0}");
    assert_eq!(b["finaltime"].as_i64(), Some(exp));
    assert_eq!(b["slidingtime"], 0);
    let kept = get(&app, &keeper).await;
    assert_eq!((kept.ok()["expirationtime"].clone(), kept.ok()["finaltime"].clone()), (json!(0), json!(0)));

    // Past its final time it is not found by any mode, though no sweeper has run yet.
    wait_for(15, "user to expire", || async { get(&app, &token).await.code == 404 }).await;
    app.root("UserGet", json!({"mode": "login", "identity": "brief"})).await.err(404);
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "C"}})).await.err(404);
    assert_eq!(count(&app, &format!("SELECT count(*) FROM users WHERE token = '{token}'")).await, 1);

    // The sweeper deletes the row and audits it.
    app.state.start_sweeper();
    wait_for(15, "sweeper to delete the user", || async {
        count(&app, &format!("SELECT count(*) FROM users WHERE token = '{token}'")).await == 0
    })
    .await;
    let events =
        count(&app, &format!("SELECT count(*) FROM audit_events WHERE event_type = 'UserExpired' AND user_token = '{token}'")).await;
    assert_eq!(events, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM user_index i WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = i.user_id)").await, 0);
    get(&app, &keeper).await.ok();
    let report = strongroom::audit::verify(&app.db).await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}

#[tokio::test]
async fn sliding_time_extends_on_read_but_never_past_finaltime() {
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"profile": {"login": "slider"}, "slidingtime": "1h", "finaltime": "2d"})).await;
    let b = get(&app, &token).await.ok().clone();
    assert_eq!(b["slidingtime"], 3_600);
    let final_at = b["finaltime"].as_i64().unwrap();
    assert!((now() + 2 * 86_400 - 5..=now() + 2 * 86_400).contains(&final_at), "{final_at}");

    // Expiry close to now: a read moves it forward by the sliding time.
    let mut su = superuser(&app).await;
    let soon = now() + 20;
    sqlx::query("UPDATE users SET expires_at = $2 WHERE token = $1").bind(&token).bind(soon).execute(&mut su).await.unwrap();
    let exp = get(&app, &token).await.ok()["expirationtime"].as_i64().unwrap();
    assert!(exp >= now() + 3_600 - 5 && exp > soon, "{exp}");
    let stored: i64 = sqlx::query_scalar("SELECT expires_at FROM users WHERE token = $1").bind(&token).fetch_one(&mut su).await.unwrap();
    assert_eq!(stored, exp);
    // Other reads extend it too.
    sqlx::query("UPDATE users SET expires_at = $2 WHERE token = $1").bind(&token).bind(soon).execute(&mut su).await.unwrap();
    app.root("UserListVersions", json!({"mode": "login", "identity": "slider"})).await.ok();
    let stored: i64 = sqlx::query_scalar("SELECT expires_at FROM users WHERE token = $1").bind(&token).fetch_one(&mut su).await.unwrap();
    assert!(stored > soon, "{stored}");

    // Never past the final time.
    let close_final = now() + 100;
    sqlx::query("UPDATE users SET expires_at = $2, final_at = $3 WHERE token = $1")
        .bind(&token)
        .bind(soon)
        .bind(close_final)
        .execute(&mut su)
        .await
        .unwrap();
    let b = get(&app, &token).await.ok().clone();
    assert_eq!((b["expirationtime"].as_i64(), b["finaltime"].as_i64()), (Some(close_final), Some(close_final)));

    // A sliding-only user: expiry is now + sliding.
    let only = create(&app, json!({"profile": {"login": "only"}, "slidingtime": 600})).await;
    let b = get(&app, &only).await.ok().clone();
    assert_eq!((b["slidingtime"].as_i64(), b["finaltime"].as_i64()), (Some(600), Some(0)));
    assert!((now() + 595..=now() + 600).contains(&b["expirationtime"].as_i64().unwrap()));

    // An expired sliding user is not revived by a read.
    sqlx::query("UPDATE users SET expires_at = $2 WHERE token = $1").bind(&only).bind(now() - 1).execute(&mut su).await.unwrap();
    get(&app, &only).await.err(404);
    let stored: i64 = sqlx::query_scalar("SELECT expires_at FROM users WHERE token = $1").bind(&only).fetch_one(&mut su).await.unwrap();
    assert!(stored < now());
}

#[tokio::test]
async fn bad_retention_values_are_400() {
    let app = TestApp::spawn().await;
    let past = now() - 10;
    for (field, bad) in [
        ("finaltime", json!(past)),
        ("finaltime", json!("bogus")),
        ("finaltime", json!("0")),
        ("finaltime", json!("-5m")),
        ("slidingtime", json!(2_000_000_000)),
        ("slidingtime", json!("2000000000")),
        ("slidingtime", json!("5x")),
        ("slidingtime", json!(1.5)),
    ] {
        let body = json!({"profile": {"login": "bad"}, field: bad});
        let msg = app.root("UserCreate", body).await.err(400);
        assert!(msg.contains(field), "{field}={bad}: {msg}");
        let bulk = json!({"records": [{"profile": {"login": "bad"}}], field: bad.clone()});
        app.root("UserCreateBulk", bulk).await.err(400);
        let bulk = json!({"records": [{"profile": {"login": "ok1"}}, {"profile": {"login": "bad"}, field: bad}]});
        let msg = app.root("UserCreateBulk", bulk).await.err(400);
        assert!(msg.starts_with("records[1]"), "{msg}");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 0);
    // Empty values mean no retention.
    let t = create(&app, json!({"profile": {"login": "none"}, "finaltime": "", "slidingtime": null})).await;
    assert_eq!(get(&app, &t).await.ok()["expirationtime"], 0);
}

#[tokio::test]
async fn a_bulk_finaltime_applies_to_every_record_unless_a_record_sets_its_own() {
    let app = TestApp::spawn().await;
    let records = json!([{"profile": {"login": "b1"}}, {"profile": {"login": "b2"}}, {"profile": {"login": "b3"}, "finaltime": "2h"}]);
    let r = app.root("UserCreateBulk", json!({"records": records, "finaltime": "1h"})).await;
    let created = r.ok()["created"].as_array().unwrap().clone();
    assert_eq!(created.len(), 3);
    let t = now();
    for (i, c) in created.iter().enumerate() {
        let b = get(&app, c["token"].as_str().unwrap()).await.ok().clone();
        let want = if i == 2 { 7_200 } else { 3_600 };
        let exp = b["expirationtime"].as_i64().unwrap();
        assert!((t + want - 10..=t + want).contains(&exp), "record {i}: {exp}");
        assert_eq!(b["finaltime"].as_i64(), Some(exp));
    }
    assert_eq!(count(&app, "SELECT count(*) FROM users WHERE expires_at IS NOT NULL AND final_at = expires_at").await, 3);
}

#[tokio::test]
async fn the_sweeper_deletes_expired_sessions_tokens_shared_records_files_unlocks_and_old_leases() {
    let app = sweeping_app().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "owner"})).await;
    let (s_old, s_new) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    for s in [&s_old, &s_new] {
        let body = json!({"sessionuuid": s, "sessiondata": {"a": 1}, "mode": "token", "identity": user, "finaltime": "1h"});
        app.root("SessionUpsert", body).await.ok();
    }
    let tok_old = app.root("TokenCreate", json!({"tokentype": "email", "record": "a@example.com", "finaltime": "1h"})).await;
    let tok_old = tok_old.ok()["tokenuuid"].as_str().unwrap().to_string();
    let tok_new = app.root("TokenCreate", json!({"tokentype": "email", "record": "b@example.com", "finaltime": "1h"})).await;
    let tok_new = tok_new.ok()["tokenuuid"].as_str().unwrap().to_string();
    let share = |_: ()| json!({"mode": "token", "identity": user, "finaltime": "1h"});
    let sh_old = app.root("SharedRecordCreate", share(())).await.ok()["recorduuid"].as_str().unwrap().to_string();
    let sh_new = app.root("SharedRecordCreate", share(())).await.ok()["recorduuid"].as_str().unwrap().to_string();
    app.root("BulkListUnlock", json!({})).await.ok();
    let file = |name: &str| json!({"mode": "token", "identity": user, "filename": name, "filedata": "aGVsbG8", "finaltime": "1h"});
    let f_old = app.root("FileCreate", file("old.txt")).await.ok()["fileuuid"].as_str().unwrap().to_string();
    let mut newer = file("new.txt");
    newer["filedata"] = "d29ybGQ".into();
    let f_new = app.root("FileCreate", newer).await.ok()["fileuuid"].as_str().unwrap().to_string();

    let mut su = superuser(&app).await;
    let tenant: i64 = sqlx::query_scalar("SELECT id FROM tenants ORDER BY id LIMIT 1").fetch_one(&mut su).await.unwrap();
    let past = now() - 1;
    sqlx::query("UPDATE sessions SET expires_at = $2 WHERE uuid = $1").bind(&s_old).bind(past).execute(&mut su).await.unwrap();
    sqlx::query("UPDATE tokens SET expires_at = $2 WHERE uuid = $1").bind(&tok_old).bind(past).execute(&mut su).await.unwrap();
    sqlx::query("UPDATE shared_records SET expires_at = $2 WHERE uuid = $1").bind(&sh_old).bind(past).execute(&mut su).await.unwrap();
    sqlx::query("UPDATE files SET expires_at = $2 WHERE uuid = $1").bind(&f_old).bind(past).execute(&mut su).await.unwrap();
    sqlx::query("UPDATE bulk_unlocks SET expires_at = $1").bind(past).execute(&mut su).await.unwrap();
    for (id, expired) in [("lease-old", now() - 2 * 86_400), ("lease-recent", now() - 3_600)] {
        sqlx::query(
            "INSERT INTO leases (tenant_id, lease_id, role, issued_at, expires_at, max_expires_at) VALUES ($1, $2, 'admin', $3, $3, $3)",
        )
        .bind(tenant)
        .bind(id)
        .bind(expired)
        .execute(&mut su)
        .await
        .unwrap();
    }

    app.state.start_sweeper();
    let gone = |table: &'static str, key: &'static str, id: String| {
        let app = &app;
        async move { count(app, &format!("SELECT count(*) FROM {table} WHERE {key} = '{id}'")).await == 0 }
    };
    wait_for(15, "expired session deleted", || gone("sessions", "uuid", s_old.clone())).await;
    wait_for(15, "expired token deleted", || gone("tokens", "uuid", tok_old.clone())).await;
    wait_for(15, "expired shared record deleted", || gone("shared_records", "uuid", sh_old.clone())).await;
    wait_for(15, "expired file deleted", || gone("files", "uuid", f_old.clone())).await;
    wait_for(15, "expired unlock deleted", || async { count(&app, "SELECT count(*) FROM bulk_unlocks").await == 0 }).await;
    wait_for(15, "old lease deleted", || gone("leases", "lease_id", "lease-old".into())).await;

    // What has not expired (or expired less than a day ago, for leases) stays.
    for (table, key, id) in [
        ("sessions", "uuid", &s_new),
        ("tokens", "uuid", &tok_new),
        ("shared_records", "uuid", &sh_new),
        ("files", "uuid", &f_new),
        ("leases", "lease_id", &"lease-recent".to_string()),
    ] {
        assert_eq!(count(&app, &format!("SELECT count(*) FROM {table} WHERE {key} = '{id}'")).await, 1, "{table} {id}");
    }
    app.root("SessionGet", json!({"sessionuuid": s_new})).await.ok();
    get(&app, &user).await.ok();
}

#[tokio::test]
async fn two_instances_sweeping_at_once_delete_and_audit_each_user_once() {
    const USERS: usize = 1_200; // more than two batches
    let a = sweeping_app().await;
    let records: Vec<Value> = (0..USERS).map(|i| json!({"profile": {"login": format!("u{i}")}})).collect();
    a.root("UserCreateBulk", json!({"records": records, "finaltime": "1h"})).await.ok();
    let mut b = TestApp::serve_with(Config { database_url: Some(a.db_url.clone()), sweep_interval_ms: 50, ..Config::default() }).await;
    b.root_token = a.root_token.clone();
    b.unseal(&a.shares[0]).await.ok();
    assert_eq!(b.unseal(&a.shares[1]).await.ok()["sealed"], false);
    let survivor = create(&a, json!({"profile": {"login": "survivor"}})).await;

    let mut su = superuser(&a).await;
    sqlx::query("UPDATE users SET expires_at = $1 WHERE expires_at IS NOT NULL").bind(now() - 1).execute(&mut su).await.unwrap();
    a.state.start_sweeper();
    b.state.start_sweeper();
    wait_for(30, "both sweepers to delete every expired user", || async {
        count(&a, "SELECT count(*) FROM users WHERE expires_at IS NOT NULL").await == 0
    })
    .await;

    let events = count(&a, "SELECT count(*) FROM audit_events WHERE event_type = 'UserExpired'").await;
    let distinct = count(&a, "SELECT count(DISTINCT user_token) FROM audit_events WHERE event_type = 'UserExpired'").await;
    assert_eq!((events, distinct), (USERS as i64, USERS as i64));
    assert_eq!(count(&a, "SELECT count(*) FROM users").await, 1);
    get(&a, &survivor).await.ok();
    get(&b, &survivor).await.ok();
    let report = strongroom::audit::verify(&a.db).await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}
