//! Usage and metrics: a tenant's executions, failures and durations over time (from the
//! metrics API's hourly rollups), per flow, and its quota use.

use maud::html;
use serde_json::Value;
use switchyard::domain::access::Permission;

use super::executions::{chosen_tenant, tenants};
use super::tenants::usage_bar;
use super::view::{self, Nav, text};
use super::{BASE, Ctx, PageResult, graph};

/// The ranges offered, with the granularity each is read at.
const RANGES: [(&str, &str, i64, &str); 3] = [
    ("24h", "Last 24 hours", 86_400_000, "hour"),
    ("7d", "Last 7 days", 7 * 86_400_000, "hour"),
    ("30d", "Last 30 days", 30 * 86_400_000, "day"),
];

/// `GET /console/usage?tenant=&range=&flow=`.
pub async fn page(c: &Ctx<'_>) -> PageResult {
    let q = c.query();
    let known = tenants(c, 200).await?;
    let tenant = chosen_tenant(&q, &known);
    let range = RANGES.iter().find(|r| Some(r.0) == q.get("range").map(String::as_str)).unwrap_or(&RANGES[0]);
    let flow = q.get("flow").cloned().unwrap_or_default();
    if tenant.is_empty() {
        let body = html! { p.empty { "No tenants yet: metrics are kept per tenant." } };
        return Ok(c.page("Usage and metrics", Nav::Usage, body));
    }
    let now = c.p.now_ms();
    let from = now - range.2;
    let (from_text, to_text) = (from.to_string(), now.to_string());
    let metrics = match c.allows(Permission::ExecutionsRead) {
        true => {
            c.get(
                &["tenants", &tenant, "metrics"],
                &[("from", &from_text), ("to", &to_text), ("granularity", range.3), ("flow", &flow)],
            )
            .await?
        }
        false => Value::Null,
    };
    let usage = match c.allows(Permission::QuotasRead) {
        true => c.get(&["tenants", &tenant, "usage"], &[]).await?,
        false => Value::Null,
    };
    let series = metrics["series"].as_array().cloned().unwrap_or_default();
    let points = |field: &str| -> Vec<(i64, f64)> {
        series.iter().filter_map(|p| Some((p["at"].as_i64()?, p[field].as_f64().unwrap_or(0.0)))).collect()
    };
    let p95: Vec<(i64, f64)> =
        series.iter().filter_map(|p| Some((p["at"].as_i64()?, p["duration_ms"]["p95_ms"].as_f64()?))).collect();
    let totals = &metrics["totals"];
    let body = html! {
        form.filters method="get" action={(BASE) "/usage"} {
            label for="tenant" { "Tenant"
                select #tenant name="tenant" { @for t in &known { option value=(text(t, "id")) selected[text(t, "id") == tenant] { (text(t, "id")) } } }
            }
            label for="range" { "Range"
                select #range name="range" { @for r in RANGES { option value=(r.0) selected[r.0 == range.0] { (r.1) } } }
            }
            label for="flow" { "Flow id (optional)" input #flow name="flow" value=(flow) maxlength="64"; }
            button type="submit" { "Show" }
        }
        @if !metrics.is_null() {
            div.cards {
                div.card { div.value { (totals["started"].as_u64().unwrap_or(0)) } div.label { "executions finished" } }
                div.card { div.value { (totals["failed"].as_u64().unwrap_or(0)) } div.label { "failed" } }
                div.card { div.value { (totals["error_rate"].as_f64().map(|r| format!("{r}%")).unwrap_or_else(|| "–".into())) } div.label { "failure rate" } }
                div.card { div.value { (totals["duration_ms"]["p95_ms"].as_i64().map(view::duration).unwrap_or_else(|| "–".into())) } div.label { "p95 duration" } }
            }
            @if series.is_empty() {
                p.empty { "No executions finished in this range." }
            } @else {
                (graph::chart("Executions", &[
                    graph::Series { label: "succeeded", class: "line-ok", points: points("succeeded") },
                    graph::Series { label: "failed", class: "line-bad", points: points("failed") },
                ], from, now))
                (graph::chart("Duration p95 (ms)", &[graph::Series { label: "p95", class: "line-dur", points: p95 }], from, now))
            }
            @if let Some(flows) = metrics["flows"].as_array().filter(|f| !f.is_empty()) {
                h2 { "Per flow" }
                div.scroll { table {
                    thead { tr { th { "Flow" } th { "Finished" } th { "Succeeded" } th { "Failed" } th { "p50" } th { "p95" } th { "p99" } } }
                    tbody { @for f in flows { tr {
                        td { (text(f, "flow")) }
                        td { (f["started"].as_u64().unwrap_or(0)) } td { (f["succeeded"].as_u64().unwrap_or(0)) } td { (f["failed"].as_u64().unwrap_or(0)) }
                        @for p in ["p50_ms", "p95_ms", "p99_ms"] { td { (f["duration_ms"][p].as_i64().map(view::duration).unwrap_or_else(|| "–".into())) } }
                    } } }
                } }
            }
            @if let Some(failures) = totals["step_failures"].as_array().filter(|f| !f.is_empty()) {
                h2 { "Step failures by connector and action" }
                ul { @for f in failures { li { code { (text(f, "connector")) "." (text(f, "action")) } " × " (f["count"].as_u64().unwrap_or(0)) } } }
            }
        }
        @if let Some(dims) = usage["dimensions"].as_array() {
            h2 { "Quota use" }
            @for d in dims { (usage_bar(d)) }
        }
    };
    Ok(c.page("Usage and metrics", Nav::Usage, body))
}
