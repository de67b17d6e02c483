//! Byte sizes written by people: `500M`, `2GiB`, `1.5G`, `4096`.

use std::fmt;

/// Parses a byte size: a decimal number, then optionally a unit.
///
/// - The number is digits, optionally with a fractional part (`1.5`); no
///   sign, no exponent, no digit separators.
/// - The unit is `K`, `M`, `G` or `T`, optionally followed by `B` or `iB`,
///   in any case (`m`, `MB`, `MiB`, `mib` are all the same unit), or `B`
///   alone for bytes. Spaces between the number and the unit are allowed,
///   and around the whole.
/// - **Every unit is a power of 1024**: `K` = `KB` = `KiB` = 1024 bytes,
///   `M` = `MB` = `MiB` = 1024², `G` = 1024³, `T` = 1024⁴. `MB` means MiB
///   here, as in `ls -h`, and as everywhere in ndcache's messages and README;
///   there is no decimal (1000-based) unit, so `500MB` and `500MiB` never
///   mean different budgets.
/// - A fractional number of a unit is rounded down to whole bytes (`1.5K`
///   is 1536 bytes, `0.3K` is 307); a fraction of a byte (`1.5`, `2.5B`) is
///   an error.
/// - A size of more than `u64::MAX` bytes is an error, not a wrapped value.
///
/// # Examples
///
/// ```
/// use ndcache::parse_size;
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert_eq!(parse_size("500M"), Ok(500 << 20));
/// assert_eq!(parse_size("500MB"), parse_size("500MiB"));
/// assert_eq!(parse_size("2g"), Ok(2 << 30));
/// assert_eq!(parse_size("1.5K"), Ok(1536));
/// assert_eq!(parse_size("16 EiB").unwrap_err().to_string(),
///            "invalid size '16 EiB': unknown unit 'EiB' (use K, M, G or T, \
///             optionally followed by B or iB: powers of 1024)");
/// assert!(parse_size("99999999999T").is_err()); // more than u64::MAX bytes
/// ```
///
/// # Errors
///
/// A [`ParseSizeError`] naming the input and what is wrong with it.
pub fn parse_size(s: &str) -> Result<u64, ParseSizeError> {
    let err = |reason: Reason| ParseSizeError {
        input: s.to_owned(),
        reason,
    };
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..num_end], t[num_end..].trim_start());
    if num.is_empty() {
        return Err(err(if t.is_empty() {
            Reason::Empty
        } else {
            Reason::NotANumber
        }));
    }
    let (int, frac) = match num.split_once('.') {
        None => (num, ""),
        Some((i, f)) if !i.is_empty() && !f.is_empty() && !f.contains('.') => (i, f),
        Some(_) => return Err(err(Reason::NotANumber)),
    };
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            // Something that is not a unit at all ("12x3", "1e9")?
            return Err(err(if unit.chars().all(|c| c.is_ascii_alphabetic()) {
                Reason::UnknownUnit(unit.to_owned())
            } else {
                Reason::NotANumber
            }));
        }
    };
    let mult: u64 = 1 << shift;
    if shift == 0 && frac.bytes().any(|d| d != b'0') {
        return Err(err(Reason::FractionOfAByte));
    }
    let mut whole: u64 = 0;
    for d in int.bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| err(Reason::TooLarge))?;
    }
    // floor(0.frac * mult), exactly: multiply the digit string by `mult`
    // from its last digit; the carry out of the first digit is the result.
    // `mult` <= 2^40, so `9 * mult + carry` fits in a u64.
    let mut carry: u64 = 0;
    for d in frac.bytes().rev() {
        carry = (u64::from(d - b'0') * mult + carry) / 10;
    }
    whole
        .checked_mul(mult)
        .and_then(|w| w.checked_add(carry))
        .ok_or_else(|| err(Reason::TooLarge))
}

/// Why [`parse_size`] refused its input; `Display` names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSizeError {
    input: String,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Empty,
    NotANumber,
    UnknownUnit(String),
    FractionOfAByte,
    TooLarge,
}

impl ParseSizeError {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid size '{}': ", self.input)?;
        match &self.reason {
            Reason::Empty => f.write_str("it is empty (expected a size like 500M or 2G)"),
            Reason::NotANumber => f.write_str("expected a size like 4096, 500M, 1.5G or 2GiB"),
            Reason::UnknownUnit(u) => write!(
                f,
                "unknown unit '{u}' (use K, M, G or T, optionally followed by B or iB: \
                 powers of 1024)"
            ),
            Reason::FractionOfAByte => f.write_str("a fraction of a byte"),
            Reason::TooLarge => write!(f, "more than {} bytes", u64::MAX),
        }
    }
}

impl std::error::Error for ParseSizeError {}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;
    const T: u64 = 1 << 40;

    #[test]
    fn valid_sizes() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("4096B", 4096),
            ("4096 b", 4096),
            ("1K", K),
            ("1k", K),
            ("1KB", K),
            ("1KiB", K),
            ("1kib", K),
            ("500M", 500 * M),
            ("500MB", 500 * M),
            ("500MiB", 500 * M),
            ("500 MiB", 500 * M),
            ("  500m  ", 500 * M),
            ("2G", 2 * G),
            ("2GiB", 2 * G),
            ("2gb", 2 * G),
            ("3T", 3 * T),
            ("3TiB", 3 * T),
            ("1.5K", 1536),
            ("1.5G", 3 * G / 2),
            ("0.3K", 307), // 307.2, rounded down
            ("0.999999999999999999999999999999K", 1023),
            ("1.0", 1),
            ("2.000B", 2),
            ("007M", 7 * M),
            ("18446744073709551615", u64::MAX),
            ("16777215T", 16_777_215 * T),
            ("16777215.99999999999T", u64::MAX - 10),
            ("16777215.999999999999999T", u64::MAX),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_size(s), Ok(want), "{s:?}");
        }
    }

    #[test]
    fn invalid_sizes() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("lots", "expected a size"),
            ("M", "expected a size"),
            ("-1G", "expected a size"),
            ("+1G", "expected a size"),
            ("1e9", "expected a size"),
            ("1_000", "expected a size"),
            ("1,5G", "expected a size"),
            (".5G", "expected a size"),
            ("5.G", "expected a size"),
            ("1.2.3K", "expected a size"),
            ("12Q", "unknown unit 'Q'"),
            ("2 EiB", "unknown unit 'EiB'"),
            ("2Mi", "unknown unit 'Mi'"),
            ("2MBB", "unknown unit 'MBB'"),
            ("2M B", "expected a size"),
            ("1.5", "a fraction of a byte"),
            ("2.5B", "a fraction of a byte"),
            (
                "18446744073709551616",
                "more than 18446744073709551615 bytes",
            ),
            ("99999999999T", "more than"),
            ("16777216T", "more than"),
            ("16777216.0T", "more than"),
            ("99999999999999999999999999999", "more than"),
        ];
        for &(s, want) in cases {
            let e = parse_size(s).expect_err(s);
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("invalid size '{s}': ")),
                "{s:?}: {msg}"
            );
            assert!(msg.contains(want), "{s:?}: {msg}");
            assert_eq!(e.input(), s);
        }
    }
}
