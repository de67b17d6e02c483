//! The sidecar: a small, strictly parsed text record per entry (format in
//! [`EntryMeta`]'s docs).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::hash::xxh3_64;

use super::layout::parse_key;
use crate::element::DType;
use crate::key::Fingerprint;

const MAGIC_LINE: &str = "ndcache-entry 1";

/// The longest sidecar accepted (kernel names are short; this only bounds
/// what a garbage file can make us read).
pub(crate) const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

/// What the caller of [`DiskTier::put`](super::DiskTier::put) knows about a
/// result: which kernel computed it and how long that took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The kernel's name.
    pub kernel: String,
    /// The kernel's version.
    pub version: String,
    /// How long the computation took (what a hit saves).
    pub compute_time: Duration,
}

impl EntryInfo {
    /// Describes a result of `kernel` at `version` computed in `compute_time`.
    pub fn new(
        kernel: impl Into<String>,
        version: impl Into<String>,
        compute_time: Duration,
    ) -> Self {
        EntryInfo {
            kernel: kernel.into(),
            version: version.into(),
            compute_time,
        }
    }
}

/// The metadata of a disk entry, as recorded in its sidecar.
///
/// # Sidecar format
///
/// ```text
/// ndcache-entry 1
/// key 5d41402abc4b2a76b9719d911017c592
/// kernel exp
/// version 1
/// dtype <f8
/// shape [1000,3]
/// payload_bytes 24128
/// checksum xxh3-128:9c3e4e64e0a5bd0b0e4b7c2fd7c1a3f4
/// compute_ns 1834000
/// created_ns 1760000000123456789
/// end xxh3-64:0123456789abcdef
/// ```
///
/// Every line is required, in this order, once; the record ends with a
/// newline. One line is optional: a signed entry (written with a secret,
/// see [`ArrayCacheBuilder::secret`](crate::ArrayCacheBuilder::secret))
/// has `sig blake3:<64 hex digits>` between `created_ns` and `end`: the
/// keyed BLAKE3 of the payload file followed by every sidecar byte before
/// the `sig` line. (ndcache before signing existed reads a signed sidecar
/// as damaged.) `checksum` is the xxh3-128 of the whole `.npy` payload file
/// (header and data), as `xxhash.xxh3_128_hexdigest(open(p, 'rb').read())`
/// computes it in Python. `end` is the xxh3-64 of every byte before the
/// `end` line, so a damaged sidecar is detected too. In `kernel` and
/// `version`, `%`, control characters and DEL are percent-escaped (`%0a`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryMeta {
    /// The call key.
    pub key: Fingerprint,
    /// The kernel that computed the result.
    pub kernel: String,
    /// The kernel's version.
    pub version: String,
    /// The result's dtype.
    pub dtype: DType,
    /// The result's shape.
    pub shape: Vec<usize>,
    /// xxh3-128 of the whole `.npy` payload file.
    pub checksum: u128,
    /// Length of the `.npy` payload file.
    pub payload_bytes: u64,
    /// How long the computation took.
    pub compute_time: Duration,
    /// When the entry was written.
    pub created: SystemTime,
    /// The MAC of a signed entry (see the format above), not verified by
    /// parsing.
    pub signature: Option<[u8; 32]>,
}

impl EntryMeta {
    /// The sidecar text.
    pub(crate) fn to_text(&self) -> String {
        let mut s = self.body_text();
        if let Some(sig) = &self.signature {
            let _ = writeln!(s, "sig blake3:{}", crate::sign::hex(sig));
        }
        let _ = writeln!(s, "end xxh3-64:{:016x}", xxh3_64(s.as_bytes()));
        s
    }

    /// The lines a signature covers (with the payload): all but `sig` and `end`.
    pub(crate) fn body_text(&self) -> String {
        let mut s = String::with_capacity(400);
        let shape: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        // Writing to a String cannot fail.
        let _ = write!(
            s,
            "{MAGIC_LINE}\nkey {}\nkernel {}\nversion {}\ndtype {}\nshape [{}]\n\
             payload_bytes {}\nchecksum xxh3-128:{:032x}\ncompute_ns {}\ncreated_ns {}\n",
            self.key,
            escape(&self.kernel),
            escape(&self.version),
            self.dtype.descr(),
            shape.join(","),
            self.payload_bytes,
            self.checksum,
            duration_ns(self.compute_time),
            duration_ns(self.created.duration_since(UNIX_EPOCH).unwrap_or_default()),
        );
        s
    }

    /// Parses a sidecar; the error says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<EntryMeta, String> {
        let body_end = text
            .strip_suffix('\n')
            .and_then(|t| t.rfind('\n'))
            .map(|i| i + 1)
            .ok_or("not an ndcache sidecar")?;
        let (body, end_line) = text.split_at(body_end);
        let sum = end_line
            .strip_prefix("end xxh3-64:")
            .and_then(|s| s.strip_suffix('\n'))
            .filter(|s| s.len() == 16 && is_lower_hex(s))
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or("the sidecar has no valid 'end' line")?;
        if sum != xxh3_64(body.as_bytes()) {
            return Err("the sidecar's own checksum does not match".into());
        }
        let mut lines = body.split_terminator('\n');
        let mut field = |name: &str| -> Result<&str, String> {
            let line = lines
                .next()
                .ok_or_else(|| format!("the sidecar has no '{name}' line"))?;
            line.strip_prefix(name)
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| format!("expected '{name}' in the sidecar, found '{line}'"))
        };
        if field("ndcache-entry")? != "1" {
            return Err("unsupported sidecar version".into());
        }
        let key = parse_key(field("key")?).ok_or("invalid key in the sidecar")?;
        let kernel = unescape(field("kernel")?)?;
        let version = unescape(field("version")?)?;
        let dtype_text = field("dtype")?;
        let dtype = DType::ALL
            .into_iter()
            .find(|d| d.descr() == dtype_text)
            .ok_or_else(|| format!("invalid dtype '{dtype_text}' in the sidecar"))?;
        let shape = parse_shape(field("shape")?)?;
        let payload_bytes = parse_u64(field("payload_bytes")?, "payload_bytes")?;
        let checksum = field("checksum")?
            .strip_prefix("xxh3-128:")
            .filter(|s| s.len() == 32 && is_lower_hex(s))
            .and_then(|s| u128::from_str_radix(s, 16).ok())
            .ok_or("invalid checksum in the sidecar")?;
        let compute_ns = parse_u64(field("compute_ns")?, "compute_ns")?;
        let created_ns = parse_u64(field("created_ns")?, "created_ns")?;
        let signature = match lines.next() {
            None => None,
            Some(line) => Some(
                line.strip_prefix("sig blake3:")
                    .and_then(crate::sign::parse_hex)
                    .ok_or("unexpected extra lines in the sidecar")?,
            ),
        };
        if lines.next().is_some() {
            return Err("unexpected extra lines in the sidecar".into());
        }
        Ok(EntryMeta {
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
        })
    }
}

/// The part of sidecar `text` a signature covers: everything before the
/// `sig` line (or before `end` in an unsigned sidecar).
pub(crate) fn signed_body(text: &str) -> &str {
    let cut = text
        .find("\nsig blake3:")
        .or_else(|| text.rfind("\nend "))
        .map_or(0, |i| i + 1);
    &text[..cut]
}

/// Entry points for the fuzz targets in `fuzz/` (compiled only by
/// `cargo fuzz`, which sets `--cfg fuzzing`; not part of the API).
#[cfg(fuzzing)]
impl EntryMeta {
    #[doc(hidden)]
    pub fn fuzz_parse(text: &str) -> Result<EntryMeta, String> {
        Self::parse(text)
    }

    #[doc(hidden)]
    pub fn fuzz_to_text(&self) -> String {
        self.to_text()
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_u64(s: &str, name: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid {name} '{s}' in the sidecar"));
    }
    s.parse()
        .map_err(|_| format!("invalid {name} '{s}' in the sidecar"))
}

fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("invalid shape '{s}' in the sidecar"))?;
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|d| {
            parse_u64(d, "shape")
                .and_then(|v| usize::try_from(v).map_err(|_| "shape too large".into()))
        })
        .collect()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || c.is_ascii_control() {
            let _ = write!(out, "%{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c.is_ascii_control() {
            return Err("unescaped control character in the sidecar".into());
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let hex: String = chars.by_ref().take(2).collect();
        let byte = (hex.len() == 2 && is_lower_hex(&hex))
            .then(|| u8::from_str_radix(&hex, 16).ok())
            .flatten()
            .filter(|b| *b == b'%' || b.is_ascii_control())
            .ok_or("invalid escape in the sidecar")?;
        out.push(byte as char);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EntryMeta {
        EntryMeta {
            key: Fingerprint::from_u128(0x5d41_402a_bc4b_2a76_b971_9d91_1017_c592),
            kernel: "my kernel%\n\u{e9}".into(),
            version: "1.2".into(),
            dtype: DType::F64,
            shape: vec![1000, 3],
            checksum: 0x9c3e_4e64_e0a5_bd0b_0e4b_7c2f_d7c1_a3f4,
            payload_bytes: 24128,
            compute_time: Duration::from_nanos(1_834_000),
            created: UNIX_EPOCH + Duration::from_nanos(1_760_000_000_123_456_789),
            signature: None,
        }
    }

    #[test]
    fn round_trip_and_format() {
        let m = sample();
        let text = m.to_text();
        assert!(text.starts_with("ndcache-entry 1\nkey 5d41402abc4b2a76b9719d911017c592\n"));
        assert!(text.contains("\nkernel my kernel%25%0a\u{e9}\n"));
        assert!(text.contains("\nshape [1000,3]\n"));
        assert_eq!(EntryMeta::parse(&text).unwrap(), m);
        let zero_d = EntryMeta {
            shape: vec![],
            kernel: String::new(),
            ..sample()
        };
        assert_eq!(EntryMeta::parse(&zero_d.to_text()).unwrap(), zero_d);
        let signed = EntryMeta {
            signature: Some([0xab; 32]),
            ..sample()
        };
        let text = signed.to_text();
        assert!(text.contains(&format!("\nsig blake3:{}\nend ", "ab".repeat(32))));
        assert!(text.starts_with(&signed.body_text()));
        assert_eq!(EntryMeta::parse(&text).unwrap(), signed);
    }

    #[test]
    fn any_damage_is_rejected() {
        let text = sample().to_text();
        // Every single-byte change, truncation or extension is refused.
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] ^= 0x01;
            if let Ok(s) = String::from_utf8(b) {
                assert!(EntryMeta::parse(&s).is_err(), "flip at {i} accepted");
            }
            if text.is_char_boundary(i) {
                assert!(EntryMeta::parse(&text[..i]).is_err(), "cut at {i} accepted");
            }
        }
        assert!(EntryMeta::parse(&format!("{text}x\n")).is_err());
        assert!(EntryMeta::parse("").is_err());
        assert!(EntryMeta::parse("\n\n").is_err());
    }

    #[test]
    fn strict_fields_even_with_a_valid_end_line() {
        let reseal = |body: &str| format!("{body}end xxh3-64:{:016x}\n", xxh3_64(body.as_bytes()));
        let good = sample().to_text();
        let body = &good[..good.rfind("end ").unwrap()];
        assert!(EntryMeta::parse(&reseal(body)).is_ok());
        for (from, to) in [
            ("shape [1000,3]", "shape [1000, 3]"),
            ("shape [1000,3]", "shape (1000,3)"),
            ("dtype <f8", "dtype >f8"),
            ("dtype <f8", "dtype <c16"),
            ("payload_bytes 24128", "payload_bytes +24128"),
            (
                "payload_bytes 24128",
                "payload_bytes 99999999999999999999999",
            ),
            ("version 1.2", "version 1.2\nextra 1"),
            ("kernel my", "kernel  my"),
            ("%25", "%zz"),
            ("%0a", "%41"),
        ] {
            let damaged = body.replacen(from, to, 1);
            if from == "kernel my" {
                // A leading space is part of the name, not an error.
                assert!(EntryMeta::parse(&reseal(&damaged)).is_ok());
                continue;
            }
            assert!(EntryMeta::parse(&reseal(&damaged)).is_err(), "{to}");
        }
    }
}
