//! Step runners: what each step kind does with its input.

use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::actions;
use crate::domain::execution::{Execution, StepError};
use crate::domain::expr::{Expr, truthy};
use crate::domain::flow::{ActionStep, CdmStep, DelayStep, HttpStep, RetryPolicy, StepDef, StepKind};
use crate::domain::template;
use crate::platform::Platform;
use crate::platform::credentials;
use crate::ports::{OutboundError, OutboundRequest, OutboundResponse};

/// The result of one attempt of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Done {
        input: Option<Value>,
        output: Value,
    },
    Failed {
        input: Option<Value>,
        error: StepError,
        retry_after: Option<Duration>,
        /// What a retry may reuse (a `foreach` keeps the items that finished).
        partial: Option<Value>,
    },
    /// A delay step: come back at `until_ms`.
    Wait {
        until_ms: i64,
    },
}

impl StepOutcome {
    fn fail(input: Option<Value>, message: impl Into<String>, retryable: bool, status: Option<u16>) -> Self {
        StepOutcome::Failed {
            input,
            error: StepError { message: message.into(), retryable, status },
            retry_after: None,
            partial: None,
        }
    }
}

/// Default time limit of a step that calls out.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Most response headers kept in an http step's output.
const MAX_OUTPUT_HEADERS: usize = 50;

/// What a step sees and how it is identified.
pub struct StepRun<'a> {
    pub platform: &'a Platform,
    pub execution: &'a Execution,
    pub step: &'a StepDef,
    pub attempt: u32,
    /// The execution context (`.trigger`, `.steps`, `.vars`...).
    pub context: &'a Value,
    /// Inside a `foreach`: which item, so idempotency keys differ per item.
    pub item: Option<usize>,
    /// When the step first started (a delay counts from there across resumptions).
    pub started_at: Option<i64>,
    /// The previous attempt's output, if it left one (a `foreach` keeps finished items).
    pub previous_output: Option<&'a Value>,
    /// Time limit: the step's own `timeout_ms`, else the configuration cascade's.
    pub timeout: Duration,
}

impl StepRun<'_> {
    /// Stable across attempts and redeliveries of the same step of the same execution (and
    /// item), so a provider that honours `Idempotency-Key` applies the call once.
    pub fn idempotency_key(&self) -> String {
        let item = self.item.map(|i| format!("/{i}")).unwrap_or_default();
        let digest = Sha256::digest(format!("{}/{}{item}", self.execution.id, self.step.id).as_bytes());
        format!("swy-{}", hex::encode(&digest[..16]))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Run one attempt of a step.
/// A boxed step future: `foreach` runs steps, which may be a `foreach`, so the type is named
/// (and declared `Send`) instead of inferred.
pub type StepFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = StepOutcome> + Send + 'a>>;

pub fn run(run: StepRun<'_>) -> StepFuture<'_> {
    Box::pin(async move {
        let timeout = run.timeout();
        match tokio::time::timeout(timeout + Duration::from_secs(1), run_inner(&run)).await {
            Ok(outcome) => outcome,
            Err(_) => StepOutcome::fail(None, format!("step timed out after {} ms", timeout.as_millis()), true, None),
        }
    })
}

async fn run_inner(run: &StepRun<'_>) -> StepOutcome {
    match &run.step.kind {
        StepKind::Transform(t) => match Expr::compile(&t.expr).and_then(|e| e.eval(run.context)) {
            Ok(output) => StepOutcome::Done { input: None, output },
            Err(e) => StepOutcome::fail(None, format!("expression {e}"), false, None),
        },
        StepKind::Condition(c) => match Expr::compile(&c.expr).and_then(|e| e.eval(run.context)) {
            Ok(value) => StepOutcome::Done { input: None, output: json!({"result": truthy(&value), "value": value}) },
            Err(e) => StepOutcome::fail(None, format!("expression {e}"), false, None),
        },
        StepKind::Http(h) => run_http(run, h).await,
        StepKind::Action(a) => run_action(run, a).await,
        StepKind::Cdm(c) => run_cdm(run, c),
        StepKind::Delay(d) => run_delay(run, d),
        StepKind::Foreach(f) => super::foreach::run(run, f).await,
    }
}

async fn run_action(run: &StepRun<'_>, step: &ActionStep) -> StepOutcome {
    let input = match render(&step.input, run, "input") {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let Some(spec) = run.platform.catalog.get(&step.connector) else {
        return StepOutcome::fail(Some(input), format!("unknown connector {}", step.connector), false, None);
    };
    let Some(action) = spec.action(&step.action) else {
        return StepOutcome::fail(
            Some(input),
            format!("connector {} has no action {}", step.connector, step.action),
            false,
            None,
        );
    };
    let call = actions::ActionCall {
        space: &run.execution.space,
        tenant: &run.execution.tenant,
        spec,
        action,
        input: &input,
        idempotency_key: Some(run.idempotency_key()),
        timeout: run.timeout(),
        page: None,
    };
    match actions::call(run.platform, call).await {
        Ok(result) => StepOutcome::Done { input: Some(input), output: result.output },
        Err(e) => {
            let (retryable, status, retry_after) = (e.is_retryable(), e.status(), e.retry_after());
            StepOutcome::Failed {
                input: Some(input),
                error: StepError { message: e.to_string(), retryable, status },
                retry_after,
                partial: None,
            }
        }
    }
}

fn run_cdm(run: &StepRun<'_>, step: &CdmStep) -> StepOutcome {
    let input = match render(&step.input, run, "input") {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let mapping = run.platform.catalog.get(&step.connector).and_then(|spec| spec.cdm_mapping(&step.entity));
    let Some(mapping) = mapping else {
        return StepOutcome::fail(
            None,
            format!("connector {} has no mapping to {}", step.connector, step.entity),
            false,
            None,
        );
    };
    match Expr::compile(&mapping.expr).and_then(|e| e.eval(&input)) {
        Ok(output) => match crate::domain::cdm::check(&step.entity, &output) {
            Ok(()) => StepOutcome::Done { input: None, output },
            Err(e) => StepOutcome::fail(
                None,
                format!("the {} payload does not map to a canonical {}: {e}", step.connector, step.entity),
                false,
                None,
            ),
        },
        Err(e) => StepOutcome::fail(None, format!("mapping {} to {} {e}", step.connector, step.entity), false, None),
    }
}

/// A delay step: come back later (the executor parks the execution until then).
fn run_delay(run: &StepRun<'_>, step: &DelayStep) -> StepOutcome {
    let now = run.platform.now_ms();
    let until = match (&step.seconds, &step.until) {
        (Some(seconds), _) => run.started_at.unwrap_or(now) + (*seconds as i64) * 1000,
        (None, Some(expr)) => match Expr::compile(expr).and_then(|e| e.eval(run.context)) {
            Ok(Value::Number(n)) => (n.as_f64().unwrap_or(0.0) * 1000.0) as i64,
            Ok(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(&s) {
                Ok(t) => t.timestamp_millis(),
                Err(_) => return StepOutcome::fail(None, format!("until: {s:?} is not an RFC 3339 time"), false, None),
            },
            Ok(other) => return StepOutcome::fail(None, format!("until: expected a time, got {other}"), false, None),
            Err(e) => return StepOutcome::fail(None, format!("until: expression {e}"), false, None),
        },
        (None, None) => now,
    };
    StepOutcome::Wait { until_ms: until }
}

fn render(value: &Value, run: &StepRun<'_>, field: &str) -> Result<Value, StepOutcome> {
    template::render(value, run.context).map_err(|e| {
        let path = e.path.trim_start_matches('$');
        StepOutcome::fail(None, format!("{field}{path}: expression {}", e.error), false, None)
    })
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn run_http(run: &StepRun<'_>, step: &HttpStep) -> StepOutcome {
    let rendered = (|| {
        let url = render(&Value::String(step.url.clone()), run, "url")?;
        let headers = render(&Value::Object(step.headers.clone()), run, "headers")?;
        let query = render(&Value::Object(step.query.clone()), run, "query")?;
        let body = step.body.as_ref().map(|b| render(b, run, "body")).transpose()?;
        Ok::<_, StepOutcome>((url, headers, query, body))
    })();
    let (url, headers, query, body) = match rendered {
        Ok(parts) => parts,
        Err(outcome) => return outcome,
    };
    let input = json!({"method": step.method.to_ascii_uppercase(), "url": url, "query": query, "body": body});
    let url_text = url.as_str().unwrap_or_default();
    let mut url = match url::Url::parse(url_text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            return StepOutcome::fail(Some(input), format!("invalid URL {url_text:?}"), false, None);
        }
    };
    if let Value::Object(q) = &query {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in q {
            if let Some(v) = as_text(v) {
                pairs.append_pair(k, &v);
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let method = match http::Method::from_bytes(step.method.to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return StepOutcome::fail(Some(input), "invalid HTTP method", false, None),
    };
    let mut request = OutboundRequest::new(method.clone(), url);
    request.timeout = run.timeout();
    let mut has_content_type = false;
    let mut has_idempotency_key = false;
    if let Value::Object(h) = &headers {
        for (k, v) in h {
            if let Some(v) = as_text(v) {
                has_content_type |= k.eq_ignore_ascii_case("content-type");
                has_idempotency_key |= k.eq_ignore_ascii_case("idempotency-key");
                request.headers.push((k.clone(), v));
            }
        }
    }
    if !has_idempotency_key && !matches!(method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS) {
        request.headers.push(("Idempotency-Key".into(), run.idempotency_key()));
    }
    match &body {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            request.body = Some(bytes::Bytes::from(s.clone()));
            if !has_content_type {
                request.headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
            }
        }
        Some(other) => {
            request.body = Some(bytes::Bytes::from(other.to_string()));
            if !has_content_type {
                request.headers.push(("Content-Type".into(), "application/json".into()));
            }
        }
    }
    let host = request.url.host_str().unwrap_or("").to_string();
    // Authenticated as a connector: the tenant's credentials, refreshed once on a 401.
    let spec = match &step.auth {
        Some(connector) => match run.platform.catalog.get(connector) {
            Some(spec) => Some(spec),
            None => return StepOutcome::fail(Some(input), format!("unknown connector {connector}"), false, None),
        },
        None => None,
    };
    let (space, tenant) = (&run.execution.space, &run.execution.tenant);
    if let Some(spec) = spec {
        match actions::credential_origin(run.platform, space, tenant, spec).await {
            Ok(origin) if origin == request.url.origin() => {}
            Ok(origin) => {
                let message = format!(
                    "auth {}: the tenant's credentials are only sent to {}, not to {host}",
                    spec.id,
                    origin.ascii_serialization()
                );
                return StepOutcome::fail(Some(input), message, false, None);
            }
            Err(e) => return StepOutcome::fail(Some(input), e.to_string(), e.is_retryable(), None),
        }
    }
    let mut refreshed = false;
    loop {
        let mut attempt = request.clone();
        if let Some(spec) = spec {
            let authorization = credentials::authorize(run.platform, space, tenant, spec, refreshed).await;
            match authorization {
                Ok(auth) => {
                    attempt.headers.extend(auth.headers);
                    if !auth.query.is_empty() {
                        attempt.url.query_pairs_mut().extend_pairs(auth.query);
                    }
                }
                Err(e) => return StepOutcome::fail(Some(input), e.to_string(), e.is_retryable(), None),
            }
            // The connection's rate limit counts every call made with its credentials.
            if let Some(limit) = spec.rate_limit {
                if let Err(e) = crate::platform::ratelimit::acquire(run.platform, space, tenant, &spec.id, limit).await
                {
                    return StepOutcome::Failed {
                        input: Some(input),
                        error: StepError { message: e.to_string(), retryable: true, status: None },
                        retry_after: e.retry_after(),
                        partial: None,
                    };
                }
            }
        }
        match run.platform.http.send(attempt).await {
            Ok(response) if response.status == 401 && spec.is_some() && !refreshed => refreshed = true,
            Ok(response) => return response_outcome(Some(input), &host, response),
            Err(e) => return outbound_failure(Some(input), e),
        }
    }
}

/// Turn a third party's response into an outcome: 2xx succeeds; 408, 429 and 5xx are retried
/// (honouring `Retry-After`); any other status fails for good.
pub fn response_outcome(input: Option<Value>, host: &str, response: OutboundResponse) -> StepOutcome {
    let body = response_body(&response);
    if (200..300).contains(&response.status) {
        let headers: Map<String, Value> = response
            .headers
            .iter()
            .take(MAX_OUTPUT_HEADERS)
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        return StepOutcome::Done {
            input,
            output: json!({"status": response.status, "headers": headers, "body": body}),
        };
    }
    let retryable = matches!(response.status, 408 | 429 | 500..=599);
    let snippet: String = match &body {
        Value::String(s) => s.chars().take(300).collect(),
        other => other.to_string().chars().take(300).collect(),
    };
    StepOutcome::Failed {
        input,
        error: StepError {
            message: format!("HTTP {} from {host}: {snippet}", response.status),
            retryable,
            status: Some(response.status),
        },
        retry_after: retry_after(&response),
        partial: None,
    }
}

fn response_body(response: &OutboundResponse) -> Value {
    let is_json = response.header("content-type").is_some_and(|ct| ct.contains("json"));
    if is_json || response.body.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        if let Some(v) = third_party_json(&response.body) {
            return v;
        }
    }
    Value::String(String::from_utf8_lossy(&response.body).into_owned())
}

/// A third party's JSON body as a value, when it is JSON within the platform's rules with a
/// level to spare for the `{status, headers, body}` that wraps it in step outputs; anything
/// else (not JSON, nested deeper) is given to the flow as text.
pub fn third_party_json(body: &[u8]) -> Option<Value> {
    crate::domain::json::parse(body).ok().filter(|v| crate::domain::json::depth(v) < crate::domain::json::MAX_DEPTH)
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(response: &OutboundResponse) -> Option<Duration> {
    let value = response.header("retry-after")?;
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let wait = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(wait.max(0) as u64))
}

pub fn outbound_failure(input: Option<Value>, e: OutboundError) -> StepOutcome {
    let retryable = e.is_retryable();
    StepOutcome::fail(input, e.to_string(), retryable, None)
}

/// Full-jitter exponential backoff (AWS architecture blog): a random delay up to
/// `min(cap, initial * 2^(attempt-1))`, at least `floor` (a `Retry-After`).
pub fn backoff(policy: &RetryPolicy, attempt: u32, floor: Option<Duration>) -> Duration {
    let exp = policy.initial_delay_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let ceiling = exp.min(policy.max_delay_ms).max(1);
    let jittered = Duration::from_millis(rand::random_range(0..=ceiling));
    jittered.max(floor.unwrap_or_default()).max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn classifies_responses() {
        let ok = response_outcome(None, "h", response(200, &[("content-type", "application/json")], r#"{"a":1}"#));
        assert!(matches!(ok, StepOutcome::Done { output, .. } if output["body"]["a"] == 1));
        let throttled = response_outcome(None, "h", response(429, &[("retry-after", "7")], "slow down"));
        assert!(
            matches!(throttled, StepOutcome::Failed { error, retry_after: Some(d), .. } if error.retryable && d == Duration::from_secs(7))
        );
        let missing = response_outcome(None, "h", response(404, &[], "nope"));
        assert!(matches!(missing, StepOutcome::Failed { error, .. } if !error.retryable && error.status == Some(404)));
        let down = response_outcome(None, "h", response(503, &[], ""));
        assert!(matches!(down, StepOutcome::Failed { error, .. } if error.retryable));
    }

    #[test]
    fn backoff_is_bounded_jitter() {
        let policy = RetryPolicy { max_attempts: 5, initial_delay_ms: 1000, max_delay_ms: 4000 };
        for attempt in 1..10 {
            let d = backoff(&policy, attempt, None);
            assert!(d <= Duration::from_millis(4000), "{d:?}");
        }
        assert!(backoff(&policy, 1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}
