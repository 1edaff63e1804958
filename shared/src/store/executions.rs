//! Executions and their step checkpoints in the store.

use serde_json::{Value, json};

use super::{Db, Error};
use crate::domain::execution::{Execution, ExecutionStatus, StepRecord, StepStatus};
use crate::domain::ids::{ExecutionId, FlowId, SpaceId, TenantId};
use crate::ports::{Condition, Item, Key, MAX_TRANSACTION_OPS, PortError, Query, WriteOp, cursor, query_all};
use crate::store::keys;

/// An execution with the version of its stored item (for optimistic updates).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredExecution {
    pub execution: Execution,
    pub version: u64,
}

pub async fn get_execution(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    id: &ExecutionId,
) -> Result<Option<StoredExecution>, Error> {
    Ok(db
        .store
        .get(&keys::execution(space, tenant, id))
        .await?
        .map(|item: Item| Ok::<_, Error>(StoredExecution { execution: item.parse()?, version: item.version }))
        .transpose()?)
}

/// Step checkpoints of an execution, in step-id order.
pub async fn get_steps(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    id: &ExecutionId,
) -> Result<Vec<StepRecord>, Error> {
    let items = query_all(
        db.store.as_ref(),
        Query::prefix(keys::execution_steps_pk(space, tenant, id), keys::STEP_PREFIX),
        2000,
    )
    .await?;
    Ok(items.iter().map(|i| i.parse()).collect::<Result<Vec<_>, _>>()?)
}

/// Filters of the execution listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFilter {
    pub flow: Option<FlowId>,
    pub status: Option<ExecutionStatus>,
    /// Created at or after (epoch ms).
    pub since: Option<i64>,
    /// Created before (epoch ms).
    pub until: Option<i64>,
}

impl ExecutionFilter {
    fn matches(&self, e: &Execution) -> bool {
        self.flow.as_ref().is_none_or(|f| f == &e.flow.id)
            && self.status.is_none_or(|s| s == e.status)
            && self.since.is_none_or(|t| e.created_at >= t)
            && self.until.is_none_or(|t| e.created_at < t)
    }
}

/// Most items examined for one page of a filtered listing; past it the page ends early with a
/// cursor, so a rare filter never turns into an unbounded scan.
const MAX_SCANNED: usize = 2000;

/// Executions, newest first. Execution ids are ULIDs, so the sort key order is time order and
/// `until` becomes the starting point of the scan and `since` its end.
pub async fn list_executions(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    filter: &ExecutionFilter,
    limit: u32,
    after: Option<String>,
) -> Result<(Vec<Execution>, Option<String>), Error> {
    let limit = limit.clamp(1, 200) as usize;
    let mut next = match (after, filter.until) {
        (Some(c), _) => Some(c),
        (None, Some(until)) => {
            // The smallest id at `until`: everything before it was created earlier.
            let bound = ulid::Ulid::from_parts(until.max(0) as u64, 0);
            Some(cursor::encode(&format!("{}ex_{bound}", keys::EXECUTION_PREFIX)))
        }
        (None, None) => None,
    };
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let query = Query::prefix(keys::tenant_pk(space, tenant), keys::EXECUTION_PREFIX)
            .descending()
            .limit(100)
            .after(next.take());
        let page = db.store.query(&query).await?;
        for item in &page.items {
            scanned += 1;
            let execution: Execution = item.parse()?;
            if filter.since.is_some_and(|t| execution.created_at < t) {
                return Ok((found, None));
            }
            if filter.matches(&execution) {
                found.push(execution);
                if found.len() == limit {
                    return Ok((found, Some(cursor::encode(&item.key.sk))));
                }
            }
            if scanned >= MAX_SCANNED {
                return Ok((found, Some(cursor::encode(&item.key.sk))));
            }
        }
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok((found, None)),
        }
    }
}

/// The API view of an execution: everything but the (possibly large) input.
pub fn summary_json(e: &Execution) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.remove("input");
    }
    v
}

// Step checkpoints: written once per attempt outcome (the engine's driver decides when).

/// Outputs larger than this are stored as blobs; the checkpoint keeps a reference.
pub const OUTPUT_INLINE_LIMIT: usize = 64 * 1024;

/// Store one step record: an output over `OUTPUT_INLINE_LIMIT` goes to a blob (the record keeps
/// a reference); a record still too large for the store keeps its outcome but fails the step.
/// Returns the record as it now stands, with its full output.
pub async fn write_step_record(db: &Db, exec: &Execution, record: StepRecord) -> Result<StepRecord, PortError> {
    let key = keys::execution_step(&exec.space, &exec.tenant, &exec.id, &record.id);
    // Every stored document stays within the platform's depth (domain::json), or it could not
    // be read back: a deeper output fails the step, a deeper input is left out of the record.
    let record = within_depth(record);
    let mut stored = record.clone();
    if let Some(output) = &record.output {
        let size = serde_json::to_string(output).map(|t| t.len()).unwrap_or(0);
        if size > OUTPUT_INLINE_LIMIT {
            match super::blobs::put(db, &exec.space, &exec.tenant, output).await {
                Ok(blob) => {
                    stored.output = Some(json!({ "$blob": blob }));
                    stored.output_spilled = true;
                }
                Err(PortError::Rejected(why)) => return Ok(too_large(record, &why.to_string())),
                Err(e) => return Err(e),
            }
        }
    }
    let value = serde_json::to_value(&stored).unwrap_or(Value::Null);
    match db.store.put(Item::new(key.clone(), value), Condition::None).await {
        Ok(()) => Ok(record),
        // Still too large (a huge input): keep the outcome visible, fail the step.
        Err(PortError::Rejected(why)) => {
            let trimmed = too_large(record, &why.to_string());
            let value = serde_json::to_value(&trimmed).unwrap_or(Value::Null);
            db.store.put(Item::new(key, value), Condition::None).await.map(|()| trimmed)
        }
        Err(e) => Err(e),
    }
}

fn within_depth(mut record: StepRecord) -> StepRecord {
    use crate::domain::json;
    if record.input.as_ref().is_some_and(|v| json::check_value(v).is_err()) {
        record.input = None;
    }
    if record.output.as_ref().is_some_and(|v| json::check_value(v).is_err()) {
        tracing::info!(step = %record.id, "step output nested too deeply; the step fails");
        record.output = None;
        record.status = StepStatus::Failed;
        record.resume_at = None;
        record.error = Some(crate::domain::execution::StepError {
            message: format!("step output nested deeper than {} levels", json::MAX_DEPTH),
            retryable: false,
            status: None,
        });
    }
    record
}

fn too_large(mut record: StepRecord, detail: &str) -> StepRecord {
    tracing::warn!(step = %record.id, %detail, "step record too large; stored without input and output");
    record.output = None;
    record.input = None;
    record.output_spilled = false;
    record.status = StepStatus::Failed;
    record.error = Some(crate::domain::execution::StepError {
        message: "step output too large to store".into(),
        retryable: false,
        status: None,
    });
    record
}

/// Step records as stored, with spilled outputs read back.
pub async fn load_records(db: &Db, exec: &Execution) -> Result<Vec<StepRecord>, Error> {
    let mut records = get_steps(db, &exec.space, &exec.tenant, &exec.id).await?;
    for record in records.iter_mut().filter(|r| r.output_spilled) {
        if let Some(output) = &record.output {
            record.output = Some(super::blobs::resolve(db, &exec.space, &exec.tenant, output).await?);
        }
    }
    Ok(records)
}

/// Copy the steps of `from` that finished (succeeded or skipped) to `to`, as they are
/// (spilled outputs keep their blobs): a re-run from the failed step starts with them.
pub async fn copy_finished_steps(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    from: &ExecutionId,
    to: &ExecutionId,
) -> Result<(), Error> {
    let items = query_all(
        db.store.as_ref(),
        Query::prefix(keys::execution_steps_pk(space, tenant, from), keys::STEP_PREFIX),
        2000,
    )
    .await?;
    let kept: Vec<Item> = items
        .into_iter()
        .filter(|i| matches!(i.data.get("status").and_then(Value::as_str), Some("succeeded" | "skipped")))
        .map(|i| Item::new(Key::new(keys::execution_steps_pk(space, tenant, to), i.key.sk.clone()), i.data))
        .collect();
    for chunk in kept.chunks(MAX_TRANSACTION_OPS) {
        let ops = chunk.iter().map(|item| WriteOp::Put { item: item.clone(), condition: Condition::None }).collect();
        db.store.transact(ops).await?;
    }
    Ok(())
}
