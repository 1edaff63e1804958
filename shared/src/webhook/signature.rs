//! Webhook signature schemes, implemented from each provider's documentation.
//!
//! A request is an [`UnverifiedWebhook`] until [`UnverifiedWebhook::verify`] turns it into a
//! [`VerifiedWebhook`]; nothing downstream accepts the unverified type. Signatures are compared
//! in constant time over the raw body bytes, with every candidate secret (rotation) and every
//! signature the header carries.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::connector::{HmacConfig, SchemeKind, SignatureEncoding};

/// A webhook signing secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        SigningSecret(secret.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(redacted)")
    }
}

/// Why a signature was refused. The messages go back to the sender: they say what is wrong
/// with the request, never anything about the secret or the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(String),
    #[error("malformed {0}")]
    Malformed(String),
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp outside the allowed window of {0} seconds")]
    Stale(i64),
    #[error("no signing secret is configured for this connector")]
    NoSecret,
}

/// Verification settings.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    pub now_secs: i64,
    /// Largest allowed distance between a signed timestamp and now, either way.
    pub tolerance_secs: i64,
    /// Largest age of a Shopify `X-Shopify-Triggered-At`. Shopify keeps the original trigger
    /// time on its retries (over hours), so the 5-minute window would refuse its own retries
    /// and lose events.
    pub shopify_max_age_secs: i64,
}

impl VerifyOptions {
    pub fn at(now_secs: i64) -> Self {
        VerifyOptions { now_secs, tolerance_secs: 300, shopify_max_age_secs: 48 * 3600 }
    }
}

/// A request that claims to be a webhook.
#[derive(Debug, Clone)]
pub struct UnverifiedWebhook {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Method and path with query, for schemes that sign them (`{method}`, `{url}`).
    pub method: String,
    pub path_and_query: String,
}

/// A webhook whose signature checked out.
#[derive(Debug, Clone)]
pub struct VerifiedWebhook {
    headers: HeaderMap,
    body: Bytes,
    scheme_delivery_id: Option<String>,
    signed_at: Option<i64>,
}

impl VerifiedWebhook {
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// The delivery id the scheme defines (webhook-id, X-GitHub-Delivery...), if present.
    pub fn scheme_delivery_id(&self) -> Option<&str> {
        self.scheme_delivery_id.as_deref()
    }
    /// The signed timestamp, for timestamped schemes.
    pub fn signed_at(&self) -> Option<i64> {
        self.signed_at
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn required<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, VerifyError> {
    header(headers, name).ok_or_else(|| VerifyError::MissingHeader(name.to_string()))
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn matches(expected: &[u8; 32], provided: &[u8]) -> bool {
    provided.len() == expected.len() && bool::from(expected.as_slice().ct_eq(provided))
}

fn check_window(signed_at: i64, options: &VerifyOptions) -> Result<(), VerifyError> {
    if (options.now_secs - signed_at).abs() > options.tolerance_secs {
        return Err(VerifyError::Stale(options.tolerance_secs));
    }
    Ok(())
}

fn parse_timestamp(value: &str, what: &str) -> Result<i64, VerifyError> {
    value.parse::<i64>().map_err(|_| VerifyError::Malformed(format!("{what} (expected Unix seconds)")))
}

/// A timestamp header of the generic scheme: Unix seconds, Unix milliseconds (HubSpot) or
/// RFC 3339 (Zendesk).
fn parse_any_timestamp(value: &str, what: &str) -> Result<i64, VerifyError> {
    if let Ok(n) = value.parse::<i64>() {
        // Milliseconds are 13 digits for the next few centuries; seconds are 10.
        return Ok(if n > 100_000_000_000 { n / 1000 } else { n });
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp())
        .map_err(|_| VerifyError::Malformed(format!("{what} (expected Unix time or RFC 3339)")))
}

impl UnverifiedWebhook {
    pub fn new(headers: HeaderMap, body: Bytes) -> Self {
        UnverifiedWebhook { headers, body, method: "POST".into(), path_and_query: "/".into() }
    }

    /// With the request line, for schemes that sign the method and URL.
    pub fn with_request_line(mut self, method: &str, path_and_query: &str) -> Self {
        self.method = method.to_string();
        self.path_and_query = path_and_query.to_string();
        self
    }

    /// Check the signature with each candidate secret (current first, then the previous one
    /// during a rotation).
    pub fn verify(
        self,
        scheme: SchemeKind,
        hmac_config: Option<&HmacConfig>,
        secrets: &[SigningSecret],
        options: &VerifyOptions,
    ) -> Result<VerifiedWebhook, VerifyError> {
        if secrets.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        let (scheme_delivery_id, signed_at) = match scheme {
            SchemeKind::Github => (verify_github(&self, secrets)?, None),
            SchemeKind::Shopify => verify_shopify(&self, secrets, options)?,
            SchemeKind::Stripe => (None, Some(verify_stripe(&self, secrets, options)?)),
            SchemeKind::StandardWebhooks => {
                verify_standard(&self, secrets, options).map(|(id, t)| (Some(id), Some(t)))?
            }
            SchemeKind::Slack => (None, Some(verify_slack(&self, secrets, options)?)),
            SchemeKind::Hmac => {
                let config = hmac_config.ok_or(VerifyError::NoSecret)?;
                verify_hmac(&self, config, secrets, options)?
            }
        };
        Ok(VerifiedWebhook { headers: self.headers, body: self.body, scheme_delivery_id, signed_at })
    }
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
fn verify_github(req: &UnverifiedWebhook, secrets: &[SigningSecret]) -> Result<Option<String>, VerifyError> {
    let value = required(&req.headers, "x-hub-signature-256")?;
    let hex_sig = value
        .strip_prefix("sha256=")
        .ok_or_else(|| VerifyError::Malformed("x-hub-signature-256 (expected sha256=<hex>)".into()))?;
    let provided = hex::decode(hex_sig).map_err(|_| VerifyError::Mismatch)?;
    if !secrets.iter().any(|s| matches(&hmac_sha256(s.expose().as_bytes(), &[&req.body]), &provided)) {
        return Err(VerifyError::Mismatch);
    }
    Ok(header(&req.headers, "x-github-delivery").map(str::to_string))
}

/// Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>`; event id
/// `X-Shopify-Event-Id` (older deliveries: `X-Shopify-Webhook-Id`).
fn verify_shopify(
    req: &UnverifiedWebhook,
    secrets: &[SigningSecret],
    options: &VerifyOptions,
) -> Result<(Option<String>, Option<i64>), VerifyError> {
    let value = required(&req.headers, "x-shopify-hmac-sha256")?;
    let provided = BASE64.decode(value).map_err(|_| VerifyError::Mismatch)?;
    if !secrets.iter().any(|s| matches(&hmac_sha256(s.expose().as_bytes(), &[&req.body]), &provided)) {
        return Err(VerifyError::Mismatch);
    }
    let triggered_at = match header(&req.headers, "x-shopify-triggered-at") {
        Some(t) => {
            let at = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| VerifyError::Malformed("x-shopify-triggered-at (expected RFC 3339)".into()))?
                .timestamp();
            let age = options.now_secs - at;
            if age > options.shopify_max_age_secs || age < -options.tolerance_secs {
                return Err(VerifyError::Stale(options.shopify_max_age_secs));
            }
            Some(at)
        }
        None => None,
    };
    let id = header(&req.headers, "x-shopify-event-id").or_else(|| header(&req.headers, "x-shopify-webhook-id"));
    Ok((id.map(str::to_string), triggered_at))
}

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]` over `{t}.{body}`, keyed with
/// the whole secret string (`whsec_...` included).
fn verify_stripe(
    req: &UnverifiedWebhook,
    secrets: &[SigningSecret],
    options: &VerifyOptions,
) -> Result<i64, VerifyError> {
    let value = required(&req.headers, "stripe-signature")?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(parse_timestamp(t, "stripe-signature timestamp")?),
            Some(("v1", sig)) => signatures.push(hex::decode(sig).unwrap_or_default()),
            _ => {}
        }
    }
    let t = timestamp.ok_or_else(|| VerifyError::Malformed("stripe-signature (no t=)".into()))?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed("stripe-signature (no v1= signature)".into()));
    }
    let t_text = t.to_string();
    let ok = secrets.iter().any(|s| {
        let expected = hmac_sha256(s.expose().as_bytes(), &[t_text.as_bytes(), b".", &req.body]);
        signatures.iter().any(|sig| matches(&expected, sig))
    });
    if !ok {
        return Err(VerifyError::Mismatch);
    }
    check_window(t, options)?;
    Ok(t)
}

/// Standard Webhooks (and Svix): `webhook-id`, `webhook-timestamp`, `webhook-signature` with a
/// space-separated list of `v1,<base64>` over `{id}.{timestamp}.{body}`; the key is the base64
/// after `whsec_`.
fn verify_standard(
    req: &UnverifiedWebhook,
    secrets: &[SigningSecret],
    options: &VerifyOptions,
) -> Result<(String, i64), VerifyError> {
    let (id_name, ts_name, sig_name) = if header(&req.headers, "webhook-signature").is_some() {
        ("webhook-id", "webhook-timestamp", "webhook-signature")
    } else if header(&req.headers, "svix-signature").is_some() {
        ("svix-id", "svix-timestamp", "svix-signature")
    } else {
        return Err(VerifyError::MissingHeader("webhook-signature".into()));
    };
    let id = required(&req.headers, id_name)?;
    let ts_text = required(&req.headers, ts_name)?;
    let t = parse_timestamp(ts_text, ts_name)?;
    let signatures: Vec<Vec<u8>> = required(&req.headers, sig_name)?
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .collect();
    if signatures.is_empty() {
        return Err(VerifyError::Malformed(format!("{sig_name} (no v1 signature)")));
    }
    let ok = secrets.iter().any(|s| {
        let Some(key) = standard_key(s) else {
            return false;
        };
        let expected = hmac_sha256(&key, &[id.as_bytes(), b".", ts_text.as_bytes(), b".", &req.body]);
        signatures.iter().any(|sig| matches(&expected, sig))
    });
    if !ok {
        return Err(VerifyError::Mismatch);
    }
    check_window(t, options)?;
    Ok((id.to_string(), t))
}

fn standard_key(secret: &SigningSecret) -> Option<Vec<u8>> {
    let text = secret.expose();
    BASE64.decode(text.strip_prefix("whsec_").unwrap_or(text)).ok()
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`.
fn verify_slack(
    req: &UnverifiedWebhook,
    secrets: &[SigningSecret],
    options: &VerifyOptions,
) -> Result<i64, VerifyError> {
    let sig = required(&req.headers, "x-slack-signature")?;
    let ts_text = required(&req.headers, "x-slack-request-timestamp")?;
    let t = parse_timestamp(ts_text, "x-slack-request-timestamp")?;
    let hex_sig = sig
        .strip_prefix("v0=")
        .ok_or_else(|| VerifyError::Malformed("x-slack-signature (expected v0=<hex>)".into()))?;
    let provided = hex::decode(hex_sig).map_err(|_| VerifyError::Mismatch)?;
    let ok = secrets.iter().any(|s| {
        matches(&hmac_sha256(s.expose().as_bytes(), &[b"v0:", ts_text.as_bytes(), b":", &req.body]), &provided)
    });
    if !ok {
        return Err(VerifyError::Mismatch);
    }
    check_window(t, options)?;
    Ok(t)
}

/// Generic HMAC-SHA256: signature header, hex or base64, optional prefix, optional timestamp
/// header, and a signed-content template with `{body}`, `{timestamp}` and `{header:Name}`.
fn verify_hmac(
    req: &UnverifiedWebhook,
    config: &HmacConfig,
    secrets: &[SigningSecret],
    options: &VerifyOptions,
) -> Result<(Option<String>, Option<i64>), VerifyError> {
    let header_name = config.header.to_ascii_lowercase();
    let value = required(&req.headers, &header_name)?;
    let encoded = value
        .strip_prefix(config.prefix.as_str())
        .ok_or_else(|| VerifyError::Malformed(format!("{header_name} (expected prefix {:?})", config.prefix)))?;
    let provided = match config.encoding {
        SignatureEncoding::Hex => hex::decode(encoded.trim()),
        SignatureEncoding::Base64 => BASE64.decode(encoded.trim()).map_err(|_| hex::FromHexError::OddLength),
    }
    .map_err(|_| VerifyError::Mismatch)?;
    let timestamp = match &config.timestamp_header {
        Some(name) => {
            let name = name.to_ascii_lowercase();
            let text = required(&req.headers, &name)?;
            Some((text.to_string(), parse_any_timestamp(text, &name)?))
        }
        None => None,
    };
    let content = signed_content(&config.template, req, timestamp.as_ref().map(|(t, _)| t.as_str()))?;
    let ok = secrets.iter().any(|s| matches(&hmac_sha256(s.expose().as_bytes(), &[&content]), &provided));
    if !ok {
        return Err(VerifyError::Mismatch);
    }
    if let Some((_, t)) = &timestamp {
        check_window(*t, options)?;
    }
    let id =
        config.id_header.as_deref().and_then(|h| header(&req.headers, &h.to_ascii_lowercase())).map(str::to_string);
    Ok((id, timestamp.map(|(_, t)| t)))
}

/// The signed content, from the template.
fn signed_content(template: &str, req: &UnverifiedWebhook, timestamp: Option<&str>) -> Result<Vec<u8>, VerifyError> {
    let mut content = Vec::with_capacity(req.body.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        content.extend_from_slice(rest[..start].as_bytes());
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| VerifyError::Malformed("signing template".into()))?;
        let name = &rest[start + 1..end];
        match name {
            "body" => content.extend_from_slice(&req.body),
            "timestamp" => {
                let t = timestamp.ok_or_else(|| {
                    VerifyError::Malformed("signing template uses {timestamp} without a timestamp header".into())
                })?;
                content.extend_from_slice(t.as_bytes());
            }
            "method" => content.extend_from_slice(req.method.as_bytes()),
            "url" => {
                let host = required(&req.headers, "host")?;
                content.extend_from_slice(format!("https://{host}{}", req.path_and_query).as_bytes());
            }
            _ => match name.strip_prefix("header:") {
                Some(h) => content.extend_from_slice(required(&req.headers, &h.to_ascii_lowercase())?.as_bytes()),
                None => return Err(VerifyError::Malformed(format!("signing template placeholder {{{name}}}"))),
            },
        }
        rest = &rest[end + 1..];
    }
    content.extend_from_slice(rest.as_bytes());
    Ok(content)
}

/// Signature helpers for tests, demos and load generators: sign like the provider would.
pub mod sign {
    use super::*;

    pub fn github(secret: &str, body: &[u8]) -> String {
        format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &[body])))
    }
    pub fn shopify(secret: &str, body: &[u8]) -> String {
        BASE64.encode(hmac_sha256(secret.as_bytes(), &[body]))
    }
    pub fn stripe(secret: &str, t: i64, body: &[u8]) -> String {
        format!("t={t},v1={}", hex::encode(hmac_sha256(secret.as_bytes(), &[t.to_string().as_bytes(), b".", body])))
    }
    pub fn standard(secret: &str, id: &str, t: i64, body: &[u8]) -> String {
        let key = standard_key(&SigningSecret::new(secret)).unwrap_or_default();
        format!("v1,{}", BASE64.encode(hmac_sha256(&key, &[id.as_bytes(), b".", t.to_string().as_bytes(), b".", body])))
    }
    pub fn slack(secret: &str, t: i64, body: &[u8]) -> String {
        format!("v0={}", hex::encode(hmac_sha256(secret.as_bytes(), &[b"v0:", t.to_string().as_bytes(), b":", body])))
    }
    pub fn hmac_hex(secret: &str, content: &[u8]) -> String {
        hex::encode(hmac_sha256(secret.as_bytes(), &[content]))
    }
    pub fn hmac_base64(secret: &str, content: &[u8]) -> String {
        BASE64.encode(hmac_sha256(secret.as_bytes(), &[content]))
    }
}
