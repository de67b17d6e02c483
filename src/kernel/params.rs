//! Kernel parameters: values, declarations, validation and the canonical
//! encoding hashed into call keys.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// The value of one kernel parameter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamValue {
    /// An integer (`axis`, `ddof` ...).
    Int(i64),
    /// A float (a scalar operand, a tolerance ...).
    Float(f64),
    /// A flag (`keepdims`).
    Bool(bool),
    /// A string (a mode name).
    Str(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v:?}"),
            ParamValue::Bool(true) => f.write_str("True"),
            ParamValue::Bool(false) => f.write_str("False"),
            ParamValue::Str(s) => write!(f, "'{s}'"),
        }
    }
}

impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        ParamValue::Int(v)
    }
}
impl From<i32> for ParamValue {
    fn from(v: i32) -> Self {
        ParamValue::Int(v.into())
    }
}
impl From<isize> for ParamValue {
    fn from(v: isize) -> Self {
        ParamValue::Int(v as i64)
    }
}
impl From<usize> for ParamValue {
    fn from(v: usize) -> Self {
        ParamValue::Int(v as i64)
    }
}
impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::Float(v)
    }
}
impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        ParamValue::Bool(v)
    }
}
impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        ParamValue::Str(v.to_owned())
    }
}
impl From<String> for ParamValue {
    fn from(v: String) -> Self {
        ParamValue::Str(v)
    }
}

/// The type a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamKind {
    /// An integer.
    Int,
    /// A float (an integer given for it is converted).
    Float,
    /// A flag.
    Bool,
    /// A string.
    Str,
}

impl ParamKind {
    fn name(self) -> &'static str {
        match self {
            ParamKind::Int => "an integer",
            ParamKind::Float => "a float",
            ParamKind::Bool => "a bool",
            ParamKind::Str => "a string",
        }
    }
}

/// The declaration of one kernel parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The parameter's name (`axis`).
    pub name: &'static str,
    /// Its type.
    pub kind: ParamKind,
    /// Its value when not given; `None` means "absent" (numpy's `None`, as
    /// for `axis`).
    pub default: Option<ParamValue>,
    /// One line saying what it does.
    pub doc: &'static str,
}

impl ParamSpec {
    /// `axis`: an integer, negative counting from the end; absent means all axes.
    pub fn axis() -> Self {
        ParamSpec {
            name: "axis",
            kind: ParamKind::Int,
            default: None,
            doc: "axis to work along (negative counts from the end); none: all axes",
        }
    }

    /// `keepdims`: keep reduced axes with length one (default false).
    pub fn keepdims() -> Self {
        ParamSpec {
            name: "keepdims",
            kind: ParamKind::Bool,
            default: Some(ParamValue::Bool(false)),
            doc: "keep reduced axes as axes of length one",
        }
    }

    /// `ddof`: delta degrees of freedom (default 0).
    pub fn ddof() -> Self {
        ParamSpec {
            name: "ddof",
            kind: ParamKind::Int,
            default: Some(ParamValue::Int(0)),
            doc: "delta degrees of freedom: the divisor is n - ddof",
        }
    }
}

impl fmt::Display for ParamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.default {
            Some(d) => write!(f, "{}={}", self.name, d),
            None => write!(f, "{}=None", self.name),
        }
    }
}

/// The parameters of a kernel call, by name.
///
/// ```
/// use ndcache::Params;
/// let p = Params::new().axis(-1).keepdims(true);
/// assert_eq!(p.int("axis"), Some(-1));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<String, ParamValue>,
}

impl fmt::Display for Params {
    /// `axis=-1, keepdims=true` (names in order; empty for no parameters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

impl Params {
    /// No parameters (every parameter takes its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`.
    pub fn set(mut self, name: &str, value: impl Into<ParamValue>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }

    /// Sets `axis`.
    pub fn axis(self, axis: isize) -> Self {
        self.set("axis", axis)
    }

    /// Sets `keepdims`.
    pub fn keepdims(self, keepdims: bool) -> Self {
        self.set("keepdims", keepdims)
    }

    /// Sets `ddof`.
    pub fn ddof(self, ddof: i64) -> Self {
        self.set("ddof", ddof)
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name)
    }

    /// The integer value of `name`, if set and an integer.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(ParamValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// The float value of `name`, if set and a number.
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(ParamValue::Float(v)) => Some(*v),
            Some(ParamValue::Int(v)) => Some(*v as f64),
            _ => None,
        }
    }

    /// The flag `name`, if set and a bool.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(ParamValue::Bool(v)) => Some(*v),
            _ => None,
        }
    }

    /// The string value of `name`, if set and a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(ParamValue::Str(v)) => Some(v),
            _ => None,
        }
    }

    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The parameters set, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Checks `self` against a kernel's declarations and returns the
    /// canonical parameters (defaults filled in, floats given as integers
    /// converted) with their canonical encoding for the call key.
    ///
    /// Two calls that mean the same thing (`sum(x)` and `sum(x, axis=None,
    /// keepdims=False)`) get the same encoding.
    pub fn canonicalize(&self, kernel: &str, specs: &[ParamSpec]) -> Result<(Params, Vec<u8>)> {
        for name in self.values.keys() {
            if !specs.iter().any(|s| s.name == name) {
                let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                let reason = if known.is_empty() {
                    "the kernel takes no parameters".to_owned()
                } else {
                    format!("unknown parameter; the kernel takes {}", known.join(", "))
                };
                return Err(invalid(kernel, name, reason));
            }
        }
        let mut sorted: Vec<&ParamSpec> = specs.iter().collect();
        sorted.sort_by_key(|s| s.name);
        let mut canon = Params::new();
        let mut bytes = Vec::new();
        for spec in sorted {
            let value = match self.values.get(spec.name) {
                Some(v) => Some(coerce(kernel, spec, v)?),
                None => spec.default.clone(),
            };
            bytes.extend_from_slice(&(spec.name.len() as u32).to_le_bytes());
            bytes.extend_from_slice(spec.name.as_bytes());
            encode(value.as_ref(), &mut bytes);
            if let Some(v) = value {
                canon.values.insert(spec.name.to_owned(), v);
            }
        }
        Ok((canon, bytes))
    }
}

fn invalid(kernel: &str, param: &str, reason: impl Into<String>) -> Error {
    Error::InvalidParam {
        kernel: kernel.to_owned(),
        param: param.to_owned(),
        reason: reason.into(),
    }
}

fn coerce(kernel: &str, spec: &ParamSpec, v: &ParamValue) -> Result<ParamValue> {
    match (spec.kind, v) {
        (ParamKind::Int, ParamValue::Int(_))
        | (ParamKind::Float, ParamValue::Float(_))
        | (ParamKind::Bool, ParamValue::Bool(_))
        | (ParamKind::Str, ParamValue::Str(_)) => Ok(v.clone()),
        (ParamKind::Float, ParamValue::Int(i)) => Ok(ParamValue::Float(*i as f64)),
        (kind, other) => Err(invalid(
            kernel,
            spec.name,
            format!("expected {}, got {other}", kind.name()),
        )),
    }
}

fn encode(v: Option<&ParamValue>, out: &mut Vec<u8>) {
    match v {
        None => out.push(0),
        Some(ParamValue::Int(i)) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Some(ParamValue::Float(x)) => {
            // Bitwise, like array keys: -0.0 and 0.0 differ.
            out.push(2);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Some(ParamValue::Bool(b)) => {
            out.push(3);
            out.push(u8::from(*b));
        }
        Some(ParamValue::Str(s)) => {
            out.push(4);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<ParamSpec> {
        vec![ParamSpec::axis(), ParamSpec::keepdims(), ParamSpec::ddof()]
    }

    #[test]
    fn defaults_make_equal_encodings() {
        let (_, a) = Params::new().canonicalize("var", &specs()).unwrap();
        let (c, b) = Params::new()
            .keepdims(false)
            .ddof(0)
            .canonicalize("var", &specs())
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(c.bool("keepdims"), Some(false));
        assert_eq!(c.int("axis"), None);
        let (_, d) = Params::new().axis(0).canonicalize("var", &specs()).unwrap();
        assert_ne!(a, d);
        let (_, e) = Params::new()
            .axis(-1)
            .canonicalize("var", &specs())
            .unwrap();
        assert_ne!(d, e);
    }

    #[test]
    fn bad_params_are_named() {
        let e = Params::new()
            .set("axes", 1i64)
            .canonicalize("sum", &specs())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel 'sum': invalid parameter 'axes': unknown parameter; the kernel takes axis, keepdims, ddof"
        );
        let e = Params::new()
            .set("keepdims", 1i64)
            .canonicalize("sum", &specs())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel 'sum': invalid parameter 'keepdims': expected a bool, got 1"
        );
        let e = Params::new().axis(0).canonicalize("exp", &[]).unwrap_err();
        assert!(e.to_string().contains("takes no parameters"));
    }
}
