//! `scripts/unseal.sh`: one officer's share, typed once on standard input, reaches every
//! instance given; two officers unseal the fleet.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::*;

fn run_script(args: &[&str], stdin: &str) -> (bool, String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/unseal.sh");
    let mut child =
        Command::new("bash").arg(script).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_officers_unseal_every_instance_with_the_script() {
    let a = TestApp::spawn().await.restart().await;
    let mut b = TestApp::serve_on(a.db_url.clone()).await;
    b.root_token = a.root_token.clone();
    let (s0, s2) = (format!("{}\n", a.shares[0]), format!("{}\n", a.shares[2]));
    let (base_a, base_b) = (a.base.clone(), b.base.clone());

    let first = tokio::task::spawn_blocking(move || run_script(&[&base_a, &base_b], &s0)).await.unwrap();
    assert!(first.0, "{first:?}");
    assert_eq!(first.1.matches("sealed, progress 1/2").count(), 2, "{first:?}");
    assert!(!first.1.contains(&a.shares[0]) && !first.2.contains(&a.shares[0]), "the share was echoed");

    let (base_a, base_b) = (a.base.clone(), b.base.clone());
    let second = tokio::task::spawn_blocking(move || run_script(&[&base_a, &base_b], &s2)).await.unwrap();
    assert!(second.0, "{second:?}");
    assert_eq!(second.1.matches(": unsealed").count(), 2, "{second:?}");
    a.root("UserGet", json!({"mode": "login", "identity": "x"})).await.err(404);
    b.root("UserGet", json!({"mode": "login", "identity": "x"})).await.err(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_refuses_non_hex_input_and_reports_instance_errors() {
    let a = TestApp::spawn().await.restart().await;
    let base = a.base.clone();
    let bad = tokio::task::spawn_blocking(move || run_script(&[&base], "not a share\n")).await.unwrap();
    assert!(!bad.0);
    assert!(bad.2.contains("not a key share"));
    let other = TestApp::spawn().await;
    let (base, foreign) = (a.base.clone(), format!("{}\n", other.shares[0]));
    let wrong = tokio::task::spawn_blocking(move || run_script(&[&base], &foreign)).await.unwrap();
    assert!(!wrong.0);
    assert!(wrong.2.contains("different vault"), "{wrong:?}");
    assert_eq!(a.get_sys("seal-status").await.ok()["progress"], 0);
}

/// `--k8s`: no Kubernetes cluster can run here, so a stand-in `kubectl` on PATH answers the two
/// calls the script makes, in kubectl's own output formats: `get pods -l SEL -o jsonpath=…`
/// (one pod name a line) and `port-forward pod/NAME :3000` ("Forwarding from 127.0.0.1:PORT ->
/// 3000", then it stays up until killed). Each pod name maps to one in-process instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_k8s_mode_reaches_every_pod_of_the_selector_through_port_forward() {
    let a = TestApp::spawn().await.restart().await;
    let b = TestApp::serve_on(a.db_url.clone()).await;
    let dir = std::env::temp_dir().join(format!("kubectl-standin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("calls.log");
    let kubectl = format!(
        r#"#!/usr/bin/env bash
echo "$*" >> '{log}'
while [ "$1" = "-n" ]; do shift 2; done
case "$1" in
  get) [ "$4" = "app=strongroom" ] && printf 'strongroom-0\nstrongroom-1\n' ;;
  port-forward)
    case "$2" in
      pod/strongroom-0) echo "Forwarding from 127.0.0.1:{pa} -> 3000" ;;
      pod/strongroom-1) echo "Forwarding from 127.0.0.1:{pb} -> 3000" ;;
      *) echo "error: pod not found" >&2; exit 1 ;;
    esac
    exec sleep 30 ;;
esac
"#,
        log = log.display(),
        pa = a.addr.port(),
        pb = b.addr.port()
    );
    let path = dir.join("kubectl");
    std::fs::write(&path, kubectl).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env_path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());

    let run = |share: String| {
        let env_path = env_path.clone();
        move || {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/unseal.sh");
            let mut child = Command::new("bash")
                .arg(script)
                .args(["--k8s", "app=strongroom", "--namespace", "vault"])
                .env("PATH", env_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(format!("{share}\n").as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
        }
    };
    let first = tokio::task::spawn_blocking(run(a.shares[0].clone())).await.unwrap();
    assert!(first.0, "{first:?}");
    assert!(
        first.1.contains("pod/strongroom-0: sealed, progress 1/2") && first.1.contains("pod/strongroom-1: sealed, progress 1/2"),
        "{first:?}"
    );
    let second = tokio::task::spawn_blocking(run(a.shares[1].clone())).await.unwrap();
    assert_eq!(second.1.matches(": unsealed").count(), 2, "{second:?}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.lines().all(|l| l.starts_with("-n vault ")), "namespace passed on every call: {calls}");
    assert!(!calls.contains(&a.shares[0]) && !calls.contains(&a.shares[1]), "a share reached kubectl's argv");
    std::fs::remove_dir_all(dir).unwrap();
}
