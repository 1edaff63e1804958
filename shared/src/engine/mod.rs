//! Running flows: planning, step runners, connector actions and the credentials they use,
//! starting runs, and the durable driver.
//!
//! Everything here takes an [`Engine`]: the platform's data ([`Db`]), the queue runs travel
//! on, the event bus, the outbound HTTP client and the connector catalog.

pub mod actions;
pub mod credentials;
pub mod events;
pub mod foreach;
pub mod paging;
pub mod plan;
pub mod run;
pub mod runs;
pub mod step;
pub mod steps;

use std::sync::Arc;

use crate::domain::connector::Catalog;
use crate::ports::{EventBus, Http, MetricsSink, Queue};
use crate::store::Db;

/// What running flows needs.
#[derive(Clone)]
pub struct Engine {
    pub db: Db,
    pub queue: Arc<dyn Queue>,
    pub bus: Arc<dyn EventBus>,
    pub http: Arc<dyn Http>,
    pub catalog: &'static Catalog,
    /// Where metrics records go (EMF in Lambda).
    pub metrics: Arc<dyn MetricsSink>,
}

impl Engine {
    pub fn now_ms(&self) -> i64 {
        self.db.now_ms()
    }
}
