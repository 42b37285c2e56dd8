//! What every handler shares.

use std::sync::Arc;

use imark_core::auth::TokenKeys;
use imark_core::cache::Cache;
use imark_core::cdn::Failover;
use imark_core::crypto::{ApiKeyHasher, MasterKeys};
use sea_orm::DatabaseConnection;
use secrecy::SecretString;

/// The application's shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub cache: Cache,
    pub tokens: Arc<TokenKeys>,
    pub hasher: ApiKeyHasher,
    pub master_keys: MasterKeys,
    pub platform_key: SecretString,
    pub failover: Failover,
}
