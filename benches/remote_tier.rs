//! The remote tier against the engine's limit, on a redis-server this bench
//! starts on a loopback port (it says so and skips when none is installed).
//!
//! - `remote_tier/hit/<size>`: `RemoteTier::get` of a stored result: the
//!   manifest, the chunks, the checks (length, `.npy` header, xxh3-128) and
//!   the array rebuilt.
//! - `remote_tier/redis_get/<size>`: a plain `GET` of the same number of
//!   bytes stored under one key, with the same client: what Redis and the
//!   `redis` crate cost at the least.
//! - `remote_tier/redis_get_chunks/8MB`: plain `GET`s of the same bytes in
//!   2 MiB keys, as the tier stores them (the engine's limit for chunks).
//! - `remote_tier/hit_signed/8MB`: the hit of a signed entry (the keyed
//!   BLAKE3 tag checked too): what signing costs a reader.
//! - `remote_tier/miss/8MB`: what the remote tier adds to a miss of an
//!   8 MB result: the lookup, the lease, and the upload (waited for here;
//!   a call does not wait for it). The kernel itself costs nothing (it
//!   returns a ready array).
//!
//! Targets: hit/8MB ≤ 1.5 × redis_get/8MB; hit/8KB ≤ 3 × redis_get/8KB.

#[path = "../tests/integration/remote/server.rs"]
mod server;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array1;
use ndcache::disk::EntryInfo;
use ndcache::remote::{RemoteOptions, RemoteTier};
use ndcache::{AnyArray, ArrayCache, ParamKind, ParamSpec, Params, Registry};

fn array(bytes: usize) -> AnyArray {
    AnyArray::from(Array1::from_shape_fn(bytes / 8, |i| (i as f64).sin()))
}

fn bench(c: &mut Criterion) {
    let Some(redis) =
        server::Redis::start(&["--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru"])
    else {
        eprintln!("remote_tier: skipped (no redis-server)");
        return;
    };
    let url = redis.url();
    let tier = RemoteTier::new(RemoteOptions::new(&url)).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut g = c.benchmark_group("remote_tier");
    for (label, bytes) in [("8MB", 8_000_000usize), ("8KB", 8_000)] {
        let value = array(bytes);
        let key = ndcache::call_key("bench", label, b"", &[]);
        tier.put(
            key,
            &value,
            EntryInfo::new("bench", "1", Duration::from_millis(10)),
        );
        tier.flush();
        let (hit, entry) = tier.get(key).expect("the value was stored");
        assert!(hit.bitwise_eq(&value));
        // The same number of bytes under one key, for the plain GET.
        let raw = vec![7u8; entry.bytes as usize];
        let _: () = redis::cmd("SET")
            .arg("bench:raw")
            .arg(&raw[..])
            .query(&mut conn)
            .unwrap();
        if bytes > 1 << 20 {
            g.sample_size(30).measurement_time(Duration::from_secs(8));
        } else {
            g.sample_size(100).measurement_time(Duration::from_secs(5));
        }
        g.throughput(Throughput::Bytes(entry.bytes));
        g.bench_function(format!("hit/{label}"), |b| {
            b.iter(|| black_box(tier.get(key).expect("a hit")))
        });
        g.bench_function(format!("redis_get/{label}"), |b| {
            b.iter(|| {
                let v: Vec<u8> = redis::cmd("GET").arg("bench:raw").query(&mut conn).unwrap();
                black_box(v)
            })
        });
        if bytes > 1 << 20 {
            let keys: Vec<String> = raw
                .chunks(2 << 20)
                .enumerate()
                .map(|(i, piece)| {
                    let k = format!("bench:raw:{i}");
                    let _: () = redis::cmd("SET")
                        .arg(&k)
                        .arg(piece)
                        .query(&mut conn)
                        .unwrap();
                    k
                })
                .collect();
            g.bench_function(format!("redis_get_chunks/{label}"), |b| {
                b.iter(|| {
                    for k in &keys {
                        let v: Vec<u8> = redis::cmd("GET").arg(k).query(&mut conn).unwrap();
                        black_box(v);
                    }
                })
            });
            let signed = RemoteTier::new(RemoteOptions::new(&url).secret("bench secret")).unwrap();
            let skey = ndcache::call_key("bench-signed", label, b"", &[]);
            signed.put(
                skey,
                &value,
                EntryInfo::new("bench", "1", Duration::from_millis(10)),
            );
            signed.flush();
            assert!(signed.get(skey).is_some());
            g.bench_function(format!("hit_signed/{label}"), |b| {
                b.iter(|| black_box(signed.get(skey).expect("a hit")))
            });
            // A miss: a new key every time (the seed parameter), a kernel
            // that costs nothing, nothing kept in memory.
            let mut reg = Registry::with_builtins();
            let ready = value.clone();
            let seed = ParamSpec {
                name: "seed",
                kind: ParamKind::Int,
                default: Some(0i64.into()),
                doc: "varies the key",
            };
            reg.register_fn("ready", "1", 0, vec![seed], "a ready array", move |_, _| {
                Ok(ready.clone())
            })
            .unwrap();
            let cache = ArrayCache::builder()
                .max_bytes(1)
                .registry(reg)
                .remote(RemoteOptions::new(&url).min_compute(Some(Duration::ZERO)))
                .build()
                .unwrap();
            let mut i = 0i64;
            g.bench_function(format!("miss/{label}"), |b| {
                b.iter(|| {
                    i += 1;
                    let r = cache.call("ready", &[], &Params::new().set("seed", i));
                    cache.flush();
                    black_box(r.unwrap())
                })
            });
        }
    }
    g.finish();
    let s = tier.stats();
    assert_eq!((s.errors, s.corrupt), (0, 0), "{s}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
