//! Reading and writing entries, the lease protocol, and the breaker around
//! every operation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::breaker::Breaker;
use super::conn::{Conn, Failure, Pool, RemoteError, Timeouts};
use super::format::{self, Assembler, Damage, Header};
use super::stats::Counters;
use super::url::Target;
use super::{RemoteEntry, RemoteMode, RemoteOptions, RemoteStats, RemoteTier};
use crate::disk::EntryInfo;
use crate::error::Result;
use crate::key::{Fingerprint, KEY_FORMAT_VERSION};
use crate::sign::Signer;
use crate::sync::lock;
use crate::value::AnyArray;

/// Where [`RemoteTier::get_or_insert_with`] found its result.
#[derive(Debug, Clone)]
pub(crate) enum Fetched {
    /// Read from Redis.
    Loaded(RemoteEntry),
    /// Computed by this call (and offered for upload).
    Computed { compute_time: Duration },
}

/// The keys of one value.
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str, key: Fingerprint) -> Keys {
        Keys {
            base: format!(
                "{namespace}:k{KEY_FORMAT_VERSION}:r{}:{{{key}}}",
                format::FORMAT
            ),
        }
    }

    pub(crate) fn value(&self) -> String {
        format!("{}:m", self.base)
    }

    pub(crate) fn chunk(&self, write_id: u64, i: u32) -> String {
        format!("{}:c:{write_id:016x}:{i}", self.base)
    }

    pub(crate) fn lease(&self) -> String {
        format!("{}:lease", self.base)
    }
}

/// What a lease holds once its holder has decided to upload nothing
/// (tokens are never 0: see [`token`]).
const DECLINED: &str = "0";

/// The pattern of every key of a namespace's values (for `SCAN`).
pub(crate) fn namespace_pattern(namespace: &str) -> String {
    format!("{namespace}:*")
}

/// A load-time estimate: round trip and bandwidth, as moving averages.
struct Estimate {
    rtt: f64,
    bytes_per_sec: f64,
}

/// The state shared with the upload thread.
pub(crate) struct Inner {
    pub(crate) target: Target,
    pub(crate) options: RemoteOptions,
    pub(crate) pool: Pool,
    pub(crate) breaker: Breaker,
    pub(crate) counters: Counters,
    pub(crate) signer: Option<Signer>,
    warned: AtomicBool,
    estimate: Mutex<Estimate>,
}

/// A unique-enough token, never 0: for leases and write ids, not for security.
pub(crate) fn token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}

impl Inner {
    pub(crate) fn new(options: RemoteOptions) -> Result<Inner> {
        let target = Target::parse(&options.url)?;
        let pool = Pool::new(
            &target,
            Timeouts {
                connect: options.connect_timeout,
                op: options.op_timeout,
            },
        )?;
        Ok(Inner {
            signer: Signer::from_option_or_env(options.secret.as_deref()),
            breaker: Breaker::new(options.breaker_cooldown),
            target,
            pool,
            options,
            counters: Counters::default(),
            warned: AtomicBool::new(false),
            estimate: Mutex::new(Estimate {
                rtt: 0.5e-3,
                bytes_per_sec: 200e6,
            }),
        })
    }

    pub(crate) fn stats(&self) -> RemoteStats {
        RemoteStats::from_counters(&self.counters, self.breaker.trips(), self.breaker.is_open())
    }

    /// Runs `f` on a connection, through the breaker; counts and reports a
    /// failure.
    pub(crate) fn op<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        if !self.breaker.allow() {
            Counters::bump(&self.counters.skipped);
            return Err(RemoteError::new(
                Failure::Skipped,
                "the circuit breaker is open",
            ));
        }
        match self.pool.with(f) {
            Ok(v) => {
                self.breaker.success();
                Ok(v)
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }

    fn failed(&self, e: &RemoteError) {
        Counters::bump(&self.counters.errors);
        match e.failure {
            Failure::Refused => self.breaker.success(),
            Failure::Timeout | Failure::Down => {
                if e.failure == Failure::Timeout {
                    Counters::bump(&self.counters.timeouts);
                }
                // Idle connections to a server that broke are broken too.
                self.pool.reset();
                self.breaker.failure(e.failure == Failure::Timeout);
            }
            Failure::Skipped => {}
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            let consequence = match e.failure {
                Failure::Refused => "the result is computed or kept locally",
                _ => "calls compute locally while it is unavailable",
            };
            eprintln!(
                "ndcache: warning: the remote cache {} failed ({}); {consequence}; \
                 further failures are only counted",
                self.target.redacted(),
                e.message
            );
        }
    }

    /// Feeds a measured read to the load-time estimate.
    fn observe(&self, bytes: usize, took: Duration) {
        let secs = took.as_secs_f64();
        let mut e = lock(&self.estimate);
        if bytes < 64 << 10 {
            e.rtt = 0.8 * e.rtt + 0.2 * secs;
        } else if secs > e.rtt {
            let bw = bytes as f64 / (secs - e.rtt);
            e.bytes_per_sec = 0.8 * e.bytes_per_sec + 0.2 * bw;
        }
    }

    /// Whether a result of `bytes` that took `compute_time` is worth uploading.
    pub(crate) fn worth_uploading(&self, bytes: u64, compute_time: Duration) -> bool {
        if bytes > self.options.max_value_bytes {
            return false;
        }
        match self.options.min_compute {
            Some(min) => compute_time >= min,
            None => {
                let e = lock(&self.estimate);
                compute_time.as_secs_f64() >= e.rtt + bytes as f64 / e.bytes_per_sec
            }
        }
    }

    fn getex(&self, key: &str, ttl: Option<Duration>) -> redis::Cmd {
        match ttl {
            Some(t) => {
                let mut c = redis::cmd("GETEX");
                c.arg(key).arg("PX").arg(t.as_millis() as u64);
                c
            }
            None => {
                let mut c = redis::cmd("GET");
                c.arg(key);
                c
            }
        }
    }

    /// Chunks outlive their manifest a little, so that a manifest never
    /// expires after its chunks.
    fn chunk_ttl(&self) -> Option<Duration> {
        self.options.ttl.map(|t| t + t / 8 + Duration::from_secs(1))
    }

    /// Reads, verifies and rebuilds the value of `key`. `Err` when Redis
    /// failed (already counted).
    fn read(&self, key: Fingerprint) -> Result<Option<(AnyArray, RemoteEntry)>, RemoteError> {
        let keys = Keys::new(&self.options.namespace, key);
        let start = Instant::now();
        let ttl = self.options.ttl;
        let value: Option<Vec<u8>> = self.op(|c| c.query(&self.getex(&keys.value(), ttl)))?;
        let Some(bytes) = value else {
            return Ok(None);
        };
        let mut total = bytes.len();
        let damaged = |d: Damage, header: Option<&Header>| {
            self.damaged(&keys, header, d);
            Ok(None)
        };
        let (header, hlen) = match Header::decode(&bytes) {
            Ok(h) => h,
            Err(why) => return damaged(Damage::Corrupt(why), None),
        };
        if header.key != key {
            return damaged(Damage::Corrupt("the entry is for another key".into()), None);
        }
        let mut asm = match Assembler::new(header.clone(), &bytes[..hlen], self.signer.as_ref()) {
            Ok(a) => a,
            Err(d) => return damaged(d, Some(&header)),
        };
        if header.chunked {
            if bytes.len() != hlen {
                return damaged(
                    Damage::Corrupt("a manifest with a payload".into()),
                    Some(&header),
                );
            }
            drop(bytes);
            let chunk_ttl = self.chunk_ttl();
            for i in 0..header.chunks {
                let ck = keys.chunk(header.write_id, i);
                let chunk: Option<Vec<u8>> = self.op(|c| c.query(&self.getex(&ck, chunk_ttl)))?;
                let Some(chunk) = chunk else {
                    return damaged(
                        Damage::Corrupt(format!("chunk {i} is missing")),
                        Some(&header),
                    );
                };
                let expected = if i + 1 == header.chunks {
                    header.npy_len - u64::from(i) * u64::from(header.chunk_bytes)
                } else {
                    u64::from(header.chunk_bytes)
                };
                if chunk.len() as u64 != expected {
                    return damaged(
                        Damage::Corrupt(format!("chunk {i} has the wrong length")),
                        Some(&header),
                    );
                }
                total += chunk.len();
                if let Err(d) = asm.push(&chunk) {
                    return damaged(d, Some(&header));
                }
            }
        } else if let Err(d) = asm.push(&bytes[hlen..]) {
            return damaged(d, Some(&header));
        }
        let array = match asm.finish() {
            Ok(a) => a,
            Err(d) => return damaged(d, Some(&header)),
        };
        self.observe(total, start.elapsed());
        Counters::add(&self.counters.bytes_read, total as u64);
        Ok(Some((
            array,
            RemoteEntry::from_header(&header, total as u64),
        )))
    }

    /// Counts a damaged or forged entry and deletes it (not in read-only mode).
    fn damaged(&self, keys: &Keys, header: Option<&Header>, d: Damage) {
        match d {
            Damage::Corrupt(_) => Counters::bump(&self.counters.corrupt),
            Damage::Forged(_) => Counters::bump(&self.counters.forged),
        }
        if self.options.mode != RemoteMode::ReadWrite {
            return;
        }
        let mut del = redis::cmd("DEL");
        del.arg(keys.value());
        if let Some(h) = header.filter(|h| h.chunked) {
            for i in 0..h.chunks {
                del.arg(keys.chunk(h.write_id, i));
            }
        }
        let _ = self.op(|c| c.query::<i64>(&del));
    }

    /// The verified value of `key`, counted as a hit or a miss.
    pub(crate) fn get(&self, key: Fingerprint) -> Option<(AnyArray, RemoteEntry)> {
        if self.options.mode == RemoteMode::Off {
            return None;
        }
        match self.read(key) {
            Ok(Some(hit)) => {
                Counters::bump(&self.counters.hits);
                Some(hit)
            }
            _ => {
                Counters::bump(&self.counters.misses);
                None
            }
        }
    }

    /// Writes `value` as the entry of `key`: chunks first, the manifest
    /// last. Returns the bytes written.
    pub(crate) fn write(
        &self,
        key: Fingerprint,
        value: &AnyArray,
        info: &EntryInfo,
    ) -> Result<u64, RemoteError> {
        let keys = Keys::new(&self.options.namespace, key);
        let (npy, checksum) = format::npy_bytes(value);
        let chunk_bytes = self.options.chunk_bytes;
        let chunked = npy.len() > chunk_bytes as usize;
        let header = Header {
            chunked,
            key,
            dtype: value.dtype(),
            shape: value.shape().to_vec(),
            checksum,
            npy_len: npy.len() as u64,
            compute_ns: u64::try_from(info.compute_time.as_nanos()).unwrap_or(u64::MAX),
            chunk_bytes: if chunked { chunk_bytes } else { 0 },
            chunks: if chunked {
                npy.len().div_ceil(chunk_bytes as usize) as u32
            } else {
                0
            },
            write_id: if chunked { token() | 1 } else { 0 },
            kernel: info.kernel.clone(),
            version: info.version.clone(),
            tag: None,
        };
        let head = header.encode(self.signer.as_ref(), &npy);
        let set = |k: &str, parts: &[&[u8]], ttl: Option<Duration>| {
            let mut c = redis::cmd("SET");
            c.arg(k);
            if parts.len() == 1 {
                c.arg(parts[0]);
            } else {
                c.arg(parts.concat());
            }
            if let Some(t) = ttl {
                c.arg("PX").arg(t.as_millis() as u64);
            }
            c
        };
        if !chunked {
            let cmd = set(&keys.value(), &[&head, &npy], self.options.ttl);
            self.op(|c| c.query::<()>(&cmd))?;
            return Ok((head.len() + npy.len()) as u64);
        }
        let chunk_ttl = self.chunk_ttl();
        let mut written = 0;
        for (i, piece) in npy.chunks(chunk_bytes as usize).enumerate() {
            let k = keys.chunk(header.write_id, i as u32);
            let r = self.op(|c| c.query::<()>(&set(&k, &[piece], chunk_ttl)));
            if let Err(e) = r {
                // Leave no orphan chunks behind (best effort).
                let mut del = redis::cmd("DEL");
                for j in 0..i as u32 {
                    del.arg(keys.chunk(header.write_id, j));
                }
                if i > 0 {
                    let _ = self.op(|c| c.query::<i64>(&del));
                }
                return Err(e);
            }
            written += piece.len();
        }
        let cmd = set(&keys.value(), &[&head], self.options.ttl);
        self.op(|c| c.query::<()>(&cmd))?;
        Ok((written + head.len()) as u64)
    }

    /// Takes the lease of `key` if no one holds it: `Ok(Some(token))`.
    fn try_lease(&self, keys: &Keys) -> Result<Option<u64>, RemoteError> {
        let token = token();
        let mut c = redis::cmd("SET");
        c.arg(keys.lease())
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(self.options.lease_ttl.as_millis() as u64);
        let v: redis::Value = self.op(|conn| conn.query(&c))?;
        Ok(matches!(v, redis::Value::Okay | redis::Value::SimpleString(_)).then_some(token))
    }

    /// Extends a lease we hold; `false` if it is no longer ours.
    pub(crate) fn renew(&self, lease_key: &str, token: u64) -> bool {
        const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                             return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
        let mut c = redis::cmd("EVAL");
        c.arg(RENEW)
            .arg(1)
            .arg(lease_key)
            .arg(token)
            .arg(self.options.lease_ttl.as_millis() as u64);
        matches!(self.op(|conn| conn.query::<i64>(&c)), Ok(1))
    }

    /// Replaces a lease we hold by the mark [`DECLINED`] for one lease
    /// lifetime: no value is coming (not worth uploading, too large, or the
    /// upload failed), so the waiters compute at once instead of taking
    /// the lease over one after another.
    pub(crate) fn decline(&self, lease_key: &str, token: u64) {
        const DECLINE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                               return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) else return 0 end";
        let mut c = redis::cmd("EVAL");
        c.arg(DECLINE)
            .arg(1)
            .arg(lease_key)
            .arg(token)
            .arg(DECLINED)
            .arg(self.options.lease_ttl.as_millis() as u64);
        let _ = self.op(|conn| conn.query::<redis::Value>(&c));
    }

    /// Whether the lease of `keys` says its holder will upload nothing.
    fn declined(&self, keys: &Keys) -> Result<bool, RemoteError> {
        let v: Option<String> = self.op(|c| c.query(redis::cmd("GET").arg(keys.lease())))?;
        Ok(v.as_deref() == Some(DECLINED))
    }

    /// Deletes a lease if it is still ours.
    pub(crate) fn release(&self, lease_key: &str, token: u64) {
        const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                               return redis.call('del', KEYS[1]) else return 0 end";
        let mut c = redis::cmd("EVAL");
        c.arg(RELEASE).arg(1).arg(lease_key).arg(token);
        let _ = self.op(|conn| conn.query::<i64>(&c));
    }

    /// Adds this process's counters to the namespace's fleet-wide ones (one
    /// `HINCRBY` per non-zero counter, in one round trip with `EVAL`).
    pub(crate) fn publish_stats(&self) {
        if self.options.mode != RemoteMode::ReadWrite || self.breaker.is_open() {
            return;
        }
        let s = self.stats();
        let pairs: Vec<(&str, u64)> = s.counters().into_iter().filter(|(_, v)| *v > 0).collect();
        if pairs.is_empty() {
            return;
        }
        const ADD: &str = "for i = 1, #ARGV, 2 do redis.call('hincrby', KEYS[1], ARGV[i], ARGV[i+1]) end return 0";
        let mut c = redis::cmd("EVAL");
        c.arg(ADD)
            .arg(1)
            .arg(format!("{}:stats", self.options.namespace));
        for (k, v) in pairs {
            c.arg(k).arg(v);
        }
        let _ = self.op(|conn| conn.query::<i64>(&c));
    }
}

/// A lease being held while this thread computes: a helper thread renews it
/// every third of its lifetime until dropped.
struct Renewal<'a> {
    stop: &'a (Mutex<bool>, Condvar),
}

impl Drop for Renewal<'_> {
    fn drop(&mut self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
    }
}

/// Runs `compute` while renewing the lease `(lease_key, token)`.
fn compute_renewing<T>(
    inner: &Inner,
    lease_key: &str,
    token: u64,
    compute: impl FnOnce() -> T,
) -> T {
    let stop = (Mutex::new(false), Condvar::new());
    let every = inner.options.lease_ttl / 3;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut stopped = lock(&stop.0);
            loop {
                // Checked before waiting: the computation may be over already.
                if *stopped {
                    return;
                }
                let (g, timeout) = stop
                    .1
                    .wait_timeout(stopped, every)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                stopped = g;
                if *stopped {
                    return;
                }
                if timeout.timed_out() {
                    drop(stopped);
                    let ours = inner.renew(lease_key, token);
                    stopped = lock(&stop.0);
                    if !ours {
                        return;
                    }
                }
            }
        });
        let _renewal = Renewal { stop: &stop };
        compute()
    })
}

/// Runs pool work if there is some, else sleeps `d` (a rayon pool thread
/// never just blocks).
fn pause(d: Duration) {
    if rayon::current_thread_index().is_some()
        && matches!(rayon::yield_now(), Some(rayon::Yield::Executed))
    {
        return;
    }
    std::thread::sleep(d);
}

/// `d` ± 50%, from a cheap random source.
fn jitter(d: Duration) -> Duration {
    let r = (token() % 1000) as f64 / 1000.0; // [0, 1)
    d.mul_f64(0.5 + r)
}

/// The protocol of [`RemoteTier::get_or_insert_with`]: get → lease → get →
/// compute (renewing) → upload → release; or wait for the lease holder.
pub(crate) fn get_or_insert_with<E>(
    tier: &RemoteTier,
    key: Fingerprint,
    kernel: &str,
    version: &str,
    compute: impl FnOnce() -> Result<(AnyArray, Duration), E>,
) -> Result<(AnyArray, Fetched), E> {
    let inner = &*tier.inner;
    let computed =
        |(array, compute_time): (AnyArray, Duration)| (array, Fetched::Computed { compute_time });
    if inner.options.mode == RemoteMode::Off {
        return compute().map(computed);
    }
    if let Some((a, e)) = inner.get(key) {
        return Ok((a, Fetched::Loaded(e)));
    }
    if inner.options.mode == RemoteMode::ReadOnly {
        return compute().map(computed);
    }
    let keys = Keys::new(&inner.options.namespace, key);
    let lease_key = keys.lease();
    // Take the lease, or wait for its holder's result.
    let mut token = None;
    let mut waited = false;
    let deadline = Instant::now() + inner.options.lease_wait;
    let mut backoff = Duration::from_millis(5);
    loop {
        match inner.try_lease(&keys) {
            Ok(Some(t)) => {
                token = Some(t);
                if waited {
                    Counters::bump(&inner.counters.lease_takeovers);
                }
                // It may have landed between our miss and the lease.
                if let Ok(Some((a, e))) = inner.read(key) {
                    inner.release(&lease_key, t);
                    Counters::bump(&inner.counters.hits);
                    return Ok((a, Fetched::Loaded(e)));
                }
                break;
            }
            // Held: by a computing process, or declined (no value coming).
            Ok(None) => match inner.declined(&keys) {
                Ok(false) => {}
                Ok(true) | Err(_) => break,
            },
            Err(_) => break, // Redis failed: compute without a lease.
        }
        if Instant::now() >= deadline {
            break;
        }
        if !waited {
            waited = true;
            Counters::bump(&inner.counters.lease_waits);
        }
        pause(jitter(backoff));
        backoff = (backoff * 2).min(Duration::from_millis(250));
        match inner.read(key) {
            Ok(Some((a, e))) => {
                Counters::bump(&inner.counters.hits);
                return Ok((a, Fetched::Loaded(e)));
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
    let Some(token) = token else {
        let (array, t) = compute()?;
        tier.offer(key, &array, kernel, version, t, None);
        return Ok(computed((array, t)));
    };
    let result = compute_renewing(inner, &lease_key, token, compute);
    match result {
        Ok((array, t)) => {
            // The upload releases the lease once the value is written.
            tier.offer(key, &array, kernel, version, t, Some((lease_key, token)));
            Ok(computed((array, t)))
        }
        Err(e) => {
            inner.release(&lease_key, token);
            Err(e)
        }
    }
}

impl RemoteTier {
    /// Uploads a computed result if it is worth it, then releases `lease`;
    /// releases it at once otherwise.
    fn offer(
        &self,
        key: Fingerprint,
        array: &AnyArray,
        kernel: &str,
        version: &str,
        compute_time: Duration,
        lease: Option<(String, u64)>,
    ) {
        let inner = &*self.inner;
        if !inner.worth_uploading(array.nbytes(), compute_time) {
            Counters::bump(&inner.counters.upload_skipped);
            if let Some((k, t)) = lease {
                inner.decline(&k, t);
            }
            return;
        }
        let info = EntryInfo::new(kernel, version, compute_time);
        self.uploader.submit(
            &self.inner,
            super::upload::Job::new(key, array, info, lease),
        );
    }
}
