//! MSD radix sort of unsigned keys, serial or parallel.
//!
//! Sorting is memory-bound: an LSD sort of `u64` keys reads and scatters
//! the whole array up to eight times. Here a pass splits the keys by the
//! highest bits in which they differ (the bits above are common to all,
//! found from the minimum and the maximum key, or the AND and the OR of all
//! keys, or shared by every key of a bucket), and each bucket is split
//! again the same way, on any thread. A split takes a digit of about
//! log2(n) bits (at most 11 over memory, 13 in cache), so buckets average
//! some 2 keys: when none has more than [`FINE`], one insertion sort of the
//! whole slice ends it
//! (keys move only within their buckets); larger buckets are split again,
//! or sorted by comparisons below [`SMALL`] keys. A digit every key shares
//! is skipped without moving anything. Uniform `f64` in [0, 1) take two
//! scatters: one over memory, one in cache per bucket of a few thousand.
//! Each finished piece is handed to a `finish` function while it is still
//! in cache (the sort maps keys back to values there, rather than in one
//! more pass over memory).
//!
//! The two buffers alternate between levels: [`sort_in_place`] scatters
//! into the scratch buffer and has each bucket sorted back by
//! [`sort_to`], which scatters into the original buffer and has each
//! bucket sorted in place, and so on; only the leaves copy.
//!
//! Sorting keys has one possible result (equal keys are equal bits), so it
//! cannot depend on how the work is split among threads.

use rayon::prelude::*;

/// The widest digit of a split over memory (2048 buckets).
const WIDE_BITS: u32 = 11;
/// The widest digit of a split in cache (8192 buckets).
const CACHED_BITS: u32 = 13;
/// Slices of at most this many keys (256 KiB of `u64`) are split in cache.
const CACHED: usize = 1 << 15;

/// Slices shorter than this are sorted by comparisons.
pub(super) const SMALL: usize = 64;

/// After a split into buckets of at most this many keys, one insertion
/// sort of the whole slice finishes it (each key moves within its bucket).
const FINE: usize = 32;

/// Passes over at least this many keys run on several threads.
const PAR_MIN: usize = 1 << 16;

/// An unsigned key sorted by its bits.
pub(super) trait RadixKey:
    bytemuck::Pod
    + Send
    + Sync
    + Ord
    + Default
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::Not<Output = Self>
{
    /// The number of bits.
    const BITS: u32;
    /// Bits `[shift, shift + width)` as an index.
    fn digit(self, shift: u32, width: u32) -> usize;
    /// The number of leading bits `self` and `other` share.
    fn common_prefix(self, other: Self) -> u32;
}

macro_rules! impl_radix_key {
    ($t:ty) => {
        impl RadixKey for $t {
            const BITS: u32 = <$t>::BITS;
            #[inline(always)]
            fn digit(self, shift: u32, width: u32) -> usize {
                ((self >> shift) & ((1 << width) - 1)) as usize
            }
            #[inline(always)]
            fn common_prefix(self, other: Self) -> u32 {
                (self ^ other).leading_zeros()
            }
        }
    };
}

impl_radix_key!(u32);
impl_radix_key!(u64);

/// Sorts `keys` ascending, then runs `finish` once on every key, a piece
/// at a time while the piece is in cache (to map keys back to values).
///
/// `lo` and `hi` are two keys whose common leading bits are those of all
/// keys: the minimum and the maximum, or the AND and the OR of all keys.
pub(super) fn sort<K: RadixKey, F: Fn(&mut [K]) + Sync>(keys: &mut [K], lo: K, hi: K, finish: &F) {
    if keys.len() < SMALL {
        keys.sort_unstable();
        finish(keys);
    } else if lo == hi {
        keys.par_chunks_mut(PAR_MIN).for_each(finish);
    } else {
        with_scratch(keys.len(), |scratch: &mut [K]| {
            sort_in_place(keys, scratch, K::BITS - lo.common_prefix(hi), finish);
        });
    }
}
/// The most scratch memory a thread keeps between sorts (16 MiB: the
/// scratch of a sort of 2 million f64).
const SCRATCH_KEEP: usize = 16 << 20;

thread_local! {
    /// A thread's scratch buffer, reused by its next sort.
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `n` keys of scratch space (of unspecified contents: the
/// sort writes each key before reading it).
///
/// A fresh buffer costs a page fault per 4 KiB page on first touch, about
/// as much as the sort itself on this machine (3900 faults, 10 ms, per
/// sort of 1e6 f64): the thread's last buffer is reused when big enough.
fn with_scratch<K: RadixKey, R>(n: usize, f: impl FnOnce(&mut [K]) -> R) -> R {
    let words = (n * std::mem::size_of::<K>()).div_ceil(8);
    // Taken out while in use: a nested sort on this thread gets its own.
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if buf.len() < words {
        buf = vec![0u64; words];
    }
    let r = f(&mut bytemuck::cast_slice_mut::<u64, K>(&mut buf[..words])[..n]);
    if buf.len() * 8 <= SCRATCH_KEEP {
        SCRATCH.with(|s| *s.borrow_mut() = buf);
    }
    r
}

/// The digit below bit `top` to split `n` keys by: `(shift, width)`.
///
/// A slice that fits in cache is split into buckets of about 2 keys (most
/// then [`FINE`], and the insertion sort that ends them rarely moves a key:
/// with 4 keys per bucket its mispredicted branches took 40% of a sort of
/// 1e6 `f64`); a larger one into at most 2^[`WIDE_BITS`] buckets, as a
/// scatter over memory to more destinations is slower.
fn digit_for(n: usize, top: u32) -> (u32, u32) {
    let max = if n > CACHED { WIDE_BITS } else { CACHED_BITS };
    let width = n.ilog2().clamp(1, max).min(top);
    (top - width, width)
}

/// Sorts `data`, whose keys differ only in their `top` low bits, using
/// `scratch` (as long); then `finish`es it.
fn sort_in_place<K: RadixKey, F: Fn(&mut [K]) + Sync>(
    data: &mut [K],
    scratch: &mut [K],
    mut top: u32,
    finish: &F,
) {
    while data.len() >= SMALL && top > 0 {
        let (shift, width) = digit_for(data.len(), top);
        if let Some(counts) = split(data, scratch, shift, width) {
            if counts.iter().all(|&c| c <= FINE) {
                insertion_sort_to(scratch, data);
                finish(data);
            } else {
                for_buckets(scratch, data, &counts, |from, to| {
                    sort_to(from, to, shift, finish)
                });
            }
            return;
        }
        top = shift;
    }
    data.sort_unstable();
    finish(data);
}

/// Sorts the keys of `src`, which differ only in their `top` low bits,
/// into `dst` (`src` is clobbered); then `finish`es `dst`.
fn sort_to<K: RadixKey, F: Fn(&mut [K]) + Sync>(
    src: &mut [K],
    dst: &mut [K],
    mut top: u32,
    finish: &F,
) {
    while src.len() >= SMALL && top > 0 {
        let (shift, width) = digit_for(src.len(), top);
        if let Some(counts) = split(src, dst, shift, width) {
            if counts.iter().all(|&c| c <= FINE) {
                insertion_sort(dst);
                finish(dst);
            } else {
                for_buckets(dst, src, &counts, |data, scratch| {
                    sort_in_place(data, scratch, shift, finish)
                });
            }
            return;
        }
        top = shift;
    }
    dst.copy_from_slice(src);
    dst.sort_unstable();
    finish(dst);
}

/// Sorts `v`, whose keys are at most [`FINE`] places from their sorted
/// places, by insertion.
fn insertion_sort<K: RadixKey>(v: &mut [K]) {
    for i in 1..v.len() {
        let k = v[i];
        let mut j = i;
        while j > 0 && v[j - 1] > k {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = k;
    }
}

/// [`insertion_sort`] of `src`'s keys into `dst`, in the same pass as the copy.
fn insertion_sort_to<K: RadixKey>(src: &[K], dst: &mut [K]) {
    for (i, &k) in src.iter().enumerate() {
        let mut j = i;
        while j > 0 && dst[j - 1] > k {
            dst[j] = dst[j - 1];
            j -= 1;
        }
        dst[j] = k;
    }
}

/// Runs `f` on the pairs of bucket slices of `a` and `b` (bucket sizes
/// `counts`), on several threads when there are many keys.
fn for_buckets<K: RadixKey>(
    a: &mut [K],
    b: &mut [K],
    counts: &[usize],
    f: impl Fn(&mut [K], &mut [K]) + Sync,
) {
    let parallel = a.len() >= PAR_MIN;
    let mut pairs = Vec::new();
    let (mut a, mut b) = (a, b);
    for &c in counts {
        let (x, a_rest) = std::mem::take(&mut a).split_at_mut(c);
        let (y, b_rest) = std::mem::take(&mut b).split_at_mut(c);
        (a, b) = (a_rest, b_rest);
        match c {
            0 => {}
            _ if parallel => pairs.push((x, y)),
            _ => f(x, y),
        }
    }
    pairs.into_par_iter().for_each(|(x, y)| f(x, y));
}

/// How many keys have each value of digit `[shift, shift + width)`.
fn histogram<K: RadixKey>(keys: &[K], shift: u32, width: u32) -> Vec<usize> {
    let mut h = vec![0usize; 1 << width];
    for &k in keys {
        h[k.digit(shift, width)] += 1;
    }
    h
}

/// Moves `src` into `dst` grouped (stably) by digit `[shift, shift +
/// width)` and returns the bucket sizes; or moves nothing and returns
/// `None` if every key has the same digit.
fn split<K: RadixKey>(src: &[K], dst: &mut [K], shift: u32, width: u32) -> Option<Vec<usize>> {
    if src.len() >= PAR_MIN {
        return split_par(src, dst, shift, width);
    }
    let counts = histogram(src, shift, width);
    if counts.contains(&src.len()) {
        return None;
    }
    let mut next = Vec::with_capacity(counts.len());
    let mut sum = 0;
    for &c in &counts {
        next.push(sum);
        sum += c;
    }
    for &k in src {
        let b = k.digit(shift, width);
        dst[next[b]] = k;
        next[b] += 1;
    }
    Some(counts)
}

/// [`split`] on several threads: chunk `c` of `src` writes the keys of
/// bucket `b` to its own region of `dst`, after those of chunks before it.
fn split_par<K: RadixKey>(src: &[K], dst: &mut [K], shift: u32, width: u32) -> Option<Vec<usize>> {
    let buckets = 1 << width;
    let chunk_len = src
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(PAR_MIN / 4);
    let hists: Vec<Vec<usize>> = src
        .par_chunks(chunk_len)
        .map(|chunk| histogram(chunk, shift, width))
        .collect();
    let counts: Vec<usize> = (0..buckets)
        .map(|b| hists.iter().map(|h| h[b]).sum())
        .collect();
    if counts.contains(&src.len()) {
        return None;
    }
    let mut regions: Vec<Vec<&mut [K]>> =
        hists.iter().map(|_| Vec::with_capacity(buckets)).collect();
    let mut rest = dst;
    for b in 0..buckets {
        for (c, h) in hists.iter().enumerate() {
            let (region, tail) = std::mem::take(&mut rest).split_at_mut(h[b]);
            regions[c].push(region);
            rest = tail;
        }
    }
    src.par_chunks(chunk_len)
        .zip(regions)
        .for_each(|(chunk, mut regions)| {
            let mut next = vec![0usize; buckets];
            for &k in chunk {
                let b = k.digit(shift, width);
                regions[b][next[b]] = k;
                next[b] += 1;
            }
        });
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed ^ (*seed >> 31)
    }

    /// The smallest and the largest key.
    fn min_max<K: RadixKey>(keys: &[K]) -> Option<(K, K)> {
        Some((*keys.iter().min()?, *keys.iter().max()?))
    }

    fn check<K: RadixKey + std::fmt::Debug>(keys: Vec<K>) {
        let mut expect = keys.clone();
        expect.sort();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut got = keys.clone();
            // `finish` must see every key once, sorted: flip them all.
            let seen = std::sync::atomic::AtomicUsize::new(0);
            let flip = |c: &mut [K]| {
                seen.fetch_add(c.len(), std::sync::atomic::Ordering::Relaxed);
                c.iter_mut().for_each(|k| *k = !*k);
            };
            pool.install(|| {
                if let Some((lo, hi)) = min_max(&got) {
                    sort(&mut got, lo, hi, &flip);
                }
            });
            got.iter_mut().for_each(|k| *k = !*k);
            assert!(got == expect, "n = {}, threads = {threads}", keys.len());
            assert_eq!(seen.into_inner(), keys.len());
        }
    }

    #[test]
    fn sorts_like_std_serial_and_parallel() {
        let mut seed = 7;
        for n in [
            0,
            1,
            2,
            100,
            SMALL,
            5000,
            (1 << 14) + 1,
            PAR_MIN,
            3 * PAR_MIN + 17,
        ] {
            // Uniform, few distinct, narrow (long common prefix), skewed.
            let uniform: Vec<u64> = (0..n).map(|_| lcg(&mut seed)).collect();
            check(uniform.clone());
            check((0..n).map(|_| lcg(&mut seed) % 3).collect::<Vec<u64>>());
            check(
                uniform
                    .iter()
                    .map(|k| (1 << 60) + (k >> 40))
                    .collect::<Vec<_>>(),
            );
            let skewed: Vec<u64> = uniform
                .iter()
                .map(|&k| if k % 8 != 0 { 5 << 50 | (k >> 50) } else { k })
                .collect();
            check(skewed);
            check(
                uniform
                    .iter()
                    .map(|&k| (k >> 20) as u32)
                    .collect::<Vec<u32>>(),
            );
            check(
                uniform
                    .iter()
                    .map(|&k| (k % 1000) as u32)
                    .collect::<Vec<u32>>(),
            );
        }
    }
}
