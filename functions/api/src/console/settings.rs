//! Settings: API keys (created — shown once — and revoked), members and roles, the space's
//! configuration, alert rules, and the audit log.

use http::Method;
use maud::html;
use serde_json::{Value, json};
use switchyard::domain::access::Permission;

use super::executions::tenants;
use super::view::{self, Nav, seg, text, time_of};
use super::{BASE, Ctx, Failure, PageResult};

/// A new alert rule's starting text.
const ALERT_TEMPLATE: &str =
    r#"{"name": "Failures", "metric": "error_rate", "threshold": 10, "window_hours": 1, "tenant": "acme"}"#;

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
    let roles = read_if(c, Permission::RolesRead, &["roles"], &[]).await?;
    let space_quotas = read_if(c, Permission::QuotasRead, &["quotas"], &[]).await?;
    let role_names: Vec<String> = roles["items"]
        .as_array()
        .map(|all| all.iter().map(|r| text(r, "name").to_string()).filter(|n| n != "tenant").collect())
        .unwrap_or_else(|| ["owner", "admin", "developer", "operator", "viewer"].map(String::from).to_vec());
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
        @if c.allows(Permission::MembersUpdate) {
            details {
                summary { "Invite someone" }
                form.stack method="post" action={(BASE) "/settings/members"} {
                    (view::csrf(c))
                    label for="member-id" { "Email (they sign in through the identity provider with it verified) or subject"
                        input #member-id name="member" required maxlength="320"; }
                    label for="member-issuer" { "Issuer (only for a subject, when several identity providers are configured)"
                        input #member-issuer name="issuer" type="url" maxlength="2048"; }
                    label for="member-role" { "Role"
                        select #member-role name="role" { @for r in &role_names { option value=(r) selected[r == "viewer"] { (r) } } }
                    }
                    button type="submit" { "Invite" }
                }
            }
        }
        @match members["items"].as_array() {
            Some(items) if !items.is_empty() => {
                div.scroll { table {
                    thead { tr { th { "Member" } th { "Email" } th { "Role" } th { "Since" } th { "" } } }
                    tbody { @for m in items {
                        @let id = text(m, "id");
                        tr data-member=(id) {
                            td { (m["subject"].as_str().unwrap_or(if id.starts_with("inv_") { "invited" } else { id })) }
                            td { (m["email"].as_str().unwrap_or("–")) }
                            td {
                                @if c.allows(Permission::MembersUpdate) {
                                    form.inline method="post" action={(BASE) "/settings/members"} {
                                        (view::csrf(c))
                                        input type="hidden" name="member" value=(id);
                                        label.sr for={"role-" (id)} { "Role of " (id) }
                                        select #{"role-" (id)} name="role" {
                                            // The member's own role first when it is not offered (a deleted custom role).
                                            @if !role_names.iter().any(|r| r == text(m, "role")) {
                                                option value=(text(m, "role")) selected { (text(m, "role")) }
                                            }
                                            @for r in &role_names { option value=(r) selected[r.as_str() == text(m, "role")] { (r) } }
                                        }
                                        button.secondary type="submit" { "Change" }
                                    }
                                } @else { (text(m, "role")) }
                            }
                            td { (time_of(&m["created_at"])) }
                            td { (view::action_button(c, Permission::MembersDelete, &format!("{BASE}/settings/members/{}/remove", seg(id)), &[], "Remove",
                                Some("Remove this member from the space?"))) }
                        }
                    } }
                } }
            }
            Some(_) => { p.muted { "No members yet: people sign in with keys, or through the identity provider once invited." } }
            None => { p.muted { "Your role may not see the members." } }
        }
        @if let Some(items) = roles["items"].as_array() {
            h2 { "Roles" }
            div.scroll { table {
                thead { tr { th { "Role" } th { "Kind" } th { "Permissions" } } }
                tbody { @for r in items { tr {
                    td { (text(r, "name")) } td { @if r["built_in"] == true { "built in" } @else { "custom" } }
                    td { span.muted { @for p in r["permissions"].as_array().into_iter().flatten() { (p.as_str().unwrap_or("")) " " } } }
                } } }
            } }
            p.muted { "Custom roles: " code { "PUT /api/v1/roles/{name}" } " with a list of permissions (docs/permissions.md)." }
        }
        @if !config.is_null() {
            h2 { "Space configuration" }
            p.muted { "The space level of the cascade (platform → space → tenant → integration → flow); what it resolves to with the platform's defaults is below. A tenant's page shows its effective values and the level each came from." }
            (view::json_editor(c, Permission::ConfigUpdate, &format!("{BASE}/settings/config"), "space-config", "Space configuration (JSON)", &config["config"]))
            details { summary { "Effective (platform and space)" } pre { (view::pretty(&config["effective"])) } }
        }
        @if !space_quotas.is_null() {
            h2 { "Quota overrides for the whole space" }
            (view::json_editor(c, Permission::QuotasUpdate, &format!("{BASE}/settings/quotas"), "space-quotas", "Overrides (JSON)", &space_quotas["quotas"]))
        }
        @if let Some(rules) = alerts["items"].as_array() {
            h2 { "Alert rules" }
            @if rules.is_empty() { p.muted { "No alert rules yet." } }
            @else { div.scroll { table {
                thead { tr { th { "Rule" } th { "Metric" } th { "Threshold" } th { "Window" } th { "Tenant" } th { "State" } th { "" } } }
                tbody { @for r in rules { tr data-alert=(text(r, "id")) {
                    td { (text(r, "id")) br; span.muted { (text(r, "name")) } } td { (text(r, "metric")) } td { (r["threshold"].to_string()) }
                    td { (r["window_hours"].as_u64().map(|h| format!("{h} h")).unwrap_or_default()) }
                    td { (r["tenant"].as_str().unwrap_or("–")) }
                    td { (view::status(if r["state"]["firing"] == true { "failing" } else { "ok" })) }
                    td { (view::action_button(c, Permission::AlertsUpdate, &format!("{BASE}/settings/alerts/{}/delete", seg(text(r, "id"))), &[], "Delete", Some("Delete this alert rule?"))) }
                } } }
            } } }
            @if c.allows(Permission::AlertsUpdate) {
                details {
                    summary { "Add or replace a rule" }
                    form.stack method="post" action={(BASE) "/settings/alerts"} {
                        (view::csrf(c))
                        label for="alert-id" { "Id" input #alert-id name="id" required maxlength="64" pattern="[A-Za-z0-9_-]+"; }
                        label for="alert-rule" { "Rule (JSON; metrics: error_rate, duration_p95, duration_p99, throughput_drop, dlq_depth, quota_usage — docs/quotas.md)"
                            textarea.short #alert-rule name="json" spellcheck="false" { (ALERT_TEMPLATE) } }
                        button type="submit" { "Save rule" }
                    }
                }
            }
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

/// `POST /console/settings/members`: `member` (an email, a subject or a member id) and `role`.
pub async fn put_member(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let member = form.get("member").map(|m| m.trim()).unwrap_or("");
    if member.is_empty() {
        return Err(Failure::Request(400, "Name the person: an email or a subject.".into()));
    }
    let role = form.get("role").cloned().unwrap_or_default();
    let mut body = json!({"role": role});
    if let Some(issuer) = form.get("issuer").map(|i| i.trim()).filter(|i| !i.is_empty()) {
        body["issuer"] = json!(issuer);
    }
    c.api(Method::PUT, &["members", member], &[], Some(&body)).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/settings")))
}

/// `POST /console/settings/members/{m}/remove`.
pub async fn remove_member(c: &Ctx<'_>, member: &str) -> PageResult {
    c.api(Method::DELETE, &["members", member], &[], None).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/settings")))
}

/// `POST /console/settings/config` or `…/quotas`: the space's document in the field `json`.
pub async fn put_json(c: &Ctx<'_>, what: &str) -> PageResult {
    let mut document = c.json_field()?;
    if document.is_null() {
        document = json!({});
    }
    c.api(Method::PUT, &[what], &[], Some(&document)).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/settings")))
}

/// `POST /console/settings/alerts`: `id` and the rule in `json`.
pub async fn put_alert(c: &Ctx<'_>) -> PageResult {
    let id = c.form().get("id").map(|i| i.trim().to_string()).unwrap_or_default();
    // `events` and `signing-secret` are other operations at the same path, never rule ids.
    if id.is_empty() || id == "events" || id == "signing-secret" {
        return Err(Failure::Request(400, "Give the rule an id (not `events` or `signing-secret`).".into()));
    }
    let rule = c.json_field()?;
    c.api(Method::PUT, &["alerts", &id], &[], Some(&rule)).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/settings")))
}

/// `POST /console/settings/alerts/{a}/delete`.
pub async fn delete_alert(c: &Ctx<'_>, id: &str) -> PageResult {
    c.api(Method::DELETE, &["alerts", id], &[], None).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/settings")))
}
