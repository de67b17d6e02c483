//! The vector levels and the sort: `sum`, `max` and `min` compute the same
//! bits at every level the CPU has (portable, AVX2, AVX-512) and on 1 or 4
//! threads; `sort` matches a naive oracle (`sort_by(total_cmp)` with the
//! NaNs last, as numpy) on inputs of many shapes, on 1 and 4 threads.

use super::super::ops::extreme_at;
use super::super::pairwise::pairwise_at;
use super::{call, values};
use crate::element::Element;
use crate::kernel::elementwise::{vector_level, with_level_cap, Level};
use crate::kernel::Params;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// The levels this CPU can run.
fn levels() -> Vec<Level> {
    [Level::Base, Level::V3, Level::V4]
        .into_iter()
        .filter(|&l| l <= vector_level())
        .collect()
}

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *s ^ (*s >> 29)
}

/// Random `f64` of mixed magnitudes and signs; with `specials`, also NaNs
/// (several payloads), infinities and zeros of both signs.
fn floats(n: usize, seed: u64, specials: bool) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            let r = lcg(&mut s);
            let u = (r >> 11) as f64 / (1u64 << 53) as f64;
            match r % 97 {
                0 if specials => f64::from_bits(0x7ff8_0000_0000_0000 | (r >> 40)),
                1 if specials => f64::INFINITY,
                2 if specials => f64::NEG_INFINITY,
                3 if specials => -0.0,
                4 if specials => 0.0,
                _ => (u - 0.3) * [1e-3, 1.0, 1e3, 1e8][(r >> 60) as usize % 4],
            }
        })
        .collect()
}

/// The max (or min) by a plain fold with numpy's rules: any NaN gives NaN,
/// and `0.0` is above `-0.0`.
fn naive_extreme(x: &[f64], max: bool) -> f64 {
    if x.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let pick = |a: f64, v: f64| {
        let beyond = if max {
            v.total_cmp(&a).is_gt()
        } else {
            v.total_cmp(&a).is_lt()
        };
        if beyond {
            v
        } else {
            a
        }
    };
    x.iter().copied().reduce(pick).unwrap()
}

#[test]
fn sum_max_min_same_bits_on_every_level_and_thread_count() {
    for (n, specials) in [
        (7, false),
        (1000, true),
        (100_003, false),
        (1_000_003, true),
    ] {
        let x = floats(n, n as u64, specials);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        // The references: the portable loop on one thread. (A NaN sum's
        // payload depends on operand order, which vector instructions
        // change: the kernels return the canonical NaN, so do these.)
        let (c64, c32) = (
            |v: f64| if v.is_nan() { f64::NAN } else { v }.to_bits(),
            |v: f32| if v.is_nan() { f32::NAN } else { v }.to_bits(),
        );
        let base = pool(1).install(|| {
            (
                c64(pairwise_at(Level::Base, &x, &|v| v)),
                c32(pairwise_at(Level::Base, &x32, &|v| v)),
                extreme_at::<f64, true>(Level::Base, &x).to_bits(),
                extreme_at::<f64, false>(Level::Base, &x).to_bits(),
                extreme_at::<f32, true>(Level::Base, &x32).to_bits(),
                extreme_at::<i64, false>(Level::Base, &[3i64, -9, 4]),
            )
        });
        assert_eq!(base.2, naive_extreme(&x, true).to_bits(), "max of {n}");
        assert_eq!(base.3, naive_extreme(&x, false).to_bits(), "min of {n}");
        if !specials {
            // Near a naive sum (both are within n·ε·Σ|x| of the exact one).
            let naive: f64 = x.iter().sum();
            let bound = x.iter().map(|v| v.abs()).sum::<f64>() * 1e-9;
            assert!(
                (f64::from_bits(base.0) - naive).abs() <= bound,
                "sum of {n}"
            );
        }
        for level in levels() {
            for threads in [1, 4] {
                let got = pool(threads).install(|| {
                    (
                        c64(pairwise_at(level, &x, &|v| v)),
                        c32(pairwise_at(level, &x32, &|v| v)),
                        extreme_at::<f64, true>(level, &x).to_bits(),
                        extreme_at::<f64, false>(level, &x).to_bits(),
                        extreme_at::<f32, true>(level, &x32).to_bits(),
                        extreme_at::<i64, false>(level, &[3i64, -9, 4]),
                    )
                });
                assert_eq!(got, base, "n = {n}, {level:?}, {threads} threads");
                // And through the registry, the level capped on the thread
                // that reads it.
                let reg = pool(threads).install(|| {
                    with_level_cap(level, || {
                        let v = ndarray::ArrayView1::from(&x[..]).into_dyn();
                        let s = values::<f64>(&call("sum", v.clone(), Params::new()).unwrap());
                        let m = values::<f64>(&call("max", v, Params::new()).unwrap());
                        (s[0].to_bits(), m[0].to_bits())
                    })
                });
                let canonical = |b: u64| {
                    let v = f64::from_bits(b);
                    if v.is_nan() {
                        f64::NAN.to_bits()
                    } else {
                        (0.0 + v).to_bits()
                    }
                };
                assert_eq!(reg, (canonical(base.0), base.2), "registry, n = {n}");
            }
        }
    }
}

/// Which test types the sort oracle handles: the value's bits and whether
/// it is a NaN (sorted last, in bit order).
trait Sortable: Element + Copy {
    fn from_u64(r: u64) -> Self;
    fn total(a: &Self, b: &Self) -> std::cmp::Ordering;
    fn nan(&self) -> bool;
    fn bits(&self) -> u64;
}

macro_rules! sortable_int {
    ($($t:ty),*) => {$(
        impl Sortable for $t {
            fn from_u64(r: u64) -> Self { r as $t }
            fn total(a: &Self, b: &Self) -> std::cmp::Ordering { a.cmp(b) }
            fn nan(&self) -> bool { false }
            fn bits(&self) -> u64 { *self as u64 }
        }
    )*};
}
sortable_int!(i32, i64);

impl Sortable for f64 {
    fn from_u64(r: u64) -> Self {
        floats(1, r, true)[0]
    }
    fn total(a: &Self, b: &Self) -> std::cmp::Ordering {
        a.total_cmp(b)
    }
    fn nan(&self) -> bool {
        self.is_nan()
    }
    fn bits(&self) -> u64 {
        self.to_bits()
    }
}

impl Sortable for f32 {
    fn from_u64(r: u64) -> Self {
        floats(1, r, true)[0] as f32
    }
    fn total(a: &Self, b: &Self) -> std::cmp::Ordering {
        a.total_cmp(b)
    }
    fn nan(&self) -> bool {
        self.is_nan()
    }
    fn bits(&self) -> u64 {
        u64::from(self.to_bits())
    }
}

/// The oracle: non-NaN values by total order (`-0.0` before `0.0`), then
/// the NaNs, as numpy puts them (ordered by their bits, which is how this
/// crate makes a fixed permutation of them).
fn oracle<T: Sortable>(x: &[T]) -> Vec<u64> {
    let (mut nans, mut rest): (Vec<T>, Vec<T>) = x.iter().partition(|v| v.nan());
    rest.sort_by(T::total);
    let mut nan_bits: Vec<u64> = nans.drain(..).map(|v| v.bits()).collect();
    // The keys' order: NaNs with the sign bit clear by ascending bits, then
    // those with it set by descending bits.
    let sign = 1 << (8 * std::mem::size_of::<T>() - 1);
    nan_bits.sort_by_key(|&b| if b & sign == 0 { (0, b) } else { (1, !b) });
    rest.iter().map(|v| v.bits()).chain(nan_bits).collect()
}

fn check_sort<T: Sortable>(name: &str, x: Vec<T>) {
    let want = oracle(&x);
    for threads in [1, 4] {
        let v = ndarray::ArrayView1::from(&x[..]).into_dyn();
        let got = pool(threads).install(|| values::<T>(&call("sort", v, Params::new()).unwrap()));
        let got: Vec<u64> = got.iter().map(|v| v.bits()).collect();
        assert!(got == want, "{name}: {} values, {threads} threads", x.len());
    }
}

fn sort_all_shapes<T: Sortable>() {
    let mut s = 99;
    for n in [0, 1, 2, 63, 64, 65, 1000, 4097, 70_000, 300_001] {
        let random: Vec<T> = (0..n).map(|_| T::from_u64(lcg(&mut s))).collect();
        check_sort("random", random.clone());
        let mut sorted = random.clone();
        sorted.sort_by(T::total);
        check_sort("sorted", sorted.clone());
        sorted.reverse();
        check_sort("reversed", sorted);
        let equal = vec![T::from_u64(7); n];
        check_sort("all equal", equal);
        let few: Vec<T> = (0..n).map(|_| T::from_u64(lcg(&mut s) % 3)).collect();
        check_sort("three values", few);
        // Clustered: a narrow range of bits plus a few outliers.
        let clustered: Vec<T> = random
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 1000 == 0 { v } else { random[i % 17] })
            .collect();
        check_sort("clustered", clustered);
    }
}

#[test]
fn sort_matches_the_oracle() {
    sort_all_shapes::<f64>();
    sort_all_shapes::<f32>();
    sort_all_shapes::<i32>();
    sort_all_shapes::<i64>();
}

#[test]
fn sort_of_specials_only() {
    // NaN payloads of both signs, infinities, zeros, subnormals.
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001),
        f64::from_bits(0xfff8_0000_0000_0005),
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        1.0,
    ];
    let mut s = 5;
    let x: Vec<f64> = (0..200_000)
        .map(|_| specials[(lcg(&mut s) % specials.len() as u64) as usize])
        .collect();
    check_sort("specials", x.clone());
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    check_sort("specials f32", x32);
}
