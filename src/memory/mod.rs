//! The memory tier: a sharded, thread-safe cache with entry and byte
//! bounds, a cost-aware or LRU eviction policy, TTL, single-flight
//! computation of misses, and statistics.
//!
//! # Thread safety
//!
//! [`MemoryTier`] is `Send + Sync` and every method takes `&self`. Keys are
//! spread over a power-of-two number of shards, each behind its own mutex,
//! so threads working on different keys rarely meet. Statistics are kept
//! per shard under the same lock: a hit writes to no memory shared with
//! other shards. Computations run with no lock held.
//!
//! # Eviction order
//!
//! [`Policy::CostAware`] (the default) evicts the entry whose recomputation
//! saves the least per byte, among all shards: see the [`policy`] module.
//! [`Policy::Lru`] is exact LRU within a shard:
//!
//! - With a byte bound (few, large entries: arrays), every entry carries a
//!   global access tick and eviction removes the least recently used entry
//!   among all the shards' LRU ends: global LRU order (exact when one thread
//!   inserts at a time).
//! - With only an entry bound, the inserting shard evicts its own least
//!   recently used entries first, then the other shards do in turn: hits
//!   then touch no memory shared between shards. A cache whose entry bound
//!   is small (fewer than [`ENTRIES_PER_SHARD`] per shard) gets fewer
//!   shards, down to one, so small caches evict in exact global LRU order,
//!   like `functools.lru_cache`.

mod builder;
mod clock;
mod evict;
pub(crate) mod flight;
mod gdsf;
mod leader;
pub mod policy;
mod sketch;
mod stats;

pub use builder::MemoryTierBuilder;
pub use clock::{Clock, ManualClock, MonotonicClock};
pub use flight::FlightError;
pub use policy::{CostEstimate, EvictionCause, Policy};
pub use stats::CacheStats;
pub(crate) use stats::OptFmt;

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use lru::LruCache;

use crate::sync::lock;
use gdsf::Gdsf;
use stats::ShardCounters;

/// The fewest entries per shard a bounded cache is given by default.
pub const ENTRIES_PER_SHARD: u64 = 256;

/// The most shards a cache is given by default.
pub const DEFAULT_MAX_SHARDS: usize = 64;

type Hasher = foldhash::fast::RandomState;

/// The key's hash in the admission sketch: seeded by a constant, so that a
/// replay admits the same results in every process (the simulator's runs
/// are exact). A collision only makes a key look more frequent.
fn sketch_hash<K: Hash>(key: &K) -> u64 {
    const SKETCH: foldhash::fast::FixedState =
        foldhash::fast::FixedState::with_seed(0x51_7CC1_B727_220A);
    SKETCH.hash_one(key)
}
type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;
type Coster<K, V> = Arc<dyn Fn(&K, &V) -> f64 + Send + Sync>;
type Listener<K, V> = Arc<dyn Fn(&K, &V, EvictionCause) + Send + Sync>;

struct Entry<V> {
    value: V,
    weight: u64,
    /// Clock time after which the entry is expired (`None`: never).
    expires_at: Option<Duration>,
    /// Global access order, kept only under a byte bound with LRU (see the
    /// module docs).
    tick: u64,
}

impl<V> Entry<V> {
    fn expired(&self, now: Option<Duration>) -> bool {
        matches!((self.expires_at, now), (Some(at), Some(now)) if now >= at)
    }
}

/// A shard behind its lock, on its own cache line.
type ShardCell<K, V> = CachePadded<Mutex<Shard<K, V>>>;

struct Shard<K, V> {
    store: Store<K, V>,
    inflight: std::collections::HashMap<K, Arc<flight::Flight<V>>, Hasher>,
    counters: ShardCounters,
}

/// A shard's entries, ordered for the tier's policy.
enum Store<K, V> {
    Lru(LruCache<K, Entry<V>, Hasher>),
    Gdsf(Gdsf<K, V>),
}

impl<K: Hash + Eq + Clone, V> Store<K, V> {
    fn peek(&self, key: &K) -> Option<&Entry<V>> {
        match self {
            Store::Lru(l) => l.peek(key),
            Store::Gdsf(g) => g.peek(key),
        }
    }

    fn remove(&mut self, key: &K) -> Option<Entry<V>> {
        match self {
            Store::Lru(l) => l.pop(key),
            Store::Gdsf(g) => g.remove(key).map(|n| n.entry),
        }
    }
}

/// Whether an insertion may be refused by the cost-aware admission gate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// [`MemoryTier::insert`]: the caller wants it kept.
    Explicit,
    /// A computed value (the leader of a flight): admitted only if worth it.
    Gated,
}

/// Entries taken out under a lock: dropped, and told to the eviction
/// listener, only once every lock is released (a value may be a big array,
/// and the listener may use the tier).
struct Removed<K, V> {
    dropped: Vec<Entry<V>>,
    told: Vec<(K, V, EvictionCause)>,
}

impl<K, V> Removed<K, V> {
    fn new() -> Self {
        Removed {
            dropped: Vec::new(),
            told: Vec::new(),
        }
    }

    fn finish(self, listener: Option<&Listener<K, V>>) {
        if let Some(l) = listener {
            for (k, v, cause) in &self.told {
                l(k, v, *cause);
            }
        }
    }
}

/// A sharded cache with optional entry and byte bounds, a cost-aware or
/// LRU eviction [`Policy`], optional TTL, single-flight computation of
/// misses, and `lru_cache`-style statistics.
///
/// Values are handed out by `clone`, so `V` should be cheap to clone (an
/// `Arc`, an [`AnyArray`](crate::AnyArray), a number).
///
/// ```
/// use ndcache::MemoryTier;
/// let cache: MemoryTier<u64, String> = MemoryTier::builder().max_entries(2).build()?;
/// cache.insert(1, "one".into());
/// assert_eq!(cache.get(&1).as_deref(), Some("one"));
/// let v = cache.get_or_insert_with(2, || "two".into());
/// assert_eq!(v, "two");
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), ndcache::Error>(())
/// ```
///
/// # Example: keep what is expensive per byte
///
/// ```
/// use ndcache::memory::{MemoryTier, Policy};
/// // Values are (bytes, milliseconds to recompute).
/// let tier: MemoryTier<&str, (u64, f64)> = MemoryTier::builder()
///     .max_bytes(100)
///     .weigher(|_, v: &(u64, f64)| v.0)
///     .cost(|_, v| v.1)
///     .build()?;
/// assert_eq!(tier.policy(), Policy::CostAware);
/// tier.insert("sorted", (60, 10.0));
/// tier.insert("added", (40, 0.3));
/// tier.get(&"added");
/// tier.insert("summed", (10, 1.0)); // over budget: the cheapest per byte goes
/// assert!(tier.contains_key(&"sorted") && !tier.contains_key(&"added"));
/// # Ok::<(), ndcache::Error>(())
/// ```
pub struct MemoryTier<K, V> {
    shards: Box<[ShardCell<K, V>]>,
    hasher: Hasher,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    ttl: Option<Duration>,
    clock: Arc<dyn Clock>,
    weigher: Weigher<K, V>,
    coster: Option<Coster<K, V>>,
    listener: Option<Listener<K, V>>,
    policy: Policy,
    /// Whether there is any bound (else nothing is ever evicted).
    bounded: bool,
    entries: CachePadded<AtomicU64>,
    bytes: CachePadded<AtomicU64>,
    /// LRU only: whether evictions pick the least recently used entry of
    /// all shards.
    global_lru: bool,
    ticks: CachePadded<AtomicU64>,
    /// Cost-aware only: the inflation `L`, the priority of the last entry
    /// evicted (`f64` bits; priorities are never negative, so their bits
    /// order as they do). Read by hits, written by evictions.
    inflation: CachePadded<AtomicU64>,
    /// Cost-aware only: each shard's lowest recorded priority (`f64` bits,
    /// infinity when it has none), written under the shard's lock.
    floors: Box<[CachePadded<AtomicU64>]>,
}

impl<K, V> fmt::Debug for MemoryTier<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTier")
            .field("shards", &self.shards.len())
            .field("policy", &self.policy)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.load(Ordering::Relaxed))
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A builder with no bounds, no TTL, the cost-aware policy and the real
    /// clock.
    pub fn builder() -> MemoryTierBuilder<K, V> {
        MemoryTierBuilder::default()
    }

    /// An unbounded tier (`functools.cache`).
    pub fn unbounded() -> Self {
        match Self::builder().build() {
            Ok(t) => t,
            Err(_) => unreachable!("default options are valid"),
        }
    }

    fn shard_index(&self, key: &K) -> usize {
        // High bits: the low ones also pick the bucket inside the shard's map.
        let h = self.hasher.hash_one(key);
        ((h >> 32) as usize) & (self.shards.len() - 1)
    }

    fn now_if_ttl(&self) -> Option<Duration> {
        self.ttl.map(|_| self.clock.now())
    }

    /// The cost of an entry for the cost-aware policy.
    fn cost_of(&self, key: &K, value: &V) -> f64 {
        match &self.coster {
            None => 1.0,
            Some(f) => {
                let c = f(key, value);
                if c.is_finite() && c > 0.0 {
                    c
                } else {
                    0.0
                }
            }
        }
    }

    fn inflation(&self) -> f64 {
        f64::from_bits(self.inflation.load(Ordering::Relaxed))
    }

    /// Looks `key` up in a locked shard, counting a hit or a miss, and
    /// removing the entry if it has expired: into `expired`, for the caller
    /// to drop once the shard is unlocked (a value may be a big array).
    fn lookup(
        &self,
        shard: &mut Shard<K, V>,
        key: &K,
        now: Option<Duration>,
        expired: &mut Option<Entry<V>>,
    ) -> Option<V> {
        let found = match &mut shard.store {
            Store::Lru(lru) => lru.get_mut(key).map(|e| {
                if e.expired(now) {
                    return None;
                }
                if self.global_lru {
                    e.tick = self.next_tick();
                }
                Some(e.value.clone())
            }),
            Store::Gdsf(g) => g.get_mut(key).map(|n| {
                if n.entry.expired(now) {
                    return None;
                }
                n.touch(self.inflation());
                Some(n.entry.value.clone())
            }),
        };
        match found {
            Some(Some(v)) => {
                shard.counters.hits += 1;
                return Some(v);
            }
            Some(None) => {
                if let Some(e) = shard.store.remove(key) {
                    self.account_removed(&e);
                    *expired = Some(e);
                }
                shard.counters.expirations += 1;
            }
            None => {}
        }
        if let (Store::Gdsf(g), true) = (&mut shard.store, self.bounded) {
            g.sketch.increment(sketch_hash(key));
        }
        shard.counters.misses += 1;
        None
    }

    fn next_tick(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::Relaxed)
    }

    fn account_removed(&self, e: &Entry<V>) {
        self.entries.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(e.weight, Ordering::Relaxed);
    }

    fn over_budget(&self) -> bool {
        self.max_entries
            .is_some_and(|m| self.entries.load(Ordering::Relaxed) > m)
            || self
                .max_bytes
                .is_some_and(|m| self.bytes.load(Ordering::Relaxed) > m)
    }

    /// Whether adding an entry of `weight` would exceed a bound.
    fn needs_room_for(&self, weight: u64) -> bool {
        self.max_entries
            .is_some_and(|m| self.entries.load(Ordering::Relaxed) >= m)
            || self
                .max_bytes
                .is_some_and(|m| self.bytes.load(Ordering::Relaxed) + weight > m)
    }

    /// Returns the value for `key`, if present and not expired, and counts
    /// a request of it (for LRU: marks it most recently used). Counts a hit
    /// or a miss.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = self.now_if_ttl();
        let mut shard = lock(&self.shards[self.shard_index(key)]);
        let mut expired = None;
        let v = self.lookup(&mut shard, key, now, &mut expired);
        drop(shard);
        drop(expired);
        v
    }

    /// Whether `key` is present and not expired. Counts nothing and does not
    /// change the eviction order.
    pub fn contains_key(&self, key: &K) -> bool {
        let now = self.now_if_ttl();
        let shard = lock(&self.shards[self.shard_index(key)]);
        shard.store.peek(key).is_some_and(|e| !e.expired(now))
    }

    /// Inserts `value` for `key`, replacing any previous value, and evicts
    /// entries (see the [module docs](self) for which) while a bound is
    /// exceeded. The value inserted is never the one evicted.
    ///
    /// Returns whether the value was kept: a value heavier than the whole
    /// byte bound (or any value, with an entry bound of zero) is not kept,
    /// and the key's previous value, if any, is removed.
    pub fn insert(&self, key: K, value: V) -> bool {
        // User code (the weigher, the cost) runs before any lock is taken.
        let weight = (self.weigher)(&key, &value);
        let cost = self.cost_of(&key, &value);
        let idx = self.shard_index(&key);
        let shard = lock(&self.shards[idx]);
        self.insert_locked(idx, shard, key, value, weight, cost, Admission::Explicit)
    }

    /// Inserts into the locked shard `idx` (through the admission gate if
    /// `admission` says so), then evicts as needed. Values removed are
    /// dropped, and told to the eviction listener, only after every lock is
    /// released. Returns whether the value is kept.
    #[allow(clippy::too_many_arguments)]
    fn insert_locked(
        &self,
        idx: usize,
        mut shard: MutexGuard<'_, Shard<K, V>>,
        key: K,
        value: V,
        weight: u64,
        cost: f64,
        admission: Admission,
    ) -> bool {
        let mut removed = Removed::new();
        let too_big = self.max_bytes.is_some_and(|m| weight > m) || self.max_entries == Some(0);
        if too_big {
            if let Some(old) = shard.store.remove(&key) {
                self.account_removed(&old);
                removed.dropped.push(old);
            }
            shard.counters.rejected += 1;
            drop(shard);
            removed.told.push((key, value, EvictionCause::TooBig));
            removed.finish(self.listener.as_ref());
            return false;
        }
        let mut freq = 1;
        if let Store::Gdsf(g) = &shard.store {
            if self.bounded {
                freq = g.sketch.estimate(sketch_hash(&key));
                if admission == Admission::Gated
                    && self.needs_room_for(weight)
                    && !self.admits(freq, cost, weight)
                {
                    shard.counters.not_admitted += 1;
                    drop(shard);
                    removed.told.push((key, value, EvictionCause::NotAdmitted));
                    removed.finish(self.listener.as_ref());
                    return false;
                }
            }
        }
        let now = self.now_if_ttl();
        if let Some(now) = now {
            self.purge_expired(&mut shard, now, &mut removed.dropped);
        }
        let entry = Entry {
            value,
            weight,
            // A TTL too long to represent never expires.
            expires_at: now.zip(self.ttl).and_then(|(n, t)| n.checked_add(t)),
            tick: if self.global_lru { self.next_tick() } else { 0 },
        };
        // Cost-aware: the entry's sequence number while it is untracked.
        let mut untracked = None;
        let old = match &mut shard.store {
            Store::Lru(lru) => lru.put(key.clone(), entry),
            Store::Gdsf(g) => {
                // An explicit insertion cannot be evicted by its own
                // evictions: it gets its heap record afterwards.
                let track =
                    self.bounded && (admission == Admission::Gated || !self.needs_room_for(weight));
                let (seq, old) = g.insert(key.clone(), entry, freq, self.inflation(), cost, track);
                if self.bounded {
                    g.sketch.fit(g.len());
                    self.publish_floor(idx, g);
                    if !track {
                        untracked = Some(seq);
                    }
                }
                old
            }
        };
        if let Some(old) = old {
            self.account_removed(&old);
            removed.dropped.push(old);
        }
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(weight, Ordering::Relaxed);
        let mut kept = true;
        if self.over_budget() {
            kept = self.evict(
                idx,
                shard,
                &key,
                admission == Admission::Gated,
                &mut removed,
            );
        } else {
            drop(shard);
        }
        if let Some(seq) = untracked {
            let mut shard = lock(&self.shards[idx]);
            if let Store::Gdsf(g) = &mut shard.store {
                g.track(&key, seq, cost);
                self.publish_floor(idx, g);
            }
        }
        removed.finish(self.listener.as_ref());
        kept
    }

    /// The cost-aware admission gate (see the [policy module](policy)): a
    /// value asked for before whose priority beats the lowest cached one.
    fn admits(&self, freq: u32, cost: f64, weight: u64) -> bool {
        let priority = self.inflation() + f64::from(freq) * cost / weight.max(1) as f64;
        freq >= 2 && priority > self.lowest_floor()
    }

    /// Drops expired entries from a shard: for LRU from its LRU end, for
    /// the cost-aware policy in expiry order.
    fn purge_expired(&self, shard: &mut Shard<K, V>, now: Duration, removed: &mut Vec<Entry<V>>) {
        let before = removed.len();
        match &mut shard.store {
            Store::Lru(lru) => {
                while let Some((_, e)) = lru.peek_lru() {
                    if !e.expired(Some(now)) {
                        break;
                    }
                    if let Some((_, e)) = lru.pop_lru() {
                        removed.push(e);
                    }
                }
            }
            Store::Gdsf(g) => g.purge_expired(now, removed),
        }
        for e in &removed[before..] {
            self.account_removed(e);
        }
        shard.counters.expirations += (removed.len() - before) as u64;
    }

    /// Removes `key`, returning its value if it was present (expired or not).
    pub fn remove(&self, key: &K) -> Option<V> {
        let mut shard = lock(&self.shards[self.shard_index(key)]);
        let e = shard.store.remove(key)?;
        self.account_removed(&e);
        Some(e.value)
    }

    /// The number of entries held (expired ones not yet purged included).
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed) as usize
    }

    /// Whether the tier holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry and resets the statistics (like
    /// `functools.lru_cache`'s `cache_clear`) and the cost-aware policy's
    /// history. Computations in flight are not interrupted; their results
    /// are inserted when they finish.
    pub fn clear(&self) {
        for (i, s) in self.shards.iter().enumerate() {
            let mut removed = Vec::new();
            let mut s = lock(s);
            match &mut s.store {
                Store::Lru(lru) => {
                    while let Some((_, e)) = lru.pop_lru() {
                        removed.push(e);
                    }
                }
                Store::Gdsf(g) => {
                    g.drain(&mut removed);
                    self.publish_floor(i, g);
                }
            }
            for e in &removed {
                self.account_removed(e);
            }
            s.counters = ShardCounters::default();
            drop(s);
            drop(removed);
        }
        self.inflation.store(0, Ordering::Relaxed);
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> CacheStats {
        let mut c = ShardCounters::default();
        for s in self.shards.iter() {
            c.add(&lock(s).counters);
        }
        CacheStats {
            hits: c.hits,
            misses: c.misses,
            maxsize: self.max_entries,
            currsize: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            max_bytes: self.max_bytes,
            evictions: c.evictions,
            expirations: c.expirations,
            waits: c.waits,
            rejected: c.rejected,
            not_admitted: c.not_admitted,
            policy: self.policy,
        }
    }

    /// The entry bound, if any.
    pub fn max_entries(&self) -> Option<u64> {
        self.max_entries
    }

    /// The byte bound, if any.
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The TTL, if any.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The eviction policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }
}
