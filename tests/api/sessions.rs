//! Sessions: bound to a user, encrypted under the user's key, expiring (sliding and final),
//! isolated per tenant, gated by role, and gone with the user.

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const MARKER: &str = "SessionMarker-93ab2d";

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

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn upsert(uuid: &str, user: Option<&str>, data: Value, extra: Value) -> Value {
    let mut body = json!({"sessionuuid": uuid, "sessiondata": data});
    if let Some(u) = user {
        body["mode"] = "token".into();
        body["identity"] = u.into();
    }
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&app.db_url).await.unwrap()
}

async fn expires_at(app: &TestApp, uuid: &str) -> Option<i64> {
    let mut su = superuser(app).await;
    sqlx::query_scalar("SELECT expires_at FROM sessions WHERE uuid = $1").bind(uuid).fetch_one(&mut su).await.unwrap()
}

async fn set_expires_at(app: &TestApp, uuid: &str, at: i64) {
    let mut su = superuser(app).await;
    sqlx::query("UPDATE sessions SET expires_at = $2 WHERE uuid = $1").bind(uuid).bind(at).execute(&mut su).await.unwrap();
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn a_session_is_upserted_read_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "sam", "email": "sam@example.com"})).await;
    let (s1, s2) = (new_uuid(), new_uuid());

    app.root("SessionUpsert", upsert(&s1, Some(&user), json!({"cart": [1, 2]}), json!({}))).await.ok();
    let by_email = json!({"sessionuuid": s2, "sessiondata": {"n": 2}, "mode": "email", "identity": "sam@example.com"});
    app.root("SessionUpsert", by_email).await.ok();
    let got = app.root("SessionGet", json!({"sessionuuid": s1})).await;
    assert_eq!(got.ok()["sessiondata"], json!({"cart": [1, 2]}));

    // A later upsert replaces the data; the user need not be named again (but may be).
    app.root("SessionUpsert", upsert(&s1, None, json!({"cart": [3]}), json!({}))).await.ok();
    assert_eq!(app.root("SessionGet", json!({"sessionuuid": s1})).await.ok()["sessiondata"], json!({"cart": [3]}));
    app.root("SessionUpsert", upsert(&s1, Some(&user), json!({"cart": [4]}), json!({}))).await.ok();
    // Upper-case uuids name the same session.
    let upper = app.root("SessionGet", json!({"sessionuuid": s1.to_uppercase()})).await;
    assert_eq!(upper.ok()["sessiondata"], json!({"cart": [4]}));

    let list = app.root("SessionListUserSessions", json!({"mode": "login", "identity": "sam"})).await;
    let rows = list.ok()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    let mut found: Vec<(String, Value)> =
        rows.iter().map(|r| (r["sessionuuid"].as_str().unwrap().to_string(), r["sessiondata"].clone())).collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![(s1.clone(), json!({"cart": [4]})), (s2.clone(), json!({"n": 2}))];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(found, want);

    app.root("SessionDelete", json!({"sessionuuid": s1})).await.ok();
    assert_eq!(app.root("SessionGet", json!({"sessionuuid": s1})).await.err(404), "session not found");
    app.root("SessionDelete", json!({"sessionuuid": s1})).await.err(404);
    let list = app.root("SessionListUserSessions", json!({"mode": "token", "identity": user})).await;
    assert_eq!(list.ok()["rows"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn session_errors_are_answered_in_the_api_shape() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "e1"})).await;
    let other = app.create_user(&app.root_token, None, json!({"login": "e2"})).await;
    let s = new_uuid();

    // A user is named by both halves or not at all.
    app.root("SessionUpsert", upsert(&s, None, json!({"k": 1}), json!({"mode": "token"}))).await.err(400);
    // Bad uuid, bad data, bad times.
    app.root("SessionUpsert", upsert("not-a-uuid", Some(&user), json!({"k": 1}), json!({}))).await.err(400);
    app.root("SessionGet", json!({"sessionuuid": "123"})).await.err(400);
    app.root("SessionDelete", json!({"sessionuuid": ""})).await.err(400);
    for data in [json!("x"), json!([1]), json!(null), json!(5)] {
        app.root("SessionUpsert", upsert(&s, Some(&user), data, json!({}))).await.err(400);
    }
    for extra in
        [json!({"slidingtime": "1x"}), json!({"finaltime": "soon"}), json!({"finaltime": "1500000000"}), json!({"slidingtime": "0"})]
    {
        app.root("SessionUpsert", upsert(&s, Some(&user), json!({"k": 1}), extra)).await.err(400);
    }
    app.root("SessionUpsert", json!({"sessionuuid": s, "mode": "token", "identity": user})).await.err(400);
    app.root("SessionGet", json!({})).await.err(400);
    // Unknown user or session: 404.
    let ghost = "00000000-0000-4000-8000-000000000000";
    app.root("SessionUpsert", upsert(&s, Some(ghost), json!({"k": 1}), json!({}))).await.err(404);
    app.root("SessionGet", json!({"sessionuuid": s})).await.err(404);
    app.root("SessionListUserSessions", json!({"mode": "token", "identity": ghost})).await.err(404);
    // A session cannot move to another user: 409, and it stays where it was.
    app.root("SessionUpsert", upsert(&s, Some(&user), json!({"k": 1}), json!({}))).await.ok();
    app.root("SessionUpsert", upsert(&s, Some(&other), json!({"k": 2}), json!({}))).await.err(409);
    assert_eq!(app.root("SessionGet", json!({"sessionuuid": s})).await.ok()["sessiondata"], json!({"k": 1}));
    let theirs = app.root("SessionListUserSessions", json!({"mode": "token", "identity": other})).await;
    assert_eq!(theirs.ok()["rows"], json!([]));
    // No credential: 403.
    app.call("SessionGet", None, None, json!({"sessionuuid": s})).await.err(403);
}

#[tokio::test]
async fn sessions_expire_by_sliding_and_final_time() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "exp"})).await;
    let (slide, fin, forever) = (new_uuid(), new_uuid(), new_uuid());

    app.root("SessionUpsert", upsert(&slide, Some(&user), json!({"k": 1}), json!({"slidingtime": "1h"}))).await.ok();
    let at = expires_at(&app, &slide).await.unwrap();
    assert!((at - (now() + 3_600)).abs() <= 5, "{at}");
    // Final time caps the sliding window.
    app.root("SessionUpsert", upsert(&fin, Some(&user), json!({"k": 2}), json!({"slidingtime": "1d", "finaltime": "30min"}))).await.ok();
    let at = expires_at(&app, &fin).await.unwrap();
    assert!((at - (now() + 1_800)).abs() <= 5, "{at}");
    app.root("SessionUpsert", upsert(&forever, Some(&user), json!({"k": 3}), json!({}))).await.ok();
    assert_eq!(expires_at(&app, &forever).await, None);
    // An absolute final time is taken as is.
    let when = now() + 7_200;
    app.root("SessionUpsert", upsert(&forever, None, json!({"k": 3}), json!({"finaltime": when}))).await.ok();
    assert_eq!(expires_at(&app, &forever).await, Some(when));
    app.root("SessionUpsert", upsert(&forever, None, json!({"k": 3}), json!({"finaltime": "3600"}))).await.ok();
    assert!((expires_at(&app, &forever).await.unwrap() - (now() + 3_600)).abs() <= 5);

    // A read slides the window forward.
    set_expires_at(&app, &slide, now() + 10).await;
    app.root("SessionGet", json!({"sessionuuid": slide})).await.ok();
    assert!((expires_at(&app, &slide).await.unwrap() - (now() + 3_600)).abs() <= 5);
    // An upsert without times keeps the settings.
    app.root("SessionUpsert", upsert(&slide, None, json!({"k": 9}), json!({}))).await.ok();
    assert!((expires_at(&app, &slide).await.unwrap() - (now() + 3_600)).abs() <= 5);

    // Expired, not yet swept: not found anywhere.
    set_expires_at(&app, &slide, now() - 1).await;
    assert_eq!(app.root("SessionGet", json!({"sessionuuid": slide})).await.err(404), "session not found");
    app.root("SessionDelete", json!({"sessionuuid": slide})).await.err(404);
    // Listing drops it (and deletes it).
    let list = app.root("SessionListUserSessions", json!({"mode": "token", "identity": user})).await;
    let uuids: Vec<&str> = list.ok()["rows"].as_array().unwrap().iter().map(|r| r["sessionuuid"].as_str().unwrap()).collect();
    assert!(!uuids.contains(&slide.as_str()) && uuids.len() == 2, "{uuids:?}");
    let mut su = superuser(&app).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE uuid = $1").bind(&slide).fetch_one(&mut su).await.unwrap();
    assert_eq!(n, 0);
    // An expired session is a new one to an upsert: without a user it is a session of no one.
    set_expires_at(&app, &fin, now() - 1).await;
    app.root("SessionUpsert", upsert(&fin, None, json!({"k": 5}), json!({}))).await.ok();
    let list = app.root("SessionListUserSessions", json!({"mode": "token", "identity": user})).await;
    assert!(!list.ok()["rows"].as_array().unwrap().iter().any(|r| r["sessionuuid"] == fin.as_str()), "no longer the user's");
    app.root("SessionUpsert", upsert(&fin, Some(&user), json!({"k": 5}), json!({}))).await.ok();
    assert_eq!(app.root("SessionGet", json!({"sessionuuid": fin})).await.ok()["sessiondata"], json!({"k": 5}));
}

#[tokio::test]
async fn another_tenant_finds_nothing() {
    let app = TestApp::spawn().await;
    let (_, admin_a) = app.create_tenant("sesa").await;
    let (_, admin_b) = app.create_tenant("sesb").await;
    let (a, b) = (Some("sesa"), Some("sesb"));
    let user_a = app.create_user(&admin_a, a, json!({"login": "same"})).await;
    let user_b = app.create_user(&admin_b, b, json!({"login": "same"})).await;
    let s = new_uuid();
    app.call("SessionUpsert", Some(&admin_a), a, upsert(&s, Some(&user_a), json!({"who": "a"}), json!({}))).await.ok();

    app.call("SessionGet", Some(&admin_b), b, json!({"sessionuuid": s})).await.err(404);
    app.call("SessionDelete", Some(&admin_b), b, json!({"sessionuuid": s})).await.err(404);
    app.call("SessionListUserSessions", Some(&admin_b), b, json!({"mode": "token", "identity": user_a})).await.err(404);
    app.call("SessionUpsert", Some(&admin_b), b, upsert(&s, Some(&user_a), json!({"who": "b"}), json!({}))).await.err(404);
    // The same uuid in B without a user is B's own session of no one.
    app.call("SessionUpsert", Some(&admin_b), b, upsert(&s, None, json!({"who": "b0"}), json!({}))).await.ok();
    assert_eq!(app.call("SessionGet", Some(&admin_b), b, json!({"sessionuuid": s})).await.ok()["sessiondata"], json!({"who": "b0"}));
    // The same uuid in tenant B is B's own session; A's is untouched.
    app.call("SessionUpsert", Some(&admin_b), b, upsert(&s, Some(&user_b), json!({"who": "b"}), json!({}))).await.ok();
    let in_a = app.call("SessionGet", Some(&admin_a), a, json!({"sessionuuid": s})).await;
    assert_eq!(in_a.ok()["sessiondata"], json!({"who": "a"}));
    let in_b = app.call("SessionListUserSessions", Some(&admin_b), b, json!({"mode": "login", "identity": "same"})).await;
    let rows = in_b.ok()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((&rows[0]["sessionuuid"], &rows[0]["sessiondata"]), (&json!(s), &json!({"who": "b"})));
    assert!(rows[0]["when"].as_i64().is_some_and(|w| w > 1_700_000_000), "{rows:?}");
}

#[tokio::test]
async fn roles_are_allowed_and_denied_as_the_policy_says() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("sesroles").await;
    let t = Some("sesroles");
    let user = app.create_user(&admin, t, json!({"login": "r"})).await;
    let writer = mint(&app, &admin, "sesroles", "app-writer").await;
    let reader = mint(&app, &admin, "sesroles", "app-reader").await;
    let dpo = mint(&app, &admin, "sesroles", "dpo").await;
    let s = new_uuid();

    app.call("SessionUpsert", Some(&writer), t, upsert(&s, Some(&user), json!({"k": 1}), json!({}))).await.ok();
    app.call("SessionGet", Some(&reader), t, json!({"sessionuuid": s})).await.ok();
    app.call("SessionListUserSessions", Some(&reader), t, json!({"mode": "token", "identity": user})).await.ok();
    assert_eq!(app.call("SessionUpsert", Some(&reader), t, upsert(&s, None, json!({"k": 2}), json!({}))).await.err(403), "access denied");
    app.call("SessionDelete", Some(&reader), t, json!({"sessionuuid": s})).await.err(403);
    app.call("SessionGet", Some(&dpo), t, json!({"sessionuuid": s})).await.err(403);
    assert_eq!(app.call("SessionGet", Some(&admin), t, json!({"sessionuuid": s})).await.ok()["sessiondata"], json!({"k": 1}));
    app.call("SessionDelete", Some(&writer), t, json!({"sessionuuid": s})).await.ok();
}

#[tokio::test]
async fn nothing_is_readable_at_rest_and_calls_are_audited_against_the_user() {
    let app = TestApp::spawn().await;
    let (tid, admin) = app.create_tenant("sesrest").await;
    let t = Some("sesrest");
    let user = app.create_user(&admin, t, json!({"login": "rest"})).await;
    let s = new_uuid();
    app.call("SessionUpsert", Some(&admin), t, upsert(&s, Some(&user), json!({"secret": MARKER}), json!({}))).await.ok();
    app.call("SessionGet", Some(&admin), t, json!({"sessionuuid": s})).await.ok();

    let mut su = superuser(&app).await;
    let mut blobs: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM sessions").fetch_all(&mut su).await.unwrap();
    blobs.extend(sqlx::query_scalar::<_, Vec<u8>>("SELECT details FROM audit_events").fetch_all(&mut su).await.unwrap());
    assert!(!blobs.is_empty());
    for b in &blobs {
        assert!(memchr::memmem::find(b, MARKER.as_bytes()).is_none(), "marker readable at rest");
    }
    let mut tx = app.db.tenant_tx(tid).await.unwrap();
    let bound: Vec<Option<String>> =
        sqlx::query_scalar("SELECT user_token FROM audit_events WHERE event_type IN ('SessionUpsert', 'SessionGet') AND outcome = 'ok'")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    assert_eq!(bound, vec![Some(user.clone()), Some(user.clone())]);
}

#[tokio::test]
async fn deleting_the_user_deletes_its_sessions() {
    let app = TestApp::spawn().await;
    let gone = app.create_user(&app.root_token, None, json!({"login": "gone"})).await;
    let kept = app.create_user(&app.root_token, None, json!({"login": "kept"})).await;
    let (g1, g2, k1) = (new_uuid(), new_uuid(), new_uuid());
    for (s, u) in [(&g1, &gone), (&g2, &gone), (&k1, &kept)] {
        app.root("SessionUpsert", upsert(s, Some(u), json!({"k": 1}), json!({}))).await.ok();
    }
    app.root("UserDelete", json!({"mode": "token", "identity": gone})).await.ok();

    let mut su = superuser(&app).await;
    let left: Vec<String> = sqlx::query_scalar("SELECT uuid FROM sessions").fetch_all(&mut su).await.unwrap();
    assert_eq!(left, vec![k1.clone()]);
    app.root("SessionGet", json!({"sessionuuid": g1})).await.err(404);
    app.root("SessionGet", json!({"sessionuuid": k1})).await.ok();
}

/// Pro's SessionUpsert with only a uuid, data and times: a session before anyone signs in.
#[tokio::test]
async fn a_session_of_no_user_is_kept_encrypted_and_moves_to_a_user_at_sign_in() {
    let app = TestApp::spawn().await;
    let s = new_uuid();
    app.root("SessionUpsert", upsert(&s, None, json!({"cart": MARKER}), json!({"slidingtime": "1h"}))).await.ok();
    assert_eq!(app.root("SessionGet", json!({"sessionuuid": s})).await.ok()["sessiondata"], json!({"cart": MARKER}));
    let at = expires_at(&app, &s).await.unwrap();
    assert!((at - (now() + 3_600)).abs() <= 5, "{at}");
    let mut su = superuser(&app).await;
    let (data, owner): (Vec<u8>, Option<i64>) =
        sqlx::query_as("SELECT data, user_id FROM sessions WHERE uuid = $1").bind(&s).fetch_one(&mut su).await.unwrap();
    assert!(owner.is_none());
    assert!(!String::from_utf8_lossy(&data).contains(MARKER), "encrypted at rest");
    // An update keeps it no one's.
    app.root("SessionUpsert", upsert(&s, None, json!({"cart": 2}), json!({}))).await.ok();
    let user = app.create_user(&app.root_token, None, json!({"login": "later", "email": "later@example.com"})).await;
    // Sign-in: naming the user moves the session to the user's key, and then to another user is refused.
    app.root("SessionUpsert", upsert(&s, Some(&user), json!({"cart": 3}), json!({}))).await.ok();
    let list = app.root("SessionListUserSessions", json!({"mode": "token", "identity": user})).await;
    assert_eq!(list.ok()["rows"][0]["sessiondata"], json!({"cart": 3}));
    let owner: Option<i64> = sqlx::query_scalar("SELECT user_id FROM sessions WHERE uuid = $1").bind(&s).fetch_one(&mut su).await.unwrap();
    assert!(owner.is_some());
    let other = app.create_user(&app.root_token, None, json!({"login": "other"})).await;
    app.root("SessionUpsert", upsert(&s, Some(&other), json!({"cart": 4}), json!({}))).await.err(409);
    // Forgetting the user forgets it.
    app.root("UserDelete", json!({"mode": "token", "identity": user})).await.ok();
    app.root("SessionGet", json!({"sessionuuid": s})).await.err(404);
}
