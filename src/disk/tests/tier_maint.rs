//! The byte budget and the maintenance API, against a naive LRU oracle.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{entry_files, files_under, sample};
use crate::disk::layout::on_disk;
use crate::disk::{DiskTier, EntryInfo, Progress};
use crate::{DType, Fingerprint};

const MB: u64 = 1_000_000;

fn key(i: u128) -> Fingerprint {
    crate::call_key("budget", "1", &i.to_le_bytes(), &[])
}

fn info() -> EntryInfo {
    EntryInfo::new("f", "1", Duration::from_millis(5))
}

/// 1 MB of data.
fn one_mb() -> crate::AnyArray {
    sample(DType::F64, &[125_000])
}

/// The large entries' files, in whole blocks.
fn disk_bytes(dir: &Path) -> u64 {
    entry_files(&dir.join("v2"))
        .iter()
        .map(|f| on_disk(f.1, 4096))
        .sum()
}

fn entry_bytes(t: &DiskTier, k: Fingerprint) -> u64 {
    let p = fs::metadata(t.inner.layout.payload(k)).unwrap().len();
    on_disk(p, t.inner.block)
        + on_disk(
            fs::metadata(t.inner.layout.sidecar(k)).unwrap().len(),
            t.inner.block,
        )
}

/// A tier that stores every result in files (these tests are about them;
/// small entries: see `small.rs`).
fn files_tier(dir: &Path, budget: Option<u64>) -> DiskTier {
    let mut b = DiskTier::builder(dir)
        .small_max_bytes(0)
        .access_granularity(Duration::ZERO);
    if let Some(n) = budget {
        b = b.max_bytes(n);
    }
    b.build().unwrap()
}

/// A plain LRU list of (key, bytes), oldest first.
#[derive(Default)]
struct Oracle {
    lru: Vec<(Fingerprint, u64)>,
    evicted: u64,
}

impl Oracle {
    fn put(&mut self, k: Fingerprint, bytes: u64, budget: u64) {
        self.lru.push((k, bytes));
        while self.lru.iter().map(|e| e.1).sum::<u64>() > budget {
            self.lru.remove(0);
            self.evicted += 1;
        }
    }
    fn get(&mut self, k: Fingerprint) -> bool {
        match self.lru.iter().position(|e| e.0 == k) {
            Some(i) => {
                let e = self.lru.remove(i);
                self.lru.push(e);
                true
            }
            None => false,
        }
    }
}

#[test]
fn budget_keeps_the_most_recently_used() {
    for background in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let budget = 5 * MB;
        let t = DiskTier::builder(dir.path())
            .max_bytes(budget)
            .small_max_bytes(0)
            .access_granularity(Duration::ZERO)
            .background_writes(background)
            .build()
            .unwrap();
        let mut oracle = Oracle::default();
        for i in 0..10 {
            t.put(key(i), &one_mb(), info(), None);
            t.flush();
            oracle.put(key(i), entry_bytes(&t, key(i)), budget);
            // Keep using the first entry, and once an older one.
            let mut touched = vec![key(0)];
            if i == 5 {
                touched.push(key(3));
            }
            for k in touched {
                assert_eq!(t.get(k).is_some(), oracle.get(k), "step {i}");
            }
            assert!(disk_bytes(dir.path()) <= budget, "step {i}");
        }
        let mut kept: Vec<_> = (0..10)
            .map(key)
            .filter(|k| t.inner.layout.sidecar(*k).exists())
            .collect();
        let mut want: Vec<_> = oracle.lru.iter().map(|e| e.0).collect();
        kept.sort();
        want.sort();
        assert_eq!(kept, want);
        assert!(want.contains(&key(0)), "the entry in use survives");
        assert_eq!(t.stats().evictions, oracle.evicted);
        assert_eq!(t.stats().bytes, disk_bytes(dir.path()));
    }
}

#[test]
fn results_larger_than_the_budget_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let t = files_tier(dir.path(), Some(5 * MB));
    t.put(key(1), &one_mb(), info(), None);
    t.put(key(2), &sample(DType::F64, &[700_000]), info(), None);
    t.flush();
    let st = t.stats();
    assert_eq!((st.writes, st.rejected, st.evictions), (1, 1, 0));
    assert!(t.get(key(1)).is_some());
    assert!(t.get(key(2)).is_none());
}

/// Two tiers on one directory stand for two processes: together they stay
/// within the budget, and one's hits protect entries from the other's
/// evictions.
#[test]
fn the_budget_counts_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 5 * MB;
    let open = || files_tier(dir.path(), Some(budget));
    let (a, b) = (open(), open());
    for i in 0..4 {
        a.put(key(i), &one_mb(), info(), None);
    }
    a.flush();
    for i in 10..14 {
        b.put(key(i), &one_mb(), info(), None);
        b.flush();
    }
    assert!(disk_bytes(dir.path()) <= budget);
    let kept: Vec<_> = (0..14).map(key).filter(|k| b.contains_key(*k)).collect();
    assert_eq!(kept, (10..14).map(key).collect::<Vec<_>>());

    // c learns the entries, then a uses the oldest one: c must evict the
    // next oldest, though its own index still has the old access time.
    let c = open();
    let a_key = key(10);
    assert!(a.get(a_key).is_some());
    a.flush(); // writes the hit's access time
    let target = c.stats().bytes - 1;
    let removed = c.inner.evict_to(target, &mut |_| {});
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].key, key(11));
    assert!(c.contains_key(a_key));
}

#[test]
fn gc_removes_lru_entries_and_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let t = files_tier(dir.path(), None);
    for i in 0..5 {
        t.put(key(i), &sample(DType::I32, &[1000]), info(), None);
        t.flush();
    }
    assert!(t.get(key(0)).is_some()); // now 1, 2, 3, 4, 0 from oldest
    let size = entry_bytes(&t, key(0));

    // Leftovers: an old temp file, an old orphan payload, a lock file of a
    // dead process; and a young temp file, which must stay.
    let fan = t.inner.layout.fan_dir(key(9));
    fs::create_dir_all(&fan).unwrap();
    let old_temp = fan.join(format!(".{}.1.1.tmp", key(9)));
    let young_temp = fan.join(format!(".{}.1.2.tmp", key(9)));
    let orphan = t.inner.layout.payload(key(9));
    for p in [&old_temp, &young_temp, &orphan] {
        fs::write(p, b"x").unwrap();
    }
    for p in [&old_temp, &orphan] {
        let f = fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
    }
    fs::create_dir_all(t.inner.layout.lock_dir()).unwrap();
    let dead_lock = t.inner.layout.lock_dir().join(format!("{}.lock", key(8)));
    fs::write(&dead_lock, b"").unwrap();

    let mut calls: Vec<Progress> = Vec::new();
    let report = t.gc(2 * size, |p| calls.push(p)).unwrap();
    let removed: Vec<_> = report.removed.iter().map(|r| r.key).collect();
    assert_eq!(removed, vec![key(1), key(2), key(3)]);
    assert_eq!(report.freed_bytes(), 3 * size);
    assert_eq!(report.remaining_bytes, 2 * size);
    assert_eq!(report.stale_files, 3);
    assert!(young_temp.exists() && !old_temp.exists() && !orphan.exists());
    assert!(!dead_lock.exists());
    assert_eq!(calls.len(), 3);
    assert!(calls.windows(2).all(|w| w[0].done < w[1].done));
    assert_eq!(calls[2].done, calls[2].total);
    assert!(t.contains_key(key(0)) && t.contains_key(key(4)));
    assert_eq!(t.stats().entries, 2);
}

#[test]
fn entries_verify_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let t = files_tier(dir.path(), None);
    for i in 0..4 {
        let info = EntryInfo::new(format!("kernel{i}"), "7", Duration::from_nanos(i as u64));
        t.put(
            key(i),
            &sample(DType::F32, &[i as usize + 1, 2]),
            info,
            None,
        );
    }
    t.flush();
    let list = t.entries().unwrap();
    assert_eq!(list.len(), 4);
    let mut keys: Vec<_> = (0..4).map(key).collect();
    keys.sort();
    assert_eq!(list.iter().map(|e| e.meta.key).collect::<Vec<_>>(), keys);
    for e in &list {
        let i = (0..4).find(|i| key(*i) == e.meta.key).unwrap();
        assert_eq!(e.meta.kernel, format!("kernel{i}"));
        assert_eq!(e.meta.shape, vec![i as usize + 1, 2]);
        assert_eq!(e.meta.dtype, DType::F32);
        assert_eq!(e.bytes, entry_bytes(&t, e.meta.key));
    }
    let mut calls = Vec::new();
    let r = t.verify(false, |p| calls.push((p.done, p.total))).unwrap();
    assert_eq!((r.ok, r.corrupt.len()), (4, 0));
    assert_eq!(calls, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);

    // A lock someone holds survives clear; everything else goes.
    let held = t.lock(key(0)).unwrap();
    assert_eq!(t.clear().unwrap(), 4);
    let left: Vec<_> = files_under(&dir.path().join("v2"));
    let left: Vec<_> = left
        .into_iter()
        .map(|f| f.0)
        .filter(|p| !p.to_string_lossy().contains("entries.db"))
        .collect();
    let mut want = vec![
        t.inner.layout.lock(key(0)),
        dir.path().join("v2").join("CACHEDIR.TAG"),
    ];
    want.sort();
    assert_eq!(left, want);
    drop(held);
    assert_eq!(t.stats().entries, 0);
    assert!(t.get(key(1)).is_none());
    t.put(key(1), &sample(DType::F32, &[2]), info(), None);
    t.flush();
    assert!(
        t.get(key(1)).is_some(),
        "writes work after clear removed the directories"
    );
}

/// A payload without its sidecar (a crash between the two renames, or a
/// deleted sidecar) is an orphan as soon as no process holds its key's
/// lock, however young it is: `verify` counts it as damaged (and reading
/// it creates nothing, not even a lock file), `gc` and `verify --repair`
/// remove it. Only a payload whose key is locked is a write in progress.
#[test]
fn an_unlocked_payload_without_sidecar_is_an_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let t = DiskTier::builder(dir.path())
        .background_writes(false)
        .small_max_bytes(0)
        .build()
        .unwrap();
    let (orphan, busy) = (key(1), key(2));
    for k in [orphan, busy, key(3)] {
        t.put(k, &sample(DType::I64, &[300]), info(), None);
    }
    for k in [orphan, busy] {
        fs::remove_file(t.inner.layout.sidecar(k)).unwrap();
    }
    // Another handle on the lock file stands for a writer between its two
    // renames (flock excludes handles even within one process).
    let held = t.lock(busy).unwrap();

    let r = t.verify(false, |_| {}).unwrap();
    assert_eq!(r.ok, 1, "{r:?}");
    let damaged: Vec<_> = r.corrupt.iter().map(|p| (p.key, p.removed)).collect();
    assert_eq!(damaged, vec![(orphan, false)], "{r:?}");
    assert!(r.corrupt[0].reason.contains("sidecar is missing"), "{r:?}");
    assert_eq!(r.in_progress, 1, "{r:?}");
    assert!(t.inner.layout.payload(orphan).exists(), "verify removed it");
    let lock_files = || {
        files_under(&dir.path().join("v2"))
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "lock") || p.ends_with("keylocks"))
            .count()
    };
    assert_eq!(lock_files(), 1, "verify created a lock file");

    let gc = t.gc(u64::MAX, |_| {}).unwrap();
    assert_eq!(gc.stale_files, 1, "{gc:?}");
    assert!(gc.removed.is_empty(), "{gc:?}");
    assert!(!t.inner.layout.payload(orphan).exists());
    assert!(
        t.inner.layout.payload(busy).exists(),
        "gc removed a write in progress"
    );
    assert!(t.contains_key(key(3)));
    assert_eq!(t.stats().corrupt, 1, "gc counts the orphan it removed");

    // The writer died without its sidecar: now the payload is an orphan.
    drop(held);
    let r = t.verify(true, |_| {}).unwrap();
    let damaged: Vec<_> = r.corrupt.iter().map(|p| (p.key, p.removed)).collect();
    assert_eq!(damaged, vec![(busy, true)], "{r:?}");
    assert_eq!(r.in_progress, 0);
    assert!(!t.inner.layout.payload(busy).exists());
    let r = t.verify(false, |_| {}).unwrap();
    assert_eq!((r.ok, r.corrupt.len(), r.in_progress), (1, 0, 0), "{r:?}");
    let locks: Vec<_> = files_under(&dir.path().join("v2"))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    assert!(locks.is_empty(), "{locks:?}");

    // A lookup of an orphan is a miss, and the next write completes the entry.
    assert!(t.get(orphan).is_none());
    t.put(orphan, &sample(DType::I64, &[300]), info(), None);
    assert!(t.get(orphan).is_some());
}
