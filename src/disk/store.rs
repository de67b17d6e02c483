//! The store: one SQLite database in WAL mode (`<dir>/v2/entries.db`) that
//! holds the small entries whole and indexes every entry.
//!
//! # Why SQLite, and why a threshold
//!
//! Layout v1 kept every result as two files in 65,536 fan-out directories:
//! 50,000 results of 16 float64 (25 MB by its own count) took 529 MB of
//! `du`, and every open scanned the whole directory (617 ms for them). SQLite (bundled, so every machine runs
//! the same version) gives what the tier needs without a format of our own:
//! atomic multi-row transactions, crash safety (a transaction is in or out,
//! whatever instant the process dies), several processes reading while one
//! writes (WAL), and B-tree lookups by key, so reopening reads no entry.
//! Results whose `.npy` bytes exceed [`DEFAULT_SMALL_MAX_BYTES`] stay plain
//! files that numpy loads, with a row here as their index entry: above a few
//! tens of KiB a file costs little next to its data, and SQLite's own
//! measurements (<https://www.sqlite.org/intern-v-extern-blob.html>) put the
//! point where files start to read faster near 100 KiB with 4 KiB pages.
//!
//! # Schema (`PRAGMA user_version = 2`)
//!
//! ```sql
//! CREATE TABLE entries (
//!     key   BLOB PRIMARY KEY NOT NULL, -- the call key, 16 bytes, big-endian
//!     atime INTEGER NOT NULL,          -- last access, ns since the epoch
//!     bytes INTEGER NOT NULL,          -- what it counts toward the budget
//!     meta  BLOB,                      -- small: its metadata (row_meta.rs)
//!     data  BLOB                       -- small: the array's bytes, no header;
//! ) WITHOUT ROWID;                     --  NULL: a large entry, in files
//! CREATE INDEX entries_atime ON entries(atime);
//! CREATE TABLE totals (id INTEGER PRIMARY KEY, entries INTEGER, bytes INTEGER,
//!                      small_bytes INTEGER); -- bytes of the small entries
//! -- kept by triggers on insert and delete, so `stats` reads one row
//! CREATE TABLE touches (key BLOB NOT NULL, atime INTEGER NOT NULL);
//! -- the access log: hits appended, folded into `atime` (see below)
//! ```
//!
//! A small entry's meta is a compact binary record (format in the
//! `row_meta.rs` docs: about 50 bytes, where the sidecar's text took about
//! 330, which made the rows, the file and every B-tree walk twice as
//! large). Its checksum is the xxh3-128 of the `.npy` file it stands for:
//! the header that its dtype and shape give, then `data`. So a damaged
//! `data`, or a meta whose dtype or shape changed, fails verification, and
//! `ndcache export` writes a file whose checksum is the recorded one.
//!
//! Schema version 1 (ndcache before the binary meta) kept the meta as
//! sidecar text. A writable tier that opens such a store drops its tables
//! and creates version 2 in one transaction (small entries are lost:
//! misses; large ones are indexed again from their files in the
//! background); a read-only view does not read it. A row a version-1
//! writer still inserts afterwards has a text meta, which fails parsing: a
//! counted miss, removed, never misread.
//!
//! # Consistency with the large entries' files
//!
//! The files are the truth for large entries; their rows are an index. A
//! writer renames the payload, then the sidecar, then inserts the row; an
//! eviction removes the sidecar, the payload, then the row. A crash between
//! two of those steps leaves a row without files (a lookup finds nothing and
//! drops the row) or files without a row (a lookup that misses the store
//! looks for the sidecar, serves the verified entry and indexes it; `gc` and
//! `verify` index them all). A store that is missing or damaged is rebuilt:
//! a damaged one is renamed aside, and the large entries are indexed again by
//! a scan in a background thread (small entries are lost: misses).
//!
//! Last-access times of hits are recorded with a granularity of a minute
//! by default ([`DEFAULT_ACCESS_GRANULARITY`]), buffered in memory and written in batches (with
//! the next write, every [`TOUCH_BATCH`] hits, and on `flush`), so a hit
//! reads and almost never writes; another process sees them after that.
//!
//! They are written to an append-only access log (`touches`), not to the
//! rows: updating a row's `atime` rewrites a random page of the table and
//! one of its index, which made a hit at 10^6 entries cost 36 µs of CPU
//! instead of 10 (the scaling example hits each entry once, a minute after
//! writing it); appending costs a page per hundred hits. The log is folded
//! into the rows (one `UPDATE` in key order, the latest time per key)
//! before every eviction and whenever it reaches [`FOLD_AT`] records, so
//! eviction order is exactly as if the rows had been updated. `ls` reads
//! the log too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};
use crate::key::Fingerprint;
use crate::sync::lock;

/// Results whose `.npy` bytes (header and data) are at most this many go to
/// the store; larger ones are files. See the module docs for the choice.
pub const DEFAULT_SMALL_MAX_BYTES: u64 = 64 * 1024;

/// Hits buffered before their access times are written.
pub(crate) const TOUCH_BATCH: usize = 1024;

/// Records of the access log folded into the rows at once (at most about
/// 0.5 MiB of log).
pub(crate) const FOLD_AT: i64 = 16_384;

/// By default a hit records its time only if the entry's recorded last
/// access is older than this (as `relatime` does for files): a recorded hit
/// is a record in the access log, and later a random page write when the
/// log is folded into the rows (see the module docs). Eviction order among
/// entries used within the same minute is then their write order. See [`DiskTierBuilder::access_granularity`](super::DiskTierBuilder::access_granularity).
pub const DEFAULT_ACCESS_GRANULARITY: Duration = Duration::from_secs(60);

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE entries (
    key BLOB PRIMARY KEY NOT NULL,
    atime INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    meta BLOB,
    data BLOB
) WITHOUT ROWID;
CREATE INDEX entries_atime ON entries(atime);
CREATE TABLE totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    small_bytes INTEGER NOT NULL
);
INSERT INTO totals VALUES (0, 0, 0, 0);
CREATE TABLE touches (key BLOB NOT NULL, atime INTEGER NOT NULL);
CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.bytes,
        small_bytes = small_bytes + iif(NEW.data IS NULL, 0, NEW.bytes) WHERE id = 0;
END;
CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.bytes,
        small_bytes = small_bytes - iif(OLD.data IS NULL, 0, OLD.bytes) WHERE id = 0;
END;
";

/// How long a connection waits for another process's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes a small entry's row costs beyond its meta and data: the key (in the
/// table and in the `atime` index), the index entry, record headers, B-tree
/// cell pointers and the free space SQLite leaves in pages (measured with the
/// scaling example: 283 bytes of database per entry of 16 float64, whose
/// meta and data are 175 bytes, at 10^5 and at 10^6 entries alike).
pub(crate) const ROW_OVERHEAD: u64 = 108;

/// What a small entry counts toward the budget. Past about 1 KiB a row
/// spills into overflow pages of 4 KiB, whose last one is partly empty.
pub(crate) fn row_bytes(meta_len: usize, data_len: usize) -> u64 {
    let len = (meta_len + data_len) as u64;
    if len <= 1000 {
        len + ROW_OVERHEAD
    } else {
        super::layout::on_disk(len, 4092) + ROW_OVERHEAD
    }
}

/// One row as read.
#[derive(Debug)]
pub(crate) enum Row {
    /// A small entry: its meta record (`row_meta.rs`) and the array's bytes.
    Small { meta: Vec<u8>, data: Vec<u8> },
    /// A large entry: only indexed here.
    File,
    /// A row that is neither (damaged).
    Damaged,
}

/// A row to insert.
#[derive(Debug)]
pub(crate) struct NewRow {
    pub key: Fingerprint,
    pub atime: SystemTime,
    pub bytes: u64,
    /// `Some` for a small entry.
    pub small: Option<(Vec<u8>, Vec<u8>)>,
}

/// One row listed by [`Store::for_each`].
#[derive(Debug)]
pub(crate) struct Listed {
    pub key: Fingerprint,
    pub atime: SystemTime,
    pub bytes: u64,
    pub row: Row,
}

/// The SQLite store; see the module docs.
pub(crate) struct Store {
    path: PathBuf,
    read_only: bool,
    /// Open connections not in use (a connection serves one thread at a time).
    pool: Mutex<Vec<Connection>>,
    /// Buffered access times of hits.
    touches: Mutex<Vec<(Fingerprint, i64)>>,
    /// Access times this process logged since its last fold: a hit within
    /// the granularity of one of them is not logged again.
    logged: Mutex<HashMap<Fingerprint, i64>>,
    /// See [`DEFAULT_ACCESS_GRANULARITY`].
    granularity: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Why a store could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The file is not a database, or is damaged: rename it aside.
    Damaged(Error),
    /// Anything else (permissions, a newer schema): leave it alone.
    Other(Error),
}

impl Store {
    /// Opens (creating if `!read_only` and absent) the store at `path`; the
    /// flag says whether its tables were just created (a new store, or one
    /// of an earlier schema replaced: see the module docs).
    pub fn open(
        path: &Path,
        read_only: bool,
        granularity: Duration,
    ) -> Result<(Store, bool), OpenError> {
        let store = Store {
            path: path.to_path_buf(),
            granularity,
            read_only,
            pool: Mutex::new(Vec::new()),
            touches: Mutex::new(Vec::new()),
            logged: Mutex::new(HashMap::new()),
        };
        let mut conn = store.connect().map_err(|e| store.classify(e))?;
        let created = store.ensure_schema(&mut conn)?;
        lock(&store.pool).push(conn);
        Ok((store, created))
    }

    fn classify(&self, e: rusqlite::Error) -> OpenError {
        let damaged = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
        );
        let e = self.error("open", e);
        if damaged {
            OpenError::Damaged(e)
        } else {
            OpenError::Other(e)
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        connect(&self.path, self.read_only)
    }

    /// Creates the tables in a new database, or replaces those of schema
    /// version 1 (see the module docs); checks the version of any other.
    /// Returns whether the tables were created (the store is empty).
    fn ensure_schema(&self, conn: &mut Connection) -> Result<bool, OpenError> {
        let c = |e| self.classify(e);
        let version =
            |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
        let v = version(conn).map_err(c)?;
        if (v == 0 || v == 1) && !self.read_only {
            if v == 0 {
                // Page reuse and `incremental_vacuum` need this before any table.
                conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
                    .map_err(c)?;
            }
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .map_err(c)?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(c)?;
            // Another process may have done it meanwhile.
            let created = match version(&tx).map_err(c)? {
                0 => true,
                1 => {
                    tx.execute_batch("DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS totals;")
                        .map_err(c)?;
                    true
                }
                _ => false,
            };
            if created {
                tx.execute_batch(SCHEMA).map_err(c)?;
                tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                    .map_err(c)?;
            }
            tx.commit().map_err(c)?;
            return Ok(created);
        }
        if v != SCHEMA_VERSION && !(v == 0 && self.read_only) {
            return Err(OpenError::Other(Error::io(
                "open",
                &self.path,
                std::io::Error::other(format!(
                    "the store's schema version is {v}, this ndcache reads version {SCHEMA_VERSION}"
                )),
            )));
        }
        Ok(false)
    }

    fn error(&self, action: &'static str, e: rusqlite::Error) -> Error {
        Error::io(action, &self.path, std::io::Error::other(e.to_string()))
    }

    /// Runs `f` on a pooled connection.
    fn with<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = lock(&self.pool).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => self.connect().map_err(|e| self.error(action, e))?,
        };
        let out = f(&mut conn).map_err(|e| self.error(action, e));
        lock(&self.pool).push(conn);
        out
    }

    /// The row of `key` and its recorded last access, if any.
    pub fn get(&self, key: Fingerprint) -> Result<Option<(Row, SystemTime)>> {
        self.with("read", |c| {
            c.prepare_cached("SELECT meta, data, atime FROM entries WHERE key = ?1")?
                .query_row([blob(key)], |r| {
                    let meta: Option<Vec<u8>> = r.get(0).unwrap_or(None);
                    let data: Option<Vec<u8>> = r.get(1).unwrap_or(None);
                    let row = match (meta, data) {
                        (Some(meta), Some(data)) => Row::Small { meta, data },
                        (None, None) => Row::File,
                        _ => Row::Damaged,
                    };
                    Ok((row, time_of(r.get(2).unwrap_or(0))))
                })
                .optional()
        })
    }

    /// Whether `key` has a row.
    pub fn contains(&self, key: Fingerprint) -> Result<bool> {
        self.with("read", |c| {
            c.prepare_cached("SELECT 1 FROM entries WHERE key = ?1")?
                .exists([blob(key)])
        })
    }

    /// Inserts `rows` (keeping a row already there: entries are immutable)
    /// and the buffered access times, in one transaction. Returns, per row,
    /// whether it was inserted.
    pub fn insert(&self, rows: &[NewRow]) -> Result<Vec<bool>> {
        let touches = std::mem::take(&mut *lock(&self.touches));
        self.with("write", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut done = Vec::with_capacity(rows.len());
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR IGNORE INTO entries (key, atime, bytes, meta, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for r in rows {
                    let (meta, data) = match &r.small {
                        Some((m, d)) => (Some(m.as_slice()), Some(d.as_slice())),
                        None => (None, None),
                    };
                    let n = ins.execute(params![
                        blob(r.key),
                        nanos(r.atime),
                        to_i64(r.bytes),
                        meta,
                        data
                    ])?;
                    done.push(n == 1);
                }
                apply_touches(&tx, &touches)?;
            }
            tx.commit()?;
            Ok(done)
        })
    }

    /// Records a hit's access time (written later, in a batch) if the
    /// recorded one, `last` (or one this process logged since), is older
    /// than the granularity.
    pub fn touch(&self, key: Fingerprint, last: SystemTime, when: SystemTime) {
        let now = nanos(when);
        let full = {
            let mut logged = lock(&self.logged);
            let last = logged.get(&key).copied().unwrap_or(0).max(nanos(last));
            let granularity = i64::try_from(self.granularity.as_nanos()).unwrap_or(i64::MAX);
            if now.saturating_sub(last) < granularity {
                return;
            }
            if logged.len() as i64 >= 4 * FOLD_AT {
                logged.clear(); // folded by other processes, most likely
            }
            logged.insert(key, now);
            let mut t = lock(&self.touches);
            t.push((key, now));
            t.len() >= TOUCH_BATCH
        };
        if full {
            self.write_touches();
        }
    }

    /// Writes the buffered access times to the log (errors are ignored:
    /// they only make the order of evictions less exact).
    pub fn write_touches(&self) {
        let touches = std::mem::take(&mut *lock(&self.touches));
        if touches.is_empty() || self.read_only {
            return;
        }
        let _ = self.with("write", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            apply_touches(&tx, &touches)?;
            tx.commit()
        });
    }

    /// Writes the buffered access times and folds the whole access log into
    /// the rows, so that their `atime` is every process's last access.
    fn fold_touches(&self) -> Result<()> {
        let touches = std::mem::take(&mut *lock(&self.touches));
        if self.read_only {
            return Ok(());
        }
        lock(&self.logged).clear();
        self.with("write", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            apply_touches(&tx, &touches)?;
            fold(&tx)?;
            tx.commit()
        })
    }

    /// The latest logged access of each key in the access log.
    fn logged_times(&self, c: &Connection) -> rusqlite::Result<HashMap<Fingerprint, i64>> {
        let mut st = c.prepare("SELECT key, max(atime) FROM touches GROUP BY key")?;
        let rows = st.query_map([], |r| Ok((key_of(&r.get::<_, Vec<u8>>(0)?), r.get(1)?)))?;
        rows.collect()
    }

    /// Removes the row of `key`; returns whether there was one.
    pub fn remove(&self, key: Fingerprint) -> Result<bool> {
        self.with("write", |c| {
            Ok(c.prepare_cached("DELETE FROM entries WHERE key = ?1")?
                .execute([blob(key)])?
                == 1)
        })
    }

    /// Removes the rows of `keys` in one transaction; returns how many were
    /// there.
    pub fn remove_many(&self, keys: &[Fingerprint]) -> Result<u64> {
        self.with("write", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut n = 0;
            {
                let mut del = tx.prepare_cached("DELETE FROM entries WHERE key = ?1")?;
                for k in keys {
                    n += del.execute([blob(*k)])? as u64;
                }
            }
            tx.commit()?;
            Ok(n)
        })
    }

    /// The number of entries and their bytes.
    pub fn totals(&self) -> Result<(u64, u64)> {
        self.with("read", |c| {
            c.prepare_cached("SELECT entries, bytes FROM totals WHERE id = 0")?
                .query_row([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?.max(0) as u64,
                        r.get::<_, i64>(1)?.max(0) as u64,
                    ))
                })
        })
    }

    /// Up to `limit` entries, least recently used first: key, bytes, atime
    /// and whether it is a large entry.
    pub fn oldest(&self, limit: usize) -> Result<Vec<(Fingerprint, u64, SystemTime, bool)>> {
        self.fold_touches()?;
        self.with("read", |c| {
            let mut st = c.prepare_cached(
                "SELECT key, bytes, atime, data IS NULL FROM entries ORDER BY atime, key LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok((
                    key_of(&r.get::<_, Vec<u8>>(0)?),
                    r.get::<_, i64>(1)?.max(0) as u64,
                    time_of(r.get(2)?),
                    r.get::<_, bool>(3)?,
                ))
            })?;
            rows.collect()
        })
    }

    /// Calls `f` on every row in key order (with `data` only if
    /// `with_data`; `Row::Small` then has an empty `data`).
    pub fn for_each(&self, with_data: bool, mut f: impl FnMut(Listed)) -> Result<()> {
        self.write_touches();
        self.with("list", |c| {
            let logged = self.logged_times(c)?;
            let sql = if with_data {
                "SELECT key, atime, bytes, meta, data, data IS NULL FROM entries ORDER BY key"
            } else {
                "SELECT key, atime, bytes, meta, NULL, data IS NULL FROM entries ORDER BY key"
            };
            let mut st = c.prepare(sql)?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let meta: Option<Vec<u8>> = r.get(3).unwrap_or(None);
                let data: Option<Vec<u8>> = r.get(4).unwrap_or(None);
                let is_file: bool = r.get(5)?;
                let row = match (meta, is_file) {
                    (None, true) => Row::File,
                    (Some(meta), false) => Row::Small {
                        meta,
                        data: data.unwrap_or_default(),
                    },
                    _ => Row::Damaged,
                };
                let key = key_of(&r.get::<_, Vec<u8>>(0)?);
                let atime = r
                    .get::<_, i64>(1)?
                    .max(logged.get(&key).copied().unwrap_or(0));
                f(Listed {
                    key,
                    atime: time_of(atime),
                    bytes: r.get::<_, i64>(2)?.max(0) as u64,
                    row,
                });
            }
            Ok(())
        })
    }

    /// The keys of the large entries' rows.
    pub fn file_keys(&self) -> Result<Vec<Fingerprint>> {
        self.with("list", |c| {
            let mut st = c.prepare("SELECT key FROM entries WHERE data IS NULL")?;
            let rows = st.query_map([], |r| Ok(key_of(&r.get::<_, Vec<u8>>(0)?)))?;
            rows.collect()
        })
    }

    /// Removes every row; returns how many there were.
    pub fn clear(&self) -> Result<u64> {
        lock(&self.touches).clear();
        lock(&self.logged).clear();
        self.with("write", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("DELETE FROM entries", [])? as u64;
            tx.execute("DELETE FROM touches", [])?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// The bytes counted for the small entries (rows in the file).
    pub fn small_bytes(&self) -> Result<u64> {
        self.with("read", |c| {
            c.prepare_cached("SELECT small_bytes FROM totals WHERE id = 0")?
                .query_row([], |r| Ok(r.get::<_, i64>(0)?.max(0) as u64))
        })
    }

    /// Gives the pages of removed rows back to the file system and empties
    /// the write-ahead log (waiting for readers, at most the busy timeout).
    /// If the live pages take more than the small entries count
    /// (`small_bytes`, with 3% and [`SHRINK_SLACK`] of tolerance: pages left
    /// sparse by removals spread over the whole key range), rewrites the
    /// file compactly (`VACUUM`, which costs its live pages; a compacted
    /// file takes less than the count, calibrated on files filled in
    /// random key order).
    pub fn shrink(&self, small_bytes: u64) -> Result<()> {
        self.with("shrink", |c| {
            // Each step frees one page: run it to the end.
            let mut st = c.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            drop(rows);
            drop(st);
            let pages = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            let live = (pages("PRAGMA page_count")? - pages("PRAGMA freelist_count")?).max(0)
                as u64
                * pages("PRAGMA page_size")?.max(0) as u64;
            if live > small_bytes + small_bytes / 32 + SHRINK_SLACK {
                c.execute_batch("VACUUM")?;
            }
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        })?;
        self.close_idle();
        Ok(())
    }

    /// Closes the connections not in use. When no other connection (of any
    /// process) is open, SQLite then removes the write-ahead log and the
    /// shared-memory file, which never shrinks while open (it grows with
    /// the log: 1 MiB after a large `gc`). The next use reconnects.
    pub fn close_idle(&self) {
        let idle = std::mem::take(&mut *lock(&self.pool));
        drop(idle);
    }

    /// What the store's files occupy: the database, its write-ahead log
    /// and its shared memory, each rounded up to whole blocks of `block`.
    pub fn footprint(&self, block: u64) -> u64 {
        ["", "-wal", "-shm"]
            .iter()
            .map(|ext| {
                let mut p = self.path.clone().into_os_string();
                p.push(ext);
                std::fs::metadata(&p).map_or(0, |m| super::layout::on_disk(m.len(), block))
            })
            .sum()
    }
}

/// Live pages beyond the small entries' count that `shrink` tolerates
/// before rewriting the file: the schema's and the index's first pages.
const SHRINK_SLACK: u64 = 64 << 10;

/// The store's fixed overhead, outside the budget: an empty store's pages
/// (schema, table and index roots: a few pages), [`SHRINK_SLACK`], and the
/// 32 KiB shared-memory file. `gc` keeps the store's files within the
/// small entries' count plus this.
pub(crate) const STORE_FIXED: u64 = SHRINK_SLACK + (64 << 10);

impl Drop for Store {
    fn drop(&mut self) {
        self.write_touches();
        // Empty the write-ahead log if no other process is using it, so
        // that the next open has no log to recover (a 2.9 MiB log made an
        // open at 10^6 entries take 94 ms); never wait for that.
        if !self.read_only {
            if let Some(c) = lock(&self.pool).first() {
                if c.busy_timeout(Duration::ZERO).is_ok() {
                    let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                }
            }
        }
    }
}

/// Opens a connection to the store at `path` with the tier's settings.
fn connect(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = if read_only {
        let ro = flags | OpenFlags::SQLITE_OPEN_READ_ONLY;
        let immutable = || {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, ro)
        };
        // Without a write-ahead log, everything is in the database file,
        // and opening it immutable creates no -wal or -shm file (a
        // read-only view must not write). With one (a writer is at work,
        // or died), its files exist already: read them too. In a
        // directory we cannot write, the shared memory cannot be
        // created: no one writes there, so the file is immutable.
        let mut wal = path.to_path_buf().into_os_string();
        wal.push("-wal");
        if Path::new(&wal).exists() {
            Connection::open_with_flags(path, ro)
                .and_then(|c| {
                    c.query_row("PRAGMA user_version", [], |_| Ok(()))
                        .map(|_| c)
                })
                .or_else(|_| immutable())?
        } else {
            immutable()?
        }
    } else {
        Connection::open_with_flags(
            path,
            flags | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL: a WAL commit does not wait for the disk; a power loss may
    // lose the last transactions, never consistency (and a lost entry is
    // a miss). The mmap (up to SQLite's 2 GiB default limit) makes hits
    // read pages without a system call or a copy: with 256 MiB, a hit at
    // 10^6 entries (580 MB) cost 4 times one at 10^5 (scaling example).
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -8192; \
         PRAGMA mmap_size = 2147418112; PRAGMA journal_size_limit = 1048576;",
    )?;
    Ok(conn)
}

/// Appends `touches` to the access log; folds the log when it is long.
fn apply_touches(tx: &Connection, touches: &[(Fingerprint, i64)]) -> rusqlite::Result<()> {
    if touches.is_empty() {
        return Ok(());
    }
    let mut ins = tx.prepare_cached("INSERT INTO touches (key, atime) VALUES (?1, ?2)")?;
    for (k, t) in touches {
        ins.execute(params![blob(*k), t])?;
    }
    // Row ids count from 1 again once the log is emptied: the last one is
    // about the log's length.
    if tx.last_insert_rowid() >= FOLD_AT {
        fold(tx)?;
    }
    Ok(())
}

/// Moves the access log into the rows' `atime` (the latest per key, in key
/// order) and empties it.
fn fold(tx: &Connection) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE entries SET atime = t.atime \
         FROM (SELECT key, max(atime) AS atime FROM touches GROUP BY key) AS t \
         WHERE entries.key = t.key AND entries.atime < t.atime",
    )?
    .execute([])?;
    tx.prepare_cached("DELETE FROM touches")?.execute([])?;
    Ok(())
}

/// `key` as stored: 16 bytes, big-endian, so that rows sort like hex keys.
fn blob(key: Fingerprint) -> [u8; 16] {
    key.as_u128().to_be_bytes()
}

fn key_of(b: &[u8]) -> Fingerprint {
    let mut a = [0u8; 16];
    let n = b.len().min(16);
    a[16 - n..].copy_from_slice(&b[b.len() - n..]);
    Fingerprint::from_u128(u128::from_be_bytes(a))
}

pub(crate) fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn time_of(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A path as the path part of a `file:` URI (`%`, `?` and `#` escaped).
fn uri_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}
