//! Memoize numeric array computations: the second time is nearly free.
//!
//! # Overview
//!
//! ndcache caches the results of computations on [`ndarray`] arrays of
//! `f32`, `f64`, `i32` and `i64`:
//!
//! - [`fingerprint`]: a 128-bit xxh3 key of an array's dtype, shape and
//!   logical contents, equal for C-order, Fortran-order and strided views of
//!   equal values, computed in parallel near memory bandwidth;
//! - [`MemoryTier`]: a sharded, thread-safe cache with entry and byte
//!   bounds, a cost-aware eviction policy (what saves the most compute time
//!   per byte; see [`memory::policy`]) or LRU, TTL, single-flight
//!   computation of misses and statistics;
//! - [`Memo`]: memoization of any function, the `functools.lru_cache` /
//!   `functools.cache` analogue, with CPython's exact `cache_info()`;
//! - [`Registry`]: numpy's ufuncs and reductions by name, with numpy's
//!   broadcasting, dtype promotion and NaN rules, deterministic on any
//!   number of threads;
//! - [`ArrayCache`]: the facade, key → memory → disk → remote → compute, with
//!   per-class cost estimates, an adaptive bypass of the cache for calls
//!   whose caching costs more than it saves, and optionally spill of
//!   evicted results to disk ([`DiskWrites`]);
//! - [`remote`]: a cache shared by a fleet of machines on Redis (single
//!   node or Redis Cluster), verified, with cross-machine single flight,
//!   and optionally signed (feature `remote`);
//! - [`Expr`]: typed lazy expressions (`(x.sin() * 2.0 + &y).sum()`),
//!   looked up whole and, on a miss, evaluated fused in one pass, with the
//!   same bits as the chain of registry calls they stand for.
//!
//! # Example: a fused, cached expression
//!
//! ```
//! use ndcache::{ArrayCache, Expr};
//! let cache = ArrayCache::new();
//! let x = ndarray::Array1::<f64>::linspace(0.0, 1.0, 1000);
//! let gauss = (-(Expr::new(&x) - 0.5).powi(2) / 0.02).exp().mean();
//! let first = gauss.eval(&cache)?;  // fused: no intermediate array
//! let second = gauss.eval(&cache)?; // a memory hit, nothing hashed
//! assert_eq!(first[()], second[()]);
//! assert!((first[()] - 0.2506).abs() < 1e-3);
//! # Ok::<(), ndcache::Error>(())
//! ```
//!
//! # Example: memoize a recursive function
//!
//! ```
//! use ndcache::Memo;
//! let fib = Memo::new(128, |fib: &Memo<u64, u64>, n| {
//!     if n < 2 { n } else { fib.get(n - 1) + fib.get(n - 2) }
//! });
//! assert_eq!(fib.get(30), 832040);
//! assert_eq!(fib.cache_info().to_string(), "CacheInfo(hits=28, misses=31, maxsize=128, currsize=31)");
//! ```
//!
//! # Example: fingerprints ignore memory layout
//!
//! ```
//! use ndarray::{Array2, ShapeBuilder};
//! let c = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64);
//! let mut f = Array2::zeros((3, 4).f());
//! f.assign(&c);
//! assert_eq!(ndcache::fingerprint(&c), ndcache::fingerprint(&f));
//! assert_ne!(ndcache::fingerprint(&c), ndcache::fingerprint(&c.mapv(|v| v as f32)));
//! ```
//!
//! # Crate features
//!
//! - `cli` (default): the `ndcache` command-line program. Costs clap,
//!   anyhow and indicatif at build time; the library does not use them.
//!   Implies `remote`.
//! - `remote` (default, through `cli`): the [`remote`] tier on Redis, with
//!   the `redis` crate's sync client (no tokio) and its cluster support.
//!   Measured on the 2-core machine the project builds on: the `redis`
//!   crate and its dependencies take about 28 s of a cold build on their
//!   own (58 s before ndcache pinned `idna_adapter` to its ASCII-only
//!   version, which drops the ICU crates `url` pulls in); a cold
//!   `cargo test` of ndcache cost 14% more CPU time with the remote tier
//!   and signing than before them (12m01s against 10m30s of user time,
//!   about 45 s of wall time on two idle cores). Turn it off with
//!   `default-features = false`.
//! - `remote-tls`: `rediss://` URLs, through rustls with ring. Off by
//!   default: about 13 s more of a cold build.
//!
//! Signing (keyed BLAKE3, see [`ArrayCacheBuilder::secret`]) is always
//! there: the `blake3` crate builds in about 8 s.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

mod cache;
pub mod disk;
mod element;
mod error;
pub mod expr;
mod hash;
mod isolate;
mod keep;
pub mod kernel;
mod key;
mod memo;
pub mod memory;
#[cfg(feature = "remote")]
pub mod remote;
mod sign;
mod size;
mod sync;
mod value;

pub use cache::{
    ArrayCache, ArrayCacheBuilder, ArrayCacheInfo, Call, KernelInfo, Source, DEFAULT_MAX_BYTES,
};
pub use element::{DType, Element};
pub use error::{Error, Result};
pub use expr::{Evaluated, Expr};
pub use keep::{ClassInfo, DiskWrites};
pub use kernel::{Kernel, ParamKind, ParamSpec, ParamValue, Params, Registry};
pub use key::{
    call_key, fingerprint, Fingerprint, ParseFingerprintError, CHUNK_BYTES, KEY_FORMAT_VERSION,
};
pub use memo::{CacheInfo, Memo, MemoBuilder};
pub use memory::{CacheStats, Clock, FlightError, ManualClock, MemoryTier, MonotonicClock, Policy};
pub use size::{parse_size, ParseSizeError};
pub(crate) use value::{dispatch_array, dispatch_view};
pub use value::{fingerprint_any, AnyArray, AnyView, Arg, AsArg, Keyed};

/// The README's code examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
