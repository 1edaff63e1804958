//! Switchyard's domain: the pure types and rules every function shares. No tokio, no AWS SDK,
//! no SQLite, no I/O: what is here is computed from its inputs (and, for ids, the clock value
//! given and a random number).
//!
//! - [`ids`], [`tenancy`], [`access`]: who and what (spaces, tenants, plans, roles, API keys);
//! - [`quota`]: the plan table's dimensions, enforcement modes and their overrides;
//! - [`metrics`], [`alerts`]: execution rollups (counts, duration histogram, step failures)
//!   and the alert rules measured against them;
//! - [`flow`], [`execution`], [`config`], [`schedule`]: the flow format, executions and their
//!   step records, run messages, the configuration cascade, cron schedules;
//! - [`connector`], [`cdm`]: the connector catalog and the canonical data model;
//! - [`expr`], [`template`]: the expression language (jq, run in a sandbox) and templates;
//! - [`webhook`]: signature schemes and the event envelope;
//! - [`json`]: the rules every JSON document the platform accepts or stores follows.

pub mod access;
pub mod alerts;
pub mod cdm;
pub mod config;
pub mod connector;
pub mod execution;
pub mod expr;
pub mod flow;
pub mod ids;
pub mod json;
pub mod metrics;
pub mod quota;
pub mod schedule;
pub mod template;
pub mod tenancy;
pub mod webhook;
