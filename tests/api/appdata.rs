//! App data: per user and app name, encrypted under the user's key, versioned, isolated per
//! tenant, gated by role, and gone with the user.

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const MARKER: &str = "AppdataMarker-7f3c1e";

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

fn at(token: &str, appname: &str, extra: Value) -> Value {
    let mut body = json!({"mode": "token", "identity": token, "appname": appname});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&app.db_url).await.unwrap()
}

#[tokio::test]
async fn appdata_is_created_read_merged_versioned_and_deleted() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "ada"})).await;
    let v1 = json!({"theme": "dark", "count": 1, "nested": {"a": 1}});

    app.root("AppdataCreate", at(&user, "shop", json!({"appdata": v1}))).await.ok();
    let got = app.root("AppdataGet", at(&user, "shop", json!({}))).await;
    assert_eq!(got.ok()["appdata"], v1);
    assert_eq!(got.ok()["version"], 1);

    // RFC 7396 merge: sent fields replace, null removes, others stay; a new version.
    app.root("AppdataUpdate", at(&user, "shop", json!({"appdata": {"count": 2, "theme": null, "nested": {"b": 2}}}))).await.ok();
    let v2 = json!({"count": 2, "nested": {"a": 1, "b": 2}});
    let got = app.root("AppdataGet", at(&user, "shop", json!({}))).await;
    assert_eq!(got.ok()["appdata"], v2);
    assert_eq!(got.ok()["version"], 2);
    let old = app.root("AppdataGet", at(&user, "shop", json!({"version": 1}))).await;
    assert_eq!(old.ok()["appdata"], v1);
    let old = app.root("AppdataGet", at(&user, "shop", json!({"version": "2"}))).await;
    assert_eq!(old.ok()["appdata"], v2);

    // An update that changes nothing stores no version.
    app.root("AppdataUpdate", at(&user, "shop", json!({"appdata": {"count": 2}}))).await.ok();
    let versions = app.root("AppdataListVersions", at(&user, "shop", json!({}))).await;
    let versions = versions.ok()["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[1]["version"], 2);
    for v in &versions {
        let md5 = v["md5"].as_str().unwrap();
        assert!(md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit()), "{md5}");
        assert!(v["optime"].as_i64().unwrap() > 0);
    }
    assert_ne!(versions[0]["md5"], versions[1]["md5"]);

    // Delete removes the data and its versions.
    app.root("AppdataDelete", at(&user, "shop", json!({}))).await.ok();
    assert_eq!(app.root("AppdataGet", at(&user, "shop", json!({}))).await.err(404), "app data not found");
    app.root("AppdataListVersions", at(&user, "shop", json!({}))).await.err(404);
    let mut su = superuser(&app).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM appdata_versions").fetch_one(&mut su).await.unwrap();
    assert_eq!(left, 0);
    // And it can be created again from version 1.
    app.root("AppdataCreate", at(&user, "shop", json!({"appdata": {"x": 1}}))).await.ok();
    assert_eq!(app.root("AppdataGet", at(&user, "shop", json!({}))).await.ok()["version"], 1);
}

#[tokio::test]
async fn appdata_is_found_by_any_lookup_mode() {
    let app = TestApp::spawn().await;
    app.create_user(&app.root_token, None, json!({"login": "lin", "email": "lin@example.com"})).await;
    let body = json!({"mode": "email", "identity": "lin@example.com", "appname": "crm", "appdata": {"tier": "gold"}});
    app.root("AppdataCreate", body).await.ok();
    let got = app.root("AppdataGet", json!({"mode": "login", "identity": "lin", "appname": "crm"})).await;
    assert_eq!(got.ok()["appdata"]["tier"], "gold");
}

#[tokio::test]
async fn app_names_are_listed_per_user_and_per_tenant() {
    let app = TestApp::spawn().await;
    let a = app.create_user(&app.root_token, None, json!({"login": "a"})).await;
    let b = app.create_user(&app.root_token, None, json!({"login": "b"})).await;
    assert_eq!(app.root("AppdataListAppNames", json!({})).await.ok()["apps"], json!([]));
    for (user, name) in [(&a, "shop"), (&a, "crm"), (&b, "shop"), (&b, "game.v2")] {
        app.root("AppdataCreate", at(user, name, json!({"appdata": {"k": 1}}))).await.ok();
    }
    let mine = app.root("AppdataListUserAppNames", json!({"mode": "token", "identity": a})).await;
    assert_eq!(mine.ok()["apps"], json!(["crm", "shop"]));
    let none = app.create_user(&app.root_token, None, json!({"login": "c"})).await;
    let empty = app.root("AppdataListUserAppNames", json!({"mode": "token", "identity": none})).await;
    assert_eq!(empty.ok()["apps"], json!([]));
    let all = app.root("AppdataListAppNames", json!({})).await;
    assert_eq!(all.ok()["apps"], json!(["crm", "game.v2", "shop"]));
    app.root("AppdataListUserAppNames", json!({"mode": "login", "identity": "nobody"})).await.err(404);
}

#[tokio::test]
async fn appdata_errors_are_answered_in_the_api_shape() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "err"})).await;
    app.root("AppdataCreate", at(&user, "shop", json!({"appdata": {"k": 1}}))).await.ok();

    // Already there: 409; missing: 404.
    app.root("AppdataCreate", at(&user, "shop", json!({"appdata": {"k": 2}}))).await.err(409);
    app.root("AppdataUpdate", at(&user, "nope", json!({"appdata": {"k": 2}}))).await.err(404);
    app.root("AppdataDelete", at(&user, "nope", json!({}))).await.err(404);
    app.root("AppdataGet", at(&user, "nope", json!({}))).await.err(404);
    app.root("AppdataGet", at(&user, "shop", json!({"version": 9}))).await.err(404);
    app.root("AppdataGet", at(&user, "shop", json!({"version": 0}))).await.err(404);
    let ghost = "00000000-0000-4000-8000-000000000000";
    assert_eq!(app.root("AppdataCreate", at(ghost, "shop", json!({"appdata": {"k": 1}}))).await.err(404), "user record not found");

    // Bad input: 400.
    for appdata in [json!({}), json!([1]), json!("x"), json!(null), json!(3)] {
        app.root("AppdataCreate", at(&user, "other", json!({"appdata": appdata}))).await.err(400);
        app.root("AppdataUpdate", at(&user, "shop", json!({"appdata": appdata}))).await.err(400);
    }
    for name in ["", "has space", "a/b", &"x".repeat(65)] {
        app.root("AppdataCreate", at(&user, name, json!({"appdata": {"k": 1}}))).await.err(400);
        app.root("AppdataGet", at(&user, name, json!({}))).await.err(400);
    }
    app.root("AppdataCreate", json!({"mode": "token", "identity": user, "appdata": {"k": 1}})).await.err(400);
    app.root("AppdataCreate", json!({"mode": "token", "identity": user, "appname": "x"})).await.err(400);
    app.root("AppdataGet", json!({"mode": "shoe", "identity": user, "appname": "shop"})).await.err(400);
    // An update that would leave nothing is refused; the data stays.
    app.root("AppdataUpdate", at(&user, "shop", json!({"appdata": {"k": null}}))).await.err(400);
    assert_eq!(app.root("AppdataGet", at(&user, "shop", json!({}))).await.ok()["appdata"], json!({"k": 1}));

    // The DPO-request variant files a request instead (tests/api/requests.rs); a missing app is 404.
    app.root("AppdataUpdateRequest", at(&user, "nope", json!({"appdata": {"k": 2}}))).await.err(404);
    // No credential: 403.
    app.call("AppdataGet", None, None, at(&user, "shop", json!({}))).await.err(403);
}

#[tokio::test]
async fn another_tenant_finds_nothing() {
    let app = TestApp::spawn().await;
    let (_, admin_a) = app.create_tenant("appa").await;
    let (_, admin_b) = app.create_tenant("appb").await;
    let user = app.create_user(&admin_a, Some("appa"), json!({"login": "shared-login"})).await;
    app.call("AppdataCreate", Some(&admin_a), Some("appa"), at(&user, "shop", json!({"appdata": {"k": MARKER}}))).await.ok();
    // Tenant B has a user with the same login, and no app data.
    app.create_user(&admin_b, Some("appb"), json!({"login": "shared-login"})).await;

    for ep in ["AppdataGet", "AppdataListVersions", "AppdataDelete"] {
        app.call(ep, Some(&admin_b), Some("appb"), at(&user, "shop", json!({}))).await.err(404);
    }
    app.call("AppdataUpdate", Some(&admin_b), Some("appb"), at(&user, "shop", json!({"appdata": {"k": 1}}))).await.err(404);
    app.call("AppdataCreate", Some(&admin_b), Some("appb"), at(&user, "shop", json!({"appdata": {"k": 1}}))).await.err(404);
    app.call("AppdataListUserAppNames", Some(&admin_b), Some("appb"), json!({"mode": "token", "identity": user})).await.err(404);
    let by_login = json!({"mode": "login", "identity": "shared-login", "appname": "shop"});
    app.call("AppdataGet", Some(&admin_b), Some("appb"), by_login).await.err(404);
    let names = app.call("AppdataListAppNames", Some(&admin_b), Some("appb"), json!({})).await;
    assert_eq!(names.ok()["apps"], json!([]));
    // Tenant A still has it, untouched.
    let got = app.call("AppdataGet", Some(&admin_a), Some("appa"), at(&user, "shop", json!({}))).await;
    assert_eq!(got.ok()["appdata"]["k"], MARKER);
}

#[tokio::test]
async fn roles_are_allowed_and_denied_as_the_policy_says() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("approles").await;
    let t = Some("approles");
    let user = app.create_user(&admin, t, json!({"login": "r"})).await;
    let writer = mint(&app, &admin, "approles", "app-writer").await;
    let reader = mint(&app, &admin, "approles", "app-reader").await;
    let auditor = mint(&app, &admin, "approles", "auditor").await;

    // app-writer: the whole family.
    app.call("AppdataCreate", Some(&writer), t, at(&user, "shop", json!({"appdata": {"k": 1}}))).await.ok();
    app.call("AppdataUpdate", Some(&writer), t, at(&user, "shop", json!({"appdata": {"k": 2}}))).await.ok();
    // app-reader: reads and lists, never writes.
    app.call("AppdataGet", Some(&reader), t, at(&user, "shop", json!({}))).await.ok();
    app.call("AppdataListVersions", Some(&reader), t, at(&user, "shop", json!({}))).await.ok();
    app.call("AppdataListAppNames", Some(&reader), t, json!({})).await.ok();
    app.call("AppdataListUserAppNames", Some(&reader), t, json!({"mode": "token", "identity": user})).await.ok();
    assert_eq!(app.call("AppdataCreate", Some(&reader), t, at(&user, "x", json!({"appdata": {"k": 1}}))).await.err(403), "access denied");
    app.call("AppdataUpdate", Some(&reader), t, at(&user, "shop", json!({"appdata": {"k": 3}}))).await.err(403);
    app.call("AppdataDelete", Some(&reader), t, at(&user, "shop", json!({}))).await.err(403);
    // auditor: none of it.
    app.call("AppdataGet", Some(&auditor), t, at(&user, "shop", json!({}))).await.err(403);
    app.call("AppdataListAppNames", Some(&auditor), t, json!({})).await.err(403);
    // The data is as the writer left it.
    let got = app.call("AppdataGet", Some(&admin), t, at(&user, "shop", json!({}))).await;
    assert_eq!(got.ok()["appdata"], json!({"k": 2}));
}

#[tokio::test]
async fn nothing_is_readable_at_rest_and_calls_are_audited_against_the_user() {
    let app = TestApp::spawn().await;
    let (tid, admin) = app.create_tenant("apprest").await;
    let t = Some("apprest");
    let user = app.create_user(&admin, t, json!({"login": "rest"})).await;
    app.call("AppdataCreate", Some(&admin), t, at(&user, "vault", json!({"appdata": {"secret": MARKER}}))).await.ok();
    let update = json!({"appdata": {"secret": format!("{MARKER}-2"), "more": MARKER}});
    app.call("AppdataUpdate", Some(&admin), t, at(&user, "vault", update)).await.ok();

    let mut su = superuser(&app).await;
    let mut blobs: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM appdata").fetch_all(&mut su).await.unwrap();
    blobs.extend(sqlx::query_scalar::<_, Vec<u8>>("SELECT data FROM appdata_versions").fetch_all(&mut su).await.unwrap());
    blobs.extend(sqlx::query_scalar::<_, Vec<u8>>("SELECT details FROM audit_events").fetch_all(&mut su).await.unwrap());
    assert!(blobs.len() >= 4);
    for b in &blobs {
        assert!(memchr::memmem::find(b, MARKER.as_bytes()).is_none(), "marker readable at rest");
    }
    // Events of the family are bound to the user, so their details die with the user.
    let mut tx = app.db.tenant_tx(tid).await.unwrap();
    let bound: Vec<Option<String>> =
        sqlx::query_scalar("SELECT user_token FROM audit_events WHERE event_type IN ('AppdataCreate', 'AppdataUpdate') AND outcome = 'ok'")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    assert_eq!(bound, vec![Some(user.clone()), Some(user.clone())]);
}

#[tokio::test]
async fn deleting_the_user_deletes_its_app_data() {
    let app = TestApp::spawn().await;
    let gone = app.create_user(&app.root_token, None, json!({"login": "gone"})).await;
    let kept = app.create_user(&app.root_token, None, json!({"login": "kept"})).await;
    for user in [&gone, &kept] {
        app.root("AppdataCreate", at(user, "shop", json!({"appdata": {"k": 1}}))).await.ok();
        app.root("AppdataUpdate", at(user, "shop", json!({"appdata": {"k": 2}}))).await.ok();
    }
    app.root("UserDelete", json!({"mode": "token", "identity": gone})).await.ok();

    let mut su = superuser(&app).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM appdata").fetch_one(&mut su).await.unwrap();
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM appdata_versions").fetch_one(&mut su).await.unwrap();
    assert_eq!((rows, versions), (1, 1), "only the kept user's app data remains");
    app.root("AppdataGet", at(&gone, "shop", json!({}))).await.err(404);
    assert_eq!(app.root("AppdataGet", at(&kept, "shop", json!({}))).await.ok()["appdata"]["k"], 2);
    assert_eq!(app.root("AppdataListAppNames", json!({})).await.ok()["apps"], json!(["shop"]));
}
