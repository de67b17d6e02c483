//! `ArrayCache`: the facade. A call is keyed, then looked up in memory,
//! then on disk, then in the remote tier (Redis), then computed.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::disk::{DiskStats, DiskTier, EntryInfo, Fetched};
use crate::error::{Error, Result};
use crate::keep::{ClassInfo, ClassTable, CostClass, DiskWrites, Route, SpillGate};
use crate::kernel::{Params, Prepared, Registry};
use crate::key::{call_key, Fingerprint};
use crate::memory::{CacheStats, Clock, EvictionCause, FlightError, MemoryTier, Policy};
#[cfg(feature = "remote")]
use crate::remote::{RemoteOptions, RemoteStats, RemoteTier};
use crate::value::{AnyArray, AnyView, Arg, Keyed};

/// What a computation is called in the tiers: its name and version (a
/// kernel's, or an expression's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Label<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
}

/// The memory budget of an [`ArrayCache`] when none is given: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// What the memory tier holds for one call.
#[derive(Clone)]
struct Entry {
    result: Keyed,
    /// How long the computation took (what a hit saves).
    cost: Duration,
    /// The class of the computation: its smoothed cost ranks the entry.
    class: Arc<CostClass>,
    /// Whether the disk tier has it (then evicting it writes nothing).
    on_disk: bool,
}

/// Per-kernel counters (relaxed atomics) and cost classes.
struct KernelCounters {
    calls: AtomicU64,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    remote_hits: AtomicU64,
    computed: AtomicU64,
    compute_nanos: AtomicU64,
    saved_nanos: AtomicU64,
    bypassed: AtomicU64,
    classes: ClassTable,
}

impl KernelCounters {
    fn new(name: &str, version: &str) -> Self {
        KernelCounters {
            calls: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            remote_hits: AtomicU64::new(0),
            computed: AtomicU64::new(0),
            compute_nanos: AtomicU64::new(0),
            saved_nanos: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            classes: ClassTable::new(name, version),
        }
    }

    fn reset(&self) {
        for a in [
            &self.calls,
            &self.memory_hits,
            &self.disk_hits,
            &self.remote_hits,
            &self.computed,
            &self.compute_nanos,
            &self.saved_nanos,
            &self.bypassed,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    fn snapshot(&self, name: &str) -> KernelInfo {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KernelInfo {
            name: name.to_owned(),
            calls: load(&self.calls),
            memory_hits: load(&self.memory_hits),
            disk_hits: load(&self.disk_hits),
            remote_hits: load(&self.remote_hits),
            computed: load(&self.computed),
            compute_time: Duration::from_nanos(load(&self.compute_nanos)),
            time_saved: Duration::from_nanos(load(&self.saved_nanos)),
            bypassed: load(&self.bypassed),
        }
    }
}

/// Statistics of one kernel in an [`ArrayCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KernelInfo {
    /// The kernel's name.
    pub name: String,
    /// Cached calls made (not counting `call_raw`).
    pub calls: u64,
    /// Calls answered from memory.
    pub memory_hits: u64,
    /// Calls answered from disk.
    pub disk_hits: u64,
    /// Calls answered by the remote tier.
    pub remote_hits: u64,
    /// Calls that ran the kernel.
    pub computed: u64,
    /// Total time spent running the kernel.
    pub compute_time: Duration,
    /// Total compute time that hits did not have to spend.
    pub time_saved: Duration,
    /// Calls that ran the kernel directly, bypassing the cache, because
    /// caching cost more than it saved (see [`ArrayCache::classes`]).
    pub bypassed: u64,
}

/// Statistics of an [`ArrayCache`]: the memory tier's, the disk tier's and
/// per kernel.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ArrayCacheInfo {
    /// The memory tier (hits, misses, bytes, evictions ...).
    pub memory: CacheStats,
    /// The disk tier, if there is one.
    pub disk: Option<DiskStats>,
    /// The remote tier, if there is one.
    #[cfg(feature = "remote")]
    pub remote: Option<RemoteStats>,
    /// Bytes of input arrays hashed to make keys. Inputs passed as
    /// [`Keyed`] (including every result of a call) are never hashed.
    pub bytes_hashed: u64,
    /// Total compute time saved by memory, disk and remote hits.
    pub time_saved: Duration,
    /// Results written to disk when memory let them go
    /// ([`DiskWrites::OnEviction`]).
    pub spilled: u64,
    /// Per kernel, in name order (kernels never called are left out).
    pub kernels: Vec<KernelInfo>,
}

/// One call of a batch: see [`ArrayCache::call_many`].
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The kernel's name.
    pub kernel: &'a str,
    /// Its inputs.
    pub inputs: Vec<Arg<'a>>,
    /// Its parameters.
    pub params: Params,
}

impl<'a> Call<'a> {
    /// A call of `kernel` on `inputs` with `params`.
    pub fn new(kernel: &'a str, inputs: Vec<Arg<'a>>, params: Params) -> Self {
        Call {
            kernel,
            inputs,
            params,
        }
    }
}

/// Where the result of one call came from: see
/// [`ArrayCache::call_with_source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The memory tier, or the computation of another caller that this
    /// call waited for.
    Memory,
    /// The disk tier.
    Disk,
    /// This call ran the kernel directly, storing nothing: caching calls
    /// like it currently costs more than it saves (see
    /// [`ArrayCache::classes`]).
    Bypassed,
    /// The remote tier (Redis): the result was verified and written back
    /// to the disk tier (if any) and to memory.
    Remote,
    /// This call ran the kernel.
    Computed {
        /// Whether the result was stored on disk: written (with synchronous
        /// disk writes, [`ArrayCacheBuilder::disk_background_writes`]) or
        /// queued for a writable directory. Always false without a disk tier.
        stored: bool,
    },
}

impl fmt::Display for Source {
    /// `memory hit`, `disk hit`, `remote hit`, `computed and stored`,
    /// `computed, not stored`, `computed, cache bypassed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Memory => "memory hit",
            Source::Disk => "disk hit",
            Source::Bypassed => "computed, cache bypassed",
            Source::Remote => "remote hit",
            Source::Computed { stored: true } => "computed and stored",
            Source::Computed { stored: false } => "computed, not stored",
        })
    }
}

/// Builds an [`ArrayCache`]; see [`ArrayCache::builder`].
pub struct ArrayCacheBuilder {
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    ttl: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    registry: Option<Registry>,
    disk_dir: Option<PathBuf>,
    disk_max_bytes: Option<u64>,
    disk_background: bool,
    disk_require_writable: bool,
    disk_access_granularity: Option<std::time::Duration>,
    policy: Policy,
    bypass: bool,
    disk_writes: DiskWrites,
    spill_rate: u64,
    secret: Option<Vec<u8>>,
    #[cfg(feature = "remote")]
    remote: Option<RemoteOptions>,
}

impl fmt::Debug for ArrayCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayCacheBuilder")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("disk_dir", &self.disk_dir)
            .field("disk_max_bytes", &self.disk_max_bytes)
            .field("policy", &self.policy)
            .field("bypass", &self.bypass)
            .field("disk_writes", &self.disk_writes)
            .finish_non_exhaustive()
    }
}

impl ArrayCacheBuilder {
    /// Which results the memory tier keeps (default
    /// [`Policy::CostAware`]: the ones whose recomputation saves the most
    /// time per byte, ranked by their class's smoothed compute time; see
    /// [`memory::policy`](crate::memory::policy)). [`Policy::Lru`] keeps
    /// the most recently used.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Whether a class of calls whose caching costs more than it saves
    /// (hashing fresh inputs of a cheap kernel) calls the kernel directly
    /// (default: yes). See [`ArrayCache::classes`].
    pub fn bypass(mut self, yes: bool) -> Self {
        self.bypass = yes;
        self
    }

    /// When results are written to the disk tier (default
    /// [`DiskWrites::Always`]).
    pub fn disk_writes(mut self, when: DiskWrites) -> Self {
        self.disk_writes = when;
        self
    }

    /// The most bytes per second that [`DiskWrites::OnEviction`] writes
    /// (default 64 MiB/s, in bursts of up to
    /// [`MAX_PENDING_BYTES`](crate::disk::MAX_PENDING_BYTES)); evicted
    /// results beyond it are dropped.
    pub fn spill_rate(mut self, bytes_per_second: u64) -> Self {
        self.spill_rate = bytes_per_second;
        self
    }

    /// Bounds the number of results kept in memory.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// Bounds the bytes of results kept in memory (default
    /// [`DEFAULT_MAX_BYTES`]). A result larger than this is returned but not
    /// kept in memory.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Results expire from memory this long after they were computed.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The clock for the TTL (tests inject a [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The kernels (default: [`Registry::with_builtins`]).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Persists results as `.npy` files under `dir` (created if missing).
    pub fn disk(mut self, dir: impl Into<PathBuf>) -> Self {
        self.disk_dir = Some(dir.into());
        self
    }

    /// Bounds the bytes on disk, enforced on every write, least recently
    /// used first (default: unbounded).
    pub fn disk_max_bytes(mut self, n: u64) -> Self {
        self.disk_max_bytes = Some(n);
        self
    }

    /// Whether results are written to disk by a background thread (the
    /// default: a miss returns without waiting for the disk) or before the
    /// call returns (then [`Source::Computed`] says whether the write
    /// succeeded).
    pub fn disk_background_writes(mut self, yes: bool) -> Self {
        self.disk_background = yes;
        self
    }

    /// How stale an entry's recorded last access must be for a disk hit to
    /// record a new one (default one minute: see
    /// [`DiskTierBuilder::access_granularity`](crate::disk::DiskTierBuilder::access_granularity)).
    pub fn disk_access_granularity(mut self, d: std::time::Duration) -> Self {
        self.disk_access_granularity = Some(d);
        self
    }

    /// Fail to build when the disk directory cannot be created or written,
    /// instead of using it read-only with a warning (the default).
    pub fn disk_require_writable(mut self, yes: bool) -> Self {
        self.disk_require_writable = yes;
        self
    }

    /// Adds the remote tier, shared by many processes and machines: Redis
    /// at a URL (`redis://host:6379`, `redis+cluster://a:7000,b:7001`...)
    /// or [`RemoteOptions`]. A miss of memory and disk asks Redis before
    /// computing; a computed result worth it is uploaded in the
    /// background. See the [`remote`](crate::remote) module.
    ///
    /// Building connects nothing, and a Redis that fails never fails a
    /// call: only an invalid URL or option makes [`build`](Self::build)
    /// fail.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ndcache::remote::{RemoteMode, RemoteOptions};
    /// use ndcache::{ArrayCache, AsArg, Params};
    /// let cache = ArrayCache::builder()
    ///     .disk("/var/cache/sweep")
    ///     .remote(
    ///         RemoteOptions::new("redis://:password@cache-host:6379")
    ///             .namespace("sweep")
    ///             .mode(RemoteMode::ReadWrite)
    ///             .ttl(Duration::from_secs(7 * 24 * 3600)),
    ///     )
    ///     .secret("team secret") // or $NDCACHE_SECRET
    ///     .build()?;
    /// let x = ndarray::Array1::linspace(0.0, 1.0, 1_000_000);
    /// let (y, source) = cache.call_with_source("exp", &[x.arg()], &Params::new())?;
    /// println!("{source}"); // computed and stored, then "remote hit" on other machines
    /// println!("{}", cache.info().remote.unwrap()); // hits=0 misses=1 ...
    /// # Ok::<(), ndcache::Error>(())
    /// ```
    #[cfg(feature = "remote")]
    pub fn remote(mut self, options: impl Into<RemoteOptions>) -> Self {
        self.remote = Some(options.into());
        self
    }

    /// Signs the entries written to the disk and remote tiers, and accepts
    /// only entries signed with this secret: a reader refuses, counts and
    /// deletes any other (an empty secret turns signing off). Without this,
    /// the secret is `$NDCACHE_SECRET` if that is set and not empty.
    ///
    /// A signature is a keyed BLAKE3 of the entry's metadata and every
    /// byte of its result: only a holder of the secret can write an entry
    /// that is served. Signing costs a second pass over each result written
    /// and read: BLAKE3 at about 2.7 GB/s on one core (3 ms per 8 MB, in
    /// `remote_tier/hit_signed/8MB`).
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Builds the cache; an error if the options are inconsistent or the
    /// disk directory cannot be opened.
    pub fn build(self) -> Result<ArrayCache> {
        let mut b = MemoryTier::builder()
            .policy(self.policy)
            .max_bytes(self.max_bytes.unwrap_or(DEFAULT_MAX_BYTES))
            .weigher(|_, e: &Entry| e.result.array().nbytes())
            .cost(|_, e: &Entry| e.class.cost_ns(e.cost));
        if let Some(n) = self.max_entries {
            b = b.max_entries(n);
        }
        if let Some(t) = self.ttl {
            b = b.ttl(t);
        }
        if let Some(c) = self.clock {
            b = b.clock(c);
        }
        if self.disk_max_bytes.is_some() && self.disk_dir.is_none() {
            return Err(Error::Config(
                "disk_max_bytes was given without a disk directory".into(),
            ));
        }
        let disk = match self.disk_dir {
            Some(dir) => {
                let mut b = DiskTier::builder(dir)
                    .background_writes(self.disk_background)
                    .require_writable(self.disk_require_writable);
                if let Some(n) = self.disk_max_bytes {
                    b = b.max_bytes(n);
                }
                if let Some(d) = self.disk_access_granularity {
                    b = b.access_granularity(d);
                }
                if let Some(s) = &self.secret {
                    b = b.secret(s);
                }
                Some(Arc::new(b.build()?))
            }
            None => None,
        };
        let mut spill = None;
        if let Some(disk) = &disk {
            let gate = Arc::new(SpillGate::new(self.spill_rate));
            b = b.eviction_listener(spill_listener(Arc::clone(disk), Arc::clone(&gate)));
            spill = Some(gate);
        }
        #[cfg(feature = "remote")]
        let remote = match self.remote {
            Some(mut o) => {
                if let Some(s) = &self.secret {
                    o = o.secret(s);
                }
                Some(RemoteTier::new(o)?)
            }
            None => None,
        };
        let registry = self.registry.unwrap_or_else(Registry::with_builtins);
        let kernels = registry
            .kernels()
            .map(|k| {
                let counters = KernelCounters::new(k.name(), k.version());
                (k.name().to_owned(), counters)
            })
            .collect();
        Ok(ArrayCache {
            registry,
            memory: b.build()?,
            disk,
            #[cfg(feature = "remote")]
            remote,
            kernels,
            bytes_hashed: AtomicU64::new(0),
            bypass: self.bypass,
            disk_writes: self.disk_writes,
            spill,
        })
    }
}

/// A cache of kernel results: memory (sharded, cost-aware, with a byte budget and TTL),
/// then optionally disk (`.npy` files), then computation.
///
/// # Example: the second call is a hit, chained calls hash nothing
///
/// ```
/// use ndcache::{ArrayCache, AsArg, Params};
/// let cache = ArrayCache::new();
/// let x = ndarray::Array1::linspace(0.0, 1.0, 1000);
/// let e1 = cache.call("exp", &[x.arg()], &Params::new())?;
/// let e2 = cache.call("exp", &[x.arg()], &Params::new())?;
/// assert!(e1.array().ptr_eq(e2.array()));          // the same shared result
/// let s = cache.call("sum", &[e1.arg()], &Params::new())?; // e1 is not re-hashed
/// assert!((s.typed::<f64>()?[[]] - 1718.4228).abs() < 1e-3); // numpy: 1718.422830878299
/// let info = cache.info();
/// assert_eq!((info.memory.hits, info.memory.misses), (1, 2));
/// # Ok::<(), ndcache::Error>(())
/// ```
///
/// # Thread safety
///
/// `ArrayCache` is `Send + Sync`; share it with an `Arc`. Concurrent calls
/// with the same key compute once (single-flight), in this process and, with
/// a disk tier, across processes sharing the directory, on rayon pool
/// threads too: a miss of a pool thread runs on a pool of ndcache's that
/// runs only cache misses and their kernels (`ndcache-compute-*`), so that
/// a parameter sweep (`par_iter` over calls, some sharing a key) neither
/// deadlocks nor computes a key twice.
///
/// # Panics
///
/// A kernel that panics does not panic the caller: the panic is caught
/// once, and the caller that ran the kernel and every caller waiting for it
/// get the same [`Error::Panicked`]. Nothing is cached.
pub struct ArrayCache {
    registry: Registry,
    memory: MemoryTier<Fingerprint, Entry>,
    disk: Option<Arc<DiskTier>>,
    #[cfg(feature = "remote")]
    remote: Option<RemoteTier>,
    kernels: HashMap<String, KernelCounters>,
    bytes_hashed: AtomicU64,
    bypass: bool,
    disk_writes: DiskWrites,
    spill: Option<Arc<SpillGate>>,
}

/// The memory tier's eviction listener with a disk tier: writes the results
/// memory lets go that are worth reading back (see [`DiskWrites`]).
fn spill_listener(
    disk: Arc<DiskTier>,
    gate: Arc<SpillGate>,
) -> impl Fn(&Fingerprint, &Entry, EvictionCause) + Send + Sync + 'static {
    move |key, e, _cause| {
        if e.on_disk || !disk.is_writable() {
            return;
        }
        let array = e.result.array();
        if gate.admit(array.nbytes(), e.class.cost_ns(e.cost)) {
            // Never waits: the thread may be a pool thread, or a flight's
            // leader with callers waiting for it.
            let info = EntryInfo::new(&e.class.kernel, &e.class.version, e.cost);
            gate.written(disk.try_put(*key, array, info));
        }
    }
}

impl fmt::Debug for ArrayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayCache")
            .field("memory", &self.memory)
            .field("disk", &self.disk)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Default for ArrayCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrayCache {
    /// A memory-only cache with the builtin kernels and a
    /// [`DEFAULT_MAX_BYTES`] budget.
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(c) => c,
            Err(_) => unreachable!("the default options are valid"),
        }
    }

    /// A builder.
    pub fn builder() -> ArrayCacheBuilder {
        ArrayCacheBuilder {
            max_entries: None,
            max_bytes: None,
            ttl: None,
            clock: None,
            registry: None,
            disk_dir: None,
            disk_max_bytes: None,
            disk_background: true,
            disk_require_writable: false,
            disk_access_granularity: None,
            policy: Policy::default(),
            bypass: true,
            disk_writes: DiskWrites::default(),
            spill_rate: crate::keep::DEFAULT_SPILL_RATE,
            secret: None,
            #[cfg(feature = "remote")]
            remote: None,
        }
    }

    /// The kernels this cache runs.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The disk tier, if any.
    pub fn disk(&self) -> Option<&DiskTier> {
        self.disk.as_deref()
    }

    /// The remote tier, if any.
    #[cfg(feature = "remote")]
    pub fn remote(&self) -> Option<&RemoteTier> {
        self.remote.as_ref()
    }

    /// Fingerprints `array` once, for reuse as an input of many calls.
    pub fn keyed(&self, array: impl Into<AnyArray>) -> Keyed {
        let array = array.into();
        self.bytes_hashed
            .fetch_add(array.nbytes(), Ordering::Relaxed);
        Keyed::new(array)
    }

    fn fingerprint_of(&self, arg: &Arg<'_>) -> Fingerprint {
        match arg {
            Arg::Keyed(k) => k.fingerprint(),
            Arg::View(v) => {
                self.bytes_hashed.fetch_add(v.nbytes(), Ordering::Relaxed);
                v.fingerprint()
            }
        }
    }

    /// Fingerprints a view, counting the bytes hashed.
    pub(crate) fn fingerprint_view(&self, v: &AnyView<'_>) -> Fingerprint {
        self.bytes_hashed.fetch_add(v.nbytes(), Ordering::Relaxed);
        v.fingerprint()
    }

    /// Whether the memory tier holds `key` (counts nothing).
    pub(crate) fn memory_contains(&self, key: Fingerprint) -> bool {
        self.memory.contains_key(&key)
    }

    /// The memory tier's result for `key`, counted as a hit or a miss.
    pub(crate) fn memory_get(&self, key: Fingerprint) -> Option<AnyArray> {
        self.memory.get(&key).map(|e| e.result.into_array())
    }

    /// Calls kernel `name` on `inputs` with `params`, through the cache.
    ///
    /// Returns the shared result, carrying a fingerprint derived from the
    /// call: passing it to another call hashes nothing.
    pub fn call(&self, name: &str, inputs: &[Arg<'_>], params: &Params) -> Result<Keyed> {
        self.call_with_source(name, inputs, params).map(|(k, _)| k)
    }

    /// [`call`](Self::call), also telling where the result came from:
    /// memory, disk, or computed (and then whether it was stored on disk).
    ///
    /// ```
    /// use ndcache::{ArrayCache, AsArg, Params, Source};
    /// let cache = ArrayCache::new();
    /// let x = ndarray::Array1::linspace(0.0, 1.0, 8);
    /// let (_, first) = cache.call_with_source("exp", &[x.arg()], &Params::new())?;
    /// let (_, second) = cache.call_with_source("exp", &[x.arg()], &Params::new())?;
    /// assert_eq!((first, second), (Source::Computed { stored: false }, Source::Memory));
    /// # Ok::<(), ndcache::Error>(())
    /// ```
    pub fn call_with_source(
        &self,
        name: &str,
        inputs: &[Arg<'_>],
        params: &Params,
    ) -> Result<(Keyed, Source)> {
        let prepared = self.registry.prepare(name, inputs.len(), params)?;
        let counters = self.kernels.get(prepared.kernel.name());
        let class = counters.map(|c| c.classes.for_inputs(inputs));
        let route = match class {
            Some(class) => class.bypass.route(self.bypass),
            None => Route::Cache { sample: false },
        };
        let sample = match (route, class, counters) {
            (Route::Bypass, Some(class), Some(c)) => {
                return self.bypassed(&prepared, inputs, class, c)
            }
            (Route::Cache { sample }, ..) => sample,
            (Route::Bypass, ..) => false,
        };
        let (views, bytes) = inputs.iter().fold((0, 0), |(n, b), a| match a {
            Arg::View(v) => (n + 1, b + v.nbytes()),
            Arg::Keyed(_) => (n, b),
        });
        let start = (views > 0).then(Instant::now);
        // Several big inputs to hash: hash them at the same time (an input
        // under two chunks is hashed on one thread). Small ones are not
        // worth waking the pool for.
        let fps: Vec<Fingerprint> = if views > 1 && bytes >= 2 * crate::CHUNK_BYTES as u64 {
            inputs.par_iter().map(|a| self.fingerprint_of(a)).collect()
        } else {
            inputs.iter().map(|a| self.fingerprint_of(a)).collect()
        };
        let hashing = start.map(|t| t.elapsed());
        let outcome = self.call_prepared(&prepared, inputs, &fps, class)?;
        if let Some(class) = class {
            let hit = matches!(outcome.1, Source::Memory | Source::Disk);
            class
                .bypass
                .cached(sample.then_some(hit), hashing, &class.compute);
        }
        Ok(outcome)
    }

    /// A call that bypasses the cache: computed directly, stored nowhere,
    /// its result fingerprinted only if asked (see [`crate::keep`]).
    fn bypassed(
        &self,
        prepared: &Prepared,
        inputs: &[Arg<'_>],
        class: &CostClass,
        counters: &KernelCounters,
    ) -> Result<(Keyed, Source)> {
        counters.calls.fetch_add(1, Ordering::Relaxed);
        counters.bypassed.fetch_add(1, Ordering::Relaxed);
        let repeat = class
            .bypass
            .ghost(crate::keep::ghost_key(&prepared.param_bytes, inputs));
        let label = Label {
            name: prepared.kernel.name(),
            version: prepared.kernel.version(),
        };
        let (array, cost) = self.compute(label, || {
            let views: Vec<AnyView<'_>> = inputs.iter().map(Arg::view).collect();
            prepared.compute(&views)
        })?;
        class.compute.record(cost);
        class.bypass.bypassed(repeat, &class.compute);
        Ok((Keyed::hashed_on_demand(array), Source::Bypassed))
    }

    /// Runs kernel `name` with no cache at all: no hashing, no lookup, no
    /// insertion (the `__wrapped__` of the product).
    pub fn call_raw(&self, name: &str, inputs: &[Arg<'_>], params: &Params) -> Result<AnyArray> {
        let views: Vec<AnyView<'_>> = inputs.iter().map(Arg::view).collect();
        self.registry.call(name, &views, params)
    }

    fn call_prepared(
        &self,
        prepared: &Prepared,
        inputs: &[Arg<'_>],
        fps: &[Fingerprint],
        class: Option<&Arc<CostClass>>,
    ) -> Result<(Keyed, Source)> {
        let kernel = prepared.kernel.as_ref();
        let key = call_key(kernel.name(), kernel.version(), &prepared.param_bytes, fps);
        let label = Label {
            name: kernel.name(),
            version: kernel.version(),
        };
        self.get_or_compute_in(key, label, class, || {
            let views: Vec<AnyView<'_>> = inputs.iter().map(Arg::view).collect();
            prepared.compute(&views)
        })
    }

    /// The tier chain for one key, whatever computes it (a registry call,
    /// an expression): memory, then disk (when there is one), then
    /// `compute`, with single-flight in the process and across processes.
    /// The result carries `key.derive()`. `label` names the computation in
    /// the disk tier's sidecar, in errors and in the per-kernel counters (a
    /// label that is not a registered kernel is counted nowhere per kernel).
    /// Its results are ranked by their own timing (no class to smooth it).
    pub(crate) fn get_or_compute(
        &self,
        key: Fingerprint,
        label: Label<'_>,
        compute: impl FnOnce() -> Result<AnyArray> + Send,
    ) -> Result<(Keyed, Source)> {
        self.get_or_compute_in(key, label, None, compute)
    }

    /// [`get_or_compute`](Self::get_or_compute) for a computation of a
    /// known cost class (`None`: a class of its own, made on a miss).
    fn get_or_compute_in(
        &self,
        key: Fingerprint,
        label: Label<'_>,
        class: Option<&Arc<CostClass>>,
        compute: impl FnOnce() -> Result<AnyArray> + Send,
    ) -> Result<(Keyed, Source)> {
        let counters = self.kernels.get(label.name);
        if let Some(c) = counters {
            c.calls.fetch_add(1, Ordering::Relaxed);
        }
        let mut source = None;
        let miss = || {
            let class = match class {
                Some(c) => Arc::clone(c),
                None => Arc::new(CostClass::new(label.name, label.version, None, 0)),
            };
            let start = Instant::now();
            let (entry, from) = self.load_or_compute(key, label, class, compute)?;
            if matches!(from, Source::Computed { .. }) {
                // What caching added to the computation: disk lookup, store.
                let overhead = start.elapsed().saturating_sub(entry.cost);
                entry.class.bypass.store.record(overhead);
            }
            source = Some(from);
            Ok(entry)
        };
        let outcome = self.memory.try_get_or_insert_isolated(key, miss);
        match outcome {
            Ok(entry) => {
                if source.is_none() {
                    if let Some(c) = counters {
                        c.memory_hits.fetch_add(1, Ordering::Relaxed);
                        c.saved_nanos
                            .fetch_add(entry.cost.as_nanos() as u64, Ordering::Relaxed);
                    }
                }
                Ok((entry.result, source.unwrap_or(Source::Memory)))
            }
            Err(FlightError::Failed(e)) => Err(e),
            Err(FlightError::Panicked) => Err(Error::Panicked {
                what: label.name.to_owned(),
                message: "the computation this call waited for panicked".to_owned(),
            }),
            Err(FlightError::Reentrant) => Err(Error::Reentrant {
                what: label.name.to_owned(),
            }),
        }
    }

    /// Runs a computation, catching a panic once so that every caller gets
    /// the same [`Error::Panicked`], and counts it.
    fn compute(
        &self,
        label: Label<'_>,
        compute: impl FnOnce() -> Result<AnyArray> + Send,
    ) -> Result<(AnyArray, Duration)> {
        let start = Instant::now();
        let array = crate::sync::catch_panic(compute).map_err(|message| Error::Panicked {
            what: label.name.to_owned(),
            message,
        })??;
        let cost = start.elapsed();
        if let Some(c) = self.kernels.get(label.name) {
            c.computed.fetch_add(1, Ordering::Relaxed);
            c.compute_nanos
                .fetch_add(cost.as_nanos() as u64, Ordering::Relaxed);
        }
        Ok((array, cost))
    }

    /// The memory miss path: the disk tier's get-or-compute if there is a
    /// disk tier (or with [`DiskWrites::OnEviction`], its get, then the
    /// rest), around the remote tier's if there is one, around the
    /// computation. Teaches `class` the cost.
    fn load_or_compute(
        &self,
        key: Fingerprint,
        label: Label<'_>,
        class: Arc<CostClass>,
        compute: impl FnOnce() -> Result<AnyArray> + Send,
    ) -> Result<(Entry, Source)> {
        let entry = |array: AnyArray, cost: Duration, on_disk: bool| {
            class.compute.record(cost);
            Entry {
                result: Keyed::with_fingerprint(array, key.derive()),
                cost,
                class: Arc::clone(&class),
                on_disk,
            }
        };
        let Some(disk) = &self.disk else {
            let (array, cost, source) = self.remote_or_compute(key, label, compute)?;
            return Ok((entry(array, cost, false), source));
        };
        let start = Instant::now();
        let mut below = None;
        let (array, fetched) = if self.disk_writes == DiskWrites::OnEviction {
            match disk.get(key) {
                Some((array, meta)) => (array, Fetched::Loaded(meta)),
                None => {
                    let (array, compute_time, source) =
                        self.remote_or_compute(key, label, compute)?;
                    below = Some(source);
                    let fetched = Fetched::Computed {
                        compute_time,
                        stored: false,
                    };
                    (array, fetched)
                }
            }
        } else {
            disk.get_or_insert_timed(key, label.name, label.version, || {
                let (array, cost, source) = self.remote_or_compute(key, label, compute)?;
                below = Some(source);
                Ok::<_, Error>((array, cost))
            })?
        };
        Ok(match fetched {
            Fetched::Loaded(meta) => {
                if let Some(gate) = &self.spill {
                    gate.loaded(array.nbytes(), start.elapsed());
                }
                self.count_hit(label, meta.compute_time, |c| &c.disk_hits);
                (entry(array, meta.compute_time, true), Source::Disk)
            }
            Fetched::Computed {
                compute_time,
                stored,
            } => {
                let source = match below {
                    Some(Source::Remote) => Source::Remote,
                    _ => Source::Computed { stored },
                };
                (entry(array, compute_time, stored), source)
            }
        })
    }

    /// Counts a hit of a tier below memory for `label`'s kernel.
    fn count_hit(
        &self,
        label: Label<'_>,
        saved: Duration,
        tier: impl Fn(&KernelCounters) -> &AtomicU64,
    ) {
        if let Some(c) = self.kernels.get(label.name) {
            tier(c).fetch_add(1, Ordering::Relaxed);
            c.saved_nanos
                .fetch_add(saved.as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// The tiers below the disk: the remote tier's get-or-compute if there
    /// is one, else the computation. Returns the result, its compute time
    /// and where it came from (`Computed { stored: false }` when computed).
    fn remote_or_compute(
        &self,
        key: Fingerprint,
        label: Label<'_>,
        compute: impl FnOnce() -> Result<AnyArray> + Send,
    ) -> Result<(AnyArray, Duration, Source)> {
        #[cfg(feature = "remote")]
        if let Some(remote) = &self.remote {
            let (array, fetched) =
                remote.get_or_insert_with(key, label.name, label.version, || {
                    self.compute(label, compute)
                })?;
            return Ok(match fetched {
                crate::remote::Fetched::Loaded(e) => {
                    self.count_hit(label, e.compute_time, |c| &c.remote_hits);
                    (array, e.compute_time, Source::Remote)
                }
                crate::remote::Fetched::Computed { compute_time } => {
                    (array, compute_time, Source::Computed { stored: false })
                }
            });
        }
        let _ = key;
        let (array, cost) = self.compute(label, compute)?;
        Ok((array, cost, Source::Computed { stored: false }))
    }

    /// Runs a batch of calls: identical calls (same key) are computed once,
    /// and the distinct misses are computed in parallel on the rayon pool.
    /// Results come back in the order of `calls`.
    pub fn call_many(&self, calls: &[Call<'_>]) -> Vec<Result<Keyed>> {
        // Key every call; an input view that appears in several calls is
        // hashed once.
        let mut seen: HashMap<ViewId, Fingerprint> = HashMap::new();
        let keyed: Vec<Result<(Prepared, Vec<Fingerprint>, Fingerprint)>> = calls
            .iter()
            .map(|c| {
                let prepared = self.registry.prepare(c.kernel, c.inputs.len(), &c.params)?;
                let fps: Vec<Fingerprint> = c
                    .inputs
                    .iter()
                    .map(|a| match a {
                        Arg::View(v) => *seen
                            .entry(ViewId::of(v))
                            .or_insert_with(|| self.fingerprint_of(a)),
                        Arg::Keyed(k) => k.fingerprint(),
                    })
                    .collect();
                let k = prepared.kernel.as_ref();
                let key = call_key(k.name(), k.version(), &prepared.param_bytes, &fps);
                Ok((prepared, fps, key))
            })
            .collect();
        // The first call of each key runs; the others reuse its result.
        let mut first: HashMap<Fingerprint, usize> = HashMap::new();
        let mut leaders = Vec::new();
        for (i, k) in keyed.iter().enumerate() {
            if let Ok((_, _, key)) = k {
                first.entry(*key).or_insert_with(|| {
                    leaders.push(i);
                    i
                });
            }
        }
        let results: HashMap<usize, Result<Keyed>> = leaders
            .par_iter()
            .map(|&i| {
                let (prepared, fps, _) = keyed[i].as_ref().expect("leaders are keyed");
                let class = self
                    .kernels
                    .get(prepared.kernel.name())
                    .map(|c| c.classes.for_inputs(&calls[i].inputs));
                let r = self.call_prepared(prepared, &calls[i].inputs, fps, class);
                (i, r.map(|(k, _)| k))
            })
            .collect();
        keyed
            .into_iter()
            .map(|k| match k {
                Err(e) => Err(e),
                Ok((_, _, key)) => results[&first[&key]].clone(),
            })
            .collect()
    }

    /// Statistics: memory, disk, bytes hashed, per kernel.
    pub fn info(&self) -> ArrayCacheInfo {
        let mut kernels: Vec<KernelInfo> = self
            .kernels
            .iter()
            .filter(|(_, c)| c.calls.load(Ordering::Relaxed) > 0)
            .map(|(name, c)| c.snapshot(name))
            .collect();
        kernels.sort_by(|a, b| a.name.cmp(&b.name));
        ArrayCacheInfo {
            memory: self.memory.stats(),
            disk: self.disk.as_deref().map(DiskTier::stats),
            #[cfg(feature = "remote")]
            remote: self.remote.as_ref().map(RemoteTier::stats),
            bytes_hashed: self.bytes_hashed.load(Ordering::Relaxed),
            time_saved: kernels.iter().map(|k| k.time_saved).sum(),
            spilled: self
                .spill
                .as_ref()
                .map_or(0, |g| g.spilled.load(Ordering::Relaxed)),
            kernels,
        }
    }

    /// What each class of calls made so far costs, and whether it bypasses
    /// the cache: a kernel on one dtype and one power-of-two range of input
    /// sizes, with its smoothed compute time (what the cost-aware policy
    /// ranks its results by), the time of a call through the cache, its
    /// hashing time and hit rate. In kernel name order, then dtype and
    /// size. Each line's `Display` explains the decision:
    ///
    /// ```
    /// use ndcache::{ArrayCache, AsArg, Params};
    /// let cache = ArrayCache::new();
    /// for i in 0..200 {
    ///     // Fresh inputs every time: nothing to hit, and hashing them costs
    ///     // about what adding them does.
    ///     let x = ndarray::Array1::from_elem(1 << 18, i as f64);
    ///     cache.call("add", &[x.arg(), x.arg()], &Params::new())?;
    /// }
    /// for class in cache.classes() {
    ///     println!("{class}"); // add float64 [2^19, 2^20) elements: ... bypassing the cache (...)
    /// }
    /// # Ok::<(), ndcache::Error>(())
    /// ```
    pub fn classes(&self) -> Vec<ClassInfo> {
        let mut names: Vec<&String> = self.kernels.keys().collect();
        names.sort();
        names
            .into_iter()
            .flat_map(|n| self.kernels[n].classes.used().map(|c| c.info()))
            .collect()
    }

    /// The statistics of one kernel (zeros if never called); an error for
    /// an unknown kernel.
    pub fn kernel_info(&self, name: &str) -> Result<KernelInfo> {
        let kernel = self.registry.get(name)?;
        Ok(self.kernels[kernel.name()].snapshot(name))
    }

    /// Empties the memory tier and resets every statistic (memory, per
    /// kernel, bytes hashed), like `cache_clear`. The disk tier keeps its
    /// entries: see [`DiskTier::clear`].
    pub fn clear(&self) {
        self.memory.clear();
        self.bytes_hashed.store(0, Ordering::Relaxed);
        for c in self.kernels.values() {
            c.reset();
        }
    }

    /// Waits until every pending disk write and remote upload is done (a
    /// no-op without those tiers).
    pub fn flush(&self) {
        if let Some(d) = &self.disk {
            d.flush();
        }
        #[cfg(feature = "remote")]
        if let Some(r) = &self.remote {
            r.flush();
        }
    }
}

/// The identity of a view within one batch: same data, same layout, same dtype.
#[derive(PartialEq, Eq, Hash)]
struct ViewId {
    ptr: usize,
    dtype: crate::DType,
    shape: Vec<usize>,
    strides: Vec<isize>,
}

impl ViewId {
    fn of(v: &AnyView<'_>) -> Self {
        let (ptr, strides) =
            crate::dispatch_view!(v, a => (a.as_ptr() as usize, a.strides().to_vec()));
        ViewId {
            ptr,
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            strides,
        }
    }
}
