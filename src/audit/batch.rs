//! Group commit of the audit events of calls that changed nothing (reads that wrote no row, and
//! failed calls, whose changes were rolled back). Invariant: a caller hears that its event is
//! recorded only after the transaction holding it has committed, and one tenant's events are
//! chained in the order they arrived. A change's event never comes here: it commits with the
//! change, inside the change's transaction ([`super::chain_into`]).
//!
//! Why: each such call used to lock a chain head and commit a write of its own, one WAL flush
//! per read. Here [`WORKERS`] workers each take every event waiting (up to [`MAX_BATCH`]) and
//! write each tenant's share in one transaction: one head lock, one insert, one flush for all.
//! Two workers let one batch gather while the other commits; within a batch each tenant's share
//! commits at the same time as the others', so a slow tenant holds back no other. A call with
//! no other call of its tenant in flight on this instance has nothing to share a commit with:
//! it appends in its own transaction, as a change does ([`Batcher::alone`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::Sealed;
use crate::error::{Error, Result};
use crate::store::Db;

const WORKERS: usize = 2;
const MAX_BATCH: usize = 256;
/// Events waiting beyond this make callers wait to queue theirs (backpressure, bounded memory).
const QUEUE: usize = 4096;
/// How long a batch waits for a lock (all of a tenant's chain heads held, or its row held by a
/// deletion) before its events fail: 503s rather than a stalled worker.
const LOCK_WAIT: Duration = Duration::from_secs(5);

struct Job {
    tenant_id: i64,
    event: Sealed,
    /// Told whether the event is durable.
    done: oneshot::Sender<bool>,
}

/// The handle calls use; cheap to clone. The workers stop when the last handle is dropped.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Job>,
    /// Calls in flight on this instance, per tenant (see [`Presence`]).
    calls: Arc<std::sync::Mutex<HashMap<i64, usize>>>,
}

/// Held by a call while it is in flight, so that [`Batcher::alone`] can tell.
pub struct Presence {
    calls: Arc<std::sync::Mutex<HashMap<i64, usize>>>,
    tenant_id: i64,
}

impl Drop for Presence {
    fn drop(&mut self) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = calls.get_mut(&self.tenant_id) {
            *n -= 1;
            if *n == 0 {
                calls.remove(&self.tenant_id);
            }
        }
    }
}

impl Batcher {
    /// Starts the workers on the current runtime.
    pub fn start(db: Db) -> Batcher {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..WORKERS {
            tokio::spawn(work(db.clone(), waiting.clone()));
        }
        Batcher { queue, calls: Arc::default() }
    }

    /// Counts a call of `tenant_id` in flight until the returned guard is dropped.
    pub fn presence(&self, tenant_id: i64) -> Presence {
        *self.calls.lock().unwrap_or_else(|p| p.into_inner()).entry(tenant_id).or_default() += 1;
        Presence { calls: self.calls.clone(), tenant_id }
    }

    /// Whether the caller (holding a [`Presence`] for `tenant_id`) is its tenant's only call in
    /// flight: a batch would hold its event alone, one transaction more than appending inside
    /// its own.
    pub fn alone(&self, tenant_id: i64) -> bool {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant_id).is_none_or(|n| *n <= 1)
    }

    /// Appends `event` to a chain of `tenant_id`; returns once it is committed.
    pub async fn record(&self, tenant_id: i64, event: Sealed) -> Result<()> {
        let outcome = event.outcome;
        let (done, recorded) = oneshot::channel();
        self.queue.send(Job { tenant_id, event, done }).await.map_err(|_| unavailable())?;
        match recorded.await {
            Ok(true) => {
                crate::telemetry::audit_event(tenant_id, outcome);
                Ok(())
            }
            _ => Err(unavailable()),
        }
    }
}

fn unavailable() -> Error {
    Error::Unavailable("the audit trail is unavailable".into())
}

async fn work(db: Db, waiting: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        // One worker gathers at a time, taking everything queued; the other may be committing.
        if waiting.lock().await.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        let mut groups: Vec<(i64, Vec<Job>)> = Vec::new();
        for job in jobs.drain(..) {
            match groups.iter_mut().find(|(t, _)| *t == job.tenant_id) {
                Some((_, group)) => group.push(job),
                None => groups.push((job.tenant_id, vec![job])),
            }
        }
        futures_util::future::join_all(groups.into_iter().map(|(tenant_id, group)| commit_group(&db, tenant_id, group))).await;
    }
}

/// Commits one tenant's share of a batch and tells each caller whether its event is durable.
async fn commit_group(db: &Db, tenant_id: i64, jobs: Vec<Job>) {
    let count = jobs.len();
    crate::telemetry::audit_batch(count);
    let (events, dones): (Vec<Sealed>, Vec<_>) = jobs.into_iter().map(|j| (j.event, j.done)).unzip();
    let durable = match write(db, tenant_id, &events).await {
        Ok(()) => vec![true; count],
        Err(e) if count == 1 => {
            tracing::error!(tenant = tenant_id, error = %e, "could not record an audit event");
            vec![false]
        }
        Err(e) => {
            // One event the database refuses (sealed under a key version retired meanwhile, say)
            // must not fail the others: each is tried alone.
            tracing::warn!(tenant = tenant_id, events = count, error = %e, "audit batch refused; recording its events one by one");
            let mut each = Vec::with_capacity(count);
            for event in &events {
                each.push(match write(db, tenant_id, std::slice::from_ref(event)).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(tenant = tenant_id, error = %e, "could not record an audit event");
                        false
                    }
                });
            }
            each
        }
    };
    for (done, ok) in dones.into_iter().zip(durable) {
        let _ = done.send(ok);
    }
}

async fn write(db: &Db, tenant_id: i64, events: &[Sealed]) -> Result<()> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    tx.limit_lock_wait(LOCK_WAIT).await?;
    super::chain_into(&mut tx, events).await?;
    tx.commit().await?;
    Ok(())
}
