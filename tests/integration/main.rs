//! ndcache's integration tests: one binary, one module per topic.

mod cache;
mod cli;
mod examples;
mod expressions;
mod fuzz_regressions;
mod golden;
mod interop;
mod kernel_versions;
mod limits;
mod memo;
mod memory;
mod policy;
mod properties;
mod rayon_flights;
#[cfg(feature = "remote")]
mod remote;
