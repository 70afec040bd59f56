//! The seal lifecycle: init once, 2-of-3 unseal, wrong and foreign shares, restart, seal.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn init_hands_out_a_root_token_and_three_shares_once() {
    let app = TestApp::spawn_uninitialized().await;
    assert_eq!(app.get_sys("seal-status").await.ok()["initialized"], false);
    let first = app.post_sys("init", json!({})).await;
    let body = first.ok();
    assert_eq!(body["keys"].as_array().unwrap().len(), 3);
    assert_eq!(body["threshold"], 2);
    assert!(body["root_token"].as_str().unwrap().len() >= 32);
    let again = app.post_sys("init", json!({})).await;
    assert!(again.err(409).contains("already initialized"));
    let status = app.get_sys("seal-status").await;
    assert_eq!(status.ok()["sealed"], true);
    assert_eq!(status.ok()["t"], 2);
    assert_eq!(status.ok()["n"], 3);
}

#[tokio::test]
async fn an_uninitialized_or_sealed_vault_answers_503_on_every_v2_endpoint() {
    let app = TestApp::spawn_uninitialized().await;
    for ep in ["UserCreate", "UserGet", "TenantCreate", "FileCreate", "NoSuchEndpoint"] {
        let r = app.call(ep, Some("anything"), None, json!({})).await;
        assert_eq!(r.err(503), "vault is sealed");
    }
    assert_eq!(app.get_sys("health").await.code, 501);
    app.post_sys("init", json!({})).await.ok();
    assert_eq!(app.get_sys("health").await.err(503), "vault is sealed");
}

#[tokio::test]
async fn any_two_of_the_three_shares_unseal_and_one_does_not() {
    let mut app = TestApp::spawn().await;
    let token = app.create_user(&app.root_token.clone(), None, json!({"login": "kept"})).await;
    for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
        app = app.restart().await;
        let one = app.unseal(&app.shares[a].clone()).await;
        assert_eq!(one.ok()["sealed"], true);
        assert_eq!(one.ok()["progress"], 1);
        assert_eq!(app.root("UserGet", json!({"mode": "token", "identity": token})).await.err(503), "vault is sealed");
        let two = app.unseal(&app.shares[b].clone()).await;
        assert_eq!(two.ok()["sealed"], false, "pair {a},{b}");
        assert_eq!(app.root("UserGet", json!({"mode": "token", "identity": token})).await.ok()["profile"]["login"], "kept");
    }
}

#[tokio::test]
async fn a_repeated_share_does_not_count_twice() {
    let app = TestApp::spawn().await.restart().await;
    let s0 = app.shares[0].clone();
    app.unseal(&s0).await.ok();
    let again = app.unseal(&s0).await;
    assert_eq!(again.ok()["progress"], 1);
    assert_eq!(again.ok()["sealed"], true);
}

#[tokio::test]
async fn a_share_from_another_init_is_refused_without_losing_progress() {
    let app = TestApp::spawn().await.restart().await;
    let other = TestApp::spawn().await;
    app.unseal(&app.shares[0].clone()).await.ok();
    let foreign = app.unseal(&other.shares[1]).await;
    assert!(foreign.err(400).contains("different vault"));
    let status = app.get_sys("seal-status").await;
    assert_eq!(status.ok()["progress"], 1);
    assert_eq!(app.unseal(&app.shares[2].clone()).await.ok()["sealed"], false);
}

#[tokio::test]
async fn a_wrong_combination_is_detected_and_progress_is_dropped() {
    let app = TestApp::spawn().await.restart().await;
    // Same vault and slot format, damaged value: passes the format checks, fails the GCM tag.
    let mut forged = app.shares[1].clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    app.unseal(&app.shares[0].clone()).await.ok();
    let r = app.unseal(&forged).await;
    assert!(r.err(400).contains("do not combine"));
    assert_eq!(app.get_sys("seal-status").await.ok()["progress"], 0);
    assert_eq!(app.get_sys("seal-status").await.ok()["sealed"], true);
}

#[tokio::test]
async fn malformed_shares_and_missing_keys_are_bad_requests() {
    let app = TestApp::spawn().await.restart().await;
    assert!(app.unseal("not-hex").await.err(400).contains("malformed"));
    assert!(app.unseal(&app.shares[0][..30]).await.err(400).contains("malformed"));
    assert!(app.post_sys("unseal", json!({})).await.err(400).contains("key"));
    assert!(app.post_sys("unseal", json!({"key": 7})).await.err(400).contains("key"));
}

#[tokio::test]
async fn reset_drops_unseal_progress() {
    let app = TestApp::spawn().await.restart().await;
    app.unseal(&app.shares[0].clone()).await.ok();
    let r = app.post_sys("unseal", json!({"reset": true})).await;
    assert_eq!(r.ok()["progress"], 0);
    assert_eq!(app.unseal(&app.shares[1].clone()).await.ok()["sealed"], true);
}

#[tokio::test]
async fn data_written_before_a_restart_reads_back_after_unseal() {
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("persist").await;
    let token = app.create_user(&xtoken, Some("persist"), json!({"email": "keep@example.com", "name": "Kept"})).await;
    let app = app.restart().await;
    assert_eq!(app.get_sys("seal-status").await.ok()["sealed"], true);
    app.unseal(&app.shares[2].clone()).await.ok();
    app.unseal(&app.shares[1].clone()).await.ok();
    let got = app.call("UserGet", Some(&xtoken), Some("persist"), json!({"mode": "email", "identity": "keep@example.com"})).await;
    assert_eq!(got.ok()["token"], token.as_str());
    assert_eq!(got.ok()["profile"]["name"], "Kept");
}

#[tokio::test]
async fn seal_needs_the_root_token_and_stops_data_access() {
    let app = TestApp::spawn().await;
    let (_, xtoken) = app.create_tenant("notroot").await;
    let denied = app.raw(reqwest::Method::POST, "/v1/sys/seal", &[("x-bunker-token", &xtoken)], Vec::new()).await;
    denied.err(403);
    let anonymous = app.raw(reqwest::Method::POST, "/v1/sys/seal", &[], Vec::new()).await;
    anonymous.err(403);
    assert_eq!(app.get_sys("health").await.ok()["sealed"], false);
    app.post_sys("seal", json!({})).await.ok();
    assert_eq!(app.get_sys("seal-status").await.ok()["sealed"], true);
    assert_eq!(app.root("UserGet", json!({"mode": "login", "identity": "x"})).await.err(503), "vault is sealed");
    app.unseal(&app.shares[0].clone()).await.ok();
    assert_eq!(app.unseal(&app.shares[1].clone()).await.ok()["sealed"], false);
    app.root("UserGet", json!({"mode": "login", "identity": "x"})).await.err(404);
}

#[tokio::test]
async fn a_second_instance_on_the_same_database_is_unsealed_on_its_own() {
    let a = TestApp::spawn().await;
    let token = a.create_user(&a.root_token.clone(), None, json!({"login": "shared"})).await;
    let mut b = TestApp::serve_on(a.db_url.clone()).await;
    b.root_token = a.root_token.clone();
    assert_eq!(b.root("UserGet", json!({"mode": "token", "identity": token})).await.err(503), "vault is sealed");
    b.unseal(&a.shares[0]).await.ok();
    b.unseal(&a.shares[2]).await.ok();
    assert_eq!(b.root("UserGet", json!({"mode": "token", "identity": token})).await.ok()["profile"]["login"], "shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_init_and_migrate_commands_work_on_a_fresh_database_once() {
    let url = fresh_database().await;
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
                .args(args)
                .env("DATABASE_URL", url)
                .env("STRONGROOM_LOG", "error")
                .output()
                .unwrap()
        }
    };
    let migrated = tokio::task::spawn_blocking(run(&["migrate"])).await.unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let first = tokio::task::spawn_blocking(run(&["init"])).await.unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let out: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(out["keys"].as_array().unwrap().len(), 3);
    let second = tokio::task::spawn_blocking(run(&["init"])).await.unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already initialized"));

    // The shares it printed unseal a server on that database, and its root token works.
    let mut app = TestApp::serve_on(url).await;
    app.root_token = out["root_token"].as_str().unwrap().to_string();
    app.unseal(out["keys"][1].as_str().unwrap()).await.ok();
    assert_eq!(app.unseal(out["keys"][2].as_str().unwrap()).await.ok()["sealed"], false);
    app.root("TenantListTenants", json!({})).await.ok();
}
