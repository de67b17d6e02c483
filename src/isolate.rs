//! Misses of rayon pool threads run on a thread of their own.
//!
//! A pool thread that computes a miss with a parallel kernel waits inside
//! rayon's `join`, and while it waits it runs other jobs of its pool: a
//! sweep item asking for the key it is computing, or an item whose own
//! wait closes a cycle with it. Neither can wait for the other (the
//! computation is suspended below them on the same stack), so each would
//! have to compute the key again. [`run_isolated`] breaks the tie: the
//! computation runs on a scoped thread outside the caller's pool, with its
//! parallel work on a pool of its own ([`compute_pool`]) that runs nothing
//! but kernels, so it finishes whatever the caller's pool does. The caller
//! meanwhile keeps its pool busy ([`rayon::yield_now`]) and picks up the
//! result. Other pool threads may then wait for the key: see the memory
//! tier's flight module.
//!
//! The cost is a thread spawn per miss of a pool thread (tens of
//! microseconds), paid only by misses, and only on pool threads.

use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use crate::sync::lock;

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

/// Runs `f` on a scoped thread whose parallel work goes to the compute
/// pool, while this (pool) thread runs other pool work; returns `f`'s
/// result. `f` is the whole of a flight's leadership (compute, store, wake
/// the waiters), so a job this thread picks up meanwhile may wait for the
/// flight. Panics of `f` propagate.
pub(crate) fn run_isolated<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let Some(pool) = compute_pool() else {
        return f();
    };
    let slot = Mutex::new(Some(f));
    let caller = thread::current();
    let spawned = thread::scope(|s| {
        let slot = &slot;
        let h = thread::Builder::new()
            .name("ndcache-miss".into())
            .spawn_scoped(s, move || {
                let f = lock(slot).take()?;
                let r = pool.install(f);
                caller.unpark();
                Some(r)
            })
            .ok()?;
        while !h.is_finished() {
            if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                // Woken by the computation's end; the timeout bounds how
                // late new pool work is noticed.
                thread::park_timeout(Duration::from_millis(1));
            }
        }
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    });
    match spawned {
        Some(r) => r,
        // No thread could be had (out of resources): compute here, as
        // before isolation existed.
        None => match lock(&slot).take() {
            Some(f) => f(),
            None => unreachable!("the computation ran or is still here"),
        },
    }
}
