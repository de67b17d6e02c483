//! Tests of the elementwise kernels against numpy (literal values printed by
//! numpy 2.4; each test names the expression) and against naive sequential
//! references on inputs of every layout.

mod layout;

use ndarray::{array, ArrayD, IxDyn};

use super::engine::broadcast_shape;
use super::simd::{with_level_cap, Level};
use crate::element::DType;
use crate::error::Error;
use crate::kernel::{Params, Registry};
use crate::value::{AnyArray, AnyView};

fn reg() -> Registry {
    Registry::with_builtins()
}

fn call(name: &str, inputs: &[AnyView<'_>]) -> crate::Result<AnyArray> {
    reg().call(name, inputs, &Params::new())
}

fn call1(name: &str, x: AnyView<'_>) -> AnyArray {
    call(name, &[x]).unwrap()
}

fn call2<'a>(name: &str, a: AnyView<'a>, b: AnyView<'a>) -> AnyArray {
    call(name, &[a, b]).unwrap()
}

fn vals<T: crate::Element>(a: &AnyArray) -> Vec<T> {
    a.typed::<T>().unwrap().iter().copied().collect()
}

fn bits64(a: &AnyArray) -> Vec<u64> {
    a.typed::<f64>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn bits32(a: &AnyArray) -> Vec<u32> {
    a.typed::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn f64s(bits: &[u64]) -> ndarray::Array1<f64> {
    bits.iter().map(|&b| f64::from_bits(b)).collect()
}

/// A deterministic uniform draw in [0, 1) (a 64-bit LCG; `s` is its state).
pub(super) fn lcg(s: &mut u64) -> f64 {
    *s = s
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*s >> 11) as f64 / (1u64 << 53) as f64
}

/// Units in the last place between two f64 (0 for two NaNs).
pub(super) fn ulps(a: f64, b: f64) -> u64 {
    if a.is_nan() && b.is_nan() {
        return 0;
    }
    let key = |v: f64| {
        let i = v.to_bits() as i64;
        if i < 0 {
            i64::MIN - i
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}

#[test]
fn every_builtin_is_registered_with_doc_and_version() {
    let r = reg();
    let names = [
        ("negative", 1),
        ("absolute", 1),
        ("square", 1),
        ("sqrt", 1),
        ("exp", 1),
        ("expm1", 1),
        ("log", 1),
        ("log1p", 1),
        ("sin", 1),
        ("cos", 1),
        ("tan", 1),
        ("tanh", 1),
        ("add", 2),
        ("subtract", 2),
        ("multiply", 2),
        ("divide", 2),
        ("power", 2),
        ("maximum", 2),
        ("minimum", 2),
    ];
    for (name, arity) in names {
        let k = r.get(name).unwrap();
        assert_eq!(k.arity(), arity, "{name}");
        // "2": vectorized (power: the crate's own; add and multiply: the
        // first of two NaNs); "3": with fused multiply-adds; "4": sin, cos
        // and tan with a shorter reduction.
        let want = match name {
            "sin" | "cos" | "tan" => "4",
            "exp" | "expm1" | "tanh" => "3",
            "log" | "log1p" | "power" | "add" | "multiply" => "2",
            _ => "1",
        };
        assert_eq!(k.version(), want, "{name}");
        assert!(k.params().is_empty(), "{name}");
        assert!(!k.doc().is_empty() && !k.doc().contains('\n'), "{name}");
    }
}

#[test]
fn result_dtypes_are_numpy_result_types() {
    use DType::*;
    // [(a, b, f(ones(1, a), ones(1, b)).dtype) for a in ts for b in ts]
    // for add/maximum/power (all equal) and for divide.
    let table = [
        (F32, F32, F32, F32),
        (F32, F64, F64, F64),
        (F32, I32, F64, F64),
        (F32, I64, F64, F64),
        (F64, F32, F64, F64),
        (F64, F64, F64, F64),
        (F64, I32, F64, F64),
        (F64, I64, F64, F64),
        (I32, F32, F64, F64),
        (I32, F64, F64, F64),
        (I32, I32, I32, F64),
        (I32, I64, I64, F64),
        (I64, F32, F64, F64),
        (I64, F64, F64, F64),
        (I64, I32, I64, F64),
        (I64, I64, I64, F64),
    ];
    let one = |d: DType| -> AnyArray {
        match d {
            F32 => array![1.0f32].into(),
            F64 => array![1.0f64].into(),
            I32 => array![1i32].into(),
            I64 => array![1i64].into(),
        }
    };
    for (a, b, arith, div) in table {
        let (x, y) = (one(a), one(b));
        for name in ["add", "subtract", "multiply", "maximum", "minimum", "power"] {
            assert_eq!(
                call2(name, x.view(), y.view()).dtype(),
                arith,
                "{name} {a} {b}"
            );
        }
        assert_eq!(
            call2("divide", x.view(), y.view()).dtype(),
            div,
            "divide {a} {b}"
        );
    }
    // [(a, f(ones(1, a)).dtype) for a in ts]
    for (d, float, same) in [
        (F32, F32, F32),
        (F64, F64, F64),
        (I32, F64, I32),
        (I64, F64, I64),
    ] {
        let x = one(d);
        for name in [
            "sqrt", "exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh",
        ] {
            assert_eq!(call1(name, x.view()).dtype(), float, "{name} {d}");
        }
        for name in ["negative", "absolute", "square"] {
            assert_eq!(call1(name, x.view()).dtype(), same, "{name} {d}");
        }
    }
}

#[test]
fn broadcast_shapes_are_numpys() {
    // np.broadcast_shapes(s1, s2)
    let ok: [(&[usize], &[usize], &[usize]); 7] = [
        (&[2, 3], &[3], &[2, 3]),
        (&[2, 1], &[1, 3], &[2, 3]),
        (&[], &[2, 3], &[2, 3]),
        (&[0], &[1], &[0]),
        (&[0, 3], &[1, 3], &[0, 3]),
        (&[5, 1, 4], &[3, 1], &[5, 3, 4]),
        (&[1], &[0], &[0]),
    ];
    for (a, b, want) in ok {
        assert_eq!(broadcast_shape(a, b).unwrap(), want, "{a:?} {b:?}");
        assert_eq!(broadcast_shape(b, a).unwrap(), want, "{b:?} {a:?}");
    }
    let e = call(
        "add",
        &[
            AnyView::from(array![1.0, 2.0, 3.0].view()),
            AnyView::from(array![1.0, 2.0, 3.0, 4.0].view()),
        ],
    )
    .unwrap_err();
    assert!(matches!(&e, Error::Broadcast { left, right } if left == &[3] && right == &[4]));
    assert_eq!(
        e.to_string(),
        "operands could not be broadcast together with shapes (3,) (4,)"
    );
    let e = broadcast_shape(&[2, 3], &[0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "operands could not be broadcast together with shapes (2,3) (0,)"
    );
}

#[test]
fn zero_d_and_empty_results() {
    let s = ndarray::arr0(2.0f64);
    let m = array![[1.0f64, 2.0], [3.0, 4.0]];
    let y = call2("multiply", s.view().into(), m.view().into());
    assert_eq!(y.shape(), &[2, 2]);
    assert_eq!(
        y.typed::<f64>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [2.0, 4.0, 6.0, 8.0]
    );
    let y = call2("subtract", s.view().into(), s.view().into());
    assert_eq!(y.shape(), &[] as &[usize]);
    assert_eq!(y.typed::<f64>().unwrap()[[]], 0.0);
    let y = call1("exp", ndarray::arr0(0i32).view().into());
    assert_eq!((y.shape(), y.dtype()), (&[] as &[usize], DType::F64));
    assert_eq!(y.typed::<f64>().unwrap()[[]], 1.0);

    let e = ArrayD::<i32>::zeros(IxDyn(&[0, 3]));
    let r = array![[1i32, 2, 3]];
    let y = call2("add", e.view().into(), r.view().into());
    assert_eq!((y.shape(), y.dtype()), (&[0, 3][..], DType::I32));
    let y = call1("sin", e.view().into());
    assert_eq!((y.shape(), y.dtype()), (&[0, 3][..], DType::F64));
    // np.power(np.array([], np.int32), np.array([-1], np.int32)) is an empty
    // array, not an error: no element meets the negative exponent.
    let empty = ndarray::Array1::<i32>::zeros(0);
    let y = call2("power", empty.view().into(), array![-1i32].view().into());
    assert_eq!(y.shape(), &[0]);
}

#[test]
fn integer_arithmetic_wraps() {
    // np.add(np.array([2**31-1, -2**31], np.int32), np.array([1, -1], np.int32))
    let y = call2(
        "add",
        array![i32::MAX, i32::MIN].view().into(),
        array![1i32, -1].view().into(),
    );
    assert_eq!(vals::<i32>(&y), [-2147483648, 2147483647]);
    // np.subtract(np.array([-2**31], np.int32), np.array([1], np.int32))
    let y = call2(
        "subtract",
        array![i32::MIN].view().into(),
        array![1i32].view().into(),
    );
    assert_eq!(vals::<i32>(&y), [2147483647]);
    // np.multiply(np.array([2**62, 3037000500], np.int64), np.array([4, 3037000500], np.int64))
    let y = call2(
        "multiply",
        array![1i64 << 62, 3037000500].view().into(),
        array![4i64, 3037000500].view().into(),
    );
    assert_eq!(vals::<i64>(&y), [0, -9223372036709301616]);
    // np.multiply(np.array([65536, 123456789], np.int32), np.array([65536, 1000], np.int32))
    let y = call2(
        "multiply",
        array![65536i32, 123456789].view().into(),
        array![65536i32, 1000].view().into(),
    );
    assert_eq!(vals::<i32>(&y), [0, -1097262584]);
    // np.square(np.array([46341, 70000, -2**31], np.int32)), np.square(np.array([3037000500]))
    let y = call1("square", array![46341i32, 70000, i32::MIN].view().into());
    assert_eq!(vals::<i32>(&y), [-2147479015, 605032704, 0]);
    let y = call1("square", array![3037000500i64].view().into());
    assert_eq!(vals::<i64>(&y), [-9223372036709301616]);
    // np.absolute(np.array([-2**31, -5, 7], np.int32)), np.absolute(np.array([-2**63])),
    // np.negative(np.array([-2**31, 5], np.int32))
    let y = call1("absolute", array![i32::MIN, -5, 7].view().into());
    assert_eq!(vals::<i32>(&y), [i32::MIN, 5, 7]);
    let y = call1("absolute", array![i64::MIN].view().into());
    assert_eq!(vals::<i64>(&y), [i64::MIN]);
    let y = call1("negative", array![i32::MIN, 5].view().into());
    assert_eq!(vals::<i32>(&y), [i32::MIN, -5]);
}

#[test]
fn integer_power() {
    // np.power(np.array([0, 2, -2, 3, 7, -1, 5], np.int32), np.array([0, 31, 31, 20, 0, 7, 1], np.int32))
    let y = call2(
        "power",
        array![0i32, 2, -2, 3, 7, -1, 5].view().into(),
        array![0i32, 31, 31, 20, 0, 7, 1].view().into(),
    );
    assert_eq!(
        vals::<i32>(&y),
        [1, -2147483648, -2147483648, -808182895, 1, -1, 5]
    );
    // np.power(np.array([3, 2, -3, 10]), np.array([40, 64, 39, 19]))
    let y = call2(
        "power",
        array![3i64, 2, -3, 10].view().into(),
        array![40i64, 64, 39, 19].view().into(),
    );
    assert_eq!(
        vals::<i64>(&y),
        [
            -6289078614652622815,
            0,
            -4052555153018976267,
            -8446744073709551616
        ]
    );
    // np.power(np.array([2], np.int32), np.array([40], np.int64)) -> int64 1099511627776
    let y = call2(
        "power",
        array![2i32].view().into(),
        array![40i64].view().into(),
    );
    assert_eq!(vals::<i64>(&y), [1099511627776]);
    // np.power(np.array([2, 4], np.int32), np.array([0.5], np.float32)) -> float64
    let y = call2(
        "power",
        array![2i32, 4].view().into(),
        array![0.5f32].view().into(),
    );
    assert_eq!(vals::<f64>(&y), [2f64.sqrt(), 2.0]);
}

#[test]
fn negative_integer_powers_are_an_error() {
    // np.power(np.array([1], np.int32), np.array([-1], np.int32)) raises
    // ValueError: Integers to negative integer powers are not allowed.
    for (a, b) in [
        (
            AnyArray::from(array![1i32, 2]),
            AnyArray::from(array![1i32, -1]),
        ),
        (AnyArray::from(array![1i64]), AnyArray::from(array![-1i32])),
        (
            AnyArray::from(array![[0i32], [1]]),
            AnyArray::from(ndarray::arr0(-3i64)),
        ),
    ] {
        let e = call("power", &[a.view(), b.view()]).unwrap_err();
        assert!(matches!(&e, Error::Domain { kernel, .. } if kernel == "power"));
        assert_eq!(
            e.to_string(),
            "kernel 'power': Integers to negative integer powers are not allowed."
        );
    }
    // A float exponent is fine: 2 ** -1.0 == 0.5.
    let y = call2(
        "power",
        array![2i32].view().into(),
        array![-1.0f64].view().into(),
    );
    assert_eq!(vals::<f64>(&y), [0.5]);
}

#[test]
fn float_power_special_cases() {
    // np.power(np.array([0.0, 0.0, -0.0, nan, 1.0, -8.0, 2.0, -2.0, -0.0]),
    //          np.array([0.0, -1.0, -1.0, 0.0, nan, 1/3, 1024, 3.0, 3.0]))
    let a = array![0.0, 0.0, -0.0, f64::NAN, 1.0, -8.0, 2.0, -2.0, -0.0];
    let b = array![0.0, -1.0, -1.0, 0.0, f64::NAN, 1.0 / 3.0, 1024.0, 3.0, 3.0];
    let y = call2("power", a.view().into(), b.view().into());
    let want = [
        0x3ff0000000000000u64,
        0x7ff0000000000000,
        0xfff0000000000000,
        0x3ff0000000000000,
        0x3ff0000000000000,
        0xfff8000000000000,
        0x7ff0000000000000,
        0xc020000000000000,
        0x8000000000000000,
    ];
    let got = bits64(&y);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let (g, w) = (f64::from_bits(g), f64::from_bits(w));
        assert!(
            g.is_nan() && w.is_nan() || g.to_bits() == w.to_bits(),
            "{i}: {g} {w}"
        );
    }
}

#[test]
fn division_by_zero() {
    // np.divide(np.array([1, 0, -1, 7, -7], np.int32), np.array([0, 0, 0, 2, 0], np.int32))
    let y = call2(
        "divide",
        array![1i32, 0, -1, 7, -7].view().into(),
        array![0i32, 0, 0, 2, 0].view().into(),
    );
    let got = f64s(&bits64(&y));
    assert_eq!(got[0], f64::INFINITY);
    assert!(got[1].is_nan());
    assert_eq!(
        (got[2], got[3], got[4]),
        (f64::NEG_INFINITY, 3.5, f64::NEG_INFINITY)
    );
    // np.divide(np.array([1.0, 0.0, -1.0, 1.0, -0.0]), np.array([0.0, 0.0, 0.0, -0.0, 5.0]))
    let y = call2(
        "divide",
        array![1.0, 0.0, -1.0, 1.0, -0.0].view().into(),
        array![0.0, 0.0, 0.0, -0.0, 5.0].view().into(),
    );
    let got = bits64(&y);
    assert_eq!(got[0], 0x7ff0000000000000);
    assert!(f64::from_bits(got[1]).is_nan());
    assert_eq!(
        got[2..],
        [0xfff0000000000000, 0xfff0000000000000, 0x8000000000000000]
    );
    // np.divide(np.array([2**53+1, 7]), np.array([1, 3])).tolist()
    let y = call2(
        "divide",
        array![(1i64 << 53) + 1, 7].view().into(),
        array![1i64, 3].view().into(),
    );
    assert_eq!(vals::<f64>(&y), [9007199254740992.0, 2.3333333333333335]);
    // np.divide(np.array([1, 2], np.float32), np.array([3, 0], np.float32))
    let y = call2(
        "divide",
        array![1.0f32, 2.0].view().into(),
        array![3.0f32, 0.0].view().into(),
    );
    assert_eq!(bits32(&y), [0x3eaaaaab, 0x7f800000]);
}

#[test]
fn maximum_minimum_nan_and_signed_zero() {
    // a = [pnan, 1.0, nnan, -0.0, 0.0, pnan, inf], c = [2.0, nnan, nnan, 0.0, -0.0, nnan, -inf]
    // with pnan = 0x7ff8000000000001, nnan = 0xfff8000000000002; the bits of
    // np.maximum(a, c) and np.minimum(a, c), the same for 3 and 7000 elements
    // (numpy's scalar and SIMD loops agree).
    let (pnan, nnan) = (0x7ff8000000000001u64, 0xfff8000000000002u64);
    let a = [
        pnan,
        1f64.to_bits(),
        nnan,
        (-0f64).to_bits(),
        0,
        pnan,
        f64::INFINITY.to_bits(),
    ];
    let c = [
        2f64.to_bits(),
        nnan,
        nnan,
        0,
        (-0f64).to_bits(),
        nnan,
        f64::NEG_INFINITY.to_bits(),
    ];
    let max = [
        pnan,
        nnan,
        nnan,
        0,
        0x8000000000000000,
        pnan,
        0x7ff0000000000000,
    ];
    let min = [
        pnan,
        nnan,
        nnan,
        0,
        0x8000000000000000,
        pnan,
        0xfff0000000000000,
    ];
    for reps in [1, 1000] {
        let rep = |v: &[u64]| f64s(&v.repeat(reps));
        let (x, y) = (rep(&a), rep(&c));
        assert_eq!(
            bits64(&call2("maximum", x.view().into(), y.view().into())),
            max.repeat(reps)
        );
        assert_eq!(
            bits64(&call2("minimum", x.view().into(), y.view().into())),
            min.repeat(reps)
        );
        // The same in float32: pnan and nnan become 0x7fc00000 and 0xffc00000.
        let (x32, y32) = (x.mapv(|v| v as f32), y.mapv(|v| v as f32));
        let max32 = [
            0x7fc00000u32,
            0xffc00000,
            0xffc00000,
            0,
            0x80000000,
            0x7fc00000,
            0x7f800000,
        ];
        let min32 = [
            0x7fc00000u32,
            0xffc00000,
            0xffc00000,
            0,
            0x80000000,
            0x7fc00000,
            0xff800000,
        ];
        let mx = call2("maximum", x32.view().into(), y32.view().into());
        assert_eq!(bits32(&mx), max32.repeat(reps));
        let mn = call2("minimum", x32.view().into(), y32.view().into());
        assert_eq!(bits32(&mn), min32.repeat(reps));
    }
}

#[test]
fn arithmetic_of_two_nans_gives_the_firsts() {
    // Which NaN `a + b` or `a * b` carries when both are NaNs is the
    // compiler's choice (it may swap the operands of a commutative
    // operation, differently in each loop: the SSE2 loop gave the second's,
    // the AVX2 loop with a scalar operand the scalar's); the registry's is
    // always the first's (quieted), at every level, in the vector loop and
    // the rest, with a scalar on either side, so that a fused chain can
    // give the same bits (ops::first_nan). numpy 2.4 on AVX2 gives the
    // first's in its vector loop, the second's in its rest, the scalar's
    // with a scalar.
    let (pnan, nnan) = (0x7ff8000000000001u64, 0xfff8000000000002u64);
    let (pnan32, nnan32) = (0x7fc00000u32, 0xffc00000u32);
    let names = ["add", "subtract", "multiply", "divide"];
    for cap in [Level::Base, Level::V3, Level::V4] {
        with_level_cap(cap, || {
            for n in [1, 2003] {
                let (a, b) = (f64s(&[pnan, nnan].repeat(n)), f64s(&[nnan, pnan].repeat(n)));
                let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
                // A scalar of the other sign, first or second.
                let (sn, sn32) = (f64s(&[nnan]), f64s(&[nnan]).mapv(|v| v as f32));
                let s = sn.into_shape_with_order(()).unwrap();
                let s32 = sn32.into_shape_with_order(()).unwrap();
                for name in names {
                    let at = format!("{name}, {cap:?}, {n}");
                    let got = bits64(&call2(name, a.view().into(), b.view().into()));
                    assert_eq!(got, [pnan, nnan].repeat(n), "{at}");
                    let got = bits32(&call2(name, a32.view().into(), b32.view().into()));
                    assert_eq!(got, [pnan32, nnan32].repeat(n), "f32 {at}");
                    let got = bits64(&call2(name, a.view().into(), s.view().into()));
                    assert_eq!(got, [pnan, nnan].repeat(n), "array, scalar: {at}");
                    let got = bits64(&call2(name, s.view().into(), a.view().into()));
                    assert_eq!(got, vec![nnan; 2 * n], "scalar, array: {at}");
                    let got = bits32(&call2(name, a32.view().into(), s32.view().into()));
                    assert_eq!(got, [pnan32, nnan32].repeat(n), "f32 array, scalar: {at}");
                    let got = bits32(&call2(name, s32.view().into(), a32.view().into()));
                    assert_eq!(got, vec![nnan32; 2 * n], "f32 scalar, array: {at}");
                }
            }
        })
    }
}

#[test]
fn unary_special_values() {
    // x = np.array([-0.0, 0.0, -1.0, inf, -inf, 5e-324, -5e-324, 1e-310]); f(x).view(np.uint64)
    let x = array![
        -0.0,
        0.0,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        -5e-324,
        1e-310
    ];
    let cases: [(&str, [u64; 8]); 10] = [
        (
            "sqrt",
            [
                0x8000000000000000,
                0x0,
                0xfff8000000000000,
                0x7ff0000000000000,
                0xfff8000000000000,
                0x1e60000000000000,
                0xfff8000000000000,
                0x1fc1297872d9cbae,
            ],
        ),
        (
            "log",
            [
                0xfff0000000000000,
                0xfff0000000000000,
                0xfff8000000000000,
                0x7ff0000000000000,
                0xfff8000000000000,
                0xc0874385446d71c3,
                0xfff8000000000000,
                0xc0864e69394d9508,
            ],
        ),
        (
            "log1p",
            [
                0x8000000000000000,
                0x0,
                0xfff0000000000000,
                0x7ff0000000000000,
                0xfff8000000000000,
                0x1,
                0x8000000000000001,
                0x000012688b70e62b,
            ],
        ),
        (
            "expm1",
            [
                0x8000000000000000,
                0x0,
                0xbfe43a54e4e98864,
                0x7ff0000000000000,
                0xbff0000000000000,
                0x1,
                0x8000000000000001,
                0x000012688b70e62b,
            ],
        ),
        (
            "exp",
            [
                0x3ff0000000000000,
                0x3ff0000000000000,
                0x3fd78b56362cef38,
                0x7ff0000000000000,
                0x0,
                0x3ff0000000000000,
                0x3ff0000000000000,
                0x3ff0000000000000,
            ],
        ),
        (
            "tanh",
            [
                0x8000000000000000,
                0x0,
                0xbfe85efab514f394,
                0x3ff0000000000000,
                0xbff0000000000000,
                0x1,
                0x8000000000000001,
                0x000012688b70e62b,
            ],
        ),
        (
            "sin",
            [
                0x8000000000000000,
                0x0,
                0xbfeaed548f090cee,
                0xfff8000000000000,
                0xfff8000000000000,
                0x1,
                0x8000000000000001,
                0x000012688b70e62b,
            ],
        ),
        (
            "negative",
            [
                0x0,
                0x8000000000000000,
                0x3ff0000000000000,
                0xfff0000000000000,
                0x7ff0000000000000,
                0x8000000000000001,
                0x1,
                0x800012688b70e62b,
            ],
        ),
        (
            "absolute",
            [
                0x0,
                0x0,
                0x3ff0000000000000,
                0x7ff0000000000000,
                0x7ff0000000000000,
                0x1,
                0x1,
                0x000012688b70e62b,
            ],
        ),
        (
            "square",
            [
                0x0,
                0x0,
                0x3ff0000000000000,
                0x7ff0000000000000,
                0x7ff0000000000000,
                0x0,
                0x0,
                0x0,
            ],
        ),
    ];
    for (name, want) in cases {
        let got = bits64(&call1(name, x.view().into()));
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let (g, w) = (f64::from_bits(g), f64::from_bits(w));
            // NaNs must be NaNs; anything else must be numpy's bits.
            let ok = if w.is_nan() {
                g.is_nan()
            } else {
                g.to_bits() == w.to_bits()
            };
            assert!(
                ok,
                "{name}({}) = {g:e} ({:#x}), numpy {w:e}",
                x[i],
                g.to_bits()
            );
        }
    }
    // np.sqrt(np.array([-0.0, 2.0, -1.0, 1e-45], np.float32)).view(np.uint32)
    let y = call1("sqrt", array![-0.0f32, 2.0, -1.0, 1e-45].view().into());
    let got = bits32(&y);
    assert_eq!(
        [got[0], got[1], got[3]],
        [0x80000000, 0x3fb504f3, 0x1a3504f3]
    );
    assert!(f32::from_bits(got[2]).is_nan());
    // np.exp(np.array([-0.0, 1.0, 88.8, -104.0, 10.0], np.float32)).view(np.uint32)
    // is [0x3f800000, 0x402df855, 0x7f800000, 0x00000000, 0x46ac14ef]; numpy's
    // float32 exp is 1 ulp above the correctly rounded e and e**10, which we give.
    let y = call1(
        "exp",
        array![-0.0f32, 1.0, 88.8, -104.0, 10.0].view().into(),
    );
    assert_eq!(
        bits32(&y),
        [0x3f800000, 0x402df854, 0x7f800000, 0x00000000, 0x46ac14ee]
    );
    // np.exp(np.array([0, 1, -1, 700, 710], np.int32)).view(np.uint64): within 1 ulp
    let y = call1("exp", array![0i32, 1, -1, 700, 710].view().into());
    let want = [
        0x3ff0000000000000,
        0x4005bf0a8b145769,
        0x3fd78b56362cef38,
        0x7f0d945df4f8ec8e,
        0x7ff0000000000000u64,
    ];
    for (g, w) in bits64(&y).into_iter().zip(want) {
        assert!(
            ulps(f64::from_bits(g), f64::from_bits(w)) <= 1,
            "{g:#x} {w:#x}"
        );
    }
    // np.sqrt(np.array([4, 2, -1, 2**53+1])).view(np.uint64)
    let y = call1("sqrt", array![4i64, 2, -1, (1 << 53) + 1].view().into());
    let got = bits64(&y);
    assert_eq!(
        [got[0], got[1], got[3]],
        [0x4000000000000000, 0x3ff6a09e667f3bcd, 0x4196a09e667f3bcd]
    );
    assert!(f64::from_bits(got[2]).is_nan());
}

#[test]
fn user_kernels() {
    let mut r = Registry::new();
    r.register_elementwise_f64("half", "7", "x / 2", |x| x / 2.0)
        .unwrap();
    r.register_elementwise_f32("twice", "1", "x * 2", |x| x * 2.0)
        .unwrap();
    let k = r.get("half").unwrap();
    assert_eq!(
        (k.name(), k.version(), k.doc(), k.arity()),
        ("half", "7", "x / 2", 1)
    );
    let p = Params::new();
    for x in [
        AnyArray::from(array![[1.0f32, 3.0]]),
        AnyArray::from(array![[1.0f64, 3.0]]),
        AnyArray::from(array![[1i32, 3]]),
        AnyArray::from(array![[1i64, 3]]),
    ] {
        let y = r.call("half", &[x.view()], &p).unwrap();
        assert_eq!(y.dtype(), DType::F64);
        assert_eq!(y.typed::<f64>().unwrap(), array![[0.5, 1.5]].into_dyn());
    }
    let y = r
        .call("twice", &[array![1.5f32].view().into()], &p)
        .unwrap();
    assert_eq!(vals::<f32>(&y), [3.0f32]);
    for x in [AnyArray::from(array![1.0f64]), AnyArray::from(array![1i32])] {
        let e = r.call("twice", &[x.view()], &p).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedDType { ref kernel, dtype } if kernel == "twice" && dtype == x.dtype())
        );
    }
    let e = r
        .register_elementwise_f64("half", "8", "again", |x| x)
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateKernel { .. }));
    let e = r.register_elementwise_f32("exp", "1", "", |x| x);
    assert!(e.is_ok(), "an empty registry has no builtins");
    let e = reg()
        .register_elementwise_f32("exp", "1", "", |x| x)
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateKernel { .. }));
}
