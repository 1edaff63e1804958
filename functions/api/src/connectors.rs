//! The connector catalog and a tenant's connectors.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchyard::domain::access::Permission;
use switchyard::domain::connector::{ConnectorSpec, HmacConfig, SchemeKind};
use switchyard::platform::connections;
use switchyard::platform::error::AppError;
use switchyard::platform::http::{Response, json as json_response};

use crate::{Call, page_response, require};

/// The catalog entry as the API shows it (no mapping internals).
fn summary(spec: &ConnectorSpec) -> Value {
    json!({
        "id": spec.id, "name": spec.name, "description": spec.description, "docs_url": spec.docs_url,
        "auth": spec.auth.kind(),
        "settings": spec.settings,
        "webhook": spec.webhook.as_ref().map(|w| json!({"scheme": w.scheme, "events": w.events})),
        "actions": spec.actions.iter().map(|a| json!({
            "id": a.id, "title": a.title, "description": a.description, "input_schema": a.input_schema,
            "output_schema": a.output_schema, "hints": a.hints,
        })).collect::<Vec<_>>(),
        "resources": spec.resources.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "cdm": spec.cdm.iter().map(|m| &m.entity).collect::<Vec<_>>(),
    })
}

fn spec<'c>(call: &Call<'c>, id: &str) -> Result<&'c ConnectorSpec, AppError> {
    call.p.catalog.find(id).ok_or_else(|| AppError::not_found(format!("connector {id} not found")))
}

pub async fn catalog(call: &Call<'_>) -> Result<Response, AppError> {
    require(call, Permission::ConnectorsRead)?;
    Ok(page_response(call.p.catalog.all().map(summary).collect(), None))
}

pub async fn catalog_entry(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    require(call, Permission::ConnectorsRead)?;
    Ok(json_response(200, &summary(spec(call, id)?)))
}

pub async fn list(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    require(call, Permission::ConnectorsRead)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let all = connections::list_settings(call.p, &space, &tenant).await?;
    Ok(page_response(all.iter().map(|s| json!(s)).collect(), None))
}

pub async fn get(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    require(call, Permission::ConnectorsRead)?;
    let spec = spec(call, connector)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let settings = connections::get_settings(call.p, &space, &tenant, &spec.id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("connector {} is not set up for this tenant", spec.id)))?;
    Ok(json_response(200, &json!(settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorPut {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    settings: Map<String, Value>,
    #[serde(default)]
    hmac: Option<HmacConfig>,
}

fn yes() -> bool {
    true
}

pub async fn put(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    require(call, Permission::ConnectorsWrite)?;
    let spec = spec(call, connector)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let body: ConnectorPut = call.body()?;
    connections::validate_settings(spec, &body.settings)?;
    if body.hmac.is_some() && spec.webhook.as_ref().map(|w| w.scheme) != Some(SchemeKind::Hmac) {
        return Err(AppError::bad_request(format!("connector {} does not use the generic hmac scheme", spec.id)));
    }
    let settings = connections::update_settings(call.p, &space, &tenant, &spec.id, |s| {
        s.enabled = body.enabled;
        s.settings = body.settings.clone();
        if body.hmac.is_some() {
            s.hmac = body.hmac.clone();
        }
    })
    .await?;
    Ok(json_response(200, &json!(settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretPut {
    secret: String,
}

pub async fn put_webhook_secret(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    require(call, Permission::CredentialsWrite)?;
    let spec = spec(call, connector)?;
    if spec.webhook.is_none() {
        return Err(AppError::bad_request(format!("connector {} does not send webhooks", spec.id)));
    }
    let (space, tenant) = call.tenant(tenant).await?;
    let body: SecretPut = call.body()?;
    let settings = connections::set_webhook_secret(call.p, &space, &tenant, &spec.id, &body.secret).await?;
    Ok(json_response(200, &json!(settings)))
}
