//! `ArrayCache`: hits and misses, shared results, batches, statistics,
//! errors, TTL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ndarray::{Array1, Array2, ShapeBuilder};
use ndcache::{AnyArray, ArrayCache, AsArg, Call, Error, ManualClock, Params, Registry};

/// A registry with a kernel that counts its runs: `plus_one` (f64).
fn counting_registry() -> (Registry, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let mut reg = Registry::new();
    reg.register_fn("plus_one", "1", 1, vec![], "adds one", move |inputs, _| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(AnyArray::from(inputs[0].typed::<f64>()?.mapv(|v| v + 1.0)))
    })
    .unwrap();
    reg.register_fn("fails", "1", 1, vec![], "always fails", |_, _| {
        Err(Error::Kernel {
            kernel: "fails".into(),
            message: "no luck".into(),
        })
    })
    .unwrap();
    (reg, runs)
}

#[test]
fn second_call_is_a_shared_hit() {
    let (reg, runs) = counting_registry();
    let cache = ArrayCache::builder().registry(reg).build().unwrap();
    let x = Array1::linspace(0.0, 1.0, 100);
    let a = cache.call("plus_one", &[x.arg()], &Params::new()).unwrap();
    let b = cache.call("plus_one", &[x.arg()], &Params::new()).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(a.array().ptr_eq(b.array()), "a hit never copies");
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.typed::<f64>().unwrap()[[99]], 2.0);
    let info = cache.info();
    assert_eq!((info.memory.hits, info.memory.misses), (1, 1));
    assert_eq!(info.bytes_hashed, 2 * 800);
    let k = cache.kernel_info("plus_one").unwrap();
    assert_eq!((k.calls, k.memory_hits, k.computed), (2, 1, 1));
    assert_eq!(
        k.time_saved, k.compute_time,
        "one hit saves one computation"
    );
    // The uncached path runs the kernel and touches nothing.
    let raw = cache
        .call_raw("plus_one", &[x.arg()], &Params::new())
        .unwrap();
    assert!(raw.bitwise_eq(a.array()));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.info().memory.hits, 1);
    cache.clear();
    assert_eq!(cache.info().memory.currsize, 0);
}

#[test]
fn layouts_share_entries_and_results_chain_without_hashing() {
    let (reg, runs) = counting_registry();
    let cache = ArrayCache::builder().registry(reg).build().unwrap();
    let c = Array2::from_shape_fn((30, 40), |(i, j)| (i * 40 + j) as f64);
    let mut f = Array2::zeros((30, 40).f());
    f.assign(&c);
    let a = cache.call("plus_one", &[c.arg()], &Params::new()).unwrap();
    let b = cache.call("plus_one", &[f.arg()], &Params::new()).unwrap();
    assert!(
        a.array().ptr_eq(b.array()),
        "C and F twins hit the same entry"
    );
    // Chained: a result as input hashes nothing.
    let x = cache.keyed(c.clone());
    let hashed = cache.info().bytes_hashed;
    for _ in 0..3 {
        let y = cache.call("plus_one", &[x.arg()], &Params::new()).unwrap();
        let z = cache.call("plus_one", &[y.arg()], &Params::new()).unwrap();
        assert_eq!(z.typed::<f64>().unwrap()[[0, 0]], 2.0);
    }
    assert_eq!(
        cache.info().bytes_hashed,
        hashed,
        "no byte hashed in chains"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "plus_one(c), then plus_one(plus_one(c))"
    );
}

#[test]
fn batch_deduplicates_and_keeps_order() {
    let (reg, runs) = counting_registry();
    let cache = ArrayCache::builder().registry(reg).build().unwrap();
    let x = Array1::from(vec![1.0, 2.0, 3.0]);
    let y = Array1::from(vec![5.0, 6.0]);
    let calls: Vec<Call<'_>> = [&x, &y, &x, &x, &y]
        .iter()
        .map(|a| Call::new("plus_one", vec![a.arg()], Params::new()))
        .chain([
            Call::new("nope", vec![x.arg()], Params::new()),
            Call::new("fails", vec![x.arg()], Params::new()),
        ])
        .collect();
    let out = cache.call_many(&calls);
    assert_eq!(out.len(), 7);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "two distinct calls");
    let first = out[0].as_ref().unwrap();
    assert!(first.array().ptr_eq(out[2].as_ref().unwrap().array()));
    assert!(first.array().ptr_eq(out[3].as_ref().unwrap().array()));
    assert_eq!(out[1].as_ref().unwrap().typed::<f64>().unwrap()[[1]], 7.0);
    assert!(matches!(out[5], Err(Error::UnknownKernel { .. })));
    assert!(matches!(out[6], Err(Error::Kernel { .. })));
    // x and y were each hashed once.
    assert_eq!(cache.info().bytes_hashed, 24 + 16);
}

#[test]
fn errors_name_what_was_wrong_and_are_not_cached() {
    let (reg, _) = counting_registry();
    let cache = ArrayCache::builder().registry(reg).build().unwrap();
    let x = Array1::from(vec![1.0f64]);
    let e = cache
        .call("plus_onr", &[x.arg()], &Params::new())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown kernel 'plus_onr'; did you mean 'plus_one'?"
    );
    let e = cache
        .call("plus_one", &[x.arg(), x.arg()], &Params::new())
        .unwrap_err();
    assert_eq!(e.to_string(), "kernel 'plus_one' takes 1 input(s), got 2");
    let e = cache
        .call("plus_one", &[x.arg()], &Params::new().axis(0))
        .unwrap_err();
    assert!(e.to_string().contains("invalid parameter 'axis'"), "{e}");
    let i = Array1::from(vec![1i32]);
    let e = cache
        .call("plus_one", &[i.arg()], &Params::new())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "expected an array of dtype float64, found int32"
    );
    for _ in 0..2 {
        let e = cache.call("fails", &[x.arg()], &Params::new()).unwrap_err();
        assert_eq!(e.to_string(), "kernel 'fails' failed: no luck");
    }
    assert_eq!(cache.kernel_info("fails").unwrap().computed, 0);
    assert_eq!(cache.info().memory.currsize, 0);
}

#[test]
fn ttl_and_byte_budget() {
    let (reg, runs) = counting_registry();
    let clock = Arc::new(ManualClock::new());
    let cache = ArrayCache::builder()
        .registry(reg)
        .ttl(Duration::from_secs(60))
        .clock(clock.clone())
        .max_bytes(8 * 1000)
        .build()
        .unwrap();
    let x = Array1::<f64>::zeros(500);
    cache.call("plus_one", &[x.arg()], &Params::new()).unwrap();
    clock.advance(Duration::from_secs(59));
    cache.call("plus_one", &[x.arg()], &Params::new()).unwrap();
    clock.advance(Duration::from_secs(1));
    cache.call("plus_one", &[x.arg()], &Params::new()).unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(cache.info().memory.expirations, 1);
    // Results over the budget are returned, not kept.
    let big = Array1::<f64>::zeros(2000);
    let r = cache
        .call("plus_one", &[big.arg()], &Params::new())
        .unwrap();
    assert_eq!(r.shape(), &[2000]);
    assert_eq!(cache.info().memory.rejected, 1);
    assert!(cache.info().memory.bytes <= 8000);
}

/// A kernel that panics gives every caller the same error, the leader
/// included, and the cache goes on (the leader's caller used to get the
/// panic itself, and its waiters `Error::Panicked`).
#[test]
fn a_panicking_kernel_gives_every_caller_the_same_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let mut reg = Registry::new();
    reg.register_fn(
        "flaky",
        "1",
        1,
        vec![],
        "panics the first time",
        move |inputs, _| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(200));
                panic!("flaky kernel: first call");
            }
            Ok(inputs[0].to_shared())
        },
    )
    .unwrap();
    let cache = Arc::new(ArrayCache::builder().registry(reg).build().unwrap());
    let x = Arc::new(Array1::linspace(0.0, 1.0, 10));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (cache, x) = (cache.clone(), x.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 50 }));
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    cache.call("flaky", &[x.arg()], &Params::new())
                }))
                .map(|r| r.map(|_| ()).map_err(|e| e.to_string()))
                .map_err(|_| "the call panicked".to_owned())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &results {
        let err = r
            .as_ref()
            .expect("no caller sees the panic itself")
            .as_ref();
        assert_eq!(
            err.unwrap_err(),
            "the computation of 'flaky' panicked: flaky kernel: first call",
            "{results:?}"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the waiters did not recompute"
    );
    // Not cached: the next call computes again, and succeeds.
    let ok = cache.call("flaky", &[x.arg()], &Params::new()).unwrap();
    assert_eq!(ok.typed::<f64>().unwrap(), x.view().into_dyn());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
