//! SeaORM entities of iMark's tables: their shapes, as the migrations create them, and nothing
//! else. Queries and rules live in `imark-core`.

pub mod api_key_stores;
pub mod api_keys;
pub mod cdn_hosts;
pub mod document_items;
pub mod documents;
pub mod job_runs;
pub mod marks;
pub mod mode_transitions;
pub mod policies;
pub mod stores;
pub mod tenants;
pub mod truemark_credentials;
pub mod truemark_exchanges;
pub mod truemark_modes;
