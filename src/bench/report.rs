//! Figures of one workload, the machine description, targets, and the printed table.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::env::CpuSample;
use super::load::{round, summarize, PhaseResult};

/// What is reported for one workload (vault or baseline). For bulk workloads an operation is a
/// record (`records_per_request` of them per request; latencies are per request).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Server process CPU seconds per 1,000 operations (null for raw baselines: no server).
    pub server_cpu_s_per_1k: Option<f64>,
    pub pg_cpu_s_per_1k: f64,
    /// The load generator's own CPU (reqwest for the vault, sqlx for baselines).
    pub client_cpu_s_per_1k: f64,
    pub ops: u64,
    pub requests: u64,
    pub records_per_request: u64,
    pub clients: usize,
    pub errors: u64,
    pub seconds: f64,
    /// Where busy PostgreSQL backends were, sampled every 100 ms (shares sum to 1).
    pub pg_waits: BTreeMap<String, f64>,
}

impl Figures {
    pub fn new(
        mut r: PhaseResult,
        cpu: CpuSample,
        clients: usize,
        per_request: u64,
        has_server: bool,
        pg_waits: BTreeMap<String, f64>,
    ) -> Figures {
        let requests = r.latencies_ms.len() as u64;
        let ops = requests * per_request;
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        let (p50, p95, p99) = summarize(&mut r.latencies_ms);
        let per_1k = |cpu: f64| round(cpu / (ops.max(1) as f64) * 1000.0, 4);
        Figures {
            ops_per_s: round(ops as f64 / secs, 1),
            p50_ms: round(p50, 3),
            p95_ms: round(p95, 3),
            p99_ms: round(p99, 3),
            server_cpu_s_per_1k: has_server.then(|| per_1k(cpu.server)),
            pg_cpu_s_per_1k: per_1k(cpu.pg),
            client_cpu_s_per_1k: per_1k(cpu.client),
            ops,
            requests,
            records_per_request: per_request,
            clients,
            errors: r.errors,
            seconds: round(secs, 2),
            pg_waits,
        }
    }

    /// The two or three largest wait shares, e.g. `Lock:transactionid 62%, CPU 20%`.
    pub fn top_waits(&self) -> String {
        let mut w: Vec<(&String, &f64)> = self.pg_waits.iter().collect();
        w.sort_by(|a, b| b.1.total_cmp(a.1));
        w.iter().take(3).map(|(k, v)| format!("{k} {:.0}%", *v * 100.0)).collect::<Vec<_>>().join(", ")
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Cores, memory, CPU model, kernel, Rust and PostgreSQL versions, load at start.
pub fn machine(postgres_version: &str) -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(str::trim).unwrap_or("unknown");
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": round(mem_kb as f64 / 1024.0 / 1024.0, 1),
        "cpu_model": model,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "rust_version": command_line("rustc", &["--version"]),
        "postgres_version": postgres_version,
        "loadavg_at_start": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "strongroom_version": env!("CARGO_PKG_VERSION"),
        "git_commit": command_line("git", &["rev-parse", "--short", "HEAD"]),
    })
}

/// One target: its rule, the measured value, and whether it is met.
pub fn target(rule: &str, value: Option<f64>, met: impl Fn(f64) -> bool) -> Value {
    json!({ "target": rule, "value": value.map(|v| round(v, 3)), "met": value.map(met).unwrap_or(false) })
}

/// The results as a Markdown table (also readable on a terminal).
pub fn table(workloads: &[(String, Figures)], baselines: &[(String, Figures)]) -> String {
    let mut s = String::from(
        "| workload | clients | ops | ops/s | p50 ms | p95 ms | p99 ms | server CPU s/1k | PG CPU s/1k | client CPU s/1k | PG backends mostly |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (name, f) in workloads.iter().chain(baselines) {
        let unit = if f.records_per_request > 1 { format!(" ({} rec/req)", f.records_per_request) } else { String::new() };
        s += &format!(
            "| {name}{unit} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.3} | {:.3} | {} |\n",
            f.clients,
            f.ops,
            f.ops_per_s,
            f.p50_ms,
            f.p95_ms,
            f.p99_ms,
            f.server_cpu_s_per_1k.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into()),
            f.pg_cpu_s_per_1k,
            f.client_cpu_s_per_1k,
            f.top_waits(),
        );
    }
    s
}
