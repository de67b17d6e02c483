//! numpy's pairwise summation, made parallel without changing a bit.
//!
//! numpy sums a contiguous lane recursively: fewer than 8 values are added
//! in order; up to [`BLOCK`] values are added with 8 interleaved
//! accumulators, combined as `((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 +
//! r7))`, then the leftover values in order; a longer lane is split at half
//! its length rounded down to a multiple of 8, and the two halves' sums are
//! added. A reduction adds that to its identity `0.0` (so `-0.0` sums to
//! `0.0`). The error grows as O(log n) instead of O(n).
//!
//! The recursion tree depends only on the length, so its two halves can run
//! on two threads and the result is the same bits as numpy's serial code
//! (and as ours on one thread). [`sum_rows`] applies the very same tree to
//! every column of a block of rows, so a lane gives the same bits whether
//! it is contiguous or strided in memory.

use super::float::Float;
use super::geometry::TILE;
use crate::kernel::elementwise::{vector_level, Level};

/// The largest lane summed without splitting (numpy's `PW_BLOCKSIZE`).
pub(super) const BLOCK: usize = 128;

/// Lanes at least this long sum their two halves in parallel.
pub(super) const PAR_MIN: usize = 1 << 15;

/// Where numpy splits a lane of `n > BLOCK` values.
#[inline]
pub(super) fn split(n: usize) -> usize {
    let half = n / 2;
    half - half % 8
}

/// The sum of `map(v)` over a lane, as numpy's `add.reduce` computes it.
pub(super) fn sum<T, F>(x: &[T], map: &(impl Fn(T) -> F + Sync)) -> F
where
    T: Copy + Sync,
    F: Float,
{
    F::ZERO + pairwise(x, map)
}

/// numpy's pairwise tree over `x` without the final `0.0 +`: the sum of a
/// piece of a longer lane (see [`sum`]).
///
/// Pieces below [`PAR_MIN`] are summed by a loop compiled for the CPU's
/// vector level ([`Level`]), chosen once here so that every piece uses the
/// same one (the bits are the same at every level: the same additions in
/// the same order, eight accumulators wide).
pub(super) fn pairwise<T, F>(x: &[T], map: &(impl Fn(T) -> F + Sync)) -> F
where
    T: Copy + Sync,
    F: Float,
{
    pairwise_at(vector_level(), x, map)
}

pub(super) fn pairwise_at<T, F>(level: Level, x: &[T], map: &(impl Fn(T) -> F + Sync)) -> F
where
    T: Copy + Sync,
    F: Float,
{
    let n = x.len();
    if n < PAR_MIN {
        return serial(level, x, map);
    }
    let (a, b) = x.split_at(split(n));
    let (l, r) = rayon::join(|| pairwise_at(level, a, map), || pairwise_at(level, b, map));
    l + r
}

/// Declares the serial pairwise recursion once per feature level (a
/// recursive function cannot be inlined into a `#[target_feature]`
/// wrapper, so each level's copy calls itself).
macro_rules! serial_pairwise {
    ($($(#[$attr:meta])* $name:ident;)*) => {$(
        $(#[$attr])*
        fn $name<T: Copy, F: Float>(x: &[T], map: &impl Fn(T) -> F) -> F {
            let n = x.len();
            if n < 8 {
                x.iter().fold(F::ZERO, |acc, &v| acc + map(v))
            } else if n <= BLOCK {
                leaf(x, map)
            } else {
                let (a, b) = x.split_at(split(n));
                $name(a, map) + $name(b, map)
            }
        }
    )*};
}

serial_pairwise! {
    serial_base;
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt")]
    serial_v3;
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt")]
    serial_v4;
}

/// numpy's pairwise tree over `x` on this thread, at `level`.
#[allow(unsafe_code)]
fn serial<T: Copy, F: Float>(level: Level, x: &[T], map: &impl Fn(T) -> F) -> F {
    match level.min(vector_level()) {
        // SAFETY: `vector_level()` returns V4 or V3 only after
        // `is_x86_feature_detected!` confirmed every feature these
        // functions are compiled with.
        #[cfg(target_arch = "x86_64")]
        Level::V4 => unsafe { serial_v4(x, map) },
        #[cfg(target_arch = "x86_64")]
        Level::V3 => unsafe { serial_v3(x, map) },
        _ => serial_base(x, map),
    }
}

#[inline(always)]
fn leaf<T, F>(x: &[T], map: &impl Fn(T) -> F) -> F
where
    T: Copy,
    F: Float,
{
    let full = x.len() - x.len() % 8;
    let mut r: [F; 8] = std::array::from_fn(|k| map(x[k]));
    for chunk in x[8..full].chunks_exact(8) {
        for k in 0..8 {
            r[k] = r[k] + map(chunk[k]);
        }
    }
    let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for &v in &x[full..] {
        res = res + map(v);
    }
    res
}

/// Sums lanes `c0 .. c0 + out.len()` of `block` (rows of `inner` values)
/// into `out`, each exactly as [`sum`] would sum it if it were contiguous.
///
/// `map(c, v)` receives the column relative to `c0`. `out.len()` is at most
/// [`TILE`].
pub(super) fn sum_rows<T, F>(
    block: &[T],
    inner: usize,
    c0: usize,
    out: &mut [F],
    map: &impl Fn(usize, T) -> F,
) where
    T: Copy,
    F: Float,
{
    let rows = Rows {
        block,
        inner,
        c0,
        w: out.len(),
    };
    rows_pairwise(&rows, 0, block.len() / inner, out, map);
    for o in out.iter_mut() {
        *o = F::ZERO + *o;
    }
}

struct Rows<'a, T> {
    block: &'a [T],
    inner: usize,
    c0: usize,
    w: usize,
}

impl<T> Rows<'_, T> {
    #[inline(always)]
    fn row(&self, r: usize) -> &[T] {
        &self.block[r * self.inner + self.c0..][..self.w]
    }
}

fn rows_pairwise<T, F>(
    rows: &Rows<'_, T>,
    r0: usize,
    m: usize,
    out: &mut [F],
    map: &impl Fn(usize, T) -> F,
) where
    T: Copy,
    F: Float,
{
    let w = rows.w;
    if m < 8 {
        out.fill(F::ZERO);
        for r in r0..r0 + m {
            add_row(out, rows.row(r), map);
        }
    } else if m <= BLOCK {
        let mut acc = [[F::ZERO; TILE]; 8];
        for (k, a) in acc.iter_mut().enumerate() {
            for (c, (a, &v)) in a[..w].iter_mut().zip(rows.row(r0 + k)).enumerate() {
                *a = map(c, v);
            }
        }
        let full = m - m % 8;
        for i in (8..full).step_by(8) {
            for (k, a) in acc.iter_mut().enumerate() {
                add_row(&mut a[..w], rows.row(r0 + i + k), map);
            }
        }
        for (c, o) in out.iter_mut().enumerate() {
            let r = |k: usize| acc[k][c];
            *o = ((r(0) + r(1)) + (r(2) + r(3))) + ((r(4) + r(5)) + (r(6) + r(7)));
        }
        for r in r0 + full..r0 + m {
            add_row(out, rows.row(r), map);
        }
    } else {
        let n2 = split(m);
        rows_pairwise(rows, r0, n2, out, map);
        let mut tmp = [F::ZERO; TILE];
        rows_pairwise(rows, r0 + n2, m - n2, &mut tmp[..w], map);
        for (o, &t) in out.iter_mut().zip(&tmp[..w]) {
            *o = *o + t;
        }
    }
}

#[inline(always)]
fn add_row<T: Copy, F: Float>(acc: &mut [F], row: &[T], map: &impl Fn(usize, T) -> F) {
    for (c, (a, &v)) in acc.iter_mut().zip(row).enumerate() {
        *a = *a + map(c, v);
    }
}
