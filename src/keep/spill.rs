//! Spill: a result evicted from memory goes to disk when reading it back
//! would be cheaper than computing it again, within a write rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::memory::CostEstimate;
use crate::sync::lock;

/// When an [`ArrayCache`](crate::ArrayCache) with a disk tier writes a
/// result there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DiskWrites {
    /// Every computed result, as it is computed (write-through; the
    /// default): the directory is a persistent cache shared by processes,
    /// and a miss is computed once across them.
    #[default]
    Always,
    /// Only results the memory tier lets go (evicted, not admitted, or too
    /// big for it) whose recomputation costs more than reading them back
    /// (measured), within a write rate
    /// ([`spill_rate`](crate::ArrayCacheBuilder::spill_rate)), in the
    /// background: the disk is an overflow of memory. Cheap results never
    /// touch the disk; a disk hit goes back to memory and keeps its file,
    /// so evicting it again writes nothing. Misses are not locked across
    /// processes.
    OnEviction,
}

/// The default write rate of spills: 64 MiB/s, in bursts of up to 256 MiB.
pub(crate) const DEFAULT_SPILL_RATE: u64 = 64 << 20;

/// Results smaller than this teach the fixed part of a load's cost, larger
/// ones its cost per byte.
const SMALL: u64 = 64 << 10;

/// Decides which evicted results are written, and counts them.
pub(crate) struct SpillGate {
    /// Bytes per second, and the bucket's size.
    rate: f64,
    burst: f64,
    /// (tokens in bytes, when last refilled)
    bucket: Mutex<(f64, Instant)>,
    /// Reading back a small entry (nanoseconds).
    load_fixed: CostEstimate,
    /// Reading back a large one, per byte (nanoseconds).
    load_per_byte: CostEstimate,
    pub(crate) spilled: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

impl SpillGate {
    pub(crate) fn new(rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let burst = rate.max(crate::disk::MAX_PENDING_BYTES as f64);
        SpillGate {
            rate,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
            load_fixed: CostEstimate::new(),
            load_per_byte: CostEstimate::new(),
            spilled: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Learns from a disk hit of `bytes` that took `took`.
    pub(crate) fn loaded(&self, bytes: u64, took: Duration) {
        let ns = took.as_nanos() as f64;
        if bytes < SMALL {
            self.load_fixed.record_timing_nanos(ns);
        } else {
            self.load_per_byte.record_timing_nanos(ns / bytes as f64);
        }
    }

    /// What reading back `bytes` costs (nanoseconds): measured, or before
    /// any measurement 50 µs plus 1 ns per byte (1 GB/s, a cold read).
    pub(crate) fn load_cost(&self, bytes: u64) -> f64 {
        let fixed = match self.load_fixed.samples() {
            0 => 50_000.0,
            _ => self.load_fixed.nanos(),
        };
        let per_byte = match self.load_per_byte.samples() {
            0 => 1.0,
            _ => self.load_per_byte.nanos(),
        };
        if bytes < SMALL {
            fixed
        } else {
            per_byte * bytes as f64
        }
    }

    /// Whether to write an evicted result of `bytes` whose recomputation
    /// costs `cost` nanoseconds; takes its bytes from the rate if so.
    pub(crate) fn admit(&self, bytes: u64, cost: f64) -> bool {
        if cost <= self.load_cost(bytes) {
            return false;
        }
        let mut b = lock(&self.bucket);
        let now = Instant::now();
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * self.rate).min(self.burst);
        b.1 = now;
        if b.0 < bytes as f64 {
            drop(b);
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        b.0 -= bytes as f64;
        true
    }

    /// Counts a write `admit`ted: queued, or dropped for want of room.
    pub(crate) fn written(&self, queued: bool) {
        let counter = if queued { &self.spilled } else { &self.skipped };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
