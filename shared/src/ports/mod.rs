//! The ports: the only ways a function talks to the outside world.
//!
//! Every port has an AWS adapter (`crate::adapters::aws`) and an embedded adapter
//! (`crate::adapters::embedded`), and
//! both pass the same contract suite (`tests/` → `contract_*`). Handlers only see these traits,
//! so the same handler code runs in Lambda, in the dev server and in tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod store_limits;
mod ttl_cache;

pub use ttl_cache::TtlCache;

/// What can go wrong talking to a dependency. Callers branch on the variant, never on the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// A conditional write found the item in another state (exists, missing, other version).
    #[error("condition failed")]
    ConditionFailed,
    /// A transaction was cancelled; `failed` lists the indexes of the operations whose condition
    /// did not hold (empty when the cause was a conflict with another transaction).
    #[error("transaction cancelled (failed operations: {failed:?})")]
    TransactionCancelled { failed: Vec<usize> },
    /// The request itself is unacceptable to the dependency. Retrying will not help.
    #[error("rejected: {0}")]
    Rejected(#[source] Rejection),
    /// What is stored cannot be read back (an item that does not parse, a blob gone or
    /// damaged). Retrying will not help.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The dependency is down, throttling or timing out. Retrying later may help: handlers turn
    /// this into a 503 or a batch item failure.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Why a dependency refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Larger than the dependency takes (an item, a message, a transaction, a blob).
    #[error("{0}")]
    TooLarge(String),
    /// A pagination cursor that is not one of ours.
    #[error("invalid pagination cursor")]
    InvalidCursor,
    /// Anything else the dependency refuses (a malformed request, a missing resource).
    #[error("{0}")]
    Invalid(String),
}

impl PortError {
    pub fn unavailable(e: impl fmt::Display) -> Self {
        PortError::Unavailable(e.to_string())
    }
    pub fn too_large(what: impl fmt::Display) -> Self {
        PortError::Rejected(Rejection::TooLarge(what.to_string()))
    }
    pub fn invalid(what: impl fmt::Display) -> Self {
        PortError::Rejected(Rejection::Invalid(what.to_string()))
    }
    pub fn corrupt(what: impl fmt::Display) -> Self {
        PortError::Corrupt(what.to_string())
    }
    pub fn is_retryable(&self) -> bool {
        matches!(self, PortError::Unavailable(_))
    }
}

pub type PortResult<T> = Result<T, PortError>;

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

/// The key of an item: a partition key and a sort key, as in the one DynamoDB table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key { pk: pk.into(), sk: sk.into() }
    }
}

/// One stored item. `data` is the document; `version` is managed by callers for optimistic
/// concurrency (write `version + 1` with `Condition::IfVersion(version)`); `expires_at` (epoch
/// seconds) makes the item invisible from that moment on, before the backend physically removes
/// it (DynamoDB's TTL sweeper can lag by days, so expiry is also checked on every read).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Key,
    pub data: Value,
    pub version: u64,
    pub expires_at: Option<i64>,
}

impl Item {
    pub fn new(key: Key, data: Value) -> Self {
        Item { key, data, version: 1, expires_at: None }
    }
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }
    pub fn expiring_at(mut self, epoch_seconds: i64) -> Self {
        self.expires_at = Some(epoch_seconds);
        self
    }
    /// Deserialize the document into a domain type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> PortResult<T> {
        T::deserialize(&self.data)
            .map_err(|e| PortError::corrupt(format!("stored item {}/{} does not parse: {e}", self.key.pk, self.key.sk)))
    }
}

/// Precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional.
    None,
    /// Only if no live (unexpired) item has this key.
    IfAbsent,
    /// Only if a live item exists.
    IfExists,
    /// Only if the live item has exactly this version.
    IfVersion(u64),
}

/// One operation of a multi-item transaction; all apply or none.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Put {
        item: Item,
        condition: Condition,
    },
    Delete {
        key: Key,
        condition: Condition,
    },
    /// Assert a condition on an item without writing it.
    Check {
        key: Key,
        condition: Condition,
    },
    /// Add `delta` to a counter that never expires (created at 0), cancelling the transaction
    /// when the result would exceed `ceiling`: how a gauge quota (flows, connections) is taken
    /// in the same transaction as the write it counts.
    Add {
        key: Key,
        delta: i64,
        ceiling: Option<i64>,
    },
}

impl WriteOp {
    pub fn key(&self) -> &Key {
        match self {
            WriteOp::Put { item, .. } => &item.key,
            WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } | WriteOp::Add { key, .. } => key,
        }
    }
}

/// Most fields one `Store::add_fields` call may change.
pub const MAX_FIELD_DELTAS: usize = 50;

/// Largest number of operations in one transaction (DynamoDB's TransactWriteItems limit).
pub const MAX_TRANSACTION_OPS: usize = 100;
/// Largest page a query returns, whatever the caller asks for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A query over one partition: items whose sort key begins with `sk_prefix`, in sort-key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub pk: String,
    pub sk_prefix: String,
    pub limit: u32,
    /// Opaque cursor from a previous page's `next`.
    pub cursor: Option<String>,
    pub descending: bool,
}

impl Query {
    pub fn prefix(pk: impl Into<String>, sk_prefix: impl Into<String>) -> Self {
        Query { pk: pk.into(), sk_prefix: sk_prefix.into(), limit: 100, cursor: None, descending: false }
    }
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit.clamp(1, MAX_PAGE_SIZE);
        self
    }
    pub fn after(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }
}

/// One page of a query. `next` is set when more items may follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<String>,
}

/// Cursors are the base64url of the last sort key returned. They are only ever interpreted
/// within the caller's own partition and prefix, so a forged cursor cannot reach other items;
/// one outside the prefix is rejected.
pub mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::{PortError, PortResult, Rejection};

    pub fn encode(sk: &str) -> String {
        URL_SAFE_NO_PAD.encode(sk.as_bytes())
    }

    pub fn decode(cursor: &str, sk_prefix: &str) -> PortResult<String> {
        let bytes =
            URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| PortError::Rejected(Rejection::InvalidCursor))?;
        let sk = String::from_utf8(bytes).map_err(|_| PortError::Rejected(Rejection::InvalidCursor))?;
        if !sk.starts_with(sk_prefix) {
            return Err(PortError::Rejected(Rejection::InvalidCursor));
        }
        Ok(sk)
    }
}

/// Items by (partition key, sort key), with the operations the single-table design needs.
#[async_trait]
pub trait Store: Send + Sync {
    /// The live item at `key`, if any (strongly consistent).
    async fn get(&self, key: &Key) -> PortResult<Option<Item>>;
    /// Write an item if `condition` holds, else `ConditionFailed`.
    async fn put(&self, item: Item, condition: Condition) -> PortResult<()>;
    /// Delete an item if `condition` holds, else `ConditionFailed`. Deleting nothing is fine
    /// with `Condition::None`.
    async fn delete(&self, key: &Key, condition: Condition) -> PortResult<()>;
    /// One page of live items in a partition whose sort key starts with a prefix.
    async fn query(&self, query: &Query) -> PortResult<Page>;
    /// Atomically add `delta` to the counter at `key` (created at 0), unless the result would
    /// exceed `ceiling`. Returns the new value, or `None` when the ceiling refused the add.
    /// A counter item past `expires_at` starts again from 0 (windowed quotas).
    async fn add_counter(
        &self,
        key: &Key,
        delta: i64,
        ceiling: Option<i64>,
        expires_at: Option<i64>,
    ) -> PortResult<Option<i64>>;
    /// Apply all operations or none (at most `MAX_TRANSACTION_OPS`, each key at most once).
    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()>;
    /// Atomically add each delta to its named number field of the item at `key` (fields start
    /// at 0; at most `MAX_FIELD_DELTAS`), in one write: a metrics rollup. The item reads back
    /// as an object of its fields. `expires_at` is set by the first add (keys carry their
    /// window, so an item is not added to after it expires).
    async fn add_fields(&self, key: &Key, deltas: &[(String, i64)], expires_at: Option<i64>) -> PortResult<()>;

    /// `get` with an owned key, for futures that outlive the caller's borrow.
    async fn get_owned(&self, key: Key) -> PortResult<Option<Item>> {
        self.get(&key).await
    }
}

/// Fetch every page of a query (for small, bounded partitions only).
pub async fn query_all(store: &dyn Store, mut query: Query, max_items: usize) -> PortResult<Vec<Item>> {
    let mut items = Vec::new();
    loop {
        let page = store.query(&query).await?;
        items.extend(page.items);
        if items.len() >= max_items {
            items.truncate(max_items);
            return Ok(items);
        }
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok(items),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------------

/// The URL of each queue, from the function's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueUrls(pub std::collections::HashMap<QueueId, String>);

impl QueueUrls {
    pub fn url(&self, queue: QueueId) -> PortResult<&str> {
        self.0
            .get(&queue)
            .map(String::as_str)
            .ok_or_else(|| PortError::Unavailable(format!("no URL configured for queue {}", queue.name())))
    }
}

/// The queues of the platform. Each main queue has a dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueId {
    Runs,
    RunsDlq,
    Polls,
    PollsDlq,
}

impl QueueId {
    pub const ALL: [QueueId; 4] = [QueueId::Runs, QueueId::RunsDlq, QueueId::Polls, QueueId::PollsDlq];

    pub fn name(self) -> &'static str {
        match self {
            QueueId::Runs => "runs",
            QueueId::RunsDlq => "runs-dlq",
            QueueId::Polls => "polls",
            QueueId::PollsDlq => "polls-dlq",
        }
    }
    pub fn parse(name: &str) -> Option<QueueId> {
        QueueId::ALL.into_iter().find(|q| q.name() == name)
    }
    /// The dead-letter queue messages of this queue are redriven to.
    pub fn dead_letter(self) -> Option<QueueId> {
        match self {
            QueueId::Runs => Some(QueueId::RunsDlq),
            QueueId::Polls => Some(QueueId::PollsDlq),
            QueueId::RunsDlq | QueueId::PollsDlq => None,
        }
    }
    /// The queue a dead-letter queue's messages came from.
    pub fn source(self) -> Option<QueueId> {
        match self {
            QueueId::RunsDlq => Some(QueueId::Runs),
            QueueId::PollsDlq => Some(QueueId::Polls),
            QueueId::Runs | QueueId::Polls => None,
        }
    }
}

/// SQS limits, enforced by both adapters so behaviour matches.
pub mod sqs_limits {
    /// Messages per SendMessageBatch / ReceiveMessage call.
    pub const MAX_BATCH: usize = 10;
    /// Largest per-message delay.
    pub const MAX_DELAY_SECONDS: u32 = 900;
    /// Largest message body we send. SQS accepts 1 MiB since 2025; we stay at the historical
    /// 256 KiB so emulators and older regions behave the same. Larger payloads are stored in
    /// the table and referenced from the message.
    pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
    /// Longest visibility timeout.
    pub const MAX_VISIBILITY_SECONDS: u32 = 12 * 60 * 60;

    /// The delay of a message due in `wait_ms` (none when overdue): whole seconds, rounded up so
    /// it never arrives early, and at most `MAX_DELAY_SECONDS` (longer waits need a timer).
    pub fn delay_secs(wait_ms: i64) -> u32 {
        (wait_ms.max(0) as u64).div_ceil(1000).min(u64::from(MAX_DELAY_SECONDS)) as u32
    }

    /// Largest SendMessageBatch request (the sum of its bodies), as for one message.
    pub const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES;

    /// Split messages into send batches of at most `MAX_BATCH` messages and `MAX_BATCH_BYTES`
    /// bytes in all, in order (each message is assumed to pass `check_message`).
    pub fn batches(messages: &[super::OutgoingMessage]) -> Vec<&[super::OutgoingMessage]> {
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, m) in messages.iter().enumerate() {
            if i > start && (i - start == MAX_BATCH || bytes + m.body.len() > MAX_BATCH_BYTES) {
                out.push(&messages[start..i]);
                (start, bytes) = (i, 0);
            }
            bytes += m.body.len();
        }
        if start < messages.len() {
            out.push(&messages[start..]);
        }
        out
    }

    /// Refuse a message SQS would refuse, before anything is sent.
    pub fn check_message(message: &super::OutgoingMessage) -> super::PortResult<()> {
        if message.body.len() > MAX_MESSAGE_BYTES {
            return Err(super::PortError::too_large(format!(
                "message of {} bytes exceeds {MAX_MESSAGE_BYTES} bytes",
                message.body.len()
            )));
        }
        if message.delay_seconds > MAX_DELAY_SECONDS {
            return Err(super::PortError::invalid(format!(
                "delay of {}s exceeds {MAX_DELAY_SECONDS}s",
                message.delay_seconds
            )));
        }
        Ok(())
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub delay_seconds: u32,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        OutgoingMessage { body: body.into(), delay_seconds: 0 }
    }
    pub fn delayed(mut self, seconds: u32) -> Self {
        self.delay_seconds = seconds.min(sqs_limits::MAX_DELAY_SECONDS);
        self
    }
}

/// A received message. `receipt_handle` deletes or re-times this delivery only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times the message has been received, this delivery included.
    pub receive_count: u32,
    /// When it was first sent, epoch milliseconds.
    pub sent_at_ms: i64,
}

/// Queues with SQS semantics: at-least-once delivery, visibility timeout, receive count and
/// redrive to the dead-letter queue after the queue's max receive count.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Send messages; more than ten are split into batches. Entries a batch reports as failed
    /// are retried; if some still fail the call fails (and may have sent the others: callers
    /// rely on idempotent consumers, never on all-or-nothing sends).
    async fn send(&self, queue: QueueId, messages: &[OutgoingMessage]) -> PortResult<()>;
    /// Receive up to `max` (≤ 10) visible messages, hiding them for `visibility`. Waits up to
    /// `wait` for one to arrive. Messages past the max receive count move to the DLQ instead.
    async fn receive(
        &self,
        queue: QueueId,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>>;
    /// Acknowledge a delivery.
    async fn delete(&self, queue: QueueId, receipt_handle: &str) -> PortResult<()>;
    /// Acknowledge several deliveries (SQS DeleteMessageBatch; one transaction embedded).
    async fn delete_batch(&self, queue: QueueId, receipt_handles: &[String]) -> PortResult<()> {
        for receipt in receipt_handles {
            self.delete(queue, receipt).await?;
        }
        Ok(())
    }
    /// Change how long a delivery stays hidden (0 makes it visible now).
    async fn change_visibility(&self, queue: QueueId, receipt_handle: &str, visibility: Duration) -> PortResult<()>;
    /// Approximate number of messages (visible + in flight + delayed).
    async fn depth(&self, queue: QueueId) -> PortResult<u64>;
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// Whose secret document: one per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretOwner {
    pub space: String,
    pub tenant: String,
}

/// A tenant's credentials document. `Debug` never prints the content.
#[derive(Clone, PartialEq, Default)]
pub struct SecretDocument(pub serde_json::Map<String, Value>);

impl fmt::Debug for SecretDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDocument({} entries, redacted)", self.0.len())
    }
}

/// One tenant's credentials, read and written whole.
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn get(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>>;
    /// Read past any cache in front of the store (a read-modify-write under a lease must see
    /// the last write of every container). Adapters without a cache read as `get`.
    async fn get_fresh(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        self.get(owner).await
    }
    async fn put(&self, owner: &SecretOwner, document: &SecretDocument) -> PortResult<()>;
    async fn delete(&self, owner: &SecretOwner) -> PortResult<()>;
}

/// Where the platform admin key comes from: a value given at start-up, or a secret read (and
/// cached) at run time. `None` when there is no admin key (spaces cannot be created over the API).
#[async_trait]
pub trait AdminKey: Send + Sync {
    async fn admin_key(&self) -> PortResult<Option<String>>;
}

/// An admin key known at start-up (local runs and tests), or none.
pub struct FixedAdminKey(pub Option<String>);

#[async_trait]
impl AdminKey for FixedAdminKey {
    async fn admin_key(&self) -> PortResult<Option<String>> {
        Ok(self.0.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// EventBus
// ---------------------------------------------------------------------------------------------

/// A platform event (execution succeeded/failed, connection needs re-authorization...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformEvent {
    /// EventBridge `detail-type`, e.g. `execution.succeeded`.
    pub detail_type: String,
    pub detail: Value,
}

/// Entries per PutEvents call.
pub const MAX_EVENTS_PER_PUT: usize = 10;

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publish events (split into batches of ten; failed entries are retried).
    async fn publish(&self, events: &[PlatformEvent]) -> PortResult<()>;
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// One measurement for the metrics backend (CloudWatch, through Embedded Metric Format log
/// lines): values with their units, the dimension sets to aggregate them by, and properties
/// that travel along without being dimensions (ids too many to aggregate by).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRecord {
    /// Each inner list is one set of dimension names, all of which are in `dimensions`.
    pub dimension_sets: Vec<Vec<&'static str>>,
    pub dimensions: Vec<(&'static str, String)>,
    pub properties: Vec<(&'static str, Value)>,
    pub values: Vec<(&'static str, MetricUnit, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    Count,
    Milliseconds,
    Seconds,
}

impl MetricUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricUnit::Count => "Count",
            MetricUnit::Milliseconds => "Milliseconds",
            MetricUnit::Seconds => "Seconds",
        }
    }
}

/// Where metrics go: EMF lines on stdout in Lambda; nowhere on the dev server (its rollups in
/// the store answer `GET …/metrics`).
pub trait MetricsSink: Send + Sync {
    fn emit(&self, record: MetricRecord);
}

/// The sink that drops every record.
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn emit(&self, _: MetricRecord) {}
}

// ---------------------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------------------

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to (tests, and benchmarks that must not depend on time).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound HTTP
// ---------------------------------------------------------------------------------------------

/// A request to a third party.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundRequest {
    pub method: http::Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
    /// Total time allowed, connect included.
    pub timeout: Duration,
}

impl OutboundRequest {
    pub fn new(method: http::Method, url: url::Url) -> Self {
        OutboundRequest { method, url, headers: Vec::new(), body: None, timeout: Duration::from_secs(30) }
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboundResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl OutboundResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why an outbound call did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The SSRF guard refused the destination (private, loopback, metadata address...).
    #[error("destination not allowed: {0}")]
    Forbidden(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("too many redirects")]
    TooManyRedirects,
}

impl OutboundError {
    /// Network-level failures that a retry may fix.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OutboundError::Timeout | OutboundError::Connect(_))
    }
}

/// Every call to a third party goes through this port; the real adapter enforces the SSRF
/// guard, timeouts, redirect re-checks and a response size limit.
#[async_trait]
pub trait Http: Send + Sync {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError>;
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/// What a verified bearer token says about its holder: the claims the platform uses, read
/// the way Keycloak, Cognito, Auth0, Entra and Google issue them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `iss`: one of the configured issuers, exactly as configured.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`, when present.
    pub email: Option<String>,
    /// `email_verified`: only a verified email claims an invitation.
    pub email_verified: bool,
    /// `preferred_username` (Keycloak, Cognito `username`), for display.
    pub username: Option<String>,
    /// The values of the configured role claims (`SWITCHYARD_OIDC_ROLES_CLAIM`), e.g.
    /// `space:acme:admin`.
    pub roles: Vec<String>,
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of a configured issuer, badly signed, expired, for another audience, of a
    /// refused algorithm: a 401. The text says which, never what the token holds.
    #[error("{0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched and none are cached: a 503 (the caller retries).
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

/// Verifies bearer tokens (JWTs) from the configured OpenID Connect issuers.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError>;
}

#[cfg(test)]
mod sqs_limit_tests {
    use super::OutgoingMessage;
    use super::sqs_limits::{MAX_BATCH_BYTES, batches};

    #[test]
    fn batches_respect_the_count_and_the_total_size() {
        let small: Vec<OutgoingMessage> = (0..23).map(|i| OutgoingMessage::new(format!("m{i}"))).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let big: Vec<OutgoingMessage> = (0..5).map(|_| OutgoingMessage::new("x".repeat(100 * 1024))).collect();
        let split = batches(&big);
        assert_eq!(split.iter().map(|b| b.len()).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(split.iter().all(|b| b.iter().map(|m| m.body.len()).sum::<usize>() <= MAX_BATCH_BYTES));
        let whole = vec![OutgoingMessage::new("y".repeat(MAX_BATCH_BYTES))];
        assert_eq!(batches(&whole).len(), 1);
        assert!(batches(&[]).is_empty());
    }
}
