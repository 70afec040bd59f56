//! Group commit of the audit events of calls that changed nothing (reads that wrote no row, and
//! failed calls, whose changes were rolled back). Invariant: a caller hears that its event is
//! recorded only after the transaction holding it has committed, and one tenant's events are
//! chained in the order they arrived. A change's event never comes here: it commits with the
//! change, inside the change's transaction ([`super::chain_into`]).
//!
//! Why: each such call used to lock a chain head and commit a write of its own, one WAL flush
//! per read. Here [`WORKERS`] workers each take every event waiting (up to [`MAX_BATCH`]) and
//! write each tenant's share in one transaction: one head lock, one insert, one flush for all.
//! Two workers let one batch gather while the other commits. A call with no other call in
//! flight on this instance has nothing to share a commit with: it appends in its own
//! transaction, as a change does, and waits for no second transaction ([`Batcher::alone`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::Sealed;
use crate::error::{Error, Result};
use crate::store::Db;

const WORKERS: usize = 2;
const MAX_BATCH: usize = 256;
/// Events waiting beyond this make callers wait to queue theirs (backpressure, bounded memory).
const QUEUE: usize = 4096;

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
    /// Calls in flight on this instance (see [`Presence`]).
    calls: Arc<AtomicUsize>,
}

/// Held by a call while it is in flight, so that [`Batcher::alone`] can tell.
pub struct Presence(Arc<AtomicUsize>);

impl Drop for Presence {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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

    /// Counts a call in flight until the returned guard is dropped.
    pub fn presence(&self) -> Presence {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Presence(self.calls.clone())
    }

    /// Whether the caller (holding a [`Presence`]) is the only call in flight: a batch would
    /// hold its event alone, one transaction more than appending inside its own.
    pub fn alone(&self) -> bool {
        self.calls.load(Ordering::Relaxed) <= 1
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
        while let Some(first) = jobs.first() {
            let tenant_id = first.tenant_id;
            let (mine, rest): (Vec<Job>, Vec<Job>) = jobs.drain(..).partition(|j| j.tenant_id == tenant_id);
            jobs = rest;
            let count = mine.len();
            let (events, dones): (Vec<Sealed>, Vec<_>) = mine.into_iter().map(|j| (j.event, j.done)).unzip();
            let durable = match write(&db, tenant_id, events).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(tenant = tenant_id, events = count, error = %e, "could not record audit events");
                    false
                }
            };
            crate::telemetry::audit_batch(count);
            for done in dones {
                let _ = done.send(durable);
            }
        }
    }
}

async fn write(db: &Db, tenant_id: i64, events: Vec<Sealed>) -> Result<()> {
    let mut tx = db.tenant_tx(tenant_id).await?;
    super::chain_into(&mut tx, events).await?;
    tx.commit().await?;
    Ok(())
}
