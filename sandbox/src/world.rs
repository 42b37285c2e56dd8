//! The emulator's shared state: what each service answers, read by every request handler
//! and changed by the controls.

use crate::answers::UnknownCodes;
use crate::codebook::CodeBook;
use crate::fault::Fault;
use crate::fixture::{Behaviour, CodeScript, Fixture};
use crate::stats::CallCounter;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use truemark::client::Endpoint;

/// The header that carries the True API key.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// A service of the emulator that answers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The discovery service (`cdn/info`).
    Discovery,
    /// The CDN host with this index, from 0 in start order.
    Host(usize),
}

impl Service {
    /// The endpoints the service answers.
    pub fn endpoints(self) -> &'static [Endpoint] {
        match self {
            Self::Discovery => &[Endpoint::CdnInfo],
            Self::Host(_) => &[Endpoint::HealthCheck, Endpoint::CodesCheck],
        }
    }
}

/// The faults set on one service, by endpoint.
pub(crate) type Faults = HashMap<Endpoint, Fault>;

#[derive(Debug)]
pub(crate) struct HostState {
    pub url: String,
    pub faults: Faults,
}

#[derive(Debug, Default)]
struct DiscoveryState {
    faults: Faults,
    /// The list `cdn/info` answers with; `None` lists every host of the emulator.
    listed: Option<Vec<String>>,
}

/// What a `codes/check` request will be answered with, before any waiting.
#[derive(Debug)]
pub(crate) struct CheckPlan {
    /// The longest delay any code asks for on this host.
    pub delay: Option<Duration>,
    /// The first HTTP status any code asks for on this host.
    pub status: Option<u16>,
    /// Each code with the script that answers for it.
    pub codes: Vec<(String, Option<CodeScript>)>,
}

#[derive(Debug)]
pub(crate) struct World {
    api_keys: Vec<String>,
    pub unknown_codes: UnknownCodes,
    codebook: Mutex<CodeBook>,
    discovery: Mutex<DiscoveryState>,
    hosts: RwLock<Vec<HostState>>,
    pub calls: CallCounter,
}

impl World {
    pub(crate) fn new(
        api_keys: Vec<String>,
        unknown_codes: UnknownCodes,
        fixture: Fixture,
    ) -> Self {
        Self {
            api_keys,
            unknown_codes,
            codebook: Mutex::new(CodeBook::new(fixture)),
            discovery: Mutex::new(DiscoveryState::default()),
            hosts: RwLock::new(Vec::new()),
            calls: CallCounter::new(0),
        }
    }

    /// Whether the request carries one of the configured keys.
    pub(crate) fn is_authorised(&self, headers: &HeaderMap) -> bool {
        headers
            .get(API_KEY_HEADER)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|key| self.api_keys.iter().any(|known| known == key))
    }

    pub(crate) fn codebook(&self) -> MutexGuard<'_, CodeBook> {
        lock(&self.codebook)
    }

    /// Registers a host; returns its index.
    pub(crate) fn add_host(&self, url: String) -> usize {
        let mut hosts = write(&self.hosts);
        hosts.push(HostState {
            url,
            faults: Faults::new(),
        });
        self.calls.add_host();
        hosts.len() - 1
    }

    pub(crate) fn host_count(&self) -> usize {
        read(&self.hosts).len()
    }

    pub(crate) fn host_urls(&self) -> Vec<String> {
        read(&self.hosts)
            .iter()
            .map(|host| host.url.clone())
            .collect()
    }

    /// The fault set on `endpoint` of `service`, if any.
    pub(crate) fn fault(&self, service: Service, endpoint: Endpoint) -> Option<Fault> {
        match service {
            Service::Discovery => lock(&self.discovery).faults.get(&endpoint).cloned(),
            Service::Host(index) => read(&self.hosts)
                .get(index)
                .and_then(|host| host.faults.get(&endpoint).cloned()),
        }
    }

    /// A copy of the faults of `service`; `None` if there is no such host.
    pub(crate) fn faults(&self, service: Service) -> Option<Faults> {
        match service {
            Service::Discovery => Some(lock(&self.discovery).faults.clone()),
            Service::Host(index) => read(&self.hosts).get(index).map(|host| host.faults.clone()),
        }
    }

    /// Runs `change` on the faults of `service`; false if there is no such host.
    pub(crate) fn change_faults(&self, service: Service, change: impl FnOnce(&mut Faults)) -> bool {
        match service {
            Service::Discovery => {
                change(&mut lock(&self.discovery).faults);
                true
            }
            Service::Host(index) => match write(&self.hosts).get_mut(index) {
                Some(host) => {
                    change(&mut host.faults);
                    true
                }
                None => false,
            },
        }
    }

    /// The hosts `cdn/info` lists now.
    pub(crate) fn listed_hosts(&self) -> Vec<String> {
        let listed = lock(&self.discovery).listed.clone();
        listed.unwrap_or_else(|| self.host_urls())
    }

    /// Replaces the listed hosts; `None` lists every host of the emulator again.
    pub(crate) fn set_listed_hosts(&self, hosts: Option<Vec<String>>) {
        lock(&self.discovery).listed = hosts;
    }

    /// Resolves the codes of a request on the host with index `host`.
    pub(crate) fn plan_check(&self, codes: &[String], host: usize) -> CheckPlan {
        let book = self.codebook();
        let codes: Vec<(String, Option<CodeScript>)> = codes
            .iter()
            .map(|code| (code.clone(), book.script_for(code).cloned()))
            .collect();
        drop(book);

        let behaviours = codes
            .iter()
            .filter_map(|(_, script)| script.as_ref())
            .flat_map(CodeScript::behaviours)
            .filter(|scoped| scoped.hosts.covers(host))
            .map(|scoped| scoped.behaviour);
        let mut plan = CheckPlan {
            delay: None,
            status: None,
            codes: Vec::new(),
        };
        for behaviour in behaviours {
            match behaviour {
                Behaviour::Delay(delay) => plan.delay = plan.delay.max(Some(delay)),
                Behaviour::HttpStatus(status) => {
                    plan.status.get_or_insert(status);
                }
            }
        }
        plan.codes = codes;
        plan
    }

    /// Clears every fault and the discovery list's override.
    pub(crate) fn clear_faults_and_list(&self) {
        let mut discovery = lock(&self.discovery);
        discovery.faults.clear();
        discovery.listed = None;
        drop(discovery);
        for host in write(&self.hosts).iter_mut() {
            host.faults.clear();
        }
    }
}

// A lock is poisoned only by a panic while it was held. The state stays usable then: at
// worst one control change is half made, which the next change or a reset repairs; refusing
// every later request would only hide the panic behind a dead emulator.

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
