//! Fused evaluation: a program of elementwise operations run over
//! cache-sized tiles of the output, without materializing intermediates
//! (numexpr's idea).
//!
//! A [`Program`] is a list of typed instructions in SSA form: load a
//! frontier input, cast, apply a unary or binary builtin. Each instruction
//! has a register holding one tile of its values (or, for a broadcast
//! scalar, one value), in a buffer of a per-thread scratch reused from
//! tile to tile; registers whose lives do not overlap share a buffer, so a
//! tile's working set stays in L1, and a run of cheap arithmetic
//! (`((a*x + b)*x - c)*x - d`) is one [`Instr::Chain`], one pass with its
//! running values in vector registers ([`chain`]). The instructions call
//! the element functions of the registry's kernels ([`simd::map1`],
//! [`simd::map2`] with the `ops` functions, the same feature level and the
//! same casts), so every element of a fused result is the bits the chain
//! of registry calls gives. The last instruction writes its tile straight into the output
//! (or, when it is not an operation, its register is copied there), or
//! hands it to a trailing reduction (`reduce::fused`), which asks for
//! ranges in the order that keeps the registry's bits too.
//!
//! Every node of a program has the output's size: a frontier input may
//! broadcast (a row, a column, a scalar), but an operation on a smaller
//! operand is computed before the program, on its own (recomputing `sin`
//! of a row for every row of a matrix is what makes fusion slower than
//! numpy elsewhere: numba#6387).

use std::cell::RefCell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::chain::{self, Chained, MAX_STEPS};
use super::engine::set_len_initialized;
use super::ops;
use super::simd::{self, Level, Map1, Map1x2, Map2, Operand, Slot};
use super::source::Cast;
use crate::element::{DType, Element};
use crate::kernel::reduce::fused::{Ranges, Reducible, Sink};
use crate::value::{AnyArray, AnyView, Wrap};

/// Elements per tile: a register of `f64` is 8 KiB, so the few buffers a
/// program keeps live at once (see [`Program::pair`]) stay in L1. Measured
/// on one thread over 1e5 `f64` (in cache, min of 300): 1024 against 2048
/// took trig 0.437 against 0.453 ms, gauss 0.314 against 0.327, poly 0.139
/// against 0.163; 512 was no better than 1024.
pub(crate) const TILE: usize = 1024;

/// Tiles per parallel task.
const TASK_TILES: usize = 16;

/// An elementwise builtin that can be fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FOp {
    /// `negative`
    Neg,
    /// `absolute`
    Abs,
    /// `square`
    Square,
    /// `sqrt`
    Sqrt,
    /// `exp`
    Exp,
    /// `expm1`
    Expm1,
    /// `log`
    Log,
    /// `log1p`
    Log1p,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tan`
    Tan,
    /// `tanh`
    Tanh,
    /// `add`
    Add,
    /// `subtract`
    Sub,
    /// `multiply`
    Mul,
    /// `divide`
    Div,
    /// `power` (of floats)
    Pow,
    /// `maximum`
    Maximum,
    /// `minimum`
    Minimum,
}

impl FOp {
    /// The fusable builtin called `name`.
    pub(crate) fn of_kernel(name: &str) -> Option<FOp> {
        Some(match name {
            "negative" => FOp::Neg,
            "absolute" => FOp::Abs,
            "square" => FOp::Square,
            "sqrt" => FOp::Sqrt,
            "exp" => FOp::Exp,
            "expm1" => FOp::Expm1,
            "log" => FOp::Log,
            "log1p" => FOp::Log1p,
            "sin" => FOp::Sin,
            "cos" => FOp::Cos,
            "tan" => FOp::Tan,
            "tanh" => FOp::Tanh,
            "add" => FOp::Add,
            "subtract" => FOp::Sub,
            "multiply" => FOp::Mul,
            "divide" => FOp::Div,
            "power" => FOp::Pow,
            "maximum" => FOp::Maximum,
            "minimum" => FOp::Minimum,
            _ => return None,
        })
    }

    /// The number of operands.
    pub(crate) fn arity(self) -> usize {
        match self {
            FOp::Add | FOp::Sub | FOp::Mul | FOp::Div | FOp::Pow | FOp::Maximum | FOp::Minimum => 2,
            _ => 1,
        }
    }

    /// The dtype the registry's kernel computes in (and returns) for
    /// operands of these dtypes; `None` where it is not fused (integer
    /// `power`, which checks its exponents before computing).
    pub(crate) fn loop_dtype(self, inputs: &[DType]) -> Option<DType> {
        let float_of = |d: DType| {
            if d == DType::F32 {
                DType::F32
            } else {
                DType::F64
            }
        };
        Some(match self {
            FOp::Neg | FOp::Abs | FOp::Square => inputs[0],
            FOp::Sqrt
            | FOp::Exp
            | FOp::Expm1
            | FOp::Log
            | FOp::Log1p
            | FOp::Sin
            | FOp::Cos
            | FOp::Tan
            | FOp::Tanh => float_of(inputs[0]),
            FOp::Add | FOp::Sub | FOp::Mul | FOp::Maximum | FOp::Minimum => {
                inputs[0].promote(inputs[1])
            }
            FOp::Div => float_of(inputs[0].promote(inputs[1])),
            FOp::Pow => match inputs[0].promote(inputs[1]) {
                d if d.is_float() => d,
                _ => return None,
            },
        })
    }

    /// The loop level: the registry's (every level computes the same
    /// bits; float `power` here always splits its products by Dekker's
    /// algorithm, which the registry's FMA variant equals bit for bit).
    fn level(self) -> Level {
        simd::level()
    }

    /// Roughly how expensive an element is: 0 for arithmetic, 1 for a
    /// vectorized function.
    fn weight(self) -> u8 {
        match self {
            FOp::Neg | FOp::Abs | FOp::Square | FOp::Add | FOp::Sub | FOp::Mul => 0,
            FOp::Maximum | FOp::Minimum => 0,
            _ => 1,
        }
    }
}

/// One value of a dtype (a broadcast scalar operand).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    /// `float32`
    F32(f32),
    /// `float64`
    F64(f64),
    /// `int32`
    I32(i32),
    /// `int64`
    I64(i64),
}

/// One instruction; its operands are earlier registers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Instr {
    /// Frontier input `i`, in its own dtype.
    Input(usize),
    /// Register `r` converted to this instruction's dtype.
    Cast(usize),
    /// A unary builtin.
    Unary(FOp, usize),
    /// A binary builtin.
    Binary(FOp, usize, usize),
    /// `sin` and `cos` of register `x` at once, into registers `sin` and
    /// `cos` (one of which is this instruction's); see [`Program::pair`].
    SinCos { x: usize, sin: usize, cos: usize },
    /// A result written by an earlier [`Instr::SinCos`].
    Paired,
    /// A run of cheap builtins, each applied to the value of the one
    /// before it, in one pass (see [`Program::chain`]); this instruction
    /// is the run's last builtin.
    Chain(Chain),
    /// A builtin computed by a later [`Instr::Chain`] (no register).
    Absorbed,
}

/// What an [`Instr::Chain`] computes: `start`, then each link in turn.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Chain {
    /// The register the run starts from.
    start: usize,
    /// The builtins, in order (at most [`chain::MAX_STEPS`]).
    links: Vec<Link>,
}

/// One builtin of a [`Chain`], applied to the value so far, `acc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Link {
    op: FOp,
    /// The other operand of a binary builtin; `None` for a unary one.
    other: Option<usize>,
    /// Whether `acc` is the binary builtin's second operand.
    swapped: bool,
}

/// The builtins [`Program::chain`] links (float loops only): cheap ones,
/// for which a pass over the tile costs more than the arithmetic.
const CHAINED_UNARY: [FOp; 3] = [FOp::Neg, FOp::Abs, FOp::Square];
const CHAINED_BINARY: [FOp; 6] = [
    FOp::Add,
    FOp::Sub,
    FOp::Mul,
    FOp::Div,
    FOp::Maximum,
    FOp::Minimum,
];

/// A compiled fused program: instructions in order, each with the dtype of
/// its register; the last one is the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Program {
    instrs: Vec<(Instr, DType)>,
    inputs: Vec<DType>,
    /// The buffer of each instruction's register (set by
    /// [`pair`](Self::pair)): registers whose lives do not overlap share one.
    buffers: Vec<usize>,
    /// The instruction that prefetches other inputs while it runs, if any
    /// (set by [`pair`](Self::pair)).
    lead: Option<Lead>,
}

/// A program's first expensive unary instruction (`sin`, `exp`, ..., or a
/// sin/cos pair), which prefetches what the cheap passes before or after
/// it read or write in a burst (other inputs, and the tile of the output
/// when the root writes there): with arrays far larger than the caches,
/// such a pass waits on memory for most of its time (the hardware
/// prefetchers run only a few lines ahead of a burst), while the lead
/// instruction is bound by arithmetic and leaves the memory system idle.
///
/// Measured on 2 threads with inputs in huge pages (min of 18-48,
/// alternated with the build before, which differs only by this): fused
/// `sum(2*sin(x)**2 + cos(x)*y)` over 1e7 `f64` 21.6 → 17.6 ms (without
/// prefetching, `y = x`, one input stream, had taken 15.5 ms against 20.9
/// with two: the cost this removes), `2*sin(x)**2 + cos(x)*y` 24.9 → 21.7
/// and 26.0 → 23.1 ms in two runs, `exp(-(x-0.5)**2/0.02)*y` 24.0 → 22.5
/// ms, trig over 1e6 1.93 → 1.70 ms. The output tile's share was within the noise
/// (22.8 ms without it, 23.1 with, same run). Prefetching a whole tile at
/// once before the lead instead was slower than nothing (the prefetches
/// fill the load queue and stall the arithmetic).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Lead {
    /// The instruction.
    instr: usize,
    /// Frontier inputs first read after it: prefetched for the same tile.
    now: Vec<usize>,
    /// Frontier inputs first read before it (not by it): prefetched for
    /// the next tile.
    next: Vec<usize>,
}

/// Runs that read and write less than this (the slice inputs' bytes and
/// the output's) are not prefetched: evaluated again and again, as in a
/// sweep, they stay in the caches, where the prefetches cost more than
/// they save. Measured on 2 threads (min of 24-40, huge pages), without →
/// with prefetching: fused `2*sin(x)**2 + cos(x)*y` over 1e6 `f64` (24 MB)
/// 2.00 → 1.62 ms (one thread: 4.64 → 3.18), over 5e5 (12 MB) 0.82 →
/// 0.86 ms; `sin(x) + cos(x)` over 1e6 (16 MB) 1.41 → 1.35 ms, over 5e5
/// 0.65 → 0.69 ms.
const AHEAD_MIN_BYTES: usize = 14 << 20;

impl Program {
    /// An empty program.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds frontier input number `i` of dtype `dtype` (inputs are numbered
    /// from 0 in the order they are added); returns its register.
    pub(crate) fn input(&mut self, dtype: DType) -> usize {
        self.inputs.push(dtype);
        self.push(Instr::Input(self.inputs.len() - 1), dtype)
    }

    /// Adds `op` on registers `args` (casting them to the loop's dtype as
    /// the registry's kernel does); `None` if `op` is not fused for these
    /// dtypes.
    pub(crate) fn op(&mut self, op: FOp, args: &[usize]) -> Option<usize> {
        debug_assert_eq!(args.len(), op.arity());
        let dtypes: Vec<DType> = args.iter().map(|&r| self.instrs[r].1).collect();
        let dt = op.loop_dtype(&dtypes)?;
        let mut cast = |r: usize| {
            if self.instrs[r].1 == dt {
                r
            } else {
                self.push(Instr::Cast(r), dt)
            }
        };
        let instr = match *args {
            [a] => Instr::Unary(op, cast(a)),
            [a, b] => {
                let (a, b) = (cast(a), cast(b));
                Instr::Binary(op, a, b)
            }
            _ => return None,
        };
        Some(self.push(instr, dt))
    }

    /// Pairs `sin(r)` with `cos(r)` of the same register: both come from one
    /// reduction of the argument (`trig::sincos`, the same bits as each),
    /// which halves their cost; then gives each register a buffer, reusing
    /// the buffers of registers no later instruction reads. Call once, after
    /// the last [`op`](Self::op).
    pub(crate) fn pair(&mut self) {
        for i in 0..self.instrs.len() {
            let Instr::Unary(FOp::Sin, x) = self.instrs[i].0 else {
                continue;
            };
            let cos = self
                .instrs
                .iter()
                .position(|(instr, _)| *instr == Instr::Unary(FOp::Cos, x));
            if let Some(j) = cos {
                let first = i.min(j);
                self.instrs[first].0 = Instr::SinCos { x, sin: i, cos: j };
                self.instrs[i.max(j)].0 = Instr::Paired;
            }
        }
        self.chain();
        self.allocate();
        self.lead = self.find_lead();
    }

    /// The [`Lead`] of this program, if one of its instructions is an
    /// expensive unary one.
    fn find_lead(&self) -> Option<Lead> {
        let lead = self.instrs.iter().position(|(instr, dt)| {
            dt.is_float()
                && match instr {
                    Instr::SinCos { .. } => true,
                    Instr::Unary(op, _) => op.weight() > 0,
                    _ => false,
                }
        })?;
        // The first instruction reading each register.
        let mut first = vec![None; self.instrs.len()];
        for (j, (instr, _)) in self.instrs.iter().enumerate() {
            for a in operands(instr) {
                first[a].get_or_insert(j);
            }
        }
        let (mut now, mut next) = (Vec::new(), Vec::new());
        for (r, (instr, _)) in self.instrs.iter().enumerate() {
            let Instr::Input(i) = *instr else { continue };
            match first[r] {
                Some(j) if j == lead => {}
                Some(j) if j > lead => now.push(i),
                Some(_) => next.push(i),
                None => {}
            }
        }
        // With nothing to prefetch but the output, only when a later pass
        // writes it.
        let root = self.instrs.len() - 1;
        (!now.is_empty() || !next.is_empty() || lead != root).then_some(Lead {
            instr: lead,
            now,
            next,
        })
    }

    /// Links each cheap float builtin to the one whose value it reads when
    /// nothing else reads that value, into [`Chain`]s evaluated in one pass
    /// (a pass of arithmetic costs its loads and stores more than its
    /// operation): poly `((a*x + b)*x - c)*x - d` takes one pass instead of
    /// six, `-(x - m)**2 / s` one instead of four, `2 * sin(x)**2 + t` one
    /// instead of three. A binary builtin continues the run of its first
    /// operand when it can, else of its second (then `swapped`). The
    /// links keep the builtins' order, so a chain computes the bits of
    /// its builtins one after another.
    fn chain(&mut self) {
        let n = self.instrs.len();
        let mut readers = vec![0usize; n];
        for (instr, _) in &self.instrs {
            for a in operands(instr) {
                readers[a] += 1;
            }
        }
        // The run ending at each instruction, while they are built.
        let mut runs: Vec<Option<Chain>> = vec![None; n];
        let mut absorbed = vec![false; n];
        for i in 0..n {
            if !self.instrs[i].1.is_float() {
                continue;
            }
            // A run `r` can grow: only this instruction reads it.
            let open = |runs: &[Option<Chain>], r: usize| {
                readers[r] == 1 && runs[r].as_ref().is_some_and(|c| c.links.len() < MAX_STEPS)
            };
            let (prev, link) = match self.instrs[i].0 {
                Instr::Unary(op, a) if CHAINED_UNARY.contains(&op) => (
                    a,
                    Link {
                        op,
                        other: None,
                        swapped: false,
                    },
                ),
                Instr::Binary(op, a, b) if CHAINED_BINARY.contains(&op) => {
                    let swapped = !open(&runs, a) && open(&runs, b);
                    let (prev, other) = if swapped { (b, a) } else { (a, b) };
                    let other = Some(other);
                    (prev, Link { op, other, swapped })
                }
                _ => continue,
            };
            let run = if open(&runs, prev) {
                absorbed[prev] = true;
                let mut run = runs[prev].take().expect("open");
                run.links.push(link);
                run
            } else {
                Chain {
                    start: prev,
                    links: vec![link],
                }
            };
            runs[i] = Some(run);
        }
        for (i, run) in runs.into_iter().enumerate() {
            if absorbed[i] {
                self.instrs[i].0 = Instr::Absorbed;
            } else if let Some(run) = run.filter(|c| c.links.len() > 1) {
                self.instrs[i].0 = Instr::Chain(run);
            }
        }
    }

    /// Linear scan over the instructions: an instruction's register takes a
    /// free buffer (or a new one), then the buffers of the operands it read
    /// last are freed, so an output never shares a buffer with its inputs.
    /// A tile of `trig` then touches 3 buffers instead of 5.
    fn allocate(&mut self) {
        let n = self.instrs.len();
        // The last reader of each register; the root lives to the end.
        let mut last = vec![0; n];
        for (i, (instr, _)) in self.instrs.iter().enumerate() {
            for a in operands(instr) {
                last[a] = i;
            }
        }
        if let Some(root) = last.last_mut() {
            *root = usize::MAX;
        }
        let mut buffers = vec![usize::MAX; n];
        let (mut free, mut next) = (Vec::new(), 0);
        let mut take = |free: &mut Vec<usize>| {
            free.pop().unwrap_or_else(|| {
                next += 1;
                next - 1
            })
        };
        for (i, (instr, _)) in self.instrs.iter().enumerate() {
            let defined = match *instr {
                Instr::SinCos { sin, cos, .. } => vec![sin, cos],
                Instr::Paired | Instr::Absorbed => vec![],
                _ => vec![i],
            };
            for &r in &defined {
                buffers[r] = take(&mut free);
            }
            // Each register once: a chain may read one several times, not
            // one after the other (poly reads x three times).
            let mut done = operands(instr);
            done.sort_unstable();
            done.dedup();
            // Operands read for the last time, and results nothing reads
            // (readers come later, so `last` is still 0 for those).
            done.retain(|&a| last[a] == i);
            done.extend(defined.into_iter().filter(|&r| last[r] == 0));
            for a in done {
                free.push(buffers[a]);
            }
        }
        self.buffers = buffers;
    }

    fn push(&mut self, instr: Instr, dtype: DType) -> usize {
        self.instrs.push((instr, dtype));
        self.instrs.len() - 1
    }

    /// The result's dtype.
    pub(crate) fn dtype(&self) -> DType {
        self.instrs.last().map_or(DType::F64, |i| i.1)
    }

    /// The smallest output worth computing on several threads.
    fn parallel_threshold(&self) -> usize {
        let weight = self
            .instrs
            .iter()
            .map(|(i, _)| match i {
                Instr::Unary(op, _) | Instr::Binary(op, _, _) => op.weight(),
                Instr::Chain(c) => c.links.iter().map(|l| l.op.weight()).max().unwrap_or(0),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        match weight {
            0 => 1 << 17,
            1 => 1 << 15,
            _ => 1 << 12,
        }
    }
}

/// The registers an instruction reads.
fn operands(instr: &Instr) -> Vec<usize> {
    match *instr {
        Instr::Cast(a) | Instr::Unary(_, a) | Instr::SinCos { x: a, .. } => vec![a],
        Instr::Binary(_, a, b) => vec![a, b],
        Instr::Chain(ref c) => std::iter::once(c.start)
            .chain(c.links.iter().filter_map(|l| l.other))
            .collect(),
        Instr::Input(_) | Instr::Paired | Instr::Absorbed => vec![],
    }
}

/// A frontier input bound to a run: how a tile of it is read.
enum Bound<'a> {
    /// As many elements as the output, in C order: read in place (the
    /// slice taken once, at binding, not per tile).
    Slice(AnySlice<'a>),
    /// One element.
    Scalar(Scalar),
    /// Broadcast: copied row by row from a C-order array with these
    /// element strides per output axis (0 along broadcast axes).
    Gather { data: Held<'a>, strides: Vec<usize> },
}

/// The elements of an input read in place.
enum AnySlice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl AnySlice<'_> {
    /// Where elements `lo..hi` lie in memory.
    fn span(&self, lo: usize, hi: usize) -> simd::Ahead {
        fn of<T>(x: &[T], lo: usize, hi: usize) -> simd::Ahead {
            let size = std::mem::size_of::<T>();
            simd::Ahead {
                addr: x.as_ptr() as usize + lo * size,
                bytes: (hi - lo) * size,
            }
        }
        match self {
            AnySlice::F32(x) => of(x, lo, hi),
            AnySlice::F64(x) => of(x, lo, hi),
            AnySlice::I32(x) => of(x, lo, hi),
            AnySlice::I64(x) => of(x, lo, hi),
        }
    }
}

/// C-order data of a frontier input: borrowed, or copied when the input
/// was not in C order.
enum Held<'a> {
    Borrowed(AnyView<'a>),
    Owned(AnyArray),
}

impl Held<'_> {
    fn view(&self) -> AnyView<'_> {
        match self {
            Held::Borrowed(v) => v.reborrow(),
            Held::Owned(a) => a.view(),
        }
    }
}

/// A program bound to its inputs and output shape, ready to run.
pub(crate) struct Run<'p, 'a> {
    program: &'p Program,
    inputs: Vec<Bound<'a>>,
    shape: Vec<usize>,
    n: usize,
    /// Whether the program's [`Lead`] prefetches (inputs beyond the caches).
    ahead: bool,
}

impl<'p, 'a> Run<'p, 'a> {
    /// Binds `inputs` (one per frontier input, of the program's dtypes, each
    /// broadcastable to `shape`) for an output of `shape`.
    pub(crate) fn new(program: &'p Program, inputs: Vec<AnyView<'a>>, shape: &[usize]) -> Self {
        assert_eq!(inputs.len(), program.inputs.len(), "one view per input");
        let n: usize = shape.iter().product();
        let inputs = inputs
            .into_iter()
            .zip(&program.inputs)
            .map(|(v, &dt)| {
                assert_eq!(v.dtype(), dt, "inputs have the program's dtypes");
                bind(v, shape, n)
            })
            .collect::<Vec<_>>();
        let read: usize = inputs
            .iter()
            .map(|b| match b {
                Bound::Slice(s) => s.span(0, n).bytes,
                _ => 0,
            })
            .sum();
        let bytes = read + n * program.dtype().size();
        Run {
            ahead: program.lead.is_some() && bytes >= AHEAD_MIN_BYTES,
            program,
            inputs,
            shape: shape.to_vec(),
            n,
        }
    }

    /// Fills `s.ahead` with what the lead prefetches during tile `lo..hi`:
    /// its inputs' runs and `out`, the output's tile, which the root
    /// writes in a burst.
    fn fill_ahead<O>(
        &self,
        s: &mut Scratch,
        lead: &Lead,
        lo: usize,
        hi: usize,
        out: Option<&[MaybeUninit<O>]>,
    ) {
        let next = (hi, (2 * hi - lo).min(self.n));
        let tiles = lead.now.iter().map(|&i| (i, (lo, hi)));
        for (i, (a, b)) in tiles.chain(lead.next.iter().map(|&i| (i, next))) {
            if let Bound::Slice(x) = &self.inputs[i] {
                if a < b {
                    s.ahead.push(x.span(a, b));
                }
            }
        }
        if let Some(o) = out {
            s.ahead.push(simd::Ahead {
                addr: o.as_ptr() as usize,
                bytes: std::mem::size_of_val(o),
            });
        }
    }

    /// The whole output, in C order.
    pub(crate) fn elementwise(&self) -> AnyArray {
        with_type!(self.program.dtype(), T => self.collect::<T>())
    }

    /// `sink` over the last axis (`lanes` of `m` values) or over all values
    /// (one lane of all), as a 1-D array of one result per lane.
    pub(crate) fn reduce(&self, sink: Sink, lanes: usize, m: usize) -> AnyArray {
        debug_assert_eq!(lanes * m, self.n);
        with_type!(self.program.dtype(), T => T::reduce(self, sink, lanes, m))
    }

    fn collect<T: Lane>(&self) -> AnyArray {
        let n = self.n;
        let mut out: Vec<T> = Vec::with_capacity(n);
        super::engine::advise_huge_pages(&mut out);
        {
            let spare = &mut out.spare_capacity_mut()[..n];
            let task = TILE * TASK_TILES;
            let fill = |(t, run): (usize, &mut [MaybeUninit<T>])| {
                with_scratch(|s| {
                    let lo = t * task;
                    for (k, out) in run.chunks_mut(TILE).enumerate() {
                        let start = lo + k * TILE;
                        if self.exec(s, start, start + out.len(), Some(&mut *out)) {
                            continue;
                        }
                        let root = self.program.instrs.len() - 1;
                        match s.operand::<T>(root, self, start, start + out.len()) {
                            Operand::Slice(x) => {
                                for (o, &v) in out.iter_mut().zip(x) {
                                    o.write(v);
                                }
                            }
                            Operand::Scalar(v) => {
                                for o in out.iter_mut() {
                                    o.write(v);
                                }
                            }
                        }
                    }
                })
            };
            if n >= self.program.parallel_threshold() && rayon::current_num_threads() > 1 {
                spare.par_chunks_mut(task).enumerate().for_each(fill);
            } else {
                spare.chunks_mut(task).enumerate().for_each(fill);
            }
        }
        set_len_initialized(&mut out, n);
        AnyArray::new(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&self.shape), out)
                .expect("one element per index"),
        )
    }

    /// Runs every instruction on elements `lo..hi` of the output. With
    /// `out`, a root that is a unary or binary operation writes its values
    /// there instead of into its register (saving a copy per element);
    /// returns whether it did.
    fn exec<O: Lane>(
        &self,
        s: &mut Scratch,
        lo: usize,
        hi: usize,
        mut out: Option<&mut [MaybeUninit<O>]>,
    ) -> bool {
        let len = hi - lo;
        let root = self.program.instrs.len() - 1;
        s.vals.resize(self.program.instrs.len(), Val::Buf);
        s.buffers.clear();
        s.buffers.extend_from_slice(&self.program.buffers);
        let lead = self.program.lead.as_ref().filter(|_| self.ahead);
        for (r, (instr, dt)) in self.program.instrs.iter().enumerate() {
            if let Some(lead) = lead.filter(|l| l.instr == r) {
                self.fill_ahead(s, lead, lo, hi, out.as_deref());
            }
            let val = match *instr {
                Instr::Input(i) => match &self.inputs[i] {
                    Bound::Slice(_) => Val::InPlace(i),
                    Bound::Scalar(v) => Val::Scalar(*v),
                    Bound::Gather { data, strides } => {
                        with_type!(*dt, T => {
                            let mut buf = s.take::<T>(r, len);
                            let v = data.view();
                            let src = T::unwrap_view(&v).expect("dtype checked at binding");
                            let src = src.as_slice().expect("gathered inputs are in C order");
                            gather(src, strides, &self.shape, lo, buf.slice_mut(len));
                            s.put::<T>(r, buf);
                        });
                        Val::Buf
                    }
                },
                Instr::Cast(a) => {
                    let from = self.program.instrs[a].1;
                    with_type!(*dt, T => cast_from::<T>(from, s, self, a, r, lo, hi))
                }
                Instr::Unary(op, a) if r == root && out.is_some() => {
                    let dest = Dest::Out(out.take().expect("checked"));
                    O::unary(op, s, self, a, dest, lo, hi);
                    return true;
                }
                Instr::Binary(op, a, b) if r == root && out.is_some() => {
                    let dest = Dest::Out(out.take().expect("checked"));
                    O::binary(op, s, self, [a, b], dest, lo, hi);
                    return true;
                }
                Instr::Unary(op, a) => {
                    with_type!(*dt, T => T::unary(op, s, self, a, Dest::Reg(r), lo, hi))
                }
                Instr::SinCos { x, sin, cos } => {
                    let (vs, vc) = match dt {
                        DType::F32 => sincos::<f32>(s, self, x, [sin, cos], lo, hi),
                        _ => sincos::<f64>(s, self, x, [sin, cos], lo, hi),
                    };
                    s.vals[sin] = vs;
                    s.vals[cos] = vc;
                    continue;
                }
                Instr::Paired | Instr::Absorbed => continue,
                Instr::Chain(ref c) if r == root && out.is_some() => {
                    let dest = Dest::Out(out.take().expect("checked"));
                    O::chain(c, s, self, dest, lo, hi);
                    return true;
                }
                Instr::Chain(ref c) => {
                    with_type!(*dt, T => T::chain(c, s, self, Dest::Reg(r), lo, hi))
                }
                Instr::Binary(op, a, b) => {
                    with_type!(*dt, T => T::binary(op, s, self, [a, b], Dest::Reg(r), lo, hi))
                }
            };
            s.vals[r] = val;
        }
        false
    }
}

impl<T: Lane> Ranges<T> for Run<'_, '_> {
    fn visit(&self, lo: usize, hi: usize, f: &mut dyn FnMut(&[T])) {
        with_scratch(|s| {
            self.exec::<T>(s, lo, hi, None);
            let root = self.program.instrs.len() - 1;
            match s.operand::<T>(root, self, lo, hi) {
                Operand::Slice(x) => f(x),
                Operand::Scalar(v) => f(&vec![v; hi - lo]),
            }
        })
    }

    fn tile(&self) -> usize {
        TILE
    }
}

fn bind<'a>(v: AnyView<'a>, shape: &[usize], n: usize) -> Bound<'a> {
    if v.len() == 1 {
        return Bound::Scalar(
            crate::value::dispatch_view!(&v, a => a.iter().next().copied().expect("one element").scalar()),
        );
    }
    let standard = crate::value::dispatch_view!(&v, a => a.is_standard_layout());
    if v.len() == n && standard {
        let whole = "a standard-layout view is one slice";
        return Bound::Slice(match v {
            AnyView::F32(a) => AnySlice::F32(a.to_slice().expect(whole)),
            AnyView::F64(a) => AnySlice::F64(a.to_slice().expect(whole)),
            AnyView::I32(a) => AnySlice::I32(a.to_slice().expect(whole)),
            AnyView::I64(a) => AnySlice::I64(a.to_slice().expect(whole)),
        });
    }
    let data = if standard {
        Held::Borrowed(v)
    } else {
        Held::Owned(
            crate::value::dispatch_view!(&v, a => AnyArray::new(a.as_standard_layout().into_owned())),
        )
    };
    // C-order strides of the input, aligned on the output's last axis; 0
    // along broadcast and missing axes.
    let own = data.view().shape().to_vec();
    let mut strides = vec![0; shape.len()];
    let mut step = 1;
    for k in (0..own.len()).rev() {
        let out_k = shape.len() - own.len() + k;
        if own[k] != 1 {
            strides[out_k] = step;
        }
        step *= own[k];
    }
    Bound::Gather { data, strides }
}

/// Copies elements `lo..lo + buf.len()` (C order) of an array of `shape`
/// read from `src` with `strides` into `buf`, a row run at a time.
fn gather<T: Copy>(src: &[T], strides: &[usize], shape: &[usize], lo: usize, buf: &mut [T]) {
    let nd = shape.len();
    let last = shape[nd - 1];
    let sl = strides[nd - 1];
    let mut idx = vec![0; nd];
    let mut rest = lo;
    for k in (0..nd).rev() {
        idx[k] = rest % shape[k];
        rest /= shape[k];
    }
    let mut off: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
    let mut pos = 0;
    while pos < buf.len() {
        let run = (buf.len() - pos).min(last - idx[nd - 1]);
        let dst = &mut buf[pos..pos + run];
        match sl {
            0 => dst.fill(src[off]),
            1 => dst.copy_from_slice(&src[off..off + run]),
            _ => {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = src[off + j * sl];
                }
            }
        }
        pos += run;
        idx[nd - 1] += run;
        off += run * sl;
        if idx[nd - 1] == last {
            off -= last * sl;
            idx[nd - 1] = 0;
            for k in (0..nd - 1).rev() {
                idx[k] += 1;
                off += strides[k];
                if idx[k] < shape[k] {
                    break;
                }
                off -= shape[k] * strides[k];
                idx[k] = 0;
            }
        }
    }
}

/// What a register holds for the current tile.
#[derive(Debug, Clone, Copy)]
enum Val {
    /// Input `i`, read in place.
    InPlace(usize),
    /// One value for every element.
    Scalar(Scalar),
    /// Its buffer.
    Buf,
}

/// Per-thread registers, reused from tile to tile and program to program.
#[derive(Default)]
struct Scratch {
    vals: Vec<Val>,
    /// What the program's lead instruction prefetches in this tile (see
    /// [`Lead`]); empty for the others.
    ahead: Vec<simd::Ahead>,
    /// The program's buffer of each register ([`Program::allocate`]).
    buffers: Vec<usize>,
    f32: Vec<Buffer<f32>>,
    f64: Vec<Buffer<f64>>,
    i32: Vec<Buffer<i32>>,
    i64: Vec<Buffer<i64>>,
}

/// A register's buffer: room for a tile that starts on a cache line, so
/// that no vector load or store of the loops spans two lines (allocations
/// are only 16-byte aligned). Measured on one thread over 1e4 `f64` (in
/// cache, min of 6000, three alternations): fused poly 13.6 against 12.9
/// µs, trig 34.9 against 33.9.
struct Buffer<T> {
    data: Vec<T>,
    start: usize,
}

impl<T> Default for Buffer<T> {
    fn default() -> Self {
        Buffer {
            data: Vec::new(),
            start: 0,
        }
    }
}

/// Bytes in a page: loads and stores whose addresses agree in their low
/// 12 bits look alike to the core's memory disambiguation (4K aliasing).
const PAGE: usize = 4096;

/// How far apart, within a page, two registers' buffers start (a multiple
/// of the cache line). Allocated one after another they started 80 bytes
/// apart, so a pass reading one and writing the next waited on its own
/// stores; staggered, poly over 1e4 on one thread took 12.5 instead of
/// 13.0 µs (min of 2000, three alternated runs each).
const STAGGER: usize = 1344;

impl<T: Copy + Default> Buffer<T> {
    /// A zeroed buffer of at least `len` elements whose start lies at
    /// `(slot * STAGGER) % PAGE` bytes into a page.
    fn new(len: usize, slot: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let pad = PAGE / size;
        let data = vec![T::default(); len + pad];
        // Bytes from the data to the wanted offset: below a page, so within
        // the padding (whole elements: the data and `STAGGER` are aligned).
        let addr = data.as_ptr() as usize;
        let gap = ((slot * STAGGER) % PAGE + PAGE - addr % PAGE) % PAGE;
        Buffer {
            data,
            start: gap / size,
        }
    }

    /// How many elements it holds.
    fn len(&self) -> usize {
        self.data.len() - self.start
    }

    fn slice(&self, len: usize) -> &[T] {
        &self.data[self.start..self.start + len]
    }

    fn slice_mut(&mut self, len: usize) -> &mut [T] {
        &mut self.data[self.start..self.start + len]
    }
}

impl Scratch {
    /// Register `r`'s buffer, at least `len` long, taken out of the scratch.
    fn take<T: Lane>(&mut self, r: usize, len: usize) -> Buffer<T> {
        let b = self.buffers[r];
        let pool = T::pool(self);
        if pool.len() <= b {
            pool.resize_with(b + 1, Buffer::default);
        }
        let mut buf = std::mem::take(&mut pool[b]);
        if buf.len() < len {
            buf = Buffer::new(len.max(TILE), b);
        }
        buf
    }

    fn put<T: Lane>(&mut self, r: usize, buf: Buffer<T>) {
        let b = self.buffers[r];
        T::pool(self)[b] = buf;
    }

    /// Register `r` for elements `lo..hi`.
    fn operand<'s, T: Lane>(
        &'s self,
        r: usize,
        run: &'s Run<'_, '_>,
        lo: usize,
        hi: usize,
    ) -> Operand<'s, T> {
        match self.vals[r] {
            Val::InPlace(i) => match &run.inputs[i] {
                Bound::Slice(v) => Operand::Slice(&T::slice(v)[lo..hi]),
                _ => unreachable!("only slices are read in place"),
            },
            Val::Scalar(v) => Operand::Scalar(T::of(v)),
            Val::Buf => Operand::Slice(T::pool_ref(self)[self.buffers[r]].slice(hi - lo)),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        // Re-entered (a task run while this thread waited): fresh registers.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// An element type of registers.
trait Lane: Element + Wrap + Reducible {
    fn pool(s: &mut Scratch) -> &mut Vec<Buffer<Self>>;
    fn pool_ref(s: &Scratch) -> &Vec<Buffer<Self>>;
    fn of(v: Scalar) -> Self;
    fn scalar(self) -> Scalar;
    /// The elements of an in-place input of this dtype.
    fn slice<'a>(v: &AnySlice<'a>) -> &'a [Self];
    /// Unary `op` of register `a` into `dest`.
    #[allow(clippy::too_many_arguments)]
    fn unary(
        op: FOp,
        s: &mut Scratch,
        run: &Run<'_, '_>,
        a: usize,
        dest: Dest<'_, Self>,
        lo: usize,
        hi: usize,
    ) -> Val;
    /// Chain `c` into `dest` (floats only).
    fn chain(
        c: &Chain,
        s: &mut Scratch,
        run: &Run<'_, '_>,
        dest: Dest<'_, Self>,
        lo: usize,
        hi: usize,
    ) -> Val;
    /// Binary `op` of registers `ab` into `dest`.
    #[allow(clippy::too_many_arguments)]
    fn binary(
        op: FOp,
        s: &mut Scratch,
        run: &Run<'_, '_>,
        ab: [usize; 2],
        dest: Dest<'_, Self>,
        lo: usize,
        hi: usize,
    ) -> Val;
}

/// Where an instruction writes a tile: its register, or (the root) the
/// output itself.
enum Dest<'o, T> {
    Reg(usize),
    Out(&'o mut [MaybeUninit<T>]),
}

macro_rules! lane {
    ($($t:ident => $v:ident, $unary:ident, $binary:ident, $chain:ident);*) => {$(
        impl Lane for $t {
            fn chain(c: &Chain, s: &mut Scratch, run: &Run<'_, '_>, dest: Dest<'_, Self>, lo: usize, hi: usize) -> Val {
                $chain::<$t>(c, s, run, dest, lo, hi)
            }
            fn unary(op: FOp, s: &mut Scratch, run: &Run<'_, '_>, a: usize, dest: Dest<'_, Self>, lo: usize, hi: usize) -> Val {
                $unary::<$t>(op, s, run, a, dest, lo, hi)
            }
            fn binary(op: FOp, s: &mut Scratch, run: &Run<'_, '_>, ab: [usize; 2], dest: Dest<'_, Self>, lo: usize, hi: usize) -> Val {
                $binary::<$t>(op, s, run, ab, dest, lo, hi)
            }
            fn pool(s: &mut Scratch) -> &mut Vec<Buffer<Self>> { &mut s.$t }
            fn pool_ref(s: &Scratch) -> &Vec<Buffer<Self>> { &s.$t }
            fn of(v: Scalar) -> Self {
                match v {
                    Scalar::$v(x) => x,
                    other => unreachable!("register of {} holds {other:?}", stringify!($t)),
                }
            }
            fn scalar(self) -> Scalar { Scalar::$v(self) }
            fn slice<'a>(v: &AnySlice<'a>) -> &'a [Self] {
                match *v {
                    AnySlice::$v(x) => x,
                    _ => unreachable!("an input of another dtype read as {}", stringify!($t)),
                }
            }
        }
    )*};
}

lane!(
    f32 => F32, unary_float, binary_float, chain_float;
    f64 => F64, unary_float, binary_float, chain_float;
    i32 => I32, unary_int, binary_int, chain_int;
    i64 => I64, unary_int, binary_int, chain_int
);

/// Writes chain `c` into `dest` ([`chain::run`]); a chain of scalars is
/// one scalar.
fn chain_float<T: Lane + Chained>(
    c: &Chain,
    s: &mut Scratch,
    run: &Run<'_, '_>,
    dest: Dest<'_, T>,
    lo: usize,
    hi: usize,
) -> Val {
    match dest {
        Dest::Reg(r) => {
            let mut out = s.take::<T>(r, hi - lo);
            let v = chain_into(c, s, run, lo, hi, out.slice_mut(hi - lo));
            s.put(r, out);
            v.map_or(Val::Buf, |v| Val::Scalar(v.scalar()))
        }
        Dest::Out(out) => into_output(chain_into(c, s, run, lo, hi, &mut *out), out),
    }
}

/// Chain `c` over elements `lo..hi` into `out`; of scalars only, the one
/// value instead (`out` untouched).
fn chain_into<T: Lane + Chained, S: Slot<T>>(
    c: &Chain,
    s: &Scratch,
    run: &Run<'_, '_>,
    lo: usize,
    hi: usize,
    out: &mut [S],
) -> Option<T> {
    let start = s.operand::<T>(c.start, run, lo, hi);
    let mut steps = [chain::Step::Unary(FOp::Neg); MAX_STEPS];
    let mut scalars = matches!(start, Operand::Scalar(_));
    for (step, l) in steps.iter_mut().zip(&c.links) {
        *step = match l.other {
            None => chain::Step::Unary(l.op),
            Some(r) => {
                let other = s.operand::<T>(r, run, lo, hi);
                scalars &= matches!(other, Operand::Scalar(_));
                chain::Step::Binary {
                    op: l.op,
                    other,
                    swapped: l.swapped,
                }
            }
        };
    }
    let steps = &steps[..c.links.len()];
    match start {
        Operand::Scalar(v) if scalars => Some(chain::scalar(v, steps)),
        _ => {
            chain::run(simd::level(), start, steps, out);
            None
        }
    }
}

fn chain_int<T: Lane>(
    _: &Chain,
    _: &mut Scratch,
    _: &Run<'_, '_>,
    _: Dest<'_, T>,
    _: usize,
    _: usize,
) -> Val {
    unreachable!("integer programs chain nothing")
}

/// Writes `f` of register `a` into `dest` (a register may get a scalar).
#[allow(clippy::too_many_arguments)]
fn go1<T: Lane, F: Map1<T, T>>(
    f: &F,
    level: Level,
    s: &mut Scratch,
    run: &Run<'_, '_>,
    a: usize,
    dest: Dest<'_, T>,
    lo: usize,
    hi: usize,
) -> Val {
    let ahead = std::mem::take(&mut s.ahead);
    let val = match dest {
        Dest::Reg(r) => {
            let mut out = s.take::<T>(r, hi - lo);
            let x = s.operand(a, run, lo, hi);
            let v = apply1(f, level, x, out.slice_mut(hi - lo), &ahead);
            s.put(r, out);
            v.map_or(Val::Buf, |v| Val::Scalar(v.scalar()))
        }
        Dest::Out(out) => {
            let x = s.operand(a, run, lo, hi);
            into_output(apply1(f, level, x, out, &ahead), out)
        }
    };
    s.ahead = ahead;
    s.ahead.clear();
    val
}

/// `f` of `x` into `out` (prefetching `ahead`); of a scalar, the one value
/// instead (`out` untouched).
fn apply1<T: Lane, S: Slot<T>, F: Map1<T, T>>(
    f: &F,
    level: Level,
    x: Operand<'_, T>,
    out: &mut [S],
    ahead: &[simd::Ahead],
) -> Option<T> {
    match x {
        Operand::Slice(x) => {
            simd::map1(level, x, out, f, ahead);
            None
        }
        Operand::Scalar(v) => Some(if f.needs_exact(v) {
            f.exact(v)
        } else {
            f.call(v)
        }),
    }
}

/// Writes `f` of registers `a` and `b` into `dest` (a register may get a
/// scalar).
#[allow(clippy::too_many_arguments)]
fn go2<T: Lane, F: Map2<T, T, T>>(
    f: &F,
    level: Level,
    s: &mut Scratch,
    run: &Run<'_, '_>,
    [a, b]: [usize; 2],
    dest: Dest<'_, T>,
    lo: usize,
    hi: usize,
) -> Val {
    match dest {
        Dest::Reg(r) => {
            let mut out = s.take::<T>(r, hi - lo);
            let (x, y) = (s.operand(a, run, lo, hi), s.operand(b, run, lo, hi));
            let v = apply2(f, level, x, y, out.slice_mut(hi - lo));
            s.put(r, out);
            v.map_or(Val::Buf, |v| Val::Scalar(v.scalar()))
        }
        Dest::Out(out) => {
            let (x, y) = (s.operand(a, run, lo, hi), s.operand(b, run, lo, hi));
            into_output(apply2(f, level, x, y, out), out)
        }
    }
}

/// `f` of `x` and `y` into `out`; of two scalars, the one value instead.
fn apply2<T: Lane, S: Slot<T>, F: Map2<T, T, T>>(
    f: &F,
    level: Level,
    x: Operand<'_, T>,
    y: Operand<'_, T>,
    out: &mut [S],
) -> Option<T> {
    if let (Operand::Scalar(x), Operand::Scalar(y)) = (x, y) {
        Some(if f.needs_exact(x, y) {
            f.exact(x, y)
        } else {
            f.call(x, y)
        })
    } else {
        simd::map2(level, x, y, out, f);
        None
    }
}

/// Completes an output tile: a scalar result fills it (a slice result
/// was written by the loop).
fn into_output<T: Copy>(scalar: Option<T>, out: &mut [MaybeUninit<T>]) -> Val {
    if let Some(v) = scalar {
        for o in out {
            o.write(v);
        }
    }
    Val::Buf
}

/// `sin` and `cos` of register `x` into registers `sin` and `cos`.
fn sincos<T: Lane>(
    s: &mut Scratch,
    run: &Run<'_, '_>,
    x: usize,
    [rs, rc]: [usize; 2],
    lo: usize,
    hi: usize,
) -> (Val, Val)
where
    ops::SinCos: Map1x2<T, T>,
{
    let f = ops::SinCos;
    let len = hi - lo;
    let (mut out_s, mut out_c) = (s.take::<T>(rs, len), s.take::<T>(rc, len));
    let vals = match s.operand::<T>(x, run, lo, hi) {
        Operand::Slice(v) => {
            let (out_s, out_c) = (out_s.slice_mut(len), out_c.slice_mut(len));
            simd::map1x2(simd::level(), v, out_s, out_c, &f, &s.ahead);
            (Val::Buf, Val::Buf)
        }
        Operand::Scalar(v) => {
            let (a, b) = if f.needs_exact(v) {
                f.exact(v)
            } else {
                f.call(v)
            };
            (Val::Scalar(a.scalar()), Val::Scalar(b.scalar()))
        }
    };
    s.ahead.clear();
    s.put(rs, out_s);
    s.put(rc, out_c);
    vals
}

#[allow(clippy::too_many_arguments)]
fn cast_from<T: Lane>(
    from: DType,
    s: &mut Scratch,
    run: &Run<'_, '_>,
    a: usize,
    r: usize,
    lo: usize,
    hi: usize,
) -> Val
where
    f32: Cast<T>,
    f64: Cast<T>,
    i32: Cast<T>,
    i64: Cast<T>,
{
    with_type!(from, S => cast::<S, T>(s, run, a, r, lo, hi))
}

#[allow(clippy::too_many_arguments)]
fn cast<S: Lane + Cast<T>, T: Lane>(
    s: &mut Scratch,
    run: &Run<'_, '_>,
    a: usize,
    r: usize,
    lo: usize,
    hi: usize,
) -> Val {
    let len = hi - lo;
    let mut out = s.take::<T>(r, len);
    let val = match s.operand::<S>(a, run, lo, hi) {
        Operand::Slice(x) => {
            for (o, &v) in out.slice_mut(len).iter_mut().zip(x) {
                *o = v.cast();
            }
            Val::Buf
        }
        Operand::Scalar(v) => Val::Scalar(Cast::<T>::cast(v).scalar()),
    };
    s.put(r, out);
    val
}

/// Declares a function applying the unary builtins `$($op => $f)*` to a
/// register of `T`, and one applying the binary ones `$($op2 => $f2)*`
/// (each `$f` an `ops` loop function implemented for `T`).
macro_rules! dispatch {
    ($unary:ident: $($op:ident => $f:ident),*; $binary:ident: $($op2:ident => $f2:ident),*) => {
        #[allow(clippy::too_many_arguments)]
        fn $unary<T: Lane>(op: FOp, s: &mut Scratch, run: &Run<'_, '_>, a: usize, dest: Dest<'_, T>, lo: usize, hi: usize) -> Val
        where
            $(ops::$f: Map1<T, T>,)*
        {
            let l = op.level();
            match op {
                $(FOp::$op => go1(&ops::$f, l, s, run, a, dest, lo, hi),)*
                _ => unreachable!("{op:?} is not a unary operation of this dtype"),
            }
        }

        #[allow(clippy::too_many_arguments)]
        fn $binary<T: Lane>(op: FOp, s: &mut Scratch, run: &Run<'_, '_>, ab: [usize; 2], dest: Dest<'_, T>, lo: usize, hi: usize) -> Val
        where
            $(ops::$f2: Map2<T, T, T>,)*
        {
            let l = op.level();
            match op {
                $(FOp::$op2 => go2(&ops::$f2, l, s, run, ab, dest, lo, hi),)*
                _ => unreachable!("{op:?} is not a binary operation of this dtype"),
            }
        }
    };
}

dispatch! {
    unary_float: Neg => Neg, Abs => Abs, Square => Square, Sqrt => Sqrt, Exp => Exp,
        Expm1 => Expm1, Log => Log, Log1p => Log1p, Sin => Sin, Cos => Cos, Tan => Tan,
        Tanh => Tanh;
    binary_float: Add => Add, Sub => Sub, Mul => Mul, Div => Div, Pow => Pow,
        Maximum => Maximum, Minimum => Minimum
}

// Integers: the float functions and division compute in floats (the
// program casts first), and integer power is not fused.
dispatch! {
    unary_int: Neg => Neg, Abs => Abs, Square => Square;
    binary_int: Add => Add, Sub => Sub, Mul => Mul, Maximum => Maximum, Minimum => Minimum
}

/// The value of a scalar as a 0-d array (what the unfused chain passes to
/// the registry).
pub(crate) fn scalar_array(v: Scalar) -> AnyArray {
    match v {
        Scalar::F32(x) => AnyArray::new(ndarray::arr0(x)),
        Scalar::F64(x) => AnyArray::new(ndarray::arr0(x)),
        Scalar::I32(x) => AnyArray::new(ndarray::arr0(x)),
        Scalar::I64(x) => AnyArray::new(ndarray::arr0(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2*sin(x)**2 + cos(x)*y` as the expression compiler emits it.
    fn trig() -> Program {
        let mut p = Program::new();
        let x = p.input(DType::F64);
        let y = p.input(DType::F64);
        let two = p.input(DType::F64);
        let s = p.op(FOp::Sin, &[x]).unwrap();
        let sq = p.op(FOp::Square, &[s]).unwrap();
        let m = p.op(FOp::Mul, &[two, sq]).unwrap();
        let c = p.op(FOp::Cos, &[x]).unwrap();
        let cy = p.op(FOp::Mul, &[c, y]).unwrap();
        p.op(FOp::Add, &[m, cy]).unwrap();
        p.pair();
        p
    }

    /// `exp(-(x - m)**2 / w) * y` (inputs x, y, m, w), not yet paired;
    /// returns y's register and the result's.
    fn gauss_unpaired() -> (Program, usize, usize) {
        let mut p = Program::new();
        let x = p.input(DType::F64);
        let y = p.input(DType::F64);
        let m = p.input(DType::F64);
        let w = p.input(DType::F64);
        let d = p.op(FOp::Sub, &[x, m]).unwrap();
        let d2 = p.op(FOp::Square, &[d]).unwrap();
        let neg = p.op(FOp::Neg, &[d2]).unwrap();
        let q = p.op(FOp::Div, &[neg, w]).unwrap();
        let e = p.op(FOp::Exp, &[q]).unwrap();
        let g = p.op(FOp::Mul, &[e, y]).unwrap();
        (p, y, g)
    }

    fn gauss() -> Program {
        let (mut p, ..) = gauss_unpaired();
        p.pair();
        p
    }

    fn view<T: Element>(v: &[T]) -> AnyView<'_> {
        let shape = if v.len() == 1 { vec![] } else { vec![v.len()] };
        ndarray::ArrayViewD::from_shape(ndarray::IxDyn(&shape), v)
            .unwrap()
            .into()
    }

    fn link(op: FOp, other: Option<usize>, swapped: bool) -> Link {
        Link { op, other, swapped }
    }

    #[test]
    fn cheap_builtins_chain_through_values_read_once_bit_for_bit() {
        // gauss, plus a square read twice (not chained). Its registers,
        // in the order gauss_unpaired adds them:
        let (mut p, y, g) = gauss_unpaired();
        let [x, m, w, d, d2, neg, q, e] = [0, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!((y, g), (1, 9));
        let y2 = p.op(FOp::Square, &[y]).unwrap();
        let t = p.op(FOp::Add, &[g, y2]).unwrap();
        let root = p.op(FOp::Sub, &[t, y2]).unwrap();
        p.pair();
        let kinds: Vec<_> = p.instrs.iter().map(|(i, _)| i.clone()).collect();
        let gauss_arg = Chain {
            start: x,
            links: vec![
                link(FOp::Sub, Some(m), false),
                link(FOp::Square, None, false),
                link(FOp::Neg, None, false),
                link(FOp::Div, Some(w), false),
            ],
        };
        assert_eq!(kinds[q], Instr::Chain(gauss_arg));
        let tail = Chain {
            start: e,
            links: vec![
                link(FOp::Mul, Some(y), false),
                link(FOp::Add, Some(y2), false),
                link(FOp::Sub, Some(y2), false),
            ],
        };
        assert_eq!(kinds[root], Instr::Chain(tail));
        for r in [d, d2, neg, g, t] {
            assert_eq!(kinds[r], Instr::Absorbed, "register {r}");
        }
        assert_eq!(kinds[y2], Instr::Unary(FOp::Square, y), "read twice: kept");

        // Two tiles and 5 elements: whole blocks, and a rest element by
        // element.
        let n = 2 * TILE + 5;
        let xs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
        let mut ys: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 / 1e3).collect();
        ys[7] = f64::NAN;
        ys[8] = -0.0;
        ys[n - 2] = f64::INFINITY;
        let views = vec![view(&xs), view(&ys), view(&[0.5]), view(&[0.02])];
        let AnyArray::F64(out) = Run::new(&p, views, &[n]).elementwise() else {
            panic!("f64 result")
        };
        // The oracle: each builtin's element function, one at a time.
        let sq = |v: f64| Map1::<f64, f64>::call(&ops::Square, v);
        for i in 0..n {
            let q = -sq(xs[i] - 0.5) / 0.02;
            // q ≥ −612: the loop's fast exp, no fix-up.
            let g = Map1::<f64, f64>::call(&ops::Exp, q) * ys[i];
            let want = (g + sq(ys[i])) - sq(ys[i]);
            assert_eq!(out[[i]].to_bits(), want.to_bits(), "element {i}");
        }
    }

    /// `-(min(y, |w / max(m - x, y)|))**2` and its value per element, from
    /// each builtin's element function: a chain starting from a scalar,
    /// with operands on both sides.
    fn swapped<T>(x: &[T], y: &[T], m: T, w: T) -> (AnyArray, Vec<T>)
    where
        T: Lane,
        ops::Sub: Map2<T, T, T>,
        ops::Maximum: Map2<T, T, T>,
        ops::Minimum: Map2<T, T, T>,
        ops::Div: Map2<T, T, T>,
        ops::Abs: Map1<T, T>,
        ops::Square: Map1<T, T>,
        ops::Neg: Map1<T, T>,
    {
        let dt = T::DTYPE;
        let mut p = Program::new();
        let (xr, yr, mr, wr) = (p.input(dt), p.input(dt), p.input(dt), p.input(dt));
        let a = p.op(FOp::Sub, &[mr, xr]).unwrap();
        let b = p.op(FOp::Maximum, &[a, yr]).unwrap();
        let c = p.op(FOp::Div, &[wr, b]).unwrap();
        let d = p.op(FOp::Abs, &[c]).unwrap();
        let e = p.op(FOp::Minimum, &[yr, d]).unwrap();
        let f = p.op(FOp::Square, &[e]).unwrap();
        let root = p.op(FOp::Neg, &[f]).unwrap();
        p.pair();
        let Instr::Chain(ch) = &p.instrs[root].0 else {
            panic!("one chain: {:?}", p.instrs)
        };
        assert_eq!(ch.start, mr);
        let swaps: Vec<bool> = ch.links.iter().map(|l| l.swapped).collect();
        assert_eq!(swaps, [false, false, true, false, true, false, false]);
        let n = x.len();
        let (ms, ws) = ([m], [w]);
        let views = vec![view(x), view(y), view(&ms), view(&ws)];
        let out = Run::new(&p, views, &[n]).elementwise();
        let want = (0..n)
            .map(|i| {
                let v = ops::Sub.call(m, x[i]);
                let v = ops::Maximum.call(v, y[i]);
                let v = ops::Div.call(w, v);
                let v = ops::Abs.call(v);
                let v = ops::Minimum.call(y[i], v);
                ops::Neg.call(ops::Square.call(v))
            })
            .collect();
        (out, want)
    }

    #[test]
    fn chains_keep_each_operand_on_its_side_and_nans_where_numpy_has_them() {
        // NaNs (maximum and minimum keep the first operand's), signed
        // zeros, infinities, in whole blocks and in the rest.
        let n = TILE + 70;
        let mut x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.61).cos() * 2.0).collect();
        let mut y: Vec<f64> = (0..n).map(|i| (i as f64 * 0.29).sin()).collect();
        for k in [3, 40, n - 3] {
            x[k] = f64::NAN;
            y[k + 1] = f64::NAN;
            x[k + 2] = 0.5;
            y[k + 2] = -0.0;
        }
        y[n - 1] = f64::NEG_INFINITY;
        // Every feature level the loop is compiled for (the CPU's best
        // at most).
        for cap in [Level::Base, Level::V3, Level::V4] {
            let (out, want) = simd::with_level_cap(cap, || swapped(&x, &y, 0.5, -3.0));
            let AnyArray::F64(out) = out else {
                panic!("f64 result")
            };
            for i in 0..n {
                assert_eq!(
                    out[[i]].to_bits(),
                    want[i].to_bits(),
                    "{cap:?}, element {i}"
                );
            }
        }
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let (out, want) = swapped(&x32, &y32, 0.5, -3.0);
        let AnyArray::F32(out) = out else {
            panic!("f32 result")
        };
        for i in 0..n {
            assert_eq!(out[[i]].to_bits(), want[i].to_bits(), "element {i}");
        }
    }

    #[test]
    fn two_nans_give_the_first_operands_in_chains_as_in_the_registry() {
        // x is -NaN (the default NaN of x86) or 0.5; |x| is +NaN there. In
        // `|x| op x` and `x op |x|` both operands are NaNs of opposite signs:
        // the result must be the first's, on either side of the running
        // value, in whole blocks and in the rest (the registry's loops give
        // the first's too: ops::first_nan).
        let n = TILE + 45;
        let nan = f64::from_bits(0xfff8 << 48);
        let x: Vec<f64> = (0..n).map(|i| if i % 3 == 0 { nan } else { 0.5 }).collect();
        for op in [FOp::Add, FOp::Mul, FOp::Sub, FOp::Div] {
            for abs_first in [true, false] {
                let mut p = Program::new();
                let xr = p.input(DType::F64);
                let a = p.op(FOp::Abs, &[xr]).unwrap();
                let args = if abs_first { [a, xr] } else { [xr, a] };
                let m = p.op(op, &args).unwrap();
                p.op(FOp::Square, &[m]).unwrap();
                p.pair();
                assert!(matches!(p.instrs.last().unwrap().0, Instr::Chain(_)));
                // At every level the chain's loop is compiled for.
                let outs = [Level::Base, Level::V3, Level::V4].map(|cap| {
                    simd::with_level_cap(cap, || Run::new(&p, vec![view(&x)], &[n]).elementwise())
                });
                assert!(outs.iter().all(|o| o.bitwise_eq(&outs[0])));
                let AnyArray::F64(out) = &outs[0] else {
                    panic!("f64 result")
                };
                for (i, &v) in x.iter().enumerate() {
                    let first = if abs_first { v.abs() } else { v };
                    let want = if v.is_nan() {
                        first.to_bits()
                    } else {
                        let r = match op {
                            FOp::Add => v.abs() + v,
                            FOp::Mul => v.abs() * v,
                            FOp::Sub if abs_first => v.abs() - v,
                            FOp::Sub => v - v.abs(),
                            FOp::Div if abs_first => v.abs() / v,
                            _ => v / v.abs(),
                        };
                        (r * r).to_bits()
                    };
                    assert_eq!(
                        out[[i]].to_bits(),
                        want,
                        "{op:?} |x| first {abs_first}: element {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn scalar_operands_keep_the_first_nan_rule() {
        // |x| op s and s op |x|, then squared, with s a number (the chain's
        // plain loop: at most one NaN) or a NaN of its own payload (the
        // first-NaN loop): the first operand's NaN where both are NaNs,
        // else the NaN there is.
        let n = TILE + 45;
        let nan = f64::from_bits(0xfff8 << 48);
        let x: Vec<f64> = (0..n)
            .map(|i| if i % 3 == 0 { nan } else { 0.5 + i as f64 })
            .collect();
        let nan7 = f64::from_bits(0x7ff8_0000_0000_0007);
        for op in [FOp::Add, FOp::Mul] {
            for scalar in [2.5, nan7] {
                for abs_first in [true, false] {
                    let mut p = Program::new();
                    let (xr, sr) = (p.input(DType::F64), p.input(DType::F64));
                    let a = p.op(FOp::Abs, &[xr]).unwrap();
                    let args = if abs_first { [a, sr] } else { [sr, a] };
                    let m = p.op(op, &args).unwrap();
                    p.op(FOp::Square, &[m]).unwrap();
                    p.pair();
                    let one = [scalar];
                    let views = vec![view(&x), view(&one)];
                    let AnyArray::F64(out) = Run::new(&p, views, &[n]).elementwise() else {
                        panic!("f64 result")
                    };
                    for (i, &v) in x.iter().enumerate() {
                        let (a, b) = if abs_first {
                            (v.abs(), scalar)
                        } else {
                            (scalar, v.abs())
                        };
                        let r = match (a.is_nan(), b.is_nan(), op) {
                            (true, ..) => a,
                            (false, true, _) => b,
                            (_, _, FOp::Add) => a + b,
                            _ => a * b,
                        };
                        let want = if r.is_nan() { r } else { r * r };
                        assert_eq!(
                            out[[i]].to_bits(),
                            want.to_bits(),
                            "{op:?} s={scalar} |x| first {abs_first}: element {i}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_chain_of_scalars_is_one_value_and_long_runs_split() {
        // (m + w) * m - w of scalars, broadcast to the output.
        let mut p = Program::new();
        let (m, w) = (p.input(DType::F64), p.input(DType::F64));
        let s = p.op(FOp::Add, &[m, w]).unwrap();
        let s = p.op(FOp::Mul, &[s, m]).unwrap();
        p.op(FOp::Sub, &[s, w]).unwrap();
        p.pair();
        let AnyArray::F64(out) =
            Run::new(&p, vec![view(&[0.1]), view(&[0.7])], &[37]).elementwise()
        else {
            panic!("f64 result")
        };
        let want = (0.1_f64 + 0.7) * 0.1 - 0.7;
        assert!(out.iter().all(|v| v.to_bits() == want.to_bits()), "{out}");
        // Then read by an instruction on an array.
        let mut p = Program::new();
        let (m, w, x) = (
            p.input(DType::F64),
            p.input(DType::F64),
            p.input(DType::F64),
        );
        let s = p.op(FOp::Add, &[m, w]).unwrap();
        let s = p.op(FOp::Mul, &[s, m]).unwrap();
        let s = p.op(FOp::Sub, &[s, w]).unwrap();
        let e = p.op(FOp::Exp, &[x]).unwrap();
        p.op(FOp::Maximum, &[e, s]).unwrap();
        p.pair();
        let xs: Vec<f64> = (0..37).map(|i| i as f64 * -0.01).collect();
        let views = vec![view(&[0.1]), view(&[0.7]), view(&xs)];
        let AnyArray::F64(out) = Run::new(&p, views, &[37]).elementwise() else {
            panic!("f64 result")
        };
        for (i, &v) in xs.iter().enumerate() {
            let e = Map1::<f64, f64>::call(&ops::Exp, v);
            let want = ops::Maximum.call(e, want);
            assert_eq!(out[[i]].to_bits(), want.to_bits(), "element {i}");
        }
        // Integer programs chain nothing (their builtins wrap around in
        // their own loops).
        let mut p = Program::new();
        let (a, b) = (p.input(DType::I64), p.input(DType::I64));
        let s = p.op(FOp::Add, &[a, b]).unwrap();
        p.op(FOp::Mul, &[s, a]).unwrap();
        p.pair();
        assert!(p
            .instrs
            .iter()
            .all(|(i, _)| !matches!(i, Instr::Chain(_) | Instr::Absorbed)));

        // x + 1 + 1 + ...: runs of at most MAX_STEPS links.
        let steps = 2 * MAX_STEPS + 3;
        let mut p = Program::new();
        let (x, one) = (p.input(DType::F64), p.input(DType::F64));
        let mut r = x;
        for _ in 0..steps {
            r = p.op(FOp::Add, &[r, one]).unwrap();
        }
        p.pair();
        let lens: Vec<usize> = p
            .instrs
            .iter()
            .filter_map(|(i, _)| match i {
                Instr::Chain(c) => Some(c.links.len()),
                Instr::Binary(..) => Some(1),
                _ => None,
            })
            .collect();
        assert_eq!(lens, [MAX_STEPS, MAX_STEPS, 3]);
        let xs: Vec<f64> = (0..100).map(|i| i as f64 * 1e15 + 0.3).collect();
        let AnyArray::F64(out) = Run::new(&p, vec![view(&xs), view(&[1.0])], &[100]).elementwise()
        else {
            panic!("f64 result")
        };
        for (i, &v) in xs.iter().enumerate() {
            let want = (0..steps).fold(v, |a, _| a + 1.0);
            assert_eq!(out[[i]].to_bits(), want.to_bits(), "element {i}");
        }
    }

    /// `t = (x + y) * x; sin(t) + cos(t) * y`: a chain that reads `x`
    /// twice, not one after the other, then more instructions.
    fn twice_read() -> Program {
        let mut p = Program::new();
        let x = p.input(DType::F64);
        let y = p.input(DType::F64);
        let xy = p.op(FOp::Add, &[x, y]).unwrap();
        let t = p.op(FOp::Mul, &[xy, x]).unwrap();
        let s = p.op(FOp::Sin, &[t]).unwrap();
        let c = p.op(FOp::Cos, &[t]).unwrap();
        let cy = p.op(FOp::Mul, &[c, y]).unwrap();
        p.op(FOp::Add, &[s, cy]).unwrap();
        p.pair();
        p
    }

    #[test]
    fn registers_share_buffers_only_when_their_lives_do_not_overlap() {
        for p in [trig(), gauss(), twice_read()] {
            assert_buffers_disjoint(&p);
        }
    }

    fn assert_buffers_disjoint(p: &Program) {
        let n = p.instrs.len();
        // Where each register is defined and last read (the root: never).
        let mut def = vec![0; n];
        let mut last = vec![0; n];
        for (i, (instr, _)) in p.instrs.iter().enumerate() {
            match *instr {
                Instr::SinCos { x, sin, cos } => {
                    (def[sin], def[cos]) = (i, i);
                    last[x] = i;
                }
                Instr::Paired | Instr::Absorbed => {}
                Instr::Cast(a) | Instr::Unary(_, a) => (def[i], last[a]) = (i, i),
                Instr::Binary(_, a, b) => (def[i], last[a], last[b]) = (i, i, i),
                Instr::Chain(ref c) => {
                    def[i] = i;
                    for a in operands(&p.instrs[i].0) {
                        last[a] = i;
                    }
                    assert!(c.links.len() > 1);
                }
                Instr::Input(_) => def[i] = i,
            }
        }
        last[n - 1] = usize::MAX;
        // Absorbed builtins have no register.
        let held: Vec<usize> = (0..n)
            .filter(|&r| p.instrs[r].0 != Instr::Absorbed)
            .collect();
        for (k, &a) in held.iter().enumerate() {
            for &b in &held[k + 1..] {
                let overlap = def[a] <= last[b].max(def[b]) && def[b] <= last[a].max(def[a]);
                if overlap {
                    assert_ne!(p.buffers[a], p.buffers[b], "registers {a} and {b}");
                }
            }
        }
        let used: std::collections::BTreeSet<usize> = held.iter().map(|&r| p.buffers[r]).collect();
        assert!(used.len() < held.len(), "no buffer reused: {:?}", p.buffers);
    }

    #[test]
    fn a_chain_reading_a_register_twice_frees_its_buffer_once() {
        let p = twice_read();
        let n = TILE + 9;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 2.0).collect();
        let y: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 / 1e3).collect();
        let AnyArray::F64(out) = Run::new(&p, vec![view(&x), view(&y)], &[n]).elementwise() else {
            panic!("f64 result")
        };
        for i in 0..n {
            let t = (x[i] + y[i]) * x[i];
            let s = Map1::<f64, f64>::call(&ops::Sin, t);
            let c = Map1::<f64, f64>::call(&ops::Cos, t);
            assert_eq!(out[[i]].to_bits(), (s + c * y[i]).to_bits(), "element {i}");
        }
    }

    #[test]
    fn a_program_with_reused_buffers_computes_each_element_as_the_chain_does() {
        let p = trig();
        let n = 3 * TILE + 17;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 4.0).collect();
        let y: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 / 1e3).collect();
        let views = vec![
            AnyView::F64(ndarray::ArrayViewD::from_shape(ndarray::IxDyn(&[n]), &x).unwrap()),
            AnyView::F64(ndarray::ArrayViewD::from_shape(ndarray::IxDyn(&[n]), &y).unwrap()),
            AnyView::F64(ndarray::ArrayViewD::from_shape(ndarray::IxDyn(&[]), &[2.0]).unwrap()),
        ];
        let out = Run::new(&p, views, &[n]).elementwise();
        let AnyArray::F64(out) = out else {
            panic!("f64 result")
        };
        for i in 0..n {
            let s = Map1::<f64, f64>::call(&ops::Sin, x[i]);
            let c = Map1::<f64, f64>::call(&ops::Cos, x[i]);
            let want = 2.0 * (s * s) + c * y[i];
            assert_eq!(out[[i]].to_bits(), want.to_bits(), "element {i}");
        }
    }

    #[test]
    fn the_lead_prefetches_what_cheap_passes_read_in_a_burst() {
        // trig: the sin/cos pair reads x itself; y (and the scalar 2,
        // which a run binds as a scalar and skips) are read after it.
        let p = trig();
        let lead = p.lead.clone().expect("trig has a lead");
        assert!(matches!(p.instrs[lead.instr].0, Instr::SinCos { .. }));
        assert_eq!((lead.now, lead.next), (vec![1, 2], vec![]));
        // gauss: exp reads a register; x (and the scalars m and w) before
        // it, for the next tile, y after it, for this one.
        let p = gauss();
        let lead = p.lead.clone().expect("gauss has a lead");
        assert!(matches!(p.instrs[lead.instr].0, Instr::Unary(FOp::Exp, _)));
        assert_eq!((lead.now, lead.next), (vec![1], vec![0, 2, 3]));
        // sin(x) + cos(x): no other input, but a later pass writes the
        // output.
        let mut p = Program::new();
        let x = p.input(DType::F64);
        let s = p.op(FOp::Sin, &[x]).unwrap();
        let c = p.op(FOp::Cos, &[x]).unwrap();
        p.op(FOp::Add, &[s, c]).unwrap();
        p.pair();
        let lead = p.lead.clone().expect("a later pass writes the output");
        assert_eq!((lead.instr, lead.now, lead.next), (1, vec![], vec![]));
        // sin(x) alone writes the output itself: nothing to prefetch.
        let mut p = Program::new();
        let x = p.input(DType::F64);
        p.op(FOp::Sin, &[x]).unwrap();
        p.pair();
        assert_eq!(p.lead, None);
        // Only cheap operations: nothing leads.
        let mut p = Program::new();
        let x = p.input(DType::F64);
        let y = p.input(DType::F64);
        let xy = p.op(FOp::Mul, &[x, y]).unwrap();
        p.op(FOp::Add, &[xy, x]).unwrap();
        p.pair();
        assert_eq!(p.lead, None);
    }

    #[test]
    fn prefetching_leads_give_the_same_bits() {
        // Arrays far below AHEAD_MIN_BYTES, with prefetching forced on:
        // the chunked loops must give the bits of the whole-run ones,
        // including the fix-up pass for elements in different chunks.
        let n = 3 * TILE + 17;
        let mut x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 4.0).collect();
        for (k, v) in [f64::NAN, 1e6, -f64::INFINITY, 800.0, -0.0, 1e300]
            .into_iter()
            .enumerate()
        {
            x[k * 611 + 5] = v;
        }
        let y: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 / 1e3).collect();
        let bits = |a: AnyArray| -> Vec<u64> {
            let AnyArray::F64(a) = a else {
                panic!("f64 result")
            };
            a.iter().map(|v| v.to_bits()).collect()
        };
        let (half, tenth) = ([0.5], [0.02]);
        for (p, inputs) in [
            (trig(), vec![view(&x), view(&y), view(&[2.0])]),
            (gauss(), vec![view(&x), view(&y), view(&half), view(&tenth)]),
        ] {
            let mut run = Run::new(&p, inputs, &[n]);
            assert!(!run.ahead, "small inputs are not prefetched");
            let plain = (bits(run.elementwise()), bits(run.reduce(Sink::Sum, 1, n)));
            run.ahead = true;
            let ahead = (bits(run.elementwise()), bits(run.reduce(Sink::Sum, 1, n)));
            assert_eq!(plain, ahead);
        }
    }
}
