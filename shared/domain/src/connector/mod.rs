//! The connector catalog: one declarative YAML file per connector in `connectors/` beside this
//! crate's sources, compiled into every binary and parsed once per container. The format is
//! documented in `docs/connectors.md`.
//!
//! - `spec`: the file format's types;
//! - `catalog`: loading the built-in files (and a deployment's private ones);
//! - `check`: the rules a file follows beyond its shape, and action inputs against their schema.

mod catalog;
mod check;
mod spec;

pub use catalog::{Catalog, RESERVED_ID};
pub use check::{InvalidInput, validate_input};
pub use spec::*;

#[cfg(test)]
mod tests;
