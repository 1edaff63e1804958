//! Flow definitions: the documented, versioned JSON format (schema in `flow.schema.json` beside
//! this file, served at `/api/v1/schemas/flow.json`; described in `docs/flows.md`),
//! parsed with errors that name the step and the field.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::connector::Catalog;
use super::ids::{ConnectorId, StepId};
use crate::engine::{expr::Expr, template};

/// The JSON Schema of the format (served at `/api/v1/schemas/flow.json`).
pub const SCHEMA: &str = include_str!("flow.schema.json");

/// The only format version so far.
pub const FORMAT_VERSION: u32 = 1;
/// Most steps in a flow, `foreach` bodies included.
pub const MAX_STEPS: usize = 100;
/// Largest definition accepted, in bytes of JSON.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Most concurrent items a `foreach` may run.
pub const MAX_FOREACH_CONCURRENCY: u32 = 50;

/// What starts a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A webhook from a connector. `events` are event-type patterns: exact (`push`), a trailing
    /// wildcard (`pull_request.*`, `orders/*`) or `*` for all.
    Webhook {
        connector: ConnectorId,
        #[serde(default = "all_events")]
        events: Vec<String>,
    },
    /// A cron schedule (5 fields, or 6 with seconds) in an IANA time zone.
    Schedule {
        cron: String,
        #[serde(default = "utc")]
        timezone: String,
    },
    /// Changes detected by the poller on a connector resource. `input` is given to the
    /// resource's list action (e.g. the GitHub repository, the Slack channel).
    Poll {
        connector: ConnectorId,
        resource: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_seconds: Option<u32>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        input: Map<String, Value>,
    },
    /// Only over the API (`POST …/workflows/{id}/run`) or MCP (`switchyard_run_flow`).
    Manual,
}

fn all_events() -> Vec<String> {
    vec!["*".to_string()]
}

fn utc() -> String {
    "UTC".to_string()
}

impl Trigger {
    /// Whether this trigger fires for an event of `event_type` from `connector`.
    pub fn matches_webhook(&self, connector: &ConnectorId, event_type: &str) -> bool {
        match self {
            Trigger::Webhook { connector: c, events } => {
                c == connector && events.iter().any(|pattern| event_matches(pattern, event_type))
            }
            _ => false,
        }
    }
}

/// `*` matches everything; `prefix*` matches by prefix; anything else must be equal.
pub fn event_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformStep {
    /// jq over the execution context; its first output is the step's output.
    pub expr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    #[serde(default = "get")]
    pub method: String,
    /// Template for the URL.
    pub url: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub query: Map<String, Value>,
    /// Template for the body: objects and arrays are sent as JSON, strings as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Authenticate as this connector, with the tenant's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectorId>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn get() -> String {
    "GET".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionStep {
    pub connector: ConnectorId,
    pub action: String,
    /// Template for the action's input (`{}` when absent).
    #[serde(default = "empty_object")]
    pub input: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionStep {
    /// jq; truthy takes `then`, otherwise `else`.
    pub expr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<StepId>,
    #[serde(default, rename = "else", skip_serializing_if = "Vec::is_empty")]
    pub otherwise: Vec<StepId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeachStep {
    /// jq producing an array; the body runs once per element (`.item`, `.index`).
    pub items: String,
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// The body: steps with their own `depends_on` among themselves.
    pub steps: Vec<Value>,
}

fn default_concurrency() -> u32 {
    4
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// jq producing an RFC 3339 time or epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdmStep {
    pub connector: ConnectorId,
    /// Canonical entity: contact, product, order, invoice, inventory_level, fulfillment.
    pub entity: String,
    /// Template for the connector payload to map.
    pub input: Value,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    Transform(TransformStep),
    Http(HttpStep),
    Action(ActionStep),
    Condition(ConditionStep),
    Foreach(ForeachStep),
    Delay(DelayStep),
    Cdm(CdmStep),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Transform(_) => "transform",
            StepKind::Http(_) => "http",
            StepKind::Action(_) => "action",
            StepKind::Condition(_) => "condition",
            StepKind::Foreach(_) => "foreach",
            StepKind::Delay(_) => "delay",
            StepKind::Cdm(_) => "cdm",
        }
    }
}

/// The step kinds, for error messages and the schema.
pub const STEP_KINDS: &[&str] = &["transform", "http", "action", "condition", "foreach", "delay", "cdm"];

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDef {
    pub id: StepId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<StepId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// A flow definition as the API accepts and returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowDefinition {
    pub format: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub vars: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    pub steps: Vec<StepDef>,
}

/// Why a definition is invalid: which step and which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}{}{message}", step.as_ref().map(|s| format!("step {s:?}: ")).unwrap_or_default(), field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct FlowError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl FlowError {
    fn flow(field: &str, message: impl Into<String>) -> Self {
        FlowError { step: None, field: Some(field.to_string()), message: message.into() }
    }
    fn step(step: &str, field: &str, message: impl Into<String>) -> Self {
        FlowError { step: Some(step.to_string()), field: Some(field.to_string()), message: message.into() }
    }
}

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

impl FlowDefinition {
    /// Parse and fully validate a definition against the connector catalog.
    pub fn parse(value: &Value, catalog: &Catalog) -> Result<FlowDefinition, FlowError> {
        if value.to_string().len() > MAX_DEFINITION_BYTES {
            return Err(FlowError::flow("$", format!("definition larger than {MAX_DEFINITION_BYTES} bytes")));
        }
        let raw: RawFlow = RawFlow::deserialize(value).map_err(|e| FlowError::flow("$", serde_message(&e)))?;
        if raw.format != FORMAT_VERSION {
            return Err(FlowError::flow(
                "format",
                format!("unsupported format {}, expected {FORMAT_VERSION}", raw.format),
            ));
        }
        let name = super::tenancy::parse_name(&raw.name).map_err(|m| FlowError::flow("name", m))?;
        let trigger = Trigger::deserialize(&raw.trigger).map_err(|e| FlowError::flow("trigger", serde_message(&e)))?;
        let steps = parse_steps(&raw.steps, "steps")?;
        let definition = FlowDefinition {
            format: raw.format,
            name,
            description: raw.description,
            trigger,
            vars: raw.vars,
            config: raw.config,
            steps,
        };
        definition.validate(catalog)?;
        Ok(definition)
    }

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

    fn validate(&self, catalog: &Catalog) -> Result<(), FlowError> {
        validate_trigger(&self.trigger, catalog)?;
        crate::domain::config::validate(&self.config).map_err(|m| FlowError::flow("config", m))?;
        let total = count_steps(&self.steps);
        if total > MAX_STEPS {
            return Err(FlowError::flow("steps", format!("{total} steps exceed the limit of {MAX_STEPS}")));
        }
        let mut all_ids = HashSet::new();
        collect_ids(&self.steps, &mut all_ids)?;
        validate_level(&self.steps, &BTreeSet::new(), catalog)
    }
}

fn parse_steps(values: &[Value], field: &str) -> Result<Vec<StepDef>, FlowError> {
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
    let kind_name = fields
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| at("kind", format!("missing; one of {}", STEP_KINDS.join(", "))))?;
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
    let field_error = |e: serde_json::Error| at(kind_name, serde_message(&e));
    let kind = match kind_name {
        "transform" => StepKind::Transform(TransformStep::deserialize(&rest).map_err(field_error)?),
        "http" => StepKind::Http(HttpStep::deserialize(&rest).map_err(field_error)?),
        "action" => StepKind::Action(ActionStep::deserialize(&rest).map_err(field_error)?),
        "condition" => StepKind::Condition(ConditionStep::deserialize(&rest).map_err(field_error)?),
        "foreach" => StepKind::Foreach(ForeachStep::deserialize(&rest).map_err(field_error)?),
        "delay" => StepKind::Delay(DelayStep::deserialize(&rest).map_err(field_error)?),
        "cdm" => StepKind::Cdm(CdmStep::deserialize(&rest).map_err(field_error)?),
        other => {
            return Err(at("kind", format!("unknown step kind {other:?}; one of {}", STEP_KINDS.join(", "))));
        }
    };
    Ok(StepDef { id, depends_on, retry, timeout_ms, kind })
}

fn count_steps(steps: &[StepDef]) -> usize {
    steps
        .iter()
        .map(|s| match &s.kind {
            StepKind::Foreach(f) => 1 + f.steps.len(),
            _ => 1,
        })
        .sum()
}

/// Step ids are unique across the whole flow, `foreach` bodies included, so every step record
/// and every `.steps.<id>` reference is unambiguous.
fn collect_ids(steps: &[StepDef], seen: &mut HashSet<StepId>) -> Result<(), FlowError> {
    for step in steps {
        if !seen.insert(step.id.clone()) {
            return Err(FlowError::step(step.id.as_str(), "id", "duplicate step id"));
        }
        if let StepKind::Foreach(f) = &step.kind {
            let body = parse_steps(&f.steps, "steps").map_err(|e| nest(&step.id, e))?;
            collect_ids(&body, seen)?;
        }
    }
    Ok(())
}

fn nest(parent: &StepId, e: FlowError) -> FlowError {
    FlowError {
        step: Some(e.step.unwrap_or_else(|| parent.to_string())),
        field: e.field.map(|f| if f.starts_with("steps") { format!("{parent}.{f}") } else { f }),
        message: e.message,
    }
}

fn validate_trigger(trigger: &Trigger, catalog: &Catalog) -> Result<(), FlowError> {
    match trigger {
        Trigger::Webhook { connector, events } => {
            let spec = catalog
                .get(connector)
                .ok_or_else(|| FlowError::flow("trigger.connector", format!("unknown connector \"{connector}\"")))?;
            if spec.webhook.is_none() {
                return Err(FlowError::flow(
                    "trigger.connector",
                    format!("connector \"{connector}\" does not send webhooks"),
                ));
            }
            if events.is_empty() || events.iter().any(|e| e.is_empty() || e.len() > 200) {
                return Err(FlowError::flow("trigger.events", "list one or more event types or patterns"));
            }
            Ok(())
        }
        Trigger::Schedule { cron, timezone } => crate::domain::schedule::CronSchedule::parse(cron, timezone)
            .map(|_| ())
            .map_err(|m| FlowError::flow("trigger.cron", m)),
        Trigger::Poll { connector, resource, interval_seconds, input } => {
            let spec = catalog
                .get(connector)
                .ok_or_else(|| FlowError::flow("trigger.connector", format!("unknown connector \"{connector}\"")))?;
            let Some(list_action) = spec.resource(resource).and_then(|r| spec.action(&r.list_action)) else {
                return Err(FlowError::flow(
                    "trigger.resource",
                    format!("connector \"{connector}\" has no pollable resource {resource:?}"),
                ));
            };
            crate::engine::actions::validate_input(spec, list_action, &Value::Object(input.clone()))
                .map_err(|e| FlowError::flow("trigger.input", e.to_string()))?;
            if interval_seconds.is_some_and(|s| !(60..=86_400).contains(&s)) {
                return Err(FlowError::flow("trigger.interval_seconds", "must be between 60 and 86400"));
            }
            Ok(())
        }
        Trigger::Manual => Ok(()),
    }
}

/// Implicit edges: the steps of a condition's branches depend on the condition.
pub fn effective_dependencies(steps: &[StepDef]) -> BTreeMap<StepId, BTreeSet<StepId>> {
    let mut deps: BTreeMap<StepId, BTreeSet<StepId>> =
        steps.iter().map(|s| (s.id.clone(), s.depends_on.iter().cloned().collect())).collect();
    for step in steps {
        if let StepKind::Condition(c) = &step.kind {
            for branch_step in c.then.iter().chain(&c.otherwise) {
                if let Some(d) = deps.get_mut(branch_step) {
                    d.insert(step.id.clone());
                }
            }
        }
    }
    deps
}

/// Validate one level of steps (the flow, or a `foreach` body). `outer` are the ids the level
/// may reference from the enclosing level.
fn validate_level(steps: &[StepDef], outer: &BTreeSet<StepId>, catalog: &Catalog) -> Result<(), FlowError> {
    let here: HashSet<&StepId> = steps.iter().map(|s| &s.id).collect();
    for step in steps {
        for dep in &step.depends_on {
            if dep == &step.id {
                return Err(FlowError::step(step.id.as_str(), "depends_on", "a step cannot depend on itself"));
            }
            if !here.contains(dep) {
                return Err(FlowError::step(step.id.as_str(), "depends_on", format!("unknown step \"{dep}\"")));
            }
        }
        if let StepKind::Condition(c) = &step.kind {
            for (field, ids) in [("then", &c.then), ("else", &c.otherwise)] {
                for id in ids {
                    if !here.contains(id) || id == &step.id {
                        return Err(FlowError::step(step.id.as_str(), field, format!("unknown step \"{id}\"")));
                    }
                }
            }
            if let Some(both) = c.then.iter().find(|id| c.otherwise.contains(id)) {
                return Err(FlowError::step(step.id.as_str(), "else", format!("step \"{both}\" is on both branches")));
            }
        }
    }
    let deps = effective_dependencies(steps);
    let order = topological_order(&deps)
        .map_err(|cycle| FlowError::step(cycle.as_str(), "depends_on", "dependency cycle through this step"))?;
    let upstream = upstream_sets(&deps, &order);
    for step in steps {
        let mut visible: BTreeSet<StepId> = outer.clone();
        visible.extend(upstream.get(&step.id).cloned().unwrap_or_default());
        validate_step(step, &visible, catalog)?;
    }
    Ok(())
}

/// Kahn's algorithm; on a cycle, returns one step on it.
pub fn topological_order(deps: &BTreeMap<StepId, BTreeSet<StepId>>) -> Result<Vec<StepId>, StepId> {
    let mut remaining: BTreeMap<&StepId, usize> = deps.iter().map(|(id, d)| (id, d.len())).collect();
    let mut dependents: HashMap<&StepId, Vec<&StepId>> = HashMap::new();
    for (id, ds) in deps {
        for d in ds {
            dependents.entry(d).or_default().push(id);
        }
    }
    let mut ready: Vec<&StepId> = remaining.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some(id) = ready.pop() {
        order.push(id.clone());
        for next in dependents.get(id).into_iter().flatten() {
            if let Some(n) = remaining.get_mut(next) {
                *n -= 1;
                if *n == 0 {
                    ready.push(next);
                }
            }
        }
    }
    if order.len() == deps.len() {
        Ok(order)
    } else {
        let stuck = remaining.iter().find(|(id, n)| **n > 0 && !order.contains(id)).map(|(id, _)| (*id).clone());
        Err(stuck.unwrap_or_else(|| deps.keys().next().cloned().expect("non-empty graph has a key")))
    }
}

/// For each step, every step it transitively depends on.
fn upstream_sets(deps: &BTreeMap<StepId, BTreeSet<StepId>>, order: &[StepId]) -> HashMap<StepId, BTreeSet<StepId>> {
    let mut up: HashMap<StepId, BTreeSet<StepId>> = HashMap::new();
    for id in order {
        let mut all = BTreeSet::new();
        for d in deps.get(id).into_iter().flatten() {
            all.insert(d.clone());
            all.extend(up.get(d).cloned().unwrap_or_default());
        }
        up.insert(id.clone(), all);
    }
    up
}

fn check_expr(step: &StepId, field: &str, source: &str, visible: &BTreeSet<StepId>) -> Result<(), FlowError> {
    Expr::compile(source).map_err(|e| FlowError::step(step.as_str(), field, format!("expression {e}")))?;
    check_references(step, field, source, visible)
}

fn check_template(step: &StepId, field: &str, value: &Value, visible: &BTreeSet<StepId>) -> Result<(), FlowError> {
    template::check(value).map_err(|e| {
        let path = e.path.trim_start_matches('$');
        FlowError::step(step.as_str(), &format!("{field}{path}"), format!("expression {}", e.error))
    })?;
    for (path, source) in template::expressions(value) {
        if let Ok(source) = source {
            check_references(step, &format!("{field}{}", path.trim_start_matches('$')), &source, visible)?;
        }
    }
    Ok(())
}

/// `.steps.<id>` references must name a step this one (transitively) depends on: any other
/// step's output may not exist yet when this one runs.
fn check_references(step: &StepId, field: &str, source: &str, visible: &BTreeSet<StepId>) -> Result<(), FlowError> {
    for referenced in step_references(source) {
        if !visible.iter().any(|v| v.as_str() == referenced) {
            return Err(FlowError::step(
                step.as_str(),
                field,
                format!(
                    "references steps.{referenced}, which is not a step this one depends on (add it to depends_on)"
                ),
            ));
        }
    }
    Ok(())
}

/// The step ids an expression reads through `.steps.<id>` or `.steps["<id>"]`.
pub fn step_references(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find(".steps") {
        let after = &rest[i + ".steps".len()..];
        let id: String = if let Some(r) = after.strip_prefix('.') {
            if let Some(quoted) = r.strip_prefix('"') {
                quoted.split('"').next().unwrap_or("").to_string()
            } else {
                r.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')).collect()
            }
        } else if let Some(r) = after.strip_prefix("[\"") {
            r.split('"').next().unwrap_or("").to_string()
        } else {
            String::new()
        };
        if !id.is_empty() && !found.contains(&id) {
            found.push(id);
        }
        rest = after;
    }
    found
}

fn validate_step(step: &StepDef, visible: &BTreeSet<StepId>, catalog: &Catalog) -> Result<(), FlowError> {
    let id = &step.id;
    if let Some(r) = &step.retry {
        if !(1..=20).contains(&r.max_attempts) {
            return Err(FlowError::step(id.as_str(), "retry.max_attempts", "must be between 1 and 20"));
        }
        if r.initial_delay_ms > r.max_delay_ms || r.max_delay_ms > 86_400_000 {
            return Err(FlowError::step(id.as_str(), "retry", "need initial_delay_ms <= max_delay_ms <= 86400000"));
        }
    }
    match &step.kind {
        StepKind::Transform(t) => check_expr(id, "expr", &t.expr, visible),
        StepKind::Condition(c) => check_expr(id, "expr", &c.expr, visible),
        StepKind::Http(h) => {
            if http::Method::from_bytes(h.method.to_ascii_uppercase().as_bytes()).is_err() {
                return Err(FlowError::step(id.as_str(), "method", format!("invalid HTTP method {:?}", h.method)));
            }
            check_template(id, "url", &Value::String(h.url.clone()), visible)?;
            if !h.url.contains("${{") {
                let url = url::Url::parse(&h.url).map_err(|e| FlowError::step(id.as_str(), "url", e.to_string()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(FlowError::step(id.as_str(), "url", "only http and https URLs"));
                }
            }
            check_template(id, "headers", &Value::Object(h.headers.clone()), visible)?;
            check_template(id, "query", &Value::Object(h.query.clone()), visible)?;
            if let Some(body) = &h.body {
                check_template(id, "body", body, visible)?;
            }
            if let Some(c) = &h.auth {
                if catalog.get(c).is_none() {
                    return Err(FlowError::step(id.as_str(), "auth", format!("unknown connector \"{c}\"")));
                }
            }
            Ok(())
        }
        StepKind::Action(a) => {
            let spec = catalog.get(&a.connector).ok_or_else(|| {
                FlowError::step(id.as_str(), "connector", format!("unknown connector \"{}\"", a.connector))
            })?;
            if spec.action(&a.action).is_none() {
                return Err(FlowError::step(
                    id.as_str(),
                    "action",
                    format!("connector \"{}\" has no action {:?}", a.connector, a.action),
                ));
            }
            check_template(id, "input", &a.input, visible)
        }
        StepKind::Foreach(f) => {
            check_expr(id, "items", &f.items, visible)?;
            if !(1..=MAX_FOREACH_CONCURRENCY).contains(&f.concurrency) {
                return Err(FlowError::step(
                    id.as_str(),
                    "concurrency",
                    format!("must be between 1 and {MAX_FOREACH_CONCURRENCY}"),
                ));
            }
            let body = parse_steps(&f.steps, "steps").map_err(|e| nest(id, e))?;
            if body.iter().any(|s| matches!(s.kind, StepKind::Foreach(_) | StepKind::Delay(_))) {
                return Err(FlowError::step(id.as_str(), "steps", "a foreach body cannot hold foreach or delay steps"));
            }
            if let Some(step) = body.iter().find(|s| s.retry.is_some()) {
                // Items are retried by the foreach step's own policy (finished items are kept).
                return Err(FlowError::step(
                    step.id.as_str(),
                    "retry",
                    "steps inside a foreach take the foreach's retry policy",
                ));
            }
            validate_level(&body, visible, catalog)
        }
        StepKind::Delay(d) => match (&d.seconds, &d.until) {
            (Some(s), None) if *s <= 365 * 86_400 => Ok(()),
            (Some(_), None) => Err(FlowError::step(id.as_str(), "seconds", "at most one year")),
            (None, Some(until)) => check_expr(id, "until", until, visible),
            _ => Err(FlowError::step(id.as_str(), "seconds", "give exactly one of `seconds` or `until`")),
        },
        StepKind::Cdm(c) => {
            let spec = catalog.get(&c.connector).ok_or_else(|| {
                FlowError::step(id.as_str(), "connector", format!("unknown connector \"{}\"", c.connector))
            })?;
            if !spec.cdm.iter().any(|m| m.entity == c.entity) {
                return Err(FlowError::step(
                    id.as_str(),
                    "entity",
                    format!("connector \"{}\" has no mapping to {:?}", c.connector, c.entity),
                ));
            }
            check_template(id, "input", &c.input, visible)
        }
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<FlowDefinition, FlowError> {
        FlowDefinition::parse(&v, Catalog::builtin())
    }

    fn with_steps(steps: Value) -> Value {
        json!({"name": "t", "trigger": {"type": "manual"}, "steps": steps})
    }

    /// (case, definition, step, field, part of the message)
    fn invalid_cases() -> Vec<(&'static str, Value, Option<&'static str>, &'static str, &'static str)> {
        vec![
            (
                "unknown kind",
                with_steps(json!([{"id": "a", "kind": "teleport"}])),
                Some("a"),
                "kind",
                "unknown step kind",
            ),
            ("missing kind", with_steps(json!([{"id": "a"}])), Some("a"), "kind", "missing"),
            ("missing id", with_steps(json!([{"kind": "transform", "expr": "1"}])), None, "steps[0]", "missing `id`"),
            (
                "bad id",
                with_steps(json!([{"id": "a b", "kind": "transform", "expr": "1"}])),
                None,
                "steps[0].id",
                "invalid step id",
            ),
            (
                "duplicate id",
                with_steps(
                    json!([{"id": "a", "kind": "transform", "expr": "1"}, {"id": "a", "kind": "transform", "expr": "2"}]),
                ),
                Some("a"),
                "id",
                "duplicate",
            ),
            (
                "unknown dependency",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": "1", "depends_on": ["ghost"]}])),
                Some("a"),
                "depends_on",
                "unknown step \"ghost\"",
            ),
            (
                "self dependency",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": "1", "depends_on": ["a"]}])),
                Some("a"),
                "depends_on",
                "itself",
            ),
            (
                "cycle",
                with_steps(json!([
                    {"id": "a", "kind": "transform", "expr": "1", "depends_on": ["c"]},
                    {"id": "b", "kind": "transform", "expr": "1", "depends_on": ["a"]},
                    {"id": "c", "kind": "transform", "expr": "1", "depends_on": ["b"]}
                ])),
                Some("a"),
                "depends_on",
                "cycle",
            ),
            (
                "bad expression",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": ".a | | "}])),
                Some("a"),
                "expr",
                "does not compile",
            ),
            (
                "undefined function",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": "nope(1)"}])),
                Some("a"),
                "expr",
                "nope",
            ),
            (
                "bad template",
                with_steps(
                    json!([{"id": "a", "kind": "http", "url": "https://x.test", "body": {"deep": ["${{ .[ }}"]}}]),
                ),
                Some("a"),
                "body.deep[0]",
                "does not compile",
            ),
            (
                "reference to a step not upstream",
                with_steps(
                    json!([{"id": "a", "kind": "transform", "expr": "1"}, {"id": "b", "kind": "transform", "expr": ".steps.a.output"}]),
                ),
                Some("b"),
                "expr",
                "not a step this one depends on",
            ),
            (
                "reference to an unknown step",
                with_steps(json!([{"id": "a", "kind": "http", "url": "${{ .steps.ghost.output.url }}"}])),
                Some("a"),
                "url",
                "steps.ghost",
            ),
            (
                "unknown field",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": "1", "exprr": "2"}])),
                Some("a"),
                "transform",
                "unknown field",
            ),
            (
                "unknown connector",
                with_steps(json!([{"id": "a", "kind": "action", "connector": "myspace", "action": "x"}])),
                Some("a"),
                "connector",
                "unknown connector",
            ),
            (
                "unknown action",
                with_steps(json!([{"id": "a", "kind": "action", "connector": "github", "action": "launch"}])),
                Some("a"),
                "action",
                "no action \"launch\"",
            ),
            (
                "unknown cdm entity",
                with_steps(json!([{"id": "a", "kind": "cdm", "connector": "github", "entity": "order", "input": {}}])),
                Some("a"),
                "entity",
                "no mapping",
            ),
            (
                "bad method",
                with_steps(json!([{"id": "a", "kind": "http", "method": "GE T", "url": "https://x.test"}])),
                Some("a"),
                "method",
                "invalid HTTP method",
            ),
            (
                "non-http url",
                with_steps(json!([{"id": "a", "kind": "http", "url": "file:///etc/passwd"}])),
                Some("a"),
                "url",
                "only http",
            ),
            (
                "branch to unknown step",
                with_steps(json!([{"id": "a", "kind": "condition", "expr": "true", "then": ["x"]}])),
                Some("a"),
                "then",
                "unknown step",
            ),
            (
                "step on both branches",
                with_steps(
                    json!([{"id": "a", "kind": "condition", "expr": "true", "then": ["b"], "else": ["b"]}, {"id": "b", "kind": "transform", "expr": "1"}]),
                ),
                Some("a"),
                "else",
                "both branches",
            ),
            (
                "delay with both",
                with_steps(json!([{"id": "a", "kind": "delay", "seconds": 1, "until": "now"}])),
                Some("a"),
                "seconds",
                "exactly one",
            ),
            (
                "foreach concurrency",
                with_steps(
                    json!([{"id": "a", "kind": "foreach", "items": ".x", "concurrency": 0, "steps": [{"id": "b", "kind": "transform", "expr": "1"}]}]),
                ),
                Some("a"),
                "concurrency",
                "between",
            ),
            (
                "nested foreach",
                with_steps(
                    json!([{"id": "a", "kind": "foreach", "items": ".x", "steps": [{"id": "b", "kind": "foreach", "items": ".y", "steps": [{"id": "c", "kind": "transform", "expr": "1"}]}]}]),
                ),
                Some("a"),
                "steps",
                "cannot hold",
            ),
            (
                "retry inside a foreach",
                with_steps(
                    json!([{"id": "a", "kind": "foreach", "items": ".x", "steps": [{"id": "b", "kind": "transform", "expr": "1", "retry": {"max_attempts": 2}}]}]),
                ),
                Some("b"),
                "retry",
                "foreach's retry policy",
            ),
            (
                "duplicate dependency",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": "1"},
                                  {"id": "b", "kind": "transform", "expr": "1", "depends_on": ["a", "a"]}])),
                Some("b"),
                "depends_on",
                "listed twice",
            ),
            (
                "poll input refused by the list action",
                json!({"name": "n", "trigger": {"type": "poll", "connector": "github", "resource": "issues", "input": {"owner": "acme"}},
                       "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "trigger.input",
                "repo",
            ),
            (
                "bad retry",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": "1", "retry": {"max_attempts": 0}}])),
                Some("a"),
                "retry.max_attempts",
                "between 1 and 20",
            ),
            (
                "bad timeout",
                with_steps(json!([{"id": "a", "kind": "transform", "expr": "1", "timeout_ms": 0}])),
                Some("a"),
                "timeout_ms",
                "between",
            ),
            ("no steps", with_steps(json!([])), None, "steps", "at least one"),
            (
                "bad cron",
                json!({"name": "t", "trigger": {"type": "schedule", "cron": "every day"}, "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "trigger.cron",
                "invalid cron",
            ),
            (
                "bad zone",
                json!({"name": "t", "trigger": {"type": "schedule", "cron": "* * * * *", "timezone": "Moon/Base"}, "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "trigger.cron",
                "time zone",
            ),
            (
                "webhook connector without webhooks",
                json!({"name": "t", "trigger": {"type": "webhook", "connector": "gmail"}, "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "trigger.connector",
                "does not send webhooks",
            ),
            (
                "unknown poll resource",
                json!({"name": "t", "trigger": {"type": "poll", "connector": "github", "resource": "stars"}, "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "trigger.resource",
                "no pollable resource",
            ),
            (
                "bad config",
                json!({"name": "t", "trigger": {"type": "manual"}, "config": {"colour": 1}, "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "config",
                "unknown setting",
            ),
            (
                "unknown top-level field",
                json!({"name": "t", "trigger": {"type": "manual"}, "stepz": [], "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "$",
                "unknown field",
            ),
            (
                "format version",
                json!({"format": 2, "name": "t", "trigger": {"type": "manual"}, "steps": [{"id": "a", "kind": "transform", "expr": "1"}]}),
                None,
                "format",
                "unsupported format",
            ),
        ]
    }

    #[test]
    fn invalid_flows_name_the_step_and_the_field() {
        for (case, definition, step, field, message) in invalid_cases() {
            let err = parse(definition).expect_err(case);
            assert_eq!(err.step.as_deref(), step, "{case}: {err}");
            assert_eq!(err.field.as_deref(), Some(field), "{case}: {err}");
            assert!(err.message.contains(message), "{case}: {:?} should mention {message:?}", err.message);
        }
    }

    fn valid_flows() -> Vec<Value> {
        vec![
            with_steps(json!([{"id": "a", "kind": "transform", "expr": "."}])),
            json!({
                "format": 1, "name": "everything", "description": "every kind",
                "trigger": {"type": "webhook", "connector": "shopify", "events": ["orders/*"]},
                "vars": {"channel": "#ops"}, "config": {"retry": {"max_attempts": 5}, "step_timeout_ms": 10000, "vars": {"team": "ops"}},
                "steps": [
                    {"id": "order", "kind": "cdm", "connector": "shopify", "entity": "order", "input": "${{ .trigger.payload }}"},
                    {"id": "big", "kind": "condition", "depends_on": ["order"], "expr": ".steps.order.output.total > 100", "then": ["notify"]},
                    {"id": "notify", "kind": "http", "method": "POST", "url": "https://hooks.example.com/x", "headers": {"x-tenant": "${{ .execution.tenant }}"},
                     "body": {"text": "Order ${{ .steps.order.output.number }}"}, "retry": {"max_attempts": 2}},
                    {"id": "lines", "kind": "foreach", "depends_on": ["order"], "items": ".steps.order.output.line_items", "concurrency": 3,
                     "steps": [{"id": "line", "kind": "transform", "expr": ".item.sku"}]},
                    {"id": "later", "kind": "delay", "depends_on": ["lines"], "seconds": 60},
                    {"id": "issue", "kind": "action", "depends_on": ["later"], "connector": "github", "action": "create_issue",
                     "input": {"owner": "acme", "repo": "ops", "title": "${{ .steps.order.output.number }}"}, "timeout_ms": 5000}
                ]
            }),
            json!({"name": "cron", "trigger": {"type": "schedule", "cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris"},
                   "steps": [{"id": "a", "kind": "delay", "until": ".trigger.scheduled_at"}]}),
            json!({"name": "poll", "trigger": {"type": "poll", "connector": "hubspot", "resource": "contacts", "interval_seconds": 300},
                   "steps": [{"id": "a", "kind": "transform", "expr": ".trigger"}]}),
        ]
    }

    #[test]
    fn the_published_schema_agrees_with_the_parser() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
        for flow in valid_flows() {
            parse(flow.clone()).unwrap_or_else(|e| panic!("{e}"));
            let errors: Vec<String> = validator.iter_errors(&flow).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "schema refuses a valid flow: {errors:?}\n{flow}");
        }
        // What the schema can express, it refuses too.
        for (case, definition, ..) in invalid_cases() {
            let schema_expressible = matches!(
                case,
                "unknown kind"
                    | "missing kind"
                    | "missing id"
                    | "bad id"
                    | "unknown field"
                    | "foreach concurrency"
                    | "nested foreach"
                    | "retry inside a foreach"
                    | "duplicate dependency"
                    | "bad retry"
                    | "bad timeout"
                    | "no steps"
                    | "bad config"
                    | "unknown top-level field"
                    | "format version"
            );
            if schema_expressible {
                assert!(!validator.is_valid(&definition), "schema accepts {case}");
            }
        }
    }

    #[test]
    fn stored_definitions_round_trip() {
        for flow in valid_flows() {
            let parsed = parse(flow).unwrap();
            let again = FlowDefinition::from_stored(&parsed.to_value()).unwrap();
            assert_eq!(parsed, again);
        }
    }

    #[test]
    fn triggers_match_event_patterns() {
        let trigger = Trigger::Webhook {
            connector: ConnectorId::parse("shopify").unwrap(),
            events: vec!["orders/*".into(), "refunds/create".into()],
        };
        let shopify = ConnectorId::parse("shopify").unwrap();
        assert!(trigger.matches_webhook(&shopify, "orders/create"));
        assert!(trigger.matches_webhook(&shopify, "refunds/create"));
        assert!(!trigger.matches_webhook(&shopify, "refunds/update"));
        assert!(!trigger.matches_webhook(&ConnectorId::parse("stripe").unwrap(), "orders/create"));
        assert!(event_matches("*", "anything"));
    }
}
