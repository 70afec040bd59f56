//! The `strongroom` command: a thin CLI over the library.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;

use strongroom::app::{self, AppState};
use strongroom::config::Config;
use strongroom::localpg::{self, LocalPg};
use strongroom::store::Db;
use strongroom::telemetry;

#[derive(Parser)]
#[command(name = "strongroom", version, about = "Multi-tenant vault for personal data (Databunker Pro v2 API)")]
struct Cli {
    /// Settings file (NAME=VALUE lines, the environment's names); the environment overrides it.
    #[arg(long, global = true, env = "STRONGROOM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Production server: DATABASE_URL required; starts sealed.
    ///
    /// Settings come from the environment (or --config): DATABASE_URL (required),
    /// STRONGROOM_LISTEN, STRONGROOM_TENANT_KEYS, STRONGROOM_CORS_ORIGINS,
    /// STRONGROOM_PORTAL_NOTIFY_URL, STRONGROOM_CALLBACK_URL, STRONGROOM_METRICS_LISTEN,
    /// STRONGROOM_LOG, STRONGROOM_LOG_FORMAT and more: README.md and docs/operations.md list them.
    Serve {
        /// Address to listen on [default: 127.0.0.1:3000].
        #[arg(long, env = "STRONGROOM_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Demo: private PostgreSQL, auto-initialized and unsealed, root token DEMO. Not for real data.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Where the demo keeps its PostgreSQL cluster, key shares and tenant keys.
        #[arg(long, env = "STRONGROOM_DEMO_DIR", default_value = "strongroom-demo")]
        data_dir: PathBuf,
    },
    /// Initialize the vault in DATABASE_URL: prints the root token and the key shares once.
    Init {
        #[arg(long, default_value_t = 3)]
        shares: usize,
        #[arg(long, default_value_t = 2)]
        threshold: usize,
    },
    /// Apply database migrations to DATABASE_URL.
    Migrate,
    /// Copy a tenant from a Databunker Pro (v2 API) into a Strongroom tenant, keeping tokens.
    /// Resumable (--state) and idempotent; prints a summary (JSON) of what was and was not copied.
    Import {
        /// Source base URL (a Databunker Pro, or another Strongroom).
        #[arg(long)]
        source: String,
        /// Source credential: root or tenant admin (bulk listings need it).
        #[arg(long, env = "STRONGROOM_IMPORT_SOURCE_TOKEN")]
        source_token: String,
        #[arg(long)]
        source_tenant: Option<String>,
        /// Target Strongroom base URL.
        #[arg(long)]
        target: String,
        /// Target credential: the target tenant's admin (or root).
        #[arg(long, env = "STRONGROOM_IMPORT_TARGET_TOKEN")]
        target_token: String,
        #[arg(long)]
        target_tenant: Option<String>,
        /// Progress file: a rerun resumes after the last page of users done.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Life of copied sessions (the source does not expose their expiry).
        #[arg(long, default_value = "1d")]
        session_ttl: String,
        /// The source's wire API: v2 (Databunker Pro, Strongroom) or v1 (open-source Databunker).
        #[arg(long, value_enum, default_value = "v2")]
        source_api: strongroom::import::SourceApi,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check every tenant's hash chain; exits 1 naming the first bad event.
    Verify,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    strongroom::custody::install_crypto_provider();
    telemetry::init_logging(telemetry::LogFormat::parse(std::env::var("STRONGROOM_LOG_FORMAT").ok().as_deref())?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(run(cli));
    // Whatever is still running (a request past the drain timeout) is dropped, not awaited.
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// A shutdown signal (Ctrl-C or SIGTERM) that any number of listeners can wait for.
fn shutdown_watch() -> impl Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        app::shutdown_signal().await;
        let _ = tx.send(true);
    });
    move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        })
    }
}

async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))
}

/// Serves the API on `listener` (and `/metrics` on its own listener when configured) until a
/// shutdown signal; then drains, seals and closes the pool (see `app::serve_until_shutdown`).
async fn serve_all(state: AppState, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let config = state.config().clone();
    let listen = listener.local_addr()?;
    let stopped = shutdown_watch();
    // Always recorded: the root credential reads them at the API's own `GET /metrics` too.
    let handle = telemetry::install_metrics()?;
    if let Some(addr) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for metrics"))?;
        tracing::info!(metrics = %addr, "serving /metrics");
        tokio::spawn(telemetry::serve_metrics(metrics, state.clone(), handle, stopped()));
    }
    tracing::info!(listen = %listen, sealed = state.vault().status().sealed, "strongroom serving");
    app::serve_until_shutdown(listener, state, stopped(), config.shutdown_timeout).await?;
    Ok(())
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url.as_deref().context("DATABASE_URL is required")?;
    let db = Db::connect(url, config.db_max_connections).await.context("could not connect to PostgreSQL")?;
    db.migrate().await.context("migrations failed")?;
    Ok(db)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Cmd::Serve { listen } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            let db = connect(&config).await?;
            app::check_vault_pin(&db, config.vault_id.as_deref()).await?;
            let state = AppState::new(db, config.clone()).await?;
            state.start_auto_unseal();
            state.start_rewrap();
            state.start_sweeper();
            state.start_tenant_key_probe();
            state.start_callbacks();
            serve_all(state, bind(config.listen).await?).await?;
        }
        Cmd::Demo { listen, data_dir } => demo(config, listen, &data_dir).await?,
        Cmd::Init { shares, threshold } => {
            let db = connect(&config).await?;
            let state = AppState::new(db, config).await?;
            let out = state.vault().init(None, threshold, shares).await?;
            let keys: Vec<&str> = out.shares.iter().map(|s| s.as_str()).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"vault_id": out.vault_id, "root_token": out.root_token.as_str(), "threshold": threshold, "keys": keys})
                )?
            );
            eprintln!("Shown once. Give each key share to a different officer; any {threshold} unseal the vault.");
        }
        Cmd::Migrate => {
            connect(&config).await?;
            eprintln!("migrations applied");
        }
        Cmd::Import { source, source_token, source_tenant, target, target_token, target_tenant, state, session_ttl, source_api } => {
            let opts = strongroom::import::Options {
                source: strongroom::import::Endpoint { url: source, token: source_token, tenant: source_tenant },
                target: strongroom::import::Endpoint { url: target, token: target_token, tenant: target_tenant },
                state,
                session_ttl,
                progress: true,
                source_api,
            };
            let summary = strongroom::import::run(&opts).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Cmd::Audit { command: AuditCmd::Verify } => {
            let db = connect(&config).await?;
            let report = strongroom::audit::verify(&db).await?;
            if report.broken.is_empty() {
                println!("audit trail intact: {} events in {} tenants", report.events, report.tenants);
            } else {
                for b in &report.broken {
                    println!("AUDIT TRAIL BROKEN: {b}");
                }
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

const DEMO_ROOT_TOKEN: &str = "DEMO";

async fn demo(mut config: Config, listen: SocketAddr, data_dir: &Path) -> anyhow::Result<()> {
    // A busy port is found before minutes of initialisation, not after.
    let listener = bind(listen).await?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the demo's data dir {} (choose another with --data-dir)", data_dir.display()))?;
    // Tenant KEKs next to the data (like the demo's shares), so TenantDelete shreds here too.
    if config.tenant_keys.is_none() {
        config.tenant_keys = Some(format!("file:{}", data_dir.join("tenant-keks").display()));
    }
    let pg = match &config.database_url {
        Some(_) => None,
        None => {
            let pg = tokio::task::spawn_blocking({
                let d = data_dir.to_path_buf();
                move || LocalPg::start(&d)
            })
            .await??;
            config.database_url = Some(pg.url("postgres"));
            Some(pg)
        }
    };
    let database = match &pg {
        Some(pg) => format!("private PostgreSQL in {} on 127.0.0.1:{}", pg.cluster_dir().display(), pg.port()),
        None => "DATABASE_URL (the demo's private PostgreSQL is not started)".to_string(),
    };
    let result = demo_serve(config, listener, data_dir, &database).await;
    if let Some(pg) = pg {
        tracing::info!("stopping the demo's PostgreSQL");
        if let Err(e) = pg.stop() {
            tracing::error!(error = %e, "could not stop PostgreSQL");
        }
    }
    result
}

async fn demo_serve(mut config: Config, listener: tokio::net::TcpListener, data_dir: &Path, database: &str) -> anyhow::Result<()> {
    // Sign-in codes also go to the log and the demo outbox page: there is no email gateway here.
    config.portal_demo_outbox = true;
    // Served over plain HTTP on loopback: a browser would drop Secure cookies on a non-local host.
    config.portal_secure_cookies = false;
    let db = connect(&config).await?;
    let state = AppState::new(db, config).await?;
    let creds_path = data_dir.join("demo-credentials.json");
    let shares: Vec<String> = if !state.vault().status().initialized {
        let out = state.vault().init(Some(DEMO_ROOT_TOKEN), 2, 3).await?;
        let shares: Vec<String> = out.shares.iter().map(|s| s.to_string()).collect();
        let doc = json!({"warning": "DEMO ONLY: these shares unseal this demo vault", "vault_id": out.vault_id, "root_token": DEMO_ROOT_TOKEN, "shares": shares});
        localpg::write_private_file(&creds_path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
        shares
    } else {
        let text = std::fs::read_to_string(&creds_path)
            .with_context(|| format!("this demo database is initialized but {} is missing", creds_path.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text)?;
        doc["shares"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    if shares.len() < 2 {
        bail!("{} holds fewer than 2 shares", creds_path.display());
    }
    state.vault().unseal(&shares[0]).await?;
    state.vault().unseal(&shares[1]).await?;
    state.start_rewrap();
    state.start_sweeper();
    state.start_tenant_key_probe();
    state.start_callbacks();
    let bar = "=".repeat(78);
    eprintln!("{bar}\n  STRONGROOM DEMO MODE - NOT FOR REAL DATA\n{bar}");
    eprintln!("  API:          http://{}", listener.local_addr()?);
    eprintln!("  Root token:   {DEMO_ROOT_TOKEN}   (X-Bunker-Token header)");
    eprintln!("  Portal:       http://{}/portal/  (organisation: default; codes on /portal/demo/outbox)", listener.local_addr()?);
    eprintln!("  Unseal keys:  (2 of 3 needed; also in {})", creds_path.display());
    for (i, s) in shares.iter().enumerate() {
        eprintln!("    {}: {s}", i + 1);
    }
    eprintln!("  Data dir:     {}", data_dir.display());
    eprintln!("  Database:     {database}");
    // Not the README's user (ada@): doing both must not answer 409.
    eprintln!(
        "  Try: curl -s -X POST http://{}/v2/UserCreate -H 'X-Bunker-Token: DEMO' -d '{{\"profile\":{{\"email\":\"demo-user@example.com\"}}}}'",
        listener.local_addr()?
    );
    eprintln!("{bar}");
    serve_all(state, listener).await?;
    Ok(())
}
