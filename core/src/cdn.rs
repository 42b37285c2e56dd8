//! ЧЗ's CDN: the host list of each (discovery URL, region), its health ranking, and the request-
//! time failover that picks the fastest healthy host and moves on host by host.
//!
//! Postgres holds the truth (`cdn_hosts`); Redis caches each group's ranking and shares host
//! blocks between replicas. When Redis is unreachable both are read from Postgres and checks go
//! on.

mod cache;
mod failover;
mod refresh;
mod store;

use std::fmt;

use sha2::{Digest as _, Sha256};
use truemark::client::BaseUrl;

pub use failover::{CheckFailure, CheckRun, CheckVerdict, Failover};
pub use refresh::{HostHealth, RefreshReport, recover, refresh};
pub use store::{HostRow, groups_in_use, hosts};

/// The hosts that serve one discovery URL as seen from one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CdnGroup {
    base: BaseUrl,
    base_key: String,
    region: String,
}

impl CdnGroup {
    pub fn new(base: BaseUrl, region: impl Into<String>) -> Self {
        Self {
            base_key: base.to_string(),
            base,
            region: region.into(),
        }
    }

    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// The discovery URL as stored, without a trailing slash.
    pub fn base_key(&self) -> &str {
        &self.base_key
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// A short stable name for Redis keys and locks.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.base_key.as_bytes());
        hash.update([0]);
        hash.update(self.region.as_bytes());
        hex::encode(&hash.finalize()[..12])
    }
}

impl fmt::Display for CdnGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.base_key, self.region)
    }
}
