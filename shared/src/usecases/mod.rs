//! What the functions do, over the engine and the store: receive a webhook, run a batch of run
//! messages, tick the schedules, poll, answer MCP, connect a tenant's apps, and the API's
//! operations. Each takes the context it needs and returns [`Error`], which says what went
//! wrong in the caller's terms; the HTTP edge (`runtime::http`) turns it into a status.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod connect;
pub mod dead_letters;
pub mod executions;
pub mod mcp;
pub mod observability;
pub mod polls;
pub mod quotas;
pub mod runs;
pub mod schedules;
pub mod signed;
pub mod webhooks;

use serde_json::Value;

use crate::engine::actions::ActionError;
use crate::engine::credentials::CredentialError;
use crate::ports::{PortError, Rejection};

/// One message of a queue batch as a use case sees it (the Lambda event source's, or the dev
/// server's). The id is what a batch reports back to have redelivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub id: Option<String>,
    pub receipt_handle: Option<String>,
    pub body: Option<String>,
    /// How many times it has been received, this delivery included (1 when unknown).
    pub receive_count: u32,
}

/// Why a use case did not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request is wrong: `code` is machine-readable, `details` (if any) say where.
    #[error("{message}")]
    Invalid { code: &'static str, message: String, details: Option<Value> },
    /// No credentials, or credentials that are not valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials that do not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state that allows this (it exists, it changed meanwhile).
    #[error("{0}")]
    Conflict(String),
    /// Larger than the platform takes.
    #[error("{0}")]
    TooLarge(String),
    /// A quota or rate limit: retry after the window.
    #[error("{message}")]
    Limited { message: String, retry_after_secs: u64 },
    /// A quota without a window is used up.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Not now, but the same request will work later: the message says what to do.
    #[error("{message}")]
    RetryLater { message: String, retry_after_secs: u64 },
    /// A dependency failed; the caller should retry. The detail is logged, not returned.
    #[error("service temporarily unavailable")]
    Unavailable { detail: String },
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::Invalid { code: "bad_request", message: message.into(), details: None }
    }
    /// An invalid request with a specific code; `details` (unless null) say where the problem is.
    pub fn invalid(code: &'static str, message: impl Into<String>, details: Value) -> Self {
        Error::Invalid { code, message: message.into(), details: (!details.is_null()).then_some(details) }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        Error::Unavailable { detail: detail.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<PortError> for Error {
    fn from(e: PortError) -> Self {
        match e {
            PortError::ConditionFailed | PortError::TransactionCancelled { .. } => {
                Error::Conflict("the resource was changed concurrently; retry".into())
            }
            PortError::Rejected(Rejection::TooLarge(detail)) => {
                tracing::info!(%detail, "request too large to store");
                Error::TooLarge("the request is too large to store".into())
            }
            PortError::Rejected(Rejection::InvalidCursor) => Error::bad_request("invalid pagination cursor"),
            PortError::Rejected(Rejection::Invalid(detail)) => {
                tracing::warn!(%detail, "dependency rejected a request");
                Error::bad_request("the request was rejected")
            }
            // Stored data that does not read back: logged, and a 503 (nothing the caller did).
            PortError::Corrupt(detail) | PortError::Unavailable(detail) => Error::Unavailable { detail },
        }
    }
}

impl From<crate::store::Error> for Error {
    fn from(e: crate::store::Error) -> Self {
        use crate::store::Error as Store;
        match e {
            Store::Port(p) => p.into(),
            Store::NotFound(what) => Error::NotFound(what),
            Store::Conflict(why) => Error::Conflict(why),
            Store::LimitReached { message, retry_after_secs } => Error::Limited { message, retry_after_secs },
            Store::QuotaExceeded(message) => Error::QuotaExceeded(message),
            Store::Invalid { code, message } => Error::Invalid { code, message, details: None },
        }
    }
}

impl From<CredentialError> for Error {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::Unavailable(detail) => Error::Unavailable { detail },
            other => Error::bad_request(other.to_string()),
        }
    }
}

impl From<ActionError> for Error {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Unavailable(detail) => Error::Unavailable { detail },
            other => Error::bad_request(other.to_string()),
        }
    }
}
