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

use crate::connector::{HmacConfig, SchemeKind, SignatureEncoding};

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
    /// A header holding an id, as `id_text` reads it.
    pub fn id_header(&self, name: &str) -> Option<String> {
        delivery_header(&self.headers, name)
    }
}

/// A header's bytes as sent (trimmed), whatever their encoding.
fn header_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(|v| v.as_bytes().trim_ascii()).filter(|v| !v.is_empty())
}

/// An id as sent in a header: its text, or when it is not UTF-8 the hex of its bytes, so two
/// different ids never become the same one (and none is taken for absent).
pub fn id_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => format!("hex:{}", hex::encode(bytes)),
    }
}

fn delivery_header(headers: &HeaderMap, name: &str) -> Option<String> {
    header_bytes(headers, name).map(id_text)
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
    Ok(delivery_header(&req.headers, "x-github-delivery"))
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
    let id = delivery_header(&req.headers, "x-shopify-event-id")
        .or_else(|| delivery_header(&req.headers, "x-shopify-webhook-id"));
    Ok((id, triggered_at))
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
    // The id is signed as sent, whatever its encoding.
    let id = header_bytes(&req.headers, id_name).ok_or_else(|| VerifyError::MissingHeader(id_name.to_string()))?;
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
        let expected = hmac_sha256(&key, &[id, b".", ts_text.as_bytes(), b".", &req.body]);
        signatures.iter().any(|sig| matches(&expected, sig))
    });
    if !ok {
        return Err(VerifyError::Mismatch);
    }
    check_window(t, options)?;
    Ok((id_text(id), t))
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_`, padded or not (the
/// official libraries pad before decoding; some dashboards show the secret without it).
fn standard_key(secret: &SigningSecret) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let text = secret.expose();
    LENIENT.decode(text.strip_prefix("whsec_").unwrap_or(text)).ok().filter(|key| !key.is_empty())
}

/// Whether a secret can verify a scheme's signatures at all, checked when it is set (rather
/// than as a 401 on every delivery).
pub fn check_secret(scheme: SchemeKind, secret: &str) -> Result<(), String> {
    match scheme {
        SchemeKind::StandardWebhooks if standard_key(&SigningSecret::new(secret)).is_none() => {
            Err("a Standard Webhooks secret is `whsec_` followed by base64 (padding optional)".into())
        }
        _ => Ok(()),
    }
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
/// header, and a signed-content template with `{body}`, `{timestamp}`, `{method}`, `{url}` and
/// `{header:Name}` (see `HmacConfig`).
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
    let id = config.id_header.as_deref().and_then(|h| delivery_header(&req.headers, &h.to_ascii_lowercase()));
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
                Some(h) => content.extend_from_slice(
                    header_bytes(&req.headers, &h.to_ascii_lowercase())
                        .ok_or_else(|| VerifyError::MissingHeader(h.to_ascii_lowercase()))?,
                ),
                None => return Err(VerifyError::Malformed(format!("signing template placeholder {{{name}}}"))),
            },
        }
        rest = &rest[end + 1..];
    }
    content.extend_from_slice(rest.as_bytes());
    Ok(content)
}

/// Signature helpers for tests, demos and load generators (sign like the provider would), and
/// for the platform's own signed webhooks (alerts, as Standard Webhooks).
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

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::connector::{HmacConfig, SchemeKind, SignatureEncoding};

    const NOW: i64 = 1_795_000_000;

    fn request(headers: &[(&str, &str)], body: &[u8]) -> UnverifiedWebhook {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        UnverifiedWebhook::new(map, Bytes::copy_from_slice(body))
    }

    fn check(
        scheme: SchemeKind,
        secrets: &[&str],
        headers: &[(&str, &str)],
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let secrets: Vec<SigningSecret> = secrets.iter().map(|s| SigningSecret::new(*s)).collect();
        request(headers, body).verify(scheme, None, &secrets, &VerifyOptions::at(now))
    }

    // --- published test vectors -------------------------------------------------------------

    #[test]
    fn github_documentation_vector() {
        // docs.github.com, "Validating webhook deliveries": secret, payload and signature.
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let ok = check(
            SchemeKind::Github,
            &["It's a Secret to Everybody"],
            &[("x-hub-signature-256", sig)],
            b"Hello, World!",
            NOW,
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(sign::github("It's a Secret to Everybody", b"Hello, World!"), sig);
    }

    #[test]
    fn standard_webhooks_specification_vector() {
        let headers = [
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ];
        let body = br#"{"test": 2432232314}"#;
        let verified = check(
            SchemeKind::StandardWebhooks,
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            &headers,
            body,
            1614265330,
        )
        .unwrap();
        assert_eq!(verified.scheme_delivery_id(), Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
        // The same vector through Svix's header names.
        let svix = [
            ("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("svix-timestamp", "1614265330"),
            ("svix-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ];
        assert!(
            check(SchemeKind::StandardWebhooks, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], &svix, body, 1614265330)
                .is_ok()
        );
        // Outside the 5-minute window the same signature is stale.
        let late = check(
            SchemeKind::StandardWebhooks,
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            &headers,
            body,
            1614265330 + 301,
        );
        assert_eq!(late.unwrap_err(), VerifyError::Stale(300));
    }

    #[test]
    fn slack_documentation_vector() {
        // api.slack.com, "Verifying requests from Slack": the slash-command example.
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let headers = [
            ("x-slack-request-timestamp", "1531420618"),
            ("x-slack-signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
        ];
        assert!(check(SchemeKind::Slack, &["8f742231b10e8888abcd99yyyzzz85a5"], &headers, body, 1531420618).is_ok());
    }

    // --- every scheme: correct, wrong, truncated, reordered, stale, future ---------------------

    const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2";
    const OLD: &str = "whsec_b2xkLXNlY3JldC1iZWZvcmUtcm90YXRpb24=";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"order.created","data":{"total":12.5}}"#;
    const REORDERED: &[u8] = br#"{"type":"order.created","id":"evt_1","data":{"total":12.5}}"#;

    /// Signed headers for a scheme, at time `t`, with `secret`.
    fn signed(scheme: SchemeKind, secret: &str, t: i64, body: &[u8]) -> Vec<(String, String)> {
        let h = |k: &str, v: String| (k.to_string(), v);
        match scheme {
            SchemeKind::Github => {
                vec![h("x-hub-signature-256", sign::github(secret, body)), h("x-github-delivery", "d-1".into())]
            }
            SchemeKind::Shopify => vec![
                h("x-shopify-hmac-sha256", sign::shopify(secret, body)),
                h("x-shopify-event-id", "e-1".into()),
                h("x-shopify-triggered-at", chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()),
            ],
            SchemeKind::Stripe => vec![h("stripe-signature", sign::stripe(secret, t, body))],
            SchemeKind::StandardWebhooks => vec![
                h("webhook-id", "msg_1".into()),
                h("webhook-timestamp", t.to_string()),
                h("webhook-signature", sign::standard(secret, "msg_1", t, body)),
            ],
            SchemeKind::Slack => vec![
                h("x-slack-request-timestamp", t.to_string()),
                h("x-slack-signature", sign::slack(secret, t, body)),
            ],
            SchemeKind::Hmac => vec![
                h("x-timestamp", t.to_string()),
                h(
                    "x-signature",
                    format!(
                        "sha256={}",
                        sign::hmac_hex(secret, format!("{t}.{}", String::from_utf8_lossy(body)).as_bytes())
                    ),
                ),
            ],
        }
    }

    fn hmac_config() -> HmacConfig {
        HmacConfig {
            header: "X-Signature".into(),
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".into(),
            timestamp_header: Some("X-Timestamp".into()),
            template: "{timestamp}.{body}".into(),
            id_header: None,
        }
    }

    fn verify_with(
        scheme: SchemeKind,
        secrets: &[&str],
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let secrets: Vec<SigningSecret> = secrets.iter().map(|s| SigningSecret::new(*s)).collect();
        let config = hmac_config();
        request(&headers, body).verify(scheme, Some(&config), &secrets, &VerifyOptions::at(now))
    }

    const ALL: [SchemeKind; 6] = [
        SchemeKind::Github,
        SchemeKind::Shopify,
        SchemeKind::Stripe,
        SchemeKind::StandardWebhooks,
        SchemeKind::Slack,
        SchemeKind::Hmac,
    ];

    fn timestamped(scheme: SchemeKind) -> bool {
        !matches!(scheme, SchemeKind::Github)
    }

    #[test]
    fn correct_signatures_verify() {
        for scheme in ALL {
            let headers = signed(scheme, SECRET, NOW, BODY);
            assert!(verify_with(scheme, &[SECRET], &headers, BODY, NOW).is_ok(), "{scheme:?}");
        }
    }

    #[test]
    fn wrong_secret_and_altered_body_are_refused() {
        for scheme in ALL {
            let headers = signed(scheme, "whsec_d3Jvbmctc2VjcmV0LWZvci10ZXN0cw==", NOW, BODY);
            assert_eq!(
                verify_with(scheme, &[SECRET], &headers, BODY, NOW).unwrap_err(),
                VerifyError::Mismatch,
                "{scheme:?} wrong secret"
            );
            // The signature covers the raw bytes: the same JSON with keys reordered is another body.
            let headers = signed(scheme, SECRET, NOW, BODY);
            assert_eq!(
                verify_with(scheme, &[SECRET], &headers, REORDERED, NOW).unwrap_err(),
                VerifyError::Mismatch,
                "{scheme:?} reordered body"
            );
        }
    }

    #[test]
    fn truncated_signatures_are_refused() {
        for scheme in ALL {
            let mut headers = signed(scheme, SECRET, NOW, BODY);
            for (name, value) in headers.iter_mut() {
                if name.contains("signature") || name.contains("hmac") {
                    value.truncate(value.len() - 6);
                }
            }
            let result = verify_with(scheme, &[SECRET], &headers, BODY, NOW);
            assert!(matches!(result, Err(VerifyError::Mismatch | VerifyError::Malformed(_))), "{scheme:?}: {result:?}");
        }
    }

    #[test]
    fn missing_signatures_are_refused() {
        for scheme in ALL {
            let headers: Vec<(String, String)> = signed(scheme, SECRET, NOW, BODY)
                .into_iter()
                .filter(|(k, _)| !k.contains("signature") && !k.contains("hmac"))
                .collect();
            let result = verify_with(scheme, &[SECRET], &headers, BODY, NOW);
            assert!(matches!(result, Err(VerifyError::MissingHeader(_))), "{scheme:?}: {result:?}");
        }
        assert_eq!(
            verify_with(SchemeKind::Github, &[], &signed(SchemeKind::Github, SECRET, NOW, BODY), BODY, NOW)
                .unwrap_err(),
            VerifyError::NoSecret
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        for scheme in ALL.into_iter().filter(|s| timestamped(*s)) {
            let window = if scheme == SchemeKind::Shopify { 48 * 3600 } else { 300 };
            let stale = signed(scheme, SECRET, NOW - window - 1, BODY);
            assert!(
                matches!(verify_with(scheme, &[SECRET], &stale, BODY, NOW), Err(VerifyError::Stale(_))),
                "{scheme:?} stale"
            );
            let future = signed(scheme, SECRET, NOW + 301, BODY);
            assert!(
                matches!(verify_with(scheme, &[SECRET], &future, BODY, NOW), Err(VerifyError::Stale(_))),
                "{scheme:?} future"
            );
            let edge = signed(scheme, SECRET, NOW - 299, BODY);
            assert!(verify_with(scheme, &[SECRET], &edge, BODY, NOW).is_ok(), "{scheme:?} inside the window");
        }
    }

    #[test]
    fn a_stale_timestamp_cannot_be_replayed_with_a_new_one() {
        // Changing the timestamp header invalidates the signature for schemes that sign it.
        for scheme in [SchemeKind::Stripe, SchemeKind::StandardWebhooks, SchemeKind::Slack, SchemeKind::Hmac] {
            let old = signed(scheme, SECRET, NOW - 3600, BODY);
            let fresh = signed(scheme, SECRET, NOW, BODY);
            let replayed: Vec<(String, String)> = old
                .iter()
                .map(|(k, v)| {
                    let is_time = k.contains("timestamp") && !k.contains("signature");
                    let fresh_value = fresh.iter().find(|(fk, _)| fk == k).map(|(_, fv)| fv.clone());
                    (k.clone(), if is_time { fresh_value.unwrap_or_else(|| v.clone()) } else { v.clone() })
                })
                .collect();
            let result = verify_with(scheme, &[SECRET], &replayed, BODY, NOW);
            if scheme == SchemeKind::Stripe {
                // Stripe carries the timestamp inside the signature header: the old one is stale.
                assert!(matches!(result, Err(VerifyError::Stale(_))), "{scheme:?}: {result:?}");
            } else {
                assert_eq!(result.unwrap_err(), VerifyError::Mismatch, "{scheme:?}");
            }
        }
    }

    #[test]
    fn reordered_header_parts_still_verify() {
        // Stripe: t and v1 in any order, extra v0/v1 entries ignored or tried.
        let t = NOW.to_string();
        let good = sign::stripe(SECRET, NOW, BODY);
        let v1 = good.split(',').find(|p| p.starts_with("v1=")).unwrap();
        let header = format!("v0=deadbeef,{v1},v1=00ff,t={t}");
        assert!(verify_with(SchemeKind::Stripe, &[SECRET], &[("stripe-signature".into(), header)], BODY, NOW).is_ok());
        // Standard Webhooks: several signatures, the valid one last.
        let mut headers = signed(SchemeKind::StandardWebhooks, SECRET, NOW, BODY);
        let valid = headers[2].1.clone();
        headers[2].1 = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,xyz {valid}");
        assert!(verify_with(SchemeKind::StandardWebhooks, &[SECRET], &headers, BODY, NOW).is_ok());
    }

    #[test]
    fn the_previous_secret_verifies_during_rotation() {
        for scheme in ALL {
            let headers = signed(scheme, OLD, NOW, BODY);
            assert!(verify_with(scheme, &[SECRET, OLD], &headers, BODY, NOW).is_ok(), "{scheme:?} previous secret");
            assert_eq!(
                verify_with(scheme, &[SECRET], &headers, BODY, NOW).unwrap_err(),
                VerifyError::Mismatch,
                "{scheme:?} after rotation"
            );
        }
    }

    #[test]
    fn generic_hmac_signs_method_url_and_base64() {
        let config = HmacConfig {
            header: "X-HubSpot-Signature-v3".into(),
            encoding: SignatureEncoding::Base64,
            prefix: String::new(),
            timestamp_header: Some("X-HubSpot-Request-Timestamp".into()),
            template: "{method}{url}{body}{timestamp}".into(),
            id_header: None,
        };
        let millis = (NOW * 1000).to_string();
        let content =
            format!("POSThttps://hooks.example.com/webhooks/acme/hubspot?x=1{}{millis}", String::from_utf8_lossy(BODY));
        let sig = sign::hmac_base64("hubspot-secret", content.as_bytes());
        let req = request(
            &[
                ("x-hubspot-signature-v3", &sig),
                ("x-hubspot-request-timestamp", &millis),
                ("host", "hooks.example.com"),
            ],
            BODY,
        )
        .with_request_line("POST", "/webhooks/acme/hubspot?x=1");
        let secrets = [SigningSecret::new("hubspot-secret")];
        assert!(req.clone().verify(SchemeKind::Hmac, Some(&config), &secrets, &VerifyOptions::at(NOW)).is_ok());
        let moved = req.with_request_line("POST", "/webhooks/other/hubspot?x=1");
        assert_eq!(
            moved.verify(SchemeKind::Hmac, Some(&config), &secrets, &VerifyOptions::at(NOW)).unwrap_err(),
            VerifyError::Mismatch
        );
    }

    #[test]
    fn generic_hmac_accepts_rfc3339_timestamps() {
        let config = HmacConfig {
            header: "X-Zendesk-Webhook-Signature".into(),
            encoding: SignatureEncoding::Base64,
            prefix: String::new(),
            timestamp_header: Some("X-Zendesk-Webhook-Signature-Timestamp".into()),
            template: "{timestamp}{body}".into(),
            id_header: Some("X-Zendesk-Webhook-Id".into()),
        };
        let ts = chrono::DateTime::from_timestamp(NOW, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let sig = sign::hmac_base64("zd", format!("{ts}{}", String::from_utf8_lossy(BODY)).as_bytes());
        let req = request(
            &[
                ("x-zendesk-webhook-signature", &sig),
                ("x-zendesk-webhook-signature-timestamp", &ts),
                ("x-zendesk-webhook-id", "wh-1"),
            ],
            BODY,
        );
        let verified =
            req.verify(SchemeKind::Hmac, Some(&config), &[SigningSecret::new("zd")], &VerifyOptions::at(NOW)).unwrap();
        assert_eq!(verified.scheme_delivery_id(), Some("wh-1"));
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        assert_eq!(format!("{:?}", SigningSecret::new("top-secret")), "SigningSecret(redacted)");
        let headers = signed(SchemeKind::Github, "top-secret", NOW, BODY);
        let err = verify_with(SchemeKind::Github, &["other-secret"], &headers, b"x", NOW).unwrap_err();
        let shown = format!("{err} {err:?}");
        let signature = headers.iter().find(|(k, _)| k == "x-hub-signature-256").map(|(_, v)| v.clone()).unwrap();
        for secret in ["top-secret", "other-secret", signature.as_str()] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
