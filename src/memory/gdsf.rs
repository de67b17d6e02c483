//! One shard's store under the cost-aware policy: a map of entries with
//! their frequency and aging base, a min-heap of recorded priorities with
//! lazy invalidation, the TTL queue and the admission sketch. See the
//! [policy module](super::policy) for the rules.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use super::policy::MAX_FREQUENCY;
use super::sketch::Sketch;
use super::{Entry, Hasher};

/// An entry and what its priority is made of.
pub(super) struct Node<V> {
    pub(super) entry: Entry<V>,
    /// Requests of the key while cached, plus what the sketch knew of it.
    pub(super) freq: u32,
    /// The tier's inflation `L` at the last request.
    base: f64,
    /// The priority of this entry's live heap record.
    recorded: f64,
    /// Tells this entry from an earlier one of the same key.
    seq: u64,
}

impl<V> Node<V> {
    /// `L + f × c / s`, with the cost `c` given.
    fn priority(&self, cost: f64) -> f64 {
        self.base + f64::from(self.freq) * cost / (self.entry.weight.max(1) as f64)
    }

    /// A hit: one more request, aged from the current inflation.
    pub(super) fn touch(&mut self, inflation: f64) {
        self.freq = (self.freq + 1).min(MAX_FREQUENCY);
        self.base = inflation;
    }
}

/// A priority recorded in the heap. Ordered so that `BinaryHeap` (a
/// max-heap) pops the lowest priority, the oldest first among equals.
struct Record<K> {
    priority: f64,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Record<K> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == CmpOrdering::Equal
    }
}

impl<K> Eq for Record<K> {}

impl<K> PartialOrd for Record<K> {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}

impl<K> Ord for Record<K> {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        o.priority
            .total_cmp(&self.priority)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

/// What [`Gdsf::evict_min`] did.
pub(super) enum Victim<K, V> {
    /// Evicted this entry, of this priority.
    Evicted(K, Node<V>, f64),
    /// The shard's lowest priority is above the limit given.
    Above,
    /// Nothing evictable here.
    Empty,
}

pub(super) struct Gdsf<K, V> {
    map: HashMap<K, Node<V>, Hasher>,
    heap: BinaryHeap<Record<K>>,
    /// (expiry, seq, key) in insertion order, which is expiry order: the TTL
    /// is the same for every entry.
    expiry: VecDeque<(Duration, u64, K)>,
    pub(super) sketch: Sketch,
    next_seq: u64,
}

impl<K: Hash + Eq + Clone, V> Gdsf<K, V> {
    pub(super) fn new(hasher: Hasher, sketch_width: usize) -> Self {
        Gdsf {
            map: HashMap::with_hasher(hasher),
            heap: BinaryHeap::new(),
            expiry: VecDeque::new(),
            sketch: Sketch::new(sketch_width),
            next_seq: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn get_mut(&mut self, key: &K) -> Option<&mut Node<V>> {
        self.map.get_mut(key)
    }

    pub(super) fn peek(&self, key: &K) -> Option<&Entry<V>> {
        self.map.get(key).map(|n| &n.entry)
    }

    /// The lowest recorded priority (a lower bound of the true lowest:
    /// records may be stale), or infinity.
    pub(super) fn min_recorded(&self) -> f64 {
        self.heap.peek().map_or(f64::INFINITY, |r| r.priority)
    }

    /// Inserts an entry of frequency `freq` and cost `cost` at inflation
    /// `inflation`; returns its sequence number and the entry it replaced.
    /// Without `track`, the entry gets no heap record (it cannot be
    /// evicted) until [`track`](Self::track) is called.
    pub(super) fn insert(
        &mut self,
        key: K,
        entry: Entry<V>,
        freq: u32,
        inflation: f64,
        cost: f64,
        track: bool,
    ) -> (u64, Option<Entry<V>>) {
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(at) = entry.expires_at {
            self.expiry.push_back((at, seq, key.clone()));
        }
        let mut node = Node {
            entry,
            freq: freq.clamp(1, MAX_FREQUENCY),
            base: inflation,
            recorded: f64::INFINITY,
            seq,
        };
        if track {
            node.recorded = node.priority(cost);
            self.heap.push(Record {
                priority: node.recorded,
                seq,
                key: key.clone(),
            });
        }
        let old = self.map.insert(key, node).map(|n| n.entry);
        self.compact_if_needed();
        (seq, old)
    }

    /// Gives the entry `seq` of `key` its heap record (see [`insert`](Self::insert)).
    pub(super) fn track(&mut self, key: &K, seq: u64, cost: f64) {
        if let Some(n) = self.map.get_mut(key) {
            if n.seq == seq && n.recorded == f64::INFINITY {
                n.recorded = n.priority(cost);
                self.heap.push(Record {
                    priority: n.recorded,
                    seq,
                    key: key.clone(),
                });
            }
        }
    }

    pub(super) fn remove(&mut self, key: &K) -> Option<Node<V>> {
        self.map.remove(key)
    }

    /// Whether the entry of `key` is the one numbered `seq`.
    pub(super) fn holds(&self, key: &K, seq: u64) -> bool {
        self.map.get(key).is_some_and(|n| n.seq == seq)
    }

    /// Removes the entries expired at `now`, oldest first.
    pub(super) fn purge_expired(&mut self, now: Duration, out: &mut Vec<Entry<V>>) {
        while let Some((at, _, _)) = self.expiry.front() {
            if now < *at {
                break;
            }
            let Some((_, seq, key)) = self.expiry.pop_front() else {
                break;
            };
            if self.holds(&key, seq) {
                if let Some(n) = self.map.remove(&key) {
                    out.push(n.entry);
                }
            }
        }
    }

    /// Evicts the entry of lowest priority if it is at most `limit` (the
    /// lowest priority published by the other shards). Stale heap records
    /// met on the way are dropped or recomputed with `cost`.
    pub(super) fn evict_min(&mut self, limit: f64, cost: impl Fn(&K, &V) -> f64) -> Victim<K, V> {
        loop {
            let Some(top) = self.heap.peek() else {
                return Victim::Empty;
            };
            let current = match self.map.get(&top.key) {
                Some(n) if n.seq == top.seq && n.recorded == top.priority => {
                    n.priority(cost(&top.key, &n.entry.value))
                }
                // The entry was removed, replaced, or has a newer record.
                _ => {
                    self.heap.pop();
                    continue;
                }
            };
            if current > top.priority {
                // Requested since it was recorded: record it again.
                let Some(mut rec) = self.heap.pop() else {
                    return Victim::Empty;
                };
                rec.priority = current;
                if let Some(n) = self.map.get_mut(&rec.key) {
                    n.recorded = current;
                }
                self.heap.push(rec);
                continue;
            }
            if top.priority > limit {
                return Victim::Above;
            }
            let Some(rec) = self.heap.pop() else {
                return Victim::Empty;
            };
            return match self.map.remove(&rec.key) {
                Some(node) => Victim::Evicted(rec.key, node, rec.priority),
                None => Victim::Empty,
            };
        }
    }

    /// Rebuilds the heap and the TTL queue when dead records outnumber live
    /// entries (many replacements or removals between evictions).
    fn compact_if_needed(&mut self) {
        let live = self.map.len();
        if self.heap.len() > 2 * live + 64 {
            let tracked: Vec<Record<K>> = self
                .map
                .iter()
                .filter(|(_, n)| n.recorded != f64::INFINITY)
                .map(|(k, n)| Record {
                    priority: n.recorded,
                    seq: n.seq,
                    key: k.clone(),
                })
                .collect();
            self.heap = BinaryHeap::from(tracked);
        }
        if self.expiry.len() > 2 * live + 64 {
            let map = &self.map;
            self.expiry
                .retain(|(_, seq, k)| map.get(k).is_some_and(|n| n.seq == *seq));
        }
    }

    /// Removes every entry into `out`.
    pub(super) fn drain(&mut self, out: &mut Vec<Entry<V>>) {
        out.extend(self.map.drain().map(|(_, n)| n.entry));
        self.heap.clear();
        self.expiry.clear();
        self.sketch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u64, f64),
        Hit(u8),
        Evict,
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..16, 0u64..50, 0.0f64..5.0).prop_map(|(k, w, c)| Op::Insert(k, w, c)),
            4 => (0u8..16).prop_map(Op::Hit),
            2 => Just(Op::Evict),
            1 => (0u8..16).prop_map(Op::Remove),
        ]
    }

    /// The oracle: every entry's exact priority, evicting the lowest (the
    /// oldest insertion among equals).
    #[derive(Debug, Clone, Copy)]
    struct Model {
        weight: u64,
        cost: f64,
        freq: u32,
        base: f64,
        seq: u64,
    }

    impl Model {
        fn priority(&self) -> f64 {
            self.base + f64::from(self.freq) * self.cost / (self.weight.max(1) as f64)
        }
    }

    fn entry(weight: u64, cost: f64) -> Entry<f64> {
        Entry {
            value: cost,
            weight,
            expires_at: None,
            tick: 0,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn lazy_heap_evicts_the_exact_minimum(ops in proptest::collection::vec(op(), 1..200)) {
            let mut g: Gdsf<u8, f64> = Gdsf::new(Hasher::default(), 64);
            let mut model: HashMap<u8, Model> = HashMap::new();
            let mut inflation = 0.0f64;
            let mut seq = 0;
            for op in ops {
                match op {
                    Op::Insert(k, w, c) => {
                        seq += 1;
                        let (s, _) = g.insert(k, entry(w, c), 1, inflation, c, true);
                        prop_assert_eq!(s, seq);
                        model.insert(k, Model { weight: w, cost: c, freq: 1, base: inflation, seq });
                    }
                    Op::Hit(k) => {
                        if let Some(n) = g.get_mut(&k) {
                            n.touch(inflation);
                            let m = model.get_mut(&k).expect("the model has it too");
                            m.freq = (m.freq + 1).min(MAX_FREQUENCY);
                            m.base = inflation;
                        } else {
                            prop_assert!(!model.contains_key(&k));
                        }
                    }
                    Op::Evict => {
                        let want = model
                            .iter()
                            .min_by(|a, b| {
                                a.1.priority()
                                    .total_cmp(&b.1.priority())
                                    .then(a.1.seq.cmp(&b.1.seq))
                            })
                            .map(|(k, m)| (*k, m.priority()));
                        match (g.evict_min(f64::INFINITY, |_, c| *c), want) {
                            (Victim::Evicted(k, _, p), Some((wk, wp))) => {
                                prop_assert_eq!((k, p), (wk, wp));
                                model.remove(&k);
                                inflation = inflation.max(p);
                            }
                            (Victim::Empty, None) => {}
                            _ => prop_assert!(false, "the model and the store disagree"),
                        }
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(g.remove(&k).is_some(), model.remove(&k).is_some());
                    }
                }
                prop_assert_eq!(g.len(), model.len());
                prop_assert!(g.heap.len() <= 2 * g.len() + 64 + 1, "dead records are compacted");
            }
        }
    }
}
