//! Support for iMark's end-to-end tests: the production server on port 0, a fresh Postgres
//! database per test, a private Redis key prefix, and typed helpers for the HTTP API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support fails loudly"
)]

mod app;
mod logs;
mod proxy;
mod redis_server;

pub use app::{Response, TestApp};
pub use logs::LogCapture;
pub use proxy::CuttableProxy;
pub use redis_server::PrivateRedis;
