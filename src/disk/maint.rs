//! Maintenance: listing, verification, garbage collection, clearing.
//!
//! Each operation first waits for this tier's pending writes, then works
//! from the store (every process's entries) and a fresh scan of the large
//! entries' files.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::time::SystemTime;

use super::entry::{is_older, Miss, ORPHAN_GRACE, TEMP_GRACE};
use super::layout::{self, Found, Scan};
use super::lock::{acquire, is_held, remove_if_unlocked};
use super::meta::{EntryMeta, MAX_SIDECAR_BYTES};
use super::stats::Counters;
use super::store::Row;
use super::{DiskTier, Inner};
use crate::error::{Error, Result};
use crate::key::Fingerprint;
use crate::sync::lock;

/// One entry, as listed by [`DiskTier::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskEntry {
    /// The sidecar's record.
    pub meta: EntryMeta,
    /// Bytes on disk, payload and sidecar.
    pub bytes: u64,
    /// When a lookup last used it (or when it was written).
    pub last_access: SystemTime,
}

/// How far a long operation has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Units done so far.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// A damaged or unreadable entry found by [`DiskTier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryProblem {
    /// The entry's key.
    pub key: Fingerprint,
    /// What is wrong.
    pub reason: String,
    /// Whether its files were removed.
    pub removed: bool,
}

/// What [`DiskTier::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Entries whose payload matches its sidecar and checksum.
    pub ok: u64,
    /// Corrupt, truncated, half-written or orphan entries.
    pub corrupt: Vec<EntryProblem>,
    /// Entries that could not be read (permissions...); never removed.
    pub unreadable: Vec<EntryProblem>,
    /// Payloads without a sidecar whose key a process has locked: writes
    /// in progress. (Without the lock, such a payload is an orphan, in
    /// `corrupt`.)
    pub in_progress: u64,
}

/// An entry removed by [`DiskTier::gc`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedEntry {
    /// The entry's key.
    pub key: Fingerprint,
    /// Bytes freed, payload and sidecar.
    pub bytes: u64,
    /// When it was last used.
    pub last_access: SystemTime,
}

/// What [`DiskTier::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Entries removed, least recently used first.
    pub removed: Vec<RemovedEntry>,
    /// Bytes of entries left.
    pub remaining_bytes: u64,
    /// Leftovers removed: temporary files of dead writers, orphan payloads,
    /// unlocked lock files.
    pub stale_files: u64,
}

impl GcReport {
    /// Bytes freed by removing entries.
    pub fn freed_bytes(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

impl DiskTier {
    /// Every complete entry, by key: the store's rows and the large
    /// entries' files (indexed or not). Entries whose metadata cannot be
    /// parsed are left out (see [`verify`](Self::verify)).
    pub fn entries(&self) -> Result<Vec<DiskEntry>> {
        self.flush();
        let scan = self.scan()?;
        let inner = &self.inner;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if let Some(store) = &inner.store {
            store.for_each(false, |row| {
                let meta = match &row.row {
                    Row::Small { meta, .. } => {
                        super::row_meta::decode(row.key, meta).ok().map(|m| m.0)
                    }
                    Row::File => {
                        seen.insert(row.key);
                        read_sidecar(inner, row.key)
                    }
                    Row::Damaged => None,
                };
                if let Some(meta) = meta.filter(|m| m.key == row.key) {
                    out.push(DiskEntry {
                        meta,
                        bytes: row.bytes,
                        last_access: row.atime,
                    });
                }
            })?;
        }
        for (&key, found) in &scan.keys {
            let (true, Some(s)) = (found.is_complete() && !seen.contains(&key), found.sidecar)
            else {
                continue;
            };
            if let Some(meta) = read_sidecar(inner, key).filter(|m| m.key == key) {
                out.push(DiskEntry {
                    meta,
                    bytes: found.bytes(inner.block),
                    last_access: s.mtime,
                });
            }
        }
        out.sort_by_key(|e| e.meta.key);
        Ok(out)
    }

    /// Reads and checks every entry; with `repair`, removes the damaged ones.
    ///
    /// A payload without a sidecar is a write in progress while some
    /// process holds its key's lock, else an orphan (damaged). Without
    /// `repair`, nothing in the directory is created or changed.
    ///
    /// `progress` is called after each entry, counting entries.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be listed, or if `repair` is
    /// asked of a directory that is not writable.
    pub fn verify(&self, repair: bool, mut progress: impl FnMut(Progress)) -> Result<VerifyReport> {
        if repair {
            self.check_writable()?;
        }
        self.flush();
        let scan = self.scan()?;
        let inner = &self.inner;
        let mut report = VerifyReport::default();
        let mut problems: Vec<(Fingerprint, String, bool)> = Vec::new();
        // Large entries: those indexed and those found on disk.
        let mut files: BTreeMap<Fingerprint, Found> = scan.keys.into_iter().collect();
        let mut done = 0;
        let total = inner.store.as_ref().map_or(Ok((0, 0)), |s| s.totals())?.0;
        if let Some(store) = &inner.store {
            store.for_each(true, |row| {
                match row.row {
                    Row::Small { meta, data } => {
                        match inner.load_small(row.key, &meta, data, false) {
                            Ok(_) => report.ok += 1,
                            Err(miss) => {
                                if let Some(reason) = problem(row.key, miss, &mut report) {
                                    problems.push((row.key, reason, false));
                                }
                            }
                        }
                    }
                    Row::File => {
                        files.entry(row.key).or_default();
                        return; // counted with the files below
                    }
                    Row::Damaged => problems.push((
                        row.key,
                        "the store's row is neither a small entry nor an index entry".into(),
                        false,
                    )),
                }
                done += 1;
                progress(Progress {
                    done,
                    total: total.max(done),
                });
            })?;
        }
        let total = done + files.len() as u64;
        for (key, found) in files {
            let problem = match (found.payload, found.sidecar) {
                (Some(p), None) => match inner.payload_state(key, p.mtime) {
                    PayloadState::Orphan => Some(("the sidecar is missing".to_string(), true)),
                    PayloadState::BeingWritten => {
                        report.in_progress += 1;
                        None
                    }
                    // Completed (or removed) since the scan.
                    PayloadState::Complete => inner.check_entry(key, &mut report),
                },
                // Indexed: complete, or gone since the scan.
                _ => inner.check_entry(key, &mut report),
            };
            if let Some((reason, orphan)) = problem {
                problems.push((key, reason, orphan));
            }
            done += 1;
            progress(Progress { done, total });
        }
        for (key, reason, orphan) in problems {
            let removed = repair
                && if orphan {
                    inner.remove_orphan(key)
                } else {
                    inner.remove_files(key)
                };
            report.corrupt.push(EntryProblem {
                key,
                reason,
                removed,
            });
        }
        report.corrupt.sort_by_key(|p| p.key);
        Ok(report)
    }

    /// Removes least recently used entries until at most `max_bytes` are
    /// left, and leftovers of dead writers (temporary files, orphan
    /// payloads, unlocked lock files), then gives the freed space back to
    /// the file system: the store's free pages (rewriting it if its pages
    /// are left sparse), its write-ahead log and shared memory, and the
    /// fan-out directories left empty. Then, if the store's files take
    /// more than its small entries count, removes more entries until they
    /// fit in `max_bytes` too. An orphan payload is one without
    /// a sidecar whose key no process has locked, however young.
    ///
    /// `progress` is called after each removal, counting bytes to free.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be listed or is not writable.
    pub fn gc(&self, max_bytes: u64, mut progress: impl FnMut(Progress)) -> Result<GcReport> {
        self.check_writable()?;
        self.flush();
        let inner = &self.inner;
        let _g = lock(&inner.evicting);
        let scan = self.scan()?;
        let mut stale_files = inner.remove_stale(&scan, false);
        for (&key, found) in &scan.keys {
            if found.payload.is_some() && found.sidecar.is_none() && inner.remove_orphan(key) {
                Counters::bump(&inner.counters.corrupt);
                stale_files += 1;
            }
        }
        stale_files += scan.locks.iter().filter(|p| remove_if_unlocked(p)).count() as u64;
        // The index agrees with the files: rows of vanished files go, files
        // without rows are indexed.
        if let Some(store) = &inner.store {
            let gone: Vec<Fingerprint> = store
                .file_keys()?
                .into_iter()
                .filter(|k| scan.keys.get(k).is_none_or(|f| !f.is_complete()))
                .collect();
            store.remove_many(&gone)?;
        }
        inner.reindex()?;
        let mut removed = inner.evict_to(max_bytes, &mut progress);
        if let Some(store) = &inner.store {
            // The budget must hold for the store's real files too (pages
            // left partly empty, the write-ahead log, the shared memory):
            // where they exceed the small entries' count and the store's
            // fixed overhead, evict more.
            for round in 0.. {
                let small = store.small_bytes()?;
                store.shrink(small)?;
                let counted = store.totals()?.1;
                let overhead = store
                    .footprint(inner.block)
                    .saturating_sub(small + super::store::STORE_FIXED);
                if counted + overhead <= max_bytes || round == 4 {
                    break;
                }
                let more = inner.evict_to(max_bytes.saturating_sub(overhead), &mut progress);
                if more.is_empty() {
                    break;
                }
                removed.extend(more);
            }
        }
        layout::remove_empty_dirs(&inner.layout);
        Ok(GcReport {
            removed,
            remaining_bytes: self.stats().bytes,
            stale_files,
        })
    }

    /// Removes every entry (and unlocked lock files, and temporary files of
    /// dead writers); returns how many entries were removed.
    ///
    /// Entries other processes write meanwhile may survive.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be listed or is not writable.
    pub fn clear(&self) -> Result<u64> {
        self.check_writable()?;
        self.flush();
        let inner = &self.inner;
        let _g = lock(&inner.evicting);
        let scan = self.scan()?;
        let mut n = 0;
        let mut counted = HashSet::new();
        if let Some(store) = &inner.store {
            for key in store.file_keys()? {
                counted.insert(key);
            }
            n += store.clear()?;
        }
        for (&key, found) in &scan.keys {
            let sc = fs::remove_file(inner.layout.sidecar(key)).is_ok();
            let pl = fs::remove_file(inner.layout.payload(key)).is_ok();
            if found.is_complete() && sc && pl && !counted.contains(&key) {
                n += 1;
            }
        }
        for (path, stat) in &scan.temps {
            if is_older(stat.mtime, TEMP_GRACE) {
                let _ = fs::remove_file(path);
            }
        }
        for path in &scan.locks {
            remove_if_unlocked(path);
        }
        if let Some(store) = &inner.store {
            store.shrink(store.small_bytes()?)?;
        }
        layout::remove_empty_dirs(&inner.layout);
        Ok(n)
    }

    fn check_writable(&self) -> Result<()> {
        match &self.inner.open_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let base = self.inner.layout.base();
        layout::scan(&self.inner.layout).map_err(|e| Error::io("list", base, e))
    }
}

/// Sorts a failed check into `report` (unreadable) or returns what is
/// wrong (damaged); `None` for an entry removed meanwhile.
fn problem(key: Fingerprint, miss: Miss, report: &mut VerifyReport) -> Option<String> {
    match miss {
        Miss::Corrupt(reason) => Some(reason),
        Miss::Forged(reason) => Some(format!("{reason} (signed entries expected)")),
        Miss::Stale => Some("the index names files that are missing".into()),
        Miss::Absent => None,
        Miss::Io(e) => {
            report.unreadable.push(EntryProblem {
                key,
                reason: e.to_string(),
                removed: false,
            });
            None
        }
    }
}

/// The parsed sidecar file of a large entry, if it can be read.
fn read_sidecar(inner: &Inner, key: Fingerprint) -> Option<EntryMeta> {
    read_small(&inner.layout.sidecar(key))
        .ok()
        .and_then(|t| EntryMeta::parse(&t).ok())
}

/// What a payload without a sidecar is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadState {
    /// A process holds the key's lock: a writer between its two renames.
    BeingWritten,
    /// No one holds the key's lock: the writer died between its renames, or
    /// the sidecar was deleted. It will never complete.
    Orphan,
    /// The sidecar is there now (or the payload is gone): not an orphan.
    Complete,
}

impl Inner {
    /// Reads and checks one entry for [`DiskTier::verify`]: counts it as ok
    /// or unreadable in `report`, or returns what is wrong with it.
    fn check_entry(&self, key: Fingerprint, report: &mut VerifyReport) -> Option<(String, bool)> {
        match self.load(key, false, true) {
            Ok(_) => {
                report.ok += 1;
                None
            }
            Err(miss) => problem(key, miss, report).map(|r| (r, false)),
        }
    }

    /// Whether the payload of `key`, found without its sidecar, is a write
    /// in progress or an orphan: a writer holds the key's lock from before
    /// its payload is renamed into place until after its sidecar is, so a
    /// payload whose key no process has locked will never get its sidecar.
    ///
    /// Creates nothing: without a lock file, no one holds the lock (a holder
    /// keeps its file in place until it unlocks; see [`super::lock`]). On a
    /// file system where locks cannot be tested, a payload younger than
    /// [`ORPHAN_GRACE`] counts as being written.
    ///
    /// A writer given no lock ([`DiskTier::put`] without one, the memory
    /// tier's spills) takes it for its two renames (`write_entry`), so its
    /// payload found between them is not taken for an orphan either.
    pub(crate) fn payload_state(&self, key: Fingerprint, mtime: SystemTime) -> PayloadState {
        let held = match is_held(&self.layout.lock(key), key) {
            Some(h) => h,
            None => !is_older(mtime, ORPHAN_GRACE),
        };
        if self.layout.sidecar(key).exists() || !self.layout.payload(key).exists() {
            PayloadState::Complete
        } else if held {
            PayloadState::BeingWritten
        } else {
            PayloadState::Orphan
        }
    }

    /// Removes the payload of `key` if it is an orphan (see
    /// [`payload_state`](Self::payload_state)), holding the key's lock so
    /// that no writer starts meanwhile. Returns whether it was removed.
    /// [`DiskTier::get`](super::DiskTier::get) uses it too, so a call
    /// recomputes an orphan as `verify` reports it.
    pub(crate) fn remove_orphan(&self, key: Fingerprint) -> bool {
        let Ok(Some(guard)) = acquire(&self.layout.lock(key), key, false) else {
            return false; // being written, or a directory we cannot lock in
        };
        let removed =
            !self.layout.sidecar(key).exists() && fs::remove_file(self.layout.payload(key)).is_ok();
        if removed {
            if let Some(store) = &self.store {
                let _ = store.remove(key);
            }
        }
        drop(guard);
        removed
    }

    /// Evicts least recently used entries until the store counts at most
    /// `target` bytes; returns what it removed.
    ///
    /// Access times are the store's, which every process updates (hits in
    /// batches: see the `store.rs` docs).
    pub(crate) fn evict_to(
        &self,
        target: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Vec<RemovedEntry> {
        let mut removed = Vec::new();
        let Some(store) = &self.store else {
            return removed;
        };
        let total = |s: &super::store::Store| s.totals().map_or(0, |t| t.1);
        let need = total(store).saturating_sub(target);
        let mut freed = 0;
        loop {
            let over = total(store).saturating_sub(target);
            if over == 0 {
                break;
            }
            // Every row counts at least ROW_OVERHEAD bytes: never more rows
            // than could be needed, within bounds.
            let rows = (over / super::store::ROW_OVERHEAD).clamp(16, EVICT_BATCH as u64);
            let Ok(oldest) = store.oldest(rows as usize) else {
                break;
            };
            let mut keys = Vec::new();
            let mut batch_freed = 0;
            for (key, bytes, last_access, is_file) in oldest {
                if batch_freed >= over {
                    break;
                }
                if is_file {
                    let _ = fs::remove_file(self.layout.sidecar(key));
                    let _ = fs::remove_file(self.layout.payload(key));
                }
                keys.push(key);
                batch_freed += bytes;
                removed.push(RemovedEntry {
                    key,
                    bytes,
                    last_access,
                });
            }
            // In key order, each page of the table is rewritten once per
            // transaction, however many of its rows go.
            keys.sort_unstable();
            // Another process may have removed some of them meanwhile.
            if keys.is_empty() || store.remove_many(&keys).is_err() {
                break;
            }
            for r in &removed[removed.len() - keys.len()..] {
                Counters::bump(&self.counters.evictions);
                freed += r.bytes;
                progress(Progress {
                    done: freed.min(need),
                    total: need,
                });
            }
        }
        removed
    }
}

/// The most entries evicted per store transaction: removals of rows with
/// random keys rewrite pages all over the table, so the larger the
/// transaction, the fewer times each page is written (`gc` of a million
/// small entries took 108 s in transactions of 256, 65 s of 4096).
const EVICT_BATCH: usize = 1 << 16;

fn read_small(path: &std::path::Path) -> io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    fs::File::open(path)?
        .take(MAX_SIDECAR_BYTES)
        .read_to_string(&mut s)?;
    Ok(s)
}
