//! Flows: the space's and a tenant's, a flow's page with its graph and trigger, the editor
//! (JSON or YAML, validated by the API on save, its errors shown beside the text), pausing
//! and activating, and a run by hand.

use http::Method;
use maud::{Markup, html};
use serde_json::{Value, json};
use switchyard::domain::access::Permission;

use super::executions::{self, tenants};
use super::view::{self, Nav, seg, status, text, time_of};
use super::{BASE, Ctx, Failure, PageResult, graph};

/// A new flow's starting text.
const TEMPLATE: &str = r#"{
  "id": "my-flow",
  "name": "My flow",
  "trigger": {"type": "manual"},
  "steps": [
    {"id": "greet", "kind": "transform", "expr": "{hello: .trigger.input}"}
  ]
}"#;

/// The console path of a flow.
fn flow_href(tenant: Option<&str>, id: &str) -> String {
    match tenant {
        Some(t) => format!("{BASE}/flows/tenant/{}/{}", seg(t), seg(id)),
        None => format!("{BASE}/flows/space/{}", seg(id)),
    }
}

/// The API path of a flow (or of the flows of its owner, with no id).
fn api_path<'a>(tenant: Option<&'a str>, id: Option<&'a str>) -> Vec<&'a str> {
    let mut path = match tenant {
        Some(t) => vec!["tenants", t, "workflows"],
        None => vec!["workflows"],
    };
    path.extend(id);
    path
}

fn trigger_text(t: &Value) -> String {
    let mut out = text(t, "type").to_string();
    for field in ["connector", "cron", "resource"] {
        if let Some(v) = t[field].as_str() {
            out.push_str(" · ");
            out.push_str(v);
        }
    }
    if let Some(events) = t["events"].as_array() {
        let names: Vec<&str> = events.iter().filter_map(Value::as_str).collect();
        out.push_str(&format!(" · {}", names.join(", ")));
    }
    out
}

fn flows_table(flows: &[Value], tenant: Option<&str>) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th { "Flow" } th { "Trigger" } th { "Version" } th { "Status" } th { "Updated" } } }
            tbody { @for f in flows { tr data-flow=(text(f, "id")) {
                td { a href=(flow_href(tenant, text(f, "id"))) { (text(f, "name")) } br; span.muted { (text(f, "id")) } }
                td { (trigger_text(&f["trigger"])) }
                td { (f["version"].as_u64().unwrap_or(0)) }
                td { (status(text(f, "status"))) }
                td { (time_of(&f["updated_at"])) }
            } } }
        } }
    }
}

/// `GET /console/flows?tenant=`.
pub async fn list(c: &Ctx<'_>) -> PageResult {
    let q = c.query();
    let known = tenants(c, 200).await?;
    let tenant = q.get("tenant").cloned().unwrap_or_default();
    let space_flows = c.get(&["workflows"], &[("limit", "200")]).await?;
    let space_flows = space_flows["items"].as_array().cloned().unwrap_or_default();
    let tenant_flows = match tenant.is_empty() {
        true => Vec::new(),
        false => {
            let page = c.get(&["tenants", &tenant, "workflows"], &[("limit", "200")]).await?;
            page["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let body = html! {
        @if c.allows(Permission::WorkflowsCreate) {
            p { a.button href={(BASE) "/flows/new"} { "New flow" } }
        }
        h2 { "Space-wide flows" }
        p.muted { "They run for every active tenant of the space." }
        @if space_flows.is_empty() { p.empty { "No space-wide flows yet." } } @else { (flows_table(&space_flows, None)) }
        h2 { "A tenant's own flows" }
        form.filters method="get" action={(BASE) "/flows"} {
            label for="tenant" { "Tenant"
                select #tenant name="tenant" {
                    option value="" { "Choose a tenant" }
                    @for t in &known { option value=(text(t, "id")) selected[text(t, "id") == tenant] { (text(t, "id")) } }
                }
            }
            button type="submit" { "Show" }
        }
        @if !tenant.is_empty() {
            @if tenant_flows.is_empty() { p.empty { (tenant) " has no flows of its own." } } @else { (flows_table(&tenant_flows, Some(&tenant))) }
        }
    };
    Ok(c.page("Flows", Nav::Flows, body))
}

/// The editor: the text, where it goes, and the API's error beside it.
fn editor(c: &Ctx<'_>, action: &str, text_value: &str, error: Option<&Value>, owner_field: Option<Markup>) -> Markup {
    html! {
        form.stack method="post" action=(action) {
            (view::csrf(c))
            @if let Some(field) = owner_field { (field) }
            @if let Some(e) = error {
                div.error role="alert" #definition-error {
                    strong { "Not saved: " } (e["error"]["message"].as_str().unwrap_or("the definition is not valid"))
                    @if let Some(step) = e["error"]["details"]["step"].as_str() { br; "Step: " code { (step) } }
                    @if let Some(field) = e["error"]["details"]["field"].as_str() { br; "Field: " code { (field) } }
                }
            }
            label for="definition" { "Definition (JSON or YAML; see " a href="/api/v1/schemas/flow.json" { "the schema" } ")"
                textarea #definition name="definition" spellcheck="false" aria-describedby=[error.map(|_| "definition-error")] { (text_value) }
            }
            button type="submit" { "Save" }
        }
    }
}

/// The text as the API takes it: JSON when it parses as JSON, else YAML.
fn definition_body(text_value: &str) -> (&'static str, bytes::Bytes) {
    let media = match serde_json::from_str::<Value>(text_value) {
        Ok(_) => "application/json",
        Err(_) => "application/yaml",
    };
    (media, bytes::Bytes::copy_from_slice(text_value.as_bytes()))
}

/// `GET /console/flows/new`.
pub async fn new(c: &Ctx<'_>) -> PageResult {
    let known = tenants(c, 200).await?;
    Ok(c.page(
        "New flow",
        Nav::Flows,
        editor(c, &format!("{BASE}/flows"), TEMPLATE, None, Some(owner_select(&known, ""))),
    ))
}

fn owner_select(known: &[Value], chosen: &str) -> Markup {
    html! {
        label for="owner" { "Owner"
            select #owner name="owner" {
                option value="" selected[chosen.is_empty()] { "The space (runs for every tenant)" }
                @for t in known { option value=(text(t, "id")) selected[text(t, "id") == chosen] { "Tenant " (text(t, "id")) } }
            }
        }
    }
}

/// `POST /console/flows`: `owner` (empty: the space) and `definition`.
pub async fn create(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let owner = form.get("owner").cloned().unwrap_or_default();
    let definition = form.get("definition").cloned().unwrap_or_default();
    let tenant = Some(owner.as_str()).filter(|o| !o.is_empty());
    let answer = c.api_with(Method::POST, &api_path(tenant, None), &[], Some(definition_body(&definition)), &[]).await;
    if !answer.ok() {
        let known = tenants(c, 200).await?;
        let form =
            editor(c, &format!("{BASE}/flows"), &definition, Some(&answer.body), Some(owner_select(&known, &owner)));
        return Ok(view::html(answer.status, view::layout(c, "New flow", Nav::Flows, form)));
    }
    Ok(view::redirect(&flow_href(tenant, text(&answer.body, "id"))))
}

/// A flow's routes: `GET` its page, `POST` its definition, `POST status`, `POST run`.
pub async fn route(c: &Ctx<'_>, method: &Method, tenant: Option<&str>, id: &str, rest: &[&str]) -> PageResult {
    match (method, rest) {
        (&Method::GET, []) => page(c, tenant, id, None, None, None).await,
        (&Method::POST, []) => save(c, tenant, id).await,
        (&Method::POST, ["status"]) => set_status(c, tenant, id).await,
        (&Method::POST, ["run"]) => run(c, tenant, id).await,
        _ => Err(Failure::Request(404, "There is no such page in the console.".into())),
    }
}

/// A flow's page, optionally with the text of a failed save and its error.
/// A flow's page; after a failed save, with the posted text, the version it was based on and
/// the API's error (so a second Save after a conflict does not overwrite the other change).
async fn page(
    c: &Ctx<'_>,
    tenant: Option<&str>,
    id: &str,
    draft: Option<&str>,
    based_on: Option<&str>,
    error: Option<&Value>,
) -> PageResult {
    let asked = c.query().get("version").cloned().unwrap_or_default();
    let flow = c.get(&api_path(tenant, Some(id)), &[("version", &asked)]).await?;
    // The newest version: the one a save must follow (a restore saves an old one as newest).
    let current = flow["current_version"].as_u64().or(flow["version"].as_u64()).unwrap_or(0);
    let href = flow_href(tenant, id);
    let definition = &flow["definition"];
    let nodes: Vec<graph::Node<'_>> = definition["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| graph::Node {
                    id: text(s, "id"),
                    kind: text(s, "kind"),
                    depends_on: s["depends_on"]
                        .as_array()
                        .map(|d| d.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default(),
                    status: "pending",
                })
                .collect()
        })
        .unwrap_or_default();
    let state = text(&flow, "status");
    let known = match tenant {
        Some(t) => vec![json!({"id": t, "name": t})],
        None => tenants(c, 200).await?,
    };
    let shown_version = flow["version"].as_u64().unwrap_or(0);
    let version = based_on.map(str::to_string).unwrap_or_else(|| current.to_string());
    let mut shown = definition.clone();
    if let Some(map) = shown.as_object_mut() {
        map.insert("id".into(), json!(id));
    }
    let text_value = draft.map(str::to_string).unwrap_or_else(|| view::pretty(&shown));
    let recent = match (c.allows(Permission::ExecutionsRead), tenant) {
        (true, Some(t)) => executions::recent(c, t, &[("flow", id)], 10).await?.0,
        _ => Vec::new(),
    };
    let body = html! {
        dl.facts {
            dt { "Owner" } dd { @match tenant { Some(t) => { "tenant " a href={(BASE) "/tenants/" (seg(t))} { (t) } }, None => "the space (every tenant)" } }
            dt { "Trigger" } dd { (trigger_text(&flow["trigger"])) }
            dt { "Version" } dd {
                (shown_version) @if shown_version != current { strong { " — an earlier version; the current one is " (current) } }
                br; span.muted { "Every save is a new version; runs keep the version they started on. " }
                @for v in (1..=current).rev().take(20) {
                    @if v == shown_version { strong { "v" (v) } } @else { a href={(href) "?version=" (v)} { "v" (v) } }
                    " "
                }
            }
            dt { "Status" } dd { (status(state)) }
            dt { "Updated" } dd { (time_of(&flow["updated_at"])) }
        }
        @if state == "active" {
            (view::action_button(c, Permission::WorkflowsDeploy, &format!("{href}/status"), &[("status", "paused")], "Pause", Some("Pause this flow? Its trigger stops starting runs.")))
        } @else {
            (view::action_button(c, Permission::WorkflowsDeploy, &format!("{href}/status"), &[("status", "active")], "Activate", None))
        }
        h2 { "Steps" }
        div.scroll { (graph::dag(&nodes)) }
        @if c.allows(Permission::WorkflowsExecute) && state == "active" && shown_version == current {
            h2 { "Run it now" }
            form.stack method="post" action={(href) "/run"} {
                (view::csrf(c))
                label for="run-tenant" { "For tenant"
                    select #run-tenant name="tenant" required {
                        @for t in &known { option value=(text(t, "id")) { (text(t, "id")) } }
                    }
                }
                label for="run-input" { "Input (JSON)" textarea #run-input.short name="input" spellcheck="false" { "{}" } }
                button type="submit" { "Run" }
            }
        }
        @if tenant.is_some() && c.allows(Permission::ExecutionsRead) {
            h2 { "Recent executions" }
            @if recent.is_empty() { p.muted { "None yet." } } @else { (executions::table(&recent)) }
        }
        @if c.allows(Permission::WorkflowsUpdate) {
            h2 { @if shown_version == current { "Edit" } @else { "Restore version " (shown_version) " (saved as version " (current + 1) ")" } }
            (editor(c, &href, &text_value, error, Some(html! { input type="hidden" name="version" value=(version); })))
        } @else {
            h2 { "Definition" }
            pre { (text_value) }
        }
    };
    let status_code = if error.is_some() { 400 } else { 200 };
    Ok(view::html(status_code, view::layout(c, &format!("Flow {}", text(&flow, "name")), Nav::Flows, body)))
}

/// `POST` a flow's definition: a new version, conditional on the version the editor showed.
async fn save(c: &Ctx<'_>, tenant: Option<&str>, id: &str) -> PageResult {
    let form = c.form();
    let definition = form.get("definition").cloned().unwrap_or_default();
    let version = form.get("version").cloned().unwrap_or_default();
    let headers: Vec<(&str, &str)> = if version.is_empty() { vec![] } else { vec![("if-match", version.as_str())] };
    let answer =
        c.api_with(Method::PUT, &api_path(tenant, Some(id)), &[], Some(definition_body(&definition)), &headers).await;
    if !answer.ok() {
        let mut failed = page(c, tenant, id, Some(&definition), Some(&version), Some(&answer.body)).await?;
        *failed.status_mut() = http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_REQUEST);
        return Ok(failed);
    }
    Ok(view::redirect(&flow_href(tenant, id)))
}

/// `POST …/status`: `active` or `paused`.
async fn set_status(c: &Ctx<'_>, tenant: Option<&str>, id: &str) -> PageResult {
    let wanted = c.form().get("status").cloned().unwrap_or_default();
    if !matches!(wanted.as_str(), "active" | "paused") {
        return Err(Failure::Request(400, "status is active or paused".into()));
    }
    c.api(Method::PATCH, &api_path(tenant, Some(id)), &[], Some(&json!({"status": wanted}))).await.into_ok()?;
    Ok(view::redirect(&flow_href(tenant, id)))
}

/// `POST …/run`: `tenant` and `input` (JSON); to the new execution.
async fn run(c: &Ctx<'_>, tenant: Option<&str>, id: &str) -> PageResult {
    let form = c.form();
    let run_for = tenant.map(str::to_string).or_else(|| form.get("tenant").cloned()).unwrap_or_default();
    let raw = form.get("input").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("{}");
    let input: Value =
        serde_json::from_str(raw).map_err(|e| Failure::Request(400, format!("The input is not JSON: {e}")))?;
    let started = c
        .api(Method::POST, &["tenants", &run_for, "workflows", id, "run"], &[], Some(&json!({"input": input})))
        .await
        .into_ok()?;
    let execution = started["execution_id"].as_str().unwrap_or("");
    Ok(view::redirect(&format!("{BASE}/tenants/{}/executions/{}", seg(&run_for), seg(execution))))
}
