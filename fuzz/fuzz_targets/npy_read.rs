//! `ndcache::disk::read_npy` on arbitrary bytes (the same header and data
//! parsing as the disk tier's hit path, `npy::from_file` + `read_array`).
//!
//! Beyond "no panic": an error names the file; a header announcing more
//! data than the file holds (say a 2^60-element shape) is an error before
//! any allocation (run with `-malloc_limit_mb`, see fuzz/README.md); what
//! reads has no more data bytes than the input, and round-trips: written
//! back with `write_npy_atomic` and read again, it is bitwise the same.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ndcache::disk::{read_npy, write_npy_atomic};

/// A private directory, on tmpfs where there is one.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("ndcache-fuzz-npy-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let input = dir().join("in.npy");
    std::fs::write(&input, data).unwrap();
    match read_npy(&input) {
        Ok(a) => {
            assert!(a.nbytes() <= data.len() as u64, "{a:?}");
            let out = dir().join("out.npy");
            write_npy_atomic(&out, &a).unwrap();
            let b = read_npy(&out).unwrap();
            assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()));
            assert!(a.bitwise_eq(&b), "{a:?} != {b:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&input.display().to_string()), "{msg}");
        }
    }
});
