//! Broadcasting, layout handling and parallel execution of elementwise loops.
//!
//! # Plan
//!
//! The operands are broadcast to the output shape (numpy's rules), then the
//! axes are simplified jointly for all operands: axes of length 1 are
//! dropped and neighbouring axes are merged wherever every operand steps
//! through them as through one axis (`stride[k] == len[k+1]·stride[k+1]`).
//! A C-contiguous operand becomes one axis of stride 1; a row broadcast
//! against a matrix keeps two axes, one of stride 0.
//!
//! The output (always C order) is cut into tasks of at most
//! [`Cost::chunk`] elements. Each task is a rectangular block of the
//! simplified index space (a range along one axis, every axis before it
//! fixed), so it is one contiguous run of the output and, for each operand,
//! a sub-view. How an operand is read (see `source`):
//!
//! - contiguous in the output's order: sub-slices, in place;
//! - one element repeated (a 0-d or size-1 operand): a scalar;
//! - a C-contiguous array broadcast along inner axes (a row, a column, a
//!   plane): row by row, each row a slice of it or one repeated element,
//!   in place; or, for rows shorter than 64 or another dtype than the
//!   loop's, copied block by block into a per-thread buffer (repeats by
//!   doubling `copy_within`);
//! - anything else (Fortran order, strided, reversed): gathered with
//!   ndarray's `Zip`, converted, into the buffer.
//!
//! The loops of [`super::simd`] then run on plain slices.
//!
//! # Parallelism
//!
//! Below a size threshold (per [`Cost`]) the tasks run on the calling
//! thread; above it they are spread over rayon's current pool. The tasks
//! depend only on the shapes and strides, and each output element is
//! computed by the same function of the same inputs either way, so the
//! result is bitwise identical for any number of threads.
//!
//! # Output memory
//!
//! The output is allocated uninitialized and written once, by the thread
//! that computes it (see [`alloc_uninit`] for the measurements).
//!
//! Fresh memory costs a page fault per 4 KiB page on first write: some
//! 0.2 µs per page when the kernel has the page at hand, 2-3 µs on this VM
//! when it must get it from the host, so 0.4-6 ms for an 8 MB result,
//! against 0.5 ms to compute `exp` into it. numpy pays the same (`np.exp`
//! of 1e6 `f64`: 0.9 ms when glibc recycles the previous result, 4-6 ms
//! when results are kept). What we can do in safe code: never write the
//! output twice (no zeroing), so recycled memory costs nothing extra and
//! fresh memory is faulted in only once, by the workers as they compute.
//! glibc recycles freed blocks of similar size (its mmap threshold adapts),
//! so a cache that evicts as it inserts mostly gets warm memory; one that
//! grows pays the faults.

use std::mem::MaybeUninit;

use ndarray::{ArrayViewD, Axis, IxDyn};
use rayon::prelude::*;

use super::simd::{self, Level, Map1, Map2, Operand};
use super::source::{Fetched, LoopType};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::value::{AnyArray, AnyView};

/// How expensive the element function is, which sets the size of tasks,
/// when to go parallel, and whether the loop is worth compiling for wider
/// vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cost {
    /// A few instructions per element (add, maximum, negative...): the loop
    /// is bound by memory bandwidth, about 0.3 ns per `f64` here.
    Cheap,
    /// Tens of vectorizable instructions per element (exp, log, sqrt,
    /// divide): about 1 ns per `f64` with AVX-512.
    Vector,
    /// A libm call per element (tan, power...), 5-40 ns, not
    /// vectorized.
    Scalar,
}

impl Cost {
    /// The largest number of elements per task.
    ///
    /// A task should take some microseconds, so that rayon's cost of about
    /// 0.1-0.2 µs per task stays small, and its gather buffers (one per
    /// operand) should stay in L2: 32 Ki `f64` are 256 KiB and take 10 µs
    /// to add; 8 Ki take 8 µs of `exp`; 1 Ki take 8 µs of libm's `sin`.
    pub(super) fn chunk(self) -> usize {
        match self {
            Cost::Cheap => 1 << 15,
            Cost::Vector => 1 << 13,
            Cost::Scalar => 1 << 10,
        }
    }

    /// The smallest output that is computed in parallel.
    ///
    /// Going parallel pays when the serial run takes more than some 30 µs:
    /// measured on 2 cores (rayon workers asleep between calls, each call
    /// forced parallel), `add` breaks even near 2^17-2^18 elements, `exp`
    /// near 2^15-2^16 and libm's `sin` near 2^12-2^13. With workers awake
    /// the break-even is lower for all (2^14 each), but a cache in service
    /// sees mostly cold calls.
    pub(super) fn parallel_threshold(self) -> usize {
        match self {
            Cost::Cheap => 1 << 17,
            Cost::Vector => 1 << 15,
            Cost::Scalar => 1 << 12,
        }
    }

    /// The loop level to use: wide vectors only help vectorizable loops.
    fn level(self) -> Level {
        match self {
            Cost::Scalar => Level::Base,
            _ => simd::level(),
        }
    }
}

/// numpy's broadcast shape of two shapes.
pub(super) fn broadcast_shape(left: &[usize], right: &[usize]) -> Result<Vec<usize>> {
    let ndim = left.len().max(right.len());
    let dim = |s: &[usize], k: usize| {
        // Align on the last axis; missing leading axes have length 1.
        (k + s.len()).checked_sub(ndim).map_or(1, |i| s[i])
    };
    (0..ndim)
        .map(|k| match (dim(left, k), dim(right, k)) {
            (a, b) if a == b => Ok(a),
            (1, b) => Ok(b),
            (a, 1) => Ok(a),
            _ => Err(Error::Broadcast {
                left: left.to_vec(),
                right: right.to_vec(),
            }),
        })
        .collect()
}

/// One step of the joint simplification of the operands' axes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// Remove axis `k`, of length 1.
    Remove(usize),
    /// Merge axis `k` into axis `k + 1`, then remove it.
    Merge(usize),
    /// Add a leading axis of length 1 (a single-element output).
    Unit,
}

pub(super) fn apply_steps<'a, S>(mut v: ArrayViewD<'a, S>, steps: &[Step]) -> ArrayViewD<'a, S> {
    for &step in steps {
        v = match step {
            Step::Remove(k) => v.index_axis_move(Axis(k), 0),
            Step::Merge(k) => {
                let merged = v.merge_axes(Axis(k), Axis(k + 1));
                assert!(merged, "planned merge of axis {k} failed");
                v.index_axis_move(Axis(k), 0)
            }
            Step::Unit => v.insert_axis(Axis(0)),
        };
    }
    v
}

/// The simplified index space shared by the output and the operands, and
/// its cutting into tasks.
#[derive(Debug)]
pub(super) struct Plan {
    /// Lengths of the simplified axes (at least one).
    dims: Vec<usize>,
    /// Axis along which tasks are ranges; axes before it are fixed per task.
    split: usize,
    /// Elements in one index of `split` (the product of later lengths).
    inner: usize,
    /// Indices of `split` per task.
    step: usize,
    /// Tasks per combination of the fixed axes.
    per_prefix: usize,
    /// Total tasks.
    tasks: usize,
}

/// A task: a block of the index space and the run of output it fills.
pub(super) struct Task<'p> {
    /// Indices of the axes before `split`.
    pub(super) prefix: &'p [usize],
    /// Range along `split`.
    pub(super) lo: usize,
    pub(super) hi: usize,
    /// First output element.
    pub(super) start: usize,
    /// Number of output elements.
    pub(super) len: usize,
}

impl Plan {
    /// Plans the simplification of operands of shape `shape` (not empty)
    /// with these strides, returning the plan and the steps to apply to
    /// each operand.
    fn new(shape: &[usize], mut strides: Vec<Vec<isize>>, chunk: usize) -> (Plan, Vec<Step>) {
        let mut dims = shape.to_vec();
        let mut steps = Vec::new();
        for k in (0..dims.len()).rev() {
            if dims[k] == 1 {
                dims.remove(k);
                for s in strides.iter_mut() {
                    s.remove(k);
                }
                steps.push(Step::Remove(k));
            }
        }
        for k in (0..dims.len().saturating_sub(1)).rev() {
            let next = dims[k + 1] as isize;
            if strides.iter().all(|s| s[k] == next * s[k + 1]) {
                dims[k + 1] *= dims[k];
                dims.remove(k);
                for s in strides.iter_mut() {
                    s.remove(k);
                }
                steps.push(Step::Merge(k));
            }
        }
        if dims.is_empty() {
            dims.push(1);
            steps.push(Step::Unit);
        }
        (Plan::cut(dims, chunk), steps)
    }

    fn cut(dims: Vec<usize>, chunk: usize) -> Plan {
        // The first axis whose blocks fit in a task: its range is cut into
        // steps, every axis before it is fixed.
        let mut inner: usize = dims.iter().product();
        let mut split = 0;
        loop {
            inner /= dims[split];
            if inner <= chunk || split + 1 == dims.len() {
                break;
            }
            split += 1;
        }
        let step = (chunk / inner).clamp(1, dims[split]);
        let per_prefix = dims[split].div_ceil(step);
        let prefixes: usize = dims[..split].iter().product();
        Plan {
            split,
            inner,
            step,
            per_prefix,
            tasks: prefixes * per_prefix,
            dims,
        }
    }

    /// Task `t`, its fixed indices written to `prefix`.
    fn task<'p>(&self, t: usize, prefix: &'p mut Vec<usize>) -> Task<'p> {
        let (mut p, q) = (t / self.per_prefix, t % self.per_prefix);
        let block = self.dims[self.split] * self.inner;
        let first = p * block;
        prefix.clear();
        prefix.resize(self.split, 0);
        for k in (0..self.split).rev() {
            prefix[k] = p % self.dims[k];
            p /= self.dims[k];
        }
        let lo = q * self.step;
        let hi = (lo + self.step).min(self.dims[self.split]);
        Task {
            prefix,
            lo,
            hi,
            start: first + lo * self.inner,
            len: (hi - lo) * self.inner,
        }
    }

    /// Lengths of the simplified axes.
    pub(super) fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The axis along which tasks are ranges.
    pub(super) fn split(&self) -> usize {
        self.split
    }

    /// The length of the rows (runs along the last axis) of `task`: whole
    /// rows, unless tasks are ranges of the last axis itself.
    pub(super) fn row_len(&self, task: &Task<'_>) -> usize {
        if self.split + 1 == self.dims.len() {
            task.len
        } else {
            self.dims[self.dims.len() - 1]
        }
    }

    /// The output length of task `t`.
    fn task_len(&self, t: usize) -> usize {
        let lo = (t % self.per_prefix) * self.step;
        let hi = (lo + self.step).min(self.dims[self.split]);
        (hi - lo) * self.inner
    }
}

/// Allocates `n` uninitialized elements, runs every task of `plan` on its
/// run of them (in parallel above `cost`'s threshold), and returns them.
///
/// `init` makes the scratch state of one worker (gather buffers), `body`
/// fills one task's run of the output, completely.
///
/// Measured on 1e6 `f64` (`add`, memory recycled by glibc): uninitialized
/// output 0.20-0.23 ms, zeroed output (`vec![0.0; n]`) 0.31-0.40 ms, as
/// calloc clears recycled memory in one more pass; numpy 0.32-0.39 ms.
/// With fresh memory (results kept), 0.28-0.44 ms against 0.69-0.89 ms
/// zeroed (median of 60 runs, 2 threads). Safe Rust cannot hand out
/// uninitialized memory, hence the one `unsafe` below.
fn alloc_uninit<O, W>(
    n: usize,
    plan: &Plan,
    cost: Cost,
    init: impl Fn() -> W + Sync + Send,
    body: impl Fn(&mut W, &Task<'_>, &mut [MaybeUninit<O>]) + Sync + Send,
) -> Vec<O>
where
    O: Element,
{
    let mut out: Vec<O> = Vec::with_capacity(n);
    let mut rest = &mut out.spare_capacity_mut()[..n];
    if n < cost.parallel_threshold() || rayon::current_num_threads() == 1 {
        let mut scratch = init();
        let mut prefix = Vec::new();
        for t in 0..plan.tasks {
            let task = plan.task(t, &mut prefix);
            let (run, tail) = rest.split_at_mut(task.len);
            body(&mut scratch, &task, run);
            rest = tail;
        }
    } else {
        let mut runs = Vec::with_capacity(plan.tasks);
        for t in 0..plan.tasks {
            let (run, tail) = rest.split_at_mut(plan.task_len(t));
            runs.push(run);
            rest = tail;
        }
        runs.into_par_iter().enumerate().for_each_init(
            || (init(), Vec::new()),
            |(scratch, prefix), (t, run)| {
                let task = plan.task(t, prefix);
                body(scratch, &task, run);
            },
        );
    }
    assert!(rest.is_empty(), "tasks cover the output");
    set_len_initialized(&mut out, n);
    out
}

/// Marks the first `n` elements of `out`'s spare capacity as initialized.
#[allow(unsafe_code)]
fn set_len_initialized<O: Element>(out: &mut Vec<O>, n: usize) {
    debug_assert!(n <= out.capacity());
    // SAFETY: the tasks of a plan partition the output exactly (their runs
    // are consecutive and their lengths sum to `n`, as `rest` ended empty),
    // and every task writes all of its run: the loops of `simd` assert that
    // their inputs are as long as their output and write each element, the
    // scalar branches write each element. A panic in a task unwinds through
    // this function before `set_len`, leaving `out` empty. `O` is plain
    // data (`Pod`): no drop, any bits valid once written.
    unsafe { out.set_len(n) };
}

fn finish<O: Element>(shape: Vec<usize>, data: Vec<O>) -> AnyArray {
    AnyArray::new(
        ndarray::ArrayD::from_shape_vec(IxDyn(&shape), data).expect("one element per index"),
    )
}

/// `f` applied to every element of `x`, read as `A`.
pub(super) fn unary<A, O, F>(x: &AnyView<'_>, cost: Cost, f: F) -> AnyArray
where
    A: LoopType,
    O: Element,
    F: Map1<A, O>,
{
    let shape = x.shape().to_vec();
    let n: usize = shape.iter().product();
    if n == 0 {
        return finish::<O>(shape, Vec::new());
    }
    let mut src = A::source(x, &shape);
    let (plan, steps) = Plan::new(&shape, vec![src.strides()], cost.chunk());
    src.simplify(&steps);
    let level = cost.level();
    let data = alloc_uninit(n, &plan, cost, Vec::new, |buf, task, out| {
        let map = |x: Operand<'_, A>, out: &mut [MaybeUninit<O>]| match x {
            Operand::Slice(s) => simd::map1(level, s, out, &f),
            Operand::Scalar(v) => {
                let y = if f.needs_exact(v) {
                    f.exact(v)
                } else {
                    f.call(v)
                };
                for o in out.iter_mut() {
                    o.write(y);
                }
            }
        };
        match src.fetch(&plan, task, buf) {
            Fetched::Whole(x) => map(x, out),
            rows => {
                let row_len = plan.row_len(task);
                let mut rows = rows.rows(row_len);
                for out in out.chunks_mut(row_len) {
                    map(rows.next_row(), out);
                }
            }
        }
    });
    finish(shape, data)
}

/// `f` applied to every pair of elements of `a` and `b` broadcast
/// together, read as `A` and `B`.
pub(super) fn binary<A, B, O, F>(
    a: &AnyView<'_>,
    b: &AnyView<'_>,
    cost: Cost,
    f: F,
) -> Result<AnyArray>
where
    A: LoopType,
    B: LoopType,
    O: Element,
    F: Map2<A, B, O>,
{
    let shape = broadcast_shape(a.shape(), b.shape())?;
    crate::kernel::check_output(&shape, std::mem::size_of::<O>())?;
    let n: usize = shape.iter().product();
    if n == 0 {
        return Ok(finish::<O>(shape, Vec::new()));
    }
    let mut sa = A::source(a, &shape);
    let mut sb = B::source(b, &shape);
    let (plan, steps) = Plan::new(&shape, vec![sa.strides(), sb.strides()], cost.chunk());
    sa.simplify(&steps);
    sb.simplify(&steps);
    let level = cost.level();
    let data = alloc_uninit(
        n,
        &plan,
        cost,
        || (Vec::new(), Vec::new()),
        |(buf_a, buf_b), task, out| match (
            sa.fetch(&plan, task, buf_a),
            sb.fetch(&plan, task, buf_b),
        ) {
            (Fetched::Whole(x), Fetched::Whole(y)) => simd::map2(level, x, y, out, &f),
            (x, y) => {
                // A row or column broadcast: row by row, read in place.
                let row_len = plan.row_len(task);
                let (mut xs, mut ys) = (x.rows(row_len), y.rows(row_len));
                for out in out.chunks_mut(row_len) {
                    simd::map2(level, xs.next_row(), ys.next_row(), out, &f);
                }
            }
        },
    );
    Ok(finish(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_partition_the_output_in_order() {
        let cases: [(&[usize], usize); 7] = [
            (&[1], 8),
            (&[100], 8),
            (&[3, 5, 7000], 1024),
            (&[3, 5, 7000], 8192),
            (&[3, 5, 7000], 1 << 15),
            (&[7, 3, 2, 9], 5),
            (&[2, 40_000], 1 << 15),
        ];
        for (dims, chunk) in cases {
            let plan = Plan::cut(dims.to_vec(), chunk);
            let n: usize = dims.iter().product();
            let mut prefix = Vec::new();
            let mut next = 0;
            for t in 0..plan.tasks {
                let task = plan.task(t, &mut prefix);
                assert_eq!(task.start, next, "{dims:?} {chunk} task {t}");
                assert_eq!(task.len, plan.task_len(t));
                assert!(task.len >= 1 && task.len <= chunk.max(plan.inner));
                // The task's first element, from its indices, in C order.
                let mut idx: Vec<usize> = task.prefix.to_vec();
                idx.push(task.lo);
                idx.resize(dims.len(), 0);
                let flat = idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i);
                assert_eq!(flat, task.start);
                next += task.len;
            }
            assert_eq!(next, n, "{dims:?} {chunk}");
        }
    }

    #[test]
    fn axes_are_merged_where_every_operand_allows() {
        // C-contiguous (3, 4, 5) and a broadcast row: the leading axes merge,
        // the last cannot merge with them for the row (stride 0, then 1).
        let shape = [3, 4, 5];
        let (plan, _) = Plan::new(&shape, vec![vec![20, 5, 1], vec![0, 0, 1]], 1 << 10);
        assert_eq!(plan.dims, [12, 5]);
        // Fortran order merges nothing; length-1 axes are dropped.
        let (plan, _) = Plan::new(&[3, 1, 4], vec![vec![1, 3, 3]], 1 << 10);
        assert_eq!(plan.dims, [3, 4]);
        // A single element keeps one axis.
        let (plan, steps) = Plan::new(&[1, 1], vec![vec![1, 1]], 1 << 10);
        assert_eq!((plan.dims.as_slice(), plan.tasks), (&[1][..], 1));
        assert!(matches!(steps.last(), Some(Step::Unit)));
    }
}
