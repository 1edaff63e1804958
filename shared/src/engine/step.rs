//! One attempt of one step: what a step runner is given (`StepRun`) and what it returns
//! (`StepOutcome`), and the rules every runner shares: how a third party's response becomes an
//! outcome, `Retry-After`, backoff, templates rendered over the context.

use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Engine;
use crate::domain::config::RetryPolicy;
use crate::domain::execution::{Execution, StepError};
use crate::domain::flow::StepDef;
use crate::domain::template;
use crate::ports::{OutboundError, OutboundResponse};

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
    pub(super) fn fail(input: Option<Value>, message: impl Into<String>, retryable: bool, status: Option<u16>) -> Self {
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
    pub engine: &'a Engine,
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
}

/// A boxed step future: `foreach` runs steps, which may be a `foreach`, so the type is named
/// (and declared `Send`) instead of inferred.
pub type StepFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = StepOutcome> + Send + 'a>>;

pub(super) fn render(value: &Value, run: &StepRun<'_>, field: &str) -> Result<Value, StepOutcome> {
    template::render(value, run.context).map_err(|e| {
        let path = e.path.trim_start_matches('$');
        StepOutcome::fail(None, format!("{field}{path}: expression {}", e.error), false, None)
    })
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
