//! Typed lazy expressions, on their own: build, evaluate fused, hit, explain.
//!
//! Run: `cargo run --release --example expressions`.

use std::time::Instant;

use ndarray::{Array1, Array2, Axis};
use ndcache::{ArrayCache, Expr};

fn main() -> ndcache::Result<()> {
    let cache = ArrayCache::new();
    let n = 1_000_000;
    let x = Array1::<f64>::linspace(0.0, 10.0, n);
    let y = Array1::<f64>::linspace(1.0, 2.0, n);

    // Operators, numpy's method names, reductions; types follow numpy 2.
    let ex = Expr::new(&x);
    let gauss = (-(ex.clone() - 0.5).powi(2) / 0.02).exp() * &y;
    let t = Instant::now();
    let g = gauss.eval(&cache)?; // an ArcArray<f64, Ix1>, shared and keyed
    println!(
        "gauss: {} values, first {:.3e}, fused in {:?}",
        g.len(),
        g[0],
        t.elapsed()
    );

    // The result is an input like any other; its key is derived, never hashed.
    let total = Expr::new(&g).sum().eval(&cache)?;
    println!("sum(gauss) = {:.6}", total[()]);

    // Keyed inputs: a second evaluation of an equal expression hashes nothing.
    let xk = Expr::new(&x).eval(&cache)?; // hashed once here
    let yk = Expr::new(&y).eval(&cache)?;
    let trig = || (2.0 * Expr::new(&xk).sin().powi(2) + Expr::new(&xk).cos() * &yk).sum();
    println!("\n{}", trig().explain(&cache)?);
    println!("\n{}", trig().explain(&cache)?);

    // Mixed dtypes and broadcasting: an f32 row against an f64 column.
    let row = Array1::from_shape_fn(4, |i| i as f32 * 0.5);
    let col = Array2::from_shape_fn((3, 1), |(i, _)| i as f64);
    let table = (Expr::new(&col) * &row)
        .maximum(Expr::new(&col))
        .sum_axis(Axis(1));
    println!(
        "\nrow sums of max(col*row, col): {}",
        table.eval(&cache)?.array()
    );

    // A checkpoint stores an intermediate for other expressions to reuse.
    let s = || Expr::new(&xk).sin().checkpoint();
    (s() * 2.0).max().eval(&cache)?;
    println!("\n{}", (s() + 1.0).mean().explain(&cache)?);

    let plans = ndcache::expr::plan_cache_info();
    println!(
        "\nplan cache: {} hit(s), {} compiled in {:?} total",
        plans.hits, plans.misses, plans.compile_time
    );
    Ok(())
}
