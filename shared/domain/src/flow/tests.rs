//! The format's table of invalid definitions, its schema and its round trip.

use serde_json::json;

use super::*;
use crate::connector::Catalog;
use crate::ids::ConnectorId;
use serde_json::Value;

fn parse(v: Value) -> Result<FlowDefinition, FlowError> {
    FlowDefinition::parse(&v, Catalog::builtin())
}

fn with_steps(steps: Value) -> Value {
    json!({"name": "t", "trigger": {"type": "manual"}, "steps": steps})
}

/// (case, definition, step, field, part of the message)
fn invalid_cases() -> Vec<(&'static str, Value, Option<&'static str>, &'static str, &'static str)> {
    vec![
        ("unknown kind", with_steps(json!([{"id": "a", "kind": "teleport"}])), Some("a"), "kind", "unknown step kind"),
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
            with_steps(json!([{"id": "a", "kind": "http", "url": "https://x.test", "body": {"deep": ["${{ .[ }}"]}}])),
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

/// The schema lists exactly the kinds of `StepKindName::ALL` (which error messages list), and
/// each parses: a kind added to one but not the other fails here.
#[test]
fn the_schema_lists_every_step_kind() {
    fn kinds(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(kind) = m.get("properties").and_then(|p| p.get("kind")).and_then(|k| k.get("const")) {
                    out.extend(kind.as_str().map(str::to_string));
                }
                m.values().for_each(|x| kinds(x, out));
            }
            Value::Array(items) => items.iter().for_each(|x| kinds(x, out)),
            _ => {}
        }
    }
    let mut in_schema = Vec::new();
    kinds(&serde_json::from_str(SCHEMA).unwrap(), &mut in_schema);
    in_schema.sort();
    let mut known: Vec<String> = StepKindName::ALL.iter().map(|k| k.as_str().to_string()).collect();
    known.sort();
    assert_eq!(in_schema, known);
    for kind in StepKindName::ALL {
        assert_eq!(serde_json::from_value::<StepKindName>(json!(kind.as_str())).unwrap(), kind);
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
