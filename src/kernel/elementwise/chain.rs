//! The loop of a fused program's chains ([`super::fused`]): a run of cheap
//! float builtins (`+ - * /`, negation, square, absolute value, maximum,
//! minimum), each applied to the value the one before it computed, in one
//! pass over a tile with the running values in vector registers.
//!
//! Evaluated one builtin per pass, `((0.25*x + 0.75)*x - 1.5)*x - 2` loads
//! and stores a tile six times for six vector operations; the passes, not
//! the arithmetic, set its speed. Here the tile goes by blocks of a few
//! vectors (32 `f64`, 64 `f32`: eight AVX2 registers): a block is loaded
//! once, every step of the chain is applied to it (one dispatch on the
//! step per block, then straight-line vector code on registers), and it is
//! stored once. Measured on one thread over 1e5 `f64` (in cache, min of
//! 2000, a standalone copy of both loops): that polynomial took 39.5 µs
//! against 73.7 for six passes over tiles of 1024 (a loop written for
//! this one polynomial: 23.9).
//!
//! Every step calls the element function of the registry's kernel for
//! its builtin ([`ops`]), in the chain's order, so each element gets the
//! bits the registry's calls give one after another: Rust never contracts
//! a multiplication and an addition, and none of these functions has a
//! fix-up pass. The steps are data, read at run time, so the compiler
//! cannot rewrite two of them as one either (as it may rewrite `a - (-b)`
//! as `a + b`, which can carry the other NaN where both operands are
//! NaNs): the two-builtin loops this replaces gave a NaN of the other sign
//! than the registry's calls in 2 of 2600 random trees, on `a - (-b)` and
//! `-(a / b)`. Where both operands of a step are NaNs, it returns the
//! first's, as the registry does ([`ops`]'s `first_nan`).

use super::fused::FOp;
use super::ops;
use super::simd::{multiversion, Level, Map1, Map2, Operand, Slot};

/// One step of a chain, applied to the running value `acc`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step<'a, T> {
    /// `op(acc)`.
    Unary(FOp),
    /// `op(acc, other)`, or `op(other, acc)` when `swapped`.
    Binary {
        /// The builtin.
        op: FOp,
        /// Its other operand, a run as long as the output or a scalar.
        other: Operand<'a, T>,
        /// Whether `acc` is the second operand.
        swapped: bool,
    },
}

/// The longest chain a program builds (the steps of a tile are kept on the
/// stack); a longer run of builtins is split into several chains.
pub(crate) const MAX_STEPS: usize = 16;

/// The element types chains run on, each with its block length.
pub(super) trait Chained: crate::element::Element {
    /// `out[i] = steps(start[i])`, a block at a time.
    fn run<S: Slot<Self>>(start: Operand<'_, Self>, steps: &[Step<'_, Self>], out: &mut [S]);

    /// Applies step `s` to the block `acc` of elements `at..`.
    fn step<const B: usize>(acc: &mut [Self; B], s: &Step<'_, Self>, at: usize);
}

macro_rules! chained {
    ($($t:ty => $block:expr),*) => {$(
        impl Chained for $t {
            #[inline(always)]
            fn run<S: Slot<Self>>(start: Operand<'_, Self>, steps: &[Step<'_, Self>], out: &mut [S]) {
                blocks::<$t, S, $block>(start, steps, out)
            }
            #[inline(always)]
            fn step<const B: usize>(acc: &mut [Self; B], s: &Step<'_, Self>, at: usize) {
                step(acc, s, at)
            }
        }
    )*};
}

// Eight 256-bit registers of running values: enough independent
// operations per step to keep both of the core's vector pipes busy. (Under
// AVX-512 the same block is four registers.)
chained!(f64 => 32, f32 => 64);

#[inline(always)]
fn body<T: Chained, S: Slot<T>>(start: Operand<'_, T>, steps: &[Step<'_, T>], out: &mut [S]) {
    T::run(start, steps, out)
}

multiversion! {
    /// `out[i]` = the chain `steps` applied to `start[i]`, with the loop
    /// compiled for `level`.
    fn run<T: Chained, S: Slot<T>>(start: Operand<'_, T>, steps: &[Step<'_, T>], out: &mut [S]) => body;
    v3: run_v3, v4: run_v4
}

/// The chain over `out`: blocks of `B` elements, then the rest one by one
/// (the same element functions in the same order: the same bits).
#[inline(always)]
fn blocks<T: Chained, S: Slot<T>, const B: usize>(
    start: Operand<'_, T>,
    steps: &[Step<'_, T>],
    out: &mut [S],
) {
    // Every element of `out` is written (the engine relies on it): runs of
    // another length are a bug. Checked once, outside the loop.
    let n = out.len();
    let long = |x: &Operand<'_, T>| match x {
        Operand::Slice(x) => x.len() == n,
        Operand::Scalar(_) => true,
    };
    let others = steps.iter().all(|s| match s {
        Step::Unary(_) => true,
        Step::Binary { other, .. } => long(other),
    });
    assert!(long(&start) && others, "the runs of a chain differ");
    let mut whole = out.chunks_exact_mut(B);
    let mut at = 0;
    for o in &mut whole {
        let mut acc = load::<T, B>(start, at);
        for s in steps {
            T::step(&mut acc, s, at);
        }
        for (o, &v) in o.iter_mut().zip(&acc) {
            o.put(v);
        }
        at += B;
    }
    for o in whole.into_remainder() {
        let mut acc = load::<T, 1>(start, at);
        for s in steps {
            T::step(&mut acc, s, at);
        }
        o.put(acc[0]);
        at += 1;
    }
}

/// Elements `at..at + B` of `x` (a scalar repeated).
#[inline(always)]
fn load<T: Copy, const B: usize>(x: Operand<'_, T>, at: usize) -> [T; B] {
    match x {
        Operand::Slice(x) => x[at..at + B].try_into().expect("B elements"),
        Operand::Scalar(v) => [v; B],
    }
}

/// Applies step `s` to the block `acc` of elements `at..`.
#[inline(always)]
fn step<T: Copy + PartialEq, const B: usize>(acc: &mut [T; B], s: &Step<'_, T>, at: usize)
where
    ops::Neg: Map1<T, T>,
    ops::Abs: Map1<T, T>,
    ops::Square: Map1<T, T>,
    ops::Add: Map2<T, T, T>,
    ops::AddOneNan: Map2<T, T, T>,
    ops::MulOneNan: Map2<T, T, T>,
    ops::Sub: Map2<T, T, T>,
    ops::Mul: Map2<T, T, T>,
    ops::Div: Map2<T, T, T>,
    ops::Maximum: Map2<T, T, T>,
    ops::Minimum: Map2<T, T, T>,
{
    match *s {
        Step::Unary(op) => match op {
            FOp::Neg => unary(acc, &ops::Neg),
            FOp::Abs => unary(acc, &ops::Abs),
            FOp::Square => unary(acc, &ops::Square),
            op => unreachable!("{op:?} is not chained"),
        },
        Step::Binary { op, other, swapped } => {
            let b = load::<T, B>(other, at);
            // With a scalar that is not a NaN, at most one operand is.
            #[allow(clippy::eq_op)]
            let number = matches!(other, Operand::Scalar(s) if s == s);
            match op {
                FOp::Add if number => binary(acc, &b, &ops::AddOneNan, swapped),
                FOp::Mul if number => binary(acc, &b, &ops::MulOneNan, swapped),
                FOp::Add => binary(acc, &b, &ops::Add, swapped),
                FOp::Sub => binary(acc, &b, &ops::Sub, swapped),
                FOp::Mul => binary(acc, &b, &ops::Mul, swapped),
                FOp::Div => binary(acc, &b, &ops::Div, swapped),
                FOp::Maximum => binary(acc, &b, &ops::Maximum, swapped),
                FOp::Minimum => binary(acc, &b, &ops::Minimum, swapped),
                op => unreachable!("{op:?} is not chained"),
            }
        }
    }
}

#[inline(always)]
fn unary<T: Copy, F: Map1<T, T>, const B: usize>(acc: &mut [T; B], f: &F) {
    const { assert!(!F::FIXUP, "a chained function with fix-ups") };
    for v in acc.iter_mut() {
        *v = f.call(*v);
    }
}

#[inline(always)]
fn binary<T: Copy, F: Map2<T, T, T>, const B: usize>(
    acc: &mut [T; B],
    b: &[T; B],
    f: &F,
    swapped: bool,
) {
    const { assert!(!F::FIXUP, "a chained function with fix-ups") };
    if swapped {
        for (v, &b) in acc.iter_mut().zip(b) {
            *v = f.call(b, *v);
        }
    } else {
        for (v, &b) in acc.iter_mut().zip(b) {
            *v = f.call(*v, b);
        }
    }
}

/// The chain `steps` of one value (every operand a scalar).
pub(super) fn scalar<T: Chained>(start: T, steps: &[Step<'_, T>]) -> T {
    let mut one = [start];
    T::run(Operand::Scalar(start), steps, &mut one[..]);
    one[0]
}
