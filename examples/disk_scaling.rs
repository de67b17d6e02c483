//! The disk tier at scale: fills a cache with 10^4, 10^5 and 10^6 small
//! results (16 float64 each) and 10^3 large ones (10,000 float64, 80 KB),
//! and reports, at each size: the time per miss-and-store, per disk hit,
//! to reopen the cache, for `stats`, `ls`, `verify` and `gc --max-bytes 5M`,
//! the files and directories in the cache, and `du` against the tier's own
//! byte count (before and after the `gc`).
//!
//! Run: `cargo run --release --example disk_scaling` (about three minutes
//! and 1 GB of disk at 10^6), or `-- --max 100000` to stop earlier,
//! `-- --dir PATH` to put the caches somewhere else than a temporary
//! directory (each size gets its own, emptied first), `-- --large N` for
//! another number of large results. The test suite runs it with
//! `--max 2000 --large 20` and checks what it prints.
//!
//! Times are single-threaded, page cache warm (the directory was just
//! written), background writer on (its work is in the miss-and-store time:
//! the clock stops after `flush`). Per-operation times are wall clock, then
//! in parentheses the process's CPU time (all threads), which a loaded
//! machine inflates less.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ndarray::Array1;
use ndcache::disk::DiskTier;
use ndcache::{call_key, AnyArray, Fingerprint};

const SMALL_LEN: usize = 16;
const LARGE_LEN: usize = 10_000;
const GC_TARGET: u64 = 5 << 20;

struct Args {
    max: u64,
    large: u64,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        max: 1_000_000,
        large: 1000,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--max" => {
                let v = value("--max")?;
                args.max = v
                    .parse()
                    .map_err(|_| format!("--max: expected a number of entries, got {v:?}"))?;
            }
            "--large" => {
                let v = value("--large")?;
                args.large = v
                    .parse()
                    .map_err(|_| format!("--large: expected a number of entries, got {v:?}"))?;
            }
            "--dir" => args.dir = Some(PathBuf::from(value("--dir")?)),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (expected --max N, --large N, --dir PATH)"
                ))
            }
        }
    }
    if args.max == 0 {
        return Err("--max must be at least 1".into());
    }
    Ok(args)
}

fn key(kind: &str, i: u64) -> Fingerprint {
    call_key(kind, "1", &i.to_le_bytes(), &[])
}

fn value(i: u64, len: usize) -> AnyArray {
    AnyArray::from(Array1::from_shape_fn(len, |j| (i as f64) + j as f64 * 0.5))
}

/// `du`: blocks of every file and directory under `dir`, and the counts.
#[derive(Default, Debug)]
struct Du {
    bytes: u64,
    files: u64,
    dirs: u64,
}

fn du(dir: &Path) -> Du {
    let mut d = Du::default();
    walk(dir, &mut d);
    d
}

fn walk(dir: &Path, d: &mut Du) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        d.bytes += allocated(&m);
        if m.is_dir() {
            d.dirs += 1;
            walk(&e.path(), d);
        } else {
            d.files += 1;
        }
    }
}

#[cfg(unix)]
fn allocated(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(m: &std::fs::Metadata) -> u64 {
    m.len().div_ceil(4096) * 4096
}

/// CPU time of the whole process (every thread) so far: on a loaded
/// machine, what an operation costs apart from waiting for a core.
fn cpu() -> Duration {
    // SAFETY: `getrusage` writes the struct it is given and keeps nothing;
    // all-zero bytes are a valid `rusage`.
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Wall time per operation, and CPU time per operation in parentheses.
fn per2(wall: Duration, cpu: Duration, n: u64) -> String {
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    format!("{:.1} µs ({:.1})", us(wall), us(cpu))
}

fn per(d: Duration, n: u64) -> String {
    let us = d.as_secs_f64() * 1e6 / n.max(1) as f64;
    format!("{us:.1} µs")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn run(dir: &Path, n: u64, large: u64) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(dir);
    let tier = DiskTier::open(dir, None)?;
    let compute = |i: u64, len: usize| move || Ok::<_, ndcache::Error>(value(i, len));

    let (t, c) = (Instant::now(), cpu());
    for i in 0..n {
        tier.get_or_insert_with(key("small", i), "scale", "1", compute(i, SMALL_LEN))?;
    }
    tier.flush();
    let (store_small, store_small_cpu) = (t.elapsed(), cpu() - c);
    let t = Instant::now();
    for i in 0..large {
        tier.get_or_insert_with(key("large", i), "scale", "1", compute(i, LARGE_LEN))?;
    }
    tier.flush();
    let store_large = t.elapsed();
    drop(tier);

    let t = Instant::now();
    let tier = DiskTier::open(dir, None)?;
    let reopen = t.elapsed();

    // Hits on a fixed sample spread over all keys, each checked.
    let sample = n.min(20_000);
    let step = (n / sample).max(1);
    let (t, c) = (Instant::now(), cpu());
    for s in 0..sample {
        let i = s * step;
        let (got, _) = tier
            .get(key("small", i))
            .ok_or("a small entry is missing")?;
        if !got.bitwise_eq(&value(i, SMALL_LEN)) {
            return Err(format!("wrong value for small entry {i}").into());
        }
    }
    let (hit_small, hit_small_cpu) = (t.elapsed(), cpu() - c);
    let t = Instant::now();
    for i in 0..large {
        tier.get(key("large", i))
            .ok_or("a large entry is missing")?;
    }
    let hit_large = t.elapsed();
    tier.flush();

    let t = Instant::now();
    let stats = tier.stats();
    let stats_time = t.elapsed();
    let t = Instant::now();
    let listed = tier.entries()?.len() as u64;
    let ls_time = t.elapsed();
    let t = Instant::now();
    let report = tier.verify(false, |_| {})?;
    let verify_time = t.elapsed();
    if listed != n + large || report.ok != n + large || !report.corrupt.is_empty() {
        return Err(format!("ls {listed}, verify {report:?}: expected {}", n + large).into());
    }
    let before = du(dir);
    let show = |when: &str| {
        if std::env::var_os("NDCACHE_SCALING_FILES").is_some() {
            for name in ["entries.db", "entries.db-wal", "entries.db-shm"] {
                let len = std::fs::metadata(dir.join("v2").join(name)).map_or(0, |m| m.len());
                eprintln!("{n} {when}: {name} {}", mib(len));
            }
        }
    };
    show("before gc");
    let t = Instant::now();
    let gc = tier.gc(GC_TARGET, |_| {})?;
    let gc_time = t.elapsed();
    let after = du(dir);
    show("after gc");

    Ok(vec![
        format!("{n}"),
        per2(store_small, store_small_cpu, n),
        per2(hit_small, hit_small_cpu, sample),
        format!("{} / {}", per(store_large, large), per(hit_large, large)),
        ms(reopen),
        format!("{:.0} µs", stats_time.as_secs_f64() * 1e6),
        ms(ls_time),
        ms(verify_time),
        ms(gc_time),
        format!("{} / {}", before.files, before.dirs),
        format!(
            "{} / {} = {:.2}",
            mib(before.bytes),
            mib(stats.bytes),
            before.bytes as f64 / stats.bytes.max(1) as f64
        ),
        format!("{} ({} counted)", mib(after.bytes), mib(gc.remaining_bytes)),
    ])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("disk_scaling: {e}");
            std::process::exit(2);
        }
    };
    let tmp;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut sizes: Vec<u64> = [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&s| s <= args.max)
        .collect();
    if sizes.is_empty() {
        sizes.push(args.max);
    }
    println!(
        "small: {SMALL_LEN} float64 each; large: {} of {LARGE_LEN} float64; gc target {}",
        args.large,
        mib(GC_TARGET)
    );
    println!(
        "| small entries | miss+store | disk hit | large miss+store / hit | reopen | stats | ls | verify | gc 5M | files / dirs | du / counted | du after gc |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let row = run(&root.join(format!("n{n}")), n, args.large)?;
        println!("| {} |", row.join(" | "));
        let _ = std::fs::remove_dir_all(root.join(format!("n{n}")));
    }
    Ok(())
}
