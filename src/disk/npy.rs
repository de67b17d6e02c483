//! Reading and writing `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! The header is a Python dict literal, parsed here by a small strict parser
//! (no `eval`, no pickle): `{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }`.
//! Only `float32`, `float64`, `int32` and `int64` are read, in either byte
//! order and either memory order; every other dtype (object, structured,
//! complex, bool, ...) is refused before any data is read.
//!
//! Files are always written in C order, little-endian, version 1.0 (2.0 when
//! the header does not fit in 65535 bytes), with the header padded so that
//! the data starts at a multiple of 64 bytes, as numpy does.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::hash::Xxh3;
use ndarray::{ArcArray, ArrayViewD, IxDyn, ShapeBuilder};

use super::layout::temp_path;
use crate::element::{DType, Element};
use crate::error::{Error, IoResultExt, Result};
use crate::value::{AnyArray, Wrap};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Headers longer than this are refused (numpy's own limit is 10000 bytes
/// unless asked otherwise; this one only guards against absurd allocations).
const MAX_HEADER_LEN: usize = 1 << 20;

/// Bytes read per piece when the data is also hashed (well inside a core's L2).
const READ_CHUNK_BYTES: usize = 256 << 10;

/// Elements gathered per write when the array is not contiguous.
const WRITE_CHUNK_ELEMS: usize = 1 << 16;

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
}

/// An open `.npy` file positioned at its first data byte.
pub(crate) struct NpyFile {
    pub file: File,
    pub header: Header,
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
    let header_len = match major {
        1 => u16::from_le_bytes([prefix[8], prefix[9]]) as usize,
        2 | 3 => {
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
    prefix.resize(start + header_len, 0);
    read_exact_or(&mut file, &mut prefix[start..], "header")?;
    // Versions 1 and 2 are latin-1, 3 is UTF-8: everything that matters is
    // ASCII, so a lossy decoding only affects the text of error messages.
    let text = String::from_utf8_lossy(&prefix[start..]);
    let header = parse_header(&text).map_err(NpyError::Format)?;
    let data_len = header
        .data_len()
        .ok_or_else(|| NpyError::Format(format!("shape {:?} is too large", header.shape)))?;
    let available = file_len.saturating_sub(prefix.len() as u64);
    if available < data_len {
        return Err(NpyError::Format(format!(
            "truncated .npy file: the header announces {data_len} data bytes, the file holds {available}"
        )));
    }
    Ok(NpyFile {
        file,
        header,
        prefix,
        data_len,
    })
}

impl NpyFile {
    /// Reads the data into a new array (one read into the final buffer),
    /// feeding the bytes as stored to `hasher` if given.
    pub fn read_array(mut self, hasher: Option<&mut Xxh3>) -> Result<AnyArray, NpyError> {
        match self.header.dtype {
            DType::F32 => read_typed::<f32>(&mut self, hasher),
            DType::F64 => read_typed::<f64>(&mut self, hasher),
            DType::I32 => read_typed::<i32>(&mut self, hasher),
            DType::I64 => read_typed::<i64>(&mut self, hasher),
        }
    }
}

fn read_typed<T: Element>(
    f: &mut NpyFile,
    hasher: Option<&mut Xxh3>,
) -> Result<AnyArray, NpyError> {
    let n = usize::try_from(f.data_len)
        .map_err(|_| NpyError::Format("the array does not fit in memory".into()))?
        / T::DTYPE.size();
    // `vec![0; n]` comes from calloc: fresh pages are not written twice.
    let mut data = vec![T::default(); n];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
    match hasher {
        // Hash each piece right after reading it, while it is still in the
        // CPU cache: the checksum then costs no extra trip to memory.
        Some(h) => {
            for piece in bytes.chunks_mut(READ_CHUNK_BYTES) {
                read_exact_or(&mut f.file, piece, "data")?;
                h.update(piece);
            }
        }
        None => read_exact_or(&mut f.file, bytes, "data")?,
    }
    if f.header.big_endian != cfg!(target_endian = "big") {
        swap_bytes(&mut data);
    }
    let shape = IxDyn(&f.header.shape);
    let array = if f.header.fortran_order {
        ArcArray::from_shape_vec(shape.f(), data)
    } else {
        ArcArray::from_shape_vec(shape, data)
    };
    // The data length matches the shape, so the only possible error is a
    // shape whose size overflows (with a zero-length axis, numpy allows it).
    let array = array.map_err(|_| {
        NpyError::Format(format!(
            "shape {:?} is too large for this machine",
            f.header.shape
        ))
    })?;
    Ok(T::wrap_arc(array))
}

fn swap_bytes<T: Element>(data: &mut [T]) {
    match T::DTYPE.size() {
        4 => bytemuck::cast_slice_mut::<T, u32>(data)
            .iter_mut()
            .for_each(|x| *x = x.swap_bytes()),
        8 => bytemuck::cast_slice_mut::<T, u64>(data)
            .iter_mut()
            .for_each(|x| *x = x.swap_bytes()),
        _ => unreachable!("every supported dtype is 4 or 8 bytes wide"),
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

/// Writes the whole `.npy` file to `w` and returns its length and the
/// xxh3-128 of every byte written.
pub(crate) fn write_array(w: &mut impl Write, array: &AnyArray) -> io::Result<(u64, u128)> {
    let header = header_bytes(array.dtype(), array.shape());
    let mut hasher = Xxh3::new();
    hasher.update(&header);
    w.write_all(&header)?;
    crate::dispatch_array!(array, a => write_data(w, a.view(), &mut hasher))?;
    Ok((header.len() as u64 + array.nbytes(), hasher.digest128()))
}

fn write_data<T: Element>(
    w: &mut impl Write,
    view: ArrayViewD<'_, T>,
    hasher: &mut Xxh3,
) -> io::Result<()> {
    if cfg!(target_endian = "little") {
        if let Some(s) = view.as_slice() {
            let bytes = bytemuck::cast_slice(s);
            hasher.update(bytes);
            return w.write_all(bytes);
        }
    }
    let mut buf: Vec<T> = Vec::with_capacity(WRITE_CHUNK_ELEMS.min(view.len()));
    let mut flush = |buf: &mut Vec<T>| -> io::Result<()> {
        let bytes = bytemuck::cast_slice(buf);
        hasher.update(bytes);
        w.write_all(bytes)?;
        buf.clear();
        Ok(())
    };
    for &x in view.iter() {
        buf.push(x.to_le());
        if buf.len() == WRITE_CHUNK_ELEMS {
            flush(&mut buf)?;
        }
    }
    flush(&mut buf)
}

/// The magic, version, length and padded header of a C-order little-endian
/// array, `len % 64 == 0` as numpy writes it.
pub(crate) fn header_bytes(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        dims => {
            let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        dtype.descr()
    );
    let build = |preamble: usize| {
        let unpadded = preamble + dict.len() + 1;
        let pad = (64 - unpadded % 64) % 64;
        dict.len() + pad + 1
    };
    let (version, preamble, text_len) = match build(10) {
        n if n <= u16::MAX as usize => (1u8, 10, n),
        _ => (2u8, 12, build(12)),
    };
    let mut out = Vec::with_capacity(preamble + text_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(text_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(text_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(preamble + text_len - 1, b' ');
    out.push(b'\n');
    out
}

/// A value in the header dict.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
    /// Anything else, kept as source text for error messages.
    Other(String),
}

/// Parses the header dict strictly: exactly the keys `descr`,
/// `fortran_order` and `shape`, once each.
pub(crate) fn parse_header(text: &str) -> Result<Header, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.ws();
    p.expect(b'{')?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = match p.value()? {
            Value::Str(s) => s,
            other => return Err(format!("unexpected header key {other:?}")),
        };
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        let slot = match key.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran,
            "shape" => &mut shape,
            _ => return Err(format!("unexpected key '{key}' in the .npy header")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("key '{key}' appears twice in the .npy header"));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    if !text[p.i..].bytes().all(|b| b.is_ascii_whitespace()) {
        return Err("unexpected text after the .npy header dict".into());
    }
    let missing = |k: &str| format!("the .npy header has no '{k}'");
    let (dtype, big_endian) = match descr.ok_or_else(|| missing("descr"))? {
        Value::Str(s) => parse_descr(&s)?,
        Value::Other(raw) => return Err(unsupported(&raw)),
        v => return Err(format!("invalid 'descr' {v:?} in the .npy header")),
    };
    let fortran_order = match fortran.ok_or_else(|| missing("fortran_order"))? {
        Value::Bool(b) => b,
        v => return Err(format!("invalid 'fortran_order' {v:?} in the .npy header")),
    };
    let shape = match shape.ok_or_else(|| missing("shape"))? {
        Value::Tuple(t) => t,
        v => return Err(format!("invalid 'shape' {v:?} in the .npy header")),
    };
    if shape.len() > crate::kernel::MAX_DIMS {
        return Err(format!(
            "the .npy header has {} dimensions; at most {} are supported, as in numpy",
            shape.len(),
            crate::kernel::MAX_DIMS
        ));
    }
    Ok(Header {
        dtype,
        big_endian,
        fortran_order,
        shape,
    })
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

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "malformed .npy header: expected '{}' at byte {}",
                c as char, self.i
            ))
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        let start = self.i;
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let body = self.i;
                while self.peek().is_some_and(|c| c != q && c != b'\\') {
                    self.i += 1;
                }
                let s = String::from_utf8_lossy(&self.s[body..self.i]).into_owned();
                self.expect(q)?;
                Ok(Value::Str(s))
            }
            Some(b'(') => {
                self.i += 1;
                self.tuple()
            }
            Some(b'[' | b'{') => {
                self.skip_nested()?;
                Ok(Value::Other(self.text(start)))
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    b"" => Err(format!("malformed .npy header at byte {start}")),
                    _ => Ok(Value::Other(self.text(start))),
                }
            }
        }
    }

    fn text(&self, start: usize) -> String {
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// After `(`: `)`, `n,)`, `n, m)`, `n, m,)` with non-negative integers.
    fn tuple(&mut self) -> Result<Value, String> {
        let mut dims = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.ws();
            if self.eat(b')') {
                break;
            }
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let d: usize = digits
                .parse()
                .map_err(|_| format!("invalid shape in the .npy header at byte {start}"))?;
            dims.push(d);
            self.ws();
            trailing_comma = self.eat(b',');
            if !trailing_comma {
                self.ws();
                self.expect(b')')?;
                break;
            }
        }
        // `(3)` is the integer 3 in Python, not a tuple.
        if dims.len() == 1 && !trailing_comma {
            return Err("invalid shape in the .npy header: not a tuple".into());
        }
        Ok(Value::Tuple(dims))
    }

    /// Skips a bracketed structure (a structured dtype's list), honouring quotes.
    fn skip_nested(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        let mut quote = None;
        while let Some(c) = self.peek() {
            self.i += 1;
            match (quote, c) {
                (Some(q), _) if c == q => quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"') => quote = Some(c),
                (None, b'[' | b'{' | b'(') => depth += 1,
                (None, b']' | b'}' | b')') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err("malformed .npy header: unbalanced brackets".into())
    }
}
