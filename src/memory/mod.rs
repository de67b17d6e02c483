//! The memory tier: a sharded, thread-safe LRU cache with entry and byte
//! bounds, TTL, single-flight computation of misses, and statistics.
//!
//! # Thread safety
//!
//! [`MemoryTier`] is `Send + Sync` and every method takes `&self`. Keys are
//! spread over a power-of-two number of shards, each an [`lru::LruCache`]
//! behind its own mutex, so threads working on different keys rarely meet.
//! Statistics are kept per shard under the same lock: a hit writes to no
//! memory shared with other shards. Computations run with no lock held.
//!
//! # Eviction order
//!
//! Within a shard eviction is exact LRU.
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

mod clock;
pub(crate) mod flight;
mod stats;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use flight::FlightError;
pub use stats::CacheStats;
pub(crate) use stats::OptFmt;

use std::any::Any;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use lru::LruCache;

use crate::error::{Error, Result};
use crate::sync::lock;
use flight::{Flight, Frame, Outcome, MAX_FRAMES_PER_FLIGHT};
use stats::ShardCounters;

/// The fewest entries per shard a bounded cache is given by default.
pub const ENTRIES_PER_SHARD: u64 = 256;

/// The most shards a cache is given by default.
pub const DEFAULT_MAX_SHARDS: usize = 64;

type Hasher = foldhash::fast::RandomState;
type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

struct Entry<V> {
    value: V,
    weight: u64,
    /// Clock time after which the entry is expired (`None`: never).
    expires_at: Option<Duration>,
    /// Global access order, kept only under a byte bound (see the module docs).
    tick: u64,
}

/// A shard behind its lock, on its own cache line.
type ShardCell<K, V> = CachePadded<Mutex<Shard<K, V>>>;

struct Shard<K, V> {
    lru: LruCache<K, Entry<V>, Hasher>,
    inflight: std::collections::HashMap<K, Arc<Flight<V>>, Hasher>,
    counters: ShardCounters,
}

/// A sharded LRU cache with optional entry and byte bounds, optional TTL,
/// single-flight computation of misses, and `lru_cache`-style statistics.
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
pub struct MemoryTier<K, V> {
    shards: Box<[ShardCell<K, V>]>,
    hasher: Hasher,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    ttl: Option<Duration>,
    clock: Arc<dyn Clock>,
    weigher: Weigher<K, V>,
    entries: CachePadded<AtomicU64>,
    bytes: CachePadded<AtomicU64>,
    /// Whether evictions pick the least recently used entry of all shards.
    global_lru: bool,
    ticks: CachePadded<AtomicU64>,
}

/// Builds a [`MemoryTier`]; see [`MemoryTier::builder`].
pub struct MemoryTierBuilder<K, V> {
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    ttl: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    weigher: Option<Weigher<K, V>>,
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

    /// The number of shards, a power of two (default: from the number of
    /// CPUs and the entry bound; see the [module docs](self)).
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
        let shards = match self.shards {
            Some(n) if n == 0 || !n.is_power_of_two() => {
                return Err(Error::Config(format!(
                    "the number of shards must be a power of two, got {n}"
                )))
            }
            Some(n) => n,
            None => default_shards(self.max_entries),
        };
        let hasher = Hasher::default();
        let shard_count = shards;
        let shards = (0..shards)
            .map(|_| {
                CachePadded::new(Mutex::new(Shard {
                    lru: LruCache::unbounded_with_hasher(hasher.clone()),
                    inflight: std::collections::HashMap::with_hasher(hasher.clone()),
                    counters: ShardCounters::default(),
                }))
            })
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
            entries: CachePadded::new(AtomicU64::new(0)),
            bytes: CachePadded::new(AtomicU64::new(0)),
            global_lru: self.max_bytes.is_some() && shard_count > 1,
            ticks: CachePadded::new(AtomicU64::new(0)),
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

impl<K, V> fmt::Debug for MemoryTier<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTier")
            .field("shards", &self.shards.len())
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
    /// A builder with no bounds, no TTL, and the real clock.
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
        let found = shard.lru.get_mut(key).map(|e| match (e.expires_at, now) {
            (Some(at), Some(now)) if now >= at => None,
            _ => {
                if self.global_lru {
                    e.tick = self.next_tick();
                }
                Some(e.value.clone())
            }
        });
        match found {
            Some(Some(v)) => {
                shard.counters.hits += 1;
                return Some(v);
            }
            Some(None) => {
                if let Some(e) = shard.lru.pop(key) {
                    self.account_removed(&e);
                    *expired = Some(e);
                }
                shard.counters.expirations += 1;
            }
            None => {}
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

    /// Returns the value for `key`, if present and not expired, and marks it
    /// most recently used. Counts a hit or a miss.
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
    /// change the LRU order.
    pub fn contains_key(&self, key: &K) -> bool {
        let now = self.now_if_ttl();
        let shard = lock(&self.shards[self.shard_index(key)]);
        match shard.lru.peek(key) {
            None => false,
            Some(e) => match (e.expires_at, now) {
                (Some(at), Some(now)) => now < at,
                _ => true,
            },
        }
    }

    /// Inserts `value` for `key`, replacing any previous value, and evicts
    /// least recently used entries while a bound is exceeded.
    ///
    /// Returns whether the value was kept: a value heavier than the whole
    /// byte bound (or any value, with an entry bound of zero) is not kept,
    /// and the key's previous value, if any, is removed.
    pub fn insert(&self, key: K, value: V) -> bool {
        // User code (the weigher) runs before any lock is taken.
        let weight = (self.weigher)(&key, &value);
        let idx = self.shard_index(&key);
        let shard = lock(&self.shards[idx]);
        self.insert_locked(idx, shard, key, value, weight)
    }

    /// Inserts into the locked shard `idx`, then evicts as needed. Values
    /// removed are dropped only after every lock is released.
    fn insert_locked(
        &self,
        idx: usize,
        mut shard: MutexGuard<'_, Shard<K, V>>,
        key: K,
        value: V,
        weight: u64,
    ) -> bool {
        let mut removed = Vec::new();
        let too_big = self.max_bytes.is_some_and(|m| weight > m) || self.max_entries == Some(0);
        if too_big {
            if let Some(old) = shard.lru.pop(&key) {
                self.account_removed(&old);
                removed.push(old);
            }
            shard.counters.rejected += 1;
            drop(shard);
            drop(removed);
            return false;
        }
        let now = self.now_if_ttl();
        if let Some(now) = now {
            self.purge_expired_tail(&mut shard, now, &mut removed);
        }
        let entry = Entry {
            value,
            weight,
            // A TTL too long to represent never expires.
            expires_at: now.zip(self.ttl).and_then(|(n, t)| n.checked_add(t)),
            tick: if self.global_lru { self.next_tick() } else { 0 },
        };
        if let Some(old) = shard.lru.put(key.clone(), entry) {
            self.account_removed(&old);
            removed.push(old);
        }
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(weight, Ordering::Relaxed);
        if self.over_budget() {
            self.evict(idx, shard, &key, &mut removed);
        } else {
            drop(shard);
        }
        drop(removed);
        true
    }

    /// Drops expired entries from the LRU end of a shard.
    fn purge_expired_tail(
        &self,
        shard: &mut Shard<K, V>,
        now: Duration,
        removed: &mut Vec<Entry<V>>,
    ) {
        while let Some((_, e)) = shard.lru.peek_lru() {
            if e.expires_at.is_some_and(|at| now >= at) {
                if let Some((_, e)) = shard.lru.pop_lru() {
                    self.account_removed(&e);
                    shard.counters.expirations += 1;
                    removed.push(e);
                }
            } else {
                break;
            }
        }
    }

    /// Evicts least recently used entries until within bounds (never `keep`,
    /// the entry just inserted into shard `idx`); see the module docs for
    /// the order. Releases the shard lock.
    fn evict(
        &self,
        idx: usize,
        mut shard: MutexGuard<'_, Shard<K, V>>,
        keep: &K,
        removed: &mut Vec<Entry<V>>,
    ) {
        if self.global_lru {
            drop(shard);
            return self.evict_global(keep, removed);
        }
        while self.over_budget() {
            match shard.lru.peek_lru() {
                Some((k, _)) if k != keep => {
                    if let Some((_, e)) = shard.lru.pop_lru() {
                        self.account_removed(&e);
                        shard.counters.evictions += 1;
                        removed.push(e);
                    }
                }
                _ => break,
            }
        }
        drop(shard);
        // One lock at a time: no lock-order deadlock with other evictors.
        let n = self.shards.len();
        for step in 1..n {
            if !self.over_budget() {
                return;
            }
            let mut other = lock(&self.shards[(idx + step) % n]);
            while self.over_budget() {
                match other.lru.pop_lru() {
                    Some((_, e)) => {
                        self.account_removed(&e);
                        other.counters.evictions += 1;
                        removed.push(e);
                    }
                    None => break,
                }
            }
        }
    }

    /// Evicts the entry with the oldest tick among all shards' LRU ends,
    /// until within bounds. Locks one shard at a time.
    fn evict_global(&self, keep: &K, removed: &mut Vec<Entry<V>>) {
        while self.over_budget() {
            let mut oldest: Option<(u64, usize)> = None;
            for (i, s) in self.shards.iter().enumerate() {
                if let Some((k, e)) = lock(s).lru.peek_lru() {
                    if k != keep && oldest.is_none_or(|(t, _)| e.tick < t) {
                        oldest = Some((e.tick, i));
                    }
                }
            }
            let Some((tick, i)) = oldest else { return };
            let mut s = lock(&self.shards[i]);
            // Another thread may have used or evicted it meanwhile: look again.
            if s.lru.peek_lru().is_some_and(|(_, e)| e.tick == tick) {
                if let Some((_, e)) = s.lru.pop_lru() {
                    self.account_removed(&e);
                    s.counters.evictions += 1;
                    removed.push(e);
                }
            }
        }
    }

    /// Removes `key`, returning its value if it was present (expired or not).
    pub fn remove(&self, key: &K) -> Option<V> {
        let mut shard = lock(&self.shards[self.shard_index(key)]);
        let e = shard.lru.pop(key)?;
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
    /// `functools.lru_cache`'s `cache_clear`). Computations in flight are
    /// not interrupted; their results are inserted when they finish.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut removed = Vec::new();
            let mut s = lock(s);
            while let Some((_, e)) = s.lru.pop_lru() {
                self.account_removed(&e);
                removed.push(e);
            }
            s.counters = ShardCounters::default();
            drop(s);
            drop(removed);
        }
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

    /// Returns the value for `key`, computing it with `f` on a miss.
    ///
    /// Single-flight: while one caller computes a key, other callers of the
    /// same key wait and receive the same value. `f` runs with no lock held,
    /// so it may use this cache for other keys.
    ///
    /// On rayon: a pool thread never waits for a computation led by another
    /// pool thread (rayon may be running, under the waiter, a task the leader
    /// needs; with `join`-based recursion this would deadlock): it computes
    /// the value itself. So concurrent misses coming from pool threads may
    /// compute a key more than once (at most once per thread); misses from
    /// other threads, or waiting for them, are single-flight.
    /// ([`ArrayCache`](crate::ArrayCache) runs the misses of pool threads
    /// on a thread of their own, which makes them single-flight too.)
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic propagates to this caller; callers that were
    /// waiting for it panic too (use [`try_get_or_insert_with`] to get an
    /// error instead). So does a computation that asks for its own key.
    ///
    /// [`try_get_or_insert_with`]: Self::try_get_or_insert_with
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V {
        match self.try_get_or_insert_with(key, || Ok::<V, std::convert::Infallible>(f())) {
            Ok(v) => v,
            Err(FlightError::Failed(never)) => match never {},
            Err(e) => panic!("ndcache: {e}"),
        }
    }

    /// Returns the value for `key`, computing it with the fallible `f` on a
    /// miss.
    ///
    /// Single-flight as [`get_or_insert_with`](Self::get_or_insert_with). An
    /// error is not cached: this caller gets [`FlightError::Failed`] with it,
    /// and so does every caller that was waiting. If `f` panics, the panic
    /// propagates to this caller, waiters get [`FlightError::Panicked`], and
    /// the cache stays usable.
    ///
    /// A computation that asks, directly or through other keys, for the key
    /// it is computing gets [`FlightError::Reentrant`], on a rayon pool
    /// thread as off it (on a pool thread after computing the nested
    /// request a bounded number of times: see the flight module docs).
    pub fn try_get_or_insert_with<E, F>(&self, key: K, f: F) -> Result<V, FlightError<E>>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<V, E>,
    {
        match self.start(key, false) {
            Start::Found(r) => r,
            Start::Help(id) => help(id, f),
            Start::Lead(guard) => guard.run(f),
        }
    }

    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with) whose
    /// misses, when they are led by a rayon pool thread, run on the compute
    /// pool (see [`crate::isolate`]), so that other pool threads may wait
    /// for them. Decided only when a flight starts: hits pay nothing.
    pub(crate) fn try_get_or_insert_isolated<E, F>(&self, key: K, f: F) -> Result<V, FlightError<E>>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<V, E> + Send,
    {
        match self.start(key, true) {
            Start::Found(r) => r,
            Start::Help(id) => help(id, f),
            Start::Lead(guard) if guard.flight.is_isolated() => {
                crate::isolate::run_isolated(move || guard.run(f))
            }
            Start::Lead(guard) => guard.run(f),
        }
    }

    /// Looks `key` up; on a miss joins its flight (waits for it, or is told
    /// to compute as a helper) or starts one, isolated if `may_isolate`
    /// and [`crate::isolate::should_isolate`] says so.
    fn start<E>(&self, key: K, may_isolate: bool) -> Start<'_, K, V, E>
    where
        E: Clone + Send + Sync + 'static,
    {
        let idx = self.shard_index(&key);
        loop {
            let now = self.now_if_ttl();
            let mut shard = lock(&self.shards[idx]);
            let mut expired = None;
            let found = self.lookup(&mut shard, &key, now, &mut expired);
            if expired.is_some() {
                // Dropped with the shard unlocked; then look again.
                drop(shard);
                drop(expired);
                shard = lock(&self.shards[idx]);
            }
            if let Some(v) = found {
                return Start::Found(Ok(v));
            }
            if let Some(flight) = shard.inflight.get(&key) {
                let flight = Arc::clone(flight);
                drop(shard);
                let id = flight.id();
                let mine = flight::frames_of(id);
                if mine > 0 && (!flight::in_pool() || mine >= MAX_FRAMES_PER_FLIGHT) {
                    // This thread is computing the key: recursion.
                    flight::poison(id);
                    return Start::Found(Err(FlightError::Reentrant));
                }
                if mine > 0 || !flight.may_wait() {
                    // A job stolen by the computation of its own key, or a
                    // pool thread meeting a pool thread's flight (see the
                    // flight module): compute here; the leader stores its
                    // own result.
                    return Start::Help(id);
                }
                lock(&self.shards[idx]).counters.waits += 1;
                match flight.wait() {
                    Outcome::Value(v) => return Start::Found(Ok(v)),
                    Outcome::Panicked => return Start::Found(Err(FlightError::Panicked)),
                    Outcome::Failed(e) => match e.downcast_ref::<E>() {
                        Some(e) => return Start::Found(Err(FlightError::Failed(e.clone()))),
                        // The leader had another error type: compute ourselves.
                        None => continue,
                    },
                }
            }
            let isolated = may_isolate && crate::isolate::should_isolate();
            let flight = Arc::new(Flight::new(isolated));
            shard.inflight.insert(key.clone(), Arc::clone(&flight));
            return Start::Lead(LeaderGuard {
                tier: self,
                idx,
                key: Some(key),
                flight,
            });
        }
    }
}

/// What a miss does: see [`MemoryTier::start`].
enum Start<'a, K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value, or the error of the flight this call waited for.
    Found(Result<V, FlightError<E>>),
    /// Compute without storing, as a helper of this flight.
    Help(usize),
    /// Compute and store: this call leads the flight.
    Lead(LeaderGuard<'a, K, V>),
}

/// Computes as a helper of flight `id` (see [`MemoryTier::start`]).
fn help<V, E>(id: usize, f: impl FnOnce() -> Result<V, E>) -> Result<V, FlightError<E>> {
    let frame = Frame::enter(id, true);
    let r = f();
    if frame.poisoned() {
        return Err(FlightError::Reentrant);
    }
    r.map_err(FlightError::Failed)
}

/// Ends a flight: on success inserts the value, on error or panic (drop
/// without `finish`) just removes the flight; then wakes the waiters.
struct LeaderGuard<'a, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    tier: &'a MemoryTier<K, V>,
    idx: usize,
    key: Option<K>,
    flight: Arc<Flight<V>>,
}

impl<K, V> LeaderGuard<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Computes the value on this thread, stores it and wakes the waiters.
    fn run<E, F>(mut self, f: F) -> Result<V, FlightError<E>>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<V, E>,
    {
        let frame = Frame::enter(self.flight.id(), false);
        let r = f();
        drop(frame);
        match r {
            Ok(v) => {
                self.finish(Some(v.clone()), Outcome::Value(v.clone()));
                Ok(v)
            }
            Err(e) => {
                let shared: Arc<dyn Any + Send + Sync> = Arc::new(e.clone());
                self.finish(None, Outcome::Failed(shared));
                Err(FlightError::Failed(e))
            }
        }
    }

    fn finish(&mut self, value: Option<V>, outcome: Outcome<V>) {
        // The weigher is user code: if it panics, the key is still held and
        // `Drop` ends the flight as a panic.
        let weight = match (&value, &self.key) {
            (Some(v), Some(k)) => (self.tier.weigher)(k, v),
            _ => 0,
        };
        let Some(key) = self.key.take() else { return };
        // Wakes the waiters even if the insertion below panics.
        let _wake = Wake {
            flight: &self.flight,
            outcome: Some(outcome),
        };
        let mut shard = lock(&self.tier.shards[self.idx]);
        shard.inflight.remove(&key);
        match value {
            Some(v) => {
                self.tier.insert_locked(self.idx, shard, key, v, weight);
            }
            None => drop(shard),
        }
    }
}

/// Publishes a flight's outcome when dropped.
struct Wake<'a, V: Clone> {
    flight: &'a Flight<V>,
    outcome: Option<Outcome<V>>,
}

impl<V: Clone> Drop for Wake<'_, V> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or(Outcome::Panicked);
        self.flight.finish(outcome);
    }
}

impl<K, V> Drop for LeaderGuard<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        // Still holding the key: the computation panicked.
        self.finish(None, Outcome::Panicked);
    }
}
