//! Typed lazy array expressions, fused and cached: `(2.0 * x.sin().powi(2)
//! + x.cos() * &y).sum()` evaluated in one pass and looked up as a whole.
//!
//! # The front
//!
//! An [`Expr<'a, T, D>`](Expr) is an expression whose result has element type
//! `T` and dimension `D`, built from arrays or views (borrowed for `'a`),
//! from [`Keyed`] inputs and cached results ([`Evaluated`], which keep their
//! derived keys), with the arithmetic operators (arrays, expressions and
//! Rust scalars on either side), methods named after numpy's ufuncs
//! ([`exp`](Expr::exp), [`sin`](Expr::sin), [`maximum`](Expr::maximum),
//! [`powi`](Expr::powi), ...), reductions ([`sum`](Expr::sum),
//! [`mean`](Expr::mean), [`var`](Expr::var), [`min`](Expr::min),
//! [`max`](Expr::max), over everything or along an axis, with or without
//! `keepdims`) and any registry kernel ([`apply`](Expr::apply)). Element
//! types follow numpy 2's promotion at compile time: `f32 + f64` is `f64`,
//! `i32 / i32` is `f64`, and a Rust scalar is *weak* like a Python one
//! (NEP 50): `Expr<f32> * 2.0` stays `f32`, `Expr<i32> * 2.0` is `f64`,
//! `Expr<i32> + 1` stays `i32`. Dimensions broadcast like ndarray's
//! ([`DimMax`]). Shape errors wait for evaluation and are the registry's.
//! The element type must be known when the expression is built: an array
//! made from untyped float literals (`Array1::linspace(0.0, 1.0, n)`)
//! needs `Array1::<f64>::linspace`, or Rust cannot pick the result types.
//!
//! # Keys
//!
//! Every operation node is a registry call, and its key is the key that
//! call would have: [`call_key`](crate::call_key) of the kernel's name and
//! version, its canonical parameters and its operands' keys (an input's
//! fingerprint, hashed once per evaluation or known for a [`Keyed`]; a
//! scalar's 0-d array; an operation's derived key). So an expression's key
//! is a Merkle hash of its tree, two expressions built alike share it,
//! scalars are part of it, and a result cached by the chain of
//! [`ArrayCache::call`](crate::ArrayCache::call)s that spells the same
//! computation is the same entry.
//!
//! # Evaluation
//!
//! [`eval`](Expr::eval) looks the root up (memory, then disk: the cache's
//! tier chain) and computes only on a miss. Then maximal elementwise
//! subtrees, with one trailing `sum`, `mean`, `min` or `max` (over
//! everything or the last axis), run as one fused program over tiles of
//! the output split across rayon's threads, never materializing an
//! intermediate; a subexpression used twice is computed once; an
//! intermediate already in memory, or marked with
//! [`checkpoint`](Expr::checkpoint), is looked up and fed in. Whatever
//! cannot be fused (`sort`, `cumsum`, `var`, a user kernel, integer
//! `power`, a reduction over another axis) is a fusion boundary, computed
//! by its kernel. Only the root and checkpoints are stored.
//!
//! The fused result is the chain of registry calls' result bit for bit
//! ([`eval_unfused`](Expr::eval_unfused) computes that chain): the
//! programs call the registry's own loops, and a trailing sum follows
//! numpy's pairwise tree, so the bits do not depend on the thread count.
//!
//! # Example
//!
//! ```
//! use ndarray::Array1;
//! use ndcache::{ArrayCache, Expr};
//! let cache = ArrayCache::new();
//! let x = Array1::<f64>::linspace(0.0, 1.0, 10_000);
//! let y = Array1::<f64>::linspace(1.0, 2.0, 10_000);
//! let ex = Expr::new(&x);
//! let e = (2.0 * ex.sin().powi(2) + ex.cos() * &y).sum();
//! let first = e.eval(&cache)?;          // fused, then stored
//! let again = e.eval(&cache)?;          // a memory hit
//! assert_eq!(first[()].to_bits(), again[()].to_bits());
//! // Bit for bit the chain of registry calls:
//! let unfused = e.eval_unfused(cache.registry())?;
//! assert_eq!(first[()].to_bits(), unfused[()].to_bits());
//! # Ok::<(), ndcache::Error>(())
//! ```

mod eval;
mod explain;
mod plan;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Add, Deref, Div, Mul, Neg, Sub};
use std::sync::{Arc, OnceLock};

use ndarray::{ArcArray, ArrayBase, Axis, Data, DimMax, Dimension, Ix0, IxDyn, RemoveAxis};

use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::hash::Xxh3;
use crate::kernel::elementwise::fused::{scalar_array, Scalar};
use crate::kernel::{Params, Registry};
use crate::key::Fingerprint;
use crate::value::{AnyArray, AnyView, Keyed};
use crate::ArrayCache;

pub use explain::{Explain, PlanCacheInfo};
pub use plan::{plan_cache_clear, plan_cache_info};

/// One node of an expression tree (untyped).
pub(crate) struct Node<'a> {
    pub(crate) kind: Kind<'a>,
    pub(crate) children: Vec<Arc<Node<'a>>>,
    /// The dtype the typed front declares for the result.
    pub(crate) dtype: DType,
    /// Store this intermediate result too.
    pub(crate) checkpoint: bool,
    /// A structural id: equal for nodes that compute the same thing from
    /// the same inputs (views by address and layout; no data is hashed).
    pub(crate) sid: u128,
    /// The node's key once computed, with the id of the registry it was
    /// computed against (0 for inputs, whose key is their fingerprint). A
    /// borrowed input cannot change while the expression borrows it, so an
    /// expression evaluated again hashes nothing.
    pub(crate) key: OnceLock<(u64, Fingerprint)>,
    /// The fused group this node tops, as analysed for an evaluation
    /// without a cache (see [`eval::Fused`]): the next one runs it without
    /// walking the tree again.
    pub(crate) fused: OnceLock<Arc<eval::Fused>>,
}

pub(crate) enum Kind<'a> {
    /// A borrowed input (fingerprinted when a key is needed).
    View(AnyView<'a>),
    /// An input or result with a known fingerprint.
    Keyed(Keyed),
    /// A scalar, with the fingerprint of its 0-d array.
    Scalar(Scalar, Fingerprint),
    /// A registry kernel applied to the children.
    Call {
        name: Cow<'static, str>,
        params: Params,
    },
    /// An expression that cannot be evaluated (the reason).
    Invalid(String),
}

impl<'a> Node<'a> {
    fn new(kind: Kind<'a>, children: Vec<Arc<Node<'a>>>, dtype: DType) -> Arc<Self> {
        let mut h = Xxh3::new();
        match &kind {
            Kind::View(v) => {
                h.update(b"view");
                let (ptr, strides) =
                    crate::dispatch_view!(v, a => (a.as_ptr() as usize, a.strides().to_vec()));
                h.update(&ptr.to_le_bytes());
                h.update(v.dtype().descr().as_bytes());
                for &d in v.shape() {
                    h.update(&d.to_le_bytes());
                }
                for s in strides {
                    h.update(&s.to_le_bytes());
                }
            }
            Kind::Keyed(k) => {
                h.update(b"keyed");
                h.update(&k.fingerprint().to_le_bytes());
            }
            Kind::Scalar(_, fp) => {
                h.update(b"scalar");
                h.update(&fp.to_le_bytes());
            }
            Kind::Call { name, params } => {
                h.update(b"call");
                h.update(&(name.len() as u64).to_le_bytes());
                h.update(name.as_bytes());
                h.update(format!("{params:?}").as_bytes());
            }
            Kind::Invalid(reason) => {
                h.update(b"invalid");
                h.update(reason.as_bytes());
            }
        }
        h.update(&(children.len() as u64).to_le_bytes());
        for c in &children {
            h.update(&c.sid.to_le_bytes());
        }
        Arc::new(Node {
            kind,
            children,
            dtype,
            checkpoint: false,
            sid: h.digest128(),
            key: OnceLock::new(),
            fused: OnceLock::new(),
        })
    }

    fn scalar(v: Scalar) -> Arc<Self> {
        let fp = scalar_array(v).fingerprint();
        let dtype = match v {
            Scalar::F32(_) => DType::F32,
            Scalar::F64(_) => DType::F64,
            Scalar::I32(_) => DType::I32,
            Scalar::I64(_) => DType::I64,
        };
        Node::new(Kind::Scalar(v, fp), Vec::new(), dtype)
    }

    fn call(
        name: &'static str,
        params: Params,
        children: Vec<Arc<Node<'a>>>,
        dtype: DType,
    ) -> Arc<Self> {
        Node::new(
            Kind::Call {
                name: Cow::Borrowed(name),
                params,
            },
            children,
            dtype,
        )
    }
}

/// A lazy expression with result element type `T` and dimension `D`,
/// borrowing its array inputs for `'a`.
///
/// Cloning is O(1) (the tree is shared). See the [module docs](self).
pub struct Expr<'a, T, D> {
    node: Arc<Node<'a>>,
    _ty: PhantomData<fn() -> (T, D)>,
}

impl<T, D> Clone for Expr<'_, T, D> {
    fn clone(&self) -> Self {
        Expr {
            node: Arc::clone(&self.node),
            _ty: PhantomData,
        }
    }
}

impl<T: Element, D: Dimension> fmt::Debug for Expr<'_, T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr<{}>({})", T::DTYPE, explain::describe(&self.node))
    }
}

/// The typed, shared result of [`Expr::eval`]: an [`ArcArray`] (it
/// dereferences to one) with the fingerprint derived from the expression's
/// key, so using it in another expression or call hashes nothing.
#[derive(Clone)]
pub struct Evaluated<T, D> {
    array: ArcArray<T, D>,
    keyed: Keyed,
}

impl<T: Element, D: Dimension> Evaluated<T, D> {
    fn new(keyed: Keyed) -> Result<Self> {
        let array = typed(keyed.array().clone())?;
        Ok(Evaluated { array, keyed })
    }

    /// The shared array.
    pub fn array(&self) -> &ArcArray<T, D> {
        &self.array
    }

    /// Consumes `self`, returning the shared array.
    pub fn into_array(self) -> ArcArray<T, D> {
        self.array
    }

    /// The result as a [`Keyed`] array (for [`ArrayCache::call`]).
    pub fn keyed(&self) -> &Keyed {
        &self.keyed
    }

    /// The fingerprint of the result (derived from the expression's key).
    pub fn fingerprint(&self) -> Fingerprint {
        self.keyed.fingerprint()
    }
}

impl<T, D> Deref for Evaluated<T, D> {
    type Target = ArcArray<T, D>;
    fn deref(&self) -> &ArcArray<T, D> {
        &self.array
    }
}

impl<T: Element, D: Dimension> fmt::Debug for Evaluated<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluated")
            .field("array", &self.array)
            .field("fingerprint", &self.keyed.fingerprint())
            .finish()
    }
}

/// numpy's promotion of two element types (`numpy.result_type`).
pub trait Promote<R: Element>: Element {
    /// The promoted element type.
    type Out: Element;
}

/// The element type numpy's float functions (`exp`, `sin`, true division)
/// compute in: `f32` stays `f32`, every other type gives `f64`.
pub trait FloatOf: Element {
    /// The float type.
    type Out: Element;
}

/// The result types of numpy's `sum` (`int32` sums in `int64`) and of
/// `mean` and `var` (floats keep their type, integers give `f64`).
pub trait Reduced: Element {
    /// The type of `sum`.
    type Sum: Element;
    /// The type of `mean`, `var` and `std`.
    type Mean: Element;
}

macro_rules! promote {
    ($($a:ty, $b:ty => $o:ty;)*) => {$(
        impl Promote<$b> for $a {
            type Out = $o;
        }
    )*};
}

promote! {
    f32, f32 => f32; f32, f64 => f64; f32, i32 => f64; f32, i64 => f64;
    f64, f32 => f64; f64, f64 => f64; f64, i32 => f64; f64, i64 => f64;
    i32, f32 => f64; i32, f64 => f64; i32, i32 => i32; i32, i64 => i64;
    i64, f32 => f64; i64, f64 => f64; i64, i32 => i64; i64, i64 => i64;
}

impl FloatOf for f32 {
    type Out = f32;
}
impl FloatOf for f64 {
    type Out = f64;
}
impl FloatOf for i32 {
    type Out = f64;
}
impl FloatOf for i64 {
    type Out = f64;
}

impl Reduced for f32 {
    type Sum = f32;
    type Mean = f32;
}
impl Reduced for f64 {
    type Sum = f64;
    type Mean = f64;
}
impl Reduced for i32 {
    type Sum = i64;
    type Mean = f64;
}
impl Reduced for i64 {
    type Sum = i64;
    type Mean = f64;
}

/// What can be an operand of an expression: an [`Expr`], a reference to an
/// array or view, an [`Evaluated`] result.
pub trait IntoExpr<'a> {
    /// The element type.
    type Elem: Element;
    /// The dimension.
    type Dim: Dimension;
    /// The operand as an expression.
    fn into_expr(self) -> Expr<'a, Self::Elem, Self::Dim>;
}

impl<'a, T: Element, D: Dimension> IntoExpr<'a> for Expr<'a, T, D> {
    type Elem = T;
    type Dim = D;
    fn into_expr(self) -> Expr<'a, T, D> {
        self
    }
}

impl<'a, T: Element, D: Dimension> IntoExpr<'a> for &Expr<'a, T, D> {
    type Elem = T;
    type Dim = D;
    fn into_expr(self) -> Expr<'a, T, D> {
        self.clone()
    }
}

impl<'a, S, T, D> IntoExpr<'a> for &'a ArrayBase<S, D>
where
    S: Data<Elem = T>,
    T: Element,
    D: Dimension,
{
    type Elem = T;
    type Dim = D;
    fn into_expr(self) -> Expr<'a, T, D> {
        Expr::from(self)
    }
}

impl<'a, T: Element, D: Dimension> IntoExpr<'a> for ndarray::ArrayView<'a, T, D> {
    type Elem = T;
    type Dim = D;
    fn into_expr(self) -> Expr<'a, T, D> {
        Expr::from(self)
    }
}

impl<'a, T: Element, D: Dimension> IntoExpr<'a> for &Evaluated<T, D> {
    type Elem = T;
    type Dim = D;
    fn into_expr(self) -> Expr<'a, T, D> {
        Expr::from(self)
    }
}

impl<'a, S, T, D> From<&'a ArrayBase<S, D>> for Expr<'a, T, D>
where
    S: Data<Elem = T>,
    T: Element,
    D: Dimension,
{
    /// An input borrowed from an array or view (fingerprinted, once, when
    /// an evaluation needs its key).
    fn from(a: &'a ArrayBase<S, D>) -> Self {
        Expr::wrap(Node::new(
            Kind::View(AnyView::new(a.view())),
            Vec::new(),
            T::DTYPE,
        ))
    }
}

impl<'a, T: Element, D: Dimension> From<ndarray::ArrayView<'a, T, D>> for Expr<'a, T, D> {
    /// An input from a view of any layout (a slice, a transpose...).
    fn from(v: ndarray::ArrayView<'a, T, D>) -> Self {
        Expr::wrap(Node::new(Kind::View(AnyView::new(v)), Vec::new(), T::DTYPE))
    }
}

impl<'a, T: Element, D: Dimension> From<&Evaluated<T, D>> for Expr<'a, T, D> {
    /// A cached result, keeping its derived key.
    fn from(r: &Evaluated<T, D>) -> Self {
        Expr::wrap(Node::new(
            Kind::Keyed(r.keyed.clone()),
            Vec::new(),
            T::DTYPE,
        ))
    }
}

impl<'a, T: Element> Expr<'a, T, IxDyn> {
    /// An input whose fingerprint is known (hashed once by
    /// [`ArrayCache::keyed`], or the result of a call): an error if its
    /// dtype is not `T`'s.
    pub fn keyed(k: &Keyed) -> Result<Self> {
        if k.dtype() != T::DTYPE {
            return Err(Error::DTypeMismatch {
                expected: T::DTYPE,
                found: k.dtype(),
            });
        }
        Ok(Expr::wrap(Node::new(
            Kind::Keyed(k.clone()),
            Vec::new(),
            T::DTYPE,
        )))
    }
}

impl<'a, T: Element, D: Dimension> Expr<'a, T, D> {
    /// An expression of an input: a reference to an array (borrowed, and
    /// fingerprinted once when an evaluation needs its key), a view, an
    /// [`Evaluated`] result (its derived key kept). Unlike `Expr::from`, it
    /// infers the expression's type from the input.
    pub fn new(input: impl IntoExpr<'a, Elem = T, Dim = D>) -> Self {
        input.into_expr()
    }

    fn wrap(node: Arc<Node<'a>>) -> Self {
        Expr {
            node,
            _ty: PhantomData,
        }
    }

    fn call<U: Element, E: Dimension>(self, name: &'static str, params: Params) -> Expr<'a, U, E> {
        Expr::wrap(Node::call(name, params, vec![self.node], U::DTYPE))
    }

    fn call2<R: IntoExpr<'a>, U: Element, E: Dimension>(
        self,
        name: &'static str,
        other: R,
    ) -> Expr<'a, U, E> {
        let other = other.into_expr();
        Expr::wrap(Node::call(
            name,
            Params::new(),
            vec![self.node, other.node],
            U::DTYPE,
        ))
    }

    /// With a weak scalar (see the module docs) of the dtype numpy gives it
    /// beside this expression, on the right (`left == false`) or the left.
    fn with_scalar<U: Element>(self, name: &'static str, v: Weak, left: bool) -> Expr<'a, U, D> {
        let s = match v.resolve(T::DTYPE) {
            Ok(s) => Node::scalar(s),
            Err(reason) => Node::new(Kind::Invalid(reason), Vec::new(), T::DTYPE),
        };
        let children = if left {
            vec![s, self.node]
        } else {
            vec![self.node, s]
        };
        Expr::wrap(Node::call(name, Params::new(), children, U::DTYPE))
    }

    /// The same expression with a dynamic dimension.
    pub fn to_dyn(&self) -> Expr<'a, T, IxDyn> {
        Expr::wrap(Arc::clone(&self.node))
    }

    /// Marks this intermediate to be looked up and stored on its own when
    /// an expression containing it is evaluated through a cache (only the
    /// root is stored otherwise).
    pub fn checkpoint(&self) -> Self {
        let node = Arc::new(Node {
            kind: match &self.node.kind {
                Kind::View(v) => Kind::View(v.clone()),
                Kind::Keyed(k) => Kind::Keyed(k.clone()),
                Kind::Scalar(s, fp) => Kind::Scalar(*s, *fp),
                Kind::Call { name, params } => Kind::Call {
                    name: name.clone(),
                    params: params.clone(),
                },
                Kind::Invalid(r) => Kind::Invalid(r.clone()),
            },
            children: self.node.children.clone(),
            dtype: self.node.dtype,
            checkpoint: true,
            sid: self.node.sid,
            key: self.node.key.clone(),
            fused: OnceLock::new(),
        });
        Expr::wrap(node)
    }

    /// Registry kernel `name` applied to this expression with `params`:
    /// `sort`, `cumsum`, a user kernel... The result's element type `U` and
    /// dimension `E` are the caller's word; evaluation checks the dtype.
    /// Not fused: the kernel runs on the materialized operand.
    pub fn apply<U: Element, E: Dimension>(&self, name: &str, params: Params) -> Expr<'a, U, E> {
        let name = Cow::Owned(name.to_owned());
        Expr::wrap(Node::new(
            Kind::Call { name, params },
            vec![Arc::clone(&self.node)],
            U::DTYPE,
        ))
    }

    /// `numpy.absolute`, elementwise (integers wrap: `abs(MIN) == MIN`).
    pub fn abs(&self) -> Self {
        self.clone().call("absolute", Params::new())
    }

    /// `numpy.square`, elementwise.
    pub fn square(&self) -> Self {
        self.clone().call("square", Params::new())
    }

    /// `self ** n` with numpy's fast path: `powi(2)` is `square`; otherwise
    /// `numpy.power` with a weak integer scalar (an integer array raised to
    /// a negative power is an error at evaluation).
    pub fn powi(&self, n: i32) -> Self {
        if n == 2 {
            return self.square();
        }
        self.clone()
            .with_scalar("power", Weak::Int(n.into()), false)
    }

    /// `numpy.maximum`, elementwise and broadcast (NaN propagates).
    pub fn maximum<R>(&self, other: R) -> Expr<'a, T::Out, <D as DimMax<R::Dim>>::Output>
    where
        R: IntoExpr<'a>,
        T: Promote<R::Elem>,
        D: DimMax<R::Dim>,
    {
        self.clone().call2("maximum", other)
    }

    /// `numpy.minimum`, elementwise and broadcast (NaN propagates).
    pub fn minimum<R>(&self, other: R) -> Expr<'a, T::Out, <D as DimMax<R::Dim>>::Output>
    where
        R: IntoExpr<'a>,
        T: Promote<R::Elem>,
        D: DimMax<R::Dim>,
    {
        self.clone().call2("minimum", other)
    }

    /// `numpy.power`, elementwise and broadcast (integers wrap; a negative
    /// integer exponent is an error at evaluation).
    pub fn power<R>(&self, other: R) -> Expr<'a, T::Out, <D as DimMax<R::Dim>>::Output>
    where
        R: IntoExpr<'a>,
        T: Promote<R::Elem>,
        D: DimMax<R::Dim>,
    {
        self.clone().call2("power", other)
    }

    /// Evaluates through `cache`: the whole expression is looked up
    /// (memory, then disk), and computed, fused, only on a miss.
    pub fn eval(&self, cache: &ArrayCache) -> Result<Evaluated<T, D>> {
        let (keyed, _, _) = eval::Evaluator::cached(cache, None).root(&self.node)?;
        Evaluated::new(keyed)
    }

    /// Evaluates through `cache` like [`eval`](Self::eval), and reports
    /// what was done: hits and misses and where, what was fused, the plan
    /// cache, bytes hashed.
    pub fn explain(&self, cache: &ArrayCache) -> Result<Explain> {
        let mut trace = explain::Trace::default();
        let (_, source, key) = eval::Evaluator::cached(cache, Some(&mut trace)).root(&self.node)?;
        Ok(trace.finish(&self.node, key, source))
    }

    /// Evaluates with no cache at all (no hashing, no lookup), fused.
    pub fn eval_raw(&self, registry: &Registry) -> Result<ArcArray<T, D>> {
        let a = eval::Evaluator::raw(registry).value_of_root(&self.node)?;
        typed(a)
    }

    /// Evaluates as the chain of registry calls it stands for, one kernel
    /// call per node, every intermediate materialized (numpy's way): the
    /// reference that fused evaluation equals bit for bit.
    pub fn eval_unfused(&self, registry: &Registry) -> Result<ArcArray<T, D>> {
        typed(eval::unfused(registry, &self.node)?)
    }
}

fn typed<T: Element, D: Dimension>(a: AnyArray) -> Result<ArcArray<T, D>> {
    let shape = a.shape().to_vec();
    a.to_shared::<T>()?
        .into_dimensionality::<D>()
        .map_err(|_| Error::Shape {
            shape,
            reason: format!(
                "the expression's result does not have {} dimensions",
                D::NDIM.unwrap_or(0)
            ),
        })
}

/// Unary float functions: `f32` stays `f32`, others give `f64`.
macro_rules! float_fns {
    ($($(#[$doc:meta])* $method:ident => $kernel:literal;)*) => {
        impl<'a, T: FloatOf, D: Dimension> Expr<'a, T, D> {
            $(
                $(#[$doc])*
                pub fn $method(&self) -> Expr<'a, T::Out, D> {
                    self.clone().call($kernel, Params::new())
                }
            )*

            /// `self ** p` with numpy's fast paths for float arrays (`2.0`
            /// is `square`, `0.5` is `sqrt`); otherwise `numpy.power` with a
            /// weak float scalar (an integer array gives `f64`).
            pub fn powf(&self, p: f64) -> Expr<'a, T::Out, D> {
                if T::DTYPE.is_float() && p == 2.0 {
                    return self.clone().call("square", Params::new());
                }
                if T::DTYPE.is_float() && p == 0.5 {
                    return self.clone().call("sqrt", Params::new());
                }
                self.clone().with_scalar("power", Weak::Float(p), false)
            }
        }
    };
}

float_fns! {
    /// `numpy.sqrt`, elementwise.
    sqrt => "sqrt";
    /// `numpy.exp`, elementwise.
    exp => "exp";
    /// `numpy.expm1`, elementwise.
    expm1 => "expm1";
    /// `numpy.log` (natural), elementwise.
    log => "log";
    /// `numpy.log1p`, elementwise.
    log1p => "log1p";
    /// `numpy.sin`, elementwise.
    sin => "sin";
    /// `numpy.cos`, elementwise.
    cos => "cos";
    /// `numpy.tan`, elementwise.
    tan => "tan";
    /// `numpy.tanh`, elementwise.
    tanh => "tanh";
}

fn reduce_params(axis: Option<Axis>, keepdims: bool) -> Params {
    let p = Params::new().keepdims(keepdims);
    match axis {
        Some(Axis(a)) => p.axis(a as isize),
        None => p,
    }
}

/// Reductions: over everything, along an axis, with `keepdims`.
macro_rules! reductions {
    ($($kernel:literal: $whole:ident, $along:ident, $keep:ident => $out:ty, $what:literal;)*) => {
        impl<'a, T: Reduced, D: Dimension> Expr<'a, T, D> {
            $(
                #[doc = concat!("numpy `", $kernel, "` over all elements: ", $what, ".")]
                pub fn $whole(&self) -> Expr<'a, $out, Ix0> {
                    self.clone().call($kernel, reduce_params(None, false))
                }

                #[doc = concat!("numpy `", $kernel, "` along `axis`: ", $what, ".")]
                pub fn $along(&self, axis: Axis) -> Expr<'a, $out, D::Smaller>
                where
                    D: RemoveAxis,
                {
                    self.clone().call($kernel, reduce_params(Some(axis), false))
                }

                #[doc = concat!("numpy `", $kernel, "` with `keepdims=True`, along `axis` or (`None`) over all elements.")]
                pub fn $keep(&self, axis: Option<Axis>) -> Expr<'a, $out, D> {
                    self.clone().call($kernel, reduce_params(axis, true))
                }
            )*

            /// numpy `var` with `ddof` over all elements (two-pass; not
            /// fused: the operand is materialized, fused).
            pub fn var(&self, ddof: i64) -> Expr<'a, T::Mean, Ix0> {
                self.clone().call("var", reduce_params(None, false).ddof(ddof))
            }

            /// numpy `var` with `ddof` along `axis`.
            pub fn var_axis(&self, axis: Axis, ddof: i64) -> Expr<'a, T::Mean, D::Smaller>
            where
                D: RemoveAxis,
            {
                self.clone().call("var", reduce_params(Some(axis), false).ddof(ddof))
            }

            /// numpy `var` with `ddof` and `keepdims=True`, along `axis` or
            /// (`None`) over all elements.
            pub fn var_keepdims(&self, axis: Option<Axis>, ddof: i64) -> Expr<'a, T::Mean, D> {
                self.clone().call("var", reduce_params(axis, true).ddof(ddof))
            }
        }
    };
}

reductions! {
    "sum": sum, sum_axis, sum_keepdims => T::Sum, "pairwise for floats, int32 sums in int64";
    "mean": mean, mean_axis, mean_keepdims => T::Mean, "float64 for integers";
    "min": min, min_axis, min_keepdims => T, "NaN propagates";
    "max": max, max_axis, max_keepdims => T, "NaN propagates";
}

/// A Rust scalar beside an array: weak, as a Python scalar is in numpy 2.
#[derive(Debug, Clone, Copy)]
enum Weak {
    Float(f64),
    Int(i64),
}

impl Weak {
    /// The scalar numpy makes of `self` beside an array of `dtype`.
    fn resolve(self, dtype: DType) -> std::result::Result<Scalar, String> {
        Ok(match (self, dtype) {
            (Weak::Float(v), DType::F32) => Scalar::F32(v as f32),
            (Weak::Float(v), _) => Scalar::F64(v),
            (Weak::Int(v), DType::F32) => Scalar::F32(v as f32),
            (Weak::Int(v), DType::F64) => Scalar::F64(v as f64),
            (Weak::Int(v), DType::I32) => Scalar::I32(
                i32::try_from(v)
                    .map_err(|_| format!("Python integer {v} out of bounds for int32"))?,
            ),
            (Weak::Int(v), DType::I64) => Scalar::I64(v),
        })
    }
}

/// The element type of a weak scalar's operation with an array of `T`:
/// `S` is `f64` (a float literal) or `i64` (an integer literal).
pub trait WeakWith<S>: Element {
    /// The result's element type for `+ - *`.
    type Arith: Element;
}

macro_rules! weak_with {
    ($($s:ty: $($t:ty => $o:ty),*;)*) => {$($(
        impl WeakWith<$s> for $t {
            type Arith = $o;
        }
    )*)*};
}

weak_with! {
    f64: f32 => f32, f64 => f64, i32 => f64, i64 => f64;
    i64: f32 => f32, f64 => f64, i32 => i32, i64 => i64;
}

/// `Expr op rhs` for each kind of right operand that is an array (one impl
/// per kind, not one generic impl, so that a literal right operand such as
/// `x - 0.5` infers its type from the scalar impls alone).
macro_rules! array_rhs {
    ($tr:ident, $method:ident, $kernel:literal, $out:ident) => {
        array_rhs!(@one $tr, $method, $kernel, $out, ['a, U, E], Expr<'a, U, E>, U, E, []);
        array_rhs!(@one $tr, $method, $kernel, $out, ['a, 'r, U, E], &'r Expr<'a, U, E>, U, E, []);
        array_rhs!(@one $tr, $method, $kernel, $out, ['a, U, E], ndarray::ArrayView<'a, U, E>, U, E, []);
        array_rhs!(@one $tr, $method, $kernel, $out, ['a, 'r, U, E], &'r Evaluated<U, E>, U, E, []);
        array_rhs!(@one $tr, $method, $kernel, $out, ['a, S, U, E], &'a ArrayBase<S, E>, U, E, [S: Data<Elem = U>,]);
    };
    (@one $tr:ident, $method:ident, $kernel:literal, $out:ident, [$($g:tt)*], $rhs:ty, $u:ident, $e:ident, [$($extra:tt)*]) => {
        impl<$($g)*, T, D> $tr<$rhs> for Expr<'a, T, D>
        where
            T: Element + Promote<$u>,
            <T as Promote<$u>>::Out: $out,
            $u: Element,
            $e: Dimension,
            D: Dimension + DimMax<$e>,
            $($extra)*
        {
            type Output = Expr<'a, <<T as Promote<$u>>::Out as $out>::Out, <D as DimMax<$e>>::Output>;
            fn $method(self, rhs: $rhs) -> Self::Output {
                self.call2($kernel, rhs)
            }
        }
    };
}

/// The element type of `+ - *`: the promoted type itself.
pub trait Same: Element {
    /// `Self`.
    type Out: Element;
}

impl<T: Element> Same for T {
    type Out = T;
}

array_rhs!(Add, add, "add", Same);
array_rhs!(Sub, sub, "subtract", Same);
array_rhs!(Mul, mul, "multiply", Same);
array_rhs!(Div, div, "divide", FloatOf);

macro_rules! array_lhs {
    ($($tr:ident, $method:ident, $kernel:literal, $out:ident;)*) => {$(
        impl<'a, S, A, D, U, E> $tr<Expr<'a, U, E>> for &'a ArrayBase<S, D>
        where
            S: Data<Elem = A>,
            A: Element + Promote<U>,
            <A as Promote<U>>::Out: $out,
            D: Dimension + DimMax<E>,
            U: Element,
            E: Dimension,
        {
            type Output = Expr<'a, <<A as Promote<U>>::Out as $out>::Out, <D as DimMax<E>>::Output>;
            fn $method(self, rhs: Expr<'a, U, E>) -> Self::Output {
                Expr::from(self).call2($kernel, rhs)
            }
        }
    )*};
}

array_lhs! {
    Add, add, "add", Same;
    Sub, sub, "subtract", Same;
    Mul, mul, "multiply", Same;
    Div, div, "divide", FloatOf;
}

impl<T: Element, D: Dimension> Neg for Expr<'_, T, D> {
    type Output = Self;
    fn neg(self) -> Self {
        self.call("negative", Params::new())
    }
}

macro_rules! scalar_ops {
    ($($s:ty => $weak:ident as $conv:ty;)*) => {$(
        impl<'a, T: WeakWith<$s>, D: Dimension> Add<$s> for Expr<'a, T, D> {
            type Output = Expr<'a, T::Arith, D>;
            fn add(self, v: $s) -> Self::Output {
                self.with_scalar("add", Weak::$weak(v as $conv), false)
            }
        }
        impl<'a, T: WeakWith<$s>, D: Dimension> Add<Expr<'a, T, D>> for $s {
            type Output = Expr<'a, T::Arith, D>;
            fn add(self, e: Expr<'a, T, D>) -> Self::Output {
                e.with_scalar("add", Weak::$weak(self as $conv), true)
            }
        }
        impl<'a, T: WeakWith<$s>, D: Dimension> Sub<$s> for Expr<'a, T, D> {
            type Output = Expr<'a, T::Arith, D>;
            fn sub(self, v: $s) -> Self::Output {
                self.with_scalar("subtract", Weak::$weak(v as $conv), false)
            }
        }
        impl<'a, T: WeakWith<$s>, D: Dimension> Sub<Expr<'a, T, D>> for $s {
            type Output = Expr<'a, T::Arith, D>;
            fn sub(self, e: Expr<'a, T, D>) -> Self::Output {
                e.with_scalar("subtract", Weak::$weak(self as $conv), true)
            }
        }
        impl<'a, T: WeakWith<$s>, D: Dimension> Mul<$s> for Expr<'a, T, D> {
            type Output = Expr<'a, T::Arith, D>;
            fn mul(self, v: $s) -> Self::Output {
                self.with_scalar("multiply", Weak::$weak(v as $conv), false)
            }
        }
        impl<'a, T: WeakWith<$s>, D: Dimension> Mul<Expr<'a, T, D>> for $s {
            type Output = Expr<'a, T::Arith, D>;
            fn mul(self, e: Expr<'a, T, D>) -> Self::Output {
                e.with_scalar("multiply", Weak::$weak(self as $conv), true)
            }
        }
        impl<'a, T: FloatOf, D: Dimension> Div<$s> for Expr<'a, T, D> {
            type Output = Expr<'a, T::Out, D>;
            fn div(self, v: $s) -> Self::Output {
                self.with_scalar("divide", Weak::$weak(v as $conv), false)
            }
        }
        impl<'a, T: FloatOf, D: Dimension> Div<Expr<'a, T, D>> for $s {
            type Output = Expr<'a, T::Out, D>;
            fn div(self, e: Expr<'a, T, D>) -> Self::Output {
                e.with_scalar("divide", Weak::$weak(self as $conv), true)
            }
        }
    )*};
}

// Only `f64` and `i64`: with one impl per kind, a literal (`x * 2.0`,
// `x + 1`) infers its type, as a Python scalar needs no annotation.
scalar_ops! {
    f64 => Float as f64;
    i64 => Int as i64;
}
