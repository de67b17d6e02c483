//! The disk tier: plain `.npy` files with verified metadata sidecars.
//!
//! A [`DiskTier`] keeps results in a directory that numpy can read
//! (`np.load(path)` with the default `allow_pickle=False`), shared safely by
//! several processes:
//!
//! - **No pickle, ever.** Payloads are `.npy` files of `float32`, `float64`,
//!   `int32` or `int64`; sidecars are a strictly parsed text record
//!   (layout [below](self#layout), format in [`EntryMeta`]).
//! - **Verified on every load.** The sidecar records the xxh3-128 of the whole
//!   payload file; a corrupt, truncated, half-written or orphan entry is a
//!   miss, is removed and is counted ([`DiskStats::corrupt`]).
//! - **Atomic writes, off the miss path.** [`DiskTier::put`] queues the
//!   result for a background thread (by default) that writes temporary
//!   files and renames them into place, payload first and sidecar last.
//!   Nothing waits for `fsync`: verification makes it unnecessary.
//! - **A byte budget, enforced on every write**, least recently used first,
//!   counting payloads and sidecars. A hit refreshes the entry's last-access
//!   time, which is the sidecar's modification time, so it is shared by
//!   every process and survives restarts. Each tier keeps an index of sizes
//!   and access times (one scan at open, then its own writes), and rescans
//!   the directory when the index says it is over budget or after writing a
//!   quarter of the budget, so that other processes' entries count too;
//!   processes writing at the same time may together exceed the budget by
//!   what they wrote since their last scans, until one of them rescans.
//! - **One computation per key across threads and processes**, with
//!   [`DiskTier::get_or_insert_with`].
//! - **Signed entries, optionally.** With a secret
//!   ([`DiskTierBuilder::secret`], or `$NDCACHE_SECRET`), each sidecar
//!   carries a keyed BLAKE3 of the payload and the sidecar, and an entry
//!   without a valid one is a miss, is removed and is counted
//!   ([`DiskStats::forged`]): see [`EntryMeta`] for the format.
//! - **A failing disk never fails a call.** A read-only or full disk makes
//!   writes fail softly: they are counted ([`DiskStats::write_failures`]) and
//!   reported once on standard error.
//!
//! # Layout
//!
//! ```text
//! <dir>/v1/<ab>/<cd>/<key>.npy    the result (a plain .npy file)
//! <dir>/v1/<ab>/<cd>/<key>.meta   its sidecar; present means complete
//! <dir>/v1/<ab>/<cd>/<key>.lock   while a process computes the key
//! <dir>/v1/budget                 the remembered byte budget, if one was set
//! <dir>/v1/CACHEDIR.TAG           tells backup tools to skip the cache
//! ```
//!
//! The budget file holds the budget in bytes, in decimal, and a newline. A
//! tier opened with a budget ([`DiskTierBuilder::max_bytes`]) writes it
//! there (through a temporary file and a rename); one opened without uses
//! the remembered budget. A damaged budget file is ignored, with a warning.
//!
//! # Opening an unusable directory
//!
//! [`DiskTier::open`] on a directory that cannot be created or written
//! succeeds in a degraded, read-only mode: lookups still serve whatever
//! entries can be read, writes are counted as failures, and one warning
//! names the directory and the OS error. A cache is an optimization; a
//! misconfigured one should slow a program down, not stop it. Use
//! [`DiskTierBuilder::require_writable`] to get an error instead.
//!
//! # Computing a key once across threads and processes
//!
//! [`DiskTier::get_or_insert_with`] owns the whole miss protocol: get, take
//! the key's lock (other processes wait there), get again, compute, put,
//! release once the entry is in place. It never blocks a rayon pool thread
//! and never waits for the thread calling it (see its docs). The pieces
//! ([`get`](DiskTier::get), [`lock`](DiskTier::lock),
//! [`put`](DiskTier::put)) stay public for callers with a protocol of
//! their own.
//!
//! ```
//! use ndcache::disk::{DiskTier, Fetched};
//! # let dir = tempfile::tempdir()?;
//! let tier = DiskTier::open(dir.path(), Some(1 << 30))?;
//! let key = ndcache::call_key("exp", "1", b"", &[]);
//! let (value, how) = tier.get_or_insert_with(key, "exp", "1", || {
//!     Ok::<_, ndcache::Error>(ndcache::AnyArray::from(ndarray::array![1.0f64, 2.718]))
//! })?;
//! assert!(matches!(how, Fetched::Computed { .. }));
//! tier.flush();
//! assert!(tier.get(key).unwrap().0.bitwise_eq(&value));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod entry;
mod index;
mod layout;
mod lock;
mod maint;
mod meta;
pub(crate) mod npy;
mod once;
mod stats;
mod writer;

#[cfg(test)]
mod tests;

pub use lock::KeyLock;
pub use maint::{DiskEntry, EntryProblem, GcReport, Progress, RemovedEntry, VerifyReport};
pub use meta::{EntryInfo, EntryMeta};
pub use npy::{read_npy, write_npy_atomic};
pub use once::Fetched;
pub use stats::DiskStats;
pub use writer::MAX_PENDING_BYTES;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::key::Fingerprint;
use crate::sync::lock;
use crate::value::AnyArray;
use entry::{Miss, Written};
use index::{Index, Slot};
use layout::Layout;
use stats::Counters;
use writer::{Job, Writer};

/// Options for opening a [`DiskTier`]; see [`DiskTier::builder`].
#[derive(Debug, Clone)]
pub struct DiskTierBuilder {
    dir: PathBuf,
    max_bytes: Option<u64>,
    background: bool,
    require_writable: bool,
    create: bool,
    read_only: bool,
    secret: Option<Vec<u8>>,
}

impl DiskTierBuilder {
    /// Signs the entries written and accepts only entries signed with the
    /// same secret (an empty secret turns signing off). Without this, the
    /// secret is `$NDCACHE_SECRET` if that is set and not empty.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Bounds the bytes on disk (payloads and sidecars); least recently used
    /// entries are removed on every write that goes over.
    ///
    /// The directory remembers the budget (in `<dir>/v1/budget`): a tier
    /// opened later without one uses it. Unbounded if no budget was ever set.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Whether `put` hands entries to a background thread (the default) or
    /// writes them before returning.
    pub fn background_writes(mut self, yes: bool) -> Self {
        self.background = yes;
        self
    }

    /// Fail to open when the directory cannot be created or written, instead
    /// of opening in read-only mode with a warning.
    pub fn require_writable(mut self, yes: bool) -> Self {
        self.require_writable = yes;
        self
    }

    /// Whether to create the cache when `<dir>/v1` does not exist (the
    /// default). With `false`, opening a directory that is not a cache is an
    /// error instead.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Opens an existing cache to inspect it: opening, [`DiskTier::entries`],
    /// [`DiskTier::stats`] and [`DiskTier::verify`] without repair then
    /// create, write and remove nothing in the directory (no `v1/`, no probe
    /// file, no `CACHEDIR.TAG`, no cleanup of leftovers). Writes are counted
    /// as failures, without a warning; [`DiskTier::gc`], [`DiskTier::clear`]
    /// and repairs fail. (A lookup still refreshes the access time of a hit
    /// and removes a damaged entry, as on any tier.)
    ///
    /// Implies [`create(false)`](Self::create): opening a directory that is
    /// not a cache is an error.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Opens the tier: creates the directory if needed, checks that it is
    /// writable, remembers or recalls the budget, and scans it once to
    /// build the index.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero budget, or for `read_only` with
    /// `require_writable`; [`Error::Io`] if the directory is unusable and
    /// [`require_writable`](Self::require_writable) is set, or (of kind
    /// [`NotFound`](std::io::ErrorKind::NotFound)) if it is not a cache and
    /// [`create`](Self::create) is off or [`read_only`](Self::read_only) on.
    pub fn build(self) -> Result<DiskTier> {
        if self.max_bytes == Some(0) {
            return Err(Error::Config(
                "the disk tier's max_bytes must be positive".into(),
            ));
        }
        if self.read_only && self.require_writable {
            return Err(Error::Config(
                "a disk tier cannot be both read_only and require_writable".into(),
            ));
        }
        let layout = Layout::new(&self.dir);
        if (self.read_only || !self.create) && !layout.base().is_dir() {
            return Err(Error::io(
                "open the cache",
                layout.root(),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "it is not an ndcache cache (no v1/ directory)",
                ),
            ));
        }
        let open_error = if self.read_only {
            Some(Error::Config("the disk cache was opened read-only".into()))
        } else {
            prepare_dir(&layout).err()
        };
        if let (Some(e), true) = (&open_error, self.require_writable) {
            return Err(e.clone());
        }
        let max_bytes = budget(&layout, self.max_bytes, open_error.is_none());
        let scan = layout::scan(&layout).unwrap_or_default();
        let inner = Arc::new(Inner {
            layout,
            max_bytes,
            writable: open_error.is_none(),
            index: Mutex::new(Index::from_scan(&scan)),
            evicting: Mutex::new(()),
            counters: Counters::default(),
            // A read-only tier fails its writes on purpose: no warning.
            warned: AtomicBool::new(self.read_only),
            open_error,
            signer: crate::sign::Signer::from_option_or_env(self.secret.as_deref()),
        });
        match &inner.open_error {
            Some(_) if self.read_only => {}
            Some(e) => inner.warn(
                Some(e),
                "is not writable",
                "results will not be saved there",
            ),
            None => {
                inner.remove_stale(&scan, false);
            }
        }
        Ok(DiskTier {
            writer: Writer::new(self.background),
            inner,
            computing: Default::default(),
        })
    }
}

/// The tier's budget: `given` (remembered in the directory if `writable`
/// and new), else the remembered one. A damaged budget file is ignored
/// with a warning; a budget that cannot be remembered is still used.
fn budget(layout: &Layout, given: Option<u64>, writable: bool) -> Option<u64> {
    let remembered = match layout::read_budget(layout) {
        Ok(b) => b,
        Err(reason) => {
            eprintln!(
                "ndcache: warning: ignoring the budget file {} ({reason}); {}",
                layout.budget().display(),
                if given.is_some() {
                    "replacing it"
                } else {
                    "the cache has no budget until one is set"
                }
            );
            None
        }
    };
    match given {
        Some(n) => {
            if writable && remembered != Some(n) {
                let text = format!("{n}\n");
                let _ = write_small_file(&layout.budget(), text.as_bytes());
            }
            Some(n)
        }
        None => remembered,
    }
}

/// Creates `<dir>/v1` and checks that a file can be created in it.
fn prepare_dir(layout: &Layout) -> Result<()> {
    let base = layout.base();
    fs::create_dir_all(base).map_err(|e| Error::io("create", base, e))?;
    let (probe, file) = npy::create_temp(base, "probe")?;
    drop(file);
    let _ = fs::remove_file(probe);
    // In `v1`, not in the user's directory: the tag makes backup tools skip
    // its whole directory, which must hold nothing but the cache.
    let tag = base.join("CACHEDIR.TAG");
    if !tag.exists() {
        let _ = write_small_file(
            &tag,
            b"Signature: 8a477f597d28d172789f06886806bc55\n\
              # This directory is an ndcache cache; see https://bford.info/cachedir/\n",
        );
    }
    Ok(())
}

/// Writes a small file through a temporary name.
fn write_small_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = layout::temp_path(dir, &stem);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The state shared with the writer thread.
pub(crate) struct Inner {
    layout: Layout,
    max_bytes: Option<u64>,
    writable: bool,
    index: Mutex<Index>,
    /// Serializes budget enforcement within the process.
    evicting: Mutex<()>,
    counters: Counters,
    warned: AtomicBool,
    /// Why the directory is not writable, if it is not.
    open_error: Option<Error>,
    /// Signs and checks entries, when there is a secret.
    signer: Option<crate::sign::Signer>,
}

impl Inner {
    fn index(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }

    /// Prints one warning per tier, naming the directory and the OS error:
    /// `ndcache: warning: the disk cache /x is not writable (Permission
    /// denied (os error 13)); results will not be saved there`.
    fn warn(&self, e: Option<&Error>, what: &str, consequence: &str) {
        if self.warned.swap(true, Ordering::Relaxed) {
            return;
        }
        let cause = match e {
            Some(Error::Io { source, .. }) => format!(" ({source})"),
            Some(other) => format!(" ({other})"),
            None => String::new(),
        };
        eprintln!(
            "ndcache: warning: the disk cache {} {what}{cause}; {consequence}",
            self.layout.root().display()
        );
    }

    /// Writes one queued entry, then releases its lock, then enforces the
    /// budget. Returns whether the entry is in place.
    fn store(&self, job: Job) -> bool {
        let Job {
            key,
            value,
            info,
            lock,
        } = job;
        let result = if self.writable {
            self.write_entry(key, &value, &info)
        } else {
            Err(self
                .open_error
                .clone()
                .unwrap_or_else(|| Error::Config("the disk cache is read-only".into())))
        };
        drop(lock);
        match result {
            Ok(Written::New { bytes, at }) => {
                Counters::bump(&self.counters.writes);
                let slot = Slot {
                    bytes,
                    last_access: at,
                };
                self.index().insert(key, slot);
                self.enforce_budget();
                true
            }
            Ok(Written::Exists) => true,
            Ok(Written::TooBig) => {
                Counters::bump(&self.counters.rejected);
                false
            }
            Err(e) => {
                Counters::bump(&self.counters.write_failures);
                self.warn(
                    Some(&e),
                    "could not be written",
                    "further write failures are only counted",
                );
                false
            }
        }
    }

    fn write_failed_panic(&self) {
        Counters::bump(&self.counters.write_failures);
        self.warn(
            None,
            "could not be written (the writer panicked)",
            "further write failures are only counted",
        );
    }

    /// Evicts least recently used entries until the budget holds, after
    /// rescanning the directory if one is due ([`Index::needs_rescan`]).
    fn enforce_budget(&self) {
        let Some(max) = self.max_bytes else { return };
        let _g = lock(&self.evicting);
        if self.index().needs_rescan(max) {
            let _ = self.rescan();
        }
        if self.index().total() <= max {
            return;
        }
        self.evict_to(max, &mut |_| {});
    }

    /// Rebuilds the index from the directory, removing stale temporary files.
    fn rescan(&self) -> Result<()> {
        let scan =
            layout::scan(&self.layout).map_err(|e| Error::io("list", self.layout.base(), e))?;
        if self.writable {
            self.remove_stale(&scan, false);
        }
        *self.index() = Index::from_scan(&scan);
        Ok(())
    }
}

/// A directory of cached results as `.npy` files, shared by threads and
/// processes. See the [module docs](self).
///
/// # Thread safety
///
/// `DiskTier` is `Send + Sync`; every method takes `&self`. Lookups run in
/// the calling thread; writes run on one background thread (unless
/// disabled), so [`flush`](Self::flush) before expecting another process to
/// see them. Dropping the tier flushes.
pub struct DiskTier {
    inner: Arc<Inner>,
    writer: Writer,
    computing: once::Computing,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier")
            .field("dir", &self.inner.layout.root())
            .field("max_bytes", &self.inner.max_bytes)
            .field("writable", &self.inner.writable)
            .finish_non_exhaustive()
    }
}

impl DiskTier {
    /// Opens (creating if needed) the cache in `dir`, with an optional byte
    /// budget, writing in the background. See [`DiskTier::builder`] for more options.
    pub fn open(dir: impl AsRef<Path>, max_bytes: Option<u64>) -> Result<DiskTier> {
        let mut b = DiskTier::builder(dir);
        b.max_bytes = max_bytes;
        b.build()
    }

    /// Options for opening the cache in `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> DiskTierBuilder {
        DiskTierBuilder {
            dir: dir.as_ref().to_path_buf(),
            max_bytes: None,
            background: true,
            require_writable: false,
            create: true,
            read_only: false,
            secret: None,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        self.inner.layout.root()
    }

    /// Where the `.npy` payload of `key` is (or would be) stored: a plain
    /// file numpy can load.
    pub fn payload_path(&self, key: Fingerprint) -> PathBuf {
        self.inner.layout.payload(key)
    }

    /// The byte budget, if any.
    pub fn max_bytes(&self) -> Option<u64> {
        self.inner.max_bytes
    }

    /// Whether the directory accepted writes when the tier was opened.
    pub fn is_writable(&self) -> bool {
        self.inner.writable
    }

    /// The cached result of `key` and its metadata, verified; `None` if there
    /// is none or it is damaged (then it is removed and counted).
    ///
    /// A hit refreshes the entry's last-access time.
    pub fn get(&self, key: Fingerprint) -> Option<(AnyArray, EntryMeta)> {
        let c = &self.inner.counters;
        match self.inner.load(key, true) {
            Ok(loaded) => {
                let now = SystemTime::now();
                // Not the owner of the file (another user's cache)? Then the
                // entry just ages as if unused.
                let _ = loaded.sidecar.set_modified(now);
                let bytes = loaded.meta.payload_bytes + loaded.sidecar_len;
                self.inner.index().hit(key, bytes, now);
                Counters::bump(&c.hits);
                loaded.array.map(|a| (a, loaded.meta))
            }
            Err(miss) => {
                Counters::bump(&c.misses);
                match miss {
                    Miss::Corrupt(_) => {
                        Counters::bump(&c.corrupt);
                        self.inner.remove_files(key);
                    }
                    Miss::Forged(_) => {
                        Counters::bump(&c.forged);
                        self.inner.remove_files(key);
                    }
                    Miss::Absent => {
                        // A payload without its sidecar that no process is
                        // writing (no one holds the key's lock): an orphan.
                        if self.inner.layout.payload(key).exists() && self.inner.remove_orphan(key)
                        {
                            Counters::bump(&c.corrupt);
                        }
                    }
                    Miss::Io(_) => {}
                }
                None
            }
        }
    }

    /// Whether a complete entry for `key` is present (not verified).
    pub fn contains_key(&self, key: Fingerprint) -> bool {
        self.inner.layout.sidecar(key).exists() && self.inner.layout.payload(key).exists()
    }

    /// Stores `value` as the result of `key`, releasing `lock` (if given)
    /// once the entry is in place.
    ///
    /// Returns at once when writing in the background. Never fails: a write
    /// that fails (read-only or full disk) is counted in
    /// [`DiskStats::write_failures`] and reported once on standard error. An
    /// entry already present is left as it is (entries are immutable), and
    /// a result larger than the whole budget is not written
    /// ([`DiskStats::rejected`]).
    pub fn put(&self, key: Fingerprint, value: &AnyArray, info: EntryInfo, lock: Option<KeyLock>) {
        let job = Job {
            key,
            value: value.clone(),
            info,
            lock,
        };
        let _ = self.writer.submit(&self.inner, job);
    }

    /// [`put`](Self::put) without a lock and without ever waiting: `false`
    /// when the background queue is full (nothing is written then).
    pub(crate) fn try_put(&self, key: Fingerprint, value: &AnyArray, info: EntryInfo) -> bool {
        let job = Job {
            key,
            value: value.clone(),
            info,
            lock: None,
        };
        self.writer.try_submit(&self.inner, job)
    }

    /// Waits until every entry handed to [`put`](Self::put) is written (or
    /// has failed).
    pub fn flush(&self) {
        self.writer.flush();
    }

    /// Takes the lock of `key`, waiting while another thread or process
    /// holds it. Dropping the guard releases it.
    ///
    /// Like a mutex, it is not reentrant: a thread that locks a key it
    /// already holds waits forever.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the lock file cannot be created (a read-only
    /// directory): the caller should then compute without the lock.
    pub fn lock(&self, key: Fingerprint) -> Result<KeyLock> {
        lock::lock(&self.inner.layout.lock(key), key)
    }

    /// Takes the lock of `key` if no one holds it.
    pub fn try_lock(&self, key: Fingerprint) -> Result<Option<KeyLock>> {
        lock::acquire(&self.inner.layout.lock(key), key, false)
    }

    /// Removes the entry of `key`; returns whether there was one.
    pub fn remove(&self, key: Fingerprint) -> bool {
        self.inner.remove_files(key)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> DiskStats {
        let (entries, bytes) = {
            let idx = self.inner.index();
            (idx.len(), idx.total())
        };
        DiskStats::from_counters(
            &self.inner.counters,
            entries,
            bytes,
            self.inner.max_bytes,
            self.inner.writable,
        )
    }
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        self.writer.shutdown();
    }
}
