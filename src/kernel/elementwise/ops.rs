//! Element functions with numpy's semantics, per dtype.

use super::pow::{self, Dekker, Fused};
use super::simd::{Map1, Map1x2, Map2};
use super::{math, trig};

/// The arithmetic ufuncs on one element type, as numpy computes them on
/// arrays: integers wrap around, floats follow IEEE 754.
pub(super) trait Arith: Copy {
    /// `numpy.negative`.
    fn neg(self) -> Self;
    /// `numpy.absolute` (`abs(i32::MIN) == i32::MIN`; clears a float's sign bit).
    fn abs(self) -> Self;
    /// `numpy.square`.
    fn square(self) -> Self;
    /// `numpy.add`.
    fn add(self, other: Self) -> Self;
    /// `numpy.subtract`.
    fn sub(self, other: Self) -> Self;
    /// `numpy.multiply`.
    fn mul(self, other: Self) -> Self;
    /// `numpy.maximum`.
    fn maximum(self, other: Self) -> Self;
    /// `numpy.minimum`.
    fn minimum(self, other: Self) -> Self;
}

macro_rules! impl_arith_int {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)]
            fn neg(self) -> Self { self.wrapping_neg() }
            #[inline(always)]
            fn abs(self) -> Self { self.wrapping_abs() }
            #[inline(always)]
            fn square(self) -> Self { self.wrapping_mul(self) }
            #[inline(always)]
            fn add(self, other: Self) -> Self { self.wrapping_add(other) }
            #[inline(always)]
            fn sub(self, other: Self) -> Self { self.wrapping_sub(other) }
            #[inline(always)]
            fn mul(self, other: Self) -> Self { self.wrapping_mul(other) }
            #[inline(always)]
            fn maximum(self, other: Self) -> Self { if self > other { self } else { other } }
            #[inline(always)]
            fn minimum(self, other: Self) -> Self { if self < other { self } else { other } }
        }
    )*};
}

// numpy's maximum returns its first operand if that is NaN or greater, and
// its second otherwise: so a NaN wins with its own payload, the first of
// two NaNs wins, and of two equal values (0.0 and -0.0) the second is
// returned. Checked bit for bit against numpy 2.4 (tests::maximum_minimum_nan).
macro_rules! impl_arith_float {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)]
            fn neg(self) -> Self { -self }
            #[inline(always)]
            fn abs(self) -> Self { <$t>::abs(self) }
            #[inline(always)]
            fn square(self) -> Self { self * self }
            #[inline(always)]
            fn add(self, other: Self) -> Self { self + first_nan(self, other) }
            #[inline(always)]
            fn sub(self, other: Self) -> Self { self - other }
            #[inline(always)]
            fn mul(self, other: Self) -> Self { self * first_nan(self, other) }
            #[inline(always)]
            fn maximum(self, other: Self) -> Self {
                if self.is_nan() || self > other { self } else { other }
            }
            #[inline(always)]
            fn minimum(self, other: Self) -> Self {
                if self.is_nan() || self < other { self } else { other }
            }
        }
    )*};
}

/// `b`, or `a` where `a` is a NaN: the second operand of `add` and
/// `multiply` of floats. Where both operands are NaNs, the CPU returns the
/// one in its first source register, and which operand of `a + b` or
/// `a * b` goes there is up to the compiler: it swaps them, differently in
/// different loops (a fused chain's `|x| * x` gave `x`'s NaN where the
/// registry's loop gave `|x|`'s). Given `a` twice, the result is `a`'s NaN
/// (quieted) whatever it does, so every loop gives the first operand's
/// NaN, as `subtract` and `divide` do (the compiler never swaps those).
/// The price, a compare and a blend per vector: measured on one thread
/// over 1e5 `f64` (in cache, min of 2000), fused poly 66 → 90 µs, and 78
/// once a chain's scalars that are not NaNs skip it ([`AddOneNan`]); on
/// two threads over 1e7 (from memory, min of 40, three runs) 8.3-8.8 →
/// 9.7-10.0 ms, then 8.4-9.6.
#[inline(always)]
fn first_nan<T: PartialEq + Copy>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    if a != a {
        a
    } else {
        b
    }
}

impl_arith_int!(i32, i64);
impl_arith_float!(f32, f64);

/// The float ufuncs, for `f32` and `f64`.
pub(super) trait Float: Copy {
    /// `numpy.sqrt`.
    fn sqrt(self) -> Self;
    /// `numpy.exp`.
    fn exp(self) -> Self;
    /// `numpy.expm1`.
    fn expm1(self) -> Self;
    /// `numpy.log`.
    fn log(self) -> Self;
    /// `numpy.log1p`.
    fn log1p(self) -> Self;
    /// `numpy.tanh`.
    fn tanh(self) -> Self;
    /// `numpy.divide`.
    fn div(self, other: Self) -> Self;
}

macro_rules! impl_float {
    ($($t:ty => $exp:path, $expm1:path, $log:path, $log1p:path, $tanh:path),*) => {$(
        impl Float for $t {
            #[inline(always)]
            fn sqrt(self) -> Self { <$t>::sqrt(self) }
            #[inline(always)]
            fn exp(self) -> Self { $exp(self) }
            #[inline(always)]
            fn expm1(self) -> Self { $expm1(self) }
            #[inline(always)]
            fn log(self) -> Self { $log(self) }
            #[inline(always)]
            fn log1p(self) -> Self { $log1p(self) }
            #[inline(always)]
            fn tanh(self) -> Self { $tanh(self) }
            #[inline(always)]
            fn div(self, other: Self) -> Self { self / other }
        }
    )*};
}

impl_float!(
    f32 => math::exp_f32, math::expm1_f32, math::log_f32, math::log1p_f32, math::tanh_f32,
    f64 => math::exp, math::expm1, math::log, math::log1p, math::tanh
);

/// Integer power with a non-negative exponent, wrapping like numpy
/// (`0 ** 0 == 1`). Multiplication modulo 2ⁿ is associative, so squaring
/// gives the same bits as numpy's loop.
pub(super) trait IntPow: Copy {
    /// `self ** exp` for `exp >= 0`.
    fn pow(self, exp: Self) -> Self;
}

macro_rules! impl_int_pow {
    ($($t:ty),*) => {$(
        impl IntPow for $t {
            #[inline]
            fn pow(self, exp: Self) -> Self {
                debug_assert!(exp >= 0);
                let (mut base, mut exp, mut acc) = (self, exp, 1 as $t);
                while exp > 0 {
                    if exp & 1 == 1 {
                        acc = acc.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    exp >>= 1;
                }
                acc
            }
        }
    )*};
}

impl_int_pow!(i32, i64);

/// Declares a loop function (a unit struct) calling a method of one of the
/// traits above, for each listed type.
macro_rules! op1 {
    ($($(#[$doc:meta])* $op:ident = $tr:ident::$method:ident for $($t:ty),*;)*) => {$(
        $(#[$doc])*
        pub(super) struct $op;
        $(impl Map1<$t, $t> for $op {
            #[inline(always)]
            fn call(&self, a: $t) -> $t {
                <$t as $tr>::$method(a)
            }
        })*
    )*};
}

macro_rules! op2 {
    ($($(#[$doc:meta])* $op:ident = $tr:ident::$method:ident for $($t:ty),*;)*) => {$(
        $(#[$doc])*
        pub(super) struct $op;
        $(impl Map2<$t, $t, $t> for $op {
            #[inline(always)]
            fn call(&self, a: $t, b: $t) -> $t {
                <$t as $tr>::$method(a, b)
            }
        })*
    )*};
}

op1! {
    /// `numpy.negative`.
    Neg = Arith::neg for f32, f64, i32, i64;
    /// `numpy.absolute`.
    Abs = Arith::abs for f32, f64, i32, i64;
    /// `numpy.square`.
    Square = Arith::square for f32, f64, i32, i64;
    /// `numpy.sqrt`.
    Sqrt = Float::sqrt for f32, f64;
    /// `numpy.expm1`.
    Expm1 = Float::expm1 for f32, f64;
    /// `numpy.log`.
    Log = Float::log for f32, f64;
    /// `numpy.log1p`.
    Log1p = Float::log1p for f32, f64;
    /// `numpy.tanh`.
    Tanh = Float::tanh for f32, f64;
}

op2! {
    /// `numpy.add`.
    Add = Arith::add for f32, f64, i32, i64;
    /// `numpy.subtract`.
    Sub = Arith::sub for f32, f64, i32, i64;
    /// `numpy.multiply`.
    Mul = Arith::mul for f32, f64, i32, i64;
    /// `numpy.maximum`.
    Maximum = Arith::maximum for f32, f64, i32, i64;
    /// `numpy.minimum`.
    Minimum = Arith::minimum for f32, f64, i32, i64;
    /// `numpy.divide` (of floats).
    Div = Float::div for f32, f64;
    /// `numpy.power` of integers (exponents checked non-negative first).
    IPow = IntPow::pow for i32, i64;
}

/// `numpy.add` of floats where at most one operand can be a NaN (a
/// fused chain's scalar that is not one): plain `a + b`, the bits of
/// [`Add`] there (with one NaN, the result is that NaN quieted whichever
/// operand it is), without its compare and blend ([`first_nan`]).
pub(super) struct AddOneNan;

/// `numpy.multiply` of floats where at most one operand can be a NaN (see
/// [`AddOneNan`]).
pub(super) struct MulOneNan;

macro_rules! impl_one_nan {
    ($($t:ty),*) => {$(
        impl Map2<$t, $t, $t> for AddOneNan {
            #[inline(always)]
            fn call(&self, a: $t, b: $t) -> $t {
                a + b
            }
        }
        impl Map2<$t, $t, $t> for MulOneNan {
            #[inline(always)]
            fn call(&self, a: $t, b: $t) -> $t {
                a * b
            }
        }
    )*};
}

impl_one_nan!(f32, f64);

/// `numpy.exp`: `math::exp`, whose bits [`math::exp_normal`] gives faster
/// where the result is a normal float; the other elements (near overflow,
/// underflow, ±inf, NaN) are left to the fix-up pass.
pub(super) struct Exp;

impl Map1<f64, f64> for Exp {
    const FIXUP: bool = true;
    #[inline(always)]
    fn call(&self, a: f64) -> f64 {
        math::exp_normal(a)
    }
    #[inline(always)]
    fn needs_exact(&self, a: f64) -> bool {
        !(math::EXP_NORMAL_MIN..=math::EXP_NORMAL_MAX).contains(&a)
    }
    #[inline(never)]
    #[cold]
    fn exact(&self, a: f64) -> f64 {
        math::exp(a)
    }
}

impl Map1<f32, f32> for Exp {
    #[inline(always)]
    fn call(&self, a: f32) -> f32 {
        <f32 as Float>::exp(a)
    }
}

/// `numpy.power` of floats ([`pow`]), products split by Dekker's algorithm.
pub(super) struct Pow;

/// `numpy.power` of `f64`, the same bits as [`Pow`], with fused
/// multiply-adds: for loops compiled with FMA (elsewhere `mul_add` is a
/// libm call per product).
pub(super) struct PowFma;

macro_rules! pow_op {
    ($($op:ident = $p:ty),*) => {$(
        impl Map2<f64, f64, f64> for $op {
            const FIXUP: bool = true;
            #[inline(always)]
            fn call(&self, a: f64, b: f64) -> f64 {
                pow::pow::<$p>(a, b)
            }
            #[inline(always)]
            fn needs_exact(&self, a: f64, b: f64) -> bool {
                pow::needs_special(a, b)
            }
            #[inline(never)]
            #[cold]
            fn exact(&self, a: f64, b: f64) -> f64 {
                pow::special(a, b)
            }
        }
    )*};
}

pow_op!(Pow = Dekker, PowFma = Fused);

impl Map2<f32, f32, f32> for Pow {
    const FIXUP: bool = true;
    #[inline(always)]
    fn call(&self, a: f32, b: f32) -> f32 {
        pow::pow_f32(a, b)
    }
    #[inline(always)]
    fn needs_exact(&self, a: f32, b: f32) -> bool {
        pow::needs_special_f32(a, b)
    }
    #[inline(never)]
    #[cold]
    fn exact(&self, a: f32, b: f32) -> f32 {
        pow::special_f32(a, b)
    }
}

/// A closure as a loop function (user kernels).
pub(super) struct Closure<F>(pub(super) F);

impl<A, O, F: Fn(A) -> O + Sync> Map1<A, O> for Closure<F> {
    #[inline(always)]
    fn call(&self, a: A) -> O {
        (self.0)(a)
    }
}

/// A loop function vectorized for |x| ≤ [`trig::LIMIT`], with libm for the
/// rest (and for infinities and NaN) in the loops' fix-up pass.
macro_rules! trig_op {
    ($($(#[$doc:meta])* $op:ident = $fast:path, $libm:ident;)*) => {$(
        $(#[$doc])*
        pub(super) struct $op;
        impl Map1<f64, f64> for $op {
            const FIXUP: bool = true;
            #[inline(always)]
            fn call(&self, a: f64) -> f64 {
                $fast(a)
            }
            #[inline(always)]
            fn needs_exact(&self, a: f64) -> bool {
                trig::needs_libm(a)
            }
            #[inline(never)]
            #[cold]
            fn exact(&self, a: f64) -> f64 {
                a.$libm()
            }
        }
        impl Map1<f32, f32> for $op {
            const FIXUP: bool = true;
            #[inline(always)]
            fn call(&self, a: f32) -> f32 {
                $fast(f64::from(a)) as f32
            }
            #[inline(always)]
            fn needs_exact(&self, a: f32) -> bool {
                trig::needs_libm(f64::from(a))
            }
            #[inline(never)]
            #[cold]
            fn exact(&self, a: f32) -> f32 {
                a.$libm()
            }
        }
    )*};
}

trig_op! {
    /// `numpy.sin`.
    Sin = trig::sin, sin;
    /// `numpy.cos`.
    Cos = trig::cos, cos;
    /// `numpy.tan`.
    Tan = trig::tan, tan;
}

/// `numpy.sin` and `numpy.cos` of the same operand at once (a fused
/// program's pair): each result is [`Sin`]'s and [`Cos`]'s, bit for bit.
pub(super) struct SinCos;

impl Map1x2<f64, f64> for SinCos {
    const FIXUP: bool = true;
    #[inline(always)]
    fn call(&self, a: f64) -> (f64, f64) {
        trig::sincos(a)
    }
    #[inline(always)]
    fn needs_exact(&self, a: f64) -> bool {
        trig::needs_libm(a)
    }
    #[inline(never)]
    #[cold]
    fn exact(&self, a: f64) -> (f64, f64) {
        (a.sin(), a.cos())
    }
}

impl Map1x2<f32, f32> for SinCos {
    const FIXUP: bool = true;
    #[inline(always)]
    fn call(&self, a: f32) -> (f32, f32) {
        let (s, c) = trig::sincos(f64::from(a));
        (s as f32, c as f32)
    }
    #[inline(always)]
    fn needs_exact(&self, a: f32) -> bool {
        trig::needs_libm(f64::from(a))
    }
    #[inline(never)]
    #[cold]
    fn exact(&self, a: f32) -> (f32, f32) {
        (a.sin(), a.cos())
    }
}
