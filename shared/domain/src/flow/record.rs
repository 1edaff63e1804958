//! Flows as they are stored: a head per flow (its current version and whether it is active)
//! and one immutable record per version, which executions pin.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{FlowDefinition, FlowError, FlowOwner, Trigger};
use crate::execution::FlowRef;
use crate::ids::FlowId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    #[default]
    Active,
    /// Kept but not triggered.
    Paused,
}

/// A flow's head: its current version and definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub id: FlowId,
    pub owner: FlowOwner,
    pub version: u32,
    #[serde(default)]
    pub status: FlowStatus,
    pub name: String,
    pub trigger: Trigger,
    pub definition: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FlowRecord {
    /// Its current version, as a run pins it.
    pub fn pinned(&self) -> FlowRef {
        FlowRef { owner: self.owner.clone(), id: self.id.clone(), version: self.version }
    }
}

/// One immutable version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowVersion {
    pub id: FlowId,
    pub owner: FlowOwner,
    pub version: u32,
    pub definition: Value,
    pub created_at: i64,
}

impl FlowVersion {
    /// The definition, as validated when it was stored.
    pub fn parse_definition(&self) -> Result<FlowDefinition, FlowError> {
        FlowDefinition::from_stored(&self.definition)
    }
}
