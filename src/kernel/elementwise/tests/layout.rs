//! Every layout (C, Fortran, strided, reversed, permuted, broadcast views)
//! and every dtype against naive sequential references, thread-count
//! independence, and agreement of the vector levels.

use ndarray::{ArrayD, Axis, Dimension, IxDyn, ShapeBuilder, Slice};

use super::super::{math, pow, simd};
use super::*;
use crate::element::Element;

/// A small deterministic generator (no dependency needed for this).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    /// Mostly moderate values, with NaN, ±inf, ±0, subnormals, and large values.
    fn float(&mut self) -> f64 {
        let u = self.next() as f64 / (1u64 << 53) as f64;
        match self.next() % 16 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => 0.0,
            4 => -0.0,
            5 => 5e-324 * (self.next() % 100) as f64,
            6 => (u - 0.5) * 1e300,
            7 => (u - 0.5) * 1500.0,
            _ => (u - 0.5) * 8.0,
        }
    }

    /// Any integer, or a small one.
    fn int(&mut self) -> i64 {
        let v = self.next();
        match v % 4 {
            0 => (v << 11) as i64,
            1 => i64::MIN + (v % 3) as i64,
            _ => (v % 21) as i64 - 10,
        }
    }
}

fn random(dtype: DType, shape: &[usize], rng: &mut Rng, small_nonneg: bool) -> AnyArray {
    let n: usize = shape.iter().product();
    let sh = IxDyn(shape);
    let ints: Vec<i64> = (0..n)
        .map(|_| {
            if small_nonneg {
                (rng.next() % 40) as i64
            } else {
                rng.int()
            }
        })
        .collect();
    match dtype {
        DType::F32 => {
            let v = (0..n).map(|_| rng.float() as f32).collect();
            ArrayD::from_shape_vec(sh, v).unwrap().into()
        }
        DType::F64 => {
            let v = (0..n).map(|_| rng.float()).collect();
            ArrayD::from_shape_vec(sh, v).unwrap().into()
        }
        DType::I32 => {
            let v = ints.iter().map(|&i| i as i32).collect();
            ArrayD::from_shape_vec(sh, v).unwrap().into()
        }
        DType::I64 => ArrayD::from_shape_vec(sh, ints).unwrap().into(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    C,
    F,
    /// Every other index along the first axis, from the second index of the last.
    Strided,
    /// Negative strides on every axis.
    Reversed,
    /// First two axes swapped in memory.
    Permuted,
}

const LAYOUTS: [Layout; 5] = [
    Layout::C,
    Layout::F,
    Layout::Strided,
    Layout::Reversed,
    Layout::Permuted,
];

/// An owned array with the values of `c` (logically) in `layout`.
fn relayout_typed<T: Element>(c: &ArrayD<T>, layout: Layout) -> ArrayD<T> {
    let nd = c.ndim();
    match layout {
        Layout::C => c.clone(),
        Layout::F => {
            let mut f = ArrayD::from_elem(c.raw_dim().f(), T::default());
            f.assign(c);
            f
        }
        Layout::Strided if nd > 0 => {
            let mut big_shape = c.shape().to_vec();
            big_shape[0] *= 2;
            if nd > 1 {
                big_shape[nd - 1] += 1;
            }
            let mut big = ArrayD::from_elem(IxDyn(&big_shape), T::default());
            big.slice_each_axis_inplace(|ax| match ax.axis.index() {
                0 => Slice::new(0, None, 2),
                k if k == nd - 1 => Slice::from(1..),
                _ => Slice::from(..),
            });
            big.assign(c);
            big
        }
        Layout::Reversed => {
            let mut r = c.clone();
            for k in 0..nd {
                r.invert_axis(Axis(k));
            }
            let mut r = r.as_standard_layout().into_owned();
            for k in 0..nd {
                r.invert_axis(Axis(k));
            }
            r
        }
        Layout::Permuted if nd > 1 => {
            let mut p = c.clone();
            p.swap_axes(0, 1);
            let mut p = p.as_standard_layout().into_owned();
            p.swap_axes(0, 1);
            p
        }
        _ => c.clone(),
    }
}

fn relayout(c: &AnyArray, layout: Layout) -> AnyArray {
    let out = match c {
        AnyArray::F32(a) => AnyArray::from(relayout_typed(&a.to_owned(), layout)),
        AnyArray::F64(a) => AnyArray::from(relayout_typed(&a.to_owned(), layout)),
        AnyArray::I32(a) => AnyArray::from(relayout_typed(&a.to_owned(), layout)),
        AnyArray::I64(a) => AnyArray::from(relayout_typed(&a.to_owned(), layout)),
    };
    assert!(out.bitwise_eq(c));
    out
}

trait ToOwnedC {
    /// The same values in a new C-order array.
    fn to_owned_c(&self) -> AnyArray;
}

impl ToOwnedC for AnyArray {
    fn to_owned_c(&self) -> AnyArray {
        let c =
            crate::dispatch_array!(self, v => AnyArray::from(v.as_standard_layout().into_owned()));
        assert!(is_standard(&c) && c.bitwise_eq(self));
        c
    }
}

fn is_standard(a: &AnyArray) -> bool {
    crate::dispatch_array!(a, v => v.is_standard_layout())
}

/// One element, of any dtype, for the naive references.
#[derive(Clone, Copy, Debug)]
enum Scalar {
    F32(f32),
    F64(f64),
    I32(i32),
    I64(i64),
}

impl Scalar {
    fn at(a: &AnyArray, idx: &[usize]) -> Scalar {
        match a {
            AnyArray::F32(v) => Scalar::F32(v[idx]),
            AnyArray::F64(v) => Scalar::F64(v[idx]),
            AnyArray::I32(v) => Scalar::I32(v[idx]),
            AnyArray::I64(v) => Scalar::I64(v[idx]),
        }
    }
    fn f64(self) -> f64 {
        match self {
            Scalar::F32(v) => v as f64,
            Scalar::F64(v) => v,
            Scalar::I32(v) => v as f64,
            Scalar::I64(v) => v as f64,
        }
    }
    fn f32(self) -> f32 {
        match self {
            Scalar::F32(v) => v,
            _ => unreachable!("only f32 loops read f32"),
        }
    }
    fn i64(self) -> i64 {
        match self {
            Scalar::I32(v) => v as i64,
            Scalar::I64(v) => v,
            _ => unreachable!("only integer loops read integers"),
        }
    }
}

/// `name` computed element by element, straight from the definitions.
fn naive_binary(name: &str, a: &AnyArray, b: &AnyArray) -> AnyArray {
    let shape = broadcast_shape(a.shape(), b.shape()).unwrap();
    let project = |arr: &AnyArray, idx: &[usize]| -> Vec<usize> {
        let skip = idx.len() - arr.ndim();
        idx[skip..]
            .iter()
            .zip(arr.shape())
            .map(|(&i, &d)| if d == 1 { 0 } else { i })
            .collect()
    };
    let promoted = a.dtype().promote(b.dtype());
    let out_dtype = if name == "divide" && !promoted.is_float() {
        DType::F64
    } else {
        promoted
    };
    let mut out = Vec::new();
    for idx in ndarray::indices(IxDyn(&shape)) {
        let idx = idx.slice();
        let (x, y) = (
            Scalar::at(a, &project(a, idx)),
            Scalar::at(b, &project(b, idx)),
        );
        let max = |p: f64, q: f64| {
            if p.is_nan() {
                p
            } else if q.is_nan() {
                q
            } else if p > q {
                p
            } else {
                q
            }
        };
        let min = |p: f64, q: f64| {
            if p.is_nan() {
                p
            } else if q.is_nan() {
                q
            } else if p < q {
                p
            } else {
                q
            }
        };
        out.push(match out_dtype {
            DType::F32 => {
                let (p, q) = (x.f32(), y.f32());
                Scalar::F32(match name {
                    "add" => p + q,
                    "subtract" => p - q,
                    "multiply" => p * q,
                    "divide" => p / q,
                    // The crate's own pow (its accuracy is pow.rs's tests').
                    "power" if pow::needs_special_f32(p, q) => pow::special_f32(p, q),
                    "power" => pow::pow_f32(p, q),
                    "maximum" => max(p as f64, q as f64) as f32,
                    _ => min(p as f64, q as f64) as f32,
                })
            }
            DType::F64 => {
                let (p, q) = (x.f64(), y.f64());
                Scalar::F64(match name {
                    "add" => p + q,
                    "subtract" => p - q,
                    "multiply" => p * q,
                    "divide" => p / q,
                    "power" if pow::needs_special(p, q) => pow::special(p, q),
                    "power" => pow::pow::<pow::Dekker>(p, q),
                    "maximum" => max(p, q),
                    _ => min(p, q),
                })
            }
            int => {
                let (p, q) = (x.i64(), y.i64());
                // i32 results are the low 32 bits of the i64 computation.
                let v = match name {
                    "add" => p.wrapping_add(q),
                    "subtract" => p.wrapping_sub(q),
                    "multiply" => p.wrapping_mul(q),
                    "power" => (0..q).fold(1i64, |acc, _| acc.wrapping_mul(p)),
                    "maximum" => p.max(q),
                    _ => p.min(q),
                };
                if int == DType::I32 {
                    Scalar::I32(v as i32)
                } else {
                    Scalar::I64(v)
                }
            }
        });
    }
    let sh = IxDyn(&shape);
    macro_rules! collect {
        ($v:ident) => {
            ArrayD::from_shape_vec(
                sh,
                out.iter()
                    .map(|s| match s {
                        Scalar::$v(v) => *v,
                        _ => unreachable!(),
                    })
                    .collect(),
            )
            .unwrap()
            .into()
        };
    }
    match out_dtype {
        DType::F32 => collect!(F32),
        DType::F64 => collect!(F64),
        DType::I32 => collect!(I32),
        DType::I64 => collect!(I64),
    }
}

const SHAPE_PAIRS: [(&[usize], &[usize]); 8] = [
    (&[7], &[7]),
    (&[3, 4], &[4]),
    (&[3, 1], &[1, 4]),
    (&[], &[2, 3]),
    (&[2, 3, 4], &[3, 1]),
    (&[4, 1, 3], &[]),
    (&[2, 3, 2, 3, 2], &[2, 1, 2]),
    (&[2, 1, 3, 1, 5], &[3, 2, 1]),
];

#[test]
fn binary_kernels_match_naive_reference_in_every_layout() {
    let mut rng = Rng(42);
    let names = [
        "add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
    ];
    for name in names {
        for da in DType::ALL {
            for db in DType::ALL {
                for (sa, sb) in SHAPE_PAIRS {
                    let small = name == "power" && !da.promote(db).is_float();
                    let a = random(da, sa, &mut rng, false);
                    let b = random(db, sb, &mut rng, small);
                    let want = naive_binary(name, &a, &b);
                    for (la, lb) in LAYOUTS.iter().zip(LAYOUTS.iter().rev()) {
                        let (x, y) = (relayout(&a, *la), relayout(&b, *lb));
                        let got = call2(name, x.view(), y.view());
                        assert!(is_standard(&got), "{name} {da} {db} {sa:?} {sb:?}");
                        assert!(
                            got.bitwise_eq(&want),
                            "{name} {da} {db} {sa:?} {la:?} {sb:?} {lb:?}\n{a:?}\n{b:?}\n{got:?}\n{want:?}"
                        );
                    }
                }
            }
        }
    }
}

/// The reference of a unary kernel on one element, from std.
fn naive_unary(name: &str, x: Scalar) -> Scalar {
    match (name, x) {
        ("negative", Scalar::I32(v)) => Scalar::I32(v.wrapping_neg()),
        ("negative", Scalar::I64(v)) => Scalar::I64(v.wrapping_neg()),
        ("absolute", Scalar::I32(v)) => Scalar::I32(v.wrapping_abs()),
        ("absolute", Scalar::I64(v)) => Scalar::I64(v.wrapping_abs()),
        ("square", Scalar::I32(v)) => Scalar::I32(v.wrapping_mul(v)),
        ("square", Scalar::I64(v)) => Scalar::I64(v.wrapping_mul(v)),
        ("negative", Scalar::F32(v)) => Scalar::F32(-v),
        ("absolute", Scalar::F32(v)) => Scalar::F32(v.abs()),
        ("square", Scalar::F32(v)) => Scalar::F32(v * v),
        // glibc's tanhf is off by 2 ulp at times, its sinf by 1 (sinf of
        // 2.619575 is 0.49863005, numpy and mpmath say 0.49863008): the f64
        // functions, rounded.
        ("tanh", Scalar::F32(v)) => Scalar::F32(f64::from(v).tanh() as f32),
        ("sin", Scalar::F32(v)) => Scalar::F32(f64::from(v).sin() as f32),
        ("cos", Scalar::F32(v)) => Scalar::F32(f64::from(v).cos() as f32),
        ("tan", Scalar::F32(v)) => Scalar::F32(f64::from(v).tan() as f32),
        (_, Scalar::F32(v)) => Scalar::F32(match name {
            "sqrt" => v.sqrt(),
            "exp" => v.exp(),
            "expm1" => v.exp_m1(),
            "log" => v.ln(),
            "log1p" => v.ln_1p(),
            "sin" => v.sin(),
            "cos" => v.cos(),
            "tan" => v.tan(),
            _ => v.tanh(),
        }),
        (_, x) => {
            let v = x.f64();
            Scalar::F64(match name {
                "negative" => -v,
                "absolute" => v.abs(),
                "square" => v * v,
                "sqrt" => v.sqrt(),
                "exp" => v.exp(),
                "expm1" => v.exp_m1(),
                "log" => v.ln(),
                "log1p" => v.ln_1p(),
                "sin" => v.sin(),
                "cos" => v.cos(),
                "tan" => v.tan(),
                _ => v.tanh(),
            })
        }
    }
}

const SHAPES: [&[usize]; 7] = [
    &[],
    &[9],
    &[3, 4],
    &[2, 3, 4],
    &[4, 1, 3],
    &[2, 3, 2, 3, 2],
    &[3, 0, 2],
];

#[test]
fn unary_kernels_match_naive_reference_in_every_layout() {
    let mut rng = Rng(7);
    let names = [
        "negative", "absolute", "square", "sqrt", "exp", "expm1", "log", "log1p", "sin", "cos",
        "tan", "tanh",
    ];
    for name in names {
        let vector_math = matches!(
            name,
            "exp" | "log" | "expm1" | "log1p" | "tanh" | "sin" | "cos" | "tan"
        );
        for dtype in DType::ALL {
            for shape in SHAPES {
                let c = random(dtype, shape, &mut rng, false);
                let reference = call1(name, c.view());
                assert!(is_standard(&reference));
                assert_eq!(reference.shape(), shape);
                for idx in ndarray::indices(IxDyn(shape)) {
                    let idx = idx.slice();
                    let (got, want) = (
                        Scalar::at(&reference, idx),
                        naive_unary(name, Scalar::at(&c, idx)),
                    );
                    let ok = match (got, want) {
                        // Our exp, log, expm1, log1p, sin, cos are within
                        // 1 ulp of libm's, tanh and tan within 2.
                        (Scalar::F64(g), Scalar::F64(w)) if vector_math => ulps(g, w) <= 2,
                        (Scalar::F32(g), Scalar::F32(w)) if vector_math => {
                            g.to_bits().abs_diff(w.to_bits()) <= 1 || g.is_nan() && w.is_nan()
                        }
                        (Scalar::F64(g), Scalar::F64(w)) => {
                            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan()
                        }
                        (Scalar::F32(g), Scalar::F32(w)) => {
                            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan()
                        }
                        (Scalar::I32(g), Scalar::I32(w)) => g == w,
                        (Scalar::I64(g), Scalar::I64(w)) => g == w,
                        _ => false,
                    };
                    assert!(
                        ok,
                        "{name}({:?}) = {got:?}, want {want:?}",
                        Scalar::at(&c, idx)
                    );
                }
                for layout in LAYOUTS {
                    let x = relayout(&c, layout);
                    let got = call1(name, x.view());
                    assert!(is_standard(&got));
                    assert!(
                        got.bitwise_eq(&reference),
                        "{name} {dtype} {shape:?} {layout:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn broadcast_views_as_inputs() {
    // A view that is itself broadcast (stride 0) is read in place.
    let row = ndarray::Array1::from_iter((0..1000).map(|i| i as f64 * 0.25));
    let wide = row.broadcast((300, 1000)).unwrap();
    let col = ndarray::Array2::from_shape_fn((300, 1), |(i, _)| i as f64);
    let got = call2("subtract", AnyView::from(wide.view()), col.view().into());
    let want = naive_binary(
        "subtract",
        &AnyArray::from(wide.to_owned()),
        &AnyArray::from(col.clone()),
    );
    assert!(got.bitwise_eq(&want));
    let got = call1("exp", AnyView::from(wide.view()));
    let want = call1("exp", wide.to_owned().view().into());
    assert!(got.bitwise_eq(&want));
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let (one, four) = (pool(1), pool(4));
    let mut rng = Rng(3);
    // 300 000 elements: above every parallel threshold.
    let m = random(DType::F64, &[300, 1000], &mut rng, false);
    let f = relayout(&m, Layout::F);
    let s = relayout(&m, Layout::Strided);
    let row = random(DType::F64, &[1000], &mut rng, false);
    let col = random(DType::F32, &[300, 1], &mut rng, false);
    let ints = random(DType::I32, &[300, 1000], &mut rng, false);
    let exps = relayout(&random(DType::I64, &[300, 1000], &mut rng, true), Layout::F);
    let cases: Vec<(&str, Vec<&AnyArray>)> = vec![
        ("exp", vec![&m]),
        ("exp", vec![&f]),
        ("sin", vec![&s]),
        ("square", vec![&ints]),
        ("sqrt", vec![&ints]),
        ("add", vec![&f, &row]),
        ("maximum", vec![&m, &col]),
        ("divide", vec![&s, &f]),
        ("multiply", vec![&row, &col]),
        ("power", vec![&ints, &exps]),
    ];
    for (name, inputs) in cases {
        let views: Vec<AnyView<'_>> = inputs.iter().map(|a| a.view()).collect();
        let a = one.install(|| call(name, &views).unwrap());
        let b = four.install(|| call(name, &views).unwrap());
        assert!(a.len() >= 300_000);
        assert!(a.bitwise_eq(&b), "{name}");
        assert!(is_standard(&a) && is_standard(&b));
        if views.len() == 2 {
            assert!(
                a.bitwise_eq(&naive_binary(name, inputs[0], inputs[1])),
                "{name}"
            );
        }
    }
    // User kernels are split the same way.
    let mut r = Registry::new();
    r.register_elementwise_f64("logistic", "1", "", |v| 1.0 / (1.0 + (-v).exp()))
        .unwrap();
    r.register_elementwise_f32("cube", "1", "", |v| v * v * v)
        .unwrap();
    let m32 = random(DType::F32, &[300, 1000], &mut rng, false);
    for (name, x) in [("logistic", &f), ("logistic", &ints), ("cube", &m32)] {
        let p = Params::new();
        let a = one.install(|| r.call(name, &[x.view()], &p).unwrap());
        let b = four.install(|| r.call(name, &[x.view()], &p).unwrap());
        assert!(a.bitwise_eq(&b), "{name}");
        let c = r.call(name, &[x.to_owned_c().view()], &p).unwrap();
        assert!(a.bitwise_eq(&c), "{name}");
    }
}

#[test]
fn tasks_over_several_axes() {
    // Fortran-order (3, 5, 7000) cannot be merged into one axis, so tasks
    // fix one or two leading indices: 6 tasks for add (32 Ki elements each
    // at most), 15 for exp (8 Ki), 105 for sin (1 Ki).
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let (one, three) = (pool(1), pool(3));
    let mut rng = Rng(5);
    let a = relayout(
        &random(DType::F64, &[3, 5, 7000], &mut rng, false),
        Layout::F,
    );
    let b = random(DType::I32, &[5, 1], &mut rng, false);
    let r = relayout(
        &random(DType::F32, &[3, 5, 7000], &mut rng, false),
        Layout::Reversed,
    );
    // C-order operands of the loop's dtype broadcast along inner axes are
    // read row by row in place; tasks then start mid-way through their
    // stepped axes (column, row and plane broadcasts, with partial rows
    // for sin's 1 Ki tasks).
    let c = random(DType::F64, &[3, 5, 7000], &mut rng, false);
    let col = random(DType::F64, &[5, 1], &mut rng, false);
    let row = random(DType::F64, &[7000], &mut rng, false);
    let plane = random(DType::F64, &[3, 1, 7000], &mut rng, false);
    let cases = [
        ("add", &a, &b),
        ("maximum", &r, &a),
        ("divide", &b, &r),
        ("subtract", &c, &col),
        ("multiply", &row, &c),
        ("minimum", &plane, &col),
        ("power", &c, &row),
        ("divide", &col, &plane),
    ];
    for (name, x, y) in cases {
        let want = naive_binary(name, x, y);
        for p in [&one, &three] {
            let got = p.install(|| call2(name, x.view(), y.view()));
            assert!(got.bitwise_eq(&want), "{name}");
        }
    }
    for name in ["exp", "sin", "negative"] {
        let c = call1(name, a.to_owned_c().view());
        for p in [&one, &three] {
            let got = p.install(|| call1(name, a.view()));
            assert!(got.bitwise_eq(&c), "{name}");
        }
    }
}

#[test]
fn every_vector_level_computes_the_same_bits() {
    let mut rng = Rng(11);
    let x = random(DType::F64, &[20_000], &mut rng, false);
    let y = random(DType::F64, &[20_000], &mut rng, false);
    let x32 = random(DType::F32, &[20_000], &mut rng, false);
    let i = random(DType::I32, &[20_000], &mut rng, false);
    let small = random(DType::I32, &[20_000], &mut rng, true);
    let cases: Vec<(&str, Vec<&AnyArray>)> = vec![
        ("power", vec![&x, &y]),
        ("power", vec![&x, &small]),
        ("power", vec![&x, &i]),
        ("power", vec![&x32, &x32]),
        ("power", vec![&small, &small]),
        ("subtract", vec![&x, &y]),
        ("negative", vec![&x]),
        ("exp", vec![&x]),
        ("exp", vec![&x32]),
        ("exp", vec![&i]),
        ("log", vec![&x]),
        ("log", vec![&x32]),
        ("expm1", vec![&x]),
        ("log1p", vec![&x32]),
        ("tanh", vec![&x]),
        ("sin", vec![&x]),
        ("cos", vec![&x32]),
        ("tan", vec![&x]),
        ("sqrt", vec![&x]),
        ("square", vec![&i]),
        ("absolute", vec![&x32]),
        ("divide", vec![&x, &y]),
        ("maximum", vec![&x, &y]),
        ("minimum", vec![&x32, &y]),
        ("add", vec![&i, &i]),
        ("multiply", vec![&x32, &x32]),
    ];
    for (name, inputs) in cases {
        let views: Vec<AnyView<'_>> = inputs.iter().map(|a| a.view()).collect();
        let base = simd::with_level_cap(simd::Level::Base, || call(name, &views).unwrap());
        for level in [simd::Level::V3, simd::Level::V4] {
            if level <= simd::level() {
                let got = simd::with_level_cap(level, || call(name, &views).unwrap());
                assert!(got.bitwise_eq(&base), "{name} {level:?}");
            }
        }
    }
    // power is within 1 ulp of libm (the levels agree bit for bit above).
    for e in [&y, &small] {
        let got = call2("power", x.view(), e.view());
        let ys: Vec<f64> = match e.dtype() {
            DType::I32 => e
                .typed::<i32>()
                .unwrap()
                .iter()
                .map(|&v| v.into())
                .collect(),
            _ => e.typed::<f64>().unwrap().iter().copied().collect(),
        };
        let xs = x.typed::<f64>().unwrap();
        for ((g, a), b) in got.typed::<f64>().unwrap().iter().zip(xs.iter()).zip(&ys) {
            assert!(ulps(*g, a.powf(*b)) <= 1, "pow({a:e}, {b:e}) = {g:e}");
        }
    }
    // The vector exp and log are also within 1 ulp of libm at every level.
    let xs = x.typed::<f64>().unwrap();
    let got = call1("exp", x.view());
    for (g, v) in got.typed::<f64>().unwrap().iter().zip(xs.iter()) {
        assert!(ulps(*g, v.exp()) <= 1, "exp({v:e})");
        assert_eq!(g.to_bits(), math::exp(*v).to_bits());
    }
    let got = call1("log", x.view());
    for (g, v) in got.typed::<f64>().unwrap().iter().zip(xs.iter()) {
        assert!(ulps(*g, v.ln()) <= 1, "log({v:e})");
        assert_eq!(g.to_bits(), math::log(*v).to_bits());
    }
}
