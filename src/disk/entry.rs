//! Reading, verifying, writing and removing one entry.
//!
//! A small entry is one row of the store (see [`super::store`]): its sidecar
//! text and its array's bytes, inserted in one transaction, so it is there
//! whole or not at all, and verified on every read like a file entry.
//!
//! # Write protocol of a large entry
//!
//! The payload and the sidecar are written to temporary files in the entry's
//! own fan-out directory, then renamed into place: the payload first, the
//! sidecar last; its index row in the store comes after. A reader opens the sidecar first, so it sees either no
//! entry or a complete one. Nothing is synced: the miss path never waits for
//! the disk. After a crash a renamed file may be empty or stale, which the
//! checksum on every read turns into a miss, never into a wrong result.
//!
//! Entries are immutable: if the sidecar is already there (another process
//! wrote the entry), nothing is written. Two processes that write the same
//! key at once without a lock both rename into place; with a deterministic
//! kernel their files are identical, and otherwise a reader may see a
//! payload that does not match the sidecar, which is a miss (and the entry
//! is removed), not a wrong hit.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::sign::Digests;

use super::layout::{on_disk, FileStat};
use super::meta::{EntryInfo, EntryMeta, MAX_SIDECAR_BYTES};
use super::npy::{self, NpyError};
use super::row_meta;
use super::stats::Counters;
use super::store::{self, NewRow, Row};
use super::Inner;
use crate::error::{Error, Result};
use crate::key::Fingerprint;
use crate::value::AnyArray;

/// A payload without a sidecar younger than this may be a write in
/// progress (renamed payload, sidecar about to follow); older, it is an orphan.
pub(crate) const ORPHAN_GRACE: Duration = Duration::from_secs(10 * 60);

/// A temporary file not modified for this long belongs to a dead writer.
pub(crate) const TEMP_GRACE: Duration = Duration::from_secs(60 * 60);

/// Why an entry could not be served.
#[derive(Debug)]
pub(crate) enum Miss {
    /// There is no (complete) entry.
    Absent,
    /// The entry is damaged; the reason says how.
    Corrupt(String),
    /// The entry could not be read (permissions...); it may be fine.
    Io(Error),
    /// Entries are signed and this one's signature is missing or wrong: no
    /// holder of the secret wrote it.
    Forged(String),
    /// The store indexes a large entry whose files are gone (a crash
    /// between removals, or a user's `rm`): drop the row.
    Stale,
}

/// What the MAC of a disk entry starts with.
const MAC_DOMAIN: &str = "ndcache disk entry v1";

/// A successfully read entry.
pub(crate) struct Loaded {
    pub meta: EntryMeta,
    /// `None` when only verifying.
    pub array: Option<AnyArray>,
    /// What it counts toward the budget.
    pub bytes: u64,
    /// The recorded last access, if the store has its row (a large entry
    /// may lack one).
    pub indexed: Option<SystemTime>,
}

/// What a write did.
#[derive(Debug)]
pub(crate) enum Written {
    /// The row to insert (a small entry, or a large one's index row).
    New(NewRow),
    Exists,
    TooBig,
}

impl Inner {
    /// Reads and verifies the entry of `key`, from the store or its files.
    /// With `!unindexed`, a key without a row is a miss without looking for
    /// its files (a large entry not indexed yet: see the `store.rs` docs).
    pub(crate) fn load(
        &self,
        key: Fingerprint,
        want_array: bool,
        unindexed: bool,
    ) -> Result<Loaded, Miss> {
        let row = match &self.store {
            Some(store) => store.get(key).map_err(Miss::Io)?,
            None => None,
        };
        match row {
            Some((Row::Small { meta, data }, atime)) => self
                .load_small(key, &meta, data, want_array)
                .map(|l| Loaded {
                    indexed: Some(atime),
                    ..l
                }),
            Some((Row::Damaged, _)) => Err(Miss::Corrupt(
                "the store's row is neither a small entry nor an index entry".into(),
            )),
            Some((Row::File, atime)) => match self.load_files(key, want_array) {
                Err(Miss::Absent) => Err(Miss::Stale),
                Ok(l) => Ok(Loaded {
                    indexed: Some(atime),
                    ..l
                }),
                other => other,
            },
            None if unindexed || self.store.is_none() => self.load_files(key, want_array),
            None => Err(Miss::Absent),
        }
    }

    /// Verifies a small entry: its meta record, the length of its data, and
    /// the checksum (and signature) of the `.npy` file it stands for.
    pub(crate) fn load_small(
        &self,
        key: Fingerprint,
        rec: &[u8],
        data: Vec<u8>,
        want_array: bool,
    ) -> Result<Loaded, Miss> {
        let (meta, signed_len) = row_meta::decode(key, rec).map_err(Miss::Corrupt)?;
        self.check_signed(&meta)?;
        let header = npy::header_bytes(meta.dtype, &meta.shape);
        let len = (header.len() + data.len()) as u64;
        if len != meta.payload_bytes {
            return Err(Miss::Corrupt(format!(
                "the stored entry is {len} bytes long as .npy, its meta says {}",
                meta.payload_bytes
            )));
        }
        let mut hasher = Digests::new(self.signer.as_ref().map(|s| s.mac(MAC_DOMAIN)));
        hasher.update(&header);
        hasher.update(&data);
        let key_bytes = row_meta::key_bytes(key);
        self.check_digests(hasher, &meta, &[&key_bytes, &rec[..signed_len]])?;
        let array = if want_array {
            Some(
                npy::array_from_bytes(meta.dtype, &meta.shape, &data).ok_or_else(|| {
                    Miss::Corrupt("the stored data does not fit its shape".into())
                })?,
            )
        } else {
            None
        };
        Ok(Loaded {
            bytes: store::row_bytes(rec.len(), data.len()),
            meta,
            array,
            indexed: None,
        })
    }

    /// A missing signature is forgery when entries must be signed.
    fn check_signed(&self, meta: &EntryMeta) -> Result<(), Miss> {
        if self.signer.is_some() && meta.signature.is_none() {
            return Err(Miss::Forged("the entry is not signed".into()));
        }
        Ok(())
    }

    /// Parses a sidecar text and checks that it is for `key` (and signed,
    /// if entries must be).
    fn check_meta(&self, key: Fingerprint, text: &str) -> Result<EntryMeta, Miss> {
        let meta = EntryMeta::parse(text).map_err(Miss::Corrupt)?;
        self.check_signed(&meta)?;
        if meta.key != key {
            return Err(Miss::Corrupt(format!(
                "the sidecar is for key {}",
                meta.key
            )));
        }
        Ok(meta)
    }

    /// Compares the digests of a payload with its metadata's checksum and
    /// signature; `signed` is what the signature covers after the payload.
    fn check_digests(
        &self,
        hasher: Digests,
        meta: &EntryMeta,
        signed: &[&[u8]],
    ) -> Result<(), Miss> {
        if hasher.xxh3.digest128() != meta.checksum {
            return Err(Miss::Corrupt("the payload checksum does not match".into()));
        }
        if let (Some(mut mac), Some(tag)) = (hasher.mac, &meta.signature) {
            for part in signed {
                mac.update(part);
            }
            if !mac.verify(tag) {
                return Err(Miss::Forged("the signature does not match".into()));
            }
        }
        Ok(())
    }

    /// Reads and verifies a large entry's files: sidecar, payload length,
    /// `.npy` header against the sidecar, and the checksum of the whole
    /// payload.
    fn load_files(&self, key: Fingerprint, want_array: bool) -> Result<Loaded, Miss> {
        let sc_path = self.layout.sidecar(key);
        let mut sidecar = match File::open(&sc_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Miss::Absent),
            Err(e) => return Err(Miss::Io(Error::io("open", &sc_path, e))),
        };
        let mut text = String::new();
        match (&mut sidecar)
            .take(MAX_SIDECAR_BYTES + 1)
            .read_to_string(&mut text)
        {
            Ok(n) if n as u64 > MAX_SIDECAR_BYTES => {
                return Err(Miss::Corrupt("the sidecar is too large".into()))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(Miss::Corrupt("the sidecar is not UTF-8 text".into()))
            }
            Err(e) => return Err(Miss::Io(Error::io("read", &sc_path, e))),
        }
        drop(sidecar);
        let meta = self.check_meta(key, &text)?;
        let pl_path = self.layout.payload(key);
        let payload = match File::open(&pl_path) {
            Ok(f) => f,
            // The sidecar may have been removed (eviction) between our two
            // opens; only a sidecar still there without payload is damage.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if sc_path.exists() {
                    Miss::Corrupt("the payload is missing".into())
                } else {
                    Miss::Absent
                });
            }
            Err(e) => return Err(Miss::Io(Error::io("open", &pl_path, e))),
        };
        let len = payload
            .metadata()
            .map_err(|e| Miss::Io(Error::io("read the metadata of", &pl_path, e)))?
            .len();
        if len != meta.payload_bytes {
            return Err(Miss::Corrupt(format!(
                "the payload is {len} bytes long, the sidecar says {}",
                meta.payload_bytes
            )));
        }
        let from_npy = |e: NpyError| match e {
            NpyError::Format(reason) => Miss::Corrupt(reason),
            NpyError::Io(action, e) => Miss::Io(Error::io(action, &pl_path, e)),
        };
        let mut f = npy::from_file(payload, len).map_err(from_npy)?;
        let h = &f.header;
        if h.dtype != meta.dtype
            || h.big_endian != cfg!(target_endian = "big")
            || h.fortran_order
            || h.shape != meta.shape
            || f.prefix.len() as u64 + f.data_len != len
        {
            return Err(Miss::Corrupt(format!(
                "the payload header ({} {:?}) does not match the sidecar ({} {:?})",
                h.dtype, h.shape, meta.dtype, meta.shape
            )));
        }
        let mut hasher = Digests::new(self.signer.as_ref().map(|s| s.mac(MAC_DOMAIN)));
        hasher.update(&f.prefix);
        let array = if want_array {
            Some(f.read_array(Some(&mut hasher)).map_err(from_npy)?)
        } else {
            hash_stream(&mut f.file, f.data_len, &mut hasher)
                .map_err(|e| from_npy(NpyError::Io("read", e)))?;
            None
        };
        self.check_digests(hasher, &meta, &[super::meta::signed_body(&text).as_bytes()])?;
        Ok(Loaded {
            bytes: on_disk(len, self.block) + on_disk(text.len() as u64, self.block),
            meta,
            array,
            indexed: None,
        })
    }

    /// Removes an entry: a large one's files (sidecar first, so it stops
    /// being visible), then its row. Returns whether anything was removed.
    pub(crate) fn remove_files(&self, key: Fingerprint) -> bool {
        let a = fs::remove_file(self.layout.sidecar(key)).is_ok();
        let b = fs::remove_file(self.layout.payload(key)).is_ok();
        let c = self
            .store
            .as_ref()
            .is_some_and(|s| s.remove(key).unwrap_or(false));
        a || b || c
    }

    /// Writes the entry (see the module docs for the protocol).
    ///
    /// `locked`: whether the caller holds the key's lock. If not, it is
    /// taken here from before the payload is renamed into place until
    /// after the sidecar is, so that no reader, `gc` or `verify` takes the
    /// payload found between the two renames for an orphan and removes it
    /// ([`Inner::payload_state`]): a reader did, under load, and the
    /// entry was lost (a sidecar without its payload).
    pub(crate) fn write_entry(
        &self,
        key: Fingerprint,
        value: &AnyArray,
        info: &EntryInfo,
        locked: bool,
    ) -> Result<Written> {
        let header_len = npy::header_bytes(value.dtype(), value.shape()).len();
        let payload_len = header_len as u64 + value.nbytes();
        let small = payload_len <= self.small_max_bytes && self.store.is_some();
        if let Some(max) = self.max_bytes {
            // The sidecar is a few hundred bytes; count it generously.
            let meta_len = 512 + info.kernel.len() + info.version.len();
            let bytes = if small {
                store::row_bytes(meta_len, value.nbytes() as usize)
            } else {
                on_disk(payload_len, self.block) + on_disk(meta_len as u64, self.block)
            };
            if bytes > max {
                return Ok(Written::TooBig);
            }
        }
        if small {
            return Ok(Written::New(self.small_row(key, value, info, header_len)));
        }
        let sc_path = self.layout.sidecar(key);
        if sc_path.exists() {
            return Ok(Written::Exists);
        }
        let dir = self.layout.fan_dir(key);
        let stem = key.to_string();
        let mut temps = Temps::default();

        let (tmp, mut file) = create_temp_in(&dir, &stem)?;
        temps.0.push(tmp.clone());
        let mut digests = Digests::new(self.signer.as_ref().map(|s| s.mac(MAC_DOMAIN)));
        let len = npy::write_array_digests(&mut file, value, &mut digests)
            .map_err(|e| Error::io("write", &tmp, e))?;
        let checksum = digests.xxh3.digest128();
        drop(file);

        let text = sidecar_text(key, value, info, checksum, len, digests.mac);
        let (tmp_sc, mut sc) = create_temp_in(&dir, &stem)?;
        temps.0.push(tmp_sc.clone());
        sc.write_all(text.as_bytes())
            .map_err(|e| Error::io("write", &tmp_sc, e))?;
        // The sidecar's mtime is the entry's last-access time. File systems
        // stamp writes with a coarse clock (a few ms); hits stamp it with
        // `SystemTime::now()`, so stamp the write with the same clock to keep
        // the LRU order exact.
        let written_at = SystemTime::now();
        let _ = sc.set_modified(written_at);
        drop(sc);

        let _guard = if locked {
            None
        } else {
            self.lock_for_renames(key)
        };
        let pl_path = self.layout.payload(key);
        fs::rename(&tmp, &pl_path).map_err(|e| Error::io("rename a file to", &pl_path, e))?;
        temps.0[0] = pl_path;
        fs::rename(&tmp_sc, &sc_path).map_err(|e| Error::io("rename a file to", &sc_path, e))?;
        temps.0.clear();
        Ok(Written::New(NewRow {
            key,
            atime: written_at,
            bytes: on_disk(len, self.block) + on_disk(text.len() as u64, self.block),
            small: None,
        }))
    }

    /// The lock of `key` for a writer that holds none, taken without
    /// waiting long: an orphan removal holds it for a `stat` and an
    /// `unlink`, so a few tries a millisecond apart get it; a process that
    /// computes the key holds it for its computation, and then this writer
    /// goes on without it after 50 ms (a lock file that cannot be created,
    /// in a read-only directory, likewise: no one can remove files there
    /// either).
    fn lock_for_renames(&self, key: Fingerprint) -> Option<super::lock::KeyLock> {
        let path = self.layout.lock(key);
        for _ in 0..50 {
            match super::lock::acquire_with(&path, key, false, Some(&self.lock_handles)) {
                Ok(Some(guard)) => return Some(guard),
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => return None,
            }
        }
        None
    }

    /// The row of a small entry: its meta record and its array's bytes.
    fn small_row(
        &self,
        key: Fingerprint,
        value: &AnyArray,
        info: &EntryInfo,
        header_len: usize,
    ) -> NewRow {
        let mut bytes = Vec::with_capacity(header_len + value.nbytes() as usize);
        let mut digests = Digests::new(self.signer.as_ref().map(|s| s.mac(MAC_DOMAIN)));
        // Writing to a Vec cannot fail.
        let len = npy::write_array_digests(&mut bytes, value, &mut digests).unwrap_or_default();
        let meta = new_meta(key, value, info, digests.xxh3.digest128(), len);
        let body = row_meta::body(&meta, digests.mac.is_some());
        let sig = digests.mac.map(|mut mac| {
            mac.update(&row_meta::key_bytes(key));
            mac.update(&body);
            mac.tag()
        });
        let rec = row_meta::finish(key, body, sig.as_ref());
        let data = bytes.split_off(header_len);
        NewRow {
            key,
            atime: SystemTime::now(),
            bytes: store::row_bytes(rec.len(), data.len()),
            small: Some((rec, data)),
        }
    }

    /// Removes temporary files left by dead writers; with `orphans`, also
    /// payloads whose sidecar never came (counted as corrupt entries).
    ///
    /// Opening the tier and its rescans remove only temporary files, so
    /// that `verify` still sees (and reports) an orphan payload.
    pub(crate) fn remove_stale(&self, scan: &super::layout::Scan, orphans: bool) -> u64 {
        let mut n = 0;
        for (path, stat) in &scan.temps {
            if is_older(stat.mtime, TEMP_GRACE) && fs::remove_file(path).is_ok() {
                n += 1;
            }
        }
        if !orphans {
            return n;
        }
        for (&key, found) in &scan.keys {
            if let (Some(FileStat { mtime, .. }), None) = (found.payload, found.sidecar) {
                if is_older(mtime, ORPHAN_GRACE)
                    && fs::remove_file(self.layout.payload(key)).is_ok()
                {
                    Counters::bump(&self.counters.corrupt);
                    n += 1;
                }
            }
        }
        n
    }
}

/// The metadata of a new entry whose `.npy` bytes are `len` long with
/// checksum `checksum` (unsigned).
fn new_meta(
    key: Fingerprint,
    value: &AnyArray,
    info: &EntryInfo,
    checksum: u128,
    len: u64,
) -> EntryMeta {
    EntryMeta {
        key,
        kernel: info.kernel.clone(),
        version: info.version.clone(),
        dtype: value.dtype(),
        shape: value.shape().to_vec(),
        checksum,
        payload_bytes: len,
        compute_time: info.compute_time,
        created: SystemTime::now(),
        signature: None,
    }
}

/// The sidecar text of an entry whose `.npy` bytes are `len` long with
/// checksum `checksum`; signed with `mac` (fed the payload) if given.
fn sidecar_text(
    key: Fingerprint,
    value: &AnyArray,
    info: &EntryInfo,
    checksum: u128,
    len: u64,
    mac: Option<crate::sign::Mac>,
) -> String {
    let mut meta = new_meta(key, value, info, checksum, len);
    if let Some(mut mac) = mac {
        mac.update(meta.body_text().as_bytes());
        meta.signature = Some(mac.tag());
    }
    meta.to_text()
}

/// Files to remove if the write does not complete.
#[derive(Default)]
struct Temps(Vec<PathBuf>);

impl Drop for Temps {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// Creates a temporary file in `dir`, creating `dir` if needed (`clear` may
/// have removed it).
fn create_temp_in(dir: &Path, stem: &str) -> Result<(PathBuf, File)> {
    match npy::create_temp(dir, stem) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            npy::create_temp(dir, stem)
        }
        other => other,
    }
}

fn hash_stream(file: &mut File, mut left: u64, hasher: &mut Digests) -> io::Result<()> {
    let mut buf = vec![0u8; (1 << 20).min(left as usize)];
    while left > 0 {
        let n = buf.len().min(left as usize);
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

pub(crate) fn is_older(t: SystemTime, age: Duration) -> bool {
    SystemTime::now().duration_since(t).is_ok_and(|d| d > age)
}
