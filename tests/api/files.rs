//! Files: per user, encrypted under the user's key, deduplicated by a keyed digest, limited in
//! size, isolated per tenant, gated by role, and gone with the user (with everything else).

use base64::Engine;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const MARKER: &str = "filemarker7c41d9";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn at(token: &str, extra: Value) -> Value {
    let mut body = json!({"mode": "token", "identity": token});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&app.db_url).await.unwrap()
}

async fn create(app: &TestApp, user: &str, name: &str, data: &[u8], mime: &str) -> Value {
    let body = at(user, json!({"filename": name, "filedata": b64(data), "mimetype": mime}));
    app.root("FileCreate", body).await.ok().clone()
}

async fn get_raw(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{}/v2/FileGet", app.base))
        .header("x-bunker-token", &app.root_token)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn files_round_trip_as_base64_and_raw_and_are_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "fa"})).await;
    let content: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let made = create(&app, &user, "scan.bin", &content, "application/pdf").await;
    assert_eq!(made["token"], user.as_str());
    assert_eq!(made["duplicate"], false);
    let uuid = made["fileuuid"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&uuid).is_ok());

    let got = app.root("FileGet", at(&user, json!({"fileuuid": uuid}))).await;
    let got = got.ok();
    assert_eq!(
        (got["filename"].as_str(), got["mimetype"].as_str(), got["size"].as_i64()),
        (Some("scan.bin"), Some("application/pdf"), Some(3000))
    );
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(got["filedata"].as_str().unwrap()).unwrap(), content);
    // By name too.
    let by_name = app.root("FileGet", json!({"mode": "login", "identity": "fa", "filename": "scan.bin"})).await;
    assert_eq!(by_name.ok()["fileuuid"], uuid.as_str());

    // Raw: the bytes themselves, with the file's type.
    let resp = get_raw(&app, at(&user, json!({"fileuuid": uuid, "raw": true}))).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), content);

    // Url-safe base64 without padding is accepted as well.
    let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"\xfb\xff?>");
    let r = app.root("FileCreate", at(&user, json!({"filename": "u.txt", "filedata": urlsafe}))).await;
    let second = r.ok()["fileuuid"].as_str().unwrap().to_string();
    let got = app.root("FileGet", at(&user, json!({"fileuuid": second}))).await;
    assert_eq!(got.ok()["filedata"], b64(b"\xfb\xff?>"));
    assert_eq!(got.ok()["mimetype"], "application/octet-stream");

    let list = app.root("FileListUserFiles", at(&user, json!({}))).await;
    let mut files = list.ok()["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2);
    files.sort_by_key(|f| f["fileuuid"] != uuid.as_str());
    assert_eq!(files[0]["fileuuid"], uuid.as_str());
    assert_eq!(files[0]["filename"], "scan.bin");
    assert_eq!(files[0]["size"], 3000);
    assert!(files[0]["creationtime"].as_i64().unwrap() > 0);
    assert!(files[0]["doublehash"].as_str().unwrap().len() >= 32);
    assert_ne!(files[0]["doublehash"], files[1]["doublehash"]);

    assert_eq!(app.root("FileDelete", at(&user, json!({"fileuuid": uuid}))).await.ok()["token"], user.as_str());
    app.root("FileGet", at(&user, json!({"fileuuid": uuid}))).await.err(404);
    app.root("FileDelete", at(&user, json!({"fileuuid": uuid}))).await.err(404);
    assert_eq!(app.root("FileListUserFiles", at(&user, json!({}))).await.ok()["files"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_content_is_stored_once_per_user() {
    let app = TestApp::spawn().await;
    let a = app.create_user(&app.root_token, None, json!({"login": "da"})).await;
    let b = app.create_user(&app.root_token, None, json!({"login": "db"})).await;
    let first = create(&app, &a, "one.txt", b"same bytes", "text/plain").await;
    let again = create(&app, &a, "two.txt", b"same bytes", "text/plain").await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["fileuuid"], first["fileuuid"]);
    // Another user's identical file is its own.
    let other = create(&app, &b, "one.txt", b"same bytes", "text/plain").await;
    assert_eq!(other["duplicate"], false);
    assert_ne!(other["fileuuid"], first["fileuuid"]);
    let mut su = superuser(&app).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM files").fetch_one(&mut su).await.unwrap();
    assert_eq!(n, 2);
    let list = app.root("FileListUserFiles", at(&a, json!({}))).await;
    assert_eq!(list.ok()["files"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_is_400_and_missing_things_404() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "bad"})).await;
    let big = vec![7u8; 5 * 1024 * 1024 + 1];
    let msg = app.root("FileCreate", at(&user, json!({"filename": "big", "filedata": b64(&big)}))).await.err(400);
    assert!(msg.contains("file too large") && msg.contains("5242880"), "{msg}");
    // Exactly the limit is fine.
    app.root("FileCreate", at(&user, json!({"filename": "max", "filedata": b64(&big[1..])}))).await.ok();
    for data in ["not base64!", "@@@@", "a"] {
        app.root("FileCreate", at(&user, json!({"filename": "x", "filedata": data}))).await.err(400);
    }
    for name in ["", "a/b", "a\u{0}b", &"x".repeat(256)] {
        app.root("FileCreate", at(&user, json!({"filename": name, "filedata": b64(b"x")}))).await.err(400);
    }
    app.root("FileCreate", at(&user, json!({"filedata": b64(b"x")}))).await.err(400);
    app.root("FileCreate", at(&user, json!({"filename": "x"}))).await.err(400);
    app.root("FileCreate", at(&user, json!({"filename": "x", "filedata": b64(b"x"), "slidingtime": "5x"}))).await.err(400);
    app.root("FileCreate", at(&user, json!({"filename": "x", "filedata": b64(b"x"), "mimetype": "bad\ntype"}))).await.err(400);
    app.root("FileGet", at(&user, json!({}))).await.err(400);
    app.root("FileGet", at(&user, json!({"fileuuid": "nope"}))).await.err(400);
    app.root("FileDelete", at(&user, json!({}))).await.err(400);

    let ghost = "00000000-0000-4000-8000-000000000000";
    assert_eq!(app.root("FileCreate", at(ghost, json!({"filename": "x", "filedata": b64(b"x")}))).await.err(404), "user record not found");
    app.root("FileListUserFiles", at(ghost, json!({}))).await.err(404);
    app.root("FileGet", at(&user, json!({"fileuuid": ghost}))).await.err(404);
    app.root("FileGet", at(&user, json!({"filename": "never.txt"}))).await.err(404);
    app.root("FileDelete", at(&user, json!({"fileuuid": ghost}))).await.err(404);
    app.call("FileGet", None, None, at(&user, json!({"fileuuid": ghost}))).await.err(403);
}

#[tokio::test]
async fn expired_files_are_not_returned() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "ex"})).await;
    let made = app.root("FileCreate", at(&user, json!({"filename": "t", "filedata": b64(b"tmp"), "finaltime": "1h"}))).await;
    let uuid = made.ok()["fileuuid"].as_str().unwrap().to_string();
    app.root("FileGet", at(&user, json!({"fileuuid": uuid}))).await.ok();
    let mut su = superuser(&app).await;
    sqlx::query("UPDATE files SET expires_at = 1").execute(&mut su).await.unwrap();
    app.root("FileGet", at(&user, json!({"fileuuid": uuid}))).await.err(404);
    assert_eq!(app.root("FileListUserFiles", at(&user, json!({}))).await.ok()["files"], json!([]));
    // The same content again is a new file, not a duplicate of the expired one.
    let again = app.root("FileCreate", at(&user, json!({"filename": "t", "filedata": b64(b"tmp")}))).await;
    assert_eq!(again.ok()["duplicate"], false);
    assert_ne!(again.ok()["fileuuid"], uuid.as_str());
}

#[tokio::test]
async fn another_tenant_finds_nothing_and_roles_are_enforced() {
    let app = TestApp::spawn().await;
    let (_, admin_a) = app.create_tenant("filea").await;
    let (_, admin_b) = app.create_tenant("fileb").await;
    let a = Some("filea");
    let user = app.create_user(&admin_a, a, json!({"login": "same"})).await;
    let made = app.call("FileCreate", Some(&admin_a), a, at(&user, json!({"filename": "f", "filedata": b64(MARKER.as_bytes())}))).await;
    let uuid = made.ok()["fileuuid"].as_str().unwrap().to_string();
    app.create_user(&admin_b, Some("fileb"), json!({"login": "same"})).await;
    let b = Some("fileb");
    app.call("FileGet", Some(&admin_b), b, at(&user, json!({"fileuuid": uuid}))).await.err(404);
    app.call("FileGet", Some(&admin_b), b, json!({"mode": "login", "identity": "same", "fileuuid": uuid})).await.err(404);
    app.call("FileDelete", Some(&admin_b), b, at(&user, json!({"fileuuid": uuid}))).await.err(404);
    app.call("FileListUserFiles", Some(&admin_b), b, at(&user, json!({}))).await.err(404);

    // app-reader (a role xtoken): reads and lists, never writes.
    let r = app.call("XTokenCreateForRole", Some(&admin_a), a, json!({"rolename": "app-reader"})).await;
    let reader = r.ok()["xtoken"].as_str().unwrap().to_string();
    let got = app.call("FileGet", Some(&reader), a, at(&user, json!({"fileuuid": uuid}))).await;
    assert_eq!(got.ok()["filedata"], b64(MARKER.as_bytes()));
    app.call("FileListUserFiles", Some(&reader), a, at(&user, json!({}))).await.ok();
    app.call("FileCreate", Some(&reader), a, at(&user, json!({"filename": "g", "filedata": b64(b"x")}))).await.err(403);
    app.call("FileDelete", Some(&reader), a, at(&user, json!({"fileuuid": uuid}))).await.err(403);

    // Nothing readable at rest.
    let mut su = superuser(&app).await;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as("SELECT meta, data FROM files").fetch_all(&mut su).await.unwrap();
    assert_eq!(rows.len(), 1);
    let mut blobs: Vec<Vec<u8>> = rows.into_iter().flat_map(|(m, d)| [m, d]).collect();
    blobs.extend(sqlx::query_scalar::<_, Vec<u8>>("SELECT details FROM audit_events").fetch_all(&mut su).await.unwrap());
    for blob in &blobs {
        assert!(memchr::memmem::find(blob, MARKER.as_bytes()).is_none(), "marker readable at rest");
        assert!(memchr::memmem::find(blob, b"\"f\"").is_none(), "file name readable at rest");
    }
}

#[tokio::test]
async fn forgetting_a_user_leaves_nothing_plain_or_decryptable() {
    let app = TestApp::spawn().await;
    let email = format!("{MARKER}@example.com");
    let user = app.create_user(&app.root_token, None, json!({"email": email, "name": MARKER, "login": MARKER})).await;
    let kept = app.create_user(&app.root_token, None, json!({"login": "kept"})).await;
    let by_email = |extra: Value| {
        let mut body = json!({"mode": "email", "identity": email});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    app.root("AppdataCreate", by_email(json!({"appname": "shop", "appdata": {"note": MARKER}}))).await.ok();
    let session = uuid::Uuid::new_v4().to_string();
    app.root("SessionUpsert", by_email(json!({"sessionuuid": session, "sessiondata": {"s": MARKER}}))).await.ok();
    let file = by_email(json!({"filename": format!("{MARKER}.txt"), "filedata": b64(MARKER.as_bytes()), "mimetype": "text/plain"}));
    app.root("FileCreate", file).await.ok();
    app.root("FileCreate", at(&kept, json!({"filename": "k.txt", "filedata": b64(MARKER.as_bytes())}))).await.ok();
    app.root("LegalBasisCreate", json!({"brief": "newsletter"})).await.ok();
    app.root("AgreementAccept", by_email(json!({"brief": "newsletter", "referencecode": MARKER}))).await.ok();
    app.root("SharedRecordCreate", by_email(json!({"fields": "name,email"}))).await.ok();
    let group = app.root("GroupCreate", json!({"groupname": "staff"})).await.ok()["groupid"].as_i64().unwrap();
    app.root("GroupAddUser", by_email(json!({"groupid": group}))).await.ok();
    app.root("UserUpdateRequest", by_email(json!({"profile": {"name": format!("{MARKER}-new")}}))).await.ok();
    app.root("UserGet", by_email(json!({}))).await.ok();

    app.root("UserDelete", json!({"mode": "token", "identity": user})).await.ok();
    // (Looked up by token: a lookup by the old email would itself record that email, as the
    // caller's input, in a new event not bound to any user.)
    app.root("UserGet", at(&user, json!({}))).await.err(404);
    app.root("FileListUserFiles", at(&kept, json!({}))).await.ok();

    // (a) No table holds the marker in plaintext (text columns, or bytes inside bytea).
    let mut su = superuser(&app).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "files"));
    let hex_marker = hex::encode(MARKER.as_bytes());
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t")).fetch_all(&mut su).await.unwrap();
        for row in rows {
            let lower = row.to_lowercase();
            assert!(!lower.contains(MARKER) && !lower.contains(&hex_marker), "{table} holds the marker: {row:.200}");
        }
    }

    // (b) Every event of the user is erased, and no event anywhere decrypts to the marker.
    let bound: Vec<String> =
        sqlx::query_scalar("SELECT uuid FROM audit_events WHERE user_token = $1").bind(&user).fetch_all(&mut su).await.unwrap();
    assert!(bound.len() >= 9, "{}", bound.len());
    for uuid in &bound {
        let ev = app.root("AuditGetEvent", json!({"auditeventuuid": uuid})).await;
        assert_eq!(ev.ok()["erased"], true, "{uuid}");
        assert!(ev.ok()["details"].is_null(), "{uuid}");
    }
    let all: Vec<String> = sqlx::query_scalar("SELECT uuid FROM audit_events").fetch_all(&mut su).await.unwrap();
    for uuid in &all {
        let ev = app.root("AuditGetEvent", json!({"auditeventuuid": uuid})).await;
        assert!(!ev.ok().to_string().to_lowercase().contains(MARKER), "event {uuid} decrypts to the marker: {}", ev.ok());
    }
}

#[tokio::test]
async fn finaltime_takes_a_date_and_reads_m_as_a_month() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "dates"})).await;
    let mut su = superuser(&app).await;
    let final_of = |uuid: Value| {
        sqlx::query_scalar::<_, Option<i64>>("SELECT final_at FROM files WHERE uuid = $1").bind(uuid.as_str().unwrap().to_string())
    };
    // The OpenAPI's own example form: a calendar date, UTC midnight.
    let made = app.root("FileCreate", at(&user, json!({"filename": "dated", "filedata": b64(b"a"), "finaltime": "2099-01-01"}))).await;
    assert_eq!(final_of(made.ok()["fileuuid"].clone()).fetch_one(&mut su).await.unwrap(), Some(4_070_908_800));
    // `12m` is twelve 31-day months, never twelve minutes.
    let now = strongroom::store::now_secs();
    let made = app.root("FileCreate", at(&user, json!({"filename": "year", "filedata": b64(b"b"), "finaltime": "12m"}))).await;
    let at12 = final_of(made.ok()["fileuuid"].clone()).fetch_one(&mut su).await.unwrap().unwrap();
    assert!((at12 - (now + 12 * 31 * 86_400)).abs() <= 5, "{at12}");
    // A past date, an offset zone and an unknown unit are refused, not guessed at.
    for bad in [json!("2020-01-01"), json!("2099-01-01T00:00:00+02:00"), json!("3 fortnights")] {
        let e = app.root("FileCreate", at(&user, json!({"filename": "bad", "filedata": b64(b"c"), "finaltime": bad}))).await.err(400);
        assert!(e.contains("finaltime"), "{e}");
    }
}
