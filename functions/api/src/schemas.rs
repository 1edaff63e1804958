//! The published JSON Schemas: flow definitions and the canonical data model.

use std::sync::OnceLock;

use serde_json::Value;

pub fn flow() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(switchyard::domain::flow::SCHEMA).unwrap_or(Value::Null))
}

pub fn cdm() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(switchyard::domain::cdm::SCHEMA).unwrap_or(Value::Null))
}
