//! Spaces, API keys and tenants.

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard::domain::access::{Role, RoleName};
use switchyard::domain::ids::{ApiKeyId, SpaceId, TenantId};
use switchyard::domain::tenancy::{Plan, TenantStatus, parse_name};
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, json as json_response};
use switchyard::store::tenants as repo;

use crate::{Call, Named, page_response};

fn parse<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, AppError> {
    r.map_err(|e| AppError::bad_request(e.to_string()))
}

fn name_or(name: Option<String>, id: &str) -> Result<String, AppError> {
    parse_name(name.as_deref().unwrap_or(id)).map_err(|m| AppError::bad_request(format!("name {m}")))
}

/// The space in the path must be the caller's (the admin key may name any).
fn own_space(call: &Call<'_>, id: &str) -> Result<SpaceId, AppError> {
    let id = parse(SpaceId::parse(id))?;
    if !call.who.is_platform_admin() && call.who.space.as_ref() != Some(&id) {
        return Err(AppError::not_found(format!("space {id} not found")));
    }
    Ok(id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSpace {
    id: String,
    name: Option<String>,
    #[serde(default)]
    plan: Option<Plan>,
    /// The first owner: an email (invited until they log in) or a subject of the configured
    /// issuer.
    #[serde(default)]
    owner: Option<String>,
}

/// Create a space, and its first owner when the body names one. The space is written first:
/// if the owner's write then fails (a 503), the space exists and the admin key adds the owner
/// with `PUT /members/{owner}`.
pub async fn create_space(call: &Call<'_>) -> Result<Response, AppError> {
    let body: NewSpace = call.body()?;
    let id = parse(SpaceId::parse(&body.id))?;
    let name = name_or(body.name, &body.id)?;
    let owner = body.owner.as_deref().map(|o| crate::access::identity(call, o, None)).transpose()?;
    let space = repo::create_space(call.db(), id, name, body.plan.unwrap_or_default()).await?;
    let mut out = json!(space);
    if let Some(owner) = owner {
        let (member, _) =
            switchyard::store::members::put(call.db(), &space.id, owner, RoleName::BuiltIn(Role::Owner)).await?;
        out["owner"] = json!(member);
    }
    Ok(json_response(201, &out))
}

pub async fn get_space(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let id = own_space(call, id)?;
    let space = repo::require_space(call.db(), &id).await?;
    Ok(json_response(200, &json!({"space": space, "quotas": space.plan.quotas()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpacePatch {
    plan: Plan,
}

pub async fn update_space(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    // Plans are the operator's to set, not the customer's.
    let id = own_space(call, id)?;
    let patch: SpacePatch = call.body()?;
    Ok(json_response(200, &json!(repo::update_space_plan(call.db(), &id, patch.plan).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: Role,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    /// Epoch milliseconds.
    #[serde(default)]
    expires_at: Option<i64>,
}

fn key_json(record: &switchyard::domain::access::ApiKeyRecord) -> Value {
    let mut v = json!(record);
    if let Value::Object(m) = &mut v {
        m.remove("key_hash");
    }
    v
}

pub async fn create_key(call: &Call<'_>) -> Result<Response, AppError> {
    let body: NewKey = call.body()?;
    let role = RoleName::BuiltIn(body.role);
    if !call.who.may_grant(&role, body.role.grants()) {
        return Err(AppError::Forbidden(format!("your role may not create keys with role {role}")));
    }
    let space = call.space()?;
    let name = name_or(Some(body.name), "")?;
    let tenant = body.tenant.map(|t| parse(TenantId::parse(t))).transpose()?;
    if let Some(tools) = &body.tools {
        if tools.len() > 500 || tools.iter().any(|t| t.is_empty() || t.chars().count() > 128) {
            return Err(AppError::bad_request("tools: up to 500 tool names of 1 to 128 characters"));
        }
    }
    let (record, key) =
        repo::create_api_key(call.db(), &space, name, body.role, tenant, body.tools, body.expires_at).await?;
    let mut out = key_json(&record);
    // The only time the key is ever shown.
    out["key"] = json!(key);
    Ok(json_response(201, &out))
}

pub async fn list_keys(call: &Call<'_>) -> Result<Response, AppError> {
    let keys = repo::list_api_keys(call.db(), &call.space()?).await?;
    Ok(page_response(keys.iter().map(key_json).collect(), None))
}

pub async fn revoke_key(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let id = parse(ApiKeyId::parse(id))?;
    repo::revoke_api_key(call.db(), &call.space()?, &id).await?;
    Ok(switchyard::runtime::http::empty(204))
}

pub async fn create_tenant(call: &Call<'_>) -> Result<Response, AppError> {
    let body: Named = call.body()?;
    let id = parse(TenantId::parse(&body.id))?;
    let name = name_or(body.name, &body.id)?;
    let tenant = repo::create_tenant(call.db(), &call.space()?, id, name, body.plan).await?;
    Ok(json_response(201, &json!(tenant)))
}

pub async fn list_tenants(call: &Call<'_>) -> Result<Response, AppError> {
    let space = call.space()?;
    if call.who.is_tenant_bound() {
        // A tenant key sees its own tenant only.
        let own = call.who.tenant.clone().ok_or_else(|| AppError::Forbidden("tenant key without tenant".into()))?;
        let tenant = repo::require_tenant(call.db(), &space, &own).await?;
        return Ok(page_response(vec![json!(tenant)], None));
    }
    let (limit, cursor) = call.page()?;
    let (tenants, next) = repo::list_tenants(call.db(), &space, limit, cursor).await?;
    Ok(page_response(tenants.iter().map(|t| json!(t)).collect(), next))
}

pub async fn get_tenant(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(id).await?;
    Ok(json_response(200, &json!(repo::require_tenant(call.db(), &space, &tenant).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    status: TenantStatus,
}

pub async fn update_tenant(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(id).await?;
    let patch: TenantPatch = call.body()?;
    Ok(json_response(200, &json!(repo::set_tenant_status(call.db(), &space, &tenant, patch.status).await?)))
}

pub async fn delete_tenant(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(id).await?;
    repo::delete_tenant(call.db(), &space, &tenant).await?;
    Ok(switchyard::runtime::http::empty(204))
}

fn config_body(call: &Call<'_>) -> Result<serde_json::Map<String, Value>, AppError> {
    match call.body::<Value>()? {
        Value::Object(map) => Ok(map),
        _ => Err(AppError::bad_request("the configuration is a JSON object")),
    }
}

/// The space's configuration level, and what it resolves to with the platform defaults.
pub async fn get_space_config(call: &Call<'_>) -> Result<Response, AppError> {
    let space = repo::require_space(call.db(), &call.space()?).await?;
    let effective = switchyard::domain::config::cascade(&[&call.db().deployment.platform_config, &space.config]);
    Ok(json_response(200, &json!({"config": space.config, "effective": effective})))
}

pub async fn put_space_config(call: &Call<'_>) -> Result<Response, AppError> {
    let space = repo::set_space_config(call.db(), &call.space()?, config_body(call)?).await?;
    Ok(json_response(200, &json!({"config": space.config})))
}

pub async fn get_tenant_config(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(id).await?;
    let space = repo::require_space(call.db(), &space).await?;
    let tenant = repo::require_tenant(call.db(), &space.id, &tenant).await?;
    let platform = &call.db().deployment.platform_config;
    let effective = switchyard::domain::config::cascade(&[platform, &space.config, &tenant.config]);
    Ok(json_response(200, &json!({"config": tenant.config, "effective": effective})))
}

pub async fn put_tenant_config(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(id).await?;
    let tenant = repo::set_tenant_config(call.db(), &space, &tenant, config_body(call)?).await?;
    Ok(json_response(200, &json!({"config": tenant.config})))
}
