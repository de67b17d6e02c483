//! The remote tier (issue 12) against real Redis servers started by the
//! tests: one server, or a 3-node Redis Cluster. The oracle is always the
//! uncached kernel (`call_raw`) or plain Rust; "no panic" is never the
//! only check.
//!
//! Without redis-server these tests print "skipping" and pass, unless
//! `NDCACHE_REQUIRE_REDIS` is set (CI), in which case they fail.

mod basics;
mod faults;
mod fleet;
pub(crate) mod server;
mod worker;

use std::path::Path;
use std::time::Duration;

use ndarray::Array1;
use ndcache::remote::RemoteOptions;
use ndcache::{AnyArray, ArrayCache, AsArg, Params};

/// `n` pseudo-random float64 values from `seed` (deterministic).
pub(crate) fn data(n: usize, seed: u64) -> Array1<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    Array1::from_shape_fn(n, |_| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    })
}

/// Options for tests: upload everything, short breaker cool-down, and a
/// longer operation timeout than the default 500 ms (the tests share two
/// cores with the rest of the suite; only the hung-server test wants the
/// default).
pub(crate) fn options(url: &str) -> RemoteOptions {
    RemoteOptions::new(url)
        .min_compute(Some(Duration::ZERO))
        .breaker_cooldown(Duration::from_millis(200))
        .op_timeout(Duration::from_secs(2))
}

/// A cache with the remote tier `o` and, optionally, a disk directory.
pub(crate) fn cache(o: RemoteOptions, disk: Option<&Path>) -> ArrayCache {
    let mut b = ArrayCache::builder().remote(o);
    if let Some(d) = disk {
        b = b.disk(d);
    }
    b.build().expect("a valid configuration")
}

/// The uncached result of `kernel` on `x`: the oracle.
pub(crate) fn raw(kernel: &str, x: &Array1<f64>) -> AnyArray {
    ArrayCache::new()
        .call_raw(kernel, &[x.arg()], &Params::new())
        .unwrap()
}
