//! Step 5 of the tour, with more room: Python's `@functools.cached_property`.
//!
//! A struct computes expensive attributes on first use and keeps them. In
//! Rust this is std's `OnceLock`: thread-safe, computed exactly once even when
//! several threads ask at the same time, and free afterwards.
//!
//! Run: `cargo run --release --example cached_property`

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use ndarray::{ArcArray, IxDyn};
use ndcache::{AnyView, Params, Registry};

/// An image with lazily computed, cached statistics.
struct Image {
    pixels: ArcArray<f32, IxDyn>,
    registry: Registry,
    histogram: OnceLock<Vec<u64>>,
    sorted: OnceLock<Vec<f32>>,
    computations: AtomicUsize,
}

impl Image {
    fn new(pixels: ArcArray<f32, IxDyn>) -> Self {
        Image {
            pixels,
            registry: Registry::with_builtins(),
            histogram: OnceLock::new(),
            sorted: OnceLock::new(),
            computations: AtomicUsize::new(0),
        }
    }

    /// The pixel values in ascending order (computed once).
    fn sorted(&self) -> &[f32] {
        self.sorted.get_or_init(|| {
            self.computations.fetch_add(1, Ordering::SeqCst);
            let flat = self
                .pixels
                .view()
                .into_shape_with_order(self.pixels.len())
                .expect("contiguous");
            let s = self
                .registry
                .call("sort", &[AnyView::from(flat)], &Params::new())
                .expect("sort");
            s.typed::<f32>().expect("f32").iter().copied().collect()
        })
    }

    /// The median pixel: derived from another cached property.
    fn median(&self) -> f32 {
        let s = self.sorted();
        s[s.len() / 2]
    }

    /// A 16-bin histogram over [min, max] (computed once).
    fn histogram(&self) -> &[u64] {
        self.histogram.get_or_init(|| {
            self.computations.fetch_add(1, Ordering::SeqCst);
            let s = self.sorted();
            let (lo, hi) = (s[0], s[s.len() - 1]);
            let mut bins = vec![0u64; 16];
            for &v in s {
                let b = (((v - lo) / (hi - lo)) * 16.0) as usize;
                bins[b.min(15)] += 1;
            }
            bins
        })
    }
}

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/image.npy");
    let pixels = ndcache::disk::read_npy(&path)
        .and_then(|a| a.to_shared::<f32>())
        .expect("data/image.npy (regenerate with `cargo run --example make_data`)");
    let img = Image::new(pixels);
    for i in 1..=3 {
        let t = Instant::now();
        let median = img.median();
        let hist = img.histogram();
        println!(
            "access {i}: median {median:.4}, histogram peak bin {} ({} px), {:?}, computations so far: {}",
            hist.iter().enumerate().max_by_key(|(_, c)| **c).map_or(0, |(b, _)| b),
            hist.iter().max().unwrap_or(&0),
            t.elapsed(),
            img.computations.load(Ordering::SeqCst)
        );
    }
    // Four threads race for a fresh image's properties: each is computed once.
    let img = Image::new(img.pixels.clone());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| img.histogram().len());
        }
    });
    println!(
        "4 threads asked at once: {} computations (sorted + histogram)",
        img.computations.load(Ordering::SeqCst)
    );
}
