//! The load generator: N concurrent tokio tasks pulling operation numbers from a shared counter,
//! each operation timed; a phase ends when its operation budget or its time cap runs out.
//! Also the pure statistics (percentiles) and a sampler of what PostgreSQL backends wait on.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// What one phase measured (successful operations only in `latencies_ms`).
#[derive(Debug, Default)]
pub struct PhaseResult {
    pub latencies_ms: Vec<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Runs operations `first..first + count` on `clients` tasks, stopping early at `cap`. `op(i)`
/// gets the global operation number `i` (callers index pre-built request bodies with it).
pub async fn phase<F, Fut>(clients: usize, first: usize, count: usize, cap: Duration, op: Arc<F>) -> PhaseResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(first));
    let end = first + count;
    let start = Instant::now();
    let deadline = start + cap;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (next, op) = (next.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = PhaseResult::default();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => r.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            r
        }));
    }
    let mut all = PhaseResult::default();
    for t in tasks {
        match t.await {
            Ok(r) => {
                all.latencies_ms.extend(r.latencies_ms);
                all.errors += r.errors;
                if all.first_error.is_none() {
                    all.first_error = r.first_error;
                }
            }
            Err(e) => {
                all.errors += 1;
                all.first_error.get_or_insert_with(|| format!("load task panicked: {e}"));
            }
        }
    }
    all.elapsed = start.elapsed();
    all
}

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p95, p99 of unsorted latencies.
pub fn summarize(latencies: &mut [f64]) -> (f64, f64, f64) {
    latencies.sort_by(|a, b| a.total_cmp(b));
    (percentile(latencies, 50.0), percentile(latencies, 95.0), percentile(latencies, 99.0))
}

/// A well-spread pseudo-random index in `0..n` for operation `i` (splitmix64): "random existing
/// user" without a shared RNG between tasks.
pub fn spread(i: usize, n: usize) -> usize {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % n.max(1) as u64) as usize
}

/// Samples `pg_stat_activity` every 100 ms for the backends of one database and tallies what
/// the busy ones were doing: `CPU` (active, no wait event), `Lock:transactionid` (a row lock,
/// e.g. the audit chain head), `IO:WalSync` / `LWLock:WALWrite` (commit flush), `IdleInTx`
/// (inside a transaction, waiting for the application's next statement).
pub struct WaitSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<BTreeMap<String, u64>>,
}

impl WaitSampler {
    pub fn start(admin: PgPool, datname: String) -> WaitSampler {
        let (stop, mut rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut tally: BTreeMap<String, u64> = BTreeMap::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tick.tick() => {}
                }
                let rows: Vec<(Option<String>, Option<String>, Option<String>)> = match sqlx::query_as(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity
                     WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                )
                .bind(&datname)
                .fetch_all(&admin)
                .await
                {
                    Ok(r) => r,
                    Err(_) => continue,
                };
                for (state, wtype, wevent) in rows {
                    let key = match (state.as_deref(), wtype, wevent) {
                        (Some("active"), None, _) => "CPU".to_string(),
                        (Some("active"), Some(t), e) => format!("{t}:{}", e.unwrap_or_default()),
                        (Some("idle in transaction"), _, _) => "IdleInTx".to_string(),
                        _ => continue,
                    };
                    *tally.entry(key).or_default() += 1;
                }
            }
            tally
        });
        WaitSampler { stop, task }
    }

    /// Shares of busy-backend samples, largest first kept as a map (values sum to 1).
    pub async fn finish(self) -> BTreeMap<String, f64> {
        let _ = self.stop.send(());
        let tally = self.task.await.unwrap_or_default();
        shares(&tally)
    }
}

/// Counts to shares of their total, rounded to 3 decimals.
pub fn shares(tally: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    let total: u64 = tally.values().sum();
    tally.iter().map(|(k, v)| (k.clone(), round(*v as f64 / total.max(1) as f64, 3))).collect()
}

pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let mut u = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(summarize(&mut u), (3.0, 5.0, 5.0));
    }

    #[test]
    fn spread_covers_the_range() {
        let n = 1000;
        let hit: std::collections::HashSet<usize> = (0..20_000).map(|i| spread(i, n)).collect();
        assert!(hit.len() > 990 && hit.iter().all(|&x| x < n));
    }

    #[test]
    fn shares_sum_to_one() {
        let t: BTreeMap<String, u64> = [("CPU".to_string(), 3), ("IdleInTx".to_string(), 1)].into();
        let s = shares(&t);
        assert_eq!(s["CPU"], 0.75);
        assert_eq!(s["IdleInTx"], 0.25);
    }

    #[tokio::test]
    async fn phases_respect_the_operation_budget() {
        let op = Arc::new(|i: usize| async move {
            if i.is_multiple_of(10) {
                anyhow::bail!("op {i} failed")
            }
            Ok(())
        });
        let r = phase(4, 100, 50, Duration::from_secs(10), op).await;
        assert_eq!(r.latencies_ms.len() + r.errors as usize, 50);
        assert_eq!(r.errors, 5);
        assert!(r.first_error.unwrap().contains("failed"));
    }
}
