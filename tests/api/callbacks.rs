//! Callbacks: profile changes, forget-me and consent withdrawals are POSTed to the configured
//! URL from a transactional outbox, retried with backoff, never blocking the API call, and
//! never sent for a change that rolled back. Waits poll a condition with a deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

/// A callback receiver: records every POST; answers 500 to the first `fail_first`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    fail_first: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Receiver {
    async fn serve(self) -> String {
        let app = Router::new().route("/hook", post(hook)).with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    }

    fn got(&self) -> Vec<(String, Value)> {
        self.got.lock().unwrap().clone()
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let n = r.calls.fetch_add(1, Ordering::SeqCst);
    if n < r.fail_first.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let event = headers.get("x-strongroom-event").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    r.got.lock().unwrap().push((event, serde_json::from_slice(&body).unwrap()));
    StatusCode::OK
}

/// An app whose callbacks go to `url` (retry unit 50 ms), dispatcher running.
async fn app_calling(url: String) -> TestApp {
    let app = TestApp::spawn_configured(|c| {
        c.callback_url = Some(url);
        c.callback_backoff_ms = 50;
    })
    .await;
    app.state.start_callbacks();
    app
}

/// Polls `cond` every 50 ms until it holds; fails after `secs`.
async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn outbox_rows(app: &TestApp) -> i64 {
    let mut su = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM callback_outbox").fetch_one(&mut su).await.unwrap()
}

async fn create(app: &TestApp, profile: Value) -> String {
    app.create_user(&app.root_token, None, profile).await
}

#[tokio::test]
async fn a_profile_change_and_a_forget_me_are_posted_without_profile_data() {
    // Arrange
    let rx = Receiver::default();
    let app = app_calling(rx.clone().serve().await).await;
    let token = create(&app, json!({"email": "mara@example.com", "name": "Mara"})).await;

    // Act
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Marabel"}})).await.ok();
    wait_for(5, "the profile-change callback", || rx.got().len() == 1).await;
    app.root("UserDelete", json!({"mode": "token", "identity": token})).await.ok();
    wait_for(5, "the forget-me callback", || rx.got().len() == 2).await;

    // Assert
    let got = rx.got();
    assert_eq!(got[0].0, "profile-change");
    assert_eq!(got[0].1["event"], "profile-change");
    assert_eq!(got[0].1["token"], token.as_str());
    assert!(got[0].1["time"].as_i64().unwrap() > 0);
    assert_eq!(got[1].0, "forget-me");
    assert_eq!(got[1].1["token"], token.as_str());
    for (_, body) in &got {
        let text = body.to_string();
        for pii in ["mara@example.com", "Mara", "Marabel", "email", "name"] {
            assert!(!text.contains(pii), "{pii} leaked in {text}");
        }
    }
    assert_eq!(outbox_rows(&app).await, 0, "delivered rows are deleted");
}

#[tokio::test]
async fn an_unchanged_profile_sends_nothing() {
    // Arrange
    let rx = Receiver::default();
    let app = app_calling(rx.clone().serve().await).await;
    let token = create(&app, json!({"name": "Noor"})).await;

    // Act
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Noor"}})).await.ok();

    // Assert
    assert_eq!(outbox_rows(&app).await, 0);
}

#[tokio::test]
async fn consent_withdrawals_are_posted_with_the_brief() {
    // Arrange
    let rx = Receiver::default();
    let app = app_calling(rx.clone().serve().await).await;
    let a = create(&app, json!({"login": "ann"})).await;
    let b = create(&app, json!({"login": "bob"})).await;
    for brief in ["newsletter", "marketing"] {
        app.root("LegalBasisCreate", json!({"brief": brief})).await.ok();
        for u in [&a, &b] {
            app.root("AgreementAccept", json!({"mode": "token", "identity": u, "brief": brief})).await.ok();
        }
    }

    // Act
    app.root("AgreementCancel", json!({"mode": "token", "identity": a, "brief": "newsletter"})).await.ok();
    wait_for(5, "the AgreementCancel callback", || rx.got().len() == 1).await;
    app.root("AgreementRevokeAll", json!({"brief": "marketing"})).await.ok();
    wait_for(5, "the AgreementRevokeAll callback", || rx.got().len() == 2).await;

    // Assert
    let got = rx.got();
    assert_eq!(got[0].0, "consent-withdrawal");
    assert_eq!((got[0].1["token"].as_str(), got[0].1["brief"].as_str()), (Some(a.as_str()), Some("newsletter")));
    assert_eq!(got[1].0, "consent-withdrawal");
    assert_eq!(got[1].1["brief"], "marketing");
    assert_eq!(got[1].1["revoked"], 2);
    assert_eq!(got[1].1["token"], Value::Null, "revoke-all sends one callback per brief");
}

#[tokio::test]
async fn a_failing_receiver_gets_the_callback_after_retries() {
    // Arrange
    let rx = Receiver::default();
    rx.fail_first.store(2, Ordering::SeqCst);
    let app = app_calling(rx.clone().serve().await).await;
    let token = create(&app, json!({"name": "Rui"})).await;

    // Act
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Ruy"}})).await.ok();

    // Assert
    wait_for(8, "delivery after two failures", || rx.got().len() == 1).await;
    assert_eq!(rx.calls.load(Ordering::SeqCst), 3);
    assert_eq!(rx.got()[0].1["token"], token.as_str());
    assert_eq!(outbox_rows(&app).await, 0);
}

#[tokio::test]
async fn the_api_call_succeeds_while_the_receiver_is_down() {
    // Arrange: a port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let app = app_calling(dead).await;
    let token = create(&app, json!({"name": "Dov"})).await;

    // Act
    let started = Instant::now();
    let r = app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Dovid"}})).await;

    // Assert
    r.ok();
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut su = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM callback_outbox").fetch_one(&mut su).await.unwrap();
        if attempts >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rolled_back_change_queues_nothing() {
    // Arrange: dispatcher not started, so queued rows stay visible.
    let app = TestApp::spawn_configured(|c| c.callback_url = Some("http://127.0.0.1:9/hook".into())).await;
    let jack = create(&app, json!({"email": "jack@example.com"})).await;
    create(&app, json!({"email": "jill@example.com"})).await;

    // Act
    let r = app.root("UserUpdate", json!({"mode": "token", "identity": jack, "profile": {"email": "jill@example.com"}})).await;

    // Assert
    r.err(409);
    assert_eq!(outbox_rows(&app).await, 0);
    app.root("UserUpdate", json!({"mode": "token", "identity": jack, "profile": {"email": "jack2@example.com"}})).await.ok();
    assert_eq!(outbox_rows(&app).await, 1, "a committed change queues one");
}

#[tokio::test]
async fn without_a_callback_url_nothing_is_queued() {
    // Arrange
    let app = TestApp::spawn().await;
    let token = create(&app, json!({"name": "Ode"})).await;

    // Act
    app.root("UserUpdate", json!({"mode": "token", "identity": token, "profile": {"name": "Odette"}})).await.ok();
    app.root("UserDelete", json!({"mode": "token", "identity": token})).await.ok();

    // Assert
    assert_eq!(outbox_rows(&app).await, 0);
}

#[tokio::test]
async fn a_user_removed_by_the_retention_sweeper_is_reported() {
    let rx = Receiver::default();
    let url = rx.clone().serve().await;
    let app = TestApp::spawn_configured(|c| {
        c.callback_url = Some(url);
        c.callback_backoff_ms = 50;
        c.sweep_interval_ms = 200;
    })
    .await;
    app.state.start_callbacks();
    app.state.start_sweeper();
    let r = app.root("UserCreate", json!({"profile": {"email": "brief@example.com"}, "finaltime": "1s"})).await;
    let token = r.ok()["token"].as_str().unwrap().to_string();

    wait_for(10, "the user-expired callback", || rx.got().iter().any(|(e, _)| e == "user-expired")).await;
    let got = rx.got();
    let (_, body) = got.iter().find(|(e, _)| e == "user-expired").unwrap();
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["tenant"], "default");
    assert!(!body.to_string().contains("brief@example.com"));
    app.root("UserGet", json!({"mode": "token", "identity": token})).await.err(404);
}

/// A callback that fails its last attempt is kept as a dead letter, never retried and never
/// silently dropped: an erasure notice that did not arrive stays visible.
#[tokio::test]
async fn a_callback_that_keeps_failing_becomes_a_dead_letter() {
    let rx = Receiver::default();
    rx.fail_first.store(usize::MAX, Ordering::SeqCst);
    let app = app_calling(rx.clone().serve().await).await;
    let token = create(&app, json!({"name": "Gone"})).await;
    app.root("UserDelete", json!({"mode": "token", "identity": token})).await.ok();
    // Skip the backoff of the first attempts: one attempt left, due now.
    let mut su = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    let max = strongroom::privacy::callbacks::MAX_ATTEMPTS;
    sqlx::query("UPDATE callback_outbox SET attempts = $1, next_at = 0").bind(max - 1).execute(&mut su).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let dead: Option<(i32, String)> =
            sqlx::query_as("SELECT attempts, event FROM callback_outbox WHERE dead_at IS NOT NULL").fetch_optional(&mut su).await.unwrap();
        if let Some((attempts, event)) = dead {
            assert_eq!((attempts, event.as_str()), (max, "forget-me"));
            break;
        }
        assert!(Instant::now() < deadline, "the callback was not kept as a dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = rx.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.calls.load(Ordering::SeqCst), calls, "a dead letter is not retried");
    assert_eq!(outbox_rows(&app).await, 1);
}

/// With STRONGROOM_WEBHOOK_SECRET, each callback carries an HMAC-SHA-256 signature over its
/// timestamp and exact body, checked here independently of the vault's code.
#[tokio::test]
async fn callbacks_are_signed_with_the_webhook_secret() {
    use hmac::{Hmac, Mac};
    type Signed = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let got: Signed = Arc::default();
    let keep = got.clone();
    let hook = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let sig = headers.get("x-strongroom-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                keep.lock().unwrap().push((sig, body.to_vec()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await });
    let secret = "a-webhook-secret-of-at-least-32-characters";
    let app = TestApp::spawn_configured(|c| {
        c.callback_url = Some(url);
        c.callback_backoff_ms = 50;
        c.webhook_secret = Some(zeroize::Zeroizing::new(secret.to_string()));
    })
    .await;
    app.state.start_callbacks();
    let token = create(&app, json!({"name": "Sig"})).await;
    app.root("UserDelete", json!({"mode": "token", "identity": token})).await.ok();
    wait_for(5, "the signed callback", || !got.lock().unwrap().is_empty()).await;
    let (sig, body) = got.lock().unwrap()[0].clone();
    let (t, v1) = sig.strip_prefix("t=").and_then(|r| r.split_once(",v1=")).expect("t=…,v1=…");
    let t: i64 = t.parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - t).abs() < 60);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&body);
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["token"], token.as_str());
}
