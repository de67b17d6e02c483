//! Step 8 of the tour, on its own: a production cache layer.
//!
//! Worker threads serve a Zipf-distributed stream of requests over a fixed
//! set of arrays through an `ArrayCache` with a byte budget and a TTL, with
//! plain LRU and with the cost-aware policy; the report compares what each
//! computes and saves, and latency with the same workload served without
//! the cache.
//!
//! Run: `cargo run --release --example service`

#[path = "shared/capstone.rs"]
mod capstone;

use std::time::Duration;

/// Formats a duration for the report.
fn ms(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn main() {
    let fast = std::env::var_os("NDCACHE_FAST").is_some();
    println!("a service of 4 workers answering array requests through an ArrayCache\n");
    capstone::run(fast);
}
