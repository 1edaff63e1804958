//! The OpenAPI document, compiled in from `openapi.yaml` and parsed once.

use std::sync::OnceLock;

use serde_json::Value;

const SOURCE: &str = include_str!("../openapi.yaml");

/// The document as JSON. A document that does not parse is a build defect the test suite
/// catches, so this panics rather than serving a broken one.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_saphyr::from_str(SOURCE).unwrap_or_else(|e| panic!("openapi.yaml: {e}")))
}

/// Whether some operation exists at this path (after `/api/v1/`), whatever the method.
pub fn path_exists(rest: &[&str]) -> bool {
    let Some(paths) = document().get("paths").and_then(Value::as_object) else {
        return false;
    };
    paths.keys().any(|template| {
        let parts: Vec<&str> = template.trim_start_matches("/api/v1/").split('/').collect();
        parts.len() == rest.len()
            && parts.iter().zip(rest).all(|(t, r)| (t.starts_with('{') && t.ends_with('}')) || t == r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_parses_and_anchors_expand() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let get = &doc["paths"]["/api/v1/tenants/{tenant}/workflows/{flow}"]["get"]["responses"]["404"];
        assert!(get.get("$ref").is_some(), "YAML aliases must expand: {get}");
        assert!(path_exists(&["tenants", "acme", "executions"]));
        assert!(!path_exists(&["nope"]));
    }
}
