//! Array fingerprints and call keys.
//!
//! The key format is part of ndcache's on-disk format: disk entries outlive
//! processes, so it must never change silently. A test pins the fingerprint of
//! a fixed array to a literal; bump [`KEY_FORMAT_VERSION`] (and the disk
//! layout version) when the format changes on purpose.
//!
//! # Array fingerprint
//!
//! ```text
//! header  = "ndcache/array" ‖ u32 version ‖ descr ("<f8") ‖ u64 ndim ‖ u64 dims… ‖ u64 nbytes
//! chunk_i = xxh3_128(logical little-endian element bytes [i·CHUNK_BYTES, (i+1)·CHUNK_BYTES))
//! fp      = xxh3_128(header ‖ chunk_0 ‖ chunk_1 ‖ …)          (all integers little-endian)
//! ```
//!
//! The bytes are taken in logical (row-major) order, so a C-order array, its
//! Fortran-order twin and a strided view of equal values share a fingerprint.
//! The chunking depends only on the byte length, so the chunk digests can be
//! computed in parallel and the result does not depend on the thread count.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use ndarray::{ArrayBase, ArrayViewD, ArrayViewMut, Axis, Data, Dimension, Slice};
use rayon::prelude::*;

use crate::element::{DType, Element};
use crate::hash::{xxh3_128, Xxh3};

/// Version of the key format, hashed into every fingerprint and call key.
pub const KEY_FORMAT_VERSION: u32 = 1;

/// Size of the chunks of element bytes hashed independently (1 MiB).
pub const CHUNK_BYTES: usize = 1 << 20;

/// A non-contiguous array is gathered into logical order this many bytes at
/// a time (a divisor of [`CHUNK_BYTES`]; it does not change the key).
const PIECE_BYTES: usize = 64 << 10;

const ARRAY_TAG: &[u8] = b"ndcache/array";
const CALL_TAG: &[u8] = b"ndcache/call";
const DERIVED_TAG: &[u8] = b"ndcache/derived";

/// A 128-bit fingerprint: of an array's dtype, shape and contents, of a
/// kernel call, or derived from a call for its result.
///
/// Displayed (and parsed) as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint(u128);

impl Fingerprint {
    /// The fingerprint with this 128-bit value.
    pub const fn from_u128(v: u128) -> Self {
        Fingerprint(v)
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The 16 bytes, little-endian.
    pub const fn to_le_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// The fingerprint given to the result of the call whose key is `self`.
    ///
    /// A result carries it so that a chained call never hashes the result's
    /// bytes: it is O(1), whatever the size of the result.
    pub fn derive(self) -> Fingerprint {
        let mut buf = [0u8; 32];
        buf[..DERIVED_TAG.len()].copy_from_slice(DERIVED_TAG);
        buf[16..].copy_from_slice(&self.to_le_bytes());
        Fingerprint(xxh3_128(&buf))
    }
}

impl Hash for Fingerprint {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The bits are already uniformly mixed; 64 of them are plenty for a map.
        state.write_u64(self.0 as u64 ^ (self.0 >> 64) as u64);
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({:032x})", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    /// Parses exactly 32 hex digits (as displayed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseFingerprintError(s.to_owned()));
        }
        u128::from_str_radix(s, 16)
            .map(Fingerprint)
            .map_err(|_| ParseFingerprintError(s.to_owned()))
    }
}

/// A string that is not 32 hex digits, given for a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFingerprintError(String);

impl fmt::Display for ParseFingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a fingerprint (32 hex digits)", self.0)
    }
}

impl std::error::Error for ParseFingerprintError {}

/// The fingerprint of an array or view of any dimension and layout.
///
/// Equal values in C order, Fortran order or any strided view give the same
/// fingerprint; the same bytes under another dtype or shape do not. Arrays
/// larger than [`CHUNK_BYTES`] are hashed in parallel on the current rayon
/// pool, with a result independent of the number of threads.
///
/// ```
/// use ndarray::{array, ShapeBuilder, Array2};
/// let c = array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]];
/// let f = Array2::from_shape_vec((2, 3).f(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]).unwrap();
/// assert_eq!(ndcache::fingerprint(&c), ndcache::fingerprint(&f));
/// assert_ne!(ndcache::fingerprint(&c), ndcache::fingerprint(&c.t()));
/// ```
pub fn fingerprint<S, D>(array: &ArrayBase<S, D>) -> Fingerprint
where
    S: Data,
    S::Elem: Element,
    D: Dimension,
{
    fingerprint_dyn(array.view().into_dyn())
}

pub(crate) fn fingerprint_dyn<T: Element>(view: ArrayViewD<'_, T>) -> Fingerprint {
    let nbytes = view.len() * T::DTYPE.size();
    // The header and the chunk digests, hashed at the end: the same value
    // as streaming them, without the streaming hasher's allocation.
    let mut h = header(T::DTYPE, view.shape(), nbytes);
    // Axes of length one do not change the logical order: dropping them
    // bounds the depth of `gather` (a non-empty array has at most 64 axes
    // longer than one).
    let view = squeeze(view);
    let nchunks = nbytes.div_ceil(CHUNK_BYTES);
    let per_chunk = CHUNK_BYTES / T::DTYPE.size();
    let per_piece = PIECE_BYTES / T::DTYPE.size();

    // Contiguous little-endian memory is hashed in place; anything else is
    // gathered into a small buffer in logical order, piece by piece.
    let contiguous = if cfg!(target_endian = "little") {
        view.as_slice()
    } else {
        None
    };
    // A Fortran-order matrix: its transpose is contiguous.
    let transposed = view.t();
    let fortran_2d = match (view.ndim(), contiguous) {
        (2, None) => transposed.as_slice(),
        _ => None,
    };
    let digest = |i: usize, buf: &mut Vec<T>| -> [u8; 16] {
        let start = i * per_chunk;
        let end = (start + per_chunk).min(view.len());
        let d = match contiguous {
            Some(s) => xxh3_128(bytemuck::cast_slice(&s[start..end])),
            None => {
                // Gathered in pieces small enough to stay in the L2 cache
                // between the gather and the hash; the chunk's digest is the
                // streamed hash of its pieces.
                // Where the piece that starts at `lo` ends. A Fortran-order
                // matrix is cut at row boundaries, in blocks of whole rows
                // that read at least a cache line from every column.
                let cut = |lo: usize| -> usize {
                    let hi = match fortran_2d {
                        Some(_) => {
                            let cols = view.shape()[1].max(1);
                            if !lo.is_multiple_of(cols) {
                                lo - lo % cols + cols
                            } else {
                                let block = (per_piece / cols).max(fortran_block::<T>());
                                lo.saturating_add(block.saturating_mul(cols))
                            }
                        }
                        None => lo + per_piece,
                    };
                    hi.min(end)
                };
                let fill = |lo: usize, hi: usize, buf: &mut Vec<T>| {
                    // Every element is overwritten: resizing zeroes the
                    // buffer on first use only.
                    buf.resize(hi - lo, T::default());
                    match fortran_2d {
                        Some(mem) => {
                            let (rows, cols) = (view.shape()[0], view.shape()[1]);
                            gather_fortran_2d(mem, rows, cols, lo, buf);
                        }
                        None => gather(&view, lo, buf),
                    }
                    if cfg!(target_endian = "big") {
                        buf.iter_mut().for_each(|x| *x = x.to_le());
                    }
                };
                let first = cut(start);
                if first == end {
                    fill(start, end, buf);
                    xxh3_128(bytemuck::cast_slice(buf))
                } else {
                    let mut h = Xxh3::new();
                    let mut lo = start;
                    while lo < end {
                        let hi = cut(lo);
                        fill(lo, hi, buf);
                        h.update(bytemuck::cast_slice(buf));
                        lo = hi;
                    }
                    h.digest128()
                }
            }
        };
        d.to_le_bytes()
    };

    if nchunks <= 1 {
        let d = digest(0, &mut Vec::new());
        h.extend_from_slice(&d);
    } else {
        let digests: Vec<[u8; 16]> = (0..nchunks)
            .into_par_iter()
            .map_init(|| Vec::with_capacity(per_piece), |buf, i| digest(i, buf))
            .collect();
        h.reserve(16 * digests.len());
        for d in &digests {
            h.extend_from_slice(d);
        }
    }
    Fingerprint(xxh3_128(&h))
}

fn header(dtype: DType, shape: &[usize], nbytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 8 * shape.len());
    out.extend_from_slice(ARRAY_TAG);
    out.extend_from_slice(&KEY_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(dtype.descr().as_bytes());
    out.extend_from_slice(&(shape.len() as u64).to_le_bytes());
    for &d in shape {
        out.extend_from_slice(&(d as u64).to_le_bytes());
    }
    out.extend_from_slice(&(nbytes as u64).to_le_bytes());
    out
}

/// `view` without its axes of length one (the same elements, in the same
/// logical order).
fn squeeze<T>(mut view: ArrayViewD<'_, T>) -> ArrayViewD<'_, T> {
    if view.is_empty() || !view.shape().contains(&1) {
        return view;
    }
    let mut axis = view.ndim();
    while axis > 0 {
        axis -= 1;
        if view.shape()[axis] == 1 {
            view = view.index_axis_move(Axis(axis), 0);
        }
    }
    view
}

/// Fills `out` with the elements of logical (row-major) indices
/// `start..start + out.len()` of `view`, without copying anything else.
fn gather<T: Element>(view: &ArrayViewD<'_, T>, start: usize, out: &mut [T]) {
    let end = start + out.len();
    if start >= end {
        return;
    }
    if start == 0 && end == view.len() {
        return copy_all(view, out);
    }
    if view.ndim() == 1 {
        return copy_all(&view.slice_axis(Axis(0), Slice::from(start..end)), out);
    }
    // Whole sub-arrays of the first axis are copied in one go; the partial
    // ones at either end recurse.
    let inner: usize = view.shape()[1..].iter().product();
    let mut pos = start;
    let mut out = out;
    while pos < end {
        let row = pos / inner;
        let row_start = row * inner;
        let whole = pos == row_start && end >= row_start + inner;
        let hi = if whole {
            end / inner * inner
        } else {
            end.min(row_start + inner)
        };
        let (head, tail) = std::mem::take(&mut out).split_at_mut(hi - pos);
        if whole {
            copy_all(
                &view.slice_axis(Axis(0), Slice::from(row..hi / inner)),
                head,
            );
        } else {
            gather(&view.index_axis(Axis(0), row), pos - row_start, head);
        }
        pos = hi;
        out = tail;
    }
}

/// Fills `out` (of the same length) with every element of `view`, in
/// logical order.
fn copy_all<T: Element>(view: &ArrayViewD<'_, T>, out: &mut [T]) {
    if let Some(s) = view.as_slice() {
        out.copy_from_slice(s);
        return;
    }
    match ArrayViewMut::from_shape(view.raw_dim(), out) {
        Ok(mut d) => d.assign(view),
        Err(_) => unreachable!("the destination has exactly the view's length"),
    }
}

/// Rows of a Fortran-order matrix transposed together: one 64-byte cache
/// line of each column.
const fn fortran_block<T>() -> usize {
    64 / std::mem::size_of::<T>()
}

/// Fills `dst` with the elements of logical indices `start..start +
/// dst.len()` of a Fortran-order matrix whose memory (column after column)
/// is `mem`. Whole rows are transposed in blocks of [`fortran_block`] rows:
/// each column contributes a cache line of consecutive elements.
fn gather_fortran_2d<T: Element>(mem: &[T], rows: usize, cols: usize, start: usize, dst: &mut [T]) {
    let b = fortran_block::<T>();
    let end = start + dst.len();
    let mut pos = start;
    let mut out = 0;
    // Partial rows (at either end of the range) element by element.
    let partial = |pos: &mut usize, out: &mut usize, dst: &mut [T]| {
        let r = *pos / cols;
        let hi = end.min((r + 1) * cols);
        for c in *pos - r * cols..hi - r * cols {
            dst[*out] = mem[c * rows + r];
            *out += 1;
        }
        *pos = hi;
    };
    if !pos.is_multiple_of(cols) {
        partial(&mut pos, &mut out, dst);
    }
    while pos + cols <= end {
        let r0 = pos / cols;
        let nrows = ((end - pos) / cols).min(b);
        let block = &mut dst[out..out + nrows * cols];
        for (c, column) in mem.chunks_exact(rows).enumerate() {
            for (row, &x) in block.chunks_exact_mut(cols).zip(&column[r0..r0 + nrows]) {
                row[c] = x;
            }
        }
        pos += nrows * cols;
        out += nrows * cols;
    }
    if pos < end {
        partial(&mut pos, &mut out, dst);
    }
}

/// Builds the key of a kernel call: kernel name and version, canonical
/// parameter bytes, and the fingerprints of the inputs in order.
///
/// Every field is length-prefixed, so no two different calls share an
/// encoding.
pub fn call_key(kernel: &str, version: &str, params: &[u8], inputs: &[Fingerprint]) -> Fingerprint {
    let mut buf = Vec::with_capacity(64 + kernel.len() + version.len() + params.len());
    buf.extend_from_slice(CALL_TAG);
    buf.extend_from_slice(&KEY_FORMAT_VERSION.to_le_bytes());
    for field in [kernel.as_bytes(), version.as_bytes(), params] {
        buf.extend_from_slice(&(field.len() as u64).to_le_bytes());
        buf.extend_from_slice(field);
    }
    buf.extend_from_slice(&(inputs.len() as u64).to_le_bytes());
    for fp in inputs {
        buf.extend_from_slice(&fp.to_le_bytes());
    }
    Fingerprint(xxh3_128(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array, Array1, Array2, Array3, ShapeBuilder};

    fn naive(values: &[f64], shape: &[usize]) -> Fingerprint {
        // Independent oracle: materialize the logical bytes, chunk, hash.
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        // xxhash-rust, not the crate's hasher: a second implementation.
        use xxhash_rust::xxh3::{xxh3_128, Xxh3};
        let mut h = Xxh3::new();
        h.update(&header(DType::F64, shape, bytes.len()));
        if bytes.is_empty() {
            h.update(&xxh3_128(&[]).to_le_bytes());
        }
        for c in bytes.chunks(CHUNK_BYTES) {
            h.update(&xxh3_128(c).to_le_bytes());
        }
        Fingerprint(h.digest128())
    }

    #[test]
    fn pinned_literal() {
        // If this fails, the key format changed: every disk entry ever written
        // becomes unreachable. Bump KEY_FORMAT_VERSION and the disk layout.
        // The literals come from an independent implementation of the format
        // with Python's xxhash package: tests/oracle/fingerprint.py.
        let a = ndarray::array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]];
        assert_eq!(
            fingerprint(&a).to_string(),
            "fad1f065eafd648d85d2370383692662"
        );
        let b = ndarray::array![1i32, -2, 3];
        assert_eq!(
            fingerprint(&b).to_string(),
            "b800f0f1472285fb9ebc97156ed51966"
        );
    }

    #[test]
    fn layouts_agree_with_the_oracle() {
        let c = Array::from_shape_fn((37, 41), |(i, j)| (i * 41 + j) as f64 * 0.5);
        let logical: Vec<f64> = c.iter().copied().collect();
        let want = naive(&logical, &[37, 41]);
        assert_eq!(fingerprint(&c), want);
        let mut f = Array2::<f64>::zeros((37, 41).f());
        f.assign(&c);
        assert!(f.as_slice().is_none());
        assert_eq!(fingerprint(&f), want);
        // A transposed view of the transpose is the same logical array.
        let t = c.t().to_owned();
        assert_eq!(fingerprint(&t.t()), want);
        // Strided: every other element of a bigger array.
        let big = Array::from_shape_fn((37, 82), |(i, j)| {
            if j % 2 == 0 {
                (i * 41 + j / 2) as f64 * 0.5
            } else {
                -1.0
            }
        });
        assert_eq!(fingerprint(&big.slice(s![.., ..;2])), want);
        // Reversed axes.
        let rev = c.slice(s![..;-1, ..]).to_owned();
        assert_eq!(fingerprint(&rev.slice(s![..;-1, ..])), want);
    }

    #[test]
    fn dtype_and_shape_matter() {
        let v: Vec<f64> = (0..6).map(f64::from).collect();
        let a23 = Array::from_shape_vec((2, 3), v.clone()).unwrap();
        let a32 = Array::from_shape_vec((3, 2), v.clone()).unwrap();
        let a6 = Array1::from(v.clone());
        let fps = [fingerprint(&a23), fingerprint(&a32), fingerprint(&a6)];
        assert_ne!(fps[0], fps[1]);
        assert_ne!(fps[0], fps[2]);
        assert_ne!(fps[1], fps[2]);
        // Same 8 bytes as f64 vs as two i32 or as i64.
        let bits = 1.5f64.to_bits();
        let as_i64 = Array1::from(vec![bits as i64]);
        let as_f64 = Array1::from(vec![1.5f64]);
        let as_i32 = Array1::from(vec![bits as i32, (bits >> 32) as i32]);
        assert_ne!(fingerprint(&as_i64), fingerprint(&as_f64));
        assert_ne!(fingerprint(&as_i32), fingerprint(&as_f64));
        // -0.0 and 0.0 are different keys.
        assert_ne!(
            fingerprint(&Array1::from(vec![0.0f64])),
            fingerprint(&Array1::from(vec![-0.0f64]))
        );
        // Empty arrays of different shapes differ too.
        assert_ne!(
            fingerprint(&Array2::<f64>::zeros((0, 3))),
            fingerprint(&Array2::<f64>::zeros((3, 0)))
        );
    }

    #[test]
    fn large_arrays_match_oracle_across_chunks_and_layouts() {
        // 3.5 chunks of f64, in an odd shape so chunks split rows.
        let n = CHUNK_BYTES * 7 / 2 / 8;
        let rows = 1021;
        let cols = n / rows;
        let c = Array::from_shape_fn((rows, cols), |(i, j)| ((i * cols + j) as f64).sin());
        let want = naive(&c.iter().copied().collect::<Vec<_>>(), &[rows, cols]);
        assert_eq!(fingerprint(&c), want);
        let mut f = Array2::<f64>::zeros((rows, cols).f());
        f.assign(&c);
        assert_eq!(fingerprint(&f), want);
        let mut f3 = Array3::<f64>::zeros((rows, 1, cols).f());
        f3.assign(&c.view().insert_axis(Axis(1)));
        let want3 = naive(&c.iter().copied().collect::<Vec<_>>(), &[rows, 1, cols]);
        assert_eq!(fingerprint(&f3), want3);
        // Wide matrices: a row is longer than a gathered piece, and chunk
        // boundaries fall inside rows.
        for (rows, cols) in [(7, 70_001), (2, 300_007), (9, 16_384)] {
            let c = Array::from_shape_fn((rows, cols), |(i, j)| ((i * cols + j) as f64).cos());
            let mut f = Array2::<f64>::zeros((rows, cols).f());
            f.assign(&c);
            let want = naive(&c.iter().copied().collect::<Vec<_>>(), &[rows, cols]);
            assert_eq!(fingerprint(&f), want, "{rows}x{cols}");
        }
    }

    #[test]
    fn large_nd_views_match_oracle_across_chunks() {
        // 3-D views over 2.6 chunks whose chunk boundaries fall inside rows
        // and inside planes: strided last axis, permuted axes, reversed axis.
        let (p, r, c) = (61, 89, 67);
        let base = Array3::from_shape_fn((p, r, 2 * c), |(i, j, k)| {
            ((i * 7919 + j * 104_729 + k) as f64).cos()
        });
        let check = |v: ndarray::ArrayView3<'_, f64>| {
            let want = naive(&v.iter().copied().collect::<Vec<_>>(), v.shape());
            assert_eq!(
                fingerprint(&v),
                want,
                "shape {:?} strides {:?}",
                v.shape(),
                v.strides()
            );
        };
        check(base.slice(s![.., .., ..;2]));
        check(base.slice(s![.., ..;-1, 1..;2]));
        check(base.view().permuted_axes([2, 0, 1]));
        check(
            base.view()
                .permuted_axes([1, 2, 0])
                .slice_move(s![3.., .., ..]),
        );
        let f32s = base.mapv(|x| x as f32);
        let v = f32s.view().permuted_axes([2, 1, 0]);
        let want: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        use xxhash_rust::xxh3::{xxh3_128 as oracle, Xxh3};
        let mut h = Xxh3::new();
        h.update(&header(DType::F32, v.shape(), want.len()));
        for ch in want.chunks(CHUNK_BYTES) {
            h.update(&oracle(ch).to_le_bytes());
        }
        assert_eq!(fingerprint(&v), Fingerprint(h.digest128()));
    }

    #[test]
    fn thread_count_does_not_matter() {
        let a = Array::from_shape_fn((3000, 700), |(i, j)| (i as f32) - (j as f32) * 0.25);
        let mut f = Array2::<f32>::zeros((3000, 700).f());
        f.assign(&a);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| (fingerprint(&a), fingerprint(&f)))
        };
        let one = run(1);
        let four = run(4);
        assert_eq!(one, four);
        assert_eq!(one.0, one.1);
    }

    #[test]
    fn call_keys() {
        let x = Fingerprint::from_u128(1);
        let y = Fingerprint::from_u128(2);
        let base = call_key("add", "1", b"", &[x, y]);
        assert_ne!(base, call_key("add", "1", b"", &[y, x]));
        assert_ne!(base, call_key("add", "2", b"", &[x, y]));
        assert_ne!(base, call_key("sub", "1", b"", &[x, y]));
        assert_ne!(base, call_key("add", "1", b"a", &[x, y]));
        // Length prefixes keep fields apart.
        assert_ne!(call_key("ab", "c", b"", &[]), call_key("a", "bc", b"", &[]));
        assert_eq!(base, call_key("add", "1", b"", &[x, y]));
        assert_ne!(base.derive(), base);
        let s = base.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(s.parse::<Fingerprint>().unwrap(), base);
        assert!("1".parse::<Fingerprint>().is_err());
        assert!(format!("+{}", &s[1..]).parse::<Fingerprint>().is_err());
    }
}
