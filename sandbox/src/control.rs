//! Run-time control of the emulator: faults, listeners, the discovery list, code states and
//! call counters, as a Rust handle ([`SandboxControl`]) and as an HTTP API on its own port.

use crate::answers::UnknownCodes;
use crate::api;
use crate::codebook::{CaseView, OverrideView};
use crate::fault::{Fault, InvalidFault};
use crate::fixture::{CodeScript, ScriptError};
use crate::listener::SwitchableListener;
use crate::stats::CallStats;
use crate::world::{Faults, Service, World};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use tokio::sync::{Mutex, watch};
use truemark::client::Endpoint;
use url::Url;

mod http;

pub(crate) use http::control_router;

/// Where a fault applies: one service or every host, on all its endpoints or on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultTarget {
    services: Services,
    endpoint: Option<Endpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Services {
    One(Service),
    EveryHost,
}

impl FaultTarget {
    /// The discovery service.
    pub fn discovery() -> Self {
        Self::service(Service::Discovery)
    }

    /// The host with this index.
    pub fn host(index: usize) -> Self {
        Self::service(Service::Host(index))
    }

    /// Every host that exists when the fault is set; hosts added later start without faults.
    pub fn every_host() -> Self {
        Self {
            services: Services::EveryHost,
            endpoint: None,
        }
    }

    /// `service`, on all its endpoints.
    pub fn service(service: Service) -> Self {
        Self {
            services: Services::One(service),
            endpoint: None,
        }
    }

    /// The same services, on `endpoint` only.
    pub fn only(self, endpoint: Endpoint) -> Self {
        Self {
            endpoint: Some(endpoint),
            ..self
        }
    }
}

/// Why a control request cannot be carried out. The control API answers with the status
/// named on each variant and `{"error": "<message>"}`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// 404.
    #[error("there is no host {0}")]
    NoSuchHost(usize),
    /// 404.
    #[error("there is no case {0:?} in the fixture")]
    NoSuchCase(String),
    /// 404.
    #[error("no state was set at run time for the code {0:?}")]
    NoSuchCodeState(String),
    /// 422.
    #[error("{service:?} does not serve {endpoint}")]
    EndpointNotServed {
        service: Service,
        endpoint: Endpoint,
    },
    /// 422.
    #[error(transparent)]
    InvalidFault(#[from] InvalidFault),
    /// 422.
    #[error("invalid state: {0}")]
    InvalidState(#[from] ScriptError),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 500: the port was taken while the listener was closed, or no port was free.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A snapshot of everything the controls set, as `GET /control/state` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SandboxState {
    pub discovery: ServiceView,
    /// What `cdn/info` lists now.
    pub listed_hosts: Vec<String>,
    pub hosts: Vec<ServiceView>,
    pub unknown_codes: UnknownCodes,
    /// Per-code states set at run time.
    pub overrides: Vec<OverrideView>,
}

/// One service's address and switches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    pub url: String,
    /// False while connections are refused.
    pub accepting_connections: bool,
    /// The faults set, by endpoint name.
    pub faults: BTreeMap<&'static str, Fault>,
}

/// The controls of a running emulator. Cheap to clone; every clone controls the same
/// emulator, and so does the HTTP control API.
#[derive(Debug, Clone)]
pub struct SandboxControl {
    inner: Arc<Controller>,
}

#[derive(Debug)]
struct Controller {
    world: Arc<World>,
    discovery: Arc<SwitchableListener>,
    hosts: RwLock<Vec<Arc<SwitchableListener>>>,
    /// Serialises host additions, so a host's index is its place in both lists.
    adding_host: Mutex<()>,
    bind: IpAddr,
    /// `http://<advertised host>/`; each service's URL adds its port.
    url_base: Url,
    shutdown: watch::Receiver<bool>,
}

impl SandboxControl {
    pub(crate) fn new(
        world: Arc<World>,
        discovery: SwitchableListener,
        bind: IpAddr,
        url_base: Url,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let controller = Controller {
            world,
            discovery: Arc::new(discovery),
            hosts: RwLock::new(Vec::new()),
            adding_host: Mutex::new(()),
            bind,
            url_base,
            shutdown,
        };
        Self {
            inner: Arc::new(controller),
        }
    }

    /// The discovery base URL, to configure as a tenant's ЧЗ URL.
    pub fn discovery_url(&self) -> Url {
        self.inner.url_for(self.inner.discovery.addr().port())
    }

    /// Every host's base URL, by index.
    pub fn host_urls(&self) -> Vec<Url> {
        self.listeners()
            .iter()
            .map(|listener| self.inner.url_for(listener.addr().port()))
            .collect()
    }

    /// The base URL of the host with this index.
    pub fn host_url(&self, host: usize) -> Option<Url> {
        self.host_urls().into_iter().nth(host)
    }

    /// Sets `fault` on the target's endpoints, replacing what was set there.
    ///
    /// # Errors
    /// When the fault is invalid, the host does not exist or does not serve the endpoint.
    pub fn set_fault(&self, target: FaultTarget, fault: &Fault) -> Result<(), ControlError> {
        fault.validate()?;
        self.change_faults(target, |faults, endpoint| {
            faults.insert(endpoint, fault.clone());
        })
    }

    /// Clears the faults of the target's endpoints.
    ///
    /// # Errors
    /// When the host does not exist or does not serve the endpoint.
    pub fn clear_fault(&self, target: FaultTarget) -> Result<(), ControlError> {
        self.change_faults(target, |faults, endpoint| {
            faults.remove(&endpoint);
        })
    }

    /// Closes the service's listener: connections are refused until
    /// [`Self::accept_connections`]. Requests in progress are dropped. When this returns, the
    /// port is closed.
    ///
    /// # Errors
    /// When the host does not exist.
    pub async fn refuse_connections(&self, service: Service) -> Result<(), ControlError> {
        self.listener(service)?.close().await;
        Ok(())
    }

    /// Reopens the service's listener on its port. When this returns, connections are
    /// accepted.
    ///
    /// # Errors
    /// When the host does not exist, or its port was taken meanwhile.
    pub async fn accept_connections(&self, service: Service) -> Result<(), ControlError> {
        let listener = self.listener(service)?;
        listener
            .open()
            .await
            .map_err(|source| ControlError::Listen {
                addr: listener.addr(),
                source,
            })
    }

    /// Starts one more host on a free port and returns its index and URL. The discovery list
    /// shows it unless the list was replaced by [`Self::set_discovery_hosts`].
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn add_host(&self) -> Result<(usize, Url), ControlError> {
        self.add_host_on(0).await
    }

    /// Makes `cdn/info` list exactly `hosts` (any URLs, reachable or not).
    pub fn set_discovery_hosts(&self, hosts: Vec<String>) {
        self.inner.world.set_listed_hosts(Some(hosts));
    }

    /// Makes `cdn/info` list every host of the emulator again.
    pub fn reset_discovery_hosts(&self) {
        self.inner.world.set_listed_hosts(None);
    }

    /// Makes the fixture row with id `case` answer for its code (see the crate documentation
    /// on codes shared by several rows).
    ///
    /// # Errors
    /// When the fixture has no such case.
    pub fn activate_case(&self, case: &str) -> Result<(), ControlError> {
        let mut book = self.inner.world.codebook();
        match book.activate_case(case) {
            Some(_) => Ok(()),
            None => Err(ControlError::NoSuchCase(case.to_owned())),
        }
    }

    /// Makes `code` (exactly as a till sends it, with 0x1D bytes) answer with `state`, written
    /// in the fixture's `state` language, before any fixture row.
    ///
    /// # Errors
    /// When `state` cannot be read.
    pub fn set_code_state(&self, code: &str, state: &str) -> Result<(), ControlError> {
        let script = CodeScript::parse(state)?;
        self.inner
            .world
            .codebook()
            .set_override(code.to_owned(), script);
        Ok(())
    }

    /// Removes the state set for `code` at run time; false if there was none.
    pub fn clear_code_state(&self, code: &str) -> bool {
        self.inner.world.codebook().clear_override(code)
    }

    /// Removes every state set at run time and makes each code's first fixture row answer.
    pub fn reset_codes(&self) {
        self.inner.world.codebook().reset();
    }

    /// The fixture rows, with the ones answering now marked active.
    pub fn cases(&self) -> Vec<CaseView> {
        self.inner.world.codebook().cases()
    }

    /// The call counters now.
    pub fn stats(&self) -> CallStats {
        self.inner.world.calls.snapshot()
    }

    /// Sets every counter to zero.
    pub fn reset_stats(&self) {
        self.inner.world.calls.reset();
    }

    /// Waits until the counters satisfy `reached` and returns them as they were then; for a
    /// test to know that a request arrived (a held one included) without sleeping.
    pub async fn wait_for_stats(&self, reached: impl FnMut(&CallStats) -> bool) -> CallStats {
        self.inner.world.calls.wait_until(reached).await
    }

    /// Waits until `endpoint` of host `host` was called at least `at_least` times.
    pub async fn wait_for_host_calls(
        &self,
        host: usize,
        endpoint: Endpoint,
        at_least: u64,
    ) -> CallStats {
        self.wait_for_stats(|stats| stats.host_calls(host, endpoint) >= at_least)
            .await
    }

    /// Everything the controls set, now.
    pub async fn state(&self) -> SandboxState {
        let world = &self.inner.world;
        let discovery = ServiceView {
            url: trimmed(&self.discovery_url()),
            accepting_connections: self.inner.discovery.is_open().await,
            faults: fault_view(world.faults(Service::Discovery)),
        };
        let mut hosts = Vec::new();
        for (index, listener) in self.listeners().iter().enumerate() {
            hosts.push(ServiceView {
                url: trimmed(&self.inner.url_for(listener.addr().port())),
                accepting_connections: listener.is_open().await,
                faults: fault_view(world.faults(Service::Host(index))),
            });
        }
        SandboxState {
            discovery,
            listed_hosts: world.listed_hosts(),
            hosts,
            unknown_codes: world.unknown_codes,
            overrides: world.codebook().overrides(),
        }
    }

    /// Back to the state at start: no faults, every listener open, every host listed, no
    /// code states set at run time, each code's first row active, counters at zero. Hosts
    /// added at run time stay.
    ///
    /// # Errors
    /// When a closed listener's port was taken meanwhile.
    pub async fn reset(&self) -> Result<(), ControlError> {
        let world = &self.inner.world;
        world.clear_faults_and_list();
        world.codebook().reset();
        self.accept_connections(Service::Discovery).await?;
        for index in 0..self.listeners().len() {
            self.accept_connections(Service::Host(index)).await?;
        }
        world.calls.reset();
        Ok(())
    }

    pub(crate) async fn add_host_on(&self, port: u16) -> Result<(usize, Url), ControlError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.adding_host.lock().await;

        let index = inner.world.host_count();
        let addr = SocketAddr::new(inner.bind, port);
        let router = api::host_router(Arc::clone(&inner.world), index);
        let listener = SwitchableListener::start(addr, router, inner.shutdown.clone())
            .await
            .map_err(|source| ControlError::Listen { addr, source })?;
        let url = inner.url_for(listener.addr().port());

        inner.world.add_host(trimmed(&url));
        inner
            .hosts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(listener));
        tracing::info!(host.index = index, host.url = %url, "host listening");
        Ok((index, url))
    }

    /// Closes every listener; for shutdown.
    pub(crate) async fn close_all(&self) {
        self.inner.discovery.close().await;
        for listener in self.listeners() {
            listener.close().await;
        }
    }

    fn change_faults(
        &self,
        target: FaultTarget,
        mut change: impl FnMut(&mut Faults, Endpoint),
    ) -> Result<(), ControlError> {
        let services: Vec<Service> = match target.services {
            Services::One(service) => vec![service],
            Services::EveryHost => (0..self.inner.world.host_count())
                .map(Service::Host)
                .collect(),
        };
        for service in services {
            let endpoints = match target.endpoint {
                Some(endpoint) if service.endpoints().contains(&endpoint) => vec![endpoint],
                Some(endpoint) => {
                    return Err(ControlError::EndpointNotServed { service, endpoint });
                }
                None => service.endpoints().to_vec(),
            };
            let changed = self.inner.world.change_faults(service, |faults| {
                for endpoint in endpoints {
                    change(faults, endpoint);
                }
            });
            if let (false, Service::Host(index)) = (changed, service) {
                return Err(ControlError::NoSuchHost(index));
            }
        }
        Ok(())
    }

    fn listeners(&self) -> Vec<Arc<SwitchableListener>> {
        self.inner
            .hosts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn listener(&self, service: Service) -> Result<Arc<SwitchableListener>, ControlError> {
        match service {
            Service::Discovery => Ok(Arc::clone(&self.inner.discovery)),
            Service::Host(index) => self
                .listeners()
                .get(index)
                .cloned()
                .ok_or(ControlError::NoSuchHost(index)),
        }
    }
}

impl Controller {
    fn url_for(&self, port: u16) -> Url {
        let mut url = self.url_base.clone();
        // Setting a port fails only for URLs without a host, and `url_base` has one.
        let _ = url.set_port(Some(port));
        url
    }
}

/// `http://<host>/` for a host name or an IP address (bracketed when IPv6); `None` when
/// `host` is not a bare host name.
pub(crate) fn url_base(host: &str) -> Option<Url> {
    let url = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => Url::parse(&format!("http://[{ip}]/")),
        _ => Url::parse(&format!("http://{host}/")),
    }
    .ok()?;
    let is_bare_host = url.path() == "/" && url.port().is_none() && url.username().is_empty();
    is_bare_host.then_some(url)
}

fn trimmed(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

fn fault_view(faults: Option<Faults>) -> BTreeMap<&'static str, Fault> {
    faults
        .unwrap_or_default()
        .into_iter()
        .map(|(endpoint, fault)| (endpoint.as_str(), fault))
        .collect()
}
