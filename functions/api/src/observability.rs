//! A tenant's execution metrics and the health of its polls and connections.

use switchyard::domain::ids::FlowId;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, json as json_response};
use switchyard::usecases::observability::{self, Granularity, MetricsQuery};

use crate::Call;

/// `from` and `to` as epoch milliseconds or RFC 3339 (default: the last 24 hours).
fn instant(call: &Call<'_>, name: &str, default: i64) -> Result<i64, AppError> {
    match call.query().get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .or_else(|| chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.timestamp_millis()))
            .ok_or_else(|| AppError::bad_request(format!("{name} must be epoch milliseconds or an RFC 3339 time"))),
    }
}

pub async fn metrics(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let tenant = call.resolved_tenant(tenant).await?;
    let now = call.p.now_ms();
    let q = call.query();
    let query = MetricsQuery {
        to_ms: instant(call, "to", now)?,
        from_ms: instant(call, "from", now - 86_400_000)?,
        flow: q
            .get("flow")
            .map(|f| FlowId::parse(f.as_str()).map_err(|e| AppError::bad_request(e.to_string())))
            .transpose()?,
        granularity: match q.get("granularity") {
            None => Granularity::Hour,
            Some(g) => Granularity::parse(g).ok_or_else(|| AppError::bad_request("granularity is hour or day"))?,
        },
    };
    Ok(json_response(200, &observability::tenant_metrics(call.engine(), &tenant, &query).await?))
}

pub async fn health(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let tenant = call.resolved_tenant(tenant).await?;
    Ok(json_response(200, &observability::tenant_health(call.engine(), &tenant).await?))
}
