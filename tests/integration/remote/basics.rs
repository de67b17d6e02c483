//! One process, one server: round trips inline and in chunks, write-back
//! to disk and memory, modes, namespaces, TTL, admission, signing.

use std::time::Duration;

use ndcache::remote::{RemoteMode, RemoteTier};
use ndcache::{ArrayCache, AsArg, Params, Source};

use super::server::Redis;
use super::{cache, data, options, raw};

/// Chunks of 64 KiB (the smallest allowed) make small arrays chunked.
const CHUNK: u32 = 64 << 10;

#[test]
fn values_round_trip_inline_and_in_chunks_bit_for_bit() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let o = || options(&redis.url()).chunk_bytes(CHUNK);
    // The .npy header is 128 bytes: payloads just under, at and over one
    // chunk, several chunks, and an empty array.
    let sizes = [
        0,
        10,
        (CHUNK as usize - 128) / 8,
        (CHUNK as usize - 128) / 8 + 1,
        100_000,
    ];
    let writer = cache(o(), None);
    for (i, &n) in sizes.iter().enumerate() {
        let x = data(n, i as u64);
        let (_, s) = writer
            .call_with_source("exp", &[x.arg()], &Params::new())
            .unwrap();
        assert_eq!(s, Source::Computed { stored: false });
    }
    writer.flush();
    let w = writer.info().remote.unwrap();
    assert_eq!((w.uploads, w.misses, w.errors), (5, 5, 0), "{w}");
    let reader = cache(o(), None);
    for (i, &n) in sizes.iter().enumerate() {
        let x = data(n, i as u64);
        let (got, s) = reader
            .call_with_source("exp", &[x.arg()], &Params::new())
            .unwrap();
        assert_eq!(s, Source::Remote, "n = {n}");
        assert!(got.array().bitwise_eq(&raw("exp", &x)), "n = {n}");
    }
    let r = reader.info().remote.unwrap();
    assert_eq!((r.hits, r.misses, r.corrupt), (5, 0, 0), "{r}");
    assert_eq!(r.bytes_read, w.bytes_written);
    assert_eq!(reader.kernel_info("exp").unwrap().remote_hits, 5);
    // Two values were chunked: 2 and 13 chunks.
    let keys = redis.cli(&["--scan", "--pattern", "ndcache:k1:r1:*:c:*"]);
    assert_eq!(keys.lines().count(), 2 + 13, "{keys}");
}

#[test]
fn a_remote_hit_is_written_back_to_disk_and_memory() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(50_000, 7);
    {
        let c = cache(options(&redis.url()), None);
        c.call("sort", &[x.arg()], &Params::new()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let c = cache(options(&redis.url()), Some(dir.path()));
    let (a, s1) = c
        .call_with_source("sort", &[x.arg()], &Params::new())
        .unwrap();
    let (b, s2) = c
        .call_with_source("sort", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!((s1, s2), (Source::Remote, Source::Memory));
    assert!(a.array().ptr_eq(b.array()));
    c.flush();
    assert_eq!(c.info().disk.unwrap().writes, 1);
    // The disk entry records the original compute time, not the load time.
    let entry = &c.disk().unwrap().entries().unwrap()[0];
    assert!(entry.meta.compute_time > Duration::ZERO);
    drop(c);
    // A new process on the same directory: a disk hit, Redis not asked.
    let d = cache(options(&redis.url()), Some(dir.path()));
    let (e, s) = d
        .call_with_source("sort", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Disk);
    assert!(e.array().bitwise_eq(&raw("sort", &x)));
    assert_eq!(
        d.info().remote.unwrap().hits + d.info().remote.unwrap().misses,
        0
    );
}

#[test]
fn read_only_mode_reads_and_writes_nothing() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let (x, y) = (data(1000, 1), data(1000, 2));
    cache(options(&redis.url()), None)
        .call("exp", &[x.arg()], &Params::new())
        .unwrap();
    let values = || {
        redis
            .cli(&["--scan", "--pattern", "ndcache:k*"])
            .lines()
            .count()
    };
    assert_eq!(values(), 1);
    let keys = redis.cli(&["dbsize"]);
    let ro = cache(options(&redis.url()).mode(RemoteMode::ReadOnly), None);
    let (_, s) = ro
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Remote);
    let (got, s) = ro
        .call_with_source("exp", &[y.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Computed { stored: false });
    assert!(got.array().bitwise_eq(&raw("exp", &y)));
    drop(ro);
    // No upload, no lease, no fleet counters.
    assert_eq!(values(), 1);
    assert_eq!(redis.cli(&["dbsize"]), keys);
    let off = cache(options(&redis.url()).mode(RemoteMode::Off), None);
    let (_, s) = off
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Computed { stored: false });
}

#[test]
fn namespaces_are_isolated_and_clear_removes_one() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    redis.cli(&["set", "someone-else:key", "keep me"]);
    let x = data(1000, 3);
    for ns in ["team-a", "team-b"] {
        let c = cache(options(&redis.url()).namespace(ns), None);
        c.call("exp", &[x.arg()], &Params::new()).unwrap();
    }
    // team-b does not see team-a's entry: it computed and uploaded its own.
    let a = RemoteTier::new(options(&redis.url()).namespace("team-a")).unwrap();
    let b = RemoteTier::new(options(&redis.url()).namespace("team-b")).unwrap();
    assert_eq!(a.entries().unwrap().len(), 1);
    assert_eq!(b.entries().unwrap().len(), 1);
    let e = &a.entries().unwrap()[0];
    assert_eq!(
        (e.kernel.as_str(), e.shape.as_slice()),
        ("exp", &[1000][..])
    );
    // Entry and fleet counters.
    assert_eq!(a.clear().unwrap(), 2);
    assert!(a.entries().unwrap().is_empty());
    assert_eq!(b.entries().unwrap().len(), 1);
    assert_eq!(redis.cli(&["get", "someone-else:key"]), "keep me");
    assert!(
        RemoteTier::new(options(&redis.url()).mode(RemoteMode::ReadOnly))
            .unwrap()
            .clear()
            .is_err()
    );
    assert!(RemoteTier::new(options(&redis.url()).namespace("a:b")).is_err());
}

#[test]
fn ttl_is_set_on_every_key_and_refreshed_by_a_hit() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let ttl = Duration::from_secs(30);
    let o = || options(&redis.url()).ttl(ttl).chunk_bytes(CHUNK);
    let x = data(20_000, 4); // 160 KB: 3 chunks
    cache(o(), None)
        .call("exp", &[x.arg()], &Params::new())
        .unwrap();
    let pttl = |pattern: &str| -> Vec<i64> {
        redis
            .cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(|k| redis.cli(&["pttl", k]).parse().unwrap())
            .collect()
    };
    let m = pttl("ndcache:*:m");
    let chunks = pttl("ndcache:*:c:*");
    assert_eq!((m.len(), chunks.len()), (1, 3));
    assert!(m[0] > 25_000 && m[0] <= 30_000, "{m:?}");
    // Chunks outlive their manifest.
    assert!(chunks.iter().all(|&c| c > m[0]), "{chunks:?} {m:?}");
    redis.cli(&[
        "pexpire",
        &redis.cli(&["--scan", "--pattern", "ndcache:*:m"]),
        "5000",
    ]);
    let (got, s) = cache(o(), None)
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Remote);
    assert!(got.array().bitwise_eq(&raw("exp", &x)));
    assert!(pttl("ndcache:*:m")[0] > 25_000, "the hit refreshed the TTL");
}

#[test]
fn cheap_results_are_not_uploaded_unless_asked() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(1000, 5);
    let c = cache(
        options(&redis.url()).min_compute(Some(Duration::from_secs(3600))),
        None,
    );
    c.call("exp", &[x.arg()], &Params::new()).unwrap();
    c.flush();
    let s = c.info().remote.unwrap();
    assert_eq!((s.uploads, s.upload_skipped), (0, 1), "{s}");
    // The default rule: `add` of 1000 elements takes microseconds, loading
    // it at least a round trip.
    let c = cache(options(&redis.url()).min_compute(None), None);
    c.call("add", &[x.arg(), x.arg()], &Params::new()).unwrap();
    c.flush();
    assert_eq!(c.info().remote.unwrap().upload_skipped, 1);
    drop(c);
    // Nothing stored (the leases left say "declined" until they expire).
    assert_eq!(redis.cli(&["--scan", "--pattern", "ndcache:k*:m"]), "");
}

#[test]
fn signed_entries_are_read_by_holders_of_the_secret() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(30_000, 6);
    let signed = || {
        ArrayCache::builder()
            .remote(options(&redis.url()).chunk_bytes(CHUNK))
            .secret("team secret")
            .build()
            .unwrap()
    };
    signed().call("exp", &[x.arg()], &Params::new()).unwrap();
    let c = signed();
    let (got, s) = c
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Remote);
    assert!(got.array().bitwise_eq(&raw("exp", &x)));
    assert_eq!(c.info().remote.unwrap().forged, 0);
    // A reader without the secret cannot check, and accepts.
    let (_, s) = cache(options(&redis.url()), None)
        .call_with_source("exp", &[x.arg()], &Params::new())
        .unwrap();
    assert_eq!(s, Source::Remote);
}

#[test]
fn the_cli_lists_shows_and_clears_a_namespace() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(300_000, 8); // 2.4 MB: chunked with the default chunk size
    cache(options(&redis.url()), None)
        .call("sort", &[x.arg()], &Params::new())
        .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ndcache"))
            .args(args)
            .env("NDCACHE_REMOTE", redis.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let ls = run(&["remote", "ls"]);
    assert!(ls.contains("sort") && ls.contains("[300000]"), "{ls}");
    assert!(ls.trim_end().ends_with("1 entry, 2.3 MiB"), "{ls}");
    let stats = run(&["remote", "stats"]);
    assert!(stats.contains("entries    1"), "{stats}");
    assert!(stats.contains("policy noeviction"), "{stats}");
    assert!(stats.contains("hint"), "{stats}");
    assert!(stats.contains("fleet      uploads          1"), "{stats}");
    let clear = run(&["remote", "clear"]);
    assert!(
        clear.starts_with("removed 4 keys of namespace ndcache"),
        "{clear}"
    );
    assert_eq!(redis.cli(&["dbsize"]), "0");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ndcache"))
        .args(["remote", "ls"])
        .env_remove("NDCACHE_REMOTE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--remote URL"));
}

/// Expressions go through the same tier chain (`get_or_compute`): a fused
/// expression evaluated on one machine is a remote hit on another.
#[test]
fn an_expression_is_shared_through_redis() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let x = data(50_000, 9);
    let expr = || (ndcache::Expr::new(&x).sin() * 2.0 + 1.0).exp();
    let a = cache(options(&redis.url()), None);
    let first = expr().eval(&a).unwrap();
    a.flush();
    assert_eq!(a.info().remote.unwrap().uploads, 1);
    let b = cache(options(&redis.url()), None);
    let second = expr().eval(&b).unwrap();
    let s = b.info().remote.unwrap();
    assert_eq!((s.hits, s.misses), (1, 0), "{s}");
    let oracle = expr().eval_raw(b.registry()).unwrap();
    assert_eq!(second.array(), &oracle);
    assert_eq!(first.array(), second.array());
}
