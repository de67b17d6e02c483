//! The miss path: look up, then join the key's flight or lead it, and
//! insert the leader's value through the admission gate.

use std::any::Any;
use std::hash::Hash;
use std::sync::Arc;

use super::flight::{self, Flight, Frame, Outcome, MAX_FRAMES_PER_FLIGHT};
use super::{Admission, FlightError, MemoryTier};
use crate::sync::lock;

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Returns the value for `key`, computing it with `f` on a miss.
    ///
    /// Single-flight: while one caller computes a key, other callers of the
    /// same key wait and receive the same value. `f` runs with no lock held,
    /// so it may use this cache for other keys.
    ///
    /// On rayon: a pool thread never waits for a computation led by another
    /// pool thread (rayon may be running, under the waiter, a task the leader
    /// needs; with `join`-based recursion this would deadlock): it computes
    /// the value itself. So concurrent misses coming from pool threads may
    /// compute a key more than once (at most once per thread); misses from
    /// other threads, or waiting for them, are single-flight.
    /// ([`ArrayCache`](crate::ArrayCache) runs the misses of pool threads
    /// on a thread of their own, which makes them single-flight too.)
    ///
    /// # Panics
    ///
    /// If `f` panics, the panic propagates to this caller; callers that were
    /// waiting for it panic too (use [`try_get_or_insert_with`] to get an
    /// error instead). So does a computation that asks for its own key.
    ///
    /// [`try_get_or_insert_with`]: Self::try_get_or_insert_with
    pub fn get_or_insert_with(&self, key: K, f: impl FnOnce() -> V) -> V {
        match self.try_get_or_insert_with(key, || Ok::<V, std::convert::Infallible>(f())) {
            Ok(v) => v,
            Err(FlightError::Failed(never)) => match never {},
            Err(e) => panic!("ndcache: {e}"),
        }
    }

    /// Returns the value for `key`, computing it with the fallible `f` on a
    /// miss.
    ///
    /// Single-flight as [`get_or_insert_with`](Self::get_or_insert_with). An
    /// error is not cached: this caller gets [`FlightError::Failed`] with it,
    /// and so does every caller that was waiting. If `f` panics, the panic
    /// propagates to this caller, waiters get [`FlightError::Panicked`], and
    /// the cache stays usable.
    ///
    /// A computation that asks, directly or through other keys, for the key
    /// it is computing gets [`FlightError::Reentrant`], on a rayon pool
    /// thread as off it (on a pool thread after computing the nested
    /// request a bounded number of times: see the flight module docs).
    pub fn try_get_or_insert_with<E, F>(&self, key: K, f: F) -> Result<V, FlightError<E>>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<V, E>,
    {
        match self.start(key, false) {
            Start::Found(r) => r,
            Start::Help(id) => help(id, f),
            Start::Lead(guard) => guard.run(f),
        }
    }

    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with) whose
    /// misses, when they are led by a rayon pool thread, run on the compute
    /// pool (see [`crate::isolate`]), so that other pool threads may wait
    /// for them. Decided only when a flight starts: hits pay nothing.
    pub(crate) fn try_get_or_insert_isolated<E, F>(&self, key: K, f: F) -> Result<V, FlightError<E>>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<V, E> + Send,
    {
        match self.start(key, true) {
            Start::Found(r) => r,
            Start::Help(id) => help(id, f),
            Start::Lead(guard) if guard.flight.is_isolated() => {
                crate::isolate::run_isolated(move || guard.run(f))
            }
            Start::Lead(guard) => guard.run(f),
        }
    }

    /// Looks `key` up; on a miss joins its flight (waits for it, or is told
    /// to compute as a helper) or starts one, isolated if `may_isolate`
    /// and [`crate::isolate::should_isolate`] says so.
    fn start<E>(&self, key: K, may_isolate: bool) -> Start<'_, K, V, E>
    where
        E: Clone + Send + Sync + 'static,
    {
        let idx = self.shard_index(&key);
        loop {
            let now = self.now_if_ttl();
            let mut shard = lock(&self.shards[idx]);
            let mut expired = None;
            let found = self.lookup(&mut shard, &key, now, &mut expired);
            if expired.is_some() {
                // Dropped with the shard unlocked; then look again.
                drop(shard);
                drop(expired);
                shard = lock(&self.shards[idx]);
            }
            if let Some(v) = found {
                return Start::Found(Ok(v));
            }
            if let Some(flight) = shard.inflight.get(&key) {
                let flight = Arc::clone(flight);
                drop(shard);
                let id = flight.id();
                let mine = flight::frames_of(id);
                if mine > 0 && (!flight::in_pool() || mine >= MAX_FRAMES_PER_FLIGHT) {
                    // This thread is computing the key: recursion.
                    flight::poison(id);
                    return Start::Found(Err(FlightError::Reentrant));
                }
                if mine > 0 || !flight.may_wait() {
                    // A job stolen by the computation of its own key, or a
                    // pool thread meeting a pool thread's flight (see the
                    // flight module): compute here; the leader stores its
                    // own result.
                    return Start::Help(id);
                }
                lock(&self.shards[idx]).counters.waits += 1;
                match flight.wait() {
                    Outcome::Value(v) => return Start::Found(Ok(v)),
                    Outcome::Panicked => return Start::Found(Err(FlightError::Panicked)),
                    Outcome::Failed(e) => match e.downcast_ref::<E>() {
                        Some(e) => return Start::Found(Err(FlightError::Failed(e.clone()))),
                        // The leader had another error type: compute ourselves.
                        None => continue,
                    },
                }
            }
            let isolated = may_isolate && crate::isolate::should_isolate();
            let flight = Arc::new(Flight::new(isolated));
            shard.inflight.insert(key.clone(), Arc::clone(&flight));
            return Start::Lead(LeaderGuard {
                tier: self,
                idx,
                key: Some(key),
                flight,
            });
        }
    }
}

/// What a miss does: see [`MemoryTier::start`].
enum Start<'a, K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value, or the error of the flight this call waited for.
    Found(Result<V, FlightError<E>>),
    /// Compute without storing, as a helper of this flight.
    Help(usize),
    /// Compute and store: this call leads the flight.
    Lead(LeaderGuard<'a, K, V>),
}

/// Computes as a helper of flight `id` (see [`MemoryTier::start`]).
fn help<V, E>(id: usize, f: impl FnOnce() -> Result<V, E>) -> Result<V, FlightError<E>> {
    let frame = Frame::enter(id, true);
    let r = f();
    if frame.poisoned() {
        return Err(FlightError::Reentrant);
    }
    r.map_err(FlightError::Failed)
}

/// Ends a flight: on success inserts the value, on error or panic (drop
/// without `finish`) just removes the flight; then wakes the waiters.
struct LeaderGuard<'a, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    tier: &'a MemoryTier<K, V>,
    idx: usize,
    key: Option<K>,
    flight: Arc<Flight<V>>,
}

impl<K, V> LeaderGuard<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Computes the value on this thread, stores it and wakes the waiters.
    fn run<E, F>(mut self, f: F) -> Result<V, FlightError<E>>
    where
        E: Clone + Send + Sync + 'static,
        F: FnOnce() -> Result<V, E>,
    {
        let frame = Frame::enter(self.flight.id(), false);
        let r = f();
        drop(frame);
        match r {
            Ok(v) => {
                self.finish(Some(v.clone()), Outcome::Value(v.clone()));
                Ok(v)
            }
            Err(e) => {
                let shared: Arc<dyn Any + Send + Sync> = Arc::new(e.clone());
                self.finish(None, Outcome::Failed(shared));
                Err(FlightError::Failed(e))
            }
        }
    }

    fn finish(&mut self, value: Option<V>, outcome: Outcome<V>) {
        // The weigher and the cost are user code: if one panics, the key is
        // still held and `Drop` ends the flight as a panic.
        let (weight, cost) = match (&value, &self.key) {
            (Some(v), Some(k)) => ((self.tier.weigher)(k, v), self.tier.cost_of(k, v)),
            _ => (0, 0.0),
        };
        let Some(key) = self.key.take() else { return };
        // Wakes the waiters even if the insertion below panics.
        let _wake = Wake {
            flight: &self.flight,
            outcome: Some(outcome),
        };
        let mut shard = lock(&self.tier.shards[self.idx]);
        shard.inflight.remove(&key);
        match value {
            Some(v) => {
                self.tier
                    .insert_locked(self.idx, shard, key, v, weight, cost, Admission::Gated);
            }
            None => drop(shard),
        }
    }
}

/// Publishes a flight's outcome when dropped.
struct Wake<'a, V: Clone> {
    flight: &'a Flight<V>,
    outcome: Option<Outcome<V>>,
}

impl<V: Clone> Drop for Wake<'_, V> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or(Outcome::Panicked);
        self.flight.finish(outcome);
    }
}

impl<K, V> Drop for LeaderGuard<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        // Still holding the key: the computation panicked.
        self.finish(None, Outcome::Panicked);
    }
}
