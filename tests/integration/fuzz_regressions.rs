//! Inputs found by the fuzz targets in fuzz/ (see fuzz/README.md), run
//! through the same checks as the targets: tests/fuzz_regressions/<target>/*.

use std::fs;
use std::path::{Path, PathBuf};

use ndcache::disk::{read_npy, write_npy_atomic};
use ndcache::Fingerprint;

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    v.sort();
    v
}

/// The `npy_read` target's checks.
#[test]
fn npy_read() {
    let dir = tempfile::tempdir().unwrap();
    for case in inputs("npy_read") {
        let data = fs::read(&case).unwrap();
        let input = dir.path().join("in.npy");
        fs::write(&input, &data).unwrap();
        match read_npy(&input) {
            Ok(a) => {
                assert!(a.nbytes() <= data.len() as u64, "{}", case.display());
                let out = dir.path().join("out.npy");
                write_npy_atomic(&out, &a).unwrap();
                let b = read_npy(&out).unwrap();
                assert!(a.bitwise_eq(&b), "{}", case.display());
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&input.display().to_string()), "{msg}");
            }
        }
    }
}

/// The `fingerprint` target's checks.
#[test]
fn fingerprint() {
    for case in inputs("fingerprint") {
        let Ok(s) = String::from_utf8(fs::read(&case).unwrap()) else {
            continue;
        };
        let well_formed = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        match s.parse::<Fingerprint>() {
            Ok(fp) => {
                assert!(well_formed, "{}", case.display());
                assert_eq!(fp.to_string(), s.to_ascii_lowercase());
            }
            Err(_) => assert!(!well_formed, "{}", case.display()),
        }
    }
}
