//! Writes the sample arrays of `data/` that the examples use.
//!
//! Deterministic: the same bytes on every run and every machine (a seeded
//! xorshift generator and plain IEEE arithmetic, no libm), so the test suite
//! can check that the committed files are exactly what this program writes.
//!
//! Run: `cargo run --example make_data` (writes into `data/`), or
//! `cargo run --example make_data -- DIR` to write elsewhere.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ShapeBuilder};
use ndarray_npy::write_npy;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately normal (Irwin-Hall: the sum of 12 uniforms, minus 6).
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

/// sin(x) by range reduction and a Taylor polynomial: plain arithmetic, so
/// the bits do not depend on the platform's libm.
fn det_sin(x: f64) -> f64 {
    let two_pi = 2.0 * std::f64::consts::PI;
    let mut r = x - (x / two_pi).floor() * two_pi; // [0, 2pi)
    if r > std::f64::consts::PI {
        r -= two_pi; // (-pi, pi]
    }
    let r2 = r * r;
    let mut term = r;
    let mut sum = r;
    for k in 1..12 {
        term = -term * r2 / ((2 * k) as f64 * (2 * k + 1) as f64);
        sum += term;
    }
    sum
}

/// The sample arrays, by file name.
fn write_all(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x5EED_DA7A_0000_0001);
    let mut written = Vec::new();
    let mut save = |name: &str, f: &dyn Fn(&Path) -> Result<(), ndarray_npy::WriteNpyError>| {
        let path = dir.join(name);
        f(&path)?;
        written.push(path);
        Ok::<(), Box<dyn std::error::Error>>(())
    };

    // A noisy signal: 100k samples of two sines plus noise (f64, 800 kB).
    let signal = Array1::from_shape_fn(100_000, |i| {
        let t = i as f64 / 1000.0;
        det_sin(2.0 * std::f64::consts::PI * 5.0 * t)
            + 0.5 * det_sin(2.0 * std::f64::consts::PI * 13.0 * t)
    });
    let noise: Vec<f64> = (0..signal.len()).map(|_| 0.2 * rng.normal()).collect();
    let signal = &signal + &Array1::from(noise);
    save("signal.npy", &|p| write_npy(p, &signal))?;

    // A grey image: 256 x 256 float32 (256 kB), smooth blobs plus noise.
    let noise: Vec<f32> = (0..256 * 256)
        .map(|_| (0.05 * rng.normal()) as f32)
        .collect();
    let image = Array2::from_shape_fn((256, 256), |(i, j)| {
        let (x, y) = (i as f64 / 255.0, j as f64 / 255.0);
        let d1 = (x - 0.3) * (x - 0.3) + (y - 0.4) * (y - 0.4);
        let d2 = (x - 0.7) * (x - 0.7) + (y - 0.6) * (y - 0.6);
        (1.0 / (1.0 + 40.0 * d1) + 0.6 / (1.0 + 80.0 * d2)) as f32 + noise[i * 256 + j]
    });
    save("image.npy", &|p| write_npy(p, &image))?;

    // Event counts: 50k int32 values, roughly Poisson-like around 20.
    let counts = Array1::from_shape_fn(50_000, |_| {
        (20.0 + 4.5 * rng.normal()).round().max(0.0) as i32
    });
    save("counts.npy", &|p| write_npy(p, &counts))?;

    // A Fortran-order matrix (as written by Fortran or MATLAB code): 200 x 300 f64.
    let values: Vec<f64> = (0..200 * 300)
        .map(|_| rng.uniform() * 100.0 - 50.0)
        .collect();
    let fortran = Array2::from_shape_vec((200, 300).f(), values)?;
    save("fortran.npy", &|p| write_npy(p, &fortran))?;

    // A tiny int64 table, easy to read in a terminal.
    let small = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as i64 - 5);
    save("small.npy", &|p| write_npy(p, &small))?;

    Ok(written)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("data"));
    for path in write_all(&dir)? {
        let len = std::fs::metadata(&path)?.len();
        println!("wrote {} ({} bytes)", path.display(), len);
    }
    Ok(())
}
