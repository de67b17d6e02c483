//! The disk tier's own miss protocol: get → lock → get → compute → put, in
//! one call ([`DiskTier::get_or_insert_with`]).
//!
//! Two kinds of waiting guard a key, one inside the process and one across
//! processes:
//!
//! - **In the process**, a table of the keys this process is computing,
//!   with the thread that computes each. A second thread asking for the
//!   same key waits for the first (then reads the entry it wrote), unless
//!   both are rayon pool threads (a pool thread may not wait for another
//!   pool thread: see the memory tier's flight module), and a thread that
//!   asks for a key it is itself computing (a job it stole from the pool
//!   inside its own computation) never waits: it computes without the lock.
//! - **Across processes**, the key's lock file ([`DiskTier::lock`]). A
//!   thread outside rayon's pools blocks on it; a pool thread never blocks
//!   in `flock`: it tries, runs other pool work ([`rayon::yield_now`]) and
//!   tries again, so the pool keeps making progress while another process
//!   computes.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use super::{DiskTier, EntryInfo, EntryMeta, KeyLock};
use crate::key::Fingerprint;
use crate::sync::lock;
use crate::value::AnyArray;

/// Where [`DiskTier::get_or_insert_with`] found its result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fetched {
    /// Read from the directory (written by this or another process).
    Loaded(EntryMeta),
    /// Computed by this call.
    Computed {
        /// How long the computation took.
        compute_time: Duration,
        /// Whether the entry was written (with background writes: whether
        /// it was queued for a writable directory; a write that fails later
        /// is counted in [`DiskStats::write_failures`](super::DiskStats)).
        stored: bool,
    },
}

/// The keys this process is computing.
#[derive(Default)]
pub(super) struct Computing {
    held: Mutex<HashMap<Fingerprint, Holder>>,
    released: Condvar,
}

#[derive(Clone, Copy)]
struct Holder {
    thread: ThreadId,
    in_pool: bool,
}

/// How long a thread that cannot block sleeps between two tries when the
/// pool has no work for it.
const POLL: Duration = Duration::from_millis(1);

fn in_pool() -> bool {
    rayon::current_thread_index().is_some()
}

/// Runs pool work if there is some, else sleeps a little.
fn pause() {
    if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
        thread::sleep(POLL);
    }
}

/// Removes a key from the in-process table when dropped (even by a panic).
struct Release<'a> {
    computing: &'a Computing,
    key: Fingerprint,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        lock(&self.computing.held).remove(&self.key);
        self.computing.released.notify_all();
    }
}

impl DiskTier {
    /// The result of `key`: read from the directory if it is there, else
    /// computed by `compute` and stored, with `kernel` and `version` in its
    /// sidecar. One computation per key across the threads and processes
    /// sharing the directory (see the [module docs](crate::disk) for how each
    /// waits), without ever blocking a rayon pool thread in a lock.
    ///
    /// A directory that cannot be locked or written (read-only) still
    /// serves what it has; the result is then computed and not stored.
    ///
    /// # Errors
    ///
    /// Only `compute`'s own error: the disk tier's failures are misses.
    ///
    /// # Example
    ///
    /// ```
    /// use ndcache::disk::{DiskTier, Fetched};
    /// # let dir = tempfile::tempdir()?;
    /// let tier = DiskTier::open(dir.path(), Some(1 << 30))?;
    /// let key = ndcache::call_key("exp", "1", b"", &[]);
    /// let compute = || Ok::<_, ndcache::Error>(ndcache::AnyArray::from(ndarray::array![1.0f64, 2.718]));
    /// let (first, how) = tier.get_or_insert_with(key, "exp", "1", compute)?;
    /// assert!(matches!(how, Fetched::Computed { stored: true, .. }));
    /// tier.flush();
    /// let (again, how) = tier.get_or_insert_with(key, "exp", "1", compute)?; // not called
    /// assert!(matches!(how, Fetched::Loaded(_)));
    /// assert!(again.bitwise_eq(&first));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or_insert_with<E>(
        &self,
        key: Fingerprint,
        kernel: &str,
        version: &str,
        compute: impl FnOnce() -> Result<AnyArray, E>,
    ) -> Result<(AnyArray, Fetched), E> {
        self.get_or_insert_timed(key, kernel, version, || {
            let start = Instant::now();
            compute().map(|array| (array, start.elapsed()))
        })
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for a `compute`
    /// that says how long the computation took (it may have loaded the
    /// result from a tier below, which recorded the original time).
    pub(crate) fn get_or_insert_timed<E>(
        &self,
        key: Fingerprint,
        kernel: &str,
        version: &str,
        compute: impl FnOnce() -> Result<(AnyArray, Duration), E>,
    ) -> Result<(AnyArray, Fetched), E> {
        // The store only: a large entry whose row is missing is found by the
        // lookup under the lock, which also looks for files.
        if let Some((array, meta)) = self.get_from(key, false) {
            return Ok((array, Fetched::Loaded(meta)));
        }
        let claim = match self.claim(key) {
            Ok(claim) => claim,
            Err(hit) => {
                let (array, meta) = *hit;
                return Ok((array, Fetched::Loaded(meta)));
            }
        };
        // Without a claim (see `claim`), compute without the lock.
        let key_lock = match &claim {
            Some(_) => self.lock_without_blocking_the_pool(key),
            None => None,
        };
        // Another process may have written it while we waited for the lock;
        // and the first lookup did not look for unindexed files.
        if let Some((array, meta)) = self.get(key) {
            return Ok((array, Fetched::Loaded(meta)));
        }
        let (array, compute_time) = compute()?;
        let info = EntryInfo::new(kernel, version, compute_time);
        let job = super::writer::Job {
            key,
            value: array.clone(),
            info,
            lock: key_lock,
        };
        let stored = self
            .writer
            .submit(&self.inner, job)
            .unwrap_or(self.inner.writable);
        // The in-process claim ends here; a thread waiting for it reads the
        // entry (from the directory once the writer has put it in place: the
        // writer holds the lock file until then).
        drop(claim);
        Ok((
            array,
            Fetched::Computed {
                compute_time,
                stored,
            },
        ))
    }

    /// Claims `key` for this thread in the in-process table (released when
    /// the guard drops), waiting for another thread of this process that
    /// computes it when that is safe. `Ok(None)`: the key is computed by this
    /// thread further down its stack, or by another pool thread this one
    /// may not wait for; compute without a lock. `Err` with the entry if it
    /// appeared on disk meanwhile.
    fn claim(&self, key: Fingerprint) -> Result<Option<Release<'_>>, Box<(AnyArray, EntryMeta)>> {
        let me = Holder {
            thread: thread::current().id(),
            in_pool: in_pool(),
        };
        let computing = &self.computing;
        loop {
            let mut held = lock(&computing.held);
            let holder = match held.get(&key) {
                None => {
                    held.insert(key, me);
                    return Ok(Some(Release { computing, key }));
                }
                Some(h) => *h,
            };
            if holder.thread == me.thread || (holder.in_pool && me.in_pool) {
                return Ok(None);
            }
            if me.in_pool {
                drop(held);
                pause();
            } else {
                // Woken by `Release`; the timeout only bounds a missed wakeup.
                drop(
                    computing
                        .released
                        .wait_timeout(held, Duration::from_millis(50)),
                );
            }
            if let Some(hit) = self.get(key) {
                return Err(Box::new(hit));
            }
        }
    }

    /// The key's lock file, or `None` if it cannot be had (a read-only
    /// directory: compute without it). Pool threads poll instead of
    /// blocking.
    fn lock_without_blocking_the_pool(&self, key: Fingerprint) -> Option<KeyLock> {
        if !in_pool() {
            return self.lock(key).ok();
        }
        loop {
            match self.try_lock(key) {
                Ok(Some(l)) => return Some(l),
                Ok(None) => pause(),
                Err(_) => return None,
            }
        }
    }
}
