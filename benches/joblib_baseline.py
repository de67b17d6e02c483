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
    for n in (1000, 100_000, 1_000_000):
        x = rng.random(n)
        y = rng.random(n)
        number = max(1, 200_000 // n)
        print(
            f"n={n:>7}: add {median_ms(lambda: np.add(x, y), number):.4f} ms"
            f"  exp {median_ms(lambda: np.exp(x), number):.4f} ms"
            f"  sum {median_ms(lambda: np.sum(x), number):.4f} ms"
            f"  sort {median_ms(lambda: np.sort(x), max(1, number // 10)):.4f} ms"
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
