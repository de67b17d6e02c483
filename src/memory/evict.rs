//! Eviction: LRU (per shard, or global by access tick under a byte bound)
//! and cost-aware (the lowest priority of all shards). Every evictor holds
//! one shard lock at a time, so evictors never deadlock with each other.

use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use super::gdsf::{Gdsf, Victim};
use super::{Entry, EvictionCause, MemoryTier, Removed, Shard, Store};
use crate::sync::lock;

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Evicts entries until within bounds, releasing the lock of shard
    /// `idx`, into which `key` was just inserted. LRU never evicts `key`;
    /// the cost-aware policy may if it was inserted `gated` (it then was not
    /// admitted after all). Returns whether `key` is kept.
    pub(super) fn evict(
        &self,
        idx: usize,
        mut shard: MutexGuard<'_, Shard<K, V>>,
        key: &K,
        gated: bool,
        removed: &mut Removed<K, V>,
    ) -> bool {
        if let Store::Gdsf(_) = shard.store {
            drop(shard);
            return self.evict_cost_aware(gated.then_some(key), removed);
        }
        if self.global_lru {
            drop(shard);
            self.evict_global_lru(key, removed);
            return true;
        }
        while self.over_budget() {
            let Store::Lru(lru) = &mut shard.store else {
                break;
            };
            match lru.peek_lru() {
                Some((k, _)) if k != key => {
                    if let Some((k, e)) = lru.pop_lru() {
                        self.evicted(&mut shard, removed, k, e, EvictionCause::Evicted);
                    }
                }
                _ => break,
            }
        }
        drop(shard);
        // One lock at a time: no lock-order deadlock with other evictors.
        let n = self.shards.len();
        for step in 1..n {
            if !self.over_budget() {
                break;
            }
            let mut other = lock(&self.shards[(idx + step) % n]);
            while self.over_budget() {
                let Store::Lru(lru) = &mut other.store else {
                    break;
                };
                match lru.pop_lru() {
                    Some((k, e)) => self.evicted(&mut other, removed, k, e, EvictionCause::Evicted),
                    None => break,
                }
            }
        }
        true
    }

    /// Accounts for an entry removed from `shard` to respect a bound, and
    /// keeps it for the listener (or for dropping).
    fn evicted(
        &self,
        shard: &mut Shard<K, V>,
        removed: &mut Removed<K, V>,
        key: K,
        e: Entry<V>,
        cause: EvictionCause,
    ) {
        self.account_removed(&e);
        match cause {
            EvictionCause::NotAdmitted => shard.counters.not_admitted += 1,
            _ => shard.counters.evictions += 1,
        }
        if self.listener.is_some() {
            removed.told.push((key, e.value, cause));
        } else {
            removed.dropped.push(e);
        }
    }

    /// Evicts the entry with the oldest tick among all shards' LRU ends,
    /// until within bounds. Locks one shard at a time.
    fn evict_global_lru(&self, keep: &K, removed: &mut Removed<K, V>) {
        while self.over_budget() {
            let mut oldest: Option<(u64, usize)> = None;
            for (i, s) in self.shards.iter().enumerate() {
                if let Store::Lru(lru) = &lock(s).store {
                    if let Some((k, e)) = lru.peek_lru() {
                        if k != keep && oldest.is_none_or(|(t, _)| e.tick < t) {
                            oldest = Some((e.tick, i));
                        }
                    }
                }
            }
            let Some((tick, i)) = oldest else { return };
            let mut s = lock(&self.shards[i]);
            let Store::Lru(lru) = &mut s.store else {
                return;
            };
            // Another thread may have used or evicted it meanwhile: look again.
            if lru.peek_lru().is_some_and(|(_, e)| e.tick == tick) {
                if let Some((k, e)) = lru.pop_lru() {
                    self.evicted(&mut s, removed, k, e, EvictionCause::Evicted);
                }
            }
        }
    }

    /// Evicts the entry of lowest priority among all shards until within
    /// bounds. `candidate`, if given, was just inserted through the
    /// admission gate: if it turns out to be the lowest, it is the one
    /// removed, as not admitted. Returns whether the candidate is kept.
    ///
    /// Each shard publishes a lower bound of its lowest priority (its heap's
    /// top record, which may be stale). The evictor picks the shard with
    /// the lowest bound and lets it evict its minimum if that is no higher
    /// than every other shard's bound; otherwise the shard's bound is now
    /// exact and higher, and the evictor looks again.
    fn evict_cost_aware(&self, candidate: Option<&K>, removed: &mut Removed<K, V>) -> bool {
        let mut kept = true;
        while self.over_budget() {
            let mut best = (f64::INFINITY, usize::MAX);
            let mut second = f64::INFINITY;
            for (i, f) in self.floors.iter().enumerate() {
                let v = f64::from_bits(f.load(Ordering::Relaxed));
                if v < best.0 {
                    second = best.0;
                    best = (v, i);
                } else if v < second {
                    second = v;
                }
            }
            let i = best.1;
            if i == usize::MAX {
                // Nothing evictable (entries being inserted explicitly).
                break;
            }
            let mut s = lock(&self.shards[i]);
            let Store::Gdsf(g) = &mut s.store else {
                break;
            };
            let victim = g.evict_min(second, |k, v| self.cost_of(k, v));
            self.publish_floor(i, g);
            if let Victim::Evicted(k, node, priority) = victim {
                self.raise_inflation(priority);
                g.sketch.raise(super::sketch_hash(&k), node.freq);
                let cause = if candidate == Some(&k) {
                    kept = false;
                    EvictionCause::NotAdmitted
                } else {
                    EvictionCause::Evicted
                };
                self.evicted(&mut s, removed, k, node.entry, cause);
            }
        }
        kept
    }

    /// Publishes shard `idx`'s lowest recorded priority (under its lock).
    pub(super) fn publish_floor(&self, idx: usize, g: &Gdsf<K, V>) {
        self.floors[idx].store(g.min_recorded().to_bits(), Ordering::Relaxed);
    }

    /// The lowest priority published by any shard (infinity if none).
    pub(super) fn lowest_floor(&self) -> f64 {
        self.floors
            .iter()
            .map(|f| f64::from_bits(f.load(Ordering::Relaxed)))
            .fold(f64::INFINITY, f64::min)
    }

    fn raise_inflation(&self, priority: f64) {
        let bits = priority.max(0.0).to_bits();
        if bits > self.inflation.load(Ordering::Relaxed) {
            self.inflation.fetch_max(bits, Ordering::Relaxed);
        }
    }
}
