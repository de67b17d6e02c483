//! Single-flight bookkeeping: one computation per missing key, the other
//! callers wait for its outcome.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, ThreadId};

/// Why a single-flight computation gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlightError<E> {
    /// The computation (this call's, or the one it waited for) returned an error.
    Failed(E),
    /// The computation this call waited for panicked. The cache is unharmed;
    /// a later call computes again.
    Panicked,
    /// The computation asked the cache for the key it is computing, which
    /// would wait for itself forever.
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

/// One in-progress computation.
pub(crate) struct Flight<V> {
    leader: ThreadId,
    outcome: Mutex<Option<Outcome<V>>>,
    done: Condvar,
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new() -> Self {
        Flight {
            leader: thread::current().id(),
            outcome: Mutex::new(None),
            done: Condvar::new(),
        }
    }

    /// Whether the current thread is the one computing.
    pub(crate) fn led_by_current_thread(&self) -> bool {
        self.leader == thread::current().id()
    }

    /// Publishes the outcome and wakes every waiter.
    pub(crate) fn finish(&self, outcome: Outcome<V>) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(outcome);
        drop(slot);
        self.done.notify_all();
    }

    /// Blocks until the outcome is published, then returns a copy of it.
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match &*slot {
                Some(Outcome::Value(v)) => return Outcome::Value(v.clone()),
                Some(Outcome::Failed(e)) => return Outcome::Failed(Arc::clone(e)),
                Some(Outcome::Panicked) => return Outcome::Panicked,
                None => {
                    slot = self.done.wait(slot).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}
