//! The reductions: sum, prod, mean, var, std, max, min.
//!
//! Summation order (so that the bits are fixed, see the module docs of
//! `pairwise`): float sums, means and variances use numpy's pairwise tree
//! along each lane; float products multiply in lane order, as numpy does;
//! integer sums and products wrap in `i64`, where the order cannot matter;
//! max and min pick by a total order (`-0.0 < 0.0`), any NaN making the
//! result NaN, so they cannot depend on the order either. A NaN result of
//! float arithmetic, or of max and min, is the canonical NaN (numpy's
//! `np.nan`), whatever NaN the hardware or the input produced.

use ndarray::ArrayViewD;
use rayon::prelude::*;

use super::float::{div_count, Float};
use super::geometry::{map_lanes, reduced_shape, Arranged, Geometry, GRAIN};
use super::pairwise;
use crate::element::Element;
use crate::error::Result;
use crate::kernel::elementwise::{vector_level, Level};
use crate::value::AnyArray;

/// Integer lanes at least this long are folded in parallel chunks of this size.
const INT_CHUNK: usize = 1 << 16;

/// An element type as the reductions see it.
pub(super) trait Num: Element + PartialOrd {
    /// The dtype of its mean and variance (numpy: `f32` for `f32`, `f64` otherwise).
    type Acc: Float + Element;
    /// The value converted to [`Num::Acc`].
    fn to_acc(self) -> Self::Acc;
    /// Whether the value is a NaN.
    fn is_nan(self) -> bool;
    /// The larger of an accumulated `a` and a next value `v`: a NaN `a`
    /// stays, a NaN `v` wins, and `0.0` beats `-0.0` (associative and
    /// commutative on non-NaN values and canonical NaNs).
    fn max_pick(a: Self, v: Self) -> Self;
    /// The smaller, with the same NaN rule, and `-0.0` beating `0.0`.
    fn min_pick(a: Self, v: Self) -> Self;

    /// The extreme of a lane (max when `MAX`) from `res`, found by plain
    /// comparisons (which skip NaNs and treat `-0.0 == 0.0`), `saw_nan`,
    /// and the lane's `values`: the canonical NaN if the lane has a NaN,
    /// the zero of the right sign if `res` is zero, else `res`.
    fn settle<const MAX: bool>(
        res: Self,
        saw_nan: bool,
        values: impl Iterator<Item = Self>,
    ) -> Self;

    /// Whether [`Num::settle`] could change `res`.
    fn unsettled(res: Self, saw_nan: bool) -> bool;
}

/// An integer element type; sums and products wrap in `i64` like numpy's.
pub(super) trait Int: Num {
    /// The value as an `i64`.
    fn widen(self) -> i64;
}

macro_rules! impl_float_num {
    ($t:ty) => {
        impl Num for $t {
            type Acc = $t;
            #[inline(always)]
            fn to_acc(self) -> $t {
                self
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn max_pick(a: Self, v: Self) -> Self {
                if a.is_nan() {
                    a
                } else if v.is_nan() || v > a || (v == a && a.is_sign_negative()) {
                    v
                } else {
                    a
                }
            }
            #[inline(always)]
            fn min_pick(a: Self, v: Self) -> Self {
                if a.is_nan() {
                    a
                } else if v.is_nan() || v < a || (v == a && v.is_sign_negative()) {
                    v
                } else {
                    a
                }
            }
            fn settle<const MAX: bool>(
                res: Self,
                saw_nan: bool,
                mut values: impl Iterator<Item = Self>,
            ) -> Self {
                if saw_nan {
                    <$t>::NAN
                } else if res == 0.0 {
                    // Zeros compared equal; the max is 0.0 if the lane has
                    // one, the min is -0.0 if the lane has one.
                    let wanted: $t = if MAX { 0.0 } else { -0.0 };
                    if values.any(|v| v.to_bits() == wanted.to_bits()) {
                        wanted
                    } else {
                        -wanted
                    }
                } else {
                    res
                }
            }
            #[inline(always)]
            fn unsettled(res: Self, saw_nan: bool) -> bool {
                saw_nan || res == 0.0
            }
        }
    };
}

macro_rules! impl_int_num {
    ($t:ty) => {
        impl Num for $t {
            type Acc = f64;
            #[inline(always)]
            fn to_acc(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                false
            }
            #[inline(always)]
            fn max_pick(a: Self, v: Self) -> Self {
                a.max(v)
            }
            #[inline(always)]
            fn min_pick(a: Self, v: Self) -> Self {
                a.min(v)
            }
            fn settle<const MAX: bool>(res: Self, _: bool, _: impl Iterator<Item = Self>) -> Self {
                res
            }
            #[inline(always)]
            fn unsettled(_: Self, _: bool) -> bool {
                false
            }
        }
        impl Int for $t {
            #[inline(always)]
            fn widen(self) -> i64 {
                self as i64
            }
        }
    };
}

impl_float_num!(f32);
impl_float_num!(f64);
impl_int_num!(i32);
impl_int_num!(i64);

/// A reduction's input arranged in lanes, and its output shape.
pub(super) struct Reduction<'a, T: Clone> {
    input: Arranged<'a, T>,
    g: Geometry,
    out_shape: Vec<usize>,
}

impl<'a, T: Num> Reduction<'a, T> {
    /// Reduces `v` over `axis` (resolved; `None`: all axes); `any_order`
    /// when the result cannot depend on the order of the elements.
    pub fn new(
        v: &ArrayViewD<'a, T>,
        axis: Option<usize>,
        keepdims: bool,
        any_order: bool,
    ) -> Self {
        let input = Arranged::new(v, axis, any_order);
        Reduction {
            g: input.geometry(),
            out_shape: reduced_shape(&input.shape, input.axis, keepdims),
            input,
        }
    }

    fn lanes<R: Element>(
        &self,
        lane: impl Fn(&[T]) -> R + Sync,
        rows: impl Fn(&[T], usize, &mut [R]) + Sync,
    ) -> Vec<R> {
        map_lanes(&self.input.data, self.g, lane, rows)
    }

    fn finish<R: Element>(self, out: Vec<R>) -> Result<AnyArray> {
        self.input.result(self.out_shape, out)
    }

    /// [`Self::finish`] for results of float arithmetic, with every NaN
    /// made the canonical one (see [`Float::canonical`]).
    fn finish_float<R: Element + Float>(self, mut out: Vec<R>) -> Result<AnyArray> {
        for v in &mut out {
            *v = v.canonical();
        }
        self.input.result(self.out_shape, out)
    }

    /// numpy `sum` of a float array: pairwise, in its own dtype.
    pub fn float_sum(self) -> Result<AnyArray>
    where
        T: Float,
    {
        let inner = self.g.inner;
        let out = self.lanes(
            |x| pairwise::sum(x, &|v| v),
            |block, c0, out| pairwise::sum_rows(block, inner, c0, out, &|_, v| v),
        );
        self.finish_float(out)
    }

    /// numpy `sum` of an integer array: wrapping, in `i64`.
    pub fn int_sum(self) -> Result<AnyArray>
    where
        T: Int,
    {
        let inner = self.g.inner;
        let out = self.lanes(
            |x| int_fold(x, 0, i64::wrapping_add),
            |block, c0, out| int_rows(block, inner, c0, out, 0, i64::wrapping_add),
        );
        self.finish(out)
    }

    /// numpy `prod` of a float array: multiplied in lane order.
    pub fn float_prod(self) -> Result<AnyArray>
    where
        T: Float,
    {
        let inner = self.g.inner;
        let out = self.lanes(
            |x| x.iter().fold(T::ONE, |acc, &v| acc * v),
            |block, c0, out| {
                out.fill(T::ONE);
                for row in block.chunks_exact(inner) {
                    for (o, &v) in out.iter_mut().zip(&row[c0..]) {
                        *o = *o * v;
                    }
                }
            },
        );
        self.finish_float(out)
    }

    /// numpy `prod` of an integer array: wrapping, in `i64`.
    pub fn int_prod(self) -> Result<AnyArray>
    where
        T: Int,
    {
        let inner = self.g.inner;
        let out = self.lanes(
            |x| int_fold(x, 1, i64::wrapping_mul),
            |block, c0, out| int_rows(block, inner, c0, out, 1, i64::wrapping_mul),
        );
        self.finish(out)
    }

    /// numpy `mean`: the pairwise sum in [`Num::Acc`], divided by the count.
    pub fn mean(self) -> Result<AnyArray> {
        let (n, inner) = (self.g.n, self.g.inner);
        let out = self.lanes(
            |x| div_count(pairwise::sum(x, &|v: T| v.to_acc()), n),
            |block, c0, out| {
                pairwise::sum_rows(block, inner, c0, out, &|_, v: T| v.to_acc());
                for o in out.iter_mut() {
                    *o = div_count(*o, n);
                }
            },
        );
        self.finish_float(out)
    }

    /// numpy `var` (or `std` when `sqrt`) with `ddof`, in two passes: the
    /// mean, then the pairwise sum of squared deviations, divided by
    /// `max(n - ddof, 0)`.
    pub fn var(self, ddof: i64, sqrt: bool) -> Result<AnyArray> {
        let (n, inner) = (self.g.n, self.g.inner);
        let divisor = (n as i64).saturating_sub(ddof).max(0);
        let finish = move |ssd: T::Acc| {
            let var = T::Acc::from_f64(ssd.to_f64() / divisor as f64);
            if sqrt {
                var.sqrt()
            } else {
                var
            }
        };
        let out = self.lanes(
            |x| {
                let mean = div_count(pairwise::sum(x, &|v: T| v.to_acc()), n);
                finish(pairwise::sum(x, &|v: T| {
                    let d = v.to_acc() - mean;
                    d * d
                }))
            },
            |block, c0, out| {
                let mut mean = [T::Acc::ZERO; super::geometry::TILE];
                let mean = &mut mean[..out.len()];
                pairwise::sum_rows(block, inner, c0, mean, &|_, v: T| v.to_acc());
                for m in mean.iter_mut() {
                    *m = div_count(*m, n);
                }
                pairwise::sum_rows(block, inner, c0, out, &|c, v: T| {
                    let d = v.to_acc() - mean[c];
                    d * d
                });
                for o in out.iter_mut() {
                    *o = finish(*o);
                }
            },
        );
        self.finish_float(out)
    }

    /// numpy `max` (`MAX`) or `min`; lanes must not be empty.
    pub fn extreme<const MAX: bool>(self) -> Result<AnyArray> {
        let inner = self.g.inner;
        let out = self.lanes(extreme_lane::<T, MAX>, |block, c0, out| {
            let w = out.len();
            let mut nan = [false; super::geometry::TILE];
            let mut rows = block.chunks_exact(inner);
            if let Some(first) = rows.next() {
                out.copy_from_slice(&first[c0..c0 + w]);
                for (n, o) in nan.iter_mut().zip(out.iter()) {
                    *n = o.is_nan();
                }
            }
            for row in rows {
                for ((o, n), &v) in out.iter_mut().zip(&mut nan).zip(&row[c0..c0 + w]) {
                    *o = fast::<T, MAX>(*o, v);
                    *n |= v.is_nan();
                }
            }
            for (c, (o, &n)) in out.iter_mut().zip(&nan).enumerate() {
                if T::unsettled(*o, n) {
                    let column = block[c0 + c..].iter().step_by(inner).copied();
                    *o = T::settle::<MAX>(*o, n, column);
                }
            }
        });
        self.finish(out)
    }
}

/// The larger (`MAX`) or smaller of `a` and `v` by plain comparison: `v`
/// only if it compares strictly beyond `a` (so a NaN `v` is skipped).
#[inline(always)]
fn fast<T: Num, const MAX: bool>(a: T, v: T) -> T {
    let beyond = if MAX { v > a } else { v < a };
    if beyond {
        v
    } else {
        a
    }
}

/// Folds a lane of integers in `i64` with an associative, commutative
/// wrapping operation (so any chunking gives the same result).
pub(super) fn int_fold<T: Int>(
    x: &[T],
    id: i64,
    op: impl Fn(i64, i64) -> i64 + Send + Sync + Copy,
) -> i64 {
    let serial = |c: &[T]| c.iter().fold(id, |acc, &v| op(acc, v.widen()));
    if x.len() >= 2 * INT_CHUNK {
        x.par_chunks(INT_CHUNK).map(serial).reduce(|| id, op)
    } else {
        serial(x)
    }
}

fn int_rows<T: Int>(
    block: &[T],
    inner: usize,
    c0: usize,
    out: &mut [i64],
    id: i64,
    op: impl Fn(i64, i64) -> i64,
) {
    out.fill(id);
    for row in block.chunks_exact(inner) {
        for (o, &v) in out.iter_mut().zip(&row[c0..]) {
            *o = op(*o, v.widen());
        }
    }
}

/// The max (`MAX`) or min of a lane (the default for an empty lane, which
/// callers reject before).
///
/// Pieces of up to `2·GRAIN` values are scanned by a loop compiled for the
/// CPU's vector level, chosen once here (every level picks the same value:
/// see [`Num::max_pick`]).
pub(super) fn extreme_lane<T: Num, const MAX: bool>(x: &[T]) -> T {
    extreme_at::<T, MAX>(vector_level(), x)
}

pub(super) fn extreme_at<T: Num, const MAX: bool>(level: Level, x: &[T]) -> T {
    if x.len() >= 2 * GRAIN {
        // `pick` is associative, and the chunks' NaNs are canonical.
        let pick = if MAX { T::max_pick } else { T::min_pick };
        return x
            .par_chunks(GRAIN)
            .map(|c| extreme_at::<T, MAX>(level, c))
            .reduce_with(pick)
            .unwrap_or_default();
    }
    extreme_serial::<T, MAX>(level, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt")]
fn extreme_v3<T: Num, const MAX: bool>(x: &[T]) -> T {
    extreme_body::<T, MAX>(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt")]
fn extreme_v4<T: Num, const MAX: bool>(x: &[T]) -> T {
    extreme_body::<T, MAX>(x)
}

/// [`extreme_body`] compiled for `level` (at most the CPU's).
#[allow(unsafe_code)]
fn extreme_serial<T: Num, const MAX: bool>(level: Level, x: &[T]) -> T {
    match level.min(vector_level()) {
        // SAFETY: `vector_level()` returns V4 or V3 only after
        // `is_x86_feature_detected!` confirmed every feature these
        // functions are compiled with.
        #[cfg(target_arch = "x86_64")]
        Level::V4 => unsafe { extreme_v4::<T, MAX>(x) },
        #[cfg(target_arch = "x86_64")]
        Level::V3 => unsafe { extreme_v3::<T, MAX>(x) },
        _ => extreme_body::<T, MAX>(x),
    }
}

/// The accumulators of [`extreme_body`] (four AVX2 registers of `f64`).
const LANES: usize = 16;

#[inline(always)]
fn extreme_body<T: Num, const MAX: bool>(x: &[T]) -> T {
    let Some(&first) = x.first() else {
        return T::default();
    };
    let (res, saw_nan) = if x.len() < LANES {
        let res = x.iter().fold(first, |a, &v| fast::<T, MAX>(a, v));
        (res, x.iter().any(|v| v.is_nan()))
    } else {
        // LANES independent accumulators: comparisons the compiler turns
        // into vector max/min instructions, enough of them to hide their
        // latency (the pick does not depend on the order). The NaN check is
        // a second loop over each block while it is in L1 (a flag per
        // accumulator in the same loop was compiled to scalar code: 3x
        // slower).
        let full = x.len() - x.len() % LANES;
        let (body, tail) = x.split_at(full);
        let mut acc: [T; LANES] = std::array::from_fn(|k| x[k]);
        let mut nan = false;
        for block in body.chunks(1 << 10) {
            for chunk in block.chunks_exact(LANES) {
                for k in 0..LANES {
                    acc[k] = fast::<T, MAX>(acc[k], chunk[k]);
                }
            }
            nan |= block.iter().fold(false, |n, v| n | v.is_nan());
        }
        let res = acc.into_iter().reduce(fast::<T, MAX>).unwrap_or(first);
        let res = tail.iter().fold(res, |a, &v| fast::<T, MAX>(a, v));
        (res, nan || tail.iter().any(|v| v.is_nan()))
    };
    if T::unsettled(res, saw_nan) {
        T::settle::<MAX>(res, saw_nan, x.iter().copied())
    } else {
        res
    }
}
