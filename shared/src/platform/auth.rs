//! Who is calling: API keys in `x-fastn-api-key` (or `Authorization: Bearer`), scoped by
//! `x-fastn-space-id` and `x-fastn-space-tenantid`, as in the seed's API.

use subtle::ConstantTimeEq;

use super::error::AppError;
use super::http::{Request, header, header_text};
use super::{AdminKeySource, Platform, tenancy};
use crate::domain::access::{Permission, Role};
use crate::domain::ids::{ApiKeyId, SpaceId, TenantId};

pub const API_KEY_HEADER: &str = "x-fastn-api-key";
pub const SPACE_HEADER: &str = "x-fastn-space-id";
pub const TENANT_HEADER: &str = "x-fastn-space-tenantid";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub role: Role,
    /// The space acted on: the key's own, or for the admin key the one in the space header.
    pub space: Option<SpaceId>,
    /// For tenant keys, the only tenant they may act for; otherwise the tenant header, if any.
    pub tenant: Option<TenantId>,
    pub key_id: Option<ApiKeyId>,
    /// MCP tools this key may use (all when `None`).
    pub tools: Option<Vec<String>>,
}

impl Principal {
    pub fn require(&self, permission: Permission) -> Result<(), AppError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("this API key's role may not {}", permission_text(permission))))
        }
    }

    /// The space the request acts on.
    pub fn space(&self) -> Result<&SpaceId, AppError> {
        self.space.as_ref().ok_or_else(|| AppError::bad_request(format!("the {SPACE_HEADER} header is required")))
    }

    /// Refuse a tenant-bound key acting for another tenant. The refusal is a 404, the same as
    /// for a tenant that does not exist, so keys cannot probe for other tenants.
    pub fn check_tenant(&self, tenant: &TenantId) -> Result<(), AppError> {
        if self.role == Role::Tenant && self.tenant.as_ref() != Some(tenant) {
            return Err(AppError::not_found(format!("tenant {tenant} not found")));
        }
        Ok(())
    }

    /// The tenant named by the request (path, else header), checked against the key.
    pub fn tenant_from(&self, from_path: Option<&str>) -> Result<TenantId, AppError> {
        let text = from_path.map(str::to_string).or_else(|| self.tenant.as_ref().map(ToString::to_string)).ok_or_else(
            || AppError::bad_request(format!("name the tenant in the path or the {TENANT_HEADER} header")),
        )?;
        let tenant = TenantId::parse(text).map_err(|e| AppError::bad_request(e.to_string()))?;
        self.check_tenant(&tenant)?;
        Ok(tenant)
    }
}

fn permission_text(p: Permission) -> String {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

/// The key presented, from `x-fastn-api-key` or a bearer token.
/// The API key the request presents, if any; a key header that is not text is refused as
/// such (it is not "missing").
fn presented_key(req: &Request) -> Result<Option<&str>, AppError> {
    let unreadable = |_| AppError::Unauthorized(format!("the {API_KEY_HEADER} header is not valid text"));
    if let Some(key) = header_text(req, API_KEY_HEADER).map_err(unreadable)? {
        return Ok(Some(key));
    }
    let unreadable = |_| AppError::Unauthorized("the Authorization header is not valid text".into());
    Ok(header_text(req, "authorization")
        .map_err(unreadable)?
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim))
}

pub(crate) async fn admin_key(p: &Platform) -> Result<Option<String>, AppError> {
    match &p.settings.admin_key {
        AdminKeySource::Value(v) => Ok(Some(v.clone())),
        AdminKeySource::None => Ok(None),
        AdminKeySource::Secret(id) => {
            if let Some(cached) = p.caches.admin_key.get(&()) {
                return Ok(cached);
            }
            let client = p
                .secrets_manager
                .as_ref()
                .ok_or_else(|| AppError::Unavailable { detail: "admin key secret configured without AWS".into() })?;
            let key = crate::aws::read_secret_string(client, id).await?;
            p.caches.admin_key.put((), key.clone());
            Ok(key)
        }
    }
}

/// Authenticate a request. Missing or unknown keys are 401; a space header that does not match
/// the key's space is 401 too (the key is not valid for that space).
pub async fn authenticate(p: &Platform, req: &Request) -> Result<Principal, AppError> {
    let key = presented_key(req)?.ok_or_else(|| AppError::Unauthorized(format!("missing {API_KEY_HEADER} header")))?;
    if key.len() > 512 {
        return Err(AppError::Unauthorized("invalid API key".into()));
    }
    let space_header = header(req, SPACE_HEADER)
        .map(|s| SpaceId::parse(s).map_err(|e| AppError::bad_request(e.to_string())))
        .transpose()?;
    let tenant_header = header(req, TENANT_HEADER)
        .map(|t| TenantId::parse(t).map_err(|e| AppError::bad_request(e.to_string())))
        .transpose()?;
    if let Some(admin) = admin_key(p).await? {
        if bool::from(admin.as_bytes().ct_eq(key.as_bytes())) {
            return Ok(Principal {
                role: Role::PlatformAdmin,
                space: space_header,
                tenant: tenant_header,
                key_id: None,
                tools: None,
            });
        }
    }
    let record =
        tenancy::find_api_key(p, key).await?.ok_or_else(|| AppError::Unauthorized("invalid API key".into()))?;
    if space_header.as_ref().is_some_and(|s| s != &record.space) {
        return Err(AppError::Unauthorized("this API key is not valid for that space".into()));
    }
    let tenant = match (&record.tenant, tenant_header) {
        (Some(bound), Some(asked)) if bound != &asked => {
            return Err(AppError::not_found(format!("tenant {asked} not found")));
        }
        (Some(bound), _) => Some(bound.clone()),
        (None, asked) => asked,
    };
    Ok(Principal { role: record.role, space: Some(record.space), tenant, key_id: Some(record.id), tools: record.tools })
}
