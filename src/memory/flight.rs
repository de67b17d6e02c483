//! Single-flight bookkeeping: one computation per missing key, the other
//! callers wait for its outcome.
//!
//! # Waiting on rayon
//!
//! Waiting must not deadlock the rayon pool. A pool thread that waits keeps
//! running pool work meanwhile, on top of its waiting frame; a computation
//! led by a pool thread may itself be suspended under work that thread
//! picked up (a `join` half it stole, a sweep item), and that work may wait
//! for the first thread. So a pool thread waits only for a flight whose
//! completion cannot depend on any pool thread's stack:
//!
//! - a flight led by a thread outside every pool, or
//! - an *isolated* flight: its computation runs on ndcache's compute pool
//!   (see `crate::isolate`), which no other pool's stack can hold up (the
//!   array cache isolates every miss led by a pool thread); compute-pool
//!   threads themselves do not wait for isolated flights.
//!
//! Otherwise (a pool thread meeting a flight led, not isolated, by a pool
//! thread) it computes the value itself: at most once per thread.
//!
//! # Recursion
//!
//! Each thread keeps a stack of the flights it is computing ([`Frame`]). A
//! request for a key that the same thread is computing is recursion off the
//! pool ([`FlightError::Reentrant`]). On a pool thread it may also be a job
//! stolen from the pool while the computation waits in a `join`, which must
//! be computed, not waited for. Both nest computations of one key on one
//! thread; a stolen job nests a bounded number of times, recursion without
//! end. So a pool thread computes a nested request (a *helper* frame) until
//! [`MAX_FRAMES_PER_FLIGHT`] frames of one flight are on its stack, then
//! reports `Reentrant` and poisons the helper frames below: each of them
//! returns `Reentrant` too, so the computation that started it sees the same
//! error as off the pool.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
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
    /// Whether the leader is a rayon pool thread.
    leader_in_pool: bool,
    /// Whether the computation runs where it cannot depend on a pool
    /// thread's stack (see the module docs).
    isolated: bool,
    outcome: Mutex<Option<Outcome<V>>>,
    done: Condvar,
}

impl<V: Clone> Flight<V> {
    pub(crate) fn new(isolated: bool) -> Self {
        Flight {
            leader_in_pool: in_pool(),
            isolated,
            outcome: Mutex::new(None),
            done: Condvar::new(),
        }
    }

    /// The flight's identity in the threads' frame stacks.
    pub(crate) fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as *const () as usize
    }

    /// Whether the computation runs on the compute pool (see the module docs).
    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// Whether the current thread may wait for this flight (see the module
    /// docs).
    pub(crate) fn may_wait(&self) -> bool {
        if !in_pool() {
            return true;
        }
        if self.isolated {
            // Its leadership runs on the compute pool, where leaderships
            // stack: a compute thread must not wait for one.
            return !crate::isolate::on_compute_pool();
        }
        !self.leader_in_pool
    }

    /// Publishes the outcome and wakes every waiter.
    pub(crate) fn finish(&self, outcome: Outcome<V>) {
        *lock(&self.outcome) = Some(outcome);
        self.done.notify_all();
    }

    /// Waits until the outcome is published. A pool thread runs other pool
    /// work meanwhile.
    pub(crate) fn wait(&self) -> Outcome<V> {
        let in_pool = in_pool();
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

/// Whether the current thread is a rayon pool thread.
pub(crate) fn in_pool() -> bool {
    rayon::current_thread_index().is_some()
}

/// How many frames of one flight a pool thread may have on its stack before
/// a nested request is taken for recursion (see the module docs). A job of
/// the same key stolen inside the computation nests once; three levels
/// cannot happen in a `join` tree with one leader per key.
pub(crate) const MAX_FRAMES_PER_FLIGHT: usize = 3;

struct FrameSlot {
    flight: usize,
    helper: bool,
    poisoned: bool,
}

thread_local! {
    static FRAMES: RefCell<Vec<FrameSlot>> = const { RefCell::new(Vec::new()) };
}

/// The number of frames of `flight` on this thread's stack.
pub(crate) fn frames_of(flight: usize) -> usize {
    FRAMES.with(|f| f.borrow().iter().filter(|s| s.flight == flight).count())
}

/// Marks every helper frame of `flight` on this thread as recursion.
pub(crate) fn poison(flight: usize) {
    FRAMES.with(|f| {
        for s in f.borrow_mut().iter_mut() {
            if s.flight == flight && s.helper {
                s.poisoned = true;
            }
        }
    });
}

/// A computation of a flight on this thread's stack; popped when dropped.
pub(crate) struct Frame {
    depth: usize,
}

impl Frame {
    /// Pushes a frame: `helper` for a nested computation of a flight that
    /// this thread or another one leads.
    pub(crate) fn enter(flight: usize, helper: bool) -> Frame {
        FRAMES.with(|f| {
            let mut f = f.borrow_mut();
            f.push(FrameSlot {
                flight,
                helper,
                poisoned: false,
            });
            Frame { depth: f.len() }
        })
    }

    /// Whether a deeper request found this computation to be recursion.
    pub(crate) fn poisoned(&self) -> bool {
        FRAMES.with(|f| f.borrow().get(self.depth - 1).is_some_and(|s| s.poisoned))
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        FRAMES.with(|f| f.borrow_mut().truncate(self.depth - 1));
    }
}
