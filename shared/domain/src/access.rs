//! Who may do what: roles, permissions and API keys.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{ApiKeyId, SpaceId, TenantId};

/// The role hierarchy. Space roles act on the whole space; `Tenant` keys are confined to one
/// tenant (what a widget or an AI agent acting for one customer gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The deployment's operator (the admin key): creates spaces.
    PlatformAdmin,
    Owner,
    Admin,
    Developer,
    Operator,
    Viewer,
    Tenant,
}

/// Resource/action pairs checked by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    SpacesCreate,
    SpaceRead,
    SpaceManage,
    KeysRead,
    KeysManage,
    TenantsRead,
    TenantsWrite,
    TenantsDelete,
    FlowsRead,
    FlowsWrite,
    FlowsDelete,
    FlowsRun,
    ExecutionsRead,
    ExecutionsManage,
    ConnectorsRead,
    ConnectorsWrite,
    CredentialsWrite,
    DlqRead,
    DlqReplay,
    ConfigRead,
    ConfigWrite,
    QuotasRead,
    McpUse,
}

impl Role {
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::PlatformAdmin => true,
            Role::Owner => permission != SpacesCreate,
            Role::Admin => !matches!(permission, SpacesCreate | SpaceManage),
            Role::Developer => {
                !matches!(permission, SpacesCreate | SpaceManage | KeysManage | TenantsDelete | DlqReplay)
            }
            Role::Operator => matches!(
                permission,
                SpaceRead
                    | TenantsRead
                    | FlowsRead
                    | FlowsRun
                    | ExecutionsRead
                    | ExecutionsManage
                    | ConnectorsRead
                    | DlqRead
                    | DlqReplay
                    | ConfigRead
                    | QuotasRead
                    | McpUse
            ),
            Role::Viewer => matches!(
                permission,
                SpaceRead
                    | TenantsRead
                    | FlowsRead
                    | ExecutionsRead
                    | ConnectorsRead
                    | DlqRead
                    | ConfigRead
                    | QuotasRead
            ),
            Role::Tenant => matches!(
                permission,
                TenantsRead
                    | FlowsRead
                    | FlowsRun
                    | ExecutionsRead
                    | ConnectorsRead
                    | ConnectorsWrite
                    | CredentialsWrite
                    | QuotasRead
                    | McpUse
            ),
        }
    }

    /// Whether a key of this role may mint a key of `other` (never above itself).
    pub fn may_grant(self, other: Role) -> bool {
        let rank = |r: Role| match r {
            Role::PlatformAdmin => 6,
            Role::Owner => 5,
            Role::Admin => 4,
            Role::Developer => 3,
            Role::Operator => 2,
            Role::Viewer => 1,
            Role::Tenant => 1,
        };
        other != Role::PlatformAdmin && rank(self) >= rank(other) && self.allows(Permission::KeysManage)
    }
}

/// An API key as stored (by the SHA-256 of the key; the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub space: SpaceId,
    pub name: String,
    pub role: Role,
    /// Set for `Role::Tenant` keys: the only tenant the key can act for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// MCP tools this key may list and call; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    pub created_at: i64,
    /// First characters of the key, to recognise it in listings.
    pub prefix: String,
    #[serde(default)]
    pub key_hash: String,
}

/// Prefix of every API key, so leaked keys are recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "swy_";

/// A new random API key: 32 bytes from the OS-seeded CSPRNG, URL-safe base64.
pub fn generate_api_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!("{API_KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The lookup hash of an API key. Keys have 256 bits of entropy, so a fast hash is enough.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_form_a_hierarchy() {
        assert!(Role::Owner.allows(Permission::KeysManage));
        assert!(!Role::Owner.allows(Permission::SpacesCreate));
        assert!(!Role::Viewer.allows(Permission::FlowsWrite));
        assert!(Role::Viewer.allows(Permission::ExecutionsRead));
        assert!(!Role::Tenant.allows(Permission::TenantsWrite));
        assert!(Role::Tenant.allows(Permission::CredentialsWrite));
        assert!(Role::Admin.may_grant(Role::Developer));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(!Role::Developer.may_grant(Role::Viewer));
        assert!(!Role::PlatformAdmin.may_grant(Role::PlatformAdmin));
    }

    #[test]
    fn api_keys_are_random_and_hashed() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a, b);
        assert!(a.starts_with(API_KEY_PREFIX) && a.len() > 40);
        assert_eq!(hash_api_key(&a).len(), 64);
        assert_ne!(hash_api_key(&a), hash_api_key(&b));
    }
}
