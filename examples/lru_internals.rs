//! Step 1 of the tour, with more room: `Memo` is `functools.lru_cache`.
//!
//! Same statistics as CPython to the number, the LRU eviction order made
//! visible, `call_uncached` as `__wrapped__`, and what `lru_cache` does not
//! give you: one computation per key when threads race (single-flight).
//!
//! Run: `cargo run --release --example lru_internals`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use ndcache::Memo;

fn main() {
    // @lru_cache(maxsize=128) def fib(n): ...
    let fib = Memo::new(128, |fib: &Memo<u64, u64>, n| {
        if n < 2 {
            n
        } else {
            fib.get(n - 1) + fib.get(n - 2)
        }
    });
    println!("fib(30) = {}", fib.get(30));
    println!("{}   <- CPython prints the same", fib.cache_info());
    // Each fib(n) misses once (31 misses for n = 0..=30); each n >= 2 asks
    // for n-1 (a miss, computed then) and n-2 (a hit): 28 hits.
    println!(
        "fib.call_uncached(5) = {} (not looked up, not stored)",
        fib.call_uncached(5)
    );
    println!(
        "{}   <- its two recursive calls were hits",
        fib.cache_info()
    );
    fib.cache_clear();
    println!("after cache_clear: {}", fib.cache_info());

    // LRU order with maxsize=4: calls 1 2 3 4 1 5 2 6 1.
    println!("\nsquare with maxsize=4, calls 1 2 3 4 1 5 2 6 1:");
    let square = Memo::new(4, |_: &Memo<i64, i64>, x| x * x);
    for x in [1, 2, 3, 4, 1, 5, 2, 6, 1] {
        let before = square.cache_info();
        square.get(x);
        let after = square.cache_info();
        let cached: Vec<i64> = (1..=6).filter(|k| square.tier().contains_key(k)).collect();
        println!(
            "  get({x}): {}  cached {:?}",
            if after.hits > before.hits {
                "hit "
            } else {
                "miss"
            },
            cached
        );
    }
    println!(
        "{}   <- CPython: hits=2, misses=7, currsize=4",
        square.cache_info()
    );
    println!("evictions: {}", square.stats().evictions);

    // functools.cache: unbounded.
    let fib_all = Memo::unbounded(|fib: &Memo<u64, u128>, n| {
        if n < 2 {
            u128::from(n)
        } else {
            fib.get(n - 1) + fib.get(n - 2)
        }
    });
    println!(
        "\nunbounded: fib(150) = {}  {}",
        fib_all.get(150),
        fib_all.cache_info()
    );

    // Eight threads ask for the same slow key at once: lru_cache would run
    // the function up to eight times; Memo runs it once.
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let slow = Arc::new(Memo::unbounded(move |_: &Memo<u64, u64>, n| {
        r.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(50));
        n * 2
    }));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (slow, barrier) = (slow.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                slow.get(21)
            })
        })
        .collect();
    let values: Vec<u64> = handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect();
    println!(
        "\n8 threads, one slow key: values {:?}, computed {} time(s), {} waited",
        values,
        runs.load(Ordering::SeqCst),
        slow.stats().waits
    );
}
