//! `ndcache`: apply kernels to `.npy` files through a disk cache, and inspect,
//! verify and prune the cache directory.
//!
//! ```text
//! ndcache apply exp x.npy --out y.npy
//! ndcache apply add a.npy b.npy --out c.npy --cache-dir /tmp/cache
//! ndcache apply std x.npy --out s.npy --axis 0 --ddof 1
//! ndcache kernels
//! ndcache ls | stats | verify [--repair] | gc --max-bytes 500M | clear
//! ndcache export 5d41402abc4b2a76b9719d911017c592 --out r.npy
//! ndcache apply exp x.npy --out y.npy --remote redis://cache-host:6379
//! ndcache remote stats | ls | clear [--remote URL] [--remote-namespace NS]
//! ```
//!
//! The cache directory is `--cache-dir`, else `$NDCACHE_DIR`, else the
//! platform's user cache directory followed by `ndcache`. The remote cache
//! (Redis, shared by a fleet) is `--remote URL`, else `$NDCACHE_REMOTE`,
//! else none; entries are signed when `$NDCACHE_SECRET` is set.
//!
//! Only `apply` creates a cache directory. `ls`, `stats` and `verify` never
//! write in it; they, `gc` and `clear` refuse a directory that is not a cache
//! (exit code 2). Output cut short by a closed pipe (`ndcache ls | head`)
//! ends the program quietly, with exit code 0.
//!
//! Sizes (`--max-bytes`) are bytes, or a number (possibly fractional) with a
//! unit K, M, G or T, optionally followed by B or iB: every unit is a power
//! of 1024 (`500M` = `500MB` = `500MiB`); see [`ndcache::parse_size`].

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ndcache::disk::{read_npy, write_npy_atomic, DiskTier, Progress};
use ndcache::remote::{RemoteMode, RemoteOptions, RemoteTier, REMOTE_ENV};
use ndcache::{parse_size, AnyView, ArrayCache, Params, Registry, Source};

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
    /// Show the cache directory's entries, size and remembered budget.
    Stats(DirArgs),
    /// Check every entry's checksum; exit 1 if any is corrupt or unreadable.
    Verify {
        #[command(flatten)]
        dir: DirArgs,
        /// Remove corrupt entries (then exit 0 unless some are unreadable).
        #[arg(long)]
        repair: bool,
    },
    /// Remove least recently used entries until the cache fits SIZE.
    Gc {
        #[command(flatten)]
        dir: DirArgs,
        /// The size to shrink to now, like 500M or 2GiB (K, M, G, T, with an
        /// optional B or iB, are powers of 1024). The remembered budget
        /// (`apply --max-bytes`) stays as it is.
        #[arg(long, value_parser = parse_size, value_name = "SIZE")]
        max_bytes: u64,
    },
    /// Remove every entry.
    Clear(DirArgs),
    /// Write one entry, small or large, as a .npy file (verified first).
    Export {
        #[command(flatten)]
        dir: DirArgs,
        /// The entry's key: 32 hex digits, as `ndcache ls` shows it.
        key: String,
        /// The .npy file to write.
        #[arg(long, value_name = "FILE.npy")]
        out: PathBuf,
    },
    /// Inspect or clear the remote cache (Redis) shared by a fleet.
    #[command(subcommand)]
    Remote(RemoteCommand),
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// The namespace's entries and bytes, the server's memory and eviction
    /// policy, and the fleet's counters.
    Stats(RemoteArgs),
    /// List the namespace's entries.
    Ls(RemoteArgs),
    /// Remove every key of the namespace (SCAN and UNLINK; other
    /// namespaces and other data are left alone).
    Clear(RemoteArgs),
}

#[derive(Args)]
struct RemoteArgs {
    /// The Redis URL: redis://[user:pass@]host:port, rediss://..., or
    /// redis+cluster://host:port,host:port [default: $NDCACHE_REMOTE].
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
    /// The namespace (the prefix of every key).
    #[arg(long, value_name = "NS", default_value = ndcache::remote::DEFAULT_NAMESPACE)]
    remote_namespace: String,
}

impl RemoteArgs {
    /// `--remote`, else `$NDCACHE_REMOTE`, else `None`.
    fn url(&self) -> Option<String> {
        self.remote
            .clone()
            .or_else(|| std::env::var(REMOTE_ENV).ok())
            .filter(|u| !u.trim().is_empty())
    }
}

/// When a computed result is uploaded.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Upload {
    /// When computing it took longer than loading it is estimated to take.
    Auto,
    /// Always.
    Always,
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
    #[arg(long, conflicts_with_all = ["cache_dir", "max_bytes"])]
    no_cache: bool,
    /// Byte budget of the cache directory, enforced on every write and
    /// remembered by the directory for later runs, like 2G or 500MiB (K, M,
    /// G, T, with an optional B or iB, are powers of 1024).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    max_bytes: Option<u64>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// What the remote cache may do: rw (read, upload), ro (read only) or off.
    #[arg(long, value_name = "MODE", default_value = "rw", value_parser = parse_mode)]
    remote_mode: RemoteMode,
    /// When a computed result is uploaded to the remote cache.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    remote_upload: Upload,
}

fn parse_mode(s: &str) -> Result<RemoteMode, String> {
    s.parse().map_err(|e: ndcache::Error| e.to_string())
}

/// "1 entry", "3 entries".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The last line of a listing: "3 entries, 1.2 MiB".
fn total_line(out: &mut dyn Write, entries: usize, bytes: u64) -> Result<()> {
    writeln!(
        out,
        "{}, {}",
        count(entries as u64, "entry", "entries"),
        human(bytes)
    )?;
    Ok(())
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

/// Opens an existing cache to read it: creates, writes and removes nothing.
fn open_read_only(dir: &DirArgs) -> Result<DiskTier> {
    let path = cache_dir(&dir.cache_dir)?;
    Ok(DiskTier::builder(&path).read_only(true).build()?)
}

/// Opens an existing cache to change it (`gc`, `clear`, `verify --repair`).
fn open_for_maintenance(dir: &DirArgs) -> Result<DiskTier> {
    let path = cache_dir(&dir.cache_dir)?;
    Ok(DiskTier::builder(&path)
        .create(false)
        .require_writable(true)
        .build()?)
}

fn apply(args: &ApplyArgs) -> Result<()> {
    let registry = Registry::with_builtins();
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
    // The kernel, the number of inputs and the parameters first: a typo
    // should not cost reading the inputs.
    let prepared = registry.prepare(&args.kernel, args.inputs.len(), &params)?;
    let inputs = args
        .inputs
        .iter()
        .map(read_npy)
        .collect::<ndcache::Result<Vec<_>>>()?;

    let start = Instant::now();
    let (result, how) = if args.no_cache {
        let views: Vec<AnyView<'_>> = inputs.iter().map(|a| a.view()).collect();
        (prepared.compute(&views)?, "computed (no cache)".to_owned())
    } else {
        let dir = cache_dir(&args.dir.cache_dir)?;
        // Written before the call returns, so that the call knows whether
        // its result was stored.
        let mut b = ArrayCache::builder()
            .registry(registry)
            .disk(&dir)
            .disk_background_writes(false)
            // One call per process: record its hit exactly (the cost of
            // recording is nothing next to starting a process).
            .disk_access_granularity(std::time::Duration::ZERO);
        if let Some(m) = args.max_bytes {
            b = b.disk_max_bytes(m);
        }
        if let Some(url) = args.remote.url() {
            let mut o = RemoteOptions::new(url)
                .namespace(&args.remote.remote_namespace)
                .mode(args.remote_mode);
            if let Upload::Always = args.remote_upload {
                o = o.min_compute(Some(std::time::Duration::ZERO));
            }
            b = b.remote(o);
        }
        let cache = b.build()?;
        let arg_list: Vec<ndcache::Arg<'_>> = inputs.iter().map(ndcache::AsArg::arg).collect();
        let (r, source) = cache.call_with_source(&args.kernel, &arg_list, &params)?;
        // The upload, if any, before the report says what became of it.
        cache.flush();
        (r.into_array(), outcome(&cache, &dir, &source))
    };
    let took = start.elapsed();
    write_npy_atomic(&args.out, &result)?;
    // Standard error gone (a closed pipe)? The output file is written: done.
    let _ = writeln!(
        io::stderr(),
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

/// What the call did, for the outcome line of `apply`.
fn outcome(cache: &ArrayCache, dir: &Path, source: &Source) -> String {
    let local = outcome_local(cache, dir, source);
    let Some(r) = cache.remote() else {
        return local;
    };
    let s = r.stats();
    let url = r.url();
    match source {
        Source::Remote => format!("hit (remote {url}, written to {})", dir.display()),
        Source::Computed { .. } if s.uploads > 0 => format!("{local}; uploaded to {url}"),
        Source::Computed { .. } if s.upload_skipped > 0 => {
            format!("{local}; not uploaded to {url} (quicker to compute than to load)")
        }
        Source::Computed { .. } if s.errors > 0 || s.breaker_open => {
            format!("{local}; {url} unavailable")
        }
        Source::Computed { .. } => format!("{local}; not uploaded to {url}"),
        _ => local,
    }
}

fn outcome_local(cache: &ArrayCache, dir: &Path, source: &Source) -> String {
    let dir = dir.display();
    match source {
        Source::Disk => format!("hit (disk, {dir})"),
        Source::Computed { stored: true } => format!("miss (computed, stored in {dir})"),
        Source::Computed { stored: false } => {
            // Why not: the tier's account (it has printed a warning about a
            // failed write already).
            let why = match cache.disk().map(DiskTier::stats) {
                Some(d) if d.rejected > 0 => match d.max_bytes {
                    Some(max) => format!(": larger than the budget of {}", human(max)),
                    None => ": larger than the budget".to_owned(),
                },
                Some(d) if d.write_failures > 0 => ": could not write there".to_owned(),
                _ => String::new(),
            };
            format!("miss (computed; not stored in {dir}{why})")
        }
        Source::Bypassed => "miss (computed; caching was bypassed)".to_owned(),
        // A new process starts with an empty memory tier: no memory hits.
        #[allow(unreachable_patterns)] // `Source` is `#[non_exhaustive]`
        _ => "hit".to_owned(),
    }
}

fn kernels(out: &mut dyn Write) -> Result<()> {
    let registry = Registry::with_builtins();
    writeln!(
        out,
        "{:<10} {:>5}  {:<32} {:>7}  doc",
        "name", "arity", "parameters", "version"
    )?;
    for k in registry.kernels() {
        let params: Vec<String> = k.params().iter().map(ToString::to_string).collect();
        writeln!(
            out,
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
        )?;
    }
    Ok(())
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

fn ls(dir: &DirArgs, out: &mut dyn Write) -> Result<()> {
    let tier = open_read_only(dir)?;
    let mut entries = tier.entries()?;
    entries.sort_by_key(|e| std::cmp::Reverse(e.last_access));
    writeln!(
        out,
        "{:<32}  {:<10} {:>7}  {:<8} {:<16} {:>10}  last used",
        "key", "kernel", "version", "dtype", "shape", "size"
    )?;
    for e in &entries {
        writeln!(
            out,
            "{:<32}  {:<10} {:>7}  {:<8} {:<16} {:>10}  {}",
            e.meta.key.to_string(),
            e.meta.kernel,
            e.meta.version,
            e.meta.dtype.name(),
            format!("{:?}", e.meta.shape),
            human(e.bytes),
            ago(e.last_access)
        )?;
    }
    total_line(out, entries.len(), entries.iter().map(|e| e.bytes).sum())
}

fn stats(dir: &DirArgs, out: &mut dyn Write) -> Result<()> {
    let tier = open_read_only(dir)?;
    let s = tier.stats();
    writeln!(out, "directory  {}", tier.dir().display())?;
    writeln!(out, "entries    {}", s.entries)?;
    writeln!(out, "size       {} ({} bytes)", human(s.bytes), s.bytes)?;
    match s.max_bytes {
        Some(max) => writeln!(out, "budget     {} ({max} bytes)", human(max))?,
        None => writeln!(out, "budget     none")?,
    }
    for old in tier.old_layouts() {
        writeln!(
            out,
            "ignored    {} (an earlier layout, never read: remove it once no older ndcache uses it)",
            old.display()
        )?;
    }
    Ok(())
}

fn export(dir: &DirArgs, key: &str, to: &Path, out: &mut dyn Write) -> Result<ExitCode> {
    let key: ndcache::Fingerprint = key.parse().map_err(|e| {
        anyhow::anyhow!("invalid key {key:?}: {e} (expected 32 hex digits, as `ndcache ls` shows)")
    })?;
    let tier = open_read_only(dir)?;
    match tier.export(key, to)? {
        Some(meta) => {
            writeln!(
                out,
                "wrote {} ({} {} {:?}, from {} {})",
                to.display(),
                meta.key,
                meta.dtype.name(),
                meta.shape,
                meta.kernel,
                meta.version
            )?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "ndcache: error: no entry {key} in {} (or it is damaged: see `ndcache verify`)",
                tier.dir().display()
            );
            Ok(ExitCode::from(1))
        }
    }
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

fn verify(dir: &DirArgs, repair: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let tier = if repair {
        open_for_maintenance(dir)?
    } else {
        open_read_only(dir)?
    };
    let (bar, cb) = progress("verify");
    let report = tier.verify(repair, cb)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for p in &report.corrupt {
        writeln!(
            out,
            "corrupt  {}  {}{}",
            p.key,
            p.reason,
            if p.removed { " (removed)" } else { "" }
        )?;
    }
    for p in &report.unreadable {
        writeln!(out, "unreadable  {}  {}", p.key, p.reason)?;
    }
    writeln!(
        out,
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
    )?;
    // An unreadable entry may be fine or not: the cache is not known clean.
    let clean = report.corrupt.iter().all(|p| p.removed) && report.unreadable.is_empty();
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn gc(dir: &DirArgs, max_bytes: u64, out: &mut dyn Write) -> Result<()> {
    let tier = open_for_maintenance(dir)?;
    let (bar, cb) = progress("gc");
    let report = tier.gc(max_bytes, cb)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    writeln!(
        out,
        "removed {} ({}); {} left",
        count(report.removed.len() as u64, "entry", "entries"),
        human(report.freed_bytes()),
        human(tier.stats().bytes)
    )?;
    Ok(())
}

fn clear(dir: &DirArgs, out: &mut dyn Write) -> Result<()> {
    let tier = open_for_maintenance(dir)?;
    let n = tier.clear()?;
    writeln!(
        out,
        "removed {} from {}",
        count(n, "entry", "entries"),
        tier.dir().display()
    )?;
    Ok(())
}

/// Opens the remote cache named by `args` (for `remote` commands).
fn open_remote(args: &RemoteArgs) -> Result<RemoteTier> {
    let Some(url) = args.url() else {
        bail!("no remote cache: pass --remote URL or set {REMOTE_ENV}");
    };
    Ok(RemoteTier::new(
        RemoteOptions::new(url).namespace(&args.remote_namespace),
    )?)
}

fn remote(cmd: &RemoteCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        RemoteCommand::Stats(a) => {
            let tier = open_remote(a)?;
            let entries = tier.entries()?;
            let info = tier.server_info()?;
            writeln!(out, "remote     {}", tier.url())?;
            writeln!(out, "namespace  {}", tier.namespace())?;
            writeln!(out, "entries    {}", entries.len())?;
            let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
            writeln!(out, "size       {} ({bytes} bytes)", human(bytes))?;
            writeln!(
                out,
                "server     {} used of {} on {}, policy {}",
                human(info.used_memory),
                if info.max_memory == 0 {
                    "no maxmemory".to_owned()
                } else {
                    human(info.max_memory)
                },
                count(info.nodes as u64, "node", "nodes"),
                info.policy
            )?;
            if info.max_memory == 0 || !info.policy.starts_with("allkeys-") {
                writeln!(
                    out,
                    "hint       set maxmemory and maxmemory-policy allkeys-lru, or Redis refuses writes when full"
                )?;
            }
            for (name, v) in tier.fleet_stats()? {
                writeln!(out, "fleet      {name:<16} {v}")?;
            }
        }
        RemoteCommand::Ls(a) => {
            let tier = open_remote(a)?;
            let entries = tier.entries()?;
            writeln!(
                out,
                "{:<32}  {:<10} {:>7}  {:<8} {:<16} {:>10} {:>6}",
                "key", "kernel", "version", "dtype", "shape", "size", "chunks"
            )?;
            for e in &entries {
                writeln!(
                    out,
                    "{:<32}  {:<10} {:>7}  {:<8} {:<16} {:>10} {:>6}",
                    e.key.to_string(),
                    e.kernel,
                    e.version,
                    e.dtype.name(),
                    format!("{:?}", e.shape),
                    human(e.bytes),
                    e.chunks
                )?;
            }
            total_line(out, entries.len(), entries.iter().map(|e| e.bytes).sum())?;
        }
        RemoteCommand::Clear(a) => {
            let tier = open_remote(a)?;
            let n = tier.clear()?;
            writeln!(
                out,
                "removed {} of namespace {} from {}",
                count(n, "key", "keys"),
                tier.namespace(),
                tier.url()
            )?;
        }
    }
    Ok(())
}

/// Runs the command, writing its report to `out`.
fn run(cli: &Cli, out: &mut dyn Write) -> Result<ExitCode> {
    let done = |()| ExitCode::SUCCESS;
    match &cli.command {
        Command::Apply(a) => apply(a).map(done),
        Command::Kernels => kernels(out).map(done),
        Command::Ls(d) => ls(d, out).map(done),
        Command::Stats(d) => stats(d, out).map(done),
        Command::Verify { dir, repair } => verify(dir, *repair, out),
        Command::Gc { dir, max_bytes } => gc(dir, *max_bytes, out).map(done),
        Command::Clear(d) => clear(d, out).map(done),
        Command::Export { dir, key, out: to } => export(dir, key, to, out),
        Command::Remote(c) => remote(c, out).map(done),
    }
}

/// Whether `e` is a write to a closed pipe (`ndcache ls | head`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every report goes through this one writer (never `println!`, which
    // panics on a closed pipe), so that a reader that stops reading ends
    // the program quietly, as it would a C program killed by SIGPIPE.
    let mut out = io::BufWriter::new(io::stdout().lock());
    let result = run(&cli, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            // One line: the error and its causes.
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            let _ = writeln!(io::stderr(), "ndcache: error: {}", msg.join(": "));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
