//! Switchyard's shared crate: everything the Lambda functions have in common.
//!
//! - [`domain`]: pure types and rules (ids, tenants, flows, executions...), no I/O.
//! - [`engine`]: expressions, templates, flow planning and step runners.
//! - [`webhook`]: signature schemes, delivery ids, normalization.
//! - [`ports`]: the traits every function talks to the world through, with
//!   [`aws`] and [`embedded`] adapters.

pub mod aws;
pub mod domain;
pub mod embedded;
pub mod engine;
pub mod lambda;
pub mod outbound;
pub mod platform;
pub mod ports;
pub mod secrets_cache;
pub mod store_limits;
pub mod webhook;
