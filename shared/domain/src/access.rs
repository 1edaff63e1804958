//! Who may do what: permissions (resource/action pairs), the built-in roles and the custom
//! roles a space defines, people's memberships, and API keys.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::ids::{ApiKeyId, SpaceId, TenantId};

/// Declares [`Permission`] from one list: each variant with its `resource.action` name, in the
/// order of the documentation (which is also each variant's bit in [`Grants`]).
macro_rules! permissions {
    ($($variant:ident => $name:literal,)*) => {
        /// One resource/action pair. Every permission is checked by at least one operation of the API
        /// or of MCP (the role × operation matrix in `docs/permissions.md` shows where).
        ///
        /// The seed also has `connectors.create/delete/deploy` (custom connectors), `connections.share`
        /// and `agents.*`; they come with the operations that need them, since a permission nothing
        /// checks would only mislead whoever grants it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $($variant,)*
        }

        impl Permission {
            /// Every permission, in the order of the documentation.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            /// `resource.action`, as in role definitions and error messages.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }
        }
    };
}

permissions! {
    SpacesCreate => "spaces.create",
    SpacesRead => "spaces.read",
    SpacesUpdate => "spaces.update",
    MembersRead => "members.read",
    MembersUpdate => "members.update",
    MembersDelete => "members.delete",
    RolesRead => "roles.read",
    RolesUpdate => "roles.update",
    RolesDelete => "roles.delete",
    KeysRead => "keys.read",
    KeysCreate => "keys.create",
    KeysDelete => "keys.delete",
    AuditRead => "audit.read",
    TenantsCreate => "tenants.create",
    TenantsRead => "tenants.read",
    TenantsUpdate => "tenants.update",
    TenantsDelete => "tenants.delete",
    ConfigRead => "config.read",
    ConfigUpdate => "config.update",
    QuotasRead => "quotas.read",
    QuotasUpdate => "quotas.update",
    ConnectorsRead => "connectors.read",
    ConnectorsUpdate => "connectors.update",
    ConnectionsCreate => "connections.create",
    ConnectionsRead => "connections.read",
    ConnectionsUpdate => "connections.update",
    ConnectionsDelete => "connections.delete",
    ConnectionsExecute => "connections.execute",
    WorkflowsCreate => "workflows.create",
    WorkflowsRead => "workflows.read",
    WorkflowsUpdate => "workflows.update",
    WorkflowsDelete => "workflows.delete",
    WorkflowsExecute => "workflows.execute",
    WorkflowsDeploy => "workflows.deploy",
    ExecutionsRead => "executions.read",
    ExecutionsUpdate => "executions.update",
    DlqRead => "dlq.read",
    DlqReplay => "dlq.replay",
    ToolsRead => "tools.read",
    ToolsExecute => "tools.execute",
    AlertsRead => "alerts.read",
    AlertsUpdate => "alerts.update",
}

impl Permission {
    pub fn parse(text: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == text)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Permission::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown permission {text:?} (expected resource.action)")))
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Grants(u64);

impl Grants {
    pub const NONE: Grants = Grants(0);

    pub fn of(permissions: impl IntoIterator<Item = Permission>) -> Grants {
        Grants(permissions.into_iter().fold(0, |bits, p| bits | p.bit()))
    }

    pub fn all() -> Grants {
        Grants::of(Permission::ALL.iter().copied())
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Whether every permission of `other` is in this set.
    pub fn covers(self, other: Grants) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.iter().copied().filter(move |p| self.allows(*p))
    }
}

/// The built-in roles. Space roles act on the whole space; `Tenant` (an end user) is confined
/// to one tenant: what a widget or an AI agent acting for one customer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The deployment's operator (the admin key): creates spaces and sets their plans.
    PlatformAdmin,
    Owner,
    Admin,
    Developer,
    Operator,
    Viewer,
    #[serde(alias = "end_user")]
    Tenant,
}

impl Role {
    pub const ALL: [Role; 7] =
        [Role::PlatformAdmin, Role::Owner, Role::Admin, Role::Developer, Role::Operator, Role::Viewer, Role::Tenant];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Tenant => "tenant",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "end_user" => Some(Role::Tenant),
            _ => Role::ALL.into_iter().find(|r| r.as_str() == text),
        }
    }

    /// What the role may do. Plans are the operator's to set (`spaces.update`); audit records
    /// are for owners and admins; a space's people and keys are managed by its owners and
    /// admins; developers build (flows, connections, tenants) and operators watch and repair
    /// runs; viewers read; an end user acts on its own tenant's flows and connections.
    pub fn grants(self) -> Grants {
        use Permission::*;
        let except =
            |excluded: &[Permission]| Grants::of(Permission::ALL.iter().copied().filter(|p| !excluded.contains(p)));
        match self {
            Role::PlatformAdmin => Grants::all(),
            Role::Owner => except(&[SpacesCreate, SpacesUpdate]),
            Role::Admin => except(&[SpacesCreate, SpacesUpdate]),
            Role::Developer => except(&[
                SpacesCreate,
                SpacesUpdate,
                QuotasUpdate,
                MembersUpdate,
                MembersDelete,
                RolesUpdate,
                RolesDelete,
                KeysCreate,
                KeysDelete,
                AuditRead,
                TenantsDelete,
                DlqReplay,
            ]),
            Role::Operator => Grants::of([
                AlertsRead,
                AlertsUpdate,
                SpacesRead,
                MembersRead,
                RolesRead,
                TenantsRead,
                ConfigRead,
                QuotasRead,
                ConnectorsRead,
                ConnectionsRead,
                WorkflowsRead,
                WorkflowsExecute,
                WorkflowsDeploy,
                ExecutionsRead,
                ExecutionsUpdate,
                DlqRead,
                DlqReplay,
                ToolsRead,
                ToolsExecute,
            ]),
            Role::Viewer => Grants::of([
                AlertsRead,
                SpacesRead,
                MembersRead,
                RolesRead,
                TenantsRead,
                ConfigRead,
                QuotasRead,
                ConnectorsRead,
                ConnectionsRead,
                WorkflowsRead,
                ExecutionsRead,
                DlqRead,
            ]),
            Role::Tenant => Grants::of([
                TenantsRead,
                QuotasRead,
                ConnectorsRead,
                ConnectionsCreate,
                ConnectionsRead,
                ConnectionsUpdate,
                ConnectionsDelete,
                ConnectionsExecute,
                WorkflowsRead,
                WorkflowsExecute,
                ExecutionsRead,
                ToolsRead,
                ToolsExecute,
            ]),
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.grants().allows(permission)
    }
}

/// The role a member or key holds: a built-in one or one the space defined.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoleName {
    BuiltIn(Role),
    Custom(String),
}

impl RoleName {
    /// A role name as written: a built-in role's name, else a custom role's (checked for shape
    /// only; whether the space defines it is the store's to say).
    pub fn parse(text: &str) -> Result<RoleName, String> {
        if let Some(role) = Role::parse(text) {
            return Ok(RoleName::BuiltIn(role));
        }
        check_custom_role_name(text)?;
        Ok(RoleName::Custom(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            RoleName::BuiltIn(r) => r.as_str(),
            RoleName::Custom(name) => name,
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RoleName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RoleName::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A custom role's name: 1–64 characters of `a-z 0-9 _ -`, starting with a letter, and not
/// the name of a built-in role.
pub fn check_custom_role_name(name: &str) -> Result<(), String> {
    let shaped = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !shaped {
        return Err(format!(
            "role {name:?}: expected a built-in role ({}) or a custom role name of 1 to 64 characters a-z, 0-9, _ and -, \
             starting with a letter",
            Role::ALL.iter().skip(1).map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if Role::parse(name).is_some() {
        return Err(format!("{name} is a built-in role"));
    }
    Ok(())
}

/// A role a space defines: a named set of permissions. It can never create spaces or set
/// plans (those belong to the platform admin), and it acts on the whole space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomRole {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Permission>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl CustomRole {
    /// Permissions no custom role may hold.
    pub const RESERVED: [Permission; 2] = [Permission::SpacesCreate, Permission::SpacesUpdate];

    pub fn grants(&self) -> Grants {
        Grants::of(self.permissions.iter().copied().filter(|p| !CustomRole::RESERVED.contains(p)))
    }
}

/// A person's place in a space: who they are at their identity provider (issuer and
/// subject), their email as last seen, and their role there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Stable per person across spaces (see [`member_id`]).
    pub id: String,
    pub space: SpaceId,
    /// The issuer and subject; both unset for an invitation by email not yet claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: RoleName,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The id of a person: their issuer and subject hashed (subjects are only unique per issuer).
pub fn member_id(issuer: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{issuer}\n{subject}").as_bytes());
    format!("mem_{}", &hex::encode(digest)[..26])
}

/// The id of an invitation by email, until the person logs in.
pub fn invitation_id(email: &str) -> String {
    let digest = Sha256::digest(normalize_email(email).as_bytes());
    format!("inv_{}", &hex::encode(digest)[..26])
}

/// Emails compare case-insensitively (as every identity provider treats them).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
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
    /// When the key stops working (epoch milliseconds); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// When the key was last used (epoch milliseconds, to within ten minutes): filled in when
    /// keys are listed, not stored with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// First characters of the key, to recognise it in listings.
    pub prefix: String,
    #[serde(default)]
    pub key_hash: String,
}

impl ApiKeyRecord {
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| now_ms >= at)
    }
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
    fn permissions_are_named_resource_dot_action_and_fit_the_set() {
        assert!(Permission::ALL.len() <= 64);
        for (i, p) in Permission::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "ALL is in declaration order");
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            assert_eq!(p.as_str().matches('.').count(), 1);
        }
        assert_eq!(Grants::all().iter().count(), Permission::ALL.len());
    }

    #[test]
    fn roles_form_a_hierarchy() {
        assert!(Role::Owner.allows(Permission::KeysCreate));
        assert!(!Role::Owner.allows(Permission::SpacesCreate));
        assert!(!Role::Viewer.allows(Permission::WorkflowsUpdate));
        assert!(Role::Viewer.allows(Permission::ExecutionsRead));
        assert!(!Role::Tenant.allows(Permission::TenantsUpdate));
        assert!(Role::Tenant.allows(Permission::ConnectionsCreate));
        assert!(!Role::Developer.allows(Permission::AuditRead));
        for (higher, lower) in [
            (Role::PlatformAdmin, Role::Owner),
            (Role::Owner, Role::Admin),
            (Role::Admin, Role::Developer),
            (Role::Developer, Role::Viewer),
            (Role::Operator, Role::Viewer),
            (Role::Admin, Role::Tenant),
        ] {
            assert!(higher.grants().covers(lower.grants()), "{higher:?} covers {lower:?}");
        }
        assert!(!Role::Developer.grants().covers(Role::Operator.grants()), "operators replay the DLQ");
    }

    #[test]
    fn role_names_are_built_in_or_custom_shaped() {
        assert_eq!(RoleName::parse("admin"), Ok(RoleName::BuiltIn(Role::Admin)));
        assert_eq!(RoleName::parse("end_user"), Ok(RoleName::BuiltIn(Role::Tenant)));
        assert_eq!(RoleName::parse("support"), Ok(RoleName::Custom("support".into())));
        assert!(RoleName::parse("Support").is_err());
        assert!(RoleName::parse("").is_err());
        assert!(check_custom_role_name("owner").is_err());
        let role = CustomRole {
            name: "x".into(),
            description: String::new(),
            permissions: vec![Permission::SpacesUpdate, Permission::AuditRead],
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(role.grants(), Grants::of([Permission::AuditRead]));
    }

    #[test]
    fn member_ids_are_stable_per_identity() {
        assert_eq!(member_id("https://idp", "alice"), member_id("https://idp", "alice"));
        assert_ne!(member_id("https://idp", "alice"), member_id("https://other", "alice"));
        assert_eq!(invitation_id("Alice@Example.com"), invitation_id("alice@example.com "));
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
