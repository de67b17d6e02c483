//! `cumsum`: running sums along an axis, in fixed blocks.
//!
//! A lane is scanned in blocks of [`SCAN_BLOCK`] values: the first block is
//! numpy's sequential running sum; every later block is scanned on its own
//! from its first value, and the value ending the previous block is added to
//! each of its running sums. The blocks depend only on the lane's length, so
//! the blocks can be scanned on several threads and the bits are those of a
//! serial run. A lane of at most [`SCAN_BLOCK`] values is exactly numpy's
//! (float rounding can differ from numpy's in the last place beyond that,
//! integer sums never do: they wrap in `i64` like numpy's).

use ndarray::{ArrayView2, ArrayView3, ArrayViewD, ArrayViewMut2, ArrayViewMut3, Axis, Zip};
use rayon::prelude::*;

use super::float::Float;
use super::geometry::{Arranged, GRAIN, TILE};
use crate::element::Element;
use crate::error::Result;
use crate::value::AnyArray;

/// The length of the blocks a lane is scanned in.
pub(super) const SCAN_BLOCK: usize = 1 << 15;

/// An element type `cumsum` accepts, with numpy's result dtype.
pub(super) trait Scan: Element {
    /// The result dtype (`i64` for integers, the same float otherwise).
    type Out: Element;
    /// The value in the result dtype.
    fn widen(self) -> Self::Out;
    /// Addition in the result dtype (wrapping for integers).
    fn add(a: Self::Out, b: Self::Out) -> Self::Out;
    /// The sum with a NaN made the canonical one (see `Float::canonical`).
    fn canonical(v: Self::Out) -> Self::Out;
}

macro_rules! impl_scan {
    ($t:ty, $out:ty, $add:expr, $canonical:expr) => {
        impl Scan for $t {
            type Out = $out;
            #[inline(always)]
            fn widen(self) -> $out {
                self as $out
            }
            #[inline(always)]
            fn add(a: $out, b: $out) -> $out {
                $add(a, b)
            }
            #[inline(always)]
            fn canonical(v: $out) -> $out {
                $canonical(v)
            }
        }
    };
}

impl_scan!(f32, f32, |a: f32, b: f32| a + b, Float::canonical);
impl_scan!(f64, f64, |a: f64, b: f64| a + b, Float::canonical);
impl_scan!(i32, i64, i64::wrapping_add, std::convert::identity);
impl_scan!(i64, i64, i64::wrapping_add, std::convert::identity);

/// numpy `cumsum(v, axis)`; `axis` resolved (`None`: the C-order flattening).
pub(super) fn cumsum<T: Scan>(v: &ArrayViewD<'_, T>, axis: Option<usize>) -> Result<AnyArray> {
    let input = Arranged::new(v, axis, false);
    let (data, g) = (&input.data, input.geometry());
    let shape = match axis {
        Some(_) => input.shape.clone(),
        None => vec![data.len()],
    };
    let mut out = vec![T::Out::default(); data.len()];
    if data.is_empty() {
        return input.result(shape, out);
    }
    let parallel = data.len() >= GRAIN;
    if g.inner == 1 {
        let lanes = out.chunks_mut(g.n).zip(data.chunks(g.n));
        if g.n >= 2 * SCAN_BLOCK {
            // Few long lanes: each is scanned in parallel blocks.
            lanes.for_each(|(o, x)| scan_lane_par(x, o));
        } else if parallel {
            let per_task = (GRAIN / g.n).max(1);
            out.par_chunks_mut(per_task * g.n)
                .zip(data.par_chunks(per_task * g.n))
                .for_each(|(o, x)| {
                    for (o, x) in o.chunks_mut(g.n).zip(x.chunks(g.n)) {
                        scan_lane(x, o);
                    }
                });
        } else {
            lanes.for_each(|(o, x)| scan_lane(x, o));
        }
    } else {
        let dims = (g.outer, g.n, g.inner);
        let x = ArrayView3::from_shape(dims, data).expect("the buffer holds the shape");
        let o = ArrayViewMut3::from_shape(dims, &mut out).expect("the buffer holds the shape");
        scan_blocks(x, o, parallel);
    }
    let canonical = |v: &mut T::Out| *v = T::canonical(*v);
    if parallel {
        out.par_iter_mut().for_each(canonical);
    } else {
        out.iter_mut().for_each(canonical);
    }
    input.result(shape, out)
}

/// Scans a contiguous lane into `out` (same length), block by block.
fn scan_lane<T: Scan>(x: &[T], out: &mut [T::Out]) {
    let mut carry = None;
    for (x, o) in x.chunks(SCAN_BLOCK).zip(out.chunks_mut(SCAN_BLOCK)) {
        local_scan(x, o);
        if let Some(c) = carry {
            add_carry::<T>(c, o);
        }
        carry = o.last().copied();
    }
}

/// [`scan_lane`] with the blocks on several threads: the same bits.
fn scan_lane_par<T: Scan>(x: &[T], out: &mut [T::Out]) {
    out.par_chunks_mut(SCAN_BLOCK)
        .zip(x.par_chunks(SCAN_BLOCK))
        .for_each(|(o, x)| local_scan(x, o));
    // The carry into block b + 1 is the final value of block b, i.e. the
    // carry into b plus b's local total, exactly as the serial scan adds it.
    let mut carries = Vec::with_capacity(out.len() / SCAN_BLOCK + 1);
    let mut carry: Option<T::Out> = None;
    for o in out.chunks(SCAN_BLOCK) {
        carries.push(carry);
        let last = *o.last().expect("blocks are not empty");
        carry = Some(match carry {
            Some(c) => T::add(c, last),
            None => last,
        });
    }
    out.par_chunks_mut(SCAN_BLOCK)
        .zip(carries)
        .for_each(|(o, c)| {
            if let Some(c) = c {
                add_carry::<T>(c, o);
            }
        });
}

#[inline]
fn local_scan<T: Scan>(x: &[T], out: &mut [T::Out]) {
    let mut acc: Option<T::Out> = None;
    for (o, &v) in out.iter_mut().zip(x) {
        let s = match acc {
            Some(a) => T::add(a, v.widen()),
            None => v.widen(),
        };
        *o = s;
        acc = Some(s);
    }
}

#[inline]
fn add_carry<T: Scan>(carry: T::Out, out: &mut [T::Out]) {
    for o in out {
        *o = T::add(carry, *o);
    }
}

/// Scans the lanes of an `(outer, n, inner)` block along axis 1, a tile of
/// columns at a time, reading rows in memory order.
fn scan_blocks<T: Scan>(x: ArrayView3<'_, T>, mut out: ArrayViewMut3<'_, T::Out>, parallel: bool) {
    let tiles = |x: ArrayView2<'_, T>, mut o: ArrayViewMut2<'_, T::Out>| {
        if parallel {
            o.axis_chunks_iter_mut(Axis(1), TILE)
                .into_par_iter()
                .zip(x.axis_chunks_iter(Axis(1), TILE))
                .for_each(|(o, x)| scan_tile(x, o));
        } else {
            o.axis_chunks_iter_mut(Axis(1), TILE)
                .zip(x.axis_chunks_iter(Axis(1), TILE))
                .for_each(|(o, x)| scan_tile(x, o));
        }
    };
    if parallel {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(x.axis_iter(Axis(0)))
            .for_each(|(o, x)| tiles(x, o));
    } else {
        for (o, x) in out.axis_iter_mut(Axis(0)).zip(x.axis_iter(Axis(0))) {
            tiles(x, o);
        }
    }
}

/// Scans every column of an `(n, w)` tile down its rows, with the same
/// blocks as [`scan_lane`].
fn scan_tile<T: Scan>(x: ArrayView2<'_, T>, mut out: ArrayViewMut2<'_, T::Out>) {
    let w = x.ncols();
    let mut local = vec![T::Out::default(); w];
    let mut carry: Option<Vec<T::Out>> = None;
    for (xb, mut ob) in x
        .axis_chunks_iter(Axis(0), SCAN_BLOCK)
        .zip(out.axis_chunks_iter_mut(Axis(0), SCAN_BLOCK))
    {
        for (i, (xr, or)) in xb.rows().into_iter().zip(ob.rows_mut()).enumerate() {
            if i == 0 {
                Zip::from(&mut local[..])
                    .and(xr)
                    .for_each(|l, &v| *l = v.widen());
            } else {
                Zip::from(&mut local[..])
                    .and(xr)
                    .for_each(|l, &v| *l = T::add(*l, v.widen()));
            }
            match &carry {
                None => Zip::from(or).and(&local[..]).for_each(|o, &l| *o = l),
                Some(c) => Zip::from(or)
                    .and(&c[..])
                    .and(&local[..])
                    .for_each(|o, &c, &l| *o = T::add(c, l)),
            }
        }
        let last = ob.row(ob.nrows() - 1).to_vec();
        carry = Some(last);
    }
}
