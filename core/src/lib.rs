//! iMark's domain on Postgres and Redis. `api` and `worker` are thin shells around it.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cdn;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod db;
pub mod documents;
pub mod error;
pub mod evidence;
pub mod ids;
pub mod jobs;
pub mod keys;
pub mod marks;
pub mod metrics;
pub mod modes;
pub mod policy;
pub mod principal;
pub mod reports;
pub mod shutdown;
pub mod stores;
pub mod telemetry;
pub mod tenants;

pub use error::{Error, Result};
