//! The built-in catalog's files, and the checks catalog files go through.

use super::catalog::BUILTIN;
use super::*;
use serde_json::Value;

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
    use crate::expr::Expr;
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
            assert!(webhook.scheme == SchemeKind::Hmac || webhook.hmac.is_none(), "{id}: hmac settings only for hmac");
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
