//! Misses of rayon pool threads run on a thread of their own.
//!
//! A pool thread that computes a miss with a parallel kernel waits inside
//! rayon's `join`, and while it waits it runs other jobs of its pool: a
//! sweep item asking for the key it is computing, or an item whose own
//! wait closes a cycle with it. Neither can wait for the other (the
//! computation is suspended below them on the same stack), so each would
//! have to compute the key again. [`run_isolated`] breaks the tie: the
//! computation (and the flight's whole leadership: compute, store, wake)
//! runs on a pool of ndcache's own ([`compute_pool`]) that runs nothing but
//! leaderships and their kernels, so it finishes whatever the caller's pool
//! does. The caller meanwhile keeps its own pool busy (rayon's cross-pool
//! `install` runs the caller's pool work while it waits). Other pool
//! threads may then wait for the key: see the memory tier's flight module.
//!
//! Leaderships can stack on one compute thread (one picks up another while
//! its kernel waits in a `join`), so compute threads never wait for an
//! isolated flight: they compute it themselves, as pool threads did before.
//! Only a kernel that asks the cache for other keys (a user kernel) can
//! meet one.
//!
//! The cost is the hand-over to the compute pool, paid only by misses, and
//! only on pool threads (see the bench `cached_vs_raw/<kernel>/miss_on_pool`).

use std::sync::OnceLock;

/// The pool that runs the kernels of isolated misses.
pub(crate) fn compute_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("ndcache-compute-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Whether a miss on this thread should run isolated: on a pool thread
/// that is not one of the compute pool's own (their computations are a
/// kernel's parts; they run inline, as before).
pub(crate) fn should_isolate() -> bool {
    let Some(pool) = compute_pool() else {
        return false;
    };
    rayon::current_thread_index().is_some() && pool.current_thread_index().is_none()
}

/// Runs `f` on the compute pool while this (pool) thread runs other work
/// of its own pool (rayon's cross-pool `install`), and returns `f`'s result.
/// `f` is the whole of a flight's leadership (compute, store, wake the
/// waiters), so a job this thread picks up meanwhile may wait for the
/// flight. Panics of `f` propagate.
pub(crate) fn run_isolated<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match compute_pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Whether the current thread is one of the compute pool's.
pub(crate) fn on_compute_pool() -> bool {
    compute_pool().is_some_and(|p| p.current_thread_index().is_some())
}
