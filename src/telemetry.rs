//! Logs and metrics. Invariants: nothing here ever records personal data or secrets. Request
//! logs carry a request id, the method, the matched route (never the raw path or query string),
//! the tenant id and the status; no bodies and no header values except the request id. Metric
//! labels come from closed sets (route templates, contract endpoint names, status codes, fixed
//! outcome words), so a client cannot create series. Metrics are served on their own listener
//! (`STRONGROOM_METRICS_LISTEN`), never on the API port.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::app::AppState;

pub const HTTP_REQUESTS: &str = "strongroom_http_requests_total";
pub const HTTP_DURATION: &str = "strongroom_http_request_duration_seconds";
pub const SEALED: &str = "strongroom_sealed";
pub const UNSEAL_ATTEMPTS: &str = "strongroom_unseal_attempts_total";
pub const AUDIT_EVENTS: &str = "strongroom_audit_events_total";
pub const CALLBACK_DEAD_LETTERS: &str = "strongroom_callback_dead_letters_total";
pub const REWRAP_PENDING: &str = "strongroom_rewrap_pending";
pub const REWRAP_ROWS: &str = "strongroom_rewrap_rows_total";
pub const AUDIT_BATCH: &str = "strongroom_audit_batch_events";
pub const SWEEPER_DELETED: &str = "strongroom_sweeper_deleted_total";
pub const DB_POOL: &str = "strongroom_db_pool_connections";
pub const DB_POOL_MAX: &str = "strongroom_db_pool_max_connections";
pub const BUILD_INFO: &str = "strongroom_build_info";

/// Latency buckets (seconds): a vault call is a few milliseconds; seconds mean trouble.
const BUCKETS: &[f64] = &[0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

// ---------------------------------------------------------------------------------------------
// Logging

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// `STRONGROOM_LOG_FORMAT`: `text` (default) or `json`.
    pub fn parse(value: Option<&str>) -> anyhow::Result<LogFormat> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(_) => anyhow::bail!("STRONGROOM_LOG_FORMAT must be `text` or `json`"),
        }
    }
}

/// Installs the process-wide log subscriber on stderr, filtered by `STRONGROOM_LOG`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRONGROOM_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    // Colours only for a person at a terminal: a log redirected to a file stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: id, span, access log, HTTP metrics

tokio::task_local! {
    /// The tenant the current request acted in (0 until known), set by the audit trail.
    static CALL_TENANT: Arc<AtomicI64>;
}

/// Notes the tenant the current request acts in (first one wins); a no-op outside a request.
pub fn note_tenant(tenant_id: i64) {
    let _ = CALL_TENANT.try_with(|t| t.compare_exchange(0, tenant_id, Ordering::Relaxed, Ordering::Relaxed));
}

/// The client's request id when it is a short token of safe characters, else a new one.
pub fn request_id(incoming: Option<&HeaderValue>) -> String {
    let safe =
        |s: &str| (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    match incoming.and_then(|v| v.to_str().ok()) {
        Some(s) if safe(s) => s.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// The endpoint label of a request: its route template; for the `/v2/{name}` catch-all the
/// name only when it is a contract endpoint; `unknown` for anything else. Never the raw path.
pub fn endpoint_label(req: &Request) -> String {
    match req.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/v2/{name}") => {
            let name = req.uri().path().strip_prefix("/v2/").unwrap_or_default();
            if crate::api::contract_endpoints().any(|e| e == name) {
                format!("/v2/{name}")
            } else {
                "unknown".to_string()
            }
        }
        Some(path) => path.to_string(),
        None => "unknown".to_string(),
    }
}

/// Middleware around every API request: request id (echoed in `X-Request-Id`), a span with
/// method and endpoint, an access log line with tenant and status, and the HTTP metrics.
pub async fn track_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers().get(REQUEST_ID_HEADER));
    let endpoint = endpoint_label(&req);
    let method = req.method().as_str().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        endpoint = %endpoint,
        tenant_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let tenant = Arc::new(AtomicI64::new(0));
    let mut response = CALL_TENANT.scope(tenant.clone(), next.run(req)).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let tenant_id = Some(tenant.load(Ordering::Relaxed)).filter(|t| *t > 0);
    if let Some(t) = tenant_id {
        span.record("tenant_id", t);
    }
    span.record("status", status);
    // Outside the request's span: the line names its fields once, not once more for the span.
    {
        tracing::info!(
            target: "strongroom::access",
            request_id = %id,
            method = %method,
            endpoint = %endpoint,
            tenant_id,
            status,
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            "request"
        );
    }
    counter!(HTTP_REQUESTS, "endpoint" => endpoint.clone(), "status" => status.to_string()).increment(1);
    histogram!(HTTP_DURATION, "endpoint" => endpoint).record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Domain counters, called from the vault, the audit trail and the re-wrap loop

/// One unseal attempt. `method`: `shares` or `wrapping_key`; `result`: `accepted` (share taken,
/// more needed), `unsealed`, `already_unsealed`, `rejected` (bad, foreign or wrong key
/// material) or `error` (the database failed).
pub fn unseal_attempt(method: &'static str, result: &'static str) {
    counter!(UNSEAL_ATTEMPTS, "method" => method, "result" => result).increment(1);
}

/// One audit event written into a call's transaction; also notes the call's tenant for the log.
pub fn audit_event(tenant_id: i64, outcome: crate::audit::Outcome) {
    note_tenant(tenant_id);
    counter!(AUDIT_EVENTS, "outcome" => outcome.text()).increment(1);
}

/// One group commit of audit events (`audit::batch`), by its number of events.
pub fn audit_batch(events: usize) {
    histogram!(AUDIT_BATCH).record(events as f64);
}

/// A callback kept as a dead letter after its last failed attempt.
pub fn callback_dead_letter(tenant_id: i64) {
    note_tenant(tenant_id);
    counter!(CALLBACK_DEAD_LETTERS).increment(1);
}

/// Rows (user and event keys) re-wrapped under a tenant's current data key.
pub fn rewrap_rows(n: u64) {
    counter!(REWRAP_ROWS).increment(n);
}

/// Keys still under an older data-key version, as last measured by this instance.
pub fn rewrap_pending(users: i64, events: i64) {
    gauge!(REWRAP_PENDING, "kind" => "users").set(users.max(0) as f64);
    gauge!(REWRAP_PENDING, "kind" => "events").set(events.max(0) as f64);
}

/// Rows the retention sweeper deleted, by kind (users, sessions, tokens, shared_records,
/// unlocks, leases).
pub fn sweeper_deleted(kind: &'static str, n: u64) {
    if n > 0 {
        counter!(SWEEPER_DELETED, "kind" => kind).increment(n);
    }
}

// ---------------------------------------------------------------------------------------------
// The Prometheus recorder and its listener

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle)
/// and registers every series at zero so alerts see them from the first scrape.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_string()), BUCKETS)?.install_recorder()?;
    describe_counter!(HTTP_REQUESTS, "API requests by endpoint (route template) and HTTP status");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "API request latency by endpoint");
    describe_gauge!(SEALED, "1 while this instance is sealed (or uninitialized), 0 when unsealed");
    describe_counter!(UNSEAL_ATTEMPTS, "Unseal attempts by method (shares, wrapping_key) and result");
    describe_counter!(AUDIT_EVENTS, "Audit events written, by outcome (ok, denied, error:<status>)");
    describe_counter!(CALLBACK_DEAD_LETTERS, "Callbacks given up after their last attempt and kept as dead letters");
    describe_gauge!(REWRAP_PENDING, "Keys still wrapped by an older tenant data-key version, by kind (users, events)");
    describe_counter!(REWRAP_ROWS, "Keys re-wrapped under the current tenant data key");
    describe_histogram!(AUDIT_BATCH, "Audit events per group commit (events of calls that changed nothing)");
    describe_counter!(SWEEPER_DELETED, "Expired rows deleted by the retention sweeper, by kind");
    describe_gauge!(DB_POOL, "Database pool connections by state (idle, in_use), sampled at scrape");
    describe_gauge!(DB_POOL_MAX, "Database pool size limit (STRONGROOM_DB_MAX_CONNECTIONS)");
    describe_gauge!(BUILD_INFO, "Always 1; the version label says which build runs");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for method in ["shares", "wrapping_key"] {
        for result in ["accepted", "unsealed", "already_unsealed", "rejected", "error"] {
            counter!(UNSEAL_ATTEMPTS, "method" => method, "result" => result).absolute(0);
        }
    }
    for outcome in [crate::audit::Outcome::Ok, crate::audit::Outcome::Denied] {
        counter!(AUDIT_EVENTS, "outcome" => outcome.text()).absolute(0);
    }
    counter!(REWRAP_ROWS).absolute(0);
    for kind in ["users", "sessions", "tokens", "shared_records", "unlocks", "leases"] {
        counter!(SWEEPER_DELETED, "kind" => kind).absolute(0);
    }
    rewrap_pending(0, 0);
    let handle = HANDLE.get_or_init(|| handle).clone();
    // Histograms are drained into their buckets on upkeep; keep memory bounded between scrapes.
    let upkeep = handle.clone();
    std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(Duration::from_secs(5));
        upkeep.run_upkeep();
    })?;
    Ok(handle)
}

#[derive(Clone)]
struct Scrape {
    state: AppState,
    handle: PrometheusHandle,
}

/// `GET /metrics` and nothing else. Seal state and pool usage are sampled at each scrape.
pub fn metrics_router(state: AppState, handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(Scrape { state, handle })
}

async fn scrape(State(s): State<Scrape>) -> Response {
    scrape_text(&s.state, &s.handle).into_response()
}

/// One scrape: samples seal state and pool usage, then renders every series.
pub fn scrape_text(state: &AppState, handle: &PrometheusHandle) -> impl IntoResponse {
    gauge!(SEALED).set(if state.vault().status().sealed { 1.0 } else { 0.0 });
    let pool = state.db().pool();
    let (size, idle) = (pool.size(), pool.num_idle() as u32);
    gauge!(DB_POOL, "state" => "idle").set(idle as f64);
    gauge!(DB_POOL, "state" => "in_use").set(size.saturating_sub(idle) as f64);
    gauge!(DB_POOL_MAX).set(state.config().db_max_connections as f64);
    handle.run_upkeep();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
}

/// Serves `/metrics` on its own listener until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    state: AppState,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(state, handle)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_short_and_safe() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(request_id(Some(&h("abc-123_x.y:z"))), "abc-123_x.y:z");
        for bad in ["", "has space", "quote\"", "a/b", &"x".repeat(65), "ünïcode"] {
            let Ok(v) = HeaderValue::from_str(bad) else { continue };
            let id = request_id(Some(&v));
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(None)).is_ok());
    }

    #[test]
    fn log_formats_parse() {
        assert_eq!(LogFormat::parse(None).unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::parse(Some("JSON")).unwrap(), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some("text")).unwrap(), LogFormat::Text);
        assert!(LogFormat::parse(Some("xml")).is_err());
    }

    #[tokio::test]
    async fn endpoint_labels_are_route_templates_or_contract_names_only() {
        use tower::ServiceExt;
        let label = |req: Request| async move { endpoint_label(&req) };
        let app: Router = Router::new()
            .route("/v2/UserCreate", axum::routing::post(label))
            .route("/v2/{name}", axum::routing::post(label))
            .route("/v1/sys/seal-status", get(label))
            .fallback(label);
        let call = |method: &str, uri: &str| {
            let req = Request::builder().method(method).uri(uri).body(axum::body::Body::empty()).unwrap();
            let app = app.clone();
            async move {
                let resp = app.oneshot(req).await.unwrap();
                let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
                String::from_utf8(bytes.to_vec()).unwrap()
            }
        };
        assert_eq!(call("POST", "/v2/UserCreate?email=ada@example.com").await, "/v2/UserCreate");
        assert_eq!(call("POST", "/v2/FileCreate").await, "/v2/FileCreate");
        assert_eq!(call("POST", "/v2/ada@example.com").await, "unknown");
        assert_eq!(call("GET", "/v1/sys/seal-status").await, "/v1/sys/seal-status");
        assert_eq!(call("GET", "/users/ada@example.com").await, "unknown");
    }
}
