//! Switchyard's shared crate: everything the Lambda functions have in common, over the pure
//! types and rules of [`domain`] (the `switchyard-domain` crate). Its modules are layers, each
//! importing only those listed before it (`scripts/check-layers` fails the suite otherwise):
//!
//! - [`ports`]: the traits every function talks to the world through, and their error type.
//! - [`store`]: store keys and the repositories over them.
//! - [`engine`]: planning, step runners, connector actions and credentials, the durable driver.
//! - [`usecases`]: what the functions do (receive a webhook, run a batch, tick the schedules,
//!   poll, answer MCP, connect an app, the API's operations).
//! - [`adapters`]: the ports over AWS and over the embedded SQLite file (cargo features `aws`
//!   and `embedded`), outbound HTTP behind the SSRF guard, the secrets cache.
//! - [`runtime`]: settings, the composition root, the Lambda glue and the HTTP edge.

pub use switchyard_domain as domain;

pub mod adapters;
pub mod engine;
pub mod ports;
pub mod runtime;
pub mod store;
pub mod usecases;
