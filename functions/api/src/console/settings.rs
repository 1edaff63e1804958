//! Settings: API keys (created — shown once — and revoked), members and roles, the space's
//! configuration, alert rules, and the audit log.

use http::Method;
use maud::html;
use serde_json::{Value, json};
use switchyard::domain::access::Permission;

use super::executions::tenants;
use super::view::{self, Nav, seg, text, time_of};
use super::{BASE, Ctx, Failure, PageResult};

/// Roles a key can be created with from the console.
const KEY_ROLES: [&str; 6] = ["admin", "developer", "operator", "viewer", "tenant", "owner"];

/// A section the caller may read, else nothing.
async fn read_if(
    c: &Ctx<'_>,
    permission: Permission,
    path: &[&str],
    params: &[(&str, &str)],
) -> Result<Value, Failure> {
    if !c.allows(permission) {
        return Ok(Value::Null);
    }
    c.get(path, params).await
}

/// `GET /console/settings`.
pub async fn page(c: &Ctx<'_>) -> PageResult {
    let keys = read_if(c, Permission::KeysRead, &["api-keys"], &[]).await?;
    let members = read_if(c, Permission::MembersRead, &["members"], &[]).await?;
    let config = read_if(c, Permission::ConfigRead, &["config"], &[]).await?;
    let alerts = read_if(c, Permission::AlertsRead, &["alerts"], &[]).await?;
    let known = match c.allows(Permission::KeysCreate) {
        true => tenants(c, 200).await?,
        false => Vec::new(),
    };
    let body = html! {
        h2 { "API keys" }
        @if c.allows(Permission::KeysCreate) {
            details {
                summary { "Create a key" }
                form.stack method="post" action={(BASE) "/settings/keys"} {
                    (view::csrf(c))
                    label for="key-name" { "Name" input #key-name name="name" required maxlength="200"; }
                    label for="key-role" { "Role"
                        select #key-role name="role" { @for r in KEY_ROLES { option value=(r) selected[r == "viewer"] { (r) } } }
                    }
                    label for="key-tenant" { "Tenant (only for the tenant role)"
                        select #key-tenant name="tenant" {
                            option value="" { "None" }
                            @for t in &known { option value=(text(t, "id")) { (text(t, "id")) } }
                        }
                    }
                    button type="submit" { "Create key" }
                }
            }
        }
        @match keys["items"].as_array() {
            Some(items) if !items.is_empty() => {
                div.scroll { table {
                    thead { tr { th { "Name" } th { "Prefix" } th { "Role" } th { "Tenant" } th { "Created" } th { "Last used" } th { "Expires" } th { "" } } }
                    tbody { @for k in items { tr data-key=(text(k, "id")) {
                        td { (text(k, "name")) } td { code { (text(k, "prefix")) "…" } } td { (text(k, "role")) }
                        td { (k["tenant"].as_str().unwrap_or("–")) }
                        td { (time_of(&k["created_at"])) } td { (time_of(&k["last_used_at"])) } td { (time_of(&k["expires_at"])) }
                        td { (view::action_button(c, Permission::KeysDelete, &format!("{BASE}/settings/keys/{}/revoke", seg(text(k, "id"))), &[], "Revoke",
                            Some("Revoke this key? Everything using it stops working."))) }
                    } } }
                } }
            }
            Some(_) => { p.muted { "No keys." } }
            None => { p.muted { "Your role may not see the keys." } }
        }
        h2 { "Members" }
        @match members["items"].as_array() {
            Some(items) if !items.is_empty() => {
                div.scroll { table {
                    thead { tr { th { "Member" } th { "Email" } th { "Role" } th { "Since" } } }
                    tbody { @for m in items { tr {
                        td { (m["username"].as_str().or(m["subject"].as_str()).unwrap_or(text(m, "id"))) }
                        td { (m["email"].as_str().unwrap_or("–")) } td { (text(m, "role")) } td { (time_of(&m["created_at"])) }
                    } } }
                } }
            }
            Some(_) => { p.muted { "No members: people sign in with keys, or through the identity provider once they are invited (" code { "PUT /api/v1/members/{id}" } ")." } }
            None => { p.muted { "Your role may not see the members." } }
        }
        @if !config.is_null() {
            h2 { "Space configuration" }
            p.muted { "The space level of the cascade (platform → space → tenant → integration → flow). A tenant's effective values, with the level each came from, are at " code { "GET /api/v1/tenants/{tenant}/config/effective" } "." }
            pre { (view::pretty(&config)) }
        }
        @if let Some(rules) = alerts["items"].as_array() {
            h2 { "Alert rules" }
            @if rules.is_empty() { p.muted { "No alert rules (" code { "PUT /api/v1/alerts/{id}" } ")." } }
            @else { div.scroll { table {
                thead { tr { th { "Rule" } th { "Metric" } th { "Threshold" } th { "Window" } th { "Last state" } } }
                tbody { @for r in rules { tr {
                    td { (text(r, "id")) } td { (text(r, "metric")) } td { (r["threshold"].to_string()) }
                    td { (r["window_hours"].as_u64().map(|h| format!("{h} h")).unwrap_or_default()) }
                    td { (r["firing"].as_bool().map(|f| if f { "firing" } else { "ok" }).unwrap_or("–")) }
                } } }
            } } }
        }
        @if c.allows(Permission::AuditRead) {
            h2 { "Audit log" }
            p { a href={(BASE) "/settings/audit"} { "Every write and every refusal in the space" } }
        }
    };
    Ok(c.page("Settings", Nav::Settings, body))
}

/// `POST /console/settings/keys`: the new key is shown once, on this page.
pub async fn create_key(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let mut body = json!({"name": form.get("name").map(|s| s.trim()).unwrap_or(""), "role": form.get("role").cloned().unwrap_or_default()});
    if let Some(t) = form.get("tenant").filter(|t| !t.is_empty()) {
        body["tenant"] = json!(t);
    }
    let created = c.api(Method::POST, &["api-keys"], &[], Some(&body)).await.into_ok()?;
    let done = html! {
        p.success role="status" { "Key " strong { (text(&created, "name")) } " created with role " (text(&created, "role")) "." }
        p { "Copy it now: it is shown only this once and cannot be read again." }
        p.secret #new-key { (text(&created, "key")) }
        p { a href={(BASE) "/settings"} { "Back to the settings" } }
    };
    let mut response = view::html(201, view::layout(c, "New API key", Nav::Settings, done));
    // Never kept by a cache or the history.
    response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /console/settings/keys/{k}/revoke`.
pub async fn revoke_key(c: &Ctx<'_>, key: &str) -> PageResult {
    c.api(Method::DELETE, &["api-keys", key], &[], None).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/settings")))
}

/// `GET /console/settings/audit?cursor=`.
pub async fn audit(c: &Ctx<'_>) -> PageResult {
    let cursor = c.query().get("cursor").cloned().unwrap_or_default();
    let page = c.get(&["audit"], &[("limit", "100"), ("cursor", &cursor)]).await?;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let body = html! {
        div.scroll { table {
            thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Resource" } th { "Outcome" } th { "Status" } } }
            tbody { @for r in &items { tr {
                td { (time_of(&r["at"])) }
                td { (text(r, "actor_kind")) " " (text(r, "actor")) @if let Some(e) = r["actor_email"].as_str() { br; span.muted { (e) } } }
                td { code { (text(r, "action")) } } td { (text(r, "resource")) } td { (text(r, "outcome")) } td { (r["status"].as_u64().unwrap_or(0)) }
            } } }
        } }
        (view::next_link(&format!("{BASE}/settings/audit"), &[], &page["next_cursor"]))
    };
    Ok(c.page("Audit log", Nav::Settings, body))
}
