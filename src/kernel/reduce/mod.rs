//! Reductions, scans and sorts.

use super::Registry;

/// Registers the reduction, scan and sort builtins.
pub(crate) fn register(_r: &mut Registry) {}
