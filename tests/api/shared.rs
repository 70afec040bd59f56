//! Shared records: a snapshot of only the listed fields (profile or one app's data), encrypted
//! under the user's key, readable by uuid until it expires, gone with the user, isolated per
//! tenant, and gated by role.

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const MARKER: &str = "SharedMarker-5d81c0";

async fn mint(app: &TestApp, admin: &str, tenant: &str, role: &str) -> String {
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", admin), ("x-bunker-tenant", tenant)],
            serde_json::to_vec(&json!({"role": role})).unwrap(),
        )
        .await;
    r.ok()["token"].as_str().unwrap().to_string()
}

fn share(token: &str, extra: Value) -> Value {
    let mut body = json!({"mode": "token", "identity": token});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn create(app: &TestApp, body: Value) -> String {
    app.root("SharedRecordCreate", body).await.ok()["recorduuid"].as_str().unwrap().to_string()
}

async fn get(app: &TestApp, uuid: &str) -> Reply {
    app.root("SharedRecordGet", json!({"recorduuid": uuid})).await
}

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&app.db_url).await.unwrap()
}

#[tokio::test]
async fn a_shared_record_exposes_only_the_listed_fields() {
    let app = TestApp::spawn().await;
    let profile = json!({"login": "ada", "name": "Ada", "email": "ada@example.com", "ssn": MARKER, "address": {"city": "X"}});
    let user = app.create_user(&app.root_token, None, profile.clone()).await;

    let uuid = create(&app, share(&user, json!({"fields": "name, email,phone", "partner": "acme"}))).await;
    assert!(uuid::Uuid::parse_str(&uuid).is_ok(), "{uuid}");
    let got = get(&app, &uuid).await;
    assert_eq!(got.ok()["data"], json!({"name": "Ada", "email": "ada@example.com"}));

    // No fields: the whole profile; by login too.
    let all = create(&app, json!({"mode": "login", "identity": "ada"})).await;
    assert_eq!(get(&app, &all).await.ok()["data"], profile);
    let nested = create(&app, share(&user, json!({"fields": "address"}))).await;
    assert_eq!(get(&app, &nested).await.ok()["data"], json!({"address": {"city": "X"}}));

    // A snapshot: later changes to the profile do not show.
    app.root("UserUpdate", json!({"mode": "token", "identity": user, "profile": {"name": "Changed"}})).await.ok();
    assert_eq!(get(&app, &uuid).await.ok()["data"]["name"], "Ada");

    // With appname: that app's data instead of the profile.
    app.root("AppdataCreate", json!({"mode": "token", "identity": user, "appname": "shop", "appdata": {"tier": "gold", "card": MARKER}}))
        .await
        .ok();
    let app_uuid = create(&app, share(&user, json!({"appname": "shop", "fields": "tier"}))).await;
    assert_eq!(get(&app, &app_uuid).await.ok()["data"], json!({"tier": "gold"}));
    let app_all = create(&app, share(&user, json!({"appname": "shop"}))).await;
    assert_eq!(get(&app, &app_all).await.ok()["data"], json!({"tier": "gold", "card": MARKER}));

    // Errors.
    assert_eq!(app.root("SharedRecordCreate", share(&user, json!({"appname": "nope"}))).await.err(404), "app data not found");
    app.root("SharedRecordCreate", share(&user, json!({"appname": "bad name"}))).await.err(400);
    app.root("SharedRecordCreate", json!({"mode": "login", "identity": "nobody"})).await.err(404);
    app.root("SharedRecordCreate", json!({"mode": "bogus", "identity": "x"})).await.err(400);
    app.root("SharedRecordCreate", share(&user, json!({"fields": 5}))).await.err(400);
    app.root("SharedRecordGet", json!({"recorduuid": "not-a-uuid"})).await.err(400);
    assert_eq!(get(&app, &uuid::Uuid::new_v4().to_string()).await.err(404), "shared record not found");

    // Not readable at rest.
    let mut su = superuser(&app).await;
    let blobs: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM shared_records").fetch_all(&mut su).await.unwrap();
    assert_eq!(blobs.len(), 5);
    for b in blobs {
        assert!(!b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
        assert!(!b.windows(3).any(|w| w == b"Ada"));
    }
}

#[tokio::test]
async fn a_shared_record_expires() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "exp", "name": "E"})).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;

    // Default one day, capped at 30 days; the common time syntax.
    let day = create(&app, share(&user, json!({}))).await;
    let t = get(&app, &day).await.ok()["expirationtime"].as_i64().unwrap();
    assert!((now + 86_400 - 5..=now + 86_400 + 60).contains(&t), "{t}");
    let hour = create(&app, share(&user, json!({"finaltime": "1h"}))).await;
    get(&app, &hour).await.ok();
    create(&app, share(&user, json!({"finaltime": "30d"}))).await;
    create(&app, share(&user, json!({"finaltime": now + 3_600}))).await;
    for bad in [json!("31d"), json!("1y"), json!("bogus"), json!(now - 10), json!("0")] {
        app.root("SharedRecordCreate", share(&user, json!({"finaltime": bad}))).await.err(400);
    }

    // Past its time it is not found, whether or not it has been deleted yet.
    let mut su = superuser(&app).await;
    sqlx::query("UPDATE shared_records SET expires_at = $1 WHERE uuid = $2").bind(now - 1).bind(&hour).execute(&mut su).await.unwrap();
    assert_eq!(get(&app, &hour).await.err(404), "shared record not found");
    get(&app, &day).await.ok();

    // A short finaltime, polled with a deadline.
    let short = create(&app, share(&user, json!({"finaltime": "2s"}))).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = get(&app, &short).await;
        if r.code == 404 {
            break;
        }
        r.ok();
        assert!(std::time::Instant::now() < deadline, "shared record did not expire");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn deleting_the_user_deletes_its_shared_records() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "gone", "name": MARKER})).await;
    let other = app.create_user(&app.root_token, None, json!({"login": "stays"})).await;
    let uuid = create(&app, share(&user, json!({"fields": "name"}))).await;
    let kept = create(&app, share(&other, json!({}))).await;
    get(&app, &uuid).await.ok();

    app.root("UserDelete", json!({"mode": "token", "identity": user})).await.ok();
    get(&app, &uuid).await.err(404);
    get(&app, &kept).await.ok();
    let mut su = superuser(&app).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM shared_records").fetch_one(&mut su).await.unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn shared_records_of_another_tenant_are_not_found() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("sha").await;
    let (_, b) = app.create_tenant("shb").await;
    let ua = app.create_user(&a, Some("sha"), json!({"login": "alice", "name": "A"})).await;
    let r = app.call("SharedRecordCreate", Some(&a), Some("sha"), share(&ua, json!({"fields": "name"}))).await;
    let uuid = r.ok()["recorduuid"].as_str().unwrap().to_string();

    app.call("SharedRecordGet", Some(&b), Some("shb"), json!({"recorduuid": uuid})).await.err(404);
    app.call("SharedRecordCreate", Some(&b), Some("shb"), share(&ua, json!({}))).await.err(404);
    get(&app, &uuid).await.err(404);
    let got = app.call("SharedRecordGet", Some(&a), Some("sha"), json!({"recorduuid": uuid})).await;
    assert_eq!(got.ok()["data"], json!({"name": "A"}));
}

#[tokio::test]
async fn shared_record_endpoints_follow_the_role_policy() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("shrole").await;
    let reader = mint(&app, &admin, "shrole", "app-reader").await;
    let writer = mint(&app, &admin, "shrole", "app-writer").await;
    let auditor = mint(&app, &admin, "shrole", "auditor").await;
    let user = app.create_user(&admin, Some("shrole"), json!({"login": "ada", "name": "Ada"})).await;

    app.call("SharedRecordCreate", Some(&reader), Some("shrole"), share(&user, json!({}))).await.err(403);
    let r = app.call("SharedRecordCreate", Some(&writer), Some("shrole"), share(&user, json!({"fields": "name", "partner": "acme"}))).await;
    let uuid = r.ok()["recorduuid"].as_str().unwrap().to_string();
    let got = app.call("SharedRecordGet", Some(&reader), Some("shrole"), json!({"recorduuid": uuid})).await;
    assert_eq!(got.ok()["data"], json!({"name": "Ada"}));
    app.call("SharedRecordGet", Some(&writer), Some("shrole"), json!({"recorduuid": uuid})).await.ok();
    app.call("SharedRecordGet", Some(&auditor), Some("shrole"), json!({"recorduuid": uuid})).await.err(403);
    app.call("SharedRecordGet", None, Some("shrole"), json!({"recorduuid": uuid})).await.err(403);
}

/// A role that may share records but not read app data cannot snapshot app data into a share.
#[tokio::test]
async fn sharing_app_data_needs_the_right_to_read_it() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("sharer").await;
    let call = |ep: &'static str, body: Value| app.call(ep, Some(&admin), Some("sharer"), body);
    let user = app.create_user(&admin, Some("sharer"), json!({"email": "s@sharer.example", "name": "S"})).await;
    call("AppdataCreate", json!({"mode": "token", "identity": user, "appname": "shop", "appdata": {"tier": "gold"}})).await.ok();
    call("RoleCreate", json!({"rolename": "linker"})).await.ok();
    let policy = json!({"Effect": "Allow", "Action": ["SharedRecordCreate"], "Resource": ["shared", "users.profile.name"]});
    call("PolicyCreate", json!({"policyname": "links", "policy": policy})).await.ok();
    call("RoleLinkPolicy", json!({"rolename": "linker", "policyname": "links"})).await.ok();
    let x = call("XTokenCreateForRole", json!({"rolename": "linker"})).await.ok()["xtoken"].as_str().unwrap().to_string();
    let share = |extra: Value| {
        let mut b = json!({"mode": "token", "identity": user, "finaltime": "1h"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    app.call("SharedRecordCreate", Some(&x), Some("sharer"), share(json!({"appname": "shop"}))).await.err(403);
    let ok = app.call("SharedRecordCreate", Some(&x), Some("sharer"), share(json!({}))).await;
    let uuid = ok.ok()["recorduuid"].as_str().unwrap().to_string();
    let got = call("SharedRecordGet", json!({"recorduuid": uuid})).await;
    assert_eq!(got.ok()["data"]["name"], "S");
    assert_eq!(got.ok()["data"]["email"], "***", "the profile snapshot is masked to what the role may read");
}
