//! The workloads, in run order: reads with the scale curve (vault, then the raw selects at the
//! same size), single and bulk creates, then the raw inserts. `diag_*` workloads are
//! diagnostics for the analysis in bench/README.md, not targets.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::load::spread;
use super::profile::ProfileGen;
use super::{raw, settle, vault, Run};
use strongroom::keys::blind::IndexMode;

// Disjoint sequence ranges keep every generated email/login/phone unique in the vault.
pub const SEQ_PRELOAD: u64 = 0;
const SEQ_CREATE: u64 = 100_000_000;
const SEQ_TENANTS: u64 = 200_000_000;
const SEQ_BULK: u64 = 300_000_000;
const SEQ_DIAG: u64 = 400_000_000;
const SEQ_DIAG2: u64 = 500_000_000;
const WARM: usize = 300;
/// "No operation limit": phases are bounded by their time cap.
const UNBOUNDED: usize = usize::MAX / 2;

/// A UserGet by `mode` ("token" or "email") of a random pre-loaded user.
fn user_get(
    v: &vault::Vault,
    users: &Arc<Vec<vault::Loaded>>,
    mode: &'static str,
) -> impl Fn(usize) -> futures_op::Op + Send + Sync + 'static {
    let (v, users) = (v.clone(), users.clone());
    move |i| {
        let u = &users[spread(i, users.len())];
        let body = vault::get_body(mode, if mode == "token" { &u.token } else { &u.email });
        let v = v.clone();
        Box::pin(async move { v.post("UserGet", body).await.map(drop) })
    }
}

/// A UserCreate of pre-built body `i`, through one of `clients` (round robin).
fn user_create(vs: Vec<vault::Vault>, bodies: Vec<bytes::Bytes>) -> impl Fn(usize) -> futures_op::Op + Send + Sync + 'static {
    move |i| {
        let (v, body) = (vs[i % vs.len()].clone(), bodies[i].clone());
        Box::pin(async move { v.post("UserCreate", body).await.map(drop) })
    }
}

fn small_bodies(seed: u64, start: u64, n: usize) -> anyhow::Result<Vec<bytes::Bytes>> {
    let mut g = ProfileGen::new(seed, start);
    (0..n).map(|_| vault::create_body(&g.small())).collect()
}

/// Boxed operation futures, so closures over different endpoints share one type.
mod futures_op {
    pub type Op = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;
}

impl Run<'_> {
    /// Loads the vault up to each checkpoint (the scale points and the pre-load size) and
    /// measures UserGet there; at the pre-load size also by email, the diagnostics, and the raw
    /// point selects on a baseline table of the same size.
    pub async fn reads(&mut self) -> anyhow::Result<()> {
        let mut checkpoints: Vec<usize> = self.plan.scale.iter().copied().chain([self.plan.preload]).collect();
        checkpoints.sort_unstable();
        checkpoints.dedup();
        let mut gen = ProfileGen::new(1, SEQ_PRELOAD);
        for cp in checkpoints {
            let (t, n) = (Instant::now(), cp - self.loaded.len());
            let more = self.root.preload(&mut gen, n).await?;
            self.loaded.extend(more);
            eprintln!("bench: pre-loaded {n} users in {:.1} s (vault holds {})", t.elapsed().as_secs_f64(), self.loaded.len());
            settle(&self.vault_url, true).await?;
            let users = Arc::new(self.loaded.clone());
            let main = cp == self.plan.preload;
            let name = if main { "user_get_token".to_string() } else { format!("user_get_token_at_{cp}") };
            let cap = if main { self.plan.cap } else { self.plan.short_cap };
            self.measure(&name, false, 16, WARM, UNBOUNDED, cap, 1, user_get(&self.root, &users, "token")).await?;
            if self.plan.scale.contains(&cp) {
                let f = self.get(&name).expect("just measured");
                self.scale.push(json!({"users": cp, "p50_ms": f.p50_ms, "p95_ms": f.p95_ms, "p99_ms": f.p99_ms, "ops_per_s": f.ops_per_s}));
            }
            if !main {
                continue;
            }
            let cap = self.plan.short_cap;
            self.measure("user_get_email", false, 16, WARM, UNBOUNDED, self.plan.cap, 1, user_get(&self.root, &users, "email")).await?;
            self.measure("diag_user_get_token_1_client", false, 1, 50, UNBOUNDED, cap, 1, user_get(&self.root, &users, "token")).await?;
            self.synchronous_commit(false).await?;
            let op = user_get(&self.root, &users, "token");
            let r = self.measure("diag_user_get_token_async_commit", false, 16, WARM, UNBOUNDED, cap, 1, op).await;
            self.synchronous_commit(true).await?;
            r?;
            self.raw_selects(cp).await?;
        }
        Ok(())
    }

    /// Raw point selects by token and by blind-index hash on a baseline table of `rows` rows.
    async fn raw_selects(&mut self, rows: usize) -> anyhow::Result<()> {
        self.raw_fill(rows).await?;
        settle(&self.raw_url, true).await?;
        let cap = self.plan.cap;
        let ids = Arc::new(self.raw_have.clone());
        let (r, i2) = (self.raw.clone(), ids.clone());
        self.measure("raw_select_token", true, 16, WARM, UNBOUNDED, cap, 1, move |i| {
            let (r, i2) = (r.clone(), i2.clone());
            async move { raw::select_by_token(&r.pool, &i2[spread(i, i2.len())].0).await }
        })
        .await?;
        let (r, i2) = (self.raw.clone(), ids);
        self.measure("raw_select_email_hash", true, 16, WARM, UNBOUNDED, cap, 1, move |i| {
            let (r, i2) = (r.clone(), i2.clone());
            async move {
                let hash = r.index(IndexMode::Email, &i2[spread(i, i2.len())].1);
                raw::select_by_hash(&r.pool, "email", &hash).await
            }
        })
        .await
    }

    /// UserCreate (and its diagnostics), UserCreateBulk, then the raw inserts on a baseline
    /// table topped up to the vault's size.
    pub async fn writes(&mut self) -> anyhow::Result<()> {
        let (cap, short) = (self.plan.cap, self.plan.short_cap);
        settle(&self.vault_url, false).await?;
        let bodies = small_bodies(3, SEQ_CREATE, self.plan.create_bodies)?;
        let n = bodies.len() - WARM;
        self.measure("user_create", false, 16, WARM, n, cap, 1, user_create(vec![self.root.clone()], bodies)).await?;
        let bodies = small_bodies(4, SEQ_DIAG, 20_000)?;
        self.measure("diag_user_create_1_client", false, 1, 50, 20_000 - 50, short, 1, user_create(vec![self.root.clone()], bodies))
            .await?;
        let mut tenants = Vec::new();
        for t in 0..4 {
            tenants.push(self.root.tenant(&format!("bench{t}")).await?);
        }
        let bodies = small_bodies(5, SEQ_TENANTS, self.plan.create_bodies)?;
        self.measure("diag_user_create_4_tenants", false, 16, WARM, n, short, 1, user_create(tenants, bodies)).await?;
        let bodies = small_bodies(9, SEQ_DIAG2, self.plan.create_bodies)?;
        self.synchronous_commit(false).await?;
        let r =
            self.measure("diag_user_create_async_commit", false, 16, WARM, n, short, 1, user_create(vec![self.root.clone()], bodies)).await;
        self.synchronous_commit(true).await?;
        r?;

        // Bulk: 1,000 120-field profiles a request, 2 clients; bodies built before the clock.
        let mut g = ProfileGen::new(6, SEQ_BULK);
        let mut bulk = Vec::with_capacity(self.plan.bulk_requests + 2);
        for _ in 0..self.plan.bulk_requests + 2 {
            let profiles: Vec<Value> = (0..1000).map(|_| g.large()).collect();
            bulk.push(vault::bulk_body(&profiles)?);
        }
        self.bulk_request_bytes = bulk[0].len();
        settle(&self.vault_url, false).await?;
        let (v, b) = (self.root.clone(), Arc::new(bulk));
        self.measure("user_create_bulk", false, 2, 2, self.plan.bulk_requests, self.plan.bulk_cap, 1000, move |i| {
            let (v, body) = (v.clone(), b[i].clone());
            async move { v.post("UserCreateBulk", body).await.map(drop) }
        })
        .await?;

        // Raw inserts on a baseline table as large as the vault's users table.
        self.raw_fill(self.loaded.len()).await?;
        settle(&self.raw_url, true).await?;
        let mut g = ProfileGen::new(7, SEQ_CREATE);
        let rows: Arc<Vec<_>> = Arc::new((0..self.plan.raw_rows).map(|_| self.raw.row(&g.small())).collect());
        let (r, rs) = (self.raw.clone(), rows.clone());
        self.measure("raw_insert", true, 16, WARM, rows.len() - WARM, cap, 1, move |i| {
            let (r, rs) = (r.clone(), rs.clone());
            async move { raw::insert_one(&r.pool, &rs[i]).await }
        })
        .await?;
        drop(rows);
        let mut g = ProfileGen::new(8, SEQ_BULK);
        let batches: Arc<Vec<Vec<raw::RawRow>>> =
            Arc::new((0..self.plan.bulk_requests + 2).map(|_| (0..1000).map(|_| self.raw.row(&g.large())).collect()).collect());
        settle(&self.raw_url, false).await?;
        let (r, bs) = (self.raw.clone(), batches);
        self.measure("raw_insert_bulk", true, 2, 2, self.plan.bulk_requests, self.plan.bulk_cap, 1000, move |i| {
            let (r, bs) = (r.clone(), bs.clone());
            async move { raw::insert_many(&r.pool, &bs[i]).await }
        })
        .await
    }
}
