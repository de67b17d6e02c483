//! ndcache's integration tests: one binary, one module per topic.

mod cache;
mod golden;
mod memo;
mod memory;
