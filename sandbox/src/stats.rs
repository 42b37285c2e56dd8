//! Call counters, per host and per endpoint, that tests can read and wait on.

use serde::Serialize;
use tokio::sync::watch;
use truemark::client::Endpoint;

/// How many requests reached each endpoint since the start or the last reset.
///
/// A request counts when it arrives, before any fault or key check, so a request held by a
/// `never_answer` fault is counted, and a connection refused by a closed listener is not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// Calls to the discovery service's `cdn/info`.
    pub cdn_info: u64,
    /// Per host, by index.
    pub hosts: Vec<HostCalls>,
}

/// One host's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostCalls {
    pub health_check: u64,
    pub codes_check: u64,
}

impl CallStats {
    /// Calls to `endpoint` on the host with index `host` (0 for a host that does not exist).
    pub fn host_calls(&self, host: usize, endpoint: Endpoint) -> u64 {
        let calls = self.hosts.get(host).copied().unwrap_or_default();
        match endpoint {
            Endpoint::HealthCheck => calls.health_check,
            Endpoint::CodesCheck => calls.codes_check,
            Endpoint::CdnInfo => 0,
        }
    }

    /// Calls to `endpoint` summed over every host (the discovery service for `CdnInfo`).
    pub fn total(&self, endpoint: Endpoint) -> u64 {
        match endpoint {
            Endpoint::CdnInfo => self.cdn_info,
            Endpoint::HealthCheck | Endpoint::CodesCheck => (0..self.hosts.len())
                .map(|host| self.host_calls(host, endpoint))
                .sum(),
        }
    }
}

/// Where a call landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallSite {
    Discovery,
    Host(usize, Endpoint),
}

/// The live counters. Every change wakes whoever waits on them.
#[derive(Debug)]
pub(crate) struct CallCounter {
    stats: watch::Sender<CallStats>,
}

impl CallCounter {
    pub(crate) fn new(host_count: usize) -> Self {
        let stats = CallStats {
            cdn_info: 0,
            hosts: vec![HostCalls::default(); host_count],
        };
        Self {
            stats: watch::Sender::new(stats),
        }
    }

    pub(crate) fn count(&self, site: CallSite) {
        self.stats.send_modify(|stats| match site {
            CallSite::Discovery => stats.cdn_info += 1,
            CallSite::Host(host, endpoint) => {
                if stats.hosts.len() <= host {
                    stats.hosts.resize(host + 1, HostCalls::default());
                }
                let calls = &mut stats.hosts[host];
                match endpoint {
                    Endpoint::HealthCheck => calls.health_check += 1,
                    Endpoint::CodesCheck => calls.codes_check += 1,
                    Endpoint::CdnInfo => {}
                }
            }
        });
    }

    pub(crate) fn add_host(&self) {
        self.stats
            .send_modify(|stats| stats.hosts.push(HostCalls::default()));
    }

    pub(crate) fn snapshot(&self) -> CallStats {
        self.stats.borrow().clone()
    }

    pub(crate) fn reset(&self) {
        self.stats.send_modify(|stats| {
            stats.cdn_info = 0;
            stats.hosts.fill(HostCalls::default());
        });
    }

    /// Waits until `reached` holds for the counters, and returns them as they were then.
    pub(crate) async fn wait_until(
        &self,
        mut reached: impl FnMut(&CallStats) -> bool,
    ) -> CallStats {
        let mut changes = self.stats.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail while we are borrowed;
        // the fallback only completes the types.
        match changes.wait_for(|stats| reached(stats)).await {
            Ok(stats) => stats.clone(),
            Err(_closed) => self.snapshot(),
        }
    }
}
