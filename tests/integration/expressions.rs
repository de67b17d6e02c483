//! Typed fused expressions: fused == the unfused chain of registry calls,
//! bit for bit, on random trees; cached == fused; keys, plans, errors.

use ndarray::{Array, ArrayD, Axis, Dimension, IxDyn, ShapeBuilder};
use ndcache::expr::plan_cache_info;
use ndcache::expr::Reduced;
use ndcache::{AnyArray, ArrayCache, AsArg, Error, Expr, Params, Registry, Source};

/// An expression of any element type (the random trees' dynamic types).
#[derive(Clone)]
enum E<'a> {
    F32(Expr<'a, f32, IxDyn>),
    F64(Expr<'a, f64, IxDyn>),
    I32(Expr<'a, i32, IxDyn>),
    I64(Expr<'a, i64, IxDyn>),
}

macro_rules! each {
    ($e:expr, $x:ident => $body:expr) => {
        match $e {
            E::F32($x) => E::from($body),
            E::F64($x) => E::from($body),
            E::I32($x) => E::from($body),
            E::I64($x) => E::from($body),
        }
    };
}

macro_rules! pair {
    ($a:expr, $b:expr, $x:ident, $y:ident => $body:expr) => {
        match ($a, $b) {
            (E::F32($x), E::F32($y)) => E::from($body),
            (E::F32($x), E::F64($y)) => E::from($body),
            (E::F32($x), E::I32($y)) => E::from($body),
            (E::F32($x), E::I64($y)) => E::from($body),
            (E::F64($x), E::F32($y)) => E::from($body),
            (E::F64($x), E::F64($y)) => E::from($body),
            (E::F64($x), E::I32($y)) => E::from($body),
            (E::F64($x), E::I64($y)) => E::from($body),
            (E::I32($x), E::F32($y)) => E::from($body),
            (E::I32($x), E::F64($y)) => E::from($body),
            (E::I32($x), E::I32($y)) => E::from($body),
            (E::I32($x), E::I64($y)) => E::from($body),
            (E::I64($x), E::F32($y)) => E::from($body),
            (E::I64($x), E::F64($y)) => E::from($body),
            (E::I64($x), E::I32($y)) => E::from($body),
            (E::I64($x), E::I64($y)) => E::from($body),
        }
    };
}

impl<'a> From<Expr<'a, f32, IxDyn>> for E<'a> {
    fn from(e: Expr<'a, f32, IxDyn>) -> Self {
        E::F32(e)
    }
}
impl<'a> From<Expr<'a, f64, IxDyn>> for E<'a> {
    fn from(e: Expr<'a, f64, IxDyn>) -> Self {
        E::F64(e)
    }
}
impl<'a> From<Expr<'a, i32, IxDyn>> for E<'a> {
    fn from(e: Expr<'a, i32, IxDyn>) -> Self {
        E::I32(e)
    }
}
impl<'a> From<Expr<'a, i64, IxDyn>> for E<'a> {
    fn from(e: Expr<'a, i64, IxDyn>) -> Self {
        E::I64(e)
    }
}

impl E<'_> {
    fn fused(&self, reg: &Registry) -> ndcache::Result<AnyArray> {
        Ok(match self {
            E::F32(e) => AnyArray::new(e.eval_raw(reg)?),
            E::F64(e) => AnyArray::new(e.eval_raw(reg)?),
            E::I32(e) => AnyArray::new(e.eval_raw(reg)?),
            E::I64(e) => AnyArray::new(e.eval_raw(reg)?),
        })
    }
    fn unfused(&self, reg: &Registry) -> ndcache::Result<AnyArray> {
        Ok(match self {
            E::F32(e) => AnyArray::new(e.eval_unfused(reg)?),
            E::F64(e) => AnyArray::new(e.eval_unfused(reg)?),
            E::I32(e) => AnyArray::new(e.eval_unfused(reg)?),
            E::I64(e) => AnyArray::new(e.eval_unfused(reg)?),
        })
    }
    fn cached(&self, cache: &ArrayCache) -> ndcache::Result<AnyArray> {
        Ok(match self {
            E::F32(e) => AnyArray::new(e.eval(cache)?.into_array()),
            E::F64(e) => AnyArray::new(e.eval(cache)?.into_array()),
            E::I32(e) => AnyArray::new(e.eval(cache)?.into_array()),
            E::I64(e) => AnyArray::new(e.eval(cache)?.into_array()),
        })
    }
    fn text(&self) -> String {
        match self {
            E::F32(e) => format!("{e:?}"),
            E::F64(e) => format!("{e:?}"),
            E::I32(e) => format!("{e:?}"),
            E::I64(e) => format!("{e:?}"),
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The inputs: every dtype in shapes broadcastable to (3, 40, 700) (84 000
/// elements: several tiles and tasks), in C order, Fortran order and
/// strided.
struct Inputs {
    f32: Vec<ArrayD<f32>>,
    f64: Vec<ArrayD<f64>>,
    i32: Vec<ArrayD<i32>>,
    i64: Vec<ArrayD<i64>>,
    /// Twice as long along the first axis, read with a step of 2.
    strided_f64: ArrayD<f64>,
    /// (700, 40, 3) in C order, read transposed.
    transposed: ArrayD<f64>,
}

const FULL: [usize; 3] = [3, 40, 700];

fn shapes() -> Vec<Vec<usize>> {
    vec![
        FULL.to_vec(),
        vec![700],
        vec![40, 1],
        vec![3, 1, 1],
        vec![1],
        vec![],
        vec![40, 700],
    ]
}

fn inputs() -> Inputs {
    let mut f64s: Vec<ArrayD<f64>> = shapes()
        .iter()
        .enumerate()
        .map(|(k, s)| {
            ArrayD::from_shape_fn(IxDyn(s), |i| {
                let flat = i.as_array_view().iter().fold(0usize, |a, &v| a * 131 + v);
                (((flat * 7919 + k * 104_729) % 2003) as f64 - 1001.0) / 250.0
            })
        })
        .collect();
    // Fortran order, same values as the C-order full array.
    let mut fortran = Array::zeros(IxDyn(&FULL).f());
    fortran.assign(&f64s[0]);
    fortran.mapv_inplace(|v: f64| v * 0.5 + 0.25);
    f64s.push(fortran);
    let f32s = f64s.iter().map(|a| a.mapv(|v| v as f32 * 1.5)).collect();
    let i32s = f64s.iter().map(|a| a.mapv(|v| (v * 3.0) as i32)).collect();
    let i64s = f64s
        .iter()
        .map(|a| a.mapv(|v| (v * 1e6) as i64 ^ 0x5555))
        .collect();
    let strided_f64 = ArrayD::from_shape_fn(IxDyn(&[6, 40, 700]), |i| {
        (i[0] * 3 + i[1] + i[2]) as f64 / 97.0 - 3.0
    });
    let transposed = ArrayD::from_shape_fn(IxDyn(&[700, 40, 3]), |i| {
        (i[0] as f64).sin() * 4.0 + i[1] as f64 - i[2] as f64
    });
    Inputs {
        transposed,
        f32: f32s,
        f64: f64s,
        i32: i32s,
        i64: i64s,
        strided_f64,
    }
}

fn leaf<'a>(inp: &'a Inputs, rng: &mut Rng) -> E<'a> {
    let pick = rng.below(inp.f64.len());
    match rng.below(9) {
        0 | 1 => E::F64(Expr::from(&inp.f64[pick])),
        2 => E::F32(Expr::from(&inp.f32[pick])),
        3 => E::I32(Expr::from(&inp.i32[pick])),
        4 => E::I64(Expr::from(&inp.i64[pick])),
        5 => E::F64(Expr::from(
            inp.strided_f64
                .slice_axis(Axis(0), ndarray::Slice::new(0, None, 2)),
        )),
        6 => E::F64(Expr::from(inp.transposed.t())),
        _ => E::F64(Expr::from(&inp.f64[0])),
    }
}

fn scalar<'a>(e: E<'a>, rng: &mut Rng) -> E<'a> {
    let f = [2.0, 0.5, -1.5, 3.0, 1e-3][rng.below(5)];
    let i = [2i32, -3, 7, 0][rng.below(4)];
    match rng.below(8) {
        0 => each!(e, x => x + f),
        1 => each!(e, x => f * x),
        2 => each!(e, x => x - i),
        3 => each!(e, x => i * x),
        4 => each!(e, x => x / f),
        5 => each!(e, x => f - x),
        6 => each!(e, x => x.powi(2)),
        _ => each!(e, x => x.powf(1.5)),
    }
}

fn unary<'a>(e: E<'a>, rng: &mut Rng) -> E<'a> {
    match rng.below(14) {
        0 => each!(e, x => -x),
        1 => each!(e, x => x.abs()),
        2 => each!(e, x => x.square()),
        3 => each!(e, x => x.sqrt()),
        4 => each!(e, x => x.exp()),
        5 => each!(e, x => x.expm1()),
        6 => each!(e, x => x.log()),
        7 => each!(e, x => x.log1p()),
        8 => each!(e, x => x.sin()),
        9 => each!(e, x => x.cos()),
        10 => each!(e, x => x.tan()),
        11 => each!(e, x => x.tanh()),
        12 => match rng.below(2) {
            0 => each!(e, x => cumsum(x)),
            _ => each!(e, x => sort(x)),
        },
        _ => each!(e, x => x.checkpoint()),
    }
}

/// A fusion boundary: numpy's sort along the last axis.
fn sort<'a, T: ndcache::Element>(x: Expr<'a, T, IxDyn>) -> Expr<'a, T, IxDyn> {
    x.apply("sort", Params::new())
}

/// A fusion boundary: numpy's cumsum along the last axis.
fn cumsum<'a, T: Reduced>(x: Expr<'a, T, IxDyn>) -> Expr<'a, T::Sum, IxDyn> {
    x.apply("cumsum", Params::new().axis(-1))
}

fn binary<'a>(a: E<'a>, b: E<'a>, rng: &mut Rng) -> E<'a> {
    match rng.below(7) {
        0 => pair!(a, b, x, y => x + y),
        1 => pair!(a, b, x, y => x - y),
        2 => pair!(a, b, x, y => x * y),
        3 => pair!(a, b, x, y => x / y),
        4 => pair!(a, b, x, y => x.maximum(y)),
        5 => pair!(a, b, x, y => x.minimum(y)),
        _ => pair!(a, b, x, y => x.abs().power(y.abs())),
    }
}

/// A random elementwise tree of depth at most `depth`; subtrees are reused
/// now and then (common subexpressions).
fn tree<'a>(inp: &'a Inputs, rng: &mut Rng, depth: usize, pool: &mut Vec<E<'a>>) -> E<'a> {
    if depth == 0 || rng.below(5) == 0 {
        return leaf(inp, rng);
    }
    if !pool.is_empty() && rng.below(6) == 0 {
        return pool[rng.below(pool.len())].clone();
    }
    let e = match rng.below(3) {
        0 => unary(tree(inp, rng, depth - 1, pool), rng),
        1 => scalar(tree(inp, rng, depth - 1, pool), rng),
        _ => {
            let a = tree(inp, rng, depth - 1, pool);
            let b = tree(inp, rng, depth - 1, pool);
            binary(a, b, rng)
        }
    };
    pool.push(e.clone());
    e
}

/// A random tree, maybe ending in a reduction (over everything, the last
/// axis, another axis, with or without keepdims).
fn expression<'a>(inp: &'a Inputs, rng: &mut Rng) -> E<'a> {
    let mut pool = Vec::new();
    let depth = 1 + rng.below(6);
    let e = tree(inp, rng, depth, &mut pool);
    if rng.below(2) == 0 {
        return e;
    }
    let keep = rng.below(3) == 0;
    let axis = match rng.below(3) {
        0 => None,
        _ => Some(Axis(rng.below(3))),
    };
    match (rng.below(5), axis, keep) {
        (0, None, false) => each!(e, x => x.sum().into_dyn()),
        (0, Some(a), false) => each!(e, x => x.sum_axis(a).into_dyn()),
        (0, a, true) => each!(e, x => x.sum_keepdims(a)),
        (1, None, false) => each!(e, x => x.mean().into_dyn()),
        (1, Some(a), false) => each!(e, x => x.mean_axis(a).into_dyn()),
        (1, a, true) => each!(e, x => x.mean_keepdims(a)),
        (2, None, false) => each!(e, x => x.max().into_dyn()),
        (2, Some(a), false) => each!(e, x => x.max_axis(a).into_dyn()),
        (2, a, true) => each!(e, x => x.max_keepdims(a)),
        (3, None, _) => each!(e, x => x.min().into_dyn()),
        (3, Some(a), _) => each!(e, x => x.min_axis(a).into_dyn()),
        (_, a, _) => each!(e, x => x.var_keepdims(a, 1)),
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

fn describe(a: &ndcache::Result<AnyArray>) -> String {
    match a {
        Ok(a) => format!("{} {:?}", a.dtype(), a.shape()),
        Err(e) => format!("error: {e}"),
    }
}

fn same(a: &ndcache::Result<AnyArray>, b: &ndcache::Result<AnyArray>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a.bitwise_eq(b),
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

#[test]
fn fused_equals_the_unfused_chain_bitwise_on_random_trees() {
    let inp = inputs();
    let reg = Registry::with_builtins();
    let (one, four) = (pool(1), pool(4));
    let mut failures = Vec::new();
    let mut ok = 0;
    for seed in 1..=160u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let e = expression(&inp, &mut rng);
        let unfused = one.install(|| e.unfused(&reg));
        let fused1 = one.install(|| e.fused(&reg));
        let fused4 = four.install(|| e.fused(&reg));
        let cache = ArrayCache::new();
        let cached = four.install(|| e.cached(&cache));
        let again = one.install(|| e.cached(&cache));
        for (what, got) in [
            ("fused, 1 thread", &fused1),
            ("fused, 4 threads", &fused4),
            ("cached", &cached),
            ("cached hit", &again),
        ] {
            if !same(&unfused, got) {
                failures.push(format!(
                    "seed {seed}: {what}: {} vs unfused {}: {}",
                    describe(got),
                    describe(&unfused),
                    e.text()
                ));
            }
        }
        ok += usize::from(unfused.is_ok());
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Most trees must evaluate (errors are compared too, but they should be
    // the exception: broadcasts here always agree).
    assert!(ok >= 140, "only {ok} of 160 trees evaluated");
}
