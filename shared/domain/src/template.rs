//! Step inputs are JSON templates: any string may hold jq expressions in `${{ … }}`.
//!
//! - A string that is exactly one expression (`"${{ .trigger.payload.id }}"`) becomes the
//!   expression's value, whatever its type.
//! - A string with text around expressions (`"Order ${{ .id }} paid"`) stays a string; string
//!   values are inserted as they are, `null` as nothing, other values as compact JSON.
//! - Inside a string with text around it, an expression cannot contain `}}`; write `} }`.
//!
//! Expressions see the execution context: `.trigger`, `.steps.<id>.output`, `.vars`,
//! `.config`, `.execution` (and `.item`, `.index` inside `foreach`).

use serde_json::Value;

use super::expr::{Expr, ExprError};

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// An expression inside a template failed, at a JSON path within the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: expression {error}")]
pub struct TemplateError {
    pub path: String,
    pub error: ExprError,
}

enum Piece<'a> {
    Text(&'a str),
    Expr(&'a str),
}

/// Split a string into text and expression pieces; `None` if it holds no expression.
fn pieces(s: &str) -> Result<Option<Vec<Piece<'_>>>, ExprError> {
    if !s.contains(OPEN) {
        return Ok(None);
    }
    let trimmed = s.trim();
    if let Some(inner) = trimmed.strip_prefix(OPEN).and_then(|r| r.strip_suffix(CLOSE)) {
        if !inner.contains(OPEN) {
            return Ok(Some(vec![Piece::Expr(inner.trim())]));
        }
    }
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + OPEN.len()..];
        let end = after.find(CLOSE).ok_or_else(|| ExprError::Compile(format!("unclosed {OPEN}")))?;
        out.push(Piece::Expr(after[..end].trim()));
        rest = &after[end + CLOSE.len()..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(Some(out))
}

/// Every expression in a template with its path (for validation and reference analysis).
pub fn expressions(template: &Value) -> Vec<(String, Result<String, ExprError>)> {
    let mut found = Vec::new();
    walk(template, "$", &mut |path, s| match pieces(s) {
        Ok(Some(ps)) => {
            for p in ps {
                if let Piece::Expr(e) = p {
                    found.push((path.to_string(), Ok(e.to_string())));
                }
            }
        }
        Ok(None) => {}
        Err(e) => found.push((path.to_string(), Err(e))),
    });
    found
}

fn walk(v: &Value, path: &str, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), f);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                walk(item, &format!("{path}.{k}"), f);
            }
        }
        _ => {}
    }
}

/// Compile every expression of a template, reporting the first that fails with its path.
pub fn check(template: &Value) -> Result<(), TemplateError> {
    for (path, source) in expressions(template) {
        let source = source.map_err(|error| TemplateError { path: path.clone(), error })?;
        Expr::compile(&source).map_err(|error| TemplateError { path, error })?;
    }
    Ok(())
}

/// Evaluate a template against the context.
pub fn render(template: &Value, context: &Value) -> Result<Value, TemplateError> {
    render_at(template, context, "$")
}

fn render_at(template: &Value, context: &Value, path: &str) -> Result<Value, TemplateError> {
    let fail = |error| TemplateError { path: path.to_string(), error };
    match template {
        Value::String(s) => match pieces(s).map_err(fail)? {
            None => Ok(template.clone()),
            Some(ps) => {
                if let [Piece::Expr(source)] = ps.as_slice() {
                    return Expr::compile(source).and_then(|e| e.eval(context)).map_err(fail);
                }
                let mut out = String::new();
                for p in ps {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Expr(source) => {
                            match Expr::compile(source).and_then(|e| e.eval(context)).map_err(fail)? {
                                Value::String(s) => out.push_str(&s),
                                Value::Null => {}
                                other => out.push_str(&other.to_string()),
                            }
                        }
                    }
                }
                Ok(Value::String(out))
            }
        },
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| render_at(item, context, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, item)| Ok((k.clone(), render_at(item, context, &format!("{path}.{k}"))?)))
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(Value::Object),
        _ => Ok(template.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_whole_values_and_interpolations() {
        let ctx = json!({"trigger": {"payload": {"id": 7, "name": "Ada", "tags": ["a"]}}});
        let t = json!({
            "id": "${{ .trigger.payload.id }}",
            "greeting": "Hello ${{ .trigger.payload.name }} (#${{ .trigger.payload.id }})",
            "tags": ["${{ .trigger.payload.tags }}", "plain"],
            "n": 3,
            "obj": "${{ {a: {b: 1}} }}"
        });
        assert_eq!(
            render(&t, &ctx).unwrap(),
            json!({"id": 7, "greeting": "Hello Ada (#7)", "tags": [["a"], "plain"], "n": 3, "obj": {"a": {"b": 1}}})
        );
    }

    #[test]
    fn reports_the_path_of_a_bad_expression() {
        let t = json!({"a": [1, {"b": "x ${{ .[ }} y"}]});
        let err = check(&t).unwrap_err();
        assert_eq!(err.path, "$.a[1].b");
        let err = check(&json!({"u": "${{ .a"})).unwrap_err();
        assert!(err.to_string().contains("unclosed"));
    }

    #[test]
    fn lists_expressions() {
        let found = expressions(&json!({"x": "${{ .steps.a.output }}", "y": ["z ${{ .vars.k }}"]}));
        let sources: Vec<_> = found.into_iter().map(|(_, s)| s.unwrap()).collect();
        assert_eq!(sources, vec![".steps.a.output", ".vars.k"]);
    }
}
