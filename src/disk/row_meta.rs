//! The metadata of a small entry as stored in its row: a compact, strictly
//! parsed binary record holding what a sidecar holds (see [`EntryMeta`]),
//! in about 50 bytes instead of about 330 of text.
//!
//! # Format (row format 1)
//!
//! ```text
//! u8        0xb1 (unsigned) or 0xb2 (signed): never an ASCII byte, so the
//!           text of a sidecar never parses as a row meta
//! u8        dtype: 0 <f4, 1 <f8, 2 <i4, 3 <i8
//! u8        ndim (at most 32)
//! varint    each dimension
//! varint    length of the kernel name, then its UTF-8 bytes
//! varint    length of the kernel version, then its UTF-8 bytes
//! varint    compute_ns
//! varint    created_ns
//! 16 bytes  checksum: xxh3-128 of the .npy bytes the entry stands for
//!           (header from dtype and shape, then the row's data), little-endian
//! 32 bytes  signed only: keyed BLAKE3 of the .npy bytes, then the key
//!           (16 bytes, big-endian), then every byte of this record before it
//! 8 bytes   end: xxh3-64 of the key (16 bytes, big-endian) then every byte
//!           before it, little-endian
//! ```
//!
//! A varint is unsigned LEB128 in its shortest form (at most 10 bytes, no
//! trailing zero group). The key is not stored: it is the row's, and `end`
//! covers it, so a record moved to another key's row is damaged. The
//! `.npy` length is not stored: it follows from dtype, shape and the
//! header; the checksum covers all three and the data.

use std::time::{Duration, UNIX_EPOCH};

use super::meta::EntryMeta;
use super::npy;
use crate::element::DType;
use crate::hash::xxh3_64;
use crate::key::Fingerprint;

const UNSIGNED: u8 = 0xb1;
const SIGNED: u8 = 0xb2;
const MAX_NDIM: usize = 32;

/// The first part of `meta`'s record: everything a signature covers
/// (after the payload and the key). `signed` says whether a signature will
/// follow ([`finish`]).
pub(crate) fn body(meta: &EntryMeta, signed: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + meta.kernel.len() + meta.version.len());
    b.push(if signed { SIGNED } else { UNSIGNED });
    let code = DType::ALL
        .iter()
        .position(|d| *d == meta.dtype)
        .unwrap_or(0);
    b.push(code as u8);
    b.push(meta.shape.len().min(MAX_NDIM) as u8);
    for &d in meta.shape.iter().take(MAX_NDIM) {
        varint(&mut b, d as u64);
    }
    for s in [&meta.kernel, &meta.version] {
        varint(&mut b, s.len() as u64);
        b.extend_from_slice(s.as_bytes());
    }
    varint(&mut b, ns(meta.compute_time));
    varint(
        &mut b,
        ns(meta.created.duration_since(UNIX_EPOCH).unwrap_or_default()),
    );
    b.extend_from_slice(&meta.checksum.to_le_bytes());
    b
}

/// Completes a record begun by [`body`]: the signature, if any, and `end`.
pub(crate) fn finish(key: Fingerprint, mut body: Vec<u8>, sig: Option<&[u8; 32]>) -> Vec<u8> {
    if let Some(sig) = sig {
        body.extend_from_slice(sig);
    }
    let end = end_sum(key, &body);
    body.extend_from_slice(&end.to_le_bytes());
    body
}

/// The record of `meta` (its signature, if any, included as it is).
#[cfg(test)]
pub(crate) fn encode(meta: &EntryMeta) -> Vec<u8> {
    finish(
        meta.key,
        body(meta, meta.signature.is_some()),
        meta.signature.as_ref(),
    )
}

/// The key as the signature and `end` cover it.
pub(crate) fn key_bytes(key: Fingerprint) -> [u8; 16] {
    key.as_u128().to_be_bytes()
}

fn end_sum(key: Fingerprint, bytes: &[u8]) -> u64 {
    let mut b = Vec::with_capacity(16 + bytes.len());
    b.extend_from_slice(&key_bytes(key));
    b.extend_from_slice(bytes);
    xxh3_64(&b)
}

/// Parses the record of the row of `key`; returns the metadata (with
/// `payload_bytes`, the length of the `.npy` bytes it stands for) and the
/// length of the part a signature covers. The error says what is wrong.
pub(crate) fn decode(key: Fingerprint, rec: &[u8]) -> Result<(EntryMeta, usize), String> {
    let n = rec.len();
    if n < 8 {
        return Err("the row's meta is too short".into());
    }
    let (rest, end) = rec.split_at(n - 8);
    let end = u64::from_le_bytes(end.try_into().unwrap_or_default());
    if end != end_sum(key, rest) {
        return Err(
            "the row's meta does not match its checksum (damaged, or another key's)".into(),
        );
    }
    let mut r = Reader(rest);
    let signed = match r.byte()? {
        UNSIGNED => false,
        SIGNED => true,
        _ => return Err("the row's meta is not in a known format".into()),
    };
    let dtype = *DType::ALL
        .get(r.byte()? as usize)
        .ok_or("invalid dtype in the row's meta")?;
    let ndim = r.byte()? as usize;
    if ndim > MAX_NDIM {
        return Err("too many dimensions in the row's meta".into());
    }
    let mut shape = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        shape.push(usize::try_from(r.varint()?).map_err(|_| "shape too large")?);
    }
    let kernel = r.text()?;
    let version = r.text()?;
    let compute_ns = r.varint()?;
    let created_ns = r.varint()?;
    let checksum = u128::from_le_bytes(r.take(16)?.try_into().unwrap_or_default());
    let signed_len = n - 8 - r.0.len();
    let signature = if signed {
        let mut s = [0u8; 32];
        s.copy_from_slice(r.take(32)?);
        Some(s)
    } else {
        None
    };
    if !r.0.is_empty() {
        return Err("unexpected bytes at the end of the row's meta".into());
    }
    let data_bytes = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or("shape too large")?;
    let payload_bytes = (npy::header_bytes(dtype, &shape).len() + data_bytes) as u64;
    let meta = EntryMeta {
        key,
        kernel,
        version,
        dtype,
        shape,
        checksum,
        payload_bytes,
        compute_time: Duration::from_nanos(compute_ns),
        created: UNIX_EPOCH + Duration::from_nanos(created_ns),
        signature,
    };
    Ok((meta, signed_len))
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("the row's meta is truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// A shortest-form LEB128 value that fits in 64 bits.
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                break;
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    break; // not the shortest form
                }
                return Ok(v);
            }
        }
        Err("invalid number in the row's meta".into())
    }

    fn text(&mut self) -> Result<String, String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "text too long")?;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| "the row's meta has text that is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn sample(signature: Option<[u8; 32]>, shape: Vec<usize>) -> EntryMeta {
        let dtype = DType::I32;
        let data: usize = shape.iter().product::<usize>() * dtype.size();
        EntryMeta {
            key: Fingerprint::from_u128(0x5d41_402a_bc4b_2a76_b971_9d91_1017_c592),
            kernel: "my kernel%\n\u{e9}".into(),
            version: "1.2".into(),
            dtype,
            payload_bytes: (npy::header_bytes(dtype, &shape).len() + data) as u64,
            shape,
            checksum: 0x9c3e_4e64_e0a5_bd0b_0e4b_7c2f_d7c1_a3f4,
            compute_time: Duration::from_nanos(1_834_000),
            created: UNIX_EPOCH + Duration::from_nanos(1_760_000_000_123_456_789),
            signature,
        }
    }

    #[test]
    fn round_trip_is_small_and_exact() {
        for m in [
            sample(None, vec![16]),
            sample(Some([0xab; 32]), vec![3, 0, 1 << 40]),
            sample(None, vec![]),
            EntryMeta {
                compute_time: Duration::from_nanos(u64::MAX),
                created: SystemTime::UNIX_EPOCH,
                kernel: String::new(),
                ..sample(None, vec![1])
            },
        ] {
            let rec = encode(&m);
            let (got, signed_len) = decode(m.key, &rec).unwrap();
            assert_eq!(got, m);
            let sig = if m.signature.is_some() { 32 } else { 0 };
            assert_eq!(signed_len, rec.len() - 8 - sig);
            assert_eq!(body(&m, m.signature.is_some()), rec[..signed_len]);
        }
        // The text sidecar of the same entry is about 330 bytes.
        let m = sample(None, vec![16]);
        assert!(encode(&m).len() <= 60, "{}", encode(&m).len());
        assert!(m.to_text().len() >= 250);
    }

    #[test]
    fn any_damage_and_another_key_are_rejected() {
        let m = sample(Some([7; 32]), vec![16, 2]);
        let rec = encode(&m);
        for i in 0..rec.len() {
            for bit in 0..8 {
                let mut b = rec.clone();
                b[i] ^= 1 << bit;
                assert!(decode(m.key, &b).is_err(), "flip {i}.{bit} accepted");
            }
            assert!(decode(m.key, &rec[..i]).is_err(), "cut at {i} accepted");
        }
        let mut longer = rec.clone();
        longer.push(0);
        assert!(decode(m.key, &longer).is_err());
        let other = Fingerprint::from_u128(m.key.as_u128() ^ 1);
        assert!(decode(other, &rec).is_err());
        // A sidecar's text is not a row meta.
        assert!(decode(m.key, m.to_text().as_bytes()).is_err());
    }

    /// Records whose `end` is valid (resealed) but whose fields are not:
    /// the parser is strict, not just the checksum.
    #[test]
    fn strict_fields_even_when_resealed() {
        let m = sample(None, vec![16]);
        let good = encode(&m);
        let reseal = |mut b: Vec<u8>| {
            b.truncate(b.len() - 8);
            finish(m.key, b, None)
        };
        assert_eq!(decode(m.key, &reseal(good.clone())).unwrap().0, m);
        let mut bad = Vec::new();
        let mut edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good[..good.len() - 8].to_vec();
            f(&mut b);
            bad.push(finish(m.key, b, None));
        };
        edit(&|b| b[0] = b'n'); // unknown format
        edit(&|b| b[0] = SIGNED); // signed without a signature
        edit(&|b| b[1] = 4); // unknown dtype
        edit(&|b| b[2] = 33); // too many dimensions
        edit(&|b| {
            // 16 as a two-byte varint (not the shortest form)
            b[3] = 0x90;
            b.insert(4, 0x00);
        });
        edit(&|b| b.push(0)); // trailing byte
        edit(&|b| b.truncate(b.len() - 1)); // checksum cut short
        edit(&|b| {
            // kernel name not UTF-8
            let at = 5;
            b[at] = 0xff;
        });
        for (i, b) in bad.iter().enumerate() {
            assert!(decode(m.key, b).is_err(), "case {i} accepted");
        }
        // A ten-byte varint above 2^64 - 1.
        let mut r = Reader(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert!(r.varint().is_err());
        let mut r = Reader(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.varint().unwrap(), u64::MAX);
    }
}
