//! The scheduler: invoked every minute by EventBridge; runs `usecases::schedules::tick` (cron
//! flows and parked executions' timers; its module doc states the rules).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::lambda::check_scheduled;
pub use switchyard::usecases::schedules::{MAX_CATCH_UP, TIMER_HORIZON_MS, TickSummary};

/// Handle one scheduled event. Only EventBridge's `Scheduled Event` is accepted.
pub async fn handle(p: &Platform, event: EventBridgeEvent) -> Result<TickSummary, AppError> {
    check_scheduled(&event)?;
    Ok(switchyard::usecases::schedules::tick(&p.engine).await?)
}
