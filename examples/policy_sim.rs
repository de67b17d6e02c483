//! The policy simulator: replays seeded synthetic workloads through the
//! real memory tier, once with plain LRU and once with the cost-aware
//! policy, and compares the compute time their hits save with an offline
//! upper bound.
//!
//! Run: `cargo run --release --example policy_sim` (a table, about 10 s),
//! `-- --json` (one JSON object), `-- --plot policy_sim.svg` (time saved
//! against budget, one panel per workload), `-- --fast` (smaller workloads,
//! for the tests; `NDCACHE_FAST=1` too).
//!
//! # What is replayed
//!
//! A request names a key; its result has a size (bytes) and takes a time
//! to compute (this request's timing). Nothing is allocated or computed:
//! the tier holds the results' metadata, weighed by their sizes. A miss
//! "computes" the result, which records its timing in the cost estimate of
//! the result's class (its kernel and size bucket, as `ArrayCache` does),
//! and inserts it through the tier's miss path (`get_or_insert_with`, with
//! the admission gate). A hit saves this request's timing. One shard, so
//! every run is exactly reproducible.
//!
//! # Workloads
//!
//! - W1: mixed-cost Zipf(0.9): sizes 8 KB–8 MB and costs 0.05–20 ms
//!   (log-uniform, independent of each other and of popularity; twelve
//!   kernels, each key ±15% around its kernel's cost).
//! - W2: the same popularity with a uniform cost per byte (1 ns/B): cost
//!   carries no information beyond size.
//! - W3: half the requests W1-like, 35% a loop over keys totalling 12% of
//!   the working set (slightly larger than the 10% budget), 15% a scan of
//!   unique, large, cheap results.
//! - W4: W1 whose popularity ranks are reshuffled every eighth of the run.
//! - W5: W1 with noisy timings: each is the key's cost times U(0.3, 1.7).
//! - W6: W1 plus 5% of requests for unique results costing 0.2–1 s
//!   (expensive one-hit wonders).
//! - W7: the tour's service stream (examples/shared/capstone.rs): 24
//!   arrays × 5 kernels, Zipf(1.1), results of 1.6 MB (8 B for `std`),
//!   with the kernels' costs measured on this machine for 200,000 f64.
//!
//! The budgets are 5%, 10% and 25% of the working set: the bytes of the
//! distinct results requested at least twice (a result asked for once can
//! be hit by no policy).
//!
//! # The bound
//!
//! A cost-weighted PFOO-L (Berger et al., SIGMETRICS'18, generalized to
//! costs): each interval between two requests of a key is an item of
//! value the second request's timing and volume size × length (in
//! requests); items sorted by value per volume fill `budget × requests`
//! byte-requests, the last one fractionally. It relaxes "the budget holds
//! at every instant" to "on average", so no policy saves more. Its hit
//! ratios are those of this time-optimal relaxation, not bounds.

use std::fmt::Write as _;
use std::sync::Arc;

use ndcache::memory::{CostEstimate, MemoryTier, Policy};

#[path = "shared/capstone.rs"]
#[allow(dead_code)]
mod capstone;

/// The budgets, in percent of the working set.
const BUDGETS: [u32; 3] = [5, 10, 25];

const KB: f64 = 1024.0;
const MB: f64 = 1024.0 * 1024.0;
const MS: f64 = 1e6; // nanoseconds

/// splitmix64: seeded, reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo * (hi / lo).powf(self.unit())
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A random permutation of `0..n` (Fisher–Yates).
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

/// Zipf(s) over `0..n` by inverse CDF: a table and a binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// What the tier holds for one key: its size and its cost class.
#[derive(Clone, Copy, Debug)]
struct Item {
    size: u64,
    class: u32,
    /// The key's cost (nanoseconds) before any timing noise.
    cost: f64,
}

/// Classes are a kernel and a size bucket (a power of two), as in `ArrayCache`.
const BUCKETS: u32 = 64;

fn item(kernel: u32, size: f64, cost: f64) -> Item {
    let size = size.max(1.0) as u64;
    Item {
        size,
        class: kernel * BUCKETS + (63 - size.leading_zeros()),
        cost,
    }
}

/// A request stream: keys index `items`; each request has its own timing.
struct Workload {
    name: &'static str,
    items: Vec<Item>,
    requests: Vec<(u32, f64)>,
}

impl Workload {
    fn classes(&self) -> usize {
        self.items
            .iter()
            .map(|i| i.class as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// The bytes of the distinct keys requested at least twice.
    fn working_set(&self) -> u64 {
        let mut seen = vec![0u8; self.items.len()];
        for &(k, _) in &self.requests {
            seen[k as usize] = seen[k as usize].saturating_add(1);
        }
        seen.iter()
            .zip(&self.items)
            .filter(|(n, _)| **n >= 2)
            .map(|(_, it)| it.size)
            .sum()
    }
}

/// How big the workloads are.
#[derive(Clone, Copy)]
struct Scale {
    keys: usize,
    requests: usize,
    fast: bool,
}

/// Keys with mixed costs, uncorrelated with their sizes: W1's.
fn mixed_items(rng: &mut Rng, n: usize) -> Vec<Item> {
    let kernels: Vec<f64> = (0..12)
        .map(|_| rng.log_uniform(0.05 * MS, 20.0 * MS))
        .collect();
    (0..n)
        .map(|_| {
            let k = rng.below(kernels.len());
            let size = rng.log_uniform(8.0 * KB, 8.0 * MB);
            item(k as u32, size, kernels[k] * rng.uniform(0.85, 1.15))
        })
        .collect()
}

/// Zipf(0.9) requests over `items`, popularity independent of the keys'
/// attributes; ranks reshuffled `shifts` times during the run.
fn zipf_requests(rng: &mut Rng, n_keys: usize, n: usize, shifts: usize) -> Vec<u32> {
    let zipf = Zipf::new(n_keys, 0.9);
    let mut rank_to_key = rng.permutation(n_keys);
    let period = n / (shifts + 1) + 1;
    (0..n)
        .map(|i| {
            if i > 0 && i % period == 0 {
                rank_to_key = rng.permutation(n_keys);
            }
            rank_to_key[zipf.sample(rng)] as u32
        })
        .collect()
}

fn plain(items: &[Item], keys: Vec<u32>) -> Vec<(u32, f64)> {
    keys.into_iter()
        .map(|k| (k, items[k as usize].cost))
        .collect()
}

/// W1 and its variants: mixed costs over Zipf popularity, the ranks
/// reshuffled `shifts` times, each timing times U(1 - `noise`, 1 + `noise`).
fn mixed(name: &'static str, seed: u64, s: Scale, shifts: usize, noise: f64) -> Workload {
    let mut rng = Rng(seed);
    let items = mixed_items(&mut rng, s.keys);
    let keys = zipf_requests(&mut rng, s.keys, s.requests, shifts);
    let requests = keys
        .into_iter()
        .map(|k| {
            let factor = if noise > 0.0 {
                rng.uniform(1.0 - noise, 1.0 + noise)
            } else {
                1.0
            };
            (k, items[k as usize].cost * factor)
        })
        .collect();
    Workload {
        name,
        items,
        requests,
    }
}

fn w1(s: Scale) -> Workload {
    mixed("W1", 1, s, 0, 0.0)
}

fn w2(s: Scale) -> Workload {
    let mut rng = Rng(2);
    let items: Vec<Item> = (0..s.keys)
        .map(|_| {
            let size = rng.log_uniform(8.0 * KB, 8.0 * MB);
            item(0, size, size)
        })
        .collect();
    let keys = zipf_requests(&mut rng, s.keys, s.requests, 0);
    let requests = plain(&items, keys);
    Workload {
        name: "W2",
        items,
        requests,
    }
}

fn w3(s: Scale) -> Workload {
    let mut rng = Rng(3);
    let background = s.keys / 2;
    let mut items = mixed_items(&mut rng, background);
    let zipf = Zipf::new(background, 0.9);
    let perm = rng.permutation(background);
    // Loop keys, until they weigh 12% of the background plus themselves.
    let bg_bytes: f64 = items.iter().map(|i| i.size as f64).sum();
    let mut loop_keys = Vec::new();
    let mut loop_bytes = 0.0;
    while loop_bytes < 0.12 / 0.88 * bg_bytes {
        let size = rng.log_uniform(64.0 * KB, 2.0 * MB);
        loop_keys.push(items.len() as u32);
        items.push(item(12, size, rng.log_uniform(0.5 * MS, 10.0 * MS)));
        loop_bytes += size;
    }
    let mut next_in_loop = 0;
    let mut requests = Vec::with_capacity(s.requests);
    for _ in 0..s.requests {
        let u = rng.unit();
        let k = if u < 0.5 {
            perm[zipf.sample(&mut rng)] as u32
        } else if u < 0.85 {
            next_in_loop = (next_in_loop + 1) % loop_keys.len();
            loop_keys[next_in_loop]
        } else {
            let size = rng.log_uniform(MB, 8.0 * MB);
            items.push(item(13, size, rng.log_uniform(0.05 * MS, 0.3 * MS)));
            (items.len() - 1) as u32
        };
        requests.push((k, items[k as usize].cost));
    }
    Workload {
        name: "W3",
        items,
        requests,
    }
}

fn w4(s: Scale) -> Workload {
    mixed("W4", 4, s, 7, 0.0)
}

fn w5(s: Scale) -> Workload {
    mixed("W5", 5, s, 0, 0.7)
}

fn w6(s: Scale) -> Workload {
    let mut rng = Rng(6);
    let mut items = mixed_items(&mut rng, s.keys);
    let keys = zipf_requests(&mut rng, s.keys, s.requests, 0);
    let mut requests = Vec::with_capacity(s.requests);
    for k in keys {
        if rng.unit() < 0.05 {
            let size = rng.log_uniform(8.0 * KB, 8.0 * MB);
            items.push(item(14, size, rng.log_uniform(200.0 * MS, 1000.0 * MS)));
            let w = (items.len() - 1) as u32;
            requests.push((w, items[w as usize].cost));
        } else {
            requests.push((k, items[k as usize].cost));
        }
    }
    Workload {
        name: "W6",
        items,
        requests,
    }
}

/// The tour's service kernels, in the capstone's order, with their cost
/// for 200,000 f64 on this machine (median of `cargo run --release
/// --example policy_sim -- --measure`) and their result's size in f64s per
/// input element.
const SERVICE: [(&str, f64, f64); 5] = [
    ("exp", 0.58 * MS, 1.0),
    ("tanh", 1.38 * MS, 1.0),
    ("sort", 3.5 * MS, 1.0),
    ("cumsum", 0.40 * MS, 1.0),
    ("std", 0.13 * MS, 0.0),
];

fn w7(s: Scale) -> Workload {
    let cfg = capstone::Config::new(s.fast);
    let scale = cfg.len as f64 / 200_000.0;
    let n = SERVICE.len();
    let items: Vec<Item> = (0..cfg.arrays * n)
        .map(|i| {
            let (_, cost, per_element) = SERVICE[i % n];
            let size = (per_element * cfg.len as f64).max(1.0) * 8.0;
            item((i % n) as u32, size, cost * scale)
        })
        .collect();
    let stream = capstone::zipf_stream(items.len(), cfg.zipf_s, cfg.requests, 42);
    let requests = stream
        .into_iter()
        .map(|i| (i as u32, items[i].cost))
        .collect();
    Workload {
        name: "W7",
        items,
        requests,
    }
}

/// What one policy (or the bound) achieved on one workload and budget.
#[derive(Clone, Debug)]
struct Run {
    workload: &'static str,
    budget_pct: u32,
    policy: &'static str,
    time_saved_ms: f64,
    hit_ratio: f64,
    byte_hit_ratio: f64,
}

/// Replays `w` through a memory tier of `budget` bytes with `policy`.
fn replay(w: &Workload, budget_pct: u32, budget: u64, policy: Policy) -> Run {
    let estimates: Arc<Vec<CostEstimate>> =
        Arc::new((0..w.classes()).map(|_| CostEstimate::new()).collect());
    let est = Arc::clone(&estimates);
    let tier: MemoryTier<u32, Item> = MemoryTier::builder()
        .shards(1)
        .policy(policy)
        .max_bytes(budget)
        .weigher(|_, it: &Item| it.size)
        .cost(move |_, it: &Item| est[it.class as usize].nanos())
        .build()
        .expect("valid options");
    let (mut hits, mut saved, mut hit_bytes, mut bytes) = (0u64, 0.0, 0u64, 0u64);
    for &(key, timing) in &w.requests {
        let it = w.items[key as usize];
        let mut computed = false;
        tier.get_or_insert_with(key, || {
            computed = true;
            estimates[it.class as usize].record_timing_nanos(timing);
            it
        });
        bytes += it.size;
        if !computed {
            hits += 1;
            saved += timing;
            hit_bytes += it.size;
        }
    }
    let stats = tier.stats();
    assert!(stats.bytes <= budget, "the budget holds");
    Run {
        workload: w.name,
        budget_pct,
        policy: policy.name(),
        time_saved_ms: saved / MS,
        hit_ratio: hits as f64 / w.requests.len() as f64,
        byte_hit_ratio: hit_bytes as f64 / bytes as f64,
    }
}

/// The cost-weighted PFOO-L bound (see the module docs).
fn bound(w: &Workload, budget_pct: u32, budget: u64) -> Run {
    let mut last = vec![usize::MAX; w.items.len()];
    // (value per volume, value, size, volume)
    let mut intervals: Vec<(f64, f64, u64, f64)> = Vec::new();
    let mut bytes = 0u64;
    for (j, &(key, timing)) in w.requests.iter().enumerate() {
        let size = w.items[key as usize].size;
        bytes += size;
        let i = std::mem::replace(&mut last[key as usize], j);
        if i != usize::MAX && size <= budget {
            let volume = size as f64 * (j - i) as f64;
            intervals.push((timing / volume, timing, size, volume));
        }
    }
    intervals.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut room = budget as f64 * w.requests.len() as f64;
    let (mut hits, mut saved, mut hit_bytes) = (0.0, 0.0, 0.0);
    for (_, value, size, volume) in intervals {
        let take = (room / volume).min(1.0);
        if take <= 0.0 {
            break;
        }
        room -= take * volume;
        hits += take;
        saved += take * value;
        hit_bytes += take * size as f64;
    }
    Run {
        workload: w.name,
        budget_pct,
        policy: "bound",
        time_saved_ms: saved / MS,
        hit_ratio: hits / w.requests.len() as f64,
        byte_hit_ratio: hit_bytes / bytes as f64,
    }
}

fn workloads(s: Scale) -> Vec<Workload> {
    vec![w1(s), w2(s), w3(s), w4(s), w5(s), w6(s), w7(s)]
}

/// Every run: each workload at each budget, LRU, cost-aware and the bound.
fn simulate(s: Scale) -> Vec<Run> {
    let mut runs = Vec::new();
    for w in workloads(s) {
        let ws = w.working_set();
        for pct in BUDGETS {
            let budget = ws * u64::from(pct) / 100;
            runs.push(replay(&w, pct, budget, Policy::Lru));
            runs.push(replay(&w, pct, budget, Policy::CostAware));
            runs.push(bound(&w, pct, budget));
        }
    }
    runs
}

fn find<'a>(runs: &'a [Run], w: &str, pct: u32, policy: &str) -> &'a Run {
    runs.iter()
        .find(|r| r.workload == w && r.budget_pct == pct && r.policy == policy)
        .expect("every run is there")
}

/// The targets, each with whether it is met.
fn targets(runs: &[Run]) -> Vec<(String, bool)> {
    let saved = |w: &str, pct: u32, p: &str| find(runs, w, pct, p).time_saved_ms;
    let hr = |w: &str, pct: u32, p: &str| find(runs, w, pct, p).hit_ratio;
    let mut t = Vec::new();
    let ratio = |w, pct, p| saved(w, pct, "cost_aware") / saved(w, pct, p);
    let r = ratio("W1", 10, "lru");
    t.push((
        format!("W1 at 10%: time saved {r:.2} x LRU (>= 1.5)"),
        r >= 1.5,
    ));
    let r = ratio("W1", 10, "bound");
    t.push((
        format!("W1 at 10%: time saved {r:.2} x the bound (>= 0.8)"),
        r >= 0.8,
    ));
    for pct in BUDGETS {
        let r = hr("W2", pct, "cost_aware") / hr("W2", pct, "lru");
        t.push((
            format!("W2 at {pct}%: hit ratio {r:.3} x LRU (>= 0.97)"),
            r >= 0.97,
        ));
    }
    for pct in BUDGETS {
        let r = ratio("W4", pct, "lru");
        t.push((
            format!("W4 at {pct}%: time saved {r:.2} x LRU (>= 1.2)"),
            r >= 1.2,
        ));
    }
    for pct in BUDGETS {
        let r = ratio("W6", pct, "lru");
        t.push((
            format!("W6 at {pct}%: time saved {r:.2} x LRU (>= 1.0)"),
            r >= 1.0,
        ));
    }
    let worst = runs
        .iter()
        .filter(|r| r.policy == "lru")
        .map(|r| {
            (
                ratio(r.workload, r.budget_pct, "lru"),
                r.workload,
                r.budget_pct,
            )
        })
        .min_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((r, w, pct)) = worst {
        t.push((
            format!("every workload: time saved >= 0.95 x LRU (lowest {r:.2}, {w} at {pct}%)"),
            r >= 0.95,
        ));
    }
    t
}

fn table(runs: &[Run]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "workload budget | time saved (s): LRU  cost-aware   bound | ca/LRU ca/bound | hit ratio: LRU    ca  bound | byte hit ratio: LRU    ca  bound"
    );
    for chunk in runs.chunks(3) {
        let (l, c, b) = (&chunk[0], &chunk[1], &chunk[2]);
        let _ = writeln!(
            s,
            "{:<8} {:>5}% | {:>19.2} {:>11.2} {:>7.2} | {:>6.2} {:>8.2} | {:>14.3} {:>5.3} {:>6.3} | {:>19.3} {:>5.3} {:>6.3}",
            l.workload,
            l.budget_pct,
            l.time_saved_ms / 1e3,
            c.time_saved_ms / 1e3,
            b.time_saved_ms / 1e3,
            c.time_saved_ms / l.time_saved_ms,
            c.time_saved_ms / b.time_saved_ms,
            l.hit_ratio,
            c.hit_ratio,
            b.hit_ratio,
            l.byte_hit_ratio,
            c.byte_hit_ratio,
            b.byte_hit_ratio,
        );
    }
    s
}

fn json(runs: &[Run]) -> String {
    let items: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{{\"workload\": \"{}\", \"budget_pct\": {}, \"policy\": \"{}\", \"time_saved_ms\": {:.1}, \"hit_ratio\": {:.4}, \"byte_hit_ratio\": {:.4}}}",
                r.workload, r.budget_pct, r.policy, r.time_saved_ms, r.hit_ratio, r.byte_hit_ratio
            )
        })
        .collect();
    format!("{{\"runs\": [\n  {}\n]}}", items.join(",\n  "))
}

/// Time saved against budget, one panel per workload, one line per policy.
fn plot(runs: &[Run], path: &str) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let names: Vec<&str> = {
        let mut n: Vec<&str> = runs.iter().map(|r| r.workload).collect();
        n.dedup();
        n
    };
    let root = SVGBackend::new(path, (1200, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(
        "Compute time saved (s) against the memory budget (% of the working set)",
        ("sans-serif", 20),
    )?;
    let panels = body.split_evenly((2, 4));
    let lines = [
        ("lru", RGBColor(0x99, 0x99, 0x99)),
        ("cost_aware", RGBColor(0x1F, 0x77, 0xB4)),
        ("bound", RGBColor(0xD6, 0x27, 0x28)),
    ];
    for (panel, name) in panels.iter().zip(&names) {
        let max = runs
            .iter()
            .filter(|r| r.workload == *name)
            .map(|r| r.time_saved_ms / 1e3)
            .fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(panel)
            .caption(*name, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..27f64, 0f64..max * 1.08)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|x| format!("{x:.0}%"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (policy, color) in lines {
            let points: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.workload == *name && r.policy == policy)
                .map(|r| (f64::from(r.budget_pct), r.time_saved_ms / 1e3))
                .collect();
            chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
        }
    }
    // The legend, in the panel the workloads leave free.
    if let Some(legend) = panels.get(names.len()) {
        let labels = [
            "plain LRU",
            "cost-aware (the default)",
            "bound (cost-weighted PFOO-L)",
        ];
        for (i, ((_, color), label)) in lines.iter().zip(labels).enumerate() {
            let y = 90 + 32 * i as i32;
            legend.draw(&PathElement::new(
                vec![(30, y), (80, y)],
                color.stroke_width(3),
            ))?;
            legend.draw(&Text::new(label, (92, y - 8), ("sans-serif", 15)))?;
        }
    }
    root.present()?;
    Ok(())
}

/// Formats a duration (the capstone module's reports use it).
#[allow(dead_code)]
fn ms(d: std::time::Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Times the service's kernels on the capstone's arrays (what [`SERVICE`]
/// holds): the median of 21 calls of each, on one 200,000-element array.
fn measure() {
    use ndarray::Array1;
    let reg = ndcache::Registry::with_builtins();
    let x = Array1::from_shape_fn(200_000, |i| ((i * 3) as f64 * 1e-4).sin());
    let view: ndcache::AnyView<'_> = x.view().into();
    for (name, _, _) in SERVICE {
        let params = if name == "std" {
            ndcache::Params::new().ddof(1)
        } else {
            ndcache::Params::new()
        };
        let mut times: Vec<f64> = (0..21)
            .map(|_| {
                let t = std::time::Instant::now();
                std::hint::black_box(
                    reg.call(name, std::slice::from_ref(&view), &params)
                        .expect(name),
                );
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("{name:<7} {:.3} ms", times[10]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--measure") {
        return measure();
    }
    let fast = std::env::var_os("NDCACHE_FAST").is_some() || args.iter().any(|a| a == "--fast");
    let scale = if fast {
        Scale {
            keys: 2_000,
            requests: 40_000,
            fast,
        }
    } else {
        Scale {
            keys: 10_000,
            requests: 400_000,
            fast,
        }
    };
    let runs = simulate(scale);
    if args.iter().any(|a| a == "--json") {
        println!("{}", json(&runs));
    } else {
        println!(
            "policy simulator: {} requests per workload{}, budgets {BUDGETS:?}% of the working set\n",
            scale.requests,
            if fast { " (fast mode)" } else { "" }
        );
        print!("{}", table(&runs));
        println!();
        let t = targets(&runs);
        for (what, ok) in &t {
            println!("{} {what}", if *ok { "met   " } else { "MISSED" });
        }
        println!(
            "{} of {} targets met",
            t.iter().filter(|(_, ok)| *ok).count(),
            t.len()
        );
    }
    if let Some(i) = args.iter().position(|a| a == "--plot") {
        let path = args.get(i + 1).map_or("policy_sim.svg", String::as_str);
        if let Err(e) = plot(&runs, path) {
            eprintln!("policy_sim: cannot draw {path}: {e}");
            std::process::exit(1);
        }
        eprintln!("policy_sim: wrote {path}");
    }
}
