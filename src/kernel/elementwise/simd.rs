//! The inner loops of the elementwise kernels, compiled for several x86-64
//! feature levels and chosen at run time.
//!
//! The loops are plain Rust that LLVM auto-vectorizes; compiled for the
//! baseline (SSE2) target they use 2-lane vectors, compiled with AVX2 or
//! AVX-512 enabled they use 4 or 8 lanes. Measured on 1e6 `f64`, the
//! crate's `exp` runs at 2.9 ns/element with SSE2, 1.65 with AVX2 and 1.0
//! with AVX-512, so the choice matters for every kernel whose element
//! function is arithmetic (rather than a call into libm).
//!
//! Every level computes the same bits: Rust never contracts `a * b + c`
//! into a fused multiply-add, and vectorization does not reorder IEEE
//! operations, so the element function is evaluated identically in each
//! lane. A result cached on one machine is valid on any other.
//!
//! The polynomials of `exp`, `sin` and `cos` do use fused multiply-adds,
//! explicitly (`f64::mul_add`): one rounding per step instead of two, a
//! fifth fewer instructions and a shorter dependency chain (sin and cos of
//! a tile are latency-bound). `mul_add` is correctly rounded wherever it
//! runs, so the bits stay the same on every level: the AVX2 and AVX-512
//! loops use the FMA instruction, the SSE2 loop calls libm's `fma`. That
//! call is fast on a CPU with FMA (glibc picks the instruction) and slow,
//! several times libm's own `exp`, on the rare x86-64 CPU without FMA,
//! which is also the only one that runs the SSE2 loop: bit-identical
//! caches across machines were chosen over speed there.

use std::mem::MaybeUninit;
use std::sync::OnceLock;

/// A function of one element, for [`map1`].
///
/// Implementations mark `call` `#[inline(always)]`: LLVM then inlines the
/// element function into each compiled loop whatever its size, which it
/// does not always do for a closure (and a loop with a call in it is not
/// vectorized).
pub(super) trait Map1<A, O>: Sync {
    /// Whether some elements may need [`exact`](Self::exact).
    const FIXUP: bool = false;

    /// The result for one element.
    fn call(&self, a: A) -> O;

    /// Whether [`call`](Self::call) does not handle `a` (a vectorized
    /// function's rare slow case). Only used when `FIXUP` is set.
    #[inline(always)]
    fn needs_exact(&self, _a: A) -> bool {
        false
    }

    /// The result for an element that `call` does not handle. Keep it out
    /// of line (`#[inline(never)]`): LLVM may otherwise compute it for
    /// every element (libm's functions are "speculatable") and select.
    fn exact(&self, a: A) -> O {
        self.call(a)
    }
}

/// A function of two elements, for [`map2`] (see [`Map1`]).
pub(super) trait Map2<A, B, O>: Sync {
    /// Whether some pairs may need [`exact`](Self::exact).
    const FIXUP: bool = false;

    /// The result for one pair of elements.
    fn call(&self, a: A, b: B) -> O;

    /// Whether [`call`](Self::call) does not handle `(a, b)`. Only used
    /// when `FIXUP` is set.
    #[inline(always)]
    fn needs_exact(&self, _a: A, _b: B) -> bool {
        false
    }

    /// The result for a pair that `call` does not handle (out of line, as
    /// [`Map1::exact`]).
    fn exact(&self, a: A, b: B) -> O {
        self.call(a, b)
    }
}

/// Where a loop writes one result: a slot of uninitialized output memory,
/// or an element of a reused scratch buffer.
pub(super) trait Slot<O>: Send {
    /// Stores `v`.
    fn put(&mut self, v: O);
}

impl<O: Send> Slot<O> for MaybeUninit<O> {
    #[inline(always)]
    fn put(&mut self, v: O) {
        self.write(v);
    }
}

impl<O: crate::element::Element> Slot<O> for O {
    #[inline(always)]
    fn put(&mut self, v: O) {
        *self = v;
    }
}

/// A function of one element with two results, for [`map1x2`] (see
/// [`Map1`]).
pub(super) trait Map1x2<A, O>: Sync {
    /// Whether some elements may need [`exact`](Self::exact).
    const FIXUP: bool = false;
    /// The results for one element.
    fn call(&self, a: A) -> (O, O);
    /// Whether [`call`](Self::call) does not handle `a`.
    #[inline(always)]
    fn needs_exact(&self, _a: A) -> bool {
        false
    }
    /// The results for an element that `call` does not handle.
    fn exact(&self, a: A) -> (O, O) {
        self.call(a)
    }
}

/// One input of a binary loop: a run of elements, or one element repeated.
#[derive(Clone, Copy, Debug)]
pub(super) enum Operand<'a, A> {
    /// As many elements as the output has.
    Slice(&'a [A]),
    /// One element for every output element (a broadcast scalar).
    Scalar(A),
}

/// The x86-64 feature levels the loops are compiled for (the reductions
/// in `kernel::reduce` use them too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// The compilation target's own features (SSE2 on x86-64).
    Base,
    /// x86-64-v3: AVX2 (and FMA, which Rust never uses implicitly).
    V3,
    /// x86-64-v4: AVX-512 F, BW, CD, DQ and VL.
    V4,
}

/// The best level this CPU supports (detected once).
pub(crate) fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    let detected = *LEVEL.get_or_init(detect);
    #[cfg(test)]
    let detected = detected.min(CAP.with(std::cell::Cell::get));
    detected
}

#[cfg(test)]
thread_local! {
    static CAP: std::cell::Cell<Level> = const { std::cell::Cell::new(Level::V4) };
}

/// Runs `f` with [`level`] capped at `cap` on this thread.
#[cfg(test)]
pub(crate) fn with_level_cap<R>(cap: Level, f: impl FnOnce() -> R) -> R {
    let old = CAP.with(|c| c.replace(cap));
    let r = f();
    CAP.with(|c| c.set(old));
    r
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl")
        && has!("avx2")
        && has!("fma")
        && has!("bmi1")
        && has!("bmi2")
        && has!("lzcnt")
    {
        Level::V4
    } else if has!("avx2") && has!("fma") && has!("bmi1") && has!("bmi2") && has!("lzcnt") {
        Level::V3
    } else {
        Level::Base
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Base
}

/// A run of memory that a loop prefetches while it computes, spread
/// evenly over its elements (see [`map1`]): a run of another input of a
/// fused program, or of its output, which a cheaper pass reads or writes
/// in a burst.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ahead {
    /// The run's first byte (an address: a prefetch never reads memory
    /// architecturally, so nothing is borrowed).
    pub(super) addr: usize,
    /// The run's length in bytes.
    pub(super) bytes: usize,
}

/// Elements computed between two groups of prefetches. Measured with fused
/// `sum(2*sin(x)**2 + cos(x)*y)` over 1e7 `f64` on 2 threads (min of 18):
/// 16.3 ms with 64, 16.5 with 128, 18.8 with 256 and 18.6 without
/// prefetching; 32 was slower again (more, shorter loops).
const AHEAD_CHUNK: usize = 64;

/// Prefetches the share of each run in `ahead` that matches elements
/// `from..to` of a loop over `n`.
#[inline(always)]
fn prefetch_share(ahead: &[Ahead], from: usize, to: usize, n: usize) {
    for a in ahead {
        let (lo, hi) = (a.bytes * from / n, a.bytes * to / n);
        let mut line = lo & !63;
        while line < hi {
            prefetch(a.addr.wrapping_add(line));
            line += 64;
        }
    }
}

/// Asks the CPU to bring the cache line at `addr` into L1.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch(addr: usize) {
    // SAFETY: PREFETCHT0 is a hint: it never faults, never changes memory
    // and has no architectural effect at any address (an unmapped one is
    // ignored), so no pointer validity is required. SSE, which it belongs
    // to, is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch(_addr: usize) {}

/// The chunks a loop over `n` elements runs in: the whole run, or, with
/// runs to prefetch, [`AHEAD_CHUNK`] elements at a time with each run's
/// share prefetched before each chunk. (Plain functions and loops, not a
/// closure: a closure the compiler does not inline loses the caller's
/// target features, and with them FMA.)
#[inline(always)]
fn chunk_len(n: usize, ahead: &[Ahead]) -> usize {
    if ahead.is_empty() {
        n.max(1)
    } else {
        AHEAD_CHUNK
    }
}

/// `out[i] = f(x[i])` for one chunk; returns whether some element needs
/// [`Map1::exact`] (non-zero).
#[inline(always)]
fn elements1<A: Copy, O, S: Slot<O>, F: Map1<A, O>>(x: &[A], out: &mut [S], f: &F) -> u64 {
    let mut any = 0u64;
    for (o, &v) in out.iter_mut().zip(x) {
        o.put(f.call(v));
        any |= u64::from(F::FIXUP && f.needs_exact(v));
    }
    any
}

/// `(out1[i], out2[i]) = f(x[i])` for one chunk (see [`elements1`]).
#[inline(always)]
fn elements1x2<A: Copy, O, S: Slot<O>, F: Map1x2<A, O>>(
    x: &[A],
    out1: &mut [S],
    out2: &mut [S],
    f: &F,
) -> u64 {
    let mut any = 0u64;
    for ((o1, o2), &v) in out1.iter_mut().zip(out2.iter_mut()).zip(x) {
        let (a, b) = f.call(v);
        o1.put(a);
        o2.put(b);
        any |= u64::from(F::FIXUP && f.needs_exact(v));
    }
    any
}

#[inline(always)]
fn map1_body<A: Copy, O, S: Slot<O>, F: Map1<A, O>>(
    x: &[A],
    out: &mut [S],
    f: &F,
    ahead: &[Ahead],
) {
    // Every element of `out` must be written (the engine relies on it to
    // mark the output initialized): a shorter input is a bug, not a silent
    // hole. Checked once per call, outside the loop.
    assert_eq!(x.len(), out.len(), "input and output runs differ");
    // The elements `call` does not handle are rewritten by a second pass,
    // so that this loop stays branch-free; whether there are any is a
    // vectorized OR in the same loop (measured: cheaper than a pass of its
    // own, which reads the input again). The flags are OR'd as integers: a
    // `bool` accumulator costs a pack and an OR of a narrowed mask per
    // vector, a `u64` one a single OR (measured on sin and cos: 3.5% of the
    // loop).
    let (n, step) = (x.len(), chunk_len(x.len(), ahead));
    let mut any = 0u64;
    for (k, (xc, oc)) in x.chunks(step).zip(out.chunks_mut(step)).enumerate() {
        prefetch_share(ahead, k * step, k * step + xc.len(), n);
        any |= elements1(xc, oc, f);
    }
    if any != 0 {
        for (o, &v) in out.iter_mut().zip(x) {
            if f.needs_exact(v) {
                o.put(f.exact(v));
            }
        }
    }
}

#[inline(always)]
fn map1x2_body<A: Copy, O, S: Slot<O>, F: Map1x2<A, O>>(
    x: &[A],
    out1: &mut [S],
    out2: &mut [S],
    f: &F,
    ahead: &[Ahead],
) {
    assert!(
        x.len() == out1.len() && x.len() == out2.len(),
        "input and output runs differ"
    );
    // As in `map1_body`.
    let (n, step) = (x.len(), chunk_len(x.len(), ahead));
    let mut any = 0u64;
    let chunks = x
        .chunks(step)
        .zip(out1.chunks_mut(step))
        .zip(out2.chunks_mut(step));
    for (k, ((xc, o1), o2)) in chunks.enumerate() {
        prefetch_share(ahead, k * step, k * step + xc.len(), n);
        any |= elements1x2(xc, o1, o2, f);
    }
    if any != 0 {
        for ((o1, o2), &v) in out1.iter_mut().zip(out2.iter_mut()).zip(x) {
            if f.needs_exact(v) {
                let (a, b) = f.exact(v);
                o1.put(a);
                o2.put(b);
            }
        }
    }
}

#[inline(always)]
fn map2_body<A: Copy, B: Copy, O: Copy, S: Slot<O>, F: Map2<A, B, O>>(
    a: Operand<'_, A>,
    b: Operand<'_, B>,
    out: &mut [S],
    f: &F,
) {
    match (a, b) {
        (Operand::Slice(a), Operand::Slice(b)) => {
            assert!(a.len() == out.len() && b.len() == out.len(), "runs differ");
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                o.put(f.call(x, y));
            }
        }
        (Operand::Slice(a), Operand::Scalar(y)) => {
            assert_eq!(a.len(), out.len(), "runs differ");
            for (o, &x) in out.iter_mut().zip(a) {
                o.put(f.call(x, y));
            }
        }
        (Operand::Scalar(x), Operand::Slice(b)) => {
            assert_eq!(b.len(), out.len(), "runs differ");
            for (o, &y) in out.iter_mut().zip(b) {
                o.put(f.call(x, y));
            }
        }
        (Operand::Scalar(x), Operand::Scalar(y)) => {
            let v = if F::FIXUP && f.needs_exact(x, y) {
                f.exact(x, y)
            } else {
                f.call(x, y)
            };
            for o in out.iter_mut() {
                o.put(v);
            }
        }
    }
    if F::FIXUP {
        map2_fixup(a, b, out, f);
    }
}

/// [`map2_body`]'s second pass (see [`map1_body`]'s): rewrites the pairs
/// that need [`Map2::exact`], after a vectorized check for any.
#[inline(always)]
fn map2_fixup<A: Copy, B: Copy, O: Copy, S: Slot<O>, F: Map2<A, B, O>>(
    a: Operand<'_, A>,
    b: Operand<'_, B>,
    out: &mut [S],
    f: &F,
) {
    // One loop per case, so that each check is a plain vectorized loop.
    let any = match (a, b) {
        (Operand::Slice(a), Operand::Slice(b)) => a
            .iter()
            .zip(b)
            .fold(false, |any, (&x, &y)| any | f.needs_exact(x, y)),
        (Operand::Slice(a), Operand::Scalar(y)) => {
            a.iter().fold(false, |any, &x| any | f.needs_exact(x, y))
        }
        (Operand::Scalar(x), Operand::Slice(b)) => {
            b.iter().fold(false, |any, &y| any | f.needs_exact(x, y))
        }
        // Handled by the first pass.
        (Operand::Scalar(_), Operand::Scalar(_)) => false,
    };
    if !any {
        return;
    }
    let at = |i: usize| {
        let x = match a {
            Operand::Slice(a) => a[i],
            Operand::Scalar(x) => x,
        };
        let y = match b {
            Operand::Slice(b) => b[i],
            Operand::Scalar(y) => y,
        };
        (x, y)
    };
    for (i, o) in out.iter_mut().enumerate() {
        let (x, y) = at(i);
        if f.needs_exact(x, y) {
            o.put(f.exact(x, y));
        }
    }
}

/// Declares a loop compiled once per [`Level`], and its dispatcher.
macro_rules! multiversion {
    (
        $(#[$doc:meta])*
        fn $name:ident<$($g:ident $(: $b:path)?),*>($($arg:ident: $ty:ty),*) => $body:ident;
        v3: $v3:ident, v4: $v4:ident
    ) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt")]
        fn $v3<$($g $(: $b)?),*>($($arg: $ty),*) {
            $body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(
            enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt"
        )]
        fn $v4<$($g $(: $b)?),*>($($arg: $ty),*) {
            $body($($arg),*)
        }

        $(#[$doc])*
        #[allow(unsafe_code)]
        pub(super) fn $name<$($g $(: $b)?),*>(level: Level, $($arg: $ty),*) {
            // Never above what the CPU has, whatever the caller asked for.
            match level.min(super::simd::level()) {
                // SAFETY: `level()` returns V4 or V3 only after
                // `is_x86_feature_detected!` confirmed every feature these
                // functions are compiled with.
                #[cfg(target_arch = "x86_64")]
                Level::V4 => unsafe { $v4($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                Level::V3 => unsafe { $v3($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
}

pub(super) use multiversion;

multiversion! {
    /// `out[i] = f(x[i])`, with the loop compiled for `level`, prefetching
    /// the runs in `ahead` as it goes.
    fn map1<A: Copy, O: Copy, S: Slot<O>, F: Map1<A, O>>(x: &[A], out: &mut [S], f: &F, ahead: &[Ahead]) => map1_body;
    v3: map1_v3, v4: map1_v4
}

multiversion! {
    /// `(out1[i], out2[i]) = f(x[i])`, with the loop compiled for `level`,
    /// prefetching the runs in `ahead` as it goes.
    fn map1x2<A: Copy, O: Copy, S: Slot<O>, F: Map1x2<A, O>>(x: &[A], out1: &mut [S], out2: &mut [S], f: &F, ahead: &[Ahead]) => map1x2_body;
    v3: map1x2_v3, v4: map1x2_v4
}

multiversion! {
    /// `out[i] = f(a[i], b[i])` (a scalar operand repeats), with the loop
    /// compiled for `level`.
    fn map2<A: Copy, B: Copy, O: Copy, S: Slot<O>, F: Map2<A, B, O>>(
        a: Operand<'_, A>, b: Operand<'_, B>, out: &mut [S], f: &F
    ) => map2_body;
    v3: map2_v3, v4: map2_v4
}
