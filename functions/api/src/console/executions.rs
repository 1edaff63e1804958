//! Executions (the list, one execution drawn as a graph and a timeline, cancel and rerun), the
//! webhook event log and the dead-letter queues.

use std::collections::HashMap;

use http::Method;
use maud::{Markup, html};
use serde_json::{Value, json};
use switchyard::domain::access::Permission;

use super::view::{self, Nav, seg, status, text, time_of};
use super::{BASE, Ctx, Failure, PageResult, graph};

/// How many tenants a list "across all tenants" reads (the first ones by id); pick a tenant
/// to see the others.
pub const FANOUT_TENANTS: usize = 25;

/// The space's tenants (the first page of up to `limit`); none for a role that may not list
/// them.
pub async fn tenants(c: &Ctx<'_>, limit: usize) -> Result<Vec<Value>, Failure> {
    if !c.allows(Permission::TenantsRead) {
        return Ok(Vec::new());
    }
    let limit = limit.to_string();
    let page = c.get(&["tenants"], &[("limit", &limit)]).await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// A `datetime-local` value (read as UTC; with or without seconds) or RFC 3339, as the API
/// takes it.
fn instant(value: &str) -> String {
    let v = value.trim();
    let local =
        v.len() >= 16 && v.as_bytes().get(10) == Some(&b'T') && !v.ends_with('Z') && !v[10..].contains(['+', '-']);
    match (local, v.len()) {
        (true, 16) => format!("{v}:00Z"),
        (true, _) => format!("{v}Z"),
        _ => v.to_string(),
    }
}

/// The tenant a per-tenant page shows: the `tenant` parameter, else the first of `known`.
pub fn chosen_tenant(q: &HashMap<String, String>, known: &[Value]) -> String {
    q.get("tenant")
        .filter(|t| !t.is_empty())
        .cloned()
        .or_else(|| known.first().map(|t| text(t, "id").to_string()))
        .unwrap_or_default()
}

fn tenant_select(tenants: &[Value], chosen: &str, all_label: Option<&str>) -> Markup {
    html! {
        select #tenant name="tenant" {
            @if let Some(all) = all_label {
                option value="" selected[chosen.is_empty()] { (all) }
            }
            @for t in tenants {
                @let id = text(t, "id");
                option value=(id) selected[id == chosen] { (id) " — " (text(t, "name")) }
            }
        }
    }
}

fn execution_href(e: &Value) -> String {
    format!("{BASE}/tenants/{}/executions/{}", seg(text(e, "tenant")), seg(text(e, "id")))
}

fn duration_of(e: &Value) -> String {
    match (e["created_at"].as_i64(), e["finished_at"].as_i64()) {
        (Some(start), Some(end)) => view::duration(end - start),
        _ => "–".into(),
    }
}

fn trigger_of(e: &Value) -> String {
    let t = &e["trigger"];
    let mut out = text(t, "kind").to_string();
    for field in ["connector", "event_type"] {
        if let Some(v) = t[field].as_str() {
            out.push_str(" · ");
            out.push_str(v);
        }
    }
    out
}

/// Executions as a table.
pub fn table(executions: &[Value]) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr { th { "Started" } th { "Flow" } th { "Version" } th { "Tenant" } th { "Status" } th { "Duration" } th { "Trigger" } } }
                tbody {
                    @for e in executions {
                        tr data-execution=(text(e, "id")) {
                            td { a href=(execution_href(e)) { (time_of(&e["created_at"])) } }
                            td { (text(e, "flow_name")) br; span.muted { (text(&e["flow"], "id")) } }
                            td { (e["flow"]["version"].as_u64().unwrap_or(0)) }
                            td { (text(e, "tenant")) }
                            td { (status(text(e, "status"))) }
                            td { (duration_of(e)) }
                            td { (trigger_of(e)) }
                        }
                    }
                }
            }
        }
    }
}

/// What to do when there is nothing yet.
pub fn first_steps(c: &Ctx<'_>) -> Markup {
    let origin = super::session::origin(c.p, &c.req);
    html! {
        div.empty {
            p { strong { "No executions yet." } " A flow runs when its trigger fires: a webhook, a poll, a schedule, or a run by hand from the flow's page." }
            p { "Send a webhook to a tenant's connector (the dev server prints a signed one for the demo when it starts):" }
            pre { code { "curl -i -X POST " (origin) "/webhooks/{tenant}/{connector} \\\n  -H 'content-type: application/json' --data '{…}'" } }
        }
    }
}

/// Executions of one tenant, or the newest across the first tenants, merged by start.
pub async fn recent(
    c: &Ctx<'_>,
    tenant: &str,
    filters: &[(&str, &str)],
    limit: usize,
) -> Result<(Vec<Value>, Value), Failure> {
    let limit_text = limit.to_string();
    let mut params: Vec<(&str, &str)> = filters.to_vec();
    params.push(("limit", &limit_text));
    if !tenant.is_empty() {
        let page = c.get(&["tenants", tenant, "executions"], &params).await?;
        return Ok((page["items"].as_array().cloned().unwrap_or_default(), page["next_cursor"].clone()));
    }
    // Across tenants there is no shared cursor: the newest of each, merged.
    params.retain(|(k, _)| *k != "cursor");
    let mut all = Vec::new();
    for t in tenants(c, FANOUT_TENANTS).await? {
        let page = c.get(&["tenants", text(&t, "id"), "executions"], &params).await?;
        all.extend(page["items"].as_array().cloned().unwrap_or_default());
    }
    all.sort_by_key(|e| std::cmp::Reverse(e["created_at"].as_i64().unwrap_or(0)));
    all.truncate(limit);
    Ok((all, Value::Null))
}

/// `GET /console/executions?tenant=&flow=&status=&since=&until=&cursor=`.
pub async fn list(c: &Ctx<'_>) -> PageResult {
    let q = c.query();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("").trim().to_string();
    let (tenant, flow, state, since, until, cursor) =
        (get("tenant"), get("flow"), get("status"), get("since"), get("until"), get("cursor"));
    let (since_api, until_api) = (instant(&since), instant(&until));
    let filters = [
        ("flow", flow.as_str()),
        ("status", state.as_str()),
        ("since", since_api.as_str()),
        ("until", until_api.as_str()),
        ("cursor", cursor.as_str()),
    ];
    let known = tenants(c, 200).await?;
    let (executions, next) = recent(c, &tenant, &filters, 50).await?;
    let statuses = ["queued", "running", "waiting", "succeeded", "failed", "cancelled"];
    let body = html! {
        form.filters method="get" action={(BASE) "/executions"} {
            label for="tenant" { "Tenant" (tenant_select(&known, &tenant, Some("All tenants (first 25)"))) }
            label for="flow" { "Flow id" input #flow name="flow" value=(flow) maxlength="64"; }
            label for="status" { "Status"
                select #status name="status" {
                    option value="" { "Any" }
                    @for s in statuses { option value=(s) selected[s == state] { (s) } }
                }
            }
            label for="since" { "From (UTC)" input #since name="since" type="datetime-local" value=(since); }
            label for="until" { "To (UTC)" input #until name="until" type="datetime-local" value=(until); }
            button type="submit" { "Filter" }
        }
        @if executions.is_empty() {
            @if flow.is_empty() && state.is_empty() && since.is_empty() && until.is_empty() {
                (first_steps(c))
            } @else {
                p.empty { "No execution matches these filters." }
            }
        } @else {
            (table(&executions))
            (view::next_link(&format!("{BASE}/executions"), &[("tenant", &tenant), ("flow", &flow), ("status", &state), ("since", &since), ("until", &until)], &next))
        }
    };
    Ok(c.page("Executions", Nav::Executions, body))
}

/// `GET /console/tenants/{t}/executions/{e}`: the execution; while it runs, the page's script
/// reloads the live part every second.
pub async fn page(c: &Ctx<'_>, tenant: &str, id: &str) -> PageResult {
    let e = c.get(&["tenants", tenant, "executions", id], &[]).await?;
    let state = text(&e, "status");
    let final_state = matches!(state, "succeeded" | "failed" | "cancelled");
    let href = format!("{BASE}/tenants/{}/executions/{}", seg(tenant), seg(id));
    let records: Vec<&Value> = e["step_details"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    let by_step: HashMap<&str, &Value> = records.iter().map(|r| (text(r, "id"), *r)).collect();
    let summary_status: HashMap<&str, &str> = e["steps"]
        .as_array()
        .map(|steps| steps.iter().map(|s| (text(s, "id"), text(s, "status"))).collect())
        .unwrap_or_default();
    let nodes: Vec<graph::Node<'_>> = e["graph"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    let id = text(s, "id");
                    let status = by_step
                        .get(id)
                        .map(|r| text(r, "status"))
                        .or_else(|| summary_status.get(id).copied())
                        .filter(|s| !s.is_empty())
                        .unwrap_or(if final_state { "skipped" } else { "pending" });
                    graph::Node {
                        id,
                        kind: text(s, "kind"),
                        depends_on: s["depends_on"]
                            .as_array()
                            .map(|d| d.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default(),
                        status,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let start = e["created_at"].as_i64().unwrap_or(0);
    let end = e["finished_at"]
        .as_i64()
        .unwrap_or_else(|| c.p.now_ms())
        .max(records.iter().filter_map(|r| r["finished_at"].as_i64()).max().unwrap_or(start));
    let spans: Vec<graph::Span<'_>> = records
        .iter()
        .map(|r| graph::Span {
            label: text(r, "id"),
            status: text(r, "status"),
            start_ms: r["started_at"].as_i64().unwrap_or(start),
            end_ms: r["finished_at"].as_i64().unwrap_or(end),
            attempt: r["attempt"].as_u64().unwrap_or(1) as u32,
        })
        .collect();
    let has_failed_step = records.iter().any(|r| text(r, "status") == "failed");
    let live = html! {
        div #live data-live=(href) data-final=(if final_state { "true" } else { "false" }) data-status=(state) {
            dl.facts {
                dt { "Status" } dd { (status(state)) @if let Some(q) = e["queued_until"].as_i64() { " until " (view::time(q)) } }
                dt { "Flow" } dd { (text(&e, "flow_name")) " (" (text(&e["flow"], "id")) ", version " (e["flow"]["version"].as_u64().unwrap_or(0)) ")" }
                dt { "Tenant" } dd { a href={(BASE) "/tenants/" (seg(tenant))} { (tenant) } }
                dt { "Trigger" } dd { (trigger_of(&e)) }
                dt { "Started" } dd { (time_of(&e["created_at"])) }
                dt { "Finished" } dd { (time_of(&e["finished_at"])) }
                dt { "Duration" } dd { (duration_of(&e)) }
                dt { "Invocations" } dd { (e["invocations"].as_u64().unwrap_or(0)) }
            }
            @if let Some(error) = e["error"].as_object() {
                p.error role="alert" { strong { "Failed: " } (error.get("message").and_then(Value::as_str).unwrap_or("")) }
            }
            div.actions {
                @if !final_state {
                    (view::action_button(c, Permission::ExecutionsUpdate, &format!("{href}/cancel"), &[], "Cancel", Some("Cancel this execution?")))
                } @else {
                    (view::action_button(c, Permission::ExecutionsUpdate, &format!("{href}/rerun"), &[("from", "start")], "Rerun from the start", None))
                    @if has_failed_step || state == "failed" {
                        (view::action_button(c, Permission::ExecutionsUpdate, &format!("{href}/rerun"), &[("from", "failed")], "Rerun from the failed step", None))
                    }
                }
            }
            h2 { "Steps" }
            @if nodes.is_empty() {
                p.muted { "The flow version this execution ran is not available to draw." }
            } @else {
                div.scroll { (graph::dag(&nodes)) }
            }
            @if !spans.is_empty() {
                h2 { "Timeline" }
                div.scroll { (graph::timeline(&spans, start, end)) }
            }
            @for r in &records {
                details.step #{"step-" (text(r, "id"))} open[text(r, "status") == "failed"] {
                    summary { strong { (text(r, "id")) } " " (status(text(r, "status"))) " · " (text(r, "kind"))
                        " · attempt " (r["attempt"].as_u64().unwrap_or(1)) " · " (view::duration(r["duration_ms"].as_i64().unwrap_or(0))) }
                    @if let Some(error) = r.get("error").filter(|v| !v.is_null()) {
                        p.error { (error["message"].as_str().unwrap_or("")) }
                        pre { (view::pretty(error)) }
                    }
                    @if let Some(input) = r.get("input").filter(|v| !v.is_null()) { h3 { "Input" } pre { (view::pretty(input)) } }
                    @if let Some(output) = r.get("output").filter(|v| !v.is_null()) { h3 { "Output" } pre { (view::pretty(output)) } }
                }
            }
            h2 { "Run input" }
            pre { (view::pretty(&e["input"])) }
        }
    };
    Ok(c.page(&format!("Execution {id}"), Nav::Executions, live))
}

/// `POST …/cancel`.
pub async fn cancel(c: &Ctx<'_>, tenant: &str, id: &str) -> PageResult {
    c.api(Method::POST, &["tenants", tenant, "executions", id, "cancel"], &[], None).await.into_ok()?;
    Ok(view::redirect(&format!("{BASE}/tenants/{}/executions/{}", seg(tenant), seg(id))))
}

/// `POST …/rerun` with `from` = `start` or `failed`: to the new execution.
pub async fn rerun(c: &Ctx<'_>, tenant: &str, id: &str) -> PageResult {
    let from = c.form().get("from").cloned().unwrap_or_else(|| "start".into());
    let started = c
        .api(Method::POST, &["tenants", tenant, "executions", id, "rerun"], &[], Some(&json!({"from": from})))
        .await
        .into_ok()?;
    let new = started["execution_id"].as_str().unwrap_or(id);
    Ok(view::redirect(&format!("{BASE}/tenants/{}/executions/{}", seg(tenant), seg(new))))
}

/// `GET /console/events?tenant=`: the webhook event log of a tenant.
pub async fn events(c: &Ctx<'_>) -> PageResult {
    let q = c.query();
    let known = tenants(c, 200).await?;
    let tenant = chosen_tenant(&q, &known);
    let cursor = q.get("cursor").cloned().unwrap_or_default();
    let body = if tenant.is_empty() {
        html! { p.empty { "No tenants yet: create one on the " a href={(BASE) "/tenants"} { "Tenants" } " page." } }
    } else {
        let page = c.get(&["tenants", &tenant, "events"], &[("limit", "50"), ("cursor", &cursor)]).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        html! {
            form.filters method="get" action={(BASE) "/events"} {
                label for="tenant" { "Tenant" (tenant_select(&known, &tenant, None)) }
                button type="submit" { "Show" }
            }
            p.muted { "Every webhook this tenant received and accepted, with the flows it matched and the executions it started. Duplicates and refused deliveries are answered without being logged here; they are counted in the tenant's metrics." }
            @if items.is_empty() {
                p.empty { "No events received yet for " (tenant) "." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Received" } th { "Connector" } th { "Event" } th { "Delivery" } th { "Size" } th { "Matched flows" } th { "Executions" } } }
                    tbody { @for ev in &items {
                        tr {
                            td { (time_of(&ev["received_at"])) }
                            td { (text(ev, "connector")) }
                            td { (text(ev, "event_type")) }
                            td { code { (text(ev, "delivery_id")) } }
                            td { (ev["size"].as_u64().unwrap_or(0)) " B" }
                            td { @if ev["flows"].as_array().is_none_or(|f| f.is_empty()) { span.muted { "none" } }
                                 @for f in ev["flows"].as_array().into_iter().flatten() { (f.as_str().unwrap_or("")) " " } }
                            td { @for x in ev["executions"].as_array().into_iter().flatten() {
                                @let xid = x.as_str().unwrap_or("");
                                a href={(BASE) "/tenants/" (seg(&tenant)) "/executions/" (seg(xid))} { (xid) } br;
                            } }
                        }
                    } }
                } }
                (view::next_link(&format!("{BASE}/events"), &[("tenant", &tenant)], &page["next_cursor"]))
            }
        }
    };
    Ok(c.page("Events", Nav::Events, body))
}

/// `GET /console/dlq?queue=runs|polls`.
pub async fn dlq(c: &Ctx<'_>) -> PageResult {
    let q = c.query();
    let queue = match q.get("queue").map(String::as_str) {
        Some("polls") => "polls",
        _ => "runs",
    };
    let page = c.get(&["dlq"], &[("queue", queue), ("limit", "200")]).await?;
    let letters = page["items"].as_array().cloned().unwrap_or_default();
    let replay = format!("{BASE}/dlq/replay");
    let body = html! {
        p {
            @for (name, label) in [("runs", "Runs"), ("polls", "Polls")] {
                @if name == queue { strong { (label) } } @else { a href={(BASE) "/dlq?queue=" (name)} { (label) } }
                " "
            }
        }
        p.muted { "Messages the executor or the poller gave up on after their retries. Replaying sends them back to their queue; fix the cause first." }
        @if letters.is_empty() {
            p.empty { "The " (queue) " dead-letter queue is empty." }
        } @else {
            @if c.allows(Permission::DlqReplay) {
                form.filters method="post" action=(replay) data-confirm="Replay every message first sent in this window?" {
                    (view::csrf(c))
                    input type="hidden" name="queue" value=(queue);
                    label for="since" { "First sent from (UTC)" input #since name="since" type="datetime-local"; }
                    label for="until" { "to (UTC)" input #until name="until" type="datetime-local"; }
                    button type="submit" { "Replay the window" }
                }
            }
            div.scroll { table {
                thead { tr { th { "First sent" } th { "Tenant" } th { "Kind" } th { "Execution" } th { "Receives" } th { "Size" } th { "" } } }
                tbody { @for l in &letters {
                    tr data-message=(text(l, "message_id")) {
                        td { (time_of(&l["sent_at"])) }
                        td { (l["tenant"].as_str().unwrap_or("–")) }
                        td { (l["kind"].as_str().unwrap_or("unreadable")) }
                        td { @match (l["tenant"].as_str(), l["execution_id"].as_str()) {
                            (Some(t), Some(x)) => a href={(BASE) "/tenants/" (seg(t)) "/executions/" (seg(x))} { (x) },
                            _ => "–",
                        } }
                        td { (l["receive_count"].as_u64().unwrap_or(0)) }
                        td { (l["size"].as_u64().unwrap_or(0)) " B" }
                        td { (view::action_button(c, Permission::DlqReplay, &replay, &[("queue", queue), ("message_id", text(l, "message_id"))], "Replay", None)) }
                    }
                } }
            } }
        }
    };
    Ok(c.page("Dead letters", Nav::Dlq, body))
}

/// `POST /console/dlq/replay`: one message (`message_id`) or a window (`since`, `until`).
pub async fn replay(c: &Ctx<'_>) -> PageResult {
    let form = c.form();
    let queue = if form.get("queue").map(String::as_str) == Some("polls") { "polls" } else { "runs" };
    let mut body = json!({"queue": queue});
    if let Some(id) = form.get("message_id").filter(|v| !v.is_empty()) {
        body["message_id"] = json!(id);
    }
    for field in ["since", "until"] {
        if let Some(v) = form.get(field).filter(|v| !v.trim().is_empty()) {
            body[field] = json!(instant(v));
        }
    }
    // Replaying everything is one message at a time or a window, never by accident.
    if body.get("message_id").is_none() && body.get("since").is_none() && body.get("until").is_none() {
        return Err(Failure::Request(400, "Choose a message to replay, or the start or end of a window.".into()));
    }
    let result = c.api(Method::POST, &["dlq", "replay"], &[], Some(&body)).await.into_ok()?;
    let done = html! {
        p.success role="status" { "Replayed " (result["replayed"].as_u64().unwrap_or(0)) " message(s); "
            (result["skipped"].as_u64().unwrap_or(0)) " left in the queue." }
        p { a href={(BASE) "/dlq?queue=" (queue)} { "Back to the dead letters" } }
    };
    Ok(c.page("Dead letters", Nav::Dlq, done))
}
