//! The CLI's size arguments (`--max-bytes 500M`), parsed by
//! `ndcache::parse_size` (src/size.rs): never panics, and a plain number of
//! bytes parses to itself.
//!
//! Not in fuzz/Cargo.toml's [[bin]] list yet: `parse_size` moves from
//! src/bin/ndcache.rs into the library on another branch. Enable the
//! commented-out [[bin]] entry once `ndcache::parse_size` exists.
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
        }
        Err(e) => assert!(!e.to_string().is_empty(), "empty error for {s:?}"),
    }
});
