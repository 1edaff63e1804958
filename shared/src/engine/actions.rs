//! Running a connector action with a tenant's credentials: the one code path behind `action`
//! flow steps and MCP tools (SSRF guard, credentials and refresh, rate limit, retries upstream).
//!
//! Request building rules (the catalog format relies on them):
//! - `{name}` in the path is the URL-encoded input field `name` (a missing one is an input error).
//! - `query`, `headers` and `body` are templates over `{input, settings}`; query parameters and
//!   top-level body fields whose value is `null` are left out; array query values repeat the
//!   parameter; `form: true` sends the body form-encoded with nested keys as `a[b]`.
//! - The response is `{status, headers, body}` (body parsed as JSON when it is JSON); the action
//!   output is its `output` jq over that, or the body. An `error(...)` raised by the output
//!   expression fails the action (for APIs that answer 200 with an error inside).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Engine;
use super::credentials::{self, CredentialError};
use super::paging::PageRequest;
use super::step::{retry_after, third_party_json};
use crate::domain::connector::{ActionSpec, AuthSpec, ConnectorSpec};
use crate::domain::expr::Expr;
use crate::domain::ids::{SpaceId, TenantId};
use crate::domain::template;
use crate::ports::{OutboundError, OutboundRequest, OutboundResponse};
use crate::store::connections;
use crate::store::ratelimit::{self, RateLimitError};

/// One action call.
pub struct ActionCall<'a> {
    pub space: &'a SpaceId,
    pub tenant: &'a TenantId,
    pub spec: &'a ConnectorSpec,
    pub action: &'a ActionSpec,
    pub input: &'a Value,
    /// Sent in the action's idempotency header, when it has one.
    pub idempotency_key: Option<String>,
    pub timeout: Duration,
    /// A later page of a list action (`paging`).
    pub page: Option<&'a PageRequest>,
}

/// A successful call.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionResult {
    pub status: u16,
    pub output: Value,
    /// The response as `{status, headers, body}` (what pagination reads).
    pub response: Value,
}

/// Why an action failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("connector {0} is not enabled for this tenant")]
    NotEnabled(String),
    #[error("{0}")]
    Credentials(#[from] CredentialError),
    #[error("{message}")]
    Upstream { status: u16, message: String, retryable: bool, retry_after: Option<Duration> },
    #[error("{0}")]
    Transport(#[source] OutboundError),
    #[error("rate limit of the connection reached")]
    RateLimited { retry_after: Duration },
    #[error("{0}")]
    Unavailable(String),
}

impl From<RateLimitError> for ActionError {
    fn from(e: RateLimitError) -> Self {
        match e {
            RateLimitError::Reached { retry_after } => ActionError::RateLimited { retry_after },
            RateLimitError::Port(e) => ActionError::Unavailable(e.to_string()),
        }
    }
}

impl ActionError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ActionError::Upstream { retryable, .. } => *retryable,
            ActionError::Transport(e) => e.is_retryable(),
            ActionError::Credentials(e) => e.is_retryable(),
            ActionError::RateLimited { .. } | ActionError::Unavailable(_) => true,
            ActionError::InvalidInput(_) | ActionError::NotEnabled(_) => false,
        }
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ActionError::Upstream { retry_after, .. } => *retry_after,
            ActionError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            ActionError::Upstream { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Check an action input against its JSON Schema.
pub fn validate_input(spec: &ConnectorSpec, action: &ActionSpec, input: &Value) -> Result<(), ActionError> {
    crate::domain::connector::validate_input(spec, action, input).map_err(|e| ActionError::InvalidInput(e.0))
}

/// Scalars as query/path text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Replace `{name}` segments of a path with URL-encoded input fields.
fn fill_path(path: &str, input: &Value) -> Result<String, ActionError> {
    let mut out = String::with_capacity(path.len() + 16);
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| ActionError::InvalidInput("bad path template".into()))?;
        let name = &rest[start + 1..end];
        let value = input
            .get(name)
            .and_then(text)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ActionError::InvalidInput(format!("missing `{name}`")))?;
        out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()).map(|s| s.replace('+', "%20")));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    // URL parsing resolves dot segments: `..` as an id would send the tenant's token to another
    // endpoint of the same API. Encoding turns `%` into `%25` and `/` into `%2F`, so only a
    // whole segment of dots is one, however the template and the values made it.
    if out.split(['/', '?', '#']).any(|segment| matches!(segment, "." | "..")) {
        return Err(ActionError::InvalidInput("a path value cannot make a `.` or `..` segment".into()));
    }
    Ok(out)
}

/// Form-encode a JSON object, nested keys as `a[b]`, arrays as `a[0]`.
fn form_pairs(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}[{k}]") };
                form_pairs(&key, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                form_pairs(&format!("{prefix}[{i}]"), v, out);
            }
        }
        scalar => {
            if let Some(t) = text(scalar) {
                out.push((prefix.to_string(), t));
            }
        }
    }
}

fn without_top_level_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

/// Build the request an action makes (without credentials).
pub fn build_request(
    spec: &ConnectorSpec,
    action: &ActionSpec,
    settings: &Map<String, Value>,
    input: &Value,
    timeout: Duration,
) -> Result<OutboundRequest, ActionError> {
    let base =
        credentials::render_url(&spec.base_url, settings).map_err(|e| ActionError::InvalidInput(e.to_string()))?;
    let path = fill_path(&action.path, input)?;
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    let mut url = url::Url::parse(&joined).map_err(|e| ActionError::InvalidInput(format!("URL: {e}")))?;
    let ctx = json!({"input": input, "settings": settings});
    let render = |v: &Value, what: &str| {
        template::render(v, &ctx).map_err(|e| ActionError::InvalidInput(format!("{what}: {e}")))
    };
    {
        let mut pairs = url.query_pairs_mut();
        for (name, template_value) in &action.query {
            match render(template_value, "query")? {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items.iter().filter_map(text) {
                        pairs.append_pair(name, &item);
                    }
                }
                other => {
                    if let Some(t) = text(&other) {
                        pairs.append_pair(name, &t);
                    }
                }
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let method = http::Method::from_bytes(action.method.as_bytes())
        .map_err(|_| ActionError::InvalidInput("bad method".into()))?;
    let mut request = OutboundRequest::new(method, url);
    request.timeout = timeout;
    request.headers.push(("Accept".into(), "application/json".into()));
    for (name, value) in &spec.headers {
        request.headers.push((name.clone(), value.clone()));
    }
    for (name, template_value) in &action.headers {
        if let Some(v) = text(&render(template_value, "headers")?) {
            request.headers.push((name.clone(), v));
        }
    }
    if let Some(body) = &action.body {
        let body = without_top_level_nulls(render(body, "body")?);
        if action.form {
            let mut pairs = Vec::new();
            form_pairs("", &body, &mut pairs);
            let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            request.headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
            request.body = Some(encoded.into());
        } else {
            request.headers.push(("Content-Type".into(), "application/json".into()));
            request.body = Some(body.to_string().into());
        }
    }
    Ok(request)
}

/// Ask for a later page. A next-page URL must stay on the request's origin: it is sent with the
/// tenant's credentials.
fn apply_page(request: &mut OutboundRequest, page: &PageRequest) -> Result<(), ActionError> {
    match page {
        PageRequest::Query { param, value } => {
            let kept: Vec<(String, String)> = request
                .url
                .query_pairs()
                .filter(|(k, _)| k != param.as_str())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            request.url.query_pairs_mut().clear().extend_pairs(kept).append_pair(param, value);
        }
        PageRequest::Body { param, value } => {
            let mut body: Value = match &request.body {
                Some(bytes) => serde_json::from_slice(bytes)
                    .map_err(|_| ActionError::InvalidInput("a body cursor needs a JSON body".into()))?,
                None => json!({}),
            };
            let Value::Object(fields) = &mut body else {
                return Err(ActionError::InvalidInput("a body cursor needs a JSON object body".into()));
            };
            fields.insert(param.clone(), Value::String(value.clone()));
            if request.body.is_none() {
                request.headers.push(("Content-Type".into(), "application/json".into()));
            }
            request.body = Some(body.to_string().into());
        }
        PageRequest::Url(next) => {
            // Relative targets are resolved against the request (RFC 8288 §3.2).
            let next = request.url.join(next).map_err(|e| ActionError::InvalidInput(format!("next page URL: {e}")))?;
            if next.origin() != request.url.origin() {
                return Err(ActionError::InvalidInput(format!(
                    "the next page is on another origin ({}); not following it with the tenant's credentials",
                    next.origin().ascii_serialization()
                )));
            }
            request.url = next;
        }
    }
    Ok(())
}

fn response_value(response: &OutboundResponse) -> Value {
    let body = if response.body.is_empty() {
        Value::Null
    } else {
        third_party_json(&response.body)
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&response.body).into_owned()))
    };
    let headers: Map<String, Value> =
        response.headers.iter().take(50).map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    json!({"status": response.status, "headers": headers, "body": body})
}

/// The credential values an authorization adds to a request: whole header and query values,
/// and the token after a scheme (`Bearer xyz` → `xyz`). Short values are left out (they would
/// redact ordinary words).
fn secret_values(headers: &[(String, String)], query: &[(String, String)]) -> Vec<String> {
    let mut values = Vec::new();
    for (_, value) in headers.iter().chain(query) {
        values.push(value.clone());
        if let Some((_, token)) = value.split_once(' ') {
            values.push(token.trim().to_string());
        }
    }
    values.retain(|v| v.len() >= 8);
    // Longest first, so a whole header goes before the token inside it.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values
}

fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        // JSON bodies escape some characters; the escaped form is redacted too.
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped != secret && out.contains(escaped) {
            out = out.replace(escaped, "[redacted]");
        }
    }
    out
}

/// The origin a tenant's credentials for `spec` may be sent to: that of the connector's base
/// URL with the tenant's settings. `http` steps authenticated as a connector are held to it, so
/// a flow cannot hand a tenant's token to another host.
pub async fn credential_origin(
    engine: &Engine,
    space: &SpaceId,
    tenant: &TenantId,
    spec: &ConnectorSpec,
) -> Result<url::Origin, ActionError> {
    let settings = connections::cached_settings(&engine.db, space, tenant, &spec.id)
        .await
        .map_err(|e| ActionError::Unavailable(e.to_string()))?
        .filter(|s| s.enabled)
        .ok_or_else(|| ActionError::NotEnabled(spec.id.to_string()))?;
    let base = credentials::render_url(&spec.base_url, &settings.settings)
        .map_err(|e| ActionError::InvalidInput(e.to_string()))?;
    Ok(base.origin())
}

/// Call an action with the tenant's credentials.
pub async fn call(engine: &Engine, call: ActionCall<'_>) -> Result<ActionResult, ActionError> {
    let settings = connections::cached_settings(&engine.db, call.space, call.tenant, &call.spec.id)
        .await
        .map_err(|e| ActionError::Unavailable(e.to_string()))?
        .filter(|s| s.enabled)
        .ok_or_else(|| ActionError::NotEnabled(call.spec.id.to_string()))?;
    validate_input(call.spec, call.action, call.input)?;
    let mut request = build_request(call.spec, call.action, &settings.settings, call.input, call.timeout)?;
    if let Some(page) = call.page {
        apply_page(&mut request, page)?;
    }
    if let (Some(header), Some(key)) = (&call.action.idempotency_header, &call.idempotency_key) {
        request.headers.push((header.clone(), key.clone()));
    }
    let refreshable = matches!(call.spec.auth, AuthSpec::Oauth2 { .. } | AuthSpec::ClientCredentials { .. });
    let mut refreshed = false;
    loop {
        let auth = credentials::authorize(engine, call.space, call.tenant, call.spec, refreshed).await?;
        let sent_secrets = secret_values(&auth.headers, &auth.query);
        let mut attempt = request.clone();
        attempt.headers.extend(auth.headers);
        if !auth.query.is_empty() {
            attempt.url.query_pairs_mut().extend_pairs(auth.query);
        }
        let limit = ratelimit::effective_limit(&engine.db, call.space, call.tenant, call.spec)
            .await
            .map_err(|e| ActionError::Unavailable(format!("rate limit settings: {e}")))?;
        if let Some(limit) = limit {
            ratelimit::acquire(&engine.db, call.space, call.tenant, &call.spec.id, limit).await?;
        }
        let response = engine.http.send(attempt).await.map_err(ActionError::Transport)?;
        // A 401 with an OAuth token: the token may have been revoked or rotated early; refresh
        // once and try again.
        if response.status == 401 && refreshable && !refreshed {
            refreshed = true;
            continue;
        }
        let value = response_value(&response);
        if (200..300).contains(&response.status) {
            let output = match &call.action.output {
                Some(expr) => Expr::compile(expr).and_then(|e| e.eval(&value)).map_err(|e| ActionError::Upstream {
                    status: response.status,
                    message: format!("{} {}: {e}", call.spec.id, call.action.id),
                    retryable: false,
                    retry_after: None,
                })?,
                None => value["body"].clone(),
            };
            return Ok(ActionResult { status: response.status, output, response: value });
        }
        let body = match &value["body"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // Providers sometimes echo what they were sent: the error must not carry it on.
        let snippet: String = redact(&body, &sent_secrets).chars().take(300).collect();
        return Err(ActionError::Upstream {
            status: response.status,
            message: format!("{} {} answered HTTP {}: {snippet}", call.spec.id, call.action.id, response.status),
            retryable: matches!(response.status, 408 | 429 | 500..=599),
            retry_after: retry_after(&response),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::connector::Catalog;

    #[test]
    fn builds_requests_from_the_catalog() {
        let spec = Catalog::builtin().find("github").unwrap();
        let action = spec.action("create_issue").unwrap();
        let input = json!({"owner": "acme", "repo": "widgets & co", "title": "Bug", "labels": ["a", "b"]});
        let request = build_request(spec, action, &Map::new(), &input, Duration::from_secs(5)).unwrap();
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.url.as_str(), "https://api.github.com/repos/acme/widgets%20%26%20co/issues");
        let body: Value = serde_json::from_slice(request.body.as_ref().unwrap()).unwrap();
        assert_eq!(body, json!({"title": "Bug", "labels": ["a", "b"]}), "null fields left out");
        assert!(request.headers.iter().any(|(k, v)| k == "X-GitHub-Api-Version" && v == "2022-11-28"));
        let list = spec.action("list_issues").unwrap();
        let request =
            build_request(spec, list, &Map::new(), &json!({"owner": "a", "repo": "b"}), Duration::from_secs(5))
                .unwrap();
        assert_eq!(request.url.query(), Some("direction=desc&per_page=30&sort=updated&state=open"));
        assert!(matches!(
            build_request(spec, list, &Map::new(), &json!({"owner": "a"}), Duration::from_secs(5)),
            Err(ActionError::InvalidInput(_))
        ));
        // Dot segments cannot move the call elsewhere; dots inside a value, `%2e` and `/` stay
        // inside their segment.
        for bad in ["..", "."] {
            let input = json!({"owner": "a", "repo": bad});
            assert!(build_request(spec, list, &Map::new(), &input, Duration::from_secs(5)).is_err(), "{bad}");
        }
        // Also when the template puts dots next to the value.
        assert!(fill_path("/x/.{id}/y", &json!({"id": "."})).is_err());
        assert_eq!(fill_path("/x/.{id}/y", &json!({"id": "a"})).unwrap(), "/x/.a/y");
        for (repo, path) in [
            ("a..b", "/repos/a/a..b/issues"),
            ("%2e%2e", "/repos/a/%252e%252e/issues"),
            ("../x", "/repos/a/..%2Fx/issues"),
        ] {
            let input = json!({"owner": "a", "repo": repo});
            let request = build_request(spec, list, &Map::new(), &input, Duration::from_secs(5)).unwrap();
            assert_eq!(request.url.path(), path);
        }
    }

    #[test]
    fn credentials_echoed_by_a_provider_are_redacted() {
        let secrets = secret_values(
            &[("Authorization".into(), "Bearer tok_1234567890".into())],
            &[("api_key".into(), "k".into())],
        );
        assert_eq!(secrets, ["Bearer tok_1234567890", "tok_1234567890"]);
        let body = r#"{"error":"bad token tok_1234567890","header":"Bearer tok_1234567890","key":"k"}"#;
        assert_eq!(redact(body, &secrets), r#"{"error":"bad token [redacted]","header":"[redacted]","key":"k"}"#);
    }

    #[test]
    fn validates_inputs_against_the_schema() {
        let spec = Catalog::builtin().find("github").unwrap();
        let action = spec.action("create_issue").unwrap();
        assert!(validate_input(spec, action, &json!({"owner": "a", "repo": "b", "title": "t"})).is_ok());
        let err = validate_input(spec, action, &json!({"owner": "a", "repo": 3})).unwrap_err();
        assert!(matches!(&err, ActionError::InvalidInput(m) if m.contains("title") && m.contains("/repo")), "{err}");
    }

    #[test]
    fn form_bodies_nest_with_brackets() {
        let mut pairs = Vec::new();
        form_pairs("", &json!({"email": "a@b.c", "metadata": {"k": "v"}, "items": [{"price": 1}]}), &mut pairs);
        assert_eq!(
            pairs,
            vec![
                ("email".to_string(), "a@b.c".to_string()),
                ("items[0][price]".to_string(), "1".to_string()),
                ("metadata[k]".to_string(), "v".to_string())
            ]
        );
    }
}
