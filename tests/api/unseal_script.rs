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
