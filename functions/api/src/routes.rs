//! The routes of `/api/v1`: the public ones, then every authenticated operation, each with the
//! one permission it needs and, for writes, the action its audit record names.
//!
//! Order for an authenticated operation: authenticate (a failed login naming an existing space
//! is audited as `auth.login_failed`), find the operation (404, 405), check its permission (a
//! refusal is a 403 and an audit record with outcome `denied`, whatever the method), run it,
//! and for a write append one audit record with the status it answered. Reads leave none.
//! Every authenticated call is one of its tenant's (or space's) API calls of the minute,
//! counted before the permission check: past a hard limit it is a 429 and runs nothing.
//! Every answer carries `x-request-id`, which the audit record repeats.

use http::{HeaderValue, Method};
use serde_json::json;
use switchyard::domain::access::Permission;
use switchyard::runtime::Platform;
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Request, Response, error_allowing, json as json_response, with_quota_warnings};
use switchyard::usecases::{audit, auth, quotas};

use crate::call::Call;
use crate::{access, alerts, connectors, executions, flows, oauth, observability, openapi, schemas, tenancy, usage};

/// Every authenticated operation, named as its `operationId` in `openapi.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ListCatalog,
    GetCatalogEntry,
    GetOAuthApp,
    PutOAuthApp,
    CreateSpace,
    GetSpace,
    UpdateSpace,
    GetMe,
    ListMembers,
    GetMember,
    PutMember,
    DeleteMember,
    ListRoles,
    GetRole,
    PutRole,
    DeleteRole,
    ListAudit,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    CreateTenant,
    ListTenants,
    GetTenant,
    UpdateTenant,
    DeleteTenant,
    GetTenantConfig,
    PutTenantConfig,
    GetSpaceConfig,
    PutSpaceConfig,
    ListDeadLetters,
    ReplayDeadLetters,
    ListTenantCredentials,
    DeleteTenantCredential,
    ListTenantConnectors,
    GetTenantConnector,
    PutTenantConnector,
    PutWebhookSecret,
    ListWebhookSetupTokens,
    ConnectTenantConnector,
    PutTenantCredentials,
    DeleteTenantCredentials,
    RunConnectorAction,
    CreateSpaceFlow,
    ListSpaceFlows,
    GetSpaceFlow,
    UpdateSpaceFlow,
    SetSpaceFlowStatus,
    DeleteSpaceFlow,
    CreateTenantFlow,
    ListTenantFlows,
    GetTenantFlow,
    UpdateTenantFlow,
    SetTenantFlowStatus,
    DeleteTenantFlow,
    RunFlow,
    ListExecutions,
    GetExecution,
    CancelExecution,
    RerunExecution,
    ListReceivedEvents,
    GetTenantUsage,
    GetSpaceUsage,
    ListOverage,
    GetSpaceQuotas,
    PutSpaceQuotas,
    GetTenantQuotas,
    PutTenantQuotas,
    GetEffectiveConfig,
    GetTenantMetrics,
    GetTenantHealth,
    ListAlerts,
    PutAlert,
    DeleteAlert,
    ListAlertEvents,
    PutAlertSigningSecret,
}

use Operation as Op;

impl Operation {
    /// The operation at a method and path (after `/api/v1/`), with the path's parameters.
    pub fn resolve<'p>(method: &Method, rest: &[&'p str]) -> Option<(Operation, Vec<&'p str>)> {
        let m = method;
        let (op, params): (Op, Vec<&&'p str>) = match rest {
            ["connectors"] if m == Method::GET => (Op::ListCatalog, vec![]),
            ["connectors", c] if m == Method::GET => (Op::GetCatalogEntry, vec![c]),
            ["connectors", c, "oauth-app"] if m == Method::GET => (Op::GetOAuthApp, vec![c]),
            ["connectors", c, "oauth-app"] if m == Method::PUT => (Op::PutOAuthApp, vec![c]),

            ["spaces"] if m == Method::POST => (Op::CreateSpace, vec![]),
            ["spaces", s] if m == Method::GET => (Op::GetSpace, vec![s]),
            ["spaces", s] if m == Method::PATCH => (Op::UpdateSpace, vec![s]),

            ["me"] if m == Method::GET => (Op::GetMe, vec![]),
            ["members"] if m == Method::GET => (Op::ListMembers, vec![]),
            ["members", x] if m == Method::GET => (Op::GetMember, vec![x]),
            ["members", x] if m == Method::PUT => (Op::PutMember, vec![x]),
            ["members", x] if m == Method::DELETE => (Op::DeleteMember, vec![x]),
            ["roles"] if m == Method::GET => (Op::ListRoles, vec![]),
            ["roles", r] if m == Method::GET => (Op::GetRole, vec![r]),
            ["roles", r] if m == Method::PUT => (Op::PutRole, vec![r]),
            ["roles", r] if m == Method::DELETE => (Op::DeleteRole, vec![r]),
            ["audit"] if m == Method::GET => (Op::ListAudit, vec![]),

            ["api-keys"] if m == Method::POST => (Op::CreateApiKey, vec![]),
            ["api-keys"] if m == Method::GET => (Op::ListApiKeys, vec![]),
            ["api-keys", k] if m == Method::DELETE => (Op::RevokeApiKey, vec![k]),

            ["tenants"] if m == Method::POST => (Op::CreateTenant, vec![]),
            ["tenants"] if m == Method::GET => (Op::ListTenants, vec![]),
            ["tenants", t] if m == Method::GET => (Op::GetTenant, vec![t]),
            ["tenants", t] if m == Method::PATCH => (Op::UpdateTenant, vec![t]),
            ["tenants", t] if m == Method::DELETE => (Op::DeleteTenant, vec![t]),
            ["tenants", t, "config"] if m == Method::GET => (Op::GetTenantConfig, vec![t]),
            ["tenants", t, "config"] if m == Method::PUT => (Op::PutTenantConfig, vec![t]),
            ["config"] if m == Method::GET => (Op::GetSpaceConfig, vec![]),
            ["config"] if m == Method::PUT => (Op::PutSpaceConfig, vec![]),
            ["dlq"] if m == Method::GET => (Op::ListDeadLetters, vec![]),
            ["dlq", "replay"] if m == Method::POST => (Op::ReplayDeadLetters, vec![]),

            ["tenants", t, "credentials"] if m == Method::GET => (Op::ListTenantCredentials, vec![t]),
            ["tenants", t, "credentials", c] if m == Method::DELETE => (Op::DeleteTenantCredential, vec![t, c]),
            ["tenants", t, "connectors"] if m == Method::GET => (Op::ListTenantConnectors, vec![t]),
            ["tenants", t, "connectors", c] if m == Method::GET => (Op::GetTenantConnector, vec![t, c]),
            ["tenants", t, "connectors", c] if m == Method::PUT => (Op::PutTenantConnector, vec![t, c]),
            ["tenants", t, "connectors", c, "webhook-secret"] if m == Method::PUT => (Op::PutWebhookSecret, vec![t, c]),
            ["tenants", t, "connectors", c, "webhook-setup-tokens"] if m == Method::GET => {
                (Op::ListWebhookSetupTokens, vec![t, c])
            }
            ["tenants", t, "connectors", c, "connect"] if m == Method::POST => (Op::ConnectTenantConnector, vec![t, c]),
            ["tenants", t, "connectors", c, "credentials"] if m == Method::PUT => {
                (Op::PutTenantCredentials, vec![t, c])
            }
            ["tenants", t, "connectors", c, "credentials"] if m == Method::DELETE => {
                (Op::DeleteTenantCredentials, vec![t, c])
            }
            ["tenants", t, "connectors", c, "actions", a] if m == Method::POST => {
                (Op::RunConnectorAction, vec![t, c, a])
            }

            ["workflows"] if m == Method::POST => (Op::CreateSpaceFlow, vec![]),
            ["workflows"] if m == Method::GET => (Op::ListSpaceFlows, vec![]),
            ["workflows", f] if m == Method::GET => (Op::GetSpaceFlow, vec![f]),
            ["workflows", f] if m == Method::PUT => (Op::UpdateSpaceFlow, vec![f]),
            ["workflows", f] if m == Method::PATCH => (Op::SetSpaceFlowStatus, vec![f]),
            ["workflows", f] if m == Method::DELETE => (Op::DeleteSpaceFlow, vec![f]),
            ["tenants", t, "workflows"] if m == Method::POST => (Op::CreateTenantFlow, vec![t]),
            ["tenants", t, "workflows"] if m == Method::GET => (Op::ListTenantFlows, vec![t]),
            ["tenants", t, "workflows", f] if m == Method::GET => (Op::GetTenantFlow, vec![t, f]),
            ["tenants", t, "workflows", f] if m == Method::PUT => (Op::UpdateTenantFlow, vec![t, f]),
            ["tenants", t, "workflows", f] if m == Method::PATCH => (Op::SetTenantFlowStatus, vec![t, f]),
            ["tenants", t, "workflows", f] if m == Method::DELETE => (Op::DeleteTenantFlow, vec![t, f]),
            ["tenants", t, "workflows", f, "run"] if m == Method::POST => (Op::RunFlow, vec![t, f]),

            ["tenants", t, "executions"] if m == Method::GET => (Op::ListExecutions, vec![t]),
            ["tenants", t, "executions", e] if m == Method::GET => (Op::GetExecution, vec![t, e]),
            ["tenants", t, "executions", e, "cancel"] if m == Method::POST => (Op::CancelExecution, vec![t, e]),
            ["tenants", t, "executions", e, "rerun"] if m == Method::POST => (Op::RerunExecution, vec![t, e]),
            ["tenants", t, "events"] if m == Method::GET => (Op::ListReceivedEvents, vec![t]),

            ["tenants", t, "usage"] if m == Method::GET => (Op::GetTenantUsage, vec![t]),
            ["usage"] if m == Method::GET => (Op::GetSpaceUsage, vec![]),
            ["usage", "overage"] if m == Method::GET => (Op::ListOverage, vec![]),
            ["quotas"] if m == Method::GET => (Op::GetSpaceQuotas, vec![]),
            ["quotas"] if m == Method::PUT => (Op::PutSpaceQuotas, vec![]),
            ["tenants", t, "quotas"] if m == Method::GET => (Op::GetTenantQuotas, vec![t]),
            ["tenants", t, "quotas"] if m == Method::PUT => (Op::PutTenantQuotas, vec![t]),
            ["tenants", t, "config", "effective"] if m == Method::GET => (Op::GetEffectiveConfig, vec![t]),
            ["tenants", t, "metrics"] if m == Method::GET => (Op::GetTenantMetrics, vec![t]),
            ["tenants", t, "health"] if m == Method::GET => (Op::GetTenantHealth, vec![t]),
            ["alerts"] if m == Method::GET => (Op::ListAlerts, vec![]),
            ["alerts", "events"] if m == Method::GET => (Op::ListAlertEvents, vec![]),
            ["alerts", "signing-secret"] if m == Method::PUT => (Op::PutAlertSigningSecret, vec![]),
            // The two literal paths are not rules: their other methods are 405s.
            ["alerts", "events" | "signing-secret"] => return None,
            ["alerts", a] if m == Method::PUT => (Op::PutAlert, vec![a]),
            ["alerts", a] if m == Method::DELETE => (Op::DeleteAlert, vec![a]),
            _ => return None,
        };
        Some((op, params.into_iter().copied().collect()))
    }

    /// Its `operationId`: the variant's name with a lower-case first letter.
    pub fn id(self) -> String {
        let name = format!("{self:?}");
        let mut chars = name.chars();
        chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
    }

    /// The permission the operation needs; `None` for `GET /me`, which every caller may ask.
    pub fn permission(self) -> Option<Permission> {
        use Permission as P;
        Some(match self {
            Op::GetMe => return None,
            Op::ListCatalog | Op::GetCatalogEntry | Op::GetOAuthApp => P::ConnectorsRead,
            Op::PutOAuthApp => P::ConnectorsUpdate,
            Op::CreateSpace => P::SpacesCreate,
            Op::GetSpace => P::SpacesRead,
            Op::UpdateSpace => P::SpacesUpdate,
            Op::ListMembers | Op::GetMember => P::MembersRead,
            Op::PutMember => P::MembersUpdate,
            Op::DeleteMember => P::MembersDelete,
            Op::ListRoles | Op::GetRole => P::RolesRead,
            Op::PutRole => P::RolesUpdate,
            Op::DeleteRole => P::RolesDelete,
            Op::ListAudit => P::AuditRead,
            Op::CreateApiKey => P::KeysCreate,
            Op::ListApiKeys => P::KeysRead,
            Op::RevokeApiKey => P::KeysDelete,
            Op::CreateTenant => P::TenantsCreate,
            Op::ListTenants | Op::GetTenant => P::TenantsRead,
            Op::UpdateTenant => P::TenantsUpdate,
            Op::DeleteTenant => P::TenantsDelete,
            Op::GetTenantConfig | Op::GetSpaceConfig => P::ConfigRead,
            Op::PutTenantConfig | Op::PutSpaceConfig => P::ConfigUpdate,
            Op::ListDeadLetters => P::DlqRead,
            Op::ReplayDeadLetters => P::DlqReplay,
            Op::ListTenantCredentials | Op::ListTenantConnectors | Op::GetTenantConnector => P::ConnectionsRead,
            Op::PutTenantConnector | Op::PutWebhookSecret => P::ConnectionsUpdate,
            // Setup tokens are secrets: whoever may set up a connection may read them.
            Op::ListWebhookSetupTokens | Op::ConnectTenantConnector | Op::PutTenantCredentials => P::ConnectionsCreate,
            Op::DeleteTenantCredentials | Op::DeleteTenantCredential => P::ConnectionsDelete,
            Op::RunConnectorAction => P::ConnectionsExecute,
            Op::CreateSpaceFlow | Op::CreateTenantFlow => P::WorkflowsCreate,
            Op::ListSpaceFlows | Op::GetSpaceFlow | Op::ListTenantFlows | Op::GetTenantFlow => P::WorkflowsRead,
            Op::UpdateSpaceFlow | Op::UpdateTenantFlow => P::WorkflowsUpdate,
            // Pausing and activating a flow is what puts it in production or takes it out.
            Op::SetSpaceFlowStatus | Op::SetTenantFlowStatus => P::WorkflowsDeploy,
            Op::DeleteSpaceFlow | Op::DeleteTenantFlow => P::WorkflowsDelete,
            Op::RunFlow => P::WorkflowsExecute,
            Op::ListExecutions | Op::GetExecution | Op::ListReceivedEvents => P::ExecutionsRead,
            Op::CancelExecution | Op::RerunExecution => P::ExecutionsUpdate,
            Op::GetTenantUsage | Op::GetSpaceUsage | Op::ListOverage | Op::GetSpaceQuotas | Op::GetTenantQuotas => {
                P::QuotasRead
            }
            Op::PutSpaceQuotas | Op::PutTenantQuotas => P::QuotasUpdate,
            Op::GetEffectiveConfig => P::ConfigRead,
            Op::GetTenantMetrics => P::ExecutionsRead,
            Op::GetTenantHealth => P::ConnectionsRead,
            Op::ListAlerts | Op::ListAlertEvents => P::AlertsRead,
            Op::PutAlert | Op::DeleteAlert | Op::PutAlertSigningSecret => P::AlertsUpdate,
        })
    }

    /// The action an audit record of this operation names; `None` for reads.
    pub fn audit_action(self) -> Option<&'static str> {
        Some(match self {
            Op::PutOAuthApp => "connector.oauth_app.set",
            Op::CreateSpace => "space.create",
            Op::UpdateSpace => "space.update",
            Op::PutMember => "member.put",
            Op::DeleteMember => "member.remove",
            Op::PutRole => "role.put",
            Op::DeleteRole => "role.delete",
            Op::CreateApiKey => "key.create",
            Op::RevokeApiKey => "key.revoke",
            Op::CreateTenant => "tenant.create",
            Op::UpdateTenant => "tenant.update",
            Op::DeleteTenant => "tenant.delete",
            Op::PutTenantConfig => "tenant.config.set",
            Op::PutSpaceConfig => "space.config.set",
            Op::ReplayDeadLetters => "dlq.replay",
            Op::PutTenantConnector => "connection.update",
            Op::PutWebhookSecret => "connection.webhook_secret.set",
            Op::ConnectTenantConnector => "connection.connect",
            Op::PutTenantCredentials => "credentials.set",
            Op::DeleteTenantCredentials | Op::DeleteTenantCredential => "credentials.delete",
            Op::RunConnectorAction => "connection.action.run",
            Op::CreateSpaceFlow | Op::CreateTenantFlow => "flow.create",
            Op::UpdateSpaceFlow | Op::UpdateTenantFlow => "flow.update",
            Op::SetSpaceFlowStatus | Op::SetTenantFlowStatus => "flow.set_status",
            Op::DeleteSpaceFlow | Op::DeleteTenantFlow => "flow.delete",
            Op::RunFlow => "flow.run",
            Op::CancelExecution => "execution.cancel",
            Op::RerunExecution => "execution.rerun",
            Op::PutSpaceQuotas => "space.quotas.set",
            Op::PutTenantQuotas => "tenant.quotas.set",
            Op::PutAlert => "alert.put",
            Op::DeleteAlert => "alert.delete",
            Op::PutAlertSigningSecret => "alert.signing_secret.set",
            Op::ListCatalog
            | Op::GetCatalogEntry
            | Op::GetOAuthApp
            | Op::GetSpace
            | Op::GetMe
            | Op::ListMembers
            | Op::GetMember
            | Op::ListRoles
            | Op::GetRole
            | Op::ListAudit
            | Op::ListApiKeys
            | Op::ListTenants
            | Op::GetTenant
            | Op::GetTenantConfig
            | Op::GetSpaceConfig
            | Op::ListDeadLetters
            | Op::ListTenantCredentials
            | Op::ListTenantConnectors
            | Op::GetTenantConnector
            | Op::ListWebhookSetupTokens
            | Op::ListSpaceFlows
            | Op::GetSpaceFlow
            | Op::ListTenantFlows
            | Op::GetTenantFlow
            | Op::ListExecutions
            | Op::GetExecution
            | Op::ListReceivedEvents
            | Op::GetTenantUsage
            | Op::GetSpaceUsage
            | Op::ListOverage
            | Op::GetSpaceQuotas
            | Op::GetTenantQuotas
            | Op::GetEffectiveConfig
            | Op::GetTenantMetrics
            | Op::GetTenantHealth
            | Op::ListAlerts
            | Op::ListAlertEvents => return None,
        })
    }
}

pub async fn route(p: &Platform, req: Request, segs: &[String]) -> Result<Response, AppError> {
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let rest = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest.to_vec(),
        _ => return Err(AppError::not_found("no such endpoint")),
    };
    // Public endpoints.
    match (&method, rest.as_slice()) {
        (&Method::GET, ["health"]) => return Ok(json_response(200, &json!({"status": "ok"}))),
        (&Method::GET, ["openapi.json"]) => return Ok(json_response(200, openapi::document())),
        (&Method::GET, ["oauth", "callback"]) => return oauth::callback(p, &req).await,
        (&Method::GET, ["schemas", "flow.json"]) => return Ok(json_response(200, schemas::flow())),
        (&Method::GET, ["schemas", "cdm.json"]) => return Ok(json_response(200, schemas::cdm())),
        _ => {}
    }
    let request_id = switchyard::domain::ids::ulid_at(p.now_ms()).to_string();
    let resource = rest.join("/");
    let retention = p.settings.audit_retention_secs;
    let who = match auth::authenticate(p.auth(), req.headers()).await {
        Ok(who) => who,
        Err(e) => {
            if matches!(e, switchyard::usecases::Error::Unauthenticated(_)) {
                if let Some(space) = auth::space_header(req.headers()) {
                    let entry = audit::Entry {
                        action: "auth.login_failed",
                        resource: &resource,
                        status: 401,
                        request_id: &request_id,
                    };
                    audit::note_failed_login(p.db(), &space, entry, retention).await;
                }
            }
            return Err(e.into());
        }
    };
    perform(p, who, req, &rest, &request_id).await
}

/// Run one authenticated operation for `who`, the caller of `req`: what every authenticated
/// API request does once authenticated — count it as an API call of the minute, check the
/// permission, run the handler, write the audit record. `rest` is the path after `/api/v1/`.
/// An error is the request's answer (a 404 or 405 for a path that names no operation, a 429
/// past the API-call quota); the operation's own failures are answered in the response.
pub async fn perform(
    p: &Platform,
    who: auth::Principal,
    req: Request,
    rest: &[&str],
    request_id: &str,
) -> Result<Response, AppError> {
    let (op, params) = operation(req.method(), rest)?;
    let path_tenant = match rest {
        ["tenants", tenant, ..] => Some(*tenant),
        _ => None,
    };
    let notices = quotas::admit_api_request(&p.engine, &who, path_tenant).await?;
    let response = run(p, who, req, rest, op, &params, request_id).await;
    Ok(with_quota_warnings(response, &notices))
}

/// [`perform`] for a caller whose API call was counted already: the console counts a page view
/// once, on the tenant the page is about, however many operations it reads.
pub async fn perform_admitted(
    p: &Platform,
    who: auth::Principal,
    req: Request,
    rest: &[&str],
    request_id: &str,
) -> Result<Response, AppError> {
    let (op, params) = operation(req.method(), rest)?;
    Ok(run(p, who, req, rest, op, &params, request_id).await)
}

/// The operation at a path, or the 404 or 405 of a path that names none.
fn operation<'p>(method: &Method, rest: &[&'p str]) -> Result<(Operation, Vec<&'p str>), AppError> {
    Operation::resolve(method, rest).ok_or_else(|| {
        if openapi::path_exists(rest) {
            AppError::MethodNotAllowed(format!("{method} is not allowed here"))
        } else {
            AppError::not_found("no such endpoint")
        }
    })
}

/// Check the permission, run the operation, audit it.
async fn run(
    p: &Platform,
    who: auth::Principal,
    req: Request,
    rest: &[&str],
    op: Operation,
    params: &[&str],
    request_id: &str,
) -> Response {
    let method = req.method().clone();
    let resource = rest.join("/");
    let retention = p.settings.audit_retention_secs;
    let call = Call { p, who, req };
    let action = op.audit_action();
    let outcome = match op.permission().map(|permission| call.who.require(permission)) {
        Some(Err(refused)) => Err(AppError::from(refused)),
        _ => dispatch(&call, op, params).await,
    };
    let status = match &outcome {
        Ok(response) => response.status().as_u16(),
        Err(e) => e.status(),
    };
    if action.is_some() || status == 403 {
        // A refused read is recorded under its operation's name.
        let action = action.map(str::to_string).unwrap_or_else(|| op.id());
        let entry = audit::Entry { action: &action, resource: &resource, status, request_id };
        // The admin key creates spaces without naming one: the new space's log records it.
        let created = match (&call.who.space, op, &outcome) {
            (None, Op::CreateSpace, Ok(r)) => created_space(r.body()),
            _ => None,
        };
        match created {
            Some(space) => audit::note_in(p.db(), &space, &call.who.actor, entry, retention).await,
            None => audit::note(p.db(), &call.who, entry, retention).await,
        }
    }
    let mut response = outcome.unwrap_or_else(|e| {
        crate::log_failure(&method, &resource, &e);
        error_allowing(&e, "")
    });
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn created_space(body: &[u8]) -> Option<switchyard::domain::ids::SpaceId> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    switchyard::domain::ids::SpaceId::parse(value.get("id")?.as_str()?).ok()
}

async fn dispatch(call: &Call<'_>, op: Operation, params: &[&str]) -> Result<Response, AppError> {
    let param = |i: usize| params.get(i).copied().unwrap_or_default();
    let (a, b, c) = (param(0), param(1), param(2));
    match op {
        Op::ListCatalog => connectors::catalog(call).await,
        Op::GetCatalogEntry => connectors::catalog_entry(call, a).await,
        Op::GetOAuthApp => connectors::get_oauth_app(call, a).await,
        Op::PutOAuthApp => connectors::put_oauth_app(call, a).await,
        Op::CreateSpace => tenancy::create_space(call).await,
        Op::GetTenantUsage => usage::tenant_usage(call, a).await,
        Op::GetSpaceUsage => usage::space_usage(call).await,
        Op::ListOverage => usage::overage(call).await,
        Op::GetSpaceQuotas => usage::get_space_quotas(call).await,
        Op::PutSpaceQuotas => usage::put_space_quotas(call).await,
        Op::GetTenantQuotas => usage::get_tenant_quotas(call, a).await,
        Op::PutTenantQuotas => usage::put_tenant_quotas(call, a).await,
        Op::GetEffectiveConfig => usage::effective_config(call, a).await,
        Op::GetTenantMetrics => observability::metrics(call, a).await,
        Op::GetTenantHealth => observability::health(call, a).await,
        Op::ListAlerts => alerts::list(call).await,
        Op::PutAlert => alerts::put(call, a).await,
        Op::DeleteAlert => alerts::delete(call, a).await,
        Op::ListAlertEvents => alerts::events(call).await,
        Op::PutAlertSigningSecret => alerts::put_signing_secret(call).await,
        Op::GetSpace => tenancy::get_space(call, a).await,
        Op::UpdateSpace => tenancy::update_space(call, a).await,
        Op::GetMe => access::me(call).await,
        Op::ListMembers => access::list_members(call).await,
        Op::GetMember => access::get_member(call, a).await,
        Op::PutMember => access::put_member(call, a).await,
        Op::DeleteMember => access::delete_member(call, a).await,
        Op::ListRoles => access::list_roles(call).await,
        Op::GetRole => access::get_role(call, a).await,
        Op::PutRole => access::put_role(call, a).await,
        Op::DeleteRole => access::delete_role(call, a).await,
        Op::ListAudit => access::list_audit(call).await,
        Op::CreateApiKey => tenancy::create_key(call).await,
        Op::ListApiKeys => tenancy::list_keys(call).await,
        Op::RevokeApiKey => tenancy::revoke_key(call, a).await,
        Op::CreateTenant => tenancy::create_tenant(call).await,
        Op::ListTenants => tenancy::list_tenants(call).await,
        Op::GetTenant => tenancy::get_tenant(call, a).await,
        Op::UpdateTenant => tenancy::update_tenant(call, a).await,
        Op::DeleteTenant => tenancy::delete_tenant(call, a).await,
        Op::GetTenantConfig => tenancy::get_tenant_config(call, a).await,
        Op::PutTenantConfig => tenancy::put_tenant_config(call, a).await,
        Op::GetSpaceConfig => tenancy::get_space_config(call).await,
        Op::PutSpaceConfig => tenancy::put_space_config(call).await,
        Op::ListDeadLetters => executions::dlq_list(call).await,
        Op::ReplayDeadLetters => executions::dlq_replay(call).await,
        Op::ListTenantCredentials => connectors::list_credentials(call, a).await,
        Op::DeleteTenantCredential | Op::DeleteTenantCredentials => connectors::delete_credentials(call, a, b).await,
        Op::ListTenantConnectors => connectors::list(call, a).await,
        Op::GetTenantConnector => connectors::get(call, a, b).await,
        Op::PutTenantConnector => connectors::put(call, a, b).await,
        Op::PutWebhookSecret => connectors::put_webhook_secret(call, a, b).await,
        Op::ListWebhookSetupTokens => connectors::webhook_setup_tokens(call, a, b).await,
        Op::ConnectTenantConnector => connectors::connect(call, a, b).await,
        Op::PutTenantCredentials => connectors::put_credentials(call, a, b).await,
        Op::RunConnectorAction => connectors::run_action(call, a, b, c).await,
        Op::CreateSpaceFlow => flows::create(call, None).await,
        Op::ListSpaceFlows => flows::list(call, None).await,
        Op::GetSpaceFlow => flows::get(call, None, a).await,
        Op::UpdateSpaceFlow => flows::update(call, None, a).await,
        Op::SetSpaceFlowStatus => flows::set_status(call, None, a).await,
        Op::DeleteSpaceFlow => flows::delete(call, None, a).await,
        Op::CreateTenantFlow => flows::create(call, Some(a)).await,
        Op::ListTenantFlows => flows::list(call, Some(a)).await,
        Op::GetTenantFlow => flows::get(call, Some(a), b).await,
        Op::UpdateTenantFlow => flows::update(call, Some(a), b).await,
        Op::SetTenantFlowStatus => flows::set_status(call, Some(a), b).await,
        Op::DeleteTenantFlow => flows::delete(call, Some(a), b).await,
        Op::RunFlow => flows::run(call, a, b).await,
        Op::ListExecutions => executions::list(call, a).await,
        Op::GetExecution => executions::get(call, a, b).await,
        Op::CancelExecution => executions::cancel(call, a, b).await,
        Op::RerunExecution => executions::rerun(call, a, b).await,
        Op::ListReceivedEvents => executions::events(call, a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every authenticated operation of the document is routed to the operation of its name,
    /// and every operation of the router is in the document.
    #[test]
    fn the_router_and_the_document_name_the_same_operations() {
        let mut routed = Vec::new();
        for (template, item) in openapi::document()["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(id) = op.get("operationId").and_then(|v| v.as_str()) else { continue };
                if op["responses"].get("401").is_none() {
                    continue;
                }
                let path: Vec<&str> = template
                    .trim_start_matches("/api/v1/")
                    .split('/')
                    .map(|s| if s.starts_with('{') { "x1" } else { s })
                    .collect();
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let (found, _) =
                    Operation::resolve(&method, &path).unwrap_or_else(|| panic!("{method} {template} is not routed"));
                assert_eq!(found.id(), id, "{method} {template}");
                routed.push(found);
            }
        }
        assert_eq!(routed.len(), 75, "operations in the document");
        // The document's permission list is the domain's.
        let documented: Vec<&str> = openapi::document()["components"]["schemas"]["Permission"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        let domain: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(documented, domain);
        // Writes name an audit action, reads do not.
        for op in routed {
            let read = op.id().starts_with("get") || op.id().starts_with("list");
            assert_eq!(op.audit_action().is_none(), read, "{op:?}");
        }
    }
}
