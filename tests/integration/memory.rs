//! The memory tier against a naive model, TTL with a manual clock, and
//! single-flight under threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ndcache::memory::Policy;
use ndcache::{FlightError, ManualClock, MemoryTier};
use proptest::prelude::*;

/// The oracle: an LRU as a `VecDeque` of (key, weight), least recent first.
#[derive(Debug, Default)]
struct ModelLru {
    items: VecDeque<(u8, u64)>,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    hits: u64,
    misses: u64,
    evictions: u64,
    rejected: u64,
}

impl ModelLru {
    fn bytes(&self) -> u64 {
        self.items.iter().map(|(_, w)| w).sum()
    }

    fn position(&self, k: u8) -> Option<usize> {
        self.items.iter().position(|(key, _)| *key == k)
    }

    fn get(&mut self, k: u8) -> Option<u64> {
        match self.position(k) {
            Some(i) => {
                let item = self.items.remove(i).unwrap();
                self.items.push_back(item);
                self.hits += 1;
                Some(item.1)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    fn remove(&mut self, k: u8) -> Option<u64> {
        self.position(k).map(|i| self.items.remove(i).unwrap().1)
    }

    fn over(&self) -> bool {
        self.max_entries
            .is_some_and(|m| self.items.len() as u64 > m)
            || self.max_bytes.is_some_and(|m| self.bytes() > m)
    }

    fn insert(&mut self, k: u8, w: u64) -> bool {
        if self.max_bytes.is_some_and(|m| w > m) || self.max_entries == Some(0) {
            self.remove(k);
            self.rejected += 1;
            return false;
        }
        self.remove(k);
        self.items.push_back((k, w));
        while self.over() {
            self.items.pop_front();
            self.evictions += 1;
        }
        true
    }
}

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Insert(u8, u64),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24).prop_map(Op::Get),
        4 => (0u8..24, 1u64..40).prop_map(|(k, w)| Op::Insert(k, w)),
        1 => (0u8..24).prop_map(Op::Remove),
    ]
}

fn check_against_model(ops: &[Op], max_entries: Option<u64>, max_bytes: Option<u64>) {
    let mut b = MemoryTier::<u8, u64>::builder()
        .policy(Policy::Lru)
        .shards(1)
        .weigher(|_, w| *w);
    if let Some(m) = max_entries {
        b = b.max_entries(m);
    }
    if let Some(m) = max_bytes {
        b = b.max_bytes(m);
    }
    let tier = b.build().unwrap();
    let mut model = ModelLru {
        max_entries,
        max_bytes,
        ..ModelLru::default()
    };
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Get(k) => assert_eq!(tier.get(&k), model.get(k), "step {step}: {op:?}"),
            Op::Insert(k, w) => assert_eq!(tier.insert(k, w), model.insert(k, w), "step {step}"),
            Op::Remove(k) => assert_eq!(tier.remove(&k), model.remove(k), "step {step}"),
        }
        let s = tier.stats();
        assert_eq!(
            (s.hits, s.misses, s.evictions, s.rejected),
            (model.hits, model.misses, model.evictions, model.rejected),
            "step {step}: {op:?}"
        );
        assert_eq!(s.currsize, model.items.len() as u64, "step {step}");
        assert_eq!(s.bytes, model.bytes(), "step {step}");
        if let Some(m) = max_bytes {
            assert!(
                s.bytes <= m,
                "step {step}: {} bytes held over a budget of {m}",
                s.bytes
            );
        }
        for (k, _) in &model.items {
            assert!(tier.contains_key(k), "step {step}: key {k} missing");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn lru_matches_model_with_entry_bound(ops in proptest::collection::vec(op(), 1..200), cap in 0u64..10) {
        check_against_model(&ops, Some(cap), None);
    }

    #[test]
    fn lru_matches_model_with_byte_budget(ops in proptest::collection::vec(op(), 1..200), budget in 1u64..120) {
        check_against_model(&ops, None, Some(budget));
    }

    #[test]
    fn lru_matches_model_with_both_bounds(
        ops in proptest::collection::vec(op(), 1..200),
        cap in 1u64..10,
        budget in 1u64..120,
    ) {
        check_against_model(&ops, Some(cap), Some(budget));
    }

    #[test]
    fn unbounded_never_evicts(ops in proptest::collection::vec(op(), 1..200)) {
        check_against_model(&ops, None, None);
    }
}

#[test]
fn bytes_never_exceed_budget_across_shards() {
    let tier = MemoryTier::<u32, u64>::builder()
        .shards(8)
        .max_bytes(1000)
        .weigher(|_, w| *w)
        .build()
        .unwrap();
    for i in 0..5000u32 {
        tier.insert(i, u64::from(i % 97 + 1));
        assert!(tier.stats().bytes <= 1000);
    }
    let s = tier.stats();
    assert!(s.evictions > 0);
    assert!(s.bytes > 900, "the budget is used, not wasted: {}", s.bytes);
}

#[test]
fn ttl_expires_entries_without_sleeping() {
    let clock = Arc::new(ManualClock::new());
    // One shard: expired entries are purged from the inserting shard.
    let tier = MemoryTier::<&str, i32>::builder()
        .shards(1)
        .ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    tier.insert("a", 1);
    clock.advance(Duration::from_secs(9));
    assert_eq!(tier.get(&"a"), Some(1));
    tier.insert("b", 2);
    clock.advance(Duration::from_secs(1));
    // "a" is exactly 10 s old: expired, never served.
    assert!(!tier.contains_key(&"a"));
    assert_eq!(tier.get(&"a"), None);
    assert_eq!(tier.get(&"b"), Some(2));
    let s = tier.stats();
    assert_eq!((s.hits, s.misses, s.expirations, s.currsize), (2, 1, 1, 1));
    // A computation after expiry runs again.
    let runs = AtomicUsize::new(0);
    let compute = || {
        runs.fetch_add(1, Ordering::SeqCst);
        7
    };
    assert_eq!(tier.get_or_insert_with("c", compute), 7);
    assert_eq!(tier.get_or_insert_with("c", compute), 7);
    clock.advance(Duration::from_secs(10));
    assert_eq!(tier.get_or_insert_with("c", compute), 7);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Expired entries at the LRU end are purged on insert ("b" is expired too).
    tier.insert("d", 4);
    assert_eq!(tier.stats().currsize, 2, "c and d remain");
    assert_eq!(
        tier.stats().expirations,
        3,
        "a on get, c on get, b on insert"
    );
    assert!(MemoryTier::<u8, u8>::builder()
        .ttl(Duration::ZERO)
        .build()
        .is_err());
}

/// Spins until `n` callers wait on the flight (no sleeping, no timing).
fn until_waiters<K, V>(tier: &MemoryTier<K, V>, n: u64)
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    while tier.stats().waits < n {
        thread::yield_now();
    }
}

#[test]
fn single_flight_computes_once_for_eight_threads() {
    let tier = Arc::new(MemoryTier::<u64, Arc<Vec<f64>>>::unbounded());
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (tier, runs, barrier) = (tier.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                tier.get_or_insert_with(42, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    until_waiters(&tier, 7);
                    Arc::new(vec![1.0; 1000])
                })
            })
        })
        .collect();
    let values: Vec<Arc<Vec<f64>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    for v in &values {
        assert!(Arc::ptr_eq(v, &values[0]));
    }
    let s = tier.stats();
    assert_eq!((s.misses, s.waits, s.currsize), (8, 7, 1));
    assert!(Arc::ptr_eq(&tier.get(&42).unwrap(), &values[0]));
}

#[test]
fn failed_computation_is_shared_and_not_cached() {
    let tier = Arc::new(MemoryTier::<u64, u64>::unbounded());
    let barrier = Arc::new(Barrier::new(8));
    let runs = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (tier, runs, barrier) = (tier.clone(), runs.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                tier.try_get_or_insert_with(1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    until_waiters(&tier, 7);
                    Err::<u64, String>("disk on fire".into())
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(
            h.join().unwrap(),
            Err(FlightError::Failed("disk on fire".to_string()))
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!tier.contains_key(&1));
    assert_eq!(tier.try_get_or_insert_with(1, || Ok::<_, String>(5)), Ok(5));
    assert_eq!(tier.get(&1), Some(5));
}

#[test]
fn panicking_computation_unblocks_waiters_and_leaves_cache_usable() {
    let tier = Arc::new(MemoryTier::<u64, u64>::unbounded());
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (tier, barrier) = (tier.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                tier.try_get_or_insert_with(9, || -> Result<u64, String> {
                    until_waiters(&tier, 7);
                    panic!("kernel bug")
                })
            })
        })
        .collect();
    let mut panicked = 0;
    let mut waiters = 0;
    for h in handles {
        match h.join() {
            Err(_) => panicked += 1,
            Ok(r) => {
                assert_eq!(r, Err(FlightError::Panicked));
                waiters += 1;
            }
        }
    }
    assert_eq!((panicked, waiters), (1, 7));
    assert_eq!(tier.get_or_insert_with(9, || 3), 3);
    assert_eq!(tier.get(&9), Some(3));
}

#[test]
fn recursion_on_other_keys_works_and_on_the_same_key_is_an_error() {
    let tier = MemoryTier::<u64, u64>::unbounded();
    let v = tier.get_or_insert_with(1, || tier.get_or_insert_with(2, || 20) + 1);
    assert_eq!(v, 21);
    let r = tier.try_get_or_insert_with(3, || {
        tier.try_get_or_insert_with(3, || Ok::<u64, String>(0))
            .map_err(|e| e.to_string())
    });
    assert_eq!(
        r,
        Err(FlightError::Failed(
            "recursive computation of the same key (it would wait for itself)".to_string()
        ))
    );
}

#[test]
fn entry_larger_than_budget_is_returned_but_not_kept() {
    let tier = MemoryTier::<u8, Vec<u8>>::builder()
        .max_bytes(100)
        .weigher(|_, v| v.len() as u64)
        .build()
        .unwrap();
    tier.insert(1, vec![0; 60]);
    let big = tier.get_or_insert_with(2, || vec![7; 200]);
    assert_eq!(big.len(), 200);
    assert!(!tier.contains_key(&2));
    assert!(tier.contains_key(&1), "a rejected entry evicts nothing");
    let s = tier.stats();
    assert_eq!((s.rejected, s.evictions, s.bytes), (1, 0, 60));
    assert!(
        MemoryTier::<u8, u8>::builder()
            .max_bytes(1)
            .build()
            .is_err(),
        "a byte budget without a weigher is a configuration error"
    );
    assert!(
        MemoryTier::<u8, u8>::builder().shards(3).build().is_err(),
        "shards must be a power of two"
    );
}

#[test]
fn clear_resets_entries_and_stats() {
    let tier = MemoryTier::<u8, u8>::builder()
        .max_entries(3)
        .build()
        .unwrap();
    for i in 0..5 {
        tier.insert(i, i);
        tier.get(&i);
    }
    tier.get(&100);
    assert_eq!(tier.stats().evictions, 2);
    tier.clear();
    let s = tier.stats();
    assert_eq!(
        (s.hits, s.misses, s.currsize, s.bytes, s.evictions),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(s.maxsize, Some(3));
    assert!(tier.is_empty());
}
