//! No input gives a 5xx (issue 12): generated bodies (wrong types, NUL, invalid UTF-8, huge
//! numbers, deep nesting, unknown fields, the fields endpoints really read) thrown at every POST
//! endpoint, as root and as an application credential. Every answer is below 500, every refusal
//! is in the error shape, and a body that is malformed by construction is refused with a 4xx.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::helpers::*;

/// Field names endpoints read (so generated bodies reach past "missing field" into handlers).
const FIELDS: &[&str] = &[
    "mode",
    "identity",
    "profile",
    "version",
    "patch",
    "records",
    "token",
    "unlockuuid",
    "users",
    "tokens",
    "offset",
    "limit",
    "appname",
    "appdata",
    "filename",
    "filedata",
    "fileuuid",
    "mimetype",
    "raw",
    "brief",
    "newbrief",
    "status",
    "activity",
    "newactivity",
    "tokentype",
    "record",
    "unique",
    "groupname",
    "groupid",
    "roleid",
    "rolename",
    "policyid",
    "policyname",
    "policy",
    "tenantid",
    "tenantname",
    "tenantorg",
    "email",
    "recorduuid",
    "fields",
    "partner",
    "sessionuuid",
    "sessiondata",
    "slidingtime",
    "finaltime",
    "requestuuid",
    "reason",
    "auditeventuuid",
    "role",
    "ttl",
    "lease_id",
    "increment",
    "credentialid",
    "key",
    "keys",
    "reset",
    "request_metadata",
    "key1",
    "key2",
    "key3",
    "mintable",
    "kekabsent",
    "tags",
    "tag",
];

/// Every POST path: the v2 contract, our v2 extensions, the vault's own /v1 endpoints (but
/// the argument-less switches that would seal the vault or retire the root token).
pub fn every_post_path() -> Vec<String> {
    let mut paths: Vec<String> = strongroom::api::v2_endpoints().map(|e| format!("/v2/{e}")).collect();
    paths.extend(
        strongroom::api::V1_VAULT_POSTS.iter().filter(|p| !strongroom::api::V1_ARGUMENTLESS_SWITCHES.contains(p)).map(|p| p.to_string()),
    );
    paths
}

/// A JSON text fragment: any type, strings with NUL, escapes and non-ASCII, numbers beyond
/// every integer type, nesting a few levels deep.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        Just("123456789012345678901234567890".to_string()),
        Just("-1e999999".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just(r#""a\u0000b""#.to_string()),
        Just(r#""\\u0000""#.to_string()),
        Just(r#""token""#.to_string()),
        Just(r#""email""#.to_string()),
        Just(r#""30m""#.to_string()),
        Just(r#""2026-01-01""#.to_string()),
        Just(r#""6f0e1d2c-0000-4000-8000-000000000000""#.to_string()),
        "[ -~]{0,24}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        (1usize..70_000).prop_map(|n| serde_json::to_string(&"x".repeat(n % 5000)).unwrap()),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((field_name(), inner), 0..6).prop_map(|kv| format!(
                "{{{}}}",
                kv.iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap())).collect::<Vec<_>>().join(",")
            )),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELDS).prop_map(str::to_string),
        1 => "[a-z]{1,10}",
        1 => Just("pro\u{0}file".to_string()),
    ]
}

/// A body and whether it is malformed by construction (then it must be refused with a 4xx).
#[derive(Debug, Clone)]
struct Case {
    body: Vec<u8>,
    malformed: bool,
}

fn body() -> impl Strategy<Value = Case> {
    let object = proptest::collection::vec((field_name(), json_text()), 0..8).prop_map(|kv| {
        let text =
            format!("{{{}}}", kv.iter().map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap())).collect::<Vec<_>>().join(","));
        Case { body: text.into_bytes(), malformed: false }
    });
    prop_oneof![
        6 => object,
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(|mut b| {
            // Invalid UTF-8 inside a string of an otherwise fine object.
            b.retain(|x| *x >= 0x80);
            let mut body = br#"{"mode":"token","identity":""#.to_vec();
            // High bytes alone can happen to spell valid UTF-8 ("é"); 0xff never does.
            body.extend(b);
            body.push(0xff);
            body.extend(br#""}"#);
            Case { body, malformed: true }
        }),
        1 => (150usize..400).prop_map(|depth| Case {
            body: format!(r#"{{"profile":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)).into_bytes(),
            malformed: true,
        }),
        1 => proptest::sample::select(FIELDS).prop_map(|f| Case { body: format!(r#"{{"{f}":"x\u0000y","mode":"x\u0000"}}"#).into_bytes(), malformed: true }),
        1 => json_text().prop_filter("not an object", |t| !t.starts_with('{')).prop_map(|t| Case { body: t.into_bytes(), malformed: true }),
        1 => Just(Case { body: br#"{"mode":"token"} {"trailing":1}"#.to_vec(), malformed: true }),
    ]
}

#[test]
fn no_generated_body_gets_a_5xx_from_any_endpoint() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (app, reader) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let (_, admin) = app.create_tenant("fuzz").await;
        app.create_user(&admin, Some("fuzz"), json!({"email": "fuzz@example.com", "login": "fuzz"})).await;
        let r = app
            .raw(
                reqwest::Method::POST,
                "/v1/credentials/create",
                &[("x-bunker-token", &admin), ("x-bunker-tenant", "fuzz")],
                br#"{"role":"app-writer"}"#.to_vec(),
            )
            .await;
        let writer = r.ok()["token"].as_str().unwrap().to_string();
        (app, writer)
    });
    let paths = every_post_path();
    let tokens = [(app.root_token.clone(), "default"), (reader, "fuzz")];
    let mut runner = TestRunner::new(RunnerConfig { cases: 1500, failure_persistence: None, ..RunnerConfig::default() });
    let strategy = (0..paths.len(), 0..tokens.len(), body());
    let result = runner.run(&strategy, |(p, t, case)| {
        let (token, tenant) = &tokens[t];
        let reply = rt.block_on(send(&app, &paths[p], token, tenant, &case.body));
        check(&paths[p], &case, reply)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // And every endpoint meets every malformed shape at least once, deterministically.
    let malformed: Vec<Vec<u8>> = vec![
        br#"{"mode":"token","identity":"\u0000"}"#.to_vec(),
        b"{\"mode\":\"\xff\xfe\"}".to_vec(),
        format!(r#"{{"records":{}{}}}"#, "[".repeat(300), "]".repeat(300)).into_bytes(),
        b"[1,2,3]".to_vec(),
        b"{\"a\":1".to_vec(),
    ];
    for path in &paths {
        for body in &malformed {
            for (token, tenant) in &tokens {
                let case = Case { body: body.clone(), malformed: true };
                let reply = rt.block_on(send(&app, path, token, tenant, body));
                if let Err(e) = check(path, &case, reply) {
                    panic!("{e}");
                }
            }
        }
    }
}

async fn send(app: &TestApp, path: &str, token: &str, tenant: &str, body: &[u8]) -> (u16, String) {
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .header("x-bunker-token", token)
        .header("x-bunker-tenant", tenant)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("request");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

fn check(path: &str, case: &Case, (code, text): (u16, String)) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(&case.body).chars().take(300).collect::<String>();
    prop_assert!(code < 500, "{path} answered {code} {text} to {shown}");
    if code >= 400 {
        let v: Value = serde_json::from_str(&text).map_err(|_| TestCaseError::fail(format!("{path}: {code} not JSON: {text}")))?;
        prop_assert_eq!(&v["status"], "error", "{} {}", path, text);
        prop_assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{} {}", path, text);
    }
    if case.malformed {
        prop_assert!((400..500).contains(&code), "{path} accepted a malformed body ({code} {text}): {shown}");
    }
    Ok(())
}

#[test]
fn every_v2_route_in_the_source_is_fuzzed() {
    let mut unlisted = Vec::new();
    for (p, text) in server_sources() {
        const ROUTE: &str = "route(\"/v2/";
        for (i, _) in text.match_indices(ROUTE) {
            let rest = &text[i + ROUTE.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            // An endpoint route is `/v2/<Name>"`; `/v2/openapi.json` (a GET document) is not one.
            let endpoint = rest[name.len()..].starts_with('"');
            if endpoint && !name.is_empty() && !strongroom::api::v2_endpoints().any(|e| e == name) {
                unlisted.push(format!("{name} ({})", p.display()));
            }
        }
    }
    assert!(unlisted.is_empty(), "v2 routes missing from api::v2_endpoints (so never fuzzed): {unlisted:?}");
}

/// Every v1 route (method, path with `{}` for each parameter), as `src/v1/` declares them.
const V1_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/status"),
    ("GET", "/v1/sys/backup"),
    ("GET", "/v1/sys/configuration"),
    ("GET", "/v1/sys/uiconfiguration"),
    ("GET", "/v1/sys/cookiesettings"),
    ("POST", "/v1/user"),
    ("POST", "/v1/users"),
    ("GET", "/v1/user/{}/{}"),
    ("PUT", "/v1/user/{}/{}"),
    ("DELETE", "/v1/user/{}/{}"),
    ("GET", "/v1/prelogin/{}/{}/{}/{}"),
    ("GET", "/v1/login/{}/{}/{}"),
    ("GET", "/v1/exp/retain/{}"),
    ("GET", "/v1/exp/delete/{}"),
    ("GET", "/v1/exp/status/{}/{}"),
    ("POST", "/v1/exp/start/{}/{}"),
    ("DELETE", "/v1/exp/cancel/{}/{}"),
    ("POST", "/v1/sharedrecord/{}/{}"),
    ("GET", "/v1/get/{}"),
    ("GET", "/v1/request/{}"),
    ("POST", "/v1/request/{}"),
    ("DELETE", "/v1/request/{}"),
    ("GET", "/v1/requests/{}/{}"),
    ("GET", "/v1/requests"),
    ("GET", "/v1/pactivity"),
    ("POST", "/v1/pactivity/{}"),
    ("DELETE", "/v1/pactivity/{}"),
    ("POST", "/v1/pactivity/{}/{}"),
    ("DELETE", "/v1/pactivity/{}/{}"),
    ("GET", "/v1/lbasis"),
    ("POST", "/v1/lbasis/{}"),
    ("DELETE", "/v1/lbasis/{}"),
    ("GET", "/v1/agreement/{}/{}/{}"),
    ("POST", "/v1/agreement/{}/{}/{}"),
    ("DELETE", "/v1/agreement/{}"),
    ("DELETE", "/v1/agreement/{}/{}/{}"),
    ("GET", "/v1/agreements/{}/{}"),
    ("POST", "/v1/userapp/{}/{}/{}"),
    ("GET", "/v1/userapp/{}/{}/{}"),
    ("PUT", "/v1/userapp/{}/{}/{}"),
    ("DELETE", "/v1/userapp/{}/{}/{}"),
    ("GET", "/v1/userapp/{}/{}"),
    ("GET", "/v1/userapps"),
    ("GET", "/v1/session/{}"),
    ("POST", "/v1/session/{}"),
    ("DELETE", "/v1/session/{}"),
    ("GET", "/v1/sessions/{}/{}"),
    ("GET", "/v1/audit/admin"),
    ("GET", "/v1/audit/list/{}"),
    ("GET", "/v1/audit/get/{}"),
    ("GET", "/v1/captcha/{}"),
];

/// A path segment: a mode, a real token, a uuid, a brief, or junk (percent-encoded bytes, NUL,
/// invalid UTF-8, very long).
fn segment(token: String) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec!["token", "login", "email", "phone", "custom", "fuzz", "shop", "news"]).prop_map(str::to_string),
        Just(token),
        Just(uuid::Uuid::new_v4().to_string()),
        "[a-zA-Z0-9._-]{0,80}",
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
        (1usize..6000).prop_map(|n| "a".repeat(n)),
        Just("%00".to_string()),
        Just("1.2.3".to_string()),
    ]
}

/// No path, body or content type makes a v1 route answer 5xx; refusals are Databunker's shapes.
#[test]
fn no_generated_request_gets_a_5xx_from_any_v1_route() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (app, user) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let user = app.create_user(&app.root_token, None, json!({"email": "fuzz@example.com", "login": "fuzz"})).await;
        (app, user)
    });
    let ctypes = ["application/json", "application/x-www-form-urlencoded", "application/xml", "text/plain", ""];
    let mut runner = TestRunner::new(RunnerConfig { cases: 1200, failure_persistence: None, ..RunnerConfig::default() });
    let segs = proptest::collection::vec(segment(user.clone()), 4);
    let strategy = (0..V1_ROUTES.len(), segs, body(), 0..ctypes.len(), any::<bool>());
    let result = runner.run(&strategy, |(r, segs, case, ct, authed)| {
        let (method, template) = V1_ROUTES[r];
        let mut path = String::new();
        for (i, part) in template.split("{}").enumerate() {
            if i > 0 {
                path.push_str(&segs[i - 1]);
            }
            path.push_str(part);
        }
        let token = authed.then_some(app.root_token.as_str());
        let (code, text) = rt.block_on(send_v1(&app, method, &path, token, ctypes[ct], &case.body));
        let shown = String::from_utf8_lossy(&case.body).chars().take(200).collect::<String>();
        prop_assert!(code < 500, "{method} {path} answered {code} {text} to {shown}");
        if code == 403 && text == "Access denied" {
            return Ok(());
        }
        if code >= 400 {
            let v: Value =
                serde_json::from_str(&text).map_err(|_| TestCaseError::fail(format!("{method} {path}: {code} not JSON: {text}")))?;
            prop_assert_eq!(&v["status"], "error", "{} {} {}", method, path, text);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn send_v1(app: &TestApp, method: &str, path: &str, token: Option<&str>, ctype: &str, body: &[u8]) -> (u16, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = client.request(method.parse().unwrap(), format!("{}{path}", app.base)).body(body.to_vec());
    if let Some(t) = token {
        req = req.header("x-bunker-token", t);
    }
    if !ctype.is_empty() {
        req = req.header("content-type", ctype);
    }
    let r = req.send().await.expect("request");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}
