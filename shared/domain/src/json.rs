//! The rules every JSON document the platform accepts or stores follows: webhook bodies, API
//! and MCP bodies, run messages, step outputs, expression results.
//!
//! A document is I-JSON (RFC 7493): its strings are Unicode (no lone surrogate escapes such as
//! `"\ud800"`), its numbers fit an IEEE 754 double (`1e999999` does not; integers past 64 bits
//! become doubles, as every JavaScript reader takes them), and it nests at most `MAX_DEPTH`
//! levels. One that breaks a rule is refused at the door (400 `invalid_json` or `too_deep`)
//! before anything is queued or stored, because a later reader could not read it back: the
//! platform wraps documents in a few levels of its own (run message, execution, step record,
//! expression context), and serde_json stops at 128.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Deepest nesting of an accepted or stored document (`{"a": 1}` is 1 level, `1` is 0).
pub const MAX_DEPTH: usize = 64;

/// Why a document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Not JSON, or JSON the platform cannot represent (lone surrogates, out-of-range numbers).
    #[error("{0}")]
    Invalid(String),
}

impl JsonError {
    /// The error code of the 400 it becomes.
    pub fn code(&self) -> &'static str {
        match self {
            JsonError::TooDeep => "too_deep",
            JsonError::Invalid(_) => "invalid_json",
        }
    }
}

const TOO_DEEP: &str = "\u{0}too deep";

/// Visits every value, decoding strings and numbers (so serde_json refuses lone surrogates and
/// out-of-range numbers), counting depth without building anything.
#[derive(Clone, Copy)]
struct Check {
    depth: usize,
}

impl Check {
    fn nested<E: serde::de::Error>(self) -> Result<Check, E> {
        if self.depth >= MAX_DEPTH { Err(E::custom(TOO_DEEP)) } else { Ok(Check { depth: self.depth + 1 }) }
    }
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while map.next_key_seed(Check { depth: 0 })?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

fn classify(e: serde_json::Error) -> JsonError {
    let text = e.to_string();
    if text.starts_with(TOO_DEEP) || text.starts_with("recursion limit exceeded") {
        JsonError::TooDeep
    } else {
        JsonError::Invalid(text)
    }
}

/// Check JSON text against the rules without building it.
pub fn check_text(text: &[u8]) -> Result<(), JsonError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    Check { depth: 0 }.deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)
}

/// Parse JSON text that follows the rules.
pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
    let value: Value = serde_json::from_slice(text).map_err(classify)?;
    check_value(&value)?;
    Ok(value)
}

/// How deeply a value nests (without recursion: values may come from anywhere).
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((v, d)) = pending.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => pending.extend(items.iter().map(|x| (x, d + 1))),
            Value::Object(map) => pending.extend(map.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Check a value built in memory (a parsed third-party response, an expression result).
pub fn check_value(value: &Value) -> Result<(), JsonError> {
    if depth(value) > MAX_DEPTH { Err(JsonError::TooDeep) } else { Ok(()) }
}

/// The top-level string fields of a JSON object, however deep or odd the rest of it is (the
/// rest is skipped, not parsed): for describing messages that cannot be read whole.
pub fn top_level_strings(text: &str, names: &[&str]) -> Vec<Option<String>> {
    struct Fields<'n>(&'n [&'n str]);
    impl<'de> Visitor<'de> for Fields<'_> {
        type Value = Vec<Option<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = vec![None; self.0.len()];
            while let Some(key) = map.next_key::<String>()? {
                match self.0.iter().position(|n| *n == key) {
                    Some(i) => found[i] = map.next_value::<Option<String>>().ok().flatten(),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Fields(names)).unwrap_or_else(|_| vec![None; names.len()])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(n: usize) -> String {
        format!("{}1{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_is_limited_at_the_documented_level() {
        assert_eq!(check_text(nested(MAX_DEPTH).as_bytes()), Ok(()));
        assert_eq!(check_text(nested(MAX_DEPTH + 1).as_bytes()), Err(JsonError::TooDeep));
        assert_eq!(check_text(nested(5000).as_bytes()), Err(JsonError::TooDeep));
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
        assert_eq!(check_text(objects.as_bytes()), Err(JsonError::TooDeep));
        assert_eq!(parse(nested(MAX_DEPTH + 1).as_bytes()), Err(JsonError::TooDeep));
        assert_eq!(parse(nested(200).as_bytes()), Err(JsonError::TooDeep));
        let value: Value = serde_json::from_str(&nested(MAX_DEPTH)).unwrap();
        assert_eq!(depth(&value), MAX_DEPTH);
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({"a": [1]})), 2);
    }

    #[test]
    fn unrepresentable_documents_are_refused() {
        for text in
            [r#"{"a": "\ud800"}"#, r#"["\udc00"]"#, "-1e999999", &"9".repeat(5000), "{\"a\":1,}", "[1] x", "\u{0}"]
        {
            assert!(matches!(check_text(text.as_bytes()), Err(JsonError::Invalid(_))), "{text:.40} should be refused");
            assert!(parse(text.as_bytes()).is_err());
        }
        for text in [r#"{"a": "\ud83d\ude00"}"#, "1e300", "-0", &"9".repeat(300), "12345678901234567890", "{}"] {
            assert_eq!(check_text(text.as_bytes()), Ok(()), "{text:.40} should be accepted");
        }
    }

    #[test]
    fn top_level_fields_are_read_from_documents_too_deep_to_parse() {
        let text = format!(r#"{{"type":"start","input":{},"space":"s1","tenant":"t1","n":"\ud800"}}"#, nested(500));
        let found = top_level_strings(&text, &["type", "space", "tenant", "execution_id"]);
        assert_eq!(found, vec![Some("start".into()), Some("s1".into()), Some("t1".into()), None]);
        assert_eq!(top_level_strings("not json", &["a"]), vec![None]);
    }
}
