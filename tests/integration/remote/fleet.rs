//! Fleets: several processes, each with its own disk directory, sharing one
//! Redis (the `ndcache` program) or one 3-node Redis Cluster (workers
//! running a slow kernel that logs its runs). The kernel runs once in all,
//! every output is identical and equal to the oracle, and a process started
//! later gets a remote hit, then a disk hit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ndcache::disk::{read_npy, write_npy_atomic};
use ndcache::{AnyArray, AsArg, Params, Source};

use super::server::{Cluster, Redis};
use super::worker::{oracle, Worker, WorkerSpec};
use super::{cache, data, options, raw};

const EXE: &str = env!("CARGO_BIN_EXE_ndcache");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ndcache apply sort x --out out --cache-dir dir --remote url`: its stderr.
fn apply(x: &Path, out: &Path, dir: &Path, url: &str) -> String {
    let o = Command::new(EXE)
        .args([
            "apply",
            "sort",
            s(x),
            "--out",
            s(out),
            "--cache-dir",
            s(dir),
        ])
        .args(["--remote", url, "--remote-upload", "always"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{e}");
    e
}

#[cfg(unix)]
#[test]
fn four_processes_share_one_redis_and_compute_once() {
    let Some(redis) = Redis::start(&[]) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let x = data(1_000_000, 21); // 8 MB: chunked
    let input = tmp.path().join("x.npy");
    write_npy_atomic(&input, &AnyArray::from(x.clone())).unwrap();
    let start = tmp.path().join("start");
    // Each shell waits for the start file, then becomes ndcache.
    let script = r#"while [ ! -e "$1" ]; do sleep 0.01; done; exec "$2" apply sort "$3" --out "$4" --cache-dir "$5" --remote "$6" --remote-upload always"#;
    let outs: Vec<PathBuf> = (0..4)
        .map(|i| tmp.path().join(format!("y{i}.npy")))
        .collect();
    let children: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            Command::new("sh")
                .args(["-c", script, "sh", s(&start), EXE, s(&input), s(o)])
                .arg(tmp.path().join(format!("disk{i}")))
                .arg(redis.url())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    fs::write(&start, "go").unwrap();
    let stderrs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            let e = String::from_utf8(o.stderr).unwrap();
            assert!(o.status.success(), "{e}");
            e
        })
        .collect();
    let computed = stderrs
        .iter()
        .filter(|e| e.contains("miss (computed"))
        .count();
    let remote = stderrs.iter().filter(|e| e.contains("hit (remote")).count();
    assert_eq!((computed, remote), (1, 3), "{stderrs:#?}");
    let first = fs::read(&outs[0]).unwrap();
    for o in &outs {
        assert_eq!(fs::read(o).unwrap(), first, "{}", o.display());
    }
    assert!(read_npy(&outs[0]).unwrap().bitwise_eq(&raw("sort", &x)));
    // The fleet's counters: one upload, three remote hits.
    let stats = Command::new(EXE)
        .args(["remote", "stats", "--remote", &redis.url()])
        .output()
        .unwrap();
    let stats = String::from_utf8(stats.stdout).unwrap();
    assert!(stats.contains("fleet      hits             3\n"), "{stats}");
    assert!(stats.contains("fleet      uploads          1\n"), "{stats}");
    // A fifth process, later: a remote hit, then (same directory) a disk hit.
    let (dir5, out5) = (tmp.path().join("disk5"), tmp.path().join("y5.npy"));
    let e = apply(&input, &out5, &dir5, &redis.url());
    assert!(e.contains("hit (remote"), "{e}");
    assert_eq!(fs::read(&out5).unwrap(), first);
    let e = apply(&input, &out5, &dir5, &redis.url());
    assert!(e.contains("hit (disk"), "{e}");
    assert_eq!(fs::read(&out5).unwrap(), first);
}

#[test]
fn four_workers_share_a_redis_cluster_with_a_chunked_value() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let n = 600_000; // 4.8 MB: 3 chunks of 2 MiB
    let spec = |i: usize| WorkerSpec {
        url: cluster.url(),
        disk: Some(tmp.path().join(format!("disk{i}"))),
        n,
        sleep_ms: 1500,
        lease_ms: 3000,
        count: tmp.path().join("runs"),
        out: tmp.path().join(format!("y{i}.npy")),
        min_compute_ms: 0,
    };
    let workers: Vec<Worker> = (0..4).map(|i| Worker::spawn(&spec(i))).collect();
    let reports: Vec<String> = workers.into_iter().map(Worker::finish).collect();
    let runs = fs::read_to_string(tmp.path().join("runs")).unwrap();
    assert_eq!(runs, "start\nend\n", "{reports:#?}");
    let computed = reports
        .iter()
        .filter(|r| r.contains("source=computed"))
        .count();
    let remote = reports
        .iter()
        .filter(|r| r.contains("source=remote-hit"))
        .count();
    assert_eq!((computed, remote), (1, 3), "{reports:#?}");
    let expected = oracle(n);
    for i in 0..4 {
        assert!(
            read_npy(&spec(i).out).unwrap().bitwise_eq(&expected),
            "worker {i}"
        );
    }
    // One value, one slot: its manifest and chunks are on one node.
    let per_node = cluster.keys_per_node();
    let holding: Vec<&Vec<String>> = per_node
        .iter()
        .filter(|k| k.iter().any(|k| k.contains(":k1:r1:")))
        .collect();
    assert_eq!(holding.len(), 1, "{per_node:?}");
    let value_keys: Vec<&String> = holding[0]
        .iter()
        .filter(|k| k.contains(":k1:r1:"))
        .collect();
    assert_eq!(value_keys.len(), 4, "manifest and 3 chunks: {value_keys:?}");
    // A fifth worker, later: a remote hit, then a disk hit.
    let r = Worker::spawn(&spec(4)).finish();
    assert!(r.contains("source=remote-hit"), "{r}");
    let r = Worker::spawn(&spec(4)).finish();
    assert!(r.contains("source=disk-hit"), "{r}");
    assert!(read_npy(&spec(4).out).unwrap().bitwise_eq(&expected));
    assert_eq!(
        fs::read_to_string(tmp.path().join("runs")).unwrap(),
        "start\nend\n"
    );
}

#[test]
fn a_cluster_spreads_keys_over_its_nodes_and_clear_reaches_them_all() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let inputs: Vec<_> = (0..24).map(|i| data(5000, 300 + i)).collect();
    {
        let c = cache(options(&cluster.url()).chunk_bytes(64 << 10), None);
        for x in &inputs {
            c.call("exp", &[x.arg()], &Params::new()).unwrap();
        }
    }
    let per_node = cluster.keys_per_node();
    let used = per_node.iter().filter(|k| !k.is_empty()).count();
    assert!(used >= 2, "{per_node:?}");
    let reader = cache(options(&cluster.url()), None);
    for x in &inputs {
        let (got, s) = reader
            .call_with_source("exp", &[x.arg()], &Params::new())
            .unwrap();
        assert_eq!(s, Source::Remote);
        assert!(got.array().bitwise_eq(&raw("exp", x)));
    }
    let tier = ndcache::remote::RemoteTier::new(options(&cluster.url())).unwrap();
    assert_eq!(tier.entries().unwrap().len(), 24);
    assert_eq!(tier.server_info().unwrap().nodes, 3);
    assert!(tier.clear().unwrap() >= 24);
    assert!(cluster.keys_per_node().iter().all(Vec::is_empty));
}
