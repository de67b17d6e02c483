//! Vectorizable `sin`, `cos` and `tan` for moderate arguments.
//!
//! numpy's float64 `sin` and `cos` call libm per element (8-12 ns each
//! here). For |x| ≤ [`LIMIT`] these are branch-free: `x = n·π/2 + r` with
//! |r| ≤ π/4, π/2 split in three doubles (about 161 bits; `x − n·P1` is
//! exact with a fused multiply-add), the rounding error of `r` carried
//! along, then polynomial kernels for sin and cos on [−π/4, π/4]
//! (coefficients fitted for this crate with mpmath, errors below 1e-17;
//! evaluated by Estrin's scheme) chosen by the quadrant `n mod 4`. Larger
//! arguments, infinities and NaN are left to libm by the loops' fix-up
//! pass ([`needs_libm`]). sin and cos are within 1 ulp of libm, tan (their
//! quotient) within 2: the tests below check 600 000 random points and
//! the doubles next to every multiple of π/2 up to `LIMIT` (and, run once
//! with larger counts for version 4, 30 million and 10 million points).

/// Arguments up to this magnitude are reduced here; beyond, libm's
/// Payne–Hanek reduction is needed (n would reach 2²⁰ near 1.6e6).
pub(super) const LIMIT: f64 = 524_288.0;

const SHIFT: f64 = 6_755_399_441_055_744.0;
const INV_PIO2: f64 = std::f64::consts::FRAC_2_PI;
/// π/2 as the sum of three doubles (the nearest, then the nearest to
/// each remainder): about 161 bits.
const PIO2_1: f64 = f64::from_bits(0x3ff9_21fb_5444_2d18);
const PIO2_2: f64 = f64::from_bits(0x3c91_a626_3314_5c07);
const PIO2_3: f64 = f64::from_bits(0xb91f_1976_b7ed_8fbc);
/// `(x − sin(x))/x³` as a polynomial in `z = x²`, z⁰ first (the fitted
/// coefficients of `(sin(x) − x)/x³`, negated: see [`sin_kernel`]).
const S_NEG: [f64; 6] = [
    0.166_666_666_666_666_66,
    -0.008_333_333_333_330_936,
    0.000_198_412_698_367_405_32,
    -2.755_731_609_319_840_4e-6,
    2.505_112_989_645_018_5e-8,
    -1.591_798_897_939_743_5e-10,
];
/// `(cos(x) − 1 + x²/2)/x⁴` as a polynomial in `z = x²`, z⁰ first.
const C: [f64; 6] = [
    0.041_666_666_666_666_664,
    -0.001_388_888_888_888_738_9,
    2.480_158_729_875_44e-5,
    -2.755_731_726_587_808e-7,
    2.087_614_504_941_318e-9,
    -1.138_254_464_534_925e-11,
];
/// Below this, sin(x) and tan(x) round to x. sin gets there on its own (see
/// [`sin_kernel`]); tan tests for it, as the quotient of the kernels can
/// round away from x.
const SIN_TINY: f64 = 1.490_116_119_384_765_6e-8; // 2⁻²⁶

/// Whether `x` must be computed by libm (too large, infinite or NaN).
#[inline(always)]
// The negated comparison is the point: one unordered compare instruction
// (true for NaN), where `> LIMIT || is_nan()` compiles to two and an OR.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub(super) fn needs_libm(x: f64) -> bool {
    !(x.abs() <= LIMIT)
}

/// `x = n·π/2 + r + y`: returns `n mod 4`, `r` and `−y` (|y| ≤ ulp(r)).
///
/// The correction comes negated so that sin's small terms are subtracted
/// from `r` (see [`sin_kernel`]): each is exactly the negation of what
/// `y` would give (rounding to nearest is symmetric), except for the sign
/// of a zero.
///
/// Written for a short dependency chain and few operations: the
/// polynomials start from `r`, four operations after `x`, while `y` (only
/// needed at the very end) is computed beside them. A tile of sin and cos
/// is latency-bound, so this order sets the speed.
#[inline(always)]
fn reduce(x: f64) -> (u64, f64, f64) {
    // Lanes beyond LIMIT (and NaN) compute garbage here, without traps or
    // undefined behaviour; the loops' fix-up pass recomputes them by libm.
    let t = x.mul_add(INV_PIO2, SHIFT);
    let n = t - SHIFT;
    // n mod 4, from the integer held in t's mantissa (2⁵¹ + n).
    let quadrant = t.to_bits() & 3;
    // Exact: x − n·PIO2_1 is a multiple of 2⁻⁵³ below 1 (n = 0 below 0.78;
    // above, x is a multiple of 2⁻⁵³ and n·PIO2_1 of 2⁻⁵²), and the
    // multiply-add rounds it once.
    let r1 = (-n).mul_add(PIO2_1, x);
    let r = (-n).mul_add(PIO2_2, r1);
    // y: r's rounding error and the rest of π/2. r1 − r = d + d_lo (a fast
    // two-sum: d is exact and d_lo = 0 unless r1 and n·PIO2_2 cancel, when
    // x is within 2⁻³⁴ of a multiple of π/2 and |r| < |r1|).
    let d = r1 - r;
    let d_lo = (r1 - d) - r;
    let y_neg = n.mul_add(PIO2_3, n.mul_add(PIO2_2, -d) - d_lo);
    (quadrant, r, y_neg)
}

/// `p₀ + p₁z + … + p₅z⁵` by Estrin's scheme (`z2 = z²`): three levels of
/// multiply-adds instead of Horner's five.
#[inline(always)]
fn estrin5(z: f64, z2: f64, p: &[f64; 6]) -> f64 {
    let p01 = z.mul_add(p[1], p[0]);
    let p23 = z.mul_add(p[3], p[2]);
    let p45 = z.mul_add(p[5], p[4]);
    (z2 * z2).mul_add(p45, z2.mul_add(p23, p01))
}

/// sin(r + y) for |r| ≤ π/4, |y| tiny, from `y_neg = −y`.
///
/// `r − (r³·S'(z) + y_neg·cos(r))`, the small terms first, with
/// `S' = −S`: the same bits as `r + (r³·S(z) + y·cos(r))`, and also right
/// for x = ±0 and tiny x without a test of its own: for x = −0 the small
/// terms are +0 and `−0 − +0 = −0` (the sum's form gave `−0 + +0 = +0`),
/// and below 2⁻²⁶ they are under half an ulp of `r = x`, so x comes back.
#[inline(always)]
fn sin_kernel(r: f64, y_neg: f64) -> f64 {
    let z = r * r;
    let s = estrin5(z, z * z, &S_NEG);
    r - (z * r).mul_add(s, y_neg * (-0.5f64).mul_add(z, 1.0))
}

/// cos(r + y) for |r| ≤ π/4, |y| tiny, from `y_neg = −y`.
#[inline(always)]
fn cos_kernel(r: f64, y_neg: f64) -> f64 {
    let z = r * r;
    let z2 = z * z;
    let c = estrin5(z, z2, &C);
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    // 1 − z/2 rounds; its error is added back with the small terms.
    let err = (1.0 - w) - hz;
    w + z2.mul_add(c, r.mul_add(y_neg, err))
}

/// `v` negated when bit 1 of `q` is set (a sign flip by XOR: one
/// operation after `v`, where a select of `−v` takes two).
#[inline(always)]
fn negate_if_bit1(v: f64, q: u64) -> f64 {
    f64::from_bits(v.to_bits() ^ ((q & 2) << 62))
}

/// sin(x) for |x| ≤ [`LIMIT`] (other values: see [`needs_libm`]).
#[inline(always)]
pub(super) fn sin(x: f64) -> f64 {
    sincos(x).0
}

/// cos(x) for |x| ≤ [`LIMIT`] (other values: see [`needs_libm`]).
#[inline(always)]
pub(super) fn cos(x: f64) -> f64 {
    sincos(x).1
}

/// `(sin(x), cos(x))` from one reduction and one evaluation of the
/// kernels: [`sin`] and [`cos`] are its halves, so a fused program's pair
/// gives each one's bits for half the work of both.
#[inline(always)]
pub(super) fn sincos(x: f64) -> (f64, f64) {
    let (q, r, y_neg) = reduce(x);
    let (s, c) = (sin_kernel(r, y_neg), cos_kernel(r, y_neg));
    let odd = q & 1 == 1;
    // sin(x) = s, c, −s, −c and cos(x) = c, −s, −c, s for n = 0, 1, 2, 3
    // (mod 4).
    // Tiny x and ±0 need no test: see `sin_kernel`.
    let sin = negate_if_bit1(if odd { c } else { s }, q);
    let cos = negate_if_bit1(if odd { s } else { c }, q + 1);
    (sin, cos)
}

/// tan(x) for |x| ≤ [`LIMIT`] (other values: see [`needs_libm`]): the
/// quotient of the kernels, `sin r / cos r` or `−cos r / sin r` for odd
/// quadrants.
#[inline(always)]
pub(super) fn tan(x: f64) -> f64 {
    let (q, r, y_neg) = reduce(x);
    let (s, c) = (sin_kernel(r, y_neg), cos_kernel(r, y_neg));
    let odd = q & 1 == 1;
    let v = (if odd { -c } else { s }) / (if odd { s } else { c });
    if x.abs() < SIN_TINY {
        x
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::elementwise::tests::{lcg, ulps};

    /// The largest distance from libm seen for sin and cos, and where.
    #[derive(Default)]
    struct Worst(u64, f64, &'static str);

    impl Worst {
        fn check(&mut self, x: f64) {
            for (name, ours, libm) in [("sin", sin(x), x.sin()), ("cos", cos(x), x.cos())] {
                let d = ulps(ours, libm);
                if d > self.0 {
                    *self = Worst(d, x, name);
                }
            }
        }

        fn assert_within(&self, max: u64) {
            let Worst(d, x, name) = self;
            assert!(*d <= max, "{name}({x:e}) is {d} ulp from libm");
        }
    }

    #[test]
    fn within_one_ulp_of_libm() {
        let mut s = 3u64;
        let mut worst = Worst::default();
        for i in 0..600_000 {
            let u = lcg(&mut s);
            let x = match i % 6 {
                0 => (u - 0.5) * 8.0,
                1 => (u - 0.5) * 200.0,
                2 => (u - 0.5) * 2.0 * LIMIT,
                3 => (u - 0.5) * 1e-6,
                // Near multiples of π/2, where the reduction cancels.
                4 => ((s >> 40) as f64 - 8e6) * std::f64::consts::FRAC_PI_2 * 1e-1,
                _ => ((s >> 44) as f64) * std::f64::consts::FRAC_PI_2,
            };
            if !needs_libm(x) {
                worst.check(x);
            }
        }
        worst.assert_within(1);
    }

    #[test]
    fn near_every_multiple_of_half_pi_within_one_ulp_of_libm() {
        // The hardest arguments for the reduction: the doubles nearest to
        // n·π/2 (π/2 as PIO2_1 + PIO2_2 + PIO2_3, so x is the nearest double
        // or next to it) and their neighbours, for every n up to LIMIT,
        // where the result is as small as 2⁻⁵⁵ and cancels n·π/2 to ~70 bits.
        let mut worst = Worst::default();
        let top = (LIMIT / std::f64::consts::FRAC_PI_2) as i64;
        for n in 1..=top {
            let nf = n as f64;
            let near = nf.mul_add(PIO2_1, nf * PIO2_2) + nf * PIO2_3;
            for x in [near.next_down(), near, near.next_up()] {
                worst.check(x);
                worst.check(-x);
            }
        }
        worst.assert_within(1);
    }

    #[test]
    fn tan_within_two_ulp_of_libm() {
        // A quotient of two results within 1 ulp: within 2 of libm.
        let mut s = 8u64;
        for i in 0..400_000 {
            let u = lcg(&mut s);
            let x = match i % 3 {
                0 => (u - 0.5) * 4.0,
                1 => (u - 0.5) * 2e4,
                _ => (u - 0.5) * 1e-5,
            };
            let (ours, libm) = (tan(x), x.tan());
            assert!(ulps(ours, libm) <= 2, "tan({x:e}) = {ours}, libm {libm}");
        }
        assert_eq!(tan(-0.0).to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn sincos_is_sin_and_cos_bit_for_bit() {
        let mut x = 0x1234_5678_9abc_def1_u64;
        for k in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let scale = [1e-9, 1.0, 10.0, 1e3, 1e5, 5e5][k % 6];
            let v = ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2.0 * scale;
            let (s, c) = sincos(v);
            assert_eq!(
                (s.to_bits(), c.to_bits()),
                (sin(v).to_bits(), cos(v).to_bits()),
                "{v}"
            );
        }
    }

    #[test]
    fn sin_of_tiny_arguments_is_the_argument_without_a_test_for_them() {
        // Every binade below SIN_TINY (subnormals included), both signs,
        // and the binade just above, where sin(x) no longer rounds to x
        // for every x: the kernel's result must equal libm's there too.
        let mut seed = 7;
        for e in -1074..=-20 {
            for _ in 0..64 {
                let m = 1.0 + lcg(&mut seed);
                for x in [m * 2f64.powi(e), -m * 2f64.powi(e)] {
                    if x.abs() < SIN_TINY {
                        assert_eq!(sin(x).to_bits(), x.to_bits(), "sin({x:e})");
                    }
                    assert!(ulps(sin(x), x.sin()) <= 1, "sin({x:e})");
                    assert_eq!(sincos(x).0.to_bits(), sin(x).to_bits());
                }
            }
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(sin(-0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(sin(0.0).to_bits(), 0);
        assert_eq!(cos(0.0), 1.0);
        assert_eq!(cos(-0.0), 1.0);
        assert_eq!(sin(5e-324), 5e-324);
        for x in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e6, -1e300] {
            assert!(needs_libm(x), "{x}");
        }
        assert!(!needs_libm(LIMIT) && !needs_libm(-LIMIT));
    }
}
