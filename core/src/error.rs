//! The one error type of the domain layer. Each variant says which HTTP status the API maps it to.

use sea_orm::{DbErr, SqlErr};

/// A failure of a domain operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: the resource does not exist *for this caller*. Resources of other tenants and stores
    /// look exactly like missing ones.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the request conflicts with the current state (a duplicate code, a key already
    /// revoked).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 422: the request is well-formed but breaks a domain rule.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 401: the caller's credentials are missing, wrong, expired or revoked.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 403: the caller is known but its role may not do this.
    #[error("forbidden")]
    Forbidden,
    /// 503: a dependency (Postgres, Redis) is unreachable; the request may be retried.
    #[error("a dependency is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500: a bug or an unexpected state; details are logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        match &error {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => Self::Unavailable(error.into()),
            _ => Self::Internal(error.into()),
        }
    }
}

/// Whether a database error is a unique-constraint violation, for callers that map it to a
/// precise conflict.
pub fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
