//! The configuration cascade of the seed: flow config overrides integration (tenant connector)
//! config, which overrides tenant config, organization (space) config, and platform defaults.
//! Objects merge key by key at every depth; any other value replaces the one below it.

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

/// The platform's defaults (the lowest level).
pub fn platform_defaults() -> Value {
    json!({
        "retry": {"max_attempts": 3, "initial_delay_ms": 1000, "max_delay_ms": 300000},
        "step_timeout_ms": 30000
    })
}

/// Keys a config level may set, with what they mean (checked when a level is written):
/// `retry` and `step_timeout_ms` steer the engine; `vars` is free-form (an object of values
/// flows read as `.vars.<name>`, e.g. a tenant's Slack channel).
pub const KNOWN_KEYS: &[&str] = &["retry", "step_timeout_ms", "vars"];

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

/// Merge levels from lowest to highest priority on top of the platform defaults.
pub fn cascade(levels: &[&Map<String, Value>]) -> Value {
    let mut config = platform_defaults();
    for level in levels {
        merge(&mut config, &Value::Object((*level).clone()));
    }
    config
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
        assert!(validate(&map(json!({"vars": {"big": "x".repeat(MAX_VARS_BYTES)}}))).is_err());
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
