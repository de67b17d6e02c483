//! Counters of the remote tier and their snapshot.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Event counters, `Relaxed` atomics: statistics, not synchronization.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bytes_read: AtomicU64,
    pub uploads: AtomicU64,
    pub bytes_written: AtomicU64,
    pub upload_skipped: AtomicU64,
    pub upload_dropped: AtomicU64,
    pub upload_failures: AtomicU64,
    pub lease_waits: AtomicU64,
    pub lease_takeovers: AtomicU64,
    pub corrupt: AtomicU64,
    pub forged: AtomicU64,
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub skipped: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

/// A snapshot of the remote tier's statistics in this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStats {
    /// Lookups answered by Redis (verified).
    pub hits: u64,
    /// Lookups that found nothing usable (including damaged entries).
    pub misses: u64,
    /// Bytes of entries read from Redis (hits).
    pub bytes_read: u64,
    /// Results uploaded.
    pub uploads: u64,
    /// Bytes uploaded (headers, payloads and chunks).
    pub bytes_written: u64,
    /// Results not uploaded because computing them was quicker than
    /// loading them would be (see [`RemoteOptions::min_compute`](super::RemoteOptions::min_compute)).
    pub upload_skipped: u64,
    /// Results not uploaded because the upload queue was full.
    pub upload_dropped: u64,
    /// Uploads that failed (out of memory, connection lost...).
    pub upload_failures: u64,
    /// Calls that waited for another process's lease.
    pub lease_waits: u64,
    /// Leases taken over from a holder that stopped renewing (it died).
    pub lease_takeovers: u64,
    /// Damaged entries (a missing chunk, a bad checksum, a bad header)
    /// found, counted as misses and deleted.
    pub corrupt: u64,
    /// Entries refused because entries are signed and theirs was missing
    /// or wrong, counted as misses and deleted.
    pub forged: u64,
    /// Operations that failed (server down, hung, refused the command).
    pub errors: u64,
    /// Of those, operations that timed out.
    pub timeouts: u64,
    /// Times the circuit breaker opened.
    pub breaker_trips: u64,
    /// Operations not attempted because the breaker was open.
    pub skipped: u64,
    /// Whether the breaker is open now.
    pub breaker_open: bool,
}

impl RemoteStats {
    pub(crate) fn from_counters(c: &Counters, breaker_trips: u64, breaker_open: bool) -> Self {
        let l = |a: &AtomicU64| a.load(Relaxed);
        RemoteStats {
            hits: l(&c.hits),
            misses: l(&c.misses),
            bytes_read: l(&c.bytes_read),
            uploads: l(&c.uploads),
            bytes_written: l(&c.bytes_written),
            upload_skipped: l(&c.upload_skipped),
            upload_dropped: l(&c.upload_dropped),
            upload_failures: l(&c.upload_failures),
            lease_waits: l(&c.lease_waits),
            lease_takeovers: l(&c.lease_takeovers),
            corrupt: l(&c.corrupt),
            forged: l(&c.forged),
            errors: l(&c.errors),
            timeouts: l(&c.timeouts),
            breaker_trips,
            skipped: l(&c.skipped),
            breaker_open,
        }
    }

    /// `hits / (hits + misses)`, or 0 when there were no lookups.
    pub fn hit_rate(&self) -> f64 {
        crate::sync::ratio(self.hits, self.misses)
    }

    /// The counters as `(name, value)` pairs, in display order (the names
    /// of the fleet-wide counters `ndcache remote stats` shows).
    pub fn counters(&self) -> [(&'static str, u64); 16] {
        [
            ("hits", self.hits),
            ("misses", self.misses),
            ("bytes_read", self.bytes_read),
            ("uploads", self.uploads),
            ("bytes_written", self.bytes_written),
            ("upload_skipped", self.upload_skipped),
            ("upload_dropped", self.upload_dropped),
            ("upload_failures", self.upload_failures),
            ("lease_waits", self.lease_waits),
            ("lease_takeovers", self.lease_takeovers),
            ("corrupt", self.corrupt),
            ("forged", self.forged),
            ("errors", self.errors),
            ("timeouts", self.timeouts),
            ("breaker_trips", self.breaker_trips),
            ("skipped", self.skipped),
        ]
    }
}

impl fmt::Display for RemoteStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, v)) in self.counters().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={v}")?;
        }
        write!(f, " breaker_open={}", self.breaker_open)
    }
}
