"""joblib.Memory and numpy baselines, measured on this machine for comparison
with the criterion benchmarks (benches/cached_vs_raw.rs, benches/disk_tier.rs).

Run: pip install numpy joblib && python3 benches/joblib_baseline.py
Prints medians in milliseconds.
"""
import shutil
import tempfile
import timeit

import numpy as np


def median_ms(stmt, number, repeat=15):
    times = timeit.repeat(stmt, number=number, repeat=repeat)
    return sorted(times)[len(times) // 2] / number * 1e3


def main():
    rng = np.random.default_rng(0)
    print("numpy", np.__version__)
    # Which SIMD numpy dispatches to (X86_V4 / AVX512_* mean AVX-512).
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
        used = ("AVX2", "FMA3", "AVX512F", "AVX512_SKX", "AVX512_ICL")
        print("numpy CPU features:", " ".join(k for k in used if feats.get(k)))
    except ImportError:
        pass
    for n in (1000, 100_000, 1_000_000):
        x = rng.random(n)
        y = rng.random(n)
        number = max(1, 200_000 // n)
        print(
            f"n={n:>7}: add {median_ms(lambda: np.add(x, y), number):.4f} ms"
            f"  exp {median_ms(lambda: np.exp(x), number):.4f} ms"
            f"  sum {median_ms(lambda: np.sum(x), number):.4f} ms"
            f"  sort {median_ms(lambda: np.sort(x), max(1, number // 10)):.4f} ms"
            f"  max {median_ms(lambda: np.max(x), number):.4f} ms"
            f"  maximum {median_ms(lambda: np.maximum(x, y), number):.4f} ms"
            f"  power {median_ms(lambda: np.power(x, y), number):.4f} ms"
        )
    try:
        import joblib
    except ImportError:
        print("joblib not installed: pip install joblib")
        return
    print("joblib", joblib.__version__)
    x = np.sin(np.arange(1 << 20) * 1e-6)  # 8 MiB of f64, as benches/disk_tier.rs
    d = tempfile.mkdtemp()
    try:
        mem = joblib.Memory(d, verbose=0)
        f = mem.cache(np.exp)
        f(x)  # populate
        hit = median_ms(lambda: f(x), 5)
        hash_only = median_ms(lambda: joblib.hash(x), 5)
        copy = median_ms(lambda: x.copy(), 20)
        print(f"joblib.Memory hit of np.exp on 8 MiB: {hit:.3f} ms"
              f" (of which joblib.hash: {hash_only:.3f} ms); numpy copy {copy:.3f} ms")
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
