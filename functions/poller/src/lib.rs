//! The poller: the synthetic event engine for apps without webhooks, in one function with two
//! kinds of invocation (`usecases::polls`, whose module doc states the rules): the minute tick
//! from EventBridge claims due polls and queues them; batches from the polls queue run them.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::Value;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::lambda::{batch_messages, batch_response, check_scheduled};
use switchyard::usecases::polls;
pub use switchyard::usecases::polls::{PollRequest, PollSummary, TickSummary};

/// Handle one scheduled event (the tick). Only EventBridge's `Scheduled Event` is accepted.
pub async fn handle(p: &Platform, event: EventBridgeEvent) -> Result<TickSummary, AppError> {
    check_scheduled(&event)?;
    Ok(polls::tick(&p.engine).await?)
}

/// Process one SQS batch of poll jobs; the response lists exactly the jobs to redeliver.
pub async fn handle_batch(p: &Platform, event: SqsEvent) -> SqsBatchResponse {
    batch_response(polls::poll_batch(&p.engine, batch_messages(event)).await)
}

/// The Lambda's one entrypoint: an SQS batch of poll jobs, or the EventBridge tick.
pub async fn handle_event(p: &Platform, event: Value) -> Result<Value, AppError> {
    if event.get("Records").is_some() {
        let batch: SqsEvent =
            serde_json::from_value(event).map_err(|e| AppError::bad_request(format!("SQS event: {e}")))?;
        return Ok(serde_json::to_value(handle_batch(p, batch).await).unwrap_or(Value::Null));
    }
    let tick: EventBridgeEvent =
        serde_json::from_value(event).map_err(|e| AppError::bad_request(format!("EventBridge event: {e}")))?;
    Ok(serde_json::to_value(handle(p, tick).await?).unwrap_or(Value::Null))
}
