//! Where entries live on disk, and the scan of the large entries' files.
//!
//! ```text
//! <dir>/v2/CACHEDIR.TAG                (tells backup tools to skip the cache)
//! <dir>/v2/budget                      the remembered byte budget: "<bytes>\n"
//! <dir>/v2/entries.db                  SQLite (WAL): small entries, and the
//! <dir>/v2/entries.db-wal, -shm          index of every entry (see store.rs)
//! <dir>/v2/keylocks                    per-key locks: byte ranges (Linux)
//! <dir>/v2/locks/<key>.lock            per-key lock file (elsewhere, while a key is computed)
//! <dir>/v2/<ab>/<key>.npy              a large entry's payload: a plain .npy file
//! <dir>/v2/<ab>/<key>.meta             its sidecar; present means complete
//! <dir>/v2/<ab>/.<name>.<pid>.<n>.tmp  a file being written
//! ```
//!
//! `<key>` is the call key as 32 lowercase hex digits, `<ab>` its first two:
//! at most 256 fan-out directories, created as large entries need them and
//! removed by `gc` and `clear` once empty. (Layout `v1` had two levels,
//! 65,536 directories, and every entry in files; see [`OLD_LAYOUTS`].)

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::key::Fingerprint;

/// The layout version: the name of the directory under the cache root.
pub(crate) const LAYOUT_DIR: &str = "v2";

/// Earlier layouts' directories. A tier never reads them: their entries
/// are misses (and are left in place for the user to remove; `ndcache
/// stats` mentions them).
pub(crate) const OLD_LAYOUTS: &[&str] = &["v1"];

const STORE_FILE: &str = "entries.db";
const LOCK_DIR: &str = "locks";
const KEY_LOCKS_FILE: &str = "keylocks";

const PAYLOAD_EXT: &str = "npy";
const SIDECAR_EXT: &str = "meta";
const LOCK_EXT: &str = "lock";
const TEMP_EXT: &str = "tmp";
const BUDGET_FILE: &str = "budget";

/// A budget file is a number of bytes and a newline: 21 bytes at most.
const MAX_BUDGET_FILE: u64 = 64;

/// The cache's paths.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
    base: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
            base: root.join(LAYOUT_DIR),
        }
    }

    /// The directory given by the user.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/v2`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `<root>/v2/<ab>`.
    pub fn fan_dir(&self, key: Fingerprint) -> PathBuf {
        let hex = key.to_string();
        self.base.join(&hex[..2])
    }

    /// `<root>/v2/entries.db`: the SQLite store.
    pub fn store(&self) -> PathBuf {
        self.base.join(STORE_FILE)
    }

    /// Earlier layouts' directories that exist under the root.
    pub fn old_layouts(&self) -> Vec<PathBuf> {
        OLD_LAYOUTS
            .iter()
            .map(|d| self.root.join(d))
            .filter(|p| p.is_dir())
            .collect()
    }

    fn file(&self, key: Fingerprint, ext: &str) -> PathBuf {
        self.fan_dir(key).join(format!("{key}.{ext}"))
    }

    pub fn payload(&self, key: Fingerprint) -> PathBuf {
        self.file(key, PAYLOAD_EXT)
    }

    pub fn sidecar(&self, key: Fingerprint) -> PathBuf {
        self.file(key, SIDECAR_EXT)
    }

    /// The file holding `key`'s lock: `<root>/v2/keylocks` (one file, byte
    /// ranges: see `lock.rs`), or where that is not supported
    /// `<root>/v2/locks/<key>.lock` (one flat directory, since a lock file
    /// lives only while its key is computed).
    pub fn lock(&self, key: Fingerprint) -> PathBuf {
        if super::lock::ONE_FILE {
            self.base.join(KEY_LOCKS_FILE)
        } else {
            self.base.join(LOCK_DIR).join(format!("{key}.{LOCK_EXT}"))
        }
    }

    /// `<root>/v2/locks`.
    pub fn lock_dir(&self) -> PathBuf {
        self.base.join(LOCK_DIR)
    }

    /// `<root>/v2/budget`.
    pub fn budget(&self) -> PathBuf {
        self.base.join(BUDGET_FILE)
    }
}

/// The remembered budget: `Ok(None)` without a budget file, `Err` (why)
/// if it cannot be read or parsed.
pub(crate) fn read_budget(layout: &Layout) -> Result<Option<u64>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    match fs::File::open(layout.budget())
        .and_then(|f| f.take(MAX_BUDGET_FILE + 1).read_to_end(&mut bytes))
    {
        Ok(_) => parse_budget(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a budget file: decimal digits of a positive `u64`, then one
/// optional newline; nothing else.
pub(crate) fn parse_budget(bytes: &[u8]) -> Result<u64, String> {
    let digits = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bad = || {
        Err(format!(
            "expected a positive number of bytes and a newline, found {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BUDGET_FILE as usize)])
        ))
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return bad();
    }
    match std::str::from_utf8(digits).map(str::parse::<u64>) {
        Ok(Ok(n)) if n > 0 => Ok(n),
        _ => bad(),
    }
}

/// What a file of `len` bytes occupies: whole blocks (a `du` of an empty
/// file is 0).
pub(crate) fn on_disk(len: u64, block: u64) -> u64 {
    len.div_ceil(block) * block
}

/// The file system's block size at `dir` (4096 where it cannot be read).
pub(crate) fn block_size(dir: &Path) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = fs::metadata(dir) {
            if m.blksize() >= 512 {
                return m.blksize();
            }
        }
    }
    let _ = dir;
    4096
}

/// A temporary path in `dir` that no other thread or process of this machine
/// is using (the caller still creates it with `create_new`).
pub(crate) fn temp_path(dir: &Path, stem: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{stem}.{}.{n}.{TEMP_EXT}", std::process::id()))
}

/// What a file in a fan-out directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Payload(Fingerprint),
    Sidecar(Fingerprint),
    Lock(Fingerprint),
    Temp,
    Other,
}

fn classify(name: &OsStr) -> Kind {
    let Some(name) = name.to_str() else {
        return Kind::Other;
    };
    if name.starts_with('.') && name.ends_with(TEMP_EXT) {
        return Kind::Temp;
    }
    let Some((stem, ext)) = name.split_once('.') else {
        return Kind::Other;
    };
    let Some(key) = parse_key(stem) else {
        return Kind::Other;
    };
    match ext {
        PAYLOAD_EXT => Kind::Payload(key),
        SIDECAR_EXT => Kind::Sidecar(key),
        LOCK_EXT => Kind::Lock(key),
        _ => Kind::Other,
    }
}

/// Parses exactly 32 lowercase hex digits.
pub(crate) fn parse_key(s: &str) -> Option<Fingerprint> {
    if s.len() == 32 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        s.parse().ok()
    } else {
        None
    }
}

fn is_fan_name(name: &OsStr) -> bool {
    name.to_str()
        .is_some_and(|s| s.len() == 2 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

/// One file found by a scan: its size and modification time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStat {
    pub len: u64,
    pub mtime: SystemTime,
}

/// The files of one key found by a scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    pub payload: Option<FileStat>,
    pub sidecar: Option<FileStat>,
}

impl Found {
    /// Both files are there: a complete entry (its contents unverified).
    pub fn is_complete(&self) -> bool {
        self.payload.is_some() && self.sidecar.is_some()
    }

    /// Bytes on disk for this key: each file's length rounded up to whole
    /// blocks of `block` bytes.
    pub fn bytes(&self, block: u64) -> u64 {
        self.payload.map_or(0, |s| on_disk(s.len, block))
            + self.sidecar.map_or(0, |s| on_disk(s.len, block))
    }
}

/// Everything a scan of the cache directory found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub keys: HashMap<Fingerprint, Found>,
    pub temps: Vec<(PathBuf, FileStat)>,
    pub locks: Vec<PathBuf>,
}

/// Lists every large entry's files, and the lock files. A missing base directory (or one that
/// cannot exist, under a regular file) is an empty cache; files vanishing during the scan (other processes) are skipped.
pub(crate) fn scan(layout: &Layout) -> io::Result<Scan> {
    let mut out = Scan::default();
    for_each_fan_dir(layout.base(), |dir| {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if is_absent(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = classify(&entry.file_name());
            if kind == Kind::Other {
                continue;
            }
            let stat = match entry.metadata() {
                Ok(m) if m.is_file() => FileStat {
                    len: m.len(),
                    mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                },
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match kind {
                Kind::Payload(k) => out.keys.entry(k).or_default().payload = Some(stat),
                Kind::Sidecar(k) => out.keys.entry(k).or_default().sidecar = Some(stat),
                Kind::Lock(_) => out.locks.push(entry.path()),
                Kind::Temp => out.temps.push((entry.path(), stat)),
                Kind::Other => {}
            }
        }
        Ok(())
    })?;
    if let Ok(rd) = fs::read_dir(layout.lock_dir()) {
        for entry in rd.flatten() {
            if matches!(classify(&entry.file_name()), Kind::Lock(_)) {
                out.locks.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Calls `f` on every `<base>/<ab>` directory.
pub(crate) fn for_each_fan_dir(
    base: &Path,
    mut f: impl FnMut(&Path) -> io::Result<()>,
) -> io::Result<()> {
    for dir in sorted_fan_dirs(base)? {
        f(&dir)?;
    }
    Ok(())
}

/// Whether any fan-out directory exists (then large entries may exist).
pub(crate) fn has_fan_dirs(base: &Path) -> bool {
    sorted_fan_dirs(base).is_ok_and(|d| !d.is_empty())
}

fn sorted_fan_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if is_fan_name(&entry.file_name()) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Removes the fan-out directories left empty (errors ignored: another
/// process may be adding a file right now, which keeps its directory).
pub(crate) fn remove_empty_dirs(layout: &Layout) {
    if let Ok(dirs) = sorted_fan_dirs(layout.base()) {
        for d in dirs {
            let _ = fs::remove_dir(d);
        }
    }
    let _ = fs::remove_dir(layout.lock_dir());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        let l = Layout::new(Path::new("/c"));
        let k = Fingerprint::from_u128(0xabcd_0000_0000_0000_0000_0000_0000_0001);
        assert_eq!(
            l.payload(k),
            Path::new("/c/v2/ab/abcd0000000000000000000000000001.npy")
        );
        let lock = match crate::disk::lock::ONE_FILE {
            true => "/c/v2/keylocks",
            false => "/c/v2/locks/abcd0000000000000000000000000001.lock",
        };
        assert_eq!(l.lock(k), Path::new(lock));
        assert_eq!(
            classify(l.payload(k).file_name().unwrap()),
            Kind::Payload(k)
        );
        assert_eq!(
            classify(l.sidecar(k).file_name().unwrap()),
            Kind::Sidecar(k)
        );
        let per_key = l.lock_dir().join(format!("{k}.lock"));
        assert_eq!(classify(per_key.file_name().unwrap()), Kind::Lock(k));
        let t = temp_path(&l.fan_dir(k), &format!("{k}.npy"));
        assert_eq!(classify(t.file_name().unwrap()), Kind::Temp);
        assert_ne!(t, temp_path(&l.fan_dir(k), &format!("{k}.npy")));
        for other in [
            "README",
            "ABCD0000000000000000000000000001.npy",
            "x.npy",
            "abc.meta",
        ] {
            assert_eq!(classify(OsStr::new(other)), Kind::Other, "{other}");
        }
        assert_eq!(parse_key("+bcd0000000000000000000000000001"), None);
        assert_eq!(l.budget(), Path::new("/c/v2/budget"));
        assert_eq!(l.store(), Path::new("/c/v2/entries.db"));
    }

    #[test]
    fn budget_files_are_parsed_strictly() {
        let good: &[(&[u8], u64)] = &[
            (b"1\n", 1),
            (b"5242880\n", 5 << 20),
            (b"5242880", 5 << 20),
            (b"18446744073709551615\n", u64::MAX),
        ];
        for &(text, want) in good {
            assert_eq!(parse_budget(text), Ok(want), "{text:?}");
        }
        let bad: &[&[u8]] = &[
            b"",
            b"\n",
            b"0\n",
            b"-5\n",
            b"+5\n",
            b" 5\n",
            b"5 \n",
            b"5\r\n",
            b"5\n\n",
            b"5M\n",
            b"1.5\n",
            b"18446744073709551616\n",
            b"\xff\xfe",
        ];
        for &text in bad {
            let e = parse_budget(text).expect_err(&format!("{text:?}"));
            assert!(e.contains("positive number of bytes"), "{e}");
        }
    }
}
