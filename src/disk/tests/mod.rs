//! Tests of the disk tier. numpy (through `python3`) is the oracle where it
//! is available; tests that need it print a message and skip otherwise.

mod npy_files;
mod small;
mod tier;
mod tier_maint;

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{ArrayD, IxDyn};

use crate::value::AnyArray;

/// Runs a Python script with `args`; `None` (after printing why) when
/// python3 or numpy is missing. Panics if the script itself fails.
pub(super) fn python(script: &str, args: &[&Path]) -> Option<String> {
    let probe = Command::new("python3")
        .args(["-c", "import numpy"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping the numpy part of this test: python3 with numpy is not available");
        return None;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// Whether Python's `xxhash` package is importable.
pub(super) fn have_python_xxhash() -> bool {
    Command::new("python3")
        .args(["-c", "import xxhash"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `arange(n)`-like arrays of each dtype, with values chosen so that every
/// element is distinct and exact.
pub(super) fn sample(dtype: crate::DType, shape: &[usize]) -> AnyArray {
    let f = |i: usize| i as f64 * 0.5 - 3.0;
    let n: usize = shape.iter().product();
    match dtype {
        crate::DType::F32 => AnyArray::from(
            ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| f(i) as f32).collect()).unwrap(),
        ),
        crate::DType::F64 => {
            AnyArray::from(ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(f).collect()).unwrap())
        }
        crate::DType::I32 => AnyArray::from(
            ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| i as i32 - 7).collect()).unwrap(),
        ),
        crate::DType::I64 => AnyArray::from(
            ArrayD::from_shape_vec(
                IxDyn(shape),
                (0..n).map(|i| (i as i64 - 7) * (1 << 40)).collect(),
            )
            .unwrap(),
        ),
    }
}

/// The payloads and sidecars under `dir`, recursively, with their sizes.
pub(super) fn entry_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    files_under(dir)
        .into_iter()
        .filter(|(p, _)| {
            let ext = p.extension().and_then(|e| e.to_str());
            matches!(ext, Some("npy" | "meta"))
        })
        .collect()
}

/// Every file under `dir`, recursively, with its size.
pub(super) fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push((e.path(), m.len()));
        }
    }
    out.sort();
    out
}
