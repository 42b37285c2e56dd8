//! Redis: a cache and a coordinator, never the only copy of anything that matters.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};

/// A connection to Redis, with every key under one prefix.
#[derive(Clone)]
pub struct Cache {
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Cache {
    /// Connects to Redis. The response timeout is seconds, not the library's 500 ms: a short
    /// stall must not fail every request and job at once. A lost connection is made again by
    /// the next command, once and without backoff: every command waits for that attempt, and
    /// while Redis is down a document must go on without it at once, not after a series of
    /// retries per command (they cost a sale seconds).
    pub async fn connect(url: &SecretString, prefix: String) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url.expose_secret())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { connection, prefix })
    }

    /// The full Redis key for `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Whether Redis answers a `PING`. A connection lost earlier fails the first command even
    /// when Redis is back; that failure starts a new connection, which a second `PING` waits for,
    /// so that a readiness probe tells how Redis is now.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut connection = self.connection();
        let ping = redis::cmd("PING");
        if ping.query_async::<String>(&mut connection).await.is_err() {
            ping.query_async::<String>(&mut connection).await?;
        }
        Ok(())
    }
}
