//! Rate limits: brute force from one address is locked out without hurting other clients;
//! share-taking endpoints are throttled per address; one credential cannot drain the vault.
//! Distinct client addresses are loopback aliases (127.0.0.2, 127.0.0.3) bound by the client.

use std::net::IpAddr;

use serde_json::json;

use crate::helpers::*;

fn client_from(ip: &str) -> reqwest::Client {
    http_client();
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().unwrap()).build().unwrap()
}

async fn user_get(client: &reqwest::Client, app: &TestApp, token: &str) -> u16 {
    let r = client
        .post(format!("{}/v2/UserGet", app.base))
        .header("X-Bunker-Token", token)
        .json(&json!({"mode": "login", "identity": "nobody"}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error", "every answer here is an error in the API's shape: {body}");
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_wrong_tokens_from_one_address_are_throttled_and_another_client_is_not() {
    let app = TestApp::spawn().await;
    let attacker = client_from("127.0.0.2");
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..200 {
        let code = user_get(&attacker, &app, &format!("guess-{i}")).await;
        *codes.entry(code).or_insert(0) += 1;
    }
    let throttled = codes.get(&429).copied().unwrap_or(0);
    assert!(throttled >= 160, "{codes:?}");
    assert!(codes.get(&403).copied().unwrap_or(0) <= 31, "at most the quota was answered 403: {codes:?}");
    // Locked out, yet a valid credential is still served from that address (404: the lookup ran
    // and found nobody): behind a load balancer, one client's wrong secrets lock out no one else.
    assert_eq!(user_get(&attacker, &app, &app.root_token).await, 404);
    // A good client elsewhere is untouched.
    let good = client_from("127.0.0.3");
    assert_eq!(user_get(&good, &app, &app.root_token).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unseal_endpoint_is_throttled_per_address() {
    let app = TestApp::spawn().await.restart().await;
    let hammer = client_from("127.0.0.4");
    let mut throttled = 0;
    for _ in 0..40 {
        let r = hammer.post(format!("{}/v1/sys/unseal", app.base)).json(&json!({"key": "00"})).send().await.unwrap();
        if r.status().as_u16() == 429 {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["status"], "error");
            assert!(body["message"].as_str().unwrap().contains("too many requests"));
            throttled += 1;
        }
    }
    assert!(throttled >= 15, "{throttled} of 40 throttled");
    // An officer at another address still gets through.
    let officer = client_from("127.0.0.5");
    let r = officer.post(format!("{}/v1/sys/unseal", app.base)).json(&json!({"key": app.shares[0]})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn one_credential_cannot_exceed_its_rate_and_others_are_unaffected() {
    let app = TestApp::spawn_configured(|c| c.credential_rps = 5).await;
    let (_, busy) = app.create_tenant("busy").await;
    let (_, calm) = app.create_tenant("calm").await;
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(app.call("UserGet", Some(&busy), Some("busy"), json!({"mode": "login", "identity": "x"})).await.code);
    }
    assert!(codes.iter().filter(|c| **c == 429).count() >= 20, "{codes:?}");
    assert!(codes.iter().filter(|c| **c == 404).count() >= 10, "{codes:?}");
    app.call("UserGet", Some(&calm), Some("calm"), json!({"mode": "login", "identity": "x"})).await.err(404);
}
