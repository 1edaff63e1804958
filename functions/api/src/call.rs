//! One authenticated request on its way through the router, and what its handlers share.

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard::domain::ids::{SpaceId, TenantId};
use switchyard::engine::Engine;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, json as json_response, query};
use switchyard::store::Db;
use switchyard::usecases::auth::Principal;

/// One authenticated request on its way through the router.
pub struct Call<'a> {
    pub p: &'a Platform,
    pub who: Principal,
    pub req: Request,
}

impl Call<'_> {
    pub fn db(&self) -> &Db {
        self.p.db()
    }

    pub fn engine(&self) -> &Engine {
        &self.p.engine
    }

    pub fn space(&self) -> Result<SpaceId, AppError> {
        Ok(self.who.space()?.clone())
    }

    /// A tenant named in the path, checked against the key, and known to exist in the space.
    pub async fn tenant(&self, id: &str) -> Result<(SpaceId, TenantId), AppError> {
        let space = self.space()?;
        let tenant = self.who.tenant_from(Some(id))?;
        switchyard::store::tenants::require_tenant(self.db(), &space, &tenant).await?;
        Ok((space, tenant))
    }

    /// A tenant named in the path, with its space.
    pub async fn resolved_tenant(&self, id: &str) -> Result<switchyard::store::tenants::ResolvedTenant, AppError> {
        let (space, tenant) = self.tenant(id).await?;
        switchyard::store::tenants::resolve_tenant(self.db(), &tenant)
            .await?
            .filter(|r| r.space.id == space)
            .ok_or_else(|| AppError::not_found(format!("tenant {tenant} not found")))
    }

    /// A tenant named in the path that may run things now: known, and active (a suspended
    /// tenant's flows, reruns and actions are refused, as its webhooks, polls and MCP are).
    pub async fn active_tenant(&self, id: &str) -> Result<switchyard::store::tenants::ResolvedTenant, AppError> {
        let resolved = self.resolved_tenant(id).await?;
        let tenant = &resolved.tenant.id;
        if resolved.tenant.status != switchyard::domain::tenancy::TenantStatus::Active {
            return Err(AppError::invalid(
                "tenant_suspended",
                format!("tenant {tenant} is suspended: reactivate it (PATCH /tenants/{tenant}) to run anything"),
                serde_json::Value::Null,
            ));
        }
        Ok(resolved)
    }

    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, AppError> {
        switchyard::runtime::http::json_body(&self.req)
    }

    pub fn query(&self) -> std::collections::HashMap<String, String> {
        query(&self.req)
    }

    /// `limit` (1–200, default 50) and `cursor` query parameters.
    pub fn page(&self) -> Result<(u32, Option<String>), AppError> {
        let q = self.query();
        let limit = match q.get("limit") {
            None => 50,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=200).contains(l))
                .ok_or_else(|| AppError::bad_request("limit must be an integer between 1 and 200"))?,
        };
        Ok((limit, q.get("cursor").cloned()))
    }
}

/// A list response with its next-page cursor.
pub fn page_response(items: Vec<Value>, next: Option<String>) -> Response {
    json_response(200, &json!({"items": items, "next_cursor": next}))
}

/// Names in request bodies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub plan: Option<switchyard::domain::tenancy::Plan>,
}
