//! A fleet sharing one cache: four worker processes, each with its own disk
//! directory (as on four machines), run the same parameter sweep in
//! different orders through one Redis. Each experiment is computed once in
//! the whole fleet; every other worker gets it from Redis (or waits for the
//! worker computing it), and all agree bit for bit.
//!
//! Run: start a Redis, then the example:
//!
//! ```sh
//! redis-server --port 6379 --save "" --maxmemory 1gb --maxmemory-policy allkeys-lru &
//! cargo run --release --example fleet                  # or NDCACHE_REMOTE=redis://host:port
//! ```
//!
//! Run it twice: the second time every experiment is a remote hit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ndarray::Array1;
use ndcache::remote::{RemoteOptions, REMOTE_ENV};
use ndcache::{AnyArray, ArrayCache, AsArg, ParamKind, ParamSpec, Params, Registry, Source};

const WORKERS: usize = 4;
const EXPERIMENTS: i64 = 8;
const NAMESPACE: &str = "fleet-example";

fn url() -> String {
    std::env::var(REMOTE_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// Whether a server answers PING at `host:port` of a `redis://` URL.
fn answers(url: &str) -> bool {
    let addr = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 5];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG"
}

/// The experiment: a smoothing simulation, slow enough to be worth sharing.
fn registry(steps: usize) -> Registry {
    let mut reg = Registry::with_builtins();
    let rate = ParamSpec {
        name: "rate",
        kind: ParamKind::Int,
        default: Some(1i64.into()),
        doc: "diffusion rate, in percent",
    };
    reg.register_fn(
        "diffuse",
        "1",
        1,
        vec![rate],
        "explicit diffusion steps",
        move |x, p| {
            let mut u = x[0].typed::<f64>()?.to_owned();
            let r = p.int("rate").unwrap_or(1) as f64 / 100.0;
            let n = u.len();
            let mut next = u.clone();
            for _ in 0..steps {
                for i in 1..n.saturating_sub(1) {
                    next[i] = u[i] + r * (u[i - 1] - 2.0 * u[i] + u[i + 1]);
                }
                std::mem::swap(&mut u, &mut next);
            }
            Ok(AnyArray::from(u))
        },
    )
    .expect("a new name");
    reg
}

fn worker(id: usize, fast: bool) -> Result<(), Box<dyn std::error::Error>> {
    let (n, steps) = if fast { (20_000, 20) } else { (250_000, 200) };
    let disk = tempfile::tempdir()?;
    let cache = ArrayCache::builder()
        .registry(registry(steps))
        .disk(disk.path())
        .remote(
            RemoteOptions::new(url())
                .namespace(NAMESPACE)
                // Upload everything (by default only results slower to
                // compute than to load are uploaded).
                .min_compute(Some(Duration::ZERO)),
        )
        .build()?;
    let x = Array1::from_shape_fn(n, |i| if i % 1000 < 500 { 1.0 } else { 0.0 });
    let x = cache.keyed(x);
    // Each worker starts the sweep at a different experiment.
    for k in 0..EXPERIMENTS {
        let rate = (k + id as i64 * 2) % EXPERIMENTS + 1;
        let t = Instant::now();
        let (y, source) =
            cache.call_with_source("diffuse", &[x.arg()], &Params::new().set("rate", rate))?;
        let sum: f64 = y.typed::<f64>()?.sum();
        let how = match source {
            Source::Computed { .. } => "computed".to_owned(),
            other => other.to_string(),
        };
        println!(
            "worker {id}: experiment rate={rate}: sum {sum:.6} ({how}, {:.1} ms)",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    cache.flush();
    let r = cache.info().remote.expect("a remote tier");
    println!(
        "worker {id}: remote hits {}, uploads {}, lease waits {}, errors {}",
        r.hits, r.uploads, r.lease_waits, r.errors
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fast = std::env::var_os("NDCACHE_FAST").is_some();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(args[2].parse()?, fast);
    }
    let url = url();
    if !answers(&url) {
        println!("no Redis answers at {url}. Start one, for example:");
        println!(
            "  redis-server --port 6379 --save \"\" --maxmemory 1gb --maxmemory-policy allkeys-lru"
        );
        println!(
            "(Debian and Ubuntu: apt-get install redis-server), or point {REMOTE_ENV} at yours."
        );
        return Ok(());
    }
    println!("{WORKERS} workers share {url} (namespace {NAMESPACE}), each with its own disk");
    let t = Instant::now();
    let children: Vec<_> = (0..WORKERS)
        .map(|i| {
            Command::new(std::env::current_exe()?)
                .args(["worker", &i.to_string()])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut lines = Vec::new();
    for c in children {
        let out = c.wait_with_output()?;
        if !out.status.success() {
            return Err(format!("a worker failed: {}", out.status).into());
        }
        lines.extend(String::from_utf8(out.stdout)?.lines().map(str::to_owned));
    }
    for l in &lines {
        println!("{l}");
    }
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    // Every worker must agree on every experiment.
    let mut sums: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once("rate=")?;
            let (rate, rest) = rest.split_once(':')?;
            let sum = rest.trim().split(' ').nth(1)?;
            Some((rate.to_owned(), sum.to_owned()))
        })
        .collect();
    sums.sort();
    sums.dedup();
    println!(
        "fleet: {} calls in {:.2} s: {} computed, {} remote hits; {} distinct results for {EXPERIMENTS} experiments",
        count("experiment"),
        t.elapsed().as_secs_f64(),
        count("(computed"),
        count("(remote hit"),
        sums.len()
    );
    Ok(())
}
