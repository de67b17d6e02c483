//! Elementwise kernels: numpy's unary and binary ufuncs, and user closures.
//!
//! Semantics are numpy 2.x's for arrays of `f32`, `f64`, `i32` and `i64`:
//!
//! - `negative`, `absolute` and `square` keep the dtype; integers wrap
//!   (`absolute(i32::MIN) == i32::MIN`).
//! - The float functions (`sqrt`, `exp`, `log`, `sin`...) keep `f32` and give
//!   `f64` for every other dtype.
//! - Binary kernels broadcast like numpy and promote like
//!   `numpy.result_type` ([`DType::promote`]); integer arithmetic wraps;
//!   `divide` is true division (integers divide as `f64`: `1/0` is `inf`,
//!   `0/0` NaN); integer `power` wraps and rejects negative exponents.
//! - `maximum`/`minimum` propagate NaN bit for bit as numpy does.
//!
//! Inputs may have any layout; results are new arrays in standard (C)
//! layout. Large arrays are computed in parallel, with the same bits for any
//! number of threads (see `engine`).
//!
//! # Accuracy and speed
//!
//! Arithmetic, `sqrt`, `maximum` and `minimum` are exact (IEEE 754, as
//! numpy). `exp`, `expm1`, `log`, `log1p`, `tanh`, `sin` and `cos` are
//! this crate's own vectorizable functions (`math`, `trig`, `pow`), within
//! 1 ulp of the correctly rounded result, `tan` within 2 (sin, cos and tan
//! hand arguments beyond 2^19 to libm); float `power` handles zeros,
//! infinities, NaN and huge exponents in a scalar pass of its own. The loops are
//! compiled for SSE2, AVX2 and AVX-512 and chosen at run time (`simd`),
//! with the same bits on every level, so results cached on one machine are
//! valid on another.
//!
//! Module map: `engine` (broadcasting, tasks, threads, output memory),
//! `source` (reading operands of any layout), `simd` (the loops),
//! `ops` (numpy's element semantics), `math` (exp and log families),
//! `trig` (sin and cos), `pow` (power).

mod chain;
mod engine;
mod math;
mod ops;
mod plan;
mod pow;
mod simd;
mod source;
mod trig;

#[cfg(test)]
mod tests;

pub(crate) use engine::broadcast_shape;
use engine::{binary, unary, Cost};
use ops::Closure;
#[cfg(test)]
pub(crate) use simd::with_level_cap;
pub(crate) use simd::{level as vector_level, Level};

use super::{Kernel, Params, Registry};
use crate::element::DType;
use crate::error::{Error, Result};
use crate::value::{AnyArray, AnyView};

/// A builtin kernel: a name, a version, a doc line and a function of the
/// inputs.
///
/// The version is hashed into every call key. It must change whenever any
/// output bit can change for some input of some dtype (a new algorithm, a
/// different rounding, another NaN payload...), or caches written by an
/// older build serve the old bits; tests/integration/kernel_versions.rs pins
/// every kernel's output bits to its version. History: "2" for `exp` (f32
/// changed in 1197f52; the version is per kernel, not per dtype), `log`
/// (libm's, then vectorized in 7d3f1e4), `expm1` and `log1p` (9bb27f3),
/// `tanh` (d97d0e6), `sin` and `cos` (53c07d9), `tan` (aa595c4), `power`
/// (libm's `pow`, then the crate's own, `pow`); "3" for `exp`, `expm1`,
/// `tanh`, `sin`, `cos` and `tan` (their polynomials and reductions use
/// fused multiply-adds: fewer roundings, other bits); "4" for `sin`, `cos`
/// and `tan` (a shorter reduction, π/2 in three doubles, and Estrin's
/// scheme: other roundings); "2" for `add` and `multiply` of floats (where
/// both operands are NaNs, the first's, at every level and with a scalar
/// on either side: before, the SSE2 loop and a scalar operand gave the
/// second's; see `ops::first_nan`).
struct Builtin {
    name: &'static str,
    version: &'static str,
    arity: usize,
    doc: &'static str,
    run: fn(&[AnyView<'_>]) -> Result<AnyArray>,
}

impl Kernel for Builtin {
    fn name(&self) -> &str {
        self.name
    }
    fn version(&self) -> &str {
        self.version
    }
    fn arity(&self) -> usize {
        self.arity
    }
    fn doc(&self) -> &str {
        self.doc
    }
    fn compute(&self, inputs: &[AnyView<'_>], _params: &Params) -> Result<AnyArray> {
        (self.run)(inputs)
    }
}

/// Runs `$body` with the type alias `$t` set to the element type of `$dtype`.
macro_rules! with_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
            DType::I32 => {
                type $t = i32;
                $body
            }
            DType::I64 => {
                type $t = i64;
                $body
            }
        }
    };
}

// After `with_type!`, which it uses.
pub(crate) mod fused;

/// A unary kernel keeping the input's dtype.
macro_rules! same_dtype {
    ($name:literal, $version:literal, $op:ident, $doc:literal) => {
        Builtin {
            name: $name,
            version: $version,
            arity: 1,
            doc: $doc,
            run: |inputs| {
                let x = &inputs[0];
                Ok(with_type!(x.dtype(), T => unary::<T, T, _>(x, Cost::Cheap, ops::$op)))
            },
        }
    };
}

/// A unary float function: `f32` stays `f32`, anything else is computed as `f64`.
macro_rules! float_fn {
    ($name:literal, $version:literal, $op:ident, $cost:expr, $doc:literal) => {
        Builtin {
            name: $name,
            version: $version,
            arity: 1,
            doc: $doc,
            run: |inputs| {
                let x = &inputs[0];
                Ok(match x.dtype() {
                    DType::F32 => unary::<f32, f32, _>(x, $cost, ops::$op),
                    _ => unary::<f64, f64, _>(x, $cost, ops::$op),
                })
            },
        }
    };
}

/// A binary kernel computing in the promoted dtype.
macro_rules! promoted {
    ($name:literal, $version:literal, $op:ident, $doc:literal) => {
        Builtin {
            name: $name,
            version: $version,
            arity: 2,
            doc: $doc,
            run: |inputs| {
                let (a, b) = (&inputs[0], &inputs[1]);
                with_type!(a.dtype().promote(b.dtype()), T =>
                    binary::<T, T, T, _>(a, b, Cost::Cheap, ops::$op))
            },
        }
    };
}

fn divide(inputs: &[AnyView<'_>]) -> Result<AnyArray> {
    let (a, b) = (&inputs[0], &inputs[1]);
    match a.dtype().promote(b.dtype()) {
        DType::F32 => binary::<f32, f32, f32, _>(a, b, Cost::Vector, ops::Div),
        // numpy's true division of integers casts both operands to f64.
        _ => binary::<f64, f64, f64, _>(a, b, Cost::Vector, ops::Div),
    }
}

fn power(inputs: &[AnyView<'_>]) -> Result<AnyArray> {
    let (a, b) = (&inputs[0], &inputs[1]);
    match a.dtype().promote(b.dtype()) {
        DType::F32 => binary::<f32, f32, f32, _>(a, b, Cost::Vector, ops::Pow),
        // The same bits either way; FMA only where the loop has it.
        DType::F64 if simd::level() >= simd::Level::V3 => {
            binary::<f64, f64, f64, _>(a, b, Cost::Vector, ops::PowFma)
        }
        DType::F64 => binary::<f64, f64, f64, _>(a, b, Cost::Vector, ops::Pow),
        int_dtype => {
            // numpy raises as soon as its loop meets a negative exponent;
            // when the output is not empty every exponent is met.
            let empty = engine::broadcast_shape(a.shape(), b.shape())?.contains(&0);
            if !empty && any_negative(b) {
                return Err(Error::Domain {
                    kernel: "power".into(),
                    reason: "Integers to negative integer powers are not allowed.".into(),
                });
            }
            if int_dtype == DType::I32 {
                binary::<i32, i32, i32, _>(a, b, Cost::Scalar, ops::IPow)
            } else {
                binary::<i64, i64, i64, _>(a, b, Cost::Scalar, ops::IPow)
            }
        }
    }
}

fn any_negative(v: &AnyView<'_>) -> bool {
    match v {
        AnyView::I32(v) => v.iter().any(|&e| e < 0),
        AnyView::I64(v) => v.iter().any(|&e| e < 0),
        AnyView::F32(v) => v.iter().any(|&e| e < 0.0),
        AnyView::F64(v) => v.iter().any(|&e| e < 0.0),
    }
}

/// Every builtin elementwise kernel.
fn builtins() -> Vec<Builtin> {
    vec![
        same_dtype!("negative", "1", Neg, "numerical negative, elementwise (integers wrap)"),
        same_dtype!("absolute", "1", Abs, "absolute value, elementwise (integers wrap: abs(MIN) == MIN)"),
        same_dtype!("square", "1", Square, "square, elementwise (integers wrap)"),
        float_fn!("sqrt", "1", Sqrt, Cost::Vector, "non-negative square root, elementwise"),
        float_fn!("exp", "3", Exp, Cost::Vector, "exponential e**x, elementwise"),
        float_fn!("expm1", "3", Expm1, Cost::Vector, "exp(x) - 1, accurate for small x, elementwise"),
        float_fn!("log", "2", Log, Cost::Vector, "natural logarithm, elementwise"),
        float_fn!("log1p", "2", Log1p, Cost::Vector, "log(1 + x), accurate for small x, elementwise"),
        float_fn!("sin", "4", Sin, Cost::Vector, "sine (radians), elementwise"),
        float_fn!("cos", "4", Cos, Cost::Vector, "cosine (radians), elementwise"),
        float_fn!("tan", "4", Tan, Cost::Vector, "tangent (radians), elementwise"),
        float_fn!("tanh", "3", Tanh, Cost::Vector, "hyperbolic tangent, elementwise"),
        promoted!("add", "2", Add, "sum of two broadcast arrays, elementwise (integers wrap)"),
        promoted!("subtract", "1", Sub, "difference of two broadcast arrays, elementwise (integers wrap)"),
        promoted!("multiply", "2", Mul, "product of two broadcast arrays, elementwise (integers wrap)"),
        promoted!("maximum", "1", Maximum, "larger of two broadcast arrays, elementwise; NaN propagates"),
        promoted!("minimum", "1", Minimum, "smaller of two broadcast arrays, elementwise; NaN propagates"),
        Builtin {
            name: "divide",
            version: "1",
            arity: 2,
            doc: "true division of two broadcast arrays, elementwise (integers give float64)",
            run: divide,
        },
        Builtin {
            name: "power",
            version: "2",
            arity: 2,
            doc: "first array raised to the second, elementwise (integers wrap; negative integer exponents are an error)",
            run: power,
        },
    ]
}

/// Registers the elementwise builtins.
pub(crate) fn register(r: &mut Registry) {
    for k in builtins() {
        r.register(k).expect("builtin kernel names are unique");
    }
}

/// A user kernel from a function of one `f64`.
struct UserF64<F> {
    name: String,
    version: String,
    doc: String,
    f: F,
}

impl<F: Fn(f64) -> f64 + Send + Sync> Kernel for UserF64<F> {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn arity(&self) -> usize {
        1
    }
    fn doc(&self) -> &str {
        &self.doc
    }
    fn compute(&self, inputs: &[AnyView<'_>], _params: &Params) -> Result<AnyArray> {
        Ok(unary::<f64, f64, _>(
            &inputs[0],
            Cost::Vector,
            Closure(&self.f),
        ))
    }
}

/// A user kernel from a function of one `f32`.
struct UserF32<F> {
    name: String,
    version: String,
    doc: String,
    f: F,
}

impl<F: Fn(f32) -> f32 + Send + Sync> Kernel for UserF32<F> {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn arity(&self) -> usize {
        1
    }
    fn doc(&self) -> &str {
        &self.doc
    }
    fn compute(&self, inputs: &[AnyView<'_>], _params: &Params) -> Result<AnyArray> {
        let x = &inputs[0];
        if x.dtype() != DType::F32 {
            return Err(Error::UnsupportedDType {
                kernel: self.name.clone(),
                dtype: x.dtype(),
            });
        }
        Ok(unary::<f32, f32, _>(x, Cost::Vector, Closure(&self.f)))
    }
}

impl Registry {
    /// Adds an elementwise kernel computing `f` on every element, in `f64`.
    ///
    /// Like a numpy ufunc with a single `d->d` loop: `f32`, `i32` and `i64`
    /// inputs are converted to `f64` and the result is `f64`. The input may
    /// have any layout; the result is in standard layout. Large inputs are
    /// split across rayon's threads, with the same result for any number of
    /// threads; `f` must therefore be a pure function of its argument.
    ///
    /// `version` is part of every cache key of the kernel: change it when
    /// `f` changes, so that results cached for the old `f` are not served.
    /// An error if `name` is taken.
    ///
    /// ```
    /// use ndcache::{Params, Registry};
    /// let mut reg = Registry::with_builtins();
    /// reg.register_elementwise_f64("sigmoid", "1", "logistic function 1/(1+e^-x)", |x| {
    ///     1.0 / (1.0 + (-x).exp())
    /// })?;
    /// let x = ndarray::array![[0.0f64, 2.0], [-2.0, 40.0]];
    /// let y = reg.call("sigmoid", &[x.view().into()], &Params::new())?;
    /// assert_eq!(y.shape(), &[2, 2]);
    /// assert_eq!(y.typed::<f64>()?[[0, 0]], 0.5);
    /// assert_eq!(y.typed::<f64>()?[[1, 1]], 1.0);
    ///
    /// // Integers are converted to f64 first.
    /// let n = ndarray::array![0i32, 1];
    /// let y = reg.call("sigmoid", &[n.view().into()], &Params::new())?;
    /// assert_eq!(y.dtype(), ndcache::DType::F64);
    /// # Ok::<(), ndcache::Error>(())
    /// ```
    pub fn register_elementwise_f64(
        &mut self,
        name: &str,
        version: &str,
        doc: &str,
        f: impl Fn(f64) -> f64 + Send + Sync + 'static,
    ) -> Result<()> {
        self.register(UserF64 {
            name: name.to_owned(),
            version: version.to_owned(),
            doc: doc.to_owned(),
            f,
        })
    }

    /// Adds an elementwise kernel computing `f` on every element of an
    /// `f32` array.
    ///
    /// Inputs of any other dtype are an [`Error::UnsupportedDType`]. Otherwise
    /// as [`register_elementwise_f64`](Self::register_elementwise_f64).
    ///
    /// ```
    /// use ndcache::{Error, Params, Registry};
    /// let mut reg = Registry::new();
    /// reg.register_elementwise_f32("relu", "1", "max(x, 0)", |x| x.max(0.0))?;
    /// let x = ndarray::array![-1.5f32, 0.0, 2.5];
    /// let y = reg.call("relu", &[x.view().into()], &Params::new())?;
    /// assert_eq!(y.typed::<f32>()?.as_slice(), Some(&[0.0f32, 0.0, 2.5][..]));
    ///
    /// let d = ndarray::array![1.0f64];
    /// let err = reg.call("relu", &[d.view().into()], &Params::new()).unwrap_err();
    /// assert_eq!(err.to_string(), "kernel 'relu' does not support dtype float64");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn register_elementwise_f32(
        &mut self,
        name: &str,
        version: &str,
        doc: &str,
        f: impl Fn(f32) -> f32 + Send + Sync + 'static,
    ) -> Result<()> {
        self.register(UserF32 {
            name: name.to_owned(),
            version: version.to_owned(),
            doc: doc.to_owned(),
            f,
        })
    }
}
