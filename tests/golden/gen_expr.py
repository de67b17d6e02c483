"""numpy's results for the expressions of tests/integration/expressions.rs
(`expressions_match_numpy_golden_files`).

Writes tests/golden/expr/: the inputs (x, y float64; xf float32; xi int32)
and one `<name>.npy` per expression, computed by numpy 2 the way a numpy user
writes it. Deterministic: a second run gives identical bytes.

    python3 tests/golden/gen_expr.py
"""

import os

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expr")


def main():
    os.makedirs(HERE, exist_ok=True)
    n = 5000
    i = np.arange(n)
    x = ((i * 7919) % 2003 - 1001) / 250.0
    y = np.cos(i * 0.001) + 1.5
    xf = (x * 0.75).astype(np.float32)
    xi = ((i * 37) % 201 - 100).astype(np.int32)
    m = x.reshape(50, 100)
    row = y[:100]
    cases = {
        "poly": ((0.25 * x + 0.75) * x - 1.5) * x - 2,
        "trig": 2 * np.sin(x) ** 2 + np.cos(x) * y,
        "trig_sum": np.sum(2 * np.sin(x) ** 2 + np.cos(x) * y),
        "gauss": np.exp(-((x - 0.5) ** 2) / 0.02) * y,
        "f32_mix": np.tanh(xf * 0.5) + np.sqrt(np.abs(xf)) * 2,
        "int_mix": (xi * 3 - 7) + xi / (np.abs(xi) + 1),
        "int_sum": np.sum(xi * xi - 5),
        "mean_rows": np.mean(np.exp(m / 4) - row, axis=1),
        "max_keep": np.max(np.log1p(np.abs(m)) * row, axis=-1, keepdims=True),
        "minimum_pow": np.minimum(np.abs(x) ** 1.5, y * 2),
        "var": np.var(np.sin(x) * y, ddof=1),
    }
    for name, a in {"x": x, "y": y, "xf": xf, "xi": xi}.items():
        np.save(os.path.join(HERE, f"in_{name}.npy"), a)
    for name, v in cases.items():
        np.save(os.path.join(HERE, f"{name}.npy"), np.asarray(v))
        print(name, np.asarray(v).dtype, np.asarray(v).shape)


if __name__ == "__main__":
    main()
