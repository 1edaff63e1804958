//! The HTTP shape handlers speak: `http::Request<Bytes>` in, `http::Response<Bytes>` out.
//! Lambda (through `crate::lambda`) and the dev server both convert to and from it, so the
//! handler code is the same everywhere.

use std::collections::HashMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::AppError;

pub type Request = http::Request<Bytes>;
pub type Response = http::Response<Bytes>;

/// Largest JSON body the API reads.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

pub fn json(status: u16, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(body))
        .unwrap_or_else(|_| http::Response::new(Bytes::new()))
}

pub fn empty(status: u16) -> Response {
    http::Response::builder().status(status).body(Bytes::new()).unwrap_or_else(|_| http::Response::new(Bytes::new()))
}

/// The response for an error; dependency failures are logged here with their detail.
pub fn error(e: &AppError) -> Response {
    if let AppError::Unavailable { detail } = e {
        tracing::error!(%detail, "dependency unavailable");
    }
    let mut response = json(e.status(), &e.body());
    if let AppError::TooManyRequests { retry_after_secs, .. } | AppError::RetryLater { retry_after_secs, .. } = e {
        if let Ok(v) = http::HeaderValue::from_str(&retry_after_secs.to_string()) {
            response.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    if let AppError::Unavailable { .. } = e {
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
    }
    response
}

/// The error response of a resource that has `allowed` methods: a 405 names them in `Allow`
/// (RFC 9110).
pub fn error_allowing(e: &AppError, allowed: &str) -> Response {
    let mut response = error(e);
    if matches!(e, AppError::MethodNotAllowed(_)) {
        if let Ok(allow) = http::HeaderValue::from_str(allowed) {
            response.headers_mut().insert(http::header::ALLOW, allow);
        }
    }
    response
}

pub fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// A header that is present but not readable text (bytes outside visible ASCII), told apart
/// from an absent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadableHeader;

/// A header's text: `Ok(None)` when absent or empty, `Err` when present but not text.
pub fn header_text<'r>(req: &'r Request, name: &str) -> Result<Option<&'r str>, UnreadableHeader> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|t| Some(t.trim()).filter(|t| !t.is_empty())).map_err(|_| UnreadableHeader),
    }
}

/// Decoded query parameters (last one wins).
pub fn query(req: &Request) -> HashMap<String, String> {
    req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// Decoded, non-empty path segments.
pub fn segments(req: &Request) -> Vec<String> {
    req.uri().path().split('/').filter(|s| !s.is_empty()).map(|s| percent_decode(s)).collect()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Parse a JSON request body into `T`, with a 4xx naming the problem.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, AppError> {
    if req.body().len() > MAX_JSON_BODY {
        return Err(AppError::PayloadTooLarge(format!("body larger than {MAX_JSON_BODY} bytes")));
    }
    if let Some(ct) = header(req, "content-type") {
        let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(AppError::UnsupportedMediaType(format!("expected application/json, got {media}")));
        }
    }
    if req.body().is_empty() {
        return Err(AppError::bad_request("a JSON body is required"));
    }
    let invalid = |e: serde_json::Error| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        AppError::invalid("invalid_body", format!("invalid JSON body: {message}"), Value::Null)
    };
    let mut value: Value = serde_json::from_slice(req.body()).map_err(invalid)?;
    crate::domain::json::check_value(&value)
        .map_err(|e| AppError::invalid(e.code(), format!("invalid JSON body: {e}"), Value::Null))?;
    // Every body is an object (serde would otherwise take an array for a struct, by position).
    if !value.is_object() {
        return Err(AppError::invalid("invalid_body", "the JSON body must be an object", Value::Null));
    }
    integral_floats_as_integers(&mut value);
    T::deserialize(value).map_err(invalid)
}

/// `5.0` is the integer 5 (as JSON Schema's `integer` has it), wherever it appears.
fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// The header that tells a caller a soft quota or an overage was passed.
pub const QUOTA_WARNING_HEADER: &str = "switchyard-quota-warning";

/// Add one `Switchyard-Quota-Warning` header per notice.
pub fn with_quota_warnings(mut response: Response, notices: &[crate::store::quotas::Notice]) -> Response {
    for notice in notices {
        if let Ok(value) = http::HeaderValue::from_str(&notice.header()) {
            response.headers_mut().append(QUOTA_WARNING_HEADER, value);
        }
    }
    response
}
