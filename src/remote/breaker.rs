//! The circuit breaker: after failures, stop asking Redis for a while.
//!
//! Closed (normal) → open after [`FAILURES_TO_OPEN`] consecutive failures
//! or one timeout. While open, every remote operation is skipped at once
//! (a call costs what it would without a remote tier). When the cool-down
//! ends, one operation is let through as a probe (half-open): success
//! closes the breaker, failure opens it again for twice as long, up to
//! [`MAX_COOLDOWN`]. ccache disables a failed backend for the rest of the
//! process; this one recovers when the server does.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Consecutive failures (not timeouts) that open the breaker.
pub(crate) const FAILURES_TO_OPEN: u32 = 3;
/// The first cool-down.
pub(crate) const BASE_COOLDOWN: Duration = Duration::from_secs(1);
/// The longest cool-down.
pub(crate) const MAX_COOLDOWN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out; everyone else is still refused.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<(State, Duration)>,
    trips: AtomicU64,
    base: Duration,
}

impl Breaker {
    pub(crate) fn new(base: Duration) -> Self {
        Breaker {
            state: Mutex::new((State::Closed { failures: 0 }, base)),
            trips: AtomicU64::new(0),
            base,
        }
    }

    /// Whether an operation may go to Redis now.
    pub(crate) fn allow(&self) -> bool {
        let mut g = lock(&self.state);
        match g.0 {
            State::Closed { .. } => true,
            State::HalfOpen => false,
            State::Open { until } => {
                if Instant::now() >= until {
                    g.0 = State::HalfOpen;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Whether the breaker is open (or half-open) now.
    pub(crate) fn is_open(&self) -> bool {
        !matches!(lock(&self.state).0, State::Closed { .. })
    }

    /// The server answered.
    pub(crate) fn success(&self) {
        let mut g = lock(&self.state);
        *g = (State::Closed { failures: 0 }, self.base);
    }

    /// An operation failed (`timeout`: it got no answer in time). Returns
    /// whether this opened the breaker.
    pub(crate) fn failure(&self, timeout: bool) -> bool {
        let mut g = lock(&self.state);
        let (state, cooldown) = *g;
        let open = |cooldown: Duration| State::Open {
            until: Instant::now() + cooldown,
        };
        match state {
            State::Closed { failures } => {
                let failures = failures + 1;
                if timeout || failures >= FAILURES_TO_OPEN {
                    *g = (open(cooldown), cooldown);
                    self.trips.fetch_add(1, Relaxed);
                    true
                } else {
                    g.0 = State::Closed { failures };
                    false
                }
            }
            State::HalfOpen => {
                let longer = (cooldown * 2).min(MAX_COOLDOWN);
                *g = (open(longer), longer);
                self.trips.fetch_add(1, Relaxed);
                true
            }
            // Operations that started before it opened.
            State::Open { .. } => false,
        }
    }

    /// How many times it opened.
    pub(crate) fn trips(&self) -> u64 {
        self.trips.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_a_timeout_or_three_failures_and_probes_after_the_cooldown() {
        let b = Breaker::new(Duration::from_millis(30));
        assert!(b.allow());
        assert!(!b.failure(false));
        assert!(!b.failure(false));
        b.success();
        assert!(!b.failure(false));
        assert!(!b.failure(false));
        assert!(b.failure(false));
        assert!(!b.allow());
        assert_eq!(b.trips(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "the probe");
        assert!(!b.allow(), "only one probe");
        assert!(b.failure(true));
        assert_eq!(b.trips(), 2);
        // The cool-down doubled.
        std::thread::sleep(Duration::from_millis(40));
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow());
        b.success();
        assert!(b.allow() && !b.is_open());
        assert!(b.failure(true), "one timeout opens it");
    }
}
