//! Single-flight under rayon: waiters on pool threads must not starve the
//! leader, work stealing must not look like recursion, and cycles of waits
//! must resolve. Also: a panic while finishing a flight wakes its waiters.
//! (Found by a review; each test hung or failed before the fix.)

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ndarray::Array1;
use ndcache::{
    memory::Policy, AnyArray, ArrayCache, AsArg, Error, ManualClock, Memo, MemoryTier, Params,
    Registry,
};
use rayon::prelude::*;

/// Runs `f` on its own thread; panics if it has not finished in `secs`.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: no answer in {secs} s (deadlock)"))
}

/// A kernel that takes a while, then uses rayon (as the builtins do).
fn slow_rayon_registry(sleep_ms: u64) -> Registry {
    let mut reg = Registry::new();
    reg.register_fn(
        "slow",
        "1",
        1,
        vec![],
        "slow, parallel",
        move |inputs, _| {
            std::thread::sleep(Duration::from_millis(sleep_ms));
            let v: Vec<f64> = inputs[0].typed::<f64>()?.iter().copied().collect();
            let s: f64 = v
                .par_iter()
                .with_min_len(1)
                .map(|a| {
                    std::thread::sleep(Duration::from_micros(100));
                    a + 1.0
                })
                .sum();
            Ok(AnyArray::from(ndarray::arr0(s)))
        },
    )
    .unwrap();
    reg
}

#[test]
fn rayon_workers_waiting_do_not_starve_an_external_leader() {
    within(20, "external leader", || {
        let cache = Arc::new(
            ArrayCache::builder()
                .registry(slow_rayon_registry(200))
                .build()
                .unwrap(),
        );
        let c = cache.clone();
        let leader = std::thread::spawn(move || {
            let x = Array1::linspace(0.0, 1.0, 64);
            c.call("slow", &[x.arg()], &Params::new()).is_ok()
        });
        std::thread::sleep(Duration::from_millis(50)); // the leader owns the flight
        let n = rayon::current_num_threads();
        (0..n).into_par_iter().with_min_len(1).for_each(|_| {
            let x = Array1::linspace(0.0, 1.0, 64);
            cache.call("slow", &[x.arg()], &Params::new()).unwrap();
        });
        assert!(leader.join().unwrap());
    });
}

#[test]
fn work_stealing_is_not_reported_as_recursion() {
    let reentrant = within(60, "work stealing", || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let mut reentrant = 0;
        for round in 0..100 {
            let cache = ArrayCache::builder()
                .registry(slow_rayon_registry(2))
                .build()
                .unwrap();
            let errs: Vec<Error> = pool.install(|| {
                (0..(2 + round % 4))
                    .into_par_iter()
                    .with_min_len(1)
                    .filter_map(|_| {
                        let x = Array1::linspace(0.0, 1.0, 16);
                        cache.call("slow", &[x.arg()], &Params::new()).err()
                    })
                    .collect()
            });
            reentrant += errs.len();
        }
        reentrant
    });
    assert_eq!(reentrant, 0, "spurious errors");
}

#[test]
fn a_job_stolen_by_the_leader_for_its_own_key_is_computed() {
    let results = within(20, "stolen job", || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut reg = Registry::new();
        reg.register_fn("joins", "1", 1, vec![], "joins", |inputs, _| {
            rayon::join(
                || std::thread::sleep(Duration::from_millis(100)),
                || std::thread::sleep(Duration::from_millis(300)),
            );
            Ok(inputs[0].to_shared())
        })
        .unwrap();
        // With a disk tier: the leader holds the key's lock file while the
        // stolen job asks for the same key (this hung before the disk tier
        // owned its protocol).
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(
            ArrayCache::builder()
                .registry(reg)
                .disk(dir.path())
                .build()
                .unwrap(),
        );
        let (tx, rx) = mpsc::channel();
        for delay in [0u64, 50] {
            let (c, tx) = (cache.clone(), tx.clone());
            std::thread::sleep(Duration::from_millis(delay));
            pool.spawn(move || {
                let x = Array1::linspace(0.0, 1.0, 8);
                let r = c.call("joins", &[x.arg()], &Params::new());
                tx.send(r.map(|_| ()).map_err(|e| e.to_string())).unwrap();
            });
        }
        let r = (0..2).map(|_| rx.recv().unwrap()).collect::<Vec<_>>();
        drop(cache);
        drop(dir);
        r
    });
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
}

#[test]
fn memoized_parallel_recursion_with_rayon_join() {
    let failures = within(60, "parallel fib", || {
        let mut failures = 0;
        for _ in 0..20 {
            let fib = Memo::unbounded(|fib: &Memo<u64, u64>, n: u64| {
                if n < 2 {
                    return n;
                }
                std::thread::sleep(Duration::from_micros(100));
                let (a, b) = rayon::join(|| fib.try_get(n - 1), || fib.try_get(n - 2));
                match (a, b) {
                    (Ok(a), Ok(b)) => a + b,
                    _ => u64::MAX / 4,
                }
            });
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(4)
                .build()
                .unwrap();
            if pool.install(|| fib.try_get(40)) != Ok(102_334_155) {
                failures += 1;
            }
        }
        failures
    });
    assert_eq!(
        failures, 0,
        "{failures} of 20 runs gave a wrong value or an error"
    );
}

/// Starts a leader computing key 1 slowly, then a waiter; returns what the
/// waiter got, or panics if it never wakes.
fn waiter_of_slow_leader(tier: Arc<MemoryTier<u64, u64>>) -> String {
    within(5, "waiter", move || {
        let t = tier.clone();
        let leader = std::thread::spawn(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                t.get_or_insert_with(1, || {
                    std::thread::sleep(Duration::from_millis(200));
                    7
                })
            }));
        });
        std::thread::sleep(Duration::from_millis(50));
        let r = tier.try_get_or_insert_with(1, || Ok::<u64, ()>(8));
        leader.join().unwrap();
        format!("{r:?}")
    })
}

#[test]
fn a_ttl_too_long_to_represent_never_expires() {
    let clock = Arc::new(ManualClock::new());
    clock.advance(Duration::from_secs(1));
    let tier = Arc::new(
        MemoryTier::builder()
            .ttl(Duration::MAX)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    assert_eq!(waiter_of_slow_leader(tier.clone()), "Ok(7)");
    clock.advance(Duration::from_secs(1 << 40));
    assert_eq!(tier.get(&1), Some(7));
}

#[test]
fn a_panicking_weigher_wakes_the_waiters() {
    let tier = Arc::new(
        MemoryTier::builder()
            .max_bytes(100)
            .weigher(|_, v: &u64| if *v == 7 { panic!("bad weight") } else { 1 })
            .build()
            .unwrap(),
    );
    assert_eq!(waiter_of_slow_leader(tier.clone()), "Err(Panicked)");
    assert_eq!(tier.get_or_insert_with(1, || 3), 3, "the cache is usable");
}

#[test]
fn a_byte_bounded_tier_evicts_in_global_lru_order() {
    let tier: MemoryTier<u64, u64> = MemoryTier::builder()
        .policy(Policy::Lru)
        .shards(8)
        .max_bytes(4)
        .weigher(|_, _| 1)
        .build()
        .unwrap();
    for round in 0..1000u64 {
        let base = round * 10;
        for k in base..base + 4 {
            tier.insert(k, k);
        }
        tier.get(&base); // now the most recently used
        tier.insert(base + 4, 0); // global LRU evicts base + 1
        assert!(
            tier.contains_key(&base),
            "round {round}: the hot entry was evicted"
        );
        assert!(
            !tier.contains_key(&(base + 1)),
            "round {round}: not the LRU entry"
        );
        tier.clear();
    }
}

/// A kernel that counts its runs per input and runs in parallel inside, in
/// nested `join`s that sleep: whoever runs a half waits in a `join` and
/// picks up other pool work meanwhile (a sweep item of the same key, on
/// the leader's thread or on the thread that stole a half).
fn counting_parallel_registry(runs: Arc<Mutex<HashMap<u64, usize>>>) -> Registry {
    fn nap() {
        std::thread::sleep(Duration::from_micros(500));
    }
    let mut reg = Registry::new();
    reg.register_fn(
        "count",
        "1",
        1,
        vec![],
        "counts its runs",
        move |inputs, _| {
            let x = inputs[0].typed::<f64>()?;
            *runs.lock().unwrap().entry(x[0].to_bits()).or_default() += 1;
            let half = || {
                nap();
                rayon::join(nap, nap);
            };
            rayon::join(half, half);
            Ok(AnyArray::from(x.mapv(f64::exp)))
        },
    )
    .unwrap();
    reg
}

/// Parameter sweeps on the rayon pool over a disk-backed cache, where
/// items share keys and the kernel itself runs in parallel: as a
/// `par_iter`, and as jobs spawned into the pool from outside (every pool
/// thread then steals sweep items from the pool's queue while it waits in a
/// `join`). Each round must end, give every item the right result, and run
/// the kernel at most once per key in the process. (Before the disk tier
/// owned its protocol, a thread that picked up an item of a key computed
/// below it on its own stack, or below the `join` half it ran, waited on a
/// lock file held by that computation for ever.)
fn disk_sweep(threads: usize) {
    let summary = within(30, "disk-tier sweep", move || {
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap(),
        );
        let mut extra_runs = 0;
        for round in 0..100u64 {
            let dir = tempfile::tempdir().unwrap();
            let runs = Arc::new(Mutex::new(HashMap::new()));
            let cache = Arc::new(
                ArrayCache::builder()
                    .registry(counting_parallel_registry(runs.clone()))
                    .disk(dir.path())
                    .build()
                    .unwrap(),
            );
            // 12 items, 6 or 7 keys: neighbours share a key, and the pairs
            // shift with the round.
            let inputs: Vec<Array1<f64>> = (0..12u64)
                .map(|i| (i + round % 2) / 2)
                .map(|k| Array1::from_elem(8 + (round % 3) as usize, k as f64 + 0.5))
                .collect();
            let call = |cache: &ArrayCache, x: &Array1<f64>| -> Vec<f64> {
                let r = cache.call("count", &[x.arg()], &Params::new()).unwrap();
                r.typed::<f64>().unwrap().iter().copied().collect()
            };
            let out: Vec<Vec<f64>> = if round % 2 == 0 {
                pool.install(|| {
                    inputs
                        .par_iter()
                        .with_min_len(1)
                        .map(|x| call(&cache, x))
                        .collect()
                })
            } else {
                let (tx, rx) = mpsc::channel();
                for (i, x) in inputs.iter().enumerate() {
                    let (cache, x, tx) = (cache.clone(), x.clone(), tx.clone());
                    pool.spawn(move || tx.send((i, call(&cache, &x))).unwrap());
                }
                let mut out = vec![Vec::new(); inputs.len()];
                for _ in 0..inputs.len() {
                    let (i, y) = rx.recv().unwrap();
                    out[i] = y;
                }
                out
            };
            for (x, y) in inputs.iter().zip(&out) {
                let want: Vec<f64> = x.iter().map(|a| a.exp()).collect();
                assert_eq!(&want, y, "round {round}: wrong result");
            }
            cache.flush();
            let runs = runs.lock().unwrap();
            assert_eq!(runs.len(), 6 + (round % 2) as usize, "round {round}");
            extra_runs += runs.values().map(|&n| n - 1).sum::<usize>();
        }
        extra_runs
    });
    assert_eq!(
        summary, 0,
        "the kernel ran more than once per key ({summary} extra runs in 100 rounds)"
    );
}

#[test]
fn a_parallel_sweep_over_a_disk_tier_computes_each_key_once_on_2_threads() {
    disk_sweep(2);
}

#[test]
fn a_parallel_sweep_over_a_disk_tier_computes_each_key_once_on_4_threads() {
    disk_sweep(4);
}

#[test]
fn a_byte_bounded_cost_aware_tier_evicts_the_global_minimum() {
    let tier: MemoryTier<u64, u64> = MemoryTier::builder()
        .shards(8)
        .max_bytes(4)
        .weigher(|_, _| 1)
        .cost(|k, _| if k % 10 == 3 { 0.5 } else { 1.0 })
        .build()
        .unwrap();
    for round in 0..1000u64 {
        let base = round * 10;
        for k in base..base + 4 {
            tier.insert(k, k);
        }
        tier.get(&base);
        tier.get(&(base + 1));
        tier.insert(base + 4, 0); // evicts base + 3, the cheapest, whatever its shard
        for k in [base, base + 1, base + 2, base + 4] {
            assert!(tier.contains_key(&k), "round {round}: {k} was evicted");
        }
        assert!(!tier.contains_key(&(base + 3)), "round {round}");
        tier.clear();
    }
}
