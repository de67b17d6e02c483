//! The upload queue: computed results go to Redis on one background
//! thread, in order, so a miss never waits for the network. The queue is
//! bounded in bytes; a result that does not fit is dropped (and counted),
//! never waited for: the caller has its result, and memory stays bounded.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::stats::Counters;
use super::tier::Inner;
use crate::disk::EntryInfo;
use crate::key::Fingerprint;
use crate::sync::lock;
use crate::value::AnyArray;

/// One result to upload, and the lease to release once it is written.
pub(crate) struct Job {
    key: Fingerprint,
    value: AnyArray,
    info: EntryInfo,
    lease: Option<(String, u64)>,
}

impl Job {
    pub(crate) fn new(
        key: Fingerprint,
        value: &AnyArray,
        info: EntryInfo,
        lease: Option<(String, u64)>,
    ) -> Job {
        Job {
            key,
            value: value.clone(),
            info,
            lease,
        }
    }
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    pending_bytes: u64,
    busy: usize,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
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

pub(crate) struct Uploader {
    max_bytes: u64,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Uploader {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Uploader {
            max_bytes,
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    /// Queues `job`, or drops it (releasing its lease) if the queue is full.
    pub(crate) fn submit(&self, inner: &Arc<Inner>, job: Job) {
        let bytes = job.value.nbytes();
        if bytes > inner.options.max_value_bytes {
            Counters::bump(&inner.counters.upload_skipped);
            finish(inner, job.lease, false);
            return;
        }
        let mut st = self.shared.state();
        if st.pending_bytes > 0 && st.pending_bytes + bytes > self.max_bytes {
            drop(st);
            Counters::bump(&inner.counters.upload_dropped);
            finish(inner, job.lease, false);
            return;
        }
        st.jobs.push_back(job);
        st.pending_bytes += bytes;
        drop(st);
        self.shared.changed.notify_all();
        self.ensure_thread(inner);
    }

    /// Waits until every queued job is done.
    pub(crate) fn flush(&self) {
        let mut st = self.shared.state();
        while !st.jobs.is_empty() || st.busy > 0 {
            st = self.shared.wait(st);
        }
    }

    /// Uploads what is queued and stops the thread.
    pub(crate) fn shutdown(&self) {
        self.flush();
        self.shared.state().shutdown = true;
        self.shared.changed.notify_all();
        if let Some(h) = lock(&self.thread).take() {
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
            .name("ndcache-remote-uploader".into())
            .spawn(move || run(&shared, &inner2, true))
        {
            Ok(h) => *slot = Some(h),
            Err(_) => {
                drop(slot);
                run(&self.shared, inner, false);
            }
        }
    }
}

/// Releases a lease, if any: deleted once the value is there, declined
/// (the waiters compute at once) when no value is coming.
fn finish(inner: &Inner, lease: Option<(String, u64)>, uploaded: bool) {
    match lease {
        Some((k, t)) if uploaded => inner.release(&k, t),
        Some((k, t)) => inner.decline(&k, t),
        None => {}
    }
}

fn upload(inner: &Inner, job: Job) {
    let Job {
        key,
        value,
        info,
        lease,
    } = job;
    let uploaded = match inner.write(key, &value, &info) {
        Ok(bytes) => {
            Counters::bump(&inner.counters.uploads);
            Counters::add(&inner.counters.bytes_written, bytes);
            true
        }
        Err(_) => {
            Counters::bump(&inner.counters.upload_failures);
            false
        }
    };
    finish(inner, lease, uploaded);
}

fn run(shared: &Shared, inner: &Inner, wait: bool) {
    loop {
        let mut st = shared.state();
        while wait && st.jobs.is_empty() && !st.shutdown {
            st = shared.wait(st);
        }
        let Some(job) = st.jobs.pop_front() else {
            return;
        };
        st.busy += 1;
        drop(st);
        let bytes = job.value.nbytes();
        if catch_unwind(AssertUnwindSafe(|| upload(inner, job))).is_err() {
            Counters::bump(&inner.counters.upload_failures);
        }
        let mut st = shared.state();
        st.busy -= 1;
        st.pending_bytes -= bytes;
        drop(st);
        shared.changed.notify_all();
    }
}
