//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::element::DType;

/// A `Result` whose error is ndcache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ndcache.
///
/// Each variant names what was wrong (the kernel, the shapes, the path...).
/// `Display` is one lowercase sentence; an underlying cause, if any, is
/// available through [`std::error::Error::source`] and is not repeated in the
/// message.
///
/// `Error` is `Clone` so that every waiter of a single-flight computation can
/// receive the error of the computation it waited for.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No kernel of that name is registered.
    #[error("unknown kernel '{name}'{}", did_you_mean(suggestions))]
    UnknownKernel {
        /// The name asked for.
        name: String,
        /// The closest registered names, best first (possibly empty).
        suggestions: Vec<String>,
    },
    /// A kernel of that name is already registered.
    #[error("a kernel named '{name}' is already registered")]
    DuplicateKernel {
        /// The name registered twice.
        name: String,
    },
    /// A kernel was called with the wrong number of inputs.
    #[error("kernel '{kernel}' takes {expected} input(s), got {got}")]
    Arity {
        /// The kernel called.
        kernel: String,
        /// How many inputs it takes.
        expected: usize,
        /// How many it was given.
        got: usize,
    },
    /// A kernel does not accept an input of this dtype.
    #[error("kernel '{kernel}' does not support dtype {dtype}")]
    UnsupportedDType {
        /// The kernel called.
        kernel: String,
        /// The offending dtype.
        dtype: DType,
    },
    /// A typed accessor was used on an array of another dtype.
    #[error("expected an array of dtype {expected}, found {found}")]
    DTypeMismatch {
        /// The dtype asked for.
        expected: DType,
        /// The dtype of the array.
        found: DType,
    },
    /// Two operands do not broadcast together.
    #[error(
        "operands could not be broadcast together with shapes {} {}",
        ShapeFmt(left),
        ShapeFmt(right)
    )]
    Broadcast {
        /// Shape of the first operand.
        left: Vec<usize>,
        /// Shape of the second operand.
        right: Vec<usize>,
    },
    /// An axis is out of range for the array's dimension.
    #[error("axis {axis} is out of bounds for array of dimension {ndim}")]
    AxisOutOfRange {
        /// The axis given (possibly negative).
        axis: isize,
        /// The number of dimensions of the array.
        ndim: usize,
    },
    /// A reduction without identity (max, min) was asked of an empty array.
    #[error("zero-size array to reduction operation '{kernel}' which has no identity")]
    EmptyReduction {
        /// The reduction kernel.
        kernel: String,
    },
    /// A parameter is unknown to the kernel, has the wrong type, or is out of range.
    #[error("kernel '{kernel}': invalid parameter '{param}': {reason}")]
    InvalidParam {
        /// The kernel called.
        kernel: String,
        /// The parameter name.
        param: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A kernel rejected its inputs for a domain reason (for example an integer
    /// raised to a negative integer power).
    #[error("kernel '{kernel}': {reason}")]
    Domain {
        /// The kernel called.
        kernel: String,
        /// What is wrong.
        reason: String,
    },
    /// A user kernel reported an error of its own.
    #[error("kernel '{kernel}' failed: {message}")]
    Kernel {
        /// The kernel called.
        kernel: String,
        /// The kernel's message.
        message: String,
    },
    /// The computation of a cached value panicked. An [`ArrayCache`]
    /// catches a kernel's panic once, so the caller that ran the kernel and
    /// every caller waiting for it get this same error, and the process
    /// goes on; nothing is cached, and a later call computes again.
    ///
    /// [`ArrayCache`]: crate::ArrayCache
    #[error("the computation of '{what}' panicked: {message}")]
    Panicked {
        /// What was being computed (a kernel name, or "memoized function").
        what: String,
        /// The panic's message.
        message: String,
    },
    /// A computation asked the cache for the very key it is computing.
    #[error("recursive computation of the same key in '{what}' (it would wait for itself)")]
    Reentrant {
        /// What was being computed.
        what: String,
    },
    /// An array's shape does not fit its data or its declared size.
    #[error("invalid shape {}: {reason}", ShapeFmt(shape))]
    Shape {
        /// The shape.
        shape: Vec<usize>,
        /// What is wrong.
        reason: String,
    },
    /// An expression that cannot be evaluated as built (a scalar out of
    /// range for the array's dtype, a kernel whose result is not the
    /// declared type).
    #[error("invalid expression: {0}")]
    Expr(String),
    /// A builder was given inconsistent or out-of-range options.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file is not a valid `.npy` file of a supported dtype, or a cache entry is corrupt.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The remote tier (Redis) could not do what a maintenance command
    /// asked (list or clear a namespace). A cached call never returns this:
    /// a remote failure there is a miss.
    #[error("the remote cache {url} failed: {reason}")]
    Remote {
        /// The server's URL, password left out.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done ("read", "create", "rename to" ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean '{one}'?"),
        many => {
            let quoted: Vec<String> = many.iter().map(|s| format!("'{s}'")).collect();
            format!("; did you mean one of {}?", quoted.join(", "))
        }
    }
}

/// Formats a shape as numpy does: `(3,)`, `(2, 3)`, `()`.
pub(crate) struct ShapeFmt<'a>(pub &'a [usize]);

impl fmt::Display for ShapeFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("()"),
            [one] => write!(f, "({one},)"),
            dims => {
                f.write_str("(")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[allow(dead_code)] // used by the disk tier
impl Error {
    /// Builds an [`Error::Io`] for `action` on `path`.
    pub(crate) fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source: Arc::new(source),
        }
    }

    /// Builds an [`Error::Format`] for `path`.
    pub(crate) fn format(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Attaches a path and an action to an `io::Result` (every filesystem call
/// names its path in the error).
#[allow(dead_code)] // used by the disk tier
pub(crate) trait IoResultExt<T> {
    /// Maps the error to [`Error::Io`] with `action` and `path`.
    fn at(self, action: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn at(self, action: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_message_matches_numpy() {
        let e = Error::Broadcast {
            left: vec![3],
            right: vec![4],
        };
        assert_eq!(
            e.to_string(),
            "operands could not be broadcast together with shapes (3,) (4,)"
        );
        let e = Error::Broadcast {
            left: vec![2, 3],
            right: vec![],
        };
        assert_eq!(
            e.to_string(),
            "operands could not be broadcast together with shapes (2,3) ()"
        );
    }

    #[test]
    fn unknown_kernel_suggests() {
        let e = Error::UnknownKernel {
            name: "exq".into(),
            suggestions: vec!["exp".into()],
        };
        assert_eq!(e.to_string(), "unknown kernel 'exq'; did you mean 'exp'?");
        let e = Error::UnknownKernel {
            name: "zzz".into(),
            suggestions: vec![],
        };
        assert_eq!(e.to_string(), "unknown kernel 'zzz'");
    }

    #[test]
    fn io_error_names_path_and_keeps_source() {
        let e = Error::io(
            "read",
            "/no/such/file.npy",
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert_eq!(e.to_string(), "could not read /no/such/file.npy");
        assert!(std::error::Error::source(&e).is_some());
    }
}
