//! `Idempotency-Key`: a retry of a creating call answers the first call's result (same token,
//! `Idempotent-Replayed: true`) instead of a duplicate or a 409; the key is the caller's own,
//! bound to the body, refused where an answer would hold a secret, and concurrent calls under
//! one key create one record.

use serde_json::{json, Value};

use crate::helpers::*;

struct Answer {
    code: u16,
    replayed: bool,
    body: Value,
}

async fn create(app: &TestApp, token: &str, tenant: &str, endpoint: &str, key: &str, body: &Value) -> Answer {
    let r = app
        .client
        .post(format!("{}/v2/{endpoint}", app.base))
        .header("x-bunker-token", token)
        .header("x-bunker-tenant", tenant)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    Answer { code, replayed, body: r.json().await.unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_under_the_same_key_answers_the_first_result() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.create_tenant("idem").await;
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({"profile": {"email": "ada@example.com", "name": "Ada"}});

    let first = create(&app, &admin, "idem", "UserCreate", &key, &body).await;
    assert_eq!((first.code, first.replayed), (200, false), "{}", first.body);
    let token = first.body["token"].as_str().unwrap().to_string();
    let again = create(&app, &admin, "idem", "UserCreate", &key, &body).await;
    assert_eq!((again.code, again.replayed), (200, true), "{}", again.body);
    assert_eq!(again.body, first.body, "the first answer, token and all");
    // One record: without the key the same body is a duplicate.
    let dup = app.call("UserCreate", Some(&admin), Some("idem"), body.clone()).await;
    assert_eq!(dup.code, 409, "{}", dup.body);
    assert_eq!(app.call("UserGet", Some(&admin), Some("idem"), json!({"mode": "token", "identity": token})).await.code, 200);

    // The key is bound to its body...
    let other = create(&app, &admin, "idem", "UserCreate", &key, &json!({"profile": {"email": "eve@example.com"}})).await;
    assert_eq!(other.code, 409, "{}", other.body);
    assert!(other.body["message"].as_str().unwrap().contains("different request"));
    // ...and to its caller: another credential's same key and body is a call of its own.
    let (_, writer) = crate::roles::mint(&app, &admin, "idem", "app-writer").await;
    let theirs = create(&app, &writer, "idem", "UserCreate", &key, &body).await;
    assert_eq!((theirs.code, theirs.replayed), (409, false), "{}", theirs.body);
    // A retry is authorized like a first call.
    let (_, reader) = crate::roles::mint(&app, &admin, "idem", "app-reader").await;
    assert_eq!(create(&app, &reader, "idem", "UserCreate", &key, &body).await.code, 403);

    // Bulk and token creation take a key too; a replay creates nothing more.
    let bulk = json!({"records": [{"profile": {"login": "b1"}}, {"profile": {"login": "b2"}}]});
    let b1 = create(&app, &admin, "idem", "UserCreateBulk", "bulk-1", &bulk).await;
    let b2 = create(&app, &admin, "idem", "UserCreateBulk", "bulk-1", &bulk).await;
    assert_eq!((b1.code, b2.code, b2.replayed), (200, 200, true));
    assert_eq!(b1.body, b2.body);
    let t = json!({"tokentype": "creditcard", "record": "4111111111111111"});
    let t1 = create(&app, &admin, "idem", "TokenCreate", "tok-1", &t).await;
    let t2 = create(&app, &admin, "idem", "TokenCreate", "tok-1", &t).await;
    assert_eq!((t1.code, t2.replayed, &t1.body["tokenuuid"]), (200, true, &t2.body["tokenuuid"]), "{}", t1.body);

    // Where the answer holds a secret, no key is taken; a malformed key is refused.
    let x = create(&app, &admin, "idem", "XTokenCreateForRole", "x-1", &json!({"rolename": "app-reader"})).await;
    assert_eq!(x.code, 400, "{}", x.body);
    let long = "k".repeat(256);
    assert_eq!(create(&app, &admin, "idem", "UserCreate", &long, &body).await.code, 400);
    assert_eq!(create(&app, &admin, "idem", "UserCreate", "", &body).await.code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_under_one_key_create_one_record() {
    let app = TestApp::spawn().await;
    let body = json!({"profile": {"email": "race@example.com"}});
    let calls = (0..8).map(|_| create(&app, &app.root_token, "default", "UserCreate", "race-1", &body));
    let answers = futures_util::future::join_all(calls).await;
    let tokens: std::collections::BTreeSet<String> =
        answers.iter().filter(|a| a.code == 200).map(|a| a.body["token"].as_str().unwrap().to_string()).collect();
    assert_eq!(tokens.len(), 1, "one record, one token: {:?}", answers.iter().map(|a| (a.code, &a.body)).collect::<Vec<_>>());
    for a in &answers {
        assert!(a.code == 200 || a.code == 409, "{} {}", a.code, a.body);
    }
    let retry = create(&app, &app.root_token, "default", "UserCreate", "race-1", &body).await;
    assert_eq!((retry.code, retry.replayed), (200, true));
    assert_eq!(retry.body["token"].as_str().unwrap(), tokens.first().unwrap());
}
