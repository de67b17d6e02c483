//! ndcache's integration tests: one binary, one module per topic.

mod cache;
mod cli;
mod examples;
mod golden;
mod interop;
mod memo;
mod memory;
mod properties;
