//! The console's layout and the pieces every page uses; the security headers of every page.

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use switchyard::domain::access::Permission;
use switchyard::runtime::http::Response;

use super::{BASE, Ctx, assets};

/// Every page's Content-Security-Policy: our own script and stylesheet only, nothing inline,
/// never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Executions,
    Events,
    Dlq,
    Tenants,
    Flows,
    Connectors,
    Usage,
    Settings,
}

const SECTIONS: [(Nav, &str, &str); 9] = [
    (Nav::Overview, "Overview", ""),
    (Nav::Executions, "Executions", "executions"),
    (Nav::Events, "Events", "events"),
    (Nav::Dlq, "Dead letters", "dlq"),
    (Nav::Tenants, "Tenants", "tenants"),
    (Nav::Flows, "Flows", "flows"),
    (Nav::Connectors, "Connectors", "connectors"),
    (Nav::Usage, "Usage", "usage"),
    (Nav::Settings, "Settings", "settings"),
];

/// An HTML response with the console's headers.
pub fn html(status: u16, markup: Markup) -> Response {
    let mut response = http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(bytes::Bytes::from(markup.into_string()))
        .unwrap_or_else(|_| http::Response::new(bytes::Bytes::new()));
    secure(&mut response);
    response
}

/// The headers every console answer carries.
pub fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_SECURITY_POLICY, http::HeaderValue::from_static(CSP));
    headers.insert(http::header::X_CONTENT_TYPE_OPTIONS, http::HeaderValue::from_static("nosniff"));
    headers.insert(http::header::REFERRER_POLICY, http::HeaderValue::from_static("same-origin"));
    headers.insert(http::header::X_FRAME_OPTIONS, http::HeaderValue::from_static("DENY"));
    if !headers.contains_key(http::header::CACHE_CONTROL) {
        headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    }
}

/// A `303 See Other` (after a form, the browser GETs the target).
pub fn redirect(to: &str) -> Response {
    // Every target is a console path we built; one that is not a valid header goes home.
    let to = http::HeaderValue::from_str(to).unwrap_or_else(|_| http::HeaderValue::from_static("/console/"));
    let mut response = http::Response::builder()
        .status(303)
        .header(http::header::LOCATION, to)
        .body(bytes::Bytes::new())
        .unwrap_or_else(|_| http::Response::new(bytes::Bytes::new()));
    secure(&mut response);
    response
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · Switchyard" }
            link rel="icon" type="image/svg+xml" href=(assets::url("icon.svg"));
            link rel="stylesheet" href=(assets::url("console.css"));
            script src=(assets::url("console.js")) defer {}
        }
    }
}

/// A page without the navigation (signing in, errors before a session exists).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { (body) }
        }
    }
}

/// A page with the navigation, the space and who is signed in.
pub fn layout(c: &Ctx<'_>, title: &str, nav: Nav, body: Markup) -> Markup {
    let who = match &c.who.actor {
        switchyard::usecases::auth::Actor::PlatformAdmin => "platform admin".to_string(),
        switchyard::usecases::auth::Actor::Key { name, .. } => format!("key {name}"),
        switchyard::usecases::auth::Actor::Member { email, username, subject, .. } => {
            email.clone().or_else(|| username.clone()).unwrap_or_else(|| subject.clone())
        }
    };
    let role = c.who.role.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "no role here".into());
    let space = c.who.space.as_ref().map(|s| s.to_string());
    let may_switch = c.who.is_platform_admin() || c.who.spaces.len() > 1;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href={(BASE) "/"} { "Switchyard" }
                    span.space { "Space " strong { (space.as_deref().unwrap_or("none chosen")) } }
                    @if may_switch {
                        form.inline method="post" action={(BASE) "/space"} {
                            (csrf(c))
                            label.sr for="switch-space" { "Switch to space" }
                            input #switch-space name="space" type="text" placeholder="space id" required maxlength="64";
                            button type="submit" { "Switch" }
                        }
                    }
                    span.who { (who) " · " (role) }
                    form.inline method="post" action={(BASE) "/logout"} {
                        (csrf(c))
                        button type="submit" { "Sign out" }
                    }
                }
                nav.side aria-label="Sections" {
                    ul {
                        @for (section, label, path) in SECTIONS {
                            li {
                                @if section == nav {
                                    a href={(BASE) "/" (path)} aria-current="page" { (label) }
                                } @else {
                                    a href={(BASE) "/" (path)} { (label) }
                                }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if space.is_none() {
                        p.notice { "Choose a space to act on with the form at the top." }
                    }
                    (body)
                }
            }
        }
    }
}

/// An error page before any session exists (or when it cannot be used).
pub fn error_page(status: u16, message: &str) -> Response {
    html(
        status,
        bare(
            "Error",
            html! {
                main.login {
                    h1 { "Something is wrong" }
                    p.error role="alert" { (message) }
                    p { a href={(BASE) "/"} { "Back to the console" } }
                }
            },
        ),
    )
}

/// A failure inside the console: the API's message, with the layout.
pub fn failure_page(c: &Ctx<'_>, status: u16, message: &str) -> Response {
    let title = match status {
        403 => "Not allowed",
        404 => "Not found",
        409 => "Conflict",
        429 => "Too many requests",
        s if s >= 500 => "Unavailable",
        _ => "Could not do that",
    };
    html(
        status,
        layout(
            c,
            title,
            Nav::Overview,
            html! {
                p.error role="alert" { (message) }
                p { a href={(BASE) "/"} { "Back to the overview" } }
            },
        ),
    )
}

/// The hidden CSRF field of every form.
pub fn csrf(c: &Ctx<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(c.session.csrf); }
}

/// A one-button form posting to `action` (with `fields`), shown only with `permission`.
pub fn action_button(
    c: &Ctx<'_>,
    permission: Permission,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    confirm: Option<&str>,
) -> Markup {
    if !c.allows(permission) {
        return html! {};
    }
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(c))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" { (label) }
        }
    }
}

/// An instant (epoch ms) as UTC text.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A JSON instant (epoch ms), or a dash.
pub fn time_of(v: &Value) -> String {
    v.as_i64().map(time).unwrap_or_else(|| "–".into())
}

/// Milliseconds as a short duration.
pub fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
        ms => format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// A status as a coloured label.
pub fn status(s: &str) -> Markup {
    html! { span class={"badge st-" (s)} { (s) } }
}

/// A JSON string field, or empty.
pub fn text<'v>(v: &'v Value, field: &str) -> &'v str {
    v[field].as_str().unwrap_or("")
}

/// JSON, pretty, for a `<pre>`.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A link to the next page of a list, keeping the other parameters.
pub fn next_link(path: &str, params: &[(&str, &str)], next: &Value) -> Markup {
    let Some(cursor) = next.as_str() else { return html! {} };
    let mut pairs: Vec<(&str, &str)> =
        params.iter().copied().filter(|(k, v)| *k != "cursor" && !v.is_empty()).collect();
    pairs.push(("cursor", cursor));
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    html! { p { a.button href={(path) "?" (query)} { "Next page" } } }
}

/// A path segment, escaped for a URL.
pub fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// A JSON document edited in a text area and posted to `action` as the field `json`, shown only
/// with `permission` (else the document, read-only).
pub fn json_editor(c: &Ctx<'_>, permission: Permission, action: &str, id: &str, label: &str, value: &Value) -> Markup {
    let shown = if value.is_null() { serde_json::json!({}) } else { value.clone() };
    if !c.allows(permission) {
        return html! { pre { (pretty(&shown)) } };
    }
    html! {
        form.stack method="post" action=(action) {
            (csrf(c))
            label for=(id) { (label) textarea.short #(id) name="json" spellcheck="false" { (pretty(&shown)) } }
            button type="submit" { "Save" }
        }
    }
}
