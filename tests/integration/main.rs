//! The integration test binary: port contracts on both adapter families, and cross-function
//! scenarios through the dev server.

mod alerts;
mod console;
mod contract_eventbus;
mod contract_queue;
mod contract_secrets;
mod contract_store;
mod credentials;
mod demo;
mod engine;
mod engine_api;
mod event_samples;
mod hardening;
mod identity;
mod isolation;
mod mcp;
mod metrics;
mod permissions;
mod pipeline;
mod poller;
mod quotas;
mod ssrf;
mod webhook;
mod webhook_schemes;
