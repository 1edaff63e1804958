//! Execution metrics rolled up in the store: one item per tenant, hour and flow
//! (`M#{YYYY-MM-DDTHH}#{flow}` in the tenant's partition), to which each finished execution
//! adds its fields in one `add_fields` write. Kept 90 days. A day's rollups of every flow are
//! one prefix query, so a range of days is one query per day.

use chrono::{TimeZone, Utc};

use super::{Db, Error};
use crate::domain::execution::Execution;
use crate::domain::ids::{FlowId, SpaceId, TenantId};
use crate::domain::metrics::{Rollup, execution_fields};
use crate::ports::{Key, Query, query_all};
use crate::store::keys;

/// How long rollups are kept.
pub const RETENTION_SECS: i64 = 90 * 86_400;
/// Longest range one read covers.
pub const MAX_RANGE_DAYS: i64 = 31;

const PREFIX: &str = "M#";

fn hour_label(at_ms: i64) -> String {
    Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default().format("%Y-%m-%dT%H").to_string()
}

/// Add a finished execution to the rollup of the hour it finished in.
pub async fn record_execution(db: &Db, execution: &Execution, failed_steps: &[(String, String)]) -> Result<(), Error> {
    let finished = execution.finished_at.unwrap_or_else(|| db.now_ms());
    let key = Key::new(
        keys::tenant_pk(&execution.space, &execution.tenant),
        format!("{PREFIX}{}#{}", hour_label(finished), execution.flow.id),
    );
    let fields = execution_fields(execution.status, finished - execution.created_at, failed_steps);
    db.store.add_fields(&key, &fields, Some(finished / 1000 + RETENTION_SECS)).await?;
    Ok(())
}

/// One hour's rollup of one flow.
#[derive(Debug, Clone, PartialEq)]
pub struct HourRollup {
    /// Start of the hour (epoch ms).
    pub hour: i64,
    pub flow: String,
    pub rollup: Rollup,
}

/// The rollups of the hours that start in `[from_ms, to_ms)`, optionally of one flow, oldest
/// first.
pub async fn read(
    db: &Db,
    space: &SpaceId,
    tenant: &TenantId,
    from_ms: i64,
    to_ms: i64,
    flow: Option<&FlowId>,
) -> Result<Vec<HourRollup>, Error> {
    let pk = keys::tenant_pk(space, tenant);
    let first_day = from_ms.div_euclid(86_400_000);
    let last_day = to_ms.saturating_sub(1).div_euclid(86_400_000);
    let mut out = Vec::new();
    for day in first_day..=last_day.min(first_day + MAX_RANGE_DAYS) {
        let label = Utc.timestamp_millis_opt(day * 86_400_000).single().unwrap_or_default().format("%Y-%m-%d");
        let items =
            query_all(db.store.as_ref(), Query::prefix(pk.clone(), format!("{PREFIX}{label}T")), 24 * 1000).await?;
        for item in items {
            let Some(rest) = item.key.sk.strip_prefix(PREFIX) else { continue };
            let Some((hour, flow_id)) = rest.split_once('#') else { continue };
            let Ok(start) = chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00:00"), "%Y-%m-%dT%H:%M:%S") else {
                continue;
            };
            let hour_ms = start.and_utc().timestamp_millis();
            if hour_ms < from_ms.saturating_sub(3_599_999)
                || hour_ms >= to_ms
                || flow.is_some_and(|f| f.as_str() != flow_id)
            {
                continue;
            }
            let rollup = match &item.data {
                serde_json::Value::Object(fields) => Rollup::from_fields(fields),
                _ => Rollup::default(),
            };
            out.push(HourRollup { hour: hour_ms, flow: flow_id.to_string(), rollup });
        }
    }
    out.sort_by(|a, b| (a.hour, &a.flow).cmp(&(b.hour, &b.flow)));
    Ok(out)
}
