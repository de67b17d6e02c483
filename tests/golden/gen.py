#!/usr/bin/env python3
"""numpy golden files for ndcache's kernel parity tests.

Run from anywhere (needs numpy; written with numpy 2.4):

    python3 tests/golden/gen.py

It rewrites tests/golden/in/*.npy (inputs, named by a hash of their bytes so
shared inputs are stored once), tests/golden/out/*.npy (numpy's results) and
tests/golden/manifest.tsv (one case per line; the format is described in the
manifest's header). tests/integration/golden.rs reads them and holds the
builtin kernels to numpy. Every random draw is seeded, so running it twice
gives identical files.

Inputs of ~200k elements are not stored: the manifest names them as
`synth:KIND:N:SEED` and both sides compute them from an integer hash with
exact arithmetic only (see `synth` below and its twin in golden.rs; the
`synth` group of cases checks that the two agree). Large results are stored
sampled: every STEP-th element in logical (row-major) order.

The transcendental results are checked here against the C library
(glibc through ctypes, which is what Rust's f64::sin and friends call): a
case whose numpy value is more than 4 ulp from libm is reported, since a
kernel built on Rust's std could not match it within the test's tolerance.
"""

import ctypes
import hashlib
import io
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IN_DIR = HERE / "in"
OUT_DIR = HERE / "out"
MANIFEST = HERE / "manifest.tsv"

CODES = {"f4": np.float32, "f8": np.float64, "i4": np.int32, "i8": np.int64}
CODE_OF = {np.dtype(t): c for c, t in CODES.items()}
FLOATS = ["f4", "f8"]
INTS = ["i4", "i8"]
ALL = ["f4", "f8", "i4", "i8"]

UNARY = ["negative", "absolute", "square", "sqrt", "exp", "expm1", "log",
         "log1p", "sin", "cos", "tan", "tanh"]
BINARY = ["add", "subtract", "multiply", "divide", "power", "maximum",
          "minimum"]
REDUCE = ["sum", "prod", "mean", "min", "max", "var", "std"]

# Results larger than this are stored sampled.
FULL_LIMIT = 256
MEDIUM_STEP = 11
BIG_STEP = 499
MEDIUM_N = 3001
BIG_N = 200_000


# ---------------------------------------------------------------- inputs

def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def fmt_shape(shape):
    return "x".join(str(d) for d in shape) if len(shape) else "()"


def parse_shape(s):
    return () if s == "()" else tuple(int(d) for d in s.split("x"))


def apply_op(arr, op):
    """The view operations of the manifest; golden.rs applies the same."""
    name, _, arg = op.partition(":")
    if name == "T":
        return arr.T
    if name == "perm":
        return arr.transpose([int(a) for a in arg.split(".")])
    if name == "step":
        ax, k = (int(a) for a in arg.split(":"))
        idx = [slice(None)] * arr.ndim
        idx[ax] = slice(None, None, k)
        return arr[tuple(idx)]
    if name == "bcast":
        return np.broadcast_to(arr, parse_shape(arg))
    if name == "reshape":
        assert arr.flags.c_contiguous
        return arr.reshape(parse_shape(arg))
    raise ValueError(op)


class Input:
    def __init__(self, spec, value):
        self.spec = spec
        self.value = value

    def code(self):
        return self.spec.split(":", 1)[0]


def with_ops(spec, arr, ops):
    for op in ops:
        arr = apply_op(arr, op)
    if ops:
        spec += "[" + ",".join(ops) + "]"
    return Input(spec, arr)


_written = set()


def stored(arr, ops=()):
    """An input stored as a .npy file (Fortran order is kept by np.save)."""
    arr = np.asarray(arr)
    code = CODE_OF[arr.dtype]
    data = npy_bytes(arr)
    name = hashlib.sha256(data).hexdigest()[:12]
    if name not in _written:
        (IN_DIR / (name + ".npy")).write_bytes(data)
        _written.add(name)
    return with_ops(f"{code}:in/{name}", arr, ops)


M32 = 0xFFFFFFFF


def _mix(k, s):
    # A 32-bit integer hash (murmur3's finalizer over k*phi + s). All
    # products stay below 2**64, so uint64 numpy and u64 Rust agree.
    x = (k * np.uint64(0x9E3779B1) + np.uint64((s * 0x85EBCA77 + 0x165667B1) & M32)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & np.uint64(M32)
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    return x


def synth_values(code, kind, n, seed):
    """A 1-d array computed by exact operations only (twin in golden.rs).

    wide  (floats): full-precision mantissas times 2**(-8..7), zero mean
    near1 (floats): 1 + j * 2**-20 with |j| <= 1024 (for products)
    small (any):    integers in [-1000, 1000]
    odd   (any):    one of -3, -1, 1, 3, 5 (integer products that wrap
                    without collapsing to 0)
    full  (ints):   the full range of the integer type
    """
    k = np.arange(n, dtype=np.uint64)
    h1 = _mix(k, 2 * seed)
    h2 = _mix(k, 2 * seed + 1)
    e = (h2 & np.uint64(15)).astype(np.int64) - 8
    if kind == "wide" and code == "f8":
        m = ((h1 << np.uint64(21)) | (h2 >> np.uint64(11))).astype(np.int64) - 2**52
        return np.ldexp(m.astype(np.float64), (e - 52).astype(np.int32))
    if kind == "wide" and code == "f4":
        m = (h1 >> np.uint64(8)).astype(np.int64) - 2**23
        return np.ldexp(m.astype(np.float32), (e - 23).astype(np.int32)).astype(np.float32)
    if kind == "near1" and code in FLOATS:
        j = (h1 & np.uint64(2047)).astype(np.int64) - 1024
        return (1.0 + j * 2.0**-20).astype(CODES[code])
    if kind == "small":
        return ((h1 % np.uint64(2001)).astype(np.int64) - 1000).astype(CODES[code])
    if kind == "odd":
        return ((h1 % np.uint64(5)).astype(np.int64) * 2 - 3).astype(CODES[code])
    if kind == "full" and code == "i4":
        return h1.astype(np.uint32).view(np.int32)
    if kind == "full" and code == "i8":
        return ((h1 << np.uint64(32)) | h2).view(np.int64)
    raise ValueError((code, kind))


def synth(code, kind, n, seed, ops=()):
    arr = synth_values(code, kind, n, seed)
    assert arr.dtype == CODES[code]
    return with_ops(f"{code}:synth:{kind}:{n}:{seed}", arr, ops)


def rng_for(tag):
    return np.random.default_rng(zlib.crc32(tag.encode()))


# ------------------------------------------------------------ base arrays

F64_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-310, -5e-324,
               2.2250738585072014e-308, 1.7976931348623157e308,
               -1.7976931348623157e308, np.inf, -np.inf, np.nan, -np.nan,
               1e10, -1e-10, np.pi, 700.0, -745.5, 710.0, 1e300, -1e-300,
               0.7853981633974483, 1e-8, -20.0, 20.0, 100.0, 1.5707963267948966]
F32_SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-40, -1.4e-45,
               1.1754944e-38, 3.4028235e38, -3.4028235e38, np.inf, -np.inf,
               np.nan, -np.nan, 1e10, -1e-10, np.pi, 88.0, -103.5, 89.0,
               1e30, -1e-30, 0.7853982, 1e-8, -20.0, 20.0, 100.0, 1.5707964]
I32_SPECIAL = [0, 1, -1, 2, -2, 3, 7, -9, 100, -100, 46340, 46341, -46341,
               65536, 2**31 - 1, -2**31, -2**31 + 1, 1000, 20, -20, 123456789]
I64_SPECIAL = [0, 1, -1, 2, -2, 7, 100, 3037000499, 3037000500, -3037000500,
               2**53 + 1, -(2**53 + 1), 2**62, 2**63 - 1, -2**63, -2**63 + 1,
               2**32, -20, 20, 123456789012345]


def special(code):
    vals = {"f8": F64_SPECIAL, "f4": F32_SPECIAL, "i4": I32_SPECIAL,
            "i8": I64_SPECIAL}[code]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = np.array(vals, dtype=CODES[code])
    if code in FLOATS:
        # np.array(-nan) keeps the sign bit on x86; make sure of it.
        arr[15] = -np.abs(arr[15])
    return arr


def rand(code, shape, tag, scale=3.0):
    rng = rng_for(tag + code + fmt_shape(shape))
    if code in FLOATS:
        return (rng.standard_normal(shape) * scale).astype(CODES[code])
    return rng.integers(-50, 51, size=shape).astype(CODES[code])


def positive(code, shape, tag):
    rng = rng_for("pos" + tag + code + fmt_shape(shape))
    if code in FLOATS:
        return rng.uniform(0.0, 50.0, size=shape).astype(CODES[code])
    return rng.integers(0, 1000, size=shape).astype(CODES[code])


def near_one(code, shape, tag):
    """Factors whose long products neither overflow nor underflow."""
    if code in INTS:
        return rand(code, shape, tag)
    rng = rng_for("n1" + tag + code + fmt_shape(shape))
    sign = np.where(rng.random(shape) < 0.1, -1.0, 1.0)
    return (sign * (1.0 + 0.05 * rng.standard_normal(shape))).astype(CODES[code])


def fortran(arr):
    out = np.asfortranarray(arr)
    assert out.ndim < 2 or not out.flags.c_contiguous
    return out


# -------------------------------------------------------------- kernels

def _red(f):
    return lambda xs, p: f(xs[0], axis=p.get("axis"),
                           keepdims=p.get("keepdims", False))


def _stat(f):
    return lambda xs, p: f(xs[0], axis=p.get("axis"),
                           keepdims=p.get("keepdims", False),
                           ddof=p.get("ddof", 0))


FUNCS = {name: (lambda xs, p, f=getattr(np, name): f(xs[0])) for name in UNARY}
FUNCS.update({name: (lambda xs, p, f=getattr(np, name): f(xs[0], xs[1]))
              for name in BINARY})
FUNCS.update({"sum": _red(np.sum), "prod": _red(np.prod),
              "mean": _red(np.mean), "min": _red(np.min),
              "max": _red(np.max), "var": _stat(np.var),
              "std": _stat(np.std),
              "cumsum": lambda xs, p: np.cumsum(xs[0], axis=p.get("axis")),
              "sort": lambda xs, p: np.sort(xs[0], axis=p.get("axis", -1))})

TRANSCENDENTAL = {"exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh"}


def default_class(kernel, dtype):
    if dtype.kind == "i":
        return "exact"
    if kernel in TRANSCENDENTAL or kernel == "power":
        return "ulp4"
    if kernel in ("sum", "prod", "mean", "var", "std", "cumsum"):
        return "tol"
    if kernel in ("min", "max"):
        return "exact0"
    if kernel == "sort":
        return "sort"
    return "exact"


def classify_error(e):
    msg = str(e).strip()
    if isinstance(e, np.exceptions.AxisError):
        return "AxisOutOfRange", msg
    if "could not be broadcast" in msg:
        return "Broadcast", msg
    if "zero-size array to reduction operation" in msg:
        return "EmptyReduction", "zero-size array to reduction operation"
    if "Integers to negative integer powers" in msg:
        return "Domain", "negative"
    raise e


# ------------------------------------------------------- libm self-check

_libm = ctypes.CDLL("libm.so.6")
_LIBM_NAME = {"exp": "exp", "expm1": "expm1", "log": "log", "log1p": "log1p",
              "sin": "sin", "cos": "cos", "tan": "tan", "tanh": "tanh",
              "power": "pow"}


def _libm_fn(kernel, code):
    name = _LIBM_NAME[kernel] + ("f" if code == "f4" else "")
    f = getattr(_libm, name)
    t = ctypes.c_float if code == "f4" else ctypes.c_double
    f.restype = t
    f.argtypes = [t] * (2 if kernel == "power" else 1)
    return f


def ulp_key(a):
    a = np.asarray(a)
    bits = a.view(np.int64 if a.dtype == np.float64 else np.int32).astype(np.int64)
    low = -(2**63) if a.dtype == np.float64 else -(2**31)
    # Monotone in the float order; -0.0 and 0.0 both map to 0.
    return np.where(bits < 0, low - bits, bits)


def libm_check(name, kernel, inputs, res, step):
    code = CODE_OF[res.dtype]
    f = _libm_fn(kernel, code)
    args = [np.broadcast_to(i.value, res.shape).astype(res.dtype).reshape(-1)[::step]
            for i in inputs]
    want = res.reshape(-1)[::step]
    ref = np.array([f(*(float(a[j]) for a in args)) for j in range(want.size)],
                   dtype=res.dtype)
    fin = np.isfinite(ref)
    bad_nonfinite = ~fin & ~((np.isnan(ref) & np.isnan(want)) | (ref == want))
    d = np.abs(ulp_key(ref) - ulp_key(want))
    bad_zero = (ref == 0) & (want == 0) & (np.signbit(ref) != np.signbit(want))
    worst = int(d[fin].max()) if fin.any() else 0
    if bad_nonfinite.any() or bad_zero.any() or worst > 4:
        print(f"warning: {name}: numpy differs from libm: max {worst} ulp, "
              f"{int(bad_nonfinite.sum())} non-finite and {int(bad_zero.sum())} "
              f"zero-sign mismatches", file=sys.stderr)
    return worst


# ------------------------------------------------------------- manifest

HEADER = """\
# ndcache golden cases, written by tests/golden/gen.py with numpy {version}. Do not edit.
# One case per line, tab-separated:
#   group  name  kernel  inputs  params  expect  class
# inputs: space-separated; each is DTYPE:SOURCE[OPS]
#   DTYPE   f4 f8 i4 i8
#   SOURCE  in/<hash> (the file in/<hash>.npy), or synth:KIND:N:SEED (computed, see
#           gen.py synth_values)
#   OPS     optional, comma-separated view operations applied in order:
#           T (reverse the axes), perm:A.B.C, step:AXIS:K (every K-th along AXIS,
#           K<0 reverses), bcast:SHAPE (broadcast view, last), reshape:SHAPE (C order)
#   SHAPE   dims joined by x (3x4), () for 0-d
# params: - or comma-separated name=value (axis, keepdims, ddof)
# expect: DTYPE: the result is out/<name with / as .>.npy, or
#         sample:STEP:SHAPE:DTYPE: that file holds every STEP-th element (row-major) of
#         a result of shape SHAPE, or
#         error:KIND:SUBSTRING: an ndcache::Error variant and a case-insensitive
#         substring of its message
# class:  exact (bitwise; NaN matches any NaN; -0.0 != 0.0), exact0 (exact but 0.0 ==
#         -0.0), sort (exact but zeros of either sign may swap within a lane), ulp4
#         (<= 4 ulp, non-finite and zero signs exact), tol (|got - want| <= bound from
#         the inputs, see golden.rs), error
"""


class Manifest:
    def __init__(self):
        self.lines = []
        self.names = set()
        self.worst_ulp = {}

    def case(self, group, name, kernel, inputs, params=None, cls=None,
             step=None):
        assert name not in self.names, name
        assert all(c.isalnum() or c in "/_.-+" for c in name), name
        self.names.add(name)
        params = params or {}
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = np.asarray(FUNCS[kernel]([i.value for i in inputs], params))
        except Exception as e:  # noqa: BLE001 - classify_error re-raises the rest
            kind, sub = classify_error(e)
            expect, cls = f"error:{kind}:{sub}", "error"
        else:
            cls = cls or default_class(kernel, res.dtype)
            code = CODE_OF[res.dtype]
            fname = "out/" + name.replace("/", ".") + ".npy"
            assert not (HERE / fname).exists(), fname
            if step is None:
                step = 1 if res.size <= FULL_LIMIT else (
                    MEDIUM_STEP if res.size <= 20_000 else BIG_STEP)
            if step == 1:
                (HERE / fname).write_bytes(npy_bytes(res.copy(order="C")))
                expect = code
            else:
                flat = np.array(res.reshape(-1)[::step], order="C")
                (HERE / fname).write_bytes(npy_bytes(flat))
                expect = f"sample:{step}:{fmt_shape(res.shape)}:{code}"
            if cls == "ulp4" and res.size:
                w = libm_check(name, kernel, inputs, res, step)
                key = (kernel, code)
                self.worst_ulp[key] = max(self.worst_ulp.get(key, 0), w)
        ptxt = ",".join(f"{k}={str(v).lower()}" for k, v in params.items()) or "-"
        self.lines.append("\t".join([group, name, kernel,
                                     " ".join(i.spec for i in inputs), ptxt,
                                     expect, cls]))

    def write(self):
        text = HEADER.format(version=np.__version__) + "\n".join(self.lines) + "\n"
        MANIFEST.write_text(text)


M = Manifest()


# ------------------------------------------------------------ the cases

def unary_cases():
    for k in UNARY:
        for c in ALL:
            base = f"unary/{k}/{c}"
            M.case("unary", f"{base}/special", k, [stored(special(c))])
            M.case("unary", f"{base}/rand", k, [stored(rand(c, (3, 4), "u"))])
            M.case("unary", f"{base}/positive", k, [stored(positive(c, (7,), "u"))])
            M.case("unary", f"{base}/fortran", k,
                   [stored(fortran(rand(c, (2, 3, 4), "uf")))])
            M.case("unary", f"{base}/strided", k,
                   [stored(rand(c, (4, 9), "us"), ["step:1:2", "step:0:-1"])])
            M.case("unary", f"{base}/transposed", k,
                   [stored(rand(c, (5, 3), "ut"), ["T"])])
            M.case("unary", f"{base}/bcast", k,
                   [stored(rand(c, (1, 5), "ub"), ["bcast:3x5"])])
            M.case("unary", f"{base}/empty", k, [stored(np.zeros((2, 0, 3), CODES[c]))])
            M.case("unary", f"{base}/0d", k, [stored(rand(c, (), "u0"))])
            M.case("unary", f"{base}/medium", k,
                   [stored(rand(c, (MEDIUM_N,), "medium"))])
        for c in (["f4", "f8", "i4"] if k in ("negative", "absolute", "square")
                  else ["f4", "f8"]):
            M.case("unary", f"unary/{k}/{c}/big", k, [synth(c, "wide" if c in FLOATS else "full", BIG_N, 1)])
        M.case("unary", f"unary/{k}/f8/big-fortran", k,
               [synth("f8", "wide", BIG_N, 2, ["reshape:500x400", "T"])])


def binary_operands(k, a, b, tag):
    """Operands of shape (3, 4) suited to kernel k and dtypes a, b."""
    if k == "power" and a in INTS and b in INTS:
        rng = rng_for(tag + a + b)
        x = rng.integers(-9, 10, size=(3, 4)).astype(CODES[a])
        y = rng.integers(0, 13, size=(3, 4)).astype(CODES[b])
        return x, y
    x = rand(a, (3, 4), tag + "x")
    y = rand(b, (3, 4), tag + "y")
    if k == "divide" and b in INTS:
        y[0, 0] = 0  # integer division by zero: inf or nan in float64
        x[0, 1] = 0
        y[0, 1] = 0
    return x, y


def binary_cases():
    for k in BINARY:
        base = f"binary/{k}"
        for a in ALL:
            for b in ALL:
                x, y = binary_operands(k, a, b, "b")
                M.case("binary", f"{base}/{a}-{b}", k, [stored(x), stored(y)])
        # Every combination of special values: (n, 1) against (n,).
        for a, b in [("f8", "f8"), ("f4", "f4"), ("f4", "f8"), ("i4", "f4")]:
            sa = special(a)[:24]
            sb = special(b)[:24]
            M.case("binary", f"{base}/{a}-{b}/special-outer", k,
                   [stored(sa.reshape(-1, 1)), stored(sb)], step=1)
        if k != "power":
            for c in INTS:
                s = special(c)
                M.case("binary", f"{base}/{c}-{c}/special-outer", k,
                       [stored(s.reshape(-1, 1)), stored(s)], step=1)
        # Broadcasting and layouts.
        cs = [
            ("3x1-4", [stored(rand("f8", (3, 1), "b1")), stored(rand("f8", (4,), "b2"))]),
            ("2x1x3-5x1", [stored(rand("f4", (2, 1, 3), "b3")), stored(rand("i4", (5, 1), "b4"))]),
            ("0d-2d", [stored(rand("i8", (), "b5")), stored(rand("f8", (3, 4), "b6"))]),
            ("2d-0d", [stored(rand("f4", (3, 4), "b7")), stored(rand("f4", (), "b8"))]),
            ("0d-0d", [stored(rand("i4", (), "b9")), stored(rand("i8", (), "b10"))]),
            ("empty-0x3-3", [stored(np.zeros((0, 3), np.int32)), stored(rand("i4", (3,), "b11"))]),
            ("empty-2x0-2x1", [stored(np.zeros((2, 0), np.float64)), stored(rand("i8", (2, 1), "b12"))]),
            ("empty-0-0d", [stored(np.zeros((0,), np.float32)), stored(rand("f8", (), "b13"))]),
            ("empty-4x1-0", [stored(rand("f8", (4, 1), "b14")), stored(np.zeros((0,), np.float64))]),
            ("fortran-c", [stored(fortran(rand("f8", (3, 4), "b15"))), stored(rand("f8", (3, 4), "b16"))]),
            ("fortran-row", [stored(fortran(rand("i4", (3, 4), "b17"))), stored(rand("i8", (4,), "b18"))]),
            ("fortran3d-col", [stored(fortran(rand("f4", (2, 3, 4), "b19"))), stored(rand("f4", (3, 1), "b20"))]),
            ("strided-transposed", [stored(rand("f8", (6, 4), "b21"), ["step:0:-2"]),
                                    stored(rand("f4", (4, 3), "b22"), ["T"])]),
            ("bcastview-2d", [stored(rand("i8", (3,), "b23"), ["bcast:4x3"]),
                              stored(rand("i8", (4, 3), "b24"))]),
            ("medium-row", [stored(rand("f8", (50, 60), "b25")), stored(rand("f8", (60,), "b26"))]),
        ]
        for tag, ins in cs:
            if k == "power" and all(i.code() in INTS for i in ins):
                # Non-negative exponents (negative ones are the error cases).
                ins = [ins[0], stored(np.abs(ins[1].value))]
            M.case("binary", f"{base}/{tag}", k, ins)
        for tag, x, y in [("3-4", np.zeros(3), np.zeros(4)),
                          ("2x3-3x2", np.zeros((2, 3), np.int32), np.zeros((3, 2), np.float32)),
                          ("0-2", np.zeros(0), np.zeros(2)),
                          ("2x3-4x1x5", np.zeros((2, 3), np.int64), np.zeros((4, 1, 5)))]:
            M.case("binary", f"{base}/nobroadcast-{tag}", k, [stored(x), stored(y)])
        # Large operands, to cross the parallel threshold.
        if k == "power":
            M.case("binary", f"{base}/big-f8", k,
                   [synth("f8", "near1", BIG_N, 3), stored(np.array(3.5))])
            M.case("binary", f"{base}/big-f4-rows", k,
                   [synth("f4", "near1", BIG_N, 4, ["reshape:400x500"]),
                    stored(rand("f4", (500,), "bp") )])
            M.case("binary", f"{base}/big-i8", k,
                   [synth("i8", "odd", BIG_N, 5), stored(np.array(7, np.int64))])
        else:
            M.case("binary", f"{base}/big-f8-rows", k,
                   [synth("f8", "wide", BIG_N, 3, ["reshape:400x500"]),
                    synth("f8", "wide", 500, 6)])
            M.case("binary", f"{base}/big-f4-0d", k,
                   [synth("f4", "wide", BIG_N, 4), stored(np.array(0.75, np.float32))])
            M.case("binary", f"{base}/big-i4-i8-fortran", k,
                   [synth("i4", "full", BIG_N, 5, ["reshape:500x400", "T"]),
                    synth("i8", "full", BIG_N, 7, ["reshape:400x500"])])
    # Integer to a negative integer power.
    for a, b in [("i4", "i4"), ("i8", "i4"), ("i4", "i8"), ("i8", "i8")]:
        x = np.array([2, 3, 1, 0], CODES[a])
        y = np.array([1, 0, -1, 2], CODES[b])
        M.case("binary", f"binary/power/{a}-{b}/negative-exponent", "power",
               [stored(x), stored(y)])
    M.case("binary", "binary/power/i8-i8/negative-exponent-0d", "power",
           [stored(np.array([1, 2], np.int64)), stored(np.array(-2, np.int64))])
    for a, b in [("i4", "i4"), ("i8", "i8"), ("i4", "i8")]:
        x = special(a)[:16].reshape(-1, 1)
        y = np.array([0, 1, 2, 3, 31, 32, 63, 64], CODES[b])
        M.case("binary", f"binary/power/{a}-{b}/special-outer", "power",
               [stored(x), stored(y)])


def axis_params(ndim, keep=(False, True)):
    for ax in [None] + list(range(ndim)) + list(range(-ndim, 0)):
        for kd in keep:
            p = {}
            if ax is not None:
                p["axis"] = ax
            if kd:
                p["keepdims"] = True
            yield p


def ptag(p):
    parts = []
    if "axis" in p:
        parts.append(f"ax{p['axis']}")
    else:
        parts.append("all")
    if p.get("keepdims"):
        parts.append("keep")
    if "ddof" in p:
        parts.append(f"ddof{p['ddof']}")
    return "-".join(parts)


def reduce_cases():
    for k in REDUCE:
        stat = k in ("var", "std")
        for c in ALL:
            base = f"reduce/{k}/{c}"

            def case(tag, ins, p, cls=None, group="reduce", step=None):
                M.case(group, f"{base}/{tag}/{ptag(p)}", k, ins, p, cls, step)

            r3 = stored(rand(c, (2, 3, 4), "r3"))
            for p in axis_params(3):
                case("rand3d", [r3], p)
            if stat:
                for ddof in (1, 2):
                    for ax in (None, 0, -1):
                        for kd in (False, True):
                            p = {} if ax is None else {"axis": ax}
                            if kd:
                                p["keepdims"] = True
                            p["ddof"] = ddof
                            case("rand3d", [r3], p)
                # ddof >= n: numpy divides by max(n - ddof, 0).
                two = stored(rand(c, (2, 3), "r2"))
                case("rand2x3", [two], {"axis": 0, "ddof": 2})
                case("rand2x3", [two], {"axis": 0, "ddof": 3})
                case("rand2x3", [two], {"ddof": 6})
                const = stored(np.full((2, 3), 7, CODES[c]))
                case("const", [const], {"axis": 0, "ddof": 2})
                case("const", [const], {"axis": 1, "ddof": 1})
                off = rand(c, (64,), "roff", scale=1.0)
                off = (off + (10_000 if c in FLOATS else 1_000_000)).astype(CODES[c])
                case("offset", [stored(off)], {})
                case("offset", [stored(off)], {"ddof": 1})
            f3 = stored(fortran(rand(c, (2, 3, 4), "rf")))
            for p in [{}, {"axis": 0}, {"axis": 1}, {"axis": -1},
                      {"axis": 2, "keepdims": True}]:
                case("fortran3d", [f3], p)
            st = stored(rand(c, (4, 7), "rs"), ["step:0:2", "step:1:-2"])
            for p in [{}, {"axis": 0}, {"axis": 1}]:
                case("strided", [st], p)
            tr = stored(rand(c, (5, 3), "rt"), ["T"])
            for p in [{}, {"axis": 0}, {"axis": -1, "keepdims": True}]:
                case("transposed", [tr], p)
            bc = stored(rand(c, (1, 5), "rb"), ["bcast:4x5"])
            for p in [{"axis": 0}, {"axis": 1}]:
                case("bcast", [bc], p)
            case("special", [stored(special(c))], {})
            if c in FLOATS:
                nonan = special(c)[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17]]
                case("special-nonan", [stored(nonan)], {})
                case("inf-inf", [stored(np.array([1.0, np.inf, -np.inf, 2.0], CODES[c]))], {})
                zeros = np.array([0.0, -0.0, -0.0, 0.0, -0.0], CODES[c])
                case("zeros", [stored(zeros)], {})
                case("negzeros", [stored(-np.zeros(6, CODES[c]))], {})
                nan2 = rand(c, (3, 5), "rn")
                nan2[1, 2] = np.nan
                nan2[2, 0] = -np.nan
                for p in [{"axis": 0}, {"axis": 1}, {}]:
                    case("nan2d", [stored(nan2)], p)
                if c == "f4":
                    big = np.array([3e38, 3e38, -1e38], np.float32)
                    case("f4-overflow", [stored(big)], {})
            else:
                ext = np.iinfo(CODES[c])
                case("wrap", [stored(np.array([ext.max, 1, ext.max, ext.min], CODES[c]))], {})
                case("extremes", [stored(np.array([ext.min, ext.max, -1, 0], CODES[c]))],
                     {"axis": 0})
                mulwrap = np.array([65536, 65536, 3, 1 << 20, -7], CODES[c])
                case("mulwrap", [stored(mulwrap)], {})
            # Empty inputs.
            e1 = stored(np.zeros((0,), CODES[c]))
            e03 = stored(np.zeros((0, 3), CODES[c]))
            e30 = stored(np.zeros((3, 0), CODES[c]))
            case("empty0", [e1], {})
            case("empty0", [e1], {"axis": 0, "keepdims": True})
            for p in [{}, {"axis": 0}, {"axis": 1}, {"axis": 0, "keepdims": True},
                      {"keepdims": True}]:
                case("empty0x3", [e03], p)
            for p in [{"axis": 0}, {"axis": 1}, {"axis": -1, "keepdims": True}]:
                case("empty3x0", [e30], p)
            # 0-d.
            z = stored(rand(c, (), "r0"))
            case("0d", [z], {})
            case("0d", [z], {"keepdims": True})
            case("0d", [z], {"axis": 1})
            case("0d", [z], {"axis": -2})
            # numpy's ufunc reductions take axis 0 / -1 on a 0-d array (a
            # legacy rule); mean, var and std reject it.
            for p in [{"axis": 0}, {"axis": -1, "keepdims": True}]:
                case("0d", [z], p, group="reduce" if k in ("mean", "var", "std") else "quirk")
            # Axis out of range.
            for p in [{"axis": 3}, {"axis": -4}]:
                case("rand3d", [r3], p)
            # Medium, stored.
            medium = near_one if k == "prod" else rand
            med = stored(medium(c, (MEDIUM_N,), "medium"))
            case("medium", [med], {})
            m2 = stored(medium(c, (50, 60), "medium2d"))
            for p in [{"axis": 0}, {"axis": 1}, {}]:
                case("medium2d", [m2], p)
            # Big, computed.
            kind = ("near1" if k == "prod" else "wide") if c in FLOATS else (
                "odd" if k == "prod" else ("small" if c == "i4" and stat else "full"))
            b1 = synth(c, kind, BIG_N, 11)
            case("big", [b1], {})
            if stat:
                case("big", [b1], {"ddof": 1})
            b2 = synth(c, kind, BIG_N, 12, ["reshape:400x500"])
            for p in [{"axis": 0}, {"axis": 1}, {"axis": -1, "keepdims": True}]:
                case("big400x500", [b2], p)
            bf = synth(c, kind, BIG_N, 13, ["reshape:500x400", "T"])
            for p in [{}, {"axis": 0}, {"axis": 1}]:
                case("bigfortran", [bf], p)
            b3 = synth(c, kind, BIG_N, 14, ["reshape:20x100x100", "step:2:-1"])
            case("big3d", [b3], {"axis": 1})


def cumsum_cases():
    k = "cumsum"
    for c in ALL:
        base = f"scan/{k}/{c}"

        def case(tag, ins, p, group="scan", step=None):
            M.case(group, f"{base}/{tag}/{ptag(p)}", k, ins, p, None, step)

        case("rand1d", [stored(rand(c, (7,), "c1"))], {})
        case("rand1d", [stored(rand(c, (7,), "c1"))], {"axis": 0})
        r3 = stored(rand(c, (2, 3, 4), "c3"))
        for ax in [None, 0, 1, 2, -1, -2, -3, 3, -4]:
            case("rand3d", [r3], {} if ax is None else {"axis": ax})
        f3 = stored(fortran(rand(c, (2, 3, 4), "cf")))
        for ax in [None, 0, 2]:
            case("fortran3d", [f3], {} if ax is None else {"axis": ax})
        tr = stored(rand(c, (5, 3), "ct"), ["T"])
        for ax in [None, 0, 1]:
            case("transposed", [tr], {} if ax is None else {"axis": ax})
        st = stored(rand(c, (4, 9), "cs"), ["step:1:-2"])
        case("strided", [st], {"axis": -1})
        case("strided", [st], {})
        bc = stored(rand(c, (1, 5), "cb"), ["bcast:3x5"])
        case("bcast", [bc], {"axis": 0})
        case("special", [stored(special(c))], {})
        e = stored(np.zeros((0, 3), CODES[c]))
        for ax in [None, 0, 1]:
            case("empty0x3", [e], {} if ax is None else {"axis": ax})
        z = stored(rand(c, (), "c0"))
        case("0d", [z], {})
        for ax in [0, -1, 1]:
            # numpy treats a 0-d array as 1-d here, even in its error message.
            case("0d", [z], {"axis": ax}, group="quirk")
        case("medium", [stored(rand(c, (MEDIUM_N,), "medium"))], {})
        m2 = stored(rand(c, (50, 60), "medium2d"))
        case("medium2d", [m2], {"axis": 0})
        case("medium2d", [m2], {"axis": 1})
        kind = "wide" if c in FLOATS else "full"
        case("big", [synth(c, kind, BIG_N, 21)], {})
        b2 = synth(c, kind, BIG_N, 22, ["reshape:400x500"])
        case("big400x500", [b2], {"axis": 0})
        case("big400x500", [b2], {"axis": 1})
        bf = synth(c, kind, BIG_N, 23, ["reshape:500x400", "T"])
        case("bigfortran", [bf], {"axis": 0})


def sort_cases():
    k = "sort"
    for c in ALL:
        base = f"scan/{k}/{c}"

        def case(tag, ins, p):
            M.case("scan", f"{base}/{tag}/{ptag(p) if p else 'default'}", k, ins, p)

        case("special", [stored(special(c))], {})
        rng = rng_for("sd" + c)
        if c in FLOATS:
            dup = (rng.integers(-3, 4, size=(6, 8)) * 0.5).astype(CODES[c])
            dup[rng.random((6, 8)) < 0.2] = -0.0
            dup[rng.random((6, 8)) < 0.1] = np.nan
            dup[0, 0] = -np.nan
        else:
            dup = rng.integers(-3, 4, size=(6, 8)).astype(CODES[c])
        d = stored(dup)
        for p in [{}, {"axis": 0}, {"axis": 1}, {"axis": -1}, {"axis": -2}]:
            case("dup2d", [d], p)
        f3 = stored(fortran(rand(c, (3, 4, 5), "sf")))
        for p in [{}, {"axis": 0}, {"axis": 1}]:
            case("fortran3d", [f3], p)
        tr = stored(rand(c, (5, 4), "st"), ["T"])
        case("transposed", [tr], {})
        case("transposed", [tr], {"axis": 0})
        st = stored(rand(c, (4, 9), "ss"), ["step:1:-2", "step:0:2"])
        case("strided", [st], {})
        case("strided", [st], {"axis": 0})
        bc = stored(rand(c, (5, 1), "sb"), ["bcast:5x3"])
        case("bcast", [bc], {"axis": 0})
        e = stored(np.zeros((0, 3), CODES[c]))
        case("empty0x3", [e], {})
        case("empty0x3", [e], {"axis": 0})
        case("empty3x0", [stored(np.zeros((3, 0), CODES[c]))], {})
        z = stored(rand(c, (), "s0"))
        case("0d", [z], {})
        case("0d", [z], {"axis": 0})
        case("rand2d", [stored(rand(c, (3, 4), "s2"))], {"axis": 2})
        case("rand2d", [stored(rand(c, (3, 4), "s2"))], {"axis": -3})
        case("rand1d", [stored(rand(c, (1,), "s1"))], {})
        case("medium", [stored(rand(c, (MEDIUM_N,), "medium"))], {})
        m2 = stored(rand(c, (50, 60), "medium2d"))
        case("medium2d", [m2], {"axis": 0})
        kind = "wide" if c in FLOATS else "full"
        case("big", [synth(c, kind, BIG_N, 31)], {})
        case("big400x500", [synth(c, kind, BIG_N, 32, ["reshape:400x500"])], {"axis": 0})
        case("bigsmall", [synth(c, "small", BIG_N, 33)], {})


def synth_checks():
    """Small stored copies of synthetic inputs: golden.rs checks its twin of
    synth_values against them bit for bit."""
    for c in ALL:
        kinds = ["wide", "near1", "small", "odd"] if c in FLOATS else ["small", "odd", "full"]
        for kind in kinds:
            s = synth(c, kind, 600, 7)
            f = stored(np.array(s.value))
            M.lines.append("\t".join(["synth", f"synth/{c}/{kind}", "-",
                                      f"{s.spec} {f.spec}", "-", "-", "exact"]))


def main():
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        sys.exit("numpy >= 2 is needed (its promotion rules are the reference)")
    for d in (IN_DIR, OUT_DIR):
        d.mkdir(exist_ok=True)
        for f in d.glob("*.npy"):
            f.unlink()
    unary_cases()
    binary_cases()
    reduce_cases()
    cumsum_cases()
    sort_cases()
    synth_checks()
    M.write()
    size = sum(f.stat().st_size for d in (IN_DIR, OUT_DIR) for f in d.glob("*.npy"))
    size += MANIFEST.stat().st_size
    counts = {}
    for line in M.lines:
        kernel = line.split("\t")[2]
        counts[kernel] = counts.get(kernel, 0) + 1
    print(f"{len(M.lines)} cases, {len(_written)} inputs, {size / 1e6:.2f} MB")
    print(" ".join(f"{k}:{v}" for k, v in counts.items()))
    print("largest numpy-vs-libm ulp distance:",
          " ".join(f"{k}/{c}:{w}" for (k, c), w in sorted(M.worst_ulp.items())))


if __name__ == "__main__":
    main()
