"""numpy and numexpr on the expressions of benches/expressions.rs.

Same expressions, sizes (1e4, 1e6, 1e7 float64) and inputs' distribution
as the Rust bench; numexpr on 2 threads. Prints one line per
(expression, library, n) with the median of repeated runs, and the
machine's CPU and numpy's SIMD levels first.

    pip install numpy numexpr
    python3 benches/expressions_numpy.py
"""

import os

os.environ.setdefault("NUMEXPR_MAX_THREADS", "2")
os.environ.setdefault("NUMEXPR_NUM_THREADS", "2")

import platform
import statistics
import subprocess
import time

import numpy as np

try:
    import numexpr as ne

    ne.set_num_threads(2)
except ImportError:  # the numpy lines still print
    ne = None

EXPRS = {
    "poly": (lambda x, y: ((0.25 * x + 0.75) * x - 1.5) * x - 2, "((0.25*x + 0.75)*x - 1.5)*x - 2"),
    "trig": (lambda x, y: 2 * np.sin(x) ** 2 + np.cos(x) * y, "2*sin(x)**2 + cos(x)*y"),
    "trig_sum": (lambda x, y: np.sum(2 * np.sin(x) ** 2 + np.cos(x) * y), "sum(2*sin(x)**2 + cos(x)*y)"),
    "gauss": (lambda x, y: np.exp(-((x - 0.5) ** 2) / 0.02) * y, "exp(-(x - 0.5)**2/0.02)*y"),
}


def median_ms(f, n):
    f()
    reps = 7 if n >= 10_000_000 else (20 if n >= 1_000_000 else 200)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main():
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name'"], capture_output=True, text=True).stdout.strip()
    print(f"# {cpu or platform.processor()}; numpy {np.__version__}; numexpr {ne.__version__ if ne else 'missing'}")
    try:
        rt = np.show_runtime  # noqa: F841
        from numpy._core._multiarray_umath import __cpu_features__ as f

        print("# numpy AVX512F:", f.get("AVX512F"), "AVX2:", f.get("AVX2"))
    except Exception:  # pragma: no cover
        pass
    rng = np.random.default_rng(1)
    for n in (10_000, 1_000_000, 10_000_000):
        x = rng.random(n)
        y = rng.random(n)
        for name, (np_f, ne_s) in EXPRS.items():
            print(f"expr/{name}/numpy/{n}\t{median_ms(lambda: np_f(x, y), n):.4f} ms")
            if ne is not None:
                env = {"x": x, "y": y}
                t = median_ms(lambda: ne.evaluate(ne_s, local_dict=env), n)
                print(f"expr/{name}/numexpr/{n}\t{t:.4f} ms")


if __name__ == "__main__":
    main()
