//! The scheduler: invoked every minute by EventBridge.
//!
//! 1. Cron flows: for each scheduled flow whose next occurrence has come, start one run per
//!    tenant (a space-wide flow runs for every active tenant of its space). The run key is the
//!    occurrence, so two overlapping ticks (or a retried one) start each run once. After an
//!    outage at most `MAX_CATCH_UP` missed occurrences run; older ones are skipped and logged.
//! 2. Timers: executions parked for longer than an SQS delay allows get their resume message
//!    when they are due within the next minute (with the remaining seconds as the delay).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::json;
use switchyard::domain::execution::{RunMessage, TriggerInfo};
use switchyard::domain::schedule::CronSchedule;
use switchyard::platform::error::AppError;
use switchyard::platform::flows::{self, FlowStatus};
use switchyard::platform::schedules::{self, ScheduleEntry};
use switchyard::platform::tenancy;
use switchyard::platform::{Platform, runs};
use switchyard::ports::{Condition, Item, OutgoingMessage, QueueId, sqs_limits};

/// Missed occurrences run after an outage, at most.
pub const MAX_CATCH_UP: usize = 3;
/// How far ahead timers are released (the tick interval).
pub const TIMER_HORIZON_MS: i64 = 60_000;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    /// Schedules due this tick.
    pub schedules: usize,
    /// Runs enqueued for them.
    pub enqueued: usize,
    /// Parked executions woken.
    pub timers: usize,
}

/// Handle one scheduled event. Only EventBridge's `Scheduled Event` is accepted.
pub async fn handle(p: &Platform, event: EventBridgeEvent) -> Result<TickSummary, AppError> {
    if event.detail_type != "Scheduled Event" {
        return Err(AppError::bad_request(format!("unexpected event {:?}", event.detail_type)));
    }
    let mut summary = TickSummary::default();
    let now = p.now_ms();
    for (item, entry) in schedules::entries(p).await? {
        if entry.next_due > now {
            continue;
        }
        summary.schedules += 1;
        match run_schedule(p, &item, &entry, now).await {
            Ok(n) => summary.enqueued += n,
            // One broken schedule must not stop the others; the next tick retries it.
            Err(e) => tracing::warn!(flow = %entry.flow_id, error = %e, "scheduled runs failed; retrying next tick"),
        }
    }
    summary.timers = release_timers(p, now).await?;
    tracing::info!(
        schedules = summary.schedules,
        enqueued = summary.enqueued,
        timers = summary.timers,
        "scheduler tick"
    );
    Ok(summary)
}

async fn run_schedule(p: &Platform, item: &Item, entry: &ScheduleEntry, now: i64) -> Result<usize, AppError> {
    let flow = match flows::get_flow(p, &entry.owner, &entry.flow_id).await? {
        Some(f) if f.status == FlowStatus::Active => f,
        // Deleted or paused since: drop it from the index.
        _ => {
            schedules::remove(p, &entry.owner, &entry.flow_id).await?;
            return Ok(0);
        }
    };
    let cron = CronSchedule::parse(&entry.cron, &entry.timezone).map_err(AppError::bad_request)?;
    let from = entry.last_due.unwrap_or(entry.next_due - 1);
    let mut due = cron.due_between(from, now, 1000);
    if due.len() > MAX_CATCH_UP {
        tracing::warn!(flow = %entry.flow_id, missed = due.len() - MAX_CATCH_UP, "skipping missed occurrences after an outage");
        due.drain(..due.len() - MAX_CATCH_UP);
    }
    let tenants = tenancy::active_tenants_of(p, &entry.owner).await?;
    let mut enqueued = 0;
    for occurrence in &due {
        let at = chrono::DateTime::from_timestamp_millis(*occurrence).map(|t| t.to_rfc3339()).unwrap_or_default();
        for tenant in &tenants {
            let trigger =
                TriggerInfo { kind: "schedule".into(), connector: None, event_type: None, event_id: Some(at.clone()) };
            runs::start_run(p, tenant, &flow, trigger, json!({"scheduled_at": at}), Some(&occurrence.to_string()))
                .await?;
            enqueued += 1;
        }
    }
    let mut next = entry.clone();
    next.last_due = due.last().copied().or(entry.last_due);
    next.next_due = cron.next_after(now).unwrap_or(i64::MAX);
    let updated =
        Item::new(item.key.clone(), serde_json::to_value(&next).unwrap_or_default()).with_version(item.version + 1);
    match p.store.put(updated, Condition::IfVersion(item.version)).await {
        // Another tick moved it on (or the flow changed): its runs used the same keys.
        Ok(()) | Err(switchyard::ports::PortError::ConditionFailed) => Ok(enqueued),
        Err(e) => Err(e.into()),
    }
}

/// Send the resume messages of timers due within the horizon, then drop the timers.
async fn release_timers(p: &Platform, now: i64) -> Result<usize, AppError> {
    let due = schedules::due_timers(p, now + TIMER_HORIZON_MS, 100).await?;
    let mut released = 0;
    for (key, timer) in due {
        let delay =
            ((timer.due - now).max(0) as u64).div_ceil(1000).min(u64::from(sqs_limits::MAX_DELAY_SECONDS)) as u32;
        let message = RunMessage::Resume {
            space: timer.space,
            tenant: timer.tenant,
            execution_id: timer.execution_id,
            token: timer.token,
        };
        let body = serde_json::to_string(&message).map_err(|e| AppError::bad_request(e.to_string()))?;
        p.queue.send(QueueId::Runs, &[OutgoingMessage::new(body).delayed(delay)]).await?;
        // A timer sent twice is harmless: its token lets one resume through.
        p.store.delete(&key, Condition::None).await?;
        released += 1;
    }
    Ok(released)
}
