#![allow(dead_code)]
//! Test harness: one private PostgreSQL cluster per test binary (started on first use, removed
//! when the binary exits), a migrated template database, and a fresh database per test. A
//! [`TestApp`] serves the real router on 127.0.0.1:0 in-process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use strongroom::app::{self, AppState};
use strongroom::config::Config;
use strongroom::localpg::LocalPg;
use strongroom::store::Db;
use tokio::sync::oneshot;

pub const TEMPLATE_DB: &str = "strongroom_template";

pub struct Cluster {
    pub pg: LocalPg,
    pub dir: PathBuf,
}

/// The binary's cluster, started and migrated once.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        std::thread::spawn(|| {
            let dir = std::env::temp_dir().join(format!("strongroom-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("test dir");
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
            let pg = LocalPg::start(&dir).expect("start test PostgreSQL");
            pg.remove_when_process_exits(std::process::id(), &dir).expect("watchdog");
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut admin = PgConnection::connect(&pg.url("postgres")).await.expect("connect");
                admin.execute(format!("CREATE DATABASE {TEMPLATE_DB}").as_str()).await.expect("create template");
                let db = Db::connect(&pg.url(TEMPLATE_DB), 2).await.expect("connect template");
                db.migrate().await.expect("migrate template");
                db.close().await;
            });
            Cluster { pg, dir }
        })
        .join()
        .expect("cluster start thread")
    })
}

/// A new, migrated, empty database; returns its URL.
pub async fn fresh_database() -> String {
    let c = cluster();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&c.pg.url("postgres")).await.expect("connect admin");
    let mut tries = 0;
    loop {
        match admin.execute(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}").as_str()).await {
            Ok(_) => break,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create database: {e}"),
        }
    }
    c.pg.url(&name)
}

/// A free port on 127.0.0.1 (for servers started as processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh directory under the temp dir, named after `tag`.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strongroom-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `strongroom serve` process; killed on drop unless it already exited.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client (installs the process-wide TLS crypto provider reqwest needs first).
pub fn http_client() -> reqwest::Client {
    strongroom::custody::install_crypto_provider();
    reqwest::Client::new()
}

/// The response of one API call.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> &Value {
        assert_eq!(self.code, 200, "expected 200, got {} {}", self.code, self.body);
        assert_eq!(self.body["status"], "ok", "{}", self.body);
        &self.body
    }

    /// Asserts an error in the API's shape with `code`; returns the message.
    pub fn err(&self, code: u16) -> String {
        assert_eq!(self.code, code, "expected {code}, got {} {}", self.code, self.body);
        assert_eq!(self.body["status"], "error", "{}", self.body);
        self.body["message"].as_str().expect("error message").to_string()
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub db_url: String,
    pub db: Db,
    pub state: AppState,
    pub root_token: String,
    pub shares: Vec<String>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// A fresh database, initialized and unsealed with two of its three shares.
    pub async fn spawn() -> TestApp {
        Self::spawn_configured(|_| {}).await
    }

    /// As [`TestApp::spawn`], with the configuration adjusted first.
    pub async fn spawn_configured(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let db_url = fresh_database().await;
        let mut config = Config { database_url: Some(db_url.clone()), ..Config::default() };
        adjust(&mut config);
        let mut app = Self::serve_with(config).await;
        let init = app.post_sys("init", json!({})).await;
        let body = init.ok().clone();
        app.root_token = body["root_token"].as_str().unwrap().to_string();
        app.shares = body["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
        assert_eq!(app.shares.len(), 3);
        app.unseal(&app.shares[0].clone()).await.ok();
        let s = app.unseal(&app.shares[1].clone()).await;
        assert_eq!(s.ok()["sealed"], false);
        app
    }

    pub async fn spawn_uninitialized() -> TestApp {
        let db_url = fresh_database().await;
        Self::serve_on(db_url).await
    }

    /// Another instance (own state, own port) on the same database; it starts sealed.
    pub async fn serve_on(db_url: String) -> TestApp {
        Self::serve_with(Config { database_url: Some(db_url), ..Config::default() }).await
    }

    pub async fn serve_with(config: Config) -> TestApp {
        let db_url = config.database_url.clone().expect("database url");
        let db = Db::connect(&db_url, 8).await.expect("connect");
        let state = AppState::new(db.clone(), config).await.expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = app::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await;
        });
        TestApp {
            addr,
            base: format!("http://{addr}"),
            db_url,
            db,
            state,
            root_token: String::new(),
            shares: Vec::new(),
            client: http_client(),
            stop: Some(tx),
        }
    }

    /// Stops this instance and starts a new process-equivalent on the same database: new state,
    /// new port, sealed. Credentials and shares carry over.
    pub async fn restart(self) -> TestApp {
        self.restart_configured(|_| {}).await
    }

    /// As [`TestApp::restart`], the new instance configured by `adjust` (from the defaults).
    pub async fn restart_configured(mut self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.db.close().await;
        let mut config = Config { database_url: Some(self.db_url.clone()), ..Config::default() };
        adjust(&mut config);
        let mut next = Self::serve_with(config).await;
        next.root_token = self.root_token.clone();
        next.shares = self.shares.clone();
        next
    }

    pub async fn raw(&self, method: reqwest::Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("response to {path} is not JSON ({code}): {text:?}"));
        Reply { code, body }
    }

    /// `POST /v2/<endpoint>` with an optional token and tenant header.
    pub async fn call(&self, endpoint: &str, token: Option<&str>, tenant: Option<&str>, body: Value) -> Reply {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(t) = token {
            headers.push(("x-bunker-token", t));
        }
        if let Some(t) = tenant {
            headers.push(("x-bunker-tenant", t));
        }
        self.raw(reqwest::Method::POST, &format!("/v2/{endpoint}"), &headers, serde_json::to_vec(&body).unwrap()).await
    }

    /// A v2 call as root in the main tenant.
    pub async fn root(&self, endpoint: &str, body: Value) -> Reply {
        self.call(endpoint, Some(&self.root_token), None, body).await
    }

    pub async fn post_sys(&self, what: &str, body: Value) -> Reply {
        self.raw(
            reqwest::Method::POST,
            &format!("/v1/sys/{what}"),
            &[("x-bunker-token", &self.root_token)],
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    pub async fn get_sys(&self, what: &str) -> Reply {
        self.raw(reqwest::Method::GET, &format!("/v1/sys/{what}"), &[], Vec::new()).await
    }

    pub async fn unseal(&self, key: &str) -> Reply {
        self.post_sys("unseal", json!({ "key": key })).await
    }

    /// Creates a tenant as root; returns (tenant id, admin xtoken).
    pub async fn create_tenant(&self, name: &str) -> (i64, String) {
        let r = self.root("TenantCreate", json!({"tenantname": name, "tenantorg": format!("{name} Inc")})).await;
        let b = r.ok();
        (b["tenantid"].as_i64().unwrap(), b["xtoken"].as_str().unwrap().to_string())
    }

    /// Creates a user with `token` in `tenant`; returns the user token.
    pub async fn create_user(&self, token: &str, tenant: Option<&str>, profile: Value) -> String {
        let r = self.call("UserCreate", Some(token), tenant, json!({ "profile": profile })).await;
        r.ok()["token"].as_str().unwrap().to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Keeps an external suite's own summary line (pytest's `12 passed in 3.4s`, the node clients'
/// count) where scripts/test.sh prints it at the end (`STRONGROOM_TEST_COUNTS`), since cargo's
/// capture hides a passing test's output.
/// Every Rust source file of the server (`src/`), with its text: for tests that check the
/// source against a declaration (routes, endpoint names).
pub fn server_sources() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    out
}

pub fn record_suite_count(suite: &str, line: &str) {
    if let Some(dir) = std::env::var_os("STRONGROOM_TEST_COUNTS") {
        let dir = std::path::PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let name: String = suite.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let _ = std::fs::write(dir.join(format!("{name}.txt")), format!("{suite}: {}\n", line.trim()));
    }
}
