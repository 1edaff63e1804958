//! Who is calling, and what they may do.
//!
//! Three kinds of caller, told apart by what they present (`x-fastn-api-key`, else
//! `Authorization: Bearer`):
//! - the admin key (the platform admin), compared in constant time;
//! - an API key (`swy_…`), found by its hash; expired keys are refused;
//! - a bearer JWT of a configured OpenID Connect issuer (anything else after `Bearer`), whose
//!   holder is a **member**: their role in a space comes from a membership
//!   (`/api/v1/members`), else from a role mapping in the token (`space:{space}:{role}` values
//!   of `SWITCHYARD_OIDC_ROLES_CLAIM`). A verified email also claims the invitations sent to it.
//!   A valid token with no membership and no mapping is a 403, not a 401.
//!
//! The space acted on is the key's own, or for the admin key and members the one in
//! `x-fastn-space-id` (a member in exactly one space needs no header). `x-fastn-space-tenantid`
//! names the tenant for routes without one in their path; a route with a tenant in its path and
//! a header naming another is a 400.
//!
//! Memberships, custom roles and keys are cached per container for `store::cache::CACHE_TTL`
//! (10 s): a removed member or a revoked key keeps working up to that long in other
//! containers, and not at all in the one that removed it.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::Error;
use crate::domain::access::{API_KEY_PREFIX, ApiKeyRecord, Grants, Permission, Role, RoleName, member_id};
use crate::domain::ids::{ApiKeyId, SpaceId, TenantId};
use crate::ports::{AdminKey, TokenError, TokenVerifier, VerifiedToken};
use crate::store::{Db, members, tenants};

pub const API_KEY_HEADER: &str = "x-fastn-api-key";
pub const SPACE_HEADER: &str = "x-fastn-space-id";
pub const TENANT_HEADER: &str = "x-fastn-space-tenantid";

/// What authentication needs: the store, the admin key, the token verifier when OIDC is
/// configured, and how long the audit records of what the caller does are kept.
#[derive(Clone, Copy)]
pub struct AuthContext<'a> {
    pub db: &'a Db,
    pub admin_key: &'a dyn AdminKey,
    pub tokens: Option<&'a dyn TokenVerifier>,
    pub audit_retention_secs: i64,
}

/// Who made a request, as the audit log records them (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    PlatformAdmin,
    Key { id: ApiKeyId, name: String },
    Member { id: String, issuer: String, subject: String, email: Option<String>, username: Option<String> },
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::PlatformAdmin => "platform_admin",
            Actor::Key { .. } => "key",
            Actor::Member { .. } => "member",
        }
    }
    pub fn id(&self) -> String {
        match self {
            Actor::PlatformAdmin => "admin".into(),
            Actor::Key { id, .. } => id.to_string(),
            Actor::Member { id, .. } => id.clone(),
        }
    }
    pub fn email(&self) -> Option<&str> {
        match self {
            Actor::Member { email, .. } => email.as_deref(),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub actor: Actor,
    /// The caller's role in the space acted on; `None` for a member who named no space and is
    /// in several.
    pub role: Option<RoleName>,
    /// What that role allows.
    pub grants: Grants,
    /// The space acted on.
    pub space: Option<SpaceId>,
    /// For end-user (tenant) keys, the only tenant they may act for; otherwise the tenant
    /// header, if any.
    pub tenant: Option<TenantId>,
    /// MCP tools this key may use (all when `None`).
    pub tools: Option<Vec<String>>,
    /// Every space the caller is in and their role there (a key: its own).
    pub spaces: Vec<(SpaceId, RoleName)>,
}

impl Principal {
    pub fn allows(&self, permission: Permission) -> bool {
        self.grants.allows(permission)
    }

    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if self.allows(permission) {
            return Ok(());
        }
        Err(Error::Forbidden(match &self.role {
            Some(role) => format!("the role {role} does not have the permission {permission}"),
            None => format!("name the space in the {SPACE_HEADER} header: you are a member of several"),
        }))
    }

    pub fn is_platform_admin(&self) -> bool {
        self.actor == Actor::PlatformAdmin
    }

    /// An end user's key: confined to one tenant.
    pub fn is_tenant_bound(&self) -> bool {
        self.role == Some(RoleName::BuiltIn(Role::Tenant))
    }

    /// Whether this caller may give a role with `grants` to someone (a key, a member): only
    /// roles within its own permissions, and `owner` only by an owner or the platform admin.
    pub fn may_grant(&self, role: &RoleName, grants: Grants) -> bool {
        let owner_only = role == &RoleName::BuiltIn(Role::Owner) || role == &RoleName::BuiltIn(Role::PlatformAdmin);
        let is_owner = self.is_platform_admin() || self.role == Some(RoleName::BuiltIn(Role::Owner));
        role != &RoleName::BuiltIn(Role::PlatformAdmin) && self.grants.covers(grants) && (!owner_only || is_owner)
    }

    /// The space the request acts on.
    pub fn space(&self) -> Result<&SpaceId, Error> {
        self.space.as_ref().ok_or_else(|| Error::bad_request(format!("the {SPACE_HEADER} header is required")))
    }

    /// Refuse a tenant-bound key acting for another tenant. The refusal is a 404, the same as
    /// for a tenant that does not exist, so keys cannot probe for other tenants.
    pub fn check_tenant(&self, tenant: &TenantId) -> Result<(), Error> {
        if self.is_tenant_bound() && self.tenant.as_ref() != Some(tenant) {
            return Err(Error::not_found(format!("tenant {tenant} not found")));
        }
        Ok(())
    }

    /// The tenant named by the request (path, else header), checked against the key; a path
    /// and a header that name different tenants are a 400.
    pub fn tenant_from(&self, from_path: Option<&str>) -> Result<TenantId, Error> {
        let tenant = match from_path {
            Some(text) => {
                let tenant = TenantId::parse(text).map_err(|e| Error::bad_request(e.to_string()))?;
                self.check_tenant(&tenant)?;
                if self.tenant.as_ref().is_some_and(|named| named != &tenant) {
                    return Err(Error::bad_request(format!(
                        "the {TENANT_HEADER} header names another tenant than the path ({tenant})"
                    )));
                }
                tenant
            }
            None => self.tenant.clone().ok_or_else(|| {
                Error::bad_request(format!("name the tenant in the path or the {TENANT_HEADER} header"))
            })?,
        };
        self.check_tenant(&tenant)?;
        Ok(tenant)
    }
}

/// A header's text: `Ok(None)` when absent or empty, `Err(())` when present but not text.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|t| Some(t.trim()).filter(|t| !t.is_empty())).map_err(|_| ()),
    }
}

/// What the request presents.
enum Presented<'h> {
    /// In `x-fastn-api-key`, or a bearer token starting `swy_`.
    Key(&'h str),
    /// Any other bearer token.
    Token(&'h str),
}

/// The credential the request presents, if any; a header that is not text is refused as such
/// (it is not "missing").
fn presented(headers: &HeaderMap) -> Result<Option<Presented<'_>>, Error> {
    let unreadable = |_| Error::Unauthenticated(format!("the {API_KEY_HEADER} header is not valid text"));
    if let Some(key) = header_text(headers, API_KEY_HEADER).map_err(unreadable)? {
        return Ok(Some(Presented::Key(key)));
    }
    let unreadable = |_| Error::Unauthenticated("the Authorization header is not valid text".into());
    let bearer = header_text(headers, "authorization")
        .map_err(unreadable)?
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    Ok(bearer.map(|b| if looks_like_jwt(b) { Presented::Token(b) } else { Presented::Key(b) }))
}

/// A JWT is three base64url parts joined by dots; API keys (ours start `swy_`, and an admin
/// key from `SWITCHYARD_ADMIN_KEY` may be anything) are read as keys otherwise, as before OIDC.
fn looks_like_jwt(bearer: &str) -> bool {
    !bearer.starts_with(API_KEY_PREFIX) && bearer.matches('.').count() == 2
}

/// An optional id header: absent (or not text, which no id is) is `None`.
fn id_header<T>(
    headers: &HeaderMap,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    match header_text(headers, name) {
        Ok(Some(text)) => parse(text).map(Some).map_err(Error::bad_request),
        _ => Ok(None),
    }
}

/// The space named by the space header, if it parses (for recording a failed login).
pub fn space_header(headers: &HeaderMap) -> Option<SpaceId> {
    id_header(headers, SPACE_HEADER, |s| SpaceId::parse(s).map_err(|e| e.to_string())).ok().flatten()
}

/// What a role allows in a space: a built-in role's permissions, or the custom role's as the
/// space defines it now (none if it was deleted).
pub async fn grants_of(db: &Db, space: &SpaceId, role: &RoleName) -> Result<Grants, Error> {
    Ok(match role {
        RoleName::BuiltIn(r) => r.grants(),
        RoleName::Custom(name) => members::get_role(db, space, name).await?.map(|r| r.grants()).unwrap_or_default(),
    })
}

/// Authenticate a request. Missing, unknown, expired or invalid credentials are 401; a space
/// header that does not match the key's space is 401 too (the key is not valid for that space).
pub async fn authenticate(ctx: AuthContext<'_>, headers: &HeaderMap) -> Result<Principal, Error> {
    let presented =
        presented(headers)?.ok_or_else(|| Error::Unauthenticated(format!("missing {API_KEY_HEADER} header")))?;
    let space_header = id_header(headers, SPACE_HEADER, |s| SpaceId::parse(s).map_err(|e| e.to_string()))?;
    let tenant_header = id_header(headers, TENANT_HEADER, |t| TenantId::parse(t).map_err(|e| e.to_string()))?;
    match presented {
        Presented::Key(key) => with_key(ctx, key, space_header, tenant_header).await,
        Presented::Token(token) => {
            let tokens = ctx.tokens.ok_or_else(|| {
                Error::Unauthenticated("invalid API key (and no OpenID Connect issuer is configured for tokens)".into())
            })?;
            let verified = tokens.verify(token).await.map_err(|e| match e {
                TokenError::Invalid(reason) => Error::Unauthenticated(format!("invalid token: {reason}")),
                TokenError::Unavailable(detail) => Error::Unavailable { detail },
            })?;
            as_member(ctx.db, verified, space_header, tenant_header).await
        }
    }
}

async fn with_key(
    ctx: AuthContext<'_>,
    key: &str,
    space_header: Option<SpaceId>,
    tenant_header: Option<TenantId>,
) -> Result<Principal, Error> {
    if key.len() > 512 {
        return Err(Error::Unauthenticated("invalid API key".into()));
    }
    if let Some(admin) = ctx.admin_key.admin_key().await? {
        if bool::from(admin.as_bytes().ct_eq(key.as_bytes())) {
            return Ok(Principal {
                actor: Actor::PlatformAdmin,
                role: Some(RoleName::BuiltIn(Role::PlatformAdmin)),
                grants: Role::PlatformAdmin.grants(),
                space: space_header,
                tenant: tenant_header,
                tools: None,
                spaces: Vec::new(),
            });
        }
    }
    let record =
        tenants::find_api_key(ctx.db, key).await?.ok_or_else(|| Error::Unauthenticated("invalid API key".into()))?;
    if space_header.as_ref().is_some_and(|s| s != &record.space) {
        return Err(Error::Unauthenticated("this API key is not valid for that space".into()));
    }
    key_principal(ctx.db, record, tenant_header).await
}

/// The caller a key's record makes, unless it expired.
async fn key_principal(db: &Db, record: ApiKeyRecord, tenant_header: Option<TenantId>) -> Result<Principal, Error> {
    if record.expired(db.now_ms()) {
        return Err(Error::Unauthenticated("this API key has expired".into()));
    }
    let tenant = match (&record.tenant, tenant_header) {
        (Some(bound), Some(asked)) if bound != &asked => {
            return Err(Error::not_found(format!("tenant {asked} not found")));
        }
        (Some(bound), _) => Some(bound.clone()),
        (None, asked) => asked,
    };
    tenants::note_key_use(db, &record).await;
    let role = RoleName::BuiltIn(record.role);
    Ok(Principal {
        actor: Actor::Key { id: record.id, name: record.name },
        role: Some(role.clone()),
        grants: record.role.grants(),
        space: Some(record.space.clone()),
        tenant,
        tools: record.tools,
        spaces: vec![(record.space, role)],
    })
}

/// A role mapping from a token: `space:{space}:{role}`. Members act on whole spaces, so the
/// end-user role cannot be mapped.
fn mapped_role(value: &str) -> Option<(SpaceId, RoleName)> {
    let rest = value.strip_prefix("space:")?;
    let (space, role) = rest.rsplit_once(':')?;
    let role = RoleName::parse(role).ok()?;
    if matches!(role, RoleName::BuiltIn(Role::Tenant | Role::PlatformAdmin)) {
        return None;
    }
    Some((SpaceId::parse(space).ok()?, role))
}

async fn as_member(
    db: &Db,
    token: VerifiedToken,
    space_header: Option<SpaceId>,
    tenant_header: Option<TenantId>,
) -> Result<Principal, Error> {
    let id = member_id(&token.issuer, &token.subject);
    let mut memberships = members::memberships(db, &id).await?;
    if let (true, Some(email)) = (token.email_verified, &token.email) {
        if !members::claim_invitations(db, &token.issuer, &token.subject, email).await?.is_empty() {
            memberships = members::memberships(db, &id).await?;
        }
        for member in &memberships {
            members::refresh_email(db, member, email).await?;
        }
    }
    let mut spaces: Vec<(SpaceId, RoleName)> = memberships.into_iter().map(|m| (m.space, m.role)).collect();
    for (space, role) in token.roles.iter().filter_map(|v| mapped_role(v)) {
        if !spaces.iter().any(|(s, _)| s == &space) {
            spaces.push((space, role));
        }
    }
    if spaces.is_empty() {
        return Err(Error::Forbidden(
            "you are signed in, but not a member of any space: ask an owner of your space to add you".into(),
        ));
    }
    let space = match space_header {
        Some(space) => Some(space),
        None if spaces.len() == 1 => Some(spaces[0].0.clone()),
        None => None,
    };
    let (role, grants) = match &space {
        Some(space) => {
            let role = spaces
                .iter()
                .find(|(s, _)| s == space)
                .map(|(_, r)| r.clone())
                .ok_or_else(|| Error::Forbidden(format!("you are not a member of space {space}")))?;
            let grants = grants_of(db, space, &role).await?;
            (Some(role), grants)
        }
        None => (None, Grants::NONE),
    };
    Ok(Principal {
        actor: Actor::Member {
            id,
            issuer: token.issuer,
            subject: token.subject,
            email: token.email,
            username: token.username,
        },
        role,
        grants,
        space,
        tenant: tenant_header,
        tools: None,
        spaces,
    })
}

/// Who a console session stands for, as its signed cookie names them: never a secret, and
/// checked again at every request (`resume`), so a revoked key, an expired one or a removed
/// member stops working in the console as it does in the API (within `CACHE_TTL`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionSubject {
    /// Signed in with the admin key (the session key is derived from it, so rotating the admin
    /// key ends these sessions).
    PlatformAdmin,
    Key {
        space: SpaceId,
        id: ApiKeyId,
    },
    /// Signed in through the OpenID Connect provider: who they are, and the token's role claims
    /// with the token's expiry. Memberships are read again at every request; role claims count
    /// only until `roles_until` (the ID token's `exp`), since the provider may withdraw them and
    /// the session cannot see it.
    Member {
        issuer: String,
        subject: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roles: Vec<String>,
        /// Epoch seconds.
        #[serde(default)]
        roles_until: i64,
    },
}

/// Sign in with a key (an API key or the admin key), acting on `space` (a key's own space
/// when `None`): the caller, and what a session remembers of them.
pub async fn sign_in_with_key(
    ctx: AuthContext<'_>,
    key: &str,
    space: Option<SpaceId>,
) -> Result<(Principal, SessionSubject), Error> {
    let who = with_key(ctx, key.trim(), space, None).await?;
    let subject = match &who.actor {
        Actor::PlatformAdmin => SessionSubject::PlatformAdmin,
        Actor::Key { id, .. } => SessionSubject::Key { space: who.space()?.clone(), id: id.clone() },
        Actor::Member { .. } => return Err(Error::Unauthenticated("invalid API key".into())),
    };
    Ok((who, subject))
}

/// Sign in with a verified OpenID Connect token whose `exp` is `token_expires_at` (epoch
/// seconds), acting on `space` (the only one when `None`). Signing in claims the invitations
/// sent to a verified email, as a bearer token does.
pub async fn sign_in_with_token(
    ctx: AuthContext<'_>,
    token: VerifiedToken,
    space: Option<SpaceId>,
    token_expires_at: i64,
) -> Result<(Principal, SessionSubject), Error> {
    let subject = SessionSubject::Member {
        issuer: token.issuer.clone(),
        subject: token.subject.clone(),
        email: token.email.clone(),
        username: token.username.clone(),
        roles: token.roles.clone(),
        roles_until: token_expires_at,
    };
    Ok((as_member(ctx.db, token, space, None).await?, subject))
}

/// The caller a session stands for now, acting on `space`.
pub async fn resume(
    ctx: AuthContext<'_>,
    subject: &SessionSubject,
    space: Option<SpaceId>,
) -> Result<Principal, Error> {
    match subject {
        SessionSubject::PlatformAdmin => {
            if ctx.admin_key.admin_key().await?.is_none() {
                return Err(Error::Unauthenticated("no admin key is configured any more".into()));
            }
            let role = RoleName::BuiltIn(Role::PlatformAdmin);
            Ok(Principal {
                actor: Actor::PlatformAdmin,
                role: Some(role),
                grants: Role::PlatformAdmin.grants(),
                space,
                tenant: None,
                tools: None,
                spaces: Vec::new(),
            })
        }
        SessionSubject::Key { space: own, id } => {
            // A key acts on its own space only, whatever the session names.
            let record = tenants::get_api_key(ctx.db, own, id)
                .await?
                .ok_or_else(|| Error::Unauthenticated("this API key was revoked".into()))?;
            key_principal(ctx.db, record, None).await
        }
        SessionSubject::Member { issuer, subject, email, username, roles, roles_until } => {
            let roles_valid = ctx.db.now_ms() / 1000 < *roles_until;
            let token = VerifiedToken {
                issuer: issuer.clone(),
                subject: subject.clone(),
                email: email.clone(),
                // Invitations were claimed at sign-in; a page view writes nothing.
                email_verified: false,
                username: username.clone(),
                roles: if roles_valid { roles.clone() } else { Vec::new() },
            };
            as_member(ctx.db, token, space, None).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_mappings_name_a_space_and_a_space_role() {
        assert_eq!(
            mapped_role("space:acme:admin"),
            Some((SpaceId::parse("acme").unwrap(), RoleName::BuiltIn(Role::Admin)))
        );
        assert_eq!(mapped_role("space:acme:support").map(|(_, r)| r), Some(RoleName::Custom("support".into())));
        assert_eq!(mapped_role("space:acme:tenant"), None);
        assert_eq!(mapped_role("space:acme:platform_admin"), None);
        assert_eq!(mapped_role("offline_access"), None);
        assert_eq!(mapped_role("space::admin"), None);
    }
}
