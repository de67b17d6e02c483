//! Every example runs (in its fast mode), so none can rot, and prints what
//! the tour promises.
//!
//! `cargo test` builds the examples before running the tests; the binaries
//! are found next to this test's own executable.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/integration-<hash> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("examples");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` (which builds the examples) or `cargo build --examples`",
        bin.display()
    );
    bin
}

/// Runs an example in fast mode; returns its standard output.
fn run(name: &str, envs: &[(&str, &Path)]) -> String {
    run_with_args(name, envs, &[])
}

/// Runs an example in fast mode with arguments; returns its standard output.
fn run_with_args(name: &str, envs: &[(&str, &Path)], args: &[&str]) -> String {
    let mut cmd = Command::new(example_bin(name));
    cmd.env("NDCACHE_FAST", "1").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_has(out: &str, needle: &str) {
    assert!(out.contains(needle), "expected {needle:?} in:\n{out}");
}

#[test]
fn tour_prints_every_step_and_reuses_the_disk_on_its_second_run() {
    let cache = tempfile::tempdir().unwrap();
    let envs = [("NDCACHE_TOUR_CACHE", cache.path())];
    let first = run("tour", &envs);
    for (n, title) in [
        (1, "lru_cache internals"),
        (2, "unbounded cache"),
        (3, "cache keys"),
        (4, "TTL cache"),
        (5, "cached property"),
        (6, "disk memoization"),
        (7, "ufunc caching"),
        (8, "capstone"),
    ] {
        assert_has(&first, &format!("Step {n}: {title}"));
    }
    assert_has(&first, "fib(30) = 832040");
    assert_has(
        &first,
        "CacheInfo(hits=28, misses=31, maxsize=128, currsize=31)",
    );
    assert_has(&first, "hit rate: 47.5%");
    assert_has(
        &first,
        "CacheInfo(hits=30, misses=31, maxsize=128, currsize=31)",
    );
    assert_has(
        &first,
        "after cache_clear(): CacheInfo(hits=0, misses=0, maxsize=128, currsize=0)",
    );
    assert_has(&first, "Fortran-order twin        same key");
    assert_has(&first, "strided view, no copy     same key");
    assert_has(&first, "same values as float32    different key");
    assert_has(&first, "[0.0] vs [-0.0]           different key");
    assert_has(&first, "computed 1 time(s)");
    assert_has(&first, "computed 8, disk hits 0");
    assert_has(&first, "x keyed once       : sum(exp(x))");
    assert_has(&first, "bytes hashed: 0");
    assert_has(&first, "no key computed twice at once");

    let second = run("tour", &envs);
    assert_has(&second, "computed 0, disk hits 8");
}

#[test]
fn ufunc_cache_example() {
    let out = run("ufunc_cache", &[]);
    assert_has(&out, "same shared result: true");
    assert_has(&out, "chain 2: sum(exp(x))");
    assert_has(&out, "bytes hashed: 0");
    assert_has(&out, "add (3,1) float32 + (4,) int32 -> [3, 4] float64");
    assert_has(
        &out,
        "operands could not be broadcast together with shapes (3,) (4,)",
    );
    assert_has(&out, "unknown kernel 'exq'; did you mean 'exp'?");
    assert_has(&out, "sigmoid computed 1 time(s)");
}

#[test]
fn lru_internals_example() {
    let out = run("lru_internals", &[]);
    assert_has(&out, "CacheInfo(hits=2, misses=7, maxsize=4, currsize=4)");
    assert_has(&out, "computed 1 time(s), 7 waited");
}

#[test]
fn cache_keys_example() {
    let out = run("cache_keys", &[]);
    assert_has(&out, "on 1, 2, 4 threads: one key");
    let keys: Vec<&str> = out
        .lines()
        .take(4)
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "layout twins share a key:\n{out}"
    );
}

#[test]
fn ttl_cache_example() {
    let out = run("ttl_cache", &[]);
    assert_has(
        &out,
        "t=30s get(ACME   ) = 40   lookups=2 hits=2 misses=2 expirations=1",
    );
    assert_has(
        &out,
        "t=61s get(ACME   ) = 40   lookups=4 hits=3 misses=4 expirations=2",
    );
}

#[test]
fn cached_property_example() {
    let out = run("cached_property", &[]);
    assert_has(&out, "access 3:");
    assert_has(&out, "computations so far: 2");
    assert_has(&out, "4 threads asked at once: 2 computations");
}

#[test]
fn disk_memo_example_runs_twice() {
    let cache = tempfile::tempdir().unwrap();
    let envs = [("NDCACHE_EXAMPLE_CACHE", cache.path())];
    let first = run("disk_memo", &envs);
    assert_has(&first, "computed 2, disk hits 0");
    assert_has(&first, "verify says 1 ok, 1 corrupt");
    assert_has(
        &first,
        "equal to the first result: true; corrupt entries seen: 1",
    );
    let second = run("disk_memo", &envs);
    assert_has(&second, "computed 0, disk hits 2");
}

#[test]
fn service_example() {
    let out = run("service", &[]);
    assert_has(&out, "lru: computations");
    assert_has(&out, "cost_aware: computations");
    assert_has(&out, "no key computed twice at once");
    assert_has(&out, "cost-aware (the default) against LRU");
    assert_has(&out, "with cache");
}

/// One run of the policy simulator's JSON: (workload, budget, policy) and
/// (time saved, hit ratio, byte hit ratio).
type SimRun = ((String, u32, String), (f64, f64, f64));

/// Reads the simulator's JSON: one run per line, in a fixed format.
fn sim_runs(json: &str) -> Vec<SimRun> {
    let field = |line: &str, name: &str| -> String {
        let start = line.find(&format!("\"{name}\": ")).expect(name) + name.len() + 4;
        let rest = &line[start..];
        let end = rest.find([',', '}']).expect("a field ends");
        rest[..end].trim_matches('"').to_owned()
    };
    assert!(json.starts_with("{\"runs\": ["), "{json}");
    json.lines()
        .filter(|l| l.contains("\"workload\""))
        .map(|l| {
            let num = |n: &str| field(l, n).parse::<f64>().expect(n);
            (
                (
                    field(l, "workload"),
                    num("budget_pct") as u32,
                    field(l, "policy"),
                ),
                (
                    num("time_saved_ms"),
                    num("hit_ratio"),
                    num("byte_hit_ratio"),
                ),
            )
        })
        .collect()
}

#[test]
fn policy_sim_meets_the_targets_in_fast_mode() {
    let runs = sim_runs(&run_with_args("policy_sim", &[], &["--json"]));
    assert_eq!(runs.len(), 7 * 3 * 3, "7 workloads, 3 budgets, 3 policies");
    let get = |w: &str, pct: u32, p: &str| {
        runs.iter()
            .find(|((rw, rp, rpol), _)| rw == w && *rp == pct && rpol == p)
            .unwrap_or_else(|| panic!("{w} {pct}% {p}"))
            .1
    };
    let saved = |w, pct| get(w, pct, "cost_aware").0 / get(w, pct, "lru").0;
    assert!(saved("W1", 10) >= 1.5, "W1: {}", saved("W1", 10));
    let bound = get("W1", 10, "cost_aware").0 / get("W1", 10, "bound").0;
    assert!(bound >= 0.8, "W1 against the bound: {bound}");
    for pct in [5, 10, 25] {
        let hr = get("W2", pct, "cost_aware").1 / get("W2", pct, "lru").1;
        assert!(hr >= 0.97, "W2 {pct}%: {hr}");
        assert!(saved("W4", pct) >= 1.2, "W4 {pct}%: {}", saved("W4", pct));
        assert!(saved("W6", pct) >= 1.0, "W6 {pct}%: {}", saved("W6", pct));
        for w in ["W1", "W2", "W3", "W4", "W5", "W6", "W7"] {
            assert!(saved(w, pct) >= 0.95, "{w} {pct}%: {}", saved(w, pct));
            let (ca, b) = (get(w, pct, "cost_aware").0, get(w, pct, "bound").0);
            assert!(ca <= b * 1.0001, "{w} {pct}%: the bound is an upper bound");
        }
    }
}

#[test]
fn sample_data_is_what_make_data_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(example_bin("make_data"));
    let out = cmd.arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    for name in [
        "signal.npy",
        "image.npy",
        "counts.npy",
        "fortran.npy",
        "small.npy",
    ] {
        let want = std::fs::read(committed.join(name)).unwrap();
        let got = std::fs::read(dir.path().join(name)).unwrap();
        assert!(
            want == got,
            "data/{name} differs from what make_data writes"
        );
    }
}

/// The fleet example against a Redis of its own: each experiment computed
/// once in the fleet, every other call a remote hit, all workers agreeing;
/// without a Redis it says how to start one.
#[cfg(feature = "remote")]
#[test]
fn fleet_example_computes_each_experiment_once() {
    let fleet = |url: &str| {
        let out = Command::new(example_bin("fleet"))
            .env("NDCACHE_FAST", "1")
            .env("NDCACHE_REMOTE", url)
            .output()
            .expect("the example starts");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        stdout
    };
    // A port nothing listens on: the example explains.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = fleet(&format!("redis://127.0.0.1:{port}"));
    assert_has(&out, "no Redis answers");
    assert_has(&out, "redis-server --port 6379");
    let Some(redis) = crate::remote::server::Redis::start(&[]) else {
        return;
    };
    let out = fleet(&redis.url());
    assert_has(&out, "32 calls in");
    assert_has(
        &out,
        ": 8 computed, 24 remote hits; 8 distinct results for 8 experiments",
    );
    // A second run: everything from Redis.
    let out = fleet(&redis.url());
    assert_has(&out, ": 0 computed, 32 remote hits; 8 distinct results");
}

/// The scaling example, small: its table has one row whose numbers hold
/// together (it checks every hit and `verify` itself and fails otherwise).
#[test]
fn disk_scaling_example_runs_small() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_args(
        "disk_scaling",
        &[],
        &[
            "--max",
            "3000",
            "--large",
            "20",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("| 3000 |"))
        .unwrap_or_else(|| panic!("no row for 3000 entries in:\n{out}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // files / dirs: the store's three files, the tag, the key locks, and
    // the 20 large entries' 40 files (in at most 20 fan-out directories).
    let (files, dirs) = cells[10].split_once(" / ").unwrap();
    let files: u64 = files.parse().unwrap();
    assert!((40..=46).contains(&files), "{row}");
    assert!(dirs.parse::<u64>().unwrap() <= 21, "{row}");
    // du after `gc --max-bytes 5M`: within the budget and its overhead.
    let after: f64 = cells[12].split(' ').next().unwrap().parse().unwrap();
    assert!(after <= 5.0 + 0.2, "{row}");
    let bad = Command::new(example_bin("disk_scaling"))
        .args(["--max", "lots"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--max") && err.contains("\"lots\""), "{err}");
}
