//! Requests the vendor's SDKs send and answers they read (issue 16, items 2 and 3): fields the
//! SDKs leave out, names in place of ids, file tags, and the answer fields they expect.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;

async fn unlock(app: &TestApp) -> String {
    app.root("BulkListUnlock", json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string()
}

fn file(user: &str, name: &str, data: &[u8], tags: Value) -> Value {
    json!({"mode": "token", "identity": user, "filename": name,
           "filedata": base64::engine::general_purpose::STANDARD.encode(data), "tags": tags})
}

fn names(rows: &Value) -> Vec<String> {
    let mut v: Vec<String> = rows.as_array().unwrap().iter().map(|r| r["filename"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn file_tags_are_stored_shown_replaced_and_filtered() {
    let app = TestApp::spawn().await;
    let ada = app.create_user(&app.root_token, None, json!({"login": "ada"})).await;
    let bob = app.create_user(&app.root_token, None, json!({"login": "bob"})).await;
    let id = app.root("FileCreate", file(&ada, "passport.pdf", b"p", json!(["KYC", "id", "kyc"]))).await.ok()["fileuuid"].clone();
    app.root("FileCreate", file(&ada, "invoice.pdf", b"i", json!("billing, 2026"))).await.ok();
    app.root("FileCreate", file(&bob, "licence.pdf", b"l", json!(["kyc"]))).await.ok();

    // Lowercased and de-duplicated, in every file answer.
    let got = app.root("FileGet", json!({"mode": "token", "identity": ada, "fileuuid": id})).await;
    assert_eq!(got.ok()["tags"], json!(["kyc", "id"]));
    let all = app.root("FileListUserFiles", json!({"mode": "token", "identity": ada})).await;
    assert_eq!(names(&all.ok()["files"]), ["invoice.pdf", "passport.pdf"]);
    let kyc = app.root("FileListUserFiles", json!({"mode": "token", "identity": ada, "tag": "KYC"})).await;
    assert_eq!(names(&kyc.ok()["files"]), ["passport.pdf"], "a tag filter returns only the tagged files");
    assert_eq!(app.root("FileListUserFiles", json!({"mode": "token", "identity": ada, "tag": "none"})).await.ok()["files"], json!([]));

    // The whole set is replaced.
    let r = app.root("FileReplaceTags", json!({"mode": "token", "identity": ada, "fileuuid": id, "tags": ["archived"]})).await;
    assert_eq!(r.ok()["tags"], json!(["archived"]));
    assert_eq!(app.root("FileListUserFiles", json!({"mode": "token", "identity": ada, "tag": "kyc"})).await.ok()["files"], json!([]));

    // Across users, behind a bulk unlock.
    let u = unlock(&app).await;
    let page = app.root("BulkListFilesByTag", json!({"unlockuuid": u, "tag": "kyc"})).await;
    assert_eq!(page.ok()["total"], 1);
    assert_eq!(page.ok()["rows"][0]["token"], bob.as_str());
    assert_eq!(page.ok()["rows"][0]["filename"], "licence.pdf");
    let u = unlock(&app).await;
    assert_eq!(app.root("BulkListFilesByTag", json!({"unlockuuid": u, "tag": "archived"})).await.ok()["total"], 1);
    app.root("BulkListFilesByTag", json!({"tag": "kyc"})).await.err(400);

    // The tag text is never stored in the clear.
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let clear: i64 = sqlx::query_scalar("SELECT count(*) FROM files WHERE array_to_string(tag_hashes, ',') LIKE '%kyc%'")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(clear, 0);

    // Bad tags are refused, nothing changes.
    let too_many: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
    for bad in [json!(["-x"]), json!(["a b"]), json!([5]), json!(too_many), json!(["x".repeat(51)]), json!({"a": 1})] {
        let e = app.root("FileReplaceTags", json!({"mode": "token", "identity": ada, "fileuuid": id, "tags": bad})).await.err(400);
        assert!(e.contains("tags"), "{e}");
    }
    app.root("FileReplaceTags", json!({"mode": "token", "identity": ada, "fileuuid": id})).await.err(400);
    app.root("FileListUserFiles", json!({"mode": "token", "identity": ada, "tag": "a,b"})).await.err(400);
    let ghost = "00000000-0000-4000-8000-000000000000";
    app.root("FileReplaceTags", json!({"mode": "token", "identity": ada, "fileuuid": ghost, "tags": []})).await.err(404);
    // Another user's file is not found through this user.
    app.root("FileReplaceTags", json!({"mode": "token", "identity": bob, "fileuuid": id, "tags": []})).await.err(404);
    assert_eq!(app.root("FileGet", json!({"mode": "token", "identity": ada, "fileuuid": id})).await.ok()["tags"], json!(["archived"]));
}

#[tokio::test]
async fn updates_without_a_new_name_keep_the_name() {
    let app = TestApp::spawn().await;
    app.root("LegalBasisCreate", json!({"brief": "marketing", "fulldesc": "old"})).await.ok();
    app.root("LegalBasisUpdate", json!({"brief": "marketing", "fulldesc": "new"})).await.ok();
    app.root("LegalBasisUpdate", json!({"brief": "marketing", "newbrief": "", "shortdesc": "s"})).await.ok();
    let rows = app.root("LegalBasisListAgreements", json!({})).await.ok()["rows"].clone();
    let m = rows.as_array().unwrap().iter().find(|r| r["brief"] == "marketing").expect("still named marketing");
    assert_eq!((m["fulldesc"].as_str(), m["shortdesc"].as_str()), (Some("new"), Some("s")));
    app.root("LegalBasisUpdate", json!({"brief": "marketing", "newbrief": "Bad Name!"})).await.err(400);

    app.root("ProcessingActivityCreate", json!({"activity": "newsletter", "title": "old"})).await.ok();
    app.root("ProcessingActivityUpdate", json!({"activity": "newsletter", "title": "Monthly"})).await.ok();
    let rows = app.root("ProcessingActivityListActivities", json!({})).await.ok()["rows"].clone();
    let a = rows.as_array().unwrap().iter().find(|r| r["activity"] == "newsletter").expect("still named newsletter");
    assert_eq!(a["title"], "Monthly");
    app.root("ProcessingActivityUpdate", json!({"activity": "nosuch", "title": "x"})).await.err(404);
}

#[tokio::test]
async fn roles_and_policies_are_updated_by_name_as_well_as_by_id() {
    let app = TestApp::spawn().await;
    let rid = app.root("RoleCreate", json!({"rolename": "clerk", "roledesc": "a"})).await.ok()["roleid"].as_i64().unwrap();
    app.root("RoleUpdate", json!({"rolename": "clerk", "roledesc": "by name"})).await.ok();
    app.root("RoleUpdate", json!({"roleid": rid, "rolename": "clerk2"})).await.ok();
    app.root("RoleUpdate", json!({"rolename": "clerk", "roledesc": "gone"})).await.err(404);
    app.root("RoleUpdate", json!({"roledesc": "whose?"})).await.err(400);
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let role: (String, String) =
        sqlx::query_as("SELECT name, description FROM roles WHERE id = $1").bind(rid).fetch_one(&mut su).await.unwrap();
    assert_eq!(role, ("clerk2".to_string(), "by name".to_string()));

    let doc = json!({"Effect": "Allow", "Principal": {"Role": ["clerk2"]}, "Action": ["UserGet"], "Resource": ["users.profile.*"]});
    app.root("PolicyCreate", json!({"policyname": "read", "policydesc": "a", "policy": doc})).await.ok();
    app.root("PolicyUpdate", json!({"policyname": "read", "policydesc": "by name"})).await.ok();
    assert_eq!(app.root("PolicyGet", json!({"policyname": "read"})).await.ok()["policydesc"], "by name");
    app.root("PolicyUpdate", json!({"policyname": "nosuch", "policydesc": "x"})).await.err(404);
}

#[tokio::test]
async fn answers_carry_the_fields_the_sdks_read() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "ans"})).await;
    app.root("UserGet", json!({"mode": "token", "identity": user})).await.ok();
    let ev = app.root("AuditListUserEvents", json!({"mode": "token", "identity": user})).await;
    let titles: Vec<&str> = ev.ok()["rows"].as_array().unwrap().iter().map(|r| r["title"].as_str().unwrap()).collect();
    assert!(titles.contains(&"Personal record read") && titles.contains(&"Personal record created"), "{titles:?}");

    let t = app.root("TokenCreate", json!({"tokentype": "email", "record": "ans@example.com"})).await.ok()["tokenbase"].clone();
    let u = unlock(&app).await;
    let listed = app.root("BulkListTokens", json!({"unlockuuid": u, "tokens": [t, "nosuch"]})).await;
    assert_eq!(listed.ok()["total"], 1);

    let x = app.root("XTokenCreateForUser", json!({"mode": "token", "identity": user})).await;
    assert_eq!(x.ok()["token"], user.as_str());
}

#[tokio::test]
async fn users_are_deleted_in_bulk_atomically_and_counted() {
    let app = TestApp::spawn().await;
    let a = app.create_user(&app.root_token, None, json!({"login": "bulk-a", "email": "bulk-a@example.com"})).await;
    let b = app.create_user(&app.root_token, None, json!({"login": "bulk-b"})).await;
    let keep = app.create_user(&app.root_token, None, json!({"login": "bulk-keep"})).await;
    let users = json!([{"mode": "email", "identity": "BULK-A@example.com"}, {"mode": "login", "identity": "bulk-b"},
                       {"mode": "login", "identity": "nobody"}]);
    // One bad lookup refuses the whole request: nothing is deleted.
    let bad = json!([{"mode": "login", "identity": "bulk-b"}, {"mode": "shoe-size", "identity": "9"}]);
    app.root("UserDeleteBulk", json!({"users": bad})).await.err(400);
    app.root("UserGet", json!({"mode": "token", "identity": b})).await.ok();
    let r = app.root("UserDeleteBulk", json!({"users": users})).await;
    assert_eq!((r.ok()["deleted_count"].as_i64(), r.ok()["notfound"].as_i64()), (Some(2), Some(1)));
    for gone in [&a, &b] {
        app.root("UserGet", json!({"mode": "token", "identity": gone})).await.err(404);
    }
    app.root("UserGet", json!({"mode": "token", "identity": keep})).await.ok();
    app.root("UserDeleteBulk", json!({"users": []})).await.err(400);
    app.root("UserDeleteBulk", json!({})).await.err(400);
    // A user's own token never deletes, in bulk either.
    let own =
        app.root("XTokenCreateForUser", json!({"mode": "token", "identity": keep})).await.ok()["xtoken"].as_str().unwrap().to_string();
    app.call("UserDeleteBulk", Some(&own), None, json!({"users": [{"mode": "token", "identity": keep}]})).await.err(403);
    app.root("UserGet", json!({"mode": "token", "identity": keep})).await.ok();
}

#[tokio::test]
async fn a_license_key_is_accepted_and_not_needed_and_metrics_need_root() {
    let app = TestApp::spawn().await;
    let r = app.root("SystemSetLicenseKey", json!({"licensekey": "ABC-123"})).await;
    assert!(r.ok()["message"].as_str().unwrap().contains("needs no license"));
    app.root("SystemSetLicenseKey", json!({})).await.err(400);
    let (_, admin) = app.create_tenant("lic").await;
    app.call("SystemSetLicenseKey", Some(&admin), Some("lic"), json!({"licensekey": "x"})).await.err(403);
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db_url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE event_type = 'SystemSetLicenseKey' AND outcome = 'ok'")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(stored, 1, "audited");

    // GET /metrics at the API address: the root credential reads the Prometheus text.
    let get = |token: Option<String>, tenant: Option<&'static str>| {
        let mut req = http_client().get(format!("{}/metrics", app.base));
        if let Some(t) = token {
            req = req.header("x-bunker-token", t);
        }
        if let Some(t) = tenant {
            req = req.header("x-bunker-tenant", t);
        }
        req.send()
    };
    let ok = get(Some(app.root_token.clone()), None).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = ok.text().await.unwrap();
    assert!(text.contains("strongroom_sealed") && text.contains("strongroom_db_pool_connections"), "{text}");
    assert_eq!(get(None, None).await.unwrap().status(), 403);
    assert_eq!(get(Some("wrong".into()), None).await.unwrap().status(), 403);
    assert_eq!(get(Some(admin.clone()), Some("lic")).await.unwrap().status(), 403);
}

#[tokio::test]
async fn ui_settings_are_set_by_the_admin_and_read_by_every_role_of_the_tenant() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("uiconf").await;
    let t = Some("uiconf");
    let empty = app.call("TenantGetUIConf", Some(&admin), t, json!({})).await;
    assert_eq!(empty.ok()["ui"]["CompanyTitle"], "");
    let set = app
        .call(
            "TenantSetUIConf",
            Some(&admin),
            t,
            json!({"companytitle": "Acme GmbH", "logolink": "https://acme.example/logo.png", "magiclookup": "true"}),
        )
        .await;
    assert_eq!(set.ok()["ui"]["LogoLink"], "https://acme.example/logo.png");
    app.call("TenantSetUIConf", Some(&admin), t, json!({"companycity": "Berlin"})).await.ok();
    // An app credential and a user's own token read them; only the admin writes.
    let user = app.create_user(&admin, t, json!({"login": "ui"})).await;
    let own = app.call("XTokenCreateForUser", Some(&admin), t, json!({"mode": "token", "identity": user})).await.ok()["xtoken"]
        .as_str()
        .unwrap()
        .to_string();
    let ui = app.call("TenantGetUIConf", Some(&own), t, json!({})).await.ok()["ui"].clone();
    assert_eq!(
        (ui["CompanyTitle"].as_str(), ui["CompanyCity"].as_str(), ui["MagicLookup"].as_bool()),
        (Some("Acme GmbH"), Some("Berlin"), Some(true)),
        "earlier settings are kept"
    );
    app.call("TenantSetUIConf", Some(&own), t, json!({"companytitle": "Evil"})).await.err(403);
    // Another tenant sees its own (empty) settings.
    assert_eq!(app.root("TenantGetUIConf", json!({})).await.ok()["ui"]["CompanyTitle"], "");
    // Shown to data subjects: only http(s) links and plain text.
    for bad in
        [json!({"logolink": "javascript:alert(1)"}), json!({"companytitle": "a\u{0007}"}), json!({}), json!({"magiclookup": "maybe"})]
    {
        app.call("TenantSetUIConf", Some(&admin), t, bad).await.err(400);
    }
    assert_eq!(app.call("TenantGetUIConf", Some(&admin), t, json!({})).await.ok()["ui"]["CompanyTitle"], "Acme GmbH");
}
