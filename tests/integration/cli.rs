//! Acceptance tests of the disk tier and the `ndcache` program (issue 5):
//! restarts, corruption, concurrent processes, the byte budget, unwritable
//! cache directories and bad input. The oracles are uncached computations
//! (`--no-cache`, `call_raw`) and plain Rust (a sort, known values).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use ndarray::{Array1, Array2};
use ndcache::disk::{read_npy, write_npy_atomic, DiskTier};
use ndcache::{AnyArray, ArrayCache, AsArg, Params};

const EXE: &str = env!("CARGO_BIN_EXE_ndcache");

/// What one run of the program did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(EXE)
        .args(args)
        // The default directory must never be the user's real cache.
        .env_remove("NDCACHE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run ndcache");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A temporary directory for inputs and outputs, and a cache directory
/// beside it.
struct Fixture {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    cache: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        fs::create_dir(&work).unwrap();
        let cache = tmp.path().join("cache");
        Fixture {
            work,
            cache,
            _tmp: tmp,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    fn input(&self, name: &str, array: impl Into<AnyArray>) -> PathBuf {
        let p = self.path(name);
        write_npy_atomic(&p, &array.into()).unwrap();
        p
    }

    /// `ndcache apply` through the cache; asserts success, returns stderr.
    fn apply(&self, kernel: &str, inputs: &[&Path], out: &Path, extra: &[&str]) -> String {
        let mut args = vec!["apply", kernel];
        args.extend(inputs.iter().map(|p| s(p)));
        args.extend(["--out", s(out), "--cache-dir", s(&self.cache)]);
        args.extend(extra);
        let r = run(&args);
        assert_eq!(r.code, Some(0), "{args:?} failed: {}", r.stderr);
        assert!(!r.stderr.contains("ndcache: error"), "{}", r.stderr);
        r.stderr
    }

    /// The bytes `apply` writes without any cache: the oracle.
    fn uncached(&self, kernel: &str, inputs: &[&Path], extra: &[&str]) -> Vec<u8> {
        let out = self.path(&format!("oracle-{kernel}.npy"));
        let mut args = vec!["apply", kernel];
        args.extend(inputs.iter().map(|p| s(p)));
        args.extend(["--out", s(&out), "--no-cache"]);
        args.extend(extra);
        let r = run(&args);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stderr.contains("computed (no cache)"), "{}", r.stderr);
        fs::read(out).unwrap()
    }

    fn verify(&self, repair: bool) -> Run {
        let mut args = vec!["verify", "--cache-dir", s(&self.cache)];
        if repair {
            args.push("--repair");
        }
        run(&args)
    }

    /// Asserts that `ndcache verify` finds `ok` good entries and nothing else.
    fn assert_clean(&self, ok: usize) {
        let v = self.verify(false);
        assert_eq!(v.code, Some(0), "{}{}", v.stdout, v.stderr);
        assert_eq!(v.last_line(), format!("{ok} ok, 0 corrupt"), "{}", v.stdout);
    }

    fn library(&self) -> ArrayCache {
        ArrayCache::builder().disk(&self.cache).build().unwrap()
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn with_ext(files: &[PathBuf], ext: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .cloned()
        .collect()
}

/// The payload and sidecar of the only entry of the cache.
fn single_entry(cache: &Path) -> (PathBuf, PathBuf) {
    let payloads = with_ext(&files_under(cache), "npy");
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let p = payloads[0].clone();
    let sidecar = p.with_extension("meta");
    (p, sidecar)
}

fn key_of(payload: &Path) -> String {
    payload.file_stem().unwrap().to_str().unwrap().to_owned()
}

fn ramp(n: usize) -> Array1<f64> {
    Array1::linspace(-2.0, 3.0, n)
}

/// Elements of a result stored as a file (above the 64 KiB of `.npy`
/// bytes that go to the store).
const LARGE: usize = 10_000;

// ---------------------------------------------------------------- restarts

#[test]
fn a_new_cache_on_the_same_directory_gets_disk_hits() {
    let fx = Fixture::new();
    let x = Array2::from_shape_fn((40, 25), |(i, j)| (i as f64 - 20.0) * 0.3 + j as f64);
    let ints = Array2::from_shape_fn((7, 9), |(i, j)| (i * 9 + j) as i32 - 30);
    let y = ramp(25);
    let calls = |c: &ArrayCache| -> Vec<AnyArray> {
        let p = Params::new();
        vec![
            c.call("exp", &[x.arg()], &p).unwrap(),
            c.call("sum", &[ints.arg()], &Params::new().axis(0))
                .unwrap(),
            c.call("add", &[x.arg(), y.arg()], &p).unwrap(),
            c.call("std", &[x.arg()], &Params::new().axis(1).ddof(1))
                .unwrap(),
        ]
        .into_iter()
        .map(|k| k.into_array())
        .collect()
    };
    let first = {
        let c = fx.library();
        let r = calls(&c);
        c.flush();
        assert_eq!(c.info().disk.unwrap().writes, 4);
        r
    };
    let c = fx.library();
    let second = calls(&c);
    let raw = [
        c.call_raw("exp", &[x.arg()], &Params::new()).unwrap(),
        c.call_raw("sum", &[ints.arg()], &Params::new().axis(0))
            .unwrap(),
        c.call_raw("add", &[x.arg(), y.arg()], &Params::new())
            .unwrap(),
        c.call_raw("std", &[x.arg()], &Params::new().axis(1).ddof(1))
            .unwrap(),
    ];
    for (i, ((a, b), r)) in first.iter().zip(&second).zip(&raw).enumerate() {
        assert!(a.bitwise_eq(b), "call {i}: the disk returned other bits");
        assert!(b.bitwise_eq(r), "call {i}: not what the kernel computes");
    }
    for name in ["exp", "sum", "add", "std"] {
        let k = c.kernel_info(name).unwrap();
        assert_eq!(
            (k.disk_hits, k.computed, k.memory_hits),
            (1, 0, 0),
            "{name}"
        );
    }
    let d = c.info().disk.unwrap();
    assert_eq!((d.hits, d.misses, d.writes, d.corrupt), (4, 0, 0, 0));
    drop(c);

    // The program finds what the library stored: same keys.
    let xin = fx.input("x.npy", x.clone());
    let out = fx.path("e.npy");
    let err = fx.apply("exp", &[&xin], &out, &[]);
    assert!(err.contains("hit (disk"), "{err}");
    assert!(read_npy(&out).unwrap().bitwise_eq(&first[0]));
}

#[test]
fn a_second_process_hits_the_disk_with_identical_output() {
    let fx = Fixture::new();
    let x = fx.input(
        "x.npy",
        Array2::from_shape_fn((30, 20), |(i, j)| ((i * 20 + j) as f64).sin()),
    );
    let args = ["--axis", "0", "--ddof", "1"];
    let (o1, o2) = (fx.path("s1.npy"), fx.path("s2.npy"));
    let e1 = fx.apply("std", &[&x], &o1, &args);
    assert!(e1.contains("miss (computed"), "{e1}");
    assert_eq!(e1.lines().count(), 1, "{e1}");
    let e2 = fx.apply("std", &[&x], &o2, &args);
    assert!(e2.contains("hit (disk"), "{e2}");
    let (b1, b2) = (fs::read(&o1).unwrap(), fs::read(&o2).unwrap());
    assert_eq!(b1, b2, "a hit writes the very same file");
    assert_eq!(b1, fx.uncached("std", &[&x], &args));
    // Other parameters are another key.
    let e3 = fx.apply("std", &[&x], &fx.path("s3.npy"), &["--axis", "0"]);
    assert!(e3.contains("miss (computed"), "{e3}");
    let ls = run(&["ls", "--cache-dir", s(&fx.cache)]);
    assert_eq!(ls.code, Some(0));
    assert_eq!(ls.stdout.matches(" std ").count(), 2, "{}", ls.stdout);
    assert!(ls.last_line().starts_with("2 entries"), "{}", ls.stdout);
    fx.assert_clean(2);
}

// -------------------------------------------------------------- corruption

/// Populates a cache with one `exp` entry, then damages it three times and
/// checks each way of noticing: `verify`, a library call, a program call,
/// and `verify --repair`.
fn check_corruption(what: &str, damage: impl Fn(&Path, &Path)) {
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(LARGE));
    let expected = fx.uncached("exp", &[&x], &[]);
    let xa = read_npy(&x).unwrap();
    let err = fx.apply("exp", &[&x], &fx.path("y0.npy"), &[]);
    assert!(err.contains("miss (computed"), "{err}");
    let (payload, sidecar) = single_entry(&fx.cache);
    let key = key_of(&payload);

    // 1. verify reports it (and leaves it); a library call recomputes it.
    let lib = fx.library(); // opened before the damage: the lookup meets it
    damage(&payload, &sidecar);
    let v = fx.verify(false);
    assert_eq!(v.code, Some(1), "{what}: {}{}", v.stdout, v.stderr);
    assert_eq!(v.last_line(), "0 ok, 1 corrupt", "{what}: {}", v.stdout);
    assert!(
        v.stdout.contains(&format!("corrupt  {key}  ")),
        "{what}: {}",
        v.stdout
    );
    let r = lib.call("exp", &[xa.arg()], &Params::new()).unwrap();
    let raw = lib.call_raw("exp", &[xa.arg()], &Params::new()).unwrap();
    assert!(r.array().bitwise_eq(&raw), "{what}: wrong result");
    let k = lib.kernel_info("exp").unwrap();
    assert_eq!((k.disk_hits, k.computed), (0, 1), "{what}");
    lib.flush();
    let d = lib.info().disk.unwrap();
    assert_eq!((d.corrupt, d.hits, d.writes), (1, 0, 1), "{what}: {d}");
    drop(lib);
    fx.assert_clean(1); // the recomputed result replaced the damaged one

    // 2. The program recomputes it too.
    damage(&payload, &sidecar);
    let out = fx.path("y1.npy");
    let err = fx.apply("exp", &[&x], &out, &[]);
    assert!(err.contains("miss (computed"), "{what}: {err}");
    assert_eq!(fs::read(&out).unwrap(), expected, "{what}");
    fx.assert_clean(1);

    // 3. verify --repair removes it.
    damage(&payload, &sidecar);
    let v = fx.verify(true);
    assert_eq!(v.code, Some(0), "{what}: {}{}", v.stdout, v.stderr);
    assert_eq!(v.last_line(), "0 ok, 1 corrupt (removed)", "{what}");
    fx.assert_clean(0);
    let left = files_under(&fx.cache);
    assert!(with_ext(&left, "npy").is_empty(), "{what}: {left:?}");
    assert!(with_ext(&left, "meta").is_empty(), "{what}: {left:?}");
    let err = fx.apply("exp", &[&x], &out, &[]);
    assert!(err.contains("miss (computed"), "{what}: {err}");
    assert_eq!(fs::read(&out).unwrap(), expected, "{what}");
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes);
    fs::write(path, bytes).unwrap();
}

#[test]
fn corrupt_one_flipped_payload_byte() {
    check_corruption("flipped byte", |payload, _| {
        rewrite(payload, |b| {
            let i = b.len() - 3; // in the data, not the header
            b[i] ^= 0x10;
        })
    });
}

#[test]
fn corrupt_truncated_payload() {
    check_corruption("truncated payload", |payload, _| {
        rewrite(payload, |b| b.truncate(b.len() - 8))
    });
}

#[test]
fn corrupt_garbage_npy_header() {
    check_corruption("garbage header", |payload, _| {
        // Same length, so that only the header parser can notice.
        rewrite(payload, |b| b[10..40].copy_from_slice(&[b'#'; 30]))
    });
}

#[test]
fn corrupt_garbage_sidecar() {
    check_corruption("garbage sidecar", |_, sidecar| {
        fs::write(sidecar, "this is not a sidecar\n\u{1}\u{2}\n").unwrap()
    });
}

/// Deletes the sidecar and makes the payload look older than the tier's
/// grace for writes in progress (ten minutes, `ORPHAN_GRACE` in
/// src/disk/entry.rs).
fn orphan(payload: &Path, sidecar: &Path) {
    fs::remove_file(sidecar).unwrap();
    let old = SystemTime::now() - Duration::from_secs(11 * 60);
    fs::File::options()
        .write(true)
        .open(payload)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn corrupt_deleted_payload() {
    check_corruption("deleted payload", |payload, _| {
        fs::remove_file(payload).unwrap()
    });
}

/// An orphan payload (sidecar deleted, payload older than the grace) is
/// never served: a lookup removes and counts it, and `verify` reports it
/// (opening a tier leaves orphans alone, so `verify` gets to see them).
#[test]
fn corrupt_deleted_sidecar_past_the_grace_period() {
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(LARGE));
    let expected = fx.uncached("exp", &[&x], &[]);
    let xa = read_npy(&x).unwrap();
    fx.apply("exp", &[&x], &fx.path("y0.npy"), &[]);
    let (payload, sidecar) = single_entry(&fx.cache);

    let lib = fx.library();
    orphan(&payload, &sidecar);
    let r = lib.call("exp", &[xa.arg()], &Params::new()).unwrap();
    let raw = lib.call_raw("exp", &[xa.arg()], &Params::new()).unwrap();
    assert!(r.array().bitwise_eq(&raw));
    let k = lib.kernel_info("exp").unwrap();
    assert_eq!((k.disk_hits, k.computed), (0, 1));
    lib.flush();
    let d = lib.info().disk.unwrap();
    assert_eq!((d.corrupt, d.hits, d.writes), (1, 0, 1), "{d}");
    drop(lib);
    fx.assert_clean(1);

    orphan(&payload, &sidecar);
    let out = fx.path("y1.npy");
    let err = fx.apply("exp", &[&x], &out, &[]);
    assert!(err.contains("miss (computed"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), expected);
    fx.assert_clean(1);

    orphan(&payload, &sidecar);
    let v = fx.verify(false);
    assert_eq!(v.code, Some(1), "{}{}", v.stdout, v.stderr);
    assert_eq!(v.last_line(), "0 ok, 1 corrupt");
    assert!(v.stdout.contains("the sidecar is missing"), "{}", v.stdout);
    assert!(payload.exists(), "verify without --repair removes nothing");
    let v = fx.verify(true);
    assert_eq!(v.code, Some(0), "{}{}", v.stdout, v.stderr);
    assert!(!payload.exists());
    fx.assert_clean(0);
}

/// A payload whose sidecar is missing is a write in progress only while
/// some process holds its key's lock: the writer renames the payload into
/// place first and the sidecar last, under the lock. Then `verify` counts it
/// as being written (exit 0). Once no one holds the lock it is an orphan
/// however young it is (a crash between the renames, a deleted sidecar):
/// `verify` counts it as damaged (exit 1), `verify --repair` removes it, and
/// a lookup never serves it but recomputes the result and completes the
/// entry. (An orphan older than the grace: see
/// `corrupt_deleted_sidecar_past_the_grace_period`.)
#[test]
fn a_payload_without_sidecar_is_being_written_only_while_its_key_is_locked() {
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(LARGE));
    let xa = read_npy(&x).unwrap();
    fx.apply("exp", &[&x], &fx.path("y0.npy"), &[]);
    let (payload, sidecar) = single_entry(&fx.cache);
    let key: ndcache::Fingerprint = key_of(&payload).parse().unwrap();

    // A lookup recomputes the result and completes the entry.
    let lib = fx.library();
    fs::remove_file(&sidecar).unwrap();
    let r = lib.call("exp", &[xa.arg()], &Params::new()).unwrap();
    let raw = lib.call_raw("exp", &[xa.arg()], &Params::new()).unwrap();
    assert!(r.array().bitwise_eq(&raw));
    let k = lib.kernel_info("exp").unwrap();
    assert_eq!((k.disk_hits, k.computed), (0, 1));
    lib.flush();
    let d = lib.info().disk.unwrap();
    assert_eq!((d.hits, d.writes), (0, 1), "{d}");
    assert!(sidecar.exists(), "the entry is complete again");
    drop(lib);
    fx.assert_clean(1);

    // This process holds the key's lock: another process is writing it.
    fs::remove_file(&sidecar).unwrap();
    let tier = DiskTier::open(&fx.cache, None).unwrap();
    let held = tier.lock(key).unwrap();
    let report = tier.verify(false, |_| {}).unwrap();
    assert_eq!(report.ok, 0);
    assert!(report.corrupt.is_empty(), "{report:?}");
    assert_eq!(report.in_progress, 1);
    let v = fx.verify(false);
    assert_eq!(v.code, Some(0), "{}{}", v.stdout, v.stderr);
    assert_eq!(
        v.last_line(),
        "0 ok, 0 corrupt, 1 being written (a payload whose sidecar has not come yet)"
    );
    let v = fx.verify(true);
    assert_eq!(v.code, Some(0), "{}{}", v.stdout, v.stderr);
    assert!(payload.exists(), "--repair removed a write in progress");

    // The writer is gone: an orphan, though only seconds old.
    drop(held);
    let v = fx.verify(false);
    assert_eq!(v.code, Some(1), "{}{}", v.stdout, v.stderr);
    assert_eq!(v.last_line(), "0 ok, 1 corrupt", "{}", v.stdout);
    assert!(v.stdout.contains("the sidecar is missing"), "{}", v.stdout);
    assert!(payload.exists(), "verify without --repair removes nothing");
    let v = fx.verify(true);
    assert_eq!(v.code, Some(0), "{}{}", v.stdout, v.stderr);
    assert_eq!(v.last_line(), "0 ok, 1 corrupt (removed)", "{}", v.stdout);
    assert!(!payload.exists());
    fx.assert_clean(0);

    // `gc` removes young orphans too.
    fx.apply("exp", &[&x], &fx.path("y1.npy"), &[]);
    fs::remove_file(&sidecar).unwrap();
    let r = run(&["gc", "--max-bytes", "1G", "--cache-dir", s(&fx.cache)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!payload.exists(), "{}", r.stdout);
    fx.assert_clean(0);
}

// --------------------------------------------------------------- processes

/// Four processes started together compute the result once: the others
/// wait on the key's lock and then read the entry. Even if they do not
/// overlap at all, the later ones find the entry: exactly one miss either way.
#[cfg(unix)]
#[test]
fn four_processes_compute_once() {
    let fx = Fixture::new();
    // Slow enough in a debug build (a few tenths of a second) for the
    // processes to meet at the lock.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f64> = (0..1_000_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    let x = fx.input("x.npy", Array1::from(values.clone()));
    let start = fx.path("start");
    // Each shell waits for the start file, then becomes ndcache.
    let script = r#"while [ ! -e "$1" ]; do sleep 0.01; done; exec "$2" apply sort "$3" --out "$4" --cache-dir "$5""#;
    let outs: Vec<PathBuf> = (0..4).map(|i| fx.path(&format!("y{i}.npy"))).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|o| {
            Command::new("sh")
                .args(["-c", script, "sh", s(&start), EXE, s(&x), s(o)])
                .arg(&fx.cache)
                .env_remove("NDCACHE_DIR")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn sh")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    fs::write(&start, "go").unwrap();
    let stderrs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            let e = String::from_utf8(o.stderr).unwrap();
            assert!(o.status.success(), "{e}");
            e
        })
        .collect();
    let misses = stderrs
        .iter()
        .filter(|e| e.contains("miss (computed"))
        .count();
    let hits = stderrs.iter().filter(|e| e.contains("hit (disk")).count();
    assert_eq!((misses, hits), (1, 3), "{stderrs:#?}");

    let mut sorted = values;
    sorted.sort_by(f64::total_cmp);
    let first = fs::read(&outs[0]).unwrap();
    for o in &outs {
        assert_eq!(fs::read(o).unwrap(), first, "{}", o.display());
    }
    let got = read_npy(&outs[0]).unwrap();
    assert_eq!(got.typed::<f64>().unwrap().as_slice().unwrap(), &sorted[..]);
    fx.assert_clean(1);
    let left = files_under(&fx.cache);
    assert!(with_ext(&left, "lock").is_empty(), "{left:?}");
    assert!(with_ext(&left, "tmp").is_empty(), "{left:?}");
}

// ------------------------------------------------------------------ budget

const MIB: u64 = 1 << 20;

/// 1,000,000 bytes of `i + 1`.
fn megabyte(i: usize) -> Array1<f64> {
    Array1::from_elem(125_000, i as f64 + 1.0)
}

/// Which inputs the remaining `negative` results came from (by value).
fn kept(cache: &Path) -> BTreeSet<usize> {
    with_ext(&files_under(cache), "npy")
        .iter()
        .map(|p| {
            let a = read_npy(p).unwrap();
            let v = a.typed::<f64>().unwrap()[[0]];
            (-v) as usize - 1
        })
        .collect()
}

/// The entries' files, each in whole 4 KiB blocks (what the budget counts).
fn bytes_on_disk(cache: &Path) -> u64 {
    files_under(cache)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "npy" || e == "meta"))
        .map(|p| fs::metadata(p).unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

#[test]
fn budget_keeps_the_most_recently_used_entries() {
    let fx = Fixture::new();
    let cache = ArrayCache::builder()
        .disk(&fx.cache)
        .disk_max_bytes(5 * MIB)
        .disk_access_granularity(Duration::ZERO)
        .build()
        .unwrap();
    let inputs: Vec<Array1<f64>> = (0..10).map(megabyte).collect();
    let call = |i: usize| {
        let r = cache
            .call("negative", &[inputs[i].arg()], &Params::new())
            .unwrap();
        cache.flush();
        assert_eq!(r.typed::<f64>().unwrap()[[7]], -(i as f64 + 1.0));
    };
    // `clear` resets the kernel counters too: add them up before each one.
    let (mut computed, mut disk_hits) = (0, 0);
    let mut tally = || {
        let k = cache.kernel_info("negative").unwrap();
        computed += k.computed;
        disk_hits += k.disk_hits;
    };
    call(0);
    for i in 1..10 {
        call(i);
        // Use entry 0 again, from disk: it stays the most recently used.
        tally();
        cache.clear();
        call(0);
    }
    tally();
    assert!(bytes_on_disk(&fx.cache) <= 5 * MIB);
    assert_eq!(kept(&fx.cache), BTreeSet::from([0, 6, 7, 8, 9]));
    assert_eq!((computed, disk_hits), (10, 9));
    let d = cache.info().disk.unwrap();
    assert_eq!((d.entries, d.evictions, d.writes), (5, 5, 10), "{d}");
    assert!(d.bytes <= 5 * MIB);
}

#[test]
fn budget_from_the_command_line() {
    let fx = Fixture::new();
    let inputs: Vec<PathBuf> = (0..10)
        .map(|i| fx.input(&format!("m{i}.npy"), megabyte(i)))
        .collect();
    let out = fx.path("out.npy");
    let apply = |i: usize| fx.apply("negative", &[&inputs[i]], &out, &["--max-bytes", "5M"]);
    for i in 0..10 {
        assert!(apply(i).contains("miss (computed"));
        if i == 8 {
            // 4 is the least recently used now; using it saves it from
            // the next eviction.
            assert!(apply(4).contains("hit (disk"));
        }
    }
    assert_eq!(kept(&fx.cache), BTreeSet::from([4, 6, 7, 8, 9]));
    let on_disk = bytes_on_disk(&fx.cache);
    assert!(on_disk <= 5 * MIB, "{on_disk}");
    let st = run(&["stats", "--cache-dir", s(&fx.cache)]);
    assert!(st.stdout.contains("entries    5\n"), "{}", st.stdout);
    assert!(
        st.stdout.contains(&format!("({on_disk} bytes)")),
        "{}",
        st.stdout
    );
    let ls = run(&["ls", "--cache-dir", s(&fx.cache)]);
    assert!(
        ls.last_line().starts_with("5 entries, 4.8 MiB"),
        "{}",
        ls.stdout
    );
    assert!(apply(7).contains("hit (disk"));
    assert!(apply(5).contains("miss (computed"));
    assert_eq!(
        fs::read(&out).unwrap(),
        fx.uncached("negative", &[&inputs[5]], &[])
    );
}

// ------------------------------------------------------ unwritable caches

/// A cache directory below a regular file cannot be created, whoever runs
/// the test (root ignores permission bits, not `ENOTDIR`).
#[test]
fn an_unwritable_cache_directory_does_not_stop_apply() {
    let fx = Fixture::new();
    let blocker = fx.path("a-file");
    fs::write(&blocker, "not a directory").unwrap();
    let cache = blocker.join("cache");
    let x = fx.input("x.npy", ramp(300));
    let expected = fx.uncached("exp", &[&x], &[]);
    for i in 0..2 {
        let out = fx.path(&format!("y{i}.npy"));
        let r = run(&[
            "apply",
            "exp",
            s(&x),
            "--out",
            s(&out),
            "--cache-dir",
            s(&cache),
        ]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(!r.stderr.contains("ndcache: error"), "{}", r.stderr);
        assert!(r.stderr.contains("warning"), "{}", r.stderr);
        assert!(r.stderr.contains("not writable"), "{}", r.stderr);
        assert_eq!(fs::read(&out).unwrap(), expected);
    }
    assert!(!cache.exists());
}

/// A populated cache made read-only still serves hits. Permission bits do
/// not stop root, so this part only runs when they do stop writes.
#[cfg(unix)]
#[test]
fn a_read_only_cache_still_serves_hits() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(300));
    let out = fx.path("y.npy");
    fx.apply("exp", &[&x], &out, &[]);
    let expected = fs::read(&out).unwrap();
    let mut dirs = vec![fx.cache.clone()];
    for f in files_under(&fx.cache) {
        let mut d = f.parent().unwrap().to_path_buf();
        while d != fx.cache {
            dirs.push(d.clone());
            d.pop();
        }
    }
    dirs.sort();
    dirs.dedup();
    let set = |mode: u32| {
        for d in &dirs {
            fs::set_permissions(d, fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set(0o555);
    let probe = fx.cache.join("v2").join("probe");
    if fs::write(&probe, "x").is_ok() {
        let _ = fs::remove_file(&probe);
        set(0o755);
        eprintln!("skipping: permission bits do not stop writes here (root)");
        return;
    }
    let out2 = fx.path("y2.npy");
    let r = run(&[
        "apply",
        "exp",
        s(&x),
        "--out",
        s(&out2),
        "--cache-dir",
        s(&fx.cache),
    ]);
    set(0o755);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("hit (disk"), "{}", r.stderr);
    assert_eq!(fs::read(&out2).unwrap(), expected);
}

// --------------------------------------------------------------- bad input

/// A version 1.0 `.npy` file with the given dtype and shape, by hand.
fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend((header.len() as u16).to_le_bytes());
    v.extend(header.as_bytes());
    v.extend(data);
    v
}

#[test]
fn bad_input_gives_one_error_line_and_no_output() {
    let fx = Fixture::new();
    let w = |name: &str, bytes: Vec<u8>| {
        let p = fx.path(name);
        fs::write(&p, bytes).unwrap();
        p
    };
    let c16 = w("c16.npy", npy_bytes("<c16", "(3,)", &[0; 48]));
    let b1 = w("b1.npy", npy_bytes("|b1", "(3,)", &[1, 0, 1]));
    let f8 = w("f8.npy", npy_bytes("<f8", "(3,)", &[0; 24])); // the control
    let csv = w("x.csv", b"a,b,c\n1,2,3\n4,5,6\n7,8,9\n".to_vec());
    let a = fx.input("a.npy", Array2::<f64>::zeros((2, 3)));
    let b = fx.input("b.npy", Array1::<f64>::zeros(4));
    let missing = fx.path("missing.npy");
    let out = fx.path("out.npy");

    // The hand-made header is well formed: only the dtype is refused below.
    let r = run(&["apply", "exp", s(&f8), "--out", s(&out), "--no-cache"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        read_npy(&out).unwrap().typed::<f64>().unwrap().as_slice(),
        Some(&[1.0; 3][..])
    );
    fs::remove_file(&out).unwrap();

    let cases: [(&str, Vec<&Path>, &[&str]); 7] = [
        ("exp", vec![&missing], &["missing.npy", "No such file"]),
        ("exp", vec![&csv], &["x.csv", "not a .npy file"]),
        ("exp", vec![&c16], &["c16.npy", "unsupported dtype '<c16'"]),
        ("exp", vec![&b1], &["b1.npy", "unsupported dtype '|b1'"]),
        ("add", vec![&a, &b], &["broadcast", "(2,3) (4,)"]),
        ("frobnicate", vec![&a], &["unknown kernel 'frobnicate'"]),
        ("exp", vec![&a, &b], &["'exp' takes 1 input(s), got 2"]),
    ];
    let listing = || {
        fs::read_dir(&fx.work)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<BTreeSet<_>>()
    };
    let before = listing();
    for (kernel, inputs, names) in cases {
        let mut args = vec!["apply", kernel];
        args.extend(inputs.iter().map(|p| s(p)));
        args.extend(["--out", s(&out), "--cache-dir", s(&fx.cache)]);
        let r = run(&args);
        assert_ne!(r.code, Some(0), "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("ndcache: error: "), "{}", r.stderr);
        for n in names {
            assert!(r.stderr.contains(n), "{args:?}: {n:?} in {}", r.stderr);
        }
        assert!(!out.exists(), "{args:?} wrote an output");
        assert_eq!(listing(), before, "{args:?} left a file behind");
    }
    // No entry, lock or temporary file in the cache either: only the tag,
    // the store (empty) and the key-lock file (which is never removed).
    let left = files_under(&fx.cache);
    assert!(
        left.iter().all(|p| p.ends_with("v2/CACHEDIR.TAG")
            || p.ends_with("v2/entries.db")
            || p.ends_with("v2/keylocks")),
        "{left:?}"
    );
    let lib = fx.library();
    assert_eq!(lib.info().disk.unwrap().entries, 0);

    // A write that fails at the last step (the output is a directory)
    // removes its temporary file.
    let dir_out = fx.path("a-directory");
    fs::create_dir(&dir_out).unwrap();
    let before = listing();
    let r = run(&["apply", "exp", s(&a), "--out", s(&dir_out), "--no-cache"]);
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("ndcache: error: "), "{}", r.stderr);
    assert!(r.stderr.contains("a-directory"), "{}", r.stderr);
    assert_eq!(listing(), before, "a temporary file was left behind");
    assert_eq!(fs::read_dir(&dir_out).unwrap().count(), 0);
}

// ------------------------------------------------------ no surprises (#8)

/// Every file and directory under `dir` with its length and modification
/// time: a directory's time changes when a file is created or removed in
/// it, even if the file is gone again (a probe).
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), m.len(), m.modified().unwrap()));
        if m.is_dir() {
            out.extend(snapshot(&p));
        }
    }
    out.sort();
    out
}

/// `ndcache ls | head -1`: the reader goes away after one line, and the
/// program, which still has most of its output to write, ends quietly with
/// exit code 0 (no panic on `EPIPE`).
#[cfg(unix)]
#[test]
fn ls_into_a_pipe_closed_early_exits_quietly() {
    let fx = Fixture::new();
    let tier = DiskTier::builder(&fx.cache)
        .background_writes(false)
        .build()
        .unwrap();
    let a = AnyArray::from(ramp(3));
    for i in 0..2000u32 {
        let key = ndcache::call_key("pipe", "1", &i.to_le_bytes(), &[]);
        let info = ndcache::disk::EntryInfo::new("negative", "1", Duration::ZERO);
        tier.put(key, &a, info, None);
    }
    drop(tier);
    let args = ["ls", "--cache-dir", s(&fx.cache)];
    let full = run(&args);
    assert_eq!(full.code, Some(0), "{}", full.stderr);
    // Well beyond a pipe's buffer (64 KiB on Linux): the writer must meet
    // the closed pipe.
    assert!(full.stdout.len() > 3 << 16, "{}", full.stdout.len());

    for _ in 0..3 {
        let mut ls = Command::new(EXE)
            .args(args)
            .env_remove("NDCACHE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ndcache");
        let head = Command::new("head")
            .arg("-1")
            .stdin(Stdio::from(ls.stdout.take().unwrap()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn head");
        let head = head.wait_with_output().unwrap();
        let ls = ls.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&ls.stderr);
        assert_eq!(
            String::from_utf8_lossy(&head.stdout),
            full.stdout.lines().next().unwrap().to_owned() + "\n"
        );
        assert_eq!(ls.status.code(), Some(0), "{stderr}");
        assert!(stderr.is_empty(), "{stderr}");
    }
}

/// `ls`, `stats`, `verify` (and the maintenance commands) on a directory
/// that is not a cache say so and create nothing in it: no `v2/`, no
/// `CACHEDIR.TAG`.
#[test]
fn commands_refuse_a_directory_that_is_not_a_cache() {
    let fx = Fixture::new();
    let empty = fx.path("empty");
    fs::create_dir(&empty).unwrap();
    let photos = fx.path("photos");
    fs::create_dir_all(photos.join("2024")).unwrap();
    fs::write(photos.join("a.jpg"), "jpeg").unwrap();
    fs::write(photos.join("2024").join("b.jpg"), "jpeg").unwrap();
    let missing = fx.path("missing");
    let commands: [&[&str]; 6] = [
        &["ls"],
        &["stats"],
        &["verify"],
        &["verify", "--repair"],
        &["gc", "--max-bytes", "1G"],
        &["clear"],
    ];
    for dir in [&empty, &photos, &missing] {
        let before = snapshot(dir);
        for cmd in commands {
            let mut args = cmd.to_vec();
            args.extend(["--cache-dir", s(dir)]);
            let r = run(&args);
            assert_eq!(r.code, Some(2), "{args:?}: {}{}", r.stdout, r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
            assert!(r.stderr.starts_with("ndcache: error: "), "{}", r.stderr);
            assert!(
                r.stderr
                    .contains("is not an ndcache cache (no v2/ directory)"),
                "{args:?}: {}",
                r.stderr
            );
            assert!(r.stderr.contains(s(dir)), "{args:?}: {}", r.stderr);
            assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
            assert_eq!(snapshot(dir), before, "{args:?} changed {}", dir.display());
        }
        assert!(!dir.join("v2").exists());
    }
    assert!(!missing.exists());
}

/// The read-only commands do not write in a cache either: no probe file,
/// no `CACHEDIR.TAG` put back, no temporary file of a dead writer removed
/// (that is `gc`'s job), no orphan payload removed (that is `--repair`'s).
#[test]
fn ls_stats_and_verify_write_nothing_in_a_cache() {
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(LARGE));
    fx.apply("exp", &[&x], &fx.path("y.npy"), &[]);
    let (payload, _) = single_entry(&fx.cache);
    fs::remove_file(fx.cache.join("v2").join("CACHEDIR.TAG")).unwrap();
    let old_temp = payload.with_file_name(".x.npy.1.1.tmp");
    fs::write(&old_temp, "half").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old_temp)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let before = snapshot(&fx.cache);
    for cmd in ["ls", "stats", "verify"] {
        let r = run(&[cmd, "--cache-dir", s(&fx.cache)]);
        assert_eq!(r.code, Some(0), "{cmd}: {}{}", r.stdout, r.stderr);
        assert_eq!(snapshot(&fx.cache), before, "{cmd} wrote in the cache");
    }
}

/// The budget is remembered by the cache directory: `apply --max-bytes`
/// (and the library's `max_bytes`) set it, opening without one uses it,
/// `stats` shows it. A damaged budget file is ignored with a warning.
#[test]
fn the_cache_directory_remembers_its_budget() {
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(100));
    let out = fx.path("y.npy");
    let stats = || {
        let r = run(&["stats", "--cache-dir", s(&fx.cache)]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        r
    };
    let budget_line = |r: &Run| {
        r.stdout
            .lines()
            .find(|l| l.starts_with("budget "))
            .unwrap_or_else(|| panic!("no budget line in {}", r.stdout))
            .to_owned()
    };

    fx.apply("exp", &[&x], &out, &[]);
    let st = stats();
    assert_eq!(budget_line(&st), "budget     none", "{}", st.stdout);
    assert!(st.stdout.contains("entries    1\n"), "{}", st.stdout);
    assert_eq!(DiskTier::open(&fx.cache, None).unwrap().max_bytes(), None);

    fx.apply("exp", &[&x], &out, &["--max-bytes", "5MiB"]);
    let st = stats();
    assert_eq!(
        budget_line(&st),
        "budget     5.0 MiB (5242880 bytes)",
        "{}",
        st.stdout
    );
    // Remembered: by the program, by the library.
    fx.apply("exp", &[&x], &out, &[]);
    assert_eq!(budget_line(&stats()), "budget     5.0 MiB (5242880 bytes)");
    assert_eq!(
        DiskTier::open(&fx.cache, None).unwrap().max_bytes(),
        Some(5 << 20)
    );
    let lib = fx.library();
    assert_eq!(lib.info().disk.unwrap().max_bytes, Some(5 << 20));
    drop(lib);
    // An explicit budget wins, and is remembered in turn.
    fx.apply("exp", &[&x], &out, &["--max-bytes", "2G"]);
    assert_eq!(
        budget_line(&stats()),
        "budget     2.0 GiB (2147483648 bytes)"
    );
    let t = DiskTier::builder(&fx.cache)
        .max_bytes(3 << 20)
        .build()
        .unwrap();
    assert_eq!(t.max_bytes(), Some(3 << 20));
    drop(t);
    assert_eq!(
        DiskTier::open(&fx.cache, None).unwrap().max_bytes(),
        Some(3 << 20)
    );

    // A damaged budget file: a warning, no budget, no panic; the next
    // explicit budget replaces it.
    let file = fx.cache.join("v2").join("budget");
    assert_eq!(fs::read_to_string(&file).unwrap(), "3145728\n");
    for bad in [
        &b""[..],
        b"\n",
        b"lots\n",
        b"0\n",
        b"-5\n",
        b"+5\n",
        b" 5\n",
        b"5 MiB\n",
        b"5\n\n",
        b"99999999999999999999999\n",
        b"\x00\xff\xfe",
    ] {
        fs::write(&file, bad).unwrap();
        let st = stats();
        assert_eq!(budget_line(&st), "budget     none", "{bad:?}");
        assert!(st.stderr.contains("warning"), "{bad:?}: {}", st.stderr);
        assert!(st.stderr.contains("budget"), "{bad:?}: {}", st.stderr);
        assert_eq!(
            DiskTier::open(&fx.cache, None).unwrap().max_bytes(),
            None,
            "{bad:?}"
        );
        assert_eq!(fs::read(&file).unwrap(), bad, "a read changed the file");
    }
    fx.apply("exp", &[&x], &out, &["--max-bytes", "1.5G"]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "1610612736\n");
    fs::write(&file, "5242880").unwrap(); // no newline: fine
    assert_eq!(
        DiskTier::open(&fx.cache, None).unwrap().max_bytes(),
        Some(5 << 20)
    );
}

/// `apply` checks the kernel, its arity and its parameters before reading
/// any input, and refuses options that cannot apply.
#[test]
fn apply_checks_its_arguments_first() {
    let fx = Fixture::new();
    let missing = fx.path("missing.npy");
    let out = fx.path("out.npy");
    let r = run(&[
        "apply",
        "exp",
        s(&missing),
        "--out",
        s(&out),
        "--axis",
        "0",
        "--cache-dir",
        s(&fx.cache),
    ]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("invalid parameter 'axis'"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("missing.npy"), "{}", r.stderr);

    let x = fx.input("x.npy", ramp(10));
    let r = run(&[
        "apply",
        "exp",
        s(&x),
        "--out",
        s(&out),
        "--no-cache",
        "--max-bytes",
        "5M",
    ]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--no-cache"), "{}", r.stderr);
    assert!(r.stderr.contains("--max-bytes"), "{}", r.stderr);
    assert!(!out.exists());

    let r = run(&["gc", "--max-bytes", "12Q", "--cache-dir", s(&fx.cache)]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("invalid size '12Q'"), "{}", r.stderr);
}

/// The outcome line says what the call did: computed and stored, a disk
/// hit, computed but not stored (larger than the whole budget).
#[test]
fn apply_reports_what_the_call_did() {
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(1000));
    let out = fx.path("y.npy");
    let dir = s(&fx.cache).to_owned();
    let e = fx.apply("exp", &[&x], &out, &[]);
    assert!(
        e.contains(&format!("miss (computed, stored in {dir})")),
        "{e}"
    );
    let e = fx.apply("exp", &[&x], &out, &[]);
    assert!(e.contains(&format!("hit (disk, {dir})")), "{e}");
    let e = fx.apply("negative", &[&x], &out, &["--max-bytes", "1K"]);
    assert!(e.contains("miss (computed; not stored"), "{e}");
    assert!(e.contains("larger than the budget"), "{e}");
}

/// An entry `verify` cannot read may be fine or not: it is not removed,
/// and the exit code says the cache is not known to be clean. Permission
/// bits do not stop root, so this only runs when they stop reads.
#[cfg(unix)]
#[test]
fn verify_fails_on_unreadable_entries() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let x = fx.input("x.npy", ramp(LARGE));
    fx.apply("exp", &[&x], &fx.path("y.npy"), &[]);
    let (payload, _) = single_entry(&fx.cache);
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&payload).is_ok() {
        fs::set_permissions(&payload, fs::Permissions::from_mode(0o644)).unwrap();
        eprintln!("skipping: permission bits do not stop reads here (root)");
        return;
    }
    let v = fx.verify(false);
    let v2 = fx.verify(true);
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(v.code, Some(1), "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("unreadable"), "{}", v.stdout);
    assert_eq!(v2.code, Some(1), "{}{}", v2.stdout, v2.stderr);
    assert!(payload.exists());
    fx.assert_clean(1);
}
