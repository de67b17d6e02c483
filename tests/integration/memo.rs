//! `Memo` against CPython's `functools.lru_cache` numbers.
//!
//! The expected numbers are what CPython 3.11 prints for the same programs:
//!
//! ```python
//! @functools.lru_cache(maxsize=128)
//! def fib(n): return n if n < 2 else fib(n-1) + fib(n-2)
//! fib(30); fib.cache_info()   # CacheInfo(hits=28, misses=31, maxsize=128, currsize=31)
//! fib.__wrapped__(5); fib.cache_info()   # CacheInfo(hits=30, misses=31, ...)
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ndcache::{CacheInfo, ManualClock, Memo};

fn fib_memo(maxsize: Option<u64>) -> Memo<u64, u64> {
    let f = |fib: &Memo<u64, u64>, n: u64| {
        if n < 2 {
            n
        } else {
            fib.get(n - 1) + fib.get(n - 2)
        }
    };
    match maxsize {
        Some(m) => Memo::new(m, f),
        None => Memo::unbounded(f),
    }
}

fn info(i: CacheInfo) -> (u64, u64, Option<u64>, u64) {
    (i.hits, i.misses, i.maxsize, i.currsize)
}

#[test]
fn fib_matches_cpython_lru_cache() {
    let fib = fib_memo(Some(128));
    assert_eq!(fib.get(30), 832040);
    assert_eq!(info(fib.cache_info()), (28, 31, Some(128), 31));
    assert_eq!(
        fib.cache_info().to_string(),
        "CacheInfo(hits=28, misses=31, maxsize=128, currsize=31)"
    );
    assert!((fib.cache_info().hit_rate() - 28.0 / 59.0).abs() < 1e-12);

    // __wrapped__(5): not looked up, not stored; fib(4) and fib(3) are hits.
    assert_eq!(fib.call_uncached(5), 5);
    assert_eq!(info(fib.cache_info()), (30, 31, Some(128), 31));

    fib.cache_clear();
    assert_eq!(info(fib.cache_info()), (0, 0, Some(128), 0));
}

#[test]
fn lru_order_matches_cpython_maxsize_4() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let square = Memo::new(4, move |_: &Memo<i64, i64>, x| {
        r.fetch_add(1, Ordering::SeqCst);
        x * x
    });
    for x in [1, 2, 3, 4, 1, 5, 2, 6, 1] {
        assert_eq!(square.get(x), x * x);
    }
    assert_eq!(info(square.cache_info()), (2, 7, Some(4), 4));
    assert_eq!(runs.load(Ordering::SeqCst), 7);
    // The survivors are the four most recently used: 5, 2, 6, 1.
    for x in [5, 2, 6, 1] {
        assert!(square.tier().contains_key(&x), "{x} should be cached");
    }
    assert!(!square.tier().contains_key(&3));
}

#[test]
fn maxsize_zero_caches_nothing_like_cpython() {
    // lru_cache(maxsize=0): every call is a miss, currsize stays 0.
    let f = Memo::new(0, |_: &Memo<u8, u8>, x| x);
    f.get(1);
    f.get(1);
    assert_eq!(info(f.cache_info()), (0, 2, Some(0), 0));
}

#[test]
fn unbounded_is_functools_cache() {
    let fib = fib_memo(None);
    assert_eq!(fib.get(90), 2880067194370816120);
    assert_eq!(info(fib.cache_info()), (88, 91, None, 91));
    assert_eq!(
        fib.cache_info().to_string(),
        "CacheInfo(hits=88, misses=91, maxsize=None, currsize=91)"
    );
}

#[test]
fn ttl_memo_recomputes_after_expiry() {
    let clock = Arc::new(ManualClock::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let m = Memo::builder()
        .maxsize(10)
        .ttl(Duration::from_millis(500))
        .clock(clock.clone())
        .build(move |_: &Memo<u8, u8>, x| {
            r.fetch_add(1, Ordering::SeqCst);
            x + 1
        })
        .unwrap();
    assert_eq!(m.get(1), 2);
    clock.advance(Duration::from_millis(499));
    assert_eq!(m.get(1), 2);
    clock.advance(Duration::from_millis(1));
    assert_eq!(m.get(1), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(m.stats().expirations, 1);
}

#[test]
fn concurrent_calls_compute_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let slow = Arc::new(Memo::unbounded(move |m: &Memo<u32, Arc<String>>, x| {
        r.fetch_add(1, Ordering::SeqCst);
        while m.stats().waits < 7 {
            thread::yield_now();
        }
        Arc::new(format!("value {x}"))
    }));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (slow, barrier) = (slow.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                slow.get(3)
            })
        })
        .collect();
    let values: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(values.iter().all(|v| Arc::ptr_eq(v, &values[0])));
}

#[test]
fn recursive_same_key_is_reported_not_deadlocked() {
    let m = Memo::unbounded(|m: &Memo<u8, u8>, x| {
        // A bug in the user's function: it asks for itself.
        m.try_get(x).map_or(0, |v| v + 1)
    });
    assert_eq!(m.get(1), 0);
}

/// Runs the test `name` of this binary in a child process with
/// `NDCACHE_CHILD=1`, so that a crash (a stack overflow aborts the whole
/// process) fails this test instead of killing the test run.
fn in_child_process(name: &str) -> Option<std::process::Output> {
    if std::env::var_os("NDCACHE_CHILD").is_some() {
        return None;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("NDCACHE_CHILD", "1")
        .output()
        .unwrap();
    Some(out)
}

/// A function asking for its own key, run on a rayon pool thread: the same
/// `Reentrant` error as off the pool (it overflowed the stack before: on
/// pool threads a nested request was taken for a stolen job and computed
/// again, for ever).
#[test]
fn recursive_same_key_is_reported_on_a_pool_thread_too() {
    let name = "memo::recursive_same_key_is_reported_on_a_pool_thread_too";
    if let Some(out) = in_child_process(name) {
        assert!(
            out.status.success(),
            "the child process failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let m = Memo::unbounded(|m: &Memo<u8, u8>, x| m.try_get(x).map_or(0, |v| v.saturating_add(1)));
    // On the pool, from inside a parallel iterator, and off the pool: the
    // same answer, the error seen by the inner call.
    assert_eq!(pool.install(|| m.get(1)), 0);
    let errs: Vec<String> = pool.install(|| {
        use rayon::prelude::*;
        (2u8..6)
            .into_par_iter()
            .map(|k| {
                let seen = Memo::unbounded(|m: &Memo<u8, u8>, x| match m.try_get(x) {
                    Err(e) => {
                        assert_eq!(
                            e.to_string(),
                            "recursive computation of the same key (it would wait for itself)"
                        );
                        100
                    }
                    Ok(v) => v,
                });
                seen.get(k).to_string()
            })
            .collect()
    });
    assert_eq!(errs, ["100"; 4]);
    assert_eq!(m.get(2), 0);
}
