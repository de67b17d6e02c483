//! Radix sort of unsigned keys: one most-significant-digit pass over the
//! whole array, then least-significant-digit passes inside each bucket,
//! while it is in cache.
//!
//! Sorting memory-bound: a plain LSD sort of `u64` keys reads and scatters
//! the whole array eight times. Here the first pass splits the keys by the
//! [`MSD_BITS`] highest bits in which they differ (the bits above are
//! common to all, found from the minimum and the maximum key), so that
//! buckets fit in cache; each bucket is then sorted on its own, on any
//! thread, by LSD passes over its remaining bits (skipping the digits all
//! its keys share), or by comparisons when it is tiny. Buckets still too
//! large (skewed data) are split again the same way.
//!
//! Sorting keys has one possible result (equal keys are equal bits), so it
//! cannot depend on how the work is split among threads.

use rayon::prelude::*;

/// Bits of the digit of the MSD pass.
const MSD_BITS: u32 = 11;

/// Bits of the digits of the LSD passes.
const LSD_BITS: u32 = 8;
const LSD_RADIX: usize = 1 << LSD_BITS;

/// Slices shorter than this are sorted by comparisons.
const SMALL: usize = 256;

/// Slices at most this long are sorted by LSD passes (they fit in cache).
const CACHE: usize = 1 << 15;

/// Passes over at least this many keys run on several threads.
const PAR_MIN: usize = 1 << 16;

/// An unsigned key sorted by its bits.
pub(super) trait RadixKey: bytemuck::Pod + Send + Sync + Ord + Default {
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

/// The smallest and the largest key (`None` for no keys).
pub(super) fn min_max<K: RadixKey>(keys: &[K]) -> Option<(K, K)> {
    let serial = |c: &[K]| {
        let first = *c.first()?;
        Some(
            c.iter()
                .fold((first, first), |(lo, hi), &k| (lo.min(k), hi.max(k))),
        )
    };
    if keys.len() >= PAR_MIN {
        keys.par_chunks(PAR_MIN / 4)
            .filter_map(serial)
            .reduce_with(|(a, b), (c, d)| (a.min(c), b.max(d)))
    } else {
        serial(keys)
    }
}

/// Sorts `keys` ascending, given their minimum `lo` and maximum `hi`.
pub(super) fn sort<K: RadixKey>(keys: &mut [K], lo: K, hi: K) {
    let n = keys.len();
    if n < SMALL {
        keys.sort_unstable();
        return;
    }
    if lo == hi {
        return;
    }
    let top = K::BITS - lo.common_prefix(hi);
    let mut scratch = vec![K::default(); n];
    if n <= CACHE {
        if lsd(keys, &mut scratch, top) {
            keys.copy_from_slice(&scratch);
        }
    } else {
        msd(keys, &mut scratch, top);
    }
}

/// Sorts `src`, whose keys differ only in their `top` low bits, using
/// `dst` (as long) as scratch: scatters `src` into `dst` by the highest
/// [`MSD_BITS`] of those, then sorts every bucket back into `src`.
fn msd<K: RadixKey>(src: &mut [K], dst: &mut [K], top: u32) {
    let shift = top.saturating_sub(MSD_BITS);
    let width = top - shift;
    let counts = if src.len() >= PAR_MIN {
        scatter_par(src, dst, shift, width)
    } else {
        scatter(src, dst, shift, width)
    };
    let mut buckets = Vec::with_capacity(counts.len());
    let (mut from, mut to) = (dst, src);
    for &c in &counts {
        let (f, f_rest) = std::mem::take(&mut from).split_at_mut(c);
        let (t, t_rest) = std::mem::take(&mut to).split_at_mut(c);
        if c > 0 {
            buckets.push((f, t));
        }
        from = f_rest;
        to = t_rest;
    }
    // The keys of a bucket share every bit from `shift` up.
    let sort_bucket = |(from, to): (&mut [K], &mut [K])| sort_into(from, to, shift);
    if counts.len() > 1 && buckets.iter().map(|b| b.0.len()).sum::<usize>() >= PAR_MIN {
        buckets.into_par_iter().for_each(sort_bucket);
    } else {
        buckets.into_iter().for_each(sort_bucket);
    }
}

/// Sorts the keys of `src`, which differ only in their `top` low bits,
/// into `dst` (`src` is clobbered).
fn sort_into<K: RadixKey>(src: &mut [K], dst: &mut [K], top: u32) {
    let n = src.len();
    if n < SMALL || top == 0 {
        dst.copy_from_slice(src);
        dst.sort_unstable();
    } else if n <= CACHE {
        if !lsd(src, dst, top) {
            dst.copy_from_slice(src);
        }
    } else {
        // A big bucket (skewed data): split it again below its own prefix.
        let (lo, hi) = min_max(src).expect("the bucket is not empty");
        if lo != hi {
            msd(src, dst, K::BITS - lo.common_prefix(hi));
        }
        dst.copy_from_slice(src);
    }
}

/// Histogram of digit `[shift, shift + width)` and a serial stable scatter
/// of `src` into `dst` by it; returns the bucket sizes.
fn scatter<K: RadixKey>(src: &[K], dst: &mut [K], shift: u32, width: u32) -> Vec<usize> {
    let mut counts = vec![0usize; 1 << width];
    for &k in src {
        counts[k.digit(shift, width)] += 1;
    }
    let mut next = offsets(&counts);
    for &k in src {
        let b = k.digit(shift, width);
        dst[next[b]] = k;
        next[b] += 1;
    }
    counts
}

fn offsets(counts: &[usize]) -> Vec<usize> {
    let mut sum = 0;
    counts
        .iter()
        .map(|&c| {
            let start = sum;
            sum += c;
            start
        })
        .collect()
}

/// [`scatter`] on several threads: chunk `c` of `src` writes the keys of
/// bucket `b` to its own region of `dst`, after those of chunks before it.
fn scatter_par<K: RadixKey>(src: &[K], dst: &mut [K], shift: u32, width: u32) -> Vec<usize> {
    let buckets = 1 << width;
    let chunk_len = src.len().div_ceil(rayon::current_num_threads().max(1));
    let chunk_len = chunk_len.max(PAR_MIN / 4);
    let hists: Vec<Vec<usize>> = src
        .par_chunks(chunk_len)
        .map(|chunk| {
            let mut h = vec![0usize; buckets];
            for &k in chunk {
                h[k.digit(shift, width)] += 1;
            }
            h
        })
        .collect();
    let mut regions: Vec<Vec<&mut [K]>> =
        hists.iter().map(|_| Vec::with_capacity(buckets)).collect();
    let mut counts = vec![0usize; buckets];
    let mut rest = dst;
    for (b, count) in counts.iter_mut().enumerate() {
        for (c, h) in hists.iter().enumerate() {
            let (region, tail) = std::mem::take(&mut rest).split_at_mut(h[b]);
            regions[c].push(region);
            rest = tail;
            *count += h[b];
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
    counts
}

/// LSD radix sort of `a` on its `top` low bits, with `b` as scratch;
/// returns whether the sorted keys ended in `b`.
fn lsd<K: RadixKey>(a: &mut [K], b: &mut [K], top: u32) -> bool {
    let digits = top.div_ceil(LSD_BITS) as usize;
    let mut hist = vec![[0usize; LSD_RADIX]; digits];
    for &k in a.iter() {
        for (d, h) in hist.iter_mut().enumerate() {
            h[k.digit(d as u32 * LSD_BITS, LSD_BITS)] += 1;
        }
    }
    let n = a.len();
    let mut in_b = false;
    for (d, h) in hist.iter().enumerate() {
        if h.contains(&n) {
            continue;
        }
        let (src, dst): (&[K], &mut [K]) = if in_b { (b, a) } else { (a, b) };
        let shift = d as u32 * LSD_BITS;
        let mut next = [0usize; LSD_RADIX];
        let mut sum = 0;
        for (n, &c) in next.iter_mut().zip(h) {
            *n = sum;
            sum += c;
        }
        for &k in src {
            let digit = k.digit(shift, LSD_BITS);
            dst[next[digit]] = k;
            next[digit] += 1;
        }
        in_b = !in_b;
    }
    in_b
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

    fn check<K: RadixKey + std::fmt::Debug>(keys: Vec<K>) {
        let mut expect = keys.clone();
        expect.sort();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut got = keys.clone();
            pool.install(|| {
                if let Some((lo, hi)) = min_max(&got) {
                    sort(&mut got, lo, hi);
                }
            });
            assert!(got == expect, "n = {}, threads = {threads}", keys.len());
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
            CACHE + 1,
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
