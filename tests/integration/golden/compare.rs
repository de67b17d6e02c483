//! Comparison of a kernel's result with numpy's, by class, and the
//! tolerance bounds of the floating-point accumulations.

use ndarray::{ArrayD, ArrayViewD, Axis};

use super::manifest::{Class, Golden};

/// Relative tolerance of float accumulations, by result precision.
pub fn rel_for<T: Golden>() -> f64 {
    match T::DTYPE.size() {
        4 => 1e-5,
        _ => 1e-12,
    }
}

/// Distance in units in the last place, with both zeros at the same spot.
pub fn ulp_distance<T: Golden>(a: T, b: T) -> u64 {
    (i128::from(a.ordinal()) - i128::from(b.ordinal())).unsigned_abs() as u64
}

/// Whether `got` and `want` are the same value: bitwise, except that any NaN
/// matches any NaN.
pub fn same<T: Golden>(got: T, want: T) -> bool {
    (got.nan() && want.nan()) || bytemuck::bytes_of(&got) == bytemuck::bytes_of(&want)
}

/// Whether one element passes its class; `bound` is used by [`Class::Tol`].
pub fn element_ok<T: Golden>(class: Class, got: T, want: T, bound: f64) -> bool {
    if !T::DTYPE.is_float() {
        return got == want;
    }
    let zeros = got == T::default() && want == T::default();
    match class {
        Class::Exact | Class::Error => same(got, want),
        Class::Exact0 | Class::Sort => same(got, want) || zeros,
        Class::Ulp4 => {
            if !got.finite() || !want.finite() {
                same(got, want)
            } else if zeros {
                got.sign_bit() == want.sign_bit()
            } else {
                ulp_distance(got, want) <= 4
            }
        }
        Class::Tol => {
            if !want.finite() {
                same(got, want)
            } else {
                got.finite() && (got.to_f64() - want.to_f64()).abs() <= bound
            }
        }
    }
}

/// Neumaier-compensated sum: the harness's own rounding stays far below the
/// tolerances it checks.
fn accurate_sum(v: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in v {
        let t = s + x;
        c += if s.abs() >= x.abs() {
            (s - t) + x
        } else {
            (x - t) + s
        };
        s = t;
    }
    s + c
}

/// The reduced lanes of `x`, in the row-major order of the result: one lane
/// of everything for `axis` None (and for a 0-d input, which numpy's ufunc
/// reductions accept with axis 0 or -1).
fn lanes(x: &ArrayD<f64>, axis: Option<i64>) -> Result<Vec<Vec<f64>>, String> {
    match axis {
        Some(a) if x.ndim() > 0 => {
            let ax = normalize_axis(a, x.ndim())?;
            Ok(x.lanes(Axis(ax)).into_iter().map(|l| l.to_vec()).collect())
        }
        _ => Ok(vec![x.iter().copied().collect()]),
    }
}

/// `axis` counted from the front; an error if out of range.
pub fn normalize_axis(axis: i64, ndim: usize) -> Result<usize, String> {
    let n = ndim as i64;
    if axis < -n || axis >= n {
        return Err(format!("axis {axis} out of range for {ndim} dimensions"));
    }
    Ok(if axis < 0 { axis + n } else { axis } as usize)
}

/// The largest admissible |got - want| of each result element, in row-major
/// order, for a float accumulation `kernel` of input `x` (as f64).
///
/// - sum: rel * sum |x_i| (any summation order is within that).
/// - mean: the sum's bound over n.
/// - prod: rel * n * prod |x_i| (each of the n - 1 products rounds once,
///   relative to the running product).
/// - var: numpy computes `sum((x_i - m')^2) / (n - ddof)` with `m'` the
///   computed mean. Let `m` be the exact mean and `e = rel * sum(|x_i|) / n`
///   the error allowed in `m'` (the mean's bound). Since `sum(x_i - m) = 0`,
///   `sum((x_i - m')^2) = sum((x_i - m)^2) + n * (m - m')^2`: using `m'`
///   shifts the result by at most `n * e^2`. The subtractions, squares and
///   the sum round relative to terms `(x_i - m')^2 <= (|x_i - m| + e)^2`,
///   which gives `rel * sum((|x_i - m| + e)^2)`. So the bound is
///   `(rel * sum((|x_i - m| + e)^2) + n * e^2) / (n - ddof)`. It scales with
///   the spread of the data, not its magnitude: a one-pass `E[x^2] -
///   E[x]^2`, whose error is about `eps * sum(x_i^2)`, fails it on data with
///   a large mean (the `offset` cases), as it should.
/// - std: with B the variance bound, |sqrt(a) - sqrt(b)| <= min(sqrt(B), B /
///   sqrt(b)) for |a - b| <= B, plus the rounding of the square root itself
///   (rel * std).
/// - cumsum: element k gets rel * sum_{j <= k} |x_j| along its lane.
///
/// When the result is not finite (n - ddof <= 0, empty means, inf or NaN
/// inputs) the comparison is exact instead, so those bounds do not matter.
pub fn tol_bounds(
    kernel: &str,
    x: &ArrayD<f64>,
    axis: Option<i64>,
    ddof: i64,
    rel: f64,
    want_f64: &[f64],
) -> Result<Vec<f64>, String> {
    if kernel == "cumsum" {
        return Ok(cumsum_bounds(x, axis)?
            .into_iter()
            .map(|s| rel * s)
            .collect());
    }
    let groups = lanes(x, axis)?;
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let n = g.len() as f64;
        let abs_sum = accurate_sum(g.iter().map(|v| v.abs()));
        let b = match kernel {
            "sum" => rel * abs_sum,
            "mean" => rel * abs_sum / n,
            "prod" => rel * n * g.iter().map(|v| v.abs()).product::<f64>(),
            "var" | "std" => {
                let m = accurate_sum(g.iter().copied()) / n;
                let e = rel * abs_sum / n;
                let s2 = accurate_sum(g.iter().map(|v| ((v - m).abs() + e).powi(2)));
                let var_bound = (rel * s2 + n * e * e) / (n - ddof as f64);
                if kernel == "var" {
                    var_bound
                } else {
                    let sd = want_f64.get(i).copied().unwrap_or(f64::NAN);
                    var_bound.sqrt().min(var_bound / sd) + rel * sd
                }
            }
            other => return Err(format!("no tolerance rule for kernel '{other}'")),
        };
        out.push(b);
    }
    Ok(out)
}

/// Running sums of |x| along `axis` (all of `x`, flattened, for None), in
/// the row-major order of the result.
fn cumsum_bounds(x: &ArrayD<f64>, axis: Option<i64>) -> Result<Vec<f64>, String> {
    let running = |v: &mut dyn Iterator<Item = &mut f64>| {
        let mut s = 0.0;
        for e in v {
            s += e.abs();
            *e = s;
        }
    };
    match axis {
        Some(a) if x.ndim() > 0 => {
            let ax = normalize_axis(a, x.ndim())?;
            let mut p = x.as_standard_layout().into_owned();
            for mut lane in p.lanes_mut(Axis(ax)) {
                running(&mut lane.iter_mut());
            }
            Ok(p.iter().copied().collect())
        }
        _ => {
            let mut v: Vec<f64> = x.iter().copied().collect();
            running(&mut v.iter_mut());
            Ok(v)
        }
    }
}

/// One element that failed.
pub struct Mismatch {
    pub flat: usize,
    pub got: String,
    pub want: String,
    pub note: String,
}

/// Compares the elements of `got` (all of them, in row-major order, taking
/// every `step`-th) with `want` by `class`; returns the mismatches.
pub fn compare_values<T: Golden>(
    class: Class,
    got: &ArrayViewD<'_, T>,
    want: &[T],
    step: usize,
    bounds: Option<&[f64]>,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (i, (g, w)) in got.iter().step_by(step).zip(want).enumerate() {
        let flat = i * step;
        let bound = bounds.map_or(0.0, |b| b[flat]);
        if !element_ok(class, *g, *w, bound) {
            let note = match class {
                Class::Ulp4 if g.finite() && w.finite() => {
                    format!("{} ulp", ulp_distance(*g, *w))
                }
                Class::Tol => format!(
                    "|diff| {:e} > bound {bound:e}",
                    (g.to_f64() - w.to_f64()).abs()
                ),
                _ => String::new(),
            };
            out.push(Mismatch {
                flat,
                got: show(*g),
                want: show(*w),
                note,
            });
        }
    }
    out
}

/// A value with its bits when it is a float (so -0.0 and NaN payloads show).
pub fn show<T: Golden>(v: T) -> String {
    if T::DTYPE.is_float() {
        let bits: Vec<String> = bytemuck::bytes_of(&v)
            .iter()
            .rev()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{v:?} (0x{})", bits.concat())
    } else {
        format!("{v}")
    }
}

/// A key whose order is the float order with -0.0 before 0.0 and every
/// NaN last and equal (integers: their value).
fn total_key<T: Golden>(v: T) -> i64 {
    if v.nan() {
        return i64::MAX;
    }
    let b = v.to_f64().to_bits() as i64;
    match T::DTYPE.is_float() {
        true if b < 0 => b ^ i64::MAX,
        true => b,
        false => v.ordinal(),
    }
}

/// Sort-specific checks on the whole result, against the input rather than
/// numpy's result (numpy 2.4's SIMD float sort can turn a 0.0 into -0.0, so
/// its zero signs are not a reference): every lane along `axis` is
/// non-decreasing with NaNs last, and is a permutation of the input's lane
/// (zero signs and NaN count included).
pub fn check_sorted<T: Golden>(
    got: &ArrayViewD<'_, T>,
    input: &ArrayViewD<'_, T>,
    axis: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    if got.shape() != input.shape() {
        return vec![format!(
            "shape {:?} is not the input's {:?}",
            got.shape(),
            input.shape()
        )];
    }
    let lanes = got.lanes(Axis(axis)).into_iter();
    for (i, (lane, inp)) in lanes.zip(input.lanes(Axis(axis))).enumerate() {
        let v: Vec<T> = lane.to_vec();
        let unsorted =
            (1..v.len()).find(|&j| !(v[j].nan() || (!v[j - 1].nan() && v[j - 1] <= v[j])));
        if let Some(j) = unsorted {
            problems.push(format!(
                "lane {i} is not sorted at position {j}: {} then {}",
                show(v[j - 1]),
                show(v[j])
            ));
        }
        let mut a: Vec<i64> = v.iter().map(|x| total_key(*x)).collect();
        let mut b: Vec<i64> = inp.iter().map(|x| total_key(*x)).collect();
        a.sort_unstable();
        b.sort_unstable();
        if a != b {
            let neg0 = |l: &[i64]| l.iter().filter(|k| **k == total_key(-0.0f64)).count();
            problems.push(format!(
                "lane {i} is not a permutation of the input's lane (it has {} -0.0, the input {})",
                neg0(&a),
                neg0(&b)
            ));
        }
        if problems.len() >= 5 {
            break;
        }
    }
    problems
}

/// The row-major multi-index of a flat position.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[i] = flat % d;
            flat /= d;
        }
    }
    idx
}
