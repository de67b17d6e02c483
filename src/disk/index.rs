//! The in-memory index of entries: sizes and last-access times, for the
//! byte budget and the statistics.
//!
//! It is built by one scan of the directory at open and kept up to date by
//! this process's own writes, hits and removals. Other processes' writes are
//! picked up by a rescan, which the budget check triggers when the index says
//! the cache is over budget (see [`Index::needs_rescan`]).

use std::collections::HashMap;
use std::time::SystemTime;

use super::layout::Scan;
use crate::key::Fingerprint;

/// One complete entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Payload plus sidecar bytes.
    pub bytes: u64,
    /// The sidecar's modification time, refreshed by every hit.
    pub last_access: SystemTime,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    map: HashMap<Fingerprint, Slot>,
    total: u64,
    /// Bytes this process wrote since the last scan.
    written_since_scan: u64,
}

impl Index {
    /// The complete entries of a scan.
    pub fn from_scan(scan: &Scan) -> Self {
        let mut index = Index::default();
        for (&key, found) in &scan.keys {
            if let (Some(_), Some(sidecar)) = (found.payload, found.sidecar) {
                index.map.insert(
                    key,
                    Slot {
                        bytes: found.bytes(),
                        last_access: sidecar.mtime,
                    },
                );
                index.total += found.bytes();
            }
        }
        index
    }

    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn insert(&mut self, key: Fingerprint, slot: Slot) {
        if let Some(old) = self.map.insert(key, slot) {
            self.total -= old.bytes;
        }
        self.total += slot.bytes;
        self.written_since_scan += slot.bytes;
    }

    pub fn remove(&mut self, key: Fingerprint) -> Option<Slot> {
        let slot = self.map.remove(&key)?;
        self.total -= slot.bytes;
        Some(slot)
    }

    /// Records a hit: refreshes the access time, or learns an entry another
    /// process wrote (not counted as written by this one).
    pub fn hit(&mut self, key: Fingerprint, bytes: u64, when: SystemTime) {
        match self.map.get_mut(&key) {
            Some(slot) => slot.last_access = slot.last_access.max(when),
            None => {
                self.map.insert(
                    key,
                    Slot {
                        bytes,
                        last_access: when,
                    },
                );
                self.total += bytes;
            }
        }
    }

    pub fn touch(&mut self, key: Fingerprint, when: SystemTime) {
        if let Some(slot) = self.map.get_mut(&key) {
            slot.last_access = slot.last_access.max(when);
        }
    }

    /// Whether it is time to rescan the directory, to count other
    /// processes' entries too: when the index alone is over `max_bytes`, or
    /// when this process has written a quarter of the budget since the last
    /// scan (so that processes that each stay under the budget on their own
    /// do not together exceed it by much).
    ///
    /// Rescans are rationed to one per `max_bytes / 16` bytes written by this
    /// process, so that a cache that stays full does not list its directory
    /// on every write; between rescans the index evicts on its own.
    pub fn needs_rescan(&self, max_bytes: u64) -> bool {
        let w = self.written_since_scan;
        (self.total > max_bytes && w >= (max_bytes / 16).max(1)) || w >= (max_bytes / 4).max(1)
    }

    /// Entries from least to most recently used (ties by key, so the order
    /// is deterministic).
    pub fn lru_order(&self) -> Vec<(Fingerprint, Slot)> {
        let mut v: Vec<_> = self.map.iter().map(|(k, s)| (*k, *s)).collect();
        v.sort_by_key(|(k, s)| (s.last_access, *k));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn totals_and_order() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let k = |i: u128| Fingerprint::from_u128(i);
        let mut idx = Index::default();
        for i in 0..4u128 {
            let last_access = t0 + Duration::from_secs(10 - i as u64);
            idx.insert(
                k(i),
                Slot {
                    bytes: 100,
                    last_access,
                },
            );
        }
        assert_eq!((idx.len(), idx.total()), (4, 400));
        idx.insert(
            k(0),
            Slot {
                bytes: 50,
                last_access: t0,
            },
        );
        assert_eq!((idx.len(), idx.total()), (4, 350));
        idx.touch(k(3), t0 + Duration::from_secs(60));
        let order: Vec<_> = idx.lru_order().into_iter().map(|(k, _)| k).collect();
        assert_eq!(order, vec![k(0), k(2), k(1), k(3)]);
        assert_eq!(idx.remove(k(2)).map(|s| s.bytes), Some(100));
        assert_eq!(idx.remove(k(2)), None);
        assert_eq!(idx.total(), 250);
        assert!(idx.needs_rescan(200));
        // Under budget, but 450 bytes written since the scan.
        assert!(idx.needs_rescan(1800));
        assert!(!idx.needs_rescan(1804));
    }
}
