//! The golden manifest (tests/golden/manifest.tsv): parsing, and loading the
//! inputs it names (stored `.npy` files or synthetic arrays) with their view
//! operations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ndarray::{ArrayD, Axis, IxDyn, Slice};
use ndarray_npy::{read_npy, ReadableElement};
use ndcache::{AnyArray, AnyView, DType, Element, Params};

/// The directory of the golden files.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// How a result is compared with numpy's (see the manifest header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Bitwise; any NaN matches any NaN; -0.0 != 0.0.
    Exact,
    /// Bitwise, but 0.0 == -0.0.
    Exact0,
    /// Bitwise, but zeros of either sign may swap within a lane.
    Sort,
    /// At most 4 ulp apart; non-finite values and zero signs exact.
    Ulp4,
    /// Within a bound derived from the inputs (see `compare::tol_bounds`).
    Tol,
    /// The call must fail.
    Error,
}

/// Where an input comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A stored file, relative to the golden directory, without `.npy`.
    File(String),
    /// A synthetic 1-d array (see [`synth`]).
    Synth { kind: String, n: usize, seed: u64 },
}

/// One input of a case.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub dtype: DType,
    pub source: Source,
    pub ops: Vec<String>,
}

/// What the call must give.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The whole result is in the case's output file.
    Full(DType),
    /// The output file holds every `step`-th element of a result of `shape`.
    Sample {
        step: usize,
        shape: Vec<usize>,
        dtype: DType,
    },
    /// An error of this `Error` variant whose message contains the substring
    /// (case-insensitive).
    Error { kind: String, substring: String },
    /// Nothing (synthetic input checks).
    Nothing,
}

/// One line of the manifest.
#[derive(Debug, Clone)]
pub struct Case {
    pub line: usize,
    pub group: String,
    pub name: String,
    pub kernel: String,
    pub inputs: Vec<InputSpec>,
    pub params: Params,
    pub expect: Expect,
    pub class: Class,
}

impl Case {
    /// The file of numpy's result.
    pub fn output_path(&self) -> PathBuf {
        golden_dir()
            .join("out")
            .join(format!("{}.npy", self.name.replace('/', ".")))
    }

    /// The `axis` parameter, if given.
    pub fn axis(&self) -> Option<i64> {
        self.params.int("axis")
    }

    /// The `ddof` parameter (0 if not given).
    pub fn ddof(&self) -> i64 {
        self.params.int("ddof").unwrap_or(0)
    }
}

/// Reads and parses the manifest.
pub fn read_manifest() -> Result<Vec<Case>, String> {
    let path = golden_dir().join("manifest.tsv");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_manifest(&text)
}

/// Parses manifest text.
pub fn parse_manifest(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let case = parse_line(i + 1, line).map_err(|e| format!("manifest line {}: {e}", i + 1))?;
        cases.push(case);
    }
    Ok(cases)
}

fn parse_line(line: usize, text: &str) -> Result<Case, String> {
    let f: Vec<&str> = text.split('\t').collect();
    let [group, name, kernel, inputs, params, expect, class] = f[..] else {
        return Err(format!(
            "expected 7 tab-separated fields, found {}",
            f.len()
        ));
    };
    let class = match class {
        "exact" => Class::Exact,
        "exact0" => Class::Exact0,
        "sort" => Class::Sort,
        "ulp4" => Class::Ulp4,
        "tol" => Class::Tol,
        "error" => Class::Error,
        other => return Err(format!("unknown class '{other}'")),
    };
    Ok(Case {
        line,
        group: group.to_owned(),
        name: name.to_owned(),
        kernel: kernel.to_owned(),
        inputs: inputs
            .split(' ')
            .map(parse_input)
            .collect::<Result<_, _>>()?,
        params: parse_params(params)?,
        expect: parse_expect(expect)?,
        class,
    })
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    DType::from_descr(s).ok_or_else(|| format!("unknown dtype '{s}'"))
}

/// Parses `3x4`, `5` or `()`.
pub fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    if s == "()" {
        return Ok(vec![]);
    }
    s.split('x')
        .map(|d| d.parse().map_err(|_| format!("bad shape '{s}'")))
        .collect()
}

fn parse_input(s: &str) -> Result<InputSpec, String> {
    let (main, ops) = match s.split_once('[') {
        Some((m, rest)) => {
            let ops = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("unclosed '[' in '{s}'"))?;
            (m, ops.split(',').map(str::to_owned).collect())
        }
        None => (s, vec![]),
    };
    let (dtype, source) = main
        .split_once(':')
        .ok_or_else(|| format!("bad input '{s}'"))?;
    let source = match source.strip_prefix("synth:") {
        Some(rest) => {
            let p: Vec<&str> = rest.split(':').collect();
            let [kind, n, seed] = p[..] else {
                return Err(format!("bad synthetic input '{s}'"));
            };
            Source::Synth {
                kind: kind.to_owned(),
                n: n.parse().map_err(|_| format!("bad length in '{s}'"))?,
                seed: seed.parse().map_err(|_| format!("bad seed in '{s}'"))?,
            }
        }
        None => Source::File(source.to_owned()),
    };
    Ok(InputSpec {
        dtype: parse_dtype(dtype)?,
        source,
        ops,
    })
}

fn parse_params(s: &str) -> Result<Params, String> {
    let mut p = Params::new();
    if s == "-" {
        return Ok(p);
    }
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("bad parameter '{kv}'"))?;
        p = match v {
            "true" => p.set(k, true),
            "false" => p.set(k, false),
            _ => p.set(
                k,
                v.parse::<i64>()
                    .map_err(|_| format!("bad parameter value '{kv}'"))?,
            ),
        };
    }
    Ok(p)
}

fn parse_expect(s: &str) -> Result<Expect, String> {
    if s == "-" {
        return Ok(Expect::Nothing);
    }
    if let Some(rest) = s.strip_prefix("error:") {
        let (kind, substring) = rest
            .split_once(':')
            .ok_or_else(|| format!("bad error expectation '{s}'"))?;
        return Ok(Expect::Error {
            kind: kind.to_owned(),
            substring: substring.to_owned(),
        });
    }
    if let Some(rest) = s.strip_prefix("sample:") {
        let p: Vec<&str> = rest.split(':').collect();
        let [step, shape, dtype] = p[..] else {
            return Err(format!("bad sample expectation '{s}'"));
        };
        return Ok(Expect::Sample {
            step: step.parse().map_err(|_| format!("bad step in '{s}'"))?,
            shape: parse_shape(shape)?,
            dtype: parse_dtype(dtype)?,
        });
    }
    Ok(Expect::Full(parse_dtype(s)?))
}

/// The element types of the golden files.
pub trait Golden: Element + ReadableElement + PartialOrd {
    /// The value of a synthetic array of `kind` at a position with hashes
    /// `h1`, `h2`; `None` if the kind does not apply to the type.
    fn synth(kind: &str, h1: u64, h2: u64) -> Option<Self>;
    /// The value as f64 (rounded for large i64).
    fn to_f64(self) -> f64;
    /// Whether it is NaN.
    fn nan(self) -> bool;
    /// Whether it is finite (every integer is).
    fn finite(self) -> bool;
    /// A position on a line where adjacent floats are 1 apart and both zeros
    /// sit at 0 (the integer itself for integers).
    fn ordinal(self) -> i64;
    /// Whether the sign bit is set (integers: negative).
    fn sign_bit(self) -> bool;
}

fn int_synth(kind: &str, h1: u64) -> Option<i64> {
    match kind {
        "small" => Some((h1 % 2001) as i64 - 1000),
        "odd" => Some((h1 % 5) as i64 * 2 - 3),
        _ => None,
    }
}

fn pow2_f64(e: i32) -> f64 {
    f64::from_bits(((1023 + e) as u64) << 52)
}

fn pow2_f32(e: i32) -> f32 {
    f32::from_bits(((127 + e) as u32) << 23)
}

impl Golden for f64 {
    fn synth(kind: &str, h1: u64, h2: u64) -> Option<Self> {
        let e = (h2 & 15) as i32 - 8;
        match kind {
            "wide" => {
                let m = ((h1 << 21) | (h2 >> 11)) as i64 - (1 << 52);
                Some(m as f64 * pow2_f64(e - 52))
            }
            "near1" => Some(1.0 + ((h1 & 2047) as i64 - 1024) as f64 * pow2_f64(-20)),
            _ => int_synth(kind, h1).map(|v| v as f64),
        }
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn ordinal(self) -> i64 {
        let b = self.to_bits() as i64;
        if b < 0 {
            i64::MIN.wrapping_sub(b)
        } else {
            b
        }
    }
    fn sign_bit(self) -> bool {
        self.is_sign_negative()
    }
}

impl Golden for f32 {
    fn synth(kind: &str, h1: u64, h2: u64) -> Option<Self> {
        let e = (h2 & 15) as i32 - 8;
        match kind {
            "wide" => {
                let m = (h1 >> 8) as i64 - (1 << 23);
                Some(m as f32 * pow2_f32(e - 23))
            }
            "near1" => Some(1.0 + ((h1 & 2047) as i64 - 1024) as f32 * pow2_f32(-20)),
            _ => int_synth(kind, h1).map(|v| v as f32),
        }
    }
    fn to_f64(self) -> f64 {
        self.into()
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn ordinal(self) -> i64 {
        let b = i64::from(self.to_bits() as i32);
        if b < 0 {
            i64::from(i32::MIN) - b
        } else {
            b
        }
    }
    fn sign_bit(self) -> bool {
        self.is_sign_negative()
    }
}

impl Golden for i32 {
    fn synth(kind: &str, h1: u64, _h2: u64) -> Option<Self> {
        match kind {
            "full" => Some(h1 as u32 as i32),
            _ => int_synth(kind, h1).map(|v| v as i32),
        }
    }
    fn to_f64(self) -> f64 {
        self.into()
    }
    fn nan(self) -> bool {
        false
    }
    fn finite(self) -> bool {
        true
    }
    fn ordinal(self) -> i64 {
        self.into()
    }
    fn sign_bit(self) -> bool {
        self < 0
    }
}

impl Golden for i64 {
    fn synth(kind: &str, h1: u64, h2: u64) -> Option<Self> {
        match kind {
            "full" => Some(((h1 << 32) | h2) as i64),
            _ => int_synth(kind, h1),
        }
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn nan(self) -> bool {
        false
    }
    fn finite(self) -> bool {
        true
    }
    fn ordinal(self) -> i64 {
        self
    }
    fn sign_bit(self) -> bool {
        self < 0
    }
}

/// gen.py's 32-bit hash: murmur3's finalizer over `k * phi + s`.
fn mix(k: u64, s: u64) -> u64 {
    const M: u64 = 0xFFFF_FFFF;
    let mut x = (k.wrapping_mul(0x9E37_79B1) + ((s * 0x85EB_CA77 + 0x1656_67B1) & M)) & M;
    x ^= x >> 16;
    x = (x * 0x85EB_CA6B) & M;
    x ^= x >> 13;
    x = (x * 0xC2B2_AE35) & M;
    x ^= x >> 16;
    x
}

/// The synthetic array `synth:KIND:N:SEED` (gen.py's `synth_values`).
pub fn synth<T: Golden>(kind: &str, n: usize, seed: u64) -> Result<ArrayD<T>, String> {
    let v = (0..n as u64)
        .map(|k| {
            T::synth(kind, mix(k, 2 * seed), mix(k, 2 * seed + 1))
                .ok_or_else(|| format!("no synthetic kind '{kind}' for {}", T::DTYPE))
        })
        .collect::<Result<Vec<T>, String>>()?;
    Ok(ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("1-d shape"))
}

/// [`synth`], computed once per array and test binary (a debug build takes
/// a while over 200k elements, and many cases share an input).
fn synth_cached<T: Golden>(kind: &str, n: usize, seed: u64) -> Result<ArrayD<T>, String> {
    type Cache = Mutex<HashMap<(DType, String, usize, u64), AnyArray>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = (T::DTYPE, kind.to_owned(), n, seed);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(a) = cache.lock().unwrap().get(&key) {
        return Ok(a.typed::<T>().map_err(|e| e.to_string())?.to_owned());
    }
    let a = synth::<T>(kind, n, seed)?;
    cache.lock().unwrap().insert(key, AnyArray::from(a.clone()));
    Ok(a)
}

/// A loaded input: an owned array (possibly strided, reversed or permuted)
/// and an optional final broadcast.
#[derive(Debug)]
pub struct Loaded<T> {
    pub array: ArrayD<T>,
    pub bcast: Option<Vec<usize>>,
}

impl<T: Golden> Loaded<T> {
    /// The input as the kernel sees it.
    pub fn view(&self) -> ndarray::ArrayViewD<'_, T> {
        match &self.bcast {
            Some(s) => self.array.broadcast(IxDyn(s)).expect("checked when loaded"),
            None => self.array.view(),
        }
    }
}

/// An input of any dtype.
#[derive(Debug)]
pub enum Input {
    F32(Loaded<f32>),
    F64(Loaded<f64>),
    I32(Loaded<i32>),
    I64(Loaded<i64>),
}

impl Input {
    /// The input as the kernel sees it.
    pub fn view(&self) -> AnyView<'_> {
        match self {
            Input::F32(l) => l.view().into(),
            Input::F64(l) => l.view().into(),
            Input::I32(l) => l.view().into(),
            Input::I64(l) => l.view().into(),
        }
    }

    /// The logical values as f64 (for tolerance bounds).
    pub fn to_f64(&self) -> ArrayD<f64> {
        match self {
            Input::F32(l) => l.view().mapv(Golden::to_f64),
            Input::F64(l) => l.view().to_owned(),
            Input::I32(l) => l.view().mapv(Golden::to_f64),
            Input::I64(l) => l.view().mapv(Golden::to_f64),
        }
    }
}

/// Loads an input and applies its view operations.
pub fn load_input(spec: &InputSpec) -> Result<Input, String> {
    load_any(spec, false)
}

/// Loads an input as [`load_input`] does, but with zeros in place of the
/// values of a synthetic input (enough to check its view operations).
pub fn load_input_shape(spec: &InputSpec) -> Result<Input, String> {
    load_any(spec, true)
}

fn load_any(spec: &InputSpec, zero_synth: bool) -> Result<Input, String> {
    Ok(match spec.dtype {
        DType::F32 => Input::F32(load(spec, zero_synth)?),
        DType::F64 => Input::F64(load(spec, zero_synth)?),
        DType::I32 => Input::I32(load(spec, zero_synth)?),
        DType::I64 => Input::I64(load(spec, zero_synth)?),
        d => return Err(format!("no golden inputs of dtype {d}")),
    })
}

/// Reads a stored `.npy` file of the golden directory.
pub fn read_golden<T: Golden>(path: &Path) -> Result<ArrayD<T>, String> {
    read_npy(path).map_err(|e| format!("cannot read {} as {}: {e}", path.display(), T::DTYPE))
}

fn load<T: Golden>(spec: &InputSpec, zero_synth: bool) -> Result<Loaded<T>, String> {
    let mut array: ArrayD<T> = match &spec.source {
        Source::File(p) => read_golden(&golden_dir().join(format!("{p}.npy")))?,
        Source::Synth { n, .. } if zero_synth => ArrayD::default(IxDyn(&[*n])),
        Source::Synth { kind, n, seed } => synth_cached(kind, *n, *seed)?,
    };
    let mut bcast = None;
    for op in &spec.ops {
        if bcast.is_some() {
            return Err(format!("bcast must be the last operation, found '{op}'"));
        }
        let (name, arg) = op.split_once(':').unwrap_or((op, ""));
        let bad = || format!("bad operation '{op}'");
        match name {
            "T" => array = array.reversed_axes(),
            "perm" => {
                let axes: Vec<usize> = arg
                    .split('.')
                    .map(|a| a.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                array = array.permuted_axes(IxDyn(&axes));
            }
            "step" => {
                let (ax, k) = arg.split_once(':').ok_or_else(bad)?;
                let ax: usize = ax.parse().map_err(|_| bad())?;
                let k: isize = k.parse().map_err(|_| bad())?;
                array.slice_axis_inplace(Axis(ax), Slice::new(0, None, k));
            }
            "reshape" => {
                let shape = parse_shape(arg)?;
                array = array
                    .into_shape_with_order(IxDyn(&shape))
                    .map_err(|e| format!("'{op}': {e}"))?;
            }
            "bcast" => {
                let shape = parse_shape(arg)?;
                if array.broadcast(IxDyn(&shape)).is_none() {
                    return Err(format!("'{op}' does not broadcast {:?}", array.shape()));
                }
                bcast = Some(shape);
            }
            _ => return Err(bad()),
        }
    }
    Ok(Loaded { array, bcast })
}
