//! Generic memoization of a function: the `functools.lru_cache` analogue.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::memory::{CacheStats, Clock, FlightError, MemoryTier, Policy};

type MemoFn<K, V> = dyn Fn(&Memo<K, V>, K) -> V + Send + Sync;

/// A memoized function `K -> V`, the Rust form of `functools.lru_cache` and
/// `functools.cache`, built on a [`MemoryTier`].
///
/// The function receives the `Memo` itself, so that its recursive calls go
/// through the cache. Unlike `lru_cache`, concurrent calls with the same
/// missing key compute it once (single-flight).
///
/// # Example: Fibonacci, with CPython's exact statistics
///
/// ```
/// use ndcache::Memo;
/// let fib = Memo::new(128, |fib: &Memo<u64, u64>, n| {
///     if n < 2 { n } else { fib.get(n - 1) + fib.get(n - 2) }
/// });
/// assert_eq!(fib.get(30), 832040);
/// let info = fib.cache_info();
/// assert_eq!((info.hits, info.misses, info.maxsize, info.currsize), (28, 31, Some(128), 31));
/// assert_eq!(fib.call_uncached(5), 5); // like fib.__wrapped__(5)
/// assert_eq!(fib.cache_info().hits, 30);
/// fib.cache_clear();
/// assert_eq!(fib.cache_info().to_string(), "CacheInfo(hits=0, misses=0, maxsize=128, currsize=0)");
/// ```
pub struct Memo<K, V> {
    tier: MemoryTier<K, V>,
    f: Arc<MemoFn<K, V>>,
}

/// `functools.lru_cache`'s `cache_info()`: hits, misses, maxsize, currsize.
///
/// `Display` prints it as Python does:
/// `CacheInfo(hits=28, misses=31, maxsize=128, currsize=31)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheInfo {
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that ran the function (or waited for another thread running it).
    pub misses: u64,
    /// The bound, or `None` for an unbounded cache.
    pub maxsize: Option<u64>,
    /// The number of results held.
    pub currsize: u64,
}

impl CacheInfo {
    /// `hits / (hits + misses)`, or 0 before any call.
    pub fn hit_rate(&self) -> f64 {
        crate::sync::ratio(self.hits, self.misses)
    }
}

impl fmt::Display for CacheInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CacheInfo(hits={}, misses={}, maxsize={}, currsize={})",
            self.hits,
            self.misses,
            crate::memory::OptFmt(self.maxsize),
            self.currsize
        )
    }
}

impl From<CacheStats> for CacheInfo {
    fn from(s: CacheStats) -> Self {
        CacheInfo {
            hits: s.hits,
            misses: s.misses,
            maxsize: s.maxsize,
            currsize: s.currsize,
        }
    }
}

/// Builds a [`Memo`] with a bound, a TTL or a clock; see [`Memo::builder`].
pub struct MemoBuilder<K, V> {
    maxsize: Option<u64>,
    ttl: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    _types: std::marker::PhantomData<fn(K) -> V>,
}

impl<K, V> fmt::Debug for MemoBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoBuilder")
            .field("maxsize", &self.maxsize)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K, V> MemoBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Keeps at most `n` results, evicting the least recently used.
    pub fn maxsize(mut self, n: u64) -> Self {
        self.maxsize = Some(n);
        self
    }

    /// Results expire this long after they were computed.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The clock the TTL is measured with (tests inject a
    /// [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Memoizes `f` with these options.
    pub fn build(
        self,
        f: impl Fn(&Memo<K, V>, K) -> V + Send + Sync + 'static,
    ) -> Result<Memo<K, V>> {
        // lru_cache's order and statistics, exactly.
        let mut b = MemoryTier::builder().policy(Policy::Lru);
        if let Some(n) = self.maxsize {
            b = b.max_entries(n);
        }
        if let Some(t) = self.ttl {
            b = b.ttl(t);
        }
        if let Some(c) = self.clock {
            b = b.clock(c);
        }
        Ok(Memo {
            tier: b.build()?,
            f: Arc::new(f),
        })
    }
}

impl<K, V> Memo<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `@lru_cache(maxsize=maxsize)`: keeps the `maxsize` most recently used
    /// results. A `maxsize` of 0 caches nothing (every call is a miss).
    pub fn new(maxsize: u64, f: impl Fn(&Memo<K, V>, K) -> V + Send + Sync + 'static) -> Self {
        let tier = match MemoryTier::builder()
            .policy(Policy::Lru)
            .max_entries(maxsize)
            .build()
        {
            Ok(t) => t,
            Err(_) => unreachable!("an entry bound alone is always valid"),
        };
        Memo {
            tier,
            f: Arc::new(f),
        }
    }

    /// `@functools.cache`: keeps every result.
    pub fn unbounded(f: impl Fn(&Memo<K, V>, K) -> V + Send + Sync + 'static) -> Self {
        Memo {
            tier: MemoryTier::unbounded(),
            f: Arc::new(f),
        }
    }

    /// A builder for a bound, a TTL and a clock.
    pub fn builder() -> MemoBuilder<K, V> {
        MemoBuilder {
            maxsize: None,
            ttl: None,
            clock: None,
            _types: std::marker::PhantomData,
        }
    }

    /// The function's value at `key`: from the cache, or computed (once, even
    /// when several threads ask at the same time) and cached.
    ///
    /// # Panics
    ///
    /// If the function panics; callers waiting for that computation panic
    /// too, and the cache stays usable. Also if the function asks for the
    /// very key it is computing (infinite recursion).
    pub fn get(&self, key: K) -> V {
        match self.try_get(key) {
            Ok(v) => v,
            Err(e) => panic!("ndcache::Memo: {e}"),
        }
    }

    /// As [`get`](Self::get), but a waiter of a panicked computation, or a
    /// computation asking for its own key, gets an error instead of a panic.
    pub fn try_get(&self, key: K) -> Result<V, FlightError<std::convert::Infallible>> {
        let k = key.clone();
        self.tier
            .try_get_or_insert_with(key, || Ok((self.f)(self, k)))
    }

    /// Runs the function for `key` without looking `key` up or storing its
    /// result; its recursive calls still use the cache. This is Python's
    /// `f.__wrapped__(key)` called on a memoized recursive `f`.
    pub fn call_uncached(&self, key: K) -> V {
        (self.f)(self, key)
    }

    /// `cache_info()`: hits, misses, maxsize, currsize.
    pub fn cache_info(&self) -> CacheInfo {
        self.tier.stats().into()
    }

    /// Every statistic of the underlying tier (evictions, expirations,
    /// single-flight waits ...).
    pub fn stats(&self) -> CacheStats {
        self.tier.stats()
    }

    /// `cache_clear()`: forgets every result and resets the statistics.
    pub fn cache_clear(&self) {
        self.tier.clear()
    }

    /// The underlying memory tier.
    pub fn tier(&self) -> &MemoryTier<K, V> {
        &self.tier
    }
}

impl<K, V> fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo").field("tier", &self.tier).finish()
    }
}
