//! [`MemoryTierBuilder`]: the options of a memory tier.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use lru::LruCache;

use super::gdsf::Gdsf;
use super::stats::ShardCounters;
use super::{
    Clock, Coster, EvictionCause, Hasher, Listener, MemoryTier, MonotonicClock, Policy, Shard,
    Store, Weigher, DEFAULT_MAX_SHARDS, ENTRIES_PER_SHARD,
};
use crate::error::{Error, Result};

/// Builds a [`MemoryTier`]; see [`MemoryTier::builder`].
pub struct MemoryTierBuilder<K, V> {
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    ttl: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    weigher: Option<Weigher<K, V>>,
    coster: Option<Coster<K, V>>,
    listener: Option<Listener<K, V>>,
    policy: Policy,
    shards: Option<usize>,
}

impl<K, V> Default for MemoryTierBuilder<K, V> {
    fn default() -> Self {
        MemoryTierBuilder {
            max_entries: None,
            max_bytes: None,
            ttl: None,
            clock: None,
            weigher: None,
            coster: None,
            listener: None,
            policy: Policy::default(),
            shards: None,
        }
    }
}

impl<K, V> fmt::Debug for MemoryTierBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTierBuilder")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("policy", &self.policy)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl<K, V> MemoryTierBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Bounds the number of entries (`maxsize`). Zero keeps nothing.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// Bounds the total weight of the entries, as given by the
    /// [weigher](Self::weigher) (bytes, for arrays). Requires a weigher.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Entries expire this long after their insertion, and are never served
    /// after that.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The clock TTLs are measured with (default: [`MonotonicClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How much an entry weighs against [`max_bytes`](Self::max_bytes)
    /// (default: nothing).
    pub fn weigher(mut self, f: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(f));
        self
    }

    /// Which entries a bounded tier evicts first (default:
    /// [`Policy::CostAware`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// What recomputing an entry would cost, in any unit (nanoseconds, for
    /// arrays), for the [cost-aware policy](super::policy) (default: 1 for
    /// every entry, which makes it frequency per byte with aging). Negative
    /// and non-finite costs count as 0.
    ///
    /// It is called when a value is inserted and when an evictor
    /// reconsiders an entry, under that entry's shard lock: it must be
    /// cheap and must not use the tier. Hits do not call it, so it may read
    /// an estimate that changes over time (a [`CostEstimate`](super::CostEstimate)).
    pub fn cost(mut self, f: impl Fn(&K, &V) -> f64 + Send + Sync + 'static) -> Self {
        self.coster = Some(Arc::new(f));
        self
    }

    /// Called with every entry evicted to respect a bound, every value too
    /// heavy for the byte bound and every computed value the cost-aware
    /// policy did not admit (see [`EvictionCause`]); not for expired,
    /// removed, replaced or cleared entries. It runs on the thread whose
    /// insertion caused the eviction, after every lock is released (it may
    /// use the tier), before the inserting call returns: hand slow work
    /// (a disk write) to another thread.
    pub fn eviction_listener(
        mut self,
        f: impl Fn(&K, &V, EvictionCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(f));
        self
    }

    /// The number of shards, a power of two (default: from the number of
    /// CPUs and the entry bound; see the [module docs](super)).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }

    /// Builds the tier; an error if the options do not make sense.
    pub fn build(self) -> Result<MemoryTier<K, V>> {
        if self.max_bytes.is_some() && self.weigher.is_none() {
            return Err(Error::Config(
                "max_bytes needs a weigher to know what an entry weighs".into(),
            ));
        }
        if self.ttl == Some(Duration::ZERO) {
            return Err(Error::Config("a TTL of zero would keep nothing".into()));
        }
        let shard_count = match self.shards {
            Some(n) if n == 0 || !n.is_power_of_two() => {
                return Err(Error::Config(format!(
                    "the number of shards must be a power of two, got {n}"
                )))
            }
            Some(n) => n,
            None => default_shards(self.max_entries),
        };
        let hasher = Hasher::default();
        let bounded = self.max_entries.is_some() || self.max_bytes.is_some();
        // Four counters per entry a shard may hold; grown as entries come
        // when only bytes are bounded.
        let sketch_width = self
            .max_entries
            .map_or(64, |m| (m as usize / shard_count).saturating_mul(4));
        let shards = (0..shard_count)
            .map(|_| {
                let store = match self.policy {
                    Policy::Lru => Store::Lru(LruCache::unbounded_with_hasher(hasher.clone())),
                    Policy::CostAware => Store::Gdsf(Gdsf::new(hasher.clone(), sketch_width)),
                };
                CachePadded::new(Mutex::new(Shard {
                    store,
                    inflight: std::collections::HashMap::with_hasher(hasher.clone()),
                    counters: ShardCounters::default(),
                }))
            })
            .collect();
        let floors = (0..shard_count)
            .map(|_| CachePadded::new(AtomicU64::new(f64::INFINITY.to_bits())))
            .collect();
        Ok(MemoryTier {
            shards,
            hasher,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            ttl: self.ttl,
            clock: self
                .clock
                .unwrap_or_else(|| Arc::new(MonotonicClock::new())),
            weigher: self.weigher.unwrap_or_else(|| Arc::new(|_, _| 0)),
            coster: self.coster,
            listener: self.listener,
            policy: self.policy,
            bounded,
            entries: CachePadded::new(AtomicU64::new(0)),
            bytes: CachePadded::new(AtomicU64::new(0)),
            global_lru: self.policy == Policy::Lru && self.max_bytes.is_some() && shard_count > 1,
            ticks: CachePadded::new(AtomicU64::new(0)),
            inflation: CachePadded::new(AtomicU64::new(0)),
            floors,
        })
    }
}

fn default_shards(max_entries: Option<u64>) -> usize {
    // Many more shards than threads: two threads meeting on one shard's
    // lock cost far more than the shards' memory. Measured on 2 cores with
    // 10k keys, a hit on two threads at once takes 2.1x the one-thread
    // time with 8 shards and 1.4x with 64 (benches/memory_tier.rs).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut n = (cpus * 32).next_power_of_two().min(DEFAULT_MAX_SHARDS);
    if let Some(m) = max_entries {
        while n > 1 && m / (n as u64) < ENTRIES_PER_SHARD {
            n /= 2;
        }
    }
    n
}
