"""Independent oracle for the key format (src/key.rs), with Python's xxhash.

Prints the fingerprints pinned in key::tests::pinned_literal. Run:
    pip install numpy xxhash && python3 tests/oracle/fingerprint.py
"""
import struct

import numpy as np
import xxhash

CHUNK = 1 << 20


def fingerprint(a):
    a = np.asarray(a)
    le = a.dtype.newbyteorder("<")
    data = np.ascontiguousarray(a).astype(le).tobytes()
    header = (
        b"ndcache/array"
        + struct.pack("<I", 1)
        + le.str.encode()
        + struct.pack("<Q", a.ndim)
        + b"".join(struct.pack("<Q", d) for d in a.shape)
        + struct.pack("<Q", len(data))
    )
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    body = b"".join(xxhash.xxh3_128_intdigest(c).to_bytes(16, "little") for c in chunks)
    return "%032x" % xxhash.xxh3_128_intdigest(header + body)


if __name__ == "__main__":
    print(fingerprint(np.array([[1.0, 2, 3], [4, 5, 6]])))
    print(fingerprint(np.array([1, -2, 3], dtype=np.int32)))
