//! Small entries (rows of the SQLite store), the store as the index of large
//! ones, the budget against `du`, earlier layouts, and crashes.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{files_under, sample};
use crate::disk::row_meta;
use crate::disk::store::row_bytes;
use crate::disk::{DiskTier, EntryInfo, EntryMeta};
use crate::{AnyArray, DType, Fingerprint};

fn key(i: u128) -> Fingerprint {
    crate::call_key("small", "1", &i.to_le_bytes(), &[])
}

fn info() -> EntryInfo {
    EntryInfo::new("k", "1", Duration::from_micros(5))
}

fn tier(dir: &Path) -> DiskTier {
    DiskTier::builder(dir)
        .background_writes(false)
        .build()
        .unwrap()
}

/// `du` of `dir`: allocated blocks of every file and directory under it.
#[cfg(unix)]
fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += m.blocks() * 512;
        if m.is_dir() {
            total += du(&e.path());
        }
    }
    total
}

/// Runs SQL on the store of the cache in `dir` (damage on purpose).
fn sql(dir: &Path, statement: &str, params: impl rusqlite::Params) {
    let c = rusqlite::Connection::open(dir.join("v2/entries.db")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let n = c.execute(statement, params).unwrap();
    assert_eq!(n, 1, "{statement}");
}

fn blob(k: Fingerprint) -> Vec<u8> {
    k.as_u128().to_be_bytes().to_vec()
}

#[test]
fn small_entries_round_trip_in_one_file_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let arrays: Vec<AnyArray> = DType::ALL
        .into_iter()
        .flat_map(|d| {
            [
                sample(d, &[]),
                sample(d, &[0]),
                sample(d, &[16]),
                sample(d, &[3, 4]),
            ]
        })
        .collect();
    {
        let t = tier(dir.path());
        for (i, a) in arrays.iter().enumerate() {
            t.put(key(i as u128), a, info(), None);
        }
        let st = t.stats();
        assert_eq!(
            (st.entries, st.writes),
            (arrays.len() as u64, arrays.len() as u64)
        );
        // Each counts its row: meta and data, plus the fixed overhead.
        let want: u64 = (0..arrays.len())
            .map(|i| {
                let (a, m) = t.get(key(i as u128)).unwrap();
                row_bytes(row_meta::encode(&m).len(), a.nbytes() as usize)
            })
            .sum();
        assert_eq!(st.bytes, want);
    }
    // No file per entry: the store and its companions only.
    let files: Vec<_> = files_under(&dir.path().join("v2"))
        .into_iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("entries.db") && n != "CACHEDIR.TAG" && n != "keylocks")
        .collect();
    assert!(files.is_empty(), "{files:?}");
    let t = tier(dir.path());
    for (i, a) in arrays.iter().enumerate() {
        let (got, meta) = t.get(key(i as u128)).expect("hit after restart");
        assert!(got.bitwise_eq(a), "case {i}");
        assert_eq!((meta.dtype, meta.shape.as_slice()), (a.dtype(), a.shape()));
    }
    // Export writes a .npy file with the recorded checksum.
    let out = dir.path().join("out.npy");
    let meta = t.export(key(2), &out).unwrap().unwrap();
    let bytes = fs::read(&out).unwrap();
    assert_eq!(crate::hash::xxh3_128(&bytes), meta.checksum);
    assert!(crate::disk::read_npy(&out).unwrap().bitwise_eq(&arrays[2]));
    assert!(t.export(key(999), &out).unwrap().is_none());
}

/// Damages the row of one small entry with `damage`; `verify` reports it,
/// a lookup misses, counts and removes it, the other entry stays, and the
/// key can be stored again.
fn check_row_damage(name: &str, damage: impl FnOnce(&Path, Fingerprint, &EntryMeta)) {
    let dir = tempfile::tempdir().unwrap();
    let t = tier(dir.path());
    let (k, other) = (key(7), key(8));
    let v = sample(DType::F64, &[16]);
    t.put(k, &v, info(), None);
    t.put(other, &v, info(), None);
    let meta = t.get(k).unwrap().1;
    damage(dir.path(), k, &meta);

    let r = t.verify(false, |_| {}).unwrap();
    assert_eq!((r.ok, r.corrupt.len()), (1, 1), "{name}: {r:?}");
    assert_eq!((r.corrupt[0].key, r.corrupt[0].removed), (k, false));
    assert!(t.get(k).is_none(), "{name}: served");
    let st = t.stats();
    assert_eq!((st.corrupt, st.entries), (1, 1), "{name}: {st}");
    assert!(!t.contains_key(k), "{name}: not removed");
    assert!(t.get(other).unwrap().0.bitwise_eq(&v), "{name}");
    t.put(k, &v, info(), None);
    assert!(t.get(k).unwrap().0.bitwise_eq(&v), "{name}");
    let r = t.verify(true, |_| {}).unwrap();
    assert_eq!((r.ok, r.corrupt.len()), (2, 0), "{name}");
}

/// The five corruptions of the file tests (`tier.rs`, `cli.rs`), on a row.
#[test]
fn damaged_small_entries_are_misses_counted_and_removed() {
    let set_data = "UPDATE entries SET data = ?2 WHERE key = ?1";
    let set_meta = "UPDATE entries SET meta = ?2 WHERE key = ?1";
    check_row_damage("flipped data byte", |d, k, _| {
        let mut data: Vec<u8> = sample(DType::F64, &[16])
            .typed::<f64>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        data[100] ^= 0x10;
        sql(d, set_data, rusqlite::params![blob(k), data]);
    });
    check_row_damage("truncated data", |d, k, _| {
        sql(d, set_data, rusqlite::params![blob(k), vec![0u8; 120]]);
    });
    check_row_damage("empty data (a deleted payload)", |d, k, _| {
        sql(d, set_data, rusqlite::params![blob(k), Vec::<u8>::new()]);
    });
    check_row_damage(
        "other shape, meta resealed (a garbage header)",
        |d, k, meta| {
            let meta = EntryMeta {
                shape: vec![4, 4],
                ..meta.clone()
            };
            sql(
                d,
                set_meta,
                rusqlite::params![blob(k), row_meta::encode(&meta)],
            );
        },
    );
    check_row_damage("other dtype, meta resealed", |d, k, meta| {
        let meta = EntryMeta {
            dtype: DType::I64,
            ..meta.clone()
        };
        sql(
            d,
            set_meta,
            rusqlite::params![blob(k), row_meta::encode(&meta)],
        );
    });
    check_row_damage("garbage meta", |d, k, _| {
        sql(
            d,
            set_meta,
            rusqlite::params![blob(k), b"not a meta".to_vec()],
        );
    });
    check_row_damage("meta as sidecar text (schema 1)", |d, k, meta| {
        sql(d, set_meta, rusqlite::params![blob(k), meta.to_text()]);
    });
    check_row_damage("flipped meta byte", |d, k, meta| {
        let mut rec = row_meta::encode(meta);
        rec[10] ^= 0x04;
        sql(d, set_meta, rusqlite::params![blob(k), rec]);
    });
    check_row_damage("truncated meta", |d, k, meta| {
        let rec = row_meta::encode(meta);
        sql(
            d,
            set_meta,
            rusqlite::params![blob(k), &rec[..rec.len() - 1]],
        );
    });
    check_row_damage("meta of another key", |d, k, meta| {
        let meta = EntryMeta {
            key: key(9),
            ..meta.clone()
        };
        sql(
            d,
            set_meta,
            rusqlite::params![blob(k), row_meta::encode(&meta)],
        );
    });
    check_row_damage("meta and data of another key's entry", |d, k, _| {
        let c = rusqlite::Connection::open(d.join("v2/entries.db")).unwrap();
        let n = c
            .execute(
                "UPDATE entries SET (meta, data) = \
                 (SELECT meta, data FROM entries WHERE key = ?2) WHERE key = ?1",
                rusqlite::params![blob(k), blob(key(8))],
            )
            .unwrap();
        assert_eq!(n, 1);
    });
    check_row_damage("data without meta", |d, k, _| {
        sql(
            d,
            "UPDATE entries SET meta = NULL WHERE key = ?1",
            [blob(k)],
        );
    });
}

#[test]
fn a_signed_cache_refuses_unsigned_small_entries() {
    let dir = tempfile::tempdir().unwrap();
    let v = sample(DType::I64, &[16]);
    tier(dir.path()).put(key(1), &v, info(), None);
    let signed = DiskTier::builder(dir.path())
        .background_writes(false)
        .secret("s3cret")
        .build()
        .unwrap();
    assert!(signed.get(key(1)).is_none());
    assert_eq!(signed.stats().forged, 1);
    signed.put(key(1), &v, info(), None);
    assert!(signed.get(key(1)).unwrap().0.bitwise_eq(&v));
    let other = DiskTier::builder(dir.path())
        .background_writes(false)
        .secret("other")
        .build()
        .unwrap();
    assert!(
        other.get(key(1)).is_none(),
        "a wrong key's signature is refused"
    );
    assert_eq!(other.stats().forged, 1);
}

/// `du` of the directory is what the tier counts (plus a stated fixed
/// overhead), before and after `gc`; `gc` removes the directories it
/// empties.
#[cfg(unix)]
#[test]
fn the_budget_counts_real_disk_use() {
    let dir = tempfile::tempdir().unwrap();
    let t = DiskTier::open(dir.path(), None).unwrap();
    for i in 0..6000 {
        t.put(key(i), &sample(DType::F64, &[16]), info(), None);
    }
    for i in 0..40 {
        t.put(
            key(100_000 + i),
            &sample(DType::F64, &[10_000]),
            info(),
            None,
        );
    }
    t.flush();
    let counted = t.stats().bytes;
    let used = du(&dir.path().join("v2"));
    // The write-ahead log (at most ~5 MiB) is the fixed overhead.
    assert!(used <= counted + (6 << 20), "du {used}, counted {counted}");
    assert!(
        used * 4 >= counted * 3,
        "du {used}, counted {counted}: overcounted"
    );
    let budget = 1 << 20;
    let report = t.gc(budget, |_| {}).unwrap();
    assert!(
        report.remaining_bytes <= budget,
        "{}",
        report.remaining_bytes
    );
    assert_eq!(t.stats().bytes, report.remaining_bytes);
    let used = du(&dir.path().join("v2"));
    // Fixed overhead after gc: about 100 KiB, plus a block per fan-out
    // directory that still holds a large entry (13 entries at most here).
    assert!(
        used <= budget + (100 << 10) + 13 * 4096,
        "du {used} after gc"
    );
    let fan_dirs = fs::read_dir(dir.path().join("v2"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir() && e.file_name().len() == 2)
        .count();
    assert!(fan_dirs <= 13, "{fan_dirs} fan-out directories left");
    // What survived is the most recently written.
    assert!(t.contains_key(key(100_039)));
    assert!(!t.contains_key(key(0)));
}

/// A directory written by layout v1 (two files per entry under
/// `v1/<ab>/<cd>/`) is never read: its entries are misses, even one whose
/// value differs from the right one, and its files are left alone.
#[test]
fn an_earlier_layout_is_ignored_never_misread() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    // Write a valid v1 entry by hand, with a value that is not what the
    // kernel computes (if v2 read it, the test would see the wrong value).
    let v1_value = sample(DType::F64, &[16]);
    {
        let staging = tempfile::tempdir().unwrap();
        let t = DiskTier::builder(staging.path())
            .background_writes(false)
            .small_max_bytes(0)
            .build()
            .unwrap();
        t.put(k, &v1_value, info(), None);
        let hex = k.to_string();
        let v1 = dir.path().join("v1").join(&hex[..2]).join(&hex[2..4]);
        fs::create_dir_all(&v1).unwrap();
        for ext in ["npy", "meta"] {
            let from = staging
                .path()
                .join("v2")
                .join(&hex[..2])
                .join(format!("{hex}.{ext}"));
            fs::copy(from, v1.join(format!("{hex}.{ext}"))).unwrap();
        }
        fs::write(dir.path().join("v1/budget"), "1000\n").unwrap();
    }
    let before = files_under(dir.path());

    // Opening without creating says why it is not a cache of this version.
    let e = DiskTier::builder(dir.path())
        .read_only(true)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("open the cache"), "{e}");
    let why = std::error::Error::source(&e).unwrap().to_string();
    assert!(
        why.contains("earlier layout") && why.contains("v1"),
        "{why}"
    );

    let t = tier(dir.path());
    assert_eq!(t.old_layouts(), vec![dir.path().join("v1")]);
    assert!(t.get(k).is_none(), "an entry of layout v1 was read");
    assert_eq!(t.max_bytes(), None, "v1's budget file was read");
    let right = sample(DType::I32, &[3]);
    let (got, _) = t
        .get_or_insert_with(k, "k", "1", || Ok::<_, crate::Error>(right.clone()))
        .unwrap();
    assert!(got.bitwise_eq(&right));
    assert!(t.get(k).unwrap().0.bitwise_eq(&right));
    let v1_after: Vec<_> = files_under(dir.path())
        .into_iter()
        .filter(|(p, _)| p.starts_with(dir.path().join("v1")))
        .collect();
    assert_eq!(v1_after, before, "the v1 directory was changed");
}

/// Without its store (deleted), a cache reopens at once and indexes its
/// large entries in the background; a damaged store is moved aside, and
/// nothing wrong is ever served.
#[test]
fn a_missing_or_damaged_store_is_rebuilt_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let large = |i: u128| sample(DType::F64, &[9000 + i as usize]);
    let small = sample(DType::F64, &[16]);
    {
        let t = tier(dir.path());
        for i in 0..5 {
            t.put(key(i), &large(i), info(), None);
        }
        t.put(key(50), &small, info(), None);
        assert_eq!(t.stats().entries, 6);
    }
    let store = dir.path().join("v2/entries.db");
    for damage in ["delete", "garbage"] {
        match damage {
            "delete" => {
                for ext in ["", "-wal", "-shm"] {
                    let _ = fs::remove_file(format!("{}{ext}", store.display()));
                }
            }
            _ => {
                for ext in ["-wal", "-shm"] {
                    let _ = fs::remove_file(format!("{}{ext}", store.display()));
                }
                fs::write(&store, vec![0x5au8; 8192]).unwrap();
            }
        }
        let t = tier(dir.path());
        t.flush(); // waits for the background indexing
        let st = t.stats();
        assert_eq!(st.entries, 5, "{damage}: {st}");
        for i in 0..5 {
            assert!(t.get(key(i)).unwrap().0.bitwise_eq(&large(i)), "{damage}");
        }
        assert!(
            t.get(key(50)).is_none(),
            "{damage}: the small entry is lost"
        );
        t.put(key(50), &small, info(), None);
    }
    let aside: Vec<_> = fs::read_dir(dir.path().join("v2"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged store is kept aside");
}

/// A store of schema version 1 (small entries' meta as sidecar text) is
/// replaced by an empty one of the current schema: its small entries are
/// misses (even one holding another value than the right one), never
/// misread; the large entries' files are indexed again.
#[test]
fn a_store_of_an_earlier_schema_is_replaced_never_misread() {
    let dir = tempfile::tempdir().unwrap();
    let large = |i: u128| sample(DType::F64, &[9000 + i as usize]);
    {
        let t = tier(dir.path());
        for i in 0..3 {
            t.put(key(i), &large(i), info(), None);
        }
    }
    let store = dir.path().join("v2/entries.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{ext}", store.display()));
    }
    // Version 1, as ndcache before the binary meta wrote it, with a valid
    // small entry for key 50 whose value is not the one put below.
    let wrong = sample(DType::I64, &[16]);
    let wrong_bytes: Vec<u8> = wrong
        .typed::<i64>()
        .unwrap()
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let header = crate::disk::npy::header_bytes(DType::I64, &[16]);
    let mut npy = header.clone();
    npy.extend_from_slice(&wrong_bytes);
    let text = EntryMeta {
        key: key(50),
        kernel: "k".into(),
        version: "1".into(),
        dtype: DType::I64,
        shape: vec![16],
        checksum: crate::hash::xxh3_128(&npy),
        payload_bytes: npy.len() as u64,
        compute_time: Duration::from_micros(5),
        created: std::time::SystemTime::now(),
        signature: None,
    }
    .to_text();
    {
        let c = rusqlite::Connection::open(&store).unwrap();
        c.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;
             CREATE TABLE entries (key BLOB PRIMARY KEY NOT NULL, atime INTEGER NOT NULL,
                 bytes INTEGER NOT NULL, meta TEXT, data BLOB) WITHOUT ROWID;
             CREATE INDEX entries_atime ON entries(atime);
             CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0),
                 entries INTEGER NOT NULL, bytes INTEGER NOT NULL);
             INSERT INTO totals VALUES (0, 1, 600);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        c.execute(
            "INSERT INTO entries VALUES (?1, 1, 600, ?2, ?3)",
            rusqlite::params![blob(key(50)), text, wrong_bytes],
        )
        .unwrap();
    }
    let t = tier(dir.path());
    t.flush(); // waits for the background indexing
    let st = t.stats();
    assert_eq!(st.entries, 3, "{st}");
    assert!(t.get(key(50)).is_none(), "an old row was read");
    for i in 0..3 {
        assert!(t.get(key(i)).unwrap().0.bitwise_eq(&large(i)));
    }
    let right = sample(DType::F64, &[16]);
    t.put(key(50), &right, info(), None);
    assert!(t.get(key(50)).unwrap().0.bitwise_eq(&right));
    let c = rusqlite::Connection::open(&store).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

/// A read-only view (`ndcache ls`, `verify`) serves small entries and
/// creates or changes nothing.
#[test]
fn read_only_tiers_read_small_entries_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v = sample(DType::F32, &[16]);
    tier(dir.path()).put(key(1), &v, info(), None);
    let before = files_under(dir.path());
    let t = DiskTier::builder(dir.path())
        .read_only(true)
        .build()
        .unwrap();
    assert!(t.get(key(1)).unwrap().0.bitwise_eq(&v));
    assert_eq!(t.entries().unwrap().len(), 1);
    assert_eq!(t.verify(false, |_| {}).unwrap().ok, 1);
    t.put(key(2), &v, info(), None);
    t.flush();
    assert_eq!(t.stats().write_failures, 1);
    drop(t);
    let after = files_under(dir.path());
    let names = |v: &[(std::path::PathBuf, u64)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before));
}

const CHILD_ENV: &str = "NDCACHE_DISK_TEST_CRASH_DIR";

/// The value stored under `key(i)` by the crash test's writer: small for
/// even `i`, large for odd.
fn crash_value(i: u128) -> AnyArray {
    if i.is_multiple_of(2) {
        sample(DType::I64, &[16 + (i % 7) as usize])
    } else {
        sample(DType::F64, &[9000 + (i % 5) as usize])
    }
}

/// A writer killed with SIGKILL at random moments, over and over: afterwards
/// every lookup gives the right value or a miss (a lost entry), never a
/// wrong one; `verify --repair` leaves a clean cache.
#[cfg(unix)]
#[test]
fn a_writer_killed_at_any_moment_never_leaves_a_wrong_result() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut delays = 0x2545_f491_4f6c_dd1du64;
    for round in 0..12 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "disk::tests::small::crash_child"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        delays ^= delays << 13;
        delays ^= delays >> 7;
        delays ^= delays << 17;
        std::thread::sleep(Duration::from_millis(30 + delays % 170));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let t = DiskTier::open(dir.path(), None).unwrap();
        let mut present = 0;
        for i in 0..400 {
            if let Some((v, _)) = t.get(key(i)) {
                assert!(
                    v.bitwise_eq(&crash_value(i)),
                    "round {round}: wrong value for {i}"
                );
                present += 1;
            }
        }
        eprintln!("round {round}: {present} entries present");
    }
    let t = DiskTier::open(dir.path(), None).unwrap();
    let r = t.verify(true, |_| {}).unwrap();
    assert!(r.unreadable.is_empty(), "{r:?}");
    let r = t.verify(false, |_| {}).unwrap();
    assert_eq!((r.corrupt.len(), r.in_progress), (0, 0), "{r:?}");
    assert!(r.ok > 0, "the writer never got anything written: {r:?}");
    assert_eq!(t.stats().entries, r.ok);
}

#[test]
#[ignore = "run by a_writer_killed_at_any_moment_never_leaves_a_wrong_result"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        panic!("run by a_writer_killed_at_any_moment_never_leaves_a_wrong_result only");
    };
    // A budget makes evictions (removals) happen too.
    let t = DiskTier::open(Path::new(&dir), Some(3 << 20)).unwrap();
    for pass in 0..1000u128 {
        for i in 0..400 {
            let j = (i * 7 + pass * 13) % 400;
            let _ =
                t.get_or_insert_with(key(j), "k", "1", || Ok::<_, crate::Error>(crash_value(j)));
        }
        t.flush();
    }
}

/// Hits are logged (appended), not written into the rows; `ls` and
/// eviction see the log, so the order is the one of the last accesses; the
/// log is folded into the rows by eviction and when it grows long.
#[test]
fn hits_are_logged_and_eviction_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = DiskTier::builder(dir.path())
        .background_writes(false)
        .access_granularity(Duration::ZERO)
        .build()
        .unwrap();
    let v = sample(DType::F64, &[16]);
    for i in 0..3 {
        t.put(key(i), &v, info(), None);
    }
    let count = |sql: &str| -> i64 {
        let c = rusqlite::Connection::open(dir.path().join("v2/entries.db")).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    let row_atime = |k: Fingerprint| -> i64 {
        let c = rusqlite::Connection::open(dir.path().join("v2/entries.db")).unwrap();
        c.query_row("SELECT atime FROM entries WHERE key = ?1", [blob(k)], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let before = row_atime(key(0));
    assert!(t.get(key(0)).is_some());
    t.flush();
    assert_eq!(count("SELECT count(*) FROM touches"), 1);
    assert_eq!(
        row_atime(key(0)),
        before,
        "the row is not rewritten by a hit"
    );
    let listed = t.entries().unwrap();
    let last = |k: Fingerprint| listed.iter().find(|e| e.meta.key == k).unwrap().last_access;
    assert!(last(key(0)) > last(key(2)), "ls reads the log");
    // Eviction folds the log first: the oldest access is key 1's.
    let removed = t.inner.evict_to(t.stats().bytes - 1, &mut |_| {});
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].key, key(1));
    assert_eq!(count("SELECT count(*) FROM touches"), 0);
    assert!(row_atime(key(0)) > before, "folded into the row");
    // A long log is folded when it reaches FOLD_AT records.
    let n = crate::disk::store::FOLD_AT + 10;
    for _ in 0..n {
        assert!(t.get(key(2)).is_some());
    }
    t.flush();
    assert!(count("SELECT count(*) FROM touches") < 1100);
    assert_eq!(t.stats().entries, 2);
}

/// `gc` of small entries whose survivors are spread over the whole key
/// range (every page of the store keeps a few rows, so no page is free):
/// `du` afterwards is the budget plus the store's stated fixed overhead,
/// not the store's former size.
#[cfg(unix)]
#[test]
fn gc_leaves_no_sparse_store_behind() {
    let dir = tempfile::tempdir().unwrap();
    let t = DiskTier::open(dir.path(), None).unwrap();
    for i in 0..40_000 {
        t.put(key(i), &sample(DType::F64, &[16]), info(), None);
    }
    t.flush();
    let before = du(&dir.path().join("v2"));
    assert!(before > 8 << 20, "du {before}");
    let budget = 1 << 20;
    let report = t.gc(budget, |_| {}).unwrap();
    assert!(report.remaining_bytes <= budget);
    assert!(report.remaining_bytes > budget / 2, "evicted too much");
    let used = du(&dir.path().join("v2"));
    // The store's fixed part, and a block each for v2, keylocks and
    // CACHEDIR.TAG.
    let fixed = crate::disk::store::STORE_FIXED + 3 * 4096;
    let files: Vec<_> = files_under(&dir.path().join("v2"));
    assert!(
        used <= budget + fixed,
        "du {used} after gc to {budget}: {files:?}"
    );
    // What survived is the most recently written, and readable.
    assert!(t.get(key(39_999)).is_some());
    assert!(t.get(key(0)).is_none());
}
