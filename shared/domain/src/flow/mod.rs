//! Flow definitions: the documented, versioned JSON format (schema in `flow.schema.json` beside
//! this file, served at `/api/v1/schemas/flow.json`; described in `docs/flows.md`).
//!
//! - `model`: the types (triggers, steps and their kinds, the definition);
//! - `parse`: JSON into the types, with errors that name the step and the field;
//! - `validate`: the rules beyond the shape (a DAG, compiling expressions, known connectors);
//! - `record`: flows as stored (a head per flow, an immutable record per version);
//! - `graph`: edges, order and upstream sets, shared by validation and the engine's planner.

mod graph;
mod model;
mod parse;
mod record;
mod validate;

pub use graph::{effective_dependencies, topological_order};
pub use model::*;
pub use record::{FlowRecord, FlowStatus, FlowVersion};
pub use validate::step_references;

#[cfg(test)]
mod tests;
