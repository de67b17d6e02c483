//! The disk tier: small results packed in SQLite, large ones as plain `.npy`
//! files, all verified.
//!
//! A [`DiskTier`] keeps results in a directory shared safely by several
//! processes:
//!
//! - **Small results packed, large ones plain files.** A result whose `.npy`
//!   bytes are at most [`DEFAULT_SMALL_MAX_BYTES`] (64 KiB) is a row of one
//!   SQLite database in WAL mode (the `store.rs` module docs say why and
//!   how); a larger one is a `.npy` file that numpy can read (`np.load(path)`
//!   with the default `allow_pickle=False`) and a sidecar. `ndcache export
//!   KEY --out F.npy` ([`DiskTier::export`]) writes either kind as a `.npy`
//!   file.
//! - **No pickle, ever.** Payloads are `.npy` bytes of `float32`, `float64`,
//!   `int32` or `int64`; metadata is a strictly parsed record: text in a
//!   large entry's sidecar file (format in [`EntryMeta`]), a compact binary
//!   record in a small entry's row (format in the `row_meta.rs` docs).
//! - **Verified on every load.** The metadata records the xxh3-128 of the
//!   whole `.npy` payload; a corrupt, truncated, half-written or orphan entry
//!   is a miss, is removed and is counted ([`DiskStats::corrupt`]).
//! - **Atomic writes, off the miss path.** [`DiskTier::put`] queues the
//!   result for a background thread (by default) that writes queued entries
//!   in batches: small ones in one SQLite transaction, large ones as
//!   temporary files renamed into place, payload first and sidecar last, then
//!   their index rows. Nothing waits for `fsync`: a crash loses at most the
//!   entries being written, and verification catches anything torn.
//! - **A byte budget that means disk, enforced on every write**, least
//!   recently used first. An entry counts what it occupies: a large entry
//!   its two files rounded up to whole file-system blocks, a small one its
//!   row's bytes plus a measured per-row overhead. The count is kept in the
//!   store, in the same transactions as the entries, so every process sees
//!   the same total and eviction needs no directory scan. Outside the count
//!   (a fixed overhead, see [below](self#what-the-budget-does-not-count)):
//!   the write-ahead log, SQLite's shared-memory file, the small files and
//!   the directories. A hit records the entry's last-access time in the
//!   store (in batches, see the `store.rs` docs), shared by every process
//!   and kept across restarts.
//! - **Instant reopen.** Opening reads no entry: the store is the index. A
//!   store that is missing (deleted) or damaged is recreated, and the large
//!   entries' files are indexed again by a scan in a background thread.
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
//! <dir>/v2/entries.db             SQLite: small entries, the index, the totals
//! <dir>/v2/entries.db-wal, -shm   SQLite's write-ahead log and shared memory
//! <dir>/v2/<ab>/<key>.npy         a large result (a plain .npy file)
//! <dir>/v2/<ab>/<key>.meta        its sidecar; present means complete
//! <dir>/v2/locks/<key>.lock       while a process computes the key
//! <dir>/v2/budget                 the remembered byte budget, if one was set
//! <dir>/v2/CACHEDIR.TAG           tells backup tools to skip the cache
//! ```
//!
//! # Earlier layouts
//!
//! The layout version is the directory's name. A directory written by an
//! earlier version (`<dir>/v1/`, two files per entry in 65,536 fan-out
//! directories) is never read: its entries are misses, recomputed into
//! `v2/`. It is left in place (it may be in use by an older program);
//! [`DiskTier::old_layouts`] and `ndcache stats` name it, and removing it
//! (`rm -r <dir>/v1`) is safe once no older program uses it.
//!
//! # What the budget does not count
//!
//! Besides the entries' bytes, the directory holds: `entries.db`'s first
//! pages (schema, totals, the access log: a few KiB, the log at most about
//! 0.5 MiB), the write-ahead log (up to about 4 MiB between SQLite's
//! automatic checkpoints, cut to 1 MiB after them, and emptied by
//! [`DiskTier::gc`]), the shared-memory file (32 KiB, growing with the
//! log while a connection is open), `keylocks`, `budget` and
//! `CACHEDIR.TAG` (a block each), and the directories (a block each: `v2`,
//! `locks`, and at most 256 fan-out directories, removed by `gc` once
//! empty).
//!
//! `gc` checks the store's real files, not only its count: it rewrites a
//! store whose pages were left sparse by removals (`VACUUM`), empties the
//! write-ahead log, closes its idle connections (so that the last one out
//! removes the log and the shared memory), and if the store's files still
//! take more than its small entries count plus 128 KiB, removes more
//! entries. So after `gc --max-bytes B`, `du` of the cache is at most B
//! plus 128 KiB (the store's fixed part) plus a block each for `v2`,
//! `keylocks`, `budget`, `CACHEDIR.TAG` and each fan-out directory still
//! holding large entries (and while another process has the store open,
//! its shared memory and write-ahead log).
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
mod layout;
mod lock;
mod maint;
mod meta;
pub(crate) mod npy;
mod once;
mod row_meta;
mod stats;
mod store;
mod writer;

#[cfg(test)]
mod tests;

pub use lock::KeyLock;
pub use maint::{DiskEntry, EntryProblem, GcReport, Progress, RemovedEntry, VerifyReport};
pub use meta::{EntryInfo, EntryMeta};
pub use npy::{read_npy, write_npy_atomic};
pub use once::Fetched;
pub use stats::DiskStats;
pub use store::{DEFAULT_ACCESS_GRANULARITY, DEFAULT_SMALL_MAX_BYTES};
pub use writer::MAX_PENDING_BYTES;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::key::Fingerprint;
use crate::sync::lock;
use crate::value::AnyArray;
use entry::{Miss, Written};
use layout::Layout;
use stats::Counters;
use store::{NewRow, OpenError, Store};
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
    small_max_bytes: u64,
    granularity: std::time::Duration,
}

impl DiskTierBuilder {
    /// A hit records its time as the entry's last access only if the
    /// recorded one is older than `d` (default
    /// [`DEFAULT_ACCESS_GRANULARITY`], one minute, like `relatime`):
    /// recording appends to the store's access log, folded into the rows
    /// (a random page write each) before evictions. `Duration::ZERO`
    /// records every hit (exact least-recently-used order, more writes).
    pub fn access_granularity(mut self, d: std::time::Duration) -> Self {
        self.granularity = d;
        self
    }

    /// Results whose `.npy` bytes are at most `n` are stored in the SQLite
    /// store; larger ones as `.npy` files (default
    /// [`DEFAULT_SMALL_MAX_BYTES`]; 0 puts every result in files). Only
    /// where new entries go depends on it: a tier reads both kinds.
    pub fn small_max_bytes(mut self, n: u64) -> Self {
        self.small_max_bytes = n;
        self
    }

    /// Signs the entries written and accepts only entries signed with the
    /// same secret (an empty secret turns signing off). Without this, the
    /// secret is `$NDCACHE_SECRET` if that is set and not empty.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Bounds the bytes on disk (entries as they occupy the disk: see the
    /// [module docs](self)); least recently used entries are removed on
    /// every write that goes over.
    ///
    /// The directory remembers the budget (in `<dir>/v2/budget`): a tier
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

    /// Whether to create the cache when `<dir>/v2` does not exist (the
    /// default). With `false`, opening a directory that is not a cache is an
    /// error instead.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Opens an existing cache to inspect it: opening, [`DiskTier::entries`],
    /// [`DiskTier::stats`] and [`DiskTier::verify`] without repair then
    /// create, write and remove nothing in the directory (no `v2/`, no probe
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
    /// writable, remembers or recalls the budget, and opens the store
    /// (reading no entry; see the [module docs](self) for a missing or
    /// damaged store).
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
            let why = match layout.old_layouts().first() {
                Some(old) => format!(
                    "it is not an ndcache cache of this version (no {}/ directory; \
                     {} is an earlier layout, which this version does not read)",
                    layout::LAYOUT_DIR,
                    old.display()
                ),
                None => format!(
                    "it is not an ndcache cache (no {}/ directory)",
                    layout::LAYOUT_DIR
                ),
            };
            return Err(Error::io(
                "open the cache",
                layout.root(),
                std::io::Error::new(std::io::ErrorKind::NotFound, why),
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
        let writable = open_error.is_none();
        let max_bytes = budget(&layout, self.max_bytes, writable);
        let (store, reindex) = open_store(&layout, writable, self.granularity);
        let inner = Arc::new(Inner {
            block: layout::block_size(layout.base()),
            layout,
            max_bytes,
            writable,
            store,
            small_max_bytes: self.small_max_bytes,
            evicting: Mutex::new(()),
            counters: Counters::default(),
            // A read-only tier fails its writes on purpose: no warning.
            warned: AtomicBool::new(self.read_only),
            open_error,
            signer: crate::sign::Signer::from_option_or_env(self.secret.as_deref()),
            lock_handles: Arc::default(),
        });
        if let (Some(e), false) = (&inner.open_error, self.read_only) {
            inner.warn(
                Some(e),
                "is not writable",
                "results will not be saved there",
            );
        }
        let reindexing = reindex.then(|| {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("ndcache-disk-reindex".into())
                .spawn(move || {
                    let _ = inner.reindex();
                })
                .ok()
        });
        Ok(DiskTier {
            writer: Writer::new(self.background),
            inner,
            computing: Default::default(),
            reindexing: Mutex::new(reindexing.flatten()),
        })
    }
}

/// Opens the store of a writable cache (creating it), or of a read-only one
/// if it exists. A damaged store is renamed aside (with a warning) and
/// recreated, and one of an earlier schema replaced. The flag says whether
/// the large entries' files must be indexed again: the store's tables are
/// new and the directory has fan-out directories.
fn open_store(
    layout: &Layout,
    writable: bool,
    granularity: std::time::Duration,
) -> (Option<Store>, bool) {
    let path = layout.store();
    if !writable {
        let store = Store::open(&path, true, granularity).ok().map(|s| s.0);
        return (store.filter(|_| path.exists()), false);
    }
    let (store, created) = match Store::open(&path, false, granularity) {
        Ok((s, created)) => (Some(s), created),
        Err(OpenError::Damaged(e)) => {
            let aside = path.with_extension(format!("db.damaged-{}", std::process::id()));
            eprintln!(
                "ndcache: warning: {e} (the store is damaged); moving it to {} and starting \
                 a new one (its small entries are lost, large ones are indexed again)",
                aside.display()
            );
            let _ = fs::rename(&path, &aside);
            for ext in ["db-wal", "db-shm"] {
                let _ = fs::remove_file(path.with_extension(ext));
            }
            let store = Store::open(&path, false, granularity).ok().map(|s| s.0);
            return (store, layout::has_fan_dirs(layout.base()));
        }
        Err(OpenError::Other(e)) => {
            eprintln!("ndcache: warning: {e}; the disk cache will hold no small entries");
            (None, false)
        }
    };
    (store, created && layout::has_fan_dirs(layout.base()))
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

/// Creates `<dir>/v2` and checks that a file can be created in it.
fn prepare_dir(layout: &Layout) -> Result<()> {
    let base = layout.base();
    fs::create_dir_all(base).map_err(|e| Error::io("create", base, e))?;
    let (probe, file) = npy::create_temp(base, "probe")?;
    drop(file);
    let _ = fs::remove_file(probe);
    // In `v2`, not in the user's directory: the tag makes backup tools skip
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
    /// The SQLite store (small entries, the index); `None` if it cannot be
    /// opened (an unusable directory): then only large entries' files are
    /// read, and only large entries written.
    store: Option<Store>,
    /// Results up to this many `.npy` bytes go to the store.
    small_max_bytes: u64,
    /// The file system's block size.
    block: u64,
    /// Serializes budget enforcement within the process.
    evicting: Mutex<()>,
    counters: Counters,
    warned: AtomicBool,
    /// Why the directory is not writable, if it is not.
    open_error: Option<Error>,
    /// Signs and checks entries, when there is a secret.
    signer: Option<crate::sign::Signer>,
    /// Idle handles of the key-lock file (see `lock.rs`).
    lock_handles: Arc<lock::Handles>,
}

impl Inner {
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

    /// Writes queued entries (small ones in one transaction), then releases
    /// their locks, then enforces the budget. Returns, per job, whether its
    /// entry is in place.
    fn store(&self, jobs: Vec<Job>) -> Vec<bool> {
        let mut done = vec![false; jobs.len()];
        let mut rows = Vec::new();
        let mut row_job = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let result = if self.writable {
                self.write_entry(job.key, &job.value, &job.info, job.lock.is_some())
            } else {
                Err(self
                    .open_error
                    .clone()
                    .unwrap_or_else(|| Error::Config("the disk cache is read-only".into())))
            };
            match result {
                Ok(Written::New(row)) => {
                    rows.push(row);
                    row_job.push(i);
                }
                Ok(Written::Exists) => done[i] = true,
                Ok(Written::TooBig) => Counters::bump(&self.counters.rejected),
                Err(e) => self.write_failed(&e),
            }
        }
        if !rows.is_empty() {
            match self.store.as_ref().map(|s| s.insert(&rows)) {
                Some(Ok(inserted)) => {
                    for (&i, new) in row_job.iter().zip(inserted) {
                        if new {
                            Counters::bump(&self.counters.writes);
                        }
                        done[i] = true;
                    }
                }
                // No store: only large entries were written, complete in
                // their files (indexed when a lookup or `gc` finds them).
                None => {
                    for &i in &row_job {
                        Counters::bump(&self.counters.writes);
                        done[i] = true;
                    }
                }
                Some(Err(e)) => {
                    for (&i, row) in row_job.iter().zip(&rows) {
                        if row.small.is_none() {
                            Counters::bump(&self.counters.writes);
                            done[i] = true;
                        } else {
                            self.write_failed(&e);
                        }
                    }
                }
            }
        }
        // Unlocks: the entries are in place (or failed).
        drop(jobs);
        self.enforce_budget();
        done
    }

    fn write_failed(&self, e: &Error) {
        Counters::bump(&self.counters.write_failures);
        self.warn(
            Some(e),
            "could not be written",
            "further write failures are only counted",
        );
    }

    fn write_failed_panic(&self) {
        Counters::bump(&self.counters.write_failures);
        self.warn(
            None,
            "could not be written (the writer panicked)",
            "further write failures are only counted",
        );
    }

    /// Evicts least recently used entries until the budget holds.
    fn enforce_budget(&self) {
        let (Some(max), Some(store)) = (self.max_bytes, &self.store) else {
            return;
        };
        let _g = lock(&self.evicting);
        if store.totals().is_ok_and(|(_, bytes)| bytes > max) {
            self.evict_to(max, &mut |_| {});
        }
    }

    /// Indexes every complete large entry whose files have no row (after
    /// the store was recreated, or a crash between a sidecar's rename and
    /// its row), and removes temporary files of dead writers. Returns how
    /// many entries were indexed.
    fn reindex(&self) -> Result<u64> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let scan =
            layout::scan(&self.layout).map_err(|e| Error::io("list", self.layout.base(), e))?;
        if self.writable {
            self.remove_stale(&scan, false);
        }
        let rows: Vec<NewRow> = scan
            .keys
            .iter()
            .filter_map(|(&key, found)| {
                let sidecar = found.sidecar.filter(|_| found.payload.is_some())?;
                Some(NewRow {
                    key,
                    atime: sidecar.mtime,
                    bytes: found.bytes(self.block),
                    small: None,
                })
            })
            .collect();
        let inserted = store.insert(&rows)?;
        Ok(inserted.into_iter().filter(|&b| b).count() as u64)
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
    /// The background indexing of a recreated store, until it is joined.
    reindexing: Mutex<Option<JoinHandle<()>>>,
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
            small_max_bytes: DEFAULT_SMALL_MAX_BYTES,
            granularity: DEFAULT_ACCESS_GRANULARITY,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        self.inner.layout.root()
    }

    /// Where the `.npy` payload of `key` is (or would be) stored if it is a
    /// large entry: a plain file numpy can load. A small entry is in the
    /// store: [`export`](Self::export) writes either kind as a `.npy` file.
    pub fn payload_path(&self, key: Fingerprint) -> PathBuf {
        self.inner.layout.payload(key)
    }

    /// Writes the entry of `key`, verified, to `out` as a `.npy` file
    /// (atomically: through a temporary file and a rename); returns its
    /// metadata, or `None` if there is no such entry (or it is damaged:
    /// then it is removed and counted, as by [`get`](Self::get)).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `out` if it cannot be written.
    pub fn export(&self, key: Fingerprint, out: impl AsRef<Path>) -> Result<Option<EntryMeta>> {
        self.flush();
        match self.get(key) {
            Some((array, meta)) => {
                write_npy_atomic(out, &array)?;
                Ok(Some(meta))
            }
            None => Ok(None),
        }
    }

    /// Directories of earlier layout versions under the cache directory,
    /// which this version never reads (see [Earlier layouts](self#earlier-layouts)).
    pub fn old_layouts(&self) -> Vec<PathBuf> {
        self.inner.layout.old_layouts()
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
        self.get_from(key, true)
    }

    /// [`get`](Self::get); with `!unindexed`, only what the store indexes
    /// (fewer system calls on a miss; see [`Inner::load`]).
    pub(crate) fn get_from(
        &self,
        key: Fingerprint,
        unindexed: bool,
    ) -> Option<(AnyArray, EntryMeta)> {
        let c = &self.inner.counters;
        match self.inner.load(key, true, unindexed) {
            Ok(loaded) => {
                let now = SystemTime::now();
                if let Some(store) = &self.inner.store {
                    if let Some(last) = loaded.indexed {
                        store.touch(key, last, now);
                    } else if self.inner.writable {
                        // A large entry without its row: index it.
                        let row = NewRow {
                            key,
                            atime: now,
                            bytes: loaded.bytes,
                            small: None,
                        };
                        let _ = store.insert(&[row]);
                    }
                }
                Counters::bump(&c.hits);
                loaded.array.map(|a| (a, loaded.meta))
            }
            Err(miss) => {
                Counters::bump(&c.misses);
                match &miss {
                    Miss::Corrupt(_) => {
                        Counters::bump(&c.corrupt);
                        self.inner.remove_files(key);
                    }
                    Miss::Forged(_) => {
                        Counters::bump(&c.forged);
                        self.inner.remove_files(key);
                    }
                    Miss::Stale | Miss::Absent => {
                        if let (Miss::Stale, Some(store)) = (&miss, &self.inner.store) {
                            let _ = store.remove(key);
                        }
                        // A payload without its sidecar that no process is
                        // writing (no one holds the key's lock): an orphan.
                        // (Without `unindexed`, only if the row named files.)
                        if (unindexed || matches!(miss, Miss::Stale))
                            && self.inner.layout.payload(key).exists()
                            && self.inner.remove_orphan(key)
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
        let indexed = self
            .inner
            .store
            .as_ref()
            .is_some_and(|s| s.contains(key).unwrap_or(false));
        indexed
            || (self.inner.layout.sidecar(key).exists() && self.inner.layout.payload(key).exists())
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
    /// has failed), the buffered access times of hits too, and the
    /// background indexing of a recreated store, if one runs.
    pub fn flush(&self) {
        self.writer.flush();
        if let Some(h) = lock(&self.reindexing).take() {
            let _ = h.join();
        }
        if let Some(store) = &self.inner.store {
            store.write_touches();
        }
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
        lock::lock(
            &self.inner.layout.lock(key),
            key,
            Some(&self.inner.lock_handles),
        )
    }

    /// Takes the lock of `key` if no one holds it.
    pub fn try_lock(&self, key: Fingerprint) -> Result<Option<KeyLock>> {
        lock::acquire_with(
            &self.inner.layout.lock(key),
            key,
            false,
            Some(&self.inner.lock_handles),
        )
    }

    /// Removes the entry of `key`; returns whether there was one.
    pub fn remove(&self, key: Fingerprint) -> bool {
        self.inner.remove_files(key)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> DiskStats {
        let (entries, bytes) = self
            .inner
            .store
            .as_ref()
            .and_then(|s| s.totals().ok())
            .unwrap_or_default();
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
        if let Some(h) = lock(&self.reindexing).take() {
            let _ = h.join();
        }
    }
}
