//! The platform's data: store keys of the single-table design, and the repositories that read
//! and write the items behind them (and the tenants' secret documents).
//!
//! Every repository function takes a [`Db`]: the table, the secrets store, the clock and the
//! per-container caches, nothing else. Repositories return [`Error`]; what it means for a
//! caller (a 404, a retry) is the caller's to decide.

pub mod alerts;
pub mod audit;
pub mod blobs;
pub mod cache;
pub mod connections;
pub mod credentials;
pub mod events;
pub mod executions;
pub mod flows;
pub mod keys;
pub mod leases;
pub mod members;
pub mod metrics;
pub mod polls;
pub mod quotas;
pub mod ratelimit;
pub mod schedules;
pub mod sessions;
pub mod tenants;

use std::sync::Arc;

use crate::ports::{Clock, Item, PortError, Secrets, Store};

pub use cache::Caches;

/// What the repositories work with.
#[derive(Clone)]
pub struct Db {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn Secrets>,
    pub clock: Arc<dyn Clock>,
    pub caches: Arc<Caches>,
    /// What the deployment sets: the plan table and the platform configuration level.
    pub deployment: Arc<Deployment>,
}

/// What the deployment's configuration sets for every space (environment / SAM parameters).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deployment {
    /// The plan table (`SWITCHYARD_PLAN_QUOTAS` over the seed's limits).
    pub plans: crate::domain::quota::PlanTable,
    /// The platform level of the configuration cascade (`SWITCHYARD_PLATFORM_CONFIG` over the
    /// built-in defaults).
    pub platform_config: serde_json::Map<String, serde_json::Value>,
}

impl Db {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// What a repository reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The table or the secrets store failed, refused the request, or holds something that
    /// does not read back.
    #[error(transparent)]
    Port(#[from] PortError),
    /// What was asked for does not exist (the message names it).
    #[error("{0}")]
    NotFound(String),
    /// The item is not in the state the change needs: it exists already, or changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// A plan's limit is reached (flows per owner, a quota window); `retry_after_secs` is 0 when
    /// waiting does not help.
    #[error("{message}")]
    LimitReached { message: String, retry_after_secs: u64 },
    /// A quota without a window is used up (flows, connections, storage): waiting does not help.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The caller asked for something a repository refuses, with a machine-readable code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { code, message: message.into() }
    }
    /// A dependency failure worth retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Port(p) if p.is_retryable())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Read an item that must exist: `NotFound(what)` when it does not, then parse it.
pub async fn require<T: serde::de::DeserializeOwned>(
    db: &Db,
    key: &crate::ports::Key,
    what: impl FnOnce() -> String,
) -> Result<(Item, T)> {
    let item = db.store.get(key).await?.ok_or_else(|| Error::NotFound(what()))?;
    let value = item.parse()?;
    Ok((item, value))
}

/// A serializable value as a document (our own types always serialize).
pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
