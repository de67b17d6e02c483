//! Signed entries: a keyed BLAKE3 MAC over an entry's metadata and every
//! payload byte, for the disk and the remote tier alike.
//!
//! A shared cache is only as trustworthy as everyone who can write to it.
//! With a secret ([`ArrayCacheBuilder::secret`](crate::ArrayCacheBuilder::secret)
//! or `$NDCACHE_SECRET`), every entry written carries a 32-byte tag, and a
//! reader refuses (counts and deletes) an entry whose tag is missing or
//! wrong: only a holder of the secret can write an entry that is served.
//!
//! # Why BLAKE3 in keyed mode, not keyed xxh3
//!
//! The checksum of an entry (xxh3-128) detects accidents, not an adversary:
//! XXH3 is not designed to resist crafted inputs, so a tag over the
//! checksum alone, or a "keyed" xxh3 (xxh3 with a secret seed), could be
//! forged by someone who can write payloads and read tags. BLAKE3's keyed
//! mode is a PRF, hence a MAC, by design; it runs at several GB/s on one
//! core with the SIMD the crate picks at run time, and its build costs a
//! few seconds. HMAC-SHA-256 would do too, at a third of the speed.
//!
//! The secret (any bytes) is turned into the 32-byte key with BLAKE3's
//! key derivation and a context string, so a secret shared with another
//! program never yields the same key. Tags are compared in constant time.

use std::fmt;

/// The environment variable a cache reads its secret from when the
/// builder was given none.
pub const SECRET_ENV: &str = "NDCACHE_SECRET";

const CONTEXT: &str = "ndcache 2026-08 entry signing key v1";

/// A MAC key derived from the user's secret.
#[derive(Clone)]
pub(crate) struct Signer {
    key: [u8; 32],
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// The key for `secret`, or `None` for an empty secret (signing off).
    pub(crate) fn new(secret: &[u8]) -> Option<Signer> {
        (!secret.is_empty()).then(|| Signer {
            key: blake3::derive_key(CONTEXT, secret),
        })
    }

    /// `explicit` if given (an empty one turns signing off), else the
    /// secret in `$NDCACHE_SECRET` if it is set and not empty.
    pub(crate) fn from_option_or_env(explicit: Option<&[u8]>) -> Option<Signer> {
        match explicit {
            Some(s) => Signer::new(s),
            None => std::env::var_os(SECRET_ENV).and_then(|v| Signer::new(v.as_encoded_bytes())),
        }
    }

    /// A MAC over `domain` and then whatever the caller feeds it.
    pub(crate) fn mac(&self, domain: &str) -> Mac {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(domain.as_bytes());
        h.update(&[0]);
        Mac(h)
    }
}

/// A MAC being computed.
#[derive(Clone)]
pub(crate) struct Mac(blake3::Hasher);

impl Mac {
    #[inline]
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The tag.
    pub(crate) fn tag(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }

    /// Whether `tag` is the tag of what was fed (in constant time).
    pub(crate) fn verify(&self, tag: &[u8; 32]) -> bool {
        self.0.finalize() == blake3::Hash::from_bytes(*tag)
    }
}

/// The payload digests a tier computes while it reads or writes: the
/// xxh3-128 checksum always, the MAC when entries are signed.
pub(crate) struct Digests {
    pub(crate) xxh3: crate::hash::Xxh3,
    pub(crate) mac: Option<Mac>,
}

impl Digests {
    pub(crate) fn new(mac: Option<Mac>) -> Self {
        Digests {
            xxh3: crate::hash::Xxh3::new(),
            mac,
        }
    }

    #[inline]
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.xxh3.update(bytes);
        if let Some(m) = &mut self.mac {
            m.update(bytes);
        }
    }
}

/// Lower-case hex of a tag.
pub(crate) fn hex(tag: &[u8; 32]) -> String {
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 lower-case hex digits.
pub(crate) fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_secret_domain_and_every_byte() {
        let a = Signer::new(b"team secret").unwrap();
        let b = Signer::new(b"other secret").unwrap();
        let tag = |s: &Signer, d: &str, m: &[u8]| {
            let mut mac = s.mac(d);
            mac.update(m);
            mac.tag()
        };
        let t = tag(&a, "disk", b"payload");
        assert_eq!(t, tag(&a, "disk", b"payload"));
        assert_ne!(t, tag(&b, "disk", b"payload"));
        assert_ne!(t, tag(&a, "remote", b"payload"));
        assert_ne!(t, tag(&a, "disk", b"payloae"));
        let mut mac = a.mac("disk");
        mac.update(b"pay");
        mac.update(b"load");
        assert!(mac.verify(&t));
        assert!(!mac.verify(&tag(&b, "disk", b"payload")));
        assert!(Signer::new(b"").is_none());
    }

    #[test]
    fn hex_round_trip() {
        let t: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(parse_hex(&hex(&t)), Some(t));
        assert_eq!(parse_hex(&hex(&t).to_uppercase()), None);
        assert_eq!(parse_hex("00"), None);
    }
}
