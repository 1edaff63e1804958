//! Checks of connector files beyond their shape, and of inputs against an action's schema.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use super::spec::{ActionSpec, ConnectorSpec, EventTypeSource, SchemeKind};
use crate::expr::Expr;
use crate::template;

/// How thoroughly catalog files are checked when loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Depth {
    /// Shapes, ids, methods, paths, URLs.
    Structure,
    /// And every jq expression and template compiles.
    Full,
}

/// Checks beyond the YAML shape: expressions compile, paths are relative, ids are unique.
pub(super) fn check_spec(spec: &ConnectorSpec, depth: Depth) -> Result<(), String> {
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
        if !crate::cdm::ENTITIES.contains(&mapping.entity.as_str()) {
            return Err(format!("cdm mapping to unknown entity {:?}", mapping.entity));
        }
        compile(&format!("cdm {}", mapping.entity), &mapping.expr)?;
    }
    Ok(())
}

/// An input an action's JSON Schema refuses: what is wrong, and where (at most five problems).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// Check an action input against its JSON Schema (validators compiled once per container).
pub fn validate_input(spec: &ConnectorSpec, action: &ActionSpec, input: &Value) -> Result<(), InvalidInput> {
    type Cache = Mutex<HashMap<(String, String), Arc<jsonschema::Validator>>>;
    static VALIDATORS: OnceLock<Cache> = OnceLock::new();
    let key = (spec.id.to_string(), action.id.clone());
    let cached = VALIDATORS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
    let validator = match cached {
        Some(v) => v,
        None => {
            let v = Arc::new(
                jsonschema::validator_for(&action.input_schema)
                    .map_err(|e| InvalidInput(format!("the action's schema is invalid: {e}")))?,
            );
            VALIDATORS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner()).insert(key, v.clone());
            v
        }
    };
    let problems: Vec<String> = validator
        .iter_errors(input)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(InvalidInput(problems.join("; "))) }
}
