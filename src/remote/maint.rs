//! Listing, clearing and inspecting a namespace: `SCAN` on every node
//! (never `KEYS`, never `FLUSHDB`), one namespace only.

use std::time::Duration;

use super::conn::{Conn, RemoteError};
use super::format::Header;
use super::tier::namespace_pattern;
use super::RemoteTier;
use crate::element::DType;
use crate::error::{Error, Result};
use crate::key::{Fingerprint, KEY_FORMAT_VERSION};

/// Keys asked for per `SCAN` step.
const SCAN_COUNT: u64 = 1000;
/// Bytes read from the start of a value to decode its header.
const HEADER_PEEK: isize = 16 << 10;

/// One entry of a namespace, as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteEntry {
    /// The call key.
    pub key: Fingerprint,
    /// The kernel (or expression) that computed it.
    pub kernel: String,
    /// Its version.
    pub version: String,
    /// The result's dtype.
    pub dtype: DType,
    /// The result's shape.
    pub shape: Vec<usize>,
    /// Bytes stored: header and `.npy` bytes (chunks included).
    pub bytes: u64,
    /// Chunks (0: stored inline).
    pub chunks: u32,
    /// How long computing it took.
    pub compute_time: Duration,
}

impl RemoteEntry {
    pub(crate) fn from_header(h: &Header, bytes: u64) -> Self {
        RemoteEntry {
            key: h.key,
            kernel: h.kernel.clone(),
            version: h.version.clone(),
            dtype: h.dtype,
            shape: h.shape.clone(),
            bytes,
            chunks: h.chunks,
            compute_time: Duration::from_nanos(h.compute_ns),
        }
    }
}

/// What the Redis server says about its memory (summed over a cluster's
/// masters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// Nodes asked (1, or a cluster's masters).
    pub nodes: usize,
    /// `used_memory`, in bytes.
    pub used_memory: u64,
    /// `maxmemory` in bytes (0: no limit).
    pub max_memory: u64,
    /// `maxmemory_policy` (`allkeys-lru` is what ndcache wants).
    pub policy: String,
}

impl RemoteTier {
    fn maint_error(&self, e: RemoteError) -> Error {
        Error::Remote {
            url: self.url(),
            reason: e.message,
        }
    }

    /// Runs `f` on a plain connection to every node that holds keys.
    fn each_node(&self, mut f: impl FnMut(&mut Conn) -> Result<(), RemoteError>) -> Result<()> {
        let mut nodes = self.inner.pool.nodes().map_err(|e| self.maint_error(e))?;
        for n in &mut nodes {
            f(n).map_err(|e| self.maint_error(e))?;
        }
        Ok(())
    }

    /// Every key of the namespace matching `pattern`, node by node, with `SCAN`.
    fn scan(
        &self,
        conn: &mut Conn,
        pattern: &str,
        mut each: impl FnMut(&mut Conn, Vec<String>) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        let mut cursor: u64 = 0;
        loop {
            let mut c = redis::cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<String>) = conn.query(&c)?;
            if !keys.is_empty() {
                each(conn, keys)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The entries of the namespace (values of the current formats), read
    /// from their headers. Entries whose header is damaged are left out.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] if Redis cannot be reached or refuses.
    pub fn entries(&self) -> Result<Vec<RemoteEntry>> {
        let pattern = format!(
            "{}:k{KEY_FORMAT_VERSION}:r{}:*:m",
            self.inner.options.namespace,
            super::format::FORMAT
        );
        let mut out = Vec::new();
        self.each_node(|conn| {
            self.scan(conn, &pattern, |conn, keys| {
                for k in keys {
                    let mut c = redis::cmd("GETRANGE");
                    c.arg(&k).arg(0).arg(HEADER_PEEK - 1);
                    let head: Vec<u8> = conn.query(&c)?;
                    if let Ok((h, len)) = Header::decode(&head) {
                        let bytes = len as u64 + h.npy_len;
                        out.push(RemoteEntry::from_header(&h, bytes));
                    }
                }
                Ok(())
            })
        })?;
        out.sort_by_key(|e| e.key);
        Ok(out)
    }

    /// Deletes every key of the namespace (values, chunks, leases, fleet
    /// statistics) with `SCAN` and `UNLINK`; returns how many.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] if Redis cannot be reached or refuses, and
    /// [`Error::Config`] in read-only or off mode.
    pub fn clear(&self) -> Result<u64> {
        if self.inner.options.mode != super::RemoteMode::ReadWrite {
            return Err(Error::Config(
                "the remote cache is not read-write: nothing was removed".into(),
            ));
        }
        let pattern = namespace_pattern(&self.inner.options.namespace);
        let cluster = self.inner.pool.is_cluster();
        let mut n = 0;
        self.each_node(|conn| {
            self.scan(conn, &pattern, |conn, keys| {
                // In a cluster, keys of different slots cannot share a command.
                let groups: Vec<Vec<String>> = if cluster {
                    keys.into_iter().map(|k| vec![k]).collect()
                } else {
                    vec![keys]
                };
                for g in groups {
                    let mut c = redis::cmd("UNLINK");
                    c.arg(&g);
                    n += conn.query::<u64>(&c)?;
                }
                Ok(())
            })
        })?;
        Ok(n)
    }

    /// The server's memory use, limit and eviction policy (`INFO memory`).
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] if Redis cannot be reached or refuses.
    pub fn server_info(&self) -> Result<ServerInfo> {
        let mut info = ServerInfo {
            nodes: 0,
            used_memory: 0,
            max_memory: 0,
            policy: String::new(),
        };
        self.each_node(|conn| {
            let text: String = conn.query(redis::cmd("INFO").arg("memory"))?;
            info.nodes += 1;
            for line in text.lines() {
                let Some((k, v)) = line.trim().split_once(':') else {
                    continue;
                };
                match k {
                    "used_memory" => info.used_memory += v.parse::<u64>().unwrap_or(0),
                    "maxmemory" => info.max_memory += v.parse::<u64>().unwrap_or(0),
                    "maxmemory_policy" if info.policy.is_empty() => info.policy = v.to_owned(),
                    _ => {}
                }
            }
            Ok(())
        })?;
        Ok(info)
    }

    /// The fleet-wide counters of the namespace: every process's
    /// [`RemoteStats`](super::RemoteStats) added up when its tier is
    /// dropped, by name (see [`RemoteStats::counters`](super::RemoteStats::counters)).
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] if Redis cannot be reached or refuses.
    pub fn fleet_stats(&self) -> Result<Vec<(String, u64)>> {
        let key = format!("{}:stats", self.inner.options.namespace);
        let mut pairs: Vec<(String, u64)> = self
            .inner
            .pool
            .with(|c| c.query(redis::cmd("HGETALL").arg(&key)))
            .map_err(|e| self.maint_error(e))?;
        let order: Vec<&str> = super::RemoteStats::default()
            .counters()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        pairs.sort_by_key(|(k, _)| order.iter().position(|n| n == k).unwrap_or(usize::MAX));
        Ok(pairs)
    }
}
