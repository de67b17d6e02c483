//! The remote format (version 1): a binary header, then the exact bytes of
//! the result's `.npy` file (inline), or a header alone (a manifest) whose
//! chunks are separate keys.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "NDCR"
//!      4     1  format version (1)
//!      5     1  kind: 0 = inline value, 1 = manifest of chunks
//!      6     1  flags: bit 0 = signed
//!      7     1  dtype: 0 f32, 1 f64, 2 i32, 3 i64
//!      8     1  ndim
//!      9     3  zero
//!     12     4  header length in bytes, tag and check included (u32)
//!     16    16  call key (u128)
//!     32    16  xxh3-128 of the .npy bytes
//!     48     8  length of the .npy bytes (u64)
//!     56     8  compute time in nanoseconds (u64)
//!     64     4  chunk size in bytes (u32; 0 inline)
//!     68     4  number of chunks (u32; 0 inline)
//!     72     8  write id: names this write's chunks (u64; 0 inline)
//!     80  8×nd  shape (u64 each)
//!      …   2+n  kernel name (u16 length, UTF-8)
//!      …   2+n  kernel version (u16 length, UTF-8)
//!      …    32  tag, if signed: keyed BLAKE3 of "ndcache remote entry v1",
//!               a zero byte, every header byte before the tag, and the .npy bytes
//!      …     8  xxh3-64 of every header byte before it
//! ```
//!
//! All integers are little-endian. The `.npy` bytes are those the disk
//! tier writes (C order, little-endian, header padded to 64 bytes), so a
//! reader checks them against the header it would write itself, byte for
//! byte, and copies the data straight into the array's buffer while
//! hashing it.

use ndarray::{ArrayD, IxDyn};

use crate::disk::npy;
use crate::element::{DType, Element};
use crate::key::Fingerprint;
use crate::sign::{Digests, Mac, Signer};
use crate::value::{AnyArray, Wrap};

const MAGIC: &[u8; 4] = b"NDCR";
/// The remote format version (also in every key: `r1`).
pub(crate) const FORMAT: u8 = 1;
const FIXED: usize = 80;
/// The longest header accepted (64 axes and 2 × 64 KiB of names).
const MAX_HEADER: usize = FIXED + 8 * 64 + 2 * (2 + 65_535) + 32 + 8;
/// What the MAC of a remote entry starts with.
pub(crate) const MAC_DOMAIN: &str = "ndcache remote entry v1";

/// Bytes copied (and hashed) at a time: hashed while still in the cache.
const PIECE: usize = 256 << 10;

/// What a remote entry says about its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) chunked: bool,
    pub(crate) key: Fingerprint,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    pub(crate) checksum: u128,
    pub(crate) npy_len: u64,
    pub(crate) compute_ns: u64,
    pub(crate) chunk_bytes: u32,
    pub(crate) chunks: u32,
    pub(crate) write_id: u64,
    pub(crate) kernel: String,
    pub(crate) version: String,
    pub(crate) tag: Option<[u8; 32]>,
}

fn dtype_code(d: DType) -> u8 {
    match d {
        DType::F32 => 0,
        DType::F64 => 1,
        DType::I32 => 2,
        DType::I64 => 3,
    }
}

fn dtype_of(code: u8) -> Option<DType> {
    DType::ALL.into_iter().find(|d| dtype_code(*d) == code)
}

impl Header {
    /// The header bytes up to the tag (what the MAC covers before the
    /// payload), with the length field set for `signed`.
    fn body(&self, signed: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED + 8 * self.shape.len() + 64);
        b.extend_from_slice(MAGIC);
        b.push(FORMAT);
        b.push(u8::from(self.chunked));
        b.push(u8::from(signed));
        b.push(dtype_code(self.dtype));
        b.push(self.shape.len() as u8);
        b.extend_from_slice(&[0; 3]);
        b.extend_from_slice(&[0; 4]); // length, below
        b.extend_from_slice(&self.key.as_u128().to_le_bytes());
        b.extend_from_slice(&self.checksum.to_le_bytes());
        b.extend_from_slice(&self.npy_len.to_le_bytes());
        b.extend_from_slice(&self.compute_ns.to_le_bytes());
        b.extend_from_slice(&self.chunk_bytes.to_le_bytes());
        b.extend_from_slice(&self.chunks.to_le_bytes());
        b.extend_from_slice(&self.write_id.to_le_bytes());
        for d in &self.shape {
            b.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        for s in [&self.kernel, &self.version] {
            let n = s.len().min(u16::MAX as usize);
            b.extend_from_slice(&(n as u16).to_le_bytes());
            b.extend_from_slice(&s.as_bytes()[..n]);
        }
        let total = b.len() + if signed { 32 } else { 0 } + 8;
        b[12..16].copy_from_slice(&(total as u32).to_le_bytes());
        b
    }

    /// The encoded header; with `signer`, signed over the header and `npy`
    /// (the `.npy` bytes this header describes).
    pub(crate) fn encode(&self, signer: Option<&Signer>, npy: &[u8]) -> Vec<u8> {
        let mut b = self.body(signer.is_some());
        if let Some(s) = signer {
            let mut mac = s.mac(MAC_DOMAIN);
            mac.update(&b);
            mac.update(npy);
            b.extend_from_slice(&mac.tag());
        }
        let check = crate::hash::xxh3_64(&b);
        b.extend_from_slice(&check.to_le_bytes());
        b
    }

    /// Decodes the header at the start of `bytes`; returns it and its
    /// length. The error says what is wrong.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Header, usize), String> {
        if bytes.len() < FIXED + 8 || &bytes[..4] != MAGIC {
            return Err("not an ndcache remote entry".into());
        }
        if bytes[4] != FORMAT {
            return Err(format!("unsupported remote format {}", bytes[4]));
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let len = u32_at(12) as usize;
        if len > bytes.len() || !(FIXED + 8..=MAX_HEADER).contains(&len) {
            return Err("the header length is out of range".into());
        }
        let check = u64_at(len - 8);
        if check != crate::hash::xxh3_64(&bytes[..len - 8]) {
            return Err("the header's own checksum does not match".into());
        }
        let (kind, flags) = (bytes[5], bytes[6]);
        if kind > 1 || flags > 1 || bytes[9..12] != [0; 3] {
            return Err("invalid kind or flags in the header".into());
        }
        let dtype = dtype_of(bytes[7]).ok_or("invalid dtype in the header")?;
        let ndim = bytes[8] as usize;
        let mut at = FIXED;
        let need = |at: usize, n: usize| {
            if at + n > len - 8 {
                Err("the header is truncated".to_owned())
            } else {
                Ok(())
            }
        };
        need(at, 8 * ndim)?;
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            shape.push(usize::try_from(u64_at(at)).map_err(|_| "shape too large")?);
            at += 8;
        }
        let mut text = || -> Result<String, String> {
            need(at, 2)?;
            let n = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
            at += 2;
            need(at, n)?;
            let s = std::str::from_utf8(&bytes[at..at + n])
                .map_err(|_| "a name in the header is not UTF-8")?
                .to_owned();
            at += n;
            Ok(s)
        };
        let kernel = text()?;
        let version = text()?;
        let tag = if flags & 1 == 1 {
            need(at, 32)?;
            let t: [u8; 32] = bytes[at..at + 32].try_into().expect("32 bytes");
            at += 32;
            Some(t)
        } else {
            None
        };
        if at + 8 != len {
            return Err("the header length does not match its fields".into());
        }
        let h = Header {
            chunked: kind == 1,
            key: Fingerprint::from_u128(u128::from_le_bytes(
                bytes[16..32].try_into().expect("16 bytes"),
            )),
            dtype,
            shape,
            checksum: u128::from_le_bytes(bytes[32..48].try_into().expect("16 bytes")),
            npy_len: u64_at(48),
            compute_ns: u64_at(56),
            chunk_bytes: u32_at(64),
            chunks: u32_at(68),
            write_id: u64_at(72),
            kernel,
            version,
            tag,
        };
        let expected_chunks = if h.chunked {
            if h.chunk_bytes == 0 {
                return Err("a manifest with a zero chunk size".into());
            }
            h.npy_len.div_ceil(u64::from(h.chunk_bytes))
        } else {
            0
        };
        if u64::from(h.chunks) != expected_chunks {
            return Err("the number of chunks does not match the length".into());
        }
        Ok((h, len))
    }

    /// The `.npy` header the writer wrote for this dtype and shape, and
    /// the number of data bytes after it; `None` if the shape cannot exist.
    fn npy_layout(&self) -> Option<(Vec<u8>, usize)> {
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        let data = n.checked_mul(self.dtype.size())?;
        if data > isize::MAX as usize {
            return None;
        }
        Some((npy::header_bytes(self.dtype, &self.shape), data))
    }
}

/// Encodes `value` for `key`: the `.npy` bytes and their checksum.
pub(crate) fn npy_bytes(value: &AnyArray) -> (Vec<u8>, u128) {
    let mut out = Vec::with_capacity(value.nbytes() as usize + 256);
    let mut digests = Digests::new(None);
    // Writing to a Vec cannot fail.
    let _ = npy::write_array_digests(&mut out, value, &mut digests);
    (out, digests.xxh3.digest128())
}

/// Rebuilds a result from a stream of `.npy` bytes pushed in pieces,
/// checking them against the header: the `.npy` header byte for byte, the
/// length, the checksum and (when entries are signed) the tag.
pub(crate) struct Assembler {
    header: Header,
    npy_header: Vec<u8>,
    /// Bytes pushed so far.
    pos: usize,
    digests: Digests,
    buf: Buffer,
}

enum Buffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

fn zeros<T: Element>(n: usize) -> Vec<T> {
    vec![T::default(); n]
}

impl Buffer {
    fn new(dtype: DType, n: usize) -> Buffer {
        match dtype {
            DType::F32 => Buffer::F32(zeros(n)),
            DType::F64 => Buffer::F64(zeros(n)),
            DType::I32 => Buffer::I32(zeros(n)),
            DType::I64 => Buffer::I64(zeros(n)),
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        match self {
            Buffer::F32(v) => bytemuck::cast_slice_mut(v),
            Buffer::F64(v) => bytemuck::cast_slice_mut(v),
            Buffer::I32(v) => bytemuck::cast_slice_mut(v),
            Buffer::I64(v) => bytemuck::cast_slice_mut(v),
        }
    }
}

fn array<T: Element>(shape: &[usize], v: Vec<T>) -> Option<AnyArray> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), v).ok()?;
    Some(T::wrap_arc(a.into_shared()))
}

impl Assembler {
    /// An assembler for the result `header` describes; `signer` when
    /// entries are signed. An error if the header is inconsistent or not
    /// signed when it must be.
    pub(crate) fn new(
        header: Header,
        header_bytes: &[u8],
        signer: Option<&Signer>,
    ) -> Result<Assembler, Damage> {
        let (npy_header, data) = header
            .npy_layout()
            .ok_or_else(|| Damage::Corrupt("the shape in the header is too large".into()))?;
        if header.npy_len != (npy_header.len() + data) as u64 {
            return Err(Damage::Corrupt(
                "the length in the header does not match its dtype and shape".into(),
            ));
        }
        let mac: Option<Mac> = match (signer, &header.tag) {
            (None, _) => None,
            (Some(_), None) => return Err(Damage::Forged("the entry is not signed".into())),
            (Some(s), Some(_)) => {
                let mut m = s.mac(MAC_DOMAIN);
                // The tag covers the header up to the tag itself.
                m.update(&header_bytes[..header_bytes.len() - 40]);
                Some(m)
            }
        };
        let n = data / header.dtype.size();
        Ok(Assembler {
            buf: Buffer::new(header.dtype, n),
            header,
            npy_header,
            pos: 0,
            digests: Digests::new(mac),
        })
    }

    /// Appends the next bytes of the `.npy` stream.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), Damage> {
        if (self.pos + bytes.len()) as u64 > self.header.npy_len {
            return Err(Damage::Corrupt("more bytes than the header says".into()));
        }
        for piece in bytes.chunks(PIECE) {
            self.digests.update(piece);
            let mut piece = piece;
            let h = self.npy_header.len();
            if self.pos < h {
                let n = piece.len().min(h - self.pos);
                if piece[..n] != self.npy_header[self.pos..self.pos + n] {
                    return Err(Damage::Corrupt(
                        "the .npy header does not match the entry's header".into(),
                    ));
                }
                self.pos += n;
                piece = &piece[n..];
            }
            if !piece.is_empty() {
                let at = self.pos - h;
                self.buf.bytes()[at..at + piece.len()].copy_from_slice(piece);
                self.pos += piece.len();
            }
        }
        Ok(())
    }

    /// The result, if every byte came and every check passes.
    pub(crate) fn finish(self) -> Result<AnyArray, Damage> {
        if self.pos as u64 != self.header.npy_len {
            return Err(Damage::Corrupt("the value is truncated".into()));
        }
        if self.digests.xxh3.digest128() != self.header.checksum {
            return Err(Damage::Corrupt("the checksum does not match".into()));
        }
        if let (Some(mac), Some(tag)) = (&self.digests.mac, &self.header.tag) {
            if !mac.verify(tag) {
                return Err(Damage::Forged("the signature does not match".into()));
            }
        }
        let shape = &self.header.shape;
        let a = match self.buf {
            Buffer::F32(v) => array(shape, v),
            Buffer::F64(v) => array(shape, v),
            Buffer::I32(v) => array(shape, v),
            Buffer::I64(v) => array(shape, v),
        };
        a.ok_or_else(|| Damage::Corrupt("the shape does not fit the data".into()))
    }
}

/// Why a remote entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Missing chunk, bad checksum, inconsistent header...
    Corrupt(String),
    /// Entries are signed and this one's tag is missing or wrong.
    Forged(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &AnyArray, npy: &[u8], checksum: u128) -> Header {
        Header {
            chunked: false,
            key: Fingerprint::from_u128(42),
            dtype: value.dtype(),
            shape: value.shape().to_vec(),
            checksum,
            npy_len: npy.len() as u64,
            compute_ns: 1234,
            chunk_bytes: 0,
            chunks: 0,
            write_id: 0,
            kernel: "exp".into(),
            version: "1".into(),
            tag: None,
        }
    }

    fn round_trip(value: &AnyArray, signer: Option<&Signer>, pieces: usize) -> AnyArray {
        let (npy, checksum) = npy_bytes(value);
        let h = header(value, &npy, checksum);
        let bytes = h.encode(signer, &npy);
        let (decoded, len) = Header::decode(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(decoded.tag.is_some(), signer.is_some());
        let mut a = Assembler::new(decoded, &bytes, signer).unwrap();
        for p in npy.chunks(npy.len().div_ceil(pieces).max(1)) {
            a.push(p).unwrap();
        }
        a.finish().unwrap()
    }

    #[test]
    fn values_round_trip_bit_for_bit() {
        let s = Signer::new(b"k").unwrap();
        let values = [
            AnyArray::from(ndarray::array![[1.0f64, -0.0], [f64::NAN, 1e300]]),
            AnyArray::from(ndarray::Array1::<f32>::zeros(0)),
            AnyArray::from(ndarray::arr0(7i64)),
            AnyArray::from(ndarray::Array::from_shape_fn((3, 5, 7), |(i, j, k)| {
                (i * 100 + j * 10 + k) as i32
            })),
            AnyArray::from(ndarray::Array2::<f64>::zeros((3, 4)).reversed_axes()),
        ];
        for v in &values {
            for signer in [None, Some(&s)] {
                for pieces in [1, 3, 1000] {
                    assert!(round_trip(v, signer, pieces).bitwise_eq(v));
                }
            }
        }
    }

    #[test]
    fn damage_is_refused() {
        let v = AnyArray::from(ndarray::Array1::linspace(0.0f64, 1.0, 100));
        let (npy, checksum) = npy_bytes(&v);
        let h = header(&v, &npy, checksum);
        let bytes = h.encode(None, &npy);
        // Every single-bit flip of the header.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(Header::decode(&b).is_err(), "flip at {i} accepted");
        }
        // A flip of the payload: caught by the checksum.
        let (decoded, _) = Header::decode(&bytes).unwrap();
        for i in [0, 100, npy.len() - 1] {
            let mut p = npy.clone();
            p[i] ^= 0x10;
            let mut a = Assembler::new(decoded.clone(), &bytes, None).unwrap();
            let r = a.push(&p).and_then(|()| a.finish().map(drop));
            assert!(matches!(r, Err(Damage::Corrupt(_))), "payload flip at {i}");
        }
        // Truncated.
        let mut a = Assembler::new(decoded.clone(), &bytes, None).unwrap();
        a.push(&npy[..npy.len() - 1]).unwrap();
        assert!(a.finish().is_err());
    }

    #[test]
    fn signatures_are_checked() {
        let good = Signer::new(b"team").unwrap();
        let evil = Signer::new(b"not the team").unwrap();
        let v = AnyArray::from(ndarray::array![1i32, 2, 3]);
        let (npy, checksum) = npy_bytes(&v);
        let h = header(&v, &npy, checksum);
        for (writer, why) in [(None, "unsigned"), (Some(&evil), "wrong key")] {
            let bytes = h.encode(writer, &npy);
            let (decoded, _) = Header::decode(&bytes).unwrap();
            let r = Assembler::new(decoded, &bytes, Some(&good)).and_then(|mut a| {
                a.push(&npy)?;
                a.finish()
            });
            assert!(matches!(r, Err(Damage::Forged(_))), "{why}: {r:?}");
        }
        // A reader without the secret accepts signed entries (it cannot check them).
        let bytes = h.encode(Some(&good), &npy);
        let (decoded, _) = Header::decode(&bytes).unwrap();
        let mut a = Assembler::new(decoded, &bytes, None).unwrap();
        a.push(&npy).unwrap();
        assert!(a.finish().unwrap().bitwise_eq(&v));
    }
}
