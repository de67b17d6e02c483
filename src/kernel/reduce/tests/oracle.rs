//! Every kernel against naive sequential references, on random inputs of
//! random shapes, dtypes and layouts (C, Fortran, strided, permuted).

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, ShapeBuilder, Slice};
use proptest::prelude::*;

use super::{call, values};
use crate::element::Element;
use crate::kernel::reduce::cumsum::SCAN_BLOCK;
use crate::kernel::Params;
use crate::value::AnyView;

/// A small deterministic generator (the cases are shrunk by seed and shape).
pub(super) struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xbf58476d1ce4e5b9) ^ (x >> 32)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random values of a type, with NaN, ±0 and ±inf mixed in for floats
/// when `specials`, and the full range or small values for integers.
pub(super) trait Gen: Element {
    fn gen(rng: &mut Lcg, specials: bool) -> Self;
}

fn gen_f64(rng: &mut Lcg, specials: bool) -> f64 {
    if specials && rng.next().is_multiple_of(12) {
        return [
            f64::NAN,
            -f64::NAN,
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ][(rng.next() % 6) as usize];
    }
    let sign = if rng.next().is_multiple_of(2) {
        1.0
    } else {
        -1.0
    };
    sign * rng.unit() * 10f64.powi((rng.next() % 9) as i32 - 4)
}

impl Gen for f64 {
    fn gen(rng: &mut Lcg, specials: bool) -> Self {
        gen_f64(rng, specials)
    }
}
impl Gen for f32 {
    fn gen(rng: &mut Lcg, specials: bool) -> Self {
        gen_f64(rng, specials) as f32
    }
}
impl Gen for i32 {
    fn gen(rng: &mut Lcg, wide: bool) -> Self {
        if wide {
            rng.next() as i32
        } else {
            (rng.next() % 201) as i32 - 100
        }
    }
}
impl Gen for i64 {
    fn gen(rng: &mut Lcg, wide: bool) -> Self {
        if wide {
            rng.next() as i64
        } else {
            (rng.next() % 201) as i64 - 100
        }
    }
}

/// How the logical array is laid out in memory.
#[derive(Debug, Clone, Copy)]
pub(super) enum Layout {
    C,
    F,
    /// Every other element of each axis of a larger C array.
    Strided,
    /// Axes permuted from a C array of the permuted shape.
    Permuted,
}

/// An owned buffer plus the recipe for viewing it with the wanted layout.
pub(super) struct Input<T> {
    base: ArrayD<T>,
    layout: Layout,
}

impl<T: Gen> Input<T> {
    pub fn new(shape: &[usize], seed: u64, specials: bool, layout: Layout) -> Self {
        let mut rng = Lcg::new(seed);
        let mut fill = |shape: &[usize]| -> Vec<T> {
            let len = shape.iter().product();
            (0..len).map(|_| T::gen(&mut rng, specials)).collect()
        };
        let base = match layout {
            Layout::C => ArrayD::from_shape_vec(IxDyn(shape), fill(shape)).unwrap(),
            Layout::F => ArrayD::from_shape_vec(IxDyn(shape).f(), fill(shape)).unwrap(),
            Layout::Strided => {
                let big: Vec<usize> = shape.iter().map(|&d| 2 * d + 1).collect();
                ArrayD::from_shape_vec(IxDyn(&big), fill(&big)).unwrap()
            }
            Layout::Permuted => {
                let rev: Vec<usize> = shape.iter().rev().copied().collect();
                ArrayD::from_shape_vec(IxDyn(&rev), fill(&rev)).unwrap()
            }
        };
        Input { base, layout }
    }

    pub fn view(&self) -> ArrayViewD<'_, T> {
        match self.layout {
            Layout::C | Layout::F => self.base.view(),
            Layout::Strided => self.base.slice_each_axis(|_| Slice::new(1, None, 2)),
            Layout::Permuted => self.base.view().reversed_axes(),
        }
    }
}

/// The lanes of `v` along `axis` (`None`: one lane of everything), in the
/// order of the results.
pub(super) fn lanes<T: Copy>(v: &ArrayViewD<'_, T>, axis: Option<usize>) -> Vec<Vec<T>> {
    match axis {
        None => vec![v.iter().copied().collect()],
        Some(a) => v.lanes(Axis(a)).into_iter().map(|l| l.to_vec()).collect(),
    }
}

/// numpy's pairwise summation, written plainly and serially.
fn pairwise(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        let mut s = 0.0;
        for v in x {
            s += v;
        }
        s
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&x[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for k in 0..8 {
                r[k] += x[i + k];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            s += x[i];
            i += 1;
        }
        s
    } else {
        let h = n / 2 - (n / 2) % 8;
        pairwise(&x[..h]) + pairwise(&x[h..])
    }
}

/// The same in `f32` arithmetic.
fn pairwise32(x: &[f32]) -> f32 {
    let n = x.len();
    if n < 8 {
        x.iter().fold(0.0, |s, v| s + v)
    } else if n <= 128 {
        let mut r = [0.0f32; 8];
        r.copy_from_slice(&x[..8]);
        let full = n - n % 8;
        for c in x[8..full].chunks(8) {
            for k in 0..8 {
                r[k] += c[k];
            }
        }
        let s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        x[full..].iter().fold(s, |s, v| s + v)
    } else {
        let h = n / 2 - (n / 2) % 8;
        pairwise32(&x[..h]) + pairwise32(&x[h..])
    }
}

/// What each reduction of a lane must be, as bits (`u64`) of its result.
pub(super) trait Reference: Gen + PartialOrd {
    /// The canonical NaN (unused for integers).
    const NAN_VALUE: Self;
    fn sum(x: &[Self]) -> u64;
    fn prod(x: &[Self]) -> u64;
    fn mean(x: &[Self]) -> u64;
    fn var(x: &[Self], ddof: i64, sqrt: bool) -> u64;
    fn bits(self) -> u64;
    fn is_nan(self) -> bool;
    /// Total order for sorting and max/min: `-0 < 0`; NaN handled apart.
    fn total(a: &Self, b: &Self) -> std::cmp::Ordering;
    fn result_bits(a: &crate::AnyArray, kernel: &str) -> Vec<u64>;
}

fn divisor(n: usize, ddof: i64) -> f64 {
    (n as i64 - ddof).max(0) as f64
}

fn var64(x: &[f64], ddof: i64, sqrt: bool) -> f64 {
    let m = (0.0 + pairwise(x)) / x.len() as f64;
    let dev: Vec<f64> = x.iter().map(|v| (v - m) * (v - m)).collect();
    let v = (0.0 + pairwise(&dev)) / divisor(x.len(), ddof);
    if sqrt {
        v.sqrt()
    } else {
        v
    }
}

/// The bits of a result of float arithmetic: any NaN is the canonical one.
fn c64(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

fn c32(v: f32) -> u64 {
    if v.is_nan() {
        f32::NAN.to_bits().into()
    } else {
        v.to_bits().into()
    }
}

impl Reference for f64 {
    const NAN_VALUE: f64 = f64::NAN;
    fn sum(x: &[f64]) -> u64 {
        c64(0.0 + pairwise(x))
    }
    fn prod(x: &[f64]) -> u64 {
        c64(x.iter().fold(1.0, |p, v| p * v))
    }
    fn mean(x: &[f64]) -> u64 {
        c64((0.0 + pairwise(x)) / x.len() as f64)
    }
    fn var(x: &[f64], ddof: i64, sqrt: bool) -> u64 {
        c64(var64(x, ddof, sqrt))
    }
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn total(a: &f64, b: &f64) -> std::cmp::Ordering {
        a.total_cmp(b)
    }
    fn result_bits(a: &crate::AnyArray, _: &str) -> Vec<u64> {
        values::<f64>(a).iter().map(|v| v.to_bits()).collect()
    }
}

impl Reference for f32 {
    const NAN_VALUE: f32 = f32::NAN;
    fn sum(x: &[f32]) -> u64 {
        c32(0.0 + pairwise32(x))
    }
    fn prod(x: &[f32]) -> u64 {
        c32(x.iter().fold(1.0f32, |p, v| p * v))
    }
    fn mean(x: &[f32]) -> u64 {
        c32(((0.0 + pairwise32(x)) as f64 / x.len() as f64) as f32)
    }
    fn var(x: &[f32], ddof: i64, sqrt: bool) -> u64 {
        let m = ((0.0 + pairwise32(x)) as f64 / x.len() as f64) as f32;
        let dev: Vec<f32> = x.iter().map(|v| (v - m) * (v - m)).collect();
        let v = ((0.0 + pairwise32(&dev)) as f64 / divisor(x.len(), ddof)) as f32;
        c32(if sqrt { v.sqrt() } else { v })
    }
    fn bits(self) -> u64 {
        self.to_bits().into()
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn total(a: &f32, b: &f32) -> std::cmp::Ordering {
        a.total_cmp(b)
    }
    fn result_bits(a: &crate::AnyArray, _: &str) -> Vec<u64> {
        values::<f32>(a)
            .iter()
            .map(|v| v.to_bits().into())
            .collect()
    }
}

macro_rules! int_reference {
    ($t:ty) => {
        impl Reference for $t {
            const NAN_VALUE: $t = 0;
            fn sum(x: &[$t]) -> u64 {
                x.iter().fold(0i64, |s, &v| s.wrapping_add(v as i64)) as u64
            }
            fn prod(x: &[$t]) -> u64 {
                x.iter().fold(1i64, |p, &v| p.wrapping_mul(v as i64)) as u64
            }
            fn mean(x: &[$t]) -> u64 {
                let f: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                f64::mean(&f)
            }
            fn var(x: &[$t], ddof: i64, sqrt: bool) -> u64 {
                let f: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                c64(var64(&f, ddof, sqrt))
            }
            fn bits(self) -> u64 {
                self as i64 as u64
            }
            fn is_nan(self) -> bool {
                false
            }
            fn total(a: &$t, b: &$t) -> std::cmp::Ordering {
                a.cmp(b)
            }
            fn result_bits(a: &crate::AnyArray, kernel: &str) -> Vec<u64> {
                match kernel {
                    "mean" | "var" | "std" => {
                        values::<f64>(a).iter().map(|v| v.to_bits()).collect()
                    }
                    "sum" | "prod" | "cumsum" => {
                        values::<i64>(a).iter().map(|&v| v as u64).collect()
                    }
                    _ => values::<$t>(a).iter().map(|&v| v as i64 as u64).collect(),
                }
            }
        }
    };
}

int_reference!(i32);
int_reference!(i64);

/// The lane's max (or min): the canonical NaN if it has a NaN, else by
/// total order.
fn extreme<T: Reference>(x: &[T], max: bool) -> u64 {
    if x.iter().any(|v| v.is_nan()) {
        return T::result_bits(
            &crate::AnyArray::from(ndarray::arr1(&[T::NAN_VALUE])),
            "max",
        )[0];
    }
    let pick = if max {
        x.iter().max_by(|a, b| T::total(a, b))
    } else {
        x.iter().min_by(|a, b| T::total(a, b))
    };
    pick.unwrap().bits()
}

/// The lane sorted: non-NaN by total order, then the NaNs.
fn sorted<T: Reference>(x: &[T]) -> Vec<u64> {
    let mut finite: Vec<T> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    finite.sort_by(T::total);
    let mut nans: Vec<u64> = x.iter().filter(|v| v.is_nan()).map(|v| v.bits()).collect();
    nans.sort_unstable();
    finite.iter().map(|v| v.bits()).chain(nans).collect()
}

/// Checks every kernel on one input against the references; `cumsum_bits`
/// is the running sum of a lane as bits of the result dtype.
pub(super) fn check_all<T: Reference>(input: &Input<T>, cumsum_bits: impl Fn(&[T]) -> Vec<u64>) {
    let v = input.view();
    let ndim = v.ndim();
    let mut axes: Vec<Option<i64>> = vec![None];
    axes.extend((0..ndim as i64).map(Some));
    axes.extend((1..=ndim as i64).map(|a| Some(-a)));
    for (i, axis) in axes.into_iter().enumerate() {
        let resolved = axis.map(|a| {
            if a < 0 {
                (a + ndim as i64) as usize
            } else {
                a as usize
            }
        });
        let lanes = lanes(&v, resolved);
        // Alternate keepdims between axes: both are covered for every shape.
        {
            let keepdims = i % 2 == 1;
            let mut expected_shape: Vec<usize> = v.shape().to_vec();
            match (resolved, keepdims) {
                (None, false) => expected_shape.clear(),
                (None, true) => expected_shape.iter_mut().for_each(|d| *d = 1),
                (Some(a), false) => {
                    expected_shape.remove(a);
                }
                (Some(a), true) => expected_shape[a] = 1,
            }
            let mut params = Params::new().keepdims(keepdims);
            if let Some(a) = axis {
                params = params.axis(a as isize);
            }
            let run = |name: &str, params: Params| {
                let r = call(name, AnyView::from(v.clone()), params);
                r.map(|r| {
                    assert_eq!(r.shape(), &expected_shape[..], "{name} axis {axis:?}");
                    T::result_bits(&r, name)
                })
            };
            let expect =
                |f: &dyn Fn(&[T]) -> u64| -> Vec<u64> { lanes.iter().map(|l| f(l)).collect() };
            assert_eq!(
                run("sum", params.clone()).unwrap(),
                expect(&|l| T::sum(l)),
                "sum {axis:?}"
            );
            assert_eq!(
                run("prod", params.clone()).unwrap(),
                expect(&|l| T::prod(l)),
                "prod {axis:?}"
            );
            assert_eq!(
                run("mean", params.clone()).unwrap(),
                expect(&|l| T::mean(l)),
                "mean {axis:?}"
            );
            for ddof in [0, 1, 3] {
                let p = params.clone().ddof(ddof);
                assert_eq!(run("var", p).unwrap(), expect(&|l| T::var(l, ddof, false)));
            }
            let p = params.clone().ddof(1);
            assert_eq!(run("std", p).unwrap(), expect(&|l| T::var(l, 1, true)));
            let empty = resolved.map_or(v.len(), |a| v.shape()[a]) == 0;
            for (name, max) in [("max", true), ("min", false)] {
                match run(name, params.clone()) {
                    Ok(got) => {
                        assert!(!empty, "{name} of an empty lane");
                        assert_eq!(got, expect(&|l| extreme(l, max)), "{name} {axis:?}");
                    }
                    Err(e) => {
                        assert!(empty, "{name}: {e}");
                        assert!(matches!(e, crate::Error::EmptyReduction { .. }));
                    }
                }
            }
        }
        let mut p = Params::new();
        if let Some(a) = axis {
            p = p.axis(a as isize);
        }
        // cumsum and sort keep the shape (cumsum without axis flattens);
        // compare lane by lane through the same lane iteration of the result.
        let c = call("cumsum", AnyView::from(v.clone()), p.clone()).unwrap();
        let s = call(
            "sort",
            AnyView::from(v.clone()),
            p.clone().set("flatten", axis.is_none()),
        );
        let sort_axis = if axis.is_none() { Some(0) } else { resolved };
        let c_lanes = result_lanes::<T>(&c, resolved.or(Some(0)), "cumsum");
        let want: Vec<Vec<u64>> = lanes.iter().map(|l| cumsum_bits(l)).collect();
        assert_eq!(c_lanes, want, "cumsum {axis:?}");
        let s = s.unwrap();
        let s_lanes = result_lanes::<T>(&s, sort_axis, "sort");
        let want: Vec<Vec<u64>> = lanes.iter().map(|l| sorted(l)).collect();
        assert_eq!(s_lanes, want, "sort {axis:?}");
    }
}

/// The bits of the lanes of a result along `axis`.
fn result_lanes<T: Reference>(
    r: &crate::AnyArray,
    axis: Option<usize>,
    name: &str,
) -> Vec<Vec<u64>> {
    let bits = T::result_bits(r, name);
    let shape = r.shape().to_vec();
    let a = ArrayD::from_shape_vec(IxDyn(&shape), bits).unwrap();
    lanes(&a.view(), axis)
}

/// numpy's running sum, restarted every `SCAN_BLOCK` values with the
/// value ending the previous block added (the documented block rule; for
/// a lane of at most one block, numpy's sequential sum).
fn scan<A: Copy>(x: &[A], add: fn(A, A) -> A) -> Vec<A> {
    let mut out: Vec<A> = Vec::with_capacity(x.len());
    for block in x.chunks(SCAN_BLOCK) {
        let carry = out.last().copied();
        let mut s = block[0];
        for (i, &v) in block.iter().enumerate() {
            if i > 0 {
                s = add(s, v);
            }
            out.push(carry.map_or(s, |c| add(c, s)));
        }
    }
    out
}

pub(super) fn cumsum_f64(x: &[f64]) -> Vec<u64> {
    scan(x, |a, b| a + b).into_iter().map(c64).collect()
}

pub(super) fn cumsum_f32(x: &[f32]) -> Vec<u64> {
    scan(x, |a, b| a + b).into_iter().map(c32).collect()
}

pub(super) fn cumsum_int<T: Copy + Into<i64>>(x: &[T]) -> Vec<u64> {
    let wide: Vec<i64> = x.iter().map(|&v| v.into()).collect();
    scan(&wide, i64::wrapping_add)
        .iter()
        .map(|&v| v as u64)
        .collect()
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::C),
        Just(Layout::F),
        Just(Layout::Strided),
        Just(Layout::Permuted)
    ]
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(vec![]),
        6 => prop::collection::vec(0usize..6, 1..=4),
        // Long enough along one axis for the pairwise split (> 128).
        2 => (129usize..400).prop_map(|n| vec![n]),
        2 => (1usize..4, 129usize..300, 1usize..5).prop_map(|(a, b, c)| vec![a, b, c]),
        // More columns than a tile (256) below a long axis.
        1 => (129usize..140, 257usize..270).prop_map(|(a, b)| vec![a, b]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn f64_matches_references(shape in shape(), seed: u64, specials: bool, layout in layout()) {
        check_all(&Input::<f64>::new(&shape, seed, specials, layout), cumsum_f64);
    }

    #[test]
    fn f32_matches_references(shape in shape(), seed: u64, specials: bool, layout in layout()) {
        check_all(&Input::<f32>::new(&shape, seed, specials, layout), cumsum_f32);
    }

    #[test]
    fn i32_matches_references(shape in shape(), seed: u64, wide: bool, layout in layout()) {
        check_all(&Input::<i32>::new(&shape, seed, wide, layout), cumsum_int::<i32>);
    }

    #[test]
    fn i64_matches_references(shape in shape(), seed: u64, wide: bool, layout in layout()) {
        check_all(&Input::<i64>::new(&shape, seed, wide, layout), cumsum_int::<i64>);
    }
}

#[test]
fn layouts_give_the_same_bits() {
    // A C array, its Fortran twin, a strided and a permuted view of equal
    // values share a fingerprint, so they must share results.
    for shape in [vec![300, 7], vec![5, 140, 3]] {
        let base = Input::<f64>::new(&shape, 1, true, Layout::C);
        let c = base.view();
        let mut f = ArrayD::zeros(IxDyn(&shape).f());
        f.assign(&c);
        let runs = |x: ArrayViewD<'_, f64>| {
            let mut out = Vec::new();
            for name in ["sum", "mean", "var", "max", "prod", "cumsum", "sort"] {
                for axis in 0..shape.len() as isize {
                    let r = call(name, AnyView::from(x.clone()), Params::new().axis(axis)).unwrap();
                    out.push(r);
                }
            }
            out
        };
        let a = runs(c.clone());
        let b = runs(f.view());
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            assert!(a.bitwise_eq(b));
        }
    }
}
