//! The poller: the synthetic event engine for apps without webhooks. Invoked every minute by
//! EventBridge.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use switchyard::platform::Platform;
use switchyard::platform::error::AppError;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    /// Poll jobs examined.
    pub polls: usize,
    /// Change events emitted.
    pub events: usize,
}

/// Handle one scheduled event. Only EventBridge's `Scheduled Event` is accepted.
pub async fn handle(_p: &Platform, event: EventBridgeEvent) -> Result<TickSummary, AppError> {
    if event.detail_type != "Scheduled Event" {
        return Err(AppError::bad_request(format!("unexpected event {:?}", event.detail_type)));
    }
    Ok(TickSummary::default())
}
