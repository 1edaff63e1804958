//! Glue between the Lambda runtime and the handlers: the threads, request/response and batch
//! conversions, logging.

use std::future::Future;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use bytes::Bytes;
use lambda_http::Body;

use super::error::AppError;
use super::http::{Request, Response};
use crate::usecases::BatchMessage;

/// Stack of every runtime thread: an expression evaluation wants
/// `domain::expr::STACK_HEADROOM` free when it starts (virtual memory; only what a deep
/// evaluation touches is ever resident). Without it each evaluation allocates a stack segment.
pub const WORKER_STACK: usize = 2 * crate::domain::expr::STACK_HEADROOM;

/// Run a function's `main` on a thread with `WORKER_STACK`, inside a multi-threaded tokio
/// runtime whose workers have it too (the process's own main thread has 8 MiB).
pub fn run_main<M, F>(main: M) -> F::Output
where
    M: FnOnce() -> F + Send + 'static,
    F: Future,
    F::Output: Send + 'static,
{
    let thread = std::thread::Builder::new().name("main".into()).stack_size(WORKER_STACK).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_stack_size(WORKER_STACK)
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"));
        runtime.block_on(main())
    });
    match thread.map(std::thread::JoinHandle::join) {
        Ok(Ok(output)) => output,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => panic!("cannot start the main thread: {e}"),
    }
}

/// Serve an HTTP handler behind API Gateway (HTTP API, payload v2). lambda_http has already
/// decoded a base64-encoded body, so handlers always see the raw bytes.
pub async fn serve_http<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut + Send + Sync,
    Fut: Future<Output = Response> + Send,
{
    let handler = &handler;
    lambda_http::run(lambda_http::service_fn(move |req: lambda_http::Request| async move {
        let response = handler(from_lambda_request(req)).await;
        Ok::<_, std::convert::Infallible>(into_lambda_response(response))
    }))
    .await
}

/// A request as lambda_http decoded it (base64 bodies already decoded) in the handlers' shape.
pub fn from_lambda_request(req: lambda_http::Request) -> Request {
    let (parts, body) = req.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(data) => Bytes::from(data),
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, bytes)
}

/// A handler response in lambda_http's shape (text when UTF-8, binary otherwise).
pub fn into_lambda_response(response: Response) -> http::Response<Body> {
    let (parts, bytes) = response.into_parts();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    http::Response::from_parts(parts, body)
}

/// Logging: JSON lines in Lambda (what the function's LoggingConfig expects), readable text
/// elsewhere. `RUST_LOG` filters as usual (default `info`).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok() || std::env::var("SWITCHYARD_LOG_JSON").is_ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).with_current_span(false).without_time().try_init()
    } else {
        builder.compact().try_init()
    };
    // Already initialised (tests, or the dev server calling twice): keep the first.
    let _ = result;
}

/// The invocation deadline (epoch ms from the Lambda context) as a tokio instant.
pub fn deadline(deadline_epoch_ms: u64) -> tokio::time::Instant {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    tokio::time::Instant::now() + std::time::Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}

/// The messages of an SQS batch as the use cases take them.
pub fn batch_messages(event: SqsEvent) -> Vec<BatchMessage> {
    event
        .records
        .into_iter()
        .map(|m| BatchMessage {
            receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
            id: m.message_id,
            receipt_handle: m.receipt_handle,
            body: m.body,
        })
        .collect()
}

/// The partial batch response that has SQS redeliver exactly `failed` (ReportBatchItemFailures).
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Whether an EventBridge event is the schedule's tick (`Scheduled Event`); anything else sent
/// to a scheduled function is refused.
pub fn check_scheduled(event: &EventBridgeEvent) -> Result<(), AppError> {
    if event.detail_type == "Scheduled Event" {
        Ok(())
    } else {
        Err(AppError::bad_request(format!("unexpected event {:?}", event.detail_type)))
    }
}
