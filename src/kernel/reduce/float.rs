//! The little float arithmetic the reductions need, for `f32` and `f64`.

use std::ops::{Add, Div, Mul, Sub};

/// An IEEE float accumulator: `f32` or `f64`.
pub(super) trait Float:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + 'static
{
    /// `+0.0`.
    const ZERO: Self;
    /// `1.0`.
    const ONE: Self;
    /// The value, or the positive quiet NaN (numpy's `np.nan`) for any NaN.
    ///
    /// Arithmetic on NaNs yields a NaN whose sign and payload depend on
    /// operand order, which the compiler may swap (addition commutes), so
    /// results are canonicalized to keep them bitwise deterministic.
    fn canonical(self) -> Self;
    /// Rounds an `f64` to this type.
    fn from_f64(v: f64) -> Self;
    /// Widens (or keeps) the value as an `f64`.
    fn to_f64(self) -> f64;
    /// The correctly rounded square root.
    fn sqrt(self) -> Self;
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn canonical(self) -> Self {
                if self.is_nan() {
                    <$t>::NAN
                } else {
                    self
                }
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}

impl_float!(f32);
impl_float!(f64);

/// numpy's division of a float sum by an element count: `true_divide`
/// of a float by an `intp` runs in `f64` and rounds the quotient back to the
/// float type (exactly so for `f32`, even past 2^24 elements).
#[inline]
pub(super) fn div_count<F: Float>(sum: F, count: usize) -> F {
    F::from_f64(sum.to_f64() / count as f64)
}
