//! Values printed by numpy 2.4.6 (the expressions are in the comments;
//! `gen`/`geni` are the generators of `super::gen`, `b64(v)` the bits of a
//! float64 and `b32(v)` those of a float32).

use ndarray::{array, Array2, ShapeBuilder};

use super::{arr, call, gen, geni, values, view};
use crate::element::DType;
use crate::error::Error;
use crate::kernel::Params;
use crate::value::AnyView;

fn p() -> Params {
    Params::new()
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|v| v.to_bits()).collect()
}

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

fn scalar64(name: &str, x: AnyView<'_>, params: Params) -> u64 {
    let r = call(name, x, params).unwrap();
    assert_eq!(r.shape(), &[] as &[usize]);
    values::<f64>(&r)[0].to_bits()
}

fn scalar32(name: &str, x: AnyView<'_>, params: Params) -> u32 {
    let r = call(name, x, params).unwrap();
    assert_eq!(r.shape(), &[] as &[usize]);
    values::<f32>(&r)[0].to_bits()
}

#[test]
fn float_reductions_are_numpys_bits() {
    let x = arr(&[1000], gen(1000));
    let x32 = x.mapv(|v| v as f32);
    let v = || AnyView::from(x.view());
    let v32 = || AnyView::from(x32.view());
    // [b64(f(x)) for f in (np.sum, np.mean, np.var)], b64(np.std(x, ddof=1))
    assert_eq!(scalar64("sum", v(), p()), 0x40f82916ec24b881);
    assert_eq!(scalar64("mean", v(), p()), 0x4058bd881cd1a24f);
    assert_eq!(scalar64("var", v(), p()), 0x40eb937299d7654e);
    assert_eq!(scalar64("std", v(), p().ddof(1)), 0x406db87978639530);
    // the same of x32 = x.astype(np.float32), with b32
    assert_eq!(scalar32("sum", v32(), p()), 0x47c148b6);
    assert_eq!(scalar32("mean", v32(), p()), 0x42c5ec3f);
    assert_eq!(scalar32("var", v32(), p()), 0x475c9b93);
    assert_eq!(scalar32("std", v32(), p().ddof(1)), 0x436dc3cb);
    // b64(np.prod(x[:200] + 1.0))
    let head = arr(&[200], gen(200).iter().map(|v| v + 1.0).collect());
    assert_eq!(
        scalar64("prod", view(&head).into(), p()),
        0x58edee5c8f23d004
    );
}

#[test]
fn long_lanes_split_in_parallel_are_numpys_bits() {
    // big = gen(100003): b64(np.sum(big)), b32(np.sum(big.astype(np.float32))),
    // b64(np.mean(big)), b64(np.var(big))
    let big = arr(&[100003], gen(100003));
    let big32 = big.mapv(|v| v as f32);
    assert_eq!(scalar64("sum", view(&big).into(), p()), 0x4162f2a0beffc08d);
    assert_eq!(scalar32("sum", view(&big32).into(), p()), 0x4b179506);
    assert_eq!(scalar64("mean", view(&big).into(), p()), 0x4058d59fd18d2e16);
    assert_eq!(scalar64("var", view(&big).into(), p()), 0x40ebb906056e1cb8);
}

#[test]
fn axis_reductions_are_numpys_bits() {
    let x2 = arr(&[300, 10], gen(3000));
    // [b64(v) for v in np.sum(x2, axis=1)[:3]]
    let s1 = values::<f64>(&call("sum", view(&x2), p().axis(1)).unwrap());
    assert_eq!(s1.len(), 300);
    assert_eq!(
        bits64(&s1[..3]),
        [0x408131fb98693c23, 0x408cdcf4ee463fe1, 0x409403f72211a1d0]
    );
    // numpy sums axis 0 of a C array sequentially; the pairwise lanes are
    // np.sum(np.ascontiguousarray(x2.T), axis=1)[:3]
    let s0 = values::<f64>(&call("sum", view(&x2), p().axis(0)).unwrap());
    assert_eq!(
        bits64(&s0[..3]),
        [0x3fc2f9a0fa547ae2, 0x4062f4e787e40000, 0x4102517bac2d9700]
    );
    // np.var(np.ascontiguousarray(x2.T), axis=1, ddof=1)[:3]
    let v0 = values::<f64>(&call("var", view(&x2), p().axis(0).ddof(1)).unwrap());
    assert_eq!(
        bits64(&v0[..3]),
        [0x3e76849790dd00df, 0x3fb55f2c342a9c13, 0x40f46b5ed2b7a0f4]
    );
    let xx = arr(&[2, 3, 4], gen(24));
    // np.mean(xx, axis=1).ravel()[:4] with xx = gen(24).reshape(2, 3, 4)
    let m = call("mean", view(&xx), p().axis(1)).unwrap();
    assert_eq!(m.shape(), &[2, 4]);
    assert_eq!(
        bits64(&values::<f64>(&m)[..4]),
        [
            0xc002c270e2277777,
            0x3fccc5c08922dbd1,
            0x4053bb3a9d8bfc75,
            0x405ab81e20b30aab
        ]
    );
    // np.std(xx, axis=-1, ddof=2).ravel()[:4]
    let s = call("std", view(&xx), p().axis(-1).ddof(2)).unwrap();
    assert_eq!(s.shape(), &[2, 3]);
    assert_eq!(
        bits64(&values::<f64>(&s)[..4]),
        [
            0x4062396f209549ac,
            0x4068f402456c4772,
            0x40122212e3348e11,
            0x406fe127b21bcd8e
        ]
    );
}

#[test]
fn integer_reductions_are_numpys() {
    let xi = arr(&[1000], geni(1000));
    let r = call("sum", view(&xi), p()).unwrap();
    assert_eq!(r.dtype(), DType::I64);
    // np.sum(xi), np.min(xi), np.max(xi), np.mean(xi).hex(), np.var(xi).hex()
    assert_eq!(values::<i64>(&r), [-101394068]);
    assert_eq!(
        values::<i32>(&call("min", view(&xi), p()).unwrap()),
        [i32::MIN]
    );
    assert_eq!(
        values::<i32>(&call("max", view(&xi), p()).unwrap()),
        [2145529195]
    );
    let mean = values::<f64>(&call("mean", view(&xi), p()).unwrap())[0];
    assert_eq!(
        mean,
        -0x18c12116872b02_i64 as f64 / 2f64.powi(52) * 2f64.powi(16)
    );
    let var = values::<f64>(&call("var", view(&xi), p()).unwrap())[0];
    assert_eq!(
        var,
        0x15567329d51431_i64 as f64 / 2f64.powi(52) * 2f64.powi(60)
    );
    // np.prod(xi[1:6]), np.prod(xi[1:3]): int32 products wrap in int64
    let head = |k: usize| arr(&[k], geni(1 + k)[1..].to_vec());
    let prod = |k| values::<i64>(&call("prod", view(&head(k)), p()).unwrap())[0];
    assert_eq!(prod(5), 3067420599420151032);
    assert_eq!(prod(2), -574670483236218686);
    // np.sum(xi.reshape(10, 100), axis=0)[:3]
    let x2 = arr(&[10, 100], geni(1000));
    let s = values::<i64>(&call("sum", view(&x2), p().axis(0)).unwrap());
    assert_eq!(s[..3], [-3638092972, -2863539138, -2088985304]);
    // np.prod((xi % 7).reshape(10, 100), axis=0)[:3]
    let m7 = arr(
        &[10, 100],
        geni(1000).iter().map(|v| v.rem_euclid(7)).collect(),
    );
    let pr = values::<i64>(&call("prod", view(&m7), p().axis(0)).unwrap());
    assert_eq!(pr[..3], [207360, 0, 2000]);
    // np.sum(np.array([2**62, 2**62, 2**62, 5], dtype=np.int64)) wraps
    let w = array![1i64 << 62, 1 << 62, 1 << 62, 5];
    let s = values::<i64>(&call("sum", w.view(), p()).unwrap())[0];
    assert_eq!(s, -4611686018427387899);
}

#[test]
fn cumsum_is_numpys() {
    let x = arr(&[1000], gen(1000));
    let x32 = x.mapv(|v| v as f32);
    let idx = [0, 1, 499, 999];
    // [b64(v) for v in np.cumsum(x)[[0, 1, 499, 999]]], same with b32 for x32
    let c = values::<f64>(&call("cumsum", view(&x), p()).unwrap());
    let c: Vec<f64> = idx.iter().map(|&i| c[i]).collect();
    assert_eq!(
        bits64(&c),
        [
            0,
            0x3fe3c6ef36200000,
            0x40e83ba2b8eac7e7,
            0x40f82916ec24b889
        ]
    );
    let c = values::<f32>(&call("cumsum", view(&x32), p()).unwrap());
    let c: Vec<f32> = idx.iter().map(|&i| c[i]).collect();
    assert_eq!(bits32(&c), [0, 0x3f1e377a, 0x4741dd0d, 0x47c148a7]);
    // np.cumsum(geni(1000))[-1] is int64
    let ci = call("cumsum", view(&arr(&[1000], geni(1000))), p()).unwrap();
    assert_eq!(ci.dtype(), DType::I64);
    assert_eq!(*values::<i64>(&ci).last().unwrap(), -101394068);
    // np.cumsum(a, axis=0), np.cumsum(a, axis=-1), np.cumsum(a) with
    // a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    let a = array![[1i32, 2, 3], [4, 5, 6]];
    let c0 = call("cumsum", a.view(), p().axis(0)).unwrap();
    assert_eq!(c0.shape(), &[2, 3]);
    assert_eq!(values::<i64>(&c0), [1, 2, 3, 5, 7, 9]);
    let c1 = call("cumsum", a.view(), p().axis(-1)).unwrap();
    assert_eq!(values::<i64>(&c1), [1, 3, 6, 4, 9, 15]);
    let flat = call("cumsum", a.view(), p()).unwrap();
    assert_eq!(flat.shape(), &[6]);
    assert_eq!(values::<i64>(&flat), [1, 3, 6, 10, 15, 21]);
    // the same of a Fortran-order copy
    let mut f = Array2::zeros((2, 3).f());
    f.assign(&a);
    assert_eq!(
        values::<i64>(&call("cumsum", f.view(), p()).unwrap()),
        [1, 3, 6, 10, 15, 21]
    );
}

#[test]
fn sort_is_numpys() {
    // np.sort(np.array([3., nan, -inf, 1, inf, -2.5, nan, 0.5], dtype=np.float32))
    let x = array![
        3.0f32,
        f32::NAN,
        f32::NEG_INFINITY,
        1.0,
        f32::INFINITY,
        -2.5,
        -f32::NAN,
        0.5
    ];
    let s = values::<f32>(&call("sort", x.view(), p()).unwrap());
    assert_eq!(
        s[..6],
        [f32::NEG_INFINITY, -2.5, 0.5, 1.0, 3.0, f32::INFINITY]
    );
    assert!(s[6].is_nan() && s[7].is_nan());
    // np.sort(a, axis=0) and np.sort(a) of a = [[3, 1, 2], [-1, -5, 7]] (int64)
    let a = array![[3i64, 1, 2], [-1, -5, 7]];
    let s0 = call("sort", a.view(), p().axis(0)).unwrap();
    assert_eq!(values::<i64>(&s0), [-1, -5, 2, 3, 1, 7]);
    let s1 = call("sort", a.view(), p()).unwrap();
    assert_eq!(values::<i64>(&s1), [1, 2, 3, -5, -1, 7]);
    // np.sort(a, axis=None)
    let flat = call("sort", a.view(), p().set("flatten", true)).unwrap();
    assert_eq!(flat.shape(), &[6]);
    assert_eq!(values::<i64>(&flat), [-5, -1, 1, 2, 3, 7]);
    // np.sort(np.array([3., nan, -inf, 1, -0.0, 0.0, nan])) puts the zeros in
    // input order; ours puts -0.0 first always.
    let z = array![0.0f64, 3.0, -0.0, -1.0];
    let s = values::<f64>(&call("sort", z.view(), p()).unwrap());
    assert_eq!(bits64(&s), bits64(&[-1.0, -0.0, 0.0, 3.0]));
    // np.sort(np.array([2**31 - 1, -2**31, 0, -1], dtype=np.int32))
    let i = array![i32::MAX, i32::MIN, 0, -1];
    let s = values::<i32>(&call("sort", i.view(), p()).unwrap());
    assert_eq!(s, [i32::MIN, -1, 0, i32::MAX]);
}

#[test]
fn dtypes_follow_numpy() {
    // [(f, getattr(np, f)(x).dtype) for f in [...]] for x = np.arange(3, dtype=dt)
    let cases = [
        (
            DType::I32,
            [
                "i64", "i64", "f64", "f64", "f64", "i32", "i32", "i64", "i32",
            ],
        ),
        (
            DType::I64,
            [
                "i64", "i64", "f64", "f64", "f64", "i64", "i64", "i64", "i64",
            ],
        ),
        (
            DType::F32,
            [
                "f32", "f32", "f32", "f32", "f32", "f32", "f32", "f32", "f32",
            ],
        ),
        (
            DType::F64,
            [
                "f64", "f64", "f64", "f64", "f64", "f64", "f64", "f64", "f64",
            ],
        ),
    ];
    let names = [
        "sum", "prod", "mean", "var", "std", "min", "max", "cumsum", "sort",
    ];
    for (dt, expect) in cases {
        let x = array![0.0f64, 1.0, 2.0];
        let input = match dt {
            DType::I32 => crate::AnyArray::from(x.mapv(|v| v as i32)),
            DType::I64 => crate::AnyArray::from(x.mapv(|v| v as i64)),
            DType::F32 => crate::AnyArray::from(x.mapv(|v| v as f32)),
            DType::F64 => crate::AnyArray::from(x),
        };
        for (name, e) in names.iter().zip(expect) {
            let r = call(name, input.view(), p()).unwrap();
            let e = match e {
                "i32" => DType::I32,
                "i64" => DType::I64,
                "f32" => DType::F32,
                _ => DType::F64,
            };
            assert_eq!(r.dtype(), e, "{name} of {dt}");
        }
    }
}

#[test]
fn empty_inputs_follow_numpy() {
    let e = ndarray::Array1::<f64>::zeros(0);
    let one = |name: &str| values::<f64>(&call(name, e.view(), p()).unwrap())[0];
    // np.sum(e), np.prod(e), np.mean(e), np.var(e), np.std(e)
    assert_eq!(one("sum").to_bits(), 0.0f64.to_bits());
    assert_eq!(one("prod"), 1.0);
    assert!(one("mean").is_nan() && one("var").is_nan() && one("std").is_nan());
    // np.var(np.zeros(0), ddof=-1) == 0.0
    assert_eq!(
        values::<f64>(&call("var", e.view(), p().ddof(-1)).unwrap()),
        [0.0]
    );
    // np.max(e): ValueError('zero-size array to reduction operation maximum which has no identity')
    for name in ["max", "min"] {
        let err = call(name, e.view(), p()).unwrap_err();
        assert!(matches!(err, Error::EmptyReduction { ref kernel } if kernel == name));
    }
    // np.sum(np.zeros((0, 3), 'i4'), axis=0) -> [0 0 0] (int64)
    let z = ndarray::Array2::<i32>::zeros((0, 3));
    let s = call("sum", z.view(), p().axis(0)).unwrap();
    assert_eq!((s.dtype(), values::<i64>(&s)), (DType::I64, vec![0, 0, 0]));
    // np.mean(z, axis=0) -> [nan nan nan]; np.mean(z, axis=1) -> [] (float64)
    let m = call("mean", z.view(), p().axis(0)).unwrap();
    assert!(values::<f64>(&m).iter().all(|v| v.is_nan()) && m.len() == 3);
    let m = call("var", z.view(), p().axis(1).ddof(1)).unwrap();
    assert_eq!((m.shape(), m.dtype()), (&[0usize][..], DType::F64));
    // np.max(np.zeros((3, 0)), axis=0) -> []; axis=1 and (0, 0) axis=0 raise
    let z = ndarray::Array2::<f64>::zeros((3, 0));
    assert_eq!(call("max", z.view(), p().axis(0)).unwrap().shape(), &[0]);
    assert!(call("max", z.view(), p().axis(1)).is_err());
    let z = ndarray::Array2::<f64>::zeros((0, 0));
    assert!(call("min", z.view(), p().axis(0)).is_err());
    // np.cumsum(np.zeros((0, 3), 'f4'), axis=0).shape, np.sort(np.zeros((3, 0)), axis=0).shape
    let z = ndarray::Array2::<f32>::zeros((0, 3));
    assert_eq!(
        call("cumsum", z.view(), p().axis(0)).unwrap().shape(),
        &[0, 3]
    );
    assert_eq!(call("cumsum", z.view(), p()).unwrap().shape(), &[0]);
    let z = ndarray::Array2::<f64>::zeros((3, 0));
    assert_eq!(
        call("sort", z.view(), p().axis(0)).unwrap().shape(),
        &[3, 0]
    );
    assert_eq!(
        call("sort", z.view(), p().set("flatten", true))
            .unwrap()
            .shape(),
        &[0]
    );
}

#[test]
fn variance_divisor_follows_numpy() {
    let x = array![1.0f64, 2.0, 3.0];
    let var = |ddof| values::<f64>(&call("var", x.view(), p().ddof(ddof)).unwrap())[0];
    // np.var(x, ddof=3), np.var(x, ddof=4), np.var(x, ddof=5), np.var(x, ddof=-1)
    assert_eq!(var(3), f64::INFINITY);
    assert_eq!(var(4), f64::INFINITY);
    assert_eq!(var(5), f64::INFINITY);
    assert_eq!(var(-1), 0.5);
    // np.var(np.array([1., 1.]), ddof=2) is nan (0 / 0)
    let c = array![1.0f64, 1.0];
    assert!(values::<f64>(&call("var", c.view(), p().ddof(2)).unwrap())[0].is_nan());
    let s = values::<f64>(&call("std", x.view(), p().ddof(4)).unwrap())[0];
    assert_eq!(s, f64::INFINITY);
}

#[test]
fn zero_d_inputs_follow_numpy() {
    let z = ndarray::arr0(5.0f64).into_dyn();
    let v = || AnyView::from(z.view());
    // np.sum(z), np.max(z), np.var(z); np.sum(z, axis=0), np.sum(z, axis=-1)
    for name in ["sum", "prod", "max", "min", "mean"] {
        let r = call(name, v(), p()).unwrap();
        assert_eq!(
            (r.shape(), values::<f64>(&r)),
            (&[][..], vec![5.0]),
            "{name}"
        );
    }
    assert_eq!(values::<f64>(&call("var", v(), p()).unwrap()), [0.0]);
    for axis in [0, -1] {
        for name in ["sum", "prod", "max", "min"] {
            let r = call(name, v(), p().axis(axis)).unwrap();
            assert_eq!(r.shape(), &[] as &[usize], "{name} axis {axis}");
        }
        // np.mean(z, axis=0) raises AxisError(0, 0)
        for name in ["mean", "var", "std"] {
            let e = call(name, v(), p().axis(axis)).unwrap_err();
            assert!(matches!(e, Error::AxisOutOfRange { ndim: 0, .. }), "{name}");
        }
    }
    // np.sum(z, axis=1): AxisError(1, 0); np.sum(z, axis=-2): AxisError(-2, 0)
    let e = call("sum", v(), p().axis(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "axis 1 is out of bounds for array of dimension 0"
    );
    assert!(call("max", v(), p().axis(-2)).is_err());
    // np.sum(z, keepdims=True).shape == (); np.mean(z, keepdims=True).shape == ()
    assert_eq!(
        call("sum", v(), p().keepdims(true)).unwrap().shape(),
        &[] as &[usize]
    );
    // np.cumsum(z), np.cumsum(z, axis=0) -> array([5.]); axis=-2: AxisError(-2, 1)
    for params in [p(), p().axis(0), p().axis(-1)] {
        let c = call("cumsum", v(), params).unwrap();
        assert_eq!((c.shape(), values::<f64>(&c)), (&[1usize][..], vec![5.0]));
    }
    let e = call("cumsum", v(), p().axis(-2)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "axis -2 is out of bounds for array of dimension 1"
    );
    // np.sort(z): AxisError(-1, 0); np.sort(z, axis=None) -> array([5.])
    let e = call("sort", v(), p()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "axis -1 is out of bounds for array of dimension 0"
    );
    let s = call("sort", v(), p().set("flatten", true)).unwrap();
    assert_eq!((s.shape(), values::<f64>(&s)), (&[1usize][..], vec![5.0]));
}

#[test]
fn nan_zero_and_keepdims_follow_numpy() {
    // np.max(np.array([1., nan, 3.])), np.min(np.array([nan, 1.])) are nan
    let x = array![1.0f64, f64::NAN, 3.0];
    assert!(values::<f64>(&call("max", x.view(), p()).unwrap())[0].is_nan());
    let x = array![[f64::NAN, 1.0], [2.0, 0.5]];
    let m = values::<f64>(&call("min", x.view(), p().axis(0)).unwrap());
    assert!(m[0].is_nan() && m[1] == 0.5);
    // np.sum(np.array([-0.0])) is 0.0 (numpy starts from the identity 0.0);
    // np.prod(np.array([-0.0])) is -0.0
    let z = array![-0.0f64];
    assert_eq!(
        values::<f64>(&call("sum", z.view(), p()).unwrap())[0].to_bits(),
        0
    );
    let pr = values::<f64>(&call("prod", z.view(), p()).unwrap())[0];
    assert_eq!(pr.to_bits(), (-0.0f64).to_bits());
    // keepdims: np.sum(np.ones((2, 3, 4)), axis=1, keepdims=True).shape == (2, 1, 4)
    let o = ndarray::Array3::<f32>::ones((2, 3, 4));
    let s = call("sum", o.view(), p().axis(1).keepdims(true)).unwrap();
    assert_eq!(s.shape(), &[2, 1, 4]);
    assert_eq!(values::<f32>(&s), vec![3.0; 8]);
    let s = call("var", o.view(), p().keepdims(true)).unwrap();
    assert_eq!(
        (s.shape(), values::<f32>(&s)),
        (&[1usize, 1, 1][..], vec![0.0])
    );
    let s = call("max", o.view(), p().axis(-1).keepdims(true)).unwrap();
    assert_eq!(s.shape(), &[2, 3, 1]);
}

#[test]
fn bad_parameters_are_errors() {
    let x = array![[1.0f64, 2.0], [3.0, 4.0]];
    // np.sum(x, axis=2): "axis 2 is out of bounds for array of dimension 2"
    let e = call("sum", x.view(), p().axis(2)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "axis 2 is out of bounds for array of dimension 2"
    );
    assert!(matches!(
        call("sort", x.view(), p().axis(-3)).unwrap_err(),
        Error::AxisOutOfRange { axis: -3, ndim: 2 }
    ));
    let e = call("sort", x.view(), p().axis(0).set("flatten", true)).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { .. }));
    let e = call("sum", x.view(), p().ddof(1)).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { .. }));
    let e = call("cumsum", x.view(), p().keepdims(true)).unwrap_err();
    assert!(matches!(e, Error::InvalidParam { .. }));
}

#[test]
fn every_kernel_is_documented_and_versioned() {
    let r = super::registry();
    let names: Vec<&str> = r.kernels().map(|k| k.name()).collect();
    assert_eq!(
        names,
        ["cumsum", "max", "mean", "min", "prod", "sort", "std", "sum", "var"]
    );
    for k in r.kernels() {
        let want = if matches!(k.name(), "max" | "min") {
            "2"
        } else {
            "1"
        };
        assert_eq!(k.version(), want, "{}", k.name());
        assert_eq!(k.arity(), 1);
        assert!(!k.doc().is_empty() && !k.doc().contains('\n'));
    }
}
