//! Where the values of a reduction live: axis resolution, the contiguous
//! buffer, the (outer, n, inner) view of it, and the parallel lane driver.
//!
//! Every kernel here computes each lane in its logical order, whatever the
//! memory layout, so a C-order array, its Fortran-order twin and a strided
//! view of equal values give the same bits. That matters: they share one
//! fingerprint, so a result cached for one of them is served for the others.
//!
//! A C-order input is used in place. A Fortran-order input is used in place
//! too, as the C-order array of its reversed axes: the lanes along axis `a`
//! are the lanes along axis `ndim - 1 - a` of that array, element for
//! element, and the result is handed back with its axes reversed (so in
//! Fortran order). Anything else is first copied into C order.

use std::borrow::Cow;

use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::value::AnyArray;

/// Work (in elements) below which a driver does not spawn parallel tasks.
///
/// Only the scheduling depends on it: every lane is computed the same way
/// on one thread or many.
pub(super) const GRAIN: usize = 1 << 14;

/// Columns processed together when the reduced axis is not the last one.
pub(super) const TILE: usize = 256;

/// Resolves a possibly negative `axis` against `ndim` dimensions.
pub(super) fn resolve_axis(axis: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    let resolved = if axis < 0 { axis + n } else { axis };
    if (0..n).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(Error::AxisOutOfRange {
            axis: axis as isize,
            ndim,
        })
    }
}

/// The values of an array grouped into lanes along one axis: the C-order
/// buffer is `outer` blocks of `n` rows of `inner` elements, and lane
/// `(o, j)` is elements `o * n * inner + i * inner + j` for `i` in `0..n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    /// The product of the dimensions before the axis.
    pub outer: usize,
    /// The length of the axis (of every lane).
    pub n: usize,
    /// The product of the dimensions after the axis.
    pub inner: usize,
}

impl Geometry {
    /// One lane holding every element in C order.
    pub fn flat(len: usize) -> Self {
        Geometry {
            outer: 1,
            n: len,
            inner: 1,
        }
    }

    /// Lanes along `axis` (already resolved) of an array of `shape`.
    pub fn along(shape: &[usize], axis: usize) -> Self {
        Geometry {
            outer: shape[..axis].iter().product(),
            n: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        }
    }

    /// `axis` of `shape` (`None`: all axes, flattened).
    pub fn of(shape: &[usize], axis: Option<usize>) -> Self {
        match axis {
            Some(a) => Geometry::along(shape, a),
            None => Geometry::flat(shape.iter().product()),
        }
    }

    /// The number of lanes (of results of a reduction).
    pub fn lanes(&self) -> usize {
        self.outer * self.inner
    }
}

/// The shape of a reduction of `shape` over `axis` (`None`: all axes).
pub(super) fn reduced_shape(shape: &[usize], axis: Option<usize>, keepdims: bool) -> Vec<usize> {
    match (axis, keepdims) {
        (None, false) => Vec::new(),
        (None, true) => vec![1; shape.len()],
        (Some(a), false) => [&shape[..a], &shape[a + 1..]].concat(),
        (Some(a), true) => {
            let mut s = shape.to_vec();
            s[a] = 1;
            s
        }
    }
}

/// The elements of an input arranged for lanes along an axis.
pub(super) struct Arranged<'a, T: Clone> {
    /// The elements, contiguous (borrowed from the input when it is).
    pub data: Cow<'a, [T]>,
    /// The shape `data` has in C order: the input's, or its reverse.
    pub shape: Vec<usize>,
    /// The axis in `shape` (`None`: all axes, flattened).
    pub axis: Option<usize>,
    /// Whether `shape` is the input's reversed (a Fortran-order input).
    pub reversed: bool,
}

impl<'a, T: Element> Arranged<'a, T> {
    /// Arranges `v` for lanes along `axis` (resolved; `None`: one lane of
    /// all elements in C order, or in memory order if `any_order`, for
    /// computations the order cannot change).
    pub fn new(v: &ArrayViewD<'a, T>, axis: Option<usize>, any_order: bool) -> Self {
        if let Some(data) = v.to_slice() {
            return Arranged {
                data: Cow::Borrowed(data),
                shape: v.shape().to_vec(),
                axis,
                reversed: false,
            };
        }
        let rev = v.clone().reversed_axes();
        if let (Some(data), true) = (rev.to_slice(), axis.is_some() || any_order) {
            return Arranged {
                data: Cow::Borrowed(data),
                shape: rev.shape().to_vec(),
                axis: axis.map(|a| v.ndim() - 1 - a),
                reversed: true,
            };
        }
        let mut c = ArrayD::from_elem(v.raw_dim(), T::default());
        // Zip walks the innermost axis with a strided loop: far faster than
        // a generic per-element iterator over a dynamic-dimension view.
        Zip::from(&mut c).and(v).for_each(|c, &x| *c = x);
        let (data, _) = c.into_raw_vec_and_offset();
        Arranged {
            data: Cow::Owned(data),
            shape: v.shape().to_vec(),
            axis,
            reversed: false,
        }
    }

    /// The lanes of `data`.
    pub fn geometry(&self) -> Geometry {
        Geometry::of(&self.shape, self.axis)
    }

    /// Wraps `out`, computed in C order for an array of `shape` in the
    /// arranged axis order, as the result for the input's axis order.
    pub fn result<R: Element>(&self, shape: Vec<usize>, out: Vec<R>) -> Result<AnyArray> {
        let a = array(shape, out)?;
        Ok(AnyArray::from(if self.reversed {
            a.reversed_axes()
        } else {
            a
        }))
    }
}

fn array<T: Element>(shape: Vec<usize>, data: Vec<T>) -> Result<ArrayD<T>> {
    let len = data.len();
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|_| Error::Shape {
        shape,
        reason: format!("does not hold the {len} computed elements"),
    })
}

/// Computes one result per lane of `data` (C order, laid out as `g`).
///
/// `lane(values)` reduces a contiguous lane (the axis is the last one, or the
/// reduction is over everything); `rows(block, c0, out)` reduces lanes `c0 ..
/// c0 + out.len()` of one outer block of `n × inner` elements (the axis is
/// not the last one), reading the block row by row in memory order. Both
/// must compute a lane the same way, whatever the thread count.
/// A lane of length zero is reduced by `lane(&[])`.
pub(super) fn map_lanes<T, R>(
    data: &[T],
    g: Geometry,
    lane: impl Fn(&[T]) -> R + Sync,
    rows: impl Fn(&[T], usize, &mut [R]) + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send + Sync + Copy + Default,
{
    let lanes = g.lanes();
    if lanes == 0 {
        return Vec::new();
    }
    if g.n == 0 {
        return vec![lane(&[]); lanes];
    }
    let parallel = data.len() >= GRAIN;
    if g.inner == 1 {
        let per_task = (GRAIN / g.n).max(1);
        let run = |(out, chunk): (&mut [R], &[T])| {
            for (o, l) in out.iter_mut().zip(chunk.chunks(g.n)) {
                *o = lane(l);
            }
        };
        if parallel {
            let mut out = vec![R::default(); lanes];
            out.par_chunks_mut(per_task)
                .zip(data.par_chunks(per_task * g.n))
                .for_each(run);
            return out;
        }
        return data.chunks(g.n).map(&lane).collect();
    }
    let mut out = vec![R::default(); lanes];
    let block_len = g.n * g.inner;
    let run_block = |(out, block): (&mut [R], &[T])| {
        for (t, tile) in out.chunks_mut(TILE).enumerate() {
            rows(block, t * TILE, tile);
        }
    };
    if parallel {
        out.par_chunks_mut(g.inner)
            .zip(data.par_chunks(block_len))
            .for_each(|(out, block)| {
                out.par_chunks_mut(TILE)
                    .enumerate()
                    .for_each(|(t, tile)| rows(block, t * TILE, tile));
            });
    } else {
        out.chunks_mut(g.inner)
            .zip(data.chunks(block_len))
            .for_each(run_block);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_resolve_like_numpy() {
        assert_eq!(resolve_axis(-1, 3).unwrap(), 2);
        assert_eq!(resolve_axis(0, 3).unwrap(), 0);
        assert_eq!(resolve_axis(-3, 3).unwrap(), 0);
        // numpy: "axis 2 is out of bounds for array of dimension 2"
        let e = resolve_axis(2, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "axis 2 is out of bounds for array of dimension 2"
        );
        let e = resolve_axis(-3, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "axis -3 is out of bounds for array of dimension 2"
        );
        assert!(resolve_axis(0, 0).is_err());
    }

    #[test]
    fn reduced_shapes() {
        let s = [2, 3, 4];
        assert_eq!(reduced_shape(&s, None, false), Vec::<usize>::new());
        assert_eq!(reduced_shape(&s, None, true), vec![1, 1, 1]);
        assert_eq!(reduced_shape(&s, Some(1), false), vec![2, 4]);
        assert_eq!(reduced_shape(&s, Some(1), true), vec![2, 1, 4]);
        assert_eq!(
            Geometry::along(&s, 1),
            Geometry {
                outer: 2,
                n: 3,
                inner: 4
            }
        );
    }
}
