//! The rules a parsed definition must follow: a DAG of known steps, expressions that compile,
//! references only to upstream steps, triggers and actions the catalog has.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::graph::{effective_dependencies, topological_order, upstream_sets};
use super::model::*;
use super::parse::{parse_steps, shape};
use crate::connector::Catalog;
use crate::expr::Expr;
use crate::ids::StepId;
use crate::template;

impl FlowDefinition {
    /// Parse and fully validate a new definition against the connector catalog.
    pub fn parse(value: &Value, catalog: &Catalog) -> Result<FlowDefinition, FlowError> {
        let definition = shape(value)?;
        rules(&definition, catalog)?;
        Ok(definition)
    }
}

/// Every rule a definition must follow beyond its shape.
fn rules(flow: &FlowDefinition, catalog: &Catalog) -> Result<(), FlowError> {
    validate_trigger(&flow.trigger, catalog)?;
    crate::config::validate(&flow.config).map_err(|m| FlowError::flow("config", m))?;
    let total = count_steps(&flow.steps);
    if total > MAX_STEPS {
        return Err(FlowError::flow("steps", format!("{total} steps exceed the limit of {MAX_STEPS}")));
    }
    let mut all_ids = HashSet::new();
    collect_ids(&flow.steps, &mut all_ids)?;
    validate_level(&flow.steps, &BTreeSet::new(), catalog)
}

fn count_steps(steps: &[StepDef]) -> usize {
    steps
        .iter()
        .map(|s| match &s.kind {
            StepKind::Foreach(f) => 1 + f.steps.len(),
            StepKind::Transform(_)
            | StepKind::Http(_)
            | StepKind::Action(_)
            | StepKind::Condition(_)
            | StepKind::Delay(_)
            | StepKind::Cdm(_) => 1,
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
        Trigger::Schedule { cron, timezone } => crate::schedule::CronSchedule::parse(cron, timezone)
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
            crate::connector::validate_input(spec, list_action, &Value::Object(input.clone()))
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
