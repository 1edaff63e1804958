//! The configuration cascade of the seed: flow config overrides integration (tenant connector)
//! config, which overrides tenant config, organization (space) config, and the platform level.
//! Objects merge key by key at every depth; any other value replaces the one below it.
//!
//! The platform level is the deployment's (`SWITCHYARD_PLATFORM_CONFIG`, validated like every
//! level) over the built-in defaults below, so an operator sets it without a release.
//! [`provenance`] says, for every leaf key, which level set the effective value.

use serde_json::{Map, Value, json};

use serde::{Deserialize, Serialize};

/// Retry policy of a step (overrides the config cascade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    #[serde(default = "default_initial_delay")]
    pub initial_delay_ms: u64,
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: u64,
}

fn default_initial_delay() -> u64 {
    1_000
}
fn default_max_delay() -> u64 {
    300_000
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, initial_delay_ms: default_initial_delay(), max_delay_ms: default_max_delay() }
    }
}

/// The built-in defaults under the platform level.
pub fn platform_defaults() -> Value {
    json!({
        "retry": {"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 300000},
        "step_timeout_ms": 30000
    })
}

/// Keys a config level may set, with what they mean (checked when a level is written):
/// `retry` and `step_timeout_ms` steer the engine; `rate_limit` (`requests` per
/// `per_seconds`) bounds the calls made with each of a tenant's connections, over the
/// connector's own limit, field by field (usually set at the integration level); `vars` is
/// free-form (an object of values flows read as `.vars.<name>`, e.g. a tenant's Slack
/// channel); `platform_events` says which platform events go to the event bus (see
/// [`PlatformEvents`]).
pub const KNOWN_KEYS: &[&str] = &["retry", "step_timeout_ms", "rate_limit", "vars", "platform_events"];

/// Which platform events are published to the bus: `"all"`, `"none"`, or a list of types, each
/// exact (`quota.warning`) or a family (`execution.*`). Unset is none: a space with no consumer
/// pays for no event (set it at the platform level, `SWITCHYARD_PLATFORM_CONFIG`, for every
/// space of a deployment whose bus has rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformEvents {
    All,
    None,
    Only(Vec<String>),
}

/// Most entries a `platform_events` list may hold.
pub const MAX_EVENT_TYPES: usize = 64;

impl PlatformEvents {
    fn parse(value: &Value) -> Result<PlatformEvents, String> {
        match value {
            Value::String(s) if s == "all" => Ok(PlatformEvents::All),
            Value::String(s) if s == "none" => Ok(PlatformEvents::None),
            Value::Array(types) if types.len() <= MAX_EVENT_TYPES => types
                .iter()
                .map(|t| match t.as_str() {
                    Some(t) if !t.is_empty() && t.len() <= 128 && (!t.contains('*') || (t.ends_with(".*") && t.matches('*').count() == 1)) => {
                        Ok(t.to_string())
                    }
                    _ => Err("platform_events: each entry is an event type such as \"execution.failed\" or a family such as \"execution.*\"".to_string()),
                })
                .collect::<Result<_, _>>()
                .map(PlatformEvents::Only),
            _ => Err(format!("platform_events is \"all\", \"none\" or a list of at most {MAX_EVENT_TYPES} event types")),
        }
    }

    /// Whether an event of `detail_type` is published.
    pub fn allows(&self, detail_type: &str) -> bool {
        match self {
            PlatformEvents::All => true,
            PlatformEvents::None => false,
            PlatformEvents::Only(types) => types.iter().any(|t| match t.strip_suffix('*') {
                Some(family) => detail_type.starts_with(family),
                None => t == detail_type,
            }),
        }
    }
}

/// The effective `platform_events` of a configuration (none when unset or invalid).
pub fn platform_events(config: &Value) -> PlatformEvents {
    config.get("platform_events").and_then(|v| PlatformEvents::parse(v).ok()).unwrap_or(PlatformEvents::None)
}

/// A `rate_limit` level's fields: both optional, each falling back to the level below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSetting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_seconds: Option<u32>,
}

/// The effective `rate_limit` of a configuration, if any level set it.
pub fn rate_limit(config: &Value) -> Option<RateLimitSetting> {
    config.get("rate_limit").and_then(|r| serde_json::from_value(r.clone()).ok())
}

/// Largest `vars` object one level may hold (serialized).
pub const MAX_VARS_BYTES: usize = 16 * 1024;

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Merge levels from lowest to highest priority on top of the built-in defaults.
pub fn cascade(levels: &[&Map<String, Value>]) -> Value {
    let mut config = platform_defaults();
    for level in levels {
        merge(&mut config, &Value::Object((*level).clone()));
    }
    config
}

/// The platform level: the deployment's settings over the built-in defaults.
pub fn platform_level(deployment: &Map<String, Value>) -> Map<String, Value> {
    match cascade(&[deployment]) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The levels of the cascade, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Platform,
    Space,
    Tenant,
    Integration,
    Flow,
}

/// One leaf key of the effective configuration: its value, the level that set it, and what
/// every level says (absent where a level is silent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyOrigin {
    /// Dotted path (`retry.max_attempts`, `vars.channel`).
    pub key: String,
    pub value: Value,
    pub source: Level,
    pub levels: Map<String, Value>,
}

fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(&path, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// Where each effective value came from: `levels` lowest first (the platform level as
/// `platform_level` gives it).
pub fn provenance(levels: &[(Level, &Map<String, Value>)]) -> (Value, Vec<KeyOrigin>) {
    let mut effective = Value::Object(Map::new());
    for (_, level) in levels {
        merge(&mut effective, &Value::Object((*level).clone()));
    }
    let mut keys = Vec::new();
    leaves("", &effective, &mut keys);
    let origins = keys
        .into_iter()
        .map(|(key, value)| {
            let mut at_levels = Map::new();
            let mut source = Level::Platform;
            for (level, map) in levels {
                if let Some(v) = lookup(map, &key) {
                    at_levels.insert(level_name(*level).into(), v);
                    source = *level;
                }
            }
            KeyOrigin { key, value, source, levels: at_levels }
        })
        .collect();
    (effective, origins)
}

fn lookup(map: &Map<String, Value>, path: &str) -> Option<Value> {
    let mut parts = path.split('.');
    let mut current = map.get(parts.next()?)?;
    for part in parts {
        current = current.get(part)?;
    }
    Some(current.clone())
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Platform => "platform",
        Level::Space => "space",
        Level::Tenant => "tenant",
        Level::Integration => "integration",
        Level::Flow => "flow",
    }
}

/// A flow's variables: its own `vars` are defaults, overridden key by key by the `vars` of the
/// effective configuration (space, tenant and flow config levels).
pub fn variables(flow_vars: &Map<String, Value>, config: &Value) -> Value {
    let mut vars = Value::Object(flow_vars.clone());
    if let Some(over) = config.get("vars") {
        merge(&mut vars, over);
    }
    vars
}

/// The effective retry policy (a step's own `retry` still wins over the cascade).
pub fn retry_policy(config: &Value) -> RetryPolicy {
    config.get("retry").and_then(|r| serde_json::from_value(r.clone()).ok()).unwrap_or_default()
}

pub fn step_timeout_ms(config: &Value) -> u64 {
    config.get("step_timeout_ms").and_then(Value::as_u64).unwrap_or(30_000).clamp(1, 900_000)
}

/// Check one level before it is stored: known keys, sane values.
pub fn validate(level: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in level {
        match key.as_str() {
            "retry" => {
                let merged = cascade(&[&Map::from_iter([("retry".to_string(), value.clone())])]);
                let policy: RetryPolicy =
                    serde_json::from_value(merged["retry"].clone()).map_err(|e| format!("retry: {e}"))?;
                if !(1..=20).contains(&policy.max_attempts) {
                    return Err("retry.max_attempts must be between 1 and 20".into());
                }
                if policy.initial_delay_ms > policy.max_delay_ms || policy.max_delay_ms > 86_400_000 {
                    return Err("retry: need initial_delay_ms <= max_delay_ms <= 86400000".into());
                }
            }
            "step_timeout_ms" => {
                if !value.as_u64().is_some_and(|t| (1..=900_000).contains(&t)) {
                    return Err("step_timeout_ms must be between 1 and 900000".into());
                }
            }
            "rate_limit" => {
                let setting: RateLimitSetting =
                    serde_json::from_value(value.clone()).map_err(|e| format!("rate_limit: {e}"))?;
                if setting.requests.is_some_and(|r| !(1..=1_000_000).contains(&r)) {
                    return Err("rate_limit.requests must be between 1 and 1000000".into());
                }
                if setting.per_seconds.is_some_and(|s| !(1..=86_400).contains(&s)) {
                    return Err("rate_limit.per_seconds must be between 1 and 86400".into());
                }
            }
            "platform_events" => {
                PlatformEvents::parse(value)?;
            }
            "vars" => {
                if !value.is_object() {
                    return Err("vars must be an object".into());
                }
                if value.to_string().len() > MAX_VARS_BYTES {
                    return Err(format!("vars may hold at most {MAX_VARS_BYTES} bytes"));
                }
            }
            other => return Err(format!("unknown setting {other:?}; known: {}", KNOWN_KEYS.join(", "))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_events_are_none_unless_a_level_asks_for_them() {
        assert_eq!(platform_events(&cascade(&[])), PlatformEvents::None);
        let only = platform_events(&json!({"platform_events": ["execution.*", "quota.warning"]}));
        assert!(only.allows("execution.failed") && only.allows("quota.warning"));
        assert!(!only.allows("quota.overage") && !only.allows("executions.x") && !only.allows("poll.unhealthy"));
        assert!(platform_events(&json!({"platform_events": "all"})).allows("anything"));
        assert!(validate(&map(json!({"platform_events": ["execution.*"]}))).is_ok());
        for bad in [json!("some"), json!(["*"]), json!(["a*b"]), json!([""]), json!([1]), json!({"all": true})] {
            assert!(validate(&map(json!({"platform_events": bad.clone()}))).is_err(), "{bad}");
        }
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn more_specific_levels_win_key_by_key() {
        let space = map(json!({"retry": {"max_attempts": 5}}));
        let tenant = map(json!({"retry": {"initial_delay_ms": 200}}));
        let integration = map(json!({"step_timeout_ms": 5000}));
        let flow = map(json!({"retry": {"max_attempts": 8}}));
        let config = cascade(&[&space, &tenant, &integration, &flow]);
        assert_eq!(config["retry"], json!({"max_attempts": 8, "initial_delay_ms": 200, "max_delay_ms": 300000}));
        assert_eq!(step_timeout_ms(&config), 5000);
        assert_eq!(retry_policy(&config).max_attempts, 8);
        assert_eq!(retry_policy(&cascade(&[])).max_attempts, 3, "platform default");
    }

    #[test]
    fn levels_are_validated() {
        assert!(validate(&map(json!({"retry": {"max_attempts": 4}}))).is_ok());
        assert!(validate(&map(json!({"retry": {"max_attempts": 0}}))).is_err());
        assert!(validate(&map(json!({"retry": {"initial_delay_ms": 9, "max_delay_ms": 1}}))).is_err());
        assert!(validate(&map(json!({"step_timeout_ms": 0}))).is_err());
        assert!(validate(&map(json!({"colour": "blue"}))).unwrap_err().contains("unknown"));
        assert!(validate(&map(json!({"vars": {"channel": "#ops", "limits": {"max": 3}}}))).is_ok());
        assert!(validate(&map(json!({"vars": "nope"}))).is_err());
        assert!(validate(&map(json!({"rate_limit": {"requests": 10, "per_seconds": 60}}))).is_ok());
        assert!(validate(&map(json!({"rate_limit": {"requests": 0}}))).is_err());
        assert!(validate(&map(json!({"rate_limit": {"per_seconds": 100000}}))).is_err());
        assert!(validate(&map(json!({"rate_limit": {"burst": 3}}))).is_err());
        assert!(validate(&map(json!({"vars": {"big": "x".repeat(MAX_VARS_BYTES)}}))).is_err());
    }

    #[test]
    fn provenance_names_the_level_that_set_each_key() {
        let platform = platform_level(&map(json!({"retry": {"max_attempts": 4}})));
        let space = map(json!({"retry": {"max_attempts": 5}, "vars": {"channel": "#ops"}}));
        let tenant = map(json!({}));
        let flow = map(json!({"retry": {"max_attempts": 7}}));
        let levels =
            [(Level::Platform, &platform), (Level::Space, &space), (Level::Tenant, &tenant), (Level::Flow, &flow)];
        let (effective, origins) = provenance(&levels);
        assert_eq!(effective["retry"]["max_attempts"], 7);
        let attempts = origins.iter().find(|o| o.key == "retry.max_attempts").unwrap();
        assert_eq!(attempts.source, Level::Flow);
        assert_eq!(attempts.levels, map(json!({"platform": 4, "space": 5, "flow": 7})));
        let delay = origins.iter().find(|o| o.key == "retry.initial_delay_ms").unwrap();
        assert_eq!((delay.source, delay.value.clone()), (Level::Platform, json!(1000)));
        let channel = origins.iter().find(|o| o.key == "vars.channel").unwrap();
        assert_eq!((channel.source, channel.value.clone()), (Level::Space, json!("#ops")));
    }

    #[test]
    fn flow_vars_are_defaults_the_cascade_overrides() {
        let flow_vars = map(json!({"channel": "#general", "greeting": "hi"}));
        let tenant = map(json!({"vars": {"channel": "#acme-ops"}}));
        let config = cascade(&[&tenant]);
        assert_eq!(variables(&flow_vars, &config), json!({"channel": "#acme-ops", "greeting": "hi"}));
        assert_eq!(variables(&flow_vars, &cascade(&[])), json!({"channel": "#general", "greeting": "hi"}));
    }
}
