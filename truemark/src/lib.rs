//! The Честный ЗНАК permissive-mode protocol, with no database: marking-code normalisation, the
//! True API client with its classified outcomes, and fiscal tag 1260.

pub mod client;
pub mod code;
pub mod tag1260;
pub mod tls;
pub mod wire;
