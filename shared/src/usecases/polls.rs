//! Polling: the synthetic event engine for apps without webhooks.
//!
//! Two steps, both run by the poller function:
//! 1. **Tick** (EventBridge, every minute): for every active poll-triggered flow and every
//!    tenant it runs for that has the connector enabled and connected, the tenant's poll of
//!    that resource is due when its state says so. A due poll is claimed (its `next_due` moved
//!    on by a lease, with a conditional write, so overlapping ticks send it once) and put on
//!    the *polls* queue.
//! 2. **Poll jobs** (the polls queue, in batches): page through the resource with the
//!    connector's list action and the tenant's credentials (the same action code path as flow
//!    steps: SSRF guard, refresh, rate limit), hash every record, diff against the stored
//!    snapshot, and start one run per change per matching flow.
//!
//! Rules:
//! - The first poll of a resource takes a baseline and emits nothing (existing records are
//!   not "created").
//! - A change is `created` (new id), `updated` (same id, different hash) or `deleted` (gone,
//!   only judged when the listing was complete: at most `MAX_PAGES` pages and `MAX_RECORDS`
//!   records are read per poll; a truncated listing reports no deletions).
//! - Exactly once per change: runs are queued before the new snapshot is saved; if the save is
//!   lost the next poll finds the same changes again, and their run keys (tenant, flow,
//!   resource, record id, change, hash, snapshot generation) start each run once. The
//!   generation moves on with every saved snapshot, so a record changing back and forth starts
//!   a run every time.
//! - Each change is one event of the tenant's daily quota. A poll whose changes do not all fit
//!   emits as many as today has room for, in listing order, and saves the old snapshot with
//!   only those applied, so the rest are found again by a later poll once the quota allows
//!   (under `queue_for_later` too: the provider keeps them for us). A poll with no room at
//!   all keeps the old snapshot and backs off, as for a poll that found nothing.
//! - A walk stops at a time budget (`WALK_BUDGET`), or at a rate limit after its first page,
//!   and counts as truncated; a cursor or next-page URL the provider repeats fails the poll
//!   (it would loop).
//! - A snapshot stored as a blob is rewritten at least weekly (blobs expire after 30 days);
//!   one that is gone anyway is replaced by a new baseline. A replaced blob is deleted only
//!   once the state pointing at its successor is saved.
//! - The interval adapts to the change rate: halved after a poll that found changes, doubled
//!   after one that found none, between the flow's interval / 4 and × 4 (and 1 minute to 1
//!   day). A failing poll backs off the same way and records the error in its state.
//!
//! Known limits: a record that moves to an already-read page during a walk (APIs sorted by
//! update time) is missed by that walk and, on a complete listing, reported deleted and then
//! created again; a retried poll reserves its events' quota again; a resource whose listing
//! never completes (more than `MAX_PAGES` or `MAX_RECORDS`) never judges deletions, so its
//! snapshot keeps ids that are gone.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{BatchMessage, Error, Result};
use crate::domain::connector::{ActionSpec, ConnectorSpec, ResourceSpec};
use crate::domain::execution::{TriggerInfo, TriggerKind};
use crate::domain::expr::Expr;
use crate::domain::flow::{FlowOwner, Trigger};
use crate::domain::tenancy::TenantStatus;
use crate::domain::webhook::envelope::{Change, ChangeEvent};
use crate::engine::Engine;
use crate::engine::actions::{self, ActionCall, ActionError};
use crate::engine::paging::{self, Cursor, PageRequest};
use crate::engine::runs::{self, RunRequest};
use crate::ports::{OutgoingMessage, PlatformEvent, PortError, QueueId, sqs_limits};
use crate::store::polls::{self, MAX_INTERVAL_SECS, MIN_INTERVAL_SECS, PollJob};
use crate::store::tenants::{self, ResolvedTenant};
use crate::store::{blobs, connections, flows};
use crate::usecases::quotas;

/// Pages read per poll, at most.
pub const MAX_PAGES: u32 = 100;
/// Records read per poll, at most.
pub const MAX_RECORDS: usize = 10_000;
/// How long a claimed poll is not claimed again (a job that never reports back is retried
/// after this; the polls queue redelivers failed jobs sooner).
pub const CLAIM_LEASE_MS: i64 = 10 * 60_000;
/// Snapshots larger than this (serialized) are stored as blobs.
const SNAPSHOT_INLINE_BYTES: usize = 64 * 1024;
/// A blob snapshot older than this is rewritten (blobs expire after `blobs::BLOB_TTL_SECS`).
const SNAPSHOT_REFRESH_MS: i64 = 7 * 86_400_000;
/// Time one walk may take (the function has 60 s, and a batch holds up to 10 jobs run at once).
pub const WALK_BUDGET: Duration = Duration::from_secs(40);
/// Per-page timeout, at most.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Claims made at once by a tick.
const CLAIM_CONCURRENCY: usize = 8;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickSummary {
    /// Tenant polls examined (one per tenant, connector and resource).
    pub polls: usize,
    /// Poll jobs queued because they were due.
    pub enqueued: usize,
}

/// A poll job as queued: the tenant's poll and the interval its flows ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollRequest {
    #[serde(flatten)]
    pub job: PollJob,
    pub base_interval_secs: u32,
}

/// One tick: claim every due poll and queue it.
pub async fn tick(engine: &Engine) -> Result<TickSummary> {
    let db = &engine.db;
    let now = engine.now_ms();
    // Each tenant's poll of a resource (and list input) once, at the shortest interval its
    // flows ask for.
    let mut due: HashMap<String, (PollJob, u32)> = HashMap::new();
    for entry in polls::entries(db).await? {
        let tenants = match tenants::active_tenants_of(db, &entry.owner).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(flow = %entry.flow_id, error = %e, "poll flow skipped this tick");
                continue;
            }
        };
        for t in tenants {
            let job = PollJob {
                space: t.space.id.clone(),
                tenant: t.tenant.id.clone(),
                connector: entry.connector.clone(),
                resource: entry.resource.clone(),
                input: entry.input.clone(),
            };
            let (_, interval) = due.entry(job.identity()).or_insert((job, entry.interval_seconds));
            *interval = (*interval).min(entry.interval_seconds);
        }
    }
    let mut summary = TickSummary { polls: due.len(), enqueued: 0 };
    // Claimed jobs leave in batches as claims succeed: a tick cut short (timeout, a failed
    // send) leaves only its last few claims waiting out their lease.
    let mut claims = futures::stream::iter(due.into_values())
        .map(|(job, base)| async move { (claim(engine, &job, base, now).await, job, base) })
        .buffer_unordered(CLAIM_CONCURRENCY);
    let mut messages = Vec::new();
    while let Some((claimed, job, base)) = claims.next().await {
        match claimed {
            Ok(true) => {
                let request = PollRequest { job, base_interval_secs: base };
                messages.push(OutgoingMessage::new(serde_json::to_string(&request).unwrap_or_default()));
                if messages.len() >= sqs_limits::MAX_BATCH {
                    engine.queue.send(QueueId::Polls, &messages).await?;
                    summary.enqueued += messages.len();
                    messages.clear();
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(tenant = %job.tenant, connector = %job.connector, error = %e, "poll not claimed"),
        }
    }
    engine.queue.send(QueueId::Polls, &messages).await?;
    summary.enqueued += messages.len();
    tracing::info!(polls = summary.polls, enqueued = summary.enqueued, "poller tick");
    Ok(summary)
}

/// Whether the tenant can be polled for this job's connector: enabled, and connected (or the
/// connector needs no credentials).
async fn ready(engine: &Engine, job: &PollJob) -> Result<bool> {
    let Some(spec) = engine.catalog.get(&job.connector) else { return Ok(false) };
    if spec.resource(&job.resource).is_none() {
        return Ok(false);
    }
    let settings = connections::cached_settings(&engine.db, &job.space, &job.tenant, &job.connector).await?;
    Ok(settings.is_some_and(|s| s.usable_with(spec)))
}

/// Claim a due poll: move its `next_due` on by the lease, if nobody did first.
async fn claim(engine: &Engine, job: &PollJob, base: u32, now: i64) -> Result<bool> {
    if !ready(engine, job).await? {
        return Ok(false);
    }
    let (mut state, version) = polls::get_state(&engine.db, job).await?;
    if state.next_due > now {
        return Ok(false);
    }
    if state.interval_secs == 0 {
        state.interval_secs = base;
    }
    state.next_due = now + CLAIM_LEASE_MS;
    Ok(polls::put_state(&engine.db, job, &state, version).await?)
}

/// Run one batch of poll jobs at once. Returns the ids of the messages to redeliver: those
/// whose poll failed for a reason on our side (a malformed job, a dependency down).
pub async fn poll_batch(engine: &Engine, messages: Vec<BatchMessage>) -> Vec<String> {
    let work = messages.into_iter().map(|message| async move {
        let outcome = match message.body.as_deref().map(serde_json::from_str::<PollRequest>) {
            Some(Ok(request)) => poll(engine, &request).await.map(|_| ()),
            Some(Err(e)) => Err(Error::bad_request(format!("malformed poll job: {e}"))),
            None => Err(Error::bad_request("poll job without a body")),
        };
        (message.id, outcome)
    });
    let mut failed = Vec::new();
    for (id, outcome) in futures::future::join_all(work).await {
        if let Err(e) = outcome {
            tracing::warn!(message_id = ?id, error = %e, "poll job left for redelivery");
            failed.extend(id);
        }
    }
    failed
}

/// What one poll found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollSummary {
    pub records: usize,
    pub pages: u32,
    pub complete: bool,
    pub baseline: bool,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub runs: usize,
    /// Why the poll failed (the state records it too).
    pub error: Option<String>,
}

/// The records of one walk through a resource.
struct Listing {
    /// (id, hash, record), in the provider's order, each id once; the record itself only when
    /// it differs from the old snapshot (unchanged ones are not kept in memory).
    records: Vec<(String, String, Option<Value>)>,
    pages: u32,
    complete: bool,
}

enum WalkError {
    /// Our store or secrets failed: the job is retried.
    Unavailable(PortError),
    /// The provider or the catalog failed: recorded in the state, retried at the next poll.
    Failed(String),
}

/// Run one poll job.
pub async fn poll(engine: &Engine, request: &PollRequest) -> Result<PollSummary> {
    let db = &engine.db;
    let job = &request.job;
    let Some((tenant, spec, resource, action)) = resolve(engine, job).await? else {
        return Ok(PollSummary::default());
    };
    let (mut state, version) = polls::get_state(db, job).await?;
    let now = engine.now_ms();
    let (floor, ceiling) = interval_bounds(request.base_interval_secs);
    let interval = if state.interval_secs == 0 { request.base_interval_secs } else { state.interval_secs };
    let lag_ms = lag(&state, interval, now);
    let was_unhealthy = state.failures >= polls::UNHEALTHY_AFTER;
    let old = match &state.snapshot {
        Some(stored) => load_snapshot(engine, job, stored).await?,
        None => None,
    };
    let listing = match walk(engine, &job.input, &tenant, spec, resource, action, old.as_ref()).await {
        Ok(listing) => listing,
        Err(WalkError::Unavailable(e)) => return Err(e.into()),
        Err(WalkError::Failed(message)) => {
            tracing::warn!(tenant = %job.tenant, connector = %job.connector, resource = %job.resource, error = %message, "poll failed");
            state.failures += 1;
            state.last_error = Some(message.clone());
            state.last_polled_at = Some(now);
            state.interval_secs = interval.saturating_mul(2).clamp(floor, ceiling);
            state.next_due = now + i64::from(state.interval_secs) * 1000;
            if polls::put_state(db, job, &state, version).await? && state.failures == polls::UNHEALTHY_AFTER {
                announce_health(engine, job, "poll.unhealthy", &state).await;
            }
            observe(engine, job, lag_ms, false);
            return Ok(PollSummary { error: Some(message), ..PollSummary::default() });
        }
    };
    let changes = diff(old.as_ref(), &listing);
    let mut summary = PollSummary {
        records: listing.records.len(),
        pages: listing.pages,
        complete: listing.complete,
        baseline: old.is_none(),
        ..PollSummary::default()
    };
    for (change, ..) in &changes {
        match change {
            Change::Created => summary.created += 1,
            Change::Updated => summary.updated += 1,
            Change::Deleted => summary.deleted += 1,
        }
    }
    // How many changes (in order) were emitted: the snapshot moves on by those only.
    let mut applied = changes.len();
    let mut quota_note = None;
    if !changes.is_empty() {
        match emit(engine, &tenant, job, state.generation, &changes, now).await {
            Ok((runs, emitted)) => {
                summary.runs = runs;
                applied = emitted;
                if emitted < changes.len() {
                    quota_note = Some(format!(
                        "daily events quota: {emitted} of {} changes emitted; the rest are found again when the quota allows",
                        changes.len()
                    ));
                }
            }
            Err(Error::Limited { message, .. } | Error::QuotaExceeded(message)) => {
                // Keep the old snapshot: the same changes are found again when quota allows.
                applied = 0;
                quota_note = Some(message);
            }
            Err(e) => return Err(e),
        }
    }
    let emitted = applied > 0 || changes.is_empty();
    let blob_aging = state.snapshot.as_ref().and_then(blobs::as_ref).is_some()
        && state.snapshot_saved_at.is_none_or(|at| now - at > SNAPSHOT_REFRESH_MS);
    let mut replaced = None;
    if emitted && (old.is_none() || !changes.is_empty() || blob_aging) {
        let merged = match applied < changes.len() {
            true => partial_snapshot(old.as_ref(), &changes[..applied]),
            false => next_snapshot(old.as_ref(), &listing),
        };
        replaced = state.snapshot.as_ref().and_then(blobs::as_ref);
        state.snapshot = Some(store_snapshot(engine, job, &merged).await?);
        state.snapshot_saved_at = Some(now);
        state.generation += 1;
        state.records = merged.len() as u64;
    }
    state.last_error = quota_note.clone();
    if quota_note.is_some() {
        summary.error = quota_note;
    }
    let found_changes = emitted && !changes.is_empty();
    state.failures = 0;
    state.last_polled_at = Some(now);
    state.last_success_at = Some(now);
    state.last_changes = changes.len() as u64;
    state.interval_secs = if found_changes { interval / 2 } else { interval.saturating_mul(2) }.clamp(floor, ceiling);
    state.next_due = now + i64::from(state.interval_secs) * 1000;
    let saved = polls::put_state(db, job, &state, version).await?;
    observe(engine, job, lag_ms, true);
    if saved && was_unhealthy {
        announce_health(engine, job, "poll.recovered", &state).await;
    }
    if saved {
        if let Some(blob) = replaced {
            if let Err(e) = blobs::delete(db, &job.space, &job.tenant, &blob).await {
                tracing::warn!(error = %e, "old snapshot not deleted; it expires on its own");
            }
        }
    } else {
        // Our new snapshot (if a blob) is referenced by nothing and expires on its own.
        tracing::info!(tenant = %job.tenant, "poll state changed meanwhile; the next poll diffs again");
    }
    tracing::info!(
        tenant = %job.tenant, connector = %job.connector, resource = %job.resource,
        records = summary.records, created = summary.created, updated = summary.updated,
        deleted = summary.deleted, runs = summary.runs, interval_secs = state.interval_secs, "poll done"
    );
    Ok(summary)
}

/// The interval range for flows asking for `base` seconds.
fn interval_bounds(base: u32) -> (u32, u32) {
    let floor = (base / 4).max(MIN_INTERVAL_SECS);
    (floor, base.saturating_mul(4).clamp(floor, MAX_INTERVAL_SECS.max(floor)))
}

/// The tenant, connector, resource and list action of a job; `None` when the job no longer
/// applies (tenant gone or suspended, connector or resource no longer in the catalog).
async fn resolve<'c>(
    engine: &'c Engine,
    job: &PollJob,
) -> Result<Option<(ResolvedTenant, &'c ConnectorSpec, &'c ResourceSpec, &'c ActionSpec)>> {
    let tenant = tenants::resolve_tenant(&engine.db, &job.tenant).await?;
    let Some(tenant) = tenant.filter(|t| t.space.id == job.space && t.tenant.status == TenantStatus::Active) else {
        return Ok(None);
    };
    let found = engine.catalog.get(&job.connector).and_then(|spec| {
        let resource = spec.resource(&job.resource)?;
        Some((spec, resource, spec.action(&resource.list_action)?))
    });
    Ok(found.map(|(spec, resource, action)| (tenant, spec, resource, action)))
}

/// Read every page of the resource (within the limits), keeping the records that differ from
/// `old`.
async fn walk(
    engine: &Engine,
    job_input: &Map<String, Value>,
    tenant: &ResolvedTenant,
    spec: &ConnectorSpec,
    resource: &ResourceSpec,
    action: &ActionSpec,
    old: Option<&HashMap<String, String>>,
) -> Result<Listing, WalkError> {
    let started = tokio::time::Instant::now();
    let compile = |what: &str, source: &str| {
        Expr::compile(source).map_err(|e| WalkError::Failed(format!("resource {}: {what}: {e}", resource.id)))
    };
    let records_expr = compile("records", &resource.records)?;
    let id_expr = compile("id_path", &resource.id_path)?;
    let input = Value::Object(job_input.clone());
    let mut page: Option<PageRequest> = None;
    let mut cursor = Cursor::default();
    let mut seen = HashSet::new();
    let mut listing = Listing { records: Vec::new(), pages: 0, complete: false };
    loop {
        let left = WALK_BUDGET.saturating_sub(started.elapsed());
        if cursor.pages >= MAX_PAGES || listing.records.len() >= MAX_RECORDS || left < Duration::from_secs(1) {
            tracing::warn!(resource = %resource.id, pages = cursor.pages, "poll stopped at its limits; deletions are not judged");
            return Ok(listing);
        }
        let call = ActionCall {
            space: &tenant.space.id,
            tenant: &tenant.tenant.id,
            spec,
            action,
            input: &input,
            idempotency_key: None,
            timeout: left.min(PAGE_TIMEOUT),
            page: page.as_ref(),
        };
        let result = match actions::call(engine, call).await {
            Ok(r) => r,
            Err(ActionError::Unavailable(detail)) => {
                return Err(WalkError::Unavailable(PortError::Unavailable(detail)));
            }
            // Pages already read are kept: the rest waits for the next poll.
            Err(ActionError::RateLimited { .. } | ActionError::Upstream { status: 429, .. }) if cursor.pages > 0 => {
                tracing::info!(resource = %resource.id, pages = cursor.pages, "poll stopped at the rate limit; deletions are not judged");
                return Ok(listing);
            }
            Err(e) => return Err(WalkError::Failed(format!("{} {}: {e}", spec.id, action.id))),
        };
        let records = match records_expr.eval(&result.output) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Null) => Vec::new(),
            Ok(other) => {
                return Err(WalkError::Failed(format!(
                    "records gave {}, not an array",
                    crate::domain::expr::type_name(&other)
                )));
            }
            Err(e) => return Err(WalkError::Failed(format!("records: {e}"))),
        };
        let on_page = records.len();
        for record in records {
            let id = match id_expr.eval(&record) {
                Ok(Value::String(s)) if !s.is_empty() => s,
                Ok(Value::Number(n)) => n.to_string(),
                _ => continue, // a record without an id cannot be followed
            };
            if seen.insert(id.clone()) {
                let hash = record_hash(&record);
                let changed = old.is_some_and(|old| old.get(&id) != Some(&hash));
                listing.records.push((id, hash, changed.then_some(record)));
            }
        }
        listing.pages = cursor.pages + 1;
        match paging::next_page(&resource.pagination, &result.response, on_page, &mut cursor) {
            Ok(Some(next)) => page = Some(next),
            Ok(None) => {
                listing.complete = true;
                return Ok(listing);
            }
            Err(e) => return Err(WalkError::Failed(format!("pagination: {e}"))),
        }
    }
}

/// A record's fingerprint (see `polls::canonical_hash`).
pub fn record_hash(record: &Value) -> String {
    polls::canonical_hash(record)
}

/// Changes from the old snapshot to this listing; none on the first poll (the baseline).
fn diff<'l>(
    old: Option<&HashMap<String, String>>,
    listing: &'l Listing,
) -> Vec<(Change, String, String, Option<&'l Value>)> {
    let Some(old) = old else { return Vec::new() };
    let mut changes = Vec::new();
    for (id, hash, record) in &listing.records {
        match old.get(id) {
            None => changes.push((Change::Created, id.clone(), hash.clone(), record.as_ref())),
            Some(before) if before != hash => {
                changes.push((Change::Updated, id.clone(), hash.clone(), record.as_ref()))
            }
            Some(_) => {}
        }
    }
    if listing.complete {
        let present: HashSet<&String> = listing.records.iter().map(|(id, ..)| id).collect();
        let mut gone: Vec<(&String, &String)> = old.iter().filter(|(id, _)| !present.contains(id)).collect();
        gone.sort();
        changes.extend(gone.into_iter().map(|(id, hash)| (Change::Deleted, id.clone(), hash.clone(), None)));
    }
    changes
}

/// The snapshot after this poll: the listing when complete, else the old one updated with it.
fn next_snapshot(old: Option<&HashMap<String, String>>, listing: &Listing) -> HashMap<String, String> {
    let mut next = if listing.complete { HashMap::new() } else { old.cloned().unwrap_or_default() };
    for (id, hash, _) in &listing.records {
        next.insert(id.clone(), hash.clone());
    }
    next
}

/// How long a poll ran behind its interval: from when it was due after the last poll.
pub(crate) fn lag(state: &polls::PollState, interval_secs: u32, now: i64) -> i64 {
    state.last_polled_at.map(|last| (now - last - i64::from(interval_secs) * 1000).max(0)).unwrap_or(0)
}

/// Poll metrics for CloudWatch: lag and outcome by space and tenant, the connector and
/// resource as properties.
fn observe(engine: &Engine, job: &PollJob, lag_ms: i64, succeeded: bool) {
    use crate::ports::{MetricRecord, MetricUnit};
    let outcome = if succeeded { "PollsSucceeded" } else { "PollsFailed" };
    engine.metrics.emit(MetricRecord {
        dimension_sets: vec![vec!["space", "tenant"]],
        dimensions: vec![("space", job.space.to_string()), ("tenant", job.tenant.to_string())],
        properties: vec![("connector", json!(job.connector)), ("resource", json!(job.resource))],
        values: vec![(outcome, MetricUnit::Count, 1.0), ("PollLag", MetricUnit::Seconds, lag_ms as f64 / 1000.0)],
    });
}

/// `poll.unhealthy` (with `connection.failing` for its connector) or `poll.recovered`.
async fn announce_health(engine: &Engine, job: &PollJob, detail_type: &str, state: &polls::PollState) {
    let detail = json!({
        "space": job.space, "tenant": job.tenant, "connector": job.connector, "resource": job.resource,
        "failures": state.failures, "last_error": state.last_error, "last_success_at": state.last_success_at,
    });
    let mut events = vec![PlatformEvent { detail_type: detail_type.into(), detail: detail.clone() }];
    if detail_type == "poll.unhealthy" {
        events.push(PlatformEvent { detail_type: "connection.failing".into(), detail });
    }
    if let Err(e) = crate::engine::events::publish(engine, &job.space, Some(&job.tenant), &events).await {
        tracing::warn!(error = %e, "poll health event not published");
    }
}

/// The old snapshot with only `applied` changes applied (the rest were not emitted).
fn partial_snapshot(
    old: Option<&HashMap<String, String>>,
    applied: &[(Change, String, String, Option<&Value>)],
) -> HashMap<String, String> {
    let mut next = old.cloned().unwrap_or_default();
    for (change, id, hash, _) in applied {
        match change {
            Change::Created | Change::Updated => next.insert(id.clone(), hash.clone()),
            Change::Deleted => next.remove(id),
        };
    }
    next
}

/// The stored snapshot; `None` when it is gone or unreadable (an expired or damaged blob), so
/// that this poll takes a new baseline instead of failing for ever or reporting every record as
/// created.
async fn load_snapshot(
    engine: &Engine,
    job: &PollJob,
    stored: &Value,
) -> Result<Option<HashMap<String, String>>, PortError> {
    let value = match blobs::resolve(&engine.db, &job.space, &job.tenant, stored).await {
        Ok(value) => value,
        Err(PortError::Corrupt(why)) => {
            tracing::warn!(tenant = %job.tenant, connector = %job.connector, resource = %job.resource, error = %why, "snapshot unreadable; taking a new baseline");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(match value {
        Value::Object(map) => {
            Some(map.into_iter().filter_map(|(k, v)| v.as_str().map(|h| (k, h.to_string()))).collect())
        }
        _ => None,
    })
}

async fn store_snapshot(
    engine: &Engine,
    job: &PollJob,
    snapshot: &HashMap<String, String>,
) -> Result<Value, PortError> {
    let value =
        Value::Object(snapshot.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>());
    if value.to_string().len() <= SNAPSHOT_INLINE_BYTES {
        return Ok(value);
    }
    let blob = blobs::put(&engine.db, &job.space, &job.tenant, &value).await?;
    Ok(json!({ "$blob": blob }))
}

/// Start one run per change per flow of the tenant polling this resource, for as many changes
/// (in order) as the quota admits. Returns the runs started and the changes emitted.
async fn emit(
    engine: &Engine,
    tenant: &ResolvedTenant,
    job: &PollJob,
    generation: u64,
    changes: &[(Change, String, String, Option<&Value>)],
    now: i64,
) -> Result<(usize, usize)> {
    let db = &engine.db;
    let wanted = |t: &Trigger| {
        matches!(t, Trigger::Poll { connector, resource, input, .. }
            if *connector == job.connector && *resource == job.resource && *input == job.input)
    };
    let space_owner = FlowOwner::Space { space: tenant.space.id.clone() };
    let tenant_owner = flows::tenant_owner(tenant);
    let (shared, own) = futures::try_join!(
        flows::flows_with_trigger(db, &space_owner, wanted),
        flows::flows_with_trigger(db, &tenant_owner, wanted)
    )?;
    let targets: Vec<_> = shared.iter().chain(own.iter()).collect();
    if targets.is_empty() {
        return Ok((0, changes.len()));
    }
    let (admitted, admission) = quotas::admit_events_up_to(engine, tenant, changes.len() as u64).await?;
    let changes = &changes[..(admitted as usize).min(changes.len())];
    let mut requests = Vec::with_capacity(changes.len() * targets.len());
    for (change, id, hash, record) in changes {
        let event_id = format!("{}:{}:{id}:{}:{hash}:{generation}", job.connector, job.resource, change.as_str());
        let event_type = format!("{}.{}", job.resource, change.as_str());
        let input = serde_json::to_value(ChangeEvent {
            id: event_id.clone(),
            space: tenant.space.id.clone(),
            tenant: tenant.tenant.id.clone(),
            connector: job.connector.clone(),
            event_type: event_type.clone(),
            received_at: now,
            resource: job.resource.clone(),
            change: *change,
            record_id: id.clone(),
            payload: record.cloned().unwrap_or(Value::Null),
        })
        .map_err(Error::unavailable)?;
        for flow in &targets {
            requests.push(RunRequest {
                flow: flow.pinned(),
                trigger: TriggerInfo {
                    kind: TriggerKind::Poll,
                    connector: Some(job.connector.clone()),
                    event_type: Some(event_type.clone()),
                    event_id: Some(event_id.clone()),
                },
                input: input.clone(),
                key: event_id.clone(),
            });
        }
    }
    let n = requests.len();
    if let Err(e) = runs::start_many(engine, tenant, requests).await {
        admission.refund(db).await;
        return Err(e.into());
    }
    Ok((n, changes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(records: &[(&str, Value)], complete: bool) -> Listing {
        Listing {
            records: records.iter().map(|(id, r)| (id.to_string(), record_hash(r), Some(r.clone()))).collect(),
            pages: 1,
            complete,
        }
    }

    #[test]
    fn hashes_ignore_key_order_but_not_values() {
        let a = json!({"id": 1, "name": "Ada", "tags": ["x", {"b": 1, "a": 2}]});
        let b = json!({"tags": ["x", {"a": 2, "b": 1}], "name": "Ada", "id": 1});
        assert_eq!(record_hash(&a), record_hash(&b));
        assert_ne!(record_hash(&a), record_hash(&json!({"id": 1, "name": "Adb", "tags": ["x", {"b": 1, "a": 2}]})));
        assert_ne!(record_hash(&json!(["a", "b"])), record_hash(&json!(["b", "a"])), "arrays keep their order");
        assert_ne!(record_hash(&json!({"a": "1"})), record_hash(&json!({"a": 1})));
        assert_eq!(record_hash(&a).len(), 16);
    }

    #[test]
    fn diffs_find_created_updated_and_deleted_records() {
        let first = listing(&[("1", json!({"v": 1})), ("2", json!({"v": 2})), ("3", json!({"v": 3}))], true);
        assert!(diff(None, &first).is_empty(), "the first poll is a baseline");
        let old = next_snapshot(None, &first);
        let second = listing(&[("1", json!({"v": 1})), ("2", json!({"v": 20})), ("4", json!({"v": 4}))], true);
        let changes: Vec<(Change, String)> = diff(Some(&old), &second).into_iter().map(|(c, id, ..)| (c, id)).collect();
        assert_eq!(
            changes,
            [
                (Change::Updated, "2".to_string()),
                (Change::Created, "4".to_string()),
                (Change::Deleted, "3".to_string())
            ]
        );
        // A truncated listing judges no deletion and keeps what it did not see.
        let partial = listing(&[("2", json!({"v": 20}))], false);
        let changes = diff(Some(&old), &partial);
        assert_eq!(changes.len(), 1);
        let kept = next_snapshot(Some(&old), &partial);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept["2"], record_hash(&json!({"v": 20})));
    }

    #[test]
    fn intervals_stay_within_a_quarter_and_four_times_the_flows() {
        assert_eq!(interval_bounds(300), (75, 1200));
        assert_eq!(interval_bounds(60), (60, 240));
        assert_eq!(interval_bounds(3600), (900, 14_400));
        assert_eq!(interval_bounds(86_400), (21_600, 86_400));
    }
}
