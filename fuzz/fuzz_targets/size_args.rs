//! The CLI's size arguments (`--max-bytes 500M`), parsed by
//! `ndcache::parse_size` (src/size.rs): never panics, a plain number of
//! bytes parses to itself, a whole number of KiB (`12K`, `12KiB`) to 1024
//! times itself, and an error has a message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match ndcache::parse_size(s) {
        Ok(n) => {
            let t = s.trim();
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(v) = t.parse::<u64>() {
                    assert_eq!(n, v, "{s:?}");
                }
            }
            for unit in ["K", "k", "KiB", "KB", "kb"] {
                if let Some(digits) = t.strip_suffix(unit) {
                    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                        if let Some(v) = digits.parse::<u64>().ok().and_then(|v| v.checked_mul(1024)) {
                            assert_eq!(n, v, "{s:?}");
                        }
                    }
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "empty error for {s:?}"),
    }
});
