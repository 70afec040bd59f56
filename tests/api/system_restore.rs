//! The soft-delete window: SystemDeleteUserProfiles keeps the record (absent to every lookup,
//! its identity still reserved) for the restore window, SystemRestoreUserProfile brings it back
//! (the main tenant's root only, behind a fresh unlock), UserDelete stays a hard delete, and
//! the sweeper purges what is past the window. Waits poll a condition with a deadline.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

async fn unlock(app: &TestApp, token: &str, tenant: Option<&str>) -> String {
    app.call("BulkListUnlock", Some(token), tenant, json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string()
}

async fn root_unlock(app: &TestApp) -> String {
    unlock(app, &app.root_token.clone(), None).await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut su = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut su).await.unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

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

async fn get(app: &TestApp, admin: &str, tenant: &str, token: &str) -> Reply {
    app.call("UserGet", Some(admin), Some(tenant), json!({"mode": "token", "identity": token})).await
}

#[tokio::test]
async fn a_system_deleted_user_is_absent_then_restored_with_the_same_profile() {
    let app = TestApp::spawn().await;
    let (idb, b) = app.create_tenant("rsb").await;
    let profile = json!({"email": "back@example.com", "login": "back", "name": "Back Again"});
    let user = app.create_user(&b, Some("rsb"), profile.clone()).await;
    app.call("UserUpdate", Some(&b), Some("rsb"), json!({"mode": "token", "identity": user, "profile": {"name": "Back Twice"}})).await.ok();
    let before = get(&app, &b, "rsb", &user).await.ok()["profile"].clone();
    assert_eq!(before["name"], "Back Twice");

    let u = root_unlock(&app).await;
    let del = json!({"mode": "email", "identity": "back@example.com", "unlockuuid": u, "tenantname": "rsb"});
    assert_eq!(app.root("SystemDeleteUserProfiles", del).await.ok()["total"], 1);

    // Absent to every lookup, but the row (and its identity) is kept.
    get(&app, &b, "rsb", &user).await.err(404);
    app.call("UserGet", Some(&b), Some("rsb"), json!({"mode": "email", "identity": "back@example.com"})).await.err(404);
    let search = json!({"mode": "email", "identity": "back@example.com", "unlockuuid": u});
    assert_eq!(app.root("SystemGetUserProfiles", search).await.ok()["total"], 0);
    assert_eq!(count(&app, &format!("SELECT count(*) FROM users WHERE token = '{user}' AND deleted_at IS NOT NULL")).await, 1);
    // The identity stays reserved while the user can be restored.
    let dup = app.call("UserCreate", Some(&b), Some("rsb"), json!({"profile": {"email": "back@example.com"}})).await;
    dup.err(409);

    let r = app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u, "tenantid": idb})).await;
    let body = r.ok();
    assert_eq!(body["result"], "restored");
    assert_eq!(body["token"], user.as_str());
    assert_eq!(body["profile"], before);

    let after = get(&app, &b, "rsb", &user).await;
    assert_eq!(after.ok()["profile"], before);
    app.call("UserGet", Some(&b), Some("rsb"), json!({"mode": "login", "identity": "back"})).await.ok();

    // Restored is live again: a second restore finds nothing soft-deleted.
    app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u, "tenantid": idb})).await.err(404);
    let report = strongroom::audit::verify(&app.db).await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}

#[tokio::test]
async fn restore_finds_the_tenant_by_token_or_name_and_404s_elsewhere() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("rta").await;
    app.create_tenant("rtb").await;
    let user = app.create_user(&a, Some("rta"), json!({"login": "tok", "name": "T"})).await;
    let u = root_unlock(&app).await;
    app.root("SystemDeleteUserProfiles", json!({"mode": "token", "identity": user, "unlockuuid": u})).await.ok();

    // The wrong tenant, or a tenant that does not exist: 404.
    app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u, "tenantname": "rtb"})).await.err(404);
    app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u, "tenantname": "nope"})).await.err(404);
    // No tenant named: whichever holds the token.
    let r = app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u})).await;
    assert_eq!(r.ok()["profile"]["name"], "T");
    get(&app, &a, "rta", &user).await.ok();
}

#[tokio::test]
async fn restore_of_an_unknown_or_live_token_is_404() {
    let app = TestApp::spawn().await;
    let u = root_unlock(&app).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    app.root("SystemRestoreUserProfile", json!({"token": unknown, "unlockuuid": u})).await.err(404);
    let live = app.create_user(&app.root_token.clone(), None, json!({"login": "alive"})).await;
    app.root("SystemRestoreUserProfile", json!({"token": live, "unlockuuid": u})).await.err(404);
    app.root("SystemRestoreUserProfile", json!({"token": " ", "unlockuuid": u})).await.err(400);
}

#[tokio::test]
async fn restore_is_root_only_and_needs_a_live_unlock() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("rra").await;
    let user = app.create_user(&a, Some("rra"), json!({"login": "guarded"})).await;
    let u = root_unlock(&app).await;
    app.root("SystemDeleteUserProfiles", json!({"mode": "token", "identity": user, "unlockuuid": u})).await.ok();

    let ua = unlock(&app, &a, Some("rra")).await;
    app.call("SystemRestoreUserProfile", Some(&a), Some("rra"), json!({"token": user, "unlockuuid": ua})).await.err(403);
    app.call("SystemRestoreUserProfile", None, None, json!({"token": user, "unlockuuid": u})).await.err(403);
    app.root("SystemRestoreUserProfile", json!({"token": user})).await.err(400);
    // An unknown unlock uuid is refused as require_unlock refuses it everywhere.
    app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": uuid::Uuid::new_v4().to_string()})).await.err(403);
    // None of those restored it.
    get(&app, &a, "rra", &user).await.err(404);
    app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u})).await.ok();
}

#[tokio::test]
async fn user_delete_stays_a_hard_delete_that_cannot_be_restored() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("rha").await;
    let user = app.create_user(&a, Some("rha"), json!({"login": "forgotten", "email": "forget@example.com"})).await;
    app.call("UserDelete", Some(&a), Some("rha"), json!({"mode": "token", "identity": user})).await.ok();
    assert_eq!(count(&app, &format!("SELECT count(*) FROM users WHERE token = '{user}'")).await, 0);
    let u = root_unlock(&app).await;
    app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u})).await.err(404);
    // The identity is free again at once.
    app.create_user(&a, Some("rha"), json!({"email": "forget@example.com"})).await;
}

#[tokio::test]
async fn the_sweeper_purges_soft_deleted_users_past_the_window_only() {
    let app = TestApp::spawn_configured(|c| c.sweep_interval_ms = 100).await;
    let (_, a) = app.create_tenant("rpa").await;
    let old = app.create_user(&a, Some("rpa"), json!({"login": "old", "email": "old@example.com"})).await;
    let recent = app.create_user(&a, Some("rpa"), json!({"login": "recent"})).await;
    let u = root_unlock(&app).await;
    for t in [&old, &recent] {
        app.root("SystemDeleteUserProfiles", json!({"mode": "token", "identity": t, "unlockuuid": u})).await.ok();
    }
    // Soft-deleted long before the (default, 30-day) window.
    let mut su = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::query("UPDATE users SET deleted_at = $2 WHERE token = $1").bind(&old).bind(now() - 365 * 86_400).execute(&mut su).await.unwrap();

    app.state.start_sweeper();
    wait_for(15, "sweeper to purge the old soft-deleted user", || async {
        count(&app, &format!("SELECT count(*) FROM users WHERE token = '{old}'")).await == 0
    })
    .await;
    let purged = count(&app, &format!("SELECT count(*) FROM audit_events WHERE event_type = 'UserPurged' AND user_token = '{old}'")).await;
    assert_eq!(purged, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM user_index i WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = i.user_id)").await, 0);
    app.root("SystemRestoreUserProfile", json!({"token": old, "unlockuuid": u})).await.err(404);
    // Its identity is free again.
    app.create_user(&a, Some("rpa"), json!({"email": "old@example.com"})).await;

    // The recent one is still inside the window and comes back.
    assert_eq!(count(&app, &format!("SELECT count(*) FROM users WHERE token = '{recent}'")).await, 1);
    let r = app.root("SystemRestoreUserProfile", json!({"token": recent, "unlockuuid": u})).await;
    assert_eq!(r.ok()["profile"]["login"], Value::from("recent"));
    let report = strongroom::audit::verify(&app.db).await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}

/// The right to be forgotten reaches a record an operator soft-deleted: UserDelete by token
/// removes it for good at once, and it can no longer be restored.
#[tokio::test]
async fn user_delete_forgets_a_soft_deleted_user_at_once() {
    let app = TestApp::spawn().await;
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": "soft-forget@example.com"})).await;
    let u = app.root("BulkListUnlock", json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string();
    app.root("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "soft-forget@example.com", "unlockuuid": u})).await.ok();
    app.root("UserGet", json!({"mode": "token", "identity": token})).await.err(404);
    app.root("UserDelete", json!({"mode": "token", "identity": token})).await.ok();
    let u = app.root("BulkListUnlock", json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string();
    app.root("SystemRestoreUserProfile", json!({"token": token, "unlockuuid": u, "tenantid": 1})).await.err(404);
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE token = $1").bind(&token).fetch_one(&mut su).await.unwrap();
    assert_eq!(n, 0);
}

/// A soft-deleted user's requests are as absent as the user and come back with it; its sessions
/// and shared records (access handles) are deleted with the soft delete.
#[tokio::test]
async fn a_soft_deleted_users_requests_are_absent_until_restored() {
    let app = TestApp::spawn().await;
    let (idb, b) = app.create_tenant("rsoft").await;
    let call = |ep: &'static str, body: Value| app.call(ep, Some(&b), Some("rsoft"), body);
    let user = app.create_user(&b, Some("rsoft"), json!({"email": "hang@example.com", "name": "Hang"})).await;
    let sid = uuid::Uuid::new_v4().to_string();
    call("SessionUpsert", json!({"sessionuuid": sid, "sessiondata": {"cart": 1}, "mode": "token", "identity": user})).await.ok();
    let req = call("UserDeleteRequest", json!({"mode": "token", "identity": user})).await;
    let req = req.ok()["requestuuid"].as_str().unwrap().to_string();
    let listed = |u: String| call("BulkListAllUserRequests", json!({"unlockuuid": u}));
    assert_eq!(listed(unlock(&app, &b, Some("rsoft")).await).await.ok()["total"], 1);

    let u = root_unlock(&app).await;
    let del = json!({"mode": "token", "identity": user, "unlockuuid": u, "tenantname": "rsoft"});
    assert_eq!(app.root("SystemDeleteUserProfiles", del).await.ok()["total"], 1);
    call("SessionGet", json!({"sessionuuid": sid})).await.err(404);
    call("UserRequestGet", json!({"requestuuid": req})).await.err(404);
    call("UserRequestApprove", json!({"requestuuid": req})).await.err(404);
    let all = listed(unlock(&app, &b, Some("rsoft")).await).await;
    assert_eq!((all.ok()["total"].clone(), all.body["rows"].clone()), (json!(0), json!([])));

    let r = app.root("SystemRestoreUserProfile", json!({"token": user, "unlockuuid": u, "tenantid": idb})).await;
    assert_eq!(r.ok()["result"], "restored");
    assert_eq!(call("UserRequestGet", json!({"requestuuid": req})).await.ok()["request"]["status"], "pending");
    assert_eq!(listed(unlock(&app, &b, Some("rsoft")).await).await.ok()["total"], 1);
    call("SessionGet", json!({"sessionuuid": sid})).await.err(404);
}

/// A user past its final time is gone for every reader at once, also through the handles that
/// hang off it (a session without its own expiry, a shared record), before any sweep runs (this
/// app runs no sweeper).
#[tokio::test]
async fn an_expired_users_sessions_and_shared_records_are_absent_before_the_sweep() {
    let app = TestApp::spawn().await;
    let (_, b) = app.create_tenant("rexp").await;
    let call = |ep: &'static str, body: Value| app.call(ep, Some(&b), Some("rexp"), body);
    let r = call("UserCreate", json!({"profile": {"email": "brief@example.com", "name": "Brief"}, "finaltime": "2s"})).await;
    let user = r.ok()["token"].as_str().unwrap().to_string();
    let sid = uuid::Uuid::new_v4().to_string();
    call("SessionUpsert", json!({"sessionuuid": sid, "sessiondata": {"cart": 1}, "mode": "token", "identity": user})).await.ok();
    let rec = call("SharedRecordCreate", json!({"mode": "token", "identity": user, "fields": "name", "finaltime": "1h"})).await;
    let rec = rec.ok()["recorduuid"].as_str().unwrap().to_string();
    call("SessionGet", json!({"sessionuuid": sid})).await.ok();
    call("SharedRecordGet", json!({"recorduuid": rec})).await.ok();
    let expires = now() + 2;
    wait_for(10, "the user's final time", || async { now() > expires }).await;
    get(&app, &b, "rexp", &user).await.err(404);
    call("SessionGet", json!({"sessionuuid": sid})).await.err(404);
    call("SharedRecordGet", json!({"recorduuid": rec})).await.err(404);
    assert_eq!(count(&app, &format!("SELECT count(*) FROM sessions WHERE uuid = '{sid}'")).await, 1, "not swept yet");
}
