//! The home page: today's events and executions, the failure rate, the latest failures, the
//! dead-letter depth and quota warnings.

use maud::html;
use serde_json::Value;
use switchyard::domain::access::Permission;

use super::executions::{self, FANOUT_TENANTS, first_steps, tenants};
use super::view::{Nav, seg, text};
use super::{BASE, Ctx, PageResult};

/// Executions read per tenant to count today's (a page of the API at most).
const COUNT_PAGE: usize = 200;
/// Quota use from which the overview warns.
const WARN_PERCENT: f64 = 80.0;

/// `GET /console/`.
pub async fn page(c: &Ctx<'_>) -> PageResult {
    if c.who.space.is_none() {
        return Ok(c.page("Overview", Nav::Overview, html! {}));
    }
    let known = tenants(c, FANOUT_TENANTS).await?;
    if known.is_empty() {
        let body = html! {
            div.empty {
                p { strong { "Welcome." } " This space has no tenants yet. A tenant is one of your customers; its connections, flows and runs are kept apart from every other's." }
                p { a.button href={(BASE) "/tenants"} { "Create the first tenant" } }
            }
        };
        return Ok(c.page("Overview", Nav::Overview, body));
    }
    let midnight = c.p.now_ms() - c.p.now_ms().rem_euclid(86_400_000);
    let since = midnight.to_string();
    let (mut today, mut failed_today, mut capped) = (0usize, 0usize, false);
    if c.allows(Permission::ExecutionsRead) {
        let limit = COUNT_PAGE.to_string();
        for t in &known {
            let page =
                c.get(&["tenants", text(t, "id"), "executions"], &[("since", &since), ("limit", &limit)]).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            capped |= !page["next_cursor"].is_null();
            today += items.len();
            failed_today += items.iter().filter(|e| text(e, "status") == "failed").count();
        }
    }
    let failures = match c.allows(Permission::ExecutionsRead) {
        true => executions::recent(c, "", &[("status", "failed")], 8).await?.0,
        false => Vec::new(),
    };
    let usage = match c.allows(Permission::QuotasRead) {
        true => c.get(&["usage"], &[("limit", "50")]).await?,
        false => Value::Null,
    };
    let tenant_usage = usage["tenants"].as_array().cloned().unwrap_or_default();
    let events_today: u64 = tenant_usage
        .iter()
        .filter_map(|u| u["dimensions"].as_array()?.iter().find(|d| text(d, "dimension") == "events_per_day"))
        .filter_map(|d| d["used"].as_u64())
        .sum();
    let warnings: Vec<(String, Value)> = tenant_usage
        .iter()
        .flat_map(|u| {
            let tenant = text(u, "tenant").to_string();
            u["dimensions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d["percent_used"].as_f64().is_some_and(|p| p >= WARN_PERCENT))
                .map(move |d| (tenant.clone(), d))
        })
        .collect();
    let dlq_depth = match c.allows(Permission::DlqRead) {
        true => Some(c.get(&["dlq"], &[("limit", "200")]).await?["items"].as_array().map(Vec::len).unwrap_or(0)),
        false => None,
    };
    let rate =
        if today == 0 { "–".to_string() } else { format!("{:.1}%", failed_today as f64 * 100.0 / today as f64) };
    let more = if capped { "+" } else { "" };
    let body = html! {
        div.cards {
            div.card #card-events { div.value { (events_today) } div.label { "events counted today" } }
            div.card #card-executions { div.value { (today) (more) } div.label { "executions started today" } }
            div.card #card-failed { div.value { (failed_today) (more) } div.label { "failed today" } }
            div.card #card-rate { div.value { (rate) } div.label { "failure rate today" } }
            @if let Some(depth) = dlq_depth {
                div.card #card-dlq { div.value { a href={(BASE) "/dlq"} { (depth) @if depth >= 200 { "+" } } } div.label { "dead letters (runs)" } }
            }
        }
        @if known.len() >= FANOUT_TENANTS {
            p.muted { "Counted over the first " (FANOUT_TENANTS) " tenants; pick a tenant on the Executions page for the others." }
        }
        h2 { "Quota warnings" }
        @if warnings.is_empty() {
            p.muted { "No tenant is above " (WARN_PERCENT) "% of a quota." }
        } @else {
            ul { @for (tenant, d) in &warnings {
                li { a href={(BASE) "/tenants/" (seg(tenant))} { (tenant) } ": " (text(d, "dimension")) " at "
                    (d["percent_used"].as_f64().unwrap_or(0.0)) "% (" (d["used"].as_u64().unwrap_or(0)) " of " (d["limit"].as_u64().unwrap_or(0)) ", " (text(d, "mode")) ")" }
            } }
        }
        h2 { "Latest failures" }
        @if failures.is_empty() {
            @if today == 0 { (first_steps(c)) } @else { p.muted { "No failed executions. " } }
        } @else {
            (executions::table(&failures))
        }
        p { a href={(BASE) "/executions"} { "All executions" } }
    };
    Ok(c.page("Overview", Nav::Overview, body))
}
