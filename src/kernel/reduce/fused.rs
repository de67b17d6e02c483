//! Reductions of values that are produced range by range instead of read
//! from an array: the trailing reduction of a fused expression.
//!
//! A fused expression never materializes the array it reduces: it computes
//! any range of its values on demand (see `elementwise::fused`). These
//! drivers ask for ranges in an order that gives the very bits the
//! registry's kernel would give on the materialized array:
//!
//! - float `sum` and `mean`: numpy's pairwise tree depends only on the
//!   lane's length, so the lane is split exactly as [`pairwise`] splits it
//!   until a piece fits in one range, and that piece is summed by
//!   [`pairwise`] itself (the same subtree);
//! - integer `sum`, and `max`/`min`: exact in any order, so ranges of any
//!   size are combined in any order.
//!
//! Lanes are the rows of the C-order result (the reduction is over the last
//! axis, or over everything: one lane).

use rayon::prelude::*;

use super::float::{div_count, Float};
use super::ops::{extreme_lane, int_fold, Int, Num};
use super::pairwise::{self, pairwise, split, PAR_MIN};
use crate::element::Element;
use crate::value::AnyArray;

/// A reduction a fused expression can end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sink {
    /// numpy `sum` (`int32` sums in `int64`).
    Sum,
    /// numpy `mean`.
    Mean,
    /// numpy `min`.
    Min,
    /// numpy `max`.
    Max,
}

impl Sink {
    /// The sink of a registry kernel, if it can end a fused expression.
    pub(crate) fn of_kernel(name: &str) -> Option<Sink> {
        Some(match name {
            "sum" => Sink::Sum,
            "mean" => Sink::Mean,
            "min" => Sink::Min,
            "max" => Sink::Max,
            _ => return None,
        })
    }
}

/// Values computed on demand: `visit(lo, hi, f)` calls `f` once with the
/// values `lo..hi` of the (flattened, C-order) array being reduced.
pub(crate) trait Ranges<T>: Sync {
    /// Computes values `lo..hi` and hands them to `f`.
    fn visit(&self, lo: usize, hi: usize, f: &mut dyn FnMut(&[T]));

    /// The largest range worth asking for at once.
    fn tile(&self) -> usize;
}

fn with_range<T, R: Default>(
    src: &dyn Ranges<T>,
    lo: usize,
    hi: usize,
    f: impl FnOnce(&[T]) -> R,
) -> R {
    let mut f = Some(f);
    let mut out = R::default();
    src.visit(lo, hi, &mut |x| {
        if let Some(f) = f.take() {
            out = f(x);
        }
    });
    out
}

/// The element types a fused expression can reduce.
pub(crate) trait Reducible: Element {
    /// `sink` over `lanes` lanes of `m > 0` values each: one result per lane,
    /// as the registry's kernel computes it.
    fn reduce(src: &dyn Ranges<Self>, sink: Sink, lanes: usize, m: usize) -> AnyArray;
}

macro_rules! float_reducible {
    ($($t:ty),*) => {$(
        impl Reducible for $t {
            fn reduce(src: &dyn Ranges<Self>, sink: Sink, lanes: usize, m: usize) -> AnyArray {
                match sink {
                    Sink::Sum => flat(canonical(float_sum(src, lanes, m, &|v: $t| v))),
                    Sink::Mean => flat(canonical(
                        float_sum(src, lanes, m, &|v: $t| v).into_iter().map(|s| div_count(s, m)).collect(),
                    )),
                    Sink::Min => flat(extreme::<$t, false>(src, lanes, m)),
                    Sink::Max => flat(extreme::<$t, true>(src, lanes, m)),
                }
            }
        }
    )*};
}

macro_rules! int_reducible {
    ($($t:ty),*) => {$(
        impl Reducible for $t {
            fn reduce(src: &dyn Ranges<Self>, sink: Sink, lanes: usize, m: usize) -> AnyArray {
                match sink {
                    Sink::Sum => flat(int_sum(src, lanes, m)),
                    Sink::Mean => flat(canonical(
                        float_sum(src, lanes, m, &|v: $t| v.to_acc()).into_iter().map(|s| div_count(s, m)).collect(),
                    )),
                    Sink::Min => flat(extreme::<$t, false>(src, lanes, m)),
                    Sink::Max => flat(extreme::<$t, true>(src, lanes, m)),
                }
            }
        }
    )*};
}

float_reducible!(f32, f64);
int_reducible!(i32, i64);

fn flat<T: Element>(v: Vec<T>) -> AnyArray {
    AnyArray::new(ndarray::Array1::from_vec(v))
}

fn canonical<F: Float>(mut v: Vec<F>) -> Vec<F> {
    for x in &mut v {
        *x = x.canonical();
    }
    v
}

/// Whether `n` values are worth spreading over threads.
fn parallel(n: usize) -> bool {
    n >= PAR_MIN && rayon::current_num_threads() > 1
}

/// One result per lane: lanes of at most a tile are computed a group of
/// whole lanes at a time and reduced by `short`; longer lanes by `long`
/// (given the lane's first index).
fn per_lane<T, R>(
    src: &dyn Ranges<T>,
    lanes: usize,
    m: usize,
    short: &(impl Fn(&[T]) -> R + Sync),
    long: &(impl Fn(usize) -> R + Sync),
) -> Vec<R>
where
    R: Send + Sync + Copy + Default,
{
    let mut out = vec![R::default(); lanes];
    let tile = src.tile().max(1);
    if m <= tile {
        let group = tile / m;
        let run = |(g, out): (usize, &mut [R])| {
            let lo = g * group * m;
            with_range(src, lo, lo + out.len() * m, |x| {
                for (o, lane) in out.iter_mut().zip(x.chunks_exact(m)) {
                    *o = short(lane);
                }
            })
        };
        if parallel(lanes * m) {
            out.par_chunks_mut(group).enumerate().for_each(run);
        } else {
            out.chunks_mut(group).enumerate().for_each(run);
        }
    } else if lanes > 1 && parallel(lanes * m) {
        out.par_iter_mut()
            .enumerate()
            .for_each(|(l, o)| *o = long(l * m));
    } else {
        for (l, o) in out.iter_mut().enumerate() {
            *o = long(l * m);
        }
    }
    out
}

/// numpy's pairwise sum of `map(v)` per lane.
fn float_sum<T, F>(
    src: &dyn Ranges<T>,
    lanes: usize,
    m: usize,
    map: &(impl Fn(T) -> F + Sync),
) -> Vec<F>
where
    T: Copy + Sync,
    F: Float + Default,
{
    let tile = src.tile().max(pairwise::BLOCK);
    per_lane(src, lanes, m, &|lane| pairwise::sum(lane, map), &|base| {
        F::ZERO + split_sum(src, base, m, tile, map)
    })
}

/// The pairwise tree over values `lo..lo + n`, split as [`pairwise`]
/// splits it until a piece fits in a tile.
fn split_sum<T, F>(
    src: &dyn Ranges<T>,
    lo: usize,
    n: usize,
    tile: usize,
    map: &(impl Fn(T) -> F + Sync),
) -> F
where
    T: Copy + Sync,
    F: Float + Default,
{
    if n <= tile {
        return with_range(src, lo, lo + n, |x| pairwise(x, map));
    }
    let h = split(n);
    if n >= PAR_MIN {
        let (a, b) = rayon::join(
            || split_sum(src, lo, h, tile, map),
            || split_sum(src, lo + h, n - h, tile, map),
        );
        a + b
    } else {
        split_sum(src, lo, h, tile, map) + split_sum(src, lo + h, n - h, tile, map)
    }
}

/// Integer sums, wrapping in `i64` (any order gives the same bits).
fn int_sum<T: Int>(src: &dyn Ranges<T>, lanes: usize, m: usize) -> Vec<i64> {
    let tile = src.tile().max(1);
    let fold = |x: &[T]| int_fold(x, 0, i64::wrapping_add);
    per_lane(src, lanes, m, &fold, &|base| {
        tiles(base, m, tile)
            .map(|(lo, hi)| with_range(src, lo, hi, fold))
            .fold(0, i64::wrapping_add)
    })
}

/// `max` (`MAX`) or `min` per lane; exact, so tiles combine in any order.
fn extreme<T: Num, const MAX: bool>(src: &dyn Ranges<T>, lanes: usize, m: usize) -> Vec<T> {
    let tile = src.tile().max(1);
    let pick = if MAX { T::max_pick } else { T::min_pick };
    per_lane(src, lanes, m, &extreme_lane::<T, MAX>, &|base| {
        let parts: Vec<(usize, usize)> = tiles(base, m, tile).collect();
        let one = |&(lo, hi): &(usize, usize)| with_range(src, lo, hi, extreme_lane::<T, MAX>);
        if parallel(m) {
            parts.par_iter().map(one).reduce_with(pick)
        } else {
            parts.iter().map(one).reduce(pick)
        }
        .unwrap_or_default()
    })
}

/// The ranges of at most `tile` values covering `base..base + m`.
fn tiles(base: usize, m: usize, tile: usize) -> impl Iterator<Item = (usize, usize)> {
    (base..base + m)
        .step_by(tile)
        .map(move |lo| (lo, (lo + tile).min(base + m)))
}
