//! Real Redis servers for tests and benches: `redis-server` on a free
//! loopback port (or three of them made into a Redis Cluster with
//! `redis-cli --cluster create`), stopped when dropped.
//!
//! Without `redis-server` on the PATH, [`Redis::start`] prints that the test
//! skips and returns `None`, unless `NDCACHE_REQUIRE_REDIS` is set (CI),
//! in which case it panics.

#![allow(dead_code)] // each user (tests, bench) uses part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Whether `redis-server` and `redis-cli` can run; panics instead of
/// returning `false` when `NDCACHE_REQUIRE_REDIS` is set.
pub fn available() -> bool {
    let ok = ["redis-server", "redis-cli"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        let required = std::env::var_os("NDCACHE_REQUIRE_REDIS").is_some_and(|v| !v.is_empty());
        assert!(
            !required,
            "NDCACHE_REQUIRE_REDIS is set but redis-server or redis-cli is not installed"
        );
        eprintln!("skipping: redis-server is not installed (apt-get install redis-server)");
    }
    ok
}

/// A loopback port that is free, and whose cluster bus port (+10000) is too.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let spread = (std::process::id() % 500) as u16 * 40;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 40;
        let p = 21000 + spread + n;
        let bindable = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if bindable(p) && bindable(p + 10000) {
            return p;
        }
    }
}

/// Whether a server answers `PING` on `port`.
pub fn pings(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// One `redis-server` process.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server with `extra` arguments (`--maxmemory 1mb`...);
    /// `None` when redis-server is not installed (see [`available`]).
    pub fn start(extra: &[&str]) -> Option<Redis> {
        if !available() {
            return None;
        }
        for _ in 0..20 {
            let mut r = Redis {
                child: None,
                port: free_port(),
                args: extra.iter().map(|s| s.to_string()).collect(),
                dir: tempfile::tempdir().expect("a temporary directory"),
            };
            if r.spawn() {
                return Some(r);
            }
        }
        panic!("could not start redis-server on a free port");
    }

    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(self.dir.path())
        .args(&self.args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
        let Ok(child) = cmd.spawn() else {
            return false;
        };
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if pings(self.port) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false; // exited: the port was taken meanwhile
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// `redis-cli -p PORT args...`, its standard output trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// SIGSTOP: the server hangs (connections accepted, nothing answered).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        while !self.spawn() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "could not restart redis-server on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-cli -p port args...`, its standard output trimmed.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Three masters made into a Redis Cluster (no replicas).
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    pub fn start() -> Option<Cluster> {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        let nodes: Vec<Redis> = (0..3).map(|_| Redis::start(&args)).collect::<Option<_>>()?;
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let start = Instant::now();
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the cluster did not become ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Cluster { nodes })
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The keys held by each node.
    pub fn keys_per_node(&self) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|n| {
                let mut k: Vec<String> = n
                    .cli(&["--scan"])
                    .lines()
                    .map(str::to_owned)
                    .filter(|l| !l.is_empty())
                    .collect();
                k.sort();
                k
            })
            .collect()
    }
}
