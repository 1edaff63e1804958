//! Connectors: the catalog (auth kinds, actions, webhook schemes), the space's OAuth apps, and
//! a tenant's enablement of each.

use http::Method;
use maud::html;
use serde_json::{Value, json};
use switchyard::domain::access::Permission;

use super::executions::tenants;
use super::view::{self, Nav, seg, status, text};
use super::{BASE, Ctx, PageResult};

/// `GET /console/connectors?tenant=`.
pub async fn catalog(c: &Ctx<'_>) -> PageResult {
    let q = c.query();
    let tenant = q.get("tenant").cloned().unwrap_or_default();
    let catalog = c.get(&["connectors"], &[]).await?;
    let entries = catalog["items"].as_array().cloned().unwrap_or_default();
    let known = tenants(c, 200).await?;
    let enabled = match tenant.is_empty() || !c.allows(Permission::ConnectionsRead) {
        true => Value::Null,
        false => c.get(&["tenants", &tenant, "credentials"], &[]).await?,
    };
    let connection =
        |id: &str| enabled["items"].as_array().and_then(|all| all.iter().find(|k| text(k, "connector") == id));
    // Every connector's settings of the tenant in one call, for the editors below.
    let configured = match enabled.is_null() {
        true => Value::Null,
        false => c.get(&["tenants", &tenant, "connectors"], &[]).await?,
    };
    let settings_of = |id: &str| {
        configured["items"]
            .as_array()
            .and_then(|all| all.iter().find(|k| text(k, "connector") == id))
            .map(|k| k["settings"].clone())
            .unwrap_or(Value::Null)
    };
    let mut oauth_apps = Vec::new();
    for entry in &entries {
        if text(entry, "auth") == "oauth2" {
            let app = c.api(Method::GET, &["connectors", text(entry, "id"), "oauth-app"], &[], None).await;
            oauth_apps.push((text(entry, "id").to_string(), app.ok()));
        }
    }
    let body = html! {
        form.filters method="get" action={(BASE) "/connectors"} {
            label for="tenant" { "Enablement for tenant"
                select #tenant name="tenant" {
                    option value="" { "None" }
                    @for t in &known { option value=(text(t, "id")) selected[text(t, "id") == tenant] { (text(t, "id")) } }
                }
            }
            button type="submit" { "Show" }
        }
        @if !tenant.is_empty() {
            @if let Some(items) = enabled["items"].as_array().filter(|i| !i.is_empty()) {
                h2 { "Settings of " (tenant) "'s connectors" }
                @for k in items {
                    @let id = text(k, "connector");
                    details {
                        summary { (id) " " (status(text(k, "health"))) }
                        (settings_form(c, &tenant, id, &settings_of(id)))
                    }
                }
            }
        }
        @if c.allows(Permission::ConnectorsUpdate) && !oauth_apps.is_empty() {
            details {
                summary { "The space's OAuth apps" }
                p.muted { "The client your tenants authorize when they connect an OAuth connector. The secret is stored in Secrets Manager (or the embedded secrets store) and never shown again." }
                form.stack method="post" action={(BASE) "/connectors/oauth-app"} {
                    (view::csrf(c))
                    label for="oauth-connector" { "Connector"
                        select #oauth-connector name="connector" { @for (id, _) in &oauth_apps { option value=(id) { (id) } } }
                    }
                    label for="oauth-client-id" { "Client id" input #oauth-client-id name="client_id" required maxlength="512"; }
                    label for="oauth-client-secret" { "Client secret" input #oauth-client-secret name="client_secret" type="password" autocomplete="off" required maxlength="1024"; }
                    label for="oauth-redirect" { "Redirect URI (optional; empty keeps the one set, else the platform's callback)" input #oauth-redirect name="redirect_uri" type="url" maxlength="2048"; }
                    button type="submit" { "Save OAuth app" }
                }
            }
        }
        h2 { "Catalog" }
        div.scroll { table {
            thead { tr {
                th { "Connector" } th { "Auth" } th { "Webhooks" } th { "Actions" } th { "Resources" }
                @if !tenant.is_empty() { th { "For " (tenant) } }
            } }
            tbody { @for entry in &entries {
                @let id = text(entry, "id");
                tr data-connector=(id) {
                    td { strong { (text(entry, "name")) } br; span.muted { (id) } }
                    td { (text(entry, "auth"))
                        @if let Some((_, configured)) = oauth_apps.iter().find(|(k, _)| k == id) {
                            br; span.muted { @if *configured { "OAuth app set" } @else { "no OAuth app yet" } }
                        }
                    }
                    td { (entry["webhook"]["scheme"].as_str().unwrap_or("–")) }
                    td { @for a in entry["actions"].as_array().into_iter().flatten() { code { (text(a, "id")) } " " } }
                    td { @for r in entry["resources"].as_array().into_iter().flatten() { (r.as_str().unwrap_or("")) " " } }
                    @if !tenant.is_empty() {
                        td {
                            @let on = connection(id).is_some_and(|k| k["enabled"] == true);
                            @if let Some(k) = connection(id) { (status(text(k, "health"))) " " }
                            (view::action_button(c, Permission::ConnectionsUpdate,
                                &format!("{BASE}/tenants/{}/connectors/{}", seg(&tenant), seg(id)),
                                &[("enabled", if on { "false" } else { "true" })],
                                if on { "Disable" } else { "Enable" }, None))
                        }
                    }
                }
            } }
        } }
    };
    Ok(c.page("Connectors", Nav::Connectors, body))
}

/// A connector's settings for a tenant as a JSON editor (shown with `connections.update`).
fn settings_form(c: &Ctx<'_>, tenant: &str, connector: &str, settings: &Value) -> maud::Markup {
    view::json_editor(
        c,
        Permission::ConnectionsUpdate,
        &format!("{BASE}/tenants/{}/connectors/{}/settings", seg(tenant), seg(connector)),
        &format!("settings-{connector}"),
        "Settings (JSON, as the connector declares them)",
        settings,
    )
}

/// Write a tenant's connector with `enabled` or `settings` changed and the other kept (the API
/// replaces both at once).
async fn put_connector(
    c: &Ctx<'_>,
    tenant: &str,
    connector: &str,
    enabled: Option<bool>,
    settings: Option<Value>,
) -> PageResult {
    let path = ["tenants", tenant, "connectors", connector];
    let current = c.api(Method::GET, &path, &[], None).await;
    let current = if current.ok() { current.body } else { Value::Null };
    let enabled = enabled.unwrap_or_else(|| current["enabled"].as_bool().unwrap_or(true));
    let settings =
        settings.unwrap_or_else(|| Some(current["settings"].clone()).filter(Value::is_object).unwrap_or(json!({})));
    c.api(Method::PUT, &path, &[], Some(&json!({"enabled": enabled, "settings": settings}))).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/connectors?tenant={}", seg(tenant))))
}

/// `POST /console/tenants/{t}/connectors/{k}/settings`: the settings in `json`; enablement kept.
pub async fn set_settings(c: &Ctx<'_>, tenant: &str, connector: &str) -> PageResult {
    let settings = c.json_field()?;
    if !settings.is_object() {
        return Err(super::Failure::Request(400, "The settings are a JSON object.".into()));
    }
    put_connector(c, tenant, connector, None, Some(settings)).await
}

/// `POST /console/connectors/oauth-app`: `connector`, `client_id`, `client_secret`.
pub async fn set_oauth_app(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let connector = form.get("connector").cloned().unwrap_or_default();
    let mut body = json!({
        "client_id": form.get("client_id").map(|v| v.trim()).unwrap_or(""),
        "client_secret": form.get("client_secret").map(|v| v.trim()).unwrap_or(""),
    });
    // The API replaces the whole app: a redirect URI set before is kept unless one is given.
    let redirect = match form.get("redirect_uri").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        Some(given) => Some(Value::String(given.to_string())),
        None => {
            let current = c.api(Method::GET, &["connectors", &connector, "oauth-app"], &[], None).await;
            Some(current.body["redirect_uri"].clone()).filter(|v| current.ok() && v.is_string())
        }
    };
    if let Some(uri) = redirect {
        body["redirect_uri"] = uri;
    }
    c.api(Method::PUT, &["connectors", &connector, "oauth-app"], &[], Some(&body)).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/connectors")))
}

/// `POST /console/tenants/{t}/connectors/{k}` with `enabled`: its other settings are kept.
pub async fn set_enabled(c: &Ctx<'_>, tenant: &str, connector: &str) -> PageResult {
    let enabled = c.form().get("enabled").map(String::as_str) == Some("true");
    put_connector(c, tenant, connector, Some(enabled), None).await
}
