//! The scheduler's tick (every minute, from EventBridge).
//!
//! 1. Cron flows: for each scheduled flow whose next occurrence has come, start one run per
//!    tenant (a space-wide flow runs for every active tenant of its space). The run key is the
//!    occurrence, so two overlapping ticks (or a retried one) start each run once. Each run is
//!    one event of its tenant's quota; a tenant over a hard limit misses the occurrence
//!    (logged), one under `queue_for_later` has it deferred to its next window with room. After an
//!    outage at most `MAX_CATCH_UP` missed occurrences run; older ones are skipped and logged.
//! 2. Timers: executions parked for longer than an SQS delay allows get their resume message
//!    when they are due within the next minute (with the remaining seconds as the delay).
//! 3. Alerts: every alert rule is measured, and fires or resolves (`usecases::alerts`).

use serde::Serialize;
use serde_json::json;

use super::Result;
use crate::domain::execution::{TriggerInfo, TriggerKind};
use crate::domain::flow::FlowStatus;
use crate::domain::ids::ExecutionId;
use crate::domain::schedule::CronSchedule;
use crate::engine::{Engine, runs};
use crate::ports::{Item, PortError};
use crate::store::schedules::{self, ScheduleEntry};
use crate::store::{flows, tenants};
use crate::usecases::quotas;

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
    /// Alert rules measured.
    pub alerts: usize,
}

/// One tick: start the runs of every schedule that is due, release the timers due within the
/// horizon.
pub async fn tick(engine: &Engine) -> Result<TickSummary> {
    let mut summary = TickSummary::default();
    let now = engine.now_ms();
    for (item, entry) in schedules::entries(&engine.db).await? {
        if entry.next_due > now {
            continue;
        }
        summary.schedules += 1;
        match run_schedule(engine, &item, &entry, now).await {
            Ok(n) => summary.enqueued += n,
            // One broken schedule must not stop the others; the next tick retries it.
            Err(e) => tracing::warn!(flow = %entry.flow_id, error = %e, "scheduled runs failed; retrying next tick"),
        }
    }
    summary.timers = release_timers(engine, now).await?;
    // Alerts are measured after the runs are out: a broken rule never delays a schedule.
    summary.alerts = match super::alerts::evaluate_all(engine).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "alert rules not evaluated this tick");
            0
        }
    };
    tracing::info!(
        schedules = summary.schedules,
        enqueued = summary.enqueued,
        timers = summary.timers,
        "scheduler tick"
    );
    Ok(summary)
}

async fn run_schedule(engine: &Engine, item: &Item, entry: &ScheduleEntry, now: i64) -> Result<usize> {
    let db = &engine.db;
    let flow = match flows::get_flow(db, &entry.owner, &entry.flow_id).await? {
        Some(f) if f.status == FlowStatus::Active => f,
        // Deleted or paused since: drop it from the index.
        _ => {
            schedules::remove(db, &entry.owner, &entry.flow_id).await?;
            return Ok(0);
        }
    };
    let cron = CronSchedule::parse(&entry.cron, &entry.timezone).map_err(super::Error::bad_request)?;
    let from = entry.last_due.unwrap_or(entry.next_due - 1);
    let mut due = cron.due_between(from, now, 1000);
    if due.len() > MAX_CATCH_UP {
        tracing::warn!(flow = %entry.flow_id, missed = due.len() - MAX_CATCH_UP, "skipping missed occurrences after an outage");
        due.drain(..due.len() - MAX_CATCH_UP);
    }
    let tenants = tenants::active_tenants_of(db, &entry.owner).await?;
    let mut enqueued = 0;
    for occurrence in &due {
        let at = chrono::DateTime::from_timestamp_millis(*occurrence).map(|t| t.to_rfc3339()).unwrap_or_default();
        for tenant in &tenants {
            let trigger = TriggerInfo { event_id: Some(at.clone()), ..TriggerInfo::of(TriggerKind::Schedule) };
            let input = json!({"scheduled_at": at});
            let id = ExecutionId::generate(now);
            let key = occurrence.to_string();
            match quotas::start_counted(engine, tenant, flow.pinned(), trigger, input, Some(&key), id).await {
                Ok(_) => enqueued += 1,
                // A tenant over its quota misses this occurrence; the others still run.
                Err(super::Error::Limited { message, .. } | super::Error::QuotaExceeded(message)) => {
                    tracing::info!(flow = %entry.flow_id, tenant = %tenant.tenant.id, %message, "scheduled run refused by quota");
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut next = entry.clone();
    next.last_due = due.last().copied().or(entry.last_due);
    next.next_due = cron.next_after(now).unwrap_or(i64::MAX);
    match schedules::advance(db, item, &next).await {
        // Another tick moved it on (or the flow changed): its runs used the same keys.
        Ok(()) | Err(PortError::ConditionFailed) => Ok(enqueued),
        Err(e) => Err(e.into()),
    }
}

/// Send the resume messages of timers due within the horizon, then drop the timers.
async fn release_timers(engine: &Engine, now: i64) -> Result<usize> {
    let due = schedules::due_timers(&engine.db, now + TIMER_HORIZON_MS, 100).await?;
    let mut released = 0;
    for (key, timer) in due {
        runs::release_timer(engine, timer).await?;
        // A timer sent twice is harmless: its token lets one resume through.
        schedules::remove_timer(&engine.db, &key).await?;
        released += 1;
    }
    Ok(released)
}
