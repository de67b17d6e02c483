//! Reductions, scans and sorts: numpy's `sum`, `prod`, `mean`, `min`, `max`,
//! `var`, `std`, `cumsum` and `sort` for f32, f64, i32 and i64.
//!
//! # Semantics
//!
//! numpy 2.x is the oracle: result dtypes (`sum`/`prod`/`cumsum` of `i32`
//! give `i64`, `mean`/`var`/`std` of integers give `f64`, floats keep their
//! dtype), empty inputs (`sum` 0, `prod` 1, `mean`/`var`/`std` NaN, `max`/`min`
//! an [`Error::EmptyReduction`]), `ddof` (the divisor is `max(n - ddof, 0)`),
//! NaN propagation through `max`/`min`, NaN sorted last, negative axes, and
//! `keepdims`. numpy's own quirks are kept where they show: `sum`, `prod`,
//! `max` and `min` of a 0-d array accept `axis` 0 or -1 (`mean`, `var`,
//! `std` and `sort` reject it), and `cumsum` treats a 0-d array as 1-d.
//!
//! `sort` takes `axis` (default -1) and `flatten` (default false):
//! `flatten=true` is numpy's `axis=None`, sorting the C-order flattening
//! into a 1-D array; `axis` must then keep its default.
//!
//! # Determinism
//!
//! Every result is the same bits on one thread or many, and for a C-order
//! array, its Fortran-order twin and a strided view of equal values (they
//! share one fingerprint, so a cached result must be what the other layout
//! would compute). Each lane is computed in its logical order by a method
//! fixed by its length alone:
//!
//! - float `sum`, `mean`, `var`, `std`: numpy's pairwise summation tree
//!   (`pairwise`), whose halves run in parallel; bit-identical to numpy for
//!   a C-contiguous lane. numpy adds the rows of a non-last axis of a C
//!   array one after the other instead, so there we are more accurate than
//!   numpy and may differ in the last place; means and variances of
//!   integers are summed pairwise in `f64` too (numpy sums them in chunks);
//! - float `prod`: multiplied in order, like numpy;
//! - integer `sum`, `prod`, and `max`, `min`: exact, so any order;
//! - `cumsum`: fixed blocks of 32768 values (numpy's sequential sum within
//!   the first block, see `cumsum`);
//! - `sort`: a sorted sequence of keys is unique (see `sort`).
//!
//! A NaN result is numpy's canonical `np.nan` (the NaN that arithmetic
//! yields depends on operand order, which the compiler may swap), and
//! `max`/`min` order `-0.0` before `0.0`.

mod cumsum;
mod float;
pub(crate) mod fused;
mod geometry;
mod ops;
mod pairwise;
mod radix;
mod sort;
#[cfg(test)]
mod tests;

use ndarray::IxDyn;

use crate::dispatch_view;

use super::{Kernel, ParamKind, ParamSpec, ParamValue, Params, Registry};
use crate::error::{Error, Result};
use crate::value::{AnyArray, AnyView};
use geometry::resolve_axis;
use ops::{Int, Num, Reduction};

/// Registers the reduction, scan and sort builtins.
pub(crate) fn register(r: &mut Registry) {
    let ops = [
        Op::Sum,
        Op::Prod,
        Op::Mean,
        Op::Min,
        Op::Max,
        Op::Var,
        Op::Std,
    ];
    for op in ops {
        register_one(r, Reduce::new(op));
    }
    register_one(r, Cumsum::new());
    register_one(r, Sort::new());
}

fn register_one(r: &mut Registry, k: impl Kernel + 'static) {
    let name = k.name().to_owned();
    if let Err(e) = r.register(k) {
        // Only a programming error (a builtin named twice) can get here.
        panic!("registering builtin '{name}': {e}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Sum,
    Prod,
    Mean,
    Min,
    Max,
    Var,
    Std,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Sum => "sum",
            Op::Prod => "prod",
            Op::Mean => "mean",
            Op::Min => "min",
            Op::Max => "max",
            Op::Var => "var",
            Op::Std => "std",
        }
    }

    fn doc(self) -> &'static str {
        match self {
            Op::Sum => {
                "sum over an axis or all axes (numpy.sum: pairwise for floats, int32 sums in int64)"
            }
            Op::Prod => "product over an axis or all axes (numpy.prod: int32 multiplies in int64)",
            Op::Mean => {
                "arithmetic mean over an axis or all axes (numpy.mean: float64 for integers)"
            }
            Op::Min => "minimum over an axis or all axes, NaN propagating (numpy.min)",
            Op::Max => "maximum over an axis or all axes, NaN propagating (numpy.max)",
            Op::Var => "variance with ddof over an axis or all axes, two-pass (numpy.var)",
            Op::Std => "standard deviation with ddof over an axis or all axes (numpy.std)",
        }
    }

    /// The version, hashed into call keys: it must change whenever any
    /// output bit can change (see [`Kernel::version`]). `max` and `min` are
    /// at 2: e55bb1a made a NaN result the canonical NaN (it was the lane's
    /// first NaN, payload and sign included).
    fn version(self) -> &'static str {
        match self {
            Op::Min | Op::Max => "2",
            Op::Sum | Op::Prod | Op::Mean | Op::Var | Op::Std => "1",
        }
    }

    /// numpy's ufunc reductions accept axis 0 or -1 for a 0-d array; the
    /// Python-level `mean`, `var` and `std` do not.
    fn accepts_axis_of_0d(self) -> bool {
        matches!(self, Op::Sum | Op::Prod | Op::Min | Op::Max)
    }
}

/// A reduction kernel.
struct Reduce {
    op: Op,
    params: Vec<ParamSpec>,
}

impl Reduce {
    fn new(op: Op) -> Self {
        let mut params = vec![ParamSpec::axis(), ParamSpec::keepdims()];
        if matches!(op, Op::Var | Op::Std) {
            params.push(ParamSpec::ddof());
        }
        Reduce { op, params }
    }
}

impl Kernel for Reduce {
    fn name(&self) -> &str {
        self.op.name()
    }
    fn version(&self) -> &str {
        self.op.version()
    }
    fn arity(&self) -> usize {
        1
    }
    fn params(&self) -> &[ParamSpec] {
        &self.params
    }
    fn doc(&self) -> &str {
        self.op.doc()
    }
    fn compute(&self, inputs: &[AnyView<'_>], params: &Params) -> Result<AnyArray> {
        let x = &inputs[0];
        let keepdims = params.bool("keepdims").unwrap_or(false);
        let ddof = params.int("ddof").unwrap_or(0);
        let axis = match params.int("axis") {
            None => None,
            Some(-1 | 0) if x.ndim() == 0 && self.op.accepts_axis_of_0d() => None,
            Some(a) => Some(resolve_axis(a, x.ndim())?),
        };
        if matches!(self.op, Op::Min | Op::Max) {
            let n = match axis {
                Some(a) => x.shape()[a],
                None => x.len(),
            };
            if n == 0 {
                return Err(Error::EmptyReduction {
                    kernel: self.op.name().to_owned(),
                });
            }
        }
        if x.is_empty() {
            // The only case where the result is bigger than the input.
            let out = geometry::reduced_shape(x.shape(), axis, keepdims);
            crate::kernel::check_output(&out, 8)?;
        }
        let op = self.op;
        // Which results the order of the elements cannot change (so a
        // Fortran-order array may be reduced in memory order).
        let exact = matches!(op, Op::Min | Op::Max);
        let exact_int = exact || matches!(op, Op::Sum | Op::Prod);
        match x {
            AnyView::F32(v) => float_op(op, Reduction::new(v, axis, keepdims, exact), ddof),
            AnyView::F64(v) => float_op(op, Reduction::new(v, axis, keepdims, exact), ddof),
            AnyView::I32(v) => int_op(op, Reduction::new(v, axis, keepdims, exact_int), ddof),
            AnyView::I64(v) => int_op(op, Reduction::new(v, axis, keepdims, exact_int), ddof),
        }
    }
}

fn float_op<T: Num + float::Float>(op: Op, r: Reduction<'_, T>, ddof: i64) -> Result<AnyArray> {
    match op {
        Op::Sum => r.float_sum(),
        Op::Prod => r.float_prod(),
        _ => common_op(op, r, ddof),
    }
}

fn int_op<T: Int>(op: Op, r: Reduction<'_, T>, ddof: i64) -> Result<AnyArray> {
    match op {
        Op::Sum => r.int_sum(),
        Op::Prod => r.int_prod(),
        _ => common_op(op, r, ddof),
    }
}

fn common_op<T: Num>(op: Op, r: Reduction<'_, T>, ddof: i64) -> Result<AnyArray> {
    match op {
        Op::Mean => r.mean(),
        Op::Var => r.var(ddof, false),
        Op::Std => r.var(ddof, true),
        Op::Max => r.extreme::<true>(),
        Op::Min => r.extreme::<false>(),
        Op::Sum | Op::Prod => unreachable!("sum and prod depend on the dtype's kind"),
    }
}

/// The `cumsum` kernel.
struct Cumsum {
    params: [ParamSpec; 1],
}

impl Cumsum {
    fn new() -> Self {
        let mut axis = ParamSpec::axis();
        axis.doc = "axis to sum along (negative counts from the end); none: the flattened array";
        Cumsum { params: [axis] }
    }
}

impl Kernel for Cumsum {
    fn name(&self) -> &str {
        "cumsum"
    }
    fn version(&self) -> &str {
        "1"
    }
    fn arity(&self) -> usize {
        1
    }
    fn params(&self) -> &[ParamSpec] {
        &self.params
    }
    fn doc(&self) -> &str {
        "cumulative sum along an axis, or of the flattened array (numpy.cumsum: int32 sums in int64)"
    }
    fn compute(&self, inputs: &[AnyView<'_>], params: &Params) -> Result<AnyArray> {
        // numpy scans a 0-d array as the 1-d array of its one element.
        let x = match inputs[0].ndim() {
            0 => dispatch_view!(&inputs[0], v => AnyView::new(
                v.view().into_shape_with_order(IxDyn(&[1])).expect("one element is shape (1,)")
            )),
            _ => inputs[0].reborrow(),
        };
        let axis = params
            .int("axis")
            .map(|a| resolve_axis(a, x.ndim()))
            .transpose()?;
        dispatch_view!(&x, v => cumsum::cumsum(v, axis))
    }
}

/// The `sort` kernel.
struct Sort {
    params: [ParamSpec; 2],
}

impl Sort {
    fn new() -> Self {
        Sort {
            params: [
                ParamSpec {
                    name: "axis",
                    kind: ParamKind::Int,
                    default: Some(ParamValue::Int(-1)),
                    doc: "axis to sort along (negative counts from the end)",
                },
                ParamSpec {
                    name: "flatten",
                    kind: ParamKind::Bool,
                    default: Some(ParamValue::Bool(false)),
                    doc: "sort the C-order flattening into a 1-D array (numpy's axis=None)",
                },
            ],
        }
    }
}

impl Kernel for Sort {
    fn name(&self) -> &str {
        "sort"
    }
    fn version(&self) -> &str {
        "1"
    }
    fn arity(&self) -> usize {
        1
    }
    fn params(&self) -> &[ParamSpec] {
        &self.params
    }
    fn doc(&self) -> &str {
        "sorted copy along an axis, NaN last; flatten=true sorts the flattened array (numpy.sort)"
    }
    fn compute(&self, inputs: &[AnyView<'_>], params: &Params) -> Result<AnyArray> {
        let x = &inputs[0];
        let axis = params.int("axis").unwrap_or(-1);
        let axis = if params.bool("flatten").unwrap_or(false) {
            if axis != -1 {
                return Err(Error::InvalidParam {
                    kernel: "sort".to_owned(),
                    param: "axis".to_owned(),
                    reason: format!("axis={axis} cannot be combined with flatten=true"),
                });
            }
            None
        } else {
            Some(resolve_axis(axis, x.ndim())?)
        };
        dispatch_view!(x, v => sort::sort(v, axis))
    }
}
