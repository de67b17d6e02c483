//! The remote tier: one cache for a fleet of machines, on Redis (a single
//! server or a Redis Cluster). No server of our own.
//!
//! An [`ArrayCache`](crate::ArrayCache) built with
//! [`remote`](crate::ArrayCacheBuilder::remote) looks a call up in memory,
//! then on disk (if it has a disk tier), then in Redis, then computes it:
//!
//! - **A remote hit is verified** (length, `.npy` header, xxh3-128
//!   checksum, and the signature when entries are signed), then written
//!   back to the disk tier and to memory.
//! - **A computed result is uploaded in the background**, through a queue
//!   bounded in bytes ([`RemoteOptions::upload_queue_bytes`]; a full queue
//!   drops the upload and counts it), and only when it is worth it: when
//!   computing it took longer than loading it is estimated to take
//!   (latency plus size over bandwidth, measured on this connection; see
//!   [`RemoteOptions::min_compute`] to override).
//! - **One computation per key across machines**: the process that misses
//!   takes a lease, computes, uploads, and releases the lease; the others
//!   wait for the result (see [Leases](#leases)).
//! - **A failing Redis never fails a call** (see [Failures](#failures)).
//!
//! # Format and keys
//!
//! A value is the exact bytes of the result's `.npy` file (what the disk
//! tier writes) after a small binary header: key, kernel, version, dtype,
//! shape, the xxh3-128 of the `.npy` bytes, the compute time, and a tag if
//! signed (the layout is in the source, `src/remote/format.rs`). Keys are
//!
//! ```text
//! <namespace>:k1:r1:{<32-hex call key>}:m                 the value, or the manifest of its chunks
//! <namespace>:k1:r1:{<32-hex call key>}:c:<write id>:<i>  chunk i of a large value
//! <namespace>:k1:r1:{<32-hex call key>}:lease             held while a process computes it (a token, or 0)
//! <namespace>:stats                                       fleet-wide counters (a hash)
//! ```
//!
//! `k1` is the key format version ([`KEY_FORMAT_VERSION`](crate::KEY_FORMAT_VERSION)),
//! `r1` the remote format version: a new version uses new keys, and the old
//! ones age out. The braces are a Redis Cluster hash tag: a value's
//! manifest, chunks and lease live in one slot, on one node.
//!
//! Values larger than [`RemoteOptions::chunk_bytes`] (default
//! [`DEFAULT_CHUNK_BYTES`], 2 MiB) are stored as chunks, written first, and
//! a manifest written last, so a reader never sees a manifest before its
//! chunks. A missing chunk (Redis evicts keys one by one) or a bad
//! checksum is a miss, is counted ([`RemoteStats::corrupt`]) and the entry
//! is deleted. The chunk size was measured: with this crate's sync client
//! on loopback, reading 32 MiB in chunks of 256 KiB, 512 KiB, 1, 2, 4, 8,
//! 16 and 32 MiB took 52, 28, 21, 19, 37, 60, 56 and 75 ms (one GET per
//! chunk; a second run: 63, 39, 39, 29, 32, 58, 68, 75 ms), and writing
//! favoured 2–4 MiB: the client's reply parser slows down on replies of
//! several MiB.
//!
//! Redis's own `maxmemory` is the byte budget. Set it with an eviction
//! policy, `maxmemory-policy allkeys-lru` (in `redis.conf`, or `CONFIG SET`
//! where allowed): under the default `noeviction` a full Redis refuses
//! writes, which ndcache counts as failed uploads. An optional TTL
//! ([`RemoteOptions::ttl`]) makes entries expire; a hit refreshes it
//! (`GETEX`).
//!
//! # Leases
//!
//! A process that misses sets `...:lease` to a random token with `SET NX
//! PX` ([`RemoteOptions::lease_ttl`], default 10 s), renews it every third
//! of that while it computes (compare-and-`PEXPIRE`), and deletes it by
//! compare-and-delete once the upload is written. When there is nothing to
//! upload (not worth it, too large, the upload failed) it replaces the
//! token by `0` for one lease lifetime instead, so that the processes
//! waiting for it compute at once rather than take the lease over one after
//! another. The others poll for the value with jittered backoff (5 ms
//! doubling to 250 ms); if the lease disappears without a value (its holder
//! died and stopped renewing), one of them takes the lease over and
//! computes. A waiter gives up after [`RemoteOptions::lease_wait`] and
//! computes itself. The lease only saves duplicate work (results are
//! deterministic and verified), so a single-node lease with expiry is
//! enough: no Redlock. In a process, the memory tier's single flight and
//! the disk tier's lock come first, so one machine asks Redis once per key.
//!
//! # Failures
//!
//! Redis down, slow, hung, out of memory or answering garbage: the call
//! computes and returns the right result anyway. Connections have a
//! connect timeout (250 ms) and socket read and write timeouts (500 ms);
//! a circuit breaker opens after one timeout or three failures in a row
//! and skips Redis altogether for a second, doubling up to a minute while
//! the server stays unreachable, then lets one probe through. Each failure
//! is counted ([`RemoteStats`]) and the first one is reported once on
//! standard error, with the URL's password left out. Maintenance commands
//! ([`RemoteTier::entries`], [`RemoteTier::clear`]) return
//! [`Error::Remote`] instead.
//!
//! # Trust
//!
//! A shared tier is only as trustworthy as everyone who can write to it.
//! The URL carries the Redis ACL user and password (`redis://user:pass@host`)
//! and, with the `remote-tls` feature, TLS (`rediss://`). With a secret
//! ([`ArrayCacheBuilder::secret`](crate::ArrayCacheBuilder::secret) or
//! `$NDCACHE_SECRET`) every entry written carries a keyed BLAKE3 tag over
//! its header and its bytes, and a reader rejects, counts
//! ([`RemoteStats::forged`]) and deletes an entry that no holder of the
//! secret wrote. Without a secret, anyone who can write to the namespace
//! can make every reader return arrays of their choosing.

mod breaker;
mod conn;
mod format;
mod maint;
mod stats;
mod tier;
mod upload;
mod url;

pub use maint::{RemoteEntry, ServerInfo};
pub use stats::RemoteStats;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::disk::EntryInfo;
use crate::error::{Error, Result};
use crate::key::Fingerprint;
use crate::value::AnyArray;

pub(crate) use tier::Fetched;

/// The chunk size when none is given: 2 MiB (measured: see the module docs).
pub const DEFAULT_CHUNK_BYTES: u32 = 2 << 20;
/// The namespace when none is given.
pub const DEFAULT_NAMESPACE: &str = "ndcache";
/// The environment variable the `ndcache` program reads its remote URL from.
pub const REMOTE_ENV: &str = "NDCACHE_REMOTE";

/// What the remote tier may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RemoteMode {
    /// Read, upload, take leases, delete damaged entries (the default).
    #[default]
    ReadWrite,
    /// Read only: no uploads, no leases, no deletes (a fleet where only CI
    /// writes, for example).
    ReadOnly,
    /// Never talk to Redis.
    Off,
}

impl FromStr for RemoteMode {
    type Err = Error;

    /// `rw`, `ro` or `off` (also `read-write`, `read-only`).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rw" | "read-write" => Ok(RemoteMode::ReadWrite),
            "ro" | "read-only" => Ok(RemoteMode::ReadOnly),
            "off" => Ok(RemoteMode::Off),
            other => Err(Error::Config(format!(
                "invalid remote mode '{other}' (expected rw, ro or off)"
            ))),
        }
    }
}

impl fmt::Display for RemoteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteMode::ReadWrite => "rw",
            RemoteMode::ReadOnly => "ro",
            RemoteMode::Off => "off",
        })
    }
}

/// Where the remote tier is and how it behaves; `"redis://host:6379"`
/// converts into the defaults.
#[derive(Clone)]
pub struct RemoteOptions {
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) mode: RemoteMode,
    pub(crate) ttl: Option<Duration>,
    pub(crate) chunk_bytes: u32,
    pub(crate) max_value_bytes: u64,
    pub(crate) connect_timeout: Duration,
    pub(crate) op_timeout: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) lease_wait: Duration,
    pub(crate) min_compute: Option<Duration>,
    pub(crate) upload_queue_bytes: u64,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) secret: Option<Vec<u8>>,
}

impl fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("url", &url::redact(&self.url))
            .field("namespace", &self.namespace)
            .field("mode", &self.mode)
            .field("ttl", &self.ttl)
            .field("chunk_bytes", &self.chunk_bytes)
            .field("signed", &self.secret.as_ref().map(|s| !s.is_empty()))
            .finish_non_exhaustive()
    }
}

impl<S: Into<String>> From<S> for RemoteOptions {
    fn from(url: S) -> Self {
        RemoteOptions::new(url)
    }
}

impl RemoteOptions {
    /// The defaults for `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://...` (TLS, with the `remote-tls` feature),
    /// `redis+cluster://[user:password@]host:port,host:port,...` (a Redis
    /// Cluster, given some of its nodes), or a comma-separated list of
    /// `redis://` URLs (a cluster too).
    pub fn new(url: impl Into<String>) -> Self {
        RemoteOptions {
            url: url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            mode: RemoteMode::ReadWrite,
            ttl: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            max_value_bytes: 256 << 20,
            connect_timeout: Duration::from_millis(250),
            op_timeout: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(10),
            lease_wait: Duration::from_secs(600),
            min_compute: None,
            upload_queue_bytes: 256 << 20,
            breaker_cooldown: breaker::BASE_COOLDOWN,
            secret: None,
        }
    }

    /// The prefix of every key (default `ndcache`): letters, digits, `_`,
    /// `-` and `.`. Teams sharing a Redis use one each; `ndcache remote
    /// clear` removes one namespace only.
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }

    /// Read-write (the default), read-only or off.
    pub fn mode(mut self, mode: RemoteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Entries expire this long after their last hit (default: never; let
    /// `maxmemory` with `allkeys-lru` evict them).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Values larger than this are stored as chunks of this size (default
    /// [`DEFAULT_CHUNK_BYTES`]; at least 64 KiB).
    pub fn chunk_bytes(mut self, n: u32) -> Self {
        self.chunk_bytes = n;
        self
    }

    /// Results larger than this are never uploaded (default 256 MiB).
    pub fn max_value_bytes(mut self, n: u64) -> Self {
        self.max_value_bytes = n;
        self
    }

    /// How long to wait for a connection (default 250 ms).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// How long one read or write on a connection may block (default
    /// 500 ms). A server that does not answer within it is taken for hung.
    pub fn op_timeout(mut self, t: Duration) -> Self {
        self.op_timeout = t;
        self
    }

    /// How long a lease lives without renewal (default 10 s): how long the
    /// others wait for a holder that died.
    pub fn lease_ttl(mut self, t: Duration) -> Self {
        self.lease_ttl = t;
        self
    }

    /// How long a call waits for another process's computation before
    /// computing itself (default 10 minutes).
    pub fn lease_wait(mut self, t: Duration) -> Self {
        self.lease_wait = t;
        self
    }

    /// Uploads results that took at least this long to compute. Default:
    /// `None`, upload when computing took longer than loading is estimated
    /// to take (a round trip plus the size over the bandwidth, both measured
    /// on this tier's reads; before any, 0.5 ms and 200 MB/s).
    /// `Some(Duration::ZERO)` uploads everything.
    pub fn min_compute(mut self, t: Option<Duration>) -> Self {
        self.min_compute = t;
        self
    }

    /// The most bytes of results waiting to be uploaded (default 256 MiB);
    /// beyond that, uploads are dropped and counted.
    pub fn upload_queue_bytes(mut self, n: u64) -> Self {
        self.upload_queue_bytes = n;
        self
    }

    /// Signs entries and accepts only entries signed with this secret (an
    /// empty secret turns signing off). Without it, `$NDCACHE_SECRET` if
    /// set. [`ArrayCacheBuilder::secret`](crate::ArrayCacheBuilder::secret)
    /// sets it for the disk tier too.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// The first cool-down of the circuit breaker (default 1 s).
    #[doc(hidden)]
    pub fn breaker_cooldown(mut self, t: Duration) -> Self {
        self.breaker_cooldown = t;
        self
    }

    fn validate(&self) -> Result<()> {
        let ns_ok = !self.namespace.is_empty()
            && self
                .namespace
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if !ns_ok {
            return Err(Error::Config(format!(
                "invalid remote namespace '{}' (letters, digits, '_', '-' and '.')",
                self.namespace
            )));
        }
        if self.chunk_bytes < 64 << 10 {
            return Err(Error::Config(
                "the remote chunk size must be at least 64 KiB".into(),
            ));
        }
        for (name, t) in [
            ("connect_timeout", self.connect_timeout),
            ("op_timeout", self.op_timeout),
            ("lease_ttl", self.lease_ttl),
        ] {
            if t.is_zero() {
                return Err(Error::Config(format!("the remote {name} must be positive")));
            }
        }
        if self.ttl.is_some_and(|t| t.as_millis() == 0) {
            return Err(Error::Config("the remote ttl must be at least 1 ms".into()));
        }
        Ok(())
    }
}

/// A Redis-backed cache tier shared by many processes and machines. See the
/// [module docs](self).
///
/// Building one connects nothing: the first operation does, so a program
/// starts even when Redis is down.
///
/// # Thread safety
///
/// `RemoteTier` is `Send + Sync`; every method takes `&self`. Connections
/// come from a small pool; uploads run on one background thread. Dropping
/// the tier waits for the queued uploads (each bounded by the timeouts).
pub struct RemoteTier {
    inner: Arc<tier::Inner>,
    uploader: upload::Uploader,
}

impl fmt::Debug for RemoteTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTier")
            .field("url", &self.inner.target.redacted())
            .field("namespace", &self.inner.options.namespace)
            .field("mode", &self.inner.options.mode)
            .finish_non_exhaustive()
    }
}

impl RemoteTier {
    /// A tier for `options` (or a URL). An error only for an invalid URL or
    /// option; nothing is connected yet.
    pub fn new(options: impl Into<RemoteOptions>) -> Result<RemoteTier> {
        let options = options.into();
        options.validate()?;
        let inner = Arc::new(tier::Inner::new(options)?);
        Ok(RemoteTier {
            uploader: upload::Uploader::new(inner.options.upload_queue_bytes),
            inner,
        })
    }

    /// The URL (password replaced by `***`).
    pub fn url(&self) -> String {
        self.inner.target.redacted()
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.options.namespace
    }

    /// The mode.
    pub fn mode(&self) -> RemoteMode {
        self.inner.options.mode
    }

    /// The verified result of `key` and what its entry says, or `None` (no
    /// entry, a damaged or forged one, which is then deleted and counted,
    /// or Redis unavailable). A hit refreshes the TTL, if there is one.
    pub fn get(&self, key: Fingerprint) -> Option<(AnyArray, RemoteEntry)> {
        self.inner.get(key)
    }

    /// Queues `value` for upload as the result of `key` (no lease, no
    /// admission rule: it is uploaded unless the queue is full, the tier is
    /// not read-write, or it exceeds [`RemoteOptions::max_value_bytes`]).
    pub fn put(&self, key: Fingerprint, value: &AnyArray, info: EntryInfo) {
        if self.inner.options.mode == RemoteMode::ReadWrite {
            self.uploader
                .submit(&self.inner, upload::Job::new(key, value, info, None));
        }
    }

    /// Waits until every queued upload is written (or has failed).
    pub fn flush(&self) {
        self.uploader.flush();
    }

    /// A snapshot of this process's statistics.
    pub fn stats(&self) -> RemoteStats {
        self.inner.stats()
    }

    /// The result of `key`: from Redis if it is there, else computed by
    /// `compute` (which says how long it took) under a lease and uploaded.
    pub(crate) fn get_or_insert_with<E>(
        &self,
        key: Fingerprint,
        kernel: &str,
        version: &str,
        compute: impl FnOnce() -> Result<(AnyArray, Duration), E>,
    ) -> Result<(AnyArray, Fetched), E> {
        tier::get_or_insert_with(self, key, kernel, version, compute)
    }
}

impl Drop for RemoteTier {
    fn drop(&mut self) {
        self.uploader.shutdown();
        self.inner.publish_stats();
    }
}
