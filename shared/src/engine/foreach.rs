//! `foreach`: run a body of steps once per item, at most `concurrency` items at a time.
//!
//! The body is a small DAG planned like a flow (conditions, skips and joins included), with
//! `.item` and `.index` in its context and the body's own outputs under `.steps`. The foreach
//! is checkpointed as one step whose output is, per item, the output of the body's last step.
//! When some items fail, the step's record keeps the finished ones (`partial`) and a retry runs
//! only the rest (a timeout of the whole foreach keeps none: its retry runs every item again,
//! with the same idempotency keys); every call an item makes carries an idempotency key of its
//! own (execution, step, item). Retries are the foreach step's: body steps take no `retry`.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use serde_json::{Map, Value};

use super::plan;
use super::step::{StepFuture, StepOutcome, StepRun};
use crate::domain::execution::{StepError, StepRecord, StepStatus};
use crate::domain::expr::Expr;
use crate::domain::flow::{ForeachStep, StepDef};
use crate::domain::ids::StepId;

/// Most items one foreach step processes.
pub const MAX_ITEMS: usize = 1000;

/// Futures are boxed with their types spelled out: the compiler cannot infer `Send` through the
/// step runner's recursion (a foreach runs steps).
type ItemFuture<'f> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (usize, Result<Value, StepError>)> + Send + 'f>>;
type SubStepFuture<'f> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (&'f StepDef, i64, StepOutcome)> + Send + 'f>>;

/// How a foreach runs its body's steps (the step runner's dispatch, which the foreach is one
/// kind of: passed in so that each knows only the other's signature).
pub type RunStep = for<'a> fn(StepRun<'a>) -> StepFuture<'a>;

pub async fn run(run: &StepRun<'_>, step: &ForeachStep, run_step: RunStep) -> StepOutcome {
    let items = match Expr::compile(&step.items).and_then(|e| e.eval(run.context)) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Null) => Vec::new(),
        Ok(other) => {
            return fail(
                format!("items: expected an array, got {}", crate::domain::expr::type_name(&other)),
                false,
                None,
            );
        }
        Err(e) => return fail(format!("items: expression {e}"), false, None),
    };
    if items.len() > MAX_ITEMS {
        return fail(format!("items: {} items exceed the limit of {MAX_ITEMS}", items.len()), false, None);
    }
    let Some(body) = run.step.foreach_body() else {
        return fail("foreach without a body".into(), false, None);
    };
    // Items a previous attempt finished.
    let mut results: BTreeMap<usize, Value> = run
        .previous_output
        .and_then(|o| o.get("partial"))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.clone()))).collect())
        .unwrap_or_default();
    let pending: Vec<(usize, &Value)> = items.iter().enumerate().filter(|(i, _)| !results.contains_key(i)).collect();
    let body = &body;
    let mut work: Vec<ItemFuture<'_>> = Vec::with_capacity(pending.len());
    for (index, item) in pending {
        work.push(Box::pin(async move { (index, run_item(run, body, index, item, run_step).await) }));
    }
    let outcomes: Vec<(usize, Result<Value, StepError>)> =
        futures::stream::iter(work).buffer_unordered(step.concurrency.max(1) as usize).collect().await;
    let mut errors = Vec::new();
    for (index, outcome) in outcomes {
        match outcome {
            Ok(value) => {
                results.insert(index, value);
            }
            Err(e) => errors.push((index, e)),
        }
    }
    if errors.is_empty() {
        return StepOutcome::Done { input: None, output: Value::Array(results.into_values().collect()) };
    }
    errors.sort_by_key(|(i, _)| *i);
    let retryable = errors.iter().all(|(_, e)| e.retryable);
    let (first_index, first) = &errors[0];
    let message = format!("{} of {} items failed; item {first_index}: {}", errors.len(), items.len(), first.message);
    let partial: Map<String, Value> = results.into_iter().map(|(i, v)| (i.to_string(), v)).collect();
    fail(message, retryable, Some(serde_json::json!({ "partial": partial })))
}

fn fail(message: String, retryable: bool, partial: Option<Value>) -> StepOutcome {
    StepOutcome::Failed {
        input: None,
        error: StepError { message, retryable, status: None },
        retry_after: None,
        partial,
    }
}

/// Run the body for one item; its value is the output of the body's last step.
async fn run_item(
    run: &StepRun<'_>,
    body: &[StepDef],
    index: usize,
    item: &Value,
    run_step: RunStep,
) -> Result<Value, StepError> {
    let mut records: HashMap<StepId, StepRecord> = HashMap::new();
    loop {
        let now = run.engine.now_ms();
        let next = plan::plan(body, &records, now);
        for id in &next.skip {
            let kind = body.iter().find(|s| &s.id == id).map(|s| s.kind.name()).unwrap_or_default();
            records.insert(id.clone(), StepRecord::skipped(id.clone(), kind, now));
        }
        if !next.skip.is_empty() {
            continue;
        }
        if next.run.is_empty() {
            if let Some(failed) = records.values().find(|r| r.status == StepStatus::Failed) {
                return Err(failed.error.clone().unwrap_or(StepError {
                    message: "failed".into(),
                    retryable: false,
                    status: None,
                }));
            }
            let last = body.last().map(|s| &s.id);
            return Ok(last.and_then(|id| records.get(id)).and_then(|r| r.output.clone()).unwrap_or(Value::Null));
        }
        let context = item_context(run.context, &records, index, item);
        let mut batch: Vec<SubStepFuture<'_>> = Vec::new();
        for sub in next.run.iter().filter_map(|id| body.iter().find(|s| &s.id == id)) {
            let context = &context;
            batch.push(Box::pin(async move {
                let started = run.engine.now_ms();
                let outcome = run_step(StepRun {
                    engine: run.engine,
                    execution: run.execution,
                    step: sub,
                    attempt: run.attempt,
                    context,
                    item: Some(index),
                    started_at: None,
                    previous_output: None,
                    timeout: sub.timeout_ms.map(std::time::Duration::from_millis).unwrap_or(run.timeout),
                })
                .await;
                (sub, started, outcome)
            }));
        }
        for (sub, started, outcome) in futures::future::join_all(batch).await {
            let finished = run.engine.now_ms();
            let mut record = StepRecord::skipped(sub.id.clone(), sub.kind.name(), started);
            record.attempt = 1;
            record.finished_at = finished;
            record.duration_ms = finished - started;
            match outcome {
                StepOutcome::Done { output, .. } => {
                    record.status = StepStatus::Succeeded;
                    record.output = Some(output);
                }
                StepOutcome::Failed { error, .. } => {
                    record.status = StepStatus::Failed;
                    record.error = Some(error);
                }
                StepOutcome::Wait { .. } => {
                    record.status = StepStatus::Failed;
                    record.error = Some(StepError {
                        message: "delays are not allowed in a foreach body".into(),
                        retryable: false,
                        status: None,
                    });
                }
            }
            records.insert(sub.id.clone(), record);
        }
    }
}

/// The outer context with the item, its index, and the body's outputs so far under `.steps`.
fn item_context(outer: &Value, records: &HashMap<StepId, StepRecord>, index: usize, item: &Value) -> Value {
    let mut context = outer.clone();
    if let Value::Object(map) = &mut context {
        map.insert("item".into(), item.clone());
        map.insert("index".into(), Value::from(index));
        if let Some(Value::Object(steps)) = map.get_mut("steps") {
            for r in records.values() {
                steps.insert(
                    r.id.to_string(),
                    serde_json::json!({"status": r.status, "output": r.output.clone().unwrap_or(Value::Null)}),
                );
            }
        }
    }
    context
}
