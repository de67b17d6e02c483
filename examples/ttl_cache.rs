//! Step 4 of the tour, with more room: a TTL cache.
//!
//! Entries expire a fixed time after they were computed and are never served
//! after that; expired entries are purged on access and on insert (not only
//! on the next write, as in cachetools). A `ManualClock` makes the timeline
//! exact; the second half uses the real clock.
//!
//! Run: `cargo run --release --example ttl_cache`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ndarray::Array1;
use ndcache::{ArrayCache, AsArg, Clock, ManualClock, Memo, Params};

fn main() {
    // A "price lookup" that must not be more than 30 s stale.
    let clock = Arc::new(ManualClock::new());
    let lookups = Arc::new(AtomicUsize::new(0));
    let l = lookups.clone();
    let price = Memo::builder()
        .maxsize(100)
        .ttl(Duration::from_secs(30))
        .clock(clock.clone())
        .build(move |_: &Memo<&'static str, f64>, symbol| {
            l.fetch_add(1, Ordering::SeqCst);
            symbol.len() as f64 * 10.0
        })
        .expect("valid options");
    for (at, symbol) in [
        (0, "ACME"),
        (10, "ACME"),
        (29, "ACME"),
        (30, "ACME"),
        (45, "INITECH"),
        (59, "ACME"),
        (61, "ACME"),
    ] {
        let now = clock.now().as_secs();
        clock.advance(Duration::from_secs(at - now));
        let p = price.get(symbol);
        let s = price.stats();
        println!(
            "t={at:>2}s get({symbol:<7}) = {p}   lookups={} hits={} misses={} expirations={}",
            lookups.load(Ordering::SeqCst),
            s.hits,
            s.misses,
            s.expirations
        );
    }

    // The same with arrays and the real clock.
    let cache = ArrayCache::builder()
        .ttl(Duration::from_millis(100))
        .build()
        .expect("valid options");
    let x = Array1::linspace(-1.0, 1.0, 100_000);
    for step in 0..6 {
        cache
            .call("tanh", &[x.arg()], &Params::new())
            .expect("tanh");
        let m = cache.info().memory;
        println!(
            "t={:>3} ms  tanh(x): hits={} misses={} expirations={}",
            step * 40,
            m.hits,
            m.misses,
            m.expirations
        );
        std::thread::sleep(Duration::from_millis(40));
    }
}
