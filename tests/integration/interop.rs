//! numpy reads the disk tier's entries: every dtype, 0-d to 2-d and empty,
//! with `np.load` plain and memory-mapped, never unpickling.
//!
//! Protocol: Rust fills a cache directory; Python loads every `.npy` entry
//! both ways and prints, per file, its dtype, shape and raw C-order bytes in
//! hex (plain load, then memory-mapped); Rust matches each of its results to
//! exactly one printed record. numpy is the oracle of the format; the bytes
//! are compared bit for bit (NaN payloads and -0.0 included).
//!
//! Without python3 and numpy the test prints "skipping: numpy not
//! available" and passes, unless `NDCACHE_REQUIRE_NUMPY` is set (CI), in
//! which case it fails.

use std::path::Path;
use std::process::Command;

use ndarray::{ArrayD, IxDyn};
use ndcache::{AnyArray, AnyView, ArrayCache, AsArg, DType, Params};

const LOAD_ALL: &str = r#"
import pathlib, sys
import numpy as np

root = pathlib.Path(sys.argv[1])
for p in sorted(root.glob("*.npy")):
    a = np.load(p, allow_pickle=False)
    m = np.load(p, mmap_mode="r", allow_pickle=False)
    assert isinstance(a, np.ndarray) and not isinstance(a, np.memmap), p
    assert isinstance(m, np.memmap), (p, type(m))
    fields = [p.stem]
    for x in (a, m):
        fields += [
            x.dtype.str,
            ",".join(str(d) for d in x.shape),
            np.ascontiguousarray(x).tobytes().hex(),
        ]
    print("|".join(fields))
"#;

/// Whether `python3 -c 'import numpy'` works; panics instead of skipping
/// when `NDCACHE_REQUIRE_NUMPY` is set.
fn numpy_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var_os("NDCACHE_REQUIRE_NUMPY").is_some_and(|v| !v.is_empty());
        assert!(
            !required,
            "NDCACHE_REQUIRE_NUMPY is set but python3 with numpy is not available"
        );
        eprintln!("skipping: numpy not available");
    }
    ok
}

/// The element bytes of `a` in C order, little-endian (what numpy's
/// `tobytes()` gives for a `<` dtype).
fn le_bytes(a: &AnyArray) -> Vec<u8> {
    match a {
        AnyArray::F32(x) => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        AnyArray::F64(x) => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        AnyArray::I32(x) => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        AnyArray::I64(x) => x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => unreachable!("a dtype these tests do not generate"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Distinct values for case `case` of `dtype`: tricky floats (signed zero,
/// infinities, NaN, a subnormal) and integers near the limits.
fn input(dtype: DType, shape: &[usize], case: usize) -> AnyArray {
    let n: usize = shape.iter().product();
    let sh = IxDyn(shape);
    let f = |i: usize| -> f64 {
        match i % 7 {
            0 => case as f64 + 0.25,
            1 => -0.0,
            2 => f64::INFINITY,
            3 => f64::NAN,
            4 => 1e-310,
            5 => -(i as f64) * 1.5e300,
            _ => (i as f64).sqrt() - case as f64,
        }
    };
    let int = |i: usize| -> i64 {
        let base = case as i64 * 1000 + i as i64;
        if i % 3 == 1 {
            -base
        } else {
            base
        }
    };
    fn build<T>(shape: IxDyn, n: usize, g: impl Fn(usize) -> T) -> ArrayD<T> {
        ArrayD::from_shape_vec(shape, (0..n).map(g).collect()).unwrap()
    }
    match dtype {
        DType::F32 => AnyArray::from(build(sh, n, |i| f(i) as f32)),
        DType::F64 => AnyArray::from(build(sh, n, f)),
        DType::I32 => AnyArray::from(build(sh, n, |i| match i {
            2 => i32::MAX,
            _ => int(i) as i32,
        })),
        DType::I64 => AnyArray::from(build(sh, n, |i| match i {
            2 => i64::MIN + 1,
            _ => int(i) * 3_000_000_000,
        })),
        d => unreachable!("no test arrays of dtype {d}"),
    }
}

#[test]
fn numpy_loads_every_entry_plain_and_memory_mapped() {
    if !numpy_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = ArrayCache::builder().disk(dir.path()).build().unwrap();
    let shapes: [&[usize]; 6] = [&[], &[7], &[3, 4], &[0], &[2, 0], &[4, 3]];
    let mut results = Vec::new();
    for (d, &dtype) in DType::ALL.iter().enumerate() {
        for (s, &shape) in shapes.iter().enumerate() {
            let x = input(dtype, shape, d * 10 + s);
            let r = if shape == [4, 3] {
                // A transposed (Fortran-order) input: the result is still
                // stored in C order.
                let t = match &x {
                    AnyArray::F32(a) => AnyView::new(a.t()),
                    AnyArray::F64(a) => AnyView::new(a.t()),
                    AnyArray::I32(a) => AnyView::new(a.t()),
                    AnyArray::I64(a) => AnyView::new(a.t()),
                    _ => unreachable!("a dtype these tests do not generate"),
                };
                cache.call("negative", &[t.arg()], &Params::new())
            } else {
                cache.call("negative", &[x.arg()], &Params::new())
            };
            results.push(r.unwrap().into_array());
        }
    }
    // Reductions to 0-d of every dtype.
    for (d, &dtype) in DType::ALL.iter().enumerate() {
        let x = input(dtype, &[5], 100 + d);
        let r = cache.call("max", &[x.arg()], &Params::new()).unwrap();
        assert_eq!(r.shape(), &[] as &[usize]);
        results.push(r.into_array());
    }
    cache.flush();
    assert_eq!(cache.info().disk.unwrap().writes, results.len() as u64);

    let expected: Vec<(String, String, String)> = results
        .iter()
        .map(|a| {
            let shape: Vec<String> = a.shape().iter().map(ToString::to_string).collect();
            (
                a.dtype().descr().to_owned(),
                shape.join(","),
                hex(&le_bytes(a)),
            )
        })
        .collect();
    for (i, e) in expected.iter().enumerate() {
        assert!(
            !expected[..i].contains(e),
            "case {i} is not distinguishable: {e:?}"
        );
    }

    // Small results are rows of the store: export writes each entry as the
    // .npy file it stands for (large ones are such files already).
    let disk = cache.disk().unwrap();
    let out = tempfile::tempdir().unwrap();
    for e in disk.entries().unwrap() {
        let file = out.path().join(format!("{}.npy", e.meta.key));
        assert!(disk.export(e.meta.key, &file).unwrap().is_some());
    }
    let records = load_with_numpy(out.path());
    assert_eq!(records.len(), results.len(), "one .npy file per result");
    for (i, e) in expected.iter().enumerate() {
        let found: Vec<&Vec<String>> = records
            .iter()
            .filter(|r| (&r[1], &r[2], &r[3]) == (&e.0, &e.1, &e.2))
            .collect();
        assert_eq!(found.len(), 1, "result {i} {e:?} in {records:#?}");
        let r = found[0];
        assert_eq!(
            (&r[4], &r[5], &r[6]),
            (&e.0, &e.1, &e.2),
            "result {i}: the memory-mapped load differs"
        );
        // The record's file is the entry the tier has under its key.
        let key = r[0].parse().unwrap();
        assert!(disk.get(key).unwrap().0.bitwise_eq(&results[i]));
    }
}

/// Runs [`LOAD_ALL`] on the cache directory; one record per `.npy` file.
fn load_with_numpy(dir: &Path) -> Vec<Vec<String>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(LOAD_ALL)
        .arg(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "numpy could not load an entry:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect::<Vec<_>>())
        .inspect(|r| assert_eq!(r.len(), 7, "{r:?}"))
        .collect()
}
