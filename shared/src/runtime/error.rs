//! The HTTP edge's errors, each with its status and a machine-readable code. Use cases report
//! [`usecases::Error`]; this is where it becomes a status (nothing below knows HTTP).
//!
//! Bodies are `{"error": {"code": "...", "message": "...", "details": ...}}`. Messages describe
//! the request, never a secret or an internal detail: dependency failures become a generic 503
//! (logged in full on our side) so callers retry.

use serde_json::{Value, json};

use crate::ports::PortError;
use crate::{store, usecases};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String, details: Option<Value> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// A quota without a window is used up (403 `quota_exceeded`).
    #[error("{0}")]
    QuotaExceeded(String),
    /// A dependency failed; the caller should retry. The detail is logged, not returned.
    #[error("service temporarily unavailable")]
    Unavailable { detail: String },
    /// Not now, but the same request will work later: the message says what to do.
    #[error("{message}")]
    RetryLater { message: String, retry_after_secs: u64 },
}

impl AppError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::BadRequest { code: "bad_request", message: message.into(), details: None }
    }
    /// A 400 with a specific code; `details` (unless null) says where the problem is.
    pub fn invalid(code: &'static str, message: impl Into<String>, details: Value) -> Self {
        AppError::BadRequest { code, message: message.into(), details: (!details.is_null()).then_some(details) }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        AppError::NotFound(what.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::BadRequest { .. } => 400,
            AppError::Unauthorized(_) => 401,
            AppError::Forbidden(_) | AppError::QuotaExceeded(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::MethodNotAllowed(_) => 405,
            AppError::Conflict(_) => 409,
            AppError::PayloadTooLarge(_) => 413,
            AppError::UnsupportedMediaType(_) => 415,
            AppError::TooManyRequests { .. } => 429,
            AppError::Unavailable { .. } | AppError::RetryLater { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { code, .. } => code,
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::QuotaExceeded(_) => "quota_exceeded",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::TooManyRequests { .. } => "rate_limited",
            AppError::Unavailable { .. } | AppError::RetryLater { .. } => "unavailable",
        }
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let AppError::BadRequest { details: Some(details), .. } = self {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }
}

/// What a use case reports, as the HTTP edge answers it.
impl From<usecases::Error> for AppError {
    fn from(e: usecases::Error) -> Self {
        use usecases::Error as E;
        match e {
            E::Invalid { code, message, details } => AppError::BadRequest { code, message, details },
            E::Unauthenticated(m) => AppError::Unauthorized(m),
            E::Forbidden(m) => AppError::Forbidden(m),
            E::NotFound(m) => AppError::NotFound(m),
            E::Conflict(m) => AppError::Conflict(m),
            E::TooLarge(m) => AppError::PayloadTooLarge(m),
            E::Limited { message, retry_after_secs } => AppError::TooManyRequests { message, retry_after_secs },
            E::QuotaExceeded(m) => AppError::QuotaExceeded(m),
            E::RetryLater { message, retry_after_secs } => AppError::RetryLater { message, retry_after_secs },
            E::Unavailable { detail } => AppError::Unavailable { detail },
        }
    }
}

impl From<PortError> for AppError {
    fn from(e: PortError) -> Self {
        usecases::Error::from(e).into()
    }
}

impl From<store::Error> for AppError {
    fn from(e: store::Error) -> Self {
        usecases::Error::from(e).into()
    }
}
