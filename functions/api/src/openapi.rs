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
    !methods_at(rest).is_empty()
}

/// The methods documented at this path (after `/api/v1/`), upper-case, e.g. `["GET", "PUT"]`.
pub fn methods_at(rest: &[&str]) -> Vec<String> {
    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];
    let Some(paths) = document().get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    let is_param = |t: &str| t.starts_with('{') && t.ends_with('}');
    let matching: Vec<(&String, &Value, usize)> = paths
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.trim_start_matches("/api/v1/").split('/').collect();
            let matches = parts.len() == rest.len() && parts.iter().zip(rest).all(|(t, r)| is_param(t) || t == r);
            matches.then(|| (template, item, parts.iter().filter(|t| is_param(t)).count()))
        })
        .collect();
    // A literal path (`/alerts/events`) wins over a template that also matches it
    // (`/alerts/{alert}`), as in the router.
    let fewest = matching.iter().map(|(.., params)| *params).min().unwrap_or(0);
    let mut methods = Vec::new();
    for (_, item, params) in matching {
        if params == fewest {
            for m in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                let upper = m.to_ascii_uppercase();
                if !methods.contains(&upper) {
                    methods.push(upper);
                }
                // Every GET answers HEAD too (`handle`).
                if *m == "get" && !methods.iter().any(|x| x == "HEAD") {
                    methods.push("HEAD".into());
                }
            }
        }
    }
    methods
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
        assert_eq!(methods_at(&["tenants", "acme"]), ["GET", "HEAD", "DELETE", "PATCH"]);
        assert!(!path_exists(&["nope"]));
    }
}
