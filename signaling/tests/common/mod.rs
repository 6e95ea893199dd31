//! Helpers shared by the signaling crate's integration tests.

pub mod http;
