//! Tenants: the list with plan, status, quota use and connection health; creating, suspending
//! and resuming one; a tenant's page.

use http::Method;
use maud::{Markup, html};
use serde_json::{Value, json};
use switchyard::domain::access::Permission;

use super::view::{self, Nav, seg, status, text, time_of};
use super::{BASE, Ctx, Failure, PageResult, executions};

/// One dimension's use as a bar (`meter`), with its numbers.
pub fn usage_bar(d: &Value) -> Markup {
    let used = d["used"].as_u64().unwrap_or(0);
    let name = text(d, "dimension");
    let unit = match text(d, "unit") {
        "count" | "" => String::new(),
        unit => format!(" {unit}"),
    };
    match d["limit"].as_u64() {
        Some(limit) => {
            let percent = d["percent_used"].as_f64().unwrap_or(0.0);
            html! {
                div.usage {
                    label { (name) " "
                        meter min="0" max=(limit.max(1)) low=((limit as f64 * 0.8) as u64) high=((limit as f64 * 0.95) as u64)
                              optimum="0" value=(used.min(limit.max(1))) { (percent) "%" }
                        " " (used) " / " (limit) (unit) " " span.muted { "(" (percent) "%, " (text(d, "mode")) ")" }
                    }
                }
            }
        }
        None => html! { div.usage { (name) " " (used) (unit) " " span.muted { "(unlimited)" } } },
    }
}

/// `GET /console/tenants`.
pub async fn list(c: &Ctx<'_>) -> PageResult {
    let q = c.query();
    let cursor = q.get("cursor").cloned().unwrap_or_default();
    let page = c.get(&["tenants"], &[("limit", "50"), ("cursor", &cursor)]).await?;
    let tenants = page["items"].as_array().cloned().unwrap_or_default();
    // Usage of the same page (at most 50 a page in the API).
    let usage = match c.allows(Permission::QuotasRead) {
        true => c.get(&["usage"], &[("limit", "50"), ("cursor", &cursor)]).await?,
        false => Value::Null,
    };
    let usage_of = |id: &str| usage["tenants"].as_array().and_then(|all| all.iter().find(|u| text(u, "tenant") == id));
    let body = html! {
        @if c.allows(Permission::TenantsCreate) {
            details {
                summary { "Create a tenant" }
                form.stack method="post" action={(BASE) "/tenants"} {
                    (view::csrf(c))
                    label for="new-id" { "Id (letters, digits, - and _)" input #new-id name="id" required maxlength="64" pattern="[A-Za-z0-9_-]+"; }
                    label for="new-name" { "Name" input #new-name name="name" maxlength="200"; }
                    label for="new-plan" { "Plan"
                        select #new-plan name="plan" {
                            option value="" { "The space's plan" }
                            @for p in ["starter", "growth", "enterprise"] { option value=(p) { (p) } }
                        }
                    }
                    button type="submit" { "Create tenant" }
                }
            }
        }
        @if tenants.is_empty() {
            p.empty { "No tenants yet. A tenant is one of your customers: create one, then enable the connectors it uses." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Tenant" } th { "Plan" } th { "Status" } th { "Events today" } th { "API calls this minute" } th { "Created" } } }
                tbody { @for t in &tenants {
                    @let id = text(t, "id");
                    @let dims = usage_of(id).and_then(|u| u["dimensions"].as_array());
                    @let dim = |name: &str| dims.and_then(|d| d.iter().find(|x| text(x, "dimension") == name));
                    tr data-tenant=(id) {
                        td { a href={(BASE) "/tenants/" (seg(id))} { (id) } br; span.muted { (text(t, "name")) } }
                        td { (usage_of(id).map(|u| text(u, "plan")).filter(|p| !p.is_empty()).unwrap_or(t["plan"].as_str().unwrap_or("space's"))) }
                        td { (status(text(t, "status"))) }
                        td { @if let Some(d) = dim("events_per_day") { (usage_bar(d)) } }
                        td { @if let Some(d) = dim("api_calls_per_minute") { (usage_bar(d)) } }
                        td { (time_of(&t["created_at"])) }
                    }
                } }
            } }
            (view::next_link(&format!("{BASE}/tenants"), &[], &page["next_cursor"]))
        }
    };
    Ok(c.page("Tenants", Nav::Tenants, body))
}

/// `POST /console/tenants`: `id`, `name`, `plan`.
pub async fn create(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let id = form.get("id").map(|s| s.trim()).unwrap_or("");
    let mut body = json!({"id": id});
    if let Some(name) = form.get("name").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        body["name"] = json!(name);
    }
    if let Some(plan) = form.get("plan").filter(|s| !s.is_empty()) {
        body["plan"] = json!(plan);
    }
    let created = c.api(Method::POST, &["tenants"], &[], Some(&body)).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/tenants/{}", seg(text(&created, "id")))))
}

/// `POST /console/tenants/{t}/status`: `status` = `active` or `suspended`.
pub async fn set_status(c: &Ctx<'_>, tenant: &str) -> PageResult {
    let wanted = c.form().get("status").cloned().unwrap_or_default();
    if !matches!(wanted.as_str(), "active" | "suspended") {
        return Err(Failure::Request(400, "status is active or suspended".into()));
    }
    c.api(Method::PATCH, &["tenants", tenant], &[], Some(&json!({"status": wanted}))).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/tenants/{}", seg(tenant))))
}

/// `GET /console/tenants/{t}`.
pub async fn page(c: &Ctx<'_>, tenant: &str) -> PageResult {
    let t = c.get(&["tenants", tenant], &[]).await?;
    let href = format!("{BASE}/tenants/{}", seg(tenant));
    let connections = match c.allows(Permission::ConnectionsRead) {
        true => c.get(&["tenants", tenant, "credentials"], &[]).await?,
        false => Value::Null,
    };
    let health = match c.allows(Permission::ConnectionsRead) {
        true => c.get(&["tenants", tenant, "health"], &[]).await?,
        false => Value::Null,
    };
    let usage = match c.allows(Permission::QuotasRead) {
        true => c.get(&["tenants", tenant, "usage"], &[]).await?,
        false => Value::Null,
    };
    let flows = match c.allows(Permission::WorkflowsRead) {
        true => c.get(&["tenants", tenant, "workflows"], &[("limit", "100")]).await?,
        false => Value::Null,
    };
    let effective = match c.allows(Permission::ConfigRead) {
        true => c.get(&["tenants", tenant, "config", "effective"], &[]).await?,
        false => Value::Null,
    };
    let quotas = match c.allows(Permission::QuotasRead) {
        true => c.get(&["tenants", tenant, "quotas"], &[]).await?,
        false => Value::Null,
    };
    let failures = match c.allows(Permission::ExecutionsRead) {
        true => executions::recent(c, tenant, &[("status", "failed")], 10).await?.0,
        false => Vec::new(),
    };
    let state = text(&t, "status");
    let body = html! {
        dl.facts {
            dt { "Name" } dd { (text(&t, "name")) }
            dt { "Status" } dd { (status(state)) }
            dt { "Plan" } dd { (usage["plan"].as_str().or(t["plan"].as_str()).unwrap_or("the space's")) }
            dt { "Created" } dd { (time_of(&t["created_at"])) }
        }
        @if state == "active" {
            (view::action_button(c, Permission::TenantsUpdate, &format!("{href}/status"), &[("status", "suspended")], "Suspend",
                Some("Suspend this tenant? Its webhooks, polls, schedules and runs are refused until it is resumed.")))
        } @else {
            (view::action_button(c, Permission::TenantsUpdate, &format!("{href}/status"), &[("status", "active")], "Resume", None))
        }
        h2 { "Connections" }
        @match connections["items"].as_array() {
            Some(items) if !items.is_empty() => {
                div.scroll { table {
                    thead { tr { th { "Connector" } th { "Enabled" } th { "Credentials" } th { "Health" } th { "Expires" } } }
                    tbody { @for k in items {
                        @let connector = text(k, "connector");
                        @let state = health["connections"].as_array()
                            .and_then(|all| all.iter().find(|h| text(h, "connector") == connector))
                            .map(|h| text(h, "state")).unwrap_or("");
                        tr {
                            td { (connector) }
                            td { @if k["enabled"] == true { "yes" } @else { "no" } }
                            td { @if k["connected"] == true { (k["kind"].as_str().unwrap_or("connected")) } @else { span.muted { "none" } } }
                            td { (status(if state.is_empty() { text(k, "health") } else { state })) }
                            td { (time_of(&k["expires_at"])) }
                        }
                    } }
                } }
            }
            _ => { p.empty { "No connectors enabled for this tenant yet: enable one on the " a href={(BASE) "/connectors?tenant=" (seg(tenant))} { "Connectors" } " page." } }
        }
        @if let Some(polls) = health["polls"].as_array().filter(|p| !p.is_empty()) {
            h2 { "Polls" }
            div.scroll { table {
                thead { tr { th { "Connector" } th { "Resource" } th { "Healthy" } th { "Last success" } th { "Lag" } th { "Failures" } th { "Last error" } } }
                tbody { @for poll in polls { tr {
                    td { (text(poll, "connector")) } td { (text(poll, "resource")) }
                    td { (status(if poll["healthy"] == true { "ok" } else { "failing" })) }
                    td { (time_of(&poll["last_success_at"])) }
                    td { (poll["lag_secs"].as_i64().unwrap_or(0)) " s" }
                    td { (poll["failures"].as_u64().unwrap_or(0)) }
                    td { (poll["last_error"].as_str().unwrap_or("")) }
                } } }
            } }
        }
        @if let Some(dims) = usage["dimensions"].as_array() {
            h2 { "Quotas" }
            @for d in dims { (usage_bar(d)) }
            @if !quotas.is_null() {
                details {
                    summary { "This tenant's quota overrides" }
                    p.muted { "Per dimension, a " code { "limit" } " (a number or " code { "\"unlimited\"" } ") and a " code { "mode" }
                        " (hard_block, soft_warning, queue_for_later, overage) over the plan's: see docs/quotas.md." }
                    (view::json_editor(c, Permission::QuotasUpdate, &format!("{href}/quotas"), "tenant-quotas", "Overrides (JSON)", &quotas["quotas"]))
                }
            }
        }
        @if let Some(keys) = effective["keys"].as_array() {
            h2 { "Configuration" }
            p.muted { "Every effective value and the level that set it (platform → space → tenant)." }
            @if keys.is_empty() { p.muted { "Nothing is set at any level: the built-in defaults apply." } }
            @else {
                div.scroll { table {
                    thead { tr { th { "Key" } th { "Value" } th { "Set by" } } }
                    tbody { @for k in keys { tr data-config-key=(text(k, "key")) {
                        td { code { (text(k, "key")) } } td { code { (k["value"].to_string()) } } td { (text(k, "source")) }
                    } } }
                } }
            }
            details {
                summary { "This tenant's own level" }
                (view::json_editor(c, Permission::ConfigUpdate, &format!("{href}/config"), "tenant-config", "Tenant configuration (JSON)", &t["config"]))
            }
        }
        @if let Some(items) = flows["items"].as_array() {
            h2 { "Its own flows" }
            @if items.is_empty() { p.muted { "None (space-wide flows run for it too: see " a href={(BASE) "/flows"} { "Flows" } ")." } }
            ul { @for f in items { li { a href={(BASE) "/flows/tenant/" (seg(tenant)) "/" (seg(text(f, "id")))} { (text(f, "name")) } " " (status(text(f, "status"))) } } }
        }
        @if c.allows(Permission::ExecutionsRead) {
            h2 { "Recent failures" }
            @if failures.is_empty() { p.muted { "No failed executions." } } @else { (executions::table(&failures)) }
        }
    };
    Ok(c.page(&format!("Tenant {tenant}"), Nav::Tenants, body))
}

/// `POST /console/tenants/{t}/quotas` or `…/config`: the JSON document in the field `json`.
pub async fn put_json(c: &Ctx<'_>, tenant: &str, what: &str) -> PageResult {
    let mut document = c.json_field()?;
    if document.is_null() {
        document = json!({});
    }
    c.api(Method::PUT, &["tenants", tenant, what], &[], Some(&document)).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/tenants/{}", seg(tenant))))
}
