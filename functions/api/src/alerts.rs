//! A space's alert rules, their events and the secret their webhooks are signed with.

use serde_json::{Value, json};
use switchyard::domain::alerts::AlertRule;
use switchyard::domain::ids::AlertId;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, empty, json as json_response};
use switchyard::store::alerts::{self as repo, StoredRule};

use crate::{Call, page_response};

fn rule_json(stored: &StoredRule) -> Value {
    let mut out = json!(stored.rule);
    out["id"] = json!(stored.id);
    out["state"] = json!(stored.state);
    out["updated_at"] = json!(stored.updated_at);
    out
}

/// A rule's id (`events` and `signing-secret` never reach here: the router keeps them).
fn alert_id(id: &str) -> Result<AlertId, AppError> {
    AlertId::parse(id).map_err(|e| AppError::bad_request(e.to_string()))
}

pub async fn list(call: &Call<'_>) -> Result<Response, AppError> {
    let rules = repo::list(call.db(), &call.space()?).await?;
    Ok(page_response(rules.iter().map(|(r, _)| rule_json(r)).collect(), None))
}

pub async fn put(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let id = alert_id(id)?;
    let space = call.space()?;
    let rule: AlertRule = call.body()?;
    rule.validate().map_err(|m| AppError::invalid("invalid_alert", m, Value::Null))?;
    if let Some(tenant) = &rule.tenant {
        switchyard::store::tenants::require_tenant(call.db(), &space, tenant).await?;
    }
    if rule.webhook_url.is_some() && repo::signing_secret(call.db(), &space).await?.is_none() {
        return Err(AppError::invalid(
            "invalid_alert",
            "set the space's alert signing secret first (PUT /api/v1/alerts/signing-secret)",
            Value::Null,
        ));
    }
    let (stored, created) = repo::put(call.db(), &space, id, rule).await?;
    Ok(json_response(if created { 201 } else { 200 }, &rule_json(&stored)))
}

pub async fn delete(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    repo::delete(call.db(), &call.space()?, &alert_id(id)?).await?;
    Ok(empty(204))
}

pub async fn events(call: &Call<'_>) -> Result<Response, AppError> {
    let (limit, cursor) = call.page()?;
    let (events, next) = repo::events(call.db(), &call.space()?, limit, cursor).await?;
    Ok(page_response(events.iter().map(|e| json!(e)).collect(), next))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretPut {
    secret: String,
}

pub async fn put_signing_secret(call: &Call<'_>) -> Result<Response, AppError> {
    let body: SecretPut = call.body()?;
    repo::set_signing_secret(call.db(), &call.space()?, &body.secret).await?;
    Ok(empty(204))
}
