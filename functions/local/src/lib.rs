//! The dev server: every function in one process, around the very same handler code.
//!
//! - Plays API Gateway: `/webhooks/...`, `/api/v1/...` and `/mcp` are converted to the
//!   handlers' `http::Request<Bytes>` exactly as the Lambda entrypoints do.
//! - Plays the SQS event source mappings: consumers receive batches of up to 10 from the runs
//!   queue (for the executor) and the polls queue (for the poller) with a visibility timeout,
//!   call the handler with an `SqsEvent`, and delete what it did not report as failed; the
//!   queues redrive to their DLQs after the max receives.
//! - Plays the EventBridge schedules: the scheduler and the poller get a `Scheduled Event`
//!   every minute.

pub mod demo;
pub mod front;

pub use front::{MAX_REQUEST_BYTES, router};

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use bytes::Bytes;
use serde_json::{Value, json};
use switchyard::engine::run::Budget;
use switchyard::ports::{PortResult, QueueId};
use switchyard::runtime::Platform;
use switchyard::runtime::http::{Request, Response, json as json_response};

/// How the dev server runs.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Concurrent batch consumers of the runs queue.
    pub consumers: usize,
    /// Visibility timeout of received batches (SQS: six times the function timeout).
    pub visibility: Duration,
    /// Time an executor invocation may take (the Lambda timeout).
    pub budget: Duration,
    /// Interval of the scheduler/poller events.
    pub tick: Duration,
    /// The HTTP front door's connection cap and timeouts.
    pub limits: front::Limits,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            consumers: 4,
            visibility: Duration::from_secs(720),
            budget: Duration::from_secs(120),
            tick: Duration::from_secs(60),
            limits: front::Limits::default(),
        }
    }
}

/// Send a request to the function API Gateway would route it to.
pub async fn route(p: &Platform, req: Request) -> Response {
    let path = req.uri().path();
    if path == "/webhooks" || path.starts_with("/webhooks/") {
        switchyard_webhook::handle(p, req).await
    } else if path == "/api/v1" || path.starts_with("/api/v1/") || path == "/console" || path.starts_with("/console/") {
        switchyard_api::handle(p, req).await
    } else if path == "/" {
        switchyard_api::console::redirect_home()
    } else if path == "/mcp" {
        switchyard_mcp::handle(p, req).await
    } else if path == demo::ECHO_PATH {
        demo::echo(&req)
    } else {
        json_response(404, &json!({"error": {"code": "not_found", "message": "no such route"}}))
    }
}

/// An SQS event, as the event source mapping builds it, from received messages.
pub fn sqs_event(queue: QueueId, messages: &[switchyard::ports::ReceivedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes.insert("ApproximateReceiveCount".into(), m.receive_count.to_string());
            record.attributes.insert("SentTimestamp".into(), m.sent_at_ms.to_string());
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:switchyard-{}", queue.name()));
            record
        })
        .collect();
    event
}

/// Receive one batch from the runs queue, run the executor on it, delete what succeeded.
/// Returns how many messages were received.
pub async fn consume_runs_once(p: &Platform, config: &LocalConfig, wait: Duration) -> PortResult<usize> {
    consume_once(p, QueueId::Runs, config, wait).await
}

/// The same for the polls queue and the poller.
pub async fn consume_polls_once(p: &Platform, config: &LocalConfig, wait: Duration) -> PortResult<usize> {
    consume_once(p, QueueId::Polls, config, wait).await
}

async fn consume_once(p: &Platform, queue: QueueId, config: &LocalConfig, wait: Duration) -> PortResult<usize> {
    let messages = p.engine.queue.receive(queue, 10, config.visibility, wait).await?;
    if messages.is_empty() {
        return Ok(0);
    }
    let event = sqs_event(queue, &messages);
    let response = match queue {
        QueueId::Polls => switchyard_poller::handle_batch(p, event).await,
        _ => {
            let budget = Budget::until(tokio::time::Instant::now() + config.budget);
            switchyard_executor::handle(p, event, budget).await
        }
    };
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let done: Vec<String> = messages
        .iter()
        .filter(|m| !failed.contains(&m.message_id.as_str()))
        .map(|m| m.receipt_handle.clone())
        .collect();
    if let Err(e) = p.engine.queue.delete_batch(queue, &done).await {
        // Not deleted means redelivered: the consumers' idempotency makes that harmless.
        tracing::warn!(error = %e, "delete after processing failed");
    }
    Ok(messages.len())
}

/// The event EventBridge sends on a schedule.
pub fn scheduled_event(rule: &str) -> EventBridgeEvent {
    let mut event = EventBridgeEvent::default();
    event.detail_type = "Scheduled Event".into();
    event.source = "aws.events".into();
    event.id = Some(switchyard::domain::ids::ulid_at(chrono::Utc::now().timestamp_millis()).to_string());
    event.time = Some(chrono::Utc::now());
    event.resources = Some(vec![format!("arn:aws:events:local:000000000000:rule/{rule}")]);
    event.detail = json!({});
    event
}

/// One round of the minute schedules.
pub async fn tick(p: &Platform) {
    match switchyard_scheduler::handle(p, scheduled_event("switchyard-scheduler")).await {
        Ok(summary) => tracing::debug!(?summary, "scheduler tick"),
        Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
    }
    match switchyard_poller::handle(p, scheduled_event("switchyard-poller")).await {
        Ok(summary) => tracing::debug!(?summary, "poller tick"),
        Err(e) => tracing::warn!(error = %e, "poller tick failed"),
    }
    if let Some(db) = &p.database {
        if let Err(e) = db.sweep_expired(p.db().clock.now_secs()) {
            tracing::warn!(error = %e, "expired item sweep failed");
        }
    }
}

/// Run the dev server until `shutdown` resolves.
pub async fn serve(
    platform: Arc<Platform>,
    listener: tokio::net::TcpListener,
    config: LocalConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    // Runs get the configured consumers; poll jobs one (their work is paced by the ticks).
    let queues = std::iter::repeat_n(QueueId::Runs, config.consumers.max(1)).chain([QueueId::Polls]);
    for queue in queues {
        let (p, config, mut stop) = (platform.clone(), config.clone(), stop_rx.clone());
        workers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    result = consume_once(&p, queue, &config, Duration::from_secs(1)) => {
                        if let Err(e) = result {
                            tracing::warn!(queue = queue.name(), error = %e, "queue unavailable; retrying in 1s");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        }));
    }
    let (p, every, mut stop) = (platform.clone(), config.tick, stop_rx.clone());
    workers.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = interval.tick() => tick(&p).await,
            }
        }
    }));
    let result = front::serve(platform, listener, config.limits, shutdown).await;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    result
}

/// Body of a JSON response, for callers that route in-process.
pub fn body_json(response: &Response) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

/// A request for in-process routing (tests, benchmarks).
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(body.into()).unwrap_or_else(|_| http::Request::new(Bytes::new()))
}

impl LocalConfig {
    /// Defaults, with `SWITCHYARD_LOCAL_CONSUMERS` and `SWITCHYARD_LOCAL_TICK_SECONDS` applied.
    pub fn from_env() -> Result<LocalConfig, String> {
        let mut config = LocalConfig::default();
        if let Ok(v) = std::env::var("SWITCHYARD_LOCAL_CONSUMERS") {
            config.consumers = v.parse().map_err(|_| format!("SWITCHYARD_LOCAL_CONSUMERS={v:?} is not a number"))?;
        }
        if let Ok(v) = std::env::var("SWITCHYARD_LOCAL_TICK_SECONDS") {
            let secs: u64 = v.parse().map_err(|_| format!("SWITCHYARD_LOCAL_TICK_SECONDS={v:?} is not a number"))?;
            config.tick = Duration::from_secs(secs.max(1));
        }
        Ok(config)
    }
}

/// Outside AWS the dev server may call loopback (the demo's echo endpoint, local mocks)
/// unless `SWITCHYARD_OUTBOUND_ALLOW` says otherwise. Never applies inside Lambda.
pub fn local_settings() -> Result<switchyard::runtime::Settings, switchyard::runtime::ConfigError> {
    let mut settings = switchyard::runtime::Settings::from_env()?;
    if std::env::var_os("SWITCHYARD_OUTBOUND_ALLOW").is_none() && !settings.in_lambda {
        settings.outbound = switchyard::adapters::outbound::ssrf::AddressPolicy::from_allow_list("127.0.0.0/8,::1")
            .map_err(switchyard::runtime::ConfigError)?;
    }
    Ok(settings)
}

/// The platform the dev server runs on. With `SWITCHYARD_BACKEND=aws` and
/// `SWITCHYARD_AWS_CREATE_RESOURCES=1` it first creates the table, queues and bus in the
/// endpoint (an emulator such as moto), named after `SWITCHYARD_TABLE`.
pub async fn build_platform() -> Result<Platform, switchyard::runtime::ConfigError> {
    use switchyard::adapters::aws::provision::{QueueSettings, ResourceNames, provision};
    let mut settings = local_settings()?;
    let create = std::env::var("SWITCHYARD_AWS_CREATE_RESOURCES").as_deref() == Ok("1");
    if settings.backend == switchyard::runtime::Backend::Aws && create {
        let sdk = switchyard::adapters::aws::load_sdk_config().await;
        let names = ResourceNames {
            table: settings.table.clone(),
            queue_prefix: settings.table.clone(),
            event_bus: settings.event_bus.clone(),
        };
        settings.queue_urls = provision(&sdk, &names, QueueSettings::default())
            .await
            .map_err(|e| switchyard::runtime::ConfigError(format!("creating AWS resources: {e}")))?;
        return Platform::aws(&sdk, Arc::new(switchyard::ports::SystemClock), settings);
    }
    Platform::from_settings(settings).await
}

/// One line about the backend, for the banner.
pub fn describe(p: &Platform) -> String {
    match &p.settings.backend {
        switchyard::runtime::Backend::Embedded { path } => format!("embedded backend at {path}"),
        switchyard::runtime::Backend::Aws => format!("AWS backend, table {}", p.settings.table),
    }
}
