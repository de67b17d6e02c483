//! Step 6 of the tour, with more room: joblib.Memory-style disk memoization,
//! with what joblib lacks: verification on every load, an automatic budget,
//! no pickle, and one computation per key across processes.
//!
//! Run: `cargo run --release --example disk_memo` (twice: the second run
//! reads everything back from disk).

use std::path::PathBuf;
use std::time::Instant;

use ndarray::Array2;
use ndcache::{ArrayCache, AsArg, Params};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var_os("NDCACHE_EXAMPLE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/cache"));
    let fast = std::env::var_os("NDCACHE_FAST").is_some();
    let n = if fast { 300 } else { 1500 };
    let cache = ArrayCache::builder()
        .disk(&dir)
        .disk_max_bytes(256 << 20)
        .build()?;
    println!("cache directory: {}", dir.display());

    let x = Array2::from_shape_fn((n, n), |(i, j)| ((i * 31 + j * 17) % 1000) as f64 / 999.0);
    let t = Instant::now();
    let sorted = cache.call("sort", &[x.arg()], &Params::new().axis(0))?;
    let sd = cache.call("std", &[sorted.arg()], &Params::new().axis(1).ddof(1))?;
    let took = t.elapsed();
    let k = cache.info().kernels;
    let computed: u64 = k.iter().map(|k| k.computed).sum();
    let disk_hits: u64 = k.iter().map(|k| k.disk_hits).sum();
    println!(
        "sort({n}x{n}, axis=0) then std(axis=1, ddof=1): {took:?}, computed {computed}, disk hits {disk_hits}"
    );
    println!(
        "first std values: {:?}",
        &sd.typed::<f64>()?.as_slice().unwrap_or(&[])[..3]
    );
    cache.flush();

    let disk = cache.disk().expect("a disk tier");
    let entries = disk.entries()?;
    println!("\n{} entries on disk:", entries.len());
    for e in &entries {
        println!(
            "  {}  {:<6} v{}  {:<8} {:?}  {} bytes  computed in {:?}",
            e.meta.key,
            e.meta.kernel,
            e.meta.version,
            e.meta.dtype.name(),
            e.meta.shape,
            e.bytes,
            e.meta.compute_time
        );
    }

    // Damage one entry on purpose (the sort, a large entry: a plain .npy
    // file; small ones are rows of the cache's SQLite store): the next load
    // detects it, removes it, and the call recomputes the right answer.
    if let Some(e) = entries.iter().find(|e| e.meta.kernel == "sort") {
        let path = disk.payload_path(e.meta.key);
        let mut bytes = std::fs::read(&path)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes)?;
        let report = disk.verify(false, |_| {})?;
        println!(
            "\nflipped one bit of {}: verify says {} ok, {} corrupt",
            path.display(),
            report.ok,
            report.corrupt.len()
        );
        let fresh = ArrayCache::builder().disk(&dir).build()?;
        let again = fresh.call("sort", &[x.arg()], &Params::new().axis(0))?;
        println!(
            "a fresh cache recomputed it: equal to the first result: {}; corrupt entries seen: {}",
            again.array().bitwise_eq(sorted.array()),
            fresh.info().disk.map_or(0, |d| d.corrupt)
        );
    }
    println!(
        "\nload a large entry with numpy: np.load('<dir>/v2/<ab>/<key>.npy') — plain .npy, no pickle;\n\
         any entry, small or large: ndcache export <key> --out r.npy --cache-dir <dir>"
    );
    Ok(())
}
