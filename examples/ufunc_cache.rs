//! numpy's ufuncs by name, through the cache: a miss, a hit, the statistics,
//! a chain that hashes nothing the second time, a batch, and a user kernel.
//!
//! Run: `cargo run --release --example ufunc_cache`

use std::time::Instant;

use ndarray::{Array1, Array2};
use ndcache::{ArrayCache, AsArg, Call, Params, Registry};

fn main() -> Result<(), ndcache::Error> {
    let fast = std::env::var_os("NDCACHE_FAST").is_some();
    let n = if fast { 100_000 } else { 1_000_000 };

    // Kernels by name, with numpy's semantics; the registry lists them.
    let mut registry = Registry::with_builtins();
    registry.register_elementwise_f64("sigmoid", "1", "logistic function 1/(1+e^-x)", |x| {
        1.0 / (1.0 + (-x).exp())
    })?;
    println!("{} kernels: {}", registry.len(), {
        let names: Vec<&str> = registry.kernels().map(|k| k.name()).collect();
        names.join(" ")
    });
    let cache = ArrayCache::builder().registry(registry).build()?;

    let x = Array1::from_shape_fn(n, |i| (i as f64 / n as f64) * 6.0 - 3.0);

    // A miss computes (on all cores), a hit is a lookup of the same shared array.
    let t = Instant::now();
    let a = cache.call("exp", &[x.arg()], &Params::new())?;
    let miss = t.elapsed();
    let t = Instant::now();
    let b = cache.call("exp", &[x.arg()], &Params::new())?;
    let hit = t.elapsed();
    println!(
        "\nexp of {n} f64: miss {miss:?}, hit {hit:?} (the hit hashes x: {} bytes)",
        x.len() * 8
    );
    println!("same shared result: {}", a.array().ptr_eq(b.array()));

    // Keyed once, an input is never hashed again; results carry derived keys.
    let xk = cache.keyed(x.clone());
    for run in 1..=2 {
        let before = cache.info().bytes_hashed;
        let t = Instant::now();
        let e = cache.call("exp", &[xk.arg()], &Params::new())?;
        let s = cache.call("sum", &[e.arg()], &Params::new())?;
        println!(
            "chain {run}: sum(exp(x)) = {:.6} in {:?}, bytes hashed: {}",
            s.typed::<f64>()?[[]],
            t.elapsed(),
            cache.info().bytes_hashed - before
        );
    }

    // Broadcasting and promotion as numpy: (3,1) f32 + (4,) i32 -> (3,4) f64.
    let col = Array2::from_shape_fn((3, 1), |(i, _)| i as f32 * 0.5);
    let row = Array1::from(vec![1i32, 2, 3, 4]);
    let sum = cache.call("add", &[col.arg(), row.arg()], &Params::new())?;
    println!(
        "\nadd (3,1) float32 + (4,) int32 -> {:?} {}",
        sum.shape(),
        sum.dtype()
    );
    let m = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as i32);
    let v = cache.call("var", &[m.arg()], &Params::new().axis(0).ddof(1))?;
    println!(
        "var(int32 (3,4), axis=0, ddof=1) = {} {:?}",
        v.dtype(),
        v.typed::<f64>()?.as_slice()
    );
    match cache.call(
        "add",
        &[Array1::<f64>::zeros(3).arg(), Array1::<f64>::zeros(4).arg()],
        &Params::new(),
    ) {
        Err(e) => println!("error, as numpy: {e}"),
        Ok(_) => unreachable!("shapes (3,) and (4,) do not broadcast"),
    }
    match cache.call("exq", &[x.arg()], &Params::new()) {
        Err(e) => println!("error: {e}"),
        Ok(_) => unreachable!("no such kernel"),
    }

    // A batch: identical calls are computed once, distinct misses in parallel.
    let calls: Vec<Call<'_>> = ["sigmoid", "tanh", "sigmoid", "sin", "tanh"]
        .iter()
        .map(|k| Call::new(k, vec![xk.arg()], Params::new()))
        .collect();
    let results = cache.call_many(&calls);
    println!(
        "\nbatch of {} calls: {} ok, sigmoid computed {} time(s)",
        calls.len(),
        results.iter().filter(|r| r.is_ok()).count(),
        cache.kernel_info("sigmoid")?.computed
    );

    let info = cache.info();
    println!("\nmemory: {}", info.memory);
    println!(
        "bytes hashed in all: {}, compute time saved by hits: {:?}",
        info.bytes_hashed, info.time_saved
    );
    for k in &info.kernels {
        println!(
            "  {:<8} calls={} memory_hits={} computed={} compute_time={:?} saved={:?}",
            k.name, k.calls, k.memory_hits, k.computed, k.compute_time, k.time_saved
        );
    }
    Ok(())
}
