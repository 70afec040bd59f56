//! `strongroom-bench`: measures the vault against raw SQL on the same PostgreSQL (see
//! bench/README.md). Its own crate, so the server library carries none of it. One run starts a
//! private PostgreSQL and the server (the `strongroom` binary) as a separate process,
//! pre-loads users, drives each workload at fixed concurrency, runs the raw baselines, and
//! writes `<out>/latest.json` plus a timestamped copy.

mod env;
mod load;
mod profile;
mod raw;
mod report;
mod vault;
mod workloads;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgPool};

use env::{BenchEnv, RAW_DB, VAULT_DB};
use load::WaitSampler;
use profile::ProfileGen;
use raw::Raw;
use report::Figures;
use vault::Vault;

/// Options of `strongroom-bench`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "strongroom-bench", version, about = "Measures Strongroom against raw SQL on the same PostgreSQL (bench/README.md)")]
pub struct BenchArgs {
    /// The `strongroom` binary to measure (default: the one next to this binary).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Smaller pre-load (10,000 users) and shorter phases; finishes in under 5 minutes.
    #[arg(long)]
    pub quick: bool,
    /// Where to write latest.json and the timestamped copy.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Users pre-loaded for the UserGet workloads (default 100,000; 10,000 with --quick).
    #[arg(long)]
    pub preload: Option<usize>,
    /// Also measure the 1,000,000-user point of the scale curve (long).
    #[arg(long)]
    pub full: bool,
    /// Tiny sizes and 2-second phases, to check the harness itself (figures mean little).
    #[arg(long, hide = true)]
    pub smoke: bool,
}

/// Sizes and time caps of one run.
pub(crate) struct Plan {
    preload: usize,
    scale: Vec<usize>,
    cap: Duration,
    bulk_cap: Duration,
    short_cap: Duration,
    create_bodies: usize,
    raw_rows: usize,
    bulk_requests: usize,
}

impl Plan {
    fn new(a: &BenchArgs) -> Plan {
        let mut scale = vec![10_000, 100_000];
        if a.full {
            scale.push(1_000_000);
        }
        let secs = Duration::from_secs;
        let (preload, cap, bulk_cap, short_cap, create_bodies, raw_rows, bulk_requests) = if a.smoke {
            scale = vec![1_000, 2_000];
            (2_000, secs(2), secs(4), secs(1), 5_000, 10_000, 4)
        } else if a.quick {
            (10_000, secs(8), secs(15), secs(5), 40_000, 100_000, 40)
        } else {
            (100_000, secs(30), secs(40), secs(15), 150_000, 300_000, 120)
        };
        Plan { preload: a.preload.unwrap_or(preload), scale, cap, bulk_cap, short_cap, create_bodies, raw_rows, bulk_requests }
    }
}

fn main() -> anyhow::Result<()> {
    let args = <BenchArgs as clap::Parser>::parse();
    strongroom::custody::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(args))
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let server = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("strongroom"),
    };
    if !server.is_file() {
        bail!("no server binary at {} (build it: cargo build --release; or pass --server PATH)", server.display());
    }
    let mut env = BenchEnv::start(server).await?;
    let result = tokio::select! {
        r = bench(&mut env, &args, started) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if result.is_err() {
        eprintln!("bench: server log tail:\n{}", env.server_log_tail());
    }
    env.shutdown();
    eprintln!("bench: done in {:.0} s (PostgreSQL stopped, {} removed)", started.elapsed().as_secs_f64(), env.dir().display());
    result
}

/// One run in progress: the environment, clients, and what has been measured.
pub(crate) struct Run<'a> {
    env: &'a mut BenchEnv,
    admin: PgPool,
    plan: Plan,
    root: Vault,
    raw: Arc<Raw>,
    vault_url: String,
    raw_url: String,
    /// Users in the vault's main tenant (pre-loaded; reads add none).
    loaded: Vec<vault::Loaded>,
    /// Rows in the baseline table: (token, email).
    raw_have: Vec<(String, String)>,
    raw_gen: ProfileGen,
    scale: Vec<Value>,
    bulk_request_bytes: usize,
    workloads: Vec<(String, Figures)>,
    baselines: Vec<(String, Figures)>,
}

impl Run<'_> {
    /// Warm-up (not measured), then the measured phase with CPU and wait sampling.
    #[allow(clippy::too_many_arguments)]
    async fn measure<F, Fut>(
        &mut self,
        name: &str,
        baseline: bool,
        clients: usize,
        warm: usize,
        max: usize,
        cap: Duration,
        per_req: u64,
        op: F,
    ) -> anyhow::Result<()>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let op = Arc::new(op);
        eprint!("bench: {name:<34} {clients:>2} clients ... ");
        let w = load::phase(clients, 0, warm, Duration::from_secs(10), op.clone()).await;
        if let Some(e) = w.first_error {
            bail!("{name}: warm-up failed: {e}");
        }
        let sampler = WaitSampler::start(self.admin.clone(), if baseline { RAW_DB } else { VAULT_DB }.to_string());
        let before = self.env.cpu();
        let r = load::phase(clients, warm, max, cap, op).await;
        let cpu = self.env.cpu() - before;
        let waits = sampler.finish().await;
        self.env.check_server()?;
        let done = r.latencies_ms.len() as u64;
        if done == 0 || r.errors * 20 > done + r.errors {
            bail!("{name}: {} of {} operations failed; first: {}", r.errors, done + r.errors, r.first_error.unwrap_or_default());
        }
        let f = Figures::new(r, cpu, clients, per_req, !baseline, waits);
        eprintln!("{:>8.0} ops/s  p50 {:.2} ms  p99 {:.2} ms  [{}]", f.ops_per_s, f.p50_ms, f.p99_ms, f.top_waits());
        if baseline { &mut self.baselines } else { &mut self.workloads }.push((name.to_string(), f));
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&Figures> {
        self.workloads.iter().chain(&self.baselines).find(|(n, _)| n == name).map(|(_, f)| f)
    }

    /// Switches `synchronous_commit` for the whole cluster (ALTER SYSTEM + reload); only the
    /// `diag_*_async_commit` diagnostics run with it off.
    async fn synchronous_commit(&self, on: bool) -> anyhow::Result<()> {
        let sql = if on { "ALTER SYSTEM RESET synchronous_commit" } else { "ALTER SYSTEM SET synchronous_commit = off" };
        self.admin.execute(sql).await?;
        self.admin.execute("SELECT pg_reload_conf()").await?;
        // Backends re-read the configuration before their next command.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }

    /// Adds raw rows (small profiles) until the baseline table holds `target` rows.
    async fn raw_fill(&mut self, target: usize) -> anyhow::Result<()> {
        while self.raw_have.len() < target {
            let profiles: Vec<Value> = (0..(target - self.raw_have.len()).min(1000)).map(|_| self.raw_gen.small()).collect();
            let rows: Vec<raw::RawRow> = profiles.iter().map(|p| self.raw.row(p)).collect();
            raw::insert_many(&self.raw.pool, &rows).await?;
            self.raw_have.extend(raw::identities(&rows, &profiles));
        }
        Ok(())
    }
}

/// Connection options for the bench's own connections: no statement logging (a long VACUUM or
/// bulk insert is expected here, not worth a "slow statement" warning).
pub(crate) fn quiet(url: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(url.parse::<PgConnectOptions>()?.application_name("strongroom-bench").disable_statement_logging())
}

/// VACUUM ANALYZE (after a load) and CHECKPOINT, so each phase starts from the same state.
async fn settle(url: &str, vacuum: bool) -> anyhow::Result<()> {
    let mut c = quiet(url)?.connect().await?;
    if vacuum {
        c.execute("VACUUM (ANALYZE)").await?;
    }
    c.execute("CHECKPOINT").await?;
    c.close().await?;
    Ok(())
}

/// Compares the columns of the vault's `users`/`user_index` with the baseline tables; a
/// mismatch (the vault schema moved on) is reported, not fatal.
async fn baseline_shape(vault_url: &str, raw: &PgPool) -> anyhow::Result<Value> {
    let vault = PgPoolOptions::new().max_connections(1).connect_with(quiet(vault_url)?).await?;
    let mut out = serde_json::Map::new();
    let mut all = true;
    for (v, r) in [("users", "raw_users"), ("user_index", "raw_user_index")] {
        let (vc, rc) = (raw::columns(&vault, v).await?, raw::columns(raw, r).await?);
        let same = vc == rc;
        if !same {
            eprintln!("bench: WARNING: baseline table {r} no longer has the shape of {v}: {vc:?} vs {rc:?} (update src/bench/raw.rs)");
        }
        all &= same;
        out.insert(v.to_string(), json!({"matches": same, "columns": vc.iter().map(|c| format!("{} {}", c.0, c.1)).collect::<Vec<_>>()}));
    }
    out.insert("matches".into(), all.into());
    vault.close().await;
    Ok(Value::Object(out))
}

async fn bench(env: &mut BenchEnv, args: &BenchArgs, started: Instant) -> anyhow::Result<()> {
    let plan = Plan::new(args);
    let mode = match (args.smoke, args.quick) {
        (true, _) => "smoke",
        (false, true) => "quick",
        _ => "full",
    };
    let root = Vault::init_and_unseal(&env.base).await?;
    let admin = PgPoolOptions::new().max_connections(2).connect_with(quiet(&env.url("postgres"))?).await?;
    let pg_version: String = sqlx::query_scalar("SELECT current_setting('server_version')").fetch_one(&admin).await?;
    let machine = report::machine(&pg_version);
    eprintln!("bench: {mode} run; vault at {} (server pid {:?}); PostgreSQL {pg_version}", env.base, env.server_pid());
    let (vault_url, raw_url) = (env.url(VAULT_DB), env.url(RAW_DB));
    let raw = Arc::new(Raw::setup(&raw_url, 16).await?);
    let shape = baseline_shape(&vault_url, &raw.pool).await?;
    let mut run = Run {
        env,
        admin,
        plan,
        root,
        raw,
        vault_url,
        raw_url,
        loaded: Vec::new(),
        raw_have: Vec::new(),
        raw_gen: ProfileGen::new(2, workloads::SEQ_PRELOAD),
        scale: Vec::new(),
        bulk_request_bytes: 0,
        workloads: Vec::new(),
        baselines: Vec::new(),
    };
    let outcome = async {
        run.reads().await?;
        run.writes().await
    }
    .await;
    // Never leave the cluster with asynchronous commit on, whatever happened.
    let _ = run.synchronous_commit(true).await;
    outcome?;

    let doc = report::document(&run, machine, mode, shape, started);
    std::fs::create_dir_all(&args.out)?;
    let text = serde_json::to_string_pretty(&doc)?;
    let stamp = doc["created_at"].as_str().unwrap_or("run").replace(':', "");
    std::fs::write(args.out.join("latest.json"), &text)?;
    std::fs::write(args.out.join(format!("{stamp}-{mode}.json")), &text)?;
    println!("\n{}", report::table(&run.workloads, &run.baselines));
    report::print_summary(&doc);
    println!("wrote {} ({:.0} s so far)", args.out.join("latest.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
