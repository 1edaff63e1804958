//! Step runners: what each step kind does with its input. `run` dispatches on the kind (an
//! exhaustive match: a new kind does not compile until it has a runner).

use std::time::Duration;

use serde_json::{Value, json};

use super::step::{StepFuture, StepOutcome, StepRun, outbound_failure, render, response_outcome};
use super::{actions, credentials, foreach};
use crate::domain::execution::StepError;
use crate::domain::expr::{Expr, truthy};
use crate::domain::flow::{ActionStep, CdmStep, DelayStep, HttpStep, StepKind};
use crate::ports::OutboundRequest;
use crate::store::ratelimit;

/// Run one attempt of a step, within its time limit.
pub fn run(run: StepRun<'_>) -> StepFuture<'_> {
    run_step(run)
}

/// `run`, as the function `foreach` is given to run its body's steps with.
fn run_step(run: StepRun<'_>) -> StepFuture<'_> {
    Box::pin(async move {
        let timeout = run.timeout;
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
        StepKind::Foreach(f) => foreach::run(run, f, run_step).await,
    }
}

async fn run_action(run: &StepRun<'_>, step: &ActionStep) -> StepOutcome {
    let input = match render(&step.input, run, "input") {
        Ok(v) => v,
        Err(outcome) => return outcome,
    };
    let Some(spec) = run.engine.catalog.get(&step.connector) else {
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
        timeout: run.timeout,
        page: None,
    };
    match actions::call(run.engine, call).await {
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
    let mapping = run.engine.catalog.get(&step.connector).and_then(|spec| spec.cdm_mapping(&step.entity));
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
    let now = run.engine.now_ms();
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
    request.timeout = run.timeout;
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
        Some(connector) => match run.engine.catalog.get(connector) {
            Some(spec) => Some(spec),
            None => return StepOutcome::fail(Some(input), format!("unknown connector {connector}"), false, None),
        },
        None => None,
    };
    let (space, tenant) = (&run.execution.space, &run.execution.tenant);
    if let Some(spec) = spec {
        match actions::credential_origin(run.engine, space, tenant, spec).await {
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
            let authorization = credentials::authorize(run.engine, space, tenant, spec, refreshed).await;
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
            let limit = match ratelimit::effective_limit(&run.engine.db, space, tenant, spec).await {
                Ok(limit) => limit,
                Err(e) => {
                    tracing::warn!(error = %e, "rate limit settings unreadable");
                    return StepOutcome::fail(Some(input), "the connection's rate limit could not be read", true, None);
                }
            };
            if let Some(limit) = limit {
                if let Err(e) = ratelimit::acquire(&run.engine.db, space, tenant, &spec.id, limit).await {
                    return StepOutcome::Failed {
                        input: Some(input),
                        error: StepError { message: e.to_string(), retryable: true, status: None },
                        retry_after: e.retry_after(),
                        partial: None,
                    };
                }
            }
        }
        match run.engine.http.send(attempt).await {
            Ok(response) if response.status == 401 && spec.is_some() && !refreshed => refreshed = true,
            Ok(response) => return response_outcome(Some(input), &host, response),
            Err(e) => return outbound_failure(Some(input), e),
        }
    }
}
