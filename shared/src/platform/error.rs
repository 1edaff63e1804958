//! Errors handlers return, each with its HTTP status and a machine-readable code.
//!
//! Bodies are `{"error": {"code": "...", "message": "...", "details": ...}}`. Messages describe
//! the request, never a secret or an internal detail: dependency failures become a generic 503
//! (logged in full on our side) so callers retry.

use serde_json::{Value, json};

use crate::ports::PortError;

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
            AppError::Forbidden(_) => 403,
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

impl From<PortError> for AppError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::ConditionFailed | PortError::TransactionCancelled { .. } => {
                AppError::Conflict("the resource was changed concurrently; retry".into())
            }
            // A request the store refuses (an item too large, a forged cursor) is the caller's.
            PortError::Rejected(detail) => {
                tracing::warn!(%detail, "dependency rejected a request");
                AppError::bad_request(if detail.contains("cursor") {
                    "invalid pagination cursor".to_string()
                } else if detail.contains("exceeds") {
                    "the request is too large to store".to_string()
                } else {
                    "the request was rejected".to_string()
                })
            }
            PortError::Unavailable(detail) => AppError::Unavailable { detail },
        }
    }
}
