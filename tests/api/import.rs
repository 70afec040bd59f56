//! `strongroom import` from another Strongroom (it speaks the Pro v2 API) into a tenant of a
//! second vault: tokens kept, everything the source exposes copied, reruns copy nothing twice.

use base64::Engine;
use serde_json::json;
use strongroom::import::{self, Endpoint, Options};

use crate::helpers::*;

fn opts(source: &TestApp, target: &TestApp, admin: &str, state: Option<std::path::PathBuf>) -> Options {
    Options {
        source: Endpoint { url: source.base.clone(), token: source.root_token.clone(), tenant: None },
        target: Endpoint { url: target.base.clone(), token: admin.to_string(), tenant: Some("moved".into()) },
        state,
        session_ttl: "1d".into(),
        progress: false,
        source_api: import::SourceApi::V2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moves_over_with_its_tokens_and_a_rerun_copies_nothing_twice() {
    let source = TestApp::spawn().await;
    let target = TestApp::spawn().await;
    let (_, admin) = target.create_tenant("moved").await;

    // The source: definitions, three users with app data, consent, a file, a session, a group.
    source.root("LegalBasisCreate", json!({"brief": "marketing", "fulldesc": "News"})).await.ok();
    source.root("ProcessingActivityCreate", json!({"activity": "newsletter", "title": "News"})).await.ok();
    let gid = source.root("GroupCreate", json!({"groupname": "class-a"})).await.ok()["groupid"].clone();
    let mut tokens = Vec::new();
    for i in 0..3 {
        let t = source
            .create_user(&source.root_token, None, json!({"email": format!("mover{i}@example.com"), "name": format!("Mover {i}")}))
            .await;
        source.root("AppdataCreate", json!({"mode": "token", "identity": t, "appname": "shop", "appdata": {"cart": i}})).await.ok();
        tokens.push(t);
    }
    let first = tokens[0].clone();
    source.root("AgreementAccept", json!({"mode": "token", "identity": first, "brief": "marketing"})).await.ok();
    let data = base64::engine::general_purpose::STANDARD.encode(b"scan");
    source
        .root("FileCreate", json!({"mode": "token", "identity": first, "filename": "id.pdf", "filedata": data, "tags": ["kyc"]}))
        .await
        .ok();
    let s = uuid::Uuid::new_v4().to_string();
    source.root("SessionUpsert", json!({"sessionuuid": s, "sessiondata": {"k": 1}, "mode": "token", "identity": first})).await.ok();
    source.root("GroupAddUser", json!({"mode": "token", "identity": first, "groupid": gid})).await.ok();
    source.root("TokenCreate", json!({"tokentype": "email", "record": "not-listed@example.com"})).await.ok();

    let dir = temp_dir("import");
    let state = dir.join("state.json");
    let sum = import::run(&opts(&source, &target, &admin, Some(state.clone()))).await.unwrap();
    assert_eq!((sum.users.copied, sum.users.failed), (3, 0), "{sum:?}");
    assert_eq!((sum.appdata.copied, sum.agreements.copied, sum.files.copied, sum.sessions.copied), (3, 1, 1, 1), "{sum:?}");
    assert_eq!((sum.legal_bases.copied, sum.processing_activities.copied, sum.groups.copied, sum.memberships.copied), (1, 1, 1, 1));
    assert!(sum.not_copied.iter().any(|n| n.contains("tokenization tokens")), "{sum:?}");

    // The same tokens answer in the target tenant, with everything that hangs off them.
    let t = Some("moved");
    for (i, tok) in tokens.iter().enumerate() {
        let u = target.call("UserGet", Some(&admin), t, json!({"mode": "token", "identity": tok})).await;
        assert_eq!(u.ok()["profile"]["name"], format!("Mover {i}"));
        let a = target.call("AppdataGet", Some(&admin), t, json!({"mode": "token", "identity": tok, "appname": "shop"})).await;
        assert_eq!(a.ok()["appdata"], json!({"cart": i}));
    }
    let by_email = target.call("UserGet", Some(&admin), t, json!({"mode": "email", "identity": "mover1@example.com"})).await;
    assert_eq!(by_email.ok()["token"], tokens[1].as_str(), "the email index is rebuilt");
    let ag = target.call("AgreementGet", Some(&admin), t, json!({"mode": "token", "identity": first, "brief": "marketing"})).await;
    assert_eq!(ag.ok()["agreement"]["status"], "active");
    let files = target.call("FileListUserFiles", Some(&admin), t, json!({"mode": "token", "identity": first, "tag": "kyc"})).await;
    assert_eq!(files.ok()["files"][0]["filename"], "id.pdf");
    assert_eq!(target.call("SessionGet", Some(&admin), t, json!({"sessionuuid": s})).await.ok()["sessiondata"], json!({"k": 1}));
    let groups = target.call("GroupListUserGroups", Some(&admin), t, json!({"mode": "token", "identity": first})).await;
    assert_eq!(groups.ok()["rows"][0]["groupname"], "class-a");
    // Nothing landed in the target's main tenant.
    target.root("UserGet", json!({"mode": "token", "identity": first})).await.err(404);

    // Resumed with the state file: the users are not read again.
    let again = import::run(&opts(&source, &target, &admin, Some(state))).await.unwrap();
    assert_eq!((again.users.copied, again.users.present), (0, 0), "{again:?}");
    // From scratch: everything is found already there, nothing doubles.
    let fresh = import::run(&opts(&source, &target, &admin, None)).await.unwrap();
    assert_eq!((fresh.users.copied, fresh.users.present), (0, 3), "{fresh:?}");
    assert_eq!((fresh.appdata.copied, fresh.files.copied, fresh.legal_bases.copied, fresh.groups.copied), (0, 0, 0, 0), "{fresh:?}");
    let files = target.call("FileListUserFiles", Some(&admin), t, json!({"mode": "token", "identity": first})).await;
    assert_eq!(files.ok()["files"].as_array().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn user_import_keeps_the_token_and_is_for_admins_only() {
    let app = TestApp::spawn().await;
    let token = uuid::Uuid::new_v4().to_string();
    let r = app.root("UserImport", json!({"token": token.to_uppercase(), "profile": {"email": "kept@example.com"}})).await;
    assert_eq!((r.ok()["token"].as_str(), r.ok()["imported"].as_bool()), (Some(token.as_str()), Some(true)));
    let again = app.root("UserImport", json!({"token": token, "profile": {"email": "other@example.com"}})).await;
    assert_eq!(again.ok()["imported"], false, "an existing token is left as it is");
    assert_eq!(app.root("UserGet", json!({"mode": "token", "identity": token})).await.ok()["profile"]["email"], "kept@example.com");
    app.root("UserImport", json!({"token": "not-a-uuid", "profile": {}})).await.err(400);
    // The email is taken by the first import: a second token with it is refused.
    app.root("UserImport", json!({"token": uuid::Uuid::new_v4().to_string(), "profile": {"email": "kept@example.com"}})).await.err(409);
    let writer = app
        .raw(reqwest::Method::POST, "/v1/credentials/create", &[("x-bunker-token", &app.root_token)], br#"{"role":"app-writer"}"#.to_vec())
        .await
        .ok()["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.call("UserImport", Some(&writer), None, json!({"token": uuid::Uuid::new_v4().to_string(), "profile": {}})).await.err(403);
}

/// From a Databunker v1 source (here Strongroom's own v1 API, which answers in Databunker's
/// shapes): tokens kept, app records, consents (a withdrawn one stays withdrawn), sessions,
/// legal bases and activities with their links copied; a rerun copies nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_databunker_v1_tenant_moves_over_keeping_its_tokens() {
    let source = TestApp::spawn().await;
    let target = TestApp::spawn().await;
    let (_, admin) = target.create_tenant("moved").await;
    let http = http_client();
    let v1 = |method: reqwest::Method, path: String, body: serde_json::Value| {
        http.request(method, format!("{}{path}", source.base)).header("X-Bunker-Token", &source.root_token).json(&body).send()
    };
    v1(reqwest::Method::POST, "/v1/lbasis/news".into(), json!({"shortdesc": "News", "basistype": "consent"})).await.unwrap();
    v1(reqwest::Method::POST, "/v1/lbasis/ads".into(), json!({"shortdesc": "Ads"})).await.unwrap();
    v1(reqwest::Method::POST, "/v1/pactivity/mailing".into(), json!({"fulldesc": "Mailing"})).await.unwrap();
    v1(reqwest::Method::POST, "/v1/pactivity/mailing/news".into(), json!({})).await.unwrap();
    let mut tokens = Vec::new();
    for i in 0..3 {
        let r: serde_json::Value =
            v1(reqwest::Method::POST, "/v1/user".into(), json!({"login": format!("v1-{i}"), "name": format!("V1 {i}")}))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let t = r["token"].as_str().unwrap().to_string();
        v1(reqwest::Method::POST, format!("/v1/userapp/token/{t}/shop"), json!({"cart": i})).await.unwrap();
        tokens.push(t);
    }
    let first = tokens[0].clone();
    v1(reqwest::Method::POST, format!("/v1/agreement/news/token/{first}"), json!({})).await.unwrap();
    v1(reqwest::Method::POST, format!("/v1/agreement/ads/token/{first}"), json!({"status": "no"})).await.unwrap();
    let s = uuid::Uuid::new_v4().to_string();
    v1(reqwest::Method::POST, format!("/v1/session/{s}"), json!({"login": "v1-0", "k": 1})).await.unwrap();

    let mut o = opts(&source, &target, &admin, None);
    o.source_api = import::SourceApi::V1;
    let sum = import::run(&o).await.unwrap();
    assert_eq!((sum.users.copied, sum.appdata.copied, sum.agreements.copied, sum.sessions.copied), (3, 3, 2, 1), "{sum:?}");
    assert_eq!((sum.legal_bases.copied, sum.processing_activities.copied), (2, 1), "{sum:?}");
    let moved = Some("moved");
    for (i, t) in tokens.iter().enumerate() {
        let got = target.call("UserGet", Some(&admin), moved, json!({"mode": "token", "identity": t})).await;
        assert_eq!(got.ok()["profile"]["name"], format!("V1 {i}"));
        let app = target.call("AppdataGet", Some(&admin), moved, json!({"mode": "token", "identity": t, "appname": "shop"})).await;
        assert_eq!(app.ok()["appdata"]["cart"], i);
    }
    let ag =
        |brief: &'static str| target.call("AgreementGet", Some(&admin), moved, json!({"mode": "token", "identity": first, "brief": brief}));
    assert_eq!(ag("news").await.ok()["agreement"]["status"], "active");
    assert_eq!(ag("ads").await.ok()["agreement"]["status"], "withdrawn");
    let sess = target.call("SessionGet", Some(&admin), moved, json!({"sessionuuid": s})).await;
    assert_eq!(sess.ok()["sessiondata"]["k"], 1);
    let acts = target.call("ProcessingActivityListActivities", Some(&admin), moved, json!({})).await;
    assert_eq!(acts.ok()["rows"][0]["legalbases"], json!(["news"]), "{}", acts.body);

    let again = import::run(&o).await.unwrap();
    assert_eq!((again.users.copied, again.users.present, again.appdata.copied, again.appdata.present), (0, 3, 0, 3), "{again:?}");
}
