//! One module per resource; each owns its routes.

pub mod audit;
pub mod documents;
pub mod health;
pub mod keys;
pub mod marks;
pub mod me;
pub mod policy;
pub mod stores;
pub mod tenants;
pub mod token;
pub mod truemark;

use serde::{Deserialize, Deserializer};

/// For PATCH bodies: an absent field is `None`, `null` is `Some(None)`, a value is `Some(Some(_))`.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
