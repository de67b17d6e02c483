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

use super::geometry::{c_order, into_array, GRAIN};
use super::radix::{self, RadixKey};
use crate::element::Element;
use crate::error::Result;
use crate::value::AnyArray;

/// Lanes shorter than this are sorted by comparing keys, not by radix.
const RADIX_MIN: usize = 512;

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
    let mut data = c_order(v).into_owned();
    let Some(axis) = axis else {
        sort_lane(&mut data, &mut Scratch::default());
        return into_array(vec![data.len()], data);
    };
    let shape = v.shape().to_vec();
    let n = shape[axis];
    if data.is_empty() || n < 2 {
        return into_array(shape, data);
    }
    let parallel = data.len() >= GRAIN;
    if axis + 1 == shape.len() {
        if n >= RADIX_MIN * 8 || !parallel {
            // Long lanes sort themselves in parallel.
            let mut scratch = Scratch::default();
            for lane in data.chunks_mut(n) {
                sort_lane(lane, &mut scratch);
            }
        } else {
            data.par_chunks_mut(n)
                .for_each_init(Scratch::default, |s, lane| sort_lane(lane, s));
        }
        return into_array(shape, data);
    }
    let mut a = ArrayD::from_shape_vec(IxDyn(&shape), data).expect("the buffer holds the shape");
    let strided = |s: &mut Scratch<T>, mut lane: ndarray::ArrayViewMut1<'_, T>| {
        s.values.clear();
        s.values.extend(lane.iter().copied());
        let mut values = std::mem::take(&mut s.values);
        sort_lane(&mut values, s);
        lane.iter_mut().zip(&values).for_each(|(o, &v)| *o = v);
        s.values = values;
    };
    if parallel {
        Zip::from(a.lanes_mut(Axis(axis)))
            .into_par_iter()
            .with_min_len((GRAIN / n).max(1))
            .for_each_init(Scratch::default, |s, (lane,)| strided(s, lane));
    } else {
        let mut s = Scratch::default();
        for lane in a.lanes_mut(Axis(axis)) {
            strided(&mut s, lane);
        }
    }
    Ok(AnyArray::from(a))
}

/// Buffers reused across the lanes one thread sorts.
struct Scratch<T: SortKey> {
    keys: Vec<T::Key>,
    radix: Vec<T::Key>,
    values: Vec<T>,
}

impl<T: SortKey> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            keys: Vec::new(),
            radix: Vec::new(),
            values: Vec::new(),
        }
    }
}

/// Sorts one contiguous lane in place.
fn sort_lane<T: SortKey>(lane: &mut [T], s: &mut Scratch<T>) {
    if lane.len() < 2 {
        return;
    }
    let big = lane.len() >= GRAIN;
    s.keys.clear();
    if big {
        lane.par_iter()
            .map(|&v| v.key())
            .collect_into_vec(&mut s.keys);
    } else {
        s.keys.extend(lane.iter().map(|&v| v.key()));
    }
    if lane.len() < RADIX_MIN {
        s.keys.sort_unstable();
    } else {
        radix::sort(&mut s.keys, &mut s.radix);
    }
    if big {
        lane.par_iter_mut()
            .zip(&s.keys)
            .for_each(|(v, &k)| *v = T::from_key(k));
    } else {
        lane.iter_mut()
            .zip(&s.keys)
            .for_each(|(v, &k)| *v = T::from_key(k));
    }
}
