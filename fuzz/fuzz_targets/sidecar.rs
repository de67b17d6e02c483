//! Sidecar parsing (`EntryMeta`, src/disk/meta.rs) on arbitrary text.
//!
//! Beyond "no panic": a sidecar that parses re-serializes to text that
//! parses to the same value, and that text is a fixed point. Most mutations
//! break the sidecar's own `end xxh3-64:` checksum and would stop at that
//! check, so each input is also tried with its body resealed (everything
//! before its last `end ` line, plus a correct `end` line), which reaches
//! the field parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndcache::disk::EntryMeta;
use xxhash_rust::xxh3::xxh3_64;

fn check(text: &str) {
    if let Ok(meta) = EntryMeta::fuzz_parse(text) {
        let again = meta.fuzz_to_text();
        let back = EntryMeta::fuzz_parse(&again)
            .unwrap_or_else(|e| panic!("re-serialized sidecar refused ({e}):\n{again}"));
        assert_eq!(back, meta, "{again}");
        assert_eq!(back.fuzz_to_text(), again);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
    let body = match text.rfind("end ") {
        Some(i) if i == 0 || text.as_bytes()[i - 1] == b'\n' => &text[..i],
        _ => text,
    };
    check(&format!(
        "{body}end xxh3-64:{:016x}\n",
        xxh3_64(body.as_bytes())
    ));
});
