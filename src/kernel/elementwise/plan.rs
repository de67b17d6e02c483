//! The joint simplification of the operands' axes and its cutting into
//! tasks (see the module docs of `engine`).

use ndarray::{ArrayViewD, Axis};

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
    pub(super) tasks: usize,
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
    pub(super) fn new(
        shape: &[usize],
        mut strides: Vec<Vec<isize>>,
        chunk: usize,
    ) -> (Plan, Vec<Step>) {
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
    pub(super) fn task<'p>(&self, t: usize, prefix: &'p mut Vec<usize>) -> Task<'p> {
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
    pub(super) fn task_len(&self, t: usize) -> usize {
        let lo = (t % self.per_prefix) * self.step;
        let hi = (lo + self.step).min(self.dims[self.split]);
        (hi - lo) * self.inner
    }
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
