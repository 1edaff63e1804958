//! Reading a definition: JSON (or YAML turned into JSON) into the types of `model`, with errors
//! that name the step and the field.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::model::*;
use crate::ids::StepId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    #[serde(default = "format_v1")]
    format: u32,
    name: String,
    #[serde(default)]
    description: Option<String>,
    trigger: Value,
    #[serde(default)]
    vars: Map<String, Value>,
    #[serde(default)]
    config: Map<String, Value>,
    steps: Vec<Value>,
}

fn format_v1() -> u32 {
    FORMAT_VERSION
}

/// Serde's messages name the field in backticks; keep the message, it is precise enough.
fn serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A new definition's shape: the size, the fields, the format, the name, each step's kind and
/// fields. The rules beyond the shape are `validate`'s (`FlowDefinition::parse` does both).
pub(super) fn shape(value: &Value) -> Result<FlowDefinition, FlowError> {
    if value.to_string().len() > MAX_DEFINITION_BYTES {
        return Err(FlowError::flow("$", format!("definition larger than {MAX_DEFINITION_BYTES} bytes")));
    }
    let raw: RawFlow = RawFlow::deserialize(value).map_err(|e| FlowError::flow("$", serde_message(&e)))?;
    if raw.format != FORMAT_VERSION {
        return Err(FlowError::flow("format", format!("unsupported format {}, expected {FORMAT_VERSION}", raw.format)));
    }
    let name = crate::tenancy::parse_name(&raw.name).map_err(|m| FlowError::flow("name", m))?;
    let trigger = Trigger::deserialize(&raw.trigger).map_err(|e| FlowError::flow("trigger", serde_message(&e)))?;
    let steps = parse_steps(&raw.steps, "steps")?;
    Ok(FlowDefinition {
        format: raw.format,
        name,
        description: raw.description,
        trigger,
        vars: raw.vars,
        config: raw.config,
        steps,
    })
}

impl FlowDefinition {
    /// Parse a definition that was validated when it was stored.
    pub fn from_stored(value: &Value) -> Result<FlowDefinition, FlowError> {
        let raw: RawFlow = RawFlow::deserialize(value).map_err(|e| FlowError::flow("$", serde_message(&e)))?;
        Ok(FlowDefinition {
            format: raw.format,
            name: raw.name,
            description: raw.description,
            trigger: Trigger::deserialize(&raw.trigger).map_err(|e| FlowError::flow("trigger", serde_message(&e)))?,
            vars: raw.vars,
            config: raw.config,
            steps: parse_steps(&raw.steps, "steps")?,
        })
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Every step kind's name, for error messages.
fn kind_names() -> String {
    StepKindName::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
}

pub(super) fn parse_steps(values: &[Value], field: &str) -> Result<Vec<StepDef>, FlowError> {
    if values.is_empty() {
        return Err(FlowError::flow(field, "a flow needs at least one step"));
    }
    values.iter().enumerate().map(|(i, v)| parse_step(v, &format!("{field}[{i}]"))).collect()
}

fn parse_step(value: &Value, position: &str) -> Result<StepDef, FlowError> {
    let Value::Object(fields) = value else {
        return Err(FlowError::flow(position, "a step must be an object"));
    };
    let id_text = fields.get("id").and_then(Value::as_str).ok_or_else(|| FlowError::flow(position, "missing `id`"))?;
    let id = StepId::parse(id_text).map_err(|e| FlowError::flow(&format!("{position}.id"), e.to_string()))?;
    let at = |field: &str, message: String| FlowError::step(id.as_str(), field, message);
    let kind_name = match fields.get("kind") {
        None => return Err(at("kind", format!("missing; one of {}", kind_names()))),
        Some(v) => StepKindName::deserialize(v).map_err(|_| {
            let shown = v.as_str().map(|s| format!("{s:?}")).unwrap_or_else(|| v.to_string());
            at("kind", format!("unknown step kind {shown}; one of {}", kind_names()))
        })?,
    };
    let depends_on = match fields.get("depends_on") {
        None => Vec::new(),
        Some(v) => Vec::<StepId>::deserialize(v).map_err(|e| at("depends_on", serde_message(&e)))?,
    };
    if let Some(dup) = depends_on.iter().enumerate().find(|(i, d)| depends_on[..*i].contains(d)).map(|(_, d)| d) {
        return Err(at("depends_on", format!("\"{dup}\" is listed twice")));
    }
    let retry = match fields.get("retry") {
        None => None,
        Some(v) => Some(RetryPolicy::deserialize(v).map_err(|e| at("retry", serde_message(&e)))?),
    };
    let timeout_ms = match fields.get("timeout_ms") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|t| (1..=900_000).contains(t))
                .ok_or_else(|| at("timeout_ms", "must be an integer between 1 and 900000".into()))?,
        ),
    };
    let rest: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "id" | "kind" | "depends_on" | "retry" | "timeout_ms"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rest = Value::Object(rest);
    let field_error = |e: serde_json::Error| at(kind_name.as_str(), serde_message(&e));
    let kind = match kind_name {
        StepKindName::Transform => StepKind::Transform(TransformStep::deserialize(&rest).map_err(field_error)?),
        StepKindName::Http => StepKind::Http(HttpStep::deserialize(&rest).map_err(field_error)?),
        StepKindName::Action => StepKind::Action(ActionStep::deserialize(&rest).map_err(field_error)?),
        StepKindName::Condition => StepKind::Condition(ConditionStep::deserialize(&rest).map_err(field_error)?),
        StepKindName::Foreach => StepKind::Foreach(ForeachStep::deserialize(&rest).map_err(field_error)?),
        StepKindName::Delay => StepKind::Delay(DelayStep::deserialize(&rest).map_err(field_error)?),
        StepKindName::Cdm => StepKind::Cdm(CdmStep::deserialize(&rest).map_err(field_error)?),
    };
    Ok(StepDef { id, depends_on, retry, timeout_ms, kind })
}

impl StepDef {
    /// The body of a `foreach` step, parsed (it was validated with the flow).
    pub fn foreach_body(&self) -> Option<Vec<StepDef>> {
        match &self.kind {
            StepKind::Foreach(f) => parse_steps(&f.steps, "steps").ok(),
            _ => None,
        }
    }
}
