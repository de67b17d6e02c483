//! `ndcache`: apply kernels to `.npy` files through a disk cache, and inspect,
//! verify and prune the cache directory.
//!
//! ```text
//! ndcache apply exp x.npy --out y.npy
//! ndcache apply add a.npy b.npy --out c.npy --cache-dir /tmp/cache
//! ndcache apply std x.npy --out s.npy --axis 0 --ddof 1
//! ndcache kernels
//! ndcache ls | stats | verify [--repair] | gc --max-bytes 500M | clear
//! ```
//!
//! The cache directory is `--cache-dir`, else `$NDCACHE_DIR`, else the
//! platform's user cache directory followed by `ndcache`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ndcache::disk::{read_npy, write_npy_atomic, DiskTier, Progress};
use ndcache::{AnyView, ArrayCache, Params, Registry};

#[derive(Parser)]
#[command(
    name = "ndcache",
    version,
    about = "Memoize numpy-style array kernels on .npy files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply a kernel to .npy inputs, through the disk cache.
    Apply(ApplyArgs),
    /// List the kernels: name, arity, parameters, version, doc.
    Kernels,
    /// List the entries of the cache directory.
    Ls(DirArgs),
    /// Show the cache directory's size and budget.
    Stats(DirArgs),
    /// Check every entry's checksum; exit 1 if any is corrupt.
    Verify {
        #[command(flatten)]
        dir: DirArgs,
        /// Remove corrupt entries (then exit 0).
        #[arg(long)]
        repair: bool,
    },
    /// Remove least recently used entries until the cache fits SIZE.
    Gc {
        #[command(flatten)]
        dir: DirArgs,
        /// The size to shrink to, like 500M or 2G (suffixes K, M, G, T: powers of 1024).
        #[arg(long, value_parser = parse_size)]
        max_bytes: u64,
    },
    /// Remove every entry.
    Clear(DirArgs),
}

#[derive(Args)]
struct DirArgs {
    /// The cache directory [default: $NDCACHE_DIR, else the user cache dir + ndcache].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ApplyArgs {
    /// The kernel's name (see `ndcache kernels`).
    kernel: String,
    /// One or two input .npy files.
    #[arg(required = true, num_args = 1..=2)]
    inputs: Vec<PathBuf>,
    /// Where to write the result (.npy); written atomically.
    #[arg(long, value_name = "OUT.npy")]
    out: PathBuf,
    /// Axis for reductions, cumsum and sort (negative counts from the end).
    #[arg(long, allow_hyphen_values = true)]
    axis: Option<isize>,
    /// Keep reduced axes as axes of length one.
    #[arg(long)]
    keepdims: bool,
    /// Delta degrees of freedom for var and std.
    #[arg(long)]
    ddof: Option<i64>,
    #[command(flatten)]
    dir: DirArgs,
    /// Compute without reading or writing the cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Byte budget of the cache directory, enforced on write (like 2G).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    max_bytes: Option<u64>,
}

/// Parses `500M`, `2G`, `1.5G`, `4096`: powers of 1024.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => {
                    return Err(format!(
                        "unknown size suffix '{c}' in '{s}' (use K, M, G or T)"
                    ))
                }
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size like 500M or 2G"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("'{s}' is not a size like 500M or 2G"));
    }
    Ok((v * mult as f64) as u64)
}

/// "1 entry", "3 entries".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `--cache-dir`, else `$NDCACHE_DIR`, else the platform's user cache dir.
fn cache_dir(arg: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = arg {
        return Ok(d.clone());
    }
    if let Some(d) = std::env::var_os("NDCACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match dirs::cache_dir() {
        Some(d) => Ok(d.join("ndcache")),
        None => {
            bail!("no user cache directory on this platform: pass --cache-dir or set NDCACHE_DIR")
        }
    }
}

fn open_existing(dir: &DirArgs) -> Result<DiskTier> {
    let path = cache_dir(&dir.cache_dir)?;
    if !path.is_dir() {
        bail!("{}: no such cache directory", path.display());
    }
    Ok(DiskTier::open(&path, None)?)
}

fn apply(args: &ApplyArgs) -> Result<()> {
    let registry = Registry::with_builtins();
    // Check the kernel first: a typo should not cost reading the inputs.
    let kernel = registry.get(&args.kernel)?;
    if args.inputs.len() != kernel.arity() {
        bail!(
            "kernel '{}' takes {} input(s), got {}",
            args.kernel,
            kernel.arity(),
            args.inputs.len()
        );
    }
    let mut params = Params::new();
    if let Some(a) = args.axis {
        params = params.axis(a);
    }
    if args.keepdims {
        params = params.keepdims(true);
    }
    if let Some(d) = args.ddof {
        params = params.ddof(d);
    }
    let inputs = args
        .inputs
        .iter()
        .map(read_npy)
        .collect::<ndcache::Result<Vec<_>>>()?;

    let start = Instant::now();
    let (result, how) = if args.no_cache {
        let views: Vec<AnyView<'_>> = inputs.iter().map(|a| a.view()).collect();
        (
            registry.call(&args.kernel, &views, &params)?,
            "computed (no cache)".to_owned(),
        )
    } else {
        let dir = cache_dir(&args.dir.cache_dir)?;
        let mut b = ArrayCache::builder().registry(registry).disk(&dir);
        if let Some(m) = args.max_bytes {
            b = b.disk_max_bytes(m);
        }
        let cache = b.build()?;
        let arg_list: Vec<ndcache::Arg<'_>> = inputs.iter().map(ndcache::AsArg::arg).collect();
        let r = cache.call(&args.kernel, &arg_list, &params)?;
        let k = cache.kernel_info(&args.kernel)?;
        cache.flush();
        let disk = cache.info().disk;
        let how = if k.disk_hits > 0 {
            format!("hit (disk, {})", dir.display())
        } else if k.memory_hits > 0 {
            "hit (memory)".to_owned()
        } else {
            match disk {
                Some(d) if d.write_failures > 0 => {
                    format!("miss (computed; could not store it in {})", dir.display())
                }
                Some(d) if d.rejected > 0 => format!(
                    "miss (computed; larger than the budget of {}, not stored)",
                    dir.display()
                ),
                _ => format!("miss (computed, stored in {})", dir.display()),
            }
        };
        (r.into_array(), how)
    };
    let took = start.elapsed();
    write_npy_atomic(&args.out, &result)?;
    eprintln!(
        "ndcache: {} {}: {} in {:.3} ms -> {} {:?} {}",
        args.kernel,
        args.inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        how,
        took.as_secs_f64() * 1e3,
        result.dtype(),
        result.shape(),
        args.out.display()
    );
    Ok(())
}

fn kernels() {
    let registry = Registry::with_builtins();
    println!(
        "{:<10} {:>5}  {:<32} {:>7}  doc",
        "name", "arity", "parameters", "version"
    );
    for k in registry.kernels() {
        let params: Vec<String> = k.params().iter().map(ToString::to_string).collect();
        println!(
            "{:<10} {:>5}  {:<32} {:>7}  {}",
            k.name(),
            k.arity(),
            if params.is_empty() {
                "-".to_owned()
            } else {
                params.join(", ")
            },
            k.version(),
            k.doc()
        );
    }
}

fn ago(t: SystemTime) -> String {
    match SystemTime::now().duration_since(t) {
        Ok(d) if d.as_secs() < 120 => format!("{}s ago", d.as_secs()),
        Ok(d) if d.as_secs() < 7200 => format!("{}m ago", d.as_secs() / 60),
        Ok(d) if d.as_secs() < 172_800 => format!("{}h ago", d.as_secs() / 3600),
        Ok(d) => format!("{}d ago", d.as_secs() / 86_400),
        Err(_) => "just now".to_owned(),
    }
}

fn ls(dir: &DirArgs) -> Result<()> {
    let tier = open_existing(dir)?;
    let mut entries = tier.entries()?;
    entries.sort_by_key(|e| std::cmp::Reverse(e.last_access));
    println!(
        "{:<32}  {:<10} {:>7}  {:<8} {:<16} {:>10}  last used",
        "key", "kernel", "version", "dtype", "shape", "size"
    );
    for e in &entries {
        println!(
            "{:<32}  {:<10} {:>7}  {:<8} {:<16} {:>10}  {}",
            e.meta.key.to_string(),
            e.meta.kernel,
            e.meta.version,
            e.meta.dtype.name(),
            format!("{:?}", e.meta.shape),
            human(e.bytes),
            ago(e.last_access)
        );
    }
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    println!(
        "{}, {}",
        count(entries.len() as u64, "entry", "entries"),
        human(total)
    );
    Ok(())
}

fn stats(dir: &DirArgs) -> Result<()> {
    let tier = open_existing(dir)?;
    let s = tier.stats();
    println!("directory  {}", tier.dir().display());
    println!("entries    {}", s.entries);
    println!("size       {} ({} bytes)", human(s.bytes), s.bytes);
    println!(
        "writable   {}",
        if s.writable { "yes" } else { "no (read-only)" }
    );
    Ok(())
}

/// A progress callback: a bar on a terminal, nothing otherwise.
fn progress(label: &'static str) -> (Option<ProgressBar>, impl FnMut(Progress)) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message(label);
        b
    });
    let b2 = bar.clone();
    (bar, move |p: Progress| {
        if let Some(b) = &b2 {
            b.set_length(p.total);
            b.set_position(p.done);
        }
    })
}

fn verify(dir: &DirArgs, repair: bool) -> Result<ExitCode> {
    let tier = open_existing(dir)?;
    let (bar, cb) = progress("verify");
    let report = tier.verify(repair, cb)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for p in &report.corrupt {
        println!(
            "corrupt  {}  {}{}",
            p.key,
            p.reason,
            if p.removed { " (removed)" } else { "" }
        );
    }
    for p in &report.unreadable {
        println!("unreadable  {}  {}", p.key, p.reason);
    }
    println!(
        "{} ok, {} corrupt{}{}{}",
        report.ok,
        report.corrupt.len(),
        if report.unreadable.is_empty() {
            String::new()
        } else {
            format!(", {} unreadable", report.unreadable.len())
        },
        if report.in_progress == 0 {
            String::new()
        } else {
            format!(
                ", {} being written (a payload whose sidecar has not come yet)",
                report.in_progress
            )
        },
        if repair && !report.corrupt.is_empty() {
            " (removed)"
        } else {
            ""
        }
    );
    let clean = report.corrupt.iter().all(|p| p.removed);
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn gc(dir: &DirArgs, max_bytes: u64) -> Result<()> {
    let tier = open_existing(dir)?;
    let (bar, cb) = progress("gc");
    let report = tier.gc(max_bytes, cb)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!(
        "removed {} ({}); {} left",
        count(report.removed.len() as u64, "entry", "entries"),
        human(report.freed_bytes()),
        human(tier.stats().bytes)
    );
    Ok(())
}

fn clear(dir: &DirArgs) -> Result<()> {
    let tier = open_existing(dir)?;
    let n = tier.clear()?;
    println!(
        "removed {} from {}",
        count(n, "entry", "entries"),
        tier.dir().display()
    );
    Ok(())
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Apply(a) => apply(a).map(|()| ExitCode::SUCCESS),
        Command::Kernels => {
            kernels();
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls(d) => ls(d).map(|()| ExitCode::SUCCESS),
        Command::Stats(d) => stats(d).map(|()| ExitCode::SUCCESS),
        Command::Verify { dir, repair } => verify(dir, *repair),
        Command::Gc { dir, max_bytes } => gc(dir, *max_bytes).map(|()| ExitCode::SUCCESS),
        Command::Clear(d) => clear(d).map(|()| ExitCode::SUCCESS),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes.
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("ndcache: error: {}", msg.join(": "));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1G").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(5 << 20), "5.0 MiB");
    }
}
