//! The adaptive bypass: per class, call the kernel directly while going
//! through the cache costs more than it saves.
//!
//! Per call, caching adds the hashing of the view inputs, a lookup, and on
//! a miss the store (disk lookup, insertion); it saves the computation on a
//! hit. All of it is measured online, per class: the hashing on every call
//! that hashes, the computation and the store on every miss, the hit rate
//! on a sample of calls (one in [`SAMPLE_EVERY`] per thread). So the
//! expected loss of a cached call is
//!
//! ```text
//! hash + lookup + (1 - hit rate) × store - hit rate × compute
//! ```
//!
//! (hits are never timed, so they pay for no clock read; the computation's
//! own noise cancels out of the comparison). While the loss exceeds
//! [`MARGIN`] of the computation plus [`SLACK`], so that cheap kernels never
//! flap, the class bypasses: its calls compute directly, store nothing,
//! and return results fingerprinted only if someone asks.
//!
//! Bypassing hides what caching would have hit. So each bypassed call
//! records whether it repeats a recent call of its class, by a cheap
//! *ghost* key (the parameters, the fingerprints of `Keyed` inputs, and for
//! views their dtype, shape and 16 sampled elements) in a small
//! direct-mapped table, which stands for the hit rate; and one call in
//! [`PROBE_EVERY`] goes through the cache to refresh the hashing and
//! storing costs. The class returns to caching when the expected loss
//! turns negative.
//!
//! Known blind spot: a repeat farther apart than the ghost table remembers
//! (256 calls of the class, fewer with collisions) is not seen.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::hash::Xxh3;
use crate::memory::CostEstimate;
use crate::value::{dispatch_view, Arg};

/// The hit rate is sampled on one cached call in this many (per thread).
pub(crate) const SAMPLE_EVERY: u32 = 8;

/// While bypassing, one call in this many goes through the cache.
pub(crate) const PROBE_EVERY: u32 = 64;

/// Bypass while caching loses more than this fraction of the computation...
const MARGIN: f64 = 0.1;

/// ...plus this many nanoseconds.
const SLACK: f64 = 5_000.0;

/// What a memory-tier lookup costs, about (nanoseconds).
const LOOKUP: f64 = 300.0;

/// The computations, and hit-rate samples, a class must have seen before
/// it may bypass.
const MIN_SAMPLES: u32 = 8;

const GHOST_SLOTS: usize = 256;

/// How a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Through the cache; count whether it hits if `sample`.
    Cache { sample: bool },
    /// Directly to the kernel.
    Bypass,
}

/// A class's bypass state and measurements.
#[derive(Default)]
pub(crate) struct Bypass {
    /// The hashing of the inputs (0 when they are all `Keyed`).
    pub(crate) hash: CostEstimate,
    /// The miss path without its computation (disk lookup, store, insert).
    pub(crate) store: CostEstimate,
    /// Hit or not, as 1 or 0: the mean is the rate.
    hits: CostEstimate,
    calls: AtomicU64,
    bypassed: AtomicU64,
    bypassing: AtomicBool,
    since_probe: AtomicU32,
    ghost: Ghost,
}

thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread samples this call (one in [`SAMPLE_EVERY`]).
fn sampled() -> bool {
    TICK.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n % SAMPLE_EVERY == 1
    })
}

impl Bypass {
    /// How the next call of the class goes (with `enabled` false, always
    /// through the cache).
    pub(crate) fn route(&self, enabled: bool) -> Route {
        if enabled && self.bypassing.load(Ordering::Relaxed) {
            let n = self.since_probe.fetch_add(1, Ordering::Relaxed) + 1;
            if n < PROBE_EVERY {
                return Route::Bypass;
            }
            self.since_probe.store(0, Ordering::Relaxed);
            return Route::Cache { sample: true };
        }
        Route::Cache { sample: sampled() }
    }

    /// A call through the cache ended: whether it hit (if sampled), and
    /// how long hashing its inputs took (if it hashed any).
    pub(crate) fn cached(
        &self,
        hit: Option<bool>,
        hashing: Option<Duration>,
        compute: &CostEstimate,
    ) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = hashing {
            self.hash.record(h);
        }
        if let Some(hit) = hit {
            self.hits.record_nanos(if hit { 1.0 } else { 0.0 });
            self.reconsider(compute);
        }
    }

    /// A call computed directly; `repeat` tells whether it repeated a
    /// recent call (see [`Ghost`]). `compute` has its timing already.
    pub(crate) fn bypassed(&self, repeat: bool, compute: &CostEstimate) {
        self.bypassed.fetch_add(1, Ordering::Relaxed);
        self.hits.record_nanos(if repeat { 1.0 } else { 0.0 });
        self.reconsider(compute);
    }

    /// What a call through the cache costs more than a direct one, on
    /// average (nanoseconds; negative when caching saves time).
    pub(crate) fn expected_loss(&self, compute: &CostEstimate) -> f64 {
        let h = self.hit_rate();
        self.hash.nanos() + LOOKUP + (1.0 - h) * self.store.nanos() - h * compute.nanos()
    }

    fn reconsider(&self, compute: &CostEstimate) {
        if compute.samples() < MIN_SAMPLES || self.hits.samples() < MIN_SAMPLES {
            return;
        }
        let loss = self.expected_loss(compute);
        if !self.bypassing.load(Ordering::Relaxed) {
            if loss > MARGIN * compute.nanos() + SLACK {
                self.since_probe.store(0, Ordering::Relaxed);
                self.bypassing.store(true, Ordering::Relaxed);
            }
        } else if loss < 0.0 {
            self.bypassing.store(false, Ordering::Relaxed);
        }
    }

    /// Whether `key` repeats a recent call (and remembers it).
    pub(crate) fn ghost(&self, key: u64) -> bool {
        self.ghost.seen(key)
    }

    pub(crate) fn hit_rate(&self) -> f64 {
        self.hits.nanos().clamp(0.0, 1.0)
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn bypassed_calls(&self) -> u64 {
        self.bypassed.load(Ordering::Relaxed)
    }

    pub(crate) fn is_bypassing(&self) -> bool {
        self.bypassing.load(Ordering::Relaxed)
    }
}

/// A direct-mapped table of recent ghost keys (allocated on first use).
#[derive(Default)]
pub(crate) struct Ghost {
    slots: OnceLock<Box<[AtomicU64]>>,
}

impl Ghost {
    fn seen(&self, key: u64) -> bool {
        let slots = self
            .slots
            .get_or_init(|| (0..GHOST_SLOTS).map(|_| AtomicU64::new(0)).collect());
        let key = key | 1; // 0 marks an empty slot
        slots[(key >> 1) as usize % GHOST_SLOTS].swap(key, Ordering::Relaxed) == key
    }
}

/// A cheap stand-in for a call's key: equal calls always get the same
/// ghost key; different calls almost always different ones (views are
/// only sampled, so two views differing only between samples collide: a
/// false repeat, which errs toward caching).
pub(crate) fn ghost_key(param_bytes: &[u8], inputs: &[Arg<'_>]) -> u64 {
    let mut h = Xxh3::new();
    h.update(param_bytes);
    for a in inputs {
        match a {
            Arg::Keyed(k) => h.update(&k.fingerprint().to_le_bytes()),
            Arg::View(v) => {
                h.update(v.dtype().descr().as_bytes());
                for d in v.shape() {
                    h.update(&(*d as u64).to_le_bytes());
                }
                dispatch_view!(v, a => {
                    let n = a.len();
                    if n > 0 {
                        let shape = a.shape().to_vec();
                        for s in 0..16usize {
                            let mut flat = s * (n - 1) / 15;
                            let mut ix = vec![0usize; shape.len()];
                            for (i, d) in shape.iter().enumerate().rev() {
                                ix[i] = flat % d;
                                flat /= d;
                            }
                            if let Some(x) = a.get(ndarray::IxDyn(&ix)) {
                                h.update(bytemuck::bytes_of(x));
                            }
                        }
                    }
                });
            }
        }
    }
    h.digest128() as u64
}
