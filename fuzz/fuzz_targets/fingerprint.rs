//! `Fingerprint`'s `FromStr` on arbitrary text: never panics, accepts
//! exactly 32 hex digits, and what it accepts displays (lowercase) and
//! parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndcache::Fingerprint;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let well_formed = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match s.parse::<Fingerprint>() {
        Ok(fp) => {
            assert!(well_formed, "accepted {s:?}");
            assert_eq!(Some(fp.as_u128()), u128::from_str_radix(s, 16).ok());
            let shown = fp.to_string();
            assert_eq!(shown, s.to_ascii_lowercase());
            assert_eq!(shown.parse::<Fingerprint>().ok(), Some(fp));
            assert_eq!(Fingerprint::from_u128(fp.as_u128()), fp);
        }
        Err(e) => {
            assert!(!well_formed, "refused {s:?}: {e}");
            assert!(e.to_string().contains("not a fingerprint"));
        }
    }
});
