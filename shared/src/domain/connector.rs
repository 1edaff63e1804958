//! The connector catalog: one declarative YAML file per connector in `shared/connectors/`,
//! compiled into every binary and parsed once per container. The format is documented in
//! `docs/connectors.md`; `Catalog::builtin()` validates every file (and a test calls it).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::ConnectorId;

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

/// How thoroughly catalog files are checked when loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Shapes, ids, methods, paths, URLs.
    Structure,
    /// And every jq expression and template compiles.
    Full,
}

/// All connectors, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    connectors: BTreeMap<ConnectorId, ConnectorSpec>,
}

/// The catalog files compiled into the binaries.
const BUILTIN: &[(&str, &str)] = &[
    ("github", include_str!("../../connectors/github.yaml")),
    ("gmail", include_str!("../../connectors/gmail.yaml")),
    ("google_sheets", include_str!("../../connectors/google_sheets.yaml")),
    ("hubspot", include_str!("../../connectors/hubspot.yaml")),
    ("jira", include_str!("../../connectors/jira.yaml")),
    ("notion", include_str!("../../connectors/notion.yaml")),
    ("salesforce", include_str!("../../connectors/salesforce.yaml")),
    ("shopify", include_str!("../../connectors/shopify.yaml")),
    ("slack", include_str!("../../connectors/slack.yaml")),
    ("stripe", include_str!("../../connectors/stripe.yaml")),
    ("xero", include_str!("../../connectors/xero.yaml")),
    ("zendesk", include_str!("../../connectors/zendesk.yaml")),
    ("standard_webhooks", include_str!("../../connectors/standard_webhooks.yaml")),
    ("custom_webhooks", include_str!("../../connectors/custom_webhooks.yaml")),
];

/// The connector id no catalog file may take: the platform's MCP tools are named after it.
pub const RESERVED_ID: &str = "switchyard";

impl Catalog {
    /// The built-in catalog, parsed and checked once per process. A broken catalog file is a
    /// build defect caught by the test suite, so this panics rather than limping on.
    /// The compiled-in connectors. At start-up only their structure is checked: compiling
    /// every jq expression of the catalog would add a tenth of a second to each cold start, and
    /// the test suite compiles them all (`Catalog::from_files(BUILTIN)`); expressions compile
    /// when first used.
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::parse(BUILTIN, Depth::Structure).unwrap_or_else(|e| panic!("connector catalog: {e}"))
        })
    }

    /// Parse and fully check catalog files (name, YAML text), expressions included.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Catalog, String> {
        Catalog::parse(files, Depth::Full)
    }

    fn parse(files: &[(&str, &str)], depth: Depth) -> Result<Catalog, String> {
        let mut connectors = BTreeMap::new();
        for (name, text) in files {
            let spec: ConnectorSpec = serde_saphyr::from_str(text).map_err(|e| format!("{name}.yaml: {e}"))?;
            if spec.id.as_str() != *name {
                return Err(format!("{name}.yaml declares id {:?}", spec.id.as_str()));
            }
            // The platform's own MCP tools are `switchyard_*`.
            if spec.id.as_str() == RESERVED_ID {
                return Err(format!("{name}.yaml: the connector id {RESERVED_ID} is reserved for the platform"));
            }
            check_spec(&spec, depth).map_err(|e| format!("{name}.yaml: {e}"))?;
            connectors.insert(spec.id.clone(), spec);
        }
        let catalog = Catalog { connectors };
        catalog.check_tool_names()?;
        Ok(catalog)
    }

    /// MCP names each action `{connector}_{action}`; two actions must not share a name
    /// (`a_b` + `c` and `a` + `b_c`), or one would hide the other.
    fn check_tool_names(&self) -> Result<(), String> {
        let mut seen = std::collections::HashMap::new();
        for spec in self.connectors.values() {
            for action in &spec.actions {
                let name = format!("{}_{}", spec.id, action.id);
                if let Some(other) = seen.insert(name.clone(), format!("{}.{}", spec.id, action.id)) {
                    return Err(format!("actions {other} and {}.{} share the tool name {name}", spec.id, action.id));
                }
            }
        }
        Ok(())
    }

    /// The built-in catalog plus every `*.yaml` connector file of `dir` (private connectors of
    /// a self-hosted deployment). An extra file may not replace a built-in connector.
    pub fn with_extra_dir(dir: &std::path::Path) -> Result<Catalog, String> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.push((name, text));
        }
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        let extra = Catalog::from_files(&refs)?;
        let mut catalog = Catalog::builtin().clone();
        for (id, spec) in extra.connectors {
            if catalog.connectors.contains_key(&id) {
                return Err(format!("{id}.yaml would replace the built-in connector {id}"));
            }
            catalog.connectors.insert(id, spec);
        }
        catalog.check_tool_names()?;
        Ok(catalog)
    }

    pub fn get(&self, id: &ConnectorId) -> Option<&ConnectorSpec> {
        self.connectors.get(id)
    }

    /// Look up by an unparsed id (from a URL).
    pub fn find(&self, id: &str) -> Option<&ConnectorSpec> {
        ConnectorId::parse(id).ok().and_then(|id| self.connectors.get(&id))
    }

    pub fn all(&self) -> impl Iterator<Item = &ConnectorSpec> {
        self.connectors.values()
    }
}

/// Checks beyond the YAML shape: expressions compile, paths are relative, ids are unique.
fn check_spec(spec: &ConnectorSpec, depth: Depth) -> Result<(), String> {
    use crate::engine::{expr::Expr, template};
    let full = depth == Depth::Full;
    let compile = |what: &str, source: &str| {
        if !full {
            return Ok(());
        }
        Expr::compile(source).map(|_| ()).map_err(|e| format!("{what}: {e}"))
    };
    let check_template = |v: &Value| if full { template::check(v) } else { Ok(()) };
    check_template(&Value::String(spec.base_url.clone())).map_err(|e| format!("base_url: {e}"))?;
    // Plain http only for loopback: mock providers in tests and local development.
    let loopback =
        ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| spec.base_url.starts_with(p));
    if !spec.base_url.starts_with("https://") && !loopback {
        return Err("base_url must be https".into());
    }
    let mut ids = std::collections::HashSet::new();
    for action in &spec.actions {
        if !ids.insert(&action.id) {
            return Err(format!("duplicate action {:?}", action.id));
        }
        if !action.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(format!("action id {:?} must be lower_snake_case", action.id));
        }
        if http::Method::from_bytes(action.method.as_bytes()).is_err() {
            return Err(format!("action {}: bad method", action.id));
        }
        if !action.path.starts_with('/') {
            return Err(format!("action {}: path must start with /", action.id));
        }
        if action.input_schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(format!("action {}: input_schema must be an object schema", action.id));
        }
        if let Some(body) = &action.body {
            check_template(body).map_err(|e| format!("action {} body: {e}", action.id))?;
        }
        for (k, v) in action.query.iter().chain(&action.headers) {
            check_template(v).map_err(|e| format!("action {} {k}: {e}", action.id))?;
        }
        if let Some(output) = &action.output {
            compile(&format!("action {} output", action.id), output)?;
        }
    }
    if let Some(webhook) = &spec.webhook {
        for source in [Some(&webhook.event_type), webhook.event_id.as_ref()].into_iter().flatten() {
            if let EventTypeSource::Body(expr) = source {
                compile("webhook event expression", expr)?;
            }
        }
        if !matches!(webhook.accepted_status, 200 | 202) {
            return Err("webhook accepted_status must be 200 or 202".into());
        }
        if webhook.scheme == SchemeKind::Hmac && webhook.hmac.is_none() {
            return Err("webhook scheme hmac needs an hmac section".into());
        }
        if let Some(hmac) = &webhook.hmac {
            hmac.check().map_err(|e| format!("webhook hmac: {e}"))?;
        }
        if webhook.setup_token_field.is_some() && webhook.scheme != SchemeKind::Hmac {
            return Err("webhook setup_token_field is for the hmac scheme".into());
        }
    }
    for resource in &spec.resources {
        if spec.action(&resource.list_action).is_none() {
            return Err(format!("resource {}: unknown list_action {:?}", resource.id, resource.list_action));
        }
        compile(&format!("resource {} records", resource.id), &resource.records)?;
        compile(&format!("resource {} id_path", resource.id), &resource.id_path)?;
        if let Some(p) = &resource.updated_at_path {
            compile(&format!("resource {} updated_at_path", resource.id), p)?;
        }
    }
    for mapping in &spec.cdm {
        if !crate::domain::cdm::ENTITIES.contains(&mapping.entity.as_str()) {
            return Err(format!("cdm mapping to unknown entity {:?}", mapping.entity));
        }
        compile(&format!("cdm {}", mapping.entity), &mapping.expr)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_configs_must_sign_the_body_and_any_checked_timestamp() {
        let config = |template: &str, ts: Option<&str>| HmacConfig {
            header: "X-Signature".into(),
            encoding: SignatureEncoding::Hex,
            prefix: String::new(),
            timestamp_header: ts.map(str::to_string),
            template: template.into(),
            id_header: None,
        };
        assert!(config("{body}", None).check().is_ok());
        assert!(config("{timestamp}.{body}", Some("X-Time")).check().is_ok());
        assert!(config("{method}\n{url}\n{header:X-Id}\n{body}", None).check().is_ok());
        for (template, ts, why) in [
            ("{timestamp}", Some("X-Time"), "{body}"),
            ("{body}", Some("X-Time"), "{timestamp}"),
            ("{timestamp}{body}", None, "timestamp_header"),
            ("{body}{nope}", None, "placeholder"),
            ("{body", None, "unclosed"),
            ("{header:bad header}{body}", None, "header name"),
        ] {
            let e = config(template, ts).check().unwrap_err();
            assert!(e.contains(why), "{template}: {e}");
        }
        assert!(HmacConfig { header: "bad header".into(), ..config("{body}", None) }.check().is_err());
    }

    #[test]
    fn two_actions_cannot_share_an_mcp_tool_name() {
        let file = |id: &str, action: &str| {
            format!(
                "id: {id}\nname: X\ndescription: X.\ndocs_url: https://example.com\nbase_url: https://example.com\n\
                 auth: {{kind: none}}\nactions:\n  - id: {action}\n    title: T\n    description: D.\n    method: GET\n\
                 \x20   path: /x\n    input_schema: {{type: object}}\n"
            )
        };
        let (a, b) = (file("acme", "crm_get"), file("acme_crm", "get"));
        Catalog::from_files(&[("acme", &a)]).unwrap_or_else(|e| panic!("{e}"));
        let e = Catalog::from_files(&[("acme", &a), ("acme_crm", &b)]).unwrap_err();
        assert!(e.contains("share the tool name acme_crm_get"), "{e}");
        // Nor may one be named like the platform's own tools.
        let e = Catalog::from_files(&[("switchyard", &file("switchyard", "usage"))]).unwrap_err();
        assert!(e.contains("reserved"), "{e}");
    }

    #[test]
    fn builtin_catalog_parses_and_checks() {
        // The full check start-up leaves out: every expression of every built-in file compiles.
        Catalog::from_files(BUILTIN).unwrap_or_else(|e| panic!("{e}"));
        let catalog = Catalog::builtin();
        assert!(catalog.find("github").is_some());
        assert!(catalog.find("nope").is_none());
        assert!(catalog.find("GitHub").is_none());
    }

    /// Deeper checks of every built-in file than start-up does (they cost time at a cold start).
    #[test]
    fn every_builtin_connector_is_complete_and_its_schemas_compile() {
        use crate::engine::expr::Expr;
        let catalog = Catalog::builtin();
        let api_connectors: Vec<&ConnectorSpec> = catalog.all().filter(|c| !c.actions.is_empty()).collect();
        assert!(api_connectors.len() >= 12, "at least 12 API connectors");
        for spec in catalog.all() {
            let id = &spec.id;
            assert!(spec.docs_url.starts_with("https://"), "{id}: docs_url");
            if spec.actions.is_empty() {
                assert!(spec.webhook.is_some(), "{id}: a connector without actions receives webhooks");
                continue;
            }
            assert!(spec.actions.len() >= 3, "{id}: at least 3 actions");
            for action in &spec.actions {
                let at = format!("{id}.{}", action.id);
                jsonschema::validator_for(&action.input_schema).unwrap_or_else(|e| panic!("{at} input_schema: {e}"));
                if let Some(schema) = &action.output_schema {
                    assert_eq!(schema["type"], "object", "{at}: output schemas describe objects (MCP)");
                    jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{at} output_schema: {e}"));
                }
                assert!(!action.description.is_empty() && !action.title.is_empty(), "{at}: title and description");
                // Every {placeholder} of the path is a required input property.
                let required: Vec<&str> = action.input_schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for part in action.path.split('{').skip(1) {
                    let name = part.split('}').next().unwrap_or_default();
                    assert!(required.contains(&name), "{at}: path parameter {name} must be a required input");
                    assert!(
                        action.input_schema["properties"].get(name).is_some(),
                        "{at}: path parameter {name} must be an input property"
                    );
                }
                if action.hints.read_only {
                    assert!(!action.hints.destructive, "{at}: read-only actions destroy nothing");
                }
            }
            for resource in &spec.resources {
                if let Pagination::Cursor { cursor_path, .. } = &resource.pagination {
                    Expr::compile(cursor_path).unwrap_or_else(|e| panic!("{id}.{} cursor_path: {e}", resource.id));
                }
            }
            if let Some(webhook) = &spec.webhook {
                assert!(
                    webhook.scheme == SchemeKind::Hmac || webhook.hmac.is_none(),
                    "{id}: hmac settings only for hmac"
                );
            }
        }
    }

    #[test]
    fn catalog_files_are_checked() {
        let bad = "id: x\nname: X\ndescription: d\ndocs_url: https://x\nbase_url: http://x\nauth: {kind: none}\n";
        assert!(Catalog::from_files(&[("x", bad)]).unwrap_err().contains("https"));
        let mismatch = bad.replace("http://", "https://");
        assert!(Catalog::from_files(&[("y", &mismatch)]).unwrap_err().contains("declares id"));
        let unknown = format!("{mismatch}surprise: 1\n");
        assert!(Catalog::from_files(&[("x", &unknown)]).is_err());
    }
}
