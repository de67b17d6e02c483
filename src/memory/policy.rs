//! What a bounded tier keeps: the [`Policy`] choice, the [`CostEstimate`]
//! of a class of computations, and why an entry left ([`EvictionCause`]).
//!
//! # The cost-aware policy
//!
//! The objective of an array cache is the compute time its hits save under
//! a byte budget, not its hit count: a sorted array that took 10 ms and an
//! elementwise one that took 0.3 ms weigh the same 8 MB, and plain LRU
//! throws either away as readily. [`Policy::CostAware`] is
//! GreedyDual-Size-Frequency (Cherkasova, HPL-98-69) with a TinyLFU-style
//! admission gate:
//!
//! - An entry's priority is `H = L + f × c / s`: `c` what recomputing it
//!   costs (the tier's [`cost`](super::MemoryTierBuilder::cost) function,
//!   which for arrays reads a smoothed [`CostEstimate`] of the entry's
//!   class), `s` its weight, `f` how often it was asked for (saturating at
//!   [`MAX_FREQUENCY`]), and `L` the tier's *inflation*: the priority of
//!   the last entry evicted. `L` only grows, so an entry not used for a
//!   while falls behind entries used since (aging), however popular it
//!   once was.
//! - Eviction removes the entry of lowest `H` among all shards (each shard
//!   publishes its lowest priority in an atomic; the evictor locks one
//!   shard at a time), so an array heavier than a shard's share of the
//!   budget is still cacheable.
//! - A hit only bumps `f` and records the current `L` in the entry, under
//!   the shard's lock: no priority queue is touched and no memory shared
//!   with other shards is written. Each shard's queue is a binary heap of
//!   priorities recorded when an entry was inserted or last reconsidered;
//!   a stale record met by an evictor is recomputed and pushed again
//!   (lazy invalidation), so the entry evicted is the true minimum.
//! - **Admission.** A computed value that needs room is admitted only if
//!   its key was asked for before (a small count-min sketch of the misses,
//!   per shard, with 4-bit counters halved periodically, remembers keys
//!   that are no longer cached) and its priority beats the lowest one
//!   cached; otherwise it is returned but not kept
//!   ([`EvictionCause::NotAdmitted`]). This keeps expensive one-hit
//!   wonders from flushing the cache. An explicit
//!   [`insert`](super::MemoryTier::insert) is always admitted (like LRU,
//!   it never evicts the value it inserts).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Which entries a bounded [`MemoryTier`](super::MemoryTier) evicts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Least recently used first (`functools.lru_cache`; see the memory
    /// module docs for the order across shards).
    Lru,
    /// The default: GreedyDual-Size-Frequency with an admission gate,
    /// keeping what saves the most recomputation per byte (see the
    /// [module docs](self)).
    #[default]
    CostAware,
}

impl Policy {
    /// `lru` or `cost_aware`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::CostAware => "cost_aware",
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an entry left the tier (or never entered it), as told to the
/// [eviction listener](super::MemoryTierBuilder::eviction_listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvictionCause {
    /// Removed to respect a bound.
    Evicted,
    /// A computed value the cost-aware policy declined to keep (see the
    /// [module docs](self)).
    NotAdmitted,
    /// A value heavier than the whole byte bound.
    TooBig,
}

/// The most an entry's frequency counts in its priority. Higher counts
/// would let an entry popular long ago outlive the aging.
pub const MAX_FREQUENCY: u32 = 15;

/// A smoothed average of the durations of one class of computations (a
/// kernel on one dtype and one range of sizes): single timings are noisy
/// (GreedyDual-Size with measured latencies lost to plain GreedyDual-Size
/// when they varied by 71%, Cao & Irani 1997), their class average is not.
///
/// The mean of the first [`CostEstimate::WINDOW`] timings, then an
/// exponentially weighted moving average with weight `1 / WINDOW`. Lock
/// free; recording races may lose a little weight, never corrupt the mean.
///
/// ```
/// use std::time::Duration;
/// use ndcache::memory::CostEstimate;
/// let e = CostEstimate::new();
/// assert_eq!(e.get(), None);
/// e.record(Duration::from_millis(10));
/// e.record(Duration::from_millis(20));
/// assert_eq!(e.get(), Some(Duration::from_millis(15)));
/// ```
#[derive(Debug, Default)]
pub struct CostEstimate {
    /// The mean in nanoseconds, as `f64` bits.
    mean: AtomicU64,
    samples: AtomicU32,
}

impl CostEstimate {
    /// How many timings the average remembers, roughly.
    pub const WINDOW: u32 = 8;

    /// An estimate with no timing yet.
    pub const fn new() -> Self {
        CostEstimate {
            mean: AtomicU64::new(0),
            samples: AtomicU32::new(0),
        }
    }

    /// How far above the estimate one timing may pull it: a timing more
    /// than this many times the current estimate counts as this many. A
    /// thread descheduled in the middle of a 0.3 ms computation reports
    /// 4 ms; that is the machine's load, not the computation's cost, and
    /// it would move an average of few samples by more than the
    /// computation takes. A real rise in cost still comes through: each
    /// timing can raise the estimate by up to `(CLIP - 1) / WINDOW` of it.
    pub const CLIP: f64 = 4.0;

    /// Adds one timing (clipped at [`CostEstimate::CLIP`] times the
    /// estimate).
    pub fn record(&self, took: Duration) {
        self.record_timing_nanos(took.as_nanos() as f64);
    }

    /// Adds one timing in nanoseconds, or any other cost that is a
    /// duration (nanoseconds per byte), clipped at [`CostEstimate::CLIP`]
    /// times the estimate.
    ///
    /// ```
    /// use ndcache::memory::CostEstimate;
    /// let e = CostEstimate::new();
    /// for _ in 0..8 {
    ///     e.record_timing_nanos(300_000.0);
    /// }
    /// e.record_timing_nanos(4_000_000.0); // descheduled: counts as 1.2 ms
    /// assert_eq!(e.nanos(), 300_000.0 + (1_200_000.0 - 300_000.0) / 8.0);
    /// ```
    pub fn record_timing_nanos(&self, x: f64) {
        self.add(x, true);
    }

    /// Adds one value as it is, unclipped: for averages that are not
    /// timings, such as a rate of 0s and 1s.
    pub fn record_nanos(&self, x: f64) {
        self.add(x, false);
    }

    fn add(&self, x: f64, clip: bool) {
        let n = self
            .samples
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let w = 1.0 / f64::from(n.min(Self::WINDOW));
        let _ = self
            .mean
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let m = f64::from_bits(bits);
                let x = if clip && n > 1 && m > 0.0 {
                    x.min(Self::CLIP * m)
                } else {
                    x
                };
                Some((m + w * (x - m)).max(0.0).to_bits())
            });
    }

    /// The estimate, if any timing was recorded.
    pub fn get(&self) -> Option<Duration> {
        (self.samples() > 0).then(|| Duration::from_nanos(self.nanos() as u64))
    }

    /// The estimate in nanoseconds (0 before any timing).
    pub fn nanos(&self) -> f64 {
        f64::from_bits(self.mean.load(Ordering::Relaxed))
    }

    /// How many timings were recorded.
    pub fn samples(&self) -> u32 {
        self.samples.load(Ordering::Relaxed)
    }
}
