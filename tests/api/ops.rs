//! Operations: `/metrics` on its own listener, JSON logs without personal data, graceful
//! shutdown under load, backup and restore with pg_dump/pg_restore, and the vault-id pin. The
//! servers here are real `strongroom serve` processes configured by environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::*;

fn serve_command(db_url: &str, port: u16, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    cmd.arg("serve")
        .env("DATABASE_URL", db_url)
        .env("STRONGROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("STRONGROOM_LOG", "warn")
        .env_remove("STRONGROOM_LOG_FORMAT")
        .env_remove("STRONGROOM_METRICS_LISTEN")
        .env_remove("STRONGROOM_VAULT_ID")
        .env_remove("STRONGROOM_UNSEAL_SOURCE")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `strongroom serve` on a free port and waits until it answers seal-status.
async fn start(db_url: &str, env: &[(&str, String)], stderr: Stdio) -> Server {
    let port = free_port();
    let child = serve_command(db_url, port, env).stderr(stderr).spawn().expect("start strongroom serve");
    let mut server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http_client().get(format!("{}/v1/sys/seal-status", server.base)).send().await {
            if r.status().is_success() {
                return server;
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("strongroom serve exited early: {status}");
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigterm(child: &mut Child) {
    assert!(strongroom::process::terminate(child).expect("SIGTERM"), "the server exited before it was told to");
}

/// Waits (bounded) for the process to exit.
async fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(base: &str, method: reqwest::Method, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
    let mut req = http_client().request(method, format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

async fn v2(s: &Server, token: &str, ep: &str, body: Value) -> (u16, Value) {
    send(&s.base, reqwest::Method::POST, &format!("/v2/{ep}"), &[("x-bunker-token", token)], Some(body)).await
}

/// Initializes the server's vault over HTTP and unseals it; returns (root token, shares).
async fn init_and_unseal(s: &Server) -> (String, Vec<String>) {
    let (code, init) = send(&s.base, reqwest::Method::POST, "/v1/sys/init", &[], Some(json!({}))).await;
    assert_eq!(code, 200, "{init}");
    let root = init["root_token"].as_str().unwrap().to_string();
    let shares: Vec<String> = init["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    unseal(s, &shares[..2]).await;
    (root, shares)
}

async fn unseal(s: &Server, shares: &[String]) {
    let mut last = Value::Null;
    for share in shares {
        let (code, body) = send(&s.base, reqwest::Method::POST, "/v1/sys/unseal", &[], Some(json!({ "key": share }))).await;
        assert_eq!(code, 200, "{body}");
        last = body;
    }
    assert_eq!(last["sealed"], false, "{last}");
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// One sample line of the Prometheus text format: name, labels, value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample { name, labels, value: value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")) });
    }
    out
}

/// The value of the one series named `name` whose labels include `labels`.
fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {} series", found.len());
    found.first().copied()
}

async fn scrape(metrics_base: &str) -> (String, Vec<Sample>) {
    let r = http_client().get(format!("{metrics_base}/metrics")).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = r.text().await.unwrap();
    let samples = parse_metrics(&text);
    (text, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_with_the_right_counts() {
    let db_url = fresh_database().await;
    let mport = free_port();
    let metrics_base = format!("http://127.0.0.1:{mport}");
    let env = [("STRONGROOM_METRICS_LISTEN", format!("127.0.0.1:{mport}")), ("STRONGROOM_REWRAP_INTERVAL_MS", "50".to_string())];
    let s = start(&db_url, &env, Stdio::null()).await;

    let (_, before) = scrape(&metrics_base).await;
    assert_eq!(metric(&before, "strongroom_sealed", &[]), Some(1.0), "uninitialized counts as sealed");

    // Arrange: a wrong share, an unseal, three creates, two finds, one miss, a bad request and unknowns.
    let (code, init) = send(&s.base, reqwest::Method::POST, "/v1/sys/init", &[], Some(json!({}))).await;
    assert_eq!(code, 200, "{init}");
    let root = init["root_token"].as_str().unwrap().to_string();
    let shares: Vec<String> = init["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    let (code, _) = send(&s.base, reqwest::Method::POST, "/v1/sys/unseal", &[], Some(json!({"key": "not-a-share"}))).await;
    assert_eq!(code, 400);
    unseal(&s, &shares[..2]).await;
    let mut tokens = Vec::new();
    for who in ["ada", "grace", "edsger"] {
        let (code, body) = v2(&s, &root, "UserCreate", json!({"profile": {"email": format!("{who}@metrics.example")}})).await;
        assert_eq!(code, 200, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_string());
    }
    for who in ["ada", "grace"] {
        let (code, _) = v2(&s, &root, "UserGet", json!({"mode": "email", "identity": format!("{who}@metrics.example")})).await;
        assert_eq!(code, 200);
    }
    let (code, _) = v2(&s, &root, "UserGet", json!({"mode": "email", "identity": "nobody@metrics.example"})).await;
    assert_eq!(code, 404);
    assert_eq!(v2(&s, &root, "FileCreate", json!({})).await.0, 400);
    assert_eq!(v2(&s, &root, "ada@metrics.example", json!({})).await.0, 404);
    let on_api_port = http_client().get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert_eq!(on_api_port.status(), 403, "metrics on the API port need the root credential");

    // Act
    let (text, m) = scrape(&metrics_base).await;

    // Assert: requests by route template and status, never a raw path.
    let req = |ep: &str, st: &str| metric(&m, "strongroom_http_requests_total", &[("endpoint", ep), ("status", st)]);
    assert_eq!(req("/v2/UserCreate", "200"), Some(3.0), "{text}");
    assert_eq!(req("/v2/UserGet", "200"), Some(2.0));
    assert_eq!(req("/v2/UserGet", "404"), Some(1.0));
    assert_eq!(req("/v2/FileCreate", "400"), Some(1.0));
    assert_eq!(req("unknown", "404"), Some(1.0));
    assert_eq!(req("/metrics", "403"), Some(1.0));
    assert_eq!(req("/v1/sys/init", "200"), Some(1.0));
    assert_eq!(req("/v1/sys/unseal", "200"), Some(2.0));
    assert_eq!(req("/v1/sys/unseal", "400"), Some(1.0));
    let dur = |suffix: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("endpoint", "/v2/UserCreate")];
        labels.extend_from_slice(extra);
        metric(&m, &format!("strongroom_http_request_duration_seconds{suffix}"), &labels)
    };
    assert_eq!(dur("_count", &[]), Some(3.0));
    assert_eq!(dur("_bucket", &[("le", "+Inf")]), Some(3.0));
    assert!(dur("_sum", &[]).unwrap() > 0.0);
    // Seal state, unseal attempts, audit writes, pool.
    assert_eq!(metric(&m, "strongroom_sealed", &[]), Some(0.0));
    let unseal = |r: &str| metric(&m, "strongroom_unseal_attempts_total", &[("method", "shares"), ("result", r)]);
    assert_eq!((unseal("rejected"), unseal("accepted"), unseal("unsealed")), (Some(1.0), Some(1.0), Some(1.0)));
    assert_eq!(metric(&m, "strongroom_audit_events_total", &[("outcome", "ok")]), Some(5.0));
    assert_eq!(metric(&m, "strongroom_audit_events_total", &[("outcome", "error:404")]), Some(1.0));
    assert!(metric(&m, "strongroom_db_pool_connections", &[("state", "idle")]).is_some());
    assert!(metric(&m, "strongroom_db_pool_connections", &[("state", "in_use")]).is_some());
    assert_eq!(metric(&m, "strongroom_db_pool_max_connections", &[]), Some(16.0));
    assert_eq!(metric(&m, "strongroom_rewrap_pending", &[("kind", "users")]), Some(0.0));
    // No identities, tokens or shares in any label.
    for secret in
        [root.as_str(), "metrics.example", shares[0].as_str(), shares[1].as_str()].into_iter().chain(tokens.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "metrics expose {secret}");
    }

    // A tenant data-key rotation is re-wrapped in the background and counted.
    let (code, body) =
        send(&s.base, reqwest::Method::POST, "/v1/sys/rotate-tenant-key", &[("x-bunker-token", &root)], Some(json!({"tenantid": 1}))).await;
    assert_eq!(code, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = scrape(&metrics_base).await;
        if metric(&m, "strongroom_rewrap_rows_total", &[]).unwrap_or(0.0) >= 3.0 {
            assert_eq!(metric(&m, "strongroom_rewrap_pending", &[("kind", "users")]), Some(0.0));
            break;
        }
        assert!(Instant::now() < deadline, "re-wrap progress never showed in the metrics");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Logs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_endpoints_and_statuses_but_no_personal_data_or_secrets() {
    let db_url = fresh_database().await;
    let env = [("STRONGROOM_LOG_FORMAT", "json".to_string()), ("STRONGROOM_LOG", "info,sqlx=warn".to_string())];
    let mut s = start(&db_url, &env, Stdio::piped()).await;
    let stderr = s.child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut out).unwrap();
        out
    });
    let (root, shares) = init_and_unseal(&s).await;
    let email = "Grace.Hopper.Logs@example.com";

    let created = http_client()
        .post(format!("{}/v2/UserCreate", s.base))
        .header("x-bunker-token", &root)
        .header("x-request-id", "ops-create-1")
        .json(&json!({"profile": {"email": email, "name": "Grace Hopper"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.headers()["x-request-id"], "ops-create-1", "a safe incoming request id is echoed");
    let user_token = created.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let got = http_client()
        .post(format!("{}/v2/UserGet?identity={}", s.base, email))
        .header("x-bunker-token", &root)
        .header("x-request-id", "not a safe id; <script>")
        .json(&json!({"mode": "email", "identity": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let minted = got.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&minted).is_ok(), "an unsafe request id is replaced: {minted}");

    sigterm(&mut s.child);
    assert!(wait_exit(&mut s.child, Duration::from_secs(30)).await.success());
    let logs = reader.join().unwrap();

    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect();
    let access = |request_id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == request_id && l["target"] == "strongroom::access")
            .unwrap_or_else(|| panic!("no access log for {request_id} in:\n{logs}"))
            .clone()
    };
    let create = access("ops-create-1");
    assert_eq!((create["endpoint"].as_str(), create["status"].as_u64()), (Some("/v2/UserCreate"), Some(200)));
    assert_eq!((create["method"].as_str(), create["tenant_id"].as_i64()), (Some("POST"), Some(1)));
    let get = access(&minted);
    assert_eq!((get["endpoint"].as_str(), get["status"].as_u64(), get["tenant_id"].as_i64()), (Some("/v2/UserGet"), Some(200), Some(1)));
    assert!(lines.iter().any(|l| l["fields"].is_null() && l["level"] == "INFO"), "flattened JSON events");
    let lower = logs.to_lowercase();
    for (what, secret) in [("email", email.to_lowercase()), ("root token", root.to_lowercase()), ("user token", user_token.to_lowercase())]
    {
        assert!(!lower.contains(&secret), "the logs contain the {what}:\n{logs}");
    }
    for share in &shares {
        assert!(!logs.contains(share.as_str()), "the logs contain a key share");
    }
    assert!(!logs.contains("Grace Hopper") && !lower.contains("hopper"), "the logs contain profile data");
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

enum Outcome {
    Status(u16),
    Refused,
    Failed(String),
}

struct Attempt {
    login: String,
    started_after_term: bool,
    finished_after_term: bool,
    outcome: Outcome,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_stream_of_writes_drains_them_and_loses_none() {
    let db_url = fresh_database().await;
    let dir = temp_dir("drain");
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let env = [("STRONGROOM_SHUTDOWN_TIMEOUT_S", "20".to_string()), ("STRONGROOM_LOG", "info,sqlx=warn".to_string())];
    let mut s = start(&db_url, &env, Stdio::from(log)).await;
    let (root, shares) = init_and_unseal(&s).await;

    // A stream of UserCreate calls from 6 workers, one fresh connection per call (no keep-alive,
    // so an idle pooled connection closed by the server is not mistaken for a reset).
    let term_at: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
    let done_ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..6 {
        let (base, root, term_at, done_ok) = (s.base.clone(), root.clone(), term_at.clone(), done_ok.clone());
        workers.push(tokio::spawn(async move {
            strongroom::custody::install_crypto_provider();
            let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(30)).build().unwrap();
            let give_up = Instant::now() + Duration::from_secs(40);
            let mut attempts = Vec::new();
            for n in 0.. {
                let login = format!("w{w}-{n}");
                let started_after_term = term_at.get().is_some();
                let r = client
                    .post(format!("{base}/v2/UserCreate"))
                    .header("x-bunker-token", &root)
                    .json(&json!({"profile": {"login": login}}))
                    .send()
                    .await;
                let outcome = match r {
                    Ok(resp) => {
                        let code = resp.status().as_u16();
                        match resp.text().await {
                            Ok(_) => Outcome::Status(code),
                            Err(e) => Outcome::Failed(format!("body of a {code}: {e:?}")),
                        }
                    }
                    Err(e) if e.is_connect() => Outcome::Refused,
                    Err(e) => Outcome::Failed(format!("{e:?}")),
                };
                let finished_after_term = term_at.get().is_some();
                let stop = matches!(outcome, Outcome::Refused) || Instant::now() > give_up;
                if matches!(outcome, Outcome::Status(200)) {
                    done_ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                attempts.push(Attempt { login, started_after_term, finished_after_term, outcome });
                if stop {
                    break;
                }
            }
            attempts
        }));
    }
    // Mid-stream: once some writes have landed, SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(30);
    while done_ok.load(std::sync::atomic::Ordering::Relaxed) < 40 {
        assert!(Instant::now() < deadline, "the stream did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    term_at.set(Instant::now()).unwrap();
    sigterm(&mut s.child);
    let status = wait_exit(&mut s.child, Duration::from_secs(40)).await;
    let mut attempts = Vec::new();
    for w in workers {
        attempts.extend(w.await.unwrap());
    }
    let server_log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    assert!(status.success(), "exit status {status} after SIGTERM; log:\n{server_log}");

    // No reset, no error status; refused connections only once the server stopped accepting.
    let mut ok = Vec::new();
    let (mut refused, mut in_flight_at_term) = (0, 0);
    for a in &attempts {
        match &a.outcome {
            Outcome::Status(200) => {
                ok.push(a.login.clone());
                if !a.started_after_term && a.finished_after_term {
                    in_flight_at_term += 1;
                }
            }
            Outcome::Status(code) => panic!("{} got {code} during shutdown; log:\n{server_log}", a.login),
            Outcome::Refused => {
                assert!(a.started_after_term, "{} was refused before SIGTERM", a.login);
                refused += 1;
            }
            Outcome::Failed(e) => {
                panic!("{} failed mid-request (started after SIGTERM: {}): {e}\nlog:\n{server_log}", a.login, a.started_after_term)
            }
        }
    }
    let after_term = attempts.iter().filter(|a| a.started_after_term && matches!(a.outcome, Outcome::Status(200))).count();
    eprintln!(
        "drain: {} writes acknowledged ({in_flight_at_term} in flight at SIGTERM, {after_term} started after it), {refused} refused",
        ok.len()
    );
    assert_eq!(refused, 6, "every worker ends on a refused connection");
    assert!(in_flight_at_term >= 1, "SIGTERM should land mid-stream (requests in flight)");
    assert!(server_log.contains("stopped accepting connections") && server_log.contains("sealed"), "{server_log}");

    // Every acknowledged write is in the database, and nothing else.
    let mut conn = PgConnection::connect(&db_url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    assert_eq!(stored as usize, ok.len(), "{} writes acknowledged, {stored} stored", ok.len());
    let mut app = TestApp::serve_on(db_url.clone()).await;
    app.root_token = root;
    app.unseal(&shares[0]).await.ok();
    app.unseal(&shares[2]).await.ok();
    for login in &ok {
        let r = app.root("UserGet", json!({"mode": "login", "identity": login})).await;
        assert_eq!(r.ok()["profile"]["login"], login.as_str());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_finishes_does_not_hold_shutdown_past_the_drain_timeout() {
    use std::io::Write;
    let db_url = fresh_database().await;
    let dir = temp_dir("timeout");
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let env = [("STRONGROOM_SHUTDOWN_TIMEOUT_S", "1".to_string()), ("STRONGROOM_LOG", "info,sqlx=warn".to_string())];
    let mut s = start(&db_url, &env, Stdio::from(log)).await;
    // A request whose body never arrives in full: in flight until the client gives up.
    let mut stuck = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    stuck
        .write_all(b"POST /v1/sys/unseal HTTP/1.1\r\nHost: vault\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let term = Instant::now();
    sigterm(&mut s.child);
    let status = wait_exit(&mut s.child, Duration::from_secs(20)).await;
    let took = term.elapsed();
    let server_log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(status.success(), "{status}; log:\n{server_log}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "exited after {took:?}");
    assert!(server_log.contains("drain timeout reached"), "{server_log}");
    drop(stuck);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Backup and restore, and the vault-id pin

pub fn pg_tool(name: &str) -> PathBuf {
    strongroom::localpg::find_bin_dir().expect("PostgreSQL binaries").join(name)
}

pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_restored_into_an_empty_database_unseals_with_the_original_shares_and_verifies() {
    // Arrange: a vault with users in two tenants, an update (versions) and its audit trail.
    let app = TestApp::spawn().await;
    let vault_id = app.db.vault_meta().await.unwrap().unwrap().vault_id;
    let ada = app.create_user(&app.root_token, None, json!({"email": "ada@restore.example", "name": "Ada"})).await;
    app.root("UserUpdate", json!({"mode": "token", "identity": ada, "profile": {"name": "Ada L."}})).await.ok();
    let (_, xtoken) = app.create_tenant("acme").await;
    let bob = app.create_user(&xtoken, Some("acme"), json!({"login": "bob"})).await;
    let (db_url, root, shares) = (app.db_url.clone(), app.root_token.clone(), app.shares.clone());
    let dir = temp_dir("backup");
    let dump = dir.join("strongroom.dump");

    // Back up online (pg_dump takes one consistent snapshot), then stop the server.
    run_ok(
        Command::new(pg_tool("pg_dump"))
            .args(["--format=custom", "--no-password"])
            .arg(format!("--file={}", dump.display()))
            .arg(format!("--dbname={db_url}")),
        "pg_dump",
    );
    app.db.close().await;
    drop(app);

    // Destroy the database and restore into an empty one of the same name.
    let name = database_name(&db_url);
    let mut admin = PgConnection::connect(&cluster().pg.url("postgres")).await.unwrap();
    admin.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.unwrap();
    admin.execute(format!("CREATE DATABASE {name} TEMPLATE template0").as_str()).await.unwrap();
    admin.close().await.unwrap();
    run_ok(
        Command::new(pg_tool("pg_restore"))
            .args(["--exit-on-error", "--single-transaction", "--no-password"])
            .arg(format!("--dbname={db_url}"))
            .arg(&dump),
        "pg_restore",
    );

    // Act: a server pinned to the original vault id starts sealed; the original shares open it.
    let s = start(&db_url, &[("STRONGROOM_VAULT_ID", vault_id.clone())], Stdio::null()).await;
    let (code, _) = v2(&s, &root, "UserGet", json!({"mode": "token", "identity": ada})).await;
    assert_eq!(code, 503, "a restored vault starts sealed");
    unseal(&s, &[shares[2].clone(), shares[0].clone()]).await;

    // Assert: data, versions, the other tenant and the audit trail are intact.
    let (code, got) = v2(&s, &root, "UserGet", json!({"mode": "email", "identity": "ADA@restore.example"})).await;
    assert_eq!((code, got["profile"]["name"].as_str()), (200, Some("Ada L.")), "{got}");
    let (code, versions) = v2(&s, &root, "UserListVersions", json!({"mode": "token", "identity": ada})).await;
    assert_eq!(code, 200, "{versions}");
    let got_bob = http_client()
        .post(format!("{}/v2/UserGet", s.base))
        .header("x-bunker-token", &xtoken)
        .header("x-bunker-tenant", "acme")
        .json(&json!({"mode": "token", "identity": bob}))
        .send()
        .await
        .unwrap();
    assert_eq!(got_bob.status(), 200);
    assert_eq!(got_bob.json::<Value>().await.unwrap()["profile"]["login"], "bob");
    let (code, events) = v2(&s, &root, "AuditListUserEvents", json!({"mode": "token", "identity": ada})).await;
    assert_eq!(code, 200, "{events}");
    drop(s);
    let verified =
        run_ok(Command::new(env!("CARGO_BIN_EXE_strongroom")).args(["audit", "verify"]).env("DATABASE_URL", &db_url), "audit verify");
    assert!(verified.contains("audit trail intact"), "{verified}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_database_of_another_vault_when_the_vault_id_is_pinned() {
    let app = TestApp::spawn().await;
    let vault_id = app.db.vault_meta().await.unwrap().unwrap().vault_id;
    let other = uuid::Uuid::new_v4().to_string();
    let refused = |db_url: &str, pin: &str| {
        let mut child =
            serve_command(db_url, free_port(), &[("STRONGROOM_VAULT_ID", pin.to_string())]).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve started although STRONGROOM_VAULT_ID does not match");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let msg = refused(&app.db_url, &other);
    assert!(msg.contains("refusing to start") && msg.contains(&vault_id) && msg.contains(&other), "{msg}");
    let blank = fresh_database().await;
    assert!(refused(&blank, &vault_id).contains("not initialized"));

    // The right pin starts, and SIGTERM ends it cleanly.
    let mut s = start(&app.db_url, &[("STRONGROOM_VAULT_ID", vault_id)], Stdio::null()).await;
    sigterm(&mut s.child);
    assert!(wait_exit(&mut s.child, Duration::from_secs(30)).await.success());
}

/// `serve` reads a settings file (`--config`): the database and the listen address come from
/// it; a file with an unknown setting stops start-up with the file and line named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_its_settings_from_a_file_and_refuses_an_unknown_one() {
    let db_url = fresh_database().await;
    let dir = temp_dir("settings");
    let port = free_port();
    let file = dir.join("strongroom.conf");
    std::fs::write(&file, format!("# settings\nDATABASE_URL={db_url}\nSTRONGROOM_LISTEN=\"127.0.0.1:{port}\"\n")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("STRONGROOM_LISTEN")
        .env("STRONGROOM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(r) = http_client().get(format!("{}/v1/sys/seal-status", server.base)).send().await {
            assert_eq!(r.json::<Value>().await.unwrap()["initialized"], false);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not come up on the file's address");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(server);

    std::fs::write(&file, format!("DATABASE_URL={db_url}\nSTRONGROOM_LISTN=127.0.0.1:{port}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .arg("serve")
        .env("STRONGROOM_CONFIG", &file)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("strongroom.conf:2: STRONGROOM_LISTN is not a setting"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
