//! Step 3 of the tour, with more room: what goes into an array's key.
//!
//! Python code keys arrays with `a.tobytes()` (slow to hash, and the bytes of
//! a Fortran-order array differ from its C-order twin's unless you copy) or
//! with joblib's md5 hasher (about 0.6 GB/s). ndcache hashes dtype, shape and
//! the logical contents with xxh3, in parallel, without copying.
//!
//! Run: `cargo run --release --example cache_keys`

use std::time::Instant;

use ndarray::{s, Array, Array1, Array2, Array3, ShapeBuilder};
use ndcache::fingerprint;

fn main() {
    let c = Array2::from_shape_fn((4, 5), |(i, j)| (i * 5 + j) as f64);
    let mut f = Array2::zeros((4, 5).f());
    f.assign(&c);
    let big = Array2::from_shape_fn((8, 10), |(i, j)| ((i / 2) * 5 + j / 2) as f64);
    let strided = big.slice(s![..;2, ..;2]);
    let t = c.t().to_owned();
    println!("C order              {}", fingerprint(&c));
    println!("Fortran order        {}", fingerprint(&f));
    println!("strided view         {}", fingerprint(&strided));
    println!("transpose's .t()     {}", fingerprint(&t.t()));
    println!(
        "the transpose itself {}  (a different array)",
        fingerprint(&t)
    );
    println!(
        "same values as f32   {}",
        fingerprint(&c.mapv(|v| v as f32))
    );
    println!(
        "same values as i64   {}",
        fingerprint(&c.mapv(|v| v as i64))
    );
    println!(
        "shape (20,)          {}",
        fingerprint(&c.clone().into_shape_with_order(20).expect("20 elements"))
    );
    println!(
        "shape (5,4)          {}",
        fingerprint(
            &c.clone()
                .into_shape_with_order((5, 4))
                .expect("20 elements")
        )
    );
    let zero = Array1::from(vec![0.0f64]);
    let neg_zero = Array1::from(vec![-0.0f64]);
    let nan = Array1::from(vec![f64::NAN]);
    let other_nan = Array1::from(vec![f64::from_bits(f64::NAN.to_bits() | 1)]);
    println!(
        "\n[0.0] {}\n[-0.0] {}",
        fingerprint(&zero),
        fingerprint(&neg_zero)
    );
    println!(
        "[NaN] {}\n[NaN with another payload] {}",
        fingerprint(&nan),
        fingerprint(&other_nan)
    );
    println!("(bitwise keys: a kernel may treat these differently, so they never share a result)");

    // The key does not depend on how many threads hash it.
    let x = Array3::from_shape_fn((64, 256, 512), |(i, j, k)| (i * j + k) as f32);
    let keys: Vec<String> = [1, 2, 4]
        .iter()
        .map(|&n| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("pool");
            pool.install(|| fingerprint(&x).to_string())
        })
        .collect();
    println!(
        "\n32 MB f32 on 1, 2, 4 threads: {}",
        if keys.iter().all(|k| *k == keys[0]) {
            "one key"
        } else {
            "DIFFERENT KEYS"
        }
    );

    // Throughput against a memcpy of the same bytes.
    let fast = std::env::var_os("NDCACHE_FAST").is_some();
    let n: usize = if fast { 1 << 20 } else { 1 << 24 };
    let a = Array::from_shape_fn(n, |i| i as f64);
    let mut dst = vec![0.0; n];
    let best = |f: &mut dyn FnMut()| {
        (0..9)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let gb = (n * 8) as f64 / 1e9;
    let t_copy = best(&mut || dst.copy_from_slice(a.as_slice().expect("contiguous")));
    let t_fp = best(&mut || {
        std::hint::black_box(fingerprint(&a));
    });
    let bytes: &[u8] = bytemuck_bytes(a.as_slice().expect("contiguous"));
    let t_xxh = best(&mut || {
        std::hint::black_box(xxh3(bytes));
    });
    println!(
        "\n{} MB: fingerprint {:.1} GB/s, one-thread xxh3 {:.1} GB/s, memcpy {:.1} GB/s",
        (n * 8) >> 20,
        gb / t_fp,
        gb / t_xxh,
        gb / t_copy
    );
}

fn bytemuck_bytes(v: &[f64]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn xxh3(b: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(b)
}
