//! The ndcache tour: eight caching patterns, from `functools.lru_cache` to a
//! production cache layer, each with the numbers that show what it buys.
//!
//! Run: `cargo run --release --example tour` (about 20 s on 2 cores).
//! Run it twice: the second run finds step 6's results on disk.
//!
//! `NDCACHE_FAST=1` (or `--fast`) shrinks every workload, for the test suite.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ndarray::{s, Array1, Array2, ArrayD, ShapeBuilder};
use ndcache::{AnyArray, ArrayCache, AsArg, Expr, Memo, Params};

/// How big the workloads are.
#[derive(Clone, Copy)]
struct Scale {
    fast: bool,
}

impl Scale {
    fn pick<T>(self, full: T, fast: T) -> T {
        if self.fast {
            fast
        } else {
            full
        }
    }
}

fn heading(n: u32, title: &str, what: &str) {
    println!("\n━━ Step {n}: {title}");
    println!("   {what}\n");
}

fn ms(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 1000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// The median of `runs` timings of `f`.
fn time_median<R>(runs: usize, mut f: impl FnMut() -> R) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

fn load(name: &str) -> AnyArray {
    let path = data_dir().join(name);
    ndcache::disk::read_npy(&path).unwrap_or_else(|e| {
        panic!("{e} (the sample data is committed; regenerate it with `cargo run --example make_data`)")
    })
}

fn step1_lru_internals() {
    heading(
        1,
        "lru_cache internals",
        "Memo::new(128, f) is @functools.lru_cache(maxsize=128): same hits, misses, currsize.",
    );
    let fib = Memo::new(128, |fib: &Memo<u64, u64>, n| {
        if n < 2 {
            n
        } else {
            fib.get(n - 1) + fib.get(n - 2)
        }
    });
    println!("   fib(30) = {}", fib.get(30));
    let info = fib.cache_info();
    println!("   {info}");
    println!("   hit rate: {:.1}%", info.hit_rate() * 100.0);
    println!(
        "   call_uncached(5) = {}   (fib.__wrapped__(5): runs once, its recursive calls hit)",
        fib.call_uncached(5)
    );
    println!("   {}", fib.cache_info());
    fib.cache_clear();
    println!("   after cache_clear(): {}", fib.cache_info());
}

fn step2_unbounded(scale: Scale) {
    heading(
        2,
        "unbounded cache (functools.cache)",
        "Memo::unbounded keeps every result; a repeated call costs a lookup.",
    );
    // The number of primes below n, by trial division: deliberately slow.
    let primes = Memo::unbounded(|_: &Memo<u64, u64>, n: u64| {
        (2..n)
            .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
            .count() as u64
    });
    let sizes = scale.pick([50_000u64, 100_000, 200_000], [2_000, 4_000, 8_000]);
    for n in sizes {
        let t = Instant::now();
        let first = primes.get(n);
        let t_first = t.elapsed();
        let t_again = time_median(101, || primes.get(n));
        println!(
            "   primes below {n:>6} = {first:>5}   first call {:>10}   repeated {:>9}   currsize={}",
            ms(t_first),
            ms(t_again),
            primes.cache_info().currsize
        );
    }
    println!("   {}", primes.cache_info());
}

fn step3_keys(scale: Scale) {
    heading(
        3,
        "cache keys",
        "An array's key hashes dtype, shape and logical contents: layout-blind, bit-exact.",
    );
    let c = Array2::from_shape_fn((300, 400), |(i, j)| (i * 400 + j) as f64 / 7.0);
    let mut f = Array2::zeros((300, 400).f());
    f.assign(&c);
    let wide = Array2::from_shape_fn((300, 800), |(i, j)| {
        if j % 2 == 0 {
            (i * 400 + j / 2) as f64 / 7.0
        } else {
            f64::NAN
        }
    });
    let strided = wide.slice(s![.., ..;2]);
    let fp = ndcache::fingerprint(&c);
    let yes_no = |b: bool| if b { "same key" } else { "different key" };
    println!("   C order                   {fp}");
    println!(
        "   Fortran-order twin        {}",
        yes_no(ndcache::fingerprint(&f) == fp)
    );
    println!(
        "   strided view, no copy     {}",
        yes_no(ndcache::fingerprint(&strided) == fp)
    );
    println!(
        "   same values as float32    {}",
        yes_no(ndcache::fingerprint(&c.mapv(|v| v as f32)) == fp)
    );
    let reshaped = c
        .clone()
        .into_shape_with_order((400, 300))
        .expect("same length");
    println!(
        "   same bytes, shape 400x300 {}",
        yes_no(ndcache::fingerprint(&reshaped) == fp)
    );
    println!(
        "   [0.0] vs [-0.0]           {}",
        yes_no(
            ndcache::fingerprint(&Array1::from(vec![0.0f64]))
                == ndcache::fingerprint(&Array1::from(vec![-0.0f64]))
        )
    );

    let n = scale.pick(8 << 20, 1 << 20); // f64 elements: 64 MB (fast: 8 MB)
    let big = Array1::from_shape_fn(n, |i| i as f64);
    let bytes = (n * 8) as f64;
    let src: &[f64] = big.as_slice().expect("contiguous");
    let mut dst = vec![0.0f64; n];
    let t_copy = time_median(7, || dst.copy_from_slice(src));
    let t_hash = time_median(7, || ndcache::fingerprint(&big));
    let mut bigf = Array2::<f64>::zeros((n / 1024, 1024).f());
    bigf.assign(
        &big.view()
            .into_shape_with_order((n / 1024, 1024))
            .expect("same length"),
    );
    let t_hash_f = time_median(7, || ndcache::fingerprint(&bigf));
    println!(
        "\n   hashing {} MB: fingerprint {:.1} GB/s (Fortran order {:.1} GB/s); copying them (memcpy, one thread) {:.1} GB/s",
        (n * 8) >> 20,
        bytes / t_hash.as_secs_f64() / 1e9,
        bytes / t_hash_f.as_secs_f64() / 1e9,
        bytes / t_copy.as_secs_f64() / 1e9
    );
    println!(
        "   (joblib hashes with md5 at ~0.6 GB/s, and its keys change with the memory layout)"
    );
}

fn step4_ttl() {
    heading(
        4,
        "TTL cache",
        "Entries expire a fixed time after they were computed, and are never served after.",
    );
    let ttl = Duration::from_millis(150);
    let cache = ArrayCache::builder()
        .ttl(ttl)
        .build()
        .expect("valid options");
    let x = Array1::linspace(0.0, 10.0, 10_000);
    let p = Params::new();
    cache.call("exp", &[x.arg()], &p).expect("exp");
    cache.call("exp", &[x.arg()], &p).expect("exp");
    let i = cache.info().memory;
    println!(
        "   t=0:        two calls      hits={} misses={} expirations={}",
        i.hits, i.misses, i.expirations
    );
    std::thread::sleep(ttl + Duration::from_millis(20));
    cache.call("exp", &[x.arg()], &p).expect("exp");
    let i = cache.info().memory;
    println!(
        "   t={:>3} ms:  one more call  hits={} misses={} expirations={}   (expired: recomputed)",
        (ttl + Duration::from_millis(20)).as_millis(),
        i.hits,
        i.misses,
        i.expirations
    );
    cache.call("exp", &[x.arg()], &p).expect("exp");
    let i = cache.info().memory;
    println!(
        "               and again      hits={} misses={} expirations={}",
        i.hits, i.misses, i.expirations
    );
}

/// A dataset whose expensive summary is computed on first use, then kept:
/// Python's `@cached_property`, with std's `OnceLock` (thread-safe, once).
struct Dataset {
    values: ArrayD<f64>,
    summary: OnceLock<Summary>,
    computed: AtomicUsize,
}

#[derive(Debug)]
struct Summary {
    mean: f64,
    std: f64,
    median: f64,
}

impl Dataset {
    fn new(values: ArrayD<f64>) -> Self {
        Dataset {
            values,
            summary: OnceLock::new(),
            computed: AtomicUsize::new(0),
        }
    }

    fn summary(&self) -> &Summary {
        self.summary.get_or_init(|| {
            self.computed.fetch_add(1, Ordering::SeqCst);
            let reg = ndcache::Registry::with_builtins();
            let v = self.values.view().into();
            let get = |name: &str| {
                let r = reg
                    .call(name, std::slice::from_ref(&v), &Params::new())
                    .expect(name);
                r.typed::<f64>().expect("f64")[[]]
            };
            let sorted = reg
                .call("sort", std::slice::from_ref(&v), &Params::new())
                .expect("sort");
            let sorted = sorted.typed::<f64>().expect("f64");
            Summary {
                mean: get("mean"),
                std: get("std"),
                median: sorted[[sorted.len() / 2]],
            }
        })
    }
}

fn step5_cached_property() {
    heading(
        5,
        "cached property",
        "A struct computes an expensive attribute once, on first use (std::sync::OnceLock).",
    );
    let signal = load("signal.npy");
    let ds = Dataset::new(signal.typed::<f64>().expect("signal is f64").to_owned());
    for i in 1..=3 {
        let t = Instant::now();
        let s = ds.summary();
        println!(
            "   access {i}: mean={:+.5} std={:.5} median={:+.5}   {:>9}   computed {} time(s)",
            s.mean,
            s.std,
            s.median,
            ms(t.elapsed()),
            ds.computed.load(Ordering::SeqCst)
        );
    }
}

/// A deliberately expensive user kernel: `passes` rounds of 3-point
/// smoothing, the kind of function one memoizes with joblib.Memory.
fn smooth_kernel(reg: &mut ndcache::Registry) {
    let passes = ndcache::ParamSpec {
        name: "passes",
        kind: ndcache::ParamKind::Int,
        default: Some(100i64.into()),
        doc: "rounds of smoothing",
    };
    reg.register_fn(
        "smooth",
        "1",
        1,
        vec![passes],
        "repeated 3-point smoothing",
        |inputs, params| {
            let mut x = inputs[0].typed::<f64>()?.to_owned();
            let mut next = x.clone();
            for _ in 0..params.int("passes").unwrap_or(100) {
                let (src, dst) = (
                    x.as_slice().expect("owned"),
                    next.as_slice_mut().expect("owned"),
                );
                for i in 1..src.len().saturating_sub(1) {
                    dst[i] = 0.25 * src[i - 1] + 0.5 * src[i] + 0.25 * src[i + 1];
                }
                std::mem::swap(&mut x, &mut next);
            }
            Ok(AnyArray::from(x))
        },
    )
    .expect("a new name");
}

fn step6_disk(scale: Scale) {
    heading(
        6,
        "disk memoization (joblib.Memory, done right)",
        "Results persist as plain .npy files under data/cache/: verified on load, budgeted, no pickle.",
    );
    let dir = std::env::var_os("NDCACHE_TOUR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir().join("cache"));
    let mut reg = ndcache::Registry::with_builtins();
    smooth_kernel(&mut reg);
    let cache = ArrayCache::builder()
        .registry(reg)
        .disk(&dir)
        .disk_max_bytes(64 << 20)
        .build()
        .expect("disk cache");
    let signal = load("signal.npy");
    let passes: i64 = scale.pick(400, 40);
    let t = Instant::now();
    // An expensive pipeline: heavy smoothing at several strengths, then sorts.
    let mut last = None;
    for k in 1..=4 {
        let p = Params::new().set("passes", passes * k);
        let smooth = cache.call("smooth", &[signal.arg()], &p).expect("smooth");
        last = Some(
            cache
                .call("sort", &[smooth.arg()], &Params::new())
                .expect("sort"),
        );
    }
    cache.flush();
    let took = t.elapsed();
    let info = cache.info();
    let computed: u64 = info.kernels.iter().map(|k| k.computed).sum();
    let disk_hits: u64 = info.kernels.iter().map(|k| k.disk_hits).sum();
    println!(
        "   8 calls (smooth, then sort, at 4 strengths) in {}: computed {computed}, disk hits {disk_hits}",
        ms(took)
    );
    println!(
        "   {}",
        if disk_hits > 0 {
            "a previous run's results, read back and verified: run `cargo run --release --example tour` again anytime"
        } else {
            "run the tour again: these will be disk hits"
        }
    );
    if let Some(disk) = cache.disk() {
        let s = disk.stats();
        println!(
            "   disk: {} entries, {:.1} MB of a {:.0} MB budget, corrupt entries found: {}",
            s.entries,
            s.bytes as f64 / 1e6,
            s.max_bytes.unwrap_or(0) as f64 / 1e6,
            s.corrupt
        );
        let entries = disk.entries().unwrap_or_default();
        if let (Some(e), Some(last)) = (entries.iter().find(|e| e.meta.kernel == "sort"), last) {
            let v = last.typed::<f64>().expect("f64");
            println!("   one entry, a sorted smoothed signal starting {:.4}, {:.4}, ... ; numpy loads it:", v[[0]], v[[1]]);
            println!(
                "     python3 -c \"import numpy as np; print(np.load('{}')[:2])\"",
                disk.payload_path(e.meta.key).display()
            );
        }
    }
}

fn step7_ufuncs(scale: Scale) {
    heading(
        7,
        "ufunc caching and fused expressions",
        "numpy's ufuncs by name or as typed expressions; a miss is fused, a second eval is a lookup.",
    );
    let cache = ArrayCache::new();
    let n = scale.pick(1_000_000, 100_000);
    let x = Array1::from_shape_fn(n, |i| (i as f64 * 1e-5).sin() * 3.0);

    let chain = |label: &str, input: ndcache::Arg<'_>| {
        let before = cache.info().bytes_hashed;
        let t = Instant::now();
        let e = cache.call("exp", &[input], &Params::new()).expect("exp");
        let s = cache.call("sum", &[e.arg()], &Params::new()).expect("sum");
        let took = t.elapsed();
        println!(
            "   {label}: sum(exp(x)) = {:.6e} in {:>9}, bytes hashed: {}",
            s.typed::<f64>().expect("f64")[[]],
            ms(took),
            cache.info().bytes_hashed - before
        );
    };
    chain("x as a plain view  ", x.arg());
    chain("again, plain view  ", x.arg());
    let xk = cache.keyed(x.clone());
    chain("x keyed once       ", xk.arg());
    println!("   (the exp result carries a key derived from its call, so sum never hashes it)");

    println!("\n   {n} f64 elements      raw      cached hit   speed-up");
    for (name, params) in [
        ("exp", Params::new()),
        ("sin", Params::new()),
        ("sum", Params::new()),
        ("sort", Params::new()),
    ] {
        let raw = time_median(scale.pick(21, 5), || {
            cache.call_raw(name, &[x.arg()], &params).expect(name)
        });
        cache.call(name, &[xk.arg()], &params).expect(name);
        let hit = time_median(scale.pick(1001, 101), || {
            cache.call(name, &[xk.arg()], &params).expect(name)
        });
        println!(
            "   {name:<18} {:>10} {:>12} {:>9.0}×",
            ms(raw),
            ms(hit),
            raw.as_secs_f64() / hit.as_secs_f64()
        );
    }
    for k in cache.info().kernels {
        println!(
            "   {:<6} calls={:<5} memory hits={:<5} computed={:<3} time saved {}",
            k.name,
            k.calls,
            k.memory_hits,
            k.computed,
            ms(k.time_saved)
        );
    }
    step7_expressions(scale, &cache, &x);
}

/// Step 7, continued: a whole expression, fused on a miss, looked up whole.
fn step7_expressions(scale: Scale, cache: &ArrayCache, x: &Array1<f64>) {
    let y = x.mapv(|v| v.cos() * 0.5 + 1.0);
    println!("\n   A pipeline as one typed expression: sum(2·sin(x)² + cos(x)·y)");
    let build = || {
        let ex = Expr::from(x);
        (2.0 * ex.clone().sin().powi(2) + ex.cos() * &y).sum()
    };
    let first = build().explain(cache).expect("trig_sum");
    println!("   first eval:\n{}", indent(&first.to_string()));
    let second = build().explain(cache).expect("trig_sum");
    println!("   second eval (built again, same key): {}", second.source);
    let e = build();
    let value = e.eval(cache).expect("trig_sum");
    let unfused = e.eval_unfused(cache.registry()).expect("trig_sum");
    println!(
        "   value {:.9e}; fused == unfused chain bit for bit: {}",
        value[()],
        value[()].to_bits() == unfused[()].to_bits()
    );
    let runs = scale.pick(11, 3);
    let t_unfused = time_median(runs, || e.eval_unfused(cache.registry()).expect("unfused"));
    let t_fused = time_median(runs, || e.eval_raw(cache.registry()).expect("fused"));
    let t_hit = time_median(scale.pick(1001, 101), || e.eval(cache).expect("hit"));
    println!(
        "\n   {} f64        unfused (numpy-style)     fused        hit",
        x.len()
    );
    println!(
        "   trig_sum   {:>22} {:>11} {:>10}   ({:.1}× fused, {:.0}× hit)",
        ms(t_unfused),
        ms(t_fused),
        ms(t_hit),
        t_unfused.as_secs_f64() / t_fused.as_secs_f64(),
        t_unfused.as_secs_f64() / t_hit.as_secs_f64()
    );
    println!("   (a hit of the same expression hashes nothing: its inputs cannot change while it borrows them)");
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() {
    let fast =
        std::env::var_os("NDCACHE_FAST").is_some() || std::env::args().any(|a| a == "--fast");
    let scale = Scale { fast };
    let start = Instant::now();
    println!(
        "ndcache tour: eight caching patterns, measured{}",
        if fast { " (fast mode)" } else { "" }
    );
    step1_lru_internals();
    step2_unbounded(scale);
    step3_keys(scale);
    step4_ttl();
    step5_cached_property();
    step6_disk(scale);
    step7_ufuncs(scale);
    heading(
        8,
        "capstone: a production cache layer",
        "Worker threads serve a Zipf stream through an ArrayCache with a byte budget and a TTL: plain LRU, then cost-aware.",
    );
    capstone::run(fast);
    println!("\nTour done in {:.1} s.", start.elapsed().as_secs_f64());
}

#[path = "shared/capstone.rs"]
mod capstone;
