//! `read_npy` / `write_npy_atomic` against numpy and hand-built files.

use std::fs;
use std::path::Path;

use ndarray::{s, Array2, Array3, ShapeBuilder};

use super::{python, sample};
use crate::disk::npy::{self, header_bytes};
use crate::disk::{read_npy, write_npy_atomic};
use crate::{AnyArray, DType, Error};

/// A `.npy` file from a header text and raw data bytes (`version` 1, 2 or 3).
fn npy_file(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn read_bytes(dir: &Path, name: &str, bytes: &[u8]) -> crate::Result<AnyArray> {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    read_npy(&path)
}

fn format_reason(e: Error) -> String {
    match e {
        Error::Format { reason, .. } => reason,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn hand_built_byte_orders_and_memory_orders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let want_f = AnyArray::from(ndarray::array![[1.5f64, -2.0, 3.25], [4.0, 5.0, -6.5]]);
    let want_i = AnyArray::from(ndarray::array![[1i32, 2, 3], [4, 5, 6]]);
    let want_l = AnyArray::from(ndarray::array![[1i64, -2, 3], [4, 5, 1 << 40]]);

    // Big-endian, C order.
    let be: Vec<u8> = [1.5f64, -2.0, 3.25, 4.0, 5.0, -6.5]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let h = "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }\n";
    assert!(read_bytes(d, "be.npy", &npy_file(1, h, &be))
        .unwrap()
        .bitwise_eq(&want_f));

    // Little-endian, Fortran order: columns are contiguous.
    let f: Vec<u8> = [1i32, 4, 2, 5, 3, 6]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let h = "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }\n";
    let a = read_bytes(d, "f.npy", &npy_file(1, h, &f)).unwrap();
    assert!(a.bitwise_eq(&want_i));
    // Read without a copy: the array keeps the file's layout.
    assert!(a.typed::<i32>().unwrap().t().is_standard_layout());

    // Big-endian and Fortran order, version 2.0, keys reordered, double quotes.
    let bf: Vec<u8> = [1i64, 4, -2, 5, 3, 1 << 40]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let h = r#"{"shape": (2,3), "fortran_order": True, "descr": ">i8"}"#;
    assert!(read_bytes(d, "bf.npy", &npy_file(2, h, &bf))
        .unwrap()
        .bitwise_eq(&want_l));

    // Version 3.0 (UTF-8 header), '=' and '|' byte-order marks, no prefix.
    let le: Vec<u8> = [1.5f64, -2.0, 3.25, 4.0, 5.0, -6.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    for descr in ["=f8", "|f8", "f8", "<f8"] {
        let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (2, 3)}}   \n");
        let a = read_bytes(d, "v3.npy", &npy_file(3, &h, &le)).unwrap();
        assert!(a.bitwise_eq(&want_f), "{descr}");
    }

    // 0-d and empty arrays.
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n";
    let a = read_bytes(d, "0d.npy", &npy_file(1, h, &2.5f32.to_le_bytes())).unwrap();
    assert!(a.bitwise_eq(&AnyArray::from(ndarray::arr0(2.5f32))));
    let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (0, 3), }\n";
    let a = read_bytes(d, "empty.npy", &npy_file(1, h, &[])).unwrap();
    assert_eq!((a.dtype(), a.shape()), (DType::I64, &[0usize, 3][..]));
    let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 0), }";
    let e = read_bytes(d, "empty2.npy", &npy_file(1, h, &[])).unwrap_err();
    assert!(format_reason(e).ends_with("is too large for this machine"));
}

#[test]
fn round_trip_any_layout_written_in_c_order() {
    let dir = tempfile::tempdir().unwrap();
    let c = Array3::from_shape_fn((3, 4, 5), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
    let mut f = Array3::<f32>::zeros((3, 4, 5).f());
    f.assign(&c);
    let cases = [
        AnyArray::from(c.clone()),
        AnyArray::from(f),
        AnyArray::from_view(&c.slice(s![..;2, ..;-1, 1..])),
        AnyArray::from(c.t().to_owned()),
        sample(DType::I64, &[]),
        sample(DType::I32, &[0, 4]),
        sample(DType::F64, &[7]),
    ];
    for (i, a) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.npy"));
        write_npy_atomic(&path, a).unwrap();
        let back = read_npy(&path).unwrap();
        assert!(back.bitwise_eq(a), "case {i}");
        let file = npy::open(&path).unwrap();
        assert!(!file.header.fortran_order && !file.header.big_endian);
        assert_eq!(file.prefix.len() % 64, 0, "data is 64-byte aligned");
        assert_eq!(file.prefix, header_bytes(a.dtype(), a.shape()));
    }
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn big_headers_use_version_2() {
    let shape = vec![1usize; 30000];
    let h = header_bytes(DType::F64, &shape);
    assert_eq!(&h[6..8], &[2, 0]);
    assert_eq!(h.len() % 64, 0);
    // Readers refuse more than numpy's 64 dimensions.
    let e = npy::parse_header(std::str::from_utf8(&h[12..]).unwrap()).unwrap_err();
    assert!(e.contains("at most 64"), "{e}");
    let shape64 = vec![1usize; 64];
    let h = header_bytes(DType::F64, &shape64);
    assert_eq!(
        npy::parse_header(std::str::from_utf8(&h[10..]).unwrap())
            .unwrap()
            .shape,
        shape64
    );
    let small = header_bytes(DType::F64, &[3, 4]);
    assert_eq!(&small[6..8], &[1, 0]);
    assert_eq!(
        std::str::from_utf8(&small[10..]).unwrap().trim_end(),
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4)}"
    );
}

#[test]
fn unsupported_dtypes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for descr in ["<c16", "|b1", "|O", "<f2", "<u4", "|u1", "<M8[s]", ">c8"] {
        let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (3,), }}\n");
        let path = dir.path().join("bad.npy");
        fs::write(&path, npy_file(1, &h, &[0u8; 48])).unwrap();
        let e = read_npy(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: unsupported dtype '{descr}'; ndcache supports float32, float64, int32, int64",
                path.display()
            )
        );
    }
    let h = "{'descr': [('a', '<f8'), ('b', '<i4')], 'fortran_order': False, 'shape': (3,), }";
    let e = read_bytes(dir.path(), "s.npy", &npy_file(1, h, &[0u8; 36])).unwrap_err();
    assert!(format_reason(e).starts_with("unsupported dtype '[('a', '<f8'), ('b', '<i4')]'"),);
}

#[test]
fn truncated_and_garbage_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("good.npy");
    write_npy_atomic(&path, &sample(DType::F64, &[4, 5])).unwrap();
    let good = fs::read(&path).unwrap();
    for cut in [0, 5, 9, 40, 127, 128, 129, good.len() - 1] {
        let e = read_bytes(d, "cut.npy", &good[..cut]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&d.join("cut.npy").display().to_string()),
            "{msg}"
        );
        assert!(
            format_reason(e).starts_with("truncated .npy file"),
            "cut at {cut}: {msg}"
        );
    }
    // Trailing bytes are ignored, as numpy does (np.save twice into one file).
    let mut twice = good.clone();
    twice.extend_from_slice(&good);
    assert!(read_bytes(d, "twice.npy", &twice).is_ok());

    let garbage: Vec<u8> = (0..500u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let reason = format_reason(read_bytes(d, "g.npy", &garbage).unwrap_err());
    assert!(reason.starts_with("not a .npy file"), "{reason}");
    let mut v4 = good.clone();
    v4[6] = 4;
    let reason = format_reason(read_bytes(d, "v4.npy", &v4).unwrap_err());
    assert_eq!(reason, "unsupported .npy format version 4.0");

    let data = [0u8; 64];
    for (header, why) in [
        ("{'descr': '<f8', 'fortran_order': False}", "no 'shape'"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (8,), 'x': 1}", "unexpected key"),
        // `(8)` is the integer 8 in Python; ndarray-npy's literal parser has no
        // parenthesized expressions, so it is a syntax error here.
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (8)}", "not a Python dict literal"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': 8}", "not a tuple"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': [8]}", "invalid 'shape'"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (-8,)}", "invalid shape"),
        ("{'descr': '<f8', 'fortran_order': 0, 'shape': (8,)}", "invalid 'fortran_order'"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (8,)} x", "malformed .npy header"),
        ("['descr', '<f8']", "not a dict"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (8,)", "malformed .npy header"),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}",
            "too large",
        ),
        // A huge shape with a small file fails before allocating anything.
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,)}", "truncated"),
    ] {
        let reason = format_reason(read_bytes(d, "h.npy", &npy_file(1, header, &data)).unwrap_err());
        assert!(reason.contains(why), "{header}: {reason}");
    }
}

#[test]
fn duplicate_header_keys_keep_the_last_as_numpy_does() {
    // numpy evaluates the header as a Python dict literal, where a repeated
    // key keeps its last value; ndarray-npy does the same.
    let dir = tempfile::tempdir().unwrap();
    let h = "{'descr': '<i8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}";
    let a = read_bytes(
        dir.path(),
        "dup.npy",
        &npy_file(1, h, &2.5f64.to_le_bytes()),
    )
    .unwrap();
    assert!(a.bitwise_eq(&AnyArray::from(ndarray::arr1(&[2.5f64]))));
}

#[test]
fn failed_writes_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample(DType::F32, &[10]);
    let e = write_npy_atomic(dir.path().join("no/such/dir/a.npy"), &a).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    // The target is a non-empty directory: the rename fails after the write.
    let target = dir.path().join("taken");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("x"), b"x").unwrap();
    let e = write_npy_atomic(&target, &a).unwrap_err();
    assert!(e.to_string().contains("rename"), "{e}");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["taken".to_string()]);
}

const NUMPY_WRITES: &str = r#"
import sys, numpy as np
d = sys.argv[1]
def sample(code, shape):
    i = np.arange(int(np.prod(shape)))
    v = i * 0.5 - 3.0 if code[0] == 'f' else (i - 7 if code == 'i4' else (i - 7) * 2**40)
    return v.astype('<' + code).reshape(shape)
shapes = {'s0': (), 'e03': (0, 3), 'm234': (2, 3, 4), 'v5': (5,)}
for code in ['f4', 'f8', 'i4', 'i8']:
    for order, tag in [('<', 'le'), ('>', 'be')]:
        for name, shape in shapes.items():
            a = sample(code, shape).astype(order + code)
            np.save(f'{d}/{code}_{tag}_{name}_C.npy', a)
            if len(shape) > 1:
                np.save(f'{d}/{code}_{tag}_{name}_F.npy', np.asfortranarray(a))
for v in [(1, 0), (2, 0), (3, 0)]:
    with open(f'{d}/f8_le_m234_v{v[0]}.npy', 'wb') as f:
        np.lib.format.write_array(f, sample('f8', (2, 3, 4)), version=v)
np.save(f'{d}/bad_c16.npy', np.zeros(3, dtype='<c16'))
np.save(f'{d}/bad_b1.npy', np.zeros(3, dtype=bool))
np.save(f'{d}/bad_O.npy', np.array([1, 'a', None], dtype=object), allow_pickle=True)
np.save(f'{d}/bad_struct.npy', np.zeros(3, dtype=[('a', '<f8'), ('b', '<i4')]))
np.save(f'{d}/bad_f2.npy', np.zeros(3, dtype='<f2'))
np.save(f'{d}/bad_u4.npy', np.zeros(3, dtype='<u4'))
np.save(f'{d}/bad_M8.npy', np.zeros(3, dtype='datetime64[s]'))
"#;

#[test]
fn reads_what_numpy_writes() {
    let dir = tempfile::tempdir().unwrap();
    if python(NUMPY_WRITES, &[dir.path()]).is_none() {
        return;
    }
    let mut checked = 0;
    let mut fortran = 0;
    for entry in fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let parts: Vec<&str> = name.split('_').collect();
        if parts[0] == "bad" {
            let e = read_npy(&path).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            assert!(msg.contains("unsupported dtype '"), "{msg}");
            assert!(
                msg.ends_with("ndcache supports float32, float64, int32, int64"),
                "{msg}"
            );
            checked += 1;
            continue;
        }
        let dtype = DType::from_descr(parts[0]).unwrap();
        let shape: Vec<usize> = match parts[2] {
            "s0" => vec![],
            "e03" => vec![0, 3],
            "m234" => vec![2, 3, 4],
            "v5" => vec![5],
            other => panic!("unexpected file {other}"),
        };
        let header = npy::open(&path).unwrap().header;
        assert_eq!(header.big_endian, parts[1] == "be", "{name}");
        if parts[3] == "F" && shape == [2, 3, 4] {
            assert!(header.fortran_order, "{name}");
            fortran += 1;
        }
        let a = read_npy(&path).unwrap();
        assert!(a.bitwise_eq(&sample(dtype, &shape)), "{name}: {a:?}");
        checked += 1;
    }
    assert_eq!(checked, 4 * 2 * (4 + 2) + 3 + 7);
    assert_eq!(fortran, 8);
}

const NUMPY_READS: &str = r#"
import sys, numpy as np
for p in sys.argv[1:]:
    with open(p, 'rb') as f:
        assert np.lib.format.read_magic(f) == (1, 0)
        np.lib.format.read_array_header_1_0(f)
        offset = f.tell()
    a = np.load(p, allow_pickle=False)
    assert a.flags.c_contiguous
    with open(p + '.raw', 'wb') as f:
        f.write(a.astype(a.dtype.newbyteorder('<')).tobytes())
    print(a.dtype.str, list(a.shape), offset % 64)
"#;

#[test]
fn numpy_reads_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let c = Array2::from_shape_fn((6, 7), |(i, j)| (i * 7 + j) as i32 - 20);
    let cases = [
        sample(DType::F32, &[2, 3, 4]),
        sample(DType::F64, &[]),
        sample(DType::I32, &[0, 5]),
        sample(DType::I64, &[9]),
        AnyArray::from(c.t().to_owned()),
        AnyArray::from_view(&c.slice(s![1..;2, ..;-3])),
    ];
    let paths: Vec<_> = (0..cases.len())
        .map(|i| dir.path().join(format!("{i}.npy")))
        .collect();
    for (p, a) in paths.iter().zip(&cases) {
        write_npy_atomic(p, a).unwrap();
    }
    let args: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let Some(out) = python(NUMPY_READS, &args) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for ((line, a), p) in lines.iter().zip(&cases).zip(&paths) {
        let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            *line,
            format!("{} [{}] 0", a.dtype().descr(), shape.join(", "))
        );
        let raw = fs::read(p.with_extension("npy.raw")).unwrap();
        let want: Vec<u8> = crate::dispatch_array!(a, v => v
            .iter()
            .flat_map(|x| bytemuck::bytes_of(&crate::Element::to_le(*x)).to_vec())
            .collect());
        assert_eq!(raw, want, "{line}");
    }
}

/// Reads `bytes` as a file; the error's reason. The crate forbids unsafe
/// code, so allocations are not counted here: a guard that failed would
/// make the reader ask for 2^56 to 2^63 bytes, which aborts the test
/// process (or panics on capacity overflow) rather than returning an error.
/// The fuzz targets run with `-malloc_limit_mb` for the same property.
fn refused(dir: &Path, bytes: &[u8]) -> String {
    let path = dir.join("guard.npy");
    fs::write(&path, bytes).unwrap();
    let e = read_npy(&path).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    format_reason(e)
}

#[test]
fn huge_shapes_are_errors_not_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = [0u8; 64];
    for (shape, why) in [
        // 2^60 elements, as one axis and as two; 2^56 (2^59 bytes, which
        // calloc cannot give: an abort if it were asked).
        ("(72057594037927936,)", "truncated .npy file: the header announces 576460752303423488 data bytes, the file holds 64"),
        ("(1152921504606846976,)", "truncated .npy file: the header announces 9223372036854775808 data bytes, the file holds 64"),
        ("(1073741824, 1073741824)", "truncated .npy file: the header announces 9223372036854775808 data bytes, the file holds 64"),
        // 2^60 elements of 8 bytes overflow u64.
        ("(1152921504606846976, 16)", "is too large"),
        // No data at all, but the other axes overflow isize: ndarray-npy
        // 0.10 would panic building the array (found reading its source).
        ("(0, 4611686018427387904, 4)", "is too large for this machine"),
        ("(4611686018427387904, 0, 4)", "is too large for this machine"),
    ] {
        let h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}\n");
        let reason = refused(d, &npy_file(1, &h, &data));
        assert!(reason.contains(why), "{shape}: {reason}");
    }
    // A zero-length axis with others that fit is a valid empty array.
    let h = "{'descr': '<f8', 'fortran_order': True, 'shape': (0, 1099511627776), }\n";
    let a = read_bytes(d, "empty.npy", &npy_file(1, h, &[])).unwrap();
    assert_eq!(a.shape(), &[0, 1 << 40]);
}

#[test]
fn huge_and_deep_headers_are_errors_not_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A version 2.0 header length of 4 GiB - 1.
    let mut v2 = b"\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr'".to_vec();
    let reason = refused(d, &v2);
    assert_eq!(
        reason,
        "the .npy header is 4294967295 bytes long (the limit is 10000)"
    );
    // Under the limit, but longer than the file.
    v2[8..12].copy_from_slice(&5_000u32.to_le_bytes());
    let reason = refused(d, &v2);
    assert_eq!(reason, "truncated .npy file (it ends inside the header)");
    // Brackets nested deeper than any dtype: refused before parsing.
    let deep = format!(
        "{{'descr': {}'<f8'{}, 'fortran_order': False, 'shape': (1,), }}\n",
        "[".repeat(2_000),
        "]".repeat(2_000)
    );
    let reason = refused(d, &npy_file(2, &deep, &[0; 8]));
    assert_eq!(
        reason,
        "malformed .npy header: brackets nested 2001 deep (the limit is 4)"
    );
    // Quotes do not hide brackets from the count (an escaped quote would
    // otherwise make the rest of the header look like a string).
    let sneaky = format!(
        "{{'descr': '\\'', 'shape': {}1{}, 'fortran_order': False}}\n",
        "(".repeat(1000),
        ",)".repeat(1000)
    );
    let reason = refused(d, &npy_file(1, &sneaky, &[0; 8]));
    assert!(reason.contains("brackets nested 1001 deep"), "{reason}");
    // Found by fuzzing (tests/fuzz_regressions/npy_read/timeout-f0bf...):
    // unclosed brackets made the literal parser backtrack exponentially
    // (15 of them took minutes). Five levels are refused, at once.
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,{{{13)J }";
    let start = std::time::Instant::now();
    let reason = refused(d, &npy_file(1, h, &[0; 16]));
    assert!(
        reason.contains("brackets nested 5 deep (the limit is 4)"),
        "{reason}"
    );
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,{{13)J }";
    let reason = refused(d, &npy_file(1, h, &[0; 16]));
    assert!(reason.contains("not a Python dict literal"), "{reason}");
    assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
}
