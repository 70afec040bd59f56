//! Issue 12: the privilege holes attack testing found inside a tenant, one test each, named for
//! what must hold. Every test here failed on the build the attack ran against (3da539a).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn post(app: &TestApp, token: &str, tenant: &str, path: &str, body: Value) -> Reply {
    app.raw(reqwest::Method::POST, path, &[("x-bunker-token", token), ("x-bunker-tenant", tenant)], serde_json::to_vec(&body).unwrap())
        .await
}

/// A tenant `name` with its admin token and a user; returns (admin, user token).
async fn tenant_with_user(app: &TestApp, name: &str) -> (String, String) {
    let (_, admin, user) = tenant_with_user_id(app, name).await;
    (admin, user)
}

async fn tenant_with_user_id(app: &TestApp, name: &str) -> (i64, String, String) {
    let (id, admin) = app.create_tenant(name).await;
    let user = app
        .create_user(&admin, Some(name), json!({"email": format!("ada@{name}.example"), "name": "Ada", "phone": "+44 20 7946 0000"}))
        .await;
    (id, admin, user)
}

async fn credential(app: &TestApp, token: &str, tenant: &str, role: &str) -> Reply {
    post(app, token, tenant, "/v1/credentials/create", json!({"role": role})).await
}

/// A tenant role `name` with one policy (`Allow` `actions` on `resources`).
async fn tenant_role(app: &TestApp, admin: &str, tenant: &str, name: &str, actions: Value, resources: Value, mintable: bool) {
    let call = |ep: &'static str, body: Value| app.call(ep, Some(admin), Some(tenant), body);
    call("RoleCreate", json!({"rolename": name, "mintable": mintable})).await.ok();
    let policy = format!("p-{name}");
    call("PolicyCreate", json!({"policyname": policy, "policy": {"Effect": "Allow", "Action": actions, "Resource": resources}})).await.ok();
    call("RoleLinkPolicy", json!({"rolename": name, "policyname": policy})).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_plugin_credential_mints_working_roles_only_and_no_lease_creates_a_credential() {
    let app = TestApp::spawn().await;
    let (admin, user) = tenant_with_user(&app, "plug").await;
    let plugin = credential(&app, &admin, "plug", "vault-plugin").await.ok()["token"].as_str().unwrap().to_string();
    let creds = |role: &'static str| post(&app, &plugin, "plug", "/v1/vault/creds", json!({"role": role}));
    tenant_role(&app, &admin, "plug", "ops", json!(["*"]), json!(["*"]), false).await;
    tenant_role(&app, &admin, "plug", "boss", json!(["*"]), json!(["*"]), true).await;
    tenant_role(&app, &admin, "plug", "reader", json!(["UserGet"]), json!(["users.profile.*"]), true).await;

    // Not marked mintable, not existing, managing, administrative, or bound to records: 400.
    for role in ["role:ops", "role:nope", "role:boss", "role:self-service", "tenant-admin", "root", "vault-plugin", "user-self"] {
        let r = post(&app, &plugin, "plug", "/v1/vault/creds", json!({"role": role})).await;
        assert_eq!(r.code, 400, "{role}: {}", r.body);
    }
    // Working roles, and a mintable tenant role without management rights.
    for role in ["app-reader", "app-writer", "dpo", "auditor", "role:reader"] {
        let c = creds(role).await;
        let c = c.ok();
        assert!(c["max_lease_duration"].as_i64().unwrap() >= c["lease_duration"].as_i64().unwrap());
    }
    let reader = creds("role:reader").await.ok()["token"].as_str().unwrap().to_string();
    app.call("UserGet", Some(&reader), Some("plug"), json!({"mode": "token", "identity": user})).await.ok();

    // No lease creates a credential, whatever its role.
    let lease = creds("app-writer").await.ok()["token"].as_str().unwrap().to_string();
    credential(&app, &lease, "plug", "tenant-admin").await.err(403);
    credential(&app, &lease, "plug", "app-reader").await.err(403);
    let admin_lease = app.call("XTokenCreateForRole", Some(&admin), Some("plug"), json!({"rolename": "ops"})).await;
    let admin_lease = admin_lease.ok()["xtoken"].as_str().unwrap().to_string();
    let refused = credential(&app, &admin_lease, "plug", "tenant-admin").await;
    assert!(refused.err(403).contains("credential"), "{}", refused.body);
    // A credential never mints a credential above its own rights.
    let dpo = credential(&app, &admin, "plug", "dpo").await.ok()["token"].as_str().unwrap().to_string();
    credential(&app, &dpo, "plug", "app-reader").await.err(403);
    credential(&app, &admin, "plug", "root").await.err(400);

    // The self-service role is never a lease of its own: it would be bound to no record.
    let r = app.call("XTokenCreateForRole", Some(&admin), Some("plug"), json!({"rolename": "self-service"})).await;
    assert_eq!(r.code, 400, "{}", r.body);
    // A lease mints only its own role.
    tenant_role(&app, &admin, "plug", "minter", json!(["XTokenCreateForRole", "UserGet"]), json!(["credentials", "users.*"]), false).await;
    let minter = app.call("XTokenCreateForRole", Some(&admin), Some("plug"), json!({"rolename": "minter"})).await.ok()["xtoken"].clone();
    let minter = minter.as_str().unwrap();
    app.call("XTokenCreateForRole", Some(minter), Some("plug"), json!({"rolename": "app-writer"})).await.err(403);
    app.call("XTokenCreateForRole", Some(minter), Some("plug"), json!({"rolename": "ops"})).await.err(403);
    app.call("XTokenCreateForRole", Some(minter), Some("plug"), json!({"rolename": "minter"})).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_subject_changes_its_email_phone_login_or_custom_only_through_the_dpo() {
    let app = TestApp::spawn().await;
    let (admin, user) = tenant_with_user(&app, "selfie").await;
    // The README's self-service example, as wide as a tenant might make it.
    tenant_role(&app, &admin, "selfie", "self-service", json!(["UserPatch", "UserUpdate"]), json!(["users.profile.*"]), false).await;
    let own = app.call("XTokenCreateForUser", Some(&admin), Some("selfie"), json!({"mode": "token", "identity": user})).await;
    let own = own.ok()["xtoken"].as_str().unwrap().to_string();
    let me = |ep: &'static str, body: Value| app.call(ep, Some(&own), Some("selfie"), body);
    me("UserPatch", json!({"mode": "token", "identity": user, "patch": [{"op": "replace", "path": "/name", "value": "Ada L."}]}))
        .await
        .ok();
    for (field, value) in
        [("email", json!("thief@evil.example")), ("phone", json!("+1 555 0199")), ("login", json!("thief")), ("custom", json!("x"))]
    {
        let patch = json!({"mode": "token", "identity": user, "patch": [{"op": "add", "path": format!("/{field}"), "value": value}]});
        let m = me("UserPatch", patch).await.err(403);
        assert!(m.contains("DPO"), "{m}");
        me("UserUpdate", json!({"mode": "token", "identity": user, "profile": {field: value}})).await.err(403);
    }
    me("UserPatch", json!({"mode": "token", "identity": user, "patch": [{"op": "remove", "path": "/email"}]})).await.err(403);
    let now = app.call("UserGet", Some(&admin), Some("selfie"), json!({"mode": "token", "identity": user})).await;
    assert_eq!(now.ok()["profile"]["email"], "ada@selfie.example");
    assert_eq!(now.ok()["profile"]["name"], "Ada L.");
    // The way that works: a request, which the DPO decides.
    let req = me("UserUpdateRequest", json!({"mode": "token", "identity": user, "profile": {"email": "new@selfie.example"}})).await;
    let uuid = req.ok()["requestuuid"].as_str().unwrap().to_string();
    app.call("UserRequestApprove", Some(&admin), Some("selfie"), json!({"requestuuid": uuid})).await.ok();
    let now = app.call("UserGet", Some(&admin), Some("selfie"), json!({"mode": "email", "identity": "new@selfie.example"})).await;
    assert_eq!(now.ok()["token"], user.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_credential_or_a_lease_reaches_every_generation_minted_from_it() {
    let app = TestApp::spawn().await;
    let (tenant_id, admin, user) = tenant_with_user_id(&app, "lineage").await;
    tenant_role(&app, &admin, "lineage", "chain", json!(["XTokenCreateForRole", "UserGet"]), json!(["credentials", "users.*"]), false)
        .await;
    let read = |t: String| {
        let app = &app;
        let user = user.clone();
        async move { app.call("UserGet", Some(&t), Some("lineage"), json!({"mode": "token", "identity": user})).await.code }
    };
    let xtoken = |by: String| {
        let app = &app;
        async move {
            let r = app.call("XTokenCreateForRole", Some(&by), Some("lineage"), json!({"rolename": "chain"})).await;
            r.ok()["xtoken"].as_str().unwrap().to_string()
        }
    };
    // A second admin credential, made by the tenant's first: credential -> credential.
    let second = credential(&app, &admin, "lineage", "tenant-admin").await;
    let (second_id, second) = (second.ok()["credentialid"].as_i64().unwrap(), second.ok()["token"].as_str().unwrap().to_string());
    let grandchild = credential(&app, &second, "lineage", "app-reader").await.ok()["token"].as_str().unwrap().to_string();
    // credential -> xtoken -> xtoken -> xtoken, a sibling, and a user xtoken.
    let g1 = xtoken(second.clone()).await;
    let g2 = xtoken(g1.clone()).await;
    let g3 = xtoken(g2.clone()).await;
    let sibling = xtoken(g1.clone()).await;
    let user_x = app.call("XTokenCreateForUser", Some(&second), Some("lineage"), json!({"mode": "token", "identity": user})).await;
    let user_x = user_x.ok()["xtoken"].as_str().unwrap().to_string();
    for t in [&grandchild, &g1, &g2, &g3, &sibling, &user_x] {
        assert_eq!(read(t.clone()).await, 200);
    }

    // Revoking a lease reaches its children and theirs, not its parent or a sibling's line.
    let lease_of = |t: &str| strongroom::auth::lease::verify(&app.state.vault().keyring().unwrap(), t).unwrap().sub;
    post(&app, &app.root_token, "default", "/v1/vault/revoke", json!({"lease_id": lease_of(&g2)})).await.err(404);
    let plugin = credential(&app, &second, "lineage", "vault-plugin").await.ok()["token"].as_str().unwrap().to_string();
    // The plugin manages only leases of its own lineage.
    post(&app, &plugin, "lineage", "/v1/vault/revoke", json!({"lease_id": lease_of(&g2)})).await.err(404);
    assert_eq!(read(g2.clone()).await, 200);
    // The lease's own revocation, as the Vault plugin's revoke and portal sign-out run it (no
    // caller of this tenant may revoke an xtoken chain but through its credential).
    let mut tx = app.db.tenant_tx(tenant_id).await.unwrap();
    assert!(tx.revoke_lease(&lease_of(&g2)).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(read(g2.clone()).await, 403);
    assert_eq!(read(g3.clone()).await, 403, "the child of a revoked lease dies with it");
    assert_eq!(read(g1.clone()).await, 200, "its parent lives");
    assert_eq!(read(sibling.clone()).await, 200, "and so does a sibling");

    // Revoking the credential reaches everything below it, credentials included.
    post(&app, &admin, "lineage", "/v1/credentials/revoke", json!({"credentialid": second_id})).await.ok();
    for (what, t) in [
        ("second", &second),
        ("grandchild", &grandchild),
        ("g1", &g1),
        ("sibling", &sibling),
        ("user xtoken", &user_x),
        ("plugin", &plugin),
    ] {
        assert_eq!(read(t.clone()).await, 403, "{what} must die with the credential it descends from");
    }
    assert_eq!(read(admin.clone()).await, 200, "the revoker's own credential lives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_the_audit_trail_without_personal_identifiers() {
    let app = TestApp::spawn().await;
    let (admin, user) = tenant_with_user(&app, "audited").await;
    let writer = credential(&app, &admin, "audited", "app-writer").await.ok()["token"].as_str().unwrap().to_string();
    let auditor = credential(&app, &admin, "audited", "auditor").await.ok()["token"].as_str().unwrap().to_string();
    let by_email = json!({"mode": "email", "identity": "ADA@audited.example", "request_metadata": {"ticket": "ada@audited.example"}});
    app.call("UserGet", Some(&writer), Some("audited"), by_email).await.ok();
    app.call("UserGet", Some(&writer), Some("audited"), json!({"mode": "phone", "identity": "+44 20 7946 0000"})).await.ok();
    let upd = json!({"mode": "email", "identity": "ada@audited.example", "profile": {"name": "Ada Byron"}});
    app.call("UserUpdate", Some(&writer), Some("audited"), upd).await.ok();
    app.call("UserGet", Some(&writer), Some("audited"), json!({"mode": "email", "identity": "nobody@audited.example"})).await.err(404);

    let rows =
        app.call("AuditListUserEvents", Some(&auditor), Some("audited"), json!({"mode": "token", "identity": user, "limit": 50})).await;
    let rows = rows.ok()["rows"].as_array().unwrap().clone();
    assert!(rows.len() >= 4, "{rows:?}");
    for row in rows {
        let ev = app.call("AuditGetEvent", Some(&auditor), Some("audited"), json!({"auditeventuuid": row["auditeventuuid"]})).await;
        // Random uuids may contain any digits (one held "7946"): look past them.
        let mut seen = ev.ok().clone();
        for uuid_field in ["auditeventuuid", "token"] {
            seen.as_object_mut().unwrap().remove(uuid_field);
        }
        let text = seen.to_string().to_lowercase();
        for pii in ["ada@audited.example", "7946", "ada byron", "\"ada\""] {
            assert!(!text.contains(pii), "the auditor reads {pii} in {text}");
        }
    }
    // The DPO reads the same trail with the details, still without the raw email of the lookup.
    let dpo = credential(&app, &admin, "audited", "dpo").await.ok()["token"].as_str().unwrap().to_string();
    let rows = app.call("AuditListUserEvents", Some(&dpo), Some("audited"), json!({"mode": "token", "identity": user, "limit": 50})).await;
    let get = rows.ok()["rows"].as_array().unwrap().iter().find(|r| r["eventtype"] == "UserGet").unwrap().clone();
    let ev = app.call("AuditGetEvent", Some(&dpo), Some("audited"), json!({"auditeventuuid": get["auditeventuuid"]})).await;
    let details = ev.ok()["details"].clone();
    assert!(details["identity_index"].is_string() && details["identity"].is_null(), "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_400_naming_the_field_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let user = app.create_user(&app.root_token.clone(), None, json!({"login": "nul"})).await;
    let nul = "a\u{0}b";
    let bodies = [
        json!({"mode": nul, "identity": nul}),
        json!({"mode": "login", "identity": nul}),
        json!({"mode": "token", "identity": user, "appname": nul, "brief": nul, "sessionuuid": nul, "requestuuid": nul}),
        json!({"tenantname": nul, "tenantorg": nul, "groupname": nul, "rolename": nul, "policyname": nul, "brief": nul, "activity": nul}),
        json!({"token": nul, "record": nul, "tokentype": nul, "unlockuuid": nul, "auditeventuuid": nul, "recorduuid": nul, "fileuuid": nul}),
        json!({"role": nul, "lease_id": nul, "key": nul, "keys": [nul], "credentialid": nul}),
    ];
    let mut five_hundreds = Vec::new();
    for path in crate::fuzz::every_post_path() {
        for body in &bodies {
            let r = app.raw(reqwest::Method::POST, &path, &[("x-bunker-token", &app.root_token)], serde_json::to_vec(body).unwrap()).await;
            if r.code >= 500 && r.code != 503 {
                five_hundreds.push(format!("{path} {} {}", r.code, r.body));
            }
            if r.code >= 400 {
                assert_eq!(r.body["status"], "error", "{path}: {}", r.body);
            }
        }
    }
    assert!(five_hundreds.is_empty(), "{five_hundreds:#?}");
    let m = app.root("UserGet", json!({"mode": "login", "identity": nul})).await.err(400);
    assert_eq!(m, "field `identity` contains a NUL character (\\u0000), which cannot be stored");
    let m = app.root("UserCreate", json!({"profile": {"login": "fine"}, "groupname": nul})).await.err(400);
    assert!(m.contains("`groupname`"), "{m}");
    // Inside a profile (stored only encrypted) a NUL is data and round-trips.
    let t = app.create_user(&app.root_token.clone(), None, json!({"name": nul})).await;
    assert_eq!(app.root("UserGet", json!({"mode": "token", "identity": t})).await.ok()["profile"]["name"], nul);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_of_one_tenant_key_answer_200_or_409_never_500() {
    let app = TestApp::spawn().await;
    let (id, _) = app.create_tenant("spin").await;
    let rotations = (0..8).map(|_| app.post_sys("rotate-tenant-key", json!({"tenantid": id})));
    let replies = futures_util::future::join_all(rotations).await;
    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert!(codes.iter().all(|c| *c == 200 || *c == 409), "{codes:?} {replies:?}");
    assert!(codes.contains(&200), "{codes:?}");
    for r in replies.iter().filter(|r| r.code == 409) {
        assert!(r.body["message"].as_str().unwrap().contains("in progress"), "{}", r.body);
    }
    let versions: std::collections::BTreeSet<i64> =
        replies.iter().filter(|r| r.code == 200).map(|r| r.body["version"].as_i64().unwrap()).collect();
    assert_eq!(versions.len(), codes.iter().filter(|c| **c == 200).count(), "each success made a version of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_root_is_throttled_per_address_like_unseal() {
    let app = TestApp::spawn_configured(|c| {
        c.share_rps = 1;
        c.share_burst = 5;
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(app.post_sys("generate-root", json!({"keys": ["00", "11"]})).await.code);
    }
    let throttled = codes.iter().filter(|c| **c == 429).count();
    assert!(throttled >= 30, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 400 || *c == 403 || *c == 429), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_comes_back_unsealed_after_it_was_killed_with_sigkill() {
    let outer = temp_dir("demo-sigkill");
    std::fs::set_permissions(&outer, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let data_dir = outer.join("demo");
    let start = |d: std::path::PathBuf| tokio::task::spawn_blocking(move || crate::demo::start_demo(&d));
    let mut demo = start(data_dir.clone()).await.unwrap();
    let created = app_post(&demo.base, "UserCreate", json!({"profile": {"login": "survivor"}})).await;
    assert_eq!(created["status"], "ok", "{created}");
    // SIGKILL through the handle: nothing of the demo's shutdown runs, its PostgreSQL lives on.
    demo.child.kill().unwrap();
    demo.child.wait().unwrap();
    let cluster = match std::fs::read_to_string(data_dir.join("pg-location")) {
        Ok(p) => std::path::PathBuf::from(p.trim()),
        Err(_) => data_dir.join("pg"),
    };
    assert!(cluster.join("postmaster.pid").exists(), "the killed demo left its PostgreSQL running");

    let again = start(data_dir.clone()).await.unwrap();
    let got = app_post(&again.base, "UserGet", json!({"mode": "login", "identity": "survivor"})).await;
    assert_eq!(got["status"], "ok", "back, unsealed, with the data: {got}");
    tokio::task::spawn_blocking(move || crate::demo::stop_demo(again)).await.unwrap();
    assert!(!cluster.join("postmaster.pid").exists());
    if cluster.starts_with("/var/lib/strongroom") {
        let _ = std::fs::remove_dir_all(&cluster);
        let _ = std::fs::remove_file(cluster.with_extension("owner"));
    }
    let _ = std::fs::remove_dir_all(&outer);
}

async fn app_post(base: &str, ep: &str, body: Value) -> Value {
    let r = http_client().post(format!("{base}/v2/{ep}")).header("X-Bunker-Token", "DEMO").json(&body).send().await.unwrap();
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_sends_its_headers_or_body_is_cut_off() {
    let app = TestApp::spawn_configured(|c| {
        c.header_timeout = Duration::from_secs(2);
        c.body_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = app.addr;
    let results = tokio::task::spawn_blocking(move || {
        // A body declared and never sent: 408 in the error shape, within the timeout.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let t = Instant::now();
        s.write_all(b"POST /v2/UserGet HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{").unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let body_wait = t.elapsed();
        // Headers never finished: the connection is closed.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let t = Instant::now();
        s.write_all(b"POST /v2/UserGet HTTP/1.1\r\nHost: x\r\n").unwrap();
        let mut rest = Vec::new();
        let closed = s.read_to_end(&mut rest).is_ok();
        (answer, body_wait, closed, t.elapsed())
    })
    .await
    .unwrap();
    let (answer, body_wait, closed, header_wait) = results;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"status\":\"error\""), "{answer}");
    assert!(body_wait < Duration::from_secs(10), "{body_wait:?}");
    assert!(closed && header_wait < Duration::from_secs(10), "closed {closed} after {header_wait:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_lock_out_wrong_tokens_but_not_valid_credentials_and_proxies_are_trusted_only_when_listed() {
    let app = TestApp::spawn_configured(|c| {
        c.auth_failures_per_minute = 5;
        c.trusted_proxies = vec!["127.0.0.5/32".parse().unwrap()];
    })
    .await;
    let (admin, user) = tenant_with_user(&app, "shared-lb").await;
    let app_cred = credential(&app, &admin, "shared-lb", "app-reader").await.ok()["token"].as_str().unwrap().to_string();
    let from = |ip: &str| reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let get = |client: reqwest::Client, token: String, forwarded: Option<&'static str>| {
        let base = app.base.clone();
        let user = user.clone();
        async move {
            let mut req = client.post(format!("{base}/v2/UserGet")).header("X-Bunker-Token", token).header("X-Bunker-Tenant", "shared-lb");
            if let Some(f) = forwarded {
                req = req.header("X-Forwarded-For", f);
            }
            req.json(&json!({"mode": "token", "identity": user})).send().await.unwrap().status().as_u16()
        }
    };
    // Behind one load balancer address (127.0.0.4, not a trusted proxy): one client's wrong
    // tokens lock the address out for wrong tokens only.
    let lb = from("127.0.0.4");
    for i in 0..10 {
        get(lb.clone(), format!("wrong-{i}"), None).await;
    }
    assert_eq!(get(lb.clone(), "wrong-again".into(), None).await, 429);
    assert_eq!(get(lb.clone(), app_cred.clone(), None).await, 200, "a valid credential is still served");
    assert_eq!(get(lb.clone(), admin.clone(), None).await, 200);
    // Its X-Forwarded-For is not believed: the header cannot dodge the lock-out.
    assert_eq!(get(lb.clone(), "wrong-spoofed".into(), Some("198.51.100.77")).await, 429);

    // From a trusted proxy, the client it names is the address.
    let proxy = from("127.0.0.5");
    for i in 0..10 {
        get(proxy.clone(), format!("bad-{i}"), Some("198.51.100.1")).await;
    }
    assert_eq!(get(proxy.clone(), "bad-more".into(), Some("198.51.100.1")).await, 429);
    assert_eq!(get(proxy.clone(), "other-client-typo".into(), Some("198.51.100.2")).await, 403, "another client behind the proxy");
    assert_eq!(get(proxy.clone(), app_cred.clone(), Some("198.51.100.1")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_405_with_an_allow_header() {
    let app = TestApp::spawn().await;
    for path in ["/v2/UserGet", "/v1/sys/unseal", "/v1/credentials/create", "/v1/vault/creds"] {
        let r = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 405, "{path}");
        assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"), "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "error", "{path}: {body}");
    }
    let r = app.client.delete(format!("{}/v1/sys/seal-status", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(r.headers().get("allow").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("GET")));
    // A portal form address opened in a browser: a page, not JSON (a reloaded code page, the
    // GET of /portal/signin, goes back to the start instead).
    let r = app.client.get(format!("{}/portal/signout", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405, "a portal form address reloaded");
    assert!(r.headers().get("allow").is_some());
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let r = app.client.get(format!("{}/portal/signin", app.base)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.url().path()), (200, "/portal/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_endpoint_name_is_404_not_5xx() {
    let app = TestApp::spawn().await;
    for path in ["/v2/%55serGet", "/v2/User%47et", "/v2/%00", "/v2/UserGet%2F..", "/v2/NoSuchThing"] {
        let r = app.raw(reqwest::Method::POST, path, &[("x-bunker-token", &app.root_token)], b"{}".to_vec()).await;
        r.err(404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_cluster_whose_data_dir_is_gone_is_removed_at_the_next_start() {
    // As root, a data dir the postgres user cannot enter puts the cluster under
    // /var/lib/strongroom/clusters; as another user there is no fallback, and the check is that
    // a cluster of a removed dir is simply gone with it.
    let outer = temp_dir("orphan");
    std::fs::set_permissions(&outer, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let dir = outer.join("gone");
    let pg = tokio::task::spawn_blocking({
        let d = dir.clone();
        move || strongroom::localpg::LocalPg::start(&d).unwrap()
    })
    .await
    .unwrap();
    let cluster = pg.cluster_dir().to_path_buf();
    let is_root = nix::unistd::geteuid().is_root();
    assert_eq!(cluster.starts_with("/var/lib/strongroom/clusters"), is_root, "{}", cluster.display());
    // The dir is deleted while its PostgreSQL still runs (a user's `rm -rf strongroom-demo`).
    std::mem::forget(pg);
    std::fs::remove_dir_all(&outer).unwrap();
    // Any later start cleans up.
    let other = temp_dir("orphan-next");
    let next = tokio::task::spawn_blocking({
        let d = other.clone();
        move || strongroom::localpg::LocalPg::start(&d).unwrap()
    })
    .await
    .unwrap();
    assert!(!cluster.exists(), "the orphaned cluster {} was removed", cluster.display());
    assert!(!cluster.with_extension("owner").exists());
    next.stop().unwrap();
    let _ = std::fs::remove_dir_all(&other);
}
