//! Key custody: auto-unseal from a file, AWS Secrets Manager (a real moto server) and Vault KV v2
//! (the stand-in in `vault_standin`), wrapping-key generation and rotation, share rekey. The
//! auto-unsealing servers run as real `strongroom serve` processes configured by environment.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::vault_standin::StandIn;

async fn serve_process(db_url: &str, env: &[(&str, String)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    cmd.arg("serve").env("DATABASE_URL", db_url).env("STRONGROOM_LISTEN", format!("127.0.0.1:{port}")).env("STRONGROOM_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start strongroom serve");
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    // Ready once it answers seal-status.
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&server).await.is_none() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

async fn status(s: &Server) -> Option<Value> {
    let r = http_client().get(format!("{}/v1/sys/seal-status", s.base)).send().await.ok()?;
    r.json().await.ok()
}

/// Waits until `pred` holds for the seal status (bounded), returning the last status.
async fn wait_status(s: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let st = status(s).await.unwrap_or(Value::Null);
        if pred(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last status {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(s: &Server, token: &str, ep: &str, body: Value) -> (u16, Value) {
    let r = http_client().post(format!("{}/v2/{ep}", s.base)).header("X-Bunker-Token", token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// An initialized vault with one user, served in-process; returns (app, user token).
async fn vault_with_a_user() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let token = app.create_user(&app.root_token.clone(), None, json!({"email": "kept@example.com"})).await;
    (app, token)
}

async fn generate(app: &TestApp, k1: usize, k2: usize) -> String {
    let r = app.root("SystemGenerateWrappingKey", json!({"key1": app.shares[k1], "key2": app.shares[k2], "key3": ""})).await;
    r.ok()["wrappingkey"].as_str().unwrap().to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn generating_a_wrapping_key_needs_root_and_a_quorum_of_this_vaults_shares() {
    let (app, _) = vault_with_a_user().await;
    let other = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("notroot").await;
    let body = json!({"key1": app.shares[0], "key2": app.shares[1], "key3": app.shares[2]});
    app.call("SystemGenerateWrappingKey", Some(&xtoken), Some("notroot"), body.clone()).await.err(403);
    let wk = app.root("SystemGenerateWrappingKey", body).await;
    assert_eq!(wk.ok()["wrappingkey"].as_str().unwrap().len(), 64);
    assert_eq!(wk.ok()["stored"], false);
    // One share is not enough; a share of another vault, or an inconsistent third, is refused.
    app.root("SystemGenerateWrappingKey", json!({"key1": app.shares[0], "key2": "", "key3": ""})).await.err(400);
    let foreign = app.root("SystemGenerateWrappingKey", json!({"key1": app.shares[0], "key2": other.shares[1], "key3": ""})).await;
    assert!(foreign.err(400).contains("different vault"));
    let mut bad = app.shares[2].clone();
    let last = bad.pop().unwrap();
    bad.push(if last == '0' { '1' } else { '0' });
    let inconsistent = app.root("SystemGenerateWrappingKey", json!({"key1": app.shares[0], "key2": app.shares[1], "key3": bad})).await;
    assert!(inconsistent.err(400).contains("do not combine"));
    app.root("SystemGenerateWrappingKey", json!({"key1": app.shares[0]})).await.err(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_unseals_at_boot_and_rotation_rewrites_it() {
    let (app, token) = vault_with_a_user().await;
    let dir = temp_dir("custody");
    let key_file = dir.join("wrapping.key");
    write(&key_file, &generate(&app, 0, 2).await);
    let env = [("STRONGROOM_UNSEAL_SOURCE", format!("file:{}", key_file.display()))];

    let server = serve_process(&app.db_url, &env).await;
    let st = wait_status(&server, "auto-unseal", |s| s["sealed"] == false).await;
    assert_eq!(st["auto_unseal"], format!("file:{}", key_file.display()));
    let (code, got) = post(&server, &app.root_token, "UserGet", json!({"mode": "token", "identity": token})).await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["profile"]["email"], "kept@example.com");

    // Rotation through the auto-unsealed server writes the new key to the file.
    let old = std::fs::read_to_string(&key_file).unwrap();
    let (code, rotated) =
        post(&server, &app.root_token, "SystemGenerateWrappingKey", json!({"key1": app.shares[1], "key2": app.shares[2]})).await;
    assert_eq!(code, 200, "{rotated}");
    assert_eq!(rotated["stored"], true);
    let new = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new.trim(), old.trim());
    assert_eq!(new.trim(), rotated["wrappingkey"].as_str().unwrap());
    drop(server);

    // The old key no longer opens the vault; the new one does.
    write(&key_file, &old);
    let stale = serve_process(&app.db_url, &env).await;
    let st = wait_status(&stale, "a failure reason", |s| s["reason"].as_str().is_some_and(|r| r.contains("does not open"))).await;
    assert_eq!(st["sealed"], true);
    write(&key_file, &new);
    wait_status(&stale, "auto-unseal after the key is fixed", |s| s["sealed"] == false).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_leaves_the_instance_sealed_with_a_reason_and_shares_still_work() {
    let (app, token) = vault_with_a_user().await;
    generate(&app, 0, 1).await;
    let dir = temp_dir("custody");
    let env = [("STRONGROOM_UNSEAL_SOURCE", format!("file:{}", dir.join("absent.key").display()))];
    let server = serve_process(&app.db_url, &env).await;
    let st = wait_status(&server, "a failure reason", |s| s["reason"].as_str().is_some_and(|r| r.contains("holds no wrapping key"))).await;
    assert_eq!(st["sealed"], true);
    let (code, _) = post(&server, &app.root_token, "UserGet", json!({"mode": "token", "identity": token})).await;
    assert_eq!(code, 503);
    // The Shamir shares remain the recovery path.
    for share in [&app.shares[0], &app.shares[1]] {
        http_client().post(format!("{}/v1/sys/unseal", server.base)).json(&json!({"key": share})).send().await.unwrap();
    }
    let (code, _) = post(&server, &app.root_token, "UserGet", json!({"mode": "token", "identity": token})).await;
    assert_eq!(code, 200);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_source_stops_the_server_at_start() {
    let app = TestApp::spawn().await;
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .arg("serve")
        .env("DATABASE_URL", &app.db_url)
        .env("STRONGROOM_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("STRONGROOM_UNSEAL_SOURCE", "carrier-pigeon:coop-7")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown source kind"));
}

/// A moto server (`moto[server]` from PyPI, installed by scripts/test.sh) on a free port.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_moto() -> Moto {
    let bin = crate::official_client::python().parent().unwrap().join("moto_server");
    assert!(bin.exists(), "{} missing: run scripts/test.sh", bin.display());
    let port = free_port();
    let child =
        Command::new(&bin).args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_client().get(format!("{}/moto-api/", moto.url)).send().await.is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    moto
}

fn aws_env(moto: &Moto, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("STRONGROOM_UNSEAL_SOURCE", format!("aws-secretsmanager:{secret}")),
        ("STRONGROOM_AWS_ENDPOINT_URL", moto.url.clone()),
        ("AWS_REGION", "eu-west-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// Reads a secret straight from moto (boto3 ships with moto).
fn moto_secret(moto: &Moto, secret: &str) -> Option<String> {
    let py = crate::official_client::python();
    let script = format!(
        "import boto3,sys\nc=boto3.client('secretsmanager',endpoint_url='{}',region_name='eu-west-1',aws_access_key_id='testing',aws_secret_access_key='testing')\n\
         try:\n  print(c.get_secret_value(SecretId='{}')['SecretString'])\nexcept c.exceptions.ResourceNotFoundException:\n  sys.exit(3)\n",
        moto.url, secret
    );
    let out = Command::new(py).args(["-c", &script]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_unseals_refuses_missing_or_wrong_secrets_and_takes_rotations() {
    let moto = start_moto().await;
    let (app, token) = vault_with_a_user().await;
    let secret = format!("strongroom/{}/wrapping-key", uuid::Uuid::new_v4().simple());

    // Missing secret: sealed, with the reason.
    let first = serve_process(&app.db_url, &aws_env(&moto, &secret)).await;
    let st = wait_status(&first, "a missing-secret reason", |s| s["reason"].as_str().is_some_and(|r| r.contains("not found"))).await;
    assert_eq!(st["sealed"], true);
    assert_eq!(st["auto_unseal"], format!("aws-secretsmanager:{secret}"));

    // Unseal it by hand, then rotate: the secret is created and holds the new key.
    for share in [&app.shares[0], &app.shares[2]] {
        http_client().post(format!("{}/v1/sys/unseal", first.base)).json(&json!({"key": share})).send().await.unwrap();
    }
    let (code, rotated) =
        post(&first, &app.root_token, "SystemGenerateWrappingKey", json!({"key1": app.shares[0], "key2": app.shares[1]})).await;
    assert_eq!(code, 200, "{rotated}");
    assert_eq!(rotated["stored"], true);
    let wk = rotated["wrappingkey"].as_str().unwrap().to_string();
    assert_eq!(moto_secret(&moto, &secret).as_deref(), Some(wk.as_str()));
    drop(first);

    // A fresh instance unseals itself from the secret.
    let second = serve_process(&app.db_url, &aws_env(&moto, &secret)).await;
    wait_status(&second, "auto-unseal from AWS", |s| s["sealed"] == false).await;
    let (code, got) = post(&second, &app.root_token, "UserGet", json!({"mode": "token", "identity": token})).await;
    assert_eq!((code, got["profile"]["email"].as_str()), (200, Some("kept@example.com")));

    // A second rotation updates the secret in place.
    let (_, again) =
        post(&second, &app.root_token, "SystemGenerateWrappingKey", json!({"key1": app.shares[1], "key2": app.shares[2]})).await;
    let wk2 = again["wrappingkey"].as_str().unwrap().to_string();
    assert_ne!(wk2, wk);
    assert_eq!(moto_secret(&moto, &secret).as_deref(), Some(wk2.as_str()));
    drop(second);

    // A secret holding the wrong key: sealed, with the reason.
    let wrong = format!("strongroom/{}/wrong", uuid::Uuid::new_v4().simple());
    let py = crate::official_client::python();
    let create = format!(
        "import boto3\nc=boto3.client('secretsmanager',endpoint_url='{}',region_name='eu-west-1',aws_access_key_id='testing',aws_secret_access_key='testing')\nc.create_secret(Name='{}',SecretString='{}')\n",
        moto.url,
        wrong,
        "ab".repeat(32)
    );
    assert!(Command::new(py).args(["-c", &create]).status().unwrap().success());
    let third = serve_process(&app.db_url, &aws_env(&moto, &wrong)).await;
    let st = wait_status(&third, "a wrong-key reason", |s| s["reason"].as_str().is_some_and(|r| r.contains("does not open"))).await;
    assert_eq!(st["sealed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv_unseals_with_a_token_or_kubernetes_auth_and_takes_rotations() {
    let standin = StandIn::default();
    standin.0.lock().unwrap().tokens.push("root-token-for-tests".into());
    let addr = standin.clone().serve().await;
    let (app, token) = vault_with_a_user().await;

    let wk = generate(&app, 0, 1).await;
    standin.put("secret", "strongroom/wk", json!({"wrapping_key": wk}));
    let token_env = vec![
        ("STRONGROOM_UNSEAL_SOURCE", "vault-kv:secret/strongroom/wk".to_string()),
        ("VAULT_ADDR", addr.clone()),
        ("VAULT_TOKEN", "root-token-for-tests".to_string()),
    ];
    let server = serve_process(&app.db_url, &token_env).await;
    wait_status(&server, "auto-unseal from Vault KV", |s| s["sealed"] == false).await;
    let (code, _) = post(&server, &app.root_token, "UserGet", json!({"mode": "token", "identity": token})).await;
    assert_eq!(code, 200);

    // Rotation writes a new KV version.
    let (code, rotated) =
        post(&server, &app.root_token, "SystemGenerateWrappingKey", json!({"key1": app.shares[2], "key2": app.shares[0]})).await;
    assert_eq!(code, 200, "{rotated}");
    let wk2 = rotated["wrappingkey"].as_str().unwrap().to_string();
    assert_eq!(standin.get("secret", "strongroom/wk").unwrap()["wrapping_key"], wk2.as_str());
    drop(server);

    // Kubernetes auth: the service-account JWT is exchanged for a token at login.
    let dir = temp_dir("custody");
    let jwt_path = dir.join("token");
    write(&jwt_path, "eyJ.service-account.jwt");
    standin.0.lock().unwrap().k8s_roles.insert("strongroom".into(), "eyJ.service-account.jwt".into());
    let k8s_env = vec![
        ("STRONGROOM_UNSEAL_SOURCE", "vault-kv:secret/strongroom/wk".to_string()),
        ("VAULT_ADDR", addr.clone()),
        ("STRONGROOM_VAULT_K8S_ROLE", "strongroom".to_string()),
        ("STRONGROOM_VAULT_K8S_JWT_PATH", jwt_path.display().to_string()),
    ];
    let k8s = serve_process(&app.db_url, &k8s_env).await;
    wait_status(&k8s, "auto-unseal via Kubernetes auth", |s| s["sealed"] == false).await;
    drop(k8s);

    // A bad token: sealed, with the reason.
    let bad_env = vec![
        ("STRONGROOM_UNSEAL_SOURCE", "vault-kv:secret/strongroom/wk".to_string()),
        ("VAULT_ADDR", addr),
        ("VAULT_TOKEN", "not-a-token".to_string()),
    ];
    let bad = serve_process(&app.db_url, &bad_env).await;
    let st = wait_status(&bad, "a denied reason", |s| s["reason"].as_str().is_some_and(|r| r.contains("403"))).await;
    assert_eq!(st["sealed"], true);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn rekey_issues_new_shares_and_retires_the_old_ones_with_data_intact() {
    let (app, token) = vault_with_a_user().await;
    let r = app.post_sys("rekey", json!({"keys": [app.shares[0], app.shares[1]], "secret_shares": 5, "secret_threshold": 3})).await;
    let new: Vec<String> = r.ok()["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    assert_eq!(new.len(), 5);
    assert_eq!(r.ok()["threshold"], 3);

    let app = app.restart().await;
    assert_eq!(app.get_sys("seal-status").await.ok()["t"], 3);
    assert!(app.unseal(&app.shares[0].clone()).await.err(400).contains("earlier set"));
    app.unseal(&new[4]).await.ok();
    assert_eq!(app.unseal(&new[1]).await.ok()["sealed"], true, "3 of 5 needed now");
    assert_eq!(app.unseal(&new[2]).await.ok()["sealed"], false);
    let got = app.root("UserGet", json!({"mode": "token", "identity": token})).await;
    assert_eq!(got.ok()["profile"]["email"], "kept@example.com");

    // Rekey needs root, a quorum of the current shares, and a sane shape.
    let (_, xtoken) = app.create_tenant("rekeyer").await;
    let denied = app
        .raw(
            reqwest::Method::POST,
            "/v1/sys/rekey",
            &[("x-bunker-token", &xtoken)],
            serde_json::to_vec(&json!({"keys": [new[0], new[1], new[2]]})).unwrap(),
        )
        .await;
    denied.err(403);
    app.post_sys("rekey", json!({"keys": [new[0], new[1]]})).await.err(400);
    app.post_sys("rekey", json!({"keys": [app.shares[0], app.shares[1], app.shares[2]]})).await.err(400);
    app.post_sys("rekey", json!({"keys": [new[0], new[1], new[2]], "secret_shares": 2, "secret_threshold": 3})).await.err(400);
}
