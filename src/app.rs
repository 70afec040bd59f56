//! Application state and router assembly, apart from serving so tests can bind port 0.

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
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
}

impl AppState {
    /// Loads the vault identity from the (migrated) database; starts sealed when initialized.
    /// A configured auto-unseal source is checked here (a bad spec fails start-up) but not
    /// contacted: [`AppState::start_auto_unseal`] does that in the background.
    pub async fn new(db: Db, config: Config) -> Result<AppState> {
        let vault = Arc::new(Vault::load(db).await?);
        let source = match &config.unseal_source {
            Some(spec) => Some(Arc::new(Source::from_spec(spec).await.map_err(|e| Error::Unavailable(e.to_string()))?)),
            None => None,
        };
        if let Some(s) = &source {
            vault.set_auto_unseal(Some(s.describe()), Some("auto-unseal not attempted yet".into()));
        }
        Ok(AppState { inner: Arc::new(Inner { vault, config, source }) })
    }

    /// Starts unsealing from the configured source, retrying with backoff; no-op without one.
    pub fn start_auto_unseal(&self) {
        if let Some(source) = &self.inner.source {
            tokio::spawn(crate::custody::auto_unseal(self.inner.vault.clone(), source.clone()));
        }
    }

    /// Starts the background re-wrap of keys after tenant data-key rotations.
    pub fn start_rewrap(&self) {
        let interval = std::time::Duration::from_millis(self.inner.config.rewrap_interval_ms);
        tokio::spawn(crate::custody::rotation::rewrap_loop(self.inner.vault.clone(), interval));
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
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::api::sys::routes())
        .merge(crate::api::v2_routes(state.clone()))
        .fallback(|| async { Error::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { Error::bad("method not allowed: v2 endpoints take POST") })
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
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
