//! Pinned output bits of every builtin kernel, next to its version.
//!
//! A call key hashes the kernel's name and version, not its code: a disk
//! directory written by an older build serves the old build's bits to new
//! code unless the version changed. The rule (see [`ndcache::Kernel`]) is
//! that a kernel's version must change whenever any output bit can change
//! for some input. [`builtin_kernel_outputs_are_pinned_to_their_versions`]
//! enforces it: for each builtin kernel and each dtype (or dtype pair) it
//! supports, it runs the kernel on fixed deterministic inputs, combines the
//! `ndcache::fingerprint`s (xxh3-128 of dtype, shape and bits) of all the
//! outputs into one digest and compares it, and the kernel's version, with
//! the [`PINNED`] table. It fails when a digest changed (bump the version),
//! when a version changed (update the table), when a builtin kernel or a
//! dtype has no row (pin it), and when a row is stale.
//!
//! To regenerate the table after a deliberate change (and a version bump):
//!
//! ```text
//! NDCACHE_PIN_KERNELS=1 cargo test --test integration kernel_versions -- --nocapture
//! ```
//!
//! prints the whole table in Rust source form, to paste over [`PINNED`].
//!
//! # Inputs
//!
//! Special values (±0, ±inf, NaN with several payloads and signs,
//! subnormals of both widths, `MAX`/`MIN`, trig arguments near multiples
//! of π/2, up to and beyond 2^19 and near 1e6, exp's overflow and underflow
//! thresholds, integers at and near `MIN`/`MAX` and where squares wrap)
//! followed by values of a fixed LCG over several ranges and random bit
//! patterns; sizes 3, 1000, 70 000 and 140 000, so that the vector loops'
//! main bodies and tails and every parallel path (elementwise thresholds
//! 2^12..2^17, pairwise sums 2^15, radix sort 2^16, cumsum blocks of 2^15)
//! run; binary kernels also on mixed dtypes and a 2-D broadcast; reductions
//! over no axis, each axis, a negative axis, with `keepdims` and several
//! `ddof`s; `sort` along each axis and flattened.
//!
//! # Why one digest fits every x86-64 machine
//!
//! The elementwise loops are compiled for SSE2, AVX2 and AVX-512 and chosen
//! at run time (`src/kernel/elementwise/simd.rs`); there is no public way
//! to force a level (the cap is a test-only, thread-local switch inside the
//! crate). One digest is still right for all levels, because the levels
//! are bit-identical by construction, not merely within an ulp bound: each
//! lane evaluates the same sequence of IEEE 754 operations (Rust never
//! contracts `a * b + c` into an FMA even where FMA is enabled; the
//! explicit `mul_add`s of exp, sin and cos are one correctly rounded
//! operation on every level, an instruction where the CPU has FMA and
//! libm's `fma` on the SSE2 level; and LLVM
//! does not reassociate floating-point operations without fast-math
//! flags), there are no table lookups or approximate instructions
//! (`rcp`/`rsqrt`), and the slow paths are the same out-of-line function at
//! every level. The crate's own test
//! `elementwise::tests::layout::every_vector_level_computes_the_same_bits`
//! checks it on every level the CPU running it has. The table was computed
//! on an AVX2 machine; on an AVX-512 machine this test is one more check
//! that the levels agree. The reductions, scans and sorts have a single
//! code path and fixed partitions (the same bits for any thread count).
//!
//! What does differ between machines is the C library: `sin`, `cos`, `tan`
//! hand |x| > 2^19, ±inf and NaN to libm (float `power` was libm's too
//! before its version 2), and glibc picks FMA or non-FMA builds of these at run time
//! and changes them between releases (they are not correctly rounded). So
//! before hashing, each such element whose bits equal what this process's
//! libm gives for its input is replaced by a sentinel: the digest pins "this
//! is libm's answer" rather than libm's bits. An element that is not libm's
//! answer (a kernel that stops delegating, or delegates other inputs) keeps
//! its bits and changes the digest. Inputs are generated without libm.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ndarray::{Array1, ArrayD, IxDyn};
use ndcache::{AnyArray, AnyView, Params, Registry};

/// `(kernel, version, dtype of the inputs, digest of the outputs)`.
///
/// Regenerate with `NDCACHE_PIN_KERNELS=1` (see the module docs); never
/// edit a digest without bumping the kernel's version.
#[rustfmt::skip]
const PINNED: &[(&str, &str, &str, &str)] = &[
    ("absolute", "1", "f32", "617dae1b8a2b92a3290f4da2f0e36bc2"),
    ("absolute", "1", "f64", "882191f15b10d33982f417c6fbf18c8b"),
    ("absolute", "1", "i32", "d33064c6c7763098eb33d89c70a03241"),
    ("absolute", "1", "i64", "59ed3d97ba6d80abe277125754f20e62"),
    ("add", "2", "f32", "fd64009718a1a54ac256991b58b9d8a0"),
    ("add", "2", "f32,f64", "9623cc2db0d1fa84907be6f08e637fee"),
    ("add", "2", "f64", "93a0aa0cc66045a0de897d3870030339"),
    ("add", "2", "i32", "21238fd5b09dc7011085e2df1da075f1"),
    ("add", "2", "i32,f32", "08a4e0b6795b6a9114be15b1dbd449c5"),
    ("add", "2", "i32,i64", "ad67a4de5f1c306ca91cca2f17134e9b"),
    ("add", "2", "i64", "f1c0311224c03a2b2b7599b5f462d32b"),
    ("cos", "4", "f32", "206e26f13c712847779b8c87d4a9a53b"),
    ("cos", "4", "f64", "2abc4af8f96d434d309cb97ce6d89efa"),
    ("cos", "4", "i32", "9148ca7690d55682a3866be0f81a9003"),
    ("cos", "4", "i64", "2fdb0052dbcd3eb510a4e7ae48322ea9"),
    ("cumsum", "1", "f32", "fe5dcf22d225a67dbf740a67e703eedc"),
    ("cumsum", "1", "f64", "0b0e68dd1d5c43d1d99ed4d0d4556ccd"),
    ("cumsum", "1", "i32", "68c87e6d420fffc3fd1cffa8b613332b"),
    ("cumsum", "1", "i64", "ac51c19aea3dc3c87e6fdb1a7da10694"),
    ("divide", "1", "f32", "ffd0f571705f6c1952540a722ff57b1e"),
    ("divide", "1", "f32,f64", "039a4cb7fa4138a5467315944a7aad92"),
    ("divide", "1", "f64", "896241ac043b50e696cd1e53a5e62870"),
    ("divide", "1", "i32", "40e48d225cd6d01aa203677e5a4c0b72"),
    ("divide", "1", "i32,f32", "d3fed1b6a0ff67cab76b6fa364d8420e"),
    ("divide", "1", "i32,i64", "8789db4eb9706beb5864a5354e769932"),
    ("divide", "1", "i64", "b4e9dd6f90272ac7075cfcce6f1727fa"),
    ("exp", "3", "f32", "20b9b6daa7a6ab337c031411d5cdbd04"),
    ("exp", "3", "f64", "88bb52d8a7ae88e1efd3f270daec95d8"),
    ("exp", "3", "i32", "612d18a5b444499d721c16e539f280f1"),
    ("exp", "3", "i64", "dc38ae0b8fba454a57ebfff90ab412a5"),
    ("expm1", "3", "f32", "6242c00f636283c4379bc0aa287a860e"),
    ("expm1", "3", "f64", "0785368a4e95c343cbaf91cc23faf2ef"),
    ("expm1", "3", "i32", "082f8fc9183ff021213f2d89ca47ea15"),
    ("expm1", "3", "i64", "6ee32e120bbfa596e1f2f4545d3fea7c"),
    ("log", "2", "f32", "5cabcc45ac0e3322baca957b6a0e4153"),
    ("log", "2", "f64", "409014f442abfdb31b9b036f0491b5bb"),
    ("log", "2", "i32", "5487cddb6523531bdd7cf0e4e55e7e38"),
    ("log", "2", "i64", "17e926b56f90d4176396424071b77a35"),
    ("log1p", "2", "f32", "c97b7190db01b74ca3a1b8acd692500b"),
    ("log1p", "2", "f64", "149d24b99579c4af3a65ccd45352514d"),
    ("log1p", "2", "i32", "da8bf22cf61e9fac6e4dacc20acb7ebf"),
    ("log1p", "2", "i64", "9acf1c7a48458b7f64196e64bffde91c"),
    ("max", "2", "f32", "ba0df1c1c6529245b293d742b19f5281"),
    ("max", "2", "f64", "8aa6312c0822718b8d196a2bba22351f"),
    ("max", "2", "i32", "baec8c0adc6bdd35dd425a78f9d65c41"),
    ("max", "2", "i64", "aa898ef74e4210594352e8266f1aa1e1"),
    ("maximum", "1", "f32", "76f08c33993b3deaa35ee0cd4ce0c98d"),
    ("maximum", "1", "f32,f64", "092accd06d086825653df58bb4f6f516"),
    ("maximum", "1", "f64", "bb63b85ecd91802a65683b98caa5ed3d"),
    ("maximum", "1", "i32", "96ed6eae48ea4b78e619d897e1fa48b4"),
    ("maximum", "1", "i32,f32", "e52875ff07041fc1de0a38e6417fe689"),
    ("maximum", "1", "i32,i64", "a0b7a402f5cc7c3f7862ac2b230c7dac"),
    ("maximum", "1", "i64", "cb0335eb697944518df4960c42cf1dda"),
    ("mean", "1", "f32", "29c1649bdc87147c60935eaee7afe886"),
    ("mean", "1", "f64", "f7fbc2c35fd8b3cc8b568f3504a8409d"),
    ("mean", "1", "i32", "1692c84815c86572ab1bc08fa7eda10b"),
    ("mean", "1", "i64", "55c69c31d24a719784b23b299c6b87af"),
    ("min", "2", "f32", "d81f0a90cc6eadafb9410f4a8b5d7cbc"),
    ("min", "2", "f64", "93abf51c195dc1ed1a759e741c38e5a2"),
    ("min", "2", "i32", "d2f748ebad3f70d06000309729d65e34"),
    ("min", "2", "i64", "caa6c0315d67aef5a665cb0aed048a9f"),
    ("minimum", "1", "f32", "82e1636752446826e20b5ba7734e7efe"),
    ("minimum", "1", "f32,f64", "a235652306ffd0bf171895cb93bed5e1"),
    ("minimum", "1", "f64", "e9c59372199102cdedcb197ccae017e2"),
    ("minimum", "1", "i32", "a1b9b98d12d6b1924908eeb5e606a988"),
    ("minimum", "1", "i32,f32", "6301eed284db6bea15090ff9b61d991f"),
    ("minimum", "1", "i32,i64", "3fe2c3b21c75b7622b9049363b7f67dc"),
    ("minimum", "1", "i64", "a6bf7a39d7a78872de2f1542f06fc75f"),
    ("multiply", "2", "f32", "be9121091cd761eddab6e35b9092ddec"),
    ("multiply", "2", "f32,f64", "c19dbe2732bd3d325666edcc618e6846"),
    ("multiply", "2", "f64", "d39f3a3777fcaf5cce21818235d2b10e"),
    ("multiply", "2", "i32", "e21a9938f3a8108bf4d3cad781c4ddc6"),
    ("multiply", "2", "i32,f32", "f2807d1f59335cb10ff99356bff15f38"),
    ("multiply", "2", "i32,i64", "efbae70c70049c8ef25462addb21b511"),
    ("multiply", "2", "i64", "c1b80bab621fb98eff06ce55d5773667"),
    ("negative", "1", "f32", "5677e7e1ba3385ac31c580d7d480dcd7"),
    ("negative", "1", "f64", "09c93deb50e6ae3a5f3dfda907e3c943"),
    ("negative", "1", "i32", "c111a4d72e3ad9ac7981517483e94f22"),
    ("negative", "1", "i64", "d2b5b7bef9139417aa760522ad775b2a"),
    ("power", "2", "f32", "ff8063029f8732818d775951b6cbbdd6"),
    ("power", "2", "f32,f64", "539a29589c6ad1e0be64dcd17e363666"),
    ("power", "2", "f64", "3bf3b7e882384243bb14e26ce6cf9d45"),
    ("power", "2", "i32", "124e1762a9407ba96bda0d2fd56f602a"),
    ("power", "2", "i32,f32", "e73435ac136609aad771ab1db2003011"),
    ("power", "2", "i32,i64", "42eac695f257ac02149688b05b279696"),
    ("power", "2", "i64", "a2bfdeb0766b2da19368828d5f12eb0b"),
    ("prod", "1", "f32", "05870e1c1c91a22a4a2abefd3381adb7"),
    ("prod", "1", "f64", "6c69c6507accf9d7f6dbac5aada3670a"),
    ("prod", "1", "i32", "7e35be2a8b7f0ef0112ca859c3fbdff3"),
    ("prod", "1", "i64", "e19c2d257eaca78aafe320ca9353bfb2"),
    ("sin", "4", "f32", "ffc8ebad36b0460a43a4a5df5bb9fac0"),
    ("sin", "4", "f64", "dae3bfde0a55866c5e8b01e1df0195ca"),
    ("sin", "4", "i32", "1b33ea232441dfb50388e3b2bd30d509"),
    ("sin", "4", "i64", "81041ff5e027fce74bee49cc696ff951"),
    ("sort", "1", "f32", "88a62a0db8d7dcba5611da013098a0fa"),
    ("sort", "1", "f64", "152a2a46d248ac0df4f5caf2b7b542f0"),
    ("sort", "1", "i32", "72d6ccb5c1057b507c324b735f60d58d"),
    ("sort", "1", "i64", "9bfded4e94108812703592c307dab5e0"),
    ("sqrt", "1", "f32", "0ed5536b644d4e5f815dfc7045ee0def"),
    ("sqrt", "1", "f64", "09f42716256c3d0498a2a71994800162"),
    ("sqrt", "1", "i32", "99928ed76ff6eb898f10644f8b50efea"),
    ("sqrt", "1", "i64", "50a9f9b929833d0d6455ac16307b72ac"),
    ("square", "1", "f32", "66573b77ec2f9b39e80f8e0caa761169"),
    ("square", "1", "f64", "9d166e75ef9fa26479cc5389b60d9c62"),
    ("square", "1", "i32", "ee26cf90d7d37537129788ba6db269c7"),
    ("square", "1", "i64", "75b413c505ed1138ca1a3df7e22a9df4"),
    ("std", "1", "f32", "ec3ddad37e3fce2a7767adbff6809bdc"),
    ("std", "1", "f64", "25e2bef8f154df69d55448519c64e03e"),
    ("std", "1", "i32", "a79f3cb6ea4d3e37025226aa3cc63e60"),
    ("std", "1", "i64", "6c3266624712675f598d501937769e65"),
    ("subtract", "1", "f32", "917f221429972695bfa3549c6e1fc635"),
    ("subtract", "1", "f32,f64", "00fd5373100190ed40170124829a227c"),
    ("subtract", "1", "f64", "ecf1243a40769f899deb22186f2240da"),
    ("subtract", "1", "i32", "615eebdead308084ce1524e7ed4581b1"),
    ("subtract", "1", "i32,f32", "1ab3ccec6c6a49ec5b07108915493fd7"),
    ("subtract", "1", "i32,i64", "fe8e0752d00c44334a0d47fcf010911a"),
    ("subtract", "1", "i64", "48de9390926abacf57f55669b67cfe0c"),
    ("sum", "1", "f32", "55d2441ca7bf5b81e80434c3be2f982c"),
    ("sum", "1", "f64", "820d32c0487e03b6414906fc22493015"),
    ("sum", "1", "i32", "b4b5553c70d6059bf789fd6020798f89"),
    ("sum", "1", "i64", "c0caad88d87b0634ede451e8d2cb1f45"),
    ("tan", "4", "f32", "b767ca6c691c97993e124d3e567a9600"),
    ("tan", "4", "f64", "fc283ded6339e781f97509cdf5629a01"),
    ("tan", "4", "i32", "b0b2f61c1e4bfb0011d121e3bb712936"),
    ("tan", "4", "i64", "ca9346d9b725c068c5fe41b6f45e33fe"),
    ("tanh", "3", "f32", "391d52d1a9d84409fde74e451050f27d"),
    ("tanh", "3", "f64", "1a01dd2b866669671e0dd105968fa007"),
    ("tanh", "3", "i32", "156d1c1bb5e6afd9c2b3c0f8b818e461"),
    ("tanh", "3", "i64", "bcb86e5876e5c9d170776f088deff117"),
    ("var", "1", "f32", "22b17866bb8db8b3d61ba9df56e18cf6"),
    ("var", "1", "f64", "eb25b48d74e040a223430e21729ac4b6"),
    ("var", "1", "i32", "2e8c01337ded0c3adfa8cf328f14cb94"),
    ("var", "1", "i64", "77fe4fb842686e5762f7546aea77d820"),
];

/// The environment variable that prints the table instead of checking it.
const PIN_ENV: &str = "NDCACHE_PIN_KERNELS";

/// Sizes of the 1-D cases: tails only, main loop and tail, parallel paths.
const SIZES: [usize; 4] = [3, 1000, 70_000, 140_000];

/// A 64-bit LCG (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// Uniform in [0, 1), from the top 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Special `f64` inputs (also cast to `f32`), most telling first.
fn float_specials() -> Vec<f64> {
    vec![
        0.5,
        -0.0,
        1.0e6,
        0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::from_bits(0xfff8_0000_0000_0001), // NaN, sign and payload
        f64::from_bits(0x7ff8_dead_beef_0000), // NaN, payload kept by f32
        5e-324,
        -5e-324,
        1e-310,
        -2.225_073_858_507_201e-308,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        1e-40, // an f32 subnormal
        -1.4e-45,
        1.175_494_4e-38,
        f64::from(f32::MAX),
        1.0,
        -1.0,
        2.0,
        -2.5,
        1e-20,
        -1e-8,
        3e-5,
        0.7,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
        -3.0 * std::f64::consts::FRAC_PI_2,
        -100.0,
        524_288.0,
        -524_288.0,
        524_288.5,
        600_000.0,
        1_000_000.3,
        -3e6,
        1e22,
        1e300,
        -1e300,
        709.78,
        709.8,
        -745.1,
        -800.0,
        88.72,
        89.0,
        -103.9,
        -110.0,
        22.0,
        19.0,
        -40.0,
        0.999_9,
        -0.999_9,
        -0.999_999_999_9,
        4.5e15,
        9.007_199_254_740_993e15,
        // f32 arguments where exp's f32 result changed in 1197f52 (190 of
        // the 3.2e8 f32s checked in [-104, 89] differ; random inputs miss them).
        f64::from(-83.316_f32),
        f64::from(-82.251_625_f32),
        f64::from(-73.939_766_f32),
        f64::from(-67.529_74_f32),
        f64::from(-52.990_185_f32),
    ]
}

/// `n` deterministic `f64`s: the specials, then values of several ranges.
fn floats(n: usize, seed: u64) -> Vec<f64> {
    let mut out: Vec<f64> = float_specials().into_iter().take(n).collect();
    let mut r = Lcg(seed);
    while out.len() < n {
        let i = out.len();
        let u = r.unit();
        let v = match i % 8 {
            0 => (u - 0.5) * 20.0,
            1 => (u - 0.5) * 2000.0,
            // Trig: half of these beyond 2^19.
            2 => (u - 0.5) * 4e6,
            3 => (u - 0.5) * 1e-6,
            // Any finite value, subnormals included (log-uniform).
            4 => {
                let b = r.next();
                let b = if (b >> 52) & 0x7ff == 0x7ff {
                    b ^ (1 << 60)
                } else {
                    b
                };
                f64::from_bits(b)
            }
            5 => (u - 0.5) * 1500.0,
            6 => u * 3.0 - 1.0,
            _ => u * 40.0 - 20.0,
        };
        out.push(v);
    }
    out
}

/// `n` finite `f64`s of moderate size (sums neither overflow nor cancel to
/// nothing), with zeros of both signs and subnormals sprinkled in.
fn moderate(n: usize, seed: u64) -> Vec<f64> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|i| match i % 97 {
            5 => -0.0,
            11 => 0.0,
            23 => 1e-310,
            _ => (r.unit() - 0.5) * 2000.0,
        })
        .collect()
}

/// `n` finite `f64`s near 1 (a product of 140 000 stays finite).
fn near_one(n: usize, seed: u64) -> Vec<f64> {
    let mut r = Lcg(seed);
    (0..n).map(|_| 1.0 + (r.unit() - 0.5) * 0.01).collect()
}

/// `n` deterministic `i64`s: the specials, then several ranges.
fn ints(n: usize, seed: u64) -> Vec<i64> {
    let specials = [
        3,
        -7,
        i64::MAX,
        0,
        1,
        -1,
        i64::MIN,
        i64::MIN + 1,
        i64::MAX - 1,
        3_037_000_500, // its square wraps
        -3_037_000_500,
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        46_341, // its square wraps in i32
        -46_341,
        65_536,
        (1 << 53) + 1, // not exact in f64
        -(1 << 62),
    ];
    let mut out: Vec<i64> = specials.into_iter().take(n).collect();
    let mut r = Lcg(seed);
    while out.len() < n {
        let b = r.next();
        out.push(match out.len() % 4 {
            0 => b as i64,
            1 => (b >> 54) as i64 - 512,
            2 => (b >> 32) as i64 - (1 << 31),
            _ => (b >> 10) as i64 - (1 << 53),
        });
    }
    out
}

/// `n` small `i64`s (sums and means without wrapping).
fn small_ints(n: usize, seed: u64) -> Vec<i64> {
    let mut r = Lcg(seed);
    (0..n).map(|_| (r.next() >> 53) as i64 - 1024).collect()
}

/// The dtypes of the inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dt {
    F32,
    F64,
    I32,
    I64,
}

const DTYPES: [Dt; 4] = [Dt::F32, Dt::F64, Dt::I32, Dt::I64];

impl Dt {
    fn label(self) -> &'static str {
        match self {
            Dt::F32 => "f32",
            Dt::F64 => "f64",
            Dt::I32 => "i32",
            Dt::I64 => "i64",
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Dt::F32 | Dt::F64)
    }
}

/// Which values an input holds.
#[derive(Clone, Copy, Debug)]
enum Family {
    /// Special values first, then wide ranges.
    Wide,
    /// Finite, moderate (floats) or small (integers).
    Moderate,
    /// Near 1 (floats) or small (integers): products stay finite.
    NearOne,
}

/// An array of `dtype` and `shape` (C order) holding `family`'s values.
fn array(dtype: Dt, shape: &[usize], family: Family, seed: u64) -> AnyArray {
    let n = shape.iter().product();
    let sh = IxDyn(shape);
    match dtype {
        Dt::F32 | Dt::F64 => {
            let v = match family {
                Family::Wide => floats(n, seed),
                Family::Moderate => moderate(n, seed),
                Family::NearOne => near_one(n, seed),
            };
            float_array(dtype, v, shape)
        }
        Dt::I32 | Dt::I64 => {
            let v = match family {
                Family::Wide => ints(n, seed),
                Family::Moderate | Family::NearOne => small_ints(n, seed),
            };
            if dtype == Dt::I64 {
                ArrayD::from_shape_vec(sh, v).unwrap().into()
            } else {
                let v: Vec<i32> = v.into_iter().map(|x| x as i32).collect();
                ArrayD::from_shape_vec(sh, v).unwrap().into()
            }
        }
    }
}

/// `v` as an array of float dtype `dt` (`f32`: rounded) and `shape`.
fn float_array(dt: Dt, v: Vec<f64>, shape: &[usize]) -> AnyArray {
    let sh = IxDyn(shape);
    if dt == Dt::F64 {
        ArrayD::from_shape_vec(sh, v).unwrap().into()
    } else {
        let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
        ArrayD::from_shape_vec(sh, v).unwrap().into()
    }
}

/// Pairs of float operands (of `da` and `db`) where NaNs of different signs
/// and payloads meet: arrays of 3 and 1003 elements, then each against a
/// NaN scalar, on both sides.
fn nan_pairs(da: Dt, db: Dt) -> Vec<(AnyArray, AnyArray)> {
    let (p, q) = (
        f64::from_bits(0x7ff8_0000_0000_0001),
        f64::from_bits(0xfff8_0000_0000_0002),
    );
    let mut pairs = Vec::new();
    for n in [3, 1003] {
        let a: Vec<f64> = [p, q, 1.5, p, -0.0].into_iter().cycle().take(n).collect();
        let b: Vec<f64> = [q, p, q, 2.0, p].into_iter().cycle().take(n).collect();
        pairs.push((
            float_array(da, a.clone(), &[n]),
            float_array(db, b.clone(), &[n]),
        ));
        pairs.push((float_array(da, a, &[n]), float_array(db, vec![q], &[])));
        pairs.push((float_array(da, vec![p], &[]), float_array(db, b, &[n])));
    }
    pairs
}

/// Non-negative integer exponents (integer `power` rejects negative ones).
fn exponents(dtype: Dt, n: usize, seed: u64) -> AnyArray {
    let mut r = Lcg(seed);
    let v: Vec<i64> = (0..n).map(|_| (r.next() >> 58) as i64).collect();
    match dtype {
        Dt::I32 => Array1::from(v.into_iter().map(|x| x as i32).collect::<Vec<_>>()).into(),
        _ => Array1::from(v).into(),
    }
}

/// Float exponents: small integers, halves and the specials.
fn float_exponents(dtype: Dt, n: usize, seed: u64) -> AnyArray {
    let specials = floats(n.min(8), seed);
    let mut r = Lcg(seed);
    let v: Vec<f64> = (0..n)
        .map(|i| match i % 4 {
            0 => specials[i / 4 % specials.len()],
            1 => (r.next() >> 59) as f64 * 0.5 - 8.0,
            _ => (r.next() >> 59) as f64 - 16.0,
        })
        .collect();
    match dtype {
        Dt::F32 => Array1::from(v.into_iter().map(|x| x as f32).collect::<Vec<_>>()).into(),
        _ => Array1::from(v).into(),
    }
}

/// A value that replaces libm's answers before hashing (a signaling NaN
/// that no kernel produces).
const SENTINEL_F64: u64 = 0x7ff4_0000_0000_4c49;
const SENTINEL_F32: u32 = 0x7fa0_4c49;

/// Replaces each element of `out` whose input lies in libm's domain
/// (`in_domain`) and whose bits equal libm's answer (`libm64`/`libm32` of
/// the inputs, as `f64`/`f32`) by the sentinel; see the module docs.
fn mask_libm(
    out: AnyArray,
    inputs: &[&AnyArray],
    in_domain: fn(&[f64]) -> bool,
    libm64: fn(&[f64]) -> f64,
    libm32: fn(&[f32]) -> f32,
) -> AnyArray {
    let shape = out.shape().to_vec();
    // The inputs broadcast to the output's shape, as f64 (exact for f32;
    // i64 inputs are converted by the kernels the same way).
    let as_f64 = |a: &AnyArray| -> Vec<f64> {
        let v: ArrayD<f64> = match a {
            AnyArray::F32(x) => x.mapv(f64::from).into_owned(),
            AnyArray::F64(x) => x.to_owned(),
            AnyArray::I32(x) => x.mapv(f64::from).into_owned(),
            AnyArray::I64(x) => x.mapv(|e| e as f64).into_owned(),
            _ => unreachable!("a dtype this test does not know"),
        };
        v.broadcast(IxDyn(&shape))
            .unwrap()
            .iter()
            .copied()
            .collect()
    };
    let cols: Vec<Vec<f64>> = inputs.iter().map(|a| as_f64(a)).collect();
    let args = |i: usize| -> Vec<f64> { cols.iter().map(|c| c[i]).collect() };
    match out {
        AnyArray::F64(o) => {
            let mut o = o.to_owned();
            for (i, e) in o.iter_mut().enumerate() {
                let a = args(i);
                if in_domain(&a) && e.to_bits() == libm64(&a).to_bits() {
                    *e = f64::from_bits(SENTINEL_F64);
                }
            }
            o.into()
        }
        AnyArray::F32(o) => {
            let mut o = o.to_owned();
            for (i, e) in o.iter_mut().enumerate() {
                let a = args(i);
                let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
                if in_domain(&a) && e.to_bits() == libm32(&a32).to_bits() {
                    *e = f32::from_bits(SENTINEL_F32);
                }
            }
            o.into()
        }
        other => other,
    }
}

/// Arguments that `sin`, `cos` and `tan` hand to libm.
fn trig_domain(a: &[f64]) -> bool {
    a[0].is_nan() || a[0].abs() > 524_288.0
}

/// Replaces libm's answers in the output of `name`, if it has any.
fn mask_for(name: &str, out: AnyArray, inputs: &[&AnyArray]) -> AnyArray {
    match name {
        "sin" => mask_libm(out, inputs, trig_domain, |a| a[0].sin(), |a| a[0].sin()),
        "cos" => mask_libm(out, inputs, trig_domain, |a| a[0].cos(), |a| a[0].cos()),
        "tan" => mask_libm(out, inputs, trig_domain, |a| a[0].tan(), |a| a[0].tan()),
        _ => out,
    }
}

/// How a builtin kernel is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Unary,
    Binary,
    Reduce,
    Cumsum,
    Sort,
}

fn kind(name: &str) -> Option<Shape> {
    Some(match name {
        "negative" | "absolute" | "square" | "sqrt" | "exp" | "expm1" | "log" | "log1p" | "sin"
        | "cos" | "tan" | "tanh" => Shape::Unary,
        "add" | "subtract" | "multiply" | "divide" | "power" | "maximum" | "minimum" => {
            Shape::Binary
        }
        "sum" | "prod" | "mean" | "min" | "max" | "var" | "std" => Shape::Reduce,
        "cumsum" => Shape::Cumsum,
        "sort" => Shape::Sort,
        _ => return None,
    })
}

/// The dtype labels a kernel is pinned for.
fn labels(shape: Shape) -> Vec<String> {
    let mut v: Vec<String> = DTYPES.iter().map(|d| d.label().to_owned()).collect();
    if shape == Shape::Binary {
        v.extend(["i32,f32", "f32,f64", "i32,i64"].map(String::from));
    }
    v
}

fn parse_label(label: &str) -> (Dt, Dt) {
    let dt = |s: &str| *DTYPES.iter().find(|d| d.label() == s).unwrap();
    match label.split_once(',') {
        Some((a, b)) => (dt(a), dt(b)),
        None => (dt(label), dt(label)),
    }
}

/// Runs `name` on `inputs` with `params`, masked for libm.
fn run(reg: &Registry, name: &str, inputs: &[&AnyArray], params: &Params) -> AnyArray {
    let views: Vec<AnyView<'_>> = inputs.iter().map(|a| a.view()).collect();
    let out = reg
        .call(name, &views, params)
        .unwrap_or_else(|e| panic!("{name} on {:?}: {e}", views_desc(inputs)));
    mask_for(name, out, inputs)
}

fn views_desc(inputs: &[&AnyArray]) -> Vec<String> {
    inputs
        .iter()
        .map(|a| format!("{:?}{:?}", a.dtype(), a.shape()))
        .collect()
}

/// The outputs of every case of `name` for the dtype(s) of `label`.
fn outputs(reg: &Registry, name: &str, shape: Shape, label: &str) -> Vec<AnyArray> {
    let (da, db) = parse_label(label);
    let mut outs = Vec::new();
    let none = Params::new();
    match shape {
        Shape::Unary => {
            for n in SIZES {
                let x = array(da, &[n], Family::Wide, 1);
                outs.push(run(reg, name, &[&x], &none));
            }
            // A 2-D transposed (strided) input.
            let x = array(da, &[300, 250], Family::Wide, 2);
            let t: AnyArray = match &x {
                AnyArray::F32(a) => a.t().to_owned().into(),
                AnyArray::F64(a) => a.t().to_owned().into(),
                AnyArray::I32(a) => a.t().to_owned().into(),
                AnyArray::I64(a) => a.t().to_owned().into(),
                _ => unreachable!("a dtype this test does not know"),
            };
            outs.push(run(reg, name, &[&t], &none));
        }
        Shape::Binary => {
            let int_power = name == "power" && !da.is_float() && !db.is_float();
            let float_power = name == "power" && !int_power;
            let second = |n: usize, seed: u64| -> AnyArray {
                if int_power {
                    exponents(db, n, seed)
                } else if float_power && db.is_float() {
                    float_exponents(db, n, seed)
                } else {
                    array(db, &[n], Family::Wide, seed)
                }
            };
            for n in SIZES {
                let a = array(da, &[n], Family::Wide, 3);
                let b = second(n, 4);
                outs.push(run(reg, name, &[&a, &b], &none));
            }
            // Broadcast: a column against a row, and a scalar-like operand.
            let col = array(da, &[300, 1], Family::Wide, 5);
            let row = second(250, 6);
            outs.push(run(reg, name, &[&col, &row], &none));
            let one = second(1, 7);
            let a = array(da, &[1000], Family::Wide, 8);
            outs.push(run(reg, name, &[&a, &one], &none));
            // Two NaNs of other signs and payloads at one index (which one
            // the result carries), in a vector loop's body and rest, and a
            // NaN scalar on either side.
            if da.is_float() && db.is_float() {
                for (a, b) in nan_pairs(da, db) {
                    outs.push(run(reg, name, &[&a, &b], &none));
                }
            }
        }
        Shape::Reduce => {
            let fam = if name == "prod" {
                Family::NearOne
            } else {
                Family::Moderate
            };
            let ddofs: &[i64] = if matches!(name, "var" | "std") {
                &[0, 1, 2]
            } else {
                &[0]
            };
            let with = |p: Params, ddof: i64| {
                if ddof == 0 {
                    p
                } else {
                    p.set("ddof", ddof)
                }
            };
            for &ddof in ddofs {
                for n in SIZES {
                    let x = array(da, &[n], fam, 9);
                    outs.push(run(reg, name, &[&x], &with(Params::new(), ddof)));
                }
                let x = array(da, &[350, 400], fam, 10);
                outs.push(run(reg, name, &[&x], &with(Params::new(), ddof)));
                for axis in [0i64, 1, -1] {
                    let p = Params::new().set("axis", axis);
                    outs.push(run(reg, name, &[&x], &with(p, ddof)));
                }
                let p = Params::new().set("axis", 0i64).set("keepdims", true);
                outs.push(run(reg, name, &[&x], &with(p, ddof)));
                let x3 = array(da, &[20, 30, 40], fam, 11);
                let p = Params::new().set("axis", 1i64);
                outs.push(run(reg, name, &[&x3], &with(p, ddof)));
                // Special values (NaN, ±inf, ±0, extremes).
                let s = array(da, &[1000], Family::Wide, 12);
                outs.push(run(reg, name, &[&s], &with(Params::new(), ddof)));
                let s = array(da, &[40, 25], Family::Wide, 13);
                let p = Params::new().set("axis", 0i64);
                outs.push(run(reg, name, &[&s], &with(p, ddof)));
            }
            if matches!(name, "var" | "std") {
                // ddof equal to and beyond the count: a divisor of 0.
                let x = array(da, &[3], fam, 14);
                for ddof in [3, 5] {
                    outs.push(run(reg, name, &[&x], &Params::new().set("ddof", ddof)));
                }
            }
        }
        Shape::Cumsum => {
            for n in SIZES {
                let x = array(da, &[n], Family::Moderate, 15);
                outs.push(run(reg, name, &[&x], &none));
            }
            let x = array(da, &[350, 400], Family::Moderate, 16);
            outs.push(run(reg, name, &[&x], &none));
            for axis in [0i64, 1, -2] {
                let p = Params::new().set("axis", axis);
                outs.push(run(reg, name, &[&x], &p));
            }
            let s = array(da, &[1000], Family::Wide, 17);
            outs.push(run(reg, name, &[&s], &none));
        }
        Shape::Sort => {
            for n in SIZES {
                let x = array(da, &[n], Family::Wide, 18);
                outs.push(run(reg, name, &[&x], &none));
                let x = array(da, &[n], Family::Moderate, 19);
                outs.push(run(reg, name, &[&x], &none));
            }
            let x = array(da, &[350, 400], Family::Wide, 20);
            for axis in [0i64, 1] {
                let p = Params::new().set("axis", axis);
                outs.push(run(reg, name, &[&x], &p));
            }
            let p = Params::new().set("flatten", true);
            outs.push(run(reg, name, &[&x], &p));
            // Many NaNs of several payloads, zeros of both signs, duplicates.
            let x = array(da, &[100_000], Family::Wide, 21);
            let dup: AnyArray = match &x {
                AnyArray::F64(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if i % 3 == 0 {
                            float_specials()[i % 9]
                        } else {
                            v
                        }
                    })
                    .collect::<Array1<f64>>()
                    .into(),
                AnyArray::F32(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if i % 3 == 0 {
                            float_specials()[i % 9] as f32
                        } else {
                            v
                        }
                    })
                    .collect::<Array1<f32>>()
                    .into(),
                AnyArray::I32(a) => a.mapv(|v| v % 50).into_owned().into(),
                AnyArray::I64(a) => a.mapv(|v| v % 50).into_owned().into(),
                _ => unreachable!("a dtype this test does not know"),
            };
            outs.push(run(reg, name, &[&dup], &none));
        }
    }
    outs
}

/// One digest of several outputs: the crate's fingerprint of the array of
/// their fingerprints (each of which covers dtype, shape and bits).
fn digest(outs: &[AnyArray]) -> String {
    let words: Vec<i64> = outs
        .iter()
        .flat_map(|o| {
            let v = u128::from_str_radix(&o.fingerprint().to_string(), 16).unwrap();
            [v as u64 as i64, (v >> 64) as u64 as i64]
        })
        .collect();
    ndcache::fingerprint(&Array1::from(words)).to_string()
}

#[test]
fn builtin_kernel_outputs_are_pinned_to_their_versions() {
    let reg = Registry::with_builtins();
    // (kernel, label) -> (version, digest), computed now.
    let mut current: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    let mut problems = Vec::new();
    for k in reg.kernels() {
        let name = k.name();
        let Some(shape) = kind(name) else {
            problems.push(format!(
                "builtin kernel `{name}` has no cases here: add it to `kind` (and, if \
                 needed, `outputs`) in tests/integration/kernel_versions.rs, then pin it \
                 with {PIN_ENV}=1"
            ));
            continue;
        };
        for label in labels(shape) {
            let outs = outputs(&reg, name, shape, &label);
            current.insert(
                (name.to_owned(), label),
                (k.version().to_owned(), digest(&outs)),
            );
        }
    }

    if std::env::var(PIN_ENV).is_ok_and(|v| v == "1") {
        let mut s = String::from("const PINNED: &[(&str, &str, &str, &str)] = &[\n");
        for ((name, label), (version, digest)) in &current {
            writeln!(s, "    ({name:?}, {version:?}, {label:?}, {digest:?}),").unwrap();
        }
        s.push_str("];\n");
        println!("{s}");
        return;
    }

    let mut pinned: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for &(name, version, label, digest) in PINNED {
        let old = pinned.insert(
            (name.to_owned(), label.to_owned()),
            (version.to_owned(), digest.to_owned()),
        );
        if old.is_some() {
            problems.push(format!("the table pins `{name}` ({label}) twice"));
        }
    }
    let mut changed = BTreeSet::new();
    for ((name, label), (version, digest)) in &current {
        match pinned.get(&(name.clone(), label.clone())) {
            None => problems.push(format!(
                "builtin kernel `{name}` ({label}, version {version}) is not pinned: \
                 add its row (regenerate the table with {PIN_ENV}=1)"
            )),
            Some((pv, pd)) => {
                if pd != digest {
                    changed.insert(name.clone());
                    if pv == version {
                        problems.push(format!(
                            "kernel {name}'s output bits changed ({label}): bump its \
                             version (now {version}) and update the pinned digest \
                             (pinned {pd}, now {digest})"
                        ));
                    } else {
                        problems.push(format!(
                            "kernel {name}'s output bits changed ({label}) and its version \
                             went from {pv} to {version}: update the pinned digest \
                             (pinned {pd}, now {digest})"
                        ));
                    }
                } else if pv != version {
                    problems.push(format!(
                        "kernel {name}'s version is {version} but the table pins {pv} \
                         ({label}): update the table"
                    ));
                }
            }
        }
    }
    for (name, label) in pinned.keys() {
        if !current.contains_key(&(name.clone(), label.clone())) {
            problems.push(format!(
                "the table pins `{name}` ({label}), which is not a builtin kernel and \
                 dtype any more: remove the row"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the pinned kernel outputs (kernels whose bits changed: \
         {changed:?}); regenerate with `{PIN_ENV}=1 cargo test --test integration \
         kernel_versions -- --nocapture` only after bumping versions:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
