//! Step runners: what each step kind does with its input.

use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::expr::{Expr, truthy};
use super::template;
use crate::domain::execution::{Execution, StepError};
use crate::domain::flow::{HttpStep, RetryPolicy, StepDef, StepKind};
use crate::platform::Platform;
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
}

impl StepRun<'_> {
    /// Stable across attempts and redeliveries of the same step of the same execution, so a
    /// provider that honours `Idempotency-Key` applies the call once.
    pub fn idempotency_key(&self) -> String {
        let digest = Sha256::digest(format!("{}/{}", self.execution.id, self.step.id).as_bytes());
        format!("swy-{}", hex::encode(&digest[..16]))
    }

    fn timeout(&self) -> Duration {
        self.step.timeout_ms.map(Duration::from_millis).unwrap_or(DEFAULT_STEP_TIMEOUT)
    }
}

/// Run one attempt of a step.
pub async fn run(run: StepRun<'_>) -> StepOutcome {
    let timeout = run.timeout();
    match tokio::time::timeout(timeout + Duration::from_secs(1), run_inner(&run)).await {
        Ok(outcome) => outcome,
        Err(_) => StepOutcome::fail(None, format!("step timed out after {} ms", timeout.as_millis()), true, None),
    }
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
        other => StepOutcome::fail(
            None,
            format!("step kind {} is not supported by this executor version", other.name()),
            false,
            None,
        ),
    }
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
    match run.platform.http.send(request).await {
        Ok(response) => response_outcome(Some(input), &host, response),
        Err(e) => outbound_failure(Some(input), e),
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
    }
}

fn response_body(response: &OutboundResponse) -> Value {
    let is_json = response.header("content-type").is_some_and(|ct| ct.contains("json"));
    if is_json || response.body.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        if let Ok(v) = serde_json::from_slice(&response.body) {
            return v;
        }
    }
    Value::String(String::from_utf8_lossy(&response.body).into_owned())
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
