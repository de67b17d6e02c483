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

use ndarray::IxDyn;
use rayon::prelude::*;

use super::plan::{Plan, Task};
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
pub(crate) fn broadcast_shape(left: &[usize], right: &[usize]) -> Result<Vec<usize>> {
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
    advise_huge_pages(&mut out);
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

/// Outputs at least this large ask the kernel for transparent huge pages.
const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

/// Asks Linux to back the spare capacity of `out` with transparent huge
/// pages (2 MiB) when it is large, as numpy does for its arrays of 4 MiB and
/// more (`madvise(MADV_HUGEPAGE)`; machines whose THP setting is `madvise`
/// give huge pages only to memory that asks).
///
/// A large output is fresh memory from `mmap`, faulted in page by page as
/// the workers first write it: measured here (2 cores, THP `madvise`, the
/// machine shared with two builds), a fused `((0.25x + 0.75)x - 1.5)x - 2`
/// over 1e7 `f64` took a median 207 ms with 4 KiB pages, most of it in page
/// faults, and 43 ms with the advice.
pub(crate) fn advise_huge_pages<T>(out: &mut Vec<T>) {
    let bytes = out.capacity() * std::mem::size_of::<T>();
    if bytes < HUGE_PAGE_MIN_BYTES {
        return;
    }
    advise(out.as_mut_ptr() as usize, bytes);
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise(addr: usize, bytes: usize) {
    const PAGE: usize = 4096;
    let start = addr.next_multiple_of(PAGE);
    let end = (addr + bytes) & !(PAGE - 1);
    if end <= start {
        return;
    }
    // SAFETY: `start..end` lies inside one live allocation that this
    // process owns (a Vec's capacity, page-aligned inward). MADV_HUGEPAGE is
    // advice about how to back those pages; it does not change their
    // contents or validity, and failure (EINVAL on kernels without THP) is
    // harmless and ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_addr: usize, _bytes: usize) {}

/// Marks the first `n` elements of `out`'s spare capacity as initialized.
#[allow(unsafe_code)]
pub(super) fn set_len_initialized<O: Element>(out: &mut Vec<O>, n: usize) {
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
            Operand::Slice(s) => simd::map1(level, s, out, &f, &[]),
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
