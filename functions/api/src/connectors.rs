//! The connector catalog and a tenant's connectors.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchyard::domain::connector::{ConnectorSpec, HmacConfig, SchemeKind};
use switchyard::engine::actions::{self, ActionError};
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, json as json_response};
use switchyard::store::{connections, credentials};
use switchyard::usecases::connect::{self, StateKey};

use crate::{Call, page_response};

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
    call.engine().catalog.find(id).ok_or_else(|| AppError::not_found(format!("connector {id} not found")))
}

pub async fn catalog(call: &Call<'_>) -> Result<Response, AppError> {
    Ok(page_response(call.engine().catalog.all().map(summary).collect(), None))
}

pub async fn catalog_entry(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    Ok(json_response(200, &summary(spec(call, id)?)))
}

pub async fn list(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(tenant).await?;
    let all = connections::list_settings(call.db(), &space, &tenant).await?;
    Ok(page_response(all.iter().map(|s| json!(s)).collect(), None))
}

/// A tenant's connections: presence, kind, expiry and health of the credentials of each
/// connector set up for it, never their values.
pub async fn list_credentials(call: &Call<'_>, tenant: &str) -> Result<Response, AppError> {
    let (space, tenant) = call.tenant(tenant).await?;
    let now = call.p.now_ms();
    let all = connections::list_settings(call.db(), &space, &tenant).await?;
    let items = all
        .iter()
        .map(|s| {
            let c = &s.credentials;
            let expired = c.expires_at.is_some_and(|at| at <= now);
            // OAuth tokens past their expiry are refreshed on their next use; other kinds are not.
            let health = match (c.connected, c.needs_reauthorization, expired, c.kind.as_deref()) {
                (_, true, _, _) => "needs_reauthorization",
                (false, _, _, _) => "not_connected",
                (true, _, true, Some("oauth2")) => "refresh_due",
                (true, _, true, _) => "expired",
                _ => "ok",
            };
            json!({
                "connector": s.connector, "enabled": s.enabled, "connected": c.connected, "kind": c.kind,
                "expires_at": c.expires_at, "health": health, "updated_at": s.updated_at,
            })
        })
        .collect();
    Ok(page_response(items, None))
}

pub async fn get(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let settings = connections::get_settings(call.db(), &space, &tenant, &spec.id)
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
    /// The integration level of the configuration cascade.
    #[serde(default)]
    config: Option<Map<String, Value>>,
}

fn yes() -> bool {
    true
}

pub async fn put(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let body: ConnectorPut = call.body()?;
    connections::validate_settings(spec, &body.settings)?;
    if let Some(config) = &body.config {
        switchyard::domain::config::validate(config)
            .map_err(|m| AppError::invalid("invalid_config", m, Value::Null))?;
    }
    if let Some(hmac) = &body.hmac {
        if spec.webhook.as_ref().map(|w| w.scheme) != Some(SchemeKind::Hmac) {
            return Err(AppError::bad_request(format!("connector {} does not use the generic hmac scheme", spec.id)));
        }
        hmac.check().map_err(|m| AppError::invalid("invalid_hmac", m, Value::Null))?;
    }
    let settings = connections::update_settings(call.db(), &space, &tenant, &spec.id, |s| {
        s.enabled = body.enabled;
        s.settings = body.settings.clone();
        if body.hmac.is_some() {
            s.hmac = body.hmac.clone();
        }
        if let Some(config) = &body.config {
            s.config = config.clone();
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

/// The setup tokens a provider's unsigned setup requests brought (Notion's
/// `verification_token`), for the admin to paste into the provider and then set as the webhook
/// secret. The one exception to secrets never coming back: the provider shows it nowhere else.
pub async fn webhook_setup_tokens(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    if spec.webhook.as_ref().and_then(|w| w.setup_token_field.as_ref()).is_none() {
        return Err(AppError::bad_request(format!("connector {} sends no setup token", spec.id)));
    }
    let (space, tenant) = call.tenant(tenant).await?;
    let tokens = connections::setup_tokens(call.db(), &space, &tenant, &spec.id).await?;
    Ok(json_response(200, &json!({"items": tokens})))
}

pub async fn put_webhook_secret(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    if spec.webhook.is_none() {
        return Err(AppError::bad_request(format!("connector {} does not send webhooks", spec.id)));
    }
    let (space, tenant) = call.tenant(tenant).await?;
    let body: SecretPut = call.body()?;
    if let Some(webhook) = &spec.webhook {
        switchyard::domain::webhook::signature::check_secret(webhook.scheme, &body.secret)
            .map_err(|m| AppError::invalid("invalid_secret", m, Value::Null))?;
    }
    let rotation = call.p.settings.webhook.rotation_window_secs;
    let settings =
        connections::set_webhook_secret(call.db(), &space, &tenant, &spec.id, &body.secret, rotation).await?;
    Ok(json_response(200, &json!(settings)))
}

/// The redirect URI for OAuth callbacks: the configured public URL, else this request's host
/// (https, except for a loopback dev server).
fn callback_url(call: &Call<'_>) -> Result<String, AppError> {
    if let Some(public) = &call.p.settings.public_url {
        return Ok(format!("{}/api/v1/oauth/callback", public.trim_end_matches('/')));
    }
    let host = switchyard::runtime::http::header(&call.req, "host").ok_or_else(|| {
        AppError::bad_request("set SWITCHYARD_PUBLIC_URL: the callback URL cannot be derived without a Host header")
    })?;
    let local = host.starts_with("127.0.0.1") || host.starts_with("localhost") || host.starts_with("[::1]");
    Ok(format!("{}://{host}/api/v1/oauth/callback", if local { "http" } else { "https" }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthAppPut {
    client_id: String,
    client_secret: String,
    #[serde(default)]
    redirect_uri: Option<String>,
}

pub async fn put_oauth_app(call: &Call<'_>, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    if !matches!(spec.auth, switchyard::domain::connector::AuthSpec::Oauth2 { .. }) {
        return Err(AppError::bad_request(format!("connector {} does not use OAuth", spec.id)));
    }
    let body: OAuthAppPut = call.body()?;
    if body.client_id.is_empty()
        || body.client_secret.is_empty()
        || body.client_id.chars().count() > 512
        || body.client_secret.chars().count() > 1024
    {
        return Err(AppError::bad_request("client_id and client_secret are required"));
    }
    if let Some(uri) = &body.redirect_uri {
        url::Url::parse(uri).map_err(|_| AppError::bad_request("redirect_uri must be an absolute URL"))?;
    }
    let app = credentials::OAuthApp {
        client_id: body.client_id,
        client_secret: body.client_secret,
        redirect_uri: body.redirect_uri,
    };
    credentials::set_oauth_app(call.db(), &call.space()?, &spec.id, &app).await?;
    Ok(json_response(200, &oauth_app_json(&app, &spec.id)))
}

fn oauth_app_json(app: &credentials::OAuthApp, connector: &switchyard::domain::ids::ConnectorId) -> Value {
    json!({"connector": connector, "client_id": app.client_id, "client_secret_set": true, "redirect_uri": app.redirect_uri})
}

pub async fn get_oauth_app(call: &Call<'_>, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    let app = credentials::oauth_app(call.db(), &call.space()?, &spec.id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no OAuth app registered for {}", spec.id)))?;
    Ok(json_response(200, &oauth_app_json(&app, &spec.id)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConnectPost {
    /// Where to send the tenant after the callback (your product's page).
    #[serde(default)]
    return_to: Option<String>,
}

pub async fn connect(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let body: ConnectPost = if call.req.body().is_empty() { ConnectPost::default() } else { call.body()? };
    if let Some(to) = &body.return_to {
        let url = url::Url::parse(to).map_err(|_| AppError::bad_request("return_to must be an absolute URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(AppError::bad_request("return_to must be an http(s) URL"));
        }
        // The callback redirects the tenant's browser there: only to origins the operator
        // listed, so the platform's domain cannot be used as an open redirect.
        let origin = url.origin().ascii_serialization();
        if !call.p.settings.oauth_return_origins.iter().any(|o| *o == origin) {
            return Err(AppError::bad_request(format!(
                "return_to must be on an origin listed in SWITCHYARD_OAUTH_RETURN_ORIGINS ({origin} is not)"
            )));
        }
    }
    let state_key = StateKey::of(call.p.admin_key.as_ref()).await?;
    let callback = callback_url(call)?;
    let start =
        connect::start_connect(call.engine(), &state_key, &space, &tenant, spec, &callback, body.return_to).await?;
    Ok(json_response(200, &json!(start)))
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum CredentialsPut {
    ApiKey { key: String },
    Basic { username: String, password: String },
    Bearer { token: String },
    ClientCredentials { client_id: String, client_secret: String },
}

pub async fn put_credentials(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let body: CredentialsPut = call.body()?;
    let value = match body {
        CredentialsPut::ApiKey { key } => credentials::Credentials::ApiKey { key },
        CredentialsPut::Basic { username, password } => credentials::Credentials::Basic { username, password },
        CredentialsPut::Bearer { token } => credentials::Credentials::Bearer { token },
        CredentialsPut::ClientCredentials { client_id, client_secret } => credentials::Credentials::ClientCredentials {
            client_id,
            client_secret,
            access_token: None,
            expires_at: None,
        },
    };
    if value.secrets().iter().any(|s| s.is_empty() || s.chars().count() > 8192) {
        return Err(AppError::bad_request("credential values must be 1 to 8192 characters"));
    }
    credentials::check_kind(spec, &value)?;
    let settings = credentials::store(call.db(), &space, &tenant, &spec.id, &value).await?;
    Ok(json_response(200, &json!(settings)))
}

pub async fn delete_credentials(call: &Call<'_>, tenant: &str, connector: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    let (space, tenant) = call.tenant(tenant).await?;
    let settings = credentials::disconnect(call.db(), &space, &tenant, &spec.id).await?;
    Ok(json_response(200, &json!(settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionPost {
    #[serde(default)]
    input: Value,
}

/// Run one action now with the tenant's credentials (testing a connection, or a one-off call).
pub async fn run_action(call: &Call<'_>, tenant: &str, connector: &str, action: &str) -> Result<Response, AppError> {
    let spec = spec(call, connector)?;
    let action = spec
        .action(action)
        .ok_or_else(|| AppError::not_found(format!("connector {} has no action {action}", spec.id)))?;
    let resolved = call.active_tenant(tenant).await?;
    let (space, tenant) = (resolved.space.id, resolved.tenant.id);
    let body: ActionPost = call.body()?;
    let input = if body.input.is_null() { json!({}) } else { body.input };
    let result = actions::call(
        call.engine(),
        actions::ActionCall {
            space: &space,
            tenant: &tenant,
            spec,
            action,
            input: &input,
            idempotency_key: None,
            timeout: std::time::Duration::from_secs(30),
            page: None,
        },
    )
    .await;
    match result {
        Ok(r) => Ok(json_response(200, &json!({"status": r.status, "output": r.output}))),
        Err(ActionError::InvalidInput(m)) => Err(AppError::invalid("invalid_input", m, Value::Null)),
        Err(ActionError::NotEnabled(c)) => {
            Err(AppError::bad_request(format!("connector {c} is not enabled for this tenant")))
        }
        Err(ActionError::Credentials(e)) if !e.is_retryable() => {
            Err(AppError::invalid("not_connected", e.to_string(), Value::Null))
        }
        Err(ActionError::Unavailable(d)) => Err(AppError::Unavailable { detail: d }),
        // The third party's own failure: a 502 with what it said.
        Err(e) => Ok(json_response(
            502,
            &json!({"error": {"code": "upstream_error", "message": e.to_string(), "upstream_status": e.status(), "retryable": e.is_retryable()}}),
        )),
    }
}
