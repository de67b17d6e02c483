//! LSD radix sort of unsigned keys, serial or parallel.
//!
//! Sorting keys gives one possible output only (equal keys are equal bits),
//! so the result cannot depend on how the work is split among threads.

use rayon::prelude::*;

/// Bits per digit: 8 passes for `u64` keys, 4 for `u32`, minus the passes
/// whose digit is the same for every key.
const DIGIT_BITS: u32 = 8;
const RADIX: usize = 1 << DIGIT_BITS;
const MASK: u64 = RADIX as u64 - 1;

/// Keys at least this long are sorted by several threads.
const PAR_MIN: usize = 1 << 16;

/// An unsigned key sorted by its bits.
pub(super) trait RadixKey: Copy + Send + Sync + Ord + Default + 'static {
    /// The number of digits of [`DIGIT_BITS`] bits.
    const DIGITS: usize;
    /// Digit `d` (0 is the least significant).
    fn digit(self, d: usize) -> usize;
}

impl RadixKey for u32 {
    const DIGITS: usize = 4;
    #[inline(always)]
    fn digit(self, d: usize) -> usize {
        ((self as u64 >> (d as u32 * DIGIT_BITS)) & MASK) as usize
    }
}

impl RadixKey for u64 {
    const DIGITS: usize = 8;
    #[inline(always)]
    fn digit(self, d: usize) -> usize {
        ((self >> (d as u32 * DIGIT_BITS)) & MASK) as usize
    }
}

type Histogram = [usize; RADIX];

/// Sorts `keys` ascending; `scratch` is resized to hold as many keys.
pub(super) fn sort<K: RadixKey>(keys: &mut [K], scratch: &mut Vec<K>) {
    let n = keys.len();
    scratch.clear();
    scratch.resize(n, K::default());
    let chunks = if n >= PAR_MIN {
        rayon::current_num_threads().clamp(1, n / (PAR_MIN / 4))
    } else {
        1
    };
    let chunk_len = n.div_ceil(chunks);
    let totals = histograms::<K>(keys, chunk_len);
    let mut in_keys = true;
    for (d, total) in totals.iter().enumerate() {
        if total.contains(&n) {
            continue;
        }
        let (src, dst): (&[K], &mut [K]) = if in_keys {
            (keys, scratch)
        } else {
            (scratch, keys)
        };
        if chunks == 1 {
            scatter_serial(src, dst, d, total);
        } else {
            scatter_par(src, dst, d, chunk_len);
        }
        in_keys = !in_keys;
    }
    if !in_keys {
        keys.copy_from_slice(scratch);
    }
}

/// The histogram of every digit over all keys (the same after every pass).
fn histograms<K: RadixKey>(keys: &[K], chunk_len: usize) -> Vec<Histogram> {
    let count = |chunk: &[K]| {
        let mut h = vec![[0usize; RADIX]; K::DIGITS];
        for &k in chunk {
            for (d, h) in h.iter_mut().enumerate() {
                h[k.digit(d)] += 1;
            }
        }
        h
    };
    let add = |mut a: Vec<Histogram>, b: Vec<Histogram>| {
        for (a, b) in a.iter_mut().zip(&b) {
            for (a, b) in a.iter_mut().zip(b) {
                *a += b;
            }
        }
        a
    };
    if chunk_len >= keys.len() {
        count(keys)
    } else {
        keys.par_chunks(chunk_len)
            .map(count)
            .reduce(|| vec![[0; RADIX]; K::DIGITS], add)
    }
}

fn scatter_serial<K: RadixKey>(src: &[K], dst: &mut [K], d: usize, hist: &Histogram) {
    let mut next = [0usize; RADIX];
    let mut sum = 0;
    for (n, &h) in next.iter_mut().zip(hist) {
        *n = sum;
        sum += h;
    }
    for &k in src {
        let b = k.digit(d);
        dst[next[b]] = k;
        next[b] += 1;
    }
}

/// One pass on several threads: chunk `c` of `src` writes the keys of digit
/// `b` to its own region of `dst`, after those of digit `b` from chunks
/// before it (so the pass is stable, as LSD needs).
fn scatter_par<K: RadixKey>(src: &[K], dst: &mut [K], d: usize, chunk_len: usize) {
    let hists: Vec<Histogram> = src
        .par_chunks(chunk_len)
        .map(|chunk| {
            let mut h = [0usize; RADIX];
            for &k in chunk {
                h[k.digit(d)] += 1;
            }
            h
        })
        .collect();
    // Cut `dst` into the regions in their order: digit-major, chunk-minor.
    let mut regions: Vec<Vec<&mut [K]>> = hists.iter().map(|_| Vec::with_capacity(RADIX)).collect();
    let mut rest = dst;
    for b in 0..RADIX {
        for (c, h) in hists.iter().enumerate() {
            let (region, tail) = std::mem::take(&mut rest).split_at_mut(h[b]);
            regions[c].push(region);
            rest = tail;
        }
    }
    src.par_chunks(chunk_len)
        .zip(regions)
        .for_each(|(chunk, mut regions)| {
            let mut next = [0usize; RADIX];
            for &k in chunk {
                let b = k.digit(d);
                regions[b][next[b]] = k;
                next[b] += 1;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed
    }

    #[test]
    fn sorts_like_std_serial_and_parallel() {
        let mut seed = 7;
        for n in [0, 1, 2, 100, 5000, PAR_MIN, 3 * PAR_MIN + 17] {
            let keys: Vec<u64> = (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        5
                    } else {
                        lcg(&mut seed) >> (i % 40)
                    }
                })
                .collect();
            let mut expect = keys.clone();
            expect.sort();
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut got = keys.clone();
                pool.install(|| sort(&mut got, &mut Vec::new()));
                assert_eq!(got, expect, "n = {n}, threads = {threads}");
            }
            let mut small: Vec<u32> = keys.iter().map(|&k| (k >> 20) as u32).collect();
            let mut expect: Vec<u32> = small.clone();
            expect.sort();
            sort(&mut small, &mut Vec::new());
            assert_eq!(small, expect);
        }
    }
}
