//! Counters of the disk tier and their snapshot.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Event counters, `Relaxed` atomics: they are statistics, not synchronization.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub corrupt: AtomicU64,
    pub forged: AtomicU64,
    pub writes: AtomicU64,
    pub write_failures: AtomicU64,
    pub evictions: AtomicU64,
    pub rejected: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// A snapshot of a disk tier's statistics.
///
/// `entries` and `bytes` come from the tier's index: they include what this
/// process wrote and what the last scan of the directory found; entries
/// written by other processes since then are counted at the next scan.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskStats {
    /// Complete entries (payload and sidecar) known to the index.
    pub entries: u64,
    /// Their bytes on disk, payload and sidecar.
    pub bytes: u64,
    /// The byte budget, if any.
    pub max_bytes: Option<u64>,
    /// Lookups served from disk.
    pub hits: u64,
    /// Lookups not served (including corrupt entries).
    pub misses: u64,
    /// Corrupt, truncated or orphan entries found by lookups and removed.
    pub corrupt: u64,
    /// Entries refused because entries are signed and theirs was missing or
    /// wrong (removed, like corrupt ones).
    pub forged: u64,
    /// Entries written.
    pub writes: u64,
    /// Writes that failed (read-only or full disk...).
    pub write_failures: u64,
    /// Entries removed to respect the budget.
    pub evictions: u64,
    /// Results not written because they alone exceed the budget.
    pub rejected: u64,
    /// Whether the directory accepts writes (checked when the tier was opened).
    pub writable: bool,
}

impl DiskStats {
    pub(crate) fn from_counters(
        c: &Counters,
        entries: u64,
        bytes: u64,
        max_bytes: Option<u64>,
        writable: bool,
    ) -> Self {
        DiskStats {
            entries,
            bytes,
            max_bytes,
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            corrupt: c.corrupt.load(Relaxed),
            forged: c.forged.load(Relaxed),
            writes: c.writes.load(Relaxed),
            write_failures: c.write_failures.load(Relaxed),
            evictions: c.evictions.load(Relaxed),
            rejected: c.rejected.load(Relaxed),
            writable,
        }
    }

    /// `hits / (hits + misses)`, or 0 when there were no lookups.
    pub fn hit_rate(&self) -> f64 {
        crate::sync::ratio(self.hits, self.misses)
    }
}

impl fmt::Display for DiskStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entries={} bytes={} max_bytes={} hits={} misses={} corrupt={} forged={} writes={} \
             write_failures={} evictions={} rejected={} writable={}",
            self.entries,
            self.bytes,
            crate::memory::OptFmt(self.max_bytes),
            self.hits,
            self.misses,
            self.corrupt,
            self.forged,
            self.writes,
            self.write_failures,
            self.evictions,
            self.rejected,
            self.writable,
        )
    }
}
