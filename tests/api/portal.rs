//! The privacy portal. The end-to-end walk runs in a real headless Chromium against a running
//! `strongroom demo` (tests/python/test_portal.py, Selenium with Debian's chromium and
//! chromium-driver; screenshots land in target/portal-screenshots). The refusals are driven
//! here over HTTP as a browser would send them (cookies, hidden fields), with sign-in codes
//! caught by a real notification webhook receiver.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::helpers::*;

/// Catches what the portal POSTs to `STRONGROOM_PORTAL_NOTIFY_URL`.
#[derive(Clone, Default)]
pub struct Webhook(Arc<Mutex<Vec<Value>>>);

impl Webhook {
    async fn serve(&self) -> String {
        let me = self.clone();
        let app = Router::new().route(
            "/notify",
            post(move |Json(v): Json<Value>| {
                let me = me.clone();
                async move {
                    me.0.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        url
    }

    /// The newest code sent to `to`, waiting for the (background) delivery.
    pub async fn code_for(&self, to: &str) -> String {
        for _ in 0..100 {
            if let Some(v) = self.0.lock().unwrap().iter().rev().find(|v| v["to"] == to) {
                return v["code"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no code was sent");
    }

    pub fn sent_to(&self, to: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|v| v["to"] == to).count()
    }
}

/// A browser: a cookie jar, no automatic redirects (Set-Cookie on a 303 must be seen).
struct Browser {
    base: String,
    http: reqwest::Client,
    jar: HashMap<String, String>,
    /// The `Host` the browser names (a tenant's subdomain), when not the server's address.
    host: Option<String>,
    /// The browser's `Accept-Language`.
    lang: Option<String>,
}

struct Got {
    status: u16,
    location: Option<String>,
    csp: String,
    text: String,
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn form_body(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Cookie names under the default (Secure) configuration.
const SESSION: &str = "__Secure-sr_session";
const DPO: &str = "__Secure-sr_dpo";

/// The value of hidden/visible input `name` in a page.
fn field(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no field {name} in page:\n{html}"));
    let rest = &html[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

impl Browser {
    fn new(base: &str) -> Browser {
        strongroom::custody::install_crypto_provider();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { base: base.to_string(), http, jar: HashMap::new(), host: None, lang: None }
    }

    fn cookie_header(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn finish(&mut self, r: reqwest::Response) -> Got {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            for attr in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Secure"] {
                assert!(c.contains(attr), "cookie without {attr}: {c}");
            }
            let (k, v) = c.split(';').next().unwrap().split_once('=').unwrap();
            if v.is_empty() {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_string(), v.to_string());
            }
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        let csp = r.headers().get("content-security-policy").expect("every portal answer carries a CSP").to_str().unwrap().to_string();
        Got { status, location, csp, text: r.text().await.unwrap() }
    }

    fn dress(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(h) = &self.host {
            req = req.header("host", h);
        }
        if let Some(l) = &self.lang {
            req = req.header("accept-language", l);
        }
        req.header("cookie", self.cookie_header())
    }

    async fn get(&mut self, path: &str) -> Got {
        let r = self.dress(self.http.get(format!("{}{path}", self.base))).send().await.unwrap();
        self.finish(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Got {
        let r = self
            .dress(self.http.post(format!("{}{path}", self.base)))
            .header("content-type", FORM)
            .body(form_body(form))
            .send()
            .await
            .unwrap();
        self.finish(r).await
    }

    /// Asks for a code; returns (tenant, challenge, csrf) of the code form.
    async fn ask_code(&mut self, tenant: &str, identity: &str) -> (String, String, Got) {
        let start = self.get("/portal/").await;
        assert_eq!(start.status, 200);
        let csrf = field(&start.text, "csrf");
        let got = self.post("/portal/signin", &[("csrf", &csrf), ("tenant", tenant), ("identity", identity)]).await;
        assert_eq!(got.status, 200, "{}", got.text);
        (field(&got.text, "challenge"), field(&got.text, "csrf"), got)
    }

    async fn verify(&mut self, tenant: &str, challenge: &str, csrf: &str, code: &str) -> Got {
        self.post("/portal/verify", &[("csrf", csrf), ("tenant", tenant), ("challenge", challenge), ("code", code)]).await
    }

    fn signed_in(&self) -> bool {
        self.jar.contains_key(SESSION)
    }

    async fn sign_in(&mut self, hook: &Webhook, tenant: &str, email: &str) {
        let (challenge, csrf, _) = self.ask_code(tenant, email).await;
        let got = self.verify(tenant, &challenge, &csrf, &hook.code_for(email).await).await;
        assert_eq!((got.status, got.location.as_deref()), (303, Some("/portal/me")), "{}", got.text);
        assert!(self.signed_in());
    }
}

pub async fn portal_app(adjust: impl FnOnce(&mut strongroom::config::Config)) -> (TestApp, Webhook) {
    let hook = Webhook::default();
    let url = hook.serve().await;
    let app = TestApp::spawn_configured(|c| {
        c.portal_notify_url = Some(url);
        adjust(c);
    })
    .await;
    (app, hook)
}

fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_wrong_codes_a_sixth_try_other_tenants_and_forged_forms() {
    let (app, hook) = portal_app(|_| {}).await;
    let ada = email("ada");
    let token = app.create_user(&app.root_token, None, json!({"email": ada, "name": "Ada"})).await;
    let (_, beta_admin) = app.create_tenant("portalbeta").await;
    app.create_user(&beta_admin, Some("portalbeta"), json!({"email": ada, "name": "Ada in beta"})).await;

    // The same answer for an unknown identity, and nothing is sent.
    let mut b = Browser::new(&app.base);
    let nobody = email("nobody");
    let (_, _, unknown) = b.ask_code("default", &nobody).await;
    let (challenge, csrf, known) = b.ask_code("default", &ada).await;
    let strip = |t: &str| t.split("name=\"challenge\"").next().unwrap().split("name=\"csrf\"").next().unwrap().to_string();
    assert_eq!(strip(&unknown.text), strip(&known.text));
    let (_, _, no_tenant) = b.ask_code("no-such-tenant", &ada).await;
    assert_eq!(strip(&no_tenant.text), strip(&known.text));
    let code = hook.code_for(&ada).await;
    assert_eq!(hook.sent_to(&nobody), 0);
    assert_eq!(hook.sent_to(&ada), 1, "one code: the unknown tenant sent none");
    assert_eq!(code.len(), 6);

    // A forged form: no CSRF token, another browser's token, another site's Origin.
    let got = b.post("/portal/verify", &[("tenant", "default"), ("challenge", &challenge), ("code", &code)]).await;
    assert_eq!(got.status, 403);
    let mut other = Browser::new(&app.base);
    let other_csrf = field(&other.get("/portal/").await.text, "csrf");
    assert_eq!(b.verify("default", &challenge, &other_csrf, &code).await.status, 403);
    let forged = b
        .http
        .post(format!("{}/portal/verify", app.base))
        .header("cookie", b.cookie_header())
        .header("origin", "https://evil.example")
        .header("content-type", FORM)
        .body(form_body(&[("csrf", csrf.as_str()), ("tenant", "default"), ("challenge", &challenge), ("code", &code)]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert!(!b.signed_in());

    // The code for tenant default does not open tenant portalbeta, where the same email lives.
    let got = b.verify("portalbeta", &challenge, &csrf, &code).await;
    assert_eq!(got.status, 403);
    assert!(!b.signed_in());

    // Five wrong tries, then the right code is a sixth try: refused.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (0..5).rev() {
        let got = b.verify("default", &challenge, &csrf, wrong).await;
        assert_eq!(got.status, 403);
        if left > 0 {
            assert!(got.text.contains(&format!("Tries left: {left}.")), "{}", got.text);
        }
    }
    let got = b.verify("default", &challenge, &csrf, &code).await;
    assert_eq!(got.status, 403);
    assert!(got.text.contains("can no longer be used"), "{}", got.text);
    assert!(!b.signed_in());

    // A fresh code works once; replaying it does not.
    let (challenge, csrf, _) = b.ask_code("default", &ada).await;
    let code = {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let c = hook.code_for(&ada).await;
        assert_eq!(hook.sent_to(&ada), 2);
        c
    };
    let got = b.verify("default", &challenge, &csrf, &code).await;
    assert_eq!(got.status, 303);
    let me = b.get("/portal/me").await;
    assert_eq!(me.status, 200);
    assert!(me.text.contains(&ada) && me.text.contains(&token));
    let mut replay = Browser::new(&app.base);
    let replay_csrf = field(&replay.get("/portal/").await.text, "csrf");
    assert_eq!(replay.verify("default", &challenge, &replay_csrf, &code).await.status, 403);
    assert!(!replay.signed_in());

    // Signed-in forms need the session's CSRF token too: without it, nothing changes.
    let got = b.post("/portal/me/profile", &[("f:name", "Mallory")]).await;
    assert_eq!(got.status, 403);
    let got = b.post("/portal/me/profile", &[("csrf", &replay_csrf), ("f:name", "Mallory")]).await;
    assert_eq!(got.status, 403);
    let pending = app.root("UserRequestListUserRequests", json!({"mode": "token", "identity": token})).await;
    assert_eq!(pending.ok()["rows"], json!([]), "no request was filed");

    // The per-identity limit: five codes per 10 minutes, answered alike for anyone.
    for _ in 0..3 {
        b.jar.remove(SESSION);
        b.ask_code("default", &ada).await;
    }
    let start = b.get("/portal/").await;
    let got = b.post("/portal/signin", &[("csrf", &field(&start.text, "csrf")), ("tenant", "default"), ("identity", &ada)]).await;
    assert_eq!(got.status, 429, "{}", got.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_is_refused() {
    let (app, hook) = portal_app(|c| c.portal_code_ttl_s = 1).await;
    let ada = email("late");
    app.create_user(&app.root_token, None, json!({"email": ada})).await;
    let mut b = Browser::new(&app.base);
    let (challenge, csrf, _) = b.ask_code("default", &ada).await;
    let code = hook.code_for(&ada).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let got = b.verify("default", &challenge, &csrf, &code).await;
    assert_eq!(got.status, 403);
    assert!(got.text.contains("can no longer be used"), "{}", got.text);
    assert!(!b.signed_in());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_session_reaches_only_its_own_record() {
    let (app, hook) = portal_app(|_| {}).await;
    let (ada, eve) = (email("ada"), email("eve"));
    let ada_token = app.create_user(&app.root_token, None, json!({"email": ada, "name": "Ada"})).await;
    let eve_token = app.create_user(&app.root_token, None, json!({"email": eve, "name": "Eve", "secret": "eve-only"})).await;
    let brief = format!("ads-{}", uuid::Uuid::new_v4().simple());
    app.root("LegalBasisCreate", json!({"brief": brief, "status": "active"})).await.ok();
    app.root("AgreementAccept", json!({"mode": "token", "identity": eve_token, "brief": brief})).await.ok();
    app.root("AppdataCreate", json!({"mode": "token", "identity": eve_token, "appname": "shop", "appdata": {"eve": "only"}})).await.ok();

    let mut b = Browser::new(&app.base);
    b.sign_in(&hook, "default", &ada).await;
    let me = b.get("/portal/me").await;
    let csrf = field(&me.text, "csrf");

    // Parameters naming Eve are ignored: the pages show and change Ada only.
    for path in [
        format!("/portal/me?token={eve_token}"),
        format!("/portal/me?mode=email&identity={eve}"),
        format!("/portal/me/apps?identity={eve_token}"),
        format!("/portal/me/consents?token={eve_token}"),
        format!("/portal/me/activity?identity={eve_token}"),
    ] {
        let got = b.get(&path).await;
        assert_eq!(got.status, 200, "{path}");
        assert!(!got.text.contains(&eve) && !got.text.contains("eve-only") && !got.text.contains(&brief), "{path} shows Eve's data");
    }
    let got = b
        .post(
            "/portal/me/profile",
            &[("csrf", &csrf), ("mode", "token"), ("identity", &eve_token), ("token", &eve_token), ("f:name", "Ada L."), ("f:secret", "x")],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let got = b.post("/portal/me/consents/withdraw", &[("csrf", &csrf), ("brief", &brief), ("identity", &eve_token)]).await;
    assert_eq!(got.status, 404, "Ada has no such consent; Eve's is not reachable");
    let export = b.post("/portal/me/export", &[("csrf", &csrf), ("identity", &eve_token)]).await;
    assert_eq!(export.status, 200);
    let doc: Value = serde_json::from_str(&export.text).unwrap();
    assert_eq!(doc["token"], ada_token.as_str());
    assert!(!export.text.contains(&eve) && !export.text.contains("eve-only"));

    // Eve is untouched; Ada's change became her own request, about her own record.
    let eve_now = app.root("UserGet", json!({"mode": "token", "identity": eve_token})).await;
    assert_eq!(eve_now.ok()["profile"]["name"], "Eve");
    assert_eq!(app.root("UserRequestListUserRequests", json!({"mode": "token", "identity": eve_token})).await.ok()["rows"], json!([]));
    let agreement = app.root("AgreementGet", json!({"mode": "token", "identity": eve_token, "brief": brief})).await;
    assert_eq!(agreement.ok()["agreement"]["status"], "active");
    let ada_requests = app.root("UserRequestListUserRequests", json!({"mode": "token", "identity": ada_token})).await;
    assert_eq!(ada_requests.ok()["rows"].as_array().unwrap().len(), 1);

    // The session's lease token itself, used against the API, reaches Ada only.
    let jwt = b.jar[SESSION].clone();
    let r = app.call("UserGet", Some(&jwt), None, json!({"mode": "token", "identity": eve_token})).await;
    r.err(404);
    let r = app.call("AuditListUserEvents", Some(&jwt), None, json!({"mode": "token", "identity": eve_token})).await;
    r.err(404);
    let r = app.call("AgreementCancel", Some(&jwt), None, json!({"mode": "token", "identity": eve_token, "brief": brief})).await;
    r.err(404);
    app.call("UserGet", Some(&jwt), None, json!({"mode": "token", "identity": ada_token})).await.ok();

    // A data subject's session does not open the DPO console, not even as the console cookie.
    let got = b.get("/portal/dpo").await;
    assert!(got.text.contains("Access token"), "the console asks for a credential");
    let mut forged = Browser::new(&app.base);
    forged.jar.insert(DPO.into(), jwt.clone());
    let got = forged.get("/portal/dpo").await;
    assert!(got.text.contains("Access token") && !got.text.contains("pending requests"));
    let uuid = ada_requests.body["rows"][0]["requestuuid"].as_str().unwrap().to_string();
    let got = forged.post(&format!("/portal/dpo/requests/{uuid}/decide"), &[("csrf", &csrf), ("decision", "approve")]).await;
    assert_eq!(got.status, 303, "refused to the sign-in");
    let r = app.root("UserRequestGet", json!({"requestuuid": uuid})).await;
    assert_eq!(r.ok()["request"]["status"], "pending");

    // Signing out revokes the lease: the token is dead for the API too.
    let me = b.get("/portal/me").await;
    b.post("/portal/signout", &[("csrf", &field(&me.text, "csrf"))]).await;
    assert!(!b.signed_in());
    app.call("UserGet", Some(&jwt), None, json!({"mode": "token", "identity": ada_token})).await.err(403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_policy_decides_whether_portal_edits_apply_at_once() {
    let (app, hook) = portal_app(|_| {}).await;
    let (_, admin) = app.create_tenant("selfserve").await;
    let ada = email("ada");
    let token = app.create_user(&admin, Some("selfserve"), json!({"email": ada, "name": "Ada", "age": 36})).await;
    let mut b = Browser::new(&app.base);
    b.sign_in(&hook, "selfserve", &ada).await;

    // Built-in rules: an edit becomes a request for the DPO.
    let csrf = field(&b.get("/portal/me").await.text, "csrf");
    let got = b.post("/portal/me/profile", &[("csrf", &csrf), ("f:name", "Ada L."), ("f:age", "37")]).await;
    assert!(got.text.contains("sent to the privacy officer"), "{}", got.text);
    let user = app.call("UserGet", Some(&admin), Some("selfserve"), json!({"mode": "token", "identity": token})).await;
    assert_eq!(user.ok()["profile"]["name"], "Ada");

    // A number field refuses text, and nothing is filed.
    let got = b.post("/portal/me/profile", &[("csrf", &csrf), ("f:age", "old")]).await;
    assert_eq!(got.status, 400);

    // The tenant lets its users correct themselves: role self-service may UserPatch.
    let call = |ep: &'static str, body: Value| app.call(ep, Some(&admin), Some("selfserve"), body);
    call("RoleCreate", json!({"rolename": "self-service"})).await.ok();
    let policy = json!({"Effect": "Allow", "Action": ["UserPatch"], "Resource": ["users.profile.*"]});
    call("PolicyCreate", json!({"policyname": "portal-edits", "policy": policy})).await.ok();
    call("RoleLinkPolicy", json!({"rolename": "self-service", "policyname": "portal-edits"})).await.ok();
    let got = b.post("/portal/me/profile", &[("csrf", &csrf), ("f:name", "Ada L."), ("f:age", "37")]).await;
    assert!(got.text.contains("Your changes are saved."), "{}", got.text);
    let user = app.call("UserGet", Some(&admin), Some("selfserve"), json!({"mode": "token", "identity": token})).await;
    assert_eq!(user.ok()["profile"], json!({"email": ada, "name": "Ada L.", "age": 37}));

    // Erasure stays a request whatever a tenant policy says.
    let csrf = field(&b.get("/portal/me/forget").await.text, "csrf");
    let got = b.post("/portal/me/forget", &[("csrf", &csrf)]).await;
    assert!(got.text.contains("sent to the privacy officer"), "{}", got.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dpo_console_takes_only_officer_credentials_and_keeps_none() {
    let (app, _) = portal_app(|_| {}).await;
    let (_, admin) = app.create_tenant("dpoland").await;
    let writer = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", &admin), ("x-bunker-tenant", "dpoland")],
            serde_json::to_vec(&json!({"role": "app-writer"})).unwrap(),
        )
        .await;
    let writer = writer.ok()["token"].as_str().unwrap().to_string();
    let mut b = Browser::new(&app.base);
    let csrf = field(&b.get("/portal/dpo").await.text, "csrf");
    // An application credential is a real credential, but not an officer's.
    let got = b.post("/portal/dpo/signin", &[("csrf", &csrf), ("tenant", "dpoland"), ("token", &writer)]).await;
    assert_eq!(got.status, 403);
    assert!(!b.jar.contains_key(DPO));
    let csrf = field(&b.get("/portal/dpo").await.text, "csrf");
    let got = b.post("/portal/dpo/signin", &[("csrf", &csrf), ("tenant", "dpoland"), ("token", "wrong")]).await;
    assert_eq!(got.status, 403);
    assert!(!b.jar.contains_key(DPO));
    let got = b.post("/portal/dpo/signin", &[("csrf", &csrf), ("tenant", "dpoland"), ("token", &admin)]).await;
    assert_eq!((got.status, got.location.as_deref()), (303, Some("/portal/dpo")));
    let cookie = b.jar[DPO].clone();
    assert_ne!(cookie, admin, "the console keeps a lease, not the credential");
    let home = b.get("/portal/dpo").await;
    assert!(home.text.contains("pending requests"), "{}", home.text);
}

/// The headline walk in a real browser; see tests/python/test_portal.py.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_end_to_end_in_headless_chromium_against_the_demo() {
    let dir = temp_dir("portal-demo");
    let demo = crate::demo::start_demo_logging(&dir.join("demo"), "info");
    let log = demo.log.clone();
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/portal-screenshots");
    let _ = std::fs::remove_dir_all(&artifacts);
    let py = crate::official_client::python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_portal.py");
    let out = tokio::process::Command::new(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&script)
        .env("STRONGROOM_URL", &demo.base)
        .env("PORTAL_ARTIFACTS", &artifacts)
        .output()
        .await
        .expect("run pytest");
    crate::demo::stop_demo(demo);
    // No personal data in the log: the test's users are all @example.com, and their names.
    // (The start-up banner's own example, ada@example.com, aside.)
    let log = log.lock().unwrap().iter().filter(|l| !l.contains("Try: curl")).cloned().collect::<Vec<_>>().join("\n");
    assert!(log.contains("/portal/verify") && log.contains("DEMO MODE: portal sign-in code"), "the log was captured:\n{log}");
    for pii in ["@example.com", "Grace", "Hopper", "Keyboard User", "Arlington"] {
        assert!(!log.contains(pii), "{pii} in the log:\n{log}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("portal (pytest + chromium): {}", stdout.lines().last().unwrap_or(""));
    crate::helpers::record_suite_count("portal (pytest + chromium)", stdout.lines().last().unwrap_or(""));
    assert!(out.status.success(), "portal browser tests failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let shots =
        std::fs::read_dir(&artifacts).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png")).count();
    assert!(shots >= 30, "screenshots of every page (desktop and phone): {shots}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_rate_limited_per_address_and_the_host_names_the_tenant() {
    let (app, hook) = portal_app(|_| {}).await;
    // The sign-in page of acme.<host> offers tenant acme.
    let r = http_client().get(format!("{}/portal/", app.base)).header("host", "acme.vault.example.com").send().await.unwrap();
    let page = r.text().await.unwrap();
    assert_eq!(field(&page, "tenant"), "acme");

    // 20 sign-in steps a minute per address (each for a different identity, under the
    // per-identity limit), then 429: nothing stored, nothing sent.
    let mut b = Browser::new(&app.base);
    let csrf = field(&b.get("/portal/").await.text, "csrf");
    for i in 0..20 {
        let got = b.post("/portal/signin", &[("csrf", &csrf), ("tenant", "default"), ("identity", &format!("n{i}@example.com"))]).await;
        assert_eq!(got.status, 200, "attempt {i}");
    }
    let ada = email("ada");
    app.create_user(&app.root_token, None, json!({"email": ada})).await;
    let got = b.post("/portal/signin", &[("csrf", &csrf), ("tenant", "default"), ("identity", &ada)]).await;
    assert_eq!(got.status, 429, "{}", got.text);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(hook.sent_to(&ada), 0);
}

/// Concurrent requests for one identity cannot all pass the count before one inserts: the
/// identity is locked for the step (no more than 5 codes from one address, however parallel).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_code_requests_for_one_identity_stay_within_the_limit() {
    let (app, hook) = portal_app(|_| {}).await;
    let ada = email("race");
    app.create_user(&app.root_token, None, json!({"email": ada})).await;
    let mut b = Browser::new(&app.base);
    let start = b.get("/portal/").await;
    let csrf = field(&start.text, "csrf");
    let cookie = b.cookie_header();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (http, url, cookie, csrf, ada) =
            (b.http.clone(), format!("{}/portal/signin", app.base), cookie.clone(), csrf.clone(), ada.clone());
        tasks.push(tokio::spawn(async move {
            let body = form_body(&[("csrf", &csrf), ("tenant", "default"), ("identity", &ada)]);
            http.post(url).header("cookie", cookie).header("content-type", FORM).body(body).send().await.unwrap().status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 7, "{codes:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(hook.sent_to(&ada), 5);
}

/// Ten wrong codes in an hour, over any number of challenges, and even the right code is
/// refused; the code goes to the stored contact, not to the spelling typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_are_budgeted_per_person_and_codes_go_to_the_stored_contact() {
    let (app, hook) = portal_app(|_| {}).await;
    let ada = email("budget");
    let token = app.create_user(&app.root_token, None, json!({"email": ada})).await;
    let mut b = Browser::new(&app.base);
    let shouted = format!("  {}  ", ada.to_uppercase());
    for _ in 0..2 {
        let (challenge, csrf, _) = b.ask_code("default", &shouted).await;
        let code = hook.code_for(&ada).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..5 {
            assert_eq!(b.verify("default", &challenge, &csrf, wrong).await.status, 403);
        }
    }
    assert!(hook.0.lock().unwrap().iter().all(|v| v["to"] == ada.as_str()), "sent to the stored email, lowercase");
    let (challenge, csrf, _) = b.ask_code("default", &ada).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let code = hook.code_for(&ada).await;
    let got = b.verify("default", &challenge, &csrf, &code).await;
    assert_eq!(got.status, 429, "{}", got.text);
    assert!(!b.signed_in());
    // The guessing is in the person's own audit trail.
    let events = app.root("AuditListUserEvents", json!({"mode": "token", "identity": token, "limit": 100})).await;
    let denied =
        events.ok()["rows"].as_array().unwrap().iter().filter(|e| e["eventtype"] == "PortalSignIn" && e["outcome"] == "denied").count();
    assert_eq!(denied, 10);
}

/// Whatever a tenant grants its role self-service, a data subject's token never reaches
/// tenant-wide or administrative endpoints, its own request decisions, or erasure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_service_grants_have_a_ceiling() {
    let (app, hook) = portal_app(|_| {}).await;
    let (_, admin) = app.create_tenant("ceiling").await;
    let call = |ep: &'static str, body: Value| app.call(ep, Some(&admin), Some("ceiling"), body);
    call("RoleCreate", json!({"rolename": "self-service"})).await.ok();
    let everything = json!({"Effect": "Allow", "Action": ["*"], "Resource": ["*"]});
    call("PolicyCreate", json!({"policyname": "all", "policy": everything})).await.ok();
    call("RoleLinkPolicy", json!({"rolename": "self-service", "policyname": "all"})).await.ok();
    let ada = email("ceiling");
    let other = email("other");
    let token = app.create_user(&admin, Some("ceiling"), json!({"email": ada, "name": "Ada"})).await;
    app.create_user(&admin, Some("ceiling"), json!({"email": other, "name": "Other"})).await;
    let mut b = Browser::new(&app.base);
    b.sign_in(&hook, "ceiling", &ada).await;
    let jwt = b.jar[SESSION].clone();
    let me = |ep: &'static str, body: Value| app.call(ep, Some(&jwt), Some("ceiling"), body);
    let own = json!({"mode": "token", "identity": token});

    me("BulkListUnlock", json!({})).await.err(403);
    me("UserCreate", json!({"profile": {"email": "new@example.com"}})).await.err(403);
    me("UserDelete", own.clone()).await.err(403);
    me("AuditGetEvent", json!({"auditeventuuid": uuid::Uuid::new_v4().to_string()})).await.err(403);
    me("TokenCreate", json!({"tokentype": "email", "record": "x@example.com"})).await.err(403);
    me("GroupCreate", json!({"groupname": "mine"})).await.err(403);
    me("PolicyListAllPolicies", json!({})).await.err(403);
    me("LegalBasisCreate", json!({"brief": "sneaky"})).await.err(403);
    let creds = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", &jwt), ("x-bunker-tenant", "ceiling")],
            b"{\"role\":\"tenant-admin\"}".to_vec(),
        )
        .await;
    creds.err(403);
    let req = me("UserDeleteRequest", own.clone()).await;
    let uuid = req.ok()["requestuuid"].as_str().unwrap().to_string();
    me("UserRequestApprove", json!({"requestuuid": uuid})).await.err(403);
    app.call("UserGet", Some(&admin), Some("ceiling"), own.clone()).await.ok();

    // What the grant is for still works: the user's own record, directly.
    let csrf = field(&b.get("/portal/me").await.text, "csrf");
    let got = b.post("/portal/me/profile", &[("csrf", &csrf), ("f:name", "Ada L.")]).await;
    assert!(got.text.contains("Your changes are saved."), "{}", got.text);
    // But a sign-in identity moves only through the DPO, even with the grant.
    let got = b.post("/portal/me/profile", &[("csrf", &csrf), ("f:email", "thief@example.com")]).await;
    assert!(got.text.contains("sent to the privacy officer"), "{}", got.text);
    let now = app.call("UserGet", Some(&admin), Some("ceiling"), own).await;
    assert_eq!(now.ok()["profile"], json!({"email": ada, "name": "Ada L."}));
}

/// Every signed-in form refuses a post without its token or from another site; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_refuses_forgeries_and_cookies_are_secure() {
    let (app, hook) = portal_app(|_| {}).await;
    let ada = email("forms");
    let token = app.create_user(&app.root_token, None, json!({"email": ada, "name": "Ada"})).await;
    let brief = format!("news-{}", uuid::Uuid::new_v4().simple());
    app.root("LegalBasisCreate", json!({"brief": brief, "status": "active"})).await.ok();
    app.root("AgreementAccept", json!({"mode": "token", "identity": token, "brief": brief})).await.ok();
    let mut b = Browser::new(&app.base);
    b.sign_in(&hook, "default", &ada).await;
    let csrf = field(&b.get("/portal/me").await.text, "csrf");
    for (path, extra) in [
        ("/portal/me/profile", vec![("f:name", "Mallory")]),
        ("/portal/me/consents/withdraw", vec![("brief", brief.as_str())]),
        ("/portal/me/export", vec![]),
        ("/portal/me/forget", vec![]),
        ("/portal/signout", vec![]),
    ] {
        assert_eq!(b.post(path, &extra).await.status, 403, "{path} without a token");
        let mut with = extra.clone();
        with.push(("csrf", &csrf));
        for (h, v) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site"), ("sec-fetch-site", "same-site")] {
            let r = b
                .http
                .post(format!("{}{path}", app.base))
                .header("cookie", b.cookie_header())
                .header(h, v)
                .header("content-type", FORM)
                .body(form_body(&with))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 403, "{path} with {h}: {v}");
        }
    }
    assert!(b.signed_in());
    let user = app.root("UserGet", json!({"mode": "token", "identity": token})).await;
    assert_eq!(user.ok()["profile"]["name"], "Ada");
    let agreement = app.root("AgreementGet", json!({"mode": "token", "identity": token, "brief": brief})).await;
    assert_eq!(agreement.ok()["agreement"]["status"], "active");
    assert_eq!(app.root("UserRequestListUserRequests", json!({"mode": "token", "identity": token})).await.ok()["rows"], json!([]));
    // The same-origin post goes through.
    let got = b.post("/portal/me/consents/withdraw", &[("csrf", &csrf), ("brief", &brief)]).await;
    assert_eq!(got.status, 200, "{}", got.text);
}

/// Revoking the credential that opened the DPO console ends the console session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_officers_credential_ends_the_console_session() {
    let (app, _) = portal_app(|_| {}).await;
    let (_, admin) = app.create_tenant("revokeland").await;
    let minted = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", &admin), ("x-bunker-tenant", "revokeland")],
            b"{\"role\":\"dpo\"}".to_vec(),
        )
        .await;
    let (dpo, id) = (minted.ok()["token"].as_str().unwrap().to_string(), minted.body["credentialid"].clone());
    let mut b = Browser::new(&app.base);
    let csrf = field(&b.get("/portal/dpo").await.text, "csrf");
    assert_eq!(b.post("/portal/dpo/signin", &[("csrf", &csrf), ("tenant", "revokeland"), ("token", &dpo)]).await.status, 303);
    assert!(b.get("/portal/dpo").await.text.contains("pending requests"));
    let r = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/revoke",
            &[("x-bunker-token", &admin), ("x-bunker-tenant", "revokeland")],
            serde_json::to_vec(&json!({"credentialid": id})).unwrap(),
        )
        .await;
    r.ok();
    let home = b.get("/portal/dpo").await;
    assert!(home.text.contains("Access token") && !home.text.contains("pending requests"), "{}", home.text);
}

/// The console tells the officer when a profile change was filed against an older version of
/// the record, and offers only to cancel it (approving would be refused anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_flags_a_change_filed_against_an_older_record() {
    let (app, hook) = portal_app(|_| {}).await;
    let ada = email("stale");
    let token = app.create_user(&app.root_token, None, json!({"email": ada, "name": "Ada"})).await;
    let mut b = Browser::new(&app.base);
    b.sign_in(&hook, "default", &ada).await;
    let csrf = field(&b.get("/portal/me").await.text, "csrf");
    assert!(b.post("/portal/me/profile", &[("csrf", &csrf), ("f:name", "Ada L.")]).await.text.contains("sent to the privacy officer"));
    let rows = app.root("UserRequestListUserRequests", json!({"mode": "token", "identity": token})).await;
    let uuid = rows.ok()["rows"][0]["requestuuid"].as_str().unwrap().to_string();

    let mut dpo = Browser::new(&app.base);
    let c = field(&dpo.get("/portal/dpo").await.text, "csrf");
    assert_eq!(dpo.post("/portal/dpo/signin", &[("csrf", &c), ("tenant", "default"), ("token", &app.root_token)]).await.status, 303);
    let page = dpo.get(&format!("/portal/dpo/requests/{uuid}")).await.text;
    assert!(page.contains("value=\"approve\"") && !page.contains("id=\"stale\""));
    // The record changes meanwhile.
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"city": "Bonn"}})).await.ok();
    let page = dpo.get(&format!("/portal/dpo/requests/{uuid}")).await.text;
    assert!(page.contains("id=\"stale\"") && !page.contains("value=\"approve\""), "{page}");
    // And a forged approval is refused by the vault, the request still pending.
    let c = field(&page, "csrf");
    let got = dpo.post(&format!("/portal/dpo/requests/{uuid}/decide"), &[("csrf", &c), ("decision", "approve")]).await;
    assert_eq!(got.status, 409);
    assert_eq!(app.root("UserRequestGet", json!({"requestuuid": uuid})).await.ok()["request"]["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_names_its_organisation_labels_fields_and_speaks_the_browsers_language() {
    let (app, hook) = portal_app(|_| {}).await;
    let (_, admin) = app.create_tenant("acmeui").await;
    let ui = json!({"companytitle": "Acme Ltd", "logolink": "https://cdn.acme.test/logo.png",
                    "fieldlabels": {"dob": "Birthday (as on your passport)"}});
    app.call("TenantSetUIConf", Some(&admin), Some("acmeui"), ui).await.ok();
    let bad = app.call("TenantSetUIConf", Some(&admin), Some("acmeui"), json!({"fieldlabels": {"dob": "a\u{7}b"}})).await;
    assert_eq!(bad.code, 400, "labels are plain text");
    let grace = email("grace");
    app.create_user(&admin, Some("acmeui"), json!({"email": grace, "dob": "1906-12-09", "first_name": "Grace"})).await;

    // On the tenant's subdomain: its title and logo, and no question about the organisation.
    let mut b = Browser::new(&app.base);
    b.host = Some("acmeui.localhost".into());
    let start = b.get("/portal/").await;
    assert!(start.text.contains("Privacy portal of Acme Ltd"), "{}", start.text);
    assert!(start.text.contains("src=\"https://cdn.acme.test/logo.png\""), "{}", start.text);
    assert!(start.csp.contains("img-src 'self' https://cdn.acme.test;"), "{}", start.csp);
    assert!(start.csp.contains("default-src 'none'") && start.csp.contains("frame-ancestors 'none'"));
    assert!(!start.text.contains("id=\"tenant\""), "the subdomain names the organisation: nothing to ask");
    b.sign_in(&hook, "acmeui", &grace).await;
    let me = b.get("/portal/me").await;
    assert!(me.text.contains("Birthday (as on your passport)") && me.text.contains("First name"), "{}", me.text);
    assert!(!me.text.contains(">dob<") && !me.text.contains(">first_name<"), "raw keys are not labels");

    // German for a German browser: catalogue, labels and dates.
    b.lang = Some("de-DE,de;q=0.9,en;q=0.5".into());
    let me = b.get("/portal/me").await;
    assert!(me.text.contains("<html lang=\"de\">") && me.text.contains("Vorname") && me.text.contains("Abmelden"), "{}", me.text);
    let log = b.get("/portal/me/activity").await;
    assert!(log.text.contains("Anmeldung") && log.text.contains("Ihr Profil wurde gelesen"), "{}", log.text);
    for raw in ["PortalSignIn", "UserGet", "T0", "Z<"] {
        assert!(!log.text.contains(raw), "{raw} on the access log page");
    }
    let missing = b.get("/portal/nirgendwo").await;
    assert_eq!(missing.status, 404);
    assert!(missing.text.contains("Diese Seite gibt es nicht."), "{}", missing.text);

    // Off the subdomain the pages after the form name no organisation, known or not.
    let mut c = Browser::new(&app.base);
    let (_, _, known) = c.ask_code("acmeui", &grace).await;
    assert!(!known.text.contains("Acme Ltd"));
    // Reloading a form's target is a page, never JSON.
    let reload = c.get("/portal/signin").await;
    assert_eq!((reload.status, reload.location.as_deref()), (303, Some("/portal/")));
    let wrong = c.get("/portal/signout").await;
    assert_eq!(wrong.status, 405);
    assert!(wrong.text.starts_with("<!DOCTYPE html>") && wrong.text.contains("receives a form"), "{}", wrong.text);
}
