//! The supported element types and their numpy dtypes.

use std::fmt;

/// The numpy dtypes ndcache supports.
///
/// The order of the variants is numpy's promotion order among themselves
/// only in part; use [`DType::promote`] for `numpy.result_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DType {
    /// 32-bit IEEE float, numpy `float32` (`<f4`).
    F32,
    /// 64-bit IEEE float, numpy `float64` (`<f8`).
    F64,
    /// 32-bit signed integer, numpy `int32` (`<i4`).
    I32,
    /// 64-bit signed integer, numpy `int64` (`<i8`).
    I64,
}

impl DType {
    /// Every supported dtype.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::I64];

    /// The little-endian numpy type descriptor: `<f4`, `<f8`, `<i4`, `<i8`.
    pub const fn descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
        }
    }

    /// The numpy name: `float32`, `float64`, `int32`, `int64`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I32 => "int32",
            DType::I64 => "int64",
        }
    }

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// Whether this is a floating-point dtype.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Parses a numpy descriptor or name (`<f8`, `f8`, `float64`, ...).
    ///
    /// Only native little-endian or byte-order-free spellings are accepted
    /// here; readers of big-endian files handle the byte order themselves.
    pub fn from_descr(s: &str) -> Option<DType> {
        let s = s.strip_prefix(['<', '=', '|']).unwrap_or(s);
        match s {
            "f4" | "float32" => Some(DType::F32),
            "f8" | "float64" => Some(DType::F64),
            "i4" | "int32" => Some(DType::I32),
            "i8" | "int64" => Some(DType::I64),
            _ => None,
        }
    }

    /// `numpy.result_type(a, b)` for two arrays of these dtypes.
    ///
    /// Same kind: the wider one. Integer with float: `i32`/`i64` with `f64`
    /// give `f64`; with `f32` they give `f64` too (numpy promotes `int32` with
    /// `float32` to `float64` so that every `int32` is exact).
    pub const fn promote(self, other: DType) -> DType {
        use DType::*;
        match (self, other) {
            (F32, F32) => F32,
            (I32, I32) => I32,
            (I32, I64) | (I64, I32) | (I64, I64) => I64,
            _ => F64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) mod sealed {
    /// Something generic over the element type, such as `ArcArray<T, IxDyn>`:
    /// `Of<T>` for each `T`. Lets value.rs convert between typed and
    /// dtype-erased arrays without this module knowing about them.
    pub trait Family {
        type Of<T: 'static>;
    }

    /// One `F::Of<T>`, for one of the four element types.
    pub enum Cases<F: Family> {
        F32(F::Of<f32>),
        F64(F::Of<f64>),
        I32(F::Of<i32>),
        I64(F::Of<i64>),
    }

    /// Seals [`super::Element`], and tells which of the four types `Self` is.
    /// Nothing outside the crate can name `Family`, so nothing outside can
    /// call these.
    pub trait Sealed: Sized + 'static {
        fn into_cases<F: Family>(x: F::Of<Self>) -> Cases<F>;
        fn from_cases<F: Family>(c: Cases<F>) -> Option<F::Of<Self>>;
    }

    macro_rules! impl_sealed {
        ($t:ty, $d:ident) => {
            impl Sealed for $t {
                #[inline]
                fn into_cases<F: Family>(x: F::Of<Self>) -> Cases<F> {
                    Cases::$d(x)
                }
                #[inline]
                fn from_cases<F: Family>(c: Cases<F>) -> Option<F::Of<Self>> {
                    match c {
                        Cases::$d(x) => Some(x),
                        _ => None,
                    }
                }
            }
        };
    }

    impl_sealed!(f32, F32);
    impl_sealed!(f64, F64);
    impl_sealed!(i32, I32);
    impl_sealed!(i64, I64);
}

/// An element type ndcache can hash, cache and compute on: `f32`, `f64`,
/// `i32` or `i64`.
///
/// This trait is sealed: ndcache's key format and `.npy` files depend on the
/// exact set of types.
pub trait Element:
    sealed::Sealed
    + bytemuck::Pod
    + Copy
    + Send
    + Sync
    + PartialEq
    + Default
    + fmt::Debug
    + fmt::Display
    + 'static
{
    /// The numpy dtype of this type.
    const DTYPE: DType;

    /// This value with its bytes in little-endian order (a no-op on
    /// little-endian machines).
    fn to_le(self) -> Self;
}

macro_rules! impl_element {
    ($t:ty, $d:ident, $bits:ty) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn to_le(self) -> Self {
                let bits: $bits = bytemuck::cast(self);
                bytemuck::cast(bits.to_le())
            }
        }
    };
}

impl_element!(f32, F32, u32);
impl_element!(f64, F64, u64);
impl_element!(i32, I32, u32);
impl_element!(i64, I64, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descr_and_size() {
        assert_eq!(f32::DTYPE.descr(), "<f4");
        assert_eq!(f64::DTYPE.descr(), "<f8");
        assert_eq!(i32::DTYPE.descr(), "<i4");
        assert_eq!(i64::DTYPE.descr(), "<i8");
        for d in DType::ALL {
            assert_eq!(DType::from_descr(d.descr()), Some(d));
            assert_eq!(DType::from_descr(d.name()), Some(d));
        }
        assert_eq!(DType::from_descr("<c16"), None);
        assert_eq!(DType::from_descr("|b1"), None);
        assert_eq!(f64::DTYPE.size(), 8);
        assert_eq!(i32::DTYPE.size(), 4);
    }

    #[test]
    fn promotion_table_is_numpy_result_type() {
        use DType::*;
        // numpy.result_type for every pair, as printed by numpy 2.x.
        let table = [
            (F32, F32, F32),
            (F32, F64, F64),
            (F32, I32, F64),
            (F32, I64, F64),
            (F64, F64, F64),
            (F64, I32, F64),
            (F64, I64, F64),
            (I32, I32, I32),
            (I32, I64, I64),
            (I64, I64, I64),
        ];
        for (a, b, r) in table {
            assert_eq!(a.promote(b), r, "{a} {b}");
            assert_eq!(b.promote(a), r, "{b} {a}");
        }
    }
}
