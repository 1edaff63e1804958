//! Settings from the environment, read once per container; errors name the variable.
//!
//! The backend is chosen from the environment: inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set)
//! it is always AWS; elsewhere it is the embedded SQLite file unless `SWITCHYARD_BACKEND=aws`.

use std::collections::HashMap;
use std::time::Duration;

use crate::adapters::oidc::OidcSettings;
use crate::adapters::outbound::ssrf::AddressPolicy;
use crate::ports::{QueueId, QueueUrls};
use crate::usecases::webhooks::WebhookSettings;

/// Where the dev server keeps its state unless `SWITCHYARD_DB` says otherwise.
pub const DEFAULT_DB_PATH: &str = ".switchyard/dev.db";

/// The development admin key used outside AWS when `SWITCHYARD_ADMIN_KEY` is unset.
/// It is printed in the dev server's banner and refused inside Lambda.
pub const DEV_ADMIN_KEY: &str = "swy_dev_admin_key_for_local_use_only";

/// Which adapters the ports use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded { path: String },
    Aws,
}

/// Where the admin key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminKeySource {
    /// Given directly (local runs and tests).
    Value(String),
    /// The id of a Secrets Manager secret holding it (the SAM template creates one).
    Secret(String),
    /// No admin key: spaces cannot be created over the API.
    None,
}

impl std::fmt::Debug for AdminKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminKeySource::Value(_) => f.write_str("Value(redacted)"),
            AdminKeySource::Secret(id) => write!(f, "Secret({id})"),
            AdminKeySource::None => f.write_str("None"),
        }
    }
}

/// Settings from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: Backend,
    pub in_lambda: bool,
    pub table: String,
    pub queue_urls: QueueUrls,
    pub event_bus: String,
    pub secret_prefix: String,
    pub kms_key_id: Option<String>,
    pub admin_key: AdminKeySource,
    pub outbound: AddressPolicy,
    pub secrets_cache_ttl: Duration,
    pub webhook: WebhookSettings,
    /// Base URL the platform is reachable at (OAuth callbacks, printed URLs).
    pub public_url: Option<String>,
    /// First delay before a failed run message is retried; doubles per receive.
    pub retry_base_secs: u64,
    /// A directory of extra connector files (private connectors).
    pub catalog_dir: Option<String>,
    /// Browser origins allowed to call `/mcp` (requests with any other `Origin` get 403).
    pub mcp_allowed_origins: Vec<String>,
    /// Origins an OAuth connect may send the tenant back to (`return_to`); none when empty.
    pub oauth_return_origins: Vec<String>,
    /// Who may log in with a bearer JWT (`SWITCHYARD_OIDC_*`); nobody when no issuer is set.
    pub oidc: OidcSettings,
    /// How long audit records are kept (`SWITCHYARD_AUDIT_RETENTION_DAYS`, default 365).
    pub audit_retention_secs: i64,
    /// The plan table's limits and modes as this deployment sets them
    /// (`SWITCHYARD_PLAN_QUOTAS`, JSON; the seed's table where it is silent).
    pub plan_quotas: crate::domain::quota::PlanTable,
    /// The platform level of the configuration cascade (`SWITCHYARD_PLATFORM_CONFIG`, a JSON
    /// object validated like every level; the built-in defaults where it is silent).
    pub platform_config: serde_json::Map<String, serde_json::Value>,
    /// Metrics as CloudWatch EMF lines on stdout (`SWITCHYARD_EMF`: on in Lambda, off
    /// elsewhere; `1` or `0` to choose).
    pub emf: bool,
    /// Signing in to the console through the OpenID Connect provider; off when unset.
    pub console_oidc: Option<ConsoleOidc>,
}

/// The console's OpenID Connect client (`SWITCHYARD_CONSOLE_OIDC_*`): an authorization-code
/// flow with PKCE. The client id must also be accepted for tokens (`SWITCHYARD_OIDC_CLIENTS`
/// or `SWITCHYARD_OIDC_AUDIENCE`): the ID token it gets is verified like any bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleOidc {
    /// `SWITCHYARD_CONSOLE_OIDC_ISSUER`, else the first of `SWITCHYARD_OIDC_ISSUERS`.
    pub issuer: String,
    pub client_id: String,
    /// For a confidential client (`SWITCHYARD_CONSOLE_OIDC_CLIENT_SECRET`); a public client
    /// with PKCE needs none.
    pub client_secret: Option<String>,
}

/// Without the client secret, so `Settings` can be logged.
impl std::fmt::Debug for ConsoleOidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleOidc")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ConsoleOidc {
    fn from_env(oidc: &OidcSettings) -> Result<Option<ConsoleOidc>, ConfigError> {
        let Some(client_id) = env("SWITCHYARD_CONSOLE_OIDC_CLIENT_ID") else { return Ok(None) };
        let issuer =
            env("SWITCHYARD_CONSOLE_OIDC_ISSUER").or_else(|| oidc.issuers.first().cloned()).ok_or_else(|| {
                ConfigError("SWITCHYARD_CONSOLE_OIDC_CLIENT_ID needs an issuer (SWITCHYARD_OIDC_ISSUERS)".into())
            })?;
        if !oidc.issuers.contains(&issuer) {
            return Err(ConfigError(format!("the console's issuer {issuer} is not one of SWITCHYARD_OIDC_ISSUERS")));
        }
        Ok(Some(ConsoleOidc { issuer, client_id, client_secret: env("SWITCHYARD_CONSOLE_OIDC_CLIENT_SECRET") }))
    }
}

/// A configuration problem found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// A comma-separated list of origins (`https://app.example.com`), without trailing slashes.
fn origins(value: Option<String>) -> Vec<String> {
    list(value).into_iter().map(|o| o.trim_end_matches('/').to_string()).filter(|o| !o.is_empty()).collect()
}

/// A comma-separated list, items trimmed, empty items dropped.
fn list(value: Option<String>) -> Vec<String> {
    value.map(|v| v.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect()).unwrap_or_default()
}

/// The OIDC settings: issuers are URLs (compared to `iss` exactly, so written as the provider
/// writes them), and without an audience at least one client.
fn oidc_settings() -> Result<OidcSettings, ConfigError> {
    let settings = OidcSettings {
        issuers: list(env("SWITCHYARD_OIDC_ISSUERS")),
        audience: env("SWITCHYARD_OIDC_AUDIENCE"),
        clients: list(env("SWITCHYARD_OIDC_CLIENTS")),
        roles_claims: list(env("SWITCHYARD_OIDC_ROLES_CLAIM")),
    };
    for issuer in &settings.issuers {
        let url =
            url::Url::parse(issuer).map_err(|e| ConfigError(format!("SWITCHYARD_OIDC_ISSUERS: {issuer}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(ConfigError(format!("SWITCHYARD_OIDC_ISSUERS: {issuer} is not an http(s) URL")));
        }
    }
    if settings.enabled() && settings.audience.is_none() && settings.clients.is_empty() {
        return Err(ConfigError(
            "SWITCHYARD_OIDC_ISSUERS is set: set SWITCHYARD_OIDC_AUDIENCE (the expected aud) or SWITCHYARD_OIDC_CLIENTS \
             (the accepted azp values)"
                .into(),
        ));
    }
    Ok(settings)
}

/// `SWITCHYARD_PLATFORM_CONFIG`: a JSON object of settable keys (`domain::config`).
fn platform_config(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let invalid = |e: String| ConfigError(format!("SWITCHYARD_PLATFORM_CONFIG: {e}"));
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let serde_json::Value::Object(map) = value else { return Err(invalid("must be a JSON object".into())) };
    crate::domain::config::validate(&map).map_err(invalid)?;
    Ok(map)
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match env(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError(format!("{name}={v:?} is not a number"))),
    }
}

impl Settings {
    /// Read every setting; errors name the variable.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let in_lambda = env("AWS_LAMBDA_FUNCTION_NAME").is_some();
        // An explicit choice wins (`cargo lambda watch` emulates Lambda on a laptop); without
        // one, Lambda means AWS and anywhere else means the embedded file.
        let backend = match env("SWITCHYARD_BACKEND").as_deref() {
            Some("aws") => Backend::Aws,
            Some("embedded") => {
                Backend::Embedded { path: env("SWITCHYARD_DB").unwrap_or_else(|| DEFAULT_DB_PATH.into()) }
            }
            Some(other) => {
                return Err(ConfigError(format!("SWITCHYARD_BACKEND={other:?}: expected `aws` or `embedded`")));
            }
            None if in_lambda => Backend::Aws,
            None => Backend::Embedded { path: env("SWITCHYARD_DB").unwrap_or_else(|| DEFAULT_DB_PATH.into()) },
        };
        let mut urls = HashMap::new();
        for (queue, var) in [
            (QueueId::Runs, "SWITCHYARD_RUNS_QUEUE_URL"),
            (QueueId::RunsDlq, "SWITCHYARD_RUNS_DLQ_URL"),
            (QueueId::Polls, "SWITCHYARD_POLLS_QUEUE_URL"),
            (QueueId::PollsDlq, "SWITCHYARD_POLLS_DLQ_URL"),
        ] {
            if let Some(url) = env(var) {
                urls.insert(queue, url);
            }
        }
        let admin_key = match (env("SWITCHYARD_ADMIN_KEY"), env("SWITCHYARD_ADMIN_KEY_SECRET")) {
            (_, Some(secret_id)) => AdminKeySource::Secret(secret_id),
            (Some(key), None) if key.len() >= 16 => AdminKeySource::Value(key),
            (Some(_), None) => {
                return Err(ConfigError("SWITCHYARD_ADMIN_KEY must be at least 16 characters".into()));
            }
            // The development key only ever exists with the embedded backend, which no AWS
            // deployment uses.
            (None, None) if matches!(backend, Backend::Embedded { .. }) => {
                AdminKeySource::Value(DEV_ADMIN_KEY.to_string())
            }
            (None, None) => AdminKeySource::None,
        };
        let outbound = AddressPolicy::from_allow_list(&env("SWITCHYARD_OUTBOUND_ALLOW").unwrap_or_default())
            .map_err(|e| ConfigError(format!("SWITCHYARD_OUTBOUND_ALLOW: {e}")))?;
        let oidc = oidc_settings()?;
        let settings = Settings {
            backend,
            in_lambda,
            table: env("SWITCHYARD_TABLE").unwrap_or_else(|| "switchyard".into()),
            queue_urls: QueueUrls(urls),
            event_bus: env("SWITCHYARD_EVENT_BUS").unwrap_or_else(|| "switchyard".into()),
            secret_prefix: env("SWITCHYARD_SECRET_PREFIX").unwrap_or_else(|| "switchyard".into()),
            kms_key_id: env("SWITCHYARD_KMS_KEY_ID"),
            admin_key,
            outbound,
            secrets_cache_ttl: Duration::from_secs(env_number("SWITCHYARD_SECRETS_CACHE_SECONDS", 60)?),
            webhook: WebhookSettings {
                tolerance_secs: env_number("SWITCHYARD_WEBHOOK_TOLERANCE_SECONDS", 300)?,
                max_body_bytes: env_number("SWITCHYARD_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)?,
                dedup_ttl_secs: env_number("SWITCHYARD_WEBHOOK_DEDUP_SECONDS", 86_400)?,
                rotation_window_secs: env_number("SWITCHYARD_WEBHOOK_ROTATION_SECONDS", 86_400)?,
            },
            public_url: env("SWITCHYARD_PUBLIC_URL"),
            retry_base_secs: env_number("SWITCHYARD_RETRY_BASE_SECONDS", 5)?,
            catalog_dir: env("SWITCHYARD_CATALOG_DIR"),
            mcp_allowed_origins: origins(env("SWITCHYARD_MCP_ALLOWED_ORIGINS")),
            oauth_return_origins: origins(env("SWITCHYARD_OAUTH_RETURN_ORIGINS")),
            console_oidc: ConsoleOidc::from_env(&oidc)?,
            oidc,
            audit_retention_secs: env_number::<i64>("SWITCHYARD_AUDIT_RETENTION_DAYS", 365)?.clamp(1, 3650) * 86_400,
            plan_quotas: match env("SWITCHYARD_PLAN_QUOTAS") {
                Some(text) => crate::domain::quota::PlanTable::parse(&text)
                    .map_err(|e| ConfigError(format!("SWITCHYARD_PLAN_QUOTAS: {e}")))?,
                None => Default::default(),
            },
            emf: match env("SWITCHYARD_EMF").as_deref() {
                Some("1") => true,
                Some("0") => false,
                Some(other) => return Err(ConfigError(format!("SWITCHYARD_EMF={other:?}: expected 1 or 0"))),
                None => in_lambda,
            },
            platform_config: match env("SWITCHYARD_PLATFORM_CONFIG") {
                Some(text) => platform_config(&text)?,
                None => Default::default(),
            },
        };
        let provisioning = env("SWITCHYARD_AWS_CREATE_RESOURCES").as_deref() == Some("1");
        if settings.backend == Backend::Aws && !provisioning {
            for queue in [QueueId::Runs, QueueId::RunsDlq] {
                settings.queue_urls.url(queue).map_err(|e| ConfigError(e.to_string()))?;
            }
        }
        Ok(settings)
    }

    /// Settings for tests and embedded tools: embedded backend, no environment read.
    pub fn for_embedded(path: &str) -> Settings {
        Settings {
            backend: Backend::Embedded { path: path.to_string() },
            in_lambda: false,
            table: "switchyard".into(),
            queue_urls: QueueUrls::default(),
            event_bus: "switchyard".into(),
            secret_prefix: "switchyard".into(),
            kms_key_id: None,
            admin_key: AdminKeySource::Value(DEV_ADMIN_KEY.into()),
            outbound: AddressPolicy::default(),
            secrets_cache_ttl: Duration::from_secs(60),
            webhook: WebhookSettings::default(),
            public_url: None,
            retry_base_secs: 5,
            catalog_dir: None,
            mcp_allowed_origins: Vec::new(),
            oauth_return_origins: Vec::new(),
            oidc: OidcSettings::default(),
            audit_retention_secs: crate::store::audit::DEFAULT_RETENTION_SECS,
            plan_quotas: Default::default(),
            platform_config: Default::default(),
            emf: false,
            console_oidc: None,
        }
    }
}
