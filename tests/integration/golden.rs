//! numpy parity: golden files written by numpy (tests/golden/gen.py).
