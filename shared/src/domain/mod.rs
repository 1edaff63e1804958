//! Pure types and rules: ids, tenants, flows, executions, connectors, access. No I/O.

pub mod access;
pub mod cdm;
pub mod config;
pub mod connector;
pub mod execution;
pub mod flow;
pub mod ids;
pub mod json;
pub mod keys;
pub mod schedule;
pub mod tenancy;
