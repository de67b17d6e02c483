//! Per-key locks: one process computes a missing entry while the others
//! wait.
//!
//! # On Linux: byte-range locks on one file
//!
//! A key's lock is an exclusive open-file-description lock (`fcntl`
//! `F_OFD_SETLKW`) on one byte of `<dir>/v2/keylocks`, at an offset given
//! by the key (62 of its bits: two keys share a byte with probability
//! 2^-62). The file is created once and never removed, so taking a lock
//! creates no file: creating and removing a lock file per miss cost more
//! than half of a miss-and-store of a small entry on ext4 (its inode
//! allocator searches past recently deleted inodes; measured with `perf`
//! on the scaling example). Like `flock`, OFD locks belong to the open file
//! description: two handles exclude each other even within one process,
//! and the OS releases them when the holder dies.
//!
//! A tier keeps the handles of `keylocks` that hold no lock ([`Handles`])
//! and reuses them: a lock is then one `fcntl` to take it and one to
//! release it, not an `open` and a `close` as well. A handle goes back to
//! the pool only after its byte was unlocked (else it is closed, which
//! unlocks), so each held lock still has its own open file description.
//!
//! # Elsewhere: one lock file per key
//!
//! A lock is an exclusive [`File::lock`] on `<dir>/v2/locks/<key>.lock`. `File::lock` locks an open file description, so two
//! handles exclude each other even within one process, and the OS releases
//! the lock when its holder dies.
//!
//! # Removing lock files safely
//!
//! Lock files would accumulate, one per key ever computed, so the holder
//! removes its lock file before unlocking. That races with a waiter that
//! opened the same file before the removal: the waiter then locks a file
//! that no longer has a name, while a third process may create and lock a
//! new file under the same name. So after locking, a process checks that the
//! path still names the very file it locked (same device and inode) and
//! starts over if not. Whoever holds a lock whose file is still in place is
//! the only holder. [`DiskTier::gc`](super::DiskTier::gc) removes lock files
//! left by processes that crashed, under the same protocol.
//!
//! On platforms without inode numbers, lock files are never removed while
//! the cache is in use; `gc` and `clear` remove the unlocked ones.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::key::Fingerprint;

/// An exclusive lock on one key of a disk tier, shared by every process
/// using the directory. Dropping it unlocks.
///
/// Get one from [`DiskTier::lock`](super::DiskTier::lock); hand it to
/// [`DiskTier::put`](super::DiskTier::put) so that it is released only once
/// the entry is in place.
#[derive(Debug)]
#[must_use = "the lock is released as soon as it is dropped"]
pub struct KeyLock {
    key: Fingerprint,
    path: PathBuf,
    // Held for its lock; closing it unlocks. `None` only during `drop`.
    file: Option<File>,
    /// Where the handle goes back once unlocked (one-file locks only).
    handles: Option<Arc<Handles>>,
}

/// Open handles of a tier's key-lock file that hold no lock, for reuse
/// (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Handles(Mutex<Vec<File>>);

/// The most idle handles kept (a handle is a file descriptor).
const MAX_IDLE_HANDLES: usize = 64;

impl Handles {
    fn take(&self) -> Option<File> {
        crate::sync::lock(&self.0).pop()
    }

    /// Keeps `file`, which must hold no lock.
    fn give_back(&self, file: File) {
        let mut idle = crate::sync::lock(&self.0);
        if idle.len() < MAX_IDLE_HANDLES {
            idle.push(file);
        }
    }
}

impl KeyLock {
    /// The key this lock is for.
    pub fn key(&self) -> Fingerprint {
        self.key
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Remove the name while still holding the lock (see the module docs);
        // the lock itself goes with the file handle right after.
        if cfg!(unix) && !ofd::SUPPORTED {
            let _ = fs::remove_file(&self.path);
        }
        #[cfg(target_os = "linux")]
        if let (Some(file), Some(handles)) = (self.file.take(), &self.handles) {
            // Reused only if surely unlocked; closing it unlocks anyway.
            if ofd::unlock(&file, self.key).is_ok() {
                handles.give_back(file);
            }
        }
    }
}

/// Byte-range locks that belong to an open file description (Linux).
#[cfg(target_os = "linux")]
mod ofd {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    use crate::key::Fingerprint;

    pub const SUPPORTED: bool = true;

    fn request(
        file: &File,
        key: Fingerprint,
        cmd: libc::c_int,
        kind: libc::c_short,
    ) -> io::Result<libc::flock> {
        // SAFETY: `flock` is a plain C struct for which all-zero bytes are
        // a valid value (and `l_pid` must be 0 for OFD requests).
        #[allow(unsafe_code)]
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = (key.as_u128() as u64 >> 2) as libc::off_t;
        fl.l_len = 1;
        loop {
            // SAFETY: `file` is an open descriptor for the duration of the
            // call and `fl` a valid, exclusively borrowed `flock` that the
            // kernel reads (and for F_OFD_GETLK writes); no memory is kept.
            #[allow(unsafe_code)]
            let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
            if r != -1 {
                return Ok(fl);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Takes the write lock of `key`'s byte: `Ok(false)` if another open file
    /// description holds it and `!wait`.
    pub fn lock(file: &File, key: Fingerprint, wait: bool) -> io::Result<bool> {
        let cmd = if wait {
            libc::F_OFD_SETLKW
        } else {
            libc::F_OFD_SETLK
        };
        match request(file, key, cmd, libc::F_WRLCK as libc::c_short) {
            Ok(_) => Ok(true),
            Err(e) if !wait && matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Releases this handle's lock of `key`'s byte.
    pub fn unlock(file: &File, key: Fingerprint) -> io::Result<()> {
        request(file, key, libc::F_OFD_SETLK, libc::F_UNLCK as libc::c_short).map(|_| ())
    }

    /// Whether another open file description holds `key`'s lock.
    pub fn is_held(file: &File, key: Fingerprint) -> io::Result<bool> {
        let fl = request(file, key, libc::F_OFD_GETLK, libc::F_WRLCK as libc::c_short)?;
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }
}

#[cfg(not(target_os = "linux"))]
mod ofd {
    pub const SUPPORTED: bool = false;
}

/// Whether locks are byte ranges of one file (see the module docs).
pub(crate) const ONE_FILE: bool = ofd::SUPPORTED;

/// Whether some handle holds `key`'s lock in `path`: `None` if it cannot
/// be told. Creates nothing.
pub(crate) fn is_held(path: &Path, key: Fingerprint) -> Option<bool> {
    let file = match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
        Ok(f) => f,
    };
    #[cfg(target_os = "linux")]
    {
        ofd::is_held(&file, key).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = key;
        match file.try_lock() {
            Ok(()) => Some(false), // unlocked when `file` closes
            Err(TryLockError::WouldBlock) => Some(true),
            Err(TryLockError::Error(_)) => None,
        }
    }
}

/// How many times a lock is retried when its file is replaced under it.
const MAX_RETRIES: usize = 1000;

/// Locks `path` for `key`, waiting as long as it takes, with a handle from
/// `handles` if it has one.
pub(crate) fn lock(
    path: &Path,
    key: Fingerprint,
    handles: Option<&Arc<Handles>>,
) -> Result<KeyLock> {
    loop {
        if let Some(l) = acquire_with(path, key, true, handles)? {
            return Ok(l);
        }
    }
}

/// Locks `path` for `key`, blocking if `wait`, else returning `None` when
/// another handle holds it.
pub(crate) fn acquire(path: &Path, key: Fingerprint, wait: bool) -> Result<Option<KeyLock>> {
    acquire_with(path, key, wait, None)
}

/// [`acquire`] with a handle from `handles` (one-file locks only), given
/// back to it when the lock is released.
pub(crate) fn acquire_with(
    path: &Path,
    key: Fingerprint,
    wait: bool,
    handles: Option<&Arc<Handles>>,
) -> Result<Option<KeyLock>> {
    #[cfg(target_os = "linux")]
    {
        let file = match handles.and_then(|h| h.take()) {
            Some(f) => f,
            None => open_creating_dir(path)?,
        };
        return match ofd::lock(&file, key, wait) {
            Ok(true) => Ok(Some(KeyLock {
                key,
                path: path.to_path_buf(),
                file: Some(file),
                handles: handles.cloned(),
            })),
            Ok(false) => {
                if let Some(h) = handles {
                    h.give_back(file);
                }
                Ok(None)
            }
            Err(e) => Err(Error::io("lock", path, e)),
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = handles;
    // Each retry means another process removed the file we locked; a
    // filesystem whose file identities are unstable would retry forever.
    #[allow(unreachable_code)]
    for _ in 0..MAX_RETRIES {
        let file = open_creating_dir(path)?;
        if wait {
            file.lock().map_err(|e| Error::io("lock", path, e))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
            }
        }
        if still_named(&file, path) {
            return Ok(Some(KeyLock {
                key,
                path: path.to_path_buf(),
                file: Some(file),
                handles: None,
            }));
        }
        // The file was removed (or replaced) while we waited: try again.
    }
    Err(Error::io(
        "lock",
        path,
        std::io::Error::other("the lock file kept being replaced while it was locked"),
    ))
}

/// Removes `path` if no one holds it (a lock left by a crashed process).
/// Returns whether it was removed.
pub(crate) fn remove_if_unlocked(path: &Path) -> bool {
    if ONE_FILE {
        // A lock file of another platform's layout: no one locks it here.
        return fs::remove_file(path).is_ok();
    }
    let Ok(file) = File::options().read(true).write(true).open(path) else {
        return false;
    };
    if file.try_lock().is_err() || !still_named(&file, path) {
        return false;
    }
    fs::remove_file(path).is_ok()
}

fn open_creating_dir(path: &Path) -> Result<File> {
    let open = || {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            }
            open()
        }
        other => other,
    }
    .map_err(|e| Error::io("create the lock file", path, e))
}

#[cfg(unix)]
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_named(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    #[test]
    fn two_handles_exclude_each_other_and_files_do_not_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("k.lock");
        let key = Fingerprint::from_u128(7);
        let a = acquire(&path, key, true).unwrap().unwrap();
        assert_eq!(a.key(), key);
        assert!(acquire(&path, key, false).unwrap().is_none());
        assert!(acquire(&path, Fingerprint::from_u128(8), false)
            .unwrap()
            .is_some());
        assert_eq!(is_held(&path, key), Some(true));
        drop(a);
        assert_eq!(is_held(&path, key), Some(false));
        assert_eq!(
            !path.exists(),
            !ONE_FILE,
            "the holder removes its lock file"
        );
        let b = acquire(&path, key, false).unwrap().unwrap();
        assert!(path.exists());
        drop(b);
        assert_eq!(!path.exists(), !ONE_FILE);
    }

    /// Handles reused from a pool still exclude each other and every other
    /// handle: a released lock's handle holds nothing when reused, and a
    /// lock held by one pooled handle survives the release of another.
    #[test]
    #[cfg(target_os = "linux")]
    fn pooled_handles_keep_locks_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keylocks");
        let pool = Arc::new(Handles::default());
        let (k1, k2) = (Fingerprint::from_u128(4), Fingerprint::from_u128(8));
        let a = lock(&path, k1, Some(&pool)).unwrap();
        let b = lock(&path, k2, Some(&pool)).unwrap();
        assert!(acquire(&path, k1, false).unwrap().is_none());
        drop(b);
        assert_eq!(crate::sync::lock(&pool.0).len(), 1, "b's handle is kept");
        assert_eq!(is_held(&path, k1), Some(true), "a's lock survives");
        assert_eq!(is_held(&path, k2), Some(false), "b's lock is released");
        // The reused handle (b's) cannot take a's key while a holds it.
        assert!(acquire_with(&path, k1, false, Some(&pool))
            .unwrap()
            .is_none());
        assert_eq!(crate::sync::lock(&pool.0).len(), 1);
        drop(a);
        let c = acquire_with(&path, k1, false, Some(&pool))
            .unwrap()
            .unwrap();
        assert!(acquire(&path, k1, false).unwrap().is_none());
        assert!(acquire_with(&path, k1, false, Some(&pool))
            .unwrap()
            .is_none());
        drop(c);
        assert_eq!(is_held(&path, k1), Some(false));
        assert!(acquire(&path, k1, false).unwrap().is_some());
    }

    /// Many threads, each with its own file handle, take the lock in turns:
    /// never two inside at once, even though every holder deletes the file
    /// other threads are waiting on.
    #[test]
    fn mutual_exclusion_under_contention() {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("k.lock"));
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let threads = 8;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (path, inside, max_inside, entered, start) = (
                    path.clone(),
                    inside.clone(),
                    max_inside.clone(),
                    entered.clone(),
                    start.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..25 {
                        let g = acquire(&path, Fingerprint::from_u128(1), true)
                            .unwrap()
                            .unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_inside.fetch_max(n, Ordering::SeqCst);
                        entered.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(g);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(entered.load(Ordering::SeqCst), threads * 25);
        assert_eq!(max_inside.load(Ordering::SeqCst), 1);
        assert_eq!(!path.exists(), !ONE_FILE);
    }

    #[test]
    #[cfg(not(target_os = "linux"))]
    fn stale_lock_files_are_removed_only_when_unlocked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        let held = lock(&path, Fingerprint::from_u128(1), None).unwrap();
        assert!(!remove_if_unlocked(&path));
        assert!(path.exists());
        drop(held);
        // A crashed holder leaves an unlocked file behind.
        File::create(&path).unwrap();
        assert!(remove_if_unlocked(&path));
        assert!(!path.exists());
        // And the protocol still works afterwards.
        let again = lock(&path, Fingerprint::from_u128(1), None).unwrap();
        assert!(!remove_if_unlocked(&path));
        drop(again);
    }
}
