//! `strongroom bench`: measures the vault against raw SQL on the same PostgreSQL (see
//! bench/README.md). One run starts a private PostgreSQL and the server as a separate process,
//! pre-loads users, drives each workload at fixed concurrency, runs the raw baselines, and
//! writes `<out>/latest.json` plus a timestamped copy.

mod env;
mod load;
mod profile;
mod raw;
mod report;
mod vault;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use env::{BenchEnv, RAW_DB, VAULT_DB};
use load::{round, spread, WaitSampler};
use profile::ProfileGen;
use raw::Raw;
use report::{target, Figures};
use vault::Vault;

/// Options of `strongroom bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
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
struct Plan {
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
        if a.smoke {
            Plan {
                preload: a.preload.unwrap_or(2_000),
                scale: vec![1_000, 2_000],
                cap: Duration::from_secs(2),
                bulk_cap: Duration::from_secs(4),
                short_cap: Duration::from_secs(1),
                create_bodies: 5_000,
                raw_rows: 10_000,
                bulk_requests: 4,
            }
        } else if a.quick {
            Plan {
                preload: a.preload.unwrap_or(10_000),
                scale,
                cap: Duration::from_secs(8),
                bulk_cap: Duration::from_secs(15),
                short_cap: Duration::from_secs(5),
                create_bodies: 40_000,
                raw_rows: 100_000,
                bulk_requests: 24,
            }
        } else {
            Plan {
                preload: a.preload.unwrap_or(100_000),
                scale,
                cap: Duration::from_secs(30),
                bulk_cap: Duration::from_secs(40),
                short_cap: Duration::from_secs(15),
                create_bodies: 150_000,
                raw_rows: 300_000,
                bulk_requests: 80,
            }
        }
    }
}

// Disjoint sequence ranges keep every generated email/login/phone unique in the vault.
const SEQ_PRELOAD: u64 = 0;
const SEQ_CREATE: u64 = 100_000_000;
const SEQ_TENANTS: u64 = 200_000_000;
const SEQ_BULK: u64 = 300_000_000;
const SEQ_DIAG: u64 = 400_000_000;
const WARM: usize = 300;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut env = BenchEnv::start().await?;
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
struct Run<'a> {
    env: &'a mut BenchEnv,
    admin: PgPool,
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
        eprint!("bench: {name:<22} {clients:>2} clients ... ");
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
}

/// VACUUM ANALYZE (after a load) and CHECKPOINT, so each phase starts from the same state.
async fn settle(url: &str, vacuum: bool) -> anyhow::Result<()> {
    let mut c = PgConnection::connect(url).await?;
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
    let vault = PgPoolOptions::new().max_connections(1).connect(vault_url).await?;
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

/// Adds raw rows (small profiles) until the baseline table holds `target` rows.
async fn raw_fill(raw: &Raw, gen: &mut ProfileGen, have: &mut Vec<(String, String)>, target: usize) -> anyhow::Result<()> {
    while have.len() < target {
        let profiles: Vec<Value> = (0..(target - have.len()).min(1000)).map(|_| gen.small()).collect();
        let rows: Vec<raw::RawRow> = profiles.iter().map(|p| raw.row(p)).collect();
        raw::insert_many(&raw.pool, &rows).await?;
        have.extend(raw::identities(&rows, &profiles));
    }
    Ok(())
}

async fn bench(env: &mut BenchEnv, args: &BenchArgs, started: Instant) -> anyhow::Result<()> {
    let plan = Plan::new(args);
    let mode = if args.smoke {
        "smoke"
    } else if args.quick {
        "quick"
    } else {
        "full"
    };
    let root = Vault::init_and_unseal(&env.base).await?;
    let admin = PgPoolOptions::new().max_connections(2).connect(&env.url("postgres")).await?;
    let pg_version: String = sqlx::query_scalar("SELECT current_setting('server_version')").fetch_one(&admin).await?;
    let machine = report::machine(&pg_version);
    eprintln!("bench: {mode} run; vault at {} (server pid {:?}); PostgreSQL {pg_version}", env.base, env.server_pid());
    let (vault_url, raw_url) = (env.url(VAULT_DB), env.url(RAW_DB));
    let raw = Arc::new(Raw::setup(&raw_url, 16).await?);
    let shape = baseline_shape(&vault_url, &raw.pool).await?;
    let mut run = Run { env, admin, workloads: Vec::new(), baselines: Vec::new() };

    // --- Reads, with the scale curve: load up to each checkpoint, measure UserGet there. ---
    let mut checkpoints: Vec<usize> = plan.scale.iter().copied().chain([plan.preload]).collect();
    checkpoints.sort_unstable();
    checkpoints.dedup();
    let mut gen = ProfileGen::new(1, SEQ_PRELOAD);
    let mut loaded: Vec<vault::Loaded> = Vec::new();
    let mut scale = Vec::new();
    let (mut raw_gen, mut raw_have) = (ProfileGen::new(2, SEQ_PRELOAD), Vec::new());
    for &cp in &checkpoints {
        let t = Instant::now();
        let n = cp - loaded.len();
        loaded.extend(root.preload(&mut gen, n).await?);
        eprintln!("bench: pre-loaded {n} users in {:.1} s (vault holds {})", t.elapsed().as_secs_f64(), loaded.len());
        settle(&vault_url, true).await?;
        let users = Arc::new(loaded.clone());
        let get = |mode: &'static str| {
            let (v, users) = (root.clone(), users.clone());
            move |i: usize| {
                let (v, u) = (v.clone(), &users[spread(i, users.len())]);
                let body = vault::get_body(mode, if mode == "token" { &u.token } else { &u.email });
                async move { v.post("UserGet", body).await.map(drop) }
            }
        };
        let name = if cp == plan.preload { "user_get_token".to_string() } else { format!("user_get_token_at_{cp}") };
        let cap = if cp == plan.preload { plan.cap } else { plan.short_cap };
        run.measure(&name, false, 16, WARM, usize::MAX / 2, cap, 1, get("token")).await?;
        if plan.scale.contains(&cp) {
            let f = run.get(&name).expect("just measured");
            scale.push(json!({"users": cp, "p50_ms": f.p50_ms, "p95_ms": f.p95_ms, "p99_ms": f.p99_ms, "ops_per_s": f.ops_per_s}));
        }
        if cp != plan.preload {
            continue;
        }
        run.measure("user_get_email", false, 16, WARM, usize::MAX / 2, plan.cap, 1, get("email")).await?;
        raw_fill(&raw, &mut raw_gen, &mut raw_have, cp).await?;
        settle(&raw_url, true).await?;
        let ids = Arc::new(std::mem::take(&mut raw_have));
        let (r, i2) = (raw.clone(), ids.clone());
        run.measure("raw_select_token", true, 16, WARM, usize::MAX / 2, plan.cap, 1, move |i| {
            let (r, i2) = (r.clone(), i2.clone());
            async move { raw::select_by_token(&r.pool, &i2[spread(i, i2.len())].0).await }
        })
        .await?;
        let (r, i2) = (raw.clone(), ids.clone());
        run.measure("raw_select_email_hash", true, 16, WARM, usize::MAX / 2, plan.cap, 1, move |i| {
            let (r, i2) = (r.clone(), i2.clone());
            async move {
                let hash = r.index(crate::keys::blind::IndexMode::Email, &i2[spread(i, i2.len())].1);
                raw::select_by_hash(&r.pool, "email", &hash).await
            }
        })
        .await?;
        raw_have = Arc::try_unwrap(ids).unwrap_or_else(|a| (*a).clone());
    }

    // --- Single-record creates: 16 clients; diagnostics at 1 client and over 4 tenants. ---
    settle(&vault_url, false).await?;
    let mut g = ProfileGen::new(3, SEQ_CREATE);
    let bodies: Arc<Vec<_>> = Arc::new((0..plan.create_bodies).map(|_| vault::create_body(&g.small())).collect::<Result<_, _>>()?);
    let (v, b) = (root.clone(), bodies.clone());
    run.measure("user_create", false, 16, WARM, bodies.len() - WARM, plan.cap, 1, move |i| {
        let (v, body) = (v.clone(), b[i].clone());
        async move { v.post("UserCreate", body).await.map(drop) }
    })
    .await?;
    let mut g = ProfileGen::new(4, SEQ_DIAG);
    let diag: Arc<Vec<_>> = Arc::new((0..20_000).map(|_| vault::create_body(&g.small())).collect::<Result<_, _>>()?);
    let (v, b) = (root.clone(), diag.clone());
    run.measure("diag_user_create_1_client", false, 1, 50, b.len() - 50, plan.short_cap, 1, move |i| {
        let (v, body) = (v.clone(), b[i].clone());
        async move { v.post("UserCreate", body).await.map(drop) }
    })
    .await?;
    let mut tenants = Vec::new();
    for t in 0..4 {
        tenants.push(root.tenant(&format!("bench{t}")).await?);
    }
    let tenants = Arc::new(tenants);
    let mut g = ProfileGen::new(5, SEQ_TENANTS);
    let tb: Arc<Vec<_>> = Arc::new((0..plan.create_bodies).map(|_| vault::create_body(&g.small())).collect::<Result<_, _>>()?);
    run.measure("diag_user_create_4_tenants", false, 16, WARM, tb.len() - WARM, plan.short_cap, 1, move |i| {
        let (v, body) = (tenants[i % 4].clone(), tb[i].clone());
        async move { v.post("UserCreate", body).await.map(drop) }
    })
    .await?;

    // --- Bulk creates: 1,000 120-field profiles a request, 2 clients. ---
    let mut g = ProfileGen::new(6, SEQ_BULK);
    let mut bulk = Vec::with_capacity(plan.bulk_requests + 2);
    for _ in 0..plan.bulk_requests + 2 {
        let profiles: Vec<Value> = (0..1000).map(|_| g.large()).collect();
        bulk.push(vault::bulk_body(&profiles)?);
    }
    let bulk_size = bulk[0].len();
    settle(&vault_url, false).await?;
    let (v, b) = (root.clone(), Arc::new(bulk));
    run.measure("user_create_bulk", false, 2, 2, plan.bulk_requests, plan.bulk_cap, 1000, move |i| {
        let (v, body) = (v.clone(), b[i].clone());
        async move { v.post("UserCreateBulk", body).await.map(drop) }
    })
    .await?;

    // --- Raw inserts, on a baseline table topped up to the vault's size. ---
    raw_fill(&raw, &mut raw_gen, &mut raw_have, loaded.len()).await?;
    settle(&raw_url, true).await?;
    let mut g = ProfileGen::new(7, SEQ_CREATE);
    let rows: Arc<Vec<_>> = Arc::new((0..plan.raw_rows).map(|_| raw.row(&g.small())).collect());
    let (r, rs) = (raw.clone(), rows.clone());
    run.measure("raw_insert", true, 16, WARM, rows.len() - WARM, plan.cap, 1, move |i| {
        let (r, rs) = (r.clone(), rs.clone());
        async move { raw::insert_one(&r.pool, &rs[i]).await }
    })
    .await?;
    drop(rows);
    let mut g = ProfileGen::new(8, SEQ_BULK);
    let batches: Arc<Vec<Vec<raw::RawRow>>> =
        Arc::new((0..plan.bulk_requests + 2).map(|_| (0..1000).map(|_| raw.row(&g.large())).collect()).collect());
    settle(&raw_url, false).await?;
    let (r, bs) = (raw.clone(), batches.clone());
    run.measure("raw_insert_bulk", true, 2, 2, plan.bulk_requests, plan.bulk_cap, 1000, move |i| {
        let (r, bs) = (r.clone(), bs.clone());
        async move { raw::insert_many(&r.pool, &bs[i]).await }
    })
    .await?;
    drop(batches);

    // --- Ratios, targets, report. ---
    let ratio = |a: &str, b: &str| match (run.get(a), run.get(b)) {
        (Some(x), Some(y)) if y.ops_per_s > 0.0 => Some(x.ops_per_s / y.ops_per_s),
        _ => None,
    };
    let (r_get, r_email, r_bulk, r_create) = (
        ratio("user_get_token", "raw_select_token"),
        ratio("user_get_email", "raw_select_email_hash"),
        ratio("user_create_bulk", "raw_insert_bulk"),
        ratio("user_create", "raw_insert"),
    );
    let get_p50 = run.get("user_get_token").map(|f| f.p50_ms);
    let bulk_rate = run.get("user_create_bulk").map(|f| f.ops_per_s);
    let targets = json!({
        "user_get_ratio": target(">= 0.5 of raw_select_token", r_get, |v| v >= 0.5),
        "user_get_p50_ms": target("< 2 ms", get_p50, |v| v < 2.0),
        "user_create_bulk_ratio": target(">= 0.6 of raw_insert_bulk", r_bulk, |v| v >= 0.6),
        "user_create_bulk_records_per_s": target("> 2000 records/s (120-field profiles)", bulk_rate, |v| v > 2000.0),
        "user_create_ratio": target(">= 0.4 of raw_insert", r_create, |v| v >= 0.4),
    });
    let map = |v: &[(String, Figures)]| -> BTreeMap<String, Value> {
        v.iter().map(|(n, f)| (n.clone(), serde_json::to_value(f).unwrap_or_default())).collect()
    };
    let r3 = |x: Option<f64>| x.map(|v| round(v, 3));
    let p50s: Vec<f64> = scale.iter().filter_map(|p| p["p50_ms"].as_f64()).collect();
    let doc = json!({
        "machine": machine,
        "mode": mode,
        "created_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "elapsed_s": round(started.elapsed().as_secs_f64(), 1),
        "preload_users": plan.preload,
        "baseline_shape": shape,
        "profiles": {"small_fields": 4, "large_fields": 120, "bulk_request_bytes": bulk_size},
        "workloads": map(&run.workloads),
        "baselines": map(&run.baselines),
        "ratios": {"user_get": r3(r_get), "user_create_bulk": r3(r_bulk), "user_create": r3(r_create), "user_get_email": r3(r_email)},
        "scale": {"workload": "user_get_token", "clients": 16, "points": scale,
                  "p50_last_over_first": (p50s.len() > 1).then(|| round(p50s[p50s.len() - 1] / p50s[0], 2))},
        "targets": targets,
    });
    std::fs::create_dir_all(&args.out)?;
    let text = serde_json::to_string_pretty(&doc)?;
    let stamp = doc["created_at"].as_str().unwrap_or("run").replace(':', "");
    std::fs::write(args.out.join("latest.json"), &text)?;
    std::fs::write(args.out.join(format!("{stamp}-{mode}.json")), &text)?;
    println!("\n{}", report::table(&run.workloads, &run.baselines));
    println!("ratios (vault/raw ops/s): {}", doc["ratios"]);
    println!("scale (user_get_token p50 by users): {}", doc["scale"]["points"]);
    for (k, t) in doc["targets"].as_object().into_iter().flatten() {
        println!(
            "target {k:<32} {:<40} value {:<10} {}",
            t["target"].as_str().unwrap_or(""),
            t["value"],
            if t["met"] == true { "MET" } else { "MISSED" }
        );
    }
    println!("machine: {}", doc["machine"]);
    println!("wrote {} ({:.0} s so far)", args.out.join("latest.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
