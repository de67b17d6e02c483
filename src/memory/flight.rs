//! Single-flight bookkeeping: one computation per missing key, the other
//! callers wait for its outcome.
//!
//! Waiting must not deadlock the rayon pool. A pool thread never waits for a
//! computation led by a pool thread: rayon may be running, below the waiter's
//! frame, a task the leader is itself waiting for (a `join` half it stole),
//! or the leader's frame may be below the waiter's own. It computes the
//! value itself instead. A pool thread waiting for a computation led by
//! another thread keeps running pool work meanwhile (the leader's parallel
//! pieces may be queued behind it).

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use crate::sync::lock;

/// Why a single-flight computation gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlightError<E> {
    /// The computation (this call's, or the one it waited for) returned an error.
    Failed(E),
    /// The computation this call waited for panicked. The cache is unharmed;
    /// a later call computes again.
    Panicked,
    /// The computation asked the cache, on the same thread, for the key it
    /// is computing, which would wait for itself forever.
    Reentrant,
}

impl<E: fmt::Display> fmt::Display for FlightError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlightError::Failed(e) => write!(f, "computation failed: {e}"),
            FlightError::Panicked => f.write_str("the computation of this key panicked"),
            FlightError::Reentrant => {
                f.write_str("recursive computation of the same key (it would wait for itself)")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for FlightError<E> {}

/// How a flight ended.
pub(crate) enum Outcome<V> {
    Value(V),
    /// The leader's error, type-erased so that one tier can serve callers
    /// with different error types.
    Failed(Arc<dyn Any + Send + Sync>),
    Panicked,
}

impl<V: Clone> Outcome<V> {
    fn cloned(&self) -> Self {
        match self {
            Outcome::Value(v) => Outcome::Value(v.clone()),
            Outcome::Failed(e) => Outcome::Failed(Arc::clone(e)),
            Outcome::Panicked => Outcome::Panicked,
        }
    }
}

/// One in-progress computation.
pub(crate) struct Flight<V> {
    leader: ThreadId,
    /// Whether the leader is a rayon pool thread.
    leader_in_pool: bool,
    outcome: Mutex<Option<Outcome<V>>>,
    done: Condvar,
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new() -> Self {
        Flight {
            leader: thread::current().id(),
            leader_in_pool: rayon::current_thread_index().is_some(),
            outcome: Mutex::new(None),
            done: Condvar::new(),
        }
    }

    /// Whether the current thread is the one computing.
    pub(crate) fn led_by_current_thread(&self) -> bool {
        self.leader == thread::current().id()
    }

    /// Whether the current thread may wait for this flight (see the module
    /// docs): not a pool thread waiting for a pool thread.
    pub(crate) fn may_wait(&self) -> bool {
        !(self.leader_in_pool && rayon::current_thread_index().is_some())
    }

    /// Publishes the outcome and wakes every waiter.
    pub(crate) fn finish(&self, outcome: Outcome<V>) {
        *lock(&self.outcome) = Some(outcome);
        self.done.notify_all();
    }

    /// Waits until the outcome is published. A pool thread runs other pool
    /// work meanwhile.
    pub(crate) fn wait(&self) -> Outcome<V> {
        let in_pool = rayon::current_thread_index().is_some();
        loop {
            let slot = lock(&self.outcome);
            if let Some(o) = &*slot {
                return o.cloned();
            }
            if in_pool {
                drop(slot);
                if let Some(rayon::Yield::Executed) = rayon::yield_now() {
                    continue;
                }
                let slot = lock(&self.outcome);
                if slot.is_none() {
                    // Woken at once by `finish`; the timeout only bounds how
                    // late new pool work is noticed.
                    drop(self.done.wait_timeout(slot, Duration::from_millis(1)));
                }
            } else {
                drop(self.done.wait(slot));
            }
        }
    }
}
