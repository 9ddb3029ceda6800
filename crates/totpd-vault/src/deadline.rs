//! Who decides a request's fate once it has run out of time: the request
//! deadline or a commit that has already begun.
//!
//! A request that times out is answered 503. If one of its writes were still
//! allowed to commit afterwards, the answer would say "nothing happened"
//! while the database says otherwise (and a generated secret would be stored
//! with nobody ever having seen it). So each request carries a [`Deadline`],
//! and the two sides race for it exactly once:
//!
//! - the server, when the time is up, calls [`Deadline::expire`]; if that
//!   wins, it answers 503 and every write of the request that has not been
//!   claimed yet is abandoned before it commits;
//! - a storage backend, just before it makes a write irrevocable (inside its
//!   transaction, before `COMMIT`), calls [`claim_commit`]; if that wins, the
//!   server waits for the request to finish past its deadline (a commit takes
//!   milliseconds) and sends the request's real answer.
//!
//! The deadline travels with the request's task ([`scope`]), so the storage
//! layer finds it without every method taking a parameter. Code outside a
//! scope (the CLI, background work) has no deadline: its writes always
//! commit.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const OPEN: u8 = 0;
const EXPIRED: u8 = 1;
const COMMITTING: u8 = 2;

tokio::task_local! {
    static CURRENT: Arc<Deadline>;
}

/// The shared fate of one request: open, expired, or committing.
#[derive(Debug, Default)]
pub struct Deadline {
    state: AtomicU8,
}

impl Deadline {
    /// A deadline that has neither expired nor been claimed.
    pub fn new() -> Deadline {
        Deadline::default()
    }

    /// Marks the request as timed out, unless a write has already been
    /// claimed for commit. Returns whether it expired (the caller may then
    /// answer 503 and drop the request: nothing of it will be committed
    /// from now on).
    pub fn expire(&self) -> bool {
        match self
            .state
            .compare_exchange(OPEN, EXPIRED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == EXPIRED,
        }
    }

    /// Claims the right to commit. Returns false if the request has already
    /// expired (the write must then be rolled back). Claiming twice is fine.
    pub fn claim(&self) -> bool {
        match self
            .state
            .compare_exchange(OPEN, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }

    /// Whether the request has expired (a write not claimed yet will be
    /// abandoned).
    pub fn is_expired(&self) -> bool {
        self.state.load(Ordering::Acquire) == EXPIRED
    }
}

/// Runs `future` with `deadline` as the deadline of every write it makes.
pub async fn scope<F: Future>(deadline: Arc<Deadline>, future: F) -> F::Output {
    CURRENT.scope(deadline, future).await
}

/// The deadline of the request running on this task, if any. A backend
/// whose commit happens elsewhere (another thread) takes it along.
pub fn current() -> Option<Arc<Deadline>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// [`Deadline::claim`] on the current task's deadline; true without one.
pub fn claim_commit() -> bool {
    CURRENT.try_with(|d| d.claim()).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_expiry_and_claim_wins_for_good() {
        let deadline = Deadline::new();
        assert!(deadline.claim());
        assert!(deadline.claim(), "claiming again is allowed");
        assert!(!deadline.expire(), "a claimed request cannot expire");
        assert!(!deadline.is_expired());

        let deadline = Deadline::new();
        assert!(deadline.expire());
        assert!(deadline.expire());
        assert!(!deadline.claim(), "an expired request cannot commit");
        assert!(deadline.is_expired());
    }

    #[tokio::test]
    async fn the_deadline_is_found_inside_its_scope_only() {
        assert!(current().is_none());
        assert!(claim_commit(), "no deadline: always commit");
        let deadline = Arc::new(Deadline::new());
        deadline.expire();
        let inside = scope(Arc::clone(&deadline), async { (current(), claim_commit()) }).await;
        assert!(inside.0.is_some());
        assert!(!inside.1, "an expired scope refuses the commit");
    }
}
