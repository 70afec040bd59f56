//! CORS on the wire API: a browser page on another origin calls /v2 with the SDK's headers. The
//! headers are checked here over HTTP; tests/python/test_cors.py does it in a real headless
//! Chromium, where the browser itself decides whether the page may read the answer.

use axum::routing::get;
use axum::Router;
use reqwest::{Method, Response};
use serde_json::json;
use strongroom::config::CorsOrigins;

use crate::helpers::*;

async fn preflight(app: &TestApp, path: &str, origin: &str) -> Response {
    http_client()
        .request(Method::OPTIONS, format!("{}{path}", app.base))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-bunker-token,x-bunker-tenant")
        .send()
        .await
        .unwrap()
}

fn allow_origin(r: &Response) -> Option<&str> {
    r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_preflight_is_answered_204_with_the_sdk_headers_and_any_origin_by_default() {
    let app = TestApp::spawn().await;
    let r = preflight(&app, "/v2/UserCreate", "https://app.example.com").await;
    assert_eq!(r.status(), 204);
    assert_eq!(allow_origin(&r), Some("*"));
    let headers = r.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for h in ["x-bunker-token", "x-bunker-tenant", "content-type"] {
        assert!(headers.contains(h), "{headers}");
    }
    assert!(r.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    // Unknown endpoint names are preflighted too (their 404 must reach the page).
    assert_eq!(preflight(&app, "/v2/NoSuchThing", "https://app.example.com").await.status(), 204);

    // The call itself carries the header, errors included.
    let call = |body: serde_json::Value| {
        http_client()
            .post(format!("{}/v2/UserCreate", app.base))
            .header("origin", "https://app.example.com")
            .header("x-bunker-token", app.root_token.clone())
            .json(&body)
            .send()
    };
    let ok = call(json!({"profile": {"login": "cors"}})).await.unwrap();
    assert_eq!((ok.status().as_u16(), allow_origin(&ok)), (200, Some("*")));
    let bad = call(json!({"profile": 5})).await.unwrap();
    assert_eq!((bad.status().as_u16(), allow_origin(&bad)), (400, Some("*")));
}

#[tokio::test]
async fn the_portal_and_the_operator_routes_never_get_cors_headers() {
    let app = TestApp::spawn().await;
    for path in ["/portal/", "/portal/signin", "/v1/sys/unseal", "/v1/sys/seal-status"] {
        let r = preflight(&app, path, "https://evil.example").await;
        assert_eq!(allow_origin(&r), None, "{path}");
        let r = http_client().get(format!("{}{path}", app.base)).header("origin", "https://evil.example").send().await.unwrap();
        assert_eq!(allow_origin(&r), None, "{path}");
    }
}

#[tokio::test]
async fn a_configured_list_allows_its_origins_only_and_none_turns_cors_off() {
    let list = "https://app.example.com, http://localhost:8080/".parse::<CorsOrigins>().unwrap();
    assert_eq!(list, CorsOrigins::List(vec!["https://app.example.com".into(), "http://localhost:8080".into()]));
    for bad in ["app.example.com", "https://app.example.com/path", "ftp://x", "https://*.example.com"] {
        assert!(bad.parse::<CorsOrigins>().is_err(), "{bad}");
    }
    let app = TestApp::spawn_configured(|c| c.cors_origins = list).await;
    let r = preflight(&app, "/v2/UserGet", "http://localhost:8080").await;
    assert_eq!((r.status().as_u16(), allow_origin(&r)), (204, Some("http://localhost:8080")));
    assert!(r.headers()["vary"].to_str().unwrap().to_ascii_lowercase().contains("origin"), "caches must key on Origin");
    let r = preflight(&app, "/v2/UserGet", "https://evil.example").await;
    assert_eq!(allow_origin(&r), None);

    let off = TestApp::spawn_configured(|c| c.cors_origins = CorsOrigins::Off).await;
    let r = preflight(&off, "/v2/UserGet", "http://localhost:8080").await;
    assert_eq!(allow_origin(&r), None);
    assert_ne!(r.status(), 204);
}

/// A page served from its own origin (another port) calls the vault with `fetch` in headless
/// Chromium: allowed by default, refused by the browser when the vault lists other origins only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_on_another_origin_calls_the_api() {
    let page = Router::new().route("/", get(|| async { axum::response::Html("<!doctype html><title>app</title><p>app") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, page).await.unwrap() });
    let page_origin = page_url.trim_end_matches('/').to_string();

    let open = TestApp::spawn().await;
    let listed = TestApp::spawn_configured(|c| c.cors_origins = CorsOrigins::List(vec![page_origin.clone()])).await;
    let other = TestApp::spawn_configured(|c| c.cors_origins = CorsOrigins::List(vec!["https://elsewhere.example".into()])).await;

    let envs = [
        ("PAGE_URL", page_url.as_str()),
        ("OPEN_URL", open.base.as_str()),
        ("OPEN_TOKEN", open.root_token.as_str()),
        ("LISTED_URL", listed.base.as_str()),
        ("LISTED_TOKEN", listed.root_token.as_str()),
        ("OTHER_URL", other.base.as_str()),
        ("OTHER_TOKEN", other.root_token.as_str()),
    ];
    crate::official_client::pytest("browser CORS", "test_cors.py", &envs).await;
    // What the pages did really happened: the users they created are there.
    for (app, login) in [(&open, "browser-open"), (&listed, "browser-listed")] {
        app.root("UserGet", json!({"mode": "login", "identity": login})).await.ok();
    }
    other.root("UserGet", json!({"mode": "login", "identity": "browser-other"})).await.err(404);
}
