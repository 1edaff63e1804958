//! Driving an execution from a run message: the durable part of the workflow runtime.
//!
//! Protocol (at-least-once messages, exactly-once starts, no completed step re-run):
//! 1. `Start` claims its run key (a conditional put naming its execution id), then creates the
//!    execution (a second conditional put), outside a transaction: 4 write units for a 2 KB
//!    input, where one transaction of both cost 8. A redelivery of the same message finds its
//!    own claim and creates the execution, or, if an earlier attempt did, carries on with it. A
//!    second message for the same run (the producer sent it twice) finds the claim held by
//!    another execution id: dropped once that execution exists; until then it fails and is
//!    retried, so that if the holder's message never creates it (it ends in the DLQ), the run is
//!    in the DLQ twice rather than lost, and never runs twice.
//! 2. Every step attempt is checkpointed; a step with a final checkpoint never runs again.
//! 3. To wait (retry backoff, delay step, out of time), the driver first enqueues a `Resume`
//!    carrying a fresh token, then saves the execution with that token as `wake_token`. Only a
//!    `Resume` whose token matches may drive the execution, so however the two writes are
//!    split by failures, exactly one resume chain survives: if the save fails the original
//!    message is retried and the new `Resume` is dropped as stale; if the enqueue fails nothing
//!    was saved and the original message is retried.
//! 4. The final state is written after the platform event is published, so events are
//!    at-least-once (consumers dedupe on `execution_id`).
//!
//! 5. A run of a tenant that is not active (suspended since it was queued) is cancelled before
//!    any step, with the reason in its error.
//!
//! Writes on the happy path: two to start (claim, execution), one checkpoint per step, one
//! final write.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::plan::{self, Plan};
use super::step::{self, StepOutcome, StepRun};
use super::{Engine, runs, steps};
use crate::domain::config::{self, RetryPolicy};
use crate::domain::execution::{
    Execution, ExecutionError, ExecutionStatus, RunMessage, StepRecord, StepStatus, StepSummary, Transition,
    TriggerKind,
};
use crate::domain::flow::{FlowDefinition, StepDef};
use crate::domain::ids::StepId;
use crate::domain::tenancy::TenantStatus;
use crate::ports::{Condition, Item, MetricRecord, MetricUnit, PlatformEvent, PortError};
use crate::store::executions::{StoredExecution, get_execution, load_records, write_step_record};
use crate::store::flows::{definition_of, get_flow_version};
use crate::store::schedules::Timer;
use crate::store::{self, blobs, connections, keys, tenants};

/// One step attempt of a round (boxed and named so `Send` is declared, not inferred).
type AttemptFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (&'a StepDef, u32, i64, StepOutcome)> + Send + 'a>>;

/// What to do with the message that was processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Its effects are durable: delete it.
    Done,
    /// Leave it to be redelivered (and, after the max receive count, dead-lettered).
    Retry(String),
}

/// How long this invocation may keep going.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Option<tokio::time::Instant>,
}

/// How often a long-running invocation looks for a cancel request (it also sees one at its
/// final write, which a cancel makes fail).
const CANCEL_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Time kept in hand for the checkpoint and the continuation message.
const SAFETY_MARGIN: Duration = Duration::from_secs(5);
/// How long run claims are kept: longer than any message can live in the queue (14 days).
const CLAIM_TTL_SECS: i64 = 15 * 86_400;

impl Budget {
    pub fn unlimited() -> Self {
        Budget { deadline: None }
    }
    pub fn until(deadline: tokio::time::Instant) -> Self {
        Budget { deadline: Some(deadline) }
    }
    /// Whether there is time for another round of steps that may take `longest`.
    fn allows(&self, longest: Duration) -> bool {
        self.deadline.is_none_or(|d| tokio::time::Instant::now() + longest + SAFETY_MARGIN < d)
    }
}

/// Process one runs-queue message body.
pub async fn process(engine: &Engine, body: &str, budget: Budget) -> Disposition {
    let message: RunMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            let head = crate::domain::json::top_level_strings(body, &["space", "tenant", "execution_id"]);
            let [space, tenant, execution] = [0, 1, 2].map(|i| head[i].clone().unwrap_or_default());
            tracing::error!(error = %e, space, tenant, execution, "malformed run message; it will be dead-lettered");
            return Disposition::Retry(format!("malformed run message: {e}"));
        }
    };
    let (space, tenant, execution_id) = message.execution();
    let span = tracing::info_span!("run", space = %space, tenant = %tenant, execution = %execution_id);
    let _entered = span.enter();
    match drive(engine, message.clone(), budget).await {
        Ok(disposition) => disposition,
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, "dependency unavailable; the run will be retried");
            Disposition::Retry(e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "run message cannot be processed");
            Disposition::Retry(e.to_string())
        }
    }
}

fn event_for(e: &Execution) -> PlatformEvent {
    PlatformEvent {
        detail_type: format!("execution.{}", e.status.as_str()),
        detail: json!({
            "space": e.space, "tenant": e.tenant, "execution_id": e.id, "flow_id": e.flow.id,
            "flow_version": e.flow.version, "status": e.status, "error": e.error,
            "trigger": e.trigger, "duration_ms": e.finished_at.map(|f| f - e.created_at),
        }),
    }
}

fn item(e: &Execution, version: u64) -> Item {
    Item::new(keys::execution(&e.space, &e.tenant, &e.id), serde_json::to_value(e).unwrap_or(Value::Null))
        .with_version(version)
}

/// Load or create the execution a message is about; `None` means drop the message. The flag
/// says the execution was created just now (so it has no step records yet).
async fn take(engine: &Engine, message: RunMessage) -> Result<Option<(StoredExecution, bool)>, store::Error> {
    let db = &engine.db;
    let now = engine.now_ms();
    match message {
        RunMessage::Start { space, tenant, execution_id, run_key, flow, trigger, input, enqueued_at } => {
            let flow_name = match get_flow_version(db, &flow.owner, &flow.id, flow.version).await? {
                Some(v) => definition_of(&v)?.name,
                None => return Err(missing_version(&flow.id, flow.version)),
            };
            let execution = Execution {
                id: execution_id.clone(),
                space: space.clone(),
                tenant: tenant.clone(),
                flow,
                flow_name,
                status: ExecutionStatus::Running,
                trigger,
                run_key: run_key.clone(),
                created_at: execution_id.created_at_ms().unwrap_or(now),
                updated_at: now,
                finished_at: None,
                transitions: vec![
                    Transition { status: ExecutionStatus::Queued, at: enqueued_at },
                    Transition { status: ExecutionStatus::Running, at: now },
                ],
                error: None,
                steps: Vec::new(),
                invocations: 1,
                input,
                cancel_requested: false,
                wake_token: None,
            };
            // 1. The claim: the first execution id to write it owns the run.
            let claim = Item::new(keys::run_claim(&space, &tenant, &run_key), json!({"execution_id": execution_id}))
                .expiring_at(now / 1000 + CLAIM_TTL_SECS);
            match db.store.put(claim, Condition::IfAbsent).await {
                Ok(()) => {}
                Err(PortError::ConditionFailed) => {
                    let holder = db.store.get(&keys::run_claim(&space, &tenant, &run_key)).await?;
                    let held_by = holder.as_ref().and_then(|c| c.data.get("execution_id")).and_then(Value::as_str);
                    match held_by {
                        // Gone since the write was refused (expired, tenant deleted): try again.
                        None => return Err(PortError::Unavailable("run claim changed; retrying".into()).into()),
                        Some(holder) if holder != execution_id.as_str() => {
                            let holder_id = crate::domain::ids::ExecutionId::parse(holder)
                                .map_err(|e| store::Error::invalid("bad_claim", e.to_string()))?;
                            if get_execution(db, &space, &tenant, &holder_id).await?.is_some() {
                                tracing::info!(
                                    run_key,
                                    held_by = holder,
                                    "duplicate run dropped: another execution started it"
                                );
                                return Ok(None);
                            }
                            // The holder claimed the run but has not created its execution: it is
                            // in flight, or its message is failing. Stay in the queue (retried,
                            // then in the DLQ with it) rather than drop the run's last copy; never
                            // start a second execution, which could run beside the holder's.
                            return Err(PortError::Unavailable(format!(
                                "run {run_key} is claimed by {holder}, whose execution does not exist yet"
                            ))
                            .into());
                        }
                        // Our own claim: a redelivery of this message, which got at least this far.
                        Some(_) => {}
                    }
                }
                Err(e) => return Err(e.into()),
            }
            // 2. The execution, created once: a redelivery that finds it carries on with it
            // unless a resume chain owns it now.
            match db.store.put(item(&execution, 1), Condition::IfAbsent).await {
                Ok(()) => Ok(Some((StoredExecution { execution, version: 1 }, true))),
                Err(PortError::ConditionFailed) => match get_execution(db, &space, &tenant, &execution_id).await? {
                    Some(stored) if stored.execution.wake_token.is_none() => Ok(Some((stored, false))),
                    Some(_) => Ok(None),
                    None => Err(PortError::Unavailable("execution exists but is not yet visible".into()).into()),
                },
                Err(e) => Err(e.into()),
            }
        }
        RunMessage::Resume { space, tenant, execution_id, token } => {
            let Some(mut stored) = get_execution(db, &space, &tenant, &execution_id).await? else {
                return Err(store::Error::NotFound(format!("execution {execution_id} does not exist")));
            };
            if stored.execution.wake_token.as_deref() != Some(token.as_str()) {
                tracing::info!("stale resume message dropped");
                return Ok(None);
            }
            let e = &mut stored.execution;
            e.wake_token = None;
            e.invocations += 1;
            if !e.status.is_terminal() {
                e.transition(ExecutionStatus::Running, now);
            }
            match db.store.put(item(e, stored.version + 1), Condition::IfVersion(stored.version)).await {
                Ok(()) => {
                    stored.version += 1;
                    Ok(Some((stored, false)))
                }
                Err(PortError::ConditionFailed) => {
                    tracing::info!("execution changed while resuming; message dropped");
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// A run of a flow version that is not stored: it never will be (versions are immutable and
/// written before any run of them is queued), so the message goes to the DLQ.
fn missing_version(flow: &crate::domain::ids::FlowId, version: u32) -> store::Error {
    store::Error::NotFound(format!("flow {flow} version {version} does not exist"))
}

/// The context expressions see: the trigger, finished steps, `config` (the tenant's effective
/// configuration: platform, space, tenant and flow levels merged) and `vars` (the flow's
/// defaults overridden by the configuration's `vars`).
fn context(
    e: &Execution,
    input: &Value,
    def: &FlowDefinition,
    config: &Value,
    records: &HashMap<StepId, StepRecord>,
) -> Value {
    let steps: Map<String, Value> = records
        .values()
        .map(|r| (r.id.to_string(), json!({"status": r.status, "output": r.output.clone().unwrap_or(Value::Null)})))
        .collect();
    json!({
        "trigger": input,
        "steps": steps,
        "vars": config::variables(&def.vars, config),
        "config": config,
        "execution": {"id": e.id, "flow_id": e.flow.id, "flow_version": e.flow.version, "space": e.space, "tenant": e.tenant},
    })
}

/// Each step's effective configuration: platform, space, tenant, the step's connector (the
/// integration level) and the flow, merged in that order.
struct StepConfigs {
    by_step: HashMap<StepId, Value>,
    /// Without the integration level: what `.config` shows every step.
    flow: Value,
}

impl StepConfigs {
    async fn load(engine: &Engine, exec: &Execution, def: &FlowDefinition) -> Result<StepConfigs, store::Error> {
        let resolved = tenants::resolve_tenant(&engine.db, &exec.tenant).await?;
        let empty = Map::new();
        let (space_level, tenant_level) = match &resolved {
            Some(r) => (&r.space.config, &r.tenant.config),
            None => (&empty, &empty),
        };
        let platform = &engine.db.deployment.platform_config;
        let mut by_step = HashMap::new();
        for step in &def.steps {
            let integration = match step.kind.connector() {
                Some(c) => connections::cached_settings(&engine.db, &exec.space, &exec.tenant, c)
                    .await?
                    .map(|s| s.config)
                    .unwrap_or_default(),
                None => Map::new(),
            };
            let config = config::cascade(&[platform, space_level, tenant_level, &integration, &def.config]);
            by_step.insert(step.id.clone(), config);
        }
        Ok(StepConfigs { by_step, flow: config::cascade(&[platform, space_level, tenant_level, &def.config]) })
    }

    fn retry(&self, step: &StepDef) -> RetryPolicy {
        step.retry.unwrap_or_else(|| self.by_step.get(&step.id).map(config::retry_policy).unwrap_or_default())
    }

    fn timeout(&self, step: &StepDef) -> Duration {
        let ms = step
            .timeout_ms
            .unwrap_or_else(|| self.by_step.get(&step.id).map(config::step_timeout_ms).unwrap_or(30_000));
        Duration::from_millis(ms)
    }
}

async fn drive(engine: &Engine, message: RunMessage, budget: Budget) -> Result<Disposition, store::Error> {
    let db = &engine.db;
    let Some((StoredExecution { execution: mut exec, mut version }, fresh)) = take(engine, message).await? else {
        return Ok(Disposition::Done);
    };
    if exec.status.is_terminal() {
        return Ok(Disposition::Done);
    }
    // A suspended (or deleted) tenant's runs end here, cancelled, before any step: its
    // credentials are not used, as for its webhooks, polls and MCP sessions.
    let active = tenants::resolve_tenant(db, &exec.tenant)
        .await?
        .is_some_and(|t| t.space.id == exec.space && t.tenant.status == TenantStatus::Active);
    if !active {
        exec.cancel_requested = true;
        exec.error = Some(ExecutionError { step: None, message: "the tenant is suspended".into() });
    }
    let flow = get_flow_version(db, &exec.flow.owner, &exec.flow.id, exec.flow.version)
        .await?
        .ok_or_else(|| missing_version(&exec.flow.id, exec.flow.version))?;
    let def = definition_of(&flow)?;
    // A redelivered or resumed execution carries on from its checkpoints; a new one has none,
    // unless it re-runs a failed one (whose completed steps were copied to it beforehand).
    let mut records: HashMap<StepId, StepRecord> = if fresh && exec.trigger.kind != TriggerKind::Rerun {
        HashMap::new()
    } else {
        load_records(db, &exec).await?.into_iter().map(|r| (r.id.clone(), r)).collect()
    };
    let by_id: HashMap<&StepId, &StepDef> = def.steps.iter().map(|s| (&s.id, s)).collect();
    let order = plan::definition_order(&def.steps);
    // A large trigger input travels as a blob reference; expressions see the value itself.
    let input = blobs::resolve(db, &exec.space, &exec.tenant, &exec.input).await?;
    let configs = StepConfigs::load(engine, &exec, &def).await?;
    let longest = def.steps.iter().map(|s| configs.timeout(s)).max().unwrap_or_default();
    let mut rounds = 0u32;
    let mut last_cancel_check = tokio::time::Instant::now();
    loop {
        if exec.cancel_requested {
            return finish(engine, exec, version, &def, &records, &order, ExecutionStatus::Cancelled).await;
        }
        let now = engine.now_ms();
        let Plan { run, skip, wake_at, blocked: _ } = plan::plan(&def.steps, &records, now);
        if !skip.is_empty() {
            let skipped: Vec<StepRecord> = skip
                .iter()
                .map(|id| {
                    StepRecord::skipped(id.clone(), by_id.get(id).map(|s| s.kind.name()).unwrap_or_default(), now)
                })
                .collect();
            checkpoint(engine, &exec, skipped, &mut records).await?;
            continue;
        }
        if run.is_empty() {
            if let Some(at) = wake_at {
                return park(engine, exec, version, &records, &order, at).await;
            }
            let failed = records.values().any(|r| r.status == StepStatus::Failed);
            let status = if failed { ExecutionStatus::Failed } else { ExecutionStatus::Succeeded };
            return finish(engine, exec, version, &def, &records, &order, status).await;
        }
        if rounds > 0 && !budget.allows(longest) {
            return park(engine, exec, version, &records, &order, now).await;
        }
        if last_cancel_check.elapsed() >= CANCEL_CHECK_INTERVAL {
            // Notice a cancel request between rounds without waiting for the final write.
            last_cancel_check = tokio::time::Instant::now();
            if let Some(fresh) = get_execution(db, &exec.space, &exec.tenant, &exec.id).await? {
                if fresh.execution.cancel_requested {
                    exec.cancel_requested = true;
                    version = fresh.version;
                    continue;
                }
            }
        }
        rounds += 1;
        let ctx = context(&exec, &input, &def, &configs.flow, &records);
        let seen = &records;
        let ctx = &ctx;
        let configs = &configs;
        let mut attempts: Vec<AttemptFuture<'_>> = Vec::with_capacity(run.len());
        for id in &run {
            let step = by_id[id];
            let previous = seen.get(id);
            let attempt = previous.map(|r| r.attempt).unwrap_or(0) + 1;
            let exec = &exec;
            attempts.push(Box::pin(async move {
                let started = engine.now_ms();
                let outcome = steps::run(StepRun {
                    engine,
                    execution: exec,
                    step,
                    attempt,
                    context: ctx,
                    item: None,
                    started_at: previous.filter(|r| r.status == StepStatus::Waiting).map(|r| r.started_at),
                    previous_output: previous.and_then(|r| r.output.as_ref()),
                    timeout: configs.timeout(step),
                })
                .await;
                (step, attempt, started, outcome)
            }));
        }
        let outcomes = futures::future::join_all(attempts).await;
        let finished = engine.now_ms();
        let new_records = outcomes
            .into_iter()
            .map(|(step, attempt, started, outcome)| {
                record_outcome(step, configs.retry(step), attempt, started, finished, outcome)
            })
            .collect();
        checkpoint(engine, &exec, new_records, &mut records).await?;
    }
}

fn record_outcome(
    step: &StepDef,
    policy: RetryPolicy,
    attempt: u32,
    started: i64,
    finished: i64,
    outcome: StepOutcome,
) -> StepRecord {
    let mut record = StepRecord {
        id: step.id.clone(),
        kind: step.kind.name().to_string(),
        status: StepStatus::Succeeded,
        attempt,
        started_at: started,
        finished_at: finished,
        duration_ms: finished - started,
        input: None,
        output: None,
        output_spilled: false,
        error: None,
        resume_at: None,
    };
    match outcome {
        StepOutcome::Done { input, output } => {
            record.input = input;
            record.output = Some(output);
        }
        StepOutcome::Failed { input, error, retry_after, partial } => {
            record.input = input;
            record.output = partial;
            if error.retryable && attempt < policy.max_attempts {
                record.status = StepStatus::Retrying;
                record.resume_at = Some(finished + step::backoff(&policy, attempt, retry_after).as_millis() as i64);
            } else {
                record.status = StepStatus::Failed;
            }
            record.error = Some(error);
        }
        StepOutcome::Wait { until_ms } => {
            if until_ms > finished {
                record.status = StepStatus::Waiting;
                record.resume_at = Some(until_ms);
            } else {
                record.output = Some(json!({"waited_until": until_ms}));
            }
        }
    }
    record
}

/// Write step checkpoints (concurrently) and fold them into `records` (with full outputs).
async fn checkpoint(
    engine: &Engine,
    exec: &Execution,
    new: Vec<StepRecord>,
    records: &mut HashMap<StepId, StepRecord>,
) -> Result<(), PortError> {
    let writes = new.into_iter().map(|record| write_step_record(&engine.db, exec, record));
    for record in futures::future::try_join_all(writes).await? {
        records.insert(record.id.clone(), record);
    }
    Ok(())
}

fn summaries(records: &HashMap<StepId, StepRecord>, order: &HashMap<StepId, usize>) -> Vec<StepSummary> {
    let mut list: Vec<StepSummary> = records
        .values()
        .map(|r| StepSummary {
            id: r.id.clone(),
            status: r.status,
            attempts: r.attempt,
            duration_ms: (r.status != StepStatus::Skipped).then_some(r.duration_ms),
        })
        .collect();
    list.sort_by_key(|s| order.get(&s.id).copied().unwrap_or(usize::MAX));
    list
}

async fn finish(
    engine: &Engine,
    mut exec: Execution,
    version: u64,
    def: &FlowDefinition,
    records: &HashMap<StepId, StepRecord>,
    order: &HashMap<StepId, usize>,
    status: ExecutionStatus,
) -> Result<Disposition, store::Error> {
    let db = &engine.db;
    let now = engine.now_ms();
    exec.steps = summaries(records, order);
    exec.wake_token = None;
    exec.error = match status {
        ExecutionStatus::Failed => {
            let failed = records.values().filter(|r| r.status == StepStatus::Failed).min_by_key(|r| r.finished_at);
            Some(ExecutionError {
                step: failed.map(|r| r.id.clone()),
                message: failed
                    .and_then(|r| r.error.as_ref())
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "failed".into()),
            })
        }
        // Why it was cancelled, when the platform did it; else the caller's request.
        ExecutionStatus::Cancelled => Some(
            exec.error
                .take()
                .filter(|e| e.step.is_none())
                .unwrap_or_else(|| ExecutionError { step: None, message: "cancelled".into() }),
        ),
        _ => None,
    };
    exec.transition(status, now);
    // Published before the final write: if the write is lost, the redelivered message finishes
    // again and publishes again (at least once, never missing).
    crate::engine::events::publish(engine, &exec.space, Some(&exec.tenant), &[event_for(&exec)]).await?;
    match db.store.put(item(&exec, version + 1), Condition::IfVersion(version)).await {
        Ok(()) => {
            tracing::info!(status = status.as_str(), steps = exec.steps.len(), "execution finished");
            count_storage(engine, &exec, records).await;
            observe(engine, &exec, def, records).await;
            Ok(Disposition::Done)
        }
        // The item changed meanwhile: a cancel request landed after the last step. It came too
        // late to stop anything, so the outcome stands (and matches the event already
        // published: subscribers never see two different endings of one execution).
        Err(PortError::ConditionFailed) => {
            let Some(fresh) = get_execution(db, &exec.space, &exec.tenant, &exec.id).await? else {
                return Ok(Disposition::Done);
            };
            if fresh.execution.status.is_terminal() {
                return Ok(Disposition::Done);
            }
            let mut merged = fresh.execution;
            merged.steps = exec.steps;
            merged.error = exec.error;
            merged.wake_token = None;
            merged.transition(status, now);
            db.store.put(item(&merged, fresh.version + 1), Condition::IfVersion(fresh.version)).await?;
            Ok(Disposition::Done)
        }
        Err(e) => Err(e.into()),
    }
}

/// Count what a finished execution keeps in the store against its tenant's storage quota: its
/// item and its step records (outputs spilled to blobs were counted as blobs). One counter
/// update per execution; a failure is logged (the quota is a measure, not a guard here).
async fn count_storage(engine: &Engine, exec: &Execution, records: &HashMap<StepId, StepRecord>) {
    fn json_len<T: serde::Serialize>(value: &T) -> usize {
        serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0)
    }
    let limit = crate::store::executions::OUTPUT_INLINE_LIMIT;
    let bytes = json_len(exec) + records.values().map(|r| json_len(r).min(limit)).sum::<usize>();
    let owner = crate::store::quotas::Owner::Tenant(&exec.space, &exec.tenant);
    if let Err(e) = crate::store::quotas::add_storage(&engine.db, owner, bytes as u64, None).await {
        tracing::warn!(error = %e, bytes, "storage not counted");
    }
}

/// Report a finished execution to the metrics: its hour's rollup in the store (one write; a
/// failure is logged, the execution stands) and a record for CloudWatch (EMF), with space and
/// tenant as dimensions and the flow as a property, and [space, flow] for per-flow views.
async fn observe(engine: &Engine, exec: &Execution, def: &FlowDefinition, records: &HashMap<StepId, StepRecord>) {
    let failed: Vec<(String, String)> = def
        .steps
        .iter()
        .filter(|s| records.get(&s.id).is_some_and(|r| r.status == StepStatus::Failed))
        .filter_map(|s| match &s.kind {
            crate::domain::flow::StepKind::Action(a) => Some((a.connector.to_string(), a.action.clone())),
            crate::domain::flow::StepKind::Cdm(c) => Some((c.connector.to_string(), format!("cdm.{}", c.entity))),
            crate::domain::flow::StepKind::Http(h) => h.auth.as_ref().map(|c| (c.to_string(), "http".to_string())),
            _ => None,
        })
        .collect();
    if let Err(e) = crate::store::metrics::record_execution(&engine.db, exec, &failed).await {
        tracing::warn!(error = %e, "execution metrics not recorded");
    }
    let duration = exec.finished_at.unwrap_or(exec.updated_at) - exec.created_at;
    let outcome = match exec.status {
        ExecutionStatus::Succeeded => "ExecutionsSucceeded",
        ExecutionStatus::Failed => "ExecutionsFailed",
        _ => "ExecutionsCancelled",
    };
    let mut values = vec![
        ("ExecutionsFinished", MetricUnit::Count, 1.0),
        (outcome, MetricUnit::Count, 1.0),
        ("ExecutionDuration", MetricUnit::Milliseconds, duration.max(0) as f64),
    ];
    if !failed.is_empty() {
        values.push(("StepFailures", MetricUnit::Count, failed.len() as f64));
    }
    engine.metrics.emit(MetricRecord {
        dimension_sets: vec![vec!["space", "tenant"], vec!["space", "flow"]],
        dimensions: vec![
            ("space", exec.space.to_string()),
            ("tenant", exec.tenant.to_string()),
            ("flow", exec.flow.id.to_string()),
        ],
        properties: vec![
            ("execution_id", json!(exec.id)),
            ("status", json!(exec.status)),
            ("failed_steps", json!(failed.iter().map(|(c, a)| format!("{c}.{a}")).collect::<Vec<_>>())),
        ],
        values,
    });
}

/// Stop here and come back at `wake_at` (now, for a continuation).
async fn park(
    engine: &Engine,
    mut exec: Execution,
    version: u64,
    records: &HashMap<StepId, StepRecord>,
    order: &HashMap<StepId, usize>,
    wake_at: i64,
) -> Result<Disposition, store::Error> {
    let now = engine.now_ms();
    let token = format!("{:016x}", rand::random::<u64>());
    let timer = Timer {
        space: exec.space.clone(),
        tenant: exec.tenant.clone(),
        execution_id: exec.id.clone(),
        token: token.clone(),
        due: wake_at,
        start: None,
    };
    runs::resume_at(engine, timer).await?;
    exec.steps = summaries(records, order);
    exec.wake_token = Some(token);
    let status = if wake_at <= now { ExecutionStatus::Running } else { ExecutionStatus::Waiting };
    exec.transition(status, now);
    match engine.db.store.put(item(&exec, version + 1), Condition::IfVersion(version)).await {
        Ok(()) => {
            tracing::info!(wait_ms = (wake_at - now).max(0), "execution parked");
            Ok(Disposition::Done)
        }
        // Changed meanwhile (a cancel request): the new resume message is stale; run again.
        Err(PortError::ConditionFailed) => Ok(Disposition::Retry("execution changed while parking".into())),
        Err(e) => Err(e.into()),
    }
}
