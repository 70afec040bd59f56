//! Application state and router assembly, apart from serving so tests can bind port 0.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use crate::config::Config;
use crate::custody::tenant_kek::TenantKekStore;
use crate::custody::Source;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::vault::Vault;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    vault: Arc<Vault>,
    config: Config,
    source: Option<Arc<Source>>,
    authorizer: crate::auth::policy::Authorizer,
    limits: crate::auth::ratelimit::Limits,
    portal: crate::portal::Outbox,
    /// What the last probe of the tenant key store found (`None`: not probed yet).
    kek_probe: std::sync::Mutex<Option<String>>,
    /// Identity providers' public keys (OIDC trusts), cached per instance.
    oidc_keys: crate::auth::oidc::Keys,
    /// Group commit of the events of calls that changed nothing.
    audit: crate::audit::batch::Batcher,
    /// Credentials this instance has verified (exact: see the type).
    verified: crate::auth::Verified,
}

impl AppState {
    /// Loads the vault identity from the (migrated) database; starts sealed when initialized.
    /// A configured auto-unseal source is checked here (a bad spec fails start-up) but not
    /// contacted: [`AppState::start_auto_unseal`] does that in the background.
    ///
    /// The tenant key store (`STRONGROOM_TENANT_KEYS`) is built here too (a bad spec fails
    /// start-up); without one, a warning says once that deleting a tenant cannot shred backups.
    pub async fn new(db: Db, config: Config) -> Result<AppState> {
        let keks = TenantKekStore::from_spec(config.tenant_keys.as_deref()).await.map_err(|e| Error::Unavailable(e.to_string()))?;
        if keks.is_external() {
            tracing::info!(store = %keks.describe(), "tenant key-encryption keys are kept in the tenant key store");
        } else {
            tracing::warn!(
                "STRONGROOM_TENANT_KEYS is not set: tenant keys live in the database only, so deleting a tenant cannot make \
                 backups taken before the deletion unreadable (they open with the master key)"
            );
        }
        let audit = crate::audit::batch::Batcher::start(db.clone());
        let vault = Arc::new(Vault::load(db, keks).await?);
        let source = match &config.unseal_source {
            Some(spec) => Some(Arc::new(Source::from_spec(spec).await.map_err(|e| Error::Unavailable(e.to_string()))?)),
            None => None,
        };
        if let Some(s) = &source {
            vault.set_auto_unseal(Some(s.describe()), Some("auto-unseal not attempted yet".into()));
        }
        let authorizer = crate::auth::policy::Authorizer::built_in().await.map_err(Error::Internal)?;
        let limits = crate::auth::ratelimit::Limits::new(
            config.auth_failures_per_minute,
            Duration::from_secs(config.lockout_s),
            config.credential_rps,
        );
        Ok(AppState {
            inner: Arc::new(Inner {
                vault,
                config,
                source,
                authorizer,
                limits,
                portal: crate::portal::Outbox::new(),
                kek_probe: Default::default(),
                oidc_keys: Default::default(),
                audit,
                verified: Default::default(),
            }),
        })
    }

    /// Starts unsealing from the configured source, retrying with backoff; no-op without one.
    pub fn start_auto_unseal(&self) {
        if let Some(source) = &self.inner.source {
            tokio::spawn(crate::custody::auto_unseal(self.inner.vault.clone(), source.clone()));
        }
    }

    /// Starts probing the tenant key store (now, then every 5 minutes): a store that is reachable
    /// but holds none of the sampled live tenants' KEKs is almost surely misaddressed (a wrong
    /// prefix, mount or directory): such tenants would answer "tenant has been deleted". The
    /// finding is logged and shown by `/v1/sys/health` as `tenant_key_store`.
    pub fn start_tenant_key_probe(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let found = me.probe_tenant_key_store().await;
                *me.inner.kek_probe.lock().unwrap_or_else(|p| p.into_inner()) = Some(found);
                tokio::time::sleep(Duration::from_secs(300)).await;
            }
        });
    }

    async fn probe_tenant_key_store(&self) -> String {
        let keks = self.vault().tenant_keks();
        if !keks.is_external() {
            return "database".into();
        }
        let sample = match self.db().sample_kek_ids(3).await {
            Ok(s) => s,
            Err(e) => return format!("not checked: {e}"),
        };
        if sample.is_empty() {
            return "ok".into();
        }
        let (mut present, mut absent) = (0, 0);
        for id in &sample {
            match keks.get(id).await {
                Ok(Some(_)) => present += 1,
                Ok(None) => absent += 1,
                Err(_) => {}
            }
        }
        if present > 0 {
            "ok".into()
        } else if absent == sample.len() {
            tracing::error!(
                store = %keks.describe(), sampled = sample.len(),
                "the tenant key store holds none of the sampled tenants' KEKs: is STRONGROOM_TENANT_KEYS the right store?"
            );
            format!("holds none of the {} sampled tenant KEKs (wrong store?)", sample.len())
        } else {
            tracing::warn!(store = %keks.describe(), "the tenant key store is unreachable");
            "unreachable".into()
        }
    }

    /// The tenant key store's state as last probed.
    pub fn tenant_key_store_state(&self) -> Option<String> {
        self.inner.kek_probe.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts the background re-wrap of keys after tenant data-key rotations.
    pub fn start_rewrap(&self) {
        let interval = std::time::Duration::from_millis(self.inner.config.rewrap_interval_ms);
        tokio::spawn(crate::custody::rotation::rewrap_loop(self.inner.vault.clone(), interval));
    }

    /// Starts the background retention sweeper (deletes expired users, sessions, tokens, shared
    /// records, bulk unlocks and old leases; safe with several instances).
    pub fn start_sweeper(&self) {
        let interval = std::time::Duration::from_millis(self.inner.config.sweep_interval_ms);
        let policy = crate::privacy::sweeper::Policy {
            restore_window_s: self.inner.config.restore_window_s,
            callbacks: self.inner.config.callback_url.is_some(),
        };
        tokio::spawn(crate::privacy::sweeper::sweep_loop(self.inner.vault.clone(), interval, policy));
    }

    /// Starts the callback dispatcher (delivers the callback outbox to `STRONGROOM_CALLBACK_URL`;
    /// safe with several instances); no-op without a callback URL.
    pub fn start_callbacks(&self) {
        if let Some(url) = &self.inner.config.callback_url {
            let backoff = Duration::from_millis(self.inner.config.callback_backoff_ms);
            let to = crate::privacy::callbacks::Target { url: url.clone(), secret: self.inner.config.webhook_secret.clone() };
            tokio::spawn(crate::privacy::callbacks::dispatch_loop(self.db().clone(), to, backoff));
        }
    }

    /// The casbin enforcer every call asks.
    pub fn authorizer(&self) -> &crate::auth::policy::Authorizer {
        &self.inner.authorizer
    }

    /// Lock-outs after failed authentication, and per-credential rates.
    pub fn limits(&self) -> &crate::auth::ratelimit::Limits {
        &self.inner.limits
    }

    /// The auto-unseal source, if configured.
    pub fn unseal_source(&self) -> Option<&Source> {
        self.inner.source.as_deref()
    }

    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    pub fn db(&self) -> &Db {
        self.inner.vault.db()
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The privacy portal's rate limiter, notification client and demo outbox.
    pub fn portal(&self) -> &crate::portal::Outbox {
        &self.inner.portal
    }

    pub fn oidc_keys(&self) -> &crate::auth::oidc::Keys {
        &self.inner.oidc_keys
    }

    /// Credentials this instance has verified.
    pub fn verified(&self) -> &crate::auth::Verified {
        &self.inner.verified
    }

    /// Group commit of the audit events of calls that changed nothing.
    pub fn audit_batch(&self) -> &crate::audit::batch::Batcher {
        &self.inner.audit
    }
}

pub fn router(state: AppState) -> Router {
    // The portal calls the same v2 routes in-process (see `portal`).
    let api = crate::api::v2_routes(state.clone()).layer(DefaultBodyLimit::max(state.config().max_body_bytes)).with_state(state.clone());
    let trusted = Arc::new(state.config().trusted_proxies.clone());
    Router::new()
        .merge(crate::api::sys::routes(state.config()))
        .merge(crate::api::v2_routes(state.clone()))
        .merge(crate::v1::routes(api.clone()))
        .merge(crate::portal::routes(api))
        // The v2 surface as declared (`api::endpoints`); public, and served while sealed.
        .route("/v2/openapi.json", axum::routing::get(|| async { axum::Json(crate::api::endpoints::openapi()) }))
        .route("/", axum::routing::get(crate::portal::landing))
        .route("/docs/{name}", axum::routing::get(crate::portal::doc))
        .fallback(|method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
            if crate::v1::is_wire_path(uri.path()) {
                crate::v1::fallback(method, uri).await
            } else if crate::portal::is_portal_path(uri.path()) {
                crate::portal::no_such_page(&headers, false).await
            } else {
                Error::NotFound("no such route".into()).into_response()
            }
        })
        // axum adds the `Allow` header naming the methods the path takes. People reach the
        // portal's form targets by reloading or bookmarking them: they get a page.
        .method_not_allowed_fallback(|uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
            if crate::portal::is_portal_path(uri.path()) {
                crate::portal::no_such_page(&headers, true).await
            } else {
                Error::MethodNotAllowed.into_response()
            }
        })
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.config().body_timeout))
        // Outside the routes, so preflights (OPTIONS, which no route takes) and every error
        // answer, 404/405/503 included, reach the page.
        .layer(axum::middleware::from_fn_with_state(Arc::new(state.config().cors_origins.clone()), crate::api::cors::cors))
        .layer(axum::middleware::from_fn(crate::telemetry::track_request))
        .layer(axum::middleware::from_fn_with_state(trusted, crate::auth::ratelimit::resolve_client))
        .with_state(state)
}

/// `STRONGROOM_VAULT_ID`: refuses a database that is not the pinned vault (another init, or
/// not initialized at all), so a restore or a mistyped `DATABASE_URL` never serves the wrong data.
pub async fn check_vault_pin(db: &Db, pin: Option<&str>) -> anyhow::Result<()> {
    let Some(pin) = pin else { return Ok(()) };
    match db.vault_meta().await? {
        Some(meta) if meta.vault_id == pin => Ok(()),
        Some(meta) => anyhow::bail!(
            "refusing to start: the database belongs to vault_id {} but STRONGROOM_VAULT_ID pins {pin} \
             (wrong DATABASE_URL, or a backup of another vault)",
            meta.vault_id
        ),
        None => anyhow::bail!("refusing to start: the database is not initialized but STRONGROOM_VAULT_ID pins {pin}"),
    }
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let header_timeout = state.config().header_timeout;
    serve_connections(listener, router(state), header_timeout, shutdown).await;
    Ok(())
}

/// The connection loop (what `axum::serve` does, plus a header read timeout, which it cannot
/// set): each connection is served by hyper's HTTP/1 server with the client's address attached
/// for rate limits; once `shutdown` resolves, no more connections are accepted, every open one
/// finishes the request in flight and closes, and this returns when all are closed.
async fn serve_connections<L>(mut listener: L, router: Router, header_timeout: Duration, shutdown: impl Future<Output = ()>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            conn = listener.accept() => conn,
            _ = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(crate::auth::ratelimit::ClientAddr(addr)));
            tower::ServiceExt::oneshot(router.clone(), req.map(axum::body::Body::new))
        });
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(io), service);
            tokio::pin!(conn);
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
}

/// How long, at most, connections accepted before a shutdown may take to send their request
/// before in-flight work is told to finish.
const SETTLE_MAX: Duration = Duration::from_secs(5);

/// Serves until `shutdown` resolves, then shuts down gracefully: stops accepting (connections
/// already queued by the kernel are still taken and served; new ones are refused), lets every
/// accepted request finish for up to `drain_timeout`, then seals this instance (the keyring is
/// dropped and its keys wiped) and closes the database pool.
pub async fn serve_until_shutdown(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (closed_tx, closed_rx) = oneshot::channel();
    let unread = Arc::new(AtomicUsize::new(0));
    let listener = DrainingListener {
        inner: Some(listener),
        queued: VecDeque::new(),
        stop: stop_rx.clone(),
        closed: Some(closed_tx),
        unread: unread.clone(),
    };
    // hyper closes a connection that has not read its first request yet when told to shut
    // down, which resets the client; so the server's own signal waits until the listener is
    // closed and every accepted connection has read its request (bounded).
    let settle = drain_timeout.min(SETTLE_MAX);
    let server_signal = async move {
        let _ = closed_rx.await;
        let deadline = tokio::time::Instant::now() + settle;
        while unread.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new connections, draining in-flight requests");
        let _ = stop_tx.send(true);
    });
    let server = serve_connections(listener, router(state.clone()), state.config().header_timeout, server_signal);
    let mut stop = stop_rx;
    let deadline = async move {
        let _ = stop.wait_for(|s| *s).await;
        tokio::time::sleep(drain_timeout).await;
    };
    tokio::select! {
        _ = server => {}
        _ = deadline => tracing::warn!(timeout_s = drain_timeout.as_secs(), "drain timeout reached; exiting with requests still in flight"),
    }
    state.vault().seal_for_shutdown();
    // A request cut off by the drain timeout may still hold a connection: do not wait for it.
    if tokio::time::timeout(Duration::from_secs(2), state.db().close()).await.is_err() {
        tracing::warn!("database pool did not close within 2 s");
    }
    tracing::info!("shut down: sealed, database pool closed");
    Ok(())
}

/// A TCP listener that, once `stop` is set, takes the connections the kernel has already queued,
/// closes the socket (later connection attempts are refused), hands the queued ones to the
/// server and reports on `closed`. Each connection counts in `unread` until it first reads.
struct DrainingListener {
    inner: Option<TcpListener>,
    queued: VecDeque<(Tracked, SocketAddr)>,
    stop: watch::Receiver<bool>,
    closed: Option<oneshot::Sender<()>>,
    unread: Arc<AtomicUsize>,
}

enum Accepted {
    Conn(TcpStream, SocketAddr),
    Failed(std::io::Error),
    Stop,
}

impl DrainingListener {
    fn close(&mut self) {
        if let Some(listener) = self.inner.take() {
            match listener.into_std() {
                Ok(std_listener) => loop {
                    match std_listener.accept() {
                        Ok((s, addr)) => {
                            if let Ok(stream) = s.set_nonblocking(true).and_then(|_| TcpStream::from_std(s)) {
                                self.queued.push_back((Tracked::new(stream, &self.unread), addr));
                            }
                        }
                        Err(e) if is_connection_error(&e) => continue,
                        Err(_) => break,
                    }
                },
                Err(e) => tracing::warn!(error = %e, "could not take queued connections"),
            }
            // The std listener is dropped here: the socket is closed.
            tracing::info!(queued = self.queued.len(), "stopped accepting connections");
        }
        if let Some(closed) = self.closed.take() {
            let _ = closed.send(());
        }
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

impl axum::serve::Listener for DrainingListener {
    type Io = Tracked;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Tracked, SocketAddr) {
        loop {
            if let Some(conn) = self.queued.pop_front() {
                return conn;
            }
            let Some(listener) = &self.inner else {
                return std::future::pending().await;
            };
            let next = tokio::select! {
                biased;
                _ = self.stop.wait_for(|s| *s) => Accepted::Stop,
                r = listener.accept() => match r {
                    Ok((s, addr)) => Accepted::Conn(s, addr),
                    Err(e) => Accepted::Failed(e),
                },
            };
            match next {
                Accepted::Conn(s, addr) => return (Tracked::new(s, &self.unread), addr),
                Accepted::Stop => self.close(),
                Accepted::Failed(e) if is_connection_error(&e) => {}
                Accepted::Failed(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.inner {
            Some(l) => l.local_addr(),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotConnected, "listener closed")),
        }
    }
}

/// An accepted connection that counts in `unread` until its first read completes.
struct Tracked {
    io: TcpStream,
    unread: Option<Arc<AtomicUsize>>,
}

impl Tracked {
    fn new(io: TcpStream, unread: &Arc<AtomicUsize>) -> Tracked {
        unread.fetch_add(1, Ordering::AcqRel);
        Tracked { io, unread: Some(unread.clone()) }
    }

    fn mark_read(&mut self) {
        if let Some(u) = self.unread.take() {
            u.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.mark_read();
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_ready() {
            self.mark_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
