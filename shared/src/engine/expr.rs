//! jq expressions, evaluated with jaq.
//!
//! Flow authors write jq; we compile it once (cached per container) and run it over JSON.
//! Builtins that would reach outside the value are removed: `env`/`$ENV` would expose the
//! function's environment (AWS session credentials in Lambda), `input`/`inputs` read other
//! inputs, `halt`/`halt_error` would stop the process, `debug`/`stderr` write to our logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::{Number, Value};

type Data = JustLut<Val>;
type Filter = jaq_core::Filter<Data>;

/// Builtins a flow expression may not call.
const DENIED_BUILTINS: &[&str] = &[
    "env",
    "halt",
    "halt_error",
    "input",
    "inputs",
    "debug",
    "stderr",
    "debug_empty",
    "stderr_empty",
    "input_filename",
];

/// Most outputs an expression may produce (`range(1e9)` must not exhaust memory).
pub const MAX_OUTPUTS: usize = 10_000;
/// Longest expression source accepted.
pub const MAX_SOURCE_LEN: usize = 16 * 1024;

/// Why an expression did not compile or run. Messages are meant for the flow author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("does not compile: {0}")]
    Compile(String),
    #[error("failed: {0}")]
    Runtime(String),
}

/// A compiled jq expression.
pub struct Expr {
    source: String,
    filter: Filter,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl Expr {
    /// Compile (or fetch from the per-container cache).
    pub fn compile(source: &str) -> Result<Arc<Expr>, ExprError> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Expr>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(source) {
            return Ok(found.clone());
        }
        let expr = Arc::new(Expr::compile_uncached(source)?);
        let mut entries = cache.lock().unwrap_or_else(|p| p.into_inner());
        // Flows are few per container; a bound keeps a pathological caller from growing it.
        if entries.len() >= 4096 {
            entries.clear();
        }
        entries.insert(source.to_string(), expr.clone());
        Ok(expr)
    }

    fn compile_uncached(source: &str) -> Result<Expr, ExprError> {
        if source.len() > MAX_SOURCE_LEN {
            return Err(ExprError::Compile(format!("longer than {MAX_SOURCE_LEN} bytes")));
        }
        // Definitions built on a denied native (`debug`, `stderr`, `halt_error`...) go too.
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|def| !DENIED_BUILTINS.contains(&def.name));
        let funs = jaq_core::funs::<Data>()
            .chain(jaq_std::funs::<Data>())
            .chain(jaq_json::funs::<Data>())
            .filter(|(name, _, _)| !DENIED_BUILTINS.contains(name));
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code: source, path: () })
            .map_err(|errors| ExprError::Compile(describe_load_errors(&errors)))?;
        let filter = Compiler::default().with_funs(funs).compile(modules).map_err(|errors| {
            let names: Vec<String> = errors
                .iter()
                .flat_map(|(_, undefined)| undefined.iter().map(|(name, kind)| format!("{name} ({kind:?})")))
                .collect();
            ExprError::Compile(format!("undefined: {}", names.join(", ")))
        })?;
        Ok(Expr { source: source.to_string(), filter })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// All outputs for `input` (at most `MAX_OUTPUTS`).
    pub fn eval_all(&self, input: &Value) -> Result<Vec<Value>, ExprError> {
        let input = Val::deserialize(input).map_err(|e| ExprError::Runtime(format!("input is not JSON: {e}")))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = Vec::new();
        for output in self.filter.id.run((ctx, input)).map(jaq_core::unwrap_valr) {
            if outputs.len() >= MAX_OUTPUTS {
                return Err(ExprError::Runtime(format!("produced more than {MAX_OUTPUTS} outputs")));
            }
            match output {
                Ok(v) => outputs.push(to_json(&v)),
                Err(e) => return Err(ExprError::Runtime(truncate(&e.to_string(), 500))),
            }
        }
        Ok(outputs)
    }

    /// The first output, or `null` when there is none (jq's `empty`).
    pub fn eval(&self, input: &Value) -> Result<Value, ExprError> {
        let input = Val::deserialize(input).map_err(|e| ExprError::Runtime(format!("input is not JSON: {e}")))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        match self.filter.id.run((ctx, input)).map(jaq_core::unwrap_valr).next() {
            None => Ok(Value::Null),
            Some(Ok(v)) => Ok(to_json(&v)),
            Some(Err(e)) => Err(ExprError::Runtime(truncate(&e.to_string(), 500))),
        }
    }
}

fn describe_load_errors<P>(errors: &jaq_core::load::Errors<&str, P>) -> String {
    use jaq_core::load::Error;
    let mut parts = Vec::new();
    for (file, error) in errors {
        match error {
            Error::Io(items) => parts.extend(items.iter().map(|(path, e)| format!("cannot import {path}: {e}"))),
            Error::Lex(items) => parts.extend(items.iter().map(|(expected, found)| {
                format!("expected {} at offset {}", expected.as_str(), offset(file.code, found))
            })),
            Error::Parse(items) => parts.extend(items.iter().map(|(expected, found)| {
                format!("expected {} near {:?}", expected.as_str(), truncate(&format!("{found:?}"), 60))
            })),
        }
    }
    if parts.is_empty() { "syntax error".to_string() } else { parts.join("; ") }
}

fn offset(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize).min(whole.len())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// jaq's value as JSON. Byte strings become (lossy) text; NaN and infinities become null,
/// like `jq` prints them.
pub fn to_json(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => number_to_json(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

fn number_to_json(n: &jaq_json::Num) -> Value {
    use jaq_json::Num;
    match n {
        Num::Int(i) => Value::Number((*i as i64).into()),
        Num::Float(f) => Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        other => {
            let text = other.to_string();
            if let Ok(i) = text.parse::<i64>() {
                Value::Number(i.into())
            } else if let Ok(u) = text.parse::<u64>() {
                Value::Number(u.into())
            } else {
                text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number).unwrap_or(Value::Null)
            }
        }
    }
}

/// A value's JSON type, for error messages ("expected an array, got a string").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether a value counts as true for a condition: jq's truthiness (all but `false`/`null`).
pub fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn evaluates_jq() {
        let e = Expr::compile("{n: (.items | length), first: .items[0].name}").unwrap();
        assert_eq!(e.eval(&json!({"items": [{"name": "a"}, {"name": "b"}]})).unwrap(), json!({"n": 2, "first": "a"}));
        let all = Expr::compile(".[] | . * 2").unwrap().eval_all(&json!([1, 2.5])).unwrap();
        assert_eq!(all, vec![json!(2), json!(5.0)]);
        assert_eq!(Expr::compile("empty").unwrap().eval(&json!(1)).unwrap(), Value::Null);
        assert_eq!(Expr::compile("map(select(. > 1))").unwrap().eval(&json!([1, 2, 3])).unwrap(), json!([2, 3]));
    }

    #[test]
    fn reports_compile_and_runtime_errors() {
        assert!(matches!(Expr::compile("{a: }"), Err(ExprError::Compile(_))));
        assert!(matches!(Expr::compile("nosuchfn(1)"), Err(ExprError::Compile(m)) if m.contains("nosuchfn")));
        let e = Expr::compile(".a + 1").unwrap();
        assert!(matches!(e.eval(&json!({"a": "x"})), Err(ExprError::Runtime(_))));
        assert!(
            matches!(Expr::compile("error(\"boom\")").unwrap().eval(&json!(null)), Err(ExprError::Runtime(m)) if m.contains("boom"))
        );
    }

    #[test]
    fn cannot_reach_the_environment_or_stop_the_process() {
        for source in
            ["env", "$ENV", "env.AWS_SECRET_ACCESS_KEY", "input", "inputs", "halt", "halt_error", "debug", "stderr"]
        {
            assert!(Expr::compile(source).is_err(), "{source} must not compile");
        }
    }

    #[test]
    fn bounds_outputs() {
        let e = Expr::compile("range(1000000)").unwrap();
        assert!(matches!(e.eval_all(&json!(null)), Err(ExprError::Runtime(_))));
        // The first output alone is fine: evaluation is lazy.
        assert_eq!(e.eval(&json!(null)).unwrap(), json!(0));
    }

    #[test]
    fn truthiness_is_jqs() {
        assert!(truthy(&json!(0)));
        assert!(truthy(&json!("")));
        assert!(!truthy(&json!(false)));
        assert!(!truthy(&Value::Null));
    }
}
