//! Fused expressions: ids `expr/<name>/<mode>/<n>`, float64.
//!
//! Expressions (numexpr's and the research note's benchmarks):
//! - `poly`: `((0.25*x + 0.75)*x - 1.5)*x - 2`
//! - `trig`: `2*sin(x)^2 + cos(x)*y`
//! - `trig_sum`: `sum(2*sin(x)^2 + cos(x)*y)`
//! - `gauss`: `exp(-(x - 0.5)^2 / 0.02) * y`
//!
//! Modes:
//! - `unfused`: the chain of registry calls, every intermediate
//!   materialized, no cache (numpy's way; [`Expr::eval_unfused`]);
//! - `fused`: one fused pass, no cache ([`Expr::eval_raw`]);
//! - `hit`: [`Expr::eval`] of the same expression through a cache holding
//!   it, inputs keyed (nothing hashed: the key is a Merkle hash of the
//!   expression);
//!
//! Before the timings, the bench prints each expression's `explain()` on
//! its first fused evaluation, and the median time of 25 fresh compiles of
//! its plan ([`ndcache::expr::plan_cache_clear`] before each).
//!
//! Run: `cargo bench --bench expressions`, then
//! `python3 benches/expressions_numpy.py` for numpy and numexpr (2 threads)
//! on the same expressions and sizes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array1, Ix0, Ix1};
use ndcache::{ArrayCache, Evaluated, Expr, Registry};

/// `n` uniform draws in [0, 1), in memory allocated as numpy allocates
/// its arrays: numpy asks Linux for transparent huge pages on every array
/// of 4 MiB or more, so the numpy and numexpr runs of
/// benches/expressions_numpy.py read their inputs from huge pages. Inputs
/// in a plain `Vec` (4 KiB pages on machines whose THP setting is
/// `madvise`) made fused `trig` 8-14% slower at 1e6 and 1e7 here.
fn data(n: usize, seed: u64) -> Array1<f64> {
    let mut v: Vec<f64> = Vec::with_capacity(n);
    advise_huge_pages(&mut v);
    let mut x = seed | 1;
    v.extend((0..n).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }));
    Array1::from_vec(v)
}

/// numpy's rule: `madvise(MADV_HUGEPAGE)` on allocations of 4 MiB or more.
#[cfg(target_os = "linux")]
fn advise_huge_pages(v: &mut Vec<f64>) {
    const PAGE: usize = 4096;
    let bytes = v.capacity() * std::mem::size_of::<f64>();
    if bytes < 4 << 20 {
        return;
    }
    let addr = v.as_mut_ptr() as usize;
    let (start, end) = (addr.next_multiple_of(PAGE), (addr + bytes) & !(PAGE - 1));
    // SAFETY: `start..end` lies inside the Vec's allocation (its capacity,
    // rounded inward to whole pages), which this function borrows
    // mutably; MADV_HUGEPAGE is advice on how to back those pages and
    // changes neither their contents nor their validity. A failure
    // (a kernel without THP) only leaves 4 KiB pages, so it is ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_v: &mut Vec<f64>) {}

fn poly<'a>(x: impl Into<Expr<'a, f64, Ix1>>) -> Expr<'a, f64, Ix1> {
    let x: Expr<'a, f64, Ix1> = x.into();
    ((0.25 * x.clone() + 0.75) * x.clone() - 1.5) * x - 2.0
}

fn trig<'a>(
    x: impl Into<Expr<'a, f64, Ix1>>,
    y: impl Into<Expr<'a, f64, Ix1>>,
) -> Expr<'a, f64, Ix1> {
    let (x, y): (Expr<'a, f64, Ix1>, Expr<'a, f64, Ix1>) = (x.into(), y.into());
    2.0 * x.clone().sin().powi(2) + x.cos() * y
}

fn gauss<'a>(
    x: impl Into<Expr<'a, f64, Ix1>>,
    y: impl Into<Expr<'a, f64, Ix1>>,
) -> Expr<'a, f64, Ix1> {
    let (x, y): (Expr<'a, f64, Ix1>, Expr<'a, f64, Ix1>) = (x.into(), y.into());
    (-(x - 0.5).powi(2) / 0.02).exp() * y
}

enum Built<'a> {
    Array(Expr<'a, f64, Ix1>),
    Scalar(Expr<'a, f64, Ix0>),
}

fn build<'a>(
    name: &str,
    x: impl Into<Expr<'a, f64, Ix1>>,
    y: impl Into<Expr<'a, f64, Ix1>>,
) -> Built<'a> {
    match name {
        "poly" => Built::Array(poly(x)),
        "trig" => Built::Array(trig(x, y)),
        "trig_sum" => Built::Scalar(trig(x, y).sum()),
        "gauss" => Built::Array(gauss(x, y)),
        _ => unreachable!(),
    }
}

fn bench(c: &mut Criterion) {
    let reg = Registry::with_builtins();
    let mut g = c.benchmark_group("expr");
    for n in [10_000usize, 1_000_000, 10_000_000] {
        let x = data(n, 1);
        let y = data(n, 2);
        g.throughput(Throughput::Elements(n as u64));
        if n >= 1_000_000 {
            g.sample_size(20).measurement_time(Duration::from_secs(4));
        } else {
            g.sample_size(60).measurement_time(Duration::from_secs(2));
        }
        for name in ["poly", "trig", "trig_sum", "gauss"] {
            let e = build(name, &x, &y);
            if n == 10_000 {
                // The first explain shows the plan; the compile time is the
                // median of fresh compiles (plan cache emptied before each,
                // a new cache so that the result is computed), as one cold
                // sample swings with the machine (5.8 µs in one run, 120
                // µs in the next for poly).
                let explain = || {
                    let cache = ArrayCache::new();
                    match &e {
                        Built::Array(e) => e.explain(&cache).unwrap(),
                        Built::Scalar(e) => e.explain(&cache).unwrap(),
                    }
                };
                let report = explain();
                let mut us: Vec<f64> = (0..25)
                    .map(|_| {
                        ndcache::expr::plan_cache_clear();
                        explain().compile_time.as_secs_f64() * 1e6
                    })
                    .collect();
                us.sort_by(f64::total_cmp);
                eprintln!(
                    "{name}: plan compile {:.1} us (median of 25; {:.1}-{:.1}; first {:.1})\n{report}",
                    us[12],
                    us[0],
                    us[24],
                    report.compile_time.as_secs_f64() * 1e6
                );
            }
            g.bench_with_input(
                BenchmarkId::new(format!("{name}/unfused"), n),
                &n,
                |b, _| {
                    b.iter(|| match &e {
                        Built::Array(e) => drop(black_box(e.eval_unfused(&reg).unwrap())),
                        Built::Scalar(e) => drop(black_box(e.eval_unfused(&reg).unwrap())),
                    })
                },
            );
            g.bench_with_input(BenchmarkId::new(format!("{name}/fused"), n), &n, |b, _| {
                b.iter(|| match &e {
                    Built::Array(e) => drop(black_box(e.eval_raw(&reg).unwrap())),
                    Built::Scalar(e) => drop(black_box(e.eval_raw(&reg).unwrap())),
                })
            });
            // Inputs keyed once (as results of earlier work would be), the
            // expression evaluated once to fill the cache; each iteration
            // evaluates it again.
            let cache = ArrayCache::builder().max_bytes(1 << 31).build().unwrap();
            let xk: Evaluated<f64, Ix1> = Expr::from(&x).eval(&cache).unwrap();
            let yk: Evaluated<f64, Ix1> = Expr::from(&y).eval(&cache).unwrap();
            let keyed = build(name, &xk, &yk);
            match &keyed {
                Built::Array(e) => drop(e.eval(&cache).unwrap()),
                Built::Scalar(e) => drop(e.eval(&cache).unwrap()),
            }
            g.bench_with_input(BenchmarkId::new(format!("{name}/hit"), n), &n, |b, _| {
                b.iter(|| match &keyed {
                    Built::Array(e) => drop(black_box(e.eval(&cache).unwrap())),
                    Built::Scalar(e) => drop(black_box(e.eval(&cache).unwrap())),
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
