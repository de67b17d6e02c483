//! `sort`: ascending, NaN last, by order-preserving integer keys.
//!
//! Every value maps to an unsigned key whose integer order is the sort
//! order: for integers, flipping the sign bit; for floats, flipping every bit
//! of a negative number and the sign bit of a positive one (so `-inf < ... <
//! -0.0 < 0.0 < ... < inf`), then rotating the key space so that the NaNs
//! with the sign bit set, which would come first, come after the others. The
//! map is a bijection, so sorting the keys and mapping back sorts the
//! values, keeping every NaN's bits. Long lanes are radix sorted (see
//! `radix`), short ones compared.
//!
//! Unlike numpy, whose order of `-0.0` and `0.0` (equal numbers) depends on
//! the input order, `-0.0` always comes first: the result is one fixed
//! permutation of the multiset of bits, whatever the layout or thread count.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Zip};
use rayon::prelude::*;

use super::geometry::{Arranged, GRAIN};
use super::radix::{self, RadixKey};
use crate::element::Element;
use crate::error::Result;
use crate::value::AnyArray;

/// An element type with an order-preserving key.
pub(super) trait SortKey: Element {
    /// The key type (`u32` or `u64`).
    type Key: RadixKey;
    /// The key of a value.
    fn key(self) -> Self::Key;
    /// The value of a key (the inverse of [`SortKey::key`]).
    fn from_key(k: Self::Key) -> Self;
}

macro_rules! impl_int_key {
    ($t:ty, $k:ty) => {
        impl SortKey for $t {
            type Key = $k;
            #[inline(always)]
            fn key(self) -> $k {
                (self as $k) ^ (1 << (<$k>::BITS - 1))
            }
            #[inline(always)]
            fn from_key(k: $k) -> Self {
                (k ^ (1 << (<$k>::BITS - 1))) as $t
            }
        }
    };
}

/// `$neg_nans` is the number of NaNs with the sign bit set: their plain keys
/// are `0 ..= $neg_nans - 1`, below `-inf`'s, and subtracting `$neg_nans`
/// (wrapping) moves them above the positive NaNs.
macro_rules! impl_float_key {
    ($t:ty, $k:ty, $neg_nans:expr) => {
        impl SortKey for $t {
            type Key = $k;
            #[inline(always)]
            fn key(self) -> $k {
                const SIGN: $k = 1 << (<$k>::BITS - 1);
                let bits = self.to_bits();
                let plain = if bits & SIGN != 0 { !bits } else { bits | SIGN };
                plain.wrapping_sub($neg_nans)
            }
            #[inline(always)]
            fn from_key(k: $k) -> Self {
                const SIGN: $k = 1 << (<$k>::BITS - 1);
                let plain = k.wrapping_add($neg_nans);
                let bits = if plain & SIGN != 0 {
                    plain & !SIGN
                } else {
                    !plain
                };
                <$t>::from_bits(bits)
            }
        }
    };
}

impl_int_key!(i32, u32);
impl_int_key!(i64, u64);
impl_float_key!(f32, u32, (1 << 23) - 1);
impl_float_key!(f64, u64, (1 << 52) - 1);

/// numpy `sort(v, axis)`; `axis` resolved, `None` sorts the C-order
/// flattening into a 1-D array.
pub(super) fn sort<T: SortKey>(v: &ArrayViewD<'_, T>, axis: Option<usize>) -> Result<AnyArray> {
    let input = Arranged::new(v, axis, false);
    let mut data = input.data.to_vec();
    let Some(axis) = input.axis else {
        sort_lane(&mut data);
        return input.result(vec![data.len()], data);
    };
    let shape = input.shape.clone();
    let n = shape[axis];
    if data.is_empty() || n < 2 {
        return input.result(shape, data);
    }
    let parallel = data.len() >= GRAIN;
    if axis + 1 == shape.len() {
        if parallel && n < GRAIN {
            let per_task = (GRAIN / n).max(1);
            data.par_chunks_mut(per_task * n)
                .for_each(|lanes| lanes.chunks_mut(n).for_each(sort_lane));
        } else {
            // Few lanes, or long ones that sort themselves in parallel.
            data.chunks_mut(n).for_each(sort_lane);
        }
        return input.result(shape, data);
    }
    let mut a = ArrayD::from_shape_vec(IxDyn(&shape), data).expect("the buffer holds the shape");
    // A lane down a non-last axis is strided: sort a contiguous copy.
    let strided = |buf: &mut Vec<T>, mut lane: ndarray::ArrayViewMut1<'_, T>| {
        buf.clear();
        buf.extend(lane.iter().copied());
        sort_lane(buf);
        lane.iter_mut().zip(buf.iter()).for_each(|(o, &v)| *o = v);
    };
    if parallel {
        Zip::from(a.lanes_mut(Axis(axis)))
            .into_par_iter()
            .with_min_len((GRAIN / n).max(1))
            .for_each_init(Vec::new, |buf, (lane,)| strided(buf, lane));
    } else {
        let mut buf = Vec::new();
        for lane in a.lanes_mut(Axis(axis)) {
            strided(&mut buf, lane);
        }
    }
    let (data, _) = a.into_raw_vec_and_offset();
    input.result(shape, data)
}

/// Sorts one contiguous lane in place: maps the values to their keys in
/// place (noting the AND and the OR of all keys, whose common leading bits
/// every key shares; a plain vectorized fold), sorts the keys, and maps each
/// sorted piece back while the sort has it in cache.
fn sort_lane<T: SortKey>(lane: &mut [T]) {
    if lane.len() < 2 {
        return;
    }
    let keys: &mut [T::Key] = bytemuck::cast_slice_mut(lane);
    let to_keys = |c: &mut [T::Key]| {
        let (mut and, mut or) = (!T::Key::default(), T::Key::default());
        for k in c.iter_mut() {
            *k = T::key(bytemuck::cast(*k));
            and = and & *k;
            or = or | *k;
        }
        (and, or)
    };
    let (and, or) = if keys.len() >= GRAIN {
        keys.par_chunks_mut(GRAIN)
            .map(to_keys)
            .reduce_with(|(a, b), (c, d)| (a & c, b | d))
            .expect("the lane is not empty")
    } else {
        to_keys(keys)
    };
    let from_keys = |c: &mut [T::Key]| {
        c.iter_mut()
            .for_each(|k| *k = bytemuck::cast(T::from_key(*k)))
    };
    radix::sort(keys, and, or, &from_keys);
}
