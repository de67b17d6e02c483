//! The kernel registry: named computations on arrays with numpy's semantics.
//!
//! A [`Kernel`] declares its name, version, arity, parameters and a one-line
//! doc, and computes a result from dtype-erased input views. The [`Registry`]
//! maps names to kernels; [`Registry::with_builtins`] holds numpy's ufuncs,
//! reductions, `cumsum` and `sort` for f32, f64, i32 and i64.

pub(crate) mod elementwise;
mod params;
pub(crate) mod reduce;

pub use params::{ParamKind, ParamSpec, ParamValue, Params};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::value::{AnyArray, AnyView};

/// A named computation on arrays.
///
/// The version is part of every call key: change it whenever any output bit
/// can change for some input (a new algorithm, another rounding, another NaN
/// payload, even within the documented accuracy), so that cached results of
/// the old version become misses instead of serving the old bits. The
/// builtin kernels each carry their own version, and
/// tests/integration/kernel_versions.rs pins their output bits to it.
pub trait Kernel: Send + Sync {
    /// The name it is called by (`exp`).
    fn name(&self) -> &str;

    /// The version, hashed into call keys; must change whenever any output
    /// bit can change for some input.
    fn version(&self) -> &str;

    /// How many input arrays it takes.
    fn arity(&self) -> usize;

    /// The parameters it accepts (none by default).
    fn params(&self) -> &[ParamSpec] {
        &[]
    }

    /// One line saying what it computes.
    fn doc(&self) -> &str;

    /// Computes the result.
    ///
    /// `inputs` has exactly [`arity`](Self::arity) views; `params` has been
    /// checked against [`params`](Self::params), with defaults filled in.
    /// Must be deterministic: the same inputs give the same bits, whatever
    /// the number of threads.
    fn compute(&self, inputs: &[AnyView<'_>], params: &Params) -> Result<AnyArray>;
}

impl fmt::Debug for dyn Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("arity", &self.arity())
            .finish_non_exhaustive()
    }
}

type UserFn = dyn Fn(&[AnyView<'_>], &Params) -> Result<AnyArray> + Send + Sync;

/// A kernel made of a closure: see [`Registry::register_fn`].
struct FnKernel {
    name: String,
    version: String,
    arity: usize,
    params: Vec<ParamSpec>,
    doc: String,
    f: Box<UserFn>,
}

impl Kernel for FnKernel {
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn arity(&self) -> usize {
        self.arity
    }
    fn params(&self) -> &[ParamSpec] {
        &self.params
    }
    fn doc(&self) -> &str {
        &self.doc
    }
    fn compute(&self, inputs: &[AnyView<'_>], params: &Params) -> Result<AnyArray> {
        (self.f)(inputs, params)
    }
}

/// A kernel resolved for one call: the kernel, its canonical parameters and
/// their encoding for the call key. Made by [`Registry::prepare`], which
/// checks the kernel's name, the number of inputs and the parameters before
/// any input is read.
///
/// ```
/// use ndcache::{Params, Registry};
/// let reg = Registry::with_builtins();
/// let sum = reg.prepare("sum", 1, &Params::new().axis(0))?;
/// assert_eq!(sum.kernel().name(), "sum");
/// assert!(reg.prepare("sum", 1, &Params::new().set("ddof", 1.0)).is_err());
/// # Ok::<(), ndcache::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The kernel.
    pub(crate) kernel: Arc<dyn Kernel>,
    /// The parameters with defaults filled in.
    pub(crate) params: Params,
    /// The canonical encoding of the parameters.
    pub(crate) param_bytes: Vec<u8>,
}

impl Prepared {
    /// The kernel.
    pub fn kernel(&self) -> &dyn Kernel {
        self.kernel.as_ref()
    }

    /// Runs the kernel on `inputs` (after checking their number and shapes),
    /// with no cache.
    pub fn compute(&self, inputs: &[AnyView<'_>]) -> Result<AnyArray> {
        check_arity(self.kernel.as_ref(), inputs.len())?;
        for v in inputs {
            check_shape(v.shape(), v.dtype().size())?;
        }
        self.kernel.compute(inputs, &self.params)
    }
}

/// numpy's limit on the number of dimensions (`NPY_MAXDIMS`).
pub(crate) const MAX_DIMS: usize = 64;

/// Checks that an array of `shape` could exist: at most [`MAX_DIMS`]
/// dimensions, and (as numpy requires) the product of its non-zero
/// dimensions, in bytes, within the largest possible allocation. An empty
/// array with huge other dimensions would otherwise make reductions and
/// broadcasts ask for impossible outputs.
pub(crate) fn check_shape(shape: &[usize], elem_size: usize) -> Result<()> {
    if shape.len() > MAX_DIMS {
        return Err(Error::Shape {
            shape: shape.to_vec(),
            reason: format!("at most {MAX_DIMS} dimensions are supported, as in numpy"),
        });
    }
    let bytes = shape
        .iter()
        .filter(|&&d| d > 0)
        .try_fold(elem_size, |acc, &d| acc.checked_mul(d));
    match bytes {
        Some(b) if b <= isize::MAX as usize => Ok(()),
        _ => Err(too_big(shape)),
    }
}

fn too_big(shape: &[usize]) -> Error {
    Error::Shape {
        shape: shape.to_vec(),
        reason: "array is too big: its size exceeds the largest possible allocation".into(),
    }
}

/// Checks that an output of `shape` can be allocated, before computing it:
/// an error (numpy's MemoryError) rather than an abort. Outputs under
/// 1 GiB are not tried.
pub(crate) fn check_output(shape: &[usize], elem_size: usize) -> Result<()> {
    check_shape(shape, elem_size)?;
    let n: usize = shape.iter().product();
    let bytes = n.saturating_mul(elem_size);
    if bytes > 1 << 30 {
        let mut probe: Vec<u8> = Vec::new();
        probe.try_reserve_exact(bytes).map_err(|_| Error::Shape {
            shape: shape.to_vec(),
            reason: format!("cannot allocate {bytes} bytes for the result"),
        })?;
    }
    Ok(())
}

fn check_arity(k: &dyn Kernel, got: usize) -> Result<()> {
    if got != k.arity() {
        return Err(Error::Arity {
            kernel: k.name().to_owned(),
            expected: k.arity(),
            got,
        });
    }
    Ok(())
}

/// Kernels by name.
///
/// ```
/// use ndcache::{Registry, Params, AnyArray};
/// let reg = Registry::with_builtins();
/// let x = ndarray::array![1.0f64, 2.0, 3.0];
/// let s = reg.call("sum", &[x.view().into()], &Params::new())?;
/// assert_eq!(s.typed::<f64>()?[[]], 6.0);
/// let err = reg.get("exq").unwrap_err();
/// assert_eq!(err.to_string(), "unknown kernel 'exq'; did you mean 'exp'?");
/// # Ok::<(), ndcache::Error>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    kernels: BTreeMap<String, Arc<dyn Kernel>>,
    /// Changes whenever a kernel is added (a clone keeps it: same kernels),
    /// so that keys computed against this registry can be remembered.
    id: u64,
    /// Whether the builtins are registered (then the names of the fusable
    /// elementwise builtins and reductions are theirs: a name cannot be
    /// registered twice).
    builtins: bool,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

fn next_registry_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kernels.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            kernels: BTreeMap::new(),
            id: next_registry_id(),
            builtins: false,
        }
    }

    /// The identity of this registry's contents: equal for clones, new
    /// after every [`register`](Self::register).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// A registry holding every builtin kernel.
    pub fn with_builtins() -> Self {
        let mut r = Registry::new();
        builtins::register(&mut r);
        r.builtins = true;
        r
    }

    /// Adds a kernel; an error if its name is taken.
    pub fn register(&mut self, kernel: impl Kernel + 'static) -> Result<()> {
        self.register_arc(Arc::new(kernel))
    }

    /// Adds a shared kernel; an error if its name is taken.
    pub fn register_arc(&mut self, kernel: Arc<dyn Kernel>) -> Result<()> {
        let name = kernel.name().to_owned();
        if self.kernels.contains_key(&name) {
            return Err(Error::DuplicateKernel { name });
        }
        self.kernels.insert(name, kernel);
        self.id = next_registry_id();
        Ok(())
    }

    /// Adds a general kernel made of a closure from input views and
    /// parameters to a result or an error.
    ///
    /// ```
    /// use ndcache::{Registry, Params, AnyArray, AnyView, ParamSpec, ParamKind, Error};
    /// let mut reg = Registry::new();
    /// let scale = ParamSpec { name: "by", kind: ParamKind::Float, default: Some(2.0.into()), doc: "factor" };
    /// reg.register_fn("scale", "1", 1, vec![scale], "multiplies by a factor", |inputs, params| {
    ///     let x = inputs[0].typed::<f64>()?;
    ///     let by = params.float("by").unwrap_or(2.0);
    ///     Ok(AnyArray::from(x.mapv(|v| v * by)))
    /// })?;
    /// let x = ndarray::array![1.0f64, 2.0];
    /// let y = reg.call("scale", &[x.view().into()], &Params::new().set("by", 3.0))?;
    /// assert_eq!(y.typed::<f64>()?.as_slice(), Some(&[3.0, 6.0][..]));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn register_fn(
        &mut self,
        name: &str,
        version: &str,
        arity: usize,
        params: Vec<ParamSpec>,
        doc: &str,
        f: impl Fn(&[AnyView<'_>], &Params) -> Result<AnyArray> + Send + Sync + 'static,
    ) -> Result<()> {
        self.register(FnKernel {
            name: name.to_owned(),
            version: version.to_owned(),
            arity,
            params,
            doc: doc.to_owned(),
            f: Box::new(f),
        })
    }

    /// The kernel called `name`; an error suggesting the closest names if
    /// there is none.
    pub fn get(&self, name: &str) -> Result<&Arc<dyn Kernel>> {
        self.kernels.get(name).ok_or_else(|| Error::UnknownKernel {
            name: name.to_owned(),
            suggestions: suggest(name, self.kernels.keys().map(String::as_str)),
        })
    }

    /// Whether a kernel is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.kernels.contains_key(name)
    }

    /// Every kernel, in name order.
    pub fn kernels(&self) -> impl Iterator<Item = &Arc<dyn Kernel>> {
        self.kernels.values()
    }

    /// The number of kernels.
    pub fn len(&self) -> usize {
        self.kernels.len()
    }

    /// Whether the registry is empty.
    pub fn is_empty(&self) -> bool {
        self.kernels.is_empty()
    }

    /// Resolves a call: finds the kernel, checks the number of inputs and
    /// canonicalizes the parameters; an error names what was wrong.
    pub fn prepare(&self, name: &str, arity: usize, params: &Params) -> Result<Prepared> {
        let kernel = Arc::clone(self.get(name)?);
        check_arity(kernel.as_ref(), arity)?;
        let (params, param_bytes) = params.canonicalize(kernel.name(), kernel.params())?;
        Ok(Prepared {
            kernel,
            params,
            param_bytes,
        })
    }

    /// Whether `name` is one of the builtins (and not a user kernel of
    /// that name in a registry without them).
    pub(crate) fn is_builtin(&self, name: &str) -> bool {
        self.builtins && self.kernels.contains_key(name)
    }

    /// Runs a kernel with no cache.
    pub fn call(&self, name: &str, inputs: &[AnyView<'_>], params: &Params) -> Result<AnyArray> {
        self.prepare(name, inputs.len(), params)?.compute(inputs)
    }
}

/// Up to three names within a small edit distance of `name`, closest first.
fn suggest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = names
        .filter_map(|n| {
            let d = edit_distance(name, n);
            (d <= limit || (n.starts_with(name) && name.len() >= 2)).then_some((d, n))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// Levenshtein distance (with adjacent transpositions counted once).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let names = [
            "exp", "expm1", "log", "log1p", "sum", "sqrt", "square", "subtract",
        ];
        let s = |q: &str| suggest(q, names.iter().copied());
        assert_eq!(s("exq"), vec!["exp"]);
        assert_eq!(s("sqaure"), vec!["square"]);
        assert_eq!(s("lgo"), vec!["log"]);
        assert_eq!(s("zzzzzz"), Vec::<String>::new());
        assert_eq!(s("sub"), vec!["sum", "subtract"]);
    }

    #[test]
    fn register_and_call_fn_kernel() {
        let mut reg = Registry::new();
        reg.register_fn("twice", "1", 1, vec![], "doubles", |inputs, _| {
            Ok(AnyArray::from(inputs[0].typed::<i64>()?.mapv(|v| v * 2)))
        })
        .unwrap();
        let x = ndarray::array![1i64, 2, 3];
        let y = reg
            .call("twice", &[x.view().into()], &Params::new())
            .unwrap();
        assert_eq!(y.typed::<i64>().unwrap().as_slice(), Some(&[2, 4, 6][..]));
        let e = reg
            .call("twice", &[x.view().into(), x.view().into()], &Params::new())
            .unwrap_err();
        assert_eq!(e.to_string(), "kernel 'twice' takes 1 input(s), got 2");
        let e = reg.register_fn("twice", "2", 1, vec![], "", |_, _| unreachable!());
        assert!(matches!(e, Err(Error::DuplicateKernel { .. })));
        let f = ndarray::array![1.0f32];
        let e = reg
            .call("twice", &[f.view().into()], &Params::new())
            .unwrap_err();
        assert!(matches!(e, Error::DTypeMismatch { .. }));
    }
}

mod builtins {
    //! Registration of the builtin kernels.
    use super::Registry;

    /// Registers every builtin kernel.
    pub(super) fn register(r: &mut Registry) {
        super::elementwise::register(r);
        super::reduce::register(r);
    }
}
