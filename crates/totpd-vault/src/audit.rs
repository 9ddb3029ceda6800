//! The audit recorder: every vault operation's event, written to the
//! database by group commit.
//!
//! Records go over a channel to one writer task, which takes whatever is
//! queued (at most [`MAX_BATCH`]) and appends it with one
//! [`Store::append_audit`], one transaction and one commit for the whole
//! batch; while that commit runs, the next batch queues. So concurrent
//! operations share commits instead of paying for one each, and the cost
//! per record falls as the load rises.
//!
//! Two kinds of record:
//! - [`AuditLog::record_durably`] waits until its batch has committed and
//!   says whether it did: a successful operation (a code read, a create, a
//!   delete, a key made or revoked) is answered only after its record is
//!   durable. A code is never returned without it.
//! - [`AuditLog::record`] queues and does not wait (refusals, failures,
//!   failed authentications, rate limiting): durable a batch later, never
//!   delaying the answer, and dropped (counted and logged) if the queue is
//!   full, so a flood of bad requests cannot grow memory or slow good ones.
//!
//! The success records of the writes on the hot paths (a create, an HOTP
//! code, an accepted verification) do not come here: the vault hands them
//! to the store with the change, which writes both in one transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::model::UnixTime;
use crate::policy::{Origin, Principal};
use crate::store::{AuditRecord, Store, StoreError};

/// Most records in one transaction.
pub(crate) const MAX_BATCH: usize = 1024;

/// Records that may wait for the writer task.
const QUEUE: usize = 8 * MAX_BATCH;

/// The action of a failed authentication (no operation was authorized, so
/// it is no [`crate::Action`]).
pub(crate) const AUTH_FAILURE: &str = "auth.failure";

/// How an operation ended, as the audit log says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused: the role, the scope or a quota does not allow it, or the
    /// credentials were wrong.
    Denied,
    /// The request was invalid (including an unknown secret).
    Invalid,
    /// Refused by a rate limit or lockout.
    RateLimited,
    /// The server failed (database unavailable, corrupt data, a bug).
    Error,
}

impl Outcome {
    /// The outcome's name (`ok`, `denied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
            Outcome::RateLimited => "rate_limited",
            Outcome::Error => "error",
        }
    }
}

/// An event about to be recorded.
pub(crate) fn event(
    action: &str,
    outcome: Outcome,
    principal: Option<&Principal>,
    secret_id: Option<Uuid>,
    now: UnixTime,
) -> AuditRecord {
    let mut record = AuditRecord {
        at: now.0,
        account_id: None,
        action: action.to_owned(),
        outcome: outcome.as_str().to_owned(),
        key_id: None,
        role: None,
        secret_id,
        remote_addr: None,
        user_agent: None,
        request_id: None,
    };
    if let Some(principal) = principal {
        record.account_id = Some(principal.account_id);
        // An operator's tool acts with no key (`Vault::operator`).
        record.key_id = Some(principal.key_id.clone()).filter(|k| !k.is_empty());
        record.role = Some(principal.role.as_str().to_owned());
        with_origin(&mut record, &principal.origin);
    }
    record
}

/// Fills in where the request came from.
pub(crate) fn with_origin(record: &mut AuditRecord, origin: &Origin) {
    record.remote_addr = origin.remote_addr.map(|a| a.to_string());
    record.user_agent.clone_from(&origin.user_agent);
    record.request_id.clone_from(&origin.request_id);
}

struct Queued {
    /// `None`: a flush, answered once everything queued before it is written.
    record: Option<AuditRecord>,
    /// Told the batch's fate, for a record that is waited for.
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// The handle that queues records for the writer task. The task ends once
/// every handle is dropped and what was queued is written.
pub(crate) struct AuditLog {
    queue: mpsc::Sender<Queued>,
    stats: Arc<AuditStats>,
}

/// What the recorder has done, for tests and logs.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Records in them.
    pub records: AtomicU64,
    /// Records lost: their batch failed, or (not waited-for ones) the queue
    /// was full.
    pub lost: AtomicU64,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn start(store: Arc<dyn Store>) -> AuditLog {
        let (queue, inbox) = mpsc::channel(QUEUE);
        let stats = Arc::new(AuditStats::default());
        tokio::spawn(write_batches(store, inbox, Arc::clone(&stats)));
        AuditLog { queue, stats }
    }

    pub(crate) fn stats(&self) -> &Arc<AuditStats> {
        &self.stats
    }

    /// Queues `record` and waits until it is durable.
    pub(crate) async fn record_durably(&self, record: AuditRecord) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Queued {
                record: Some(record),
                done: Some(done),
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Waits until every record queued so far is written (or has failed).
    pub(crate) async fn flush(&self) {
        let (done, answer) = oneshot::channel();
        let flush = Queued {
            record: None,
            done: Some(done),
        };
        if self.queue.send(flush).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Queues `record` without waiting for it.
    pub(crate) fn record(&self, record: AuditRecord) {
        let queued = Queued {
            record: Some(record),
            done: None,
        };
        if let Err(error) = self.queue.try_send(queued) {
            let lost = self.stats.lost.fetch_add(1, Ordering::Relaxed) + 1;
            let action = match &error {
                mpsc::error::TrySendError::Full(q) | mpsc::error::TrySendError::Closed(q) => q
                    .record
                    .as_ref()
                    .map(|r| r.action.clone())
                    .unwrap_or_default(),
            };
            tracing::warn!(
                action,
                lost,
                "the audit queue is full; an event was not recorded"
            );
        }
    }
}

fn stopped() -> StoreError {
    StoreError::unavailable_msg("the audit recorder has stopped")
}

async fn write_batches(
    store: Arc<dyn Store>,
    mut inbox: mpsc::Receiver<Queued>,
    stats: Arc<AuditStats>,
) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    let mut records: Vec<AuditRecord> = Vec::with_capacity(MAX_BATCH);
    while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        records.extend(batch.iter().filter_map(|q| q.record.clone()));
        // Shared: every caller in the batch gets the one failure as its cause.
        let written = if records.is_empty() {
            Ok(())
        } else {
            store.append_audit(&records).await.map_err(Arc::new)
        };
        let count = u64::try_from(records.len()).unwrap_or(u64::MAX);
        match &written {
            Ok(()) if records.is_empty() => {}
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.records.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                stats.lost.fetch_add(count, Ordering::Relaxed);
                tracing::error!(
                    error = %crate::ErrorChain(error.as_ref()),
                    events = count,
                    "audit events could not be written"
                );
            }
        }
        records.clear();
        for queued in batch.drain(..) {
            if let Some(done) = queued.done {
                let answer = match &written {
                    Ok(()) => Ok(()),
                    Err(error) => Err(StoreError::unavailable(
                        "the audit log could not be written",
                        Arc::clone(error),
                    )),
                };
                // A caller that has gone away (its request timed out) needs
                // no answer.
                let _ = done.send(answer);
            }
        }
    }
}
