//! Reading an operand, of any dtype and layout, task by task as runs of the
//! loop's element type.

use ndarray::{ArrayViewD, ArrayViewMutD, Axis, IxDyn, Slice, Zip};

use super::plan::{apply_steps, Plan, Step, Task};
use super::simd::Operand;
use crate::element::Element;
use crate::value::AnyView;

/// Converts between element types as numpy's `astype` does for the casts
/// the kernels use (integers to floats round to nearest).
pub(super) trait Cast<T>: Copy {
    /// The converted value.
    fn cast(self) -> T;
}

macro_rules! impl_cast {
    ($($s:ty => $($t:ty),*);*) => {
        $($(impl Cast<$t> for $s {
            #[inline(always)]
            fn cast(self) -> $t {
                self as $t
            }
        })*)*
    };
}

// Every pair, so that any input can be wrapped as a source of any loop
// type; the kernels only ask for exact or widening conversions (numpy's
// "safe" casts), and for i64 → f64, which rounds to nearest like numpy.
impl_cast! {
    f32 => f32, f64, i32, i64;
    f64 => f32, f64, i32, i64;
    i32 => f32, f64, i32, i64;
    i64 => f32, f64, i32, i64
}

/// An input operand read as elements of type `A` (the loop's type),
/// whatever its own element type.
pub(super) trait Source<A>: Sync {
    /// The strides of the operand broadcast to the output shape.
    fn strides(&self) -> Vec<isize>;
    /// Applies the plan's steps and chooses how to read the operand.
    fn simplify(&mut self, steps: &[Step]);
    /// The operand's elements for `task`, in the output's order.
    fn fetch<'s>(&'s self, plan: &Plan, task: &Task<'_>, buf: &'s mut Vec<A>) -> Fetched<'s, A>;
}

/// An operand's elements for one task.
pub(super) enum Fetched<'s, A> {
    /// All of them at once.
    Whole(Operand<'s, A>),
    /// Row by row (runs along the last axis), read in place.
    Rows(Rows<'s, A>),
}

impl<'s, A: Copy> Fetched<'s, A> {
    /// The elements row by row, for rows of `row_len` elements.
    pub(super) fn rows(self, row_len: usize) -> RowIter<'s, A> {
        match self {
            Fetched::Whole(Operand::Slice(s)) => RowIter::Chunks(s.chunks(row_len)),
            Fetched::Whole(Operand::Scalar(v)) => RowIter::Repeat(v),
            Fetched::Rows(r) => RowIter::Rows(r),
        }
    }
}

/// The rows of a task, as operands of the loops.
pub(super) enum RowIter<'s, A> {
    Chunks(std::slice::Chunks<'s, A>),
    Repeat(A),
    Rows(Rows<'s, A>),
}

impl<'s, A: Copy> RowIter<'s, A> {
    /// The next row (the caller asks for exactly as many as the task has).
    pub(super) fn next_row(&mut self) -> Operand<'s, A> {
        match self {
            RowIter::Chunks(c) => Operand::Slice(c.next().expect("one chunk per row")),
            RowIter::Repeat(v) => Operand::Scalar(*v),
            RowIter::Rows(r) => r.next_row(),
        }
    }
}

/// The rows of a task in an operand held in memory with non-negative
/// strides and a last-axis stride of 1 (a row) or 0 (a repeated element):
/// a row, column or scalar broadcast against a larger array.
pub(super) struct Rows<'s, A> {
    data: &'s [A],
    /// Offset in `data` of the next row's first element.
    offset: usize,
    row_len: usize,
    /// 1 for rows read as slices, 0 for rows of one repeated element.
    last_stride: usize,
    /// Lengths, strides and current indices of the axes stepped through from
    /// row to row (the task's axes but the last).
    dims: Vec<usize>,
    strides: Vec<usize>,
    idx: Vec<usize>,
}

impl<'s, A: Copy> Rows<'s, A> {
    fn next_row(&mut self) -> Operand<'s, A> {
        let row = if self.last_stride == 0 {
            Operand::Scalar(self.data[self.offset])
        } else {
            Operand::Slice(&self.data[self.offset..self.offset + self.row_len])
        };
        // Odometer over the stepped axes, innermost first.
        for k in (0..self.dims.len()).rev() {
            self.idx[k] += 1;
            self.offset += self.strides[k];
            if self.idx[k] < self.dims[k] || k == 0 {
                break;
            }
            self.offset -= self.dims[k] * self.strides[k];
            self.idx[k] = 0;
        }
        row
    }
}

/// Rows shorter than this are gathered rather than read in place.
const MIN_ROW: usize = 64;

/// How an operand is read once simplified.
enum Kind<'a, S> {
    /// C-contiguous with the output's shape: tasks read sub-slices.
    Contiguous(&'a [S]),
    /// One element for the whole output.
    Scalar(S),
    /// Held in memory (`data`) with these non-negative strides along the
    /// simplified axes, the last one 0 or 1: read row by row in place (long
    /// rows of the loop's type), or copied block by block.
    Broadcast { data: &'a [S], strides: Vec<usize> },
    /// Anything else: each task gathers its sub-view.
    Strided,
}

struct View<'a, S> {
    view: ArrayViewD<'a, S>,
    /// The operand's own elements, when it is C-contiguous.
    data: Option<&'a [S]>,
    kind: Kind<'a, S>,
}

impl<'a, S: Element> View<'a, S> {
    fn new(view: &'a ArrayViewD<'_, S>, shape: &[usize]) -> View<'a, S> {
        View {
            data: view.to_slice(),
            view: view
                .broadcast(IxDyn(shape))
                .expect("shapes were checked to broadcast"),
            kind: Kind::Strided,
        }
    }
}

/// Copies (and converts) the block of `data` with these lengths and
/// strides, starting at `offset`, into `out` in C order. Along an axis of stride 0 the first
/// sub-block is copied once and then doubled with `copy_within`, so a
/// repeated row costs about a `memcpy`, not a loop per row.
fn copy_block<S: Cast<A>, A: Copy>(
    data: &[S],
    offset: usize,
    strides: &[usize],
    dims: &[usize],
    out: &mut [A],
) {
    match (dims, strides) {
        ([n], [1]) => {
            for (o, &v) in out.iter_mut().zip(&data[offset..offset + n]) {
                *o = v.cast();
            }
        }
        ([_], [0]) => out.fill(data[offset].cast()),
        ([_], [s]) => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = data[offset + i * s].cast();
            }
        }
        _ => {
            let inner = out.len() / dims[0];
            if strides[0] == 0 {
                copy_block(data, offset, &strides[1..], &dims[1..], &mut out[..inner]);
                let mut done = inner;
                while done < out.len() {
                    let len = done.min(out.len() - done);
                    out.copy_within(..len, done);
                    done += len;
                }
            } else {
                for (i, block) in out.chunks_mut(inner).enumerate() {
                    copy_block(
                        data,
                        offset + i * strides[0],
                        &strides[1..],
                        &dims[1..],
                        block,
                    );
                }
            }
        }
    }
}

/// Whether `S` and `A` are the same type.
fn same_type<S: 'static, A: 'static>() -> bool {
    std::any::TypeId::of::<S>() == std::any::TypeId::of::<A>()
}

/// Converts `src` into `buf` and returns the converted run.
fn convert<'s, S: Cast<A>, A: Element>(src: &[S], buf: &'s mut Vec<A>) -> &'s [A] {
    buf.clear();
    buf.extend(src.iter().map(|&s| s.cast()));
    buf
}

impl<'a, S, A> Source<A> for View<'a, S>
where
    S: Element + Cast<A>,
    A: Element,
{
    fn strides(&self) -> Vec<isize> {
        self.view.strides().to_vec()
    }

    fn simplify(&mut self, steps: &[Step]) {
        let view = apply_steps(self.view.clone(), steps);
        let strides = view.strides();
        self.kind = if strides.iter().all(|&s| s == 0) {
            Kind::Scalar(view.iter().next().copied().unwrap_or_default())
        } else if let Some(s) = view.to_slice() {
            Kind::Contiguous(s)
        } else {
            match self.data {
                Some(data)
                    if strides.iter().all(|&s| s >= 0) && matches!(strides.last(), Some(0 | 1)) =>
                {
                    Kind::Broadcast {
                        data,
                        strides: strides.iter().map(|&s| s as usize).collect(),
                    }
                }
                _ => Kind::Strided,
            }
        };
        self.view = view;
    }

    fn fetch<'s>(&'s self, plan: &Plan, task: &Task<'_>, buf: &'s mut Vec<A>) -> Fetched<'s, A> {
        let run = match &self.kind {
            Kind::Scalar(s) => return Fetched::Whole(Operand::Scalar(s.cast())),
            Kind::Contiguous(data) => &data[task.start..task.start + task.len],
            Kind::Broadcast { data, strides } => {
                let (dims, split) = (plan.dims(), plan.split());
                let last = dims.len() - 1;
                let mut offset: usize = task.prefix.iter().zip(strides).map(|(i, s)| i * s).sum();
                offset += task.lo * strides[split];
                if plan.row_len(task) < MIN_ROW || !same_type::<S, A>() {
                    // Short rows would cost a loop call each, and another
                    // dtype must be converted: copy the task's block into
                    // the buffer instead.
                    if buf.len() < task.len {
                        buf.resize(task.len, A::default());
                    }
                    let mut block_dims = dims[split..].to_vec();
                    block_dims[0] = task.hi - task.lo;
                    let run = &mut buf[..task.len];
                    copy_block::<S, A>(data, offset, &strides[split..], &block_dims, run);
                    return Fetched::Whole(Operand::Slice(run));
                }
                let data: &'s [A] = bytemuck::cast_slice(data);
                let stepped = split..last.max(split);
                let mut idx = vec![0; stepped.len()];
                if let Some(first) = idx.first_mut() {
                    *first = task.lo;
                }
                return Fetched::Rows(Rows {
                    data,
                    offset,
                    row_len: plan.row_len(task),
                    last_stride: strides[last],
                    dims: dims[stepped.clone()].to_vec(),
                    strides: strides[stepped].to_vec(),
                    idx,
                });
            }
            Kind::Strided => {
                let mut sub = self.view.view();
                for &i in task.prefix {
                    sub = sub.index_axis_move(Axis(0), i);
                }
                sub.slice_axis_inplace(Axis(0), Slice::from(task.lo..task.hi));
                match sub.to_slice() {
                    Some(s) => s,
                    None => {
                        // Grown once per worker (not cleared: the gather
                        // overwrites every element it returns).
                        if buf.len() < task.len {
                            buf.resize(task.len, A::default());
                        }
                        let run = &mut buf[..task.len];
                        let dst = ArrayViewMutD::from_shape(sub.raw_dim(), &mut *run)
                            .expect("buffer holds the task");
                        Zip::from(dst).and(&sub).for_each(|d, &s| *d = s.cast());
                        return Fetched::Whole(Operand::Slice(run));
                    }
                }
            }
        };
        Fetched::Whole(Operand::Slice(if same_type::<S, A>() {
            bytemuck::cast_slice(run)
        } else {
            convert(run, buf)
        }))
    }
}

/// An element type the loops compute in: every input dtype can be read
/// as it.
pub(super) trait LoopType: Element {
    /// Wraps a dtype-erased view, broadcast to `shape`, as a source of `Self`s.
    fn source<'a>(v: &'a AnyView<'_>, shape: &[usize]) -> Box<dyn Source<Self> + 'a>;
}

macro_rules! impl_loop_type {
    ($($t:ty),*) => {$(
        impl LoopType for $t {
            fn source<'a>(v: &'a AnyView<'_>, shape: &[usize]) -> Box<dyn Source<$t> + 'a> {
                match v {
                    AnyView::F32(v) => Box::new(View::new(v, shape)),
                    AnyView::F64(v) => Box::new(View::new(v, shape)),
                    AnyView::I32(v) => Box::new(View::new(v, shape)),
                    AnyView::I64(v) => Box::new(View::new(v, shape)),
                }
            }
        }
    )*};
}

impl_loop_type!(f32, f64, i32, i64);
