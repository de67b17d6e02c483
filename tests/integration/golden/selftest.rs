//! Tests of the harness itself: the comparison helpers, and whole golden
//! runs against small naive kernels, correct ones (no false alarms) and
//! deliberately wrong ones (each wrong one must be caught).

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};
use ndcache::{AnyArray, AnyView, Error, ParamSpec, Params, Registry, Result};

use super::compare::{check_sorted, element_ok, tol_bounds, ulp_distance};
use super::manifest::{parse_manifest, Case, Class};
use super::{cases, run_cases};

fn cases_of<'a>(group: &'a str, kernel: &'a str) -> impl Iterator<Item = &'static Case> + 'a {
    cases()
        .iter()
        .filter(move |c| c.group == group && c.kernel == kernel)
}

fn negative_with(f32_neg: fn(f32) -> f32, f64_neg: fn(f64) -> f64, i32_to_i64: bool) -> Registry {
    let mut reg = Registry::new();
    reg.register_fn(
        "negative",
        "test",
        1,
        vec![],
        "naive negative",
        move |x, _| {
            Ok(match &x[0] {
                AnyView::F32(v) => v.mapv(f32_neg).into(),
                AnyView::F64(v) => v.mapv(f64_neg).into(),
                AnyView::I32(v) if i32_to_i64 => v.mapv(|e| -i64::from(e)).into(),
                AnyView::I32(v) => v.mapv(i32::wrapping_neg).into(),
                AnyView::I64(v) => v.mapv(i64::wrapping_neg).into(),
                _ => unreachable!("a dtype the golden cases do not use"),
            })
        },
    )
    .unwrap();
    reg
}

#[test]
fn a_correct_kernel_passes_every_case() {
    let reg = negative_with(|v| -v, |v| -v, false);
    let report = run_cases(&reg, cases_of("unary", "negative"));
    assert!(report.run >= 40);
    report.assert_ok("naive negative");
}

#[test]
fn a_lost_zero_sign_is_caught() {
    // 0 - x gives +0.0 for x = +0.0, where numpy's negative gives -0.0.
    let reg = negative_with(|v| 0.0 - v, |v| 0.0 - v, false);
    let report = run_cases(&reg, cases_of("unary", "negative"));
    let failed = |name: &str| report.failures.iter().any(|f| f.starts_with(name));
    assert!(
        failed("unary/negative/f4/special "),
        "{:#?}",
        report.failures
    );
    assert!(
        failed("unary/negative/f8/special "),
        "{:#?}",
        report.failures
    );
    assert!(
        report.failures.iter().all(|f| f.contains("(0x")),
        "{:#?}",
        report.failures
    );
    assert!(!failed("unary/negative/i4"));
}

#[test]
fn a_wrong_dtype_is_caught() {
    let reg = negative_with(|v| -v, |v| -v, true);
    let report = run_cases(&reg, cases_of("unary", "negative"));
    let i4: Vec<&Case> = cases_of("unary", "negative")
        .filter(|c| c.name.contains("/i4/"))
        .collect();
    assert!(!i4.is_empty());
    for c in i4 {
        assert!(
            report.failures.iter().any(
                |f| f.starts_with(&c.name) && f.contains("dtype: got int64, numpy gives int32")
            ),
            "{} not caught",
            c.name
        );
    }
}

#[test]
fn missing_kernels_are_listed_not_run() {
    let report = run_cases(&Registry::new(), cases_of("scan", "sort"));
    assert!(report.failures.is_empty());
    assert_eq!(report.missing.get("sort"), Some(&report.run));
    let msg = std::panic::catch_unwind(|| report.assert_ok("scan"))
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("kernels not registered: sort ("), "{msg}");
}

/// numpy's `sum` computed naively: sequential, in the result type; the
/// result is scaled by `1 + perturb` (0 for the honest version).
fn naive_sum(perturb: f64) -> Registry {
    let mut reg = Registry::new();
    let params = vec![ParamSpec::axis(), ParamSpec::keepdims()];
    reg.register_fn("sum", "test", 1, params, "naive sum", move |x, p| {
        let axis = p.int("axis");
        let keep = p.bool("keepdims").unwrap_or(false);
        Ok(match &x[0] {
            AnyView::F32(v) => reduce(v, axis, keep, |l| {
                l.iter().fold(0.0f32, |a, b| a + b) * (1.0 + perturb as f32)
            })?
            .into(),
            AnyView::F64(v) => reduce(v, axis, keep, |l| {
                l.iter().fold(0.0f64, |a, b| a + b) * (1.0 + perturb)
            })?
            .into(),
            AnyView::I32(v) => reduce(v, axis, keep, |l| {
                l.iter().fold(0i64, |a, b| a.wrapping_add(i64::from(*b)))
            })?
            .into(),
            AnyView::I64(v) => reduce(v, axis, keep, |l| {
                l.iter().fold(0i64, |a, b| a.wrapping_add(*b))
            })?
            .into(),
            _ => unreachable!("a dtype the golden cases do not use"),
        })
    })
    .unwrap();
    reg
}

/// Reduces every lane along `axis` (everything for None) with `f`.
fn reduce<T: Copy, A>(
    x: &ArrayViewD<'_, T>,
    axis: Option<i64>,
    keepdims: bool,
    f: impl Fn(&[T]) -> A,
) -> Result<ArrayD<A>> {
    let nd = x.ndim();
    let Some(a) = axis else {
        let all: Vec<T> = x.iter().copied().collect();
        let shape = if keepdims { vec![1; nd] } else { vec![] };
        return Ok(ArrayD::from_shape_vec(IxDyn(&shape), vec![f(&all)]).unwrap());
    };
    if a < -(nd as i64) || a >= nd as i64 {
        return Err(Error::AxisOutOfRange {
            axis: a as isize,
            ndim: nd,
        });
    }
    let ax = if a < 0 { a + nd as i64 } else { a } as usize;
    let mut shape = x.shape().to_vec();
    shape.remove(ax);
    let vals: Vec<A> = x
        .lanes(Axis(ax))
        .into_iter()
        .map(|l| f(&l.to_vec()))
        .collect();
    let mut out = ArrayD::from_shape_vec(IxDyn(&shape), vals).unwrap();
    if keepdims {
        out.insert_axis_inplace(Axis(ax));
    }
    Ok(out)
}

#[test]
fn a_naive_sum_passes_and_a_perturbed_one_does_not() {
    let honest = run_cases(&naive_sum(0.0), cases_of("reduce", "sum"));
    assert!(honest.run > 200);
    honest.assert_ok("naive sum");
    // 1e-9 relative is far inside f32's tolerance but outside f64's for
    // every sum without heavy cancellation.
    let off = run_cases(&naive_sum(1e-9), cases_of("reduce", "sum"));
    let f8_failed = off.failures.iter().filter(|f| f.contains("/f8/")).count();
    assert!(f8_failed > 40, "{f8_failed} failures: {:#?}", off.failures);
    assert!(off.failures.iter().all(|f| f.contains("> bound")));
    assert!(!off
        .failures
        .iter()
        .any(|f| f.contains("/f4/") || f.contains("/i")));
}

#[test]
fn ulp_distance_counts_representable_steps() {
    assert_eq!(ulp_distance(1.0f64, 1.0), 0);
    assert_eq!(
        ulp_distance(1.0f64, f64::from_bits(1.0f64.to_bits() + 3)),
        3
    );
    assert_eq!(ulp_distance(0.0f64, -0.0), 0);
    // The two smallest subnormals of opposite signs are two steps apart.
    assert_eq!(ulp_distance(f64::from_bits(1), -f64::from_bits(1)), 2);
    assert_eq!(
        ulp_distance(
            f32::MIN_POSITIVE,
            f32::from_bits(f32::MIN_POSITIVE.to_bits() - 1)
        ),
        1
    );
    assert_eq!(
        ulp_distance(-1.0f32, -f32::from_bits(1.0f32.to_bits() + 5)),
        5
    );
    assert_eq!(ulp_distance(f32::MAX, f32::INFINITY), 1);
}

#[test]
fn classes_treat_nan_zero_and_infinity_as_documented() {
    let nan_a = f64::from_bits(0x7ff8_0000_0000_0001);
    let nan_b = -f64::NAN;
    for class in [
        Class::Exact,
        Class::Exact0,
        Class::Sort,
        Class::Ulp4,
        Class::Tol,
    ] {
        assert!(element_ok(class, nan_a, nan_b, 0.0), "{class:?}");
        assert!(!element_ok(class, 1.0f64, f64::NAN, 1e300), "{class:?}");
        assert!(!element_ok(class, f64::NAN, 1.0f64, 1e300), "{class:?}");
        assert!(
            !element_ok(class, f64::INFINITY, -f64::INFINITY, 1e300),
            "{class:?}"
        );
        assert!(
            !element_ok(class, f64::MAX, f64::INFINITY, 1e300),
            "{class:?}"
        );
    }
    assert!(!element_ok(Class::Exact, 0.0f32, -0.0, 0.0));
    assert!(!element_ok(Class::Ulp4, 0.0f32, -0.0, 0.0));
    assert!(element_ok(Class::Exact0, 0.0f32, -0.0, 0.0));
    assert!(element_ok(Class::Sort, -0.0f64, 0.0, 0.0));
    assert!(element_ok(Class::Tol, -0.0f64, 0.0, 0.0));
    let x = 0.1f64;
    assert!(element_ok(
        Class::Ulp4,
        f64::from_bits(x.to_bits() + 4),
        x,
        0.0
    ));
    assert!(!element_ok(
        Class::Ulp4,
        f64::from_bits(x.to_bits() + 5),
        x,
        0.0
    ));
    assert!(!element_ok(
        Class::Exact,
        f64::from_bits(x.to_bits() + 1),
        x,
        0.0
    ));
    assert!(element_ok(Class::Tol, 1.0 + 1e-12, 1.0f64, 2e-12));
    assert!(!element_ok(Class::Tol, 1.0 + 1e-11, 1.0f64, 2e-12));
    assert!(element_ok(Class::Exact, i64::MIN, i64::MIN, 0.0));
    assert!(!element_ok(Class::Tol, 3i32, 4, 10.0));
}

#[test]
fn sort_check_allows_swapped_zeros_only() {
    let input = ndarray::array![[2.0f64, f64::NAN, 0.0, -1.0, -0.0]].into_dyn();
    let want = ndarray::array![[-1.0f64, -0.0, 0.0, 2.0, f64::NAN]].into_dyn();
    let swapped = ndarray::array![[-1.0f64, 0.0, -0.0, 2.0, -f64::NAN]].into_dyn();
    assert!(check_sorted(&swapped.view(), &input.view(), 1).is_empty());
    for (g, w) in swapped.iter().zip(want.iter()) {
        assert!(element_ok(Class::Sort, *g, *w, 0.0));
    }
    // What numpy 2.4's AVX-512 sort can do: a 0.0 comes out as -0.0.
    let lost = ndarray::array![[-1.0f64, -0.0, -0.0, 2.0, f64::NAN]].into_dyn();
    let p = check_sorted(&lost.view(), &input.view(), 1);
    assert!(
        p.len() == 1 && p[0].contains("has 2 -0.0, the input 1"),
        "{p:?}"
    );
    let unsorted = ndarray::array![[-1.0f64, f64::NAN, 0.0, 2.0, -0.0]].into_dyn();
    assert!(check_sorted(&unsorted.view(), &input.view(), 1)[0].contains("not sorted"));
    let ints = ndarray::array![[3i32, 1], [2, 4]].into_dyn();
    assert!(check_sorted(&ints.view(), &ints.view(), 0)[0].contains("lane 0"));
    assert!(check_sorted(&ints.view(), &ints.view(), 1)[0].contains("lane 0"));
    let changed = ndarray::array![[1i32, 2], [2, 4]].into_dyn();
    assert!(check_sorted(&changed.view(), &ints.view(), 1)[0].contains("permutation"));
}

#[test]
fn variance_bound_rejects_a_one_pass_formula() {
    // Data with a large mean: two-pass variance is accurate; E[x^2] - E[x]^2
    // cancels catastrophically.
    let x: Vec<f64> = (0..1000).map(|i| 1e6 + f64::from(i % 7) * 0.25).collect();
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let two_pass = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let one_pass = x.iter().map(|v| v * v).sum::<f64>() / n - mean * mean;
    let arr = ArrayD::from_shape_vec(IxDyn(&[x.len()]), x).unwrap();
    let b = tol_bounds("var", &arr, None, 0, 1e-12, &[two_pass]).unwrap()[0];
    assert!(
        b < two_pass * 1e-9,
        "bound {b} is not tight for var {two_pass}"
    );
    assert!(
        (one_pass - two_pass).abs() > b,
        "one pass {one_pass} vs {two_pass}"
    );
    let sd = two_pass.sqrt();
    let bs = tol_bounds("std", &arr, None, 0, 1e-12, &[sd]).unwrap()[0];
    assert!(bs < sd * 1e-9 && (one_pass.sqrt() - sd).abs() > bs);
}

#[test]
fn bounds_follow_axes_in_result_order() {
    let x = ndarray::array![[1.0f64, -2.0, 3.0], [4.0, 5.0, -6.0]].into_dyn();
    let nan = [f64::NAN; 3];
    assert_eq!(
        tol_bounds("sum", &x, Some(0), 0, 1.0, &nan).unwrap(),
        vec![5.0, 7.0, 9.0]
    );
    assert_eq!(
        tol_bounds("sum", &x, Some(-1), 0, 1.0, &nan).unwrap(),
        vec![6.0, 15.0]
    );
    assert_eq!(
        tol_bounds("mean", &x, None, 0, 1.0, &nan).unwrap(),
        vec![3.5]
    );
    assert_eq!(
        tol_bounds("prod", &x, Some(1), 0, 1.0, &nan).unwrap(),
        vec![18.0, 360.0]
    );
    assert_eq!(
        tol_bounds("cumsum", &x, Some(0), 0, 1.0, &nan).unwrap(),
        vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
    );
    assert_eq!(
        tol_bounds("cumsum", &x.t().to_owned(), None, 0, 1.0, &nan).unwrap(),
        vec![1.0, 5.0, 7.0, 12.0, 15.0, 21.0]
    );
    assert!(tol_bounds("sum", &x, Some(2), 0, 1.0, &nan).is_err());
}

#[test]
fn manifest_lines_parse() {
    let text = "# comment\n\
        reduce\tr/x\tvar\tf8:in/abc[step:0:-2,bcast:3x4] i4:synth:full:10:3\taxis=-1,keepdims=true,ddof=2\tsample:7:3x4:f8\ttol\n\
        binary\tb/y\tadd\tf4:in/a f4:in/b\t-\terror:Broadcast:shapes (3,) (4,)\terror\n";
    let cases = parse_manifest(text).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].line, 2);
    assert_eq!(
        cases[0].params,
        Params::new().axis(-1).keepdims(true).ddof(2)
    );
    assert_eq!(cases[0].inputs[0].ops, vec!["step:0:-2", "bcast:3x4"]);
    assert_eq!(cases[0].class, Class::Tol);
    assert!(parse_manifest("a\tb\n").is_err());
    let _: AnyArray = ndarray::array![1.0f64].into();
}
