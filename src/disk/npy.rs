//! Reading and writing `.npy` files (format versions 1.0, 2.0 and 3.0),
//! through the `ndarray-npy` crate.
//!
//! Only `float32`, `float64`, `int32` and `int64` are read, in either byte
//! order and either memory order; every other dtype (object, structured,
//! complex, bool, ...) is refused before any data is read. Nothing is ever
//! unpickled or evaluated: `ndarray-npy` parses the header dict as a Python
//! literal.
//!
//! Files are written in C order, in the machine's byte order (little-endian
//! on every supported target), version 1.0 (2.0 when the header does not fit
//! in 65535 bytes), with the header padded so that the data starts at a
//! multiple of 64 bytes, as numpy does.
//!
//! # What `ndarray-npy` does, and what stays here
//!
//! `ndarray-npy` parses and formats the header dict
//! ([`Header`](ndarray_npy::npy::header::Header)), reads the data into the
//! array's final buffer ([`ReadNpyExt`], which also swaps the bytes of a
//! big-endian file and keeps a Fortran-order file's layout without a copy),
//! and writes C-order arrays ([`WriteNpyExt`]). The hand-written parts are
//! what it cannot do:
//!
//! * **The preamble and the size guards.** The magic string, version and
//!   header length are read here, and the header length is checked against
//!   [`MAX_HEADER_LEN`] (10000 bytes, numpy's default limit) and the
//!   file's length before anything is allocated for it (`ndarray-npy`
//!   allocates whatever a version 2.0 file's 32-bit length claims, up to
//!   4 GiB). After the header is parsed, the file must hold every data byte
//!   the shape announces, and the shape must fit in memory, before the data
//!   buffer is allocated: `ReadNpyExt` allocates the whole array first, so
//!   a 100-byte file claiming a 2^60-element shape would otherwise be an
//!   allocation failure (an abort), and a zero-length shape whose other axes
//!   overflow `isize` (`(0, 2**62, 4)`) would be a panic inside it.
//! * **Bracket depth.** A header nesting brackets deeper than
//!   [`MAX_HEADER_DEPTH`] (4) is refused before the literal parser sees it:
//!   that parser backtracks exponentially in the depth of unclosed
//!   brackets (found by fuzzing: 15 unclosed `{` in a 145-byte file took
//!   minutes). A supported header nests two levels.
//! * **numpy's leniency.** numpy reads headers without the final newline
//!   and the descrs `=f8`, `|f8` and `f8` (native byte order);
//!   `ndarray-npy` refuses both. The header text is handed to it with a
//!   newline added if missing, and the data is read under a canonical
//!   header ([`Header::to_bytes`](ndarray_npy::npy::header::Header::to_bytes)
//!   with `<f8`/`>f8`) chained before the file's data bytes. Bytes after the
//!   data are ignored, as numpy does (`ndarray-npy` refuses them): the data
//!   reader stops at the announced length.
//! * **The dtype dispatch.** `ndarray-npy` needs the element type at compile
//!   time; the descr is matched here to pick `f32`/`f64`/`i32`/`i64` (and
//!   to name an unsupported dtype in the error).
//! * **Hashing while reading and writing.** The disk tier verifies the xxh3
//!   of every payload byte: the data reader hashes each 256 KiB piece right
//!   after reading it, while it is in the CPU cache, so a verified hit still
//!   reads the bytes once, into the array's final buffer (`ViewNpyExt` would
//!   give a borrowed view of a byte buffer, and an owned array from it costs
//!   a second copy of the payload).
//! * **Writing a non-C-order array in C order.** `WriteNpyExt` writes a
//!   Fortran-order array as a Fortran-order file and gathers any other
//!   strided array one element per `write` call; the disk tier's payloads are
//!   C order, so such arrays are gathered here in 64 Ki-element pieces.
//! * **Atomic files.** [`write_npy_atomic`] writes a temporary file in the
//!   same directory, syncs it and renames it into place.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::sign::Digests;
use ndarray::{ArrayD, ArrayViewD};
use ndarray_npy::npy::header::{Header as NpyHeader, Layout, ParseHeaderError, ReadHeaderError};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement, WritableElement, WriteNpyExt};

use super::layout::temp_path;
use crate::element::{DType, Element};
use crate::error::{Error, IoResultExt, Result};
use crate::value::{AnyArray, Wrap};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Headers longer than this are refused before anything is allocated for
/// them: numpy's own default limit (`max_header_size`), far above the
/// longest header of a supported array (64 axes: about 1500 bytes).
pub(crate) const MAX_HEADER_LEN: usize = 10_000;

/// Headers nesting brackets deeper than this are refused before they are
/// parsed. A supported header nests two levels (`{'shape': (2, 3)}`), an
/// unsupported structured dtype three or four (refused by name after
/// parsing). `ndarray-npy`'s literal parser (pest, through `py_literal`)
/// backtracks exponentially in the depth of unclosed brackets: fuzzing
/// found a 145-byte file whose 15 unclosed `{` took minutes to refuse, and
/// each level about triples the time.
pub(crate) const MAX_HEADER_DEPTH: usize = 4;

/// Bytes read per piece when the data is also hashed (well inside a core's L2).
const READ_CHUNK_BYTES: usize = 256 << 10;

/// Elements gathered per write when the array is not in C order.
const WRITE_CHUNK_ELEMS: usize = 1 << 16;

/// The element types read and written here.
trait NpyElement: Element + ReadableElement + WritableElement {}
impl<T: Element + ReadableElement + WritableElement> NpyElement for T {}

/// Why a `.npy` file could not be read; the caller adds the path.
#[derive(Debug)]
pub(crate) enum NpyError {
    /// The file is not a valid `.npy` file of a supported dtype.
    Format(String),
    /// The file could not be read.
    Io(&'static str, io::Error),
}

impl NpyError {
    pub(crate) fn into_error(self, path: &Path) -> Error {
        match self {
            NpyError::Format(reason) => Error::format(path, reason),
            NpyError::Io(action, e) => Error::io(action, path, e),
        }
    }
}

/// Reads into `buf`, mapping an early end of file to a format error.
fn read_exact_or(file: &mut File, buf: &mut [u8], what: &str) -> Result<(), NpyError> {
    file.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            NpyError::Format(format!("truncated .npy file (it ends inside the {what})"))
        } else {
            NpyError::Io("read", e)
        }
    })
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub dtype: DType,
    /// Whether the data is stored big-endian.
    pub big_endian: bool,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

impl Header {
    /// The number of data bytes, or `None` on overflow.
    pub fn data_len(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        self.shape
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &d| {
                acc.checked_mul(d as u64)
            })
    }

    /// Whether an array of this shape can exist: the product of the axis
    /// lengths, zero ones left out, times the element size, fits in `isize`
    /// (ndarray's rule, checked before `ndarray-npy` builds the array).
    fn fits_in_memory(&self) -> bool {
        self.shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(self.dtype.size(), |acc, &d| acc.checked_mul(d))
            .is_some_and(|n| n <= isize::MAX as usize)
    }

    /// The header `ndarray-npy` reads the data under: the same shape and
    /// memory order, the descr spelled `<f8` or `>f8`, a final newline.
    fn canonical<T: NpyElement>(&self, parsed: &NpyHeader) -> Result<Vec<u8>, NpyError> {
        let explicit = parsed
            .type_descriptor
            .as_string()
            .is_some_and(|s| s.starts_with(['<', '>']));
        // `=`, `|` and no mark all mean the native byte order, which is the
        // descr `ndarray-npy` writes for `T`.
        let type_descriptor = if explicit {
            parsed.type_descriptor.clone()
        } else {
            T::type_descriptor()
        };
        NpyHeader {
            type_descriptor,
            layout: parsed.layout,
            shape: self.shape.clone(),
        }
        .to_bytes()
        .map_err(|e| NpyError::Format(format!("cannot re-encode the .npy header: {e}")))
    }
}

/// An open `.npy` file positioned at its first data byte.
pub(crate) struct NpyFile {
    pub file: File,
    pub header: Header,
    /// The header as `ndarray-npy` parsed it.
    parsed: NpyHeader,
    /// Every byte before the data (magic, version, length, header text).
    pub prefix: Vec<u8>,
    pub data_len: u64,
}

/// Opens `path`, parses its header and checks that the file holds at least
/// the data the header announces (so truncation is caught before allocating).
pub(crate) fn open(path: &Path) -> Result<NpyFile, NpyError> {
    let file = File::open(path).map_err(|e| NpyError::Io("open", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| NpyError::Io("read the metadata of", e))?
        .len();
    from_file(file, file_len)
}

pub(crate) fn from_file(mut file: File, file_len: u64) -> Result<NpyFile, NpyError> {
    let mut prefix = vec![0u8; 10];
    read_exact_or(&mut file, &mut prefix, "magic string")?;
    if &prefix[..6] != MAGIC {
        return Err(NpyError::Format(
            "not a .npy file (it does not start with the magic string \\x93NUMPY)".into(),
        ));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let header_len = match (major, minor) {
        (1, 0) => u16::from_le_bytes([prefix[8], prefix[9]]) as usize,
        (2 | 3, 0) => {
            prefix.resize(12, 0);
            read_exact_or(&mut file, &mut prefix[10..], "header length")?;
            u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize
        }
        _ => {
            return Err(NpyError::Format(format!(
                "unsupported .npy format version {major}.{minor}"
            )))
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(NpyError::Format(format!(
            "the .npy header is {header_len} bytes long (the limit is {MAX_HEADER_LEN})"
        )));
    }
    let start = prefix.len();
    // The header cannot extend past the end of the file: checked before
    // allocating, so a short file claiming a long header costs nothing.
    if (start + header_len) as u64 > file_len {
        return Err(NpyError::Format(
            "truncated .npy file (it ends inside the header)".into(),
        ));
    }
    prefix.resize(start + header_len, 0);
    read_exact_or(&mut file, &mut prefix[start..], "header")?;
    let (header, parsed) = parse_header_bytes(major, &prefix[start..]).map_err(NpyError::Format)?;
    let data_len = header
        .data_len()
        .ok_or_else(|| NpyError::Format(format!("shape {:?} is too large", header.shape)))?;
    let available = file_len.saturating_sub(prefix.len() as u64);
    if available < data_len {
        return Err(NpyError::Format(format!(
            "truncated .npy file: the header announces {data_len} data bytes, the file holds {available}"
        )));
    }
    if !header.fits_in_memory() {
        return Err(NpyError::Format(format!(
            "shape {:?} is too large for this machine",
            header.shape
        )));
    }
    Ok(NpyFile {
        file,
        header,
        parsed,
        prefix,
        data_len,
    })
}

impl NpyFile {
    /// Reads the data into a new array (one read into the final buffer),
    /// feeding the bytes as stored to `hasher` if given.
    pub fn read_array(self, hasher: Option<&mut Digests>) -> Result<AnyArray, NpyError> {
        match self.header.dtype {
            DType::F32 => read_typed::<f32>(self, hasher),
            DType::F64 => read_typed::<f64>(self, hasher),
            DType::I32 => read_typed::<i32>(self, hasher),
            DType::I64 => read_typed::<i64>(self, hasher),
        }
    }
}

/// Reads at most `left` bytes, at most [`READ_CHUNK_BYTES`] per call, and
/// hashes each piece right after reading it, while it is still in the CPU
/// cache: the checksum then costs no extra trip to memory.
struct DataReader<'a> {
    file: &'a mut File,
    left: u64,
    hasher: Option<&'a mut Digests>,
}

impl Read for DataReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(READ_CHUNK_BYTES);
        let n = usize::try_from(self.left).map_or(n, |left| n.min(left));
        let n = self.file.read(&mut buf[..n])?;
        self.left -= n as u64;
        if let Some(h) = self.hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn read_typed<T: NpyElement>(
    mut f: NpyFile,
    hasher: Option<&mut Digests>,
) -> Result<AnyArray, NpyError> {
    let canonical = f.header.canonical::<T>(&f.parsed)?;
    let data = DataReader {
        file: &mut f.file,
        left: f.data_len,
        hasher,
    };
    // The file holds the data (checked in `from_file`) and the shape fits
    // in memory, so `ndarray-npy` allocates only what the file backs.
    let array = ArrayD::<T>::read_npy(canonical.as_slice().chain(data)).map_err(|e| match e {
        ReadNpyError::Io(e) => NpyError::Io("read", e),
        ReadNpyError::MissingData => {
            NpyError::Format("truncated .npy file (it ends inside the data)".into())
        }
        ReadNpyError::LengthOverflow => NpyError::Format(format!(
            "shape {:?} is too large for this machine",
            f.header.shape
        )),
        other => NpyError::Format(format!("invalid .npy data: {other}")),
    })?;
    Ok(T::wrap_arc(array.into_shared()))
}

/// The array of `dtype` and `shape` whose C-order, native-endian element
/// bytes are `bytes`; `None` if their length does not match.
pub(crate) fn array_from_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Option<AnyArray> {
    fn typed<T: NpyElement>(shape: &[usize], bytes: &[u8]) -> Option<AnyArray> {
        if !bytes.len().is_multiple_of(std::mem::size_of::<T>()) {
            return None;
        }
        // A copy into an aligned vector: the bytes come from SQLite.
        let mut v = vec![T::default(); bytes.len() / std::mem::size_of::<T>()];
        bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(bytes);
        let a = ArrayD::from_shape_vec(ndarray::IxDyn(shape), v).ok()?;
        Some(T::wrap_arc(a.into_shared()))
    }
    match dtype {
        DType::F32 => typed::<f32>(shape, bytes),
        DType::F64 => typed::<f64>(shape, bytes),
        DType::I32 => typed::<i32>(shape, bytes),
        DType::I64 => typed::<i64>(shape, bytes),
    }
}

/// Reads a `.npy` file of `float32`, `float64`, `int32` or `int64` elements.
///
/// Accepts every such file numpy writes: format versions 1.0, 2.0 and 3.0,
/// either byte order (`<`, `>`, `=`, `|`) and either memory order (a
/// Fortran-order file gives a Fortran-order array, without a copy). Other
/// dtypes, truncated files and files that are not `.npy` at all give an
/// [`Error::Format`] naming the file; nothing is ever unpickled.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("a.npy");
/// let a = ndcache::AnyArray::from(ndarray::array![[1.0f64, 2.0], [3.0, 4.0]]);
/// ndcache::disk::write_npy_atomic(&path, &a)?;
/// assert!(ndcache::disk::read_npy(&path)?.bitwise_eq(&a));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_npy(path: impl AsRef<Path>) -> Result<AnyArray> {
    let path = path.as_ref();
    open(path)
        .and_then(|f| f.read_array(None))
        .map_err(|e| e.into_error(path))
}

/// Writes `array` to `path` as a `.npy` file (C order, little-endian), so
/// that no reader ever sees a partial file.
///
/// The data goes to a temporary file in the same directory, is synced to
/// disk, and is then renamed to `path` (replacing any file there). On error
/// the temporary file is removed and nothing appears at `path`.
pub fn write_npy_atomic(path: impl AsRef<Path>, array: &AnyArray) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "array".into());
    let (tmp, mut file) = create_temp(dir, &stem)?;
    let result = write_array(&mut file, array)
        .at("write", &tmp)
        .and_then(|_| file.sync_all().at("sync", &tmp))
        .and_then(|_| fs::rename(&tmp, path).at("rename a temporary file to", path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a new temporary file in `dir` (never an existing one).
pub(crate) fn create_temp(dir: &Path, stem: &str) -> Result<(std::path::PathBuf, File)> {
    loop {
        let tmp = temp_path(dir, stem);
        match File::options().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", &tmp, e)),
        }
    }
}

/// Passes writes through, hashing and counting every byte.
struct HashWriter<'a, W> {
    inner: &'a mut W,
    hasher: &'a mut Digests,
    len: u64,
}

impl<W: Write> Write for HashWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the whole `.npy` file to `w` and returns its length and the
/// xxh3-128 of every byte written.
pub(crate) fn write_array(w: &mut impl Write, array: &AnyArray) -> io::Result<(u64, u128)> {
    let mut digests = Digests::new(None);
    let len = write_array_digests(w, array, &mut digests)?;
    Ok((len, digests.xxh3.digest128()))
}

/// Writes the whole `.npy` file to `w`, feeding every byte to `digests`;
/// returns its length.
pub(crate) fn write_array_digests(
    w: &mut impl Write,
    array: &AnyArray,
    digests: &mut Digests,
) -> io::Result<u64> {
    let mut w = HashWriter {
        inner: w,
        hasher: digests,
        len: 0,
    };
    crate::dispatch_array!(array, a => write_typed(&mut w, a.view()))?;
    Ok(w.len)
}

fn write_typed<T: NpyElement>(w: &mut impl Write, view: ArrayViewD<'_, T>) -> io::Result<()> {
    if view.is_standard_layout() {
        // Header and data in two `write_all`s.
        return view.write_npy(w).map_err(|e| match e {
            ndarray_npy::WriteNpyError::Io(e) => e,
            other => io::Error::other(other),
        });
    }
    w.write_all(&typed_header::<T>(view.shape()))?;
    let mut buf: Vec<T> = Vec::with_capacity(WRITE_CHUNK_ELEMS.min(view.len()));
    for &x in view.iter() {
        buf.push(x);
        if buf.len() == WRITE_CHUNK_ELEMS {
            w.write_all(bytemuck::cast_slice(&buf))?;
            buf.clear();
        }
    }
    w.write_all(bytemuck::cast_slice(&buf))
}

/// The magic, version, length and padded header of a C-order array of `T`
/// in the machine's byte order, `len % 64 == 0`, as `ndarray-npy` writes it.
fn typed_header<T: NpyElement>(shape: &[usize]) -> Vec<u8> {
    NpyHeader {
        type_descriptor: T::type_descriptor(),
        layout: Layout::Standard,
        shape: shape.to_vec(),
    }
    .to_bytes()
    // Only a header longer than 4 GiB fails: a shape of hundreds of
    // millions of axes, which no array in memory has.
    .expect("the .npy header of an array in memory fits in 4 GiB")
}

/// The header [`write_array`] writes for an array of this dtype and shape.
pub(crate) fn header_bytes(dtype: DType, shape: &[usize]) -> Vec<u8> {
    match dtype {
        DType::F32 => typed_header::<f32>(shape),
        DType::F64 => typed_header::<f64>(shape),
        DType::I32 => typed_header::<i32>(shape),
        DType::I64 => typed_header::<i64>(shape),
    }
}

/// Parses header text (the dict, as in a version 3.0 file).
#[cfg(test)]
pub(crate) fn parse_header(text: &str) -> Result<Header, String> {
    parse_header_bytes(3, text.as_bytes()).map(|(h, _)| h)
}

/// Parses the header text of a file of format version `major` (ASCII for
/// versions 1 and 2, UTF-8 for 3) with `ndarray-npy`, then checks what
/// ndcache supports.
fn parse_header_bytes(major: u8, text: &[u8]) -> Result<(Header, NpyHeader), String> {
    let depth = max_depth(text);
    if depth > MAX_HEADER_DEPTH {
        return Err(format!(
            "malformed .npy header: brackets nested {depth} deep (the limit is {MAX_HEADER_DEPTH})"
        ));
    }
    // `ndarray-npy` reads a whole file's preamble; numpy does not require
    // the final newline, `ndarray-npy` does.
    let newline = !text.ends_with(b"\n");
    let len = text.len() + usize::from(newline);
    let mut framed = Vec::with_capacity(12 + len);
    framed.extend_from_slice(MAGIC);
    framed.extend_from_slice(&[if major == 3 { 3 } else { 2 }, 0]);
    framed.extend_from_slice(&(len as u32).to_le_bytes());
    framed.extend_from_slice(text);
    if newline {
        framed.push(b'\n');
    }
    let parsed = NpyHeader::from_reader(&mut framed.as_slice()).map_err(|e| match e {
        ReadHeaderError::Parse(e) => header_error(e),
        ReadHeaderError::Io(e) => format!("malformed .npy header: {e}"),
    })?;
    let (dtype, big_endian) = match parsed.type_descriptor.as_string() {
        Some(s) => parse_descr(s)?,
        None => return Err(unsupported(&parsed.type_descriptor.to_string())),
    };
    if parsed.shape.len() > crate::kernel::MAX_DIMS {
        return Err(format!(
            "the .npy header has {} dimensions; at most {} are supported, as in numpy",
            parsed.shape.len(),
            crate::kernel::MAX_DIMS
        ));
    }
    let header = Header {
        dtype,
        big_endian,
        fortran_order: parsed.layout.is_fortran(),
        shape: parsed.shape.clone(),
    };
    Ok((header, parsed))
}

/// The deepest nesting of brackets, quotes ignored: an over-estimate when
/// a string holds brackets (`'<M8[s]'` counts one level), never an
/// under-estimate (tracking quotes would have to follow escapes exactly as
/// the literal parser does).
fn max_depth(text: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0);
    for &c in text {
        match c {
            b'[' | b'{' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// What was wrong with the header, in ndcache's words.
fn header_error(e: ParseHeaderError) -> String {
    match e {
        ParseHeaderError::MissingKey(k) => {
            // ndarray-npy 0.10 names the missing shape "shaper".
            let k = if k == "shaper" { "shape".into() } else { k };
            format!("the .npy header has no '{k}'")
        }
        ParseHeaderError::UnknownKey(k) => format!("unexpected key {k} in the .npy header"),
        ParseHeaderError::IllegalValue { key, value } if key == "shape" => {
            if value.is_tuple() {
                format!("invalid shape {value} in the .npy header (not non-negative integers)")
            } else {
                format!("invalid 'shape' {value} in the .npy header: not a tuple")
            }
        }
        ParseHeaderError::IllegalValue { key, value } => {
            format!("invalid '{key}' {value} in the .npy header")
        }
        ParseHeaderError::MetaNotDict(v) => format!("the .npy header is not a dict: {v}"),
        ParseHeaderError::NonAscii => {
            "the .npy header is not ASCII (only version 3.0 headers may be UTF-8)".into()
        }
        ParseHeaderError::DictParse(e) => {
            // pest's report spans several lines and quotes the header: one
            // line, at most 200 characters.
            let words: Vec<String> = e.to_string().split_whitespace().map(String::from).collect();
            let mut text = words.join(" ");
            if let Some((cut, _)) = text.char_indices().nth(200) {
                text.truncate(cut);
                text.push_str("...");
            }
            format!("malformed .npy header (not a Python dict literal): {text}")
        }
        other => format!("malformed .npy header: {other}"),
    }
}

fn unsupported(descr: &str) -> String {
    format!("unsupported dtype '{descr}'; ndcache supports float32, float64, int32, int64")
}

/// Parses a simple dtype descr: an optional byte-order mark and a type code.
fn parse_descr(s: &str) -> Result<(DType, bool), String> {
    let (order, code) = match s.as_bytes().first() {
        Some(c @ (b'<' | b'>' | b'=' | b'|')) => (*c, &s[1..]),
        _ => (b'=', s),
    };
    let dtype = match code {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "i4" => DType::I32,
        "i8" => DType::I64,
        _ => return Err(unsupported(s)),
    };
    let big_endian = match order {
        b'<' => false,
        b'>' => true,
        // '=' and '|' mean the byte order of the machine that wrote the
        // file; numpy itself reads them as native.
        _ => cfg!(target_endian = "big"),
    };
    Ok((dtype, big_endian))
}
