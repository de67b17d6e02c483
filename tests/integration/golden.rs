//! numpy parity: golden files written by numpy (tests/golden/gen.py).
//!
//! Every line of tests/golden/manifest.tsv is a case: a builtin kernel, its
//! inputs (stored `.npy` files or synthetic arrays, with view operations
//! that make them strided, reversed, transposed or broadcast), parameters,
//! and numpy's result or numpy's error. Each group test below runs its cases
//! through `Registry::with_builtins()`, checks dtype and shape exactly and
//! the values by the case's class (see `compare`), collects every failing
//! case and then panics once with the whole list, so that one run shows
//! everything that differs from numpy.

mod compare;
mod manifest;
mod selftest;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use ndarray::ArrayD;
use ndcache::{AnyArray, AnyView, DType, Error, Registry};

use compare::{check_sorted, compare_values, normalize_axis, rel_for, tol_bounds, unravel};
use manifest::{
    load_input, load_input_shape, read_golden, read_manifest, Case, Class, Expect, Golden, Input,
};

/// Every builtin kernel.
const BUILTINS: [&str; 28] = [
    "negative", "absolute", "square", "sqrt", "exp", "expm1", "log", "log1p", "sin", "cos", "tan",
    "tanh", "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "sum", "prod",
    "mean", "min", "max", "var", "std", "cumsum", "sort",
];

/// The parsed manifest (read once per test binary).
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| read_manifest().unwrap_or_else(|e| panic!("{e}")))
}

/// The outcome of running some cases.
#[derive(Debug, Default)]
pub struct Report {
    /// How many cases were run.
    pub run: usize,
    /// One line per failing case.
    pub failures: Vec<String>,
    /// Cases not run because their kernel is not registered, by kernel.
    pub missing: BTreeMap<String, usize>,
}

impl Report {
    /// Whether every case passed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && self.missing.is_empty()
    }

    /// Panics with every failure if any case failed.
    pub fn assert_ok(&self, what: &str) {
        if self.is_ok() {
            return;
        }
        let not_run: usize = self.missing.values().sum();
        let mut msg = format!(
            "golden '{what}': {} of {} cases failed ({} of them because the kernel is not registered)\n",
            self.failures.len() + not_run,
            self.run,
            not_run
        );
        if !self.missing.is_empty() {
            let list: Vec<String> = self
                .missing
                .iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect();
            let _ = writeln!(msg, "kernels not registered: {}", list.join(", "));
        }
        for f in &self.failures {
            let _ = writeln!(msg, "{f}");
        }
        panic!("{msg}");
    }
}

enum Failure {
    Missing,
    Problem(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Problem(s)
    }
}

/// Runs `cases` through `reg`, collecting every failure.
pub fn run_cases<'a>(reg: &Registry, cases: impl IntoIterator<Item = &'a Case>) -> Report {
    let mut report = Report::default();
    for case in cases {
        report.run += 1;
        match run_case(reg, case) {
            Ok(()) => {}
            Err(Failure::Missing) => *report.missing.entry(case.kernel.clone()).or_default() += 1,
            Err(Failure::Problem(p)) => report
                .failures
                .push(format!("{} (manifest line {}): {p}", case.name, case.line)),
        }
    }
    report
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::UnknownKernel { .. } => "UnknownKernel",
        Error::Arity { .. } => "Arity",
        Error::UnsupportedDType { .. } => "UnsupportedDType",
        Error::DTypeMismatch { .. } => "DTypeMismatch",
        Error::Broadcast { .. } => "Broadcast",
        Error::AxisOutOfRange { .. } => "AxisOutOfRange",
        Error::EmptyReduction { .. } => "EmptyReduction",
        Error::InvalidParam { .. } => "InvalidParam",
        Error::Domain { .. } => "Domain",
        Error::Kernel { .. } => "Kernel",
        _ => "Other",
    }
}

fn run_case(reg: &Registry, case: &Case) -> Result<(), Failure> {
    if !reg.contains(&case.kernel) {
        return Err(Failure::Missing);
    }
    let inputs: Vec<Input> = case
        .inputs
        .iter()
        .map(load_input)
        .collect::<Result<_, _>>()?;
    let views: Vec<AnyView<'_>> = inputs.iter().map(Input::view).collect();
    let result = catch_unwind(AssertUnwindSafe(|| {
        reg.call(&case.kernel, &views, &case.params)
    }))
    .map_err(|p| format!("the kernel panicked: {}", panic_message(&*p)))?;
    match (&case.expect, result) {
        (_, Err(Error::UnknownKernel { name, .. })) if name == case.kernel => Err(Failure::Missing),
        (Expect::Error { kind, substring }, Ok(got)) => Err(format!(
            "expected error {kind} containing '{substring}', got an array of dtype {} and shape {:?}",
            got.dtype(),
            got.shape()
        )
        .into()),
        (Expect::Error { kind, substring }, Err(e)) => {
            let msg = e.to_string();
            if error_kind(&e) == kind && msg.to_lowercase().contains(&substring.to_lowercase()) {
                Ok(())
            } else {
                Err(format!(
                    "expected error {kind} containing '{substring}', got {}: {msg}",
                    error_kind(&e)
                )
                .into())
            }
        }
        (_, Err(e)) => Err(format!("the call failed ({}): {e}", error_kind(&e)).into()),
        (Expect::Full(_) | Expect::Sample { .. }, Ok(got)) => {
            check_result(case, &inputs, &got).map_err(Failure::Problem)
        }
        (Expect::Nothing, Ok(_)) => Err("the case has no expectation".to_owned().into()),
    }
}

fn check_result(case: &Case, inputs: &[Input], got: &AnyArray) -> Result<(), String> {
    let (dtype, full_shape, step) = match &case.expect {
        Expect::Full(d) => (*d, None, 1),
        Expect::Sample { step, shape, dtype } => (*dtype, Some(shape.as_slice()), *step),
        _ => unreachable!("only array expectations reach here"),
    };
    if got.dtype() != dtype {
        return Err(format!("dtype: got {}, numpy gives {dtype}", got.dtype()));
    }
    match dtype {
        DType::F32 => check_typed::<f32>(case, inputs, got, full_shape, step),
        DType::F64 => check_typed::<f64>(case, inputs, got, full_shape, step),
        DType::I32 => check_typed::<i32>(case, inputs, got, full_shape, step),
        DType::I64 => check_typed::<i64>(case, inputs, got, full_shape, step),
        d => Err(format!("no golden check for dtype {d}")),
    }
}

fn check_typed<T: Golden>(
    case: &Case,
    inputs: &[Input],
    got: &AnyArray,
    full_shape: Option<&[usize]>,
    step: usize,
) -> Result<(), String> {
    let want: ArrayD<T> = read_golden(&case.output_path())?;
    let shape = full_shape.unwrap_or(want.shape());
    if got.shape() != shape {
        return Err(format!(
            "shape: got {:?}, numpy gives {shape:?}",
            got.shape()
        ));
    }
    let total: usize = shape.iter().product();
    if want.len() != total.div_ceil(step) {
        return Err(format!(
            "the golden file has {} values, expected {} (regenerate it)",
            want.len(),
            total.div_ceil(step)
        ));
    }
    let got = got.typed::<T>().map_err(|e| e.to_string())?;
    let want_flat: Vec<T> = want.iter().copied().collect();
    let bounds = if case.class == Class::Tol {
        let mut want_f64 = vec![f64::NAN; total];
        for (i, w) in want_flat.iter().enumerate() {
            want_f64[i * step] = w.to_f64();
        }
        let b = tol_bounds(
            &case.kernel,
            &inputs[0].to_f64(),
            case.axis(),
            case.ddof(),
            rel_for::<T>(),
            &want_f64,
        )?;
        if b.len() != total {
            return Err(format!("harness: {} bounds for {total} values", b.len()));
        }
        Some(b)
    } else {
        None
    };
    let mut problems = Vec::new();
    let mismatches = compare_values(case.class, &got, &want_flat, step, bounds.as_deref());
    if !mismatches.is_empty() {
        let mut p = format!(
            "{} of {} compared values differ:",
            mismatches.len(),
            want_flat.len()
        );
        for m in mismatches.iter().take(4) {
            let _ = write!(
                p,
                " at {:?} got {} want {}",
                unravel(m.flat, shape),
                m.got,
                m.want
            );
            if !m.note.is_empty() {
                let _ = write!(p, " ({})", m.note);
            }
            p.push(';');
        }
        problems.push(p);
    }
    if case.class == Class::Sort && got.ndim() > 0 {
        let axis = normalize_axis(case.axis().unwrap_or(-1), got.ndim())?;
        let input = inputs[0].view();
        let input = input.typed::<T>().map_err(|e| e.to_string())?;
        problems.extend(check_sorted(&got, &input, axis));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(" "))
    }
}

fn check_group(group: &str) {
    let reg = Registry::with_builtins();
    run_cases(&reg, cases().iter().filter(|c| c.group == group)).assert_ok(group);
}

#[test]
fn golden_unary() {
    check_group("unary");
}

#[test]
fn golden_binary() {
    check_group("binary");
}

#[test]
fn golden_reductions() {
    check_group("reduce");
}

#[test]
fn golden_scans_and_sorts() {
    check_group("scan");
}

/// numpy's legacy rules that look like accidents: its ufunc reductions
/// (sum, prod, min, max) accept axis 0 and -1 on a 0-d array (mean, var and
/// std do not), and cumsum treats a 0-d array as 1-d, axis and error message
/// included. Kept apart so that matching them is a visible decision.
#[test]
fn golden_numpy_quirks() {
    check_group("quirk");
}

/// Every input loads (with its view operations) and every expected file
/// reads as the manifest's dtype, and every builtin has cases for every
/// dtype: this holds whatever kernels are registered.
#[test]
fn golden_files_are_complete() {
    let mut problems = Vec::new();
    let mut per_kernel: BTreeMap<&str, (usize, Vec<DType>)> = BTreeMap::new();
    let mut loaded = std::collections::HashSet::new();
    for case in cases() {
        for spec in &case.inputs {
            if !loaded.insert(format!("{spec:?}")) {
                continue;
            }
            if let Err(e) = load_input_shape(spec) {
                problems.push(format!("{}: {e}", case.name));
            }
        }
        let read = match &case.expect {
            Expect::Full(d) | Expect::Sample { dtype: d, .. } => match d {
                DType::F32 => read_golden::<f32>(&case.output_path()).map(|_| ()),
                DType::F64 => read_golden::<f64>(&case.output_path()).map(|_| ()),
                DType::I32 => read_golden::<i32>(&case.output_path()).map(|_| ()),
                _ => read_golden::<i64>(&case.output_path()).map(|_| ()),
            },
            _ => Ok(()),
        };
        if let Err(e) = read {
            problems.push(format!("{}: {e}", case.name));
        }
        if !["unary", "binary", "reduce", "scan", "quirk", "synth"].contains(&case.group.as_str()) {
            problems.push(format!("{}: unknown group '{}'", case.name, case.group));
        }
        let e = per_kernel.entry(case.kernel.as_str()).or_default();
        e.0 += 1;
        if !e.1.contains(&case.inputs[0].dtype) {
            e.1.push(case.inputs[0].dtype);
        }
    }
    for k in BUILTINS {
        match per_kernel.get(k) {
            Some((n, dts)) if *n >= 40 && dts.len() == 4 => {}
            Some((n, dts)) => problems.push(format!("{k}: {n} cases, input dtypes {dts:?}")),
            None => problems.push(format!("{k}: no cases")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The synthetic inputs computed here are gen.py's bit for bit.
#[test]
fn golden_synthetic_inputs_match_numpy() {
    let checks: Vec<&Case> = cases().iter().filter(|c| c.group == "synth").collect();
    assert!(checks.len() >= 10, "too few synthetic input checks");
    for case in checks {
        let [ours, numpys] = &case.inputs[..] else {
            panic!("{}: expected two inputs", case.name);
        };
        let (a, b) = (load_input(ours).unwrap(), load_input(numpys).unwrap());
        assert!(
            a.view().bitwise_eq(&b.view()),
            "{}: the synthetic array differs from numpy's",
            case.name
        );
    }
}
