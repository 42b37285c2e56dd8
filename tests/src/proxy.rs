//! A TCP proxy that a test can cut: every live connection closed, new ones dropped at once,
//! until it is restored. Put between the API and Postgres, it plays a lost database.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

/// A running proxy to one upstream address; stops with the value.
#[derive(Debug)]
pub struct CuttableProxy {
    port: u16,
    cut: watch::Sender<bool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_signal) = watch::channel(false);
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accepting = tokio::spawn(accept(
            listener,
            upstream,
            cut_signal,
            Arc::clone(&connections),
        ));
        Self {
            port,
            cut,
            connections,
            accepting,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy and drops new ones until [`Self::restore`];
    /// returns once every connection is closed.
    pub async fn cut(&self) {
        self.cut.send_replace(true);
        let mut connections = self.connections.lock().await;
        while connections.join_next().await.is_some() {}
    }

    /// Passes new connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(
    listener: TcpListener,
    upstream: String,
    cut: watch::Receiver<bool>,
    connections: Arc<Mutex<JoinSet<()>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        // Checked under the lock `cut` takes, so no connection slips past a cut.
        let mut live = connections.lock().await;
        if *cut.borrow() {
            drop(client);
            continue;
        }
        let mut cut = cut.clone();
        let upstream = upstream.clone();
        live.spawn(async move {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let mut client = client;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.wait_for(|cut| *cut) => {}
            }
        });
        // Finished connections are reaped as new ones come.
        while live.try_join_next().is_some() {}
    }
}
