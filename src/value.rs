//! Dtype-erased arrays: owned and shared ([`AnyArray`]), borrowed
//! ([`AnyView`]), fingerprinted ([`Keyed`]), and kernel arguments ([`Arg`]).

use std::fmt;

use std::marker::PhantomData;
use std::sync::OnceLock;

use ndarray::{ArcArray, ArrayBase, ArrayViewD, Data, Dimension, IxDyn};

use crate::element::sealed::{Cases, Family};
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::key::{fingerprint_dyn, Fingerprint};

/// Runs `$body` with `$v` bound to the typed array inside an [`AnyArray`].
macro_rules! dispatch_array {
    ($a:expr, $v:ident => $body:expr) => {
        match $a {
            $crate::AnyArray::F32($v) => $body,
            $crate::AnyArray::F64($v) => $body,
            $crate::AnyArray::I32($v) => $body,
            $crate::AnyArray::I64($v) => $body,
        }
    };
}

/// Runs `$body` with `$v` bound to the typed view inside an [`AnyView`].
macro_rules! dispatch_view {
    ($a:expr, $v:ident => $body:expr) => {
        match $a {
            $crate::AnyView::F32($v) => $body,
            $crate::AnyView::F64($v) => $body,
            $crate::AnyView::I32($v) => $body,
            $crate::AnyView::I64($v) => $body,
        }
    };
}
pub(crate) use {dispatch_array, dispatch_view};

/// A shared, immutable array of any supported dtype and dimension.
///
/// Cloning is O(1) (a reference count), so the memory tier can hand the same
/// result to every caller without copying the data.
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyArray {
    /// `float32` data.
    F32(ArcArray<f32, IxDyn>),
    /// `float64` data.
    F64(ArcArray<f64, IxDyn>),
    /// `int32` data.
    I32(ArcArray<i32, IxDyn>),
    /// `int64` data.
    I64(ArcArray<i64, IxDyn>),
}

/// A borrowed view of an array of any supported dtype and dimension, in any
/// memory layout.
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyView<'a> {
    /// `float32` data.
    F32(ArrayViewD<'a, f32>),
    /// `float64` data.
    F64(ArrayViewD<'a, f64>),
    /// `int32` data.
    I32(ArrayViewD<'a, i32>),
    /// `int64` data.
    I64(ArrayViewD<'a, i64>),
}

impl AnyArray {
    /// Wraps a typed array (any dimension; no copy for an owned or shared array).
    pub fn new<T: Element, D: Dimension>(a: impl Into<ArcArray<T, D>>) -> Self {
        T::wrap_arc(a.into().into_dyn())
    }

    /// Copies a view of any layout into a new shared array (in standard
    /// layout when the view is not already contiguous).
    pub fn from_view<S, T, D>(a: &ArrayBase<S, D>) -> Self
    where
        S: Data<Elem = T>,
        T: Element,
        D: Dimension,
    {
        T::wrap_arc(a.view().into_dyn().to_shared())
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        dispatch_array!(self, a => element_dtype(a))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        dispatch_array!(self, a => a.shape())
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        dispatch_array!(self, a => a.len())
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the element data in bytes.
    pub fn nbytes(&self) -> u64 {
        (self.len() * self.dtype().size()) as u64
    }

    /// A borrowed, dtype-erased view.
    pub fn view(&self) -> AnyView<'_> {
        dispatch_array!(self, a => T_wrap_view(a.view()))
    }

    /// A typed view; an error if the dtype is not `T`'s.
    pub fn typed<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        T::unwrap_arc(self)
            .map(|a| a.view())
            .ok_or(Error::DTypeMismatch {
                expected: T::DTYPE,
                found: self.dtype(),
            })
    }

    /// The shared typed array (an O(1) clone); an error if the dtype is not `T`'s.
    pub fn to_shared<T: Element>(&self) -> Result<ArcArray<T, IxDyn>> {
        T::unwrap_arc(self).cloned().ok_or(Error::DTypeMismatch {
            expected: T::DTYPE,
            found: self.dtype(),
        })
    }

    /// The fingerprint of the contents (hashes every byte; see [`crate::fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint_any(&self.view())
    }

    /// Whether both arrays share the same data buffer (a hit returns the
    /// very array that was cached). Arrays of different shapes or strides
    /// never do; empty arrays hold no data, so two empty arrays of one shape
    /// count as sharing it.
    pub fn ptr_eq(&self, other: &AnyArray) -> bool {
        match (self, other) {
            (AnyArray::F32(a), AnyArray::F32(b)) => same_buffer(a, b),
            (AnyArray::F64(a), AnyArray::F64(b)) => same_buffer(a, b),
            (AnyArray::I32(a), AnyArray::I32(b)) => same_buffer(a, b),
            (AnyArray::I64(a), AnyArray::I64(b)) => same_buffer(a, b),
            _ => false,
        }
    }

    /// Bitwise equality of dtype, shape and every element (so `NaN == NaN`
    /// with the same payload, and `-0.0 != 0.0`).
    pub fn bitwise_eq(&self, other: &AnyArray) -> bool {
        self.view().bitwise_eq(&other.view())
    }
}

#[allow(non_snake_case)]
fn T_wrap_view<T: Element>(v: ArrayViewD<'_, T>) -> AnyView<'_> {
    T::wrap_view(v)
}

/// The fingerprint of a dtype-erased view (see [`fingerprint`](crate::fingerprint)).
pub fn fingerprint_any(view: &AnyView<'_>) -> Fingerprint {
    dispatch_view!(view, v => fingerprint_dyn(v.clone()))
}

/// Conversions between typed arrays and [`AnyArray`]/[`AnyView`], for any
/// `T: Element` (crate-private: `Element` itself knows nothing of them).
pub(crate) trait Wrap: Element {
    fn wrap_arc(a: ArcArray<Self, IxDyn>) -> AnyArray;
    fn wrap_view(v: ArrayViewD<'_, Self>) -> AnyView<'_>;
    fn unwrap_arc(a: &AnyArray) -> Option<&ArcArray<Self, IxDyn>>;
    fn unwrap_view<'a>(v: &AnyView<'a>) -> Option<ArrayViewD<'a, Self>>;
}

struct Arcs;
impl Family for Arcs {
    type Of<T: 'static> = ArcArray<T, IxDyn>;
}

struct ArcRefs<'a>(PhantomData<&'a ()>);
impl<'a> Family for ArcRefs<'a> {
    type Of<T: 'static> = &'a ArcArray<T, IxDyn>;
}

struct Views<'a>(PhantomData<&'a ()>);
impl<'a> Family for Views<'a> {
    type Of<T: 'static> = ArrayViewD<'a, T>;
}

impl<T: Element> Wrap for T {
    #[inline]
    fn wrap_arc(a: ArcArray<Self, IxDyn>) -> AnyArray {
        match T::into_cases::<Arcs>(a) {
            Cases::F32(a) => AnyArray::F32(a),
            Cases::F64(a) => AnyArray::F64(a),
            Cases::I32(a) => AnyArray::I32(a),
            Cases::I64(a) => AnyArray::I64(a),
        }
    }
    #[inline]
    fn wrap_view(v: ArrayViewD<'_, Self>) -> AnyView<'_> {
        match T::into_cases::<Views<'_>>(v) {
            Cases::F32(v) => AnyView::F32(v),
            Cases::F64(v) => AnyView::F64(v),
            Cases::I32(v) => AnyView::I32(v),
            Cases::I64(v) => AnyView::I64(v),
        }
    }
    #[inline]
    fn unwrap_arc(a: &AnyArray) -> Option<&ArcArray<Self, IxDyn>> {
        T::from_cases::<ArcRefs<'_>>(match a {
            AnyArray::F32(a) => Cases::F32(a),
            AnyArray::F64(a) => Cases::F64(a),
            AnyArray::I32(a) => Cases::I32(a),
            AnyArray::I64(a) => Cases::I64(a),
        })
    }
    #[inline]
    fn unwrap_view<'a>(v: &AnyView<'a>) -> Option<ArrayViewD<'a, Self>> {
        T::from_cases::<Views<'a>>(match v {
            AnyView::F32(v) => Cases::F32(v.clone()),
            AnyView::F64(v) => Cases::F64(v.clone()),
            AnyView::I32(v) => Cases::I32(v.clone()),
            AnyView::I64(v) => Cases::I64(v.clone()),
        })
    }
}

fn element_dtype<T: Element, D: Dimension>(_: &ArcArray<T, D>) -> DType {
    T::DTYPE
}

fn view_dtype<T: Element>(_: &ArrayViewD<'_, T>) -> DType {
    T::DTYPE
}

impl<'a> AnyView<'a> {
    /// Wraps a typed view of any dimension.
    pub fn new<T: Element, D: Dimension>(v: ndarray::ArrayView<'a, T, D>) -> Self {
        T::wrap_view(v.into_dyn())
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        dispatch_view!(self, v => view_dtype(v))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        dispatch_view!(self, v => v.shape())
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        dispatch_view!(self, v => v.len())
    }

    /// Whether the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the element data in bytes.
    pub fn nbytes(&self) -> u64 {
        (self.len() * self.dtype().size()) as u64
    }

    /// A typed view; an error if the dtype is not `T`'s.
    pub fn typed<T: Element>(&self) -> Result<ArrayViewD<'a, T>> {
        T::unwrap_view(self).ok_or(Error::DTypeMismatch {
            expected: T::DTYPE,
            found: self.dtype(),
        })
    }

    /// The same view, borrowed for a shorter lifetime.
    pub fn reborrow(&self) -> AnyView<'_> {
        dispatch_view!(self, v => T_wrap_view(v.view()))
    }

    /// Copies the view into a new shared array.
    pub fn to_shared(&self) -> AnyArray {
        dispatch_view!(self, v => AnyArray::from_view(v))
    }

    /// The fingerprint of the contents (see [`crate::fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint_any(self)
    }

    /// Bitwise equality of dtype, shape and every element.
    pub fn bitwise_eq(&self, other: &AnyView<'_>) -> bool {
        fn eq<T: Element>(a: &ArrayViewD<'_, T>, b: &AnyView<'_>) -> bool {
            match b.typed::<T>() {
                Ok(b) => {
                    a.shape() == b.shape()
                        && a.iter()
                            .zip(b.iter())
                            .all(|(x, y)| bytemuck::bytes_of(x) == bytemuck::bytes_of(y))
                }
                Err(_) => false,
            }
        }
        dispatch_view!(self, a => eq(a, other))
    }
}

impl fmt::Debug for AnyArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        dispatch_array!(self, a => write!(f, "AnyArray({}, {:?})", element_dtype(a), a))
    }
}

impl fmt::Debug for AnyView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        dispatch_view!(self, a => write!(f, "AnyView({}, {:?})", view_dtype(a), a))
    }
}

impl<T: Element, D: Dimension> From<ndarray::Array<T, D>> for AnyArray {
    fn from(a: ndarray::Array<T, D>) -> Self {
        AnyArray::new(a)
    }
}

impl<T: Element, D: Dimension> From<ArcArray<T, D>> for AnyArray {
    fn from(a: ArcArray<T, D>) -> Self {
        AnyArray::new(a)
    }
}

impl<'a, T: Element, D: Dimension> From<ndarray::ArrayView<'a, T, D>> for AnyView<'a> {
    fn from(v: ndarray::ArrayView<'a, T, D>) -> Self {
        AnyView::new(v)
    }
}

/// An array together with its fingerprint: an input hashed once for reuse,
/// or a result of a cached call (whose fingerprint is derived from the call,
/// so chained calls never hash it).
///
/// Cloning is O(1).
#[derive(Clone, Debug)]
pub struct Keyed {
    array: AnyArray,
    /// Set at construction, except for results of bypassed calls: hashed
    /// the first time it is asked for (they may never be).
    fingerprint: OnceLock<Fingerprint>,
}

impl Keyed {
    /// Fingerprints `array` (hashing every byte once).
    pub fn new(array: AnyArray) -> Self {
        let fingerprint = array.fingerprint();
        Self::with_fingerprint(array, fingerprint)
    }

    /// Pairs an array with a fingerprint the caller vouches for.
    ///
    /// The cache trusts it: two different arrays given the same fingerprint
    /// would share cache entries. Use it only with fingerprints produced by
    /// ndcache for this very array.
    pub(crate) fn with_fingerprint(array: AnyArray, fingerprint: Fingerprint) -> Self {
        Keyed {
            array,
            fingerprint: OnceLock::from(fingerprint),
        }
    }

    /// An array whose fingerprint is its content's, computed only if it is
    /// asked for (the result of a call that bypassed the cache).
    pub(crate) fn hashed_on_demand(array: AnyArray) -> Self {
        Keyed {
            array,
            fingerprint: OnceLock::new(),
        }
    }

    /// The array.
    pub fn array(&self) -> &AnyArray {
        &self.array
    }

    /// Consumes `self`, returning the array.
    pub fn into_array(self) -> AnyArray {
        self.array
    }

    /// The fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        *self.fingerprint.get_or_init(|| self.array.fingerprint())
    }

    /// A typed view; an error if the dtype is not `T`'s.
    pub fn typed<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        self.array.typed()
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.array.dtype()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }
}

/// One input of a kernel call: a view to be fingerprinted by the call, or a
/// [`Keyed`] array whose fingerprint is already known.
///
/// Build one with [`AsArg::arg`].
#[derive(Clone, Debug)]
pub enum Arg<'a> {
    /// A view; the call hashes it.
    View(AnyView<'a>),
    /// An array with a known fingerprint; the call hashes nothing.
    Keyed(&'a Keyed),
}

impl<'a> Arg<'a> {
    /// The view of the input.
    pub fn view(&self) -> AnyView<'a> {
        match self {
            Arg::View(v) => v.clone(),
            Arg::Keyed(k) => k.array.view(),
        }
    }

    /// The fingerprint, if already known.
    pub fn known_fingerprint(&self) -> Option<Fingerprint> {
        match self {
            Arg::View(_) => None,
            Arg::Keyed(k) => Some(k.fingerprint()),
        }
    }
}

/// Things that can be passed to a kernel call: ndarray arrays and views of
/// supported element types, [`AnyArray`], [`AnyView`] and [`Keyed`].
pub trait AsArg {
    /// Borrows `self` as a kernel argument.
    fn arg(&self) -> Arg<'_>;
}

impl<S, T, D> AsArg for ArrayBase<S, D>
where
    S: Data<Elem = T>,
    T: Element,
    D: Dimension,
{
    fn arg(&self) -> Arg<'_> {
        Arg::View(AnyView::new(self.view()))
    }
}

impl AsArg for AnyArray {
    fn arg(&self) -> Arg<'_> {
        Arg::View(self.view())
    }
}

impl AsArg for AnyView<'_> {
    fn arg(&self) -> Arg<'_> {
        Arg::View(self.reborrow())
    }
}

impl AsArg for Keyed {
    fn arg(&self) -> Arg<'_> {
        Arg::Keyed(self)
    }
}

/// Whether two arrays of the same shape and strides view the same memory.
fn same_buffer<T>(a: &ArcArray<T, IxDyn>, b: &ArcArray<T, IxDyn>) -> bool {
    a.as_ptr() == b.as_ptr() && a.shape() == b.shape() && a.strides() == b.strides()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn typed_access_and_mismatch() {
        let a = AnyArray::from(array![[1.0f64, 2.0], [3.0, 4.0]]);
        assert_eq!(a.dtype(), DType::F64);
        assert_eq!(a.shape(), &[2, 2]);
        assert_eq!(a.nbytes(), 32);
        assert_eq!(a.typed::<f64>().unwrap()[[1, 0]], 3.0);
        let e = a.typed::<i32>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected an array of dtype int32, found float64"
        );
        let b = a.clone();
        assert!(a.ptr_eq(&b));
        assert!(a.bitwise_eq(&AnyArray::from(array![[1.0f64, 2.0], [3.0, 4.0]])));
        assert!(!a.bitwise_eq(&AnyArray::from(array![[1.0f32, 2.0], [3.0, 4.0]])));
        assert!(!AnyArray::from(array![0.0f64]).bitwise_eq(&AnyArray::from(array![-0.0f64])));
    }

    #[test]
    fn keyed_matches_fingerprint() {
        let x = array![1i64, 2, 3];
        let k = Keyed::new(AnyArray::from(x.clone()));
        assert_eq!(k.fingerprint(), crate::fingerprint(&x));
        assert_eq!(k.arg().known_fingerprint(), Some(k.fingerprint()));
        assert_eq!(x.arg().known_fingerprint(), None);
    }

    #[test]
    fn ptr_eq_needs_the_same_buffer_shape_and_strides() {
        let a = AnyArray::from(ndarray::Array1::<f64>::zeros(0));
        let b = AnyArray::from(ndarray::Array2::<f64>::zeros((0, 3)));
        assert!(!a.ptr_eq(&b), "empty arrays of different shapes");
        let c = AnyArray::from(ndarray::array![1.0f64, 2.0]);
        assert!(c.ptr_eq(&c.clone()));
        assert!(!c.ptr_eq(&AnyArray::from(ndarray::array![1.0f64, 2.0])));
    }
}
