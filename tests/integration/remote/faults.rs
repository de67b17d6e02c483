//! Faults, each a test: the server killed or hung, a chunk deleted or
//! corrupted, a lease holder killed mid-compute, a server too small for
//! the value, a forged entry. In each: the right output (against the
//! uncached kernel), the fault counted, no panic.

use std::time::{Duration, Instant};

use ndcache::{ArrayCache, AsArg, Params, Source};

use super::server::Redis;
use super::worker::{Worker, WorkerSpec};
use super::{cache, data, options, raw};

const CHUNK: u32 = 64 << 10;

#[test]
fn server_killed_mid_run() {
    let Some(mut redis) = Redis::start(&[]) else {
        return;
    };
    let c = cache(options(&redis.url()), None);
    let inputs: Vec<_> = (0..60).map(|i| data(2000, 100 + i)).collect();
    for (i, x) in inputs.iter().enumerate() {
        if i == 20 {
            redis.kill();
        }
        let got = c.call("exp", &[x.arg()], &Params::new()).unwrap();
        assert!(got.array().bitwise_eq(&raw("exp", x)), "call {i}");
    }
    c.flush();
    let s = c.info().remote.unwrap();
    assert!(s.errors >= 3, "{s}");
    assert!(s.breaker_trips >= 1, "{s}");
    assert!(s.skipped > 0, "the breaker spared later calls: {s}");
    // Back up (empty): after the cool-down a probe closes the breaker and
    // uploads resume; a new process then hits.
    redis.restart();
    let start = Instant::now();
    let y = loop {
        let y = data(2000, 1000 + start.elapsed().as_millis() as u64);
        c.call("exp", &[y.arg()], &Params::new()).unwrap();
        c.flush();
        if redis.cli(&["dbsize"]) != "0" {
            break y;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the breaker never closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!c.info().remote.unwrap().breaker_open);
    let (got, s) = cache(options(&redis.url()), None)
        .call_with_source("exp", &[y.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Remote);
    assert!(got.array().bitwise_eq(&raw("exp", &y)));
}

#[test]
fn server_hung_a_call_returns_in_under_two_seconds() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(100_000, 11);
    cache(options(&redis.url()), None)
        .call("exp", &[x.arg()], &Params::new())
        .unwrap();
    redis.pause();
    // The default timeouts: connect 250 ms, each read or write 500 ms.
    let c = cache(
        options(&redis.url())
            .op_timeout(Duration::from_millis(500))
            .breaker_cooldown(Duration::from_secs(30)),
        None,
    );
    let start = Instant::now();
    let (got, s) = c
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(s, Source::Computed { stored: false });
    assert!(got.array().bitwise_eq(&raw("exp", &x)));
    let st = c.info().remote.unwrap();
    assert!(
        st.timeouts >= 1 && st.breaker_trips >= 1 && st.breaker_open,
        "{st}"
    );
    // While the breaker is open, calls do not touch the network.
    let y = data(100_000, 12);
    let start = Instant::now();
    let got = c.call("exp", &[y.arg()], &Params::new()).unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert!(got.array().bitwise_eq(&raw("exp", &y)));
    // Dropping the cache (pending upload skipped by the breaker) is quick too.
    let start = Instant::now();
    drop(c);
    assert!(start.elapsed() < Duration::from_secs(2));
    redis.resume();
}

/// Uploads the `exp` of `x` in 64 KiB chunks; returns the chunk keys.
fn upload_chunked(redis: &Redis, x: &ndarray::Array1<f64>) -> Vec<String> {
    cache(options(&redis.url()).chunk_bytes(CHUNK), None)
        .call("exp", &[x.arg()], &Params::new())
        .unwrap();
    let mut keys: Vec<String> = redis
        .cli(&["--scan", "--pattern", "ndcache:*:c:*"])
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort_by_key(|k| k.rsplit(':').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(keys.len(), 4, "{keys:?}");
    keys
}

/// A fresh cache misses (the damage counted as corrupt), computes the
/// right result, deletes the damaged entry and uploads a good one.
fn assert_damage_is_a_counted_miss(redis: &Redis, x: &ndarray::Array1<f64>) {
    let c = cache(options(&redis.url()).chunk_bytes(CHUNK), None);
    let (got, s) = c
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Computed { stored: false });
    assert!(got.array().bitwise_eq(&raw("exp", x)));
    c.flush();
    let st = c.info().remote.unwrap();
    assert_eq!((st.corrupt, st.hits, st.uploads), (1, 0, 1), "{st}");
    drop(c);
    // The damaged chunks are gone; the new upload serves the next reader.
    assert_eq!(
        redis
            .cli(&["--scan", "--pattern", "ndcache:*:c:*"])
            .lines()
            .count(),
        4
    );
    let (got, s) = cache(options(&redis.url()).chunk_bytes(CHUNK), None)
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Remote);
    assert!(got.array().bitwise_eq(&raw("exp", x)));
}

#[test]
fn a_deleted_chunk_is_a_counted_miss() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(30_000, 13); // 240 KB: 4 chunks
    let chunks = upload_chunked(&redis, &x);
    assert_eq!(redis.cli(&["del", &chunks[2]]), "1");
    assert_damage_is_a_counted_miss(&redis, &x);
}

#[test]
fn a_corrupted_chunk_is_a_counted_miss() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(30_000, 14);
    let chunks = upload_chunked(&redis, &x);
    // Change one byte in the middle of a data chunk (same length).
    let byte = redis.cli(&["getrange", &chunks[1], "1000", "1000"]);
    let other = if byte == "A" { "B" } else { "A" };
    redis.cli(&["setrange", &chunks[1], "1000", other]);
    assert_damage_is_a_counted_miss(&redis, &x);
}

#[test]
fn garbage_under_a_key_is_a_counted_miss() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(1000, 15);
    cache(options(&redis.url()), None)
        .call("exp", &[x.arg()], &Params::new())
        .unwrap();
    let key = redis.cli(&["--scan", "--pattern", "ndcache:*:m"]);
    redis.cli(&["set", &key, "NDCR garbage, not an entry"]);
    let c = cache(options(&redis.url()), None);
    let (got, s) = c
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Computed { stored: false });
    assert!(got.array().bitwise_eq(&raw("exp", &x)));
    assert_eq!(c.info().remote.unwrap().corrupt, 1);
    // A value of the wrong Redis type is refused by the server: an error, a miss.
    redis.cli(&["del", &key]);
    redis.cli(&["lpush", &key, "x"]);
    let c = cache(options(&redis.url()), None);
    let got = c.call("exp", &[x.arg()], &Params::new()).unwrap();
    assert!(got.array().bitwise_eq(&raw("exp", &x)));
    let st = c.info().remote.unwrap();
    assert!(st.errors >= 1 && !st.breaker_open, "{st}");
}

#[test]
fn a_lease_holder_killed_mid_compute_is_taken_over() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = |name: &str| WorkerSpec {
        url: redis.url(),
        disk: None,
        n: 50_000,
        sleep_ms: 3000,
        lease_ms: 1000,
        count: dir.path().join("runs"),
        out: dir.path().join(name),
        min_compute_ms: 0,
    };
    let mut holder = Worker::spawn(&spec("a.npy"));
    // Wait until it holds the lease, i.e. computes.
    let start = Instant::now();
    while redis
        .cli(&["--scan", "--pattern", "ndcache:*:lease"])
        .is_empty()
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no lease taken");
        if let Some(out) = holder.exited() {
            panic!("the lease holder exited early: {out}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    holder.kill();
    assert!(!redis
        .cli(&["--scan", "--pattern", "ndcache:*:lease"])
        .is_empty());
    let start = Instant::now();
    let report = Worker::spawn(&spec("b.npy")).finish();
    let took = start.elapsed();
    assert!(report.contains("source=computed"), "{report}");
    assert!(report.contains("lease_waits=1"), "{report}");
    assert!(report.contains("lease_takeovers=1"), "{report}");
    // It waited for the lease to expire (at most 1 s), then computed (3 s).
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let got = ndcache::disk::read_npy(dir.path().join("b.npy")).unwrap();
    assert!(got.bitwise_eq(&super::worker::oracle(50_000)));
    // The killed holder started the kernel, the taker ran it to the end.
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert_eq!(runs.lines().collect::<Vec<_>>(), ["start", "start", "end"]);
    assert!(redis
        .cli(&["--scan", "--pattern", "ndcache:*:lease"])
        .is_empty());
}

/// A holder that will not upload (here: computing took less than the
/// hour asked for) says so in its lease: the processes waiting for it
/// compute at once, together, instead of taking the lease over in turn.
#[test]
fn waiters_compute_at_once_when_the_holder_uploads_nothing() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = |i: usize| WorkerSpec {
        url: redis.url(),
        disk: None,
        n: 1000,
        sleep_ms: 1500,
        lease_ms: 10_000,
        count: dir.path().join("runs"),
        out: dir.path().join(format!("y{i}.npy")),
        min_compute_ms: 3_600_000,
    };
    let first = Worker::spawn(&spec(0));
    let start = Instant::now();
    while redis
        .cli(&["--scan", "--pattern", "ndcache:*:lease"])
        .is_empty()
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no lease taken");
        std::thread::sleep(Duration::from_millis(10));
    }
    let others: Vec<Worker> = (1..3).map(|i| Worker::spawn(&spec(i))).collect();
    let mut reports = vec![first.finish()];
    reports.extend(others.into_iter().map(Worker::finish));
    for (i, r) in reports.iter().enumerate() {
        assert!(r.contains("source=computed"), "{r}");
        let got = ndcache::disk::read_npy(&spec(i).out).unwrap();
        assert!(got.bitwise_eq(&super::worker::oracle(1000)));
    }
    assert!(reports[1].contains("lease_waits=1") && reports[2].contains("lease_waits=1"));
    // Not start, end, start, end, start, end (one after another).
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    let runs: Vec<&str> = runs.lines().collect();
    assert_eq!(
        runs,
        ["start", "end", "start", "start", "end", "end"],
        "{reports:#?}"
    );
    assert_eq!(redis.cli(&["--scan", "--pattern", "ndcache:k*:m"]), "");
}

#[test]
fn a_server_too_small_for_the_value_refuses_it() {
    // An empty Redis uses about 1 MB; it checks the limit before each
    // command, so the first 2 MiB chunk fits and the second does not.
    let Some(redis) = Redis::start(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])
    else {
        return;
    };
    let x = data(500_000, 16); // 4 MB: two chunks of 2 MiB
    let c = cache(options(&redis.url()), None);
    let (got, s) = c
        .call_with_source("sort", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Computed { stored: false });
    assert!(got.array().bitwise_eq(&raw("sort", &x)));
    c.flush();
    let st = c.info().remote.unwrap();
    assert_eq!((st.uploads, st.upload_failures), (0, 1), "{st}");
    assert!(st.errors >= 1, "{st}");
    assert!(
        !st.breaker_open,
        "an out-of-memory answer is not an outage: {st}"
    );
    // The chunk that fitted was deleted.
    assert_eq!(redis.cli(&["--scan", "--pattern", "ndcache:k*:[mc]*"]), "");
    drop(c);
    // With allkeys-lru, Redis evicts the first chunk to make room for the
    // second: the upload "succeeds" and the entry has lost a chunk. The
    // next reader finds out, counts it, and computes the right result.
    redis.cli(&["config", "set", "maxmemory-policy", "allkeys-lru"]);
    let c2 = cache(options(&redis.url()), None);
    let got = c2.call("sort", &[x.arg()], &Params::new()).unwrap();
    assert!(got.array().bitwise_eq(&raw("sort", &x)));
    c2.flush();
    let reader = cache(
        options(&redis.url()).mode(ndcache::remote::RemoteMode::ReadOnly),
        None,
    );
    let (got, s) = reader
        .call_with_source("sort", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Computed { stored: false });
    assert!(got.array().bitwise_eq(&raw("sort", &x)));
    let (w, r) = (c2.info().remote.unwrap(), reader.info().remote.unwrap());
    assert_eq!(w.upload_failures + r.corrupt, 1, "{w}\n{r}");
}

#[test]
fn an_entry_forged_without_the_secret_is_rejected() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(30_000, 18);
    let with = |secret: &str| {
        ArrayCache::builder()
            .remote(options(&redis.url()).chunk_bytes(CHUNK))
            .secret(secret)
            .build()
            .unwrap()
    };
    // An intruder writes entries: unsigned, then signed with another secret.
    for intruder in [
        cache(options(&redis.url()).chunk_bytes(CHUNK), None),
        with("guess"),
    ] {
        intruder.call("exp", &[x.arg()], &Params::new()).unwrap();
        drop(intruder);
        let c = with("team secret");
        let (got, s) = c
            .call_with_source("exp", &[x.arg()], &Params::new())
            .unwrap();
        assert_eq!(s, Source::Computed { stored: false });
        assert!(got.array().bitwise_eq(&raw("exp", &x)));
        c.flush();
        let st = c.info().remote.unwrap();
        assert_eq!((st.forged, st.hits, st.uploads), (1, 0, 1), "{st}");
        drop(c);
        // The forged entry was replaced by a signed one.
        let (_, s) = with("team secret")
            .call_with_source("exp", &[x.arg()], &Params::new())
            .unwrap();
        assert_eq!(s, Source::Remote);
        redis.cli(&["flushall"]);
    }
}

#[test]
fn a_disk_entry_forged_without_the_secret_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let x = data(1000, 19);
    let disk = |secret: Option<&str>| {
        let mut b = ArrayCache::builder().disk(dir.path());
        if let Some(s) = secret {
            b = b.secret(s);
        }
        b.build().unwrap()
    };
    let c = disk(None);
    c.call("exp", &[x.arg()], &Params::new()).unwrap();
    drop(c);
    let c = disk(Some("team secret"));
    let (got, s) = c
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Computed { stored: true });
    assert!(got.array().bitwise_eq(&raw("exp", &x)));
    assert_eq!(c.info().disk.unwrap().forged, 1);
    drop(c);
    // Its replacement is signed: a holder of the secret hits it, and a
    // reader without a secret still reads it (an older entry format reader
    // aside, signing is backward compatible).
    let (_, s) = disk(Some("team secret"))
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Disk);
    let (_, s) = disk(None)
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Disk);
    // A payload changed under a valid sidecar: forged for a signed reader.
    // (A small result: a row of the store, whose data is changed here.)
    let c = disk(Some("team secret"));
    let store = with_ext(dir.path(), "db");
    let db = rusqlite::Connection::open(&store).unwrap();
    let changed = db
        .execute(
            "UPDATE entries SET data = CAST(substr(data, 1, length(data) - 1) || x'ff' AS BLOB)",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let got = c.call("exp", &[x.arg()], &Params::new()).unwrap();
    assert!(got.array().bitwise_eq(&raw("exp", &x)));
    let d = c.info().disk.unwrap();
    assert_eq!(d.corrupt + d.forged, 1, "{d}");
}

/// The one file with extension `ext` under `dir`.
fn with_ext(dir: &std::path::Path, ext: &str) -> std::path::PathBuf {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                found.push(p);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}
