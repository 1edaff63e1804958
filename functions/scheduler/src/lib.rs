//! The scheduler: invoked every minute by EventBridge, it enqueues the runs of cron-triggered
//! flows that are due.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use switchyard::platform::Platform;
use switchyard::platform::error::AppError;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    /// Schedules examined.
    pub schedules: usize,
    /// Runs enqueued.
    pub enqueued: usize,
}

/// Handle one scheduled event. Only EventBridge's `Scheduled Event` is accepted.
pub async fn handle(_p: &Platform, event: EventBridgeEvent) -> Result<TickSummary, AppError> {
    if event.detail_type != "Scheduled Event" {
        return Err(AppError::bad_request(format!("unexpected event {:?}", event.detail_type)));
    }
    Ok(TickSummary::default())
}
