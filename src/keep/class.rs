//! Cost classes: a kernel on one dtype and one range of input sizes.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::bypass::Bypass;
use crate::element::DType;
use crate::memory::CostEstimate;
use crate::value::Arg;

/// Size buckets: `floor(log2(input elements))`, the last one open-ended.
const BUCKETS: usize = 48;

/// What the calls of one class cost, and whether caching them pays.
pub(crate) struct CostClass {
    pub(crate) kernel: String,
    pub(crate) version: String,
    dtype: Option<DType>,
    bucket: u32,
    /// The computation's time.
    pub(crate) compute: CostEstimate,
    pub(crate) bypass: Bypass,
}

impl CostClass {
    pub(crate) fn new(kernel: &str, version: &str, dtype: Option<DType>, bucket: u32) -> Self {
        CostClass {
            kernel: kernel.to_owned(),
            version: version.to_owned(),
            dtype,
            bucket,
            compute: CostEstimate::new(),
            bypass: Bypass::default(),
        }
    }

    /// What recomputing a result of this class costs, in nanoseconds: the
    /// class's smoothed estimate, or `own` (the result's own timing) before
    /// the class has one.
    pub(crate) fn cost_ns(&self, own: Duration) -> f64 {
        if self.compute.samples() > 0 {
            self.compute.nanos()
        } else {
            own.as_nanos() as f64
        }
    }

    pub(crate) fn info(&self) -> ClassInfo {
        let b = &self.bypass;
        let lo = if self.bucket == 0 {
            0
        } else {
            1u64 << self.bucket
        };
        ClassInfo {
            kernel: self.kernel.clone(),
            dtype: self.dtype,
            elements: (
                lo,
                (self.bucket as usize + 1 < BUCKETS).then(|| 2u64 << self.bucket),
            ),
            compute_time: self.compute.get(),
            cached_call_time: (self.compute.samples() > 0).then(|| {
                let loss = b.expected_loss(&self.compute);
                Duration::from_nanos((self.compute.nanos() + loss).max(0.0) as u64)
            }),
            hash_time: b.hash.get(),
            store_time: b.store.get(),
            hit_rate: b.hit_rate(),
            calls: b.calls(),
            bypassed: b.bypassed_calls(),
            bypassing: b.is_bypassing(),
        }
    }
}

/// The classes of one kernel, created on first use, found without a lock.
pub(crate) struct ClassTable {
    kernel: String,
    version: String,
    /// `(1 + dtypes) × BUCKETS`: no dtype (no input) first.
    slots: Box<[OnceLock<Arc<CostClass>>]>,
}

impl ClassTable {
    pub(crate) fn new(kernel: &str, version: &str) -> Self {
        ClassTable {
            kernel: kernel.to_owned(),
            version: version.to_owned(),
            slots: (0..(1 + DType::ALL.len()) * BUCKETS)
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// The class of calls whose first input has `dtype` and whose inputs
    /// hold `elements` elements in all.
    pub(crate) fn get(&self, dtype: Option<DType>, elements: u64) -> &Arc<CostClass> {
        let d = dtype.map_or(0, |d| {
            1 + DType::ALL.iter().position(|x| *x == d).unwrap_or(0)
        });
        let bucket = if elements <= 1 {
            0
        } else {
            (63 - elements.leading_zeros()).min(BUCKETS as u32 - 1)
        };
        self.slots[d * BUCKETS + bucket as usize]
            .get_or_init(|| Arc::new(CostClass::new(&self.kernel, &self.version, dtype, bucket)))
    }

    /// The class of a call on `inputs`.
    pub(crate) fn for_inputs(&self, inputs: &[Arg<'_>]) -> &Arc<CostClass> {
        let dtype_len = |a: &Arg<'_>| match a {
            Arg::View(v) => (v.dtype(), v.len()),
            Arg::Keyed(k) => (k.dtype(), k.array().len()),
        };
        let elements = inputs.iter().map(|a| dtype_len(a).1 as u64).sum();
        self.get(inputs.first().map(|a| dtype_len(a).0), elements)
    }

    /// The classes used so far.
    pub(crate) fn used(&self) -> impl Iterator<Item = &Arc<CostClass>> {
        self.slots.iter().filter_map(OnceLock::get)
    }
}

/// What one class of calls costs and how the cache treats it: see
/// [`ArrayCache::classes`](crate::ArrayCache::classes).
///
/// A class is a kernel on one dtype (its first input's) and a range of
/// input sizes (the elements of all its inputs, within a power of two).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClassInfo {
    /// The kernel.
    pub kernel: String,
    /// Its first input's dtype (`None` for a kernel without inputs).
    pub dtype: Option<DType>,
    /// The range of input elements, `[lo, hi)` (`hi` is `None` for the
    /// largest bucket).
    pub elements: (u64, Option<u64>),
    /// The smoothed time of a computation.
    pub compute_time: Option<Duration>,
    /// The expected time of a call through the cache: hashing, lookup,
    /// and on a miss (by the hit rate) the computation and the store.
    pub cached_call_time: Option<Duration>,
    /// The smoothed time to fingerprint the inputs of a call (when they
    /// are views; `Keyed` inputs cost nothing).
    pub hash_time: Option<Duration>,
    /// The smoothed time a miss spends besides computing (disk lookup,
    /// store, insertion).
    pub store_time: Option<Duration>,
    /// The smoothed hit rate (while bypassing: how often a call repeated a
    /// recent one).
    pub hit_rate: f64,
    /// Calls through the cache.
    pub calls: u64,
    /// Calls that ran the kernel directly because caching cost more than
    /// it saved.
    pub bypassed: u64,
    /// Whether calls of this class currently bypass the cache.
    pub bypassing: bool,
}

impl fmt::Display for ClassInfo {
    /// `sort float64 [2^20, 2^21) elements: compute 7.25 ms, through the
    /// cache 0.88 ms (hashing 0.29 ms, storing 0.04 ms, hit rate 92%), 310
    /// calls: cached`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| match d {
            Some(d) => format!("{:.3} ms", d.as_secs_f64() * 1e3),
            None => "?".to_owned(),
        };
        let pow = |n: u64| match n {
            0 => "0".to_owned(),
            n => format!("2^{}", n.trailing_zeros()),
        };
        let hi = self.elements.1.map_or("inf".to_owned(), pow);
        write!(
            f,
            "{} {} [{}, {}) elements: compute {}, through the cache {} (hashing {}, storing {}, hit rate {:.0}%), {} calls: ",
            self.kernel,
            self.dtype.map_or("-", DType::name),
            pow(self.elements.0),
            hi,
            ms(self.compute_time),
            ms(self.cached_call_time),
            ms(self.hash_time),
            ms(self.store_time),
            self.hit_rate * 100.0,
            self.calls,
        )?;
        if self.bypassing {
            write!(
                f,
                "bypassing the cache ({} calls computed directly)",
                self.bypassed
            )
        } else if self.bypassed > 0 {
            write!(f, "cached (bypassed {} calls before)", self.bypassed)
        } else {
            f.write_str("cached")
        }
    }
}
