//! The background writer: `put` queues the entry and returns; one thread
//! writes entries in order, then enforces the budget.
//!
//! The queue is bounded by bytes ([`MAX_PENDING_BYTES`]): a caller producing
//! results faster than the disk takes them waits for room rather than
//! holding unbounded memory. [`Writer::flush`] waits until the queue is empty
//! and the entry in hand is written.

use crate::sync::lock;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::lock::KeyLock;
use super::meta::EntryInfo;
use super::Inner;
use crate::key::Fingerprint;
use crate::value::AnyArray;

/// The most bytes of results waiting to be written before `put` blocks.
pub const MAX_PENDING_BYTES: u64 = 256 << 20;

/// The most results waiting to be written before `put` blocks. Each may
/// hold its key's lock, and Linux keeps a file's byte-range locks in a list
/// that every lock and unlock walks: ten thousand queued small results made
/// each miss cost tens of µs more (measured with `perf` on the scaling
/// example). A batch of the writer is at most this many.
const MAX_PENDING_JOBS: usize = 256;

/// One entry to write. The lock, if any, is released once the entry's files
/// are in place (or the write failed).
pub(crate) struct Job {
    pub key: Fingerprint,
    pub value: AnyArray,
    pub info: EntryInfo,
    /// The key's lock, if the caller holds it: held until the job is done
    /// (without it, the write takes the lock for its renames).
    pub lock: Option<KeyLock>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    pending_bytes: u64,
    /// Jobs taken off the queue and being written (by the writer thread, or
    /// by callers draining inline when no thread could be spawned).
    busy: usize,
    shutdown: bool,
}

impl State {
    /// Whether a job of `bytes` must wait for room.
    fn is_full(&self, bytes: u64) -> bool {
        (self.pending_bytes > 0 && self.pending_bytes + bytes > MAX_PENDING_BYTES)
            || self.jobs.len() >= MAX_PENDING_JOBS
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    // One condvar for every change of `state`; waiters re-check their condition.
    changed: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(g).unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Writer {
    background: bool,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn new(background: bool) -> Self {
        Writer {
            background,
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    /// Writes `job` now (foreground mode: returns whether the entry is in
    /// place) or queues it (returns `None`).
    pub fn submit(&self, inner: &Arc<Inner>, job: Job) -> Option<bool> {
        if !self.background {
            return Some(inner.store(vec![job])[0]);
        }
        let bytes = job.value.nbytes();
        let mut st = self.shared.state();
        while st.is_full(bytes) {
            st = self.shared.wait(st);
        }
        st.jobs.push_back(job);
        st.pending_bytes += bytes;
        drop(st);
        self.shared.changed.notify_all();
        self.ensure_thread(inner);
        None
    }

    /// [`submit`](Self::submit) without waiting: `false` (and the job
    /// dropped) when the queue has no room for it.
    pub fn try_submit(&self, inner: &Arc<Inner>, job: Job) -> bool {
        if !self.background {
            return inner.store(vec![job])[0];
        }
        let bytes = job.value.nbytes();
        let mut st = self.shared.state();
        if st.is_full(bytes) {
            return false;
        }
        st.jobs.push_back(job);
        st.pending_bytes += bytes;
        drop(st);
        self.shared.changed.notify_all();
        self.ensure_thread(inner);
        true
    }

    /// Waits until every queued entry is written.
    pub fn flush(&self) {
        let mut st = self.shared.state();
        while !st.jobs.is_empty() || st.busy > 0 {
            st = self.shared.wait(st);
        }
    }

    /// Writes what is queued and stops the thread.
    pub fn shutdown(&self) {
        self.flush();
        self.shared.state().shutdown = true;
        self.shared.changed.notify_all();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn ensure_thread(&self, inner: &Arc<Inner>) {
        let mut slot = lock(&self.thread);
        if slot.is_some() {
            return;
        }
        let (shared, inner2) = (self.shared.clone(), inner.clone());
        match std::thread::Builder::new()
            .name("ndcache-disk-writer".into())
            .spawn(move || run(&shared, &inner2, true))
        {
            Ok(h) => *slot = Some(h),
            Err(_) => {
                drop(slot);
                // No thread: write the queue here rather than never.
                run(&self.shared, inner, false);
            }
        }
    }
}

/// Writes queued jobs in order, in batches: small entries of one batch go
/// to the store in one transaction. With `wait`, waits for more until shut
/// down; without, returns when the queue is empty.
fn run(shared: &Shared, inner: &Inner, wait: bool) {
    loop {
        let mut st = shared.state();
        while wait && st.jobs.is_empty() && !st.shutdown {
            st = shared.wait(st);
        }
        if st.jobs.is_empty() {
            return; // shut down (or, without `wait`, done)
        }
        let n = st.jobs.len().min(MAX_PENDING_JOBS);
        let batch: Vec<Job> = st.jobs.drain(..n).collect();
        st.busy += 1;
        drop(st);
        let bytes: u64 = batch.iter().map(|j| j.value.nbytes()).sum();
        // A bug in the write path must not leave `flush` waiting forever.
        if catch_unwind(AssertUnwindSafe(|| inner.store(batch))).is_err() {
            inner.write_failed_panic();
        }
        let mut st = shared.state();
        st.busy -= 1;
        st.pending_bytes -= bytes;
        drop(st);
        shared.changed.notify_all();
    }
}
