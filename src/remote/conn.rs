//! Connections to Redis: a small pool of sync connections (one server or a
//! cluster), socket timeouts on every one, and the classification of
//! failures. Nothing of the `redis` crate leaves this module except the
//! command builder [`redis::Cmd`] its callers fill.
//!
//! The pool is a `Mutex<Vec<_>>` of idle connections: a call takes one (or
//! connects, within the connect timeout), runs its commands, and gives it
//! back unless the connection failed. r2d2 would add a dependency and a
//! helper thread for what these thirty lines do.
//!
//! # Timeouts
//!
//! Sync connections of the `redis` crate have no timeout unless one is set:
//! a hung server would hang the call forever. Every connection gets the
//! connect timeout for its TCP handshake (and AUTH), and the operation
//! timeout as the socket's read and write timeouts. These bound each
//! system call, not a whole reply: a large value that keeps flowing is not
//! cut off, a server that stops answering is.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Cmd, FromRedisValue};

use super::url::Target;
use crate::error::{Error, Result};
use crate::sync::lock;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// How a remote operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer in time (a hung or overloaded server, a dead network).
    Timeout,
    /// The connection could not be made or broke (server down, reset,
    /// garbage on the wire, cluster slots unavailable).
    Down,
    /// The server answered with an error (out of memory, no permission,
    /// wrong type...): it is alive, the request was refused.
    Refused,
    /// Not attempted: the circuit breaker is open.
    Skipped,
}

/// A failed remote operation: its kind and a message for the warning.
#[derive(Debug, Clone)]
pub(crate) struct RemoteError {
    pub(crate) failure: Failure,
    pub(crate) message: String,
}

impl RemoteError {
    pub(crate) fn new(failure: Failure, message: impl Into<String>) -> Self {
        RemoteError {
            failure,
            message: message.into(),
        }
    }

    fn from_redis(e: &redis::RedisError) -> Self {
        use redis::{ErrorKind as K, ServerErrorKind as S};
        let failure = if e.is_timeout() {
            Failure::Timeout
        } else {
            match e.kind() {
                K::Server(S::ClusterDown | S::MasterDown | S::BusyLoading | S::TryAgain)
                | K::Io
                | K::Parse
                | K::ClusterConnectionNotFound
                | K::Client => Failure::Down,
                _ => Failure::Refused,
            }
        };
        RemoteError::new(failure, e.to_string())
    }
}

/// Socket timeouts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) op: Duration,
}

/// One connection, to a server or to a cluster.
pub(crate) enum Conn {
    Single(redis::Connection),
    // Boxed: a cluster connection is four times a single one.
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    /// Runs one command.
    pub(crate) fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, RemoteError> {
        let r = match self {
            Conn::Single(c) => cmd.query(c),
            Conn::Cluster(c) => cmd.query(c.as_mut()),
        };
        r.map_err(|e| RemoteError::from_redis(&e))
    }
}

enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A pool of connections to one target.
pub(crate) struct Pool {
    client: Client,
    /// The first URL's settings (credentials, TLS), for connections to
    /// single nodes of a cluster.
    seed_info: redis::ConnectionInfo,
    timeouts: Timeouts,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    /// A pool for `target`; connects nothing yet.
    pub(crate) fn new(target: &Target, timeouts: Timeouts) -> Result<Pool> {
        let config = |e: redis::RedisError| {
            Error::Config(format!(
                "remote cache {}: {}",
                target.redacted(),
                e.detail().unwrap_or(e.category())
            ))
        };
        let first = match target {
            Target::Single(u) => u.as_str(),
            Target::Cluster(nodes) => nodes[0].as_str(),
        };
        let seed_info = redis::IntoConnectionInfo::into_connection_info(first).map_err(config)?;
        let client = match target {
            Target::Single(url) => {
                Client::Single(redis::Client::open(url.as_str()).map_err(config)?)
            }
            Target::Cluster(nodes) => Client::Cluster(
                redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
                    .retries(1)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.op)
                    .build()
                    .map_err(config)?,
            ),
        };
        Ok(Pool {
            client,
            seed_info,
            timeouts,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn connect(&self) -> Result<Conn, RemoteError> {
        let err = |e: redis::RedisError| RemoteError::from_redis(&e);
        match &self.client {
            Client::Single(c) => {
                let conn = c
                    .get_connection_with_timeout(self.timeouts.connect)
                    .map_err(err)?;
                conn.set_read_timeout(Some(self.timeouts.op)).map_err(err)?;
                conn.set_write_timeout(Some(self.timeouts.op))
                    .map_err(err)?;
                Ok(Conn::Single(conn))
            }
            Client::Cluster(c) => {
                let conn = c.get_connection().map_err(err)?;
                conn.set_read_timeout(Some(self.timeouts.op)).map_err(err)?;
                conn.set_write_timeout(Some(self.timeouts.op))
                    .map_err(err)?;
                Ok(Conn::Cluster(Box::new(conn)))
            }
        }
    }

    /// Runs `f` on a pooled connection (connecting if none is idle). The
    /// connection goes back to the pool unless it timed out or broke.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let pooled = lock(&self.idle).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let r = f(&mut conn);
        let reusable = match &r {
            Ok(_) => true,
            Err(e) => e.failure == Failure::Refused,
        };
        if reusable {
            let mut idle = lock(&self.idle);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        r
    }

    /// Drops every idle connection (after the server went away).
    pub(crate) fn reset(&self) {
        lock(&self.idle).clear();
    }

    /// Whether this is a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.client, Client::Cluster(_))
    }

    /// Plain connections to every master of a cluster (found with `CLUSTER
    /// SLOTS`), or to the one server. For
    /// commands that go to each node (`SCAN`, `INFO`).
    pub(crate) fn nodes(&self) -> Result<Vec<Conn>, RemoteError> {
        let Client::Cluster(_) = &self.client else {
            return Ok(vec![self.connect()?]);
        };
        let slots: redis::Value = self.with(|c| c.query(redis::cmd("CLUSTER").arg("SLOTS")))?;
        let mut addrs: Vec<(String, u16)> = Vec::new();
        if let redis::Value::Array(ranges) = slots {
            for r in ranges {
                let redis::Value::Array(fields) = r else {
                    continue;
                };
                // [start, end, [host, port, id, ...], replicas...]
                if let Some(redis::Value::Array(master)) = fields.get(2) {
                    let host = match master.first() {
                        Some(redis::Value::BulkString(h)) => {
                            String::from_utf8_lossy(h).into_owned()
                        }
                        _ => continue,
                    };
                    let port = match master.get(1) {
                        Some(redis::Value::Int(p)) => *p as u16,
                        _ => continue,
                    };
                    if !addrs.contains(&(host.clone(), port)) {
                        addrs.push((host, port));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (host, port) in addrs {
            let info = self.node_info(&host, port);
            let c = redis::Client::open(info).map_err(|e| RemoteError::from_redis(&e))?;
            let conn = c
                .get_connection_with_timeout(self.timeouts.connect)
                .map_err(|e| RemoteError::from_redis(&e))?;
            let _ = conn.set_read_timeout(Some(self.timeouts.op));
            let _ = conn.set_write_timeout(Some(self.timeouts.op));
            out.push(Conn::Single(conn));
        }
        Ok(out)
    }

    /// The connection settings of a cluster node: its address with the
    /// credentials of the seed URL.
    fn node_info(&self, host: &str, port: u16) -> redis::ConnectionInfo {
        let base = self.seed_info.clone();
        let addr = match base.addr() {
            redis::ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => redis::ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
        };
        base.set_addr(addr)
    }
}
