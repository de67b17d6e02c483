//! What is worth keeping, around the facade: per-class cost estimates
//! (what the memory tier's cost-aware policy ranks by), the adaptive
//! bypass (skip the cache while it costs more than it saves) and the spill
//! of evicted results to disk.
//!
//! A *class* is a kernel on one dtype and one power-of-two range of input
//! elements: its calls cost about the same, so a smoothed average of their
//! timings ([`CostEstimate`](crate::memory::CostEstimate)) is a better
//! estimate of any one of them than its own noisy timing.

mod bypass;
mod class;
mod spill;

pub(crate) use bypass::{ghost_key, Route};
pub use class::ClassInfo;
pub(crate) use class::{ClassTable, CostClass};
pub use spill::DiskWrites;
pub(crate) use spill::{SpillGate, DEFAULT_SPILL_RATE};
