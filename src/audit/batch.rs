//! Group commit of the audit events of calls that changed nothing (reads that wrote no row, and
//! failed calls, whose changes were rolled back). Invariant: a caller hears that its event is
//! recorded only after the transaction holding it has committed, and one tenant's events are
//! chained in the order they arrived. A change's event never comes here: it commits with the
//! change, inside the change's transaction ([`super::chain_into`]).
//!
//! Why: each such call used to lock a chain head and commit a write of its own, one WAL flush
//! per read. Here [`WORKERS`] workers each take every event waiting (up to [`MAX_BATCH`]) and
//! write each tenant's share in one transaction: one head lock, one insert, one flush for all.
//! Two workers let one batch gather while the other commits.

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
}

impl Batcher {
    /// Starts the workers on the current runtime.
    pub fn start(db: Db) -> Batcher {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..WORKERS {
            tokio::spawn(work(db.clone(), waiting.clone()));
        }
        Batcher { queue }
    }

    /// Appends `event` to a chain of `tenant_id`; returns once it is committed.
    pub async fn record(&self, tenant_id: i64, event: Sealed) -> Result<()> {
        let outcome = event.outcome.clone();
        let (done, recorded) = oneshot::channel();
        self.queue.send(Job { tenant_id, event, done }).await.map_err(|_| unavailable())?;
        match recorded.await {
            Ok(true) => {
                crate::telemetry::audit_event(tenant_id, &outcome);
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
