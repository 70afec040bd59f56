//! `strongroom demo` as a user runs it: its own PostgreSQL, unsealed, root token DEMO; SIGTERM
//! stops it and its database; a second run on the same data dir keeps the data. The data dir
//! sits inside a 0700 directory, which the `postgres` system user cannot enter when we are root.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

pub struct Demo {
    pub child: Child,
    pub base: String,
    /// Everything the demo wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn start_demo(data_dir: &Path) -> Demo {
    start_demo_logging(data_dir, "warn")
}

/// Starts the demo with `STRONGROOM_LOG=level`, keeping its log lines.
pub fn start_demo_logging(data_dir: &Path, level: &str) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env("STRONGROOM_LOG", level)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start demo");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let base = loop {
        let line = lines.next().unwrap_or_else(|| panic!("demo exited early:\n{}", seen.join("\n"))).unwrap();
        if let Some(url) = line.trim().strip_prefix("API:") {
            break url.trim().to_string();
        }
        seen.push(line);
    };
    assert!(seen.iter().any(|l| l.contains("DEMO MODE")), "the demo must say it is a demo");
    let log = std::sync::Arc::new(std::sync::Mutex::new(seen.clone()));
    let keep = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            keep.lock().unwrap().push(line);
        }
    });
    Demo { child, base, log }
}

pub fn stop_demo(mut d: Demo) {
    assert!(strongroom::process::terminate(&mut d.child).unwrap(), "the demo exited before it was told to");
    let status = d.child.wait().unwrap();
    assert!(status.success(), "demo exit status {status}");
}

async fn post(base: &str, ep: &str, body: Value) -> Value {
    let r =
        crate::helpers::http_client().post(format!("{base}/v2/{ep}")).header("X-Bunker-Token", "DEMO").json(&body).send().await.unwrap();
    r.json().await.unwrap()
}

fn cluster_dir(data_dir: &Path) -> std::path::PathBuf {
    match std::fs::read_to_string(data_dir.join("pg-location")) {
        Ok(p) => p.trim().into(),
        Err(_) => data_dir.join("pg"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_its_own_database_stops_it_and_keeps_data_across_runs() {
    let outer = std::env::temp_dir().join(format!("strongroom-demo-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&outer).unwrap();
    std::fs::set_permissions(&outer, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let data_dir = outer.join("demo");

    let demo = tokio::task::spawn_blocking({
        let d = data_dir.clone();
        move || start_demo(&d)
    })
    .await
    .unwrap();
    let created = post(&demo.base, "UserCreate", json!({"profile": {"email": "demo@example.com", "name": "Demo"}})).await;
    assert_eq!(created["status"], "ok", "{created}");
    let creds: Value = serde_json::from_str(&std::fs::read_to_string(data_dir.join("demo-credentials.json")).unwrap()).unwrap();
    assert_eq!(creds["root_token"], "DEMO");
    assert_eq!(creds["shares"].as_array().unwrap().len(), 3);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(data_dir.join("demo-credentials.json")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let cluster = cluster_dir(&data_dir);
    assert!(cluster.join("postmaster.pid").exists(), "PostgreSQL runs while the demo does");

    tokio::task::spawn_blocking(move || stop_demo(demo)).await.unwrap();
    assert!(!cluster.join("postmaster.pid").exists(), "stopping the demo stops its PostgreSQL");

    let again = tokio::task::spawn_blocking({
        let d = data_dir.clone();
        move || start_demo(&d)
    })
    .await
    .unwrap();
    let got = post(&again.base, "UserGet", json!({"mode": "email", "identity": "demo@example.com"})).await;
    assert_eq!(got["status"], "ok", "{got}");
    assert_eq!(got["profile"]["name"], "Demo");
    tokio::task::spawn_blocking(move || stop_demo(again)).await.unwrap();

    if cluster.starts_with("/var/lib/strongroom") {
        let _ = std::fs::remove_dir_all(&cluster);
    }
    let _ = std::fs::remove_dir_all(&outer);
}

/// The README's `cargo run -- demo` must pick the server: the workspace builds two binaries
/// (the server and the OpenBao plugin), and without `default-run` cargo refuses to choose.
#[test]
fn cargo_run_picks_the_server_among_the_workspace_binaries() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let package = manifest.split("\n[").next().unwrap();
    assert!(package.lines().any(|l| l.trim() == r#"default-run = "strongroom""#), "[package] lacks default-run = \"strongroom\"");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("cargo run -- demo"), "the README's run command changed: keep this test in step");
}
