//! System* operations (the main tenant's root only, some across tenants) and the bulk listings
//! and search of one tenant (tenant-admin and dpo, behind a fresh unlock uuid).

use serde_json::{json, Value};

use crate::helpers::*;

/// A fresh unlock uuid for `token` in `tenant`.
async fn unlock(app: &TestApp, token: &str, tenant: Option<&str>) -> String {
    app.call("BulkListUnlock", Some(token), tenant, json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string()
}

async fn root_unlock(app: &TestApp) -> String {
    unlock(app, &app.root_token.clone(), None).await
}

fn tokens_of(rows: &Value) -> Vec<String> {
    let mut t: Vec<String> = rows.as_array().unwrap().iter().map(|r| r["token"].as_str().unwrap().to_string()).collect();
    t.sort();
    t
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------- System*

#[tokio::test]
async fn system_stats_count_every_tenant_and_are_root_only() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("sta").await;
    app.create_user(&app.root_token, None, json!({"login": "r1"})).await;
    app.create_user(&a, Some("sta"), json!({"login": "a1"})).await;
    app.create_user(&a, Some("sta"), json!({"login": "a2"})).await;
    app.call("TokenCreate", Some(&a), Some("sta"), json!({"tokentype": "email", "record": "x@example.com"})).await.ok();

    let stats = app.root("SystemGetSystemStats", json!({})).await.ok()["stats"].clone();
    assert_eq!(stats["numusers"], 3, "{stats}");
    assert_eq!(stats["numtenants"], 2, "{stats}");
    assert_eq!(stats["numtokens"], 1, "{stats}");
    assert_eq!(stats["numsessions"], 0, "{stats}");

    app.call("SystemGetSystemStats", Some(&a), Some("sta"), json!({})).await.err(403);
    app.call("SystemGetSystemStats", None, None, json!({})).await.err(403);
}

#[tokio::test]
async fn the_user_report_holds_everything_about_the_user_and_is_root_only() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token, None, json!({"login": "rep", "email": "rep@example.com", "name": "Rep"})).await;
    app.root("UserUpdate", json!({"mode": "token", "identity": user, "profile": {"name": "Rep Two"}})).await.ok();
    app.root("AppdataCreate", json!({"mode": "token", "identity": user, "appname": "shop", "appdata": {"k": 1}})).await.ok();
    app.root("GroupCreate", json!({"groupname": "staff"})).await.ok();
    app.root("GroupAddUser", json!({"mode": "token", "identity": user, "groupname": "staff"})).await.ok();

    let r = app.root("SystemGetUserReport", json!({"mode": "email", "identity": "rep@example.com"})).await;
    let report = r.ok()["report"].clone();
    assert_eq!(report["token"], user.as_str());
    assert_eq!(report["profile"]["name"], "Rep Two");
    assert_eq!(report["version"], 2);
    let versions = report["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["profile"]["name"], "Rep", "earlier versions are part of the report");
    assert_eq!(report["appnames"], json!(["shop"]));
    assert_eq!(report["sessions"], 0);
    assert_eq!(report["agreements"], json!([]));
    assert_eq!(report["grouproles"][0]["groupname"], "staff");
    assert!(report["auditevents"].as_i64().unwrap() >= 4, "{report}");

    app.root("SystemGetUserReport", json!({"mode": "login", "identity": "nobody"})).await.err(404);
    app.root("SystemGetUserReport", json!({"mode": "nonsense", "identity": "rep"})).await.err(400);
    let (_, a) = app.create_tenant("rpa").await;
    app.create_user(&a, Some("rpa"), json!({"login": "rep"})).await;
    app.call("SystemGetUserReport", Some(&a), Some("rpa"), json!({"mode": "login", "identity": "rep"})).await.err(403);
    app.call("SystemGetUserHTMLReport", Some(&a), Some("rpa"), json!({"mode": "login", "identity": "rep"})).await.err(403);
}

#[tokio::test]
async fn the_html_report_escapes_what_the_profile_holds() {
    let app = TestApp::spawn().await;
    let evil = "<script>alert('x')</script>";
    let user = app.create_user(&app.root_token, None, json!({"login": "html", "name": evil, "<b>": "\"q\" & more"})).await;
    let r = app.root("SystemGetUserHTMLReport", json!({"mode": "token", "identity": user})).await;
    let html = r.ok()["html"].as_str().unwrap().to_string();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{html}");
    assert!(html.contains("&quot;q&quot; &amp; more"), "{html}");
    assert!(html.contains(&user));
}

#[tokio::test]
async fn root_finds_the_same_email_in_two_tenants_and_only_with_a_live_unlock() {
    let app = TestApp::spawn().await;
    let (ida, a) = app.create_tenant("gpa").await;
    let (idb, b) = app.create_tenant("gpb").await;
    let ua = app.create_user(&a, Some("gpa"), json!({"email": "Same@Example.com", "name": "A"})).await;
    let ub = app.create_user(&b, Some("gpb"), json!({"email": "same@example.com", "name": "B"})).await;
    app.create_user(&b, Some("gpb"), json!({"email": "other@example.com"})).await;

    let u = root_unlock(&app).await;
    let r = app.root("SystemGetUserProfiles", json!({"mode": "email", "identity": "same@example.com", "unlockuuid": u})).await;
    let body = r.ok();
    assert_eq!(body["total"], 2);
    assert_eq!(tokens_of(&body["rows"]), sorted(vec![ua.clone(), ub.clone()]));
    for row in body["rows"].as_array().unwrap() {
        let (id, name, pname) = if row["token"] == ua.as_str() { (ida, "gpa", "A") } else { (idb, "gpb", "B") };
        assert_eq!(row["tenantid"], id);
        assert_eq!(row["tenantname"], name);
        assert_eq!(row["profile"]["name"], pname);
    }
    // Nothing matched is an empty list.
    let none = app.root("SystemGetUserProfiles", json!({"mode": "login", "identity": "ghost", "unlockuuid": u})).await;
    assert_eq!(none.ok()["total"], 0);
    app.root("SystemGetUserProfiles", json!({"mode": "token", "identity": ua, "unlockuuid": u})).await.err(400);
    app.root("SystemGetUserProfiles", json!({"mode": "nonsense", "identity": "x", "unlockuuid": u})).await.err(400);
    app.root("SystemGetUserProfiles", json!({"mode": "email", "identity": " ", "unlockuuid": u})).await.err(400);

    // Unlock: missing, forged, or another tenant's.
    app.root("SystemGetUserProfiles", json!({"mode": "email", "identity": "same@example.com"})).await.err(400);
    let forged = uuid::Uuid::new_v4().to_string();
    app.root("SystemGetUserProfiles", json!({"mode": "email", "identity": "same@example.com", "unlockuuid": forged})).await.err(403);
    let ua_unlock = unlock(&app, &a, Some("gpa")).await;
    app.root("SystemGetUserProfiles", json!({"mode": "email", "identity": "same@example.com", "unlockuuid": ua_unlock})).await.err(403);
    // A tenant admin, even with its own unlock, may not.
    let r = app
        .call(
            "SystemGetUserProfiles",
            Some(&a),
            Some("gpa"),
            json!({"mode": "email", "identity": "same@example.com", "unlockuuid": ua_unlock}),
        )
        .await;
    r.err(403);
}

#[tokio::test]
async fn search_user_profiles_matches_every_mode_across_tenants() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("spa").await;
    let (_, b) = app.create_tenant("spb").await;
    let ua = app.create_user(&a, Some("spa"), json!({"login": "neo"})).await;
    let ub = app.create_user(&b, Some("spb"), json!({"custom": "neo"})).await;
    let u = root_unlock(&app).await;
    let r = app.root("SystemSearchUserProfiles", json!({"identity": "neo", "unlockuuid": u})).await;
    assert_eq!(tokens_of(&r.ok()["rows"]), sorted(vec![ua.clone(), ub]));
    let r = app.root("SystemSearchUserProfiles", json!({"identity": ua, "unlockuuid": u})).await;
    assert_eq!(tokens_of(&r.ok()["rows"]), vec![ua.clone()], "a token is matched too");
    app.root("SystemSearchUserProfiles", json!({"identity": "", "unlockuuid": u})).await.err(400);
    app.root("SystemSearchUserProfiles", json!({"identity": "neo"})).await.err(400);
    let ua_unlock = unlock(&app, &a, Some("spa")).await;
    app.call("SystemSearchUserProfiles", Some(&a), Some("spa"), json!({"identity": "neo", "unlockuuid": ua_unlock})).await.err(403);
}

#[tokio::test]
async fn delete_user_profiles_limited_to_a_tenant_deletes_only_there() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("dpa").await;
    let (idb, b) = app.create_tenant("dpb").await;
    let ua = app.create_user(&a, Some("dpa"), json!({"email": "gone@example.com"})).await;
    let ub = app.create_user(&b, Some("dpb"), json!({"email": "gone@example.com"})).await;
    let u = root_unlock(&app).await;

    let r = app
        .root("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "gone@example.com", "unlockuuid": u, "tenantname": "dpb"}))
        .await;
    let body = r.ok();
    assert_eq!(body["total"], 1);
    assert_eq!(body["rows"], json!([{"token": ub, "tenantid": idb, "tenantname": "dpb"}]));
    app.call("UserGet", Some(&b), Some("dpb"), json!({"mode": "token", "identity": ub})).await.err(404);
    app.call("UserGet", Some(&a), Some("dpa"), json!({"mode": "token", "identity": ua})).await.ok();
    // The tenant's own audit trail records the deletion.
    let ubl = unlock(&app, &b, Some("dpb")).await;
    let ev = app.call("BulkListAllAuditEvents", Some(&b), Some("dpb"), json!({"unlockuuid": ubl, "limit": 5})).await;
    let types: Vec<&str> = ev.ok()["rows"].as_array().unwrap().iter().map(|r| r["eventtype"].as_str().unwrap()).collect();
    assert!(types.contains(&"SystemDeleteUserProfiles"), "{types:?}");

    // Again: nothing left there; an unknown tenant is a 404 too.
    let again = json!({"mode": "email", "identity": "gone@example.com", "unlockuuid": u, "tenantname": "dpb"});
    app.root("SystemDeleteUserProfiles", again).await.err(404);
    let unknown = json!({"mode": "email", "identity": "gone@example.com", "unlockuuid": u, "tenantname": "nope"});
    assert_eq!(app.root("SystemDeleteUserProfiles", unknown).await.err(404), "tenant not found");
    // By token, every tenant.
    let r = app.root("SystemDeleteUserProfiles", json!({"mode": "token", "identity": ua, "unlockuuid": u})).await;
    assert_eq!(r.ok()["total"], 1);
    app.call("UserGet", Some(&a), Some("dpa"), json!({"mode": "token", "identity": ua})).await.err(404);

    let ua_unlock = unlock(&app, &a, Some("dpa")).await;
    let by_admin = json!({"mode": "email", "identity": "gone@example.com", "unlockuuid": ua_unlock});
    app.call("SystemDeleteUserProfiles", Some(&a), Some("dpa"), by_admin).await.err(403);
    app.root("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "gone@example.com"})).await.err(400);
}

#[tokio::test]
async fn restore_of_a_token_that_was_never_soft_deleted_is_404_and_root_only() {
    let app = TestApp::spawn().await;
    let u = root_unlock(&app).await;
    let token = uuid::Uuid::new_v4().to_string();
    app.root("SystemRestoreUserProfile", json!({"token": token, "unlockuuid": u})).await.err(404);
    let (_, a) = app.create_tenant("rsa").await;
    let ua = unlock(&app, &a, Some("rsa")).await;
    app.call("SystemRestoreUserProfile", Some(&a), Some("rsa"), json!({"token": token, "unlockuuid": ua})).await.err(403);
}

// ---------------------------------------------------------------- Bulk listings and search

#[tokio::test]
async fn bulk_list_users_returns_the_named_users_behind_an_unlock() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("bla").await;
    let u1 = app.create_user(&a, Some("bla"), json!({"login": "one", "email": "one@example.com"})).await;
    let u2 = app.create_user(&a, Some("bla"), json!({"login": "two", "phone": "+15550100"})).await;
    let u = unlock(&app, &a, Some("bla")).await;
    let users = json!([{"mode": "login", "identity": "one"}, {"mode": "email", "identity": "one@example.com"},
        {"mode": "login", "identity": "two"}, {"mode": "login", "identity": "ghost"}]);
    let r = app.call("BulkListUsers", Some(&a), Some("bla"), json!({"unlockuuid": u, "users": users})).await;
    let body = r.ok();
    assert_eq!(body["total"], 2, "each user once, unknown ones skipped");
    assert_eq!(tokens_of(&body["rows"]), sorted(vec![u1.clone(), u2]));
    let row = body["rows"].as_array().unwrap().iter().find(|r| r["token"] == u1.as_str()).unwrap();
    assert_eq!(row["profile"]["email"], "one@example.com");
    assert_eq!(row["version"], 1);
    assert_eq!(row["grouproles"], json!([]));
    for f in ["finaltime", "slidingtime", "expirationtime"] {
        assert!(row[f].is_i64(), "{row}");
    }

    app.call("BulkListUsers", Some(&a), Some("bla"), json!({"users": users})).await.err(400);
    let forged = uuid::Uuid::new_v4().to_string();
    app.call("BulkListUsers", Some(&a), Some("bla"), json!({"unlockuuid": forged, "users": users})).await.err(403);
    app.call("BulkListUsers", Some(&a), Some("bla"), json!({"unlockuuid": u})).await.err(400);
    app.call("BulkListUsers", Some(&a), Some("bla"), json!({"unlockuuid": u, "users": [{"mode": "x", "identity": "one"}]})).await.err(400);
    let reader = app.call("XTokenCreateForRole", Some(&a), Some("bla"), json!({"rolename": "app-reader"})).await;
    let reader = reader.ok()["xtoken"].as_str().unwrap().to_string();
    app.call("BulkListUsers", Some(&reader), Some("bla"), json!({"unlockuuid": u, "users": users})).await.err(403);
}

#[tokio::test]
async fn a_tenant_admin_never_lists_another_tenants_users() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("isa").await;
    let (_, b) = app.create_tenant("isb").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(
            app.create_user(
                &a,
                Some("isa"),
                json!({"login": format!("a{i}"), "email": "shared@example.com".replace("shared", &format!("s{i}"))}),
            )
            .await,
        );
    }
    let theirs = app.create_user(&b, Some("isb"), json!({"login": "a0", "email": "s0@example.com"})).await;
    let u = unlock(&app, &a, Some("isa")).await;

    let page1 = app.call("BulkListAllUsers", Some(&a), Some("isa"), json!({"unlockuuid": u, "offset": 0, "limit": 2})).await;
    let page2 = app.call("BulkListAllUsers", Some(&a), Some("isa"), json!({"unlockuuid": u, "offset": 2, "limit": 2})).await;
    assert_eq!(page1.ok()["total"], 3);
    assert_eq!(page1.ok()["rows"].as_array().unwrap().len(), 2);
    let mut all = tokens_of(&page1.ok()["rows"]);
    all.extend(tokens_of(&page2.ok()["rows"]));
    assert_eq!(sorted(all), sorted(mine.clone()));
    // A limit above the cap is capped, as Pro does; a negative one is refused.
    let capped = app.call("BulkListAllUsers", Some(&a), Some("isa"), json!({"unlockuuid": u, "limit": 100000})).await;
    assert_eq!(capped.ok()["rows"].as_array().unwrap().len(), 3);
    app.call("BulkListAllUsers", Some(&a), Some("isa"), json!({"unlockuuid": u, "limit": -1})).await.err(400);

    let r =
        app.call("BulkListUsers", Some(&a), Some("isa"), json!({"unlockuuid": u, "users": [{"mode": "token", "identity": theirs}]})).await;
    assert_eq!(r.ok()["total"], 0);
    let r = app.call("UserSearch", Some(&a), Some("isa"), json!({"unlockuuid": u, "identity": "a0"})).await;
    assert_eq!(tokens_of(&r.ok()["rows"]), vec![mine[0].clone()]);
    // A's unlock does not open B, and B's admin sees its own user only.
    app.call("BulkListAllUsers", Some(&b), Some("isb"), json!({"unlockuuid": u})).await.err(403);
    let ub = unlock(&app, &b, Some("isb")).await;
    let r = app.call("BulkListAllUsers", Some(&b), Some("isb"), json!({"unlockuuid": ub})).await;
    assert_eq!(tokens_of(&r.ok()["rows"]), vec![theirs]);
    // A dpo may bulk-list too.
    let dpo = app.call("XTokenCreateForRole", Some(&a), Some("isa"), json!({"rolename": "dpo"})).await;
    let dpo = dpo.ok()["xtoken"].as_str().unwrap().to_string();
    let ud = unlock(&app, &dpo, Some("isa")).await;
    assert_eq!(app.call("BulkListAllUsers", Some(&dpo), Some("isa"), json!({"unlockuuid": ud})).await.ok()["total"], 3);
}

#[tokio::test]
async fn bulk_list_group_users_lists_the_members_of_one_group() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("gla").await;
    let call = |ep: &'static str, body: Value| {
        let a = a.clone();
        let app = &app;
        async move { app.call(ep, Some(&a), Some("gla"), body).await }
    };
    let gid = call("GroupCreate", json!({"groupname": "staff"})).await.ok()["groupid"].as_i64().unwrap();
    call("GroupCreate", json!({"groupname": "empty"})).await.ok();
    let u1 = app.create_user(&a, Some("gla"), json!({"login": "m1"})).await;
    let u2 = app.create_user(&a, Some("gla"), json!({"login": "m2"})).await;
    app.create_user(&a, Some("gla"), json!({"login": "outsider"})).await;
    for u in [&u1, &u2] {
        call("GroupAddUser", json!({"mode": "token", "identity": u, "groupname": "staff"})).await.ok();
    }
    let u = unlock(&app, &a, Some("gla")).await;
    let r = call("BulkListGroupUsers", json!({"unlockuuid": u, "groupid": gid})).await;
    assert_eq!(r.ok()["total"], 2);
    assert_eq!(tokens_of(&r.ok()["rows"]), sorted(vec![u1.clone(), u2]));
    assert_eq!(r.ok()["rows"][0]["profile"]["login"], "m1");
    let r = call("BulkListGroupUsers", json!({"unlockuuid": u, "groupname": "staff", "offset": 1, "limit": 1})).await;
    assert_eq!(r.ok()["rows"].as_array().unwrap().len(), 1);
    assert_eq!(call("BulkListGroupUsers", json!({"unlockuuid": u, "groupname": "empty"})).await.ok()["total"], 0);
    call("BulkListGroupUsers", json!({"unlockuuid": u, "groupname": "nope"})).await.err(404);
    call("BulkListGroupUsers", json!({"unlockuuid": u})).await.err(400);
    call("BulkListGroupUsers", json!({"groupname": "staff"})).await.err(400);
}

#[tokio::test]
async fn bulk_list_all_audit_events_pages_newest_first() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("ala").await;
    app.create_user(&a, Some("ala"), json!({"login": "x"})).await;
    let u = unlock(&app, &a, Some("ala")).await;
    let r = app.call("BulkListAllAuditEvents", Some(&a), Some("ala"), json!({"unlockuuid": u, "limit": 2})).await;
    let body = r.ok();
    assert!(body["total"].as_i64().unwrap() >= 2, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["eventtype"], "BulkListUnlock", "newest first: {body}");
    assert_eq!(rows[1]["eventtype"], "UserCreate");
    assert_eq!(rows[0]["more"], false);
    assert!(rows[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(uuid::Uuid::parse_str(rows[0]["auditeventuuid"].as_str().unwrap()).is_ok());
    app.call("BulkListAllAuditEvents", Some(&a), Some("ala"), json!({})).await.err(400);
    let auditor = app.call("XTokenCreateForRole", Some(&a), Some("ala"), json!({"rolename": "auditor"})).await;
    let auditor = auditor.ok()["xtoken"].as_str().unwrap().to_string();
    app.call("BulkListAllAuditEvents", Some(&auditor), Some("ala"), json!({"unlockuuid": u})).await.err(403);
}

#[tokio::test]
async fn user_search_matches_every_index_mode_and_the_token() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("usa").await;
    let by_login = app.create_user(&a, Some("usa"), json!({"login": "trinity"})).await;
    let by_custom = app.create_user(&a, Some("usa"), json!({"custom": "trinity", "email": "t@example.com"})).await;
    let u = unlock(&app, &a, Some("usa")).await;
    let search = |identity: String| {
        let (a, u, app) = (a.clone(), u.clone(), &app);
        async move { app.call("UserSearch", Some(&a), Some("usa"), json!({"identity": identity, "unlockuuid": u})).await }
    };
    let r = search("trinity".into()).await;
    assert_eq!(r.ok()["rows"].as_array().unwrap().len(), 2);
    assert_eq!(tokens_of(&r.ok()["rows"]), sorted(vec![by_login.clone(), by_custom.clone()]));
    assert_eq!(r.ok()["rows"][0]["version"], 1);
    assert_eq!(tokens_of(&search("T@Example.com".into()).await.ok()["rows"]), vec![by_custom]);
    assert_eq!(tokens_of(&search(by_login.clone()).await.ok()["rows"]), vec![by_login]);
    assert_eq!(search("nobody".into()).await.ok()["rows"], json!([]));
    search(String::new()).await.err(400);
    app.call("UserSearch", Some(&a), Some("usa"), json!({"identity": "trinity"})).await.err(400);
    let forged = uuid::Uuid::new_v4().to_string();
    app.call("UserSearch", Some(&a), Some("usa"), json!({"identity": "trinity", "unlockuuid": forged})).await.err(403);
}

#[tokio::test]
async fn a_field_limited_custom_role_sees_bulk_listed_profiles_masked() {
    let app = TestApp::spawn().await;
    let (_, a) = app.create_tenant("msk").await;
    let admin = |ep: &'static str, body: Value| {
        let (a, app) = (a.clone(), &app);
        async move { app.call(ep, Some(&a), Some("msk"), body).await }
    };
    app.create_user(&a, Some("msk"), json!({"login": "ada", "name": "Ada", "email": "ada@example.com", "age": 36})).await;
    let rid = admin("RoleCreate", json!({"rolename": "lister", "roledesc": "test"})).await.ok()["roleid"].as_i64().unwrap();
    let policy = json!({"Effect": "Allow", "Action": ["BulkListUnlock", "BulkListUsers", "BulkListAllUsers", "UserSearch"],
        "Resource": ["users.bulk", "users.profile.name"]});
    let pid = admin("PolicyCreate", json!({"policyname": "lister-policy", "policy": policy})).await.ok()["policyid"].as_i64().unwrap();
    admin("RoleLinkPolicy", json!({"roleid": rid, "policyid": pid})).await.ok();
    let x = admin("XTokenCreateForRole", json!({"rolename": "lister"})).await.ok()["xtoken"].as_str().unwrap().to_string();

    let u = unlock(&app, &x, Some("msk")).await;
    let r =
        app.call("BulkListUsers", Some(&x), Some("msk"), json!({"unlockuuid": u, "users": [{"mode": "login", "identity": "ada"}]})).await;
    let p = r.ok()["rows"][0]["profile"].clone();
    assert_eq!(p["name"], "Ada");
    assert_eq!(p["email"], "***");
    assert_eq!(p["login"], "***");
    assert!(p.get("age").is_none(), "{p}");
    let r = app.call("BulkListAllUsers", Some(&x), Some("msk"), json!({"unlockuuid": u})).await;
    assert_eq!(r.ok()["rows"][0]["profile"]["email"], "***");
    let r = app.call("UserSearch", Some(&x), Some("msk"), json!({"unlockuuid": u, "identity": "ada"})).await;
    assert_eq!(r.ok()["rows"][0]["profile"]["email"], "***");
    // Not granted: the group listing.
    app.call("BulkListGroupUsers", Some(&x), Some("msk"), json!({"unlockuuid": u, "groupname": "g"})).await.err(403);
}

/// No tenant-defined policy can grant tenant or system management: a tenant's own role allowed
/// "everything" still gets 403 on System* and Tenant* (TenantGet of its own tenant aside), and
/// a DPO cannot detokenize in bulk.
#[tokio::test]
async fn a_tenant_defined_role_cannot_reach_system_or_tenant_management() {
    let app = TestApp::spawn().await;
    let (tid, admin) = app.create_tenant("grabby").await;
    let call = |ep: &'static str, body: Value| app.call(ep, Some(&admin), Some("grabby"), body);
    call("RoleCreate", json!({"rolename": "overlord"})).await.ok();
    for (name, res) in [("all", json!(["*"])), ("sys", json!(["system", "tenants"]))] {
        let policy = json!({"Effect": "Allow", "Action": ["*"], "Resource": res});
        call("PolicyCreate", json!({"policyname": name, "policy": policy})).await.ok();
        call("RoleLinkPolicy", json!({"rolename": "overlord", "policyname": name})).await.ok();
    }
    let x = call("XTokenCreateForRole", json!({"rolename": "overlord"})).await;
    let x = x.ok()["xtoken"].as_str().unwrap().to_string();
    let me = |ep: &'static str, body: Value| app.call(ep, Some(&x), Some("grabby"), body);
    // The role works inside its tenant...
    me("UserCreate", json!({"profile": {"email": "in@grabby.example"}})).await.ok();
    // ...but never across tenants.
    let u = me("BulkListUnlock", json!({})).await.ok()["unlockuuid"].clone();
    me("SystemGetSystemStats", json!({})).await.err(403);
    me("SystemGetUserProfiles", json!({"mode": "email", "identity": "in@grabby.example", "unlockuuid": u})).await.err(403);
    me("SystemSearchUserProfiles", json!({"identity": "in@grabby.example", "unlockuuid": u})).await.err(403);
    me("SystemDeleteUserProfiles", json!({"mode": "email", "identity": "in@grabby.example", "unlockuuid": u})).await.err(403);
    me("TenantListTenants", json!({})).await.err(403);
    me("TenantCreate", json!({"tenantname": "spawned", "tenantorg": "x"})).await.err(403);
    me("TenantUpdate", json!({"tenantid": 1, "tenantname": "taken"})).await.err(403);
    me("TenantDelete", json!({"tenantid": tid})).await.err(403);
    // The built-in tenant-admin is refused the same way, and root still works.
    call("SystemGetSystemStats", json!({})).await.err(403);
    app.root("SystemGetSystemStats", json!({})).await.ok();

    // Bulk detokenizing is a tokens right: the DPO (bulk listing, no tokens) is refused.
    let tok = call("TokenCreate", json!({"tokentype": "email", "record": "card@grabby.example"})).await;
    let tok = tok.ok()["tokenuuid"].as_str().unwrap().to_string();
    let dpo = call("XTokenCreateForRole", json!({"rolename": "dpo"})).await.ok()["xtoken"].as_str().unwrap().to_string();
    let as_dpo = |ep: &'static str, body: Value| app.call(ep, Some(&dpo), Some("grabby"), body);
    let u = as_dpo("BulkListUnlock", json!({})).await.ok()["unlockuuid"].clone();
    as_dpo("BulkListTokens", json!({"unlockuuid": u, "tokens": [tok]})).await.err(403);
    as_dpo("BulkDeleteTokens", json!({"unlockuuid": u, "tokens": [tok]})).await.err(403);
    let u = unlock(&app, &admin, Some("grabby")).await;
    let rows = call("BulkListTokens", json!({"unlockuuid": u, "tokens": [tok]})).await;
    assert_eq!(rows.ok()["rows"][0]["record"], "card@grabby.example");
}

/// A cross-tenant read by the main tenant's root is in the data subject's own audit trail, in
/// the tenant that holds the record.
#[tokio::test]
async fn cross_tenant_reads_are_audited_in_the_users_own_tenant() {
    let app = TestApp::spawn().await;
    let (_, b) = app.create_tenant("audited").await;
    let user = app.create_user(&b, Some("audited"), json!({"email": "seen@audited.example"})).await;
    let u = root_unlock(&app).await;
    let found = app.root("SystemGetUserProfiles", json!({"mode": "email", "identity": "seen@audited.example", "unlockuuid": u})).await;
    assert_eq!(found.ok()["total"], 1);
    app.root("SystemSearchUserProfiles", json!({"identity": "seen@audited.example", "unlockuuid": u})).await.ok();
    let events = app.call("AuditListUserEvents", Some(&b), Some("audited"), json!({"mode": "token", "identity": user})).await;
    let rows = events.ok()["rows"].as_array().unwrap().clone();
    for ep in ["SystemGetUserProfiles", "SystemSearchUserProfiles"] {
        let e = rows.iter().find(|e| e["eventtype"] == ep).unwrap_or_else(|| panic!("{ep} not in {rows:?}"));
        assert!(e["actor"].as_str().unwrap().starts_with("root:"), "{e}");
    }
    let report = strongroom::audit::verify(&app.db).await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}
