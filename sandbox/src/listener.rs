//! HTTP listeners that can be closed and reopened on the same port.
//!
//! Closing one really closes the socket, so a client gets "connection refused", and drops
//! every open connection, held requests included. Connections are not kept alive between
//! requests: each request opens a new one, so it always meets the listener's current state,
//! never a connection left over from before a fault was set.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Mutex, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Pending connections a listener queues before refusing more.
const BACKLOG: u32 = 1024;
/// How long to pause after a failed `accept` (out of file descriptors, say) before retrying,
/// so the loop does not spin.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A listener on a fixed address that can be closed and reopened.
#[derive(Debug)]
pub(crate) struct SwitchableListener {
    addr: SocketAddr,
    router: Router,
    shutdown: watch::Receiver<bool>,
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl SwitchableListener {
    /// Binds `addr` (port 0 picks a free port, kept for reopening) and starts serving.
    /// Everything stops when `shutdown` turns true or its sender is dropped.
    pub(crate) async fn start(
        addr: SocketAddr,
        router: Router,
        shutdown: watch::Receiver<bool>,
    ) -> io::Result<Self> {
        let listener = bind(addr)?;
        let listener_addr = listener.local_addr()?;
        let switchable = Self {
            addr: listener_addr,
            router,
            shutdown,
            running: Mutex::new(None),
        };
        *switchable.running.lock().await = Some(switchable.spawn(listener));
        Ok(switchable)
    }

    /// The address it listens on, also while closed.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it accepts connections now.
    pub(crate) async fn is_open(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// Reopens the listener; nothing happens if it is open. When this returns, connections
    /// are accepted.
    ///
    /// # Errors
    /// When the port was taken by someone else while the listener was closed.
    pub(crate) async fn open(&self) -> io::Result<()> {
        let mut running = self.running.lock().await;
        if running.is_none() {
            *running = Some(self.spawn(bind(self.addr)?));
        }
        Ok(())
    }

    /// Closes the listener and drops its connections; nothing happens if it is closed. When
    /// this returns, the port refuses connections.
    pub(crate) async fn close(&self) {
        let Some(running) = self.running.lock().await.take() else {
            return;
        };
        // The task may already have ended on shutdown; then there is nothing left to stop.
        let _ = running.stop.send(());
        if let Err(error) = running.task.await {
            tracing::error!(error.message = %error, "listener task failed");
        }
    }

    fn spawn(&self, listener: TcpListener) -> Running {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(
            listener,
            self.router.clone(),
            stopped,
            self.shutdown.clone(),
        ));
        Running { stop, task }
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Reopening must reclaim the port while connections closed a moment ago linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn serve(
    listener: TcpListener,
    router: Router,
    mut stop: oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            () = shutdown_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    tracing::warn!(error.message = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                }
            },
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Completes when the emulator shuts down, or is dropped without shutting down.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped with the emulator: stop all the same.
    let _ = shutdown.wait_for(|down| *down).await;
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let service = TowerToHyperService::new(router);
    let connection = http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(error.message = %error, "connection ended with an error");
    }
}
