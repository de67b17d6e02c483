//! Step 8, the production cache layer: worker threads serve a Zipf-distributed
//! stream of requests through an `ArrayCache` with a byte budget and a TTL,
//! once with plain LRU and once with the cost-aware policy (the default),
//! to compare what each computes and saves. Shared by `examples/tour.rs`,
//! `examples/service.rs` and (its stream only) `examples/policy_sim.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ndarray::Array1;
use ndcache::{ArrayCache, AsArg, Keyed, Params, Policy};

/// The workload's size.
pub struct Config {
    /// Distinct input arrays held by the service.
    pub arrays: usize,
    /// Elements per array (f64).
    pub len: usize,
    /// Requests served with the cache.
    pub requests: usize,
    /// Requests served without the cache (the baseline; the same stream's start).
    pub baseline_requests: usize,
    /// Worker threads.
    pub workers: usize,
    /// Zipf exponent of the popularity of (array, kernel) pairs.
    pub zipf_s: f64,
    /// Memory budget of the cache.
    pub max_bytes: u64,
    /// Time to live of cached results.
    pub ttl: Duration,
}

impl Config {
    /// The tour's workload (`fast`: a tenth of it, for tests).
    pub fn new(fast: bool) -> Self {
        Config {
            arrays: 24,
            len: if fast { 20_000 } else { 200_000 },
            requests: if fast { 4_000 } else { 40_000 },
            baseline_requests: if fast { 400 } else { 2_000 },
            workers: 4,
            zipf_s: 1.1,
            max_bytes: if fast { 8 << 20 } else { 64 << 20 },
            ttl: if fast {
                Duration::from_millis(300)
            } else {
                Duration::from_secs(2)
            },
        }
    }
}

/// The kernels the service offers, with their parameters.
fn endpoints() -> Vec<(&'static str, Params)> {
    vec![
        ("exp", Params::new()),
        ("tanh", Params::new()),
        ("sort", Params::new()),
        ("cumsum", Params::new()),
        ("std", Params::new().ddof(1)),
    ]
}

/// xorshift64*: seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` draws from a Zipf(s) distribution over `0..items` (0 most popular).
pub fn zipf_stream(items: usize, s: f64, n: usize, seed: u64) -> Vec<usize> {
    let weights: Vec<f64> = (1..=items).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(items);
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let u = rng.uniform();
            cdf.partition_point(|&c| c < u).min(items - 1)
        })
        .collect()
}

/// Latency percentiles of a set of request timings.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Serves `stream` with `workers` threads; returns each request's latency.
fn serve(
    workers: usize,
    stream: &[usize],
    handle: &(dyn Fn(usize) + Sync),
) -> (Vec<Duration>, Duration) {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&item) = stream.get(i) else { break };
                        let t = Instant::now();
                        handle(item);
                        mine.push(t.elapsed());
                    }
                    mine
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("worker panicked"))
            .collect()
    });
    let wall = start.elapsed();
    latencies.sort();
    (latencies, wall)
}

/// What serving the stream through one cache gave.
struct Served {
    policy: Policy,
    latencies: Vec<Duration>,
    wall: Duration,
    info: ndcache::ArrayCacheInfo,
    computed: u64,
    /// The most computations single-flight allows: each key once, plus once
    /// more each time memory let it go.
    bound: u64,
}

/// Serves `stream` through a new cache with `policy`.
fn serve_with(
    cfg: &Config,
    policy: Policy,
    arrays: &[Keyed],
    stream: &[usize],
    distinct: usize,
) -> Served {
    let cache = ArrayCache::builder()
        .policy(policy)
        .max_bytes(cfg.max_bytes)
        .ttl(cfg.ttl)
        .build()
        .expect("valid options");
    let endpoints = endpoints();
    let (latencies, wall) = serve(cfg.workers, stream, &|item| {
        let (name, params) = &endpoints[item % endpoints.len()];
        let input = &arrays[item / endpoints.len()];
        cache
            .call(name, &[input.arg()], params)
            .expect("request failed");
    });
    let info = cache.info();
    let m = info.memory;
    let computed: u64 = info.kernels.iter().map(|k| k.computed).sum();
    let bound = distinct as u64 + m.evictions + m.expirations + m.rejected + m.not_admitted;
    assert!(
        computed <= bound,
        "single-flight bound violated: {computed} > {bound}"
    );
    Served {
        policy,
        latencies,
        wall,
        info,
        computed,
        bound,
    }
}

/// Runs the capstone and prints its report.
pub fn run(fast: bool) {
    let cfg = Config::new(fast);
    // The service loads its arrays once and keys them once.
    let arrays: Vec<Keyed> = (0..cfg.arrays)
        .map(|a| {
            let x = Array1::from_shape_fn(cfg.len, |i| {
                ((i * (a + 3)) as f64 * 1e-4).sin() + a as f64 * 0.01
            });
            Keyed::new(x.into())
        })
        .collect();
    let endpoints = endpoints();
    let items = cfg.arrays * endpoints.len();
    let stream = zipf_stream(items, cfg.zipf_s, cfg.requests, 42);
    let mut distinct: Vec<usize> = stream.clone();
    distinct.sort_unstable();
    distinct.dedup();

    // The same stream through plain LRU, then through the default policy.
    let lru = serve_with(&cfg, Policy::Lru, &arrays, &stream, distinct.len());
    let best = serve_with(&cfg, Policy::CostAware, &arrays, &stream, distinct.len());
    let raw_cache = ArrayCache::new();
    let (raw, raw_wall) = serve(cfg.workers, &stream[..cfg.baseline_requests], &|item| {
        let (name, params) = &endpoints[item % endpoints.len()];
        let input = &arrays[item / endpoints.len()];
        raw_cache
            .call_raw(name, &[input.arg()], params)
            .expect("request failed");
    });

    println!(
        "   {} workers, {} arrays x {} kernels = {} keys, Zipf s={}, budget {} MB, TTL {:?}",
        cfg.workers,
        cfg.arrays,
        endpoints.len(),
        items,
        cfg.zipf_s,
        cfg.max_bytes >> 20,
        cfg.ttl
    );
    // A hit saves one computation of its kernel. Timings of single
    // computations vary with what the other workers do (and the first run
    // pays for warming up): value every hit at its kernel's mean compute
    // time over both runs, so that the policies are compared on hits alone.
    let mean_cost = |name: &str| {
        let (mut t, mut n) = (Duration::ZERO, 0);
        for s in [&lru, &best] {
            if let Some(k) = s.info.kernels.iter().find(|k| k.name == name) {
                t += k.compute_time;
                n += k.computed;
            }
        }
        t.as_secs_f64() / n.max(1) as f64
    };
    let saved = |s: &Served| -> f64 {
        let k = &s.info.kernels;
        k.iter()
            .map(|k| k.memory_hits as f64 * mean_cost(&k.name))
            .sum()
    };
    println!("   the same {} requests through each policy:", cfg.requests);
    println!("     policy       computations   hit rate   evictions   not admitted   time saved");
    for s in [&lru, &best] {
        let m = &s.info.memory;
        println!(
            "     {:<12} {:>12}   {:>7.1}%   {:>9}   {:>12}   {:>8.2} s",
            s.policy.name(),
            s.computed,
            m.hit_rate() * 100.0,
            m.evictions,
            m.not_admitted,
            saved(s)
        );
    }
    println!(
        "   cost-aware (the default) against LRU: {:.2}x the computations, {:.2}x the time saved",
        best.computed as f64 / lru.computed.max(1) as f64,
        saved(&best) / saved(&lru).max(1e-9)
    );
    println!("   (time saved: each hit at its kernel's mean compute time over both runs)");
    let m = best.info.memory;
    println!(
        "   cost-aware: requests {}   hit rate {:.1}%   computations {}   evictions {}   expirations {}   waits {}",
        cfg.requests,
        m.hit_rate() * 100.0,
        best.computed,
        m.evictions,
        m.expirations,
        m.waits
    );
    for s in [&lru, &best] {
        println!(
            "   {}: computations {} <= distinct keys {} + evictions + expirations + rejected + not admitted = {}: \
             no key computed twice at once",
            s.policy.name(),
            s.computed,
            distinct.len(),
            s.bound
        );
    }
    let (lat, wall) = (&best.latencies, best.wall);
    println!("                     p50          p99          throughput");
    println!(
        "   with cache    {:>10}   {:>10}   {:>8.0} req/s",
        super::ms(percentile(lat, 0.50)),
        super::ms(percentile(lat, 0.99)),
        cfg.requests as f64 / wall.as_secs_f64()
    );
    println!(
        "   without       {:>10}   {:>10}   {:>8.0} req/s   (first {} requests of the same stream)",
        super::ms(percentile(&raw, 0.50)),
        super::ms(percentile(&raw, 0.99)),
        cfg.baseline_requests as f64 / raw_wall.as_secs_f64(),
        cfg.baseline_requests
    );
    println!(
        "   time saved by hits (cost-aware, as the cache measured it): {}",
        super::ms(best.info.time_saved)
    );
}
