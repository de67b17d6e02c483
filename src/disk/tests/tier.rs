//! The tier: round trips, restarts, corruption, read-only directories, locks.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use ndarray::{s, Array2};

use super::{entry_files, files_under, have_python_xxhash, python, sample};
use crate::disk::{DiskTier, EntryInfo};
use crate::{AnyArray, DType, Fingerprint};

fn key(i: u128) -> Fingerprint {
    crate::call_key("test", "1", &i.to_le_bytes(), &[])
}

fn info(kernel: &str) -> EntryInfo {
    EntryInfo::new(kernel, "3", Duration::from_micros(1234))
}

/// A tier that stores every result in files (these tests are about them;
/// small entries: see `small.rs`).
fn tier(dir: &Path, background: bool) -> DiskTier {
    DiskTier::builder(dir)
        .background_writes(background)
        .small_max_bytes(0)
        .build()
        .unwrap()
}

fn cases() -> Vec<AnyArray> {
    let c = Array2::from_shape_fn((50, 40), |(i, j)| (i * 40 + j) as f64 - 0.25);
    let mut v = Vec::new();
    for d in DType::ALL {
        v.push(sample(d, &[]));
        v.push(sample(d, &[0]));
        v.push(sample(d, &[3, 0, 2]));
        v.push(sample(d, &[17]));
        v.push(sample(d, &[4, 5, 6]));
    }
    v.push(sample(DType::F32, &[2_000_003])); // 8 MB, not a multiple of anything
    v.push(AnyArray::from(c.t().to_owned()));
    v.push(AnyArray::from_view(&c.slice(s![..;3, ..;-2])));
    v
}

#[test]
fn round_trip_every_dtype_and_restart() {
    for background in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let arrays = cases();
        {
            let t = tier(dir.path(), background);
            for (i, a) in arrays.iter().enumerate() {
                assert!(t.get(key(i as u128)).is_none());
                t.put(key(i as u128), a, info(&format!("k{i}")), None);
            }
            t.flush();
            for (i, a) in arrays.iter().enumerate() {
                let (back, meta) = t.get(key(i as u128)).expect("hit");
                assert!(back.bitwise_eq(a), "case {i}");
                assert_eq!(meta.key, key(i as u128));
                assert_eq!(meta.kernel, format!("k{i}"));
                assert_eq!(meta.version, "3");
                assert_eq!((meta.dtype, meta.shape.as_slice()), (a.dtype(), a.shape()));
                assert_eq!(meta.compute_time, Duration::from_micros(1234));
                let age = SystemTime::now().duration_since(meta.created).unwrap();
                assert!(age < Duration::from_secs(600));
            }
            let st = t.stats();
            let n = arrays.len() as u64;
            assert_eq!((st.entries, st.writes, st.hits, st.misses), (n, n, n, n));
            assert_eq!((st.corrupt, st.write_failures), (0, 0));
            let on_disk: u64 = entry_files(&dir.path().join("v2"))
                .iter()
                .map(|f| crate::disk::layout::on_disk(f.1, t.inner.block))
                .sum();
            assert_eq!(st.bytes, on_disk);
        }
        // A new tier on the same directory (a restart) sees every entry.
        let t = tier(dir.path(), background);
        assert_eq!(t.stats().entries, arrays.len() as u64);
        for (i, a) in arrays.iter().enumerate() {
            assert!(t.get(key(i as u128)).unwrap().0.bitwise_eq(a));
        }
        assert_eq!(t.stats().hits, arrays.len() as u64);
    }
}

#[test]
fn entries_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let t = tier(dir.path(), false);
    t.put(key(1), &sample(DType::I32, &[3]), info("first"), None);
    t.put(key(1), &sample(DType::F64, &[9]), info("second"), None);
    let (a, meta) = t.get(key(1)).unwrap();
    assert!(a.bitwise_eq(&sample(DType::I32, &[3])));
    assert_eq!(meta.kernel, "first");
    assert_eq!(t.stats().writes, 1);
}

#[test]
fn numpy_loads_entries_and_checksums_match_python_xxhash() {
    let dir = tempfile::tempdir().unwrap();
    let t = tier(dir.path(), true);
    let arrays = [sample(DType::F64, &[3, 4]), sample(DType::I32, &[])];
    for (i, a) in arrays.iter().enumerate() {
        t.put(key(i as u128), a, info("x"), None);
    }
    t.flush();
    let paths: Vec<_> = (0..arrays.len())
        .map(|i| t.inner.layout.payload(key(i as u128)))
        .collect();
    let script = if have_python_xxhash() {
        "import sys, numpy as np, xxhash\nfor p in sys.argv[1:]:\n    a = np.load(p)\n    \
         print(a.dtype.str, a.tolist(), xxhash.xxh3_128_hexdigest(open(p, 'rb').read()))"
    } else {
        eprintln!("python xxhash is not installed: checking np.load only");
        "import sys, numpy as np\nfor p in sys.argv[1:]:\n    a = np.load(p)\n    \
         print(a.dtype.str, a.tolist(), 'none')"
    };
    let args: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let Some(out) = python(script, &args) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    let metas: Vec<_> = (0..2).map(|i| t.get(key(i)).unwrap().1).collect();
    let sum = |i: usize| match have_python_xxhash() {
        true => format!("{:032x}", metas[i].checksum),
        false => "none".into(),
    };
    assert_eq!(
        lines[0],
        format!(
            "<f8 [[-3.0, -2.5, -2.0, -1.5], [-1.0, -0.5, 0.0, 0.5], [1.0, 1.5, 2.0, 2.5]] {}",
            sum(0)
        )
    );
    assert_eq!(lines[1], format!("<i4 -7 {}", sum(1)));
}

/// Damages the entry of `k` with `damage`, then checks that `verify` reports
/// it and that `get` misses, counts it and removes it.
fn check_damage(name: &str, damage: impl FnOnce(&Path, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let t = tier(dir.path(), true);
    let (k, other) = (key(7), key(8));
    t.put(k, &sample(DType::F64, &[1000]), info("exp"), None);
    t.put(other, &sample(DType::F64, &[1000]), info("exp"), None);
    t.flush();
    let (payload, sidecar) = (t.inner.layout.payload(k), t.inner.layout.sidecar(k));
    damage(&payload, &sidecar);

    let report = t.verify(false, |_| {}).unwrap();
    assert_eq!(report.ok, 1, "{name}: {report:?}");
    assert_eq!(report.corrupt.len(), 1, "{name}: {report:?}");
    assert_eq!(report.corrupt[0].key, k);
    assert!(!report.corrupt[0].removed);

    assert!(t.get(k).is_none(), "{name}");
    let st = t.stats();
    assert_eq!((st.corrupt, st.misses, st.hits), (1, 1, 0), "{name}");
    assert!(
        !payload.exists() && !sidecar.exists(),
        "{name}: not removed"
    );
    assert!(t.get(other).is_some(), "{name}: the other entry is fine");
    let report = t.verify(true, |_| {}).unwrap();
    assert_eq!((report.ok, report.corrupt.len()), (1, 0), "{name}");
    // And the key can be computed and stored again.
    t.put(k, &sample(DType::F64, &[1000]), info("exp"), None);
    t.flush();
    assert!(t.get(k).is_some(), "{name}");
}

fn backdate(path: &Path, by: Duration) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn corrupt_entries_are_misses_counted_and_removed() {
    check_damage("flipped data byte", |p, _| {
        let mut b = fs::read(p).unwrap();
        let n = b.len();
        b[n - 100] ^= 0x10;
        fs::write(p, b).unwrap();
    });
    check_damage("flipped header byte", |p, _| {
        let mut b = fs::read(p).unwrap();
        assert_eq!(b[100], b' ');
        b[100] = b'\t'; // still a valid header: only the checksum can tell
        fs::write(p, b).unwrap();
    });
    check_damage("truncated payload", |p, _| {
        let b = fs::read(p).unwrap();
        fs::write(p, &b[..b.len() - 8]).unwrap();
    });
    check_damage("garbage header", |p, _| {
        let mut b = fs::read(p).unwrap();
        b[10..30].copy_from_slice(b"{'descr': '|O', 'xxx");
        fs::write(p, b).unwrap();
    });
    check_damage("empty payload", |p, _| fs::write(p, b"").unwrap());
    check_damage("payload deleted", |p, _| fs::remove_file(p).unwrap());
    check_damage("sidecar deleted (an old orphan payload)", |p, s| {
        fs::remove_file(s).unwrap();
        backdate(p, Duration::from_secs(3600));
    });
    check_damage("garbage sidecar", |_, s| {
        fs::write(s, "ndcache-entry 1\nkey x\n").unwrap()
    });
    check_damage("binary sidecar", |_, s| {
        fs::write(s, [0xffu8, 0xfe, 0, 1]).unwrap()
    });
    check_damage("sidecar of another key", |_, s| {
        let text = fs::read_to_string(s).unwrap();
        let meta = crate::disk::EntryMeta {
            key: key(9),
            ..crate::disk::EntryMeta::parse(&text).unwrap()
        };
        fs::write(s, meta.to_text()).unwrap();
    });
}

#[test]
fn a_locked_payload_without_sidecar_is_a_write_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let t = tier(dir.path(), false);
    t.put(key(1), &sample(DType::I64, &[10]), info("x"), None);
    fs::remove_file(t.inner.layout.sidecar(key(1))).unwrap();
    // A writer between its two renames holds the key's lock (unlocked, the
    // payload is an orphan: see tier_maint.rs).
    let _writer = t.lock(key(1)).unwrap();
    assert!(t.get(key(1)).is_none());
    assert_eq!(t.stats().corrupt, 0);
    assert!(t.inner.layout.payload(key(1)).exists());
    let r = t.verify(true, |_| {}).unwrap();
    assert_eq!((r.ok, r.corrupt.len(), r.in_progress), (0, 0, 1));
}

#[test]
fn unwritable_directories_fail_softly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    // Under a regular file nothing can be created, even by root.
    let mut blocked = vec![file.join("cache")];
    if cfg!(target_os = "linux") {
        blocked.push("/proc/ndcache-test-cache".into());
    }
    for path in blocked {
        for background in [false, true] {
            let t = tier(&path, background);
            assert!(!t.is_writable());
            assert!(t.get(key(1)).is_none());
            t.put(key(1), &sample(DType::F32, &[3]), info("x"), None);
            t.put(key(2), &sample(DType::F32, &[3]), info("x"), None);
            t.flush();
            let st = t.stats();
            assert_eq!((st.write_failures, st.writes, st.writable), (2, 0, false));
            assert!(t.get(key(1)).is_none());
            assert!(t.lock(key(1)).is_err());
            assert_eq!(t.entries().unwrap(), vec![]);
            assert_eq!(t.verify(false, |_| {}).unwrap().ok, 0);
            assert!(t.gc(0, |_| {}).is_err());
            assert!(t.clear().is_err());
            assert!(t.verify(true, |_| {}).is_err());
        }
        let e = DiskTier::builder(&path)
            .require_writable(true)
            .build()
            .unwrap_err();
        assert!(matches!(e, crate::Error::Io { .. }), "{e:?}");
    }
}

#[test]
fn write_failures_after_open_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let t = tier(dir.path(), true);
    let k = key(1);
    // Block the key's fan-out directory with a regular file.
    let fan = t.inner.layout.fan_dir(k);
    fs::create_dir_all(fan.parent().unwrap()).unwrap();
    fs::write(&fan, b"not a directory").unwrap();
    t.put(k, &sample(DType::I32, &[5]), info("x"), None);
    let mut other = key(2);
    let mut i = 3;
    while t.inner.layout.fan_dir(other) == fan {
        other = key(i);
        i += 1;
    }
    t.put(other, &sample(DType::I32, &[5]), info("x"), None);
    t.flush();
    let st = t.stats();
    assert_eq!((st.write_failures, st.writes), (1, 1));
    assert!(t.get(other).is_some());
    let leftovers: Vec<_> = files_under(&dir.path().join("v2"))
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(unix)]
#[test]
fn permissions_stop_writes_when_not_root() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(ro.join("probe"), b"x").is_ok() {
        eprintln!("skipping: running as root, permissions do not stop writes");
        return;
    }
    let t = tier(&ro, true);
    assert!(!t.is_writable());
    t.put(key(1), &sample(DType::F64, &[2]), info("x"), None);
    t.flush();
    assert_eq!(t.stats().write_failures, 1);
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The facade's protocol, in many threads with their own lock handles: the
/// value is computed once, and every thread gets it.
#[test]
fn one_computation_per_key_under_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(tier(dir.path(), true));
    let computed = Arc::new(AtomicUsize::new(0));
    let threads = 6;
    let start = Arc::new(Barrier::new(threads));
    let k = key(42);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (t, computed, start) = (t.clone(), computed.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                if let Some((v, _)) = t.get(k) {
                    return v;
                }
                let lock = t.lock(k).unwrap();
                if let Some((v, _)) = t.get(k) {
                    return v;
                }
                computed.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                let v = sample(DType::F64, &[100_000]);
                // Background write: the lock is released once the files are in place.
                t.put(k, &v, info("slow"), Some(lock));
                v
            })
        })
        .collect();
    for h in handles {
        assert!(h
            .join()
            .unwrap()
            .bitwise_eq(&sample(DType::F64, &[100_000])));
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    t.flush();
    assert_eq!(t.stats().writes, 1);
    let locks: Vec<_> = files_under(&dir.path().join("v2"))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    assert!(locks.is_empty(), "lock files pile up: {locks:?}");
}

#[test]
fn try_lock_sees_a_held_lock() {
    let dir = tempfile::tempdir().unwrap();
    let a = tier(dir.path(), true);
    let b = tier(dir.path(), true);
    let held = a.lock(key(1)).unwrap();
    assert_eq!(held.key(), key(1));
    assert!(b.try_lock(key(1)).unwrap().is_none());
    assert!(b.try_lock(key(2)).unwrap().is_some());
    drop(held);
    assert!(b.try_lock(key(1)).unwrap().is_some());
}

/// Two tiers on one directory stand for two processes: a reader never sees
/// a torn or unverified entry while the other writes.
#[test]
fn readers_never_see_partial_entries() {
    // A reader polls while a writer (without locks of its own, as the
    // memory tier's spills) puts entries: every hit is whole, and once the
    // writer has flushed, every entry is there. A reader that takes an
    // entry between its two renames for an orphan and removes it loses it
    // for good (it did, under load: about 3% of runs, forever spinning
    // here before the loop was bounded).
    let dir = tempfile::tempdir().unwrap();
    let writer = tier(dir.path(), true);
    let reader = tier(dir.path(), true);
    let n = 40u128;
    let value = |i: u128| sample(DType::F64, &[50_000 + i as usize]);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..n {
                writer.put(key(i), &value(i), info("w"), None);
            }
            writer.flush();
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            for i in 0..n {
                if let Some((v, _)) = reader.get(key(i)) {
                    assert!(v.bitwise_eq(&value(i)));
                }
            }
        }
    });
    for i in 0..n {
        let got = reader.get(key(i)).map(|(v, _)| v);
        assert!(
            got.is_some_and(|v| v.bitwise_eq(&value(i))),
            "entry {i} was flushed but is not there"
        );
    }
    let stats = reader.stats();
    assert_eq!((stats.corrupt, stats.entries), (0, n as u64));
}

const CHILD_ENV: &str = "NDCACHE_DISK_TEST_CHILD_DIR";

/// Real processes (this test binary, run again) share one directory: the
/// value is computed by exactly one of them, and all of them get it; for a
/// large entry (files) and for a small one (a row of the store).
#[test]
fn one_computation_per_key_across_processes() {
    for small in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args(["--exact", "disk::tests::tier::cross_process_child"])
                    .args(["--ignored", "--nocapture", "--test-threads=1"])
                    .env(CHILD_ENV, dir.path())
                    .env(CHILD_SMALL_ENV, if small { "1" } else { "0" })
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("1 passed"), "the child ran its test: {text}");
        }
        let markers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("computed-")
            })
            .count();
        assert_eq!(markers, 1, "small {small}: computed by exactly one process");
        let t = DiskTier::open(dir.path().join("cache"), None).unwrap();
        let files = entry_files(&dir.path().join("cache/v2")).len();
        assert_eq!(files, if small { 0 } else { 2 }, "small {small}");
        assert_eq!(t.stats().entries, 1);
    }
}

const CHILD_SMALL_ENV: &str = "NDCACHE_DISK_TEST_CHILD_SMALL";

#[test]
#[ignore = "run by one_computation_per_key_across_processes in child processes"]
fn cross_process_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        panic!("run by one_computation_per_key_across_processes only");
    };
    let dir = Path::new(&dir);
    let t = DiskTier::open(dir.join("cache"), None).unwrap();
    let k = key(4242);
    // 2.4 MB (a large entry), or 128 bytes (a small one).
    let small = std::env::var(CHILD_SMALL_ENV).is_ok_and(|v| v == "1");
    let want = sample(DType::I64, &[if small { 16 } else { 300_000 }]);
    let got = match t.get(k) {
        Some((v, _)) => v,
        None => {
            let lock = t.lock(k).unwrap();
            match t.get(k) {
                Some((v, _)) => v,
                None => {
                    fs::write(dir.join(format!("computed-{}", std::process::id())), b"").unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    t.put(k, &want, info("slow"), Some(lock));
                    want.clone()
                }
            }
        }
    };
    assert!(got.bitwise_eq(&want));
    assert_eq!(t.stats().corrupt, 0);
}
