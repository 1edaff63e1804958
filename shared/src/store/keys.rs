//! Every store key of the single-table design, in one place.
//!
//! | item                         | pk                              | sk                         |
//! |------------------------------|---------------------------------|----------------------------|
//! | space                        | `S#{space}`                     | `SPACE`                    |
//! | tenant                       | `S#{space}`                     | `TENANT#{tenant}`          |
//! | tenant → space index         | `TREF#{tenant}`                 | `TREF`                     |
//! | API key (by hash)            | `KEY#{sha256}`                  | `KEY`                      |
//! | API key listing              | `S#{space}`                     | `APIKEY#{key id}`          |
//! | API key last use             | `S#{space}`                     | `KEYUSE#{key id}`          |
//! | member / invitation          | `S#{space}`                     | `MEMBER#{member id}`       |
//! | a person's memberships       | `P#{member id}`                 | `SPACE#{space}`            |
//! | an email's invitations       | `INV#{invitation id}`           | `SPACE#{space}`            |
//! | custom role                  | `S#{space}`                     | `ROLE#{name}`              |
//! | audit record                 | `S#{space}#AUDIT`               | `AU#{ulid}`                |
//! | space-wide flow / versions   | `S#{space}`                     | `FLOW#{id}` / `FLOWV#{id}#{n}` |
//! | tenant flow / versions       | `S#{space}#T#{tenant}`          | `FLOW#{id}` / `FLOWV#{id}#{n}` |
//! | tenant connector settings    | `S#{space}#T#{tenant}`          | `CONN#{connector}`         |
//! | execution                    | `S#{space}#T#{tenant}`          | `EX#{execution}`           |
//! | run claim (exactly-once)     | `S#{space}#T#{tenant}`          | `RUN#{run key}`            |
//! | webhook delivery (dedup)     | `S#{space}#T#{tenant}`          | `WH#{connector}#{delivery}`|
//! | received event log           | `S#{space}#T#{tenant}`          | `EV#{ulid}`                |
//! | quota counter                | `S#{space}#T#{tenant}`          | `Q#{dimension}#{window}`   |
//! | lease                        | `S#{space}#T#{tenant}`          | `LEASE#{name}`             |
//! | execution steps              | `S#{space}#T#{tenant}#X#{exec}` | `STEP#{step}`              |
//!
//! Every tenant-owned item's partition key is `S#{space}#T#{tenant}` exactly or starts with
//! `S#{space}#T#{tenant}#`, so an IAM policy can confine a principal to one tenant with
//! `dynamodb:LeadingKeys` matching those two patterns (the `#` after the tenant id keeps
//! tenant `ten1` from matching `ten10`).

use crate::domain::flow::FlowOwner;
use crate::domain::ids::{ApiKeyId, ConnectorId, ExecutionId, FlowId, SpaceId, StepId, TenantId};
use crate::ports::Key;

pub fn space_pk(space: &SpaceId) -> String {
    format!("S#{space}")
}

pub fn tenant_pk(space: &SpaceId, tenant: &TenantId) -> String {
    format!("S#{space}#T#{tenant}")
}

pub fn space(space: &SpaceId) -> Key {
    Key::new(space_pk(space), "SPACE")
}

pub fn tenant(space: &SpaceId, tenant: &TenantId) -> Key {
    Key::new(space_pk(space), format!("TENANT#{tenant}"))
}

pub const TENANT_PREFIX: &str = "TENANT#";

pub fn tenant_ref(tenant: &TenantId) -> Key {
    Key::new(format!("TREF#{tenant}"), "TREF")
}

pub fn api_key_by_hash(hash_hex: &str) -> Key {
    Key::new(format!("KEY#{hash_hex}"), "KEY")
}

pub fn api_key_listing(space: &SpaceId, id: &ApiKeyId) -> Key {
    Key::new(space_pk(space), format!("APIKEY#{id}"))
}

pub const API_KEY_PREFIX: &str = "APIKEY#";

pub fn api_key_use(space: &SpaceId, id: &ApiKeyId) -> Key {
    Key::new(space_pk(space), format!("KEYUSE#{id}"))
}

pub const API_KEY_USE_PREFIX: &str = "KEYUSE#";

pub fn member(space: &SpaceId, member: &str) -> Key {
    Key::new(space_pk(space), format!("MEMBER#{member}"))
}

pub const MEMBER_PREFIX: &str = "MEMBER#";

/// The partition listing the spaces of one person (`mem_…`) or one invited email (`inv_…`).
pub fn person_pk(member: &str) -> String {
    if member.starts_with("inv_") { format!("INV#{member}") } else { format!("P#{member}") }
}

pub fn membership(member: &str, space: &SpaceId) -> Key {
    Key::new(person_pk(member), format!("SPACE#{space}"))
}

pub const MEMBERSHIP_PREFIX: &str = "SPACE#";

pub fn custom_role(space: &SpaceId, name: &str) -> Key {
    Key::new(space_pk(space), format!("ROLE#{name}"))
}

pub const CUSTOM_ROLE_PREFIX: &str = "ROLE#";

pub fn audit_pk(space: &SpaceId) -> String {
    format!("S#{space}#AUDIT")
}

pub fn audit_record(space: &SpaceId, id: &str) -> Key {
    Key::new(audit_pk(space), format!("AU#{id}"))
}

pub const AUDIT_PREFIX: &str = "AU#";

/// The partition of a flow owner's items: the space's, or the tenant's.
pub fn owner_pk(owner: &FlowOwner) -> String {
    match owner {
        FlowOwner::Space { space } => space_pk(space),
        FlowOwner::Tenant { space, tenant } => tenant_pk(space, tenant),
    }
}

pub fn flow(owner: &FlowOwner, id: &FlowId) -> Key {
    Key::new(owner_pk(owner), format!("FLOW#{id}"))
}

pub const FLOW_PREFIX: &str = "FLOW#";

pub fn flow_version(owner: &FlowOwner, id: &FlowId, version: u32) -> Key {
    // Zero-padded so versions sort numerically.
    Key::new(owner_pk(owner), format!("FLOWV#{id}#{version:08}"))
}

pub fn connector_settings(space: &SpaceId, tenant: &TenantId, connector: &ConnectorId) -> Key {
    Key::new(tenant_pk(space, tenant), format!("CONN#{connector}"))
}

pub const CONNECTOR_PREFIX: &str = "CONN#";

pub fn execution(space: &SpaceId, tenant: &TenantId, id: &ExecutionId) -> Key {
    Key::new(tenant_pk(space, tenant), format!("EX#{id}"))
}

pub const EXECUTION_PREFIX: &str = "EX#";

pub fn run_claim(space: &SpaceId, tenant: &TenantId, run_key: &str) -> Key {
    Key::new(tenant_pk(space, tenant), format!("RUN#{run_key}"))
}

pub fn execution_steps_pk(space: &SpaceId, tenant: &TenantId, id: &ExecutionId) -> String {
    format!("{}#X#{id}", tenant_pk(space, tenant))
}

pub fn execution_step(space: &SpaceId, tenant: &TenantId, id: &ExecutionId, step: &StepId) -> Key {
    Key::new(execution_steps_pk(space, tenant, id), format!("STEP#{step}"))
}

pub const STEP_PREFIX: &str = "STEP#";

pub fn webhook_delivery(space: &SpaceId, tenant: &TenantId, connector: &ConnectorId, delivery_hash: &str) -> Key {
    Key::new(tenant_pk(space, tenant), format!("WH#{connector}#{delivery_hash}"))
}

pub fn received_event(space: &SpaceId, tenant: &TenantId, event_id: &str) -> Key {
    Key::new(tenant_pk(space, tenant), format!("EV#{event_id}"))
}

pub const RECEIVED_EVENT_PREFIX: &str = "EV#";

pub fn quota_counter(space: &SpaceId, tenant: &TenantId, dimension: &str, window: &str) -> Key {
    Key::new(tenant_pk(space, tenant), format!("Q#{dimension}#{window}"))
}

/// A console session signed out before its expiry (`store::sessions`).
pub fn ended_session(id: &str) -> Key {
    Key::new(format!("SESSION#{id}"), "ENDED")
}

/// A space-level lease (the space's own secret document).
pub fn space_lease(space: &SpaceId, name: &str) -> Key {
    Key::new(space_pk(space), format!("LEASE#{name}"))
}

pub fn lease(space: &SpaceId, tenant: &TenantId, name: &str) -> Key {
    Key::new(tenant_pk(space, tenant), format!("LEASE#{name}"))
}
