//! Properties of the cache over random kernels, dtypes, shapes and layouts:
//! a cached result (miss or hit) is the raw result, bit for bit; results do
//! not depend on the number of threads; chains hash nothing.

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndcache::{AnyArray, ArrayCache, AsArg, Params};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Layout {
    C,
    Fortran,
    /// Every other element along each axis of a twice-as-large array.
    Strided,
    /// Reversed along the first axis.
    Reversed,
}

/// A deterministic value for element `i`: ordinary numbers, with a few
/// NaN, infinities and negative zeros among the floats.
fn value(i: usize, seed: u64) -> f64 {
    let h = (i as u64 ^ seed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    match h % 23 {
        0 => f64::NAN,
        1 => -0.0,
        2 => f64::INFINITY,
        3 => f64::NEG_INFINITY,
        _ => ((h >> 8) % 2001) as f64 / 100.0 - 10.0,
    }
}

fn build<T: ndcache::Element>(
    shape: &[usize],
    layout: Layout,
    seed: u64,
    conv: impl Fn(f64) -> T,
) -> ArrayD<T> {
    let n: usize = shape.iter().product();
    let logical: Vec<T> = (0..n).map(|i| conv(value(i, seed))).collect();
    let c = ArrayD::from_shape_vec(IxDyn(shape), logical).unwrap();
    match layout {
        Layout::C => c,
        Layout::Fortran => {
            let mut f = ArrayD::from_elem(IxDyn(shape).f(), conv(0.0));
            f.assign(&c);
            f
        }
        Layout::Strided | Layout::Reversed => c,
    }
}

fn int_of(v: f64) -> f64 {
    if v.is_finite() {
        v.round()
    } else {
        3.0
    }
}

/// An input of the given dtype (0..4), shape and layout, as an owned array
/// plus how to view it.
fn input(dtype: u8, shape: &[usize], layout: Layout, seed: u64) -> AnyArray {
    match dtype {
        0 => AnyArray::from(build(shape, layout, seed, |v| v)),
        1 => AnyArray::from(build(shape, layout, seed, |v| v as f32)),
        2 => AnyArray::from(build(shape, layout, seed, |v| int_of(v) as i32)),
        _ => AnyArray::from(build(shape, layout, seed, |v| int_of(v) as i64)),
    }
}

/// Runs `$body` with `$v` bound to the typed array inside an [`AnyArray`].
macro_rules! dispatch_array {
    ($a:expr, $v:ident => $body:expr) => {
        match $a {
            AnyArray::F32($v) => $body,
            AnyArray::F64($v) => $body,
            AnyArray::I32($v) => $body,
            AnyArray::I64($v) => $body,
            _ => unreachable!("a dtype these tests do not generate"),
        }
    };
}

/// The view a layout asks for: strided and reversed views are taken from a
/// bigger or flipped array holding the same logical values.
fn with_view<R>(a: &AnyArray, layout: Layout, f: impl FnOnce(ndcache::AnyView<'_>) -> R) -> R {
    fn strided<T: ndcache::Element>(x: &ArrayD<T>) -> ArrayD<T> {
        // Interleave: a twice-as-large array whose even positions hold x.
        let big_shape: Vec<usize> = x.shape().iter().map(|d| d * 2).collect();
        let mut big = ArrayD::from_elem(IxDyn(&big_shape), x.first().copied().unwrap_or_default());
        big.slice_each_axis_mut(|_| ndarray::Slice::new(0, None, 2))
            .assign(x);
        big
    }
    match layout {
        Layout::C | Layout::Fortran => f(a.view()),
        Layout::Strided => dispatch_array!(a, x => {
            let big = strided(&x.to_owned());
            f(big.slice_each_axis(|_| ndarray::Slice::new(0, None, 2)).into())
        }),
        Layout::Reversed => dispatch_array!(a, x => {
            if x.ndim() == 0 {
                return f(a.view());
            }
            let mut flipped = x.to_owned();
            flipped.invert_axis(ndarray::Axis(0));
            let flipped = flipped.as_standard_layout().into_owned();
            let mut v = flipped.view();
            v.invert_axis(ndarray::Axis(0));
            f(v.into())
        }),
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::C),
        Just(Layout::Fortran),
        Just(Layout::Strided),
        Just(Layout::Reversed)
    ]
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..6, 0..4)
}

const UNARY: &[&str] = &[
    "negative", "absolute", "square", "sqrt", "exp", "expm1", "log", "log1p", "sin", "cos", "tan",
    "tanh",
];
const BINARY: &[&str] = &[
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
];
const REDUCE: &[&str] = &["sum", "prod", "mean", "min", "max", "var", "std"];

fn check_cached_equals_raw(
    cache: &ArrayCache,
    name: &str,
    inputs: &[ndcache::Arg<'_>],
    params: &Params,
) -> Result<(), TestCaseError> {
    let raw = cache.call_raw(name, inputs, params);
    let miss = cache.call(name, inputs, params);
    let hit = cache.call(name, inputs, params);
    match (raw, miss, hit) {
        (Ok(r), Ok(m), Ok(h)) => {
            prop_assert!(r.bitwise_eq(m.array()), "{name}: miss differs from raw");
            prop_assert!(
                m.array().ptr_eq(h.array()),
                "{name}: the hit is the cached array"
            );
        }
        (Err(r), Err(m), Err(h)) => {
            prop_assert_eq!(r.to_string(), m.to_string());
            prop_assert_eq!(m.to_string(), h.to_string());
        }
        (r, m, h) => prop_assert!(false, "{name}: raw {r:?} / miss {m:?} / hit {h:?} disagree"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn unary_and_reductions_cached_equal_raw(
        dtype in 0u8..4,
        shape in shape(),
        layout in layout(),
        seed in any::<u64>(),
        kernel in 0usize..(UNARY.len() + REDUCE.len() + 2),
        axis in proptest::option::of(-3isize..3),
        keepdims in any::<bool>(),
        ddof in 0i64..3,
    ) {
        let cache = ArrayCache::new();
        let a = input(dtype, &shape, layout, seed);
        with_view(&a, layout, |v| {
            let (name, params) = if kernel < UNARY.len() {
                (UNARY[kernel], Params::new())
            } else if kernel < UNARY.len() + REDUCE.len() {
                let name = REDUCE[kernel - UNARY.len()];
                let mut p = Params::new().keepdims(keepdims);
                if let Some(ax) = axis { p = p.axis(ax); }
                if name == "var" || name == "std" { p = p.ddof(ddof); }
                (name, p)
            } else if kernel == UNARY.len() + REDUCE.len() {
                ("cumsum", axis.map_or(Params::new(), |ax| Params::new().axis(ax)))
            } else {
                ("sort", axis.map_or(Params::new(), |ax| Params::new().axis(ax)))
            };
            check_cached_equals_raw(&cache, name, &[v.arg()], &params)
        })?;
    }

    #[test]
    fn binary_cached_equal_raw(
        dtypes in (0u8..4, 0u8..4),
        shape in shape(),
        drop_axes in 0usize..3,
        ones in proptest::collection::vec(any::<bool>(), 0..4),
        layouts in (layout(), layout()),
        seed in any::<u64>(),
        kernel in 0usize..BINARY.len(),
    ) {
        // A second shape that broadcasts (a suffix with some dims set to 1),
        // or, when `ones` is empty, sometimes one that does not.
        let mut other: Vec<usize> = shape[drop_axes.min(shape.len())..].to_vec();
        for (d, one) in other.iter_mut().zip(&ones) {
            if *one { *d = 1; }
        }
        if ones.is_empty() && !other.is_empty() {
            other[0] += 1;
        }
        let cache = ArrayCache::new();
        let a = input(dtypes.0, &shape, layouts.0, seed);
        let b = input(dtypes.1, &other, layouts.1, seed ^ 0xABCD);
        with_view(&a, layouts.0, |va| {
            with_view(&b, layouts.1, |vb| {
                check_cached_equals_raw(&cache, BINARY[kernel], &[va.arg(), vb.arg()], &Params::new())
            })
        })?;
    }
}

#[test]
fn reductions_and_scans_do_not_depend_on_the_thread_count() {
    let n = 300_000;
    let x = ndarray::Array1::from_shape_fn(n, |i| value(i, 7) * 1e3 + 1e-3 * i as f64);
    let x = x.mapv(|v| if v.is_finite() { v } else { 1.0 });
    let m = x.clone().into_shape_with_order((600, 500)).unwrap();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let cache = ArrayCache::new();
            let mut out = Vec::new();
            for name in [
                "sum", "prod", "mean", "min", "max", "var", "std", "cumsum", "sort",
            ] {
                out.push(cache.call_raw(name, &[x.arg()], &Params::new()).unwrap());
                let p = if name == "sort" || name == "cumsum" {
                    Params::new().axis(0)
                } else {
                    Params::new().axis(0).keepdims(true)
                };
                out.push(cache.call_raw(name, &[m.arg()], &p).unwrap());
            }
            out
        })
    };
    let one = run(1);
    let four = run(4);
    for (i, (a, b)) in one.iter().zip(&four).enumerate() {
        assert!(
            a.bitwise_eq(b),
            "result {i} differs between 1 and 4 threads"
        );
    }
}

#[test]
fn second_sum_of_exp_hashes_no_bytes() {
    let cache = ArrayCache::new();
    let x = ndarray::Array1::linspace(-2.0, 2.0, 100_000);
    let xk = cache.keyed(x.clone());
    let hashed_at_keying = cache.info().bytes_hashed;
    assert_eq!(hashed_at_keying, 800_000);
    let chain = || {
        let e = cache.call("exp", &[xk.arg()], &Params::new()).unwrap();
        cache.call("sum", &[e.arg()], &Params::new()).unwrap()
    };
    let first = chain();
    let second = chain();
    assert_eq!(
        cache.info().bytes_hashed,
        hashed_at_keying,
        "no byte hashed by either chain"
    );
    assert!(first.array().ptr_eq(second.array()));
    let s = cache.kernel_info("sum").unwrap();
    assert_eq!((s.calls, s.memory_hits, s.computed), (2, 1, 1));
    // numpy: np.exp(np.linspace(-2, 2, 100000)).sum()
    let want = 181_344.969_182_017_4;
    let got = first.typed::<f64>().unwrap()[[]];
    assert!((got - want).abs() / want < 1e-12, "{got} vs numpy {want}");
    // The same chain from a plain view hashes x (800 kB) on every call, and
    // only x: the intermediate is never hashed.
    let before = cache.info().bytes_hashed;
    let e = cache.call("exp", &[x.arg()], &Params::new()).unwrap();
    cache.call("sum", &[e.arg()], &Params::new()).unwrap();
    assert_eq!(cache.info().bytes_hashed - before, 800_000);
}

#[test]
fn sorts_reusing_a_thread_scratch_buffer_stay_exact() {
    // Each thread keeps its radix-sort scratch buffer for the next sort,
    // with the previous sort's keys in it: run sorts of shrinking and
    // growing sizes on one thread and check each against std's sort.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let reg = ndcache::Registry::with_builtins();
        for (round, n) in [200_000usize, 50_000, 120_000, 3_000, 200_001]
            .into_iter()
            .enumerate()
        {
            let x = ndarray::Array1::from_shape_fn(n, |i| value(i, round as u64 * 31 + 5) * 7.0);
            let got = reg
                .call("sort", &[ndcache::AnyView::from(x.view())], &Params::new())
                .unwrap();
            let mut want: Vec<f64> = x.to_vec();
            want.sort_by(|a, b| a.total_cmp(b));
            // numpy puts every NaN last; total_cmp puts -NaN first.
            let nans = want.iter().filter(|v| v.is_nan()).count();
            want.retain(|v| !v.is_nan());
            let got = got.typed::<f64>().unwrap();
            let got: Vec<f64> = got.iter().copied().collect();
            assert_eq!(&got[..n - nans], &want[..], "round {round}");
            assert!(got[n - nans..].iter().all(|v| v.is_nan()), "round {round}");
        }
    });
}
