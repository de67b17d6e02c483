//! Elementwise kernels: numpy's unary and binary ufuncs, and user closures.

use super::Registry;

/// Registers the elementwise builtins.
pub(crate) fn register(_r: &mut Registry) {}
