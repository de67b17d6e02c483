//! Counters of the memory tier and their snapshot.

use std::fmt;

use super::Policy;

/// Counters kept per shard, under the shard's lock (so a hit touches no
/// cache line shared with other shards).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ShardCounters {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub waits: u64,
    pub rejected: u64,
    pub not_admitted: u64,
}

impl ShardCounters {
    pub(crate) fn add(&mut self, o: &ShardCounters) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.evictions += o.evictions;
        self.expirations += o.expirations;
        self.waits += o.waits;
        self.rejected += o.rejected;
        self.not_admitted += o.not_admitted;
    }
}

/// A snapshot of a memory tier's statistics.
///
/// Counters are summed over the shards one shard at a time, so under
/// concurrent use the snapshot is not an atomic picture of the whole cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups not served from the cache (including expired entries and
    /// single-flight waiters).
    pub misses: u64,
    /// The entry bound, if any.
    pub maxsize: Option<u64>,
    /// The number of entries held.
    pub currsize: u64,
    /// The weight (bytes) held.
    pub bytes: u64,
    /// The byte bound, if any.
    pub max_bytes: Option<u64>,
    /// Entries removed to respect a bound.
    pub evictions: u64,
    /// Entries found expired and removed.
    pub expirations: u64,
    /// Lookups that waited for another thread's computation of the same key.
    pub waits: u64,
    /// Values not kept because they alone exceed a bound.
    pub rejected: u64,
    /// Computed values the cost-aware policy did not keep (see
    /// [`policy`](super::policy)).
    pub not_admitted: u64,
    /// The eviction policy.
    pub policy: Policy,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 when there were no lookups.
    pub fn hit_rate(&self) -> f64 {
        crate::sync::ratio(self.hits, self.misses)
    }
}

impl fmt::Display for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hits={} misses={} maxsize={} currsize={} bytes={} evictions={} expirations={} waits={} rejected={} not_admitted={} policy={}",
            self.hits,
            self.misses,
            OptFmt(self.maxsize),
            self.currsize,
            self.bytes,
            self.evictions,
            self.expirations,
            self.waits,
            self.rejected,
            self.not_admitted,
            self.policy
        )
    }
}

/// Formats `None` as Python does: `None`.
pub(crate) struct OptFmt(pub Option<u64>);

impl fmt::Display for OptFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("None"),
        }
    }
}
