//! Databunker v1 REST API, endpoint by endpoint (../shared/contract/v1-endpoints.md): answers,
//! refusals, and that what v1 writes is the record v2 reads.

use serde_json::{json, Value};

use crate::helpers::*;

/// One v1 answer: status, content type and body (JSON when it parses, else the text as a string).
struct V1 {
    code: u16,
    ctype: String,
    location: Option<String>,
    cors: Option<String>,
    body: Value,
}

impl V1 {
    fn ok(&self) -> &Value {
        assert_eq!(self.code, 200, "expected 200, got {} {}", self.code, self.body);
        assert_eq!(self.body["status"], "ok", "{}", self.body);
        &self.body
    }

    /// Databunker's error: `code` with `{"status":"error","message":message}`.
    fn err(&self, code: u16, message: &str) {
        assert_eq!((self.code, &self.body), (code, &json!({"status": "error", "message": message})), "{}", self.body);
        assert!(self.ctype.starts_with("application/json"), "{}", self.ctype);
    }

    fn denied(&self) {
        assert_eq!((self.code, &self.body), (403, &json!("Access denied")), "{}", self.body);
        assert!(self.ctype.starts_with("text/plain"), "{}", self.ctype);
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(app: &TestApp) -> Client {
        strongroom::custody::install_crypto_provider();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Client { base: app.base.clone(), http }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, String)>, extra: &[(&str, &str)]) -> V1 {
        let mut req = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("X-Bunker-Token", t);
        }
        if let Some((ctype, b)) = body {
            req = req.header("Content-Type", ctype).body(b);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        let code = res.status().as_u16();
        let h = |n: &str| res.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (ctype, location, cors) = (h("content-type").unwrap_or_default(), h("location"), h("access-control-allow-origin"));
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        V1 { code, ctype, location, cors, body }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> V1 {
        self.send("GET", path, token, None, &[]).await
    }

    async fn json(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> V1 {
        self.send(method, path, token, Some(("application/json", body.to_string())), &[]).await
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn user(c: &Client, root: &str, profile: Value) -> String {
    c.json("POST", "/v1/user", Some(root), profile).await.ok()["token"].as_str().unwrap().to_string()
}

/// Endpoints 1, 7-11: the quick start's calls, all five modes, the merge and RFC 6902 PUTs,
/// forms, duplicates, forget-me, and the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_read_changed_and_forgotten_as_in_databunker() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let root = app.root_token.as_str();
    assert_eq!(c.get("/v1/status", None).await.body, json!("OK"));
    assert_eq!(c.get("/v1/status/", None).await.body, json!("OK"));

    let t = user(
        &c,
        root,
        json!({"first": "John", "login": "john", "email": "John@Example.com", "phone": "+44 20 7946 0000", "custom": "c-1"}),
    )
    .await;
    for (mode, id) in
        [("token", t.as_str()), ("login", "john"), ("email", "john@example.com"), ("phone", "+44 20 7946 0000"), ("custom", "c-1")]
    {
        let r = c.get(&format!("/v1/user/{mode}/{id}"), Some(root)).await;
        assert_eq!((&r.ok()["token"], &r.ok()["data"]["first"]), (&json!(t), &json!("John")), "{mode}");
    }
    // v2 reads the same record.
    assert_eq!(app.root("UserGet", json!({"mode": "login", "identity": "john"})).await.ok()["token"], t.as_str());

    // Merge patch, then RFC 6902; indexes follow the record.
    let r = c.json("PUT", "/v1/user/login/john", Some(root), json!({"first": "Johnny", "custom": null})).await;
    assert_eq!(r.ok()["token"], t.as_str());
    c.get("/v1/user/custom/c-1", Some(root)).await.err(405, "not found");
    let patch = json!([{"op": "replace", "path": "/login", "value": "jd"}]);
    c.json("PUT", &format!("/v1/user/token/{t}"), Some(root), patch).await.ok();
    let got = c.get("/v1/user/login/jd", Some(root)).await;
    assert_eq!(got.ok()["data"], json!({"first": "Johnny", "login": "jd", "email": "John@Example.com", "phone": "+44 20 7946 0000"}));

    // A form body; duplicates, empty bodies and records without an index are refused.
    let form =
        c.send("POST", "/v1/user", Some(root), Some(("application/x-www-form-urlencoded", "login=formy&name=F&name=G".into())), &[]).await;
    let f = form.ok()["token"].as_str().unwrap().to_string();
    assert_eq!(c.get(&format!("/v1/user/token/{f}"), Some(root)).await.ok()["data"], json!({"login": "formy", "name": "F"}));
    c.json("POST", "/v1/user", Some(root), json!({"email": "john@example.com"})).await.err(405, "duplicate index: email");
    c.json("POST", "/v1/user", Some(root), json!({})).await.err(405, "empty request body");
    c.json("POST", "/v1/user", Some(root), json!({"name": "nobody"}))
        .await
        .err(405, "failed to create user, all user lookup fields are missing");
    c.send("POST", "/v1/user", Some(root), Some(("application/x-www-form-urlencoded", "{\"login\":\"x\"}".into())), &[])
        .await
        .err(405, "failed to decode request body");
    c.json("PUT", &format!("/v1/user/token/{f}"), Some(root), json!({"login": "jd"})).await.err(405, "record not found");

    // Modes and uuids are checked; no lookup happens before the credential is.
    c.get("/v1/user/nick/x", Some(root)).await.err(405, "bad mode");
    c.get("/v1/user/token/not-a-uuid", Some(root)).await.err(405, "bad uuid");
    c.get("/v1/user/login/nobody", Some(root)).await.err(405, "not found");
    c.get("/v1/user/login/nobody", None).await.denied();
    c.get("/v1/user/login/jd", None).await.denied();
    c.get("/v1/user/login/jd", Some(&uuid())).await.denied();
    c.json("POST", "/v1/user", None, json!({"login": "anon"})).await.denied();

    // Listing (8), with paging.
    let list = c.send("POST", "/v1/users?offset=0&limit=1", Some(root), None, &[]).await;
    assert_eq!((list.ok()["total"].as_i64(), list.ok()["rows"].as_array().unwrap().len()), (Some(2), 1));
    // Databunker's rows carry the profile as base64 of its JSON (Go marshals bytes so).
    use base64::Engine;
    let row = &list.ok()["rows"][0];
    let private: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(row["private"].as_str().unwrap()).unwrap()).unwrap();
    let direct = c.get(&format!("/v1/user/token/{}", row["token"].as_str().unwrap()), Some(root)).await;
    assert_eq!(&private, &direct.ok()["data"]);
    c.send("POST", "/v1/users", None, None, &[]).await.denied();

    // Forget-me (11): done, and done again; the record is gone for v1 and v2.
    assert_eq!(c.send("DELETE", &format!("/v1/user/token/{t}"), Some(root), None, &[]).await.ok()["result"], "done");
    assert_eq!(c.send("DELETE", "/v1/user/email/john@example.com", Some(root), None, &[]).await.ok()["result"], "done");
    c.get("/v1/user/login/jd", Some(root)).await.err(405, "not found");
    app.root("UserGet", json!({"mode": "token", "identity": t})).await.err(404);
}

/// The middleware: 307/301 for a trailing slash, 404 for unknown routes, CORS and Databunker's
/// security headers on API answers, OPTIONS 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_redirect_trailing_slashes_and_answer_unknown_paths_and_preflights() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let r = c.json("POST", "/v1/user/", Some(&app.root_token), json!({"login": "x"})).await;
    assert_eq!((r.code, r.location.as_deref()), (307, Some("/v1/user")));
    let r = c.get("/v1/userapps/?x=1", Some(&app.root_token)).await;
    assert_eq!((r.code, r.location.as_deref()), (301, Some("/v1/userapps?x=1")));
    c.get("/v1/no/such/route", None).await.err(404, "endpoint is missing");
    let r = c.get("/v1/userapps", Some(&app.root_token)).await;
    assert_eq!(r.cors.as_deref(), Some("*"));
    let pre =
        c.send("OPTIONS", "/v1/user", None, None, &[("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")]).await;
    assert_eq!((pre.code, pre.cors.as_deref()), (204, Some("*")));
    let res = reqwest::get(format!("{}/v1/status", app.base)).await.unwrap();
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.headers().contains_key("strict-transport-security"));
    // The operator routes stay out of the v1 wire API.
    let r = c.get("/v1/sys/seal-status", None).await;
    assert!(r.cors.is_none() && r.code == 200, "{}", r.body);
}

/// Endpoints 39-44: app records created, replaced, merged, patched, listed and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_records_are_replaced_by_post_and_changed_by_put() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let root = app.root_token.as_str();
    assert_eq!(c.get("/v1/userapps", Some(root)).await.ok()["apps"], Value::Null);
    let t = user(&c, root, json!({"login": "ann"})).await;
    let base = format!("/v1/userapp/token/{t}");
    assert_eq!(c.json("POST", &format!("{base}/shop"), Some(root), json!({"cart": [1], "coupon": "X"})).await.ok()["token"], t.as_str());
    c.json("POST", "/v1/userapp/login/ann/shop", Some(root), json!({"cart": [2]})).await.ok();
    assert_eq!(c.get(&format!("{base}/shop"), Some(root)).await.ok()["data"], json!({"cart": [2]}));
    c.json("PUT", &format!("{base}/shop"), Some(root), json!({"size": "M"})).await.ok();
    c.json("PUT", &format!("{base}/shop"), Some(root), json!([{"op": "add", "path": "/cart/-", "value": 3}])).await.ok();
    assert_eq!(c.get(&format!("{base}/shop"), Some(root)).await.ok()["data"], json!({"cart": [2, 3], "size": "M"}));
    assert_eq!(app.root("AppdataGet", json!({"mode": "token", "identity": t, "appname": "shop"})).await.ok()["appdata"]["size"], "M");
    c.json("POST", &format!("{base}/notes"), Some(root), json!({"n": 1})).await.ok();
    let list = c.get(&base, Some(root)).await;
    let mut apps: Vec<String> = list.ok()["apps"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    apps.sort();
    assert_eq!(apps, ["notes", "shop"]);
    assert_eq!(list.ok()["token"], t.as_str());
    assert!(c.get("/v1/userapps", Some(root)).await.ok()["apps"].as_array().unwrap().len() == 2);
    assert_eq!(c.send("DELETE", &format!("{base}/notes"), Some(root), None, &[]).await.ok()["token"], t.as_str());
    c.get(&format!("{base}/notes"), Some(root)).await.err(405, "not found");
    c.get(&format!("{base}/Bad!"), Some(root)).await.err(405, "bad appname");
    c.json("POST", &format!("{base}/shop"), Some(root), json!({})).await.err(405, "empty body");
    c.send("PUT", &format!("{base}/shop"), Some(root), Some(("text/plain", "{\"a\":1}".into())), &[])
        .await
        .err(405, "failed to decode request body");
    c.get(&format!("{base}/shop"), None).await.denied();
    c.get("/v1/userapps", None).await.denied();
}

/// Endpoints 45-48: sessions by uuid, owned through a login field, listed per user; the
/// "not found" message session-store matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_kept_per_uuid_and_listed_per_user() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let root = app.root_token.as_str();
    let t = user(&c, root, json!({"login": "sam"})).await;
    let (s, anon) = (uuid(), uuid());
    assert_eq!(
        c.json("POST", &format!("/v1/session/{s}"), Some(root), json!({"login": "sam", "cart": [1]})).await.ok()["session"],
        s.as_str()
    );
    c.json("POST", &format!("/v1/session/{anon}"), Some(root), json!({"cart": [9], "expiration": "10m"})).await.ok();
    let got = c.get(&format!("/v1/session/{s}"), Some(root)).await;
    assert_eq!(got.ok()["data"], json!({"login": "sam", "cart": [1]}));
    assert!(got.ok()["when"].as_i64().unwrap() > 1_700_000_000);
    c.json("POST", &format!("/v1/session/{s}"), Some(root), json!({"login": "sam", "cart": [2]})).await.ok();
    let list = c.get(&format!("/v1/sessions/token/{t}"), Some(root)).await;
    assert_eq!(list.ok()["total"], 1);
    assert_eq!((&list.ok()["rows"][0]["session"], &list.ok()["rows"][0]["data"]["cart"]), (&json!(s), &json!([2])));
    assert_eq!(c.get(&format!("/v1/session/{anon}"), Some(root)).await.ok()["data"]["cart"], json!([9]));
    assert_eq!(c.send("DELETE", &format!("/v1/session/{s}"), Some(root), None, &[]).await.ok(), &json!({"status": "ok"}));
    c.send("DELETE", &format!("/v1/session/{s}"), Some(root), None, &[]).await.ok();
    c.get(&format!("/v1/session/{s}"), Some(root)).await.err(405, "not found");
    c.get("/v1/session/not-a-uuid", Some(root)).await.err(405, "not found");
    c.json("POST", "/v1/session/not-a-uuid", Some(root), json!({"a": 1})).await.err(405, "bad uuid");
    c.json("POST", &format!("/v1/session/{}", uuid()), Some(root), json!({})).await.err(405, "empty body");
    c.get(&format!("/v1/session/{anon}"), None).await.denied();
    assert_eq!(app.root("SessionGet", json!({"sessionuuid": anon})).await.ok()["sessiondata"]["cart"], json!([9]));
}

/// Endpoints 26-38: legal bases, processing activities and agreements, with Databunker's
/// fields, null lists and message quirks; consents need a credential in every mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_bases_activities_and_agreements_follow_databunker() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let root = app.root_token.as_str();
    let t = user(&c, root, json!({"email": "cat@example.com"})).await;
    let lb = json!({"basistype": "consent", "module": "cookie-popup", "shortdesc": "Ads", "requiredflag": 1, "requiredmsg": "Needed"});
    c.json("POST", "/v1/lbasis/Ads", Some(root), lb).await.ok();
    c.json("POST", "/v1/lbasis/ads", Some(root), json!({"shortdesc": "Adverts", "module": "cookie-popup"})).await.ok();
    let rows = c.get("/v1/lbasis", Some(root)).await.ok().clone();
    assert_eq!((&rows["total"], &rows["rows"][0]["brief"], &rows["rows"][0]["shortdesc"]), (&json!(1), &json!("ads"), &json!("Adverts")));
    assert_eq!((&rows["rows"][0]["status"], &rows["rows"][0]["requiredflag"]), (&json!("active"), &json!(false)));
    c.json("POST", "/v1/lbasis/1bad", Some(root), json!({})).await.err(405, "bad brief format");

    c.json("POST", "/v1/pactivity/tracking", Some(root), json!({"script": "track.js", "fulldesc": "Tracking"})).await.ok();
    let acts = c.get("/v1/pactivity", Some(root)).await.ok().clone();
    assert_eq!((&acts["rows"][0]["title"], &acts["rows"][0]["briefs"]), (&json!("tracking"), &Value::Null));
    c.send("POST", "/v1/pactivity/tracking/ads", Some(root), None, &[]).await.ok();
    c.send("POST", "/v1/pactivity/tracking/nosuch", Some(root), None, &[]).await.err(405, "not found");
    let acts = c.get("/v1/pactivity", Some(root)).await.ok().clone();
    assert_eq!((&acts["rows"][0]["legalbasis"], &acts["rows"][0]["briefs"][0]["brief"]), (&json!("ads"), &json!("ads")));
    // Public cookie settings (5) and UI settings (4).
    let cs = c.get("/v1/sys/cookiesettings", None).await.ok().clone();
    assert_eq!((&cs["rows"][0]["brief"], &cs["scripts"]), (&json!("ads"), &json!([{"script": "track.js", "briefs": ["ads"]}])));
    app.root("TenantSetUIConf", json!({"companytitle": "Cat Corp"})).await.ok();
    assert_eq!(c.get("/v1/sys/uiconfiguration", None).await.ok()["ui"]["CompanyTitle"], "Cat Corp");

    c.json("POST", "/v1/agreement/ads/email/cat@example.com", Some(root), json!({"referencecode": "r1", "expiration": "1m"})).await.ok();
    let a = c.get(&format!("/v1/agreement/ads/token/{t}"), Some(root)).await.ok()["data"].clone();
    assert_eq!((&a["status"], &a["referencecode"], &a["agreementmethod"]), (&json!("yes"), &json!("r1"), &json!("api")));
    let span = a["endtime"].as_i64().unwrap() - a["starttime"].as_i64().unwrap();
    assert!((31 * 86_400 - 5..=31 * 86_400 + 5).contains(&span), "m is a 31-day month: {span}");
    let list = c.get(&format!("/v1/agreements/token/{t}"), Some(root)).await.ok().clone();
    assert_eq!((&list["total"], &list["rows"][0]["brief"]), (&json!(1), &json!("ads")));
    c.get(&format!("/v1/agreement/nosuch/token/{t}"), Some(root)).await.err(404, "not found");
    c.json("POST", &format!("/v1/agreement/nosuch/token/{t}"), Some(root), json!({})).await.err(404, "not found");
    c.json("POST", &format!("/v1/agreement/Bad_Brief/token/{t}"), Some(root), json!({})).await.err(405, "incorrect brief format");
    c.send("DELETE", &format!("/v1/agreement/nosuch/token/{t}"), Some(root), None, &[]).await.err(405, "not  found");
    // No consent change by email without a credential (Databunker allows it).
    c.json("POST", "/v1/agreement/ads/email/cat@example.com", None, json!({})).await.denied();
    c.send("DELETE", "/v1/agreement/ads/email/cat@example.com", None, None, &[]).await.denied();
    c.send("DELETE", "/v1/agreement/ads/email/cat@example.com", Some(root), None, &[]).await.ok();
    assert_eq!(c.get(&format!("/v1/agreement/ads/token/{t}"), Some(root)).await.ok()["data"]["status"], "no");
    c.json("POST", &format!("/v1/agreement/ads/token/{t}"), Some(root), json!({"status": "Agree"})).await.ok();
    c.send("DELETE", "/v1/agreement/ads", Some(root), None, &[]).await.ok();
    assert_eq!(c.get(&format!("/v1/agreement/ads/token/{t}"), Some(root)).await.ok()["data"]["status"], "no");
    assert_eq!(
        app.root("AgreementGet", json!({"mode": "token", "identity": t, "brief": "ads"})).await.ok()["agreement"]["status"],
        "withdrawn"
    );

    c.send("DELETE", "/v1/pactivity/tracking/ads", Some(root), None, &[]).await.ok();
    c.send("DELETE", "/v1/pactivity/tracking", Some(root), None, &[]).await.ok();
    assert_eq!(c.get("/v1/pactivity", Some(root)).await.ok()["total"], 0);
    c.send("DELETE", "/v1/lbasis/ads", Some(root), None, &[]).await.ok();
    c.get("/v1/lbasis", None).await.denied();
    c.get("/v1/pactivity", None).await.denied();
}

/// Endpoints 14-18: start, status, the public retain and delete links, cancel; the deletion is
/// the sweeper's, seen through v2 as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiration_flow_keeps_or_deletes_the_record_by_its_links() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let root = app.root_token.as_str();
    let keep = user(&c, root, json!({"email": "keep@example.com"})).await;
    let drop = user(&c, root, json!({"email": "drop@example.com"})).await;
    let none = c.get(&format!("/v1/exp/status/token/{keep}"), Some(root)).await.ok().clone();
    assert_eq!((&none["expstatus"], &none["exptime"]), (&json!(""), &json!(0)));

    let e = c.json("POST", "/v1/exp/start/email/keep@example.com", Some(root), json!({"expiration": "1h"})).await.ok()["exptoken"].clone();
    let st = c.get(&format!("/v1/exp/status/token/{keep}"), Some(root)).await.ok().clone();
    assert_eq!((&st["expstatus"], &st["exptoken"]), (&json!("wait"), &e));
    let left = st["exptime"].as_i64().unwrap() - strongroom::store::now_secs();
    assert!((3590..=3600).contains(&left), "{left}");
    c.json("POST", "/v1/exp/start/email/keep@example.com", None, json!({})).await.denied();
    assert_eq!(c.get(&format!("/v1/exp/retain/{}", e.as_str().unwrap()), None).await.body, json!("OK"));
    c.get(&format!("/v1/exp/retain/{}", e.as_str().unwrap()), None).await.err(405, "not found");
    let st = c.get(&format!("/v1/exp/status/token/{keep}"), Some(root)).await.ok().clone();
    assert_eq!((&st["expstatus"], &st["exptoken"], &st["exptime"]), (&json!("retain"), &json!(""), &json!(0)));
    // Retained: the record has no deadline again.
    let ft = app.root("UserGet", json!({"mode": "token", "identity": keep})).await.ok()["finaltime"].clone();
    assert_eq!(ft.as_i64().unwrap_or(0), 0, "{ft}");

    let e2 =
        c.json("POST", &format!("/v1/exp/start/token/{drop}"), Some(root), json!({})).await.ok()["exptoken"].as_str().unwrap().to_string();
    c.get(&format!("/v1/exp/delete/{}", uuid()), None).await.err(405, "not found");
    // Another tenant's link does nothing here.
    app.create_tenant("other").await;
    let foreign = c.send("GET", &format!("/v1/exp/delete/{e2}"), None, None, &[("X-Bunker-Tenant", "other")]).await;
    foreign.err(405, "not found");
    assert_eq!(c.get(&format!("/v1/exp/delete/{e2}"), None).await.body, json!("OK"));
    c.get(&format!("/v1/user/token/{drop}"), Some(root)).await.err(405, "not found");
    app.root("UserGet", json!({"mode": "token", "identity": drop})).await.err(404);
    let events = app.root("AuditListUserEvents", json!({"mode": "token", "identity": keep, "limit": 50})).await;
    let types: Vec<String> = events.ok()["rows"].as_array().unwrap().iter().map(|r| r["eventtype"].as_str().unwrap().to_string()).collect();
    assert!(types.iter().any(|t| t == "UserExpirationRetain") && types.iter().any(|t| t == "UserExpirationStart"), "{types:?}");

    c.json("POST", &format!("/v1/exp/start/token/{keep}"), Some(root), json!({"expiration": "10d"})).await.ok();
    c.send("DELETE", &format!("/v1/exp/cancel/token/{keep}"), Some(root), None, &[]).await.ok();
    assert_eq!(c.get(&format!("/v1/exp/status/token/{keep}"), Some(root)).await.ok()["expstatus"], "");
    c.get(&format!("/v1/exp/status/token/{keep}"), None).await.denied();
}

/// Endpoints 12, 13, 52, 10, 11, 21-25, 41: passwordless login for a user-self xtoken, whose
/// changes become requests the admin approves or cancels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_xtoken_reads_its_own_record_and_files_requests() {
    let (app, hook) = crate::portal::portal_app(|_| {}).await;
    let c = Client::new(&app);
    let root = app.root_token.as_str();
    let me = user(&c, root, json!({"email": "me@example.com", "name": "Me"})).await;
    let other = user(&c, root, json!({"email": "other@example.com"})).await;

    let (id, digits) = crate::login::captcha(&app).await;
    let img = c.get(&format!("/v1/captcha/{id}"), None).await;
    assert_eq!((img.code, img.ctype.as_str()), (200, "image/svg+xml"));
    use base64::Engine;
    let drawn = format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(img.body.as_str().unwrap()));
    assert_eq!(crate::login::read_captcha(&drawn), digits, "the v1 image draws the same digits");
    c.get("/v1/captcha/1.2.3", None).await.err(405, "bad code");
    let bad = c.get(&format!("/v1/prelogin/email/me@example.com/000000/{id}"), None).await;
    if digits != "000000" {
        assert_eq!((bad.code, &bad.body), (200, &json!({"status": "error", "result": "captcha-error"})));
    }
    c.get(&format!("/v1/prelogin/login/me/{digits}/{id}"), None).await.err(405, "bad mode");
    let sent = c.get(&format!("/v1/prelogin/email/me@example.com/{digits}/{id}"), None).await;
    assert_eq!(sent.ok()["result"], "done");
    let code = hook.code_for("me@example.com").await;
    c.get("/v1/login/email/me@example.com/000001", None).await.err(405, "internal error");
    let login = c.get(&format!("/v1/login/email/me@example.com/{code}"), None).await.ok().clone();
    assert_eq!(login["token"], me.as_str());
    let x = login["xtoken"].as_str().unwrap().to_string();
    c.get(&format!("/v1/login/email/me@example.com/{code}"), None).await.err(405, "internal error");

    assert_eq!(c.get(&format!("/v1/user/token/{me}"), Some(&x)).await.ok()["data"]["name"], "Me");
    c.get(&format!("/v1/user/token/{other}"), Some(&x)).await.err(405, "not found");
    // The person's changes are requests.
    let r = c.json("PUT", &format!("/v1/user/token/{me}"), Some(&x), json!({"email": "new@example.com"})).await.ok().clone();
    assert_eq!(r["result"], "request-created");
    let rtoken = r["rtoken"].as_str().unwrap().to_string();
    let del = c.send("DELETE", &format!("/v1/user/token/{me}"), Some(&x), None, &[]).await.ok().clone();
    assert_eq!(del["result"], "request-created");
    c.json("POST", &format!("/v1/userapp/token/{me}/shop"), Some(root), json!({"a": 1})).await.ok();
    let app_change = c.json("PUT", &format!("/v1/userapp/token/{me}/shop"), Some(&x), json!({"a": 2})).await.ok().clone();
    assert_eq!(app_change["result"], "request-created");

    let mine = c.get(&format!("/v1/requests/token/{me}"), Some(&x)).await.ok().clone();
    assert_eq!(mine["rows"].as_array().unwrap().len(), 3, "{mine}");
    assert_eq!(c.get(&format!("/v1/requests/token/{other}"), Some(root)).await.ok()["rows"], Value::Null);
    let one = c.get(&format!("/v1/request/{rtoken}"), Some(&x)).await.ok().clone();
    assert_eq!((&one["token"], &one["requeststatus"], &one["original"]["email"]), (&json!(me), &json!("open"), &json!("me@example.com")));
    // Another person's request is not found for this xtoken.
    let theirs = c.json("PUT", &format!("/v1/user/token/{other}"), Some(root), json!({"name": "O"})).await;
    theirs.ok();
    let x_other =
        app.root("XTokenCreateForUser", json!({"mode": "token", "identity": other})).await.ok()["xtoken"].as_str().unwrap().to_string();
    let filed = c.json("PUT", &format!("/v1/user/token/{other}"), Some(&x_other), json!({"email": "o2@example.com"})).await.ok().clone();
    c.get(&format!("/v1/request/{}", filed["rtoken"].as_str().unwrap()), Some(&x)).await.err(405, "not found");
    c.json("DELETE", &format!("/v1/request/{rtoken}"), Some(&x), json!({})).await.denied();
    let open = c.get("/v1/requests", Some(root)).await.ok().clone();
    assert_eq!(open["total"], 4);
    c.get("/v1/requests", Some(&x)).await.denied();
    c.json("POST", &format!("/v1/request/{rtoken}"), Some(&x), json!({"reason": "mine"})).await.denied();
    c.json("POST", &format!("/v1/request/{rtoken}"), Some(root), json!({"reason": "ok"})).await.ok();
    assert_eq!(c.get("/v1/user/email/new@example.com", Some(root)).await.ok()["token"], me.as_str());
    let del_r = del["rtoken"].as_str().unwrap();
    c.json("DELETE", &format!("/v1/request/{del_r}"), Some(root), json!({"reason": "no"})).await.ok();
    let decided = c.json("DELETE", &format!("/v1/request/{del_r}"), Some(root), json!({})).await;
    assert_eq!(decided.code, 405, "{}", decided.body);
    assert!(decided.body["message"].as_str().unwrap().starts_with("wrong status"), "{}", decided.body);
    assert_eq!(c.get("/v1/requests?status=approved", Some(root)).await.ok()["total"], 1);
}

/// Endpoints 19, 20, 49-51, 2, 3, 6: shared records, the audit trail, and the admin sys routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_records_audit_and_sys_routes_answer_as_documented() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let root = app.root_token.as_str();
    let t = user(&c, root, json!({"login": "lee", "name": "Lee", "city": "Oslo"})).await;
    let rec = c.json("POST", "/v1/sharedrecord/login/lee", Some(root), json!({"fields": "name", "expiration": "1h"})).await.ok()["record"]
        .clone();
    let got = c.get(&format!("/v1/get/{}", rec.as_str().unwrap()), Some(root)).await.ok().clone();
    assert_eq!(got["data"]["name"], "Lee");
    assert!(got["data"].get("city").is_none(), "{got}");
    c.get(&format!("/v1/get/{}", uuid()), Some(root)).await.denied();
    c.get(&format!("/v1/get/{}", rec.as_str().unwrap()), None).await.denied();
    c.json("POST", "/v1/sharedrecord/login/lee", Some(root), json!({"session": uuid()})).await;

    let list = c.get(&format!("/v1/audit/list/{t}?limit=100"), Some(root)).await.ok().clone();
    let rows = list["rows"].as_array().unwrap();
    assert!(rows.len() >= 3 && rows.iter().all(|r| r["more"] == true && r["when"].as_i64().is_some()), "{list}");
    assert!(rows.iter().any(|r| r["title"] == "Personal record created"), "{list}");
    let created = rows.iter().find(|r| r["action"] == "UserCreate").unwrap();
    let ev = c.get(&format!("/v1/audit/get/{}", created["atoken"].as_str().unwrap()), Some(root)).await.ok().clone();
    assert_eq!(ev["event"]["action"], "UserCreate");
    let all = c.get("/v1/audit/admin?limit=5", Some(root)).await.ok().clone();
    assert_eq!(all["rows"].as_array().unwrap().len(), 5);
    c.get(&format!("/v1/audit/list/{t}"), None).await.denied();
    c.get("/v1/audit/admin", None).await.denied();
    c.get(&format!("/v1/audit/get/{}", uuid()), Some(root)).await.err(405, "not found");

    let b = c.get("/v1/sys/backup", Some(root)).await;
    assert_eq!(b.code, 405);
    assert!(b.body["message"].as_str().unwrap().contains("docs/operations.md"), "{}", b.body);
    c.get("/v1/sys/backup", None).await.denied();
    let conf = c.get("/v1/sys/configuration", Some(root)).await.ok().to_string();
    for secret in [root, app.db_url.as_str(), "postgres://", app.shares[0].as_str()] {
        assert!(!conf.contains(secret), "configuration leaks {secret}");
    }
    c.get("/v1/sys/configuration", None).await.denied();
    let m = c.get("/v1/metrics", Some(root)).await;
    assert!(m.code == 200 && m.body.as_str().unwrap().contains("strongroom_"), "{}", m.body);
    assert_eq!(c.get("/v1/metrics", None).await.code, 403);
    // A tenant named by header: an unknown one is refused.
    let r = c.send("GET", &format!("/v1/user/token/{t}"), Some(root), None, &[("X-Bunker-Tenant", "nosuch")]).await;
    r.denied();
}

/// Databunker's quick start, verbatim but for the port, with curl against `strongroom demo`; and
/// the demo's fixed login code for phone 4444.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databunkers_quick_start_runs_verbatim_against_the_demo() {
    let dir = temp_dir("v1-quickstart");
    let demo = tokio::task::spawn_blocking({
        let d = dir.join("demo");
        move || crate::demo::start_demo(&d)
    })
    .await
    .unwrap();
    let hostport = demo.base.trim_start_matches("http://").trim_end_matches('/').to_string();
    let port = hostport.rsplit(':').next().unwrap().to_string();
    let quick_start = [
        r#"curl -s http://localhost:3000/v1/user -X POST -H "X-Bunker-Token: DEMO" -H "Content-Type: application/json" -d '{"first":"John","last":"Doe","login":"john","email":""}'"#,
        r#"curl -s -H "X-Bunker-Token: DEMO" -X GET http://localhost:3000/v1/user/login/john"#,
    ];
    let mut answers = Vec::new();
    for line in quick_start {
        let out = std::process::Command::new("sh").arg("-c").arg(line.replace(":3000", &format!(":{port}"))).output().expect("run curl");
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        answers.push(
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or_else(|_| panic!("{line}: {}", String::from_utf8_lossy(&out.stdout))),
        );
    }
    assert_eq!(answers[0]["status"], "ok", "{}", answers[0]);
    let token = answers[0]["token"].as_str().unwrap();
    assert_eq!(answers[1], json!({"status": "ok", "token": token, "data": {"first": "John", "last": "Doe", "login": "john", "email": ""}}));

    // Databunker's demo account: phone 4444 signs in with the code 4444 (demo mode only).
    let http = http_client();
    let post = |path: &str, body: Value| http.post(format!("{}{path}", demo.base)).header("X-Bunker-Token", "DEMO").json(&body).send();
    post("/v1/user", json!({"phone": "4444", "name": "Demo"})).await.unwrap();
    let cap: Value = http.post(format!("{}/v2/CaptchaCreate", demo.base)).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let (id, digits) = (cap["captchacode"].as_str().unwrap(), crate::login::read_captcha(cap["captchaimage"].as_str().unwrap()));
    let sent: Value = http.get(format!("{}/v1/prelogin/phone/4444/{digits}/{id}", demo.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(sent, json!({"status": "ok", "result": "done"}));
    let login: Value = http.get(format!("{}/v1/login/phone/4444/4444", demo.base)).send().await.unwrap().json().await.unwrap();
    let x = login["xtoken"].as_str().unwrap_or_else(|| panic!("{login}"));
    let me: Value =
        http.get(format!("{}/v1/user/phone/4444", demo.base)).header("X-Bunker-Token", x).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["data"]["name"], "Demo");
    tokio::task::spawn_blocking(move || crate::demo::stop_demo(demo)).await.unwrap();
}
