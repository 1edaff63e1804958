//! Who is calling: API keys in `x-fastn-api-key` (or `Authorization: Bearer`), scoped by
//! `x-fastn-space-id` and `x-fastn-space-tenantid`, as in the seed's API.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::Error;
use crate::domain::access::{Permission, Role};
use crate::domain::ids::{ApiKeyId, SpaceId, TenantId};
use crate::ports::AdminKey;
use crate::store::{Db, tenants};

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
    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!("this API key's role may not {}", permission_text(permission))))
        }
    }

    /// The space the request acts on.
    pub fn space(&self) -> Result<&SpaceId, Error> {
        self.space.as_ref().ok_or_else(|| Error::bad_request(format!("the {SPACE_HEADER} header is required")))
    }

    /// Refuse a tenant-bound key acting for another tenant. The refusal is a 404, the same as
    /// for a tenant that does not exist, so keys cannot probe for other tenants.
    pub fn check_tenant(&self, tenant: &TenantId) -> Result<(), Error> {
        if self.role == Role::Tenant && self.tenant.as_ref() != Some(tenant) {
            return Err(Error::not_found(format!("tenant {tenant} not found")));
        }
        Ok(())
    }

    /// The tenant named by the request (path, else header), checked against the key.
    pub fn tenant_from(&self, from_path: Option<&str>) -> Result<TenantId, Error> {
        let text = from_path
            .map(str::to_string)
            .or_else(|| self.tenant.as_ref().map(ToString::to_string))
            .ok_or_else(|| Error::bad_request(format!("name the tenant in the path or the {TENANT_HEADER} header")))?;
        let tenant = TenantId::parse(text).map_err(|e| Error::bad_request(e.to_string()))?;
        self.check_tenant(&tenant)?;
        Ok(tenant)
    }
}

fn permission_text(p: Permission) -> String {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

/// A header's text: `Ok(None)` when absent or empty, `Err(())` when present but not text.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|t| Some(t.trim()).filter(|t| !t.is_empty())).map_err(|_| ()),
    }
}

/// The API key the request presents (`x-fastn-api-key`, else a bearer token), if any; a key
/// header that is not text is refused as such (it is not "missing").
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let unreadable = |_| Error::Unauthenticated(format!("the {API_KEY_HEADER} header is not valid text"));
    if let Some(key) = header_text(headers, API_KEY_HEADER).map_err(unreadable)? {
        return Ok(Some(key));
    }
    let unreadable = |_| Error::Unauthenticated("the Authorization header is not valid text".into());
    Ok(header_text(headers, "authorization")
        .map_err(unreadable)?
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim))
}

/// An optional id header: absent (or not text, which no id is) is `None`.
fn id_header<T>(
    headers: &HeaderMap,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    match header_text(headers, name) {
        Ok(Some(text)) => parse(text).map(Some).map_err(Error::bad_request),
        _ => Ok(None),
    }
}

/// Authenticate a request. Missing or unknown keys are 401; a space header that does not match
/// the key's space is 401 too (the key is not valid for that space).
pub async fn authenticate(db: &Db, admin_key: &dyn AdminKey, headers: &HeaderMap) -> Result<Principal, Error> {
    let key =
        presented_key(headers)?.ok_or_else(|| Error::Unauthenticated(format!("missing {API_KEY_HEADER} header")))?;
    if key.len() > 512 {
        return Err(Error::Unauthenticated("invalid API key".into()));
    }
    let space_header = id_header(headers, SPACE_HEADER, |s| SpaceId::parse(s).map_err(|e| e.to_string()))?;
    let tenant_header = id_header(headers, TENANT_HEADER, |t| TenantId::parse(t).map_err(|e| e.to_string()))?;
    if let Some(admin) = admin_key.admin_key().await? {
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
        tenants::find_api_key(db, key).await?.ok_or_else(|| Error::Unauthenticated("invalid API key".into()))?;
    if space_header.as_ref().is_some_and(|s| s != &record.space) {
        return Err(Error::Unauthenticated("this API key is not valid for that space".into()));
    }
    let tenant = match (&record.tenant, tenant_header) {
        (Some(bound), Some(asked)) if bound != &asked => {
            return Err(Error::not_found(format!("tenant {asked} not found")));
        }
        (Some(bound), _) => Some(bound.clone()),
        (None, asked) => asked,
    };
    Ok(Principal { role: record.role, space: Some(record.space), tenant, key_id: Some(record.id), tools: record.tools })
}
