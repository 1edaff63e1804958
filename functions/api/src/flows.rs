//! Flows: space-wide (`/workflows`, run for every tenant) and tenant-owned
//! (`/tenants/{id}/workflows`). Definitions are JSON or YAML; every change is a new version.

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard::domain::flow::FlowDefinition;
use switchyard::domain::flow::FlowOwner;
use switchyard::domain::ids::FlowId;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, empty, header, json as json_response, with_quota_warnings};
use switchyard::store::flows::{self as repo, FlowStatus};
use switchyard::usecases::quotas;

use crate::{Call, page_response};

async fn owner(call: &Call<'_>, tenant: Option<&str>) -> Result<FlowOwner, AppError> {
    match tenant {
        Some(t) => {
            let (space, tenant) = call.tenant(t).await?;
            Ok(FlowOwner::Tenant { space, tenant })
        }
        None => Ok(FlowOwner::Space { space: call.space()? }),
    }
}

fn flow_id(id: &str) -> Result<FlowId, AppError> {
    FlowId::parse(id).map_err(|e| AppError::bad_request(e.to_string()))
}

/// The definition in the body: JSON, or YAML with a YAML content type.
fn definition_body(call: &Call<'_>) -> Result<Value, AppError> {
    let media = header(&call.req, "content-type")
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if matches!(media.as_str(), "application/yaml" | "application/x-yaml" | "text/yaml") {
        if call.req.body().len() > switchyard::runtime::http::MAX_JSON_BODY {
            return Err(AppError::PayloadTooLarge("definition too large".into()));
        }
        let text = std::str::from_utf8(call.req.body()).map_err(|_| AppError::bad_request("YAML body is not UTF-8"))?;
        let value = serde_saphyr::from_str::<Value>(text).map_err(|e| {
            AppError::invalid("invalid_body", format!("invalid YAML body: {}", first_line(&e.to_string())), Value::Null)
        })?;
        switchyard::domain::json::check_value(&value)
            .map_err(|e| AppError::invalid(e.code(), format!("invalid YAML body: {e}"), Value::Null))?;
        return Ok(value);
    }
    call.body()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn parse_definition(call: &Call<'_>, mut value: Value) -> Result<(Option<FlowId>, FlowDefinition), AppError> {
    let id = match value.as_object_mut().and_then(|m| m.remove("id")) {
        None => None,
        Some(Value::String(s)) => Some(flow_id(&s)?),
        Some(_) => return Err(AppError::bad_request("id must be a string")),
    };
    let definition = FlowDefinition::parse(&value, call.engine().catalog)
        .map_err(|e| AppError::invalid("invalid_flow", e.to_string(), json!({"step": e.step, "field": e.field})))?;
    Ok((id, definition))
}

pub async fn create(call: &Call<'_>, tenant: Option<&str>) -> Result<Response, AppError> {
    let owner = owner(call, tenant).await?;
    let (id, definition) = parse_definition(call, definition_body(call)?)?;
    let (record, notice) = repo::create_flow(call.db(), owner, id, &definition).await?;
    let (space, tenant) = match &record.owner {
        FlowOwner::Tenant { space, tenant } => (space, Some(tenant)),
        FlowOwner::Space { space } => (space, None),
    };
    quotas::publish_notices(call.engine(), space, tenant, &notice).await;
    Ok(with_quota_warnings(json_response(201, &json!(record)), notice.as_slice()))
}

pub async fn list(call: &Call<'_>, tenant: Option<&str>) -> Result<Response, AppError> {
    let owner = owner(call, tenant).await?;
    let (limit, cursor) = call.page()?;
    let (flows, next) = repo::list_flows(call.db(), &owner, limit, cursor).await?;
    Ok(page_response(flows.iter().map(|f| json!(f)).collect(), next))
}

/// The flow as it is now, or with `?version=N` as it was at that version (status and owner are
/// the flow's; `current_version` says which is newest). Every version is kept: runs pin one.
pub async fn get(call: &Call<'_>, tenant: Option<&str>, id: &str) -> Result<Response, AppError> {
    let owner = owner(call, tenant).await?;
    let id = flow_id(id)?;
    let flow = repo::get_flow(call.db(), &owner, &id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("flow {id} not found")))?;
    let Some(asked) = call.query().get("version").cloned() else {
        return Ok(json_response(200, &json!(flow)));
    };
    let version = asked
        .parse::<u32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| AppError::bad_request("version must be a positive integer"))?;
    let old = repo::get_flow_version(call.db(), &owner, &id, version)
        .await?
        .ok_or_else(|| AppError::not_found(format!("flow {id} has no version {version}")))?;
    let mut out = json!(flow);
    out["current_version"] = json!(flow.version);
    out["version"] = json!(old.version);
    // When this version was saved; `created_at` stays the flow's.
    out["updated_at"] = json!(old.created_at);
    out["name"] = old.definition.get("name").cloned().unwrap_or(out["name"].clone());
    out["trigger"] = old.definition.get("trigger").cloned().unwrap_or(out["trigger"].clone());
    out["definition"] = old.definition.clone();
    Ok(json_response(200, &out))
}

pub async fn update(call: &Call<'_>, tenant: Option<&str>, id: &str) -> Result<Response, AppError> {
    let owner = owner(call, tenant).await?;
    let id = flow_id(id)?;
    let (_, definition) = parse_definition(call, definition_body(call)?)?;
    // `If-Match: <version>` makes the update conditional on the version the caller read.
    let expected = header(&call.req, "if-match")
        .map(|v| {
            v.trim_matches('"')
                .parse::<u32>()
                .map_err(|_| AppError::bad_request("If-Match must be a flow version number"))
        })
        .transpose()?;
    let record = repo::update_flow(call.db(), &owner, &id, &definition, expected).await?;
    Ok(json_response(200, &json!(record)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusPatch {
    status: FlowStatus,
}

pub async fn set_status(call: &Call<'_>, tenant: Option<&str>, id: &str) -> Result<Response, AppError> {
    let owner = owner(call, tenant).await?;
    let id = flow_id(id)?;
    let patch: StatusPatch = call.body()?;
    Ok(json_response(200, &json!(repo::set_flow_status(call.db(), &owner, &id, patch.status).await?)))
}

pub async fn delete(call: &Call<'_>, tenant: Option<&str>, id: &str) -> Result<Response, AppError> {
    let owner = owner(call, tenant).await?;
    repo::delete_flow(call.db(), &owner, &flow_id(id)?).await?;
    Ok(empty(204))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunPost {
    #[serde(default)]
    input: Value,
}

/// Start a run now (`Idempotency-Key` makes a retried request start it once).
pub async fn run(call: &Call<'_>, tenant: &str, id: &str) -> Result<Response, AppError> {
    let resolved = call.active_tenant(tenant).await?;
    let id = flow_id(id)?;
    let flow = repo::find_flow_for_tenant(call.db(), &resolved, &id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("flow {id} not found")))?;
    if flow.status != FlowStatus::Active {
        return Err(AppError::Conflict(format!("flow {id} is paused")));
    }
    let body: RunPost = if call.req.body().is_empty() { RunPost::default() } else { call.body()? };
    let key = header(&call.req, "idempotency-key").map(str::to_string);
    if key.as_ref().is_some_and(|k| k.len() > 255) {
        return Err(AppError::bad_request("Idempotency-Key must be at most 255 characters"));
    }
    let trigger = switchyard::domain::execution::TriggerInfo::manual();
    let input = json!({"input": body.input});
    let id = switchyard::domain::ids::ExecutionId::generate(call.p.now_ms());
    let started =
        quotas::start_counted(call.engine(), &resolved, flow.pinned(), trigger, input, key.as_deref(), id).await?;
    let mut out = json!({"execution_id": started.execution_id, "flow_id": flow.id, "flow_version": flow.version});
    if let Some(at) = started.queued_until {
        out["status"] = json!("queued");
        out["queued_until"] = json!(at);
    }
    Ok(with_quota_warnings(json_response(202, &out), &started.notices))
}
