//! A worker process for the multi-process tests: this test binary run again
//! with `NDCACHE_TEST_WORKER` set, calling a slow user kernel through an
//! `ArrayCache` with a remote tier. The kernel appends `start` and `end` to
//! a shared file, so the tests count its runs across processes.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ndarray::Array1;
use ndcache::{AnyArray, ArrayCache, AsArg, Params, Registry};

const ENV: &str = "NDCACHE_TEST_WORKER";

/// What a worker does.
pub(crate) struct WorkerSpec {
    pub url: String,
    pub disk: Option<PathBuf>,
    /// Elements of the input (`0, 1, ..., n-1` as float64).
    pub n: usize,
    /// How long the kernel sleeps before computing.
    pub sleep_ms: u64,
    pub lease_ms: u64,
    /// The file the kernel appends `start` and `end` to.
    pub count: PathBuf,
    /// Where the result is written (.npy).
    pub out: PathBuf,
    /// Upload only results that took this long (default: everything).
    pub min_compute_ms: u64,
}

/// The kernel's result for `n` elements, computed here: `3x + 1`.
pub(crate) fn oracle(n: usize) -> AnyArray {
    AnyArray::from(Array1::from_shape_fn(n, |i| 3.0 * i as f64 + 1.0))
}

pub(crate) struct Worker {
    child: Child,
}

impl Worker {
    pub(crate) fn spawn(spec: &WorkerSpec) -> Worker {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "remote::worker::worker",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, "1")
        .env("W_URL", &spec.url)
        .env("W_N", spec.n.to_string())
        .env("W_SLEEP_MS", spec.sleep_ms.to_string())
        .env("W_LEASE_MS", spec.lease_ms.to_string())
        .env("W_COUNT", &spec.count)
        .env("W_OUT", &spec.out)
        .env("W_MIN_COMPUTE_MS", spec.min_compute_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if let Some(d) = &spec.disk {
            cmd.env("W_DISK", d);
        }
        Worker {
            child: cmd.spawn().expect("spawn a worker"),
        }
    }

    /// If it has exited already: its output (for a failing test's message).
    pub(crate) fn exited(&mut self) -> Option<String> {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            return None;
        }
        let mut out = String::new();
        for r in [
            self.child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read>),
            self.child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut r = r;
            let _ = r.read_to_string(&mut out);
        }
        Some(out)
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for it; asserts success; returns its report lines.
    pub(crate) fn finish(self) -> String {
        let out = self.child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .filter(|l| l.starts_with("source=") || l.starts_with("stats="))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The worker's body; does nothing in a normal test run.
#[test]
fn worker() {
    if std::env::var_os(ENV).is_none() {
        return;
    }
    let n: usize = env("W_N").parse().unwrap();
    let sleep = Duration::from_millis(env("W_SLEEP_MS").parse().unwrap());
    let count = PathBuf::from(env("W_COUNT"));
    let mark = move |what: &str| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&count)
            .unwrap();
        writeln!(f, "{what}").unwrap();
    };
    let mut reg = Registry::with_builtins();
    reg.register_fn(
        "slow_affine",
        "1",
        1,
        vec![],
        "3x + 1, slowly",
        move |inputs, _| {
            mark("start");
            std::thread::sleep(sleep);
            let x = inputs[0].typed::<f64>()?;
            let y = AnyArray::from(x.mapv(|v| 3.0 * v + 1.0));
            mark("end");
            Ok(y)
        },
    )
    .unwrap();
    let o = super::options(&env("W_URL"))
        .lease_ttl(Duration::from_millis(env("W_LEASE_MS").parse().unwrap()))
        .min_compute(Some(Duration::from_millis(
            env("W_MIN_COMPUTE_MS").parse().unwrap(),
        )));
    let mut b = ArrayCache::builder().registry(reg).remote(o);
    if let Ok(d) = std::env::var("W_DISK") {
        b = b.disk(d);
    }
    let cache = b.build().unwrap();
    let x = Array1::from_shape_fn(n, |i| i as f64);
    let (y, source) = cache
        .call_with_source("slow_affine", &[x.arg()], &Params::new())
        .unwrap();
    ndcache::disk::write_npy_atomic(env("W_OUT"), y.array()).unwrap();
    cache.flush();
    let source = match source {
        ndcache::Source::Computed { .. } => "computed".to_owned(),
        other => other.to_string().replace(' ', "-"),
    };
    println!("\nsource={source}");
    println!("\nstats={}", cache.info().remote.unwrap());
}
