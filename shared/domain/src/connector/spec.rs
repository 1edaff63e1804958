//! The connector file format's types: auth, webhooks and their signature schemes, actions,
//! pollable resources, CDM mappings, rate limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::ConnectorId;

/// How a connector authenticates API calls with the tenant's credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// OAuth 2.0 authorization code (with PKCE when `pkce`), refreshed with the refresh token.
    Oauth2 {
        authorize_url: String,
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default = "yes")]
        pkce: bool,
        /// Separator of scopes in the authorize URL (space by default; some use commas).
        #[serde(default = "space")]
        scope_separator: String,
        /// Extra authorize URL parameters (e.g. `access_type: offline`).
        #[serde(default)]
        authorize_params: BTreeMap<String, String>,
        /// How the client authenticates to the token endpoint.
        #[serde(default)]
        client_auth: ClientAuth,
        /// Header the access token goes in (Shopify: `X-Shopify-Access-Token`).
        #[serde(default = "authorization")]
        header: String,
        /// Text before the token in that header.
        #[serde(default = "bearer")]
        prefix: String,
    },
    /// OAuth 2.0 client credentials: the tenant stores a client id and secret.
    ClientCredentials {
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        client_auth: ClientAuth,
    },
    /// A static key in a header or the query string.
    ApiKey {
        #[serde(rename = "in")]
        location: KeyLocation,
        name: String,
        #[serde(default)]
        prefix: String,
    },
    /// HTTP basic (username and password, or email and API token).
    Basic,
    /// A static bearer token.
    Bearer,
    /// No credentials.
    None,
}

fn yes() -> bool {
    true
}
fn authorization() -> String {
    "Authorization".to_string()
}
fn bearer() -> String {
    "Bearer ".to_string()
}

/// How an OAuth client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (what most providers document).
    #[default]
    Body,
    /// HTTP Basic with the client id and secret (Notion).
    Basic,
}
fn space() -> String {
    " ".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    Header,
    Query,
}

impl AuthSpec {
    /// Whether calls need credentials the tenant connects (every kind but `none`).
    pub fn needs_credentials(&self) -> bool {
        !matches!(self, AuthSpec::None)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AuthSpec::Oauth2 { .. } => "oauth2",
            AuthSpec::ClientCredentials { .. } => "client_credentials",
            AuthSpec::ApiKey { .. } => "api_key",
            AuthSpec::Basic => "basic",
            AuthSpec::Bearer => "bearer",
            AuthSpec::None => "none",
        }
    }
}

/// The signature scheme a provider signs its webhooks with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeKind {
    /// Standard Webhooks (and Svix, with `svix-*` headers).
    StandardWebhooks,
    Stripe,
    Github,
    Shopify,
    Slack,
    /// HMAC-SHA256 configured per connector or per tenant (see `HmacConfig`).
    Hmac,
}

/// Settings of the generic HMAC scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// Header carrying the signature.
    pub header: String,
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Text before the signature in the header (`sha256=`).
    #[serde(default)]
    pub prefix: String,
    /// Header carrying the signing time (Unix seconds or milliseconds, or RFC 3339), checked
    /// against the tolerance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// What is signed: `{body}`, `{timestamp}` (the header's text as sent), `{method}`,
    /// `{url}` (`https://` + Host + path and query, as the provider called it) and
    /// `{header:Name}` are replaced; `{body}` by default.
    #[serde(default = "body_template")]
    pub template: String,
    /// Header carrying the delivery id, if the provider sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
}

fn body_template() -> String {
    "{body}".to_string()
}

impl HmacConfig {
    /// What makes this configuration unsafe or unusable, found when it is set rather than as a
    /// 401 on every delivery: the body must be signed (or one captured signature fits any
    /// payload), so must a timestamp that is checked (or a replay just sends a new one), and
    /// every placeholder and header name must be valid.
    pub fn check(&self) -> Result<(), String> {
        let header_name = |what: &str, name: &str| {
            http::HeaderName::from_bytes(name.as_bytes())
                .map(|_| ())
                .map_err(|_| format!("{what} {name:?} is not a valid header name"))
        };
        header_name("header", &self.header)?;
        if let Some(h) = &self.timestamp_header {
            header_name("timestamp_header", h)?;
        }
        if let Some(h) = &self.id_header {
            header_name("id_header", h)?;
        }
        let mut placeholders = Vec::new();
        let mut rest = self.template.as_str();
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').map(|e| start + e).ok_or("template has an unclosed {")?;
            let name = &rest[start + 1..end];
            match name {
                "body" | "timestamp" | "method" | "url" => {}
                _ => match name.strip_prefix("header:") {
                    Some(h) => header_name("template header", h)?,
                    None => {
                        return Err(format!(
                            "template placeholder {{{name}}} is not one of {{body}}, {{timestamp}}, {{method}}, {{url}}, {{header:Name}}"
                        ));
                    }
                },
            }
            placeholders.push(name);
            rest = &rest[end + 1..];
        }
        if !placeholders.contains(&"body") {
            return Err("template must include {body}: the body has to be signed".into());
        }
        match (&self.timestamp_header, placeholders.contains(&"timestamp")) {
            (Some(_), false) => Err(
                "template must include {timestamp} when timestamp_header is set: an unsigned timestamp proves nothing"
                    .into(),
            ),
            (None, true) => Err("template uses {timestamp} but no timestamp_header is set".into()),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// Where an event's type is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EventTypeSource {
    /// A request header.
    Header(String),
    /// A jq expression over the JSON body.
    Body(String),
    /// Always this type.
    Fixed(String),
}

/// How a connector's webhooks are received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub scheme: SchemeKind,
    pub event_type: EventTypeSource,
    /// Where the provider's own event id is (used as the delivery id when the scheme has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventTypeSource>,
    /// Settings for the `hmac` scheme (tenants may override them in their connector settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacConfig>,
    /// Event types the provider documents (informative; triggers may use others).
    #[serde(default)]
    pub events: Vec<String>,
    /// Request headers copied into the event envelope (lower-cased on the way in).
    #[serde(default)]
    pub headers: Vec<String>,
    /// The status an accepted delivery gets: 202, or 200 for providers that insist (Xero's
    /// "intent to receive" check accepts nothing else).
    #[serde(default = "accepted_status")]
    pub accepted_status: u16,
    /// The one field of an unsigned setup request that carries the signing secret (Notion
    /// POSTs `{"verification_token": ...}` when a subscription is created, and the owner pastes
    /// it back into Notion). Such a request is kept as a pending token for an admin to read and
    /// set as the webhook secret; it never becomes the secret by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_token_field: Option<String>,
}

fn accepted_status() -> u16 {
    202
}

/// A tenant-specific setting of a connector (Shopify shop domain, Zendesk subdomain...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub required: bool,
    /// A regular-expression-free shape check: allowed characters (anchored, whole value).
    #[serde(default = "setting_charset")]
    pub charset: String,
}

fn setting_charset() -> String {
    "a-z0-9-".to_string()
}

/// Hints for AI agents and UIs, mapped to MCP tool annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionHints {
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub destructive: bool,
    #[serde(default)]
    pub idempotent: bool,
}

/// One API operation of a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    pub id: String,
    pub title: String,
    pub description: String,
    pub method: String,
    /// Path under the base URL; `{name}` is replaced by the URL-encoded input field `name`.
    pub path: String,
    /// Query parameters: templates over `{input, settings}`; null values are left out.
    #[serde(default)]
    pub query: BTreeMap<String, Value>,
    /// Body template over `{input, settings}`; JSON unless `form` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Send the body as `application/x-www-form-urlencoded`.
    #[serde(default)]
    pub form: bool,
    /// Extra request headers (templates).
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// JSON Schema of the input.
    pub input_schema: Value,
    /// jq over `{status, headers, body}` giving the action's output; the body by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// JSON Schema of the output, when it is an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    #[serde(default)]
    pub hints: ActionHints,
    /// Header the provider reads an idempotency key from, if it supports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_header: Option<String>,
}

/// How a list action pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// A cursor from the response (jq over `{status, headers, body}`) sent back as a query
    /// parameter, or as a field of the JSON body when `in: body` (Notion).
    Cursor {
        cursor_path: String,
        param: String,
        #[serde(default, rename = "in")]
        location: CursorLocation,
    },
    /// RFC 8288 `Link: <…>; rel="next"`.
    LinkHeader,
    /// Page numbers from 1 (or `start`).
    Page {
        param: String,
        #[serde(default = "one")]
        start: u64,
    },
    /// Offsets, advancing by the number of records returned.
    Offset { param: String },
    /// One page only.
    None,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CursorLocation {
    #[default]
    Query,
    Body,
}

/// A resource the poller can watch for changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub id: String,
    /// The action that lists records (its input is the tenant's poll input plus paging).
    pub list_action: String,
    /// jq over the action output giving the array of records.
    pub records: String,
    /// jq over a record giving its id.
    pub id_path: String,
    /// jq over a record giving when it last changed (optional: the hash decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_path: Option<String>,
    pub pagination: Pagination,
}

/// A mapping from a connector payload to a canonical entity (jq).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdmMapping {
    pub entity: String,
    /// What the input is (e.g. "a Shopify order webhook or REST order").
    pub source: String,
    pub expr: String,
}

/// One connector of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSpec {
    pub id: ConnectorId,
    pub name: String,
    pub description: String,
    pub docs_url: String,
    /// Template over `{settings}` for the API base URL.
    pub base_url: String,
    pub auth: AuthSpec,
    #[serde(default)]
    pub settings: Vec<SettingSpec>,
    /// Headers sent with every API call (e.g. API version pins).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
    #[serde(default)]
    pub resources: Vec<ResourceSpec>,
    #[serde(default)]
    pub cdm: Vec<CdmMapping>,
    /// The provider's rate limit per connection, enforced across all containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// At most `requests` calls per `per_seconds` for one tenant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

impl ConnectorSpec {
    pub fn action(&self, id: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.id == id)
    }
    pub fn resource(&self, id: &str) -> Option<&ResourceSpec> {
        self.resources.iter().find(|r| r.id == id)
    }
    pub fn cdm_mapping(&self, entity: &str) -> Option<&CdmMapping> {
        self.cdm.iter().find(|m| m.entity == entity)
    }
}
