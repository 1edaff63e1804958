//! A tenant's execution metrics and the health of its polls and connections.

use switchyard::domain::ids::FlowId;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, json as json_response};
use switchyard::usecases::observability::{self, Granularity, MetricsQuery};

use crate::Call;
use crate::executions::time;

pub async fn metrics(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let tenant = call.resolved_tenant(tenant).await?;
    let now = call.p.now_ms();
    let q = call.query();
    let query = MetricsQuery {
        // Default: the last 24 hours.
        to_ms: time(&q, "to")?.unwrap_or(now),
        from_ms: time(&q, "from")?.unwrap_or(now - 86_400_000),
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
