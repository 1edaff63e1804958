//! jq expressions, evaluated with jaq, within limits.
//!
//! Flow authors write jq; we compile it once (cached per container) and run it over JSON.
//! Builtins that would reach outside the value are removed: `env`/`$ENV` would expose the
//! function's environment (AWS session credentials in Lambda), `input`/`inputs` read other
//! inputs, `halt`/`halt_error` would stop the process, `debug`/`stderr` write to our logs.
//!
//! No expression, however written, can crash the process or hold a thread:
//! 1. Before jaq sees the text, `scan` bounds its nesting, prefix runs and operator chains
//!    (jaq's lexer, parser and compiler recurse per level).
//! 2. `guard` rewrites the program (and jq's standard library) so that operations whose cost
//!    grows with a value's expanded size, or that allocate, check first (`sandbox::MAX_*`).
//! 3. Compilation and evaluation run with `sandbox::STACK_HEADROOM` of stack; every evaluation
//!    step spends fuel and checks the stack's red zone, so loops and recursion end with an
//!    error (`sandbox::MAX_FUEL`, `sandbox::RED_ZONE`).
//! 4. Results are converted to JSON within `MAX_OUTPUTS`, the platform's JSON depth limit and
//!    `sandbox::MAX_NODES`; error messages are cut at 500 characters while being written.

mod guard;
mod sandbox;
mod scan;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use jaq_core::load::parse::{Def, Term};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::{Number, Value};

pub use sandbox::{MAX_FUEL, MAX_NODES, MAX_STRING_BYTES, MAX_VALUE_DEPTH, STACK_HEADROOM};
pub use scan::{MAX_NESTING, MAX_OPERATORS_PER_LEVEL, MAX_PREFIX_RUN};

use sandbox::{Guarded, Run};

type Filter = jaq_core::Filter<Guarded>;

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
/// Deepest JSON an expression may return: the platform's limit for every document it stores.
pub const MAX_OUTPUT_DEPTH: usize = crate::json::MAX_DEPTH;
/// Longest error message kept.
const MAX_MESSAGE: usize = 500;
/// The definition the rewritten program becomes (its body is the flow author's expression).
const MAIN: &str = "__swy_main";

/// Why an expression did not compile or run. Messages are meant for the flow author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("does not compile: {0}")]
    Compile(String),
    #[error("failed: {0}")]
    Runtime(String),
    /// Stopped by a limit no `try` can catch (fuel, recursion).
    #[error("stopped: it {0}")]
    Limit(String),
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

/// jq's definitions (standard library included), rewritten once per process.
fn library() -> &'static [Def<&'static str>] {
    static LIBRARY: OnceLock<Vec<Def<&'static str>>> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .filter(|def| !DENIED_BUILTINS.contains(&def.name));
        sandbox::with_headroom(|| guard::defs(defs, guard::Origin::Library))
            .unwrap_or_else(|_| unreachable!("jq's library uses no reserved name"))
    })
}

fn natives() -> impl Iterator<Item = jaq_core::native::Fun<Guarded>> {
    let replaced: Vec<&str> = sandbox::natives().map(|(name, ..)| name).collect();
    jaq_core::funs::<Guarded>()
        .chain(jaq_std::funs::<Guarded>())
        .chain(jaq_json::funs::<Guarded>())
        .filter(move |(name, _, _)| !DENIED_BUILTINS.contains(name) && !replaced.contains(name))
        .chain(sandbox::natives())
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
        scan::scan(source).map_err(|e| ExprError::Compile(e.to_string()))?;
        sandbox::with_headroom(|| {
            // Syntax errors with jaq's own messages, from the text as written.
            let arena = Arena::default();
            Loader::new([])
                .load(&arena, File { code: source, path: () })
                .map_err(|errors| ExprError::Compile(describe_load_errors(&errors)))?;
            let term: Term<&str> =
                jaq_core::load::parse(source, |p| p.term()).ok_or_else(|| ExprError::Compile("syntax error".into()))?;
            let term = guard::term(term, guard::Origin::User).map_err(|guard::Reserved(name)| {
                ExprError::Compile(format!("{name}: names starting with {} are reserved", guard::RESERVED_PREFIX))
            })?;
            let mut prelude: Vec<Def<&str>> = library().to_vec();
            prelude.push(Def { name: MAIN, args: Vec::new(), body: term });
            let modules = Loader::new(prelude)
                .load(&arena, File { code: MAIN, path: () })
                .map_err(|errors| ExprError::Compile(describe_load_errors(&errors)))?;
            let filter = Compiler::default().with_funs(natives()).compile(modules).map_err(|errors| {
                let names: Vec<String> = errors
                    .iter()
                    .flat_map(|(_, undefined)| undefined.iter().map(|(name, kind)| format!("{name} ({kind:?})")))
                    .collect();
                ExprError::Compile(format!("undefined: {}", names.join(", ")))
            })?;
            Ok(Expr { source: source.to_string(), filter })
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// All outputs for `input` (at most `MAX_OUTPUTS`).
    pub fn eval_all(&self, input: &Value) -> Result<Vec<Value>, ExprError> {
        self.run(input, MAX_OUTPUTS + 1).and_then(|outputs| {
            if outputs.len() > MAX_OUTPUTS {
                Err(ExprError::Runtime(format!("produced more than {MAX_OUTPUTS} outputs")))
            } else {
                Ok(outputs)
            }
        })
    }

    /// The first output, or `null` when there is none (jq's `empty`).
    pub fn eval(&self, input: &Value) -> Result<Value, ExprError> {
        self.run(input, 1).map(|outputs| outputs.into_iter().next().unwrap_or(Value::Null))
    }

    /// Up to `max` outputs, converted to JSON; the first error ends the run.
    fn run(&self, input: &Value, max: usize) -> Result<Vec<Value>, ExprError> {
        let result = sandbox::metered(|meter| {
            let input = Val::deserialize(input).map_err(|e| ExprError::Runtime(format!("input is not JSON: {e}")))?;
            let ctx = Ctx::<Guarded>::new(Run { lut: &self.filter.lut, meter }, Vars::new([]));
            let mut outputs = Vec::new();
            for output in self.filter.id.run((ctx, input)).map(jaq_core::unwrap_valr).take(max) {
                match output {
                    Ok(v) => outputs.push(to_json(&v, meter).map_err(ExprError::Runtime)?),
                    Err(e) => return Err(ExprError::Runtime(bounded(&e))),
                }
            }
            Ok(outputs)
        });
        result.unwrap_or_else(|stop| Err(ExprError::Limit(stop.describe())))
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

/// A writer that stops accepting text past a length, so displaying a value in an error
/// message costs at most that much, however large the value.
struct Capped {
    text: String,
    max: usize,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() <= self.max {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = self.max.saturating_sub(self.text.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        self.text.push('…');
        Err(std::fmt::Error)
    }
}

/// Display something (a jaq error, a value) within `MAX_MESSAGE` characters.
fn bounded(item: &impl std::fmt::Display) -> String {
    let mut out = Capped { text: String::new(), max: MAX_MESSAGE };
    let _ = write!(out, "{item}");
    out.text
}

/// A value for an error message, cut short.
fn short(value: &Val) -> String {
    let mut out = Capped { text: String::new(), max: 60 };
    let _ = write!(out, "{value}");
    out.text
}

/// jaq's value as JSON, within the output limits. Byte strings become (lossy) text; NaN and
/// infinities become null, like `jq` prints them.
fn to_json(v: &Val, meter: &sandbox::Meter) -> Result<Value, String> {
    sandbox::measure(v, meter).map_err(|e| bounded(&e))?;
    to_json_at(v, 1)
}

fn to_json_at(v: &Val, depth: usize) -> Result<Value, String> {
    if depth > MAX_OUTPUT_DEPTH {
        return Err(format!("result nested deeper than {MAX_OUTPUT_DEPTH} levels"));
    }
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => number_to_json(n),
        Val::TStr(b) | Val::BStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(|x| to_json_at(x, depth + 1)).collect::<Result<_, _>>()?),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                        other => bounded(other),
                    };
                    Ok((key, to_json_at(v, depth + 1)?))
                })
                .collect::<Result<_, String>>()?,
        ),
    })
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

#[cfg(test)]
mod limits;
