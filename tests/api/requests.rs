//! User requests and DPO approval: a change filed by an app or the data subject waits, sealed
//! under the user's key, until a DPO approves it (applied exactly once) or cancels it.

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const MARKER: &str = "RequestMarker-5b9d2a";
const TENANT: &str = "reqs";

struct T {
    app: TestApp,
    admin: String,
    dpo: String,
}

impl T {
    async fn new() -> T {
        let app = TestApp::spawn().await;
        let (_, admin) = app.create_tenant(TENANT).await;
        let mut t = T { app, admin, dpo: String::new() };
        t.dpo = t.role("dpo").await;
        t
    }

    async fn role(&self, role: &str) -> String {
        let r = self.call(&self.admin, "XTokenCreateForRole", json!({ "rolename": role })).await;
        r.ok()["xtoken"].as_str().unwrap().to_string()
    }

    async fn call(&self, token: &str, endpoint: &str, body: Value) -> Reply {
        self.app.call(endpoint, Some(token), Some(TENANT), body).await
    }

    async fn admin(&self, endpoint: &str, body: Value) -> Reply {
        self.call(&self.admin, endpoint, body).await
    }

    async fn user(&self, profile: Value) -> String {
        self.app.create_user(&self.admin, Some(TENANT), profile).await
    }

    async fn profile(&self, token: &str) -> Value {
        self.admin("UserGet", json!({ "mode": "token", "identity": token })).await.ok().clone()
    }

    /// Files `endpoint` for `token` as `who`; returns the request uuid.
    async fn file(&self, who: &str, endpoint: &str, token: &str, extra: Value) -> String {
        let r = self.call(who, endpoint, with(token, extra)).await;
        let uuid = r.ok()["requestuuid"].as_str().unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&uuid).is_ok());
        uuid
    }

    async fn get(&self, uuid: &str) -> Value {
        self.call(&self.dpo, "UserRequestGet", json!({ "requestuuid": uuid })).await.ok()["request"].clone()
    }

    async fn approve(&self, uuid: &str) -> Reply {
        self.call(&self.dpo, "UserRequestApprove", json!({ "requestuuid": uuid, "reason": "verified by phone" })).await
    }
}

fn with(token: &str, extra: Value) -> Value {
    let mut body = json!({ "mode": "token", "identity": token });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

async fn superuser(app: &TestApp) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&app.db_url).await.unwrap()
}

#[tokio::test]
async fn an_update_request_waits_then_applies_exactly_once_on_approval() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "ann", "name": "Ann" })).await;
    let writer = t.role("app-writer").await;
    let uuid = t.file(&writer, "UserUpdateRequest", &u, json!({ "profile": { "name": "Anna", "city": null } })).await;

    // Pending: the record is untouched; the request shows the change.
    assert_eq!(t.profile(&u).await["profile"]["name"], "Ann");
    let req = t.get(&uuid).await;
    assert_eq!(req["requestuuid"], uuid.as_str());
    assert_eq!(req["requesttype"], "update");
    assert_eq!(req["status"], "pending");
    assert_eq!(req["token"], u.as_str());
    assert_eq!(req["change"], json!({ "profile": { "name": "Anna", "city": null } }));
    assert_eq!(req["version"], 1, "the record version the change was filed against");
    assert!(req["creationtime"].as_i64().unwrap() > 0);
    assert!(req["decidedby"].is_null() && req["decisiontime"].is_null() && req["reason"].is_null());

    t.approve(&uuid).await.ok();
    let got = t.profile(&u).await;
    assert_eq!(got["profile"], json!({ "login": "ann", "name": "Anna" }));
    assert_eq!(got["version"], 2);
    let req = t.get(&uuid).await;
    assert_eq!(req["status"], "approved");
    assert_eq!(req["reason"], "verified by phone");
    assert!(req["decidedby"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(req["decisiontime"].as_i64().unwrap() > 0);

    // Decided once: a second decision is 409 and changes nothing.
    assert!(t.approve(&uuid).await.err(409).contains("approved"));
    t.call(&t.dpo, "UserRequestCancel", json!({ "requestuuid": uuid })).await.err(409);
    assert_eq!(t.profile(&u).await["version"], 2);
    assert_eq!(t.get(&uuid).await["status"], "approved");
}

#[tokio::test]
async fn patch_appdata_and_agreement_requests_apply_on_approval() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "bob", "name": "Bob", "tags": ["a"] })).await;

    let patch = t
        .file(
            &t.admin,
            "UserPatchRequest",
            &u,
            json!({ "patch": [{ "op": "replace", "path": "/name", "value": "Robert" }, { "op": "add", "path": "/tags/-", "value": "b" }] }),
        )
        .await;
    assert_eq!(t.get(&patch).await["requesttype"], "patch");
    t.approve(&patch).await.ok();
    let got = t.profile(&u).await;
    assert_eq!(got["profile"], json!({ "login": "bob", "name": "Robert", "tags": ["a", "b"] }));
    assert_eq!(got["version"], 2);
    t.approve(&patch).await.err(409);
    assert_eq!(t.profile(&u).await["profile"]["tags"], json!(["a", "b"]), "applied once");

    t.admin("AppdataCreate", with(&u, json!({ "appname": "shop", "appdata": { "theme": "dark", "n": 1 } }))).await.ok();
    let app = t.file(&t.admin, "AppdataUpdateRequest", &u, json!({ "appname": "shop", "appdata": { "n": 2 } })).await;
    assert_eq!(t.admin("AppdataGet", with(&u, json!({ "appname": "shop" }))).await.ok()["version"], 1);
    assert_eq!(t.get(&app).await["requesttype"], "appdata-update");
    t.approve(&app).await.ok();
    let got = t.admin("AppdataGet", with(&u, json!({ "appname": "shop" }))).await;
    assert_eq!(got.ok()["appdata"], json!({ "theme": "dark", "n": 2 }));
    assert_eq!(got.ok()["version"], 2);

    t.admin("LegalBasisCreate", json!({ "brief": "newsletter" })).await.ok();
    t.admin("AgreementAccept", with(&u, json!({ "brief": "newsletter" }))).await.ok();
    let ag = t.file(&t.admin, "AgreementCancelRequest", &u, json!({ "brief": "newsletter" })).await;
    let get = || t.admin("AgreementGet", with(&u, json!({ "brief": "newsletter" })));
    assert_eq!(get().await.ok()["agreement"]["status"], "active");
    assert_eq!(t.get(&ag).await["requesttype"], "agreement-cancel");
    t.approve(&ag).await.ok();
    assert_eq!(get().await.ok()["agreement"]["status"], "withdrawn");

    let list = t.admin("UserRequestListUserRequests", with(&u, json!({}))).await;
    assert_eq!(list.ok()["total"], 3);
    let rows = list.ok()["rows"].as_array().unwrap().clone();
    assert!(rows.iter().all(|r| r["status"] == "approved" && r["creationtime"].as_i64().unwrap() > 0));
    let mut types: Vec<&str> = rows.iter().map(|r| r["requesttype"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["agreement-cancel", "appdata-update", "patch"]);
    let page = t.admin("UserRequestListUserRequests", with(&u, json!({ "offset": 1, "limit": 1 }))).await;
    assert_eq!(page.ok()["rows"].as_array().unwrap().len(), 1);
    assert_eq!(page.ok()["total"], 3);
}

#[tokio::test]
async fn an_approved_delete_request_forgets_the_user_and_its_requests() {
    let t = T::new().await;
    let u = t.user(json!({ "email": "del@example.com" })).await;
    let other = t.file(&t.admin, "UserUpdateRequest", &u, json!({ "profile": { "x": 1 } })).await;
    let del = t.file(&t.admin, "UserDeleteRequest", &u, json!({})).await;
    assert_eq!(t.get(&del).await["change"], json!({}));
    t.profile(&u).await;
    t.approve(&del).await.ok();
    t.admin("UserGet", json!({ "mode": "token", "identity": u })).await.err(404);
    // The user's requests went with it (FK cascade).
    for uuid in [&del, &other] {
        t.call(&t.dpo, "UserRequestGet", json!({ "requestuuid": uuid })).await.err(404);
    }
    let mut su = superuser(&t.app).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM user_requests").fetch_one(&mut su).await.unwrap();
    assert_eq!(left, 0);

    // Deleting a user directly removes its pending requests as well.
    let v = t.user(json!({ "login": "vic" })).await;
    t.file(&t.admin, "UserUpdateRequest", &v, json!({ "profile": { "x": 1 } })).await;
    t.admin("UserDelete", json!({ "mode": "token", "identity": v })).await.ok();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM user_requests").fetch_one(&mut su).await.unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_cancelled_request_leaves_the_record_untouched_and_stays_decided() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "cat", "name": "Cat" })).await;
    let uuid = t.file(&t.admin, "UserUpdateRequest", &u, json!({ "profile": { "name": "Kat" } })).await;
    t.call(&t.dpo, "UserRequestCancel", json!({ "requestuuid": uuid, "reason": "not the data subject" })).await.ok();
    let got = t.profile(&u).await;
    assert_eq!(got["profile"]["name"], "Cat");
    assert_eq!(got["version"], 1);
    let req = t.get(&uuid).await;
    assert_eq!(req["status"], "cancelled");
    assert_eq!(req["reason"], "not the data subject");
    t.approve(&uuid).await.err(409);
    t.call(&t.dpo, "UserRequestCancel", json!({ "requestuuid": uuid })).await.err(409);
    assert_eq!(t.profile(&u).await["profile"]["name"], "Cat");
}

#[tokio::test]
async fn filing_checks_the_user_and_the_change_like_the_direct_call() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "dan", "name": "Dan" })).await;
    t.admin("LegalBasisCreate", json!({ "brief": "terms", "requiredflag": true })).await.ok();
    t.admin("AgreementAccept", with(&u, json!({ "brief": "terms" }))).await.ok();
    t.admin("AppdataCreate", with(&u, json!({ "appname": "shop", "appdata": { "k": 1 } }))).await.ok();

    for (endpoint, extra) in [
        ("UserUpdateRequest", json!({ "profile": {} })),
        ("UserUpdateRequest", json!({ "profile": [1] })),
        ("UserUpdateRequest", json!({ "profile": { "email": { "not": "a string" } } })),
        ("UserPatchRequest", json!({ "patch": [] })),
        ("UserPatchRequest", json!({ "patch": [{ "op": "test", "path": "/name", "value": "Nope" }] })),
        ("UserPatchRequest", json!({ "patch": [{ "op": "frobnicate", "path": "/name" }] })),
        ("AppdataUpdateRequest", json!({ "appname": "bad name", "appdata": { "k": 2 } })),
        ("AppdataUpdateRequest", json!({ "appname": "shop", "appdata": {} })),
        ("AppdataUpdateRequest", json!({ "appname": "shop", "appdata": { "k": null } })),
        ("AgreementCancelRequest", json!({ "brief": "terms" })),
        ("AgreementCancelRequest", json!({ "brief": "" })),
    ] {
        let r = t.admin(endpoint, with(&u, extra.clone())).await;
        assert_eq!(r.code, 400, "{endpoint} {extra}: {}", r.body);
    }
    t.admin("UserUpdateRequest", json!({ "mode": "token", "identity": u })).await.err(400);
    t.admin("UserUpdateRequest", json!({ "mode": "nope", "identity": u, "profile": { "a": 1 } })).await.err(400);

    // Unknown user, app, agreement: 404.
    let ghost = uuid::Uuid::new_v4().to_string();
    t.admin("UserUpdateRequest", with(&ghost, json!({ "profile": { "a": 1 } }))).await.err(404);
    t.admin("UserDeleteRequest", json!({ "mode": "email", "identity": "ghost@example.com" })).await.err(404);
    t.admin("AppdataUpdateRequest", with(&u, json!({ "appname": "other", "appdata": { "k": 2 } }))).await.err(404);
    t.admin("AgreementCancelRequest", with(&u, json!({ "brief": "unknown" }))).await.err(404);

    // Nothing was filed, nothing changed (the trial runs were undone).
    let list = t.admin("UserRequestListUserRequests", with(&u, json!({}))).await;
    assert_eq!(list.ok()["total"], 0);
    let got = t.profile(&u).await;
    assert_eq!(got["profile"], json!({ "login": "dan", "name": "Dan" }));
    assert_eq!(got["version"], 1);
    // A valid delete request's trial run did not delete either.
    t.file(&t.admin, "UserDeleteRequest", &u, json!({})).await;
    t.profile(&u).await;

    // Unknown or empty request uuids.
    for endpoint in ["UserRequestGet", "UserRequestApprove", "UserRequestCancel"] {
        t.call(&t.dpo, endpoint, json!({ "requestuuid": ghost })).await.err(404);
        t.call(&t.dpo, endpoint, json!({ "requestuuid": "" })).await.err(400);
    }
    t.call(&t.dpo, "UserRequestListUserRequests", with(&ghost, json!({}))).await.err(404);
}

#[tokio::test]
async fn roles_user_tokens_and_tenants_are_respected() {
    let t = T::new().await;
    let me = t.user(json!({ "email": "me@example.com", "name": "Me" })).await;
    let other = t.user(json!({ "email": "other@example.com", "name": "Other" })).await;
    let x = t.admin("XTokenCreateForUser", json!({ "mode": "email", "identity": "me@example.com" })).await;
    let x = x.ok()["xtoken"].as_str().unwrap().to_string();

    // The data subject files for itself, never for another (404), and decides nothing (403).
    let mine = t.file(&x, "UserUpdateRequest", &me, json!({ "profile": { "name": "Myself" } })).await;
    t.call(&x, "UserDeleteRequest", json!({ "mode": "email", "identity": "me@example.com" })).await.ok();
    t.call(&x, "UserUpdateRequest", with(&other, json!({ "profile": { "name": "Hacked" } }))).await.err(404);
    t.call(&x, "UserDeleteRequest", json!({ "mode": "email", "identity": "other@example.com" })).await.err(404);
    t.call(&x, "UserRequestApprove", json!({ "requestuuid": mine })).await.err(403);
    t.call(&x, "UserRequestCancel", json!({ "requestuuid": mine })).await.err(403);
    // It reads its own request (Databunker's /v1/request/:r), as the record's owner.
    assert_eq!(t.call(&x, "UserRequestGet", json!({ "requestuuid": mine })).await.ok()["request"]["token"], me.as_str());
    assert_eq!(t.get(&mine).await["status"], "pending");
    assert_eq!(t.profile(&me).await["profile"]["name"], "Me");

    // An app reader may not file; an app writer may file but not decide.
    let reader = t.role("app-reader").await;
    t.call(&reader, "UserUpdateRequest", with(&me, json!({ "profile": { "name": "R" } }))).await.err(403);
    t.call(&reader, "UserRequestGet", json!({ "requestuuid": mine })).await.err(403);
    let writer = t.role("app-writer").await;
    let w = t.file(&writer, "UserPatchRequest", &other, json!({ "patch": [{ "op": "replace", "path": "/name", "value": "O2" }] })).await;
    t.call(&writer, "UserRequestApprove", json!({ "requestuuid": w })).await.err(403);
    t.call(&writer, "UserRequestListUserRequests", with(&other, json!({}))).await.err(403);

    // The DPO approves.
    t.approve(&mine).await.ok();
    assert_eq!(t.profile(&me).await["profile"]["name"], "Myself");
    t.admin("UserRequestApprove", json!({ "requestuuid": w })).await.ok();
    assert_eq!(t.profile(&other).await["profile"]["name"], "O2");

    // Another tenant's request is not found, for reading and deciding alike.
    let (_, stranger) = t.app.create_tenant("strangers").await;
    let pending = t.file(&t.admin, "UserUpdateRequest", &other, json!({ "profile": { "name": "O3" } })).await;
    for endpoint in ["UserRequestGet", "UserRequestApprove", "UserRequestCancel"] {
        t.app.call(endpoint, Some(&stranger), Some("strangers"), json!({ "requestuuid": pending })).await.err(404);
    }
    assert_eq!(t.get(&pending).await["status"], "pending");
}

#[tokio::test]
async fn an_approval_that_no_longer_applies_fails_and_stays_pending() {
    let t = T::new().await;
    let a = t.user(json!({ "email": "a@example.com", "name": "A" })).await;
    let uuid = t.file(&t.admin, "UserUpdateRequest", &a, json!({ "profile": { "email": "b@example.com", "name": "B?" } })).await;
    // Meanwhile another user takes the email.
    let b = t.user(json!({ "email": "b@example.com" })).await;
    assert!(t.approve(&uuid).await.err(409).contains("email"));
    assert_eq!(t.get(&uuid).await["status"], "pending");
    let got = t.profile(&a).await;
    assert_eq!(got["profile"], json!({ "email": "a@example.com", "name": "A" }));
    assert_eq!(got["version"], 1);

    // Once the conflict is gone, the same request applies.
    t.admin("UserUpdate", json!({ "mode": "token", "identity": b, "profile": { "email": "c@example.com" } })).await.ok();
    t.approve(&uuid).await.ok();
    assert_eq!(t.profile(&a).await["profile"]["email"], "b@example.com");
    assert_eq!(t.get(&uuid).await["status"], "approved");
}

#[tokio::test]
async fn listing_all_requests_needs_a_fresh_unlock() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "eve" })).await;
    let v = t.user(json!({ "login": "fay" })).await;
    t.file(&t.admin, "UserUpdateRequest", &u, json!({ "profile": { "x": 1 } })).await;
    t.file(&t.admin, "UserDeleteRequest", &v, json!({})).await;

    t.call(&t.dpo, "BulkListAllUserRequests", json!({})).await.err(400);
    t.call(&t.dpo, "BulkListAllUserRequests", json!({ "unlockuuid": uuid::Uuid::new_v4().to_string() })).await.err(403);
    let unlock = t.call(&t.dpo, "BulkListUnlock", json!({})).await.ok()["unlockuuid"].as_str().unwrap().to_string();
    let all = t.call(&t.dpo, "BulkListAllUserRequests", json!({ "unlockuuid": unlock })).await;
    assert_eq!(all.ok()["total"], 2);
    let rows = all.ok()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["status"] == "pending" && r["requestuuid"].is_string()));
    let mut tokens: Vec<&str> = rows.iter().map(|r| r["token"].as_str().unwrap()).collect();
    tokens.sort();
    let mut want = [u.as_str(), v.as_str()];
    want.sort();
    assert_eq!(tokens, want);
    let page = t.call(&t.dpo, "BulkListAllUserRequests", json!({ "unlockuuid": unlock, "offset": 1, "limit": 1 })).await;
    assert_eq!(page.ok()["rows"].as_array().unwrap().len(), 1);

    let writer = t.role("app-writer").await;
    t.call(&writer, "BulkListAllUserRequests", json!({ "unlockuuid": unlock })).await.err(403);
    // Another tenant lists none of these.
    let (_, stranger) = t.app.create_tenant("strangers").await;
    let su = t.app.call("BulkListUnlock", Some(&stranger), Some("strangers"), json!({})).await;
    let su = su.ok()["unlockuuid"].as_str().unwrap().to_string();
    let none = t.app.call("BulkListAllUserRequests", Some(&stranger), Some("strangers"), json!({ "unlockuuid": su })).await;
    assert_eq!(none.ok()["total"], 0);
}

#[tokio::test]
async fn the_change_and_reason_are_sealed_at_rest_and_decisions_are_audited_with_the_reason() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "gil" })).await;
    let one = t.file(&t.admin, "UserUpdateRequest", &u, json!({ "profile": { "secret": MARKER } })).await;
    let two = t.file(&t.admin, "UserUpdateRequest", &u, json!({ "profile": { "other": MARKER } })).await;
    t.call(&t.dpo, "UserRequestApprove", json!({ "requestuuid": one, "reason": format!("approve {MARKER}") })).await.ok();
    t.call(&t.dpo, "UserRequestCancel", json!({ "requestuuid": two, "reason": format!("cancel {MARKER}") })).await.ok();
    assert_eq!(t.get(&one).await["change"]["profile"]["secret"], MARKER);

    let mut su = superuser(&t.app).await;
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT change, reason FROM user_requests").fetch_all(&mut su).await.unwrap();
    assert_eq!(rows.len(), 2);
    for (change, reason) in rows {
        for blob in [Some(change), reason].into_iter().flatten() {
            assert!(memchr::memmem::find(&blob, MARKER.as_bytes()).is_none(), "stored in plaintext");
        }
    }

    let events = t.admin("AuditListUserEvents", json!({ "mode": "token", "identity": u, "limit": 100 })).await;
    let events = events.ok()["rows"].as_array().unwrap().clone();
    for (eventtype, reason, uuid) in [("UserRequestApprove", "approve", &one), ("UserRequestCancel", "cancel", &two)] {
        let ev = events.iter().find(|e| e["eventtype"] == eventtype).unwrap_or_else(|| panic!("no {eventtype} event"));
        let ev = t.admin("AuditGetEvent", json!({ "auditeventuuid": ev["auditeventuuid"] })).await;
        let details = &ev.ok()["details"];
        assert_eq!(details["reason"], format!("{reason} {MARKER}"));
        assert_eq!(details["requestuuid"], uuid.as_str());
    }
    let filed = events.iter().filter(|e| e["eventtype"] == "UserUpdateRequest").count();
    assert_eq!(filed, 2, "filing is audited and bound to the user");
}

/// An approval applies a change only to the record it was filed against: if the record has
/// changed since, approving is 409 and the request stays pending (the DPO would otherwise
/// approve a diff against a profile that no longer exists, and overwrite the newer change).
#[tokio::test]
async fn approving_a_change_to_a_record_that_changed_since_is_refused() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "bea", "name": "Bea" })).await;
    let writer = t.role("app-writer").await;
    let update = t.file(&writer, "UserUpdateRequest", &u, json!({ "profile": { "name": "Beatrix" } })).await;
    let patch = t.file(&writer, "UserPatchRequest", &u, json!({ "patch": [{"op": "replace", "path": "/name", "value": "B."}] })).await;
    t.admin("UserUpdate", json!({ "mode": "token", "identity": u, "profile": { "city": "Bonn" } })).await.ok();
    for uuid in [&update, &patch] {
        let msg = t.approve(uuid).await.err(409);
        assert!(msg.contains("changed since this request was filed"), "{msg}");
        assert_eq!(t.get(uuid).await["status"], "pending");
    }
    assert_eq!(t.profile(&u).await["profile"], json!({ "login": "bea", "name": "Bea", "city": "Bonn" }));
    t.call(&t.dpo, "UserRequestCancel", json!({ "requestuuid": update })).await.ok();
    // A delete request is not tied to a version.
    let forget = t.file(&writer, "UserDeleteRequest", &u, json!({})).await;
    t.admin("UserUpdate", json!({ "mode": "token", "identity": u, "profile": { "city": "Köln" } })).await.ok();
    t.approve(&forget).await.ok();
}

/// Two officers approving the same request at the same moment: one wins, the other gets 409,
/// and the change is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_approvals_apply_a_request_exactly_once() {
    let t = T::new().await;
    let u = t.user(json!({ "login": "race", "name": "Race" })).await;
    let writer = t.role("app-writer").await;
    let uuid = t.file(&writer, "UserPatchRequest", &u, json!({ "patch": [{"op": "add", "path": "/visits", "value": 1}] })).await;
    let second_dpo = t.role("dpo").await;
    let (a, b) = tokio::join!(
        t.call(&t.dpo, "UserRequestApprove", json!({ "requestuuid": uuid })),
        t.call(&second_dpo, "UserRequestApprove", json!({ "requestuuid": uuid }))
    );
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [200, 409], "{:?} {:?}", a.body, b.body);
    let got = t.profile(&u).await;
    assert_eq!(got["version"], 2, "applied once");
    assert_eq!(got["profile"]["visits"], 1);
}
