//! Who the caller is (`/me`), the space's members and custom roles, and its audit log.

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard::domain::access::{CustomRole, Grants, Permission, Role, RoleName, check_custom_role_name};
use switchyard::runtime::error::AppError;
use switchyard::runtime::http::{Response, empty, json as json_response};
use switchyard::store::audit::{self, AuditFilter};
use switchyard::store::members::{self, Identity};
use switchyard::usecases::auth::{Actor, grants_of};

use crate::{Call, page_response};

fn permission_names(grants: Grants) -> Vec<&'static str> {
    grants.iter().map(Permission::as_str).collect()
}

/// The caller, their spaces and roles, and what they may do: the console builds its menus
/// from this.
pub async fn me(call: &Call<'_>) -> Result<Response, AppError> {
    let who = &call.who;
    let actor = match &who.actor {
        Actor::PlatformAdmin => json!({"kind": "platform_admin", "id": "admin"}),
        Actor::Key { id, name } => json!({"kind": "key", "id": id, "name": name}),
        Actor::Member { id, issuer, subject, email, username } => {
            json!({"kind": "member", "id": id, "issuer": issuer, "subject": subject, "email": email, "username": username})
        }
    };
    let mut spaces = Vec::new();
    for (space, role) in &who.spaces {
        let grants = grants_of(call.db(), space, role).await?;
        spaces.push(json!({"space": space, "role": role, "permissions": permission_names(grants)}));
    }
    Ok(json_response(
        200,
        &json!({
            "actor": actor,
            "space": who.space,
            "tenant": who.tenant,
            "role": who.role,
            "permissions": permission_names(who.grants),
            "spaces": spaces,
        }),
    ))
}

/// Who a member is, from a path or body value: an email address, or a subject at `issuer`
/// (which may be left out when one issuer is configured).
pub fn identity(call: &Call<'_>, text: &str, issuer: Option<String>) -> Result<Identity, AppError> {
    let text = text.trim();
    let printable = !text.is_empty() && text.len() <= 320 && !text.chars().any(|c| c.is_control() || c.is_whitespace());
    if !printable {
        return Err(AppError::bad_request(
            "a member is an email address or a subject of 1 to 255 printable characters",
        ));
    }
    if let Some((local, domain)) = text.split_once('@') {
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(AppError::bad_request(format!("{text:?} is not an email address")));
        }
        return Ok(Identity::Email(text.to_string()));
    }
    if text.len() > 255 {
        return Err(AppError::bad_request("a subject is at most 255 characters"));
    }
    let issuers = &call.p.settings.oidc.issuers;
    let issuer = match issuer {
        Some(issuer) if issuers.contains(&issuer) => issuer,
        Some(issuer) => return Err(AppError::bad_request(format!("{issuer} is not a configured issuer"))),
        None if issuers.len() == 1 => issuers[0].clone(),
        None if issuers.is_empty() => {
            return Err(AppError::bad_request(
                "no OIDC issuer is configured (SWITCHYARD_OIDC_ISSUERS): invite the member by email",
            ));
        }
        None => return Err(AppError::bad_request("several issuers are configured: name the member's `issuer`")),
    };
    Ok(Identity::Subject { issuer, subject: text.to_string(), email: None })
}

/// A role a member may hold: a space role (not the end user's, which is a tenant key's, nor
/// the platform admin's), custom ones only if the space defines them. Returns what it allows.
async fn member_role(call: &Call<'_>, role: &RoleName) -> Result<Grants, AppError> {
    if let RoleName::BuiltIn(Role::Tenant | Role::PlatformAdmin) = role {
        return Err(AppError::bad_request(format!(
            "members cannot hold the role {role}; use an API key for end users"
        )));
    }
    if let RoleName::Custom(name) = role {
        if members::get_role(call.db(), &call.space()?, name).await?.is_none() {
            return Err(AppError::bad_request(format!("the space has no role {name}")));
        }
    }
    Ok(grants_of(call.db(), &call.space()?, role).await?)
}

/// Refuse giving or taking away a role the caller could not give.
fn check_may_grant(call: &Call<'_>, role: &RoleName, grants: Grants) -> Result<(), AppError> {
    if call.who.may_grant(role, grants) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!("your role may not give or take away the role {role}")))
    }
}

/// Refuse leaving a space without an owner.
async fn check_other_owner(call: &Call<'_>, leaving: &str) -> Result<(), AppError> {
    let space = call.space()?;
    let mut cursor = None;
    loop {
        let (page, next) = members::list(call.db(), &space, 200, cursor).await?;
        if page.iter().any(|m| m.id != leaving && m.role == RoleName::BuiltIn(Role::Owner)) {
            return Ok(());
        }
        match next {
            Some(n) => cursor = Some(n),
            None => {
                return Err(AppError::Conflict(
                    "a space keeps at least one owner: make someone else owner first".into(),
                ));
            }
        }
    }
}

pub async fn list_members(call: &Call<'_>) -> Result<Response, AppError> {
    let (limit, cursor) = call.page()?;
    let (page, next) = members::list(call.db(), &call.space()?, limit, cursor).await?;
    Ok(page_response(page.iter().map(|m| json!(m)).collect(), next))
}

pub async fn get_member(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let member = members::get(call.db(), &call.space()?, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("member {id} not found")))?;
    Ok(json_response(200, &json!(member)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberPut {
    role: RoleName,
    #[serde(default)]
    issuer: Option<String>,
}

/// Add a member (`{member}`: an email, or a subject) or change a member's role (`{member}`:
/// their id, `mem_…` or `inv_…`).
pub async fn put_member(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let body: MemberPut = call.body()?;
    let space = call.space()?;
    let grants = member_role(call, &body.role).await?;
    check_may_grant(call, &body.role, grants)?;
    let existing_id = if id.starts_with("mem_") || id.starts_with("inv_") {
        id.to_string()
    } else {
        identity(call, id, body.issuer.clone())?.member_id()
    };
    if let Some(current) = members::get(call.db(), &space, &existing_id).await? {
        let current_grants = grants_of(call.db(), &space, &current.role).await?;
        check_may_grant(call, &current.role, current_grants)?;
        if current.role == RoleName::BuiltIn(Role::Owner) && body.role != current.role {
            check_other_owner(call, &current.id).await?;
        }
        let member = members::set_role(call.db(), &space, &current.id, body.role).await?;
        return Ok(json_response(200, &json!(member)));
    }
    if id.starts_with("mem_") || id.starts_with("inv_") {
        return Err(AppError::not_found(format!("member {id} not found")));
    }
    let (member, _) = members::put(call.db(), &space, identity(call, id, body.issuer)?, body.role).await?;
    Ok(json_response(201, &json!(member)))
}

pub async fn delete_member(call: &Call<'_>, id: &str) -> Result<Response, AppError> {
    let space = call.space()?;
    let member = members::get(call.db(), &space, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("member {id} not found")))?;
    let grants = grants_of(call.db(), &space, &member.role).await?;
    check_may_grant(call, &member.role, grants)?;
    if member.role == RoleName::BuiltIn(Role::Owner) {
        check_other_owner(call, &member.id).await?;
    }
    members::remove(call.db(), &space, id).await?;
    Ok(empty(204))
}

fn built_in_json(role: Role) -> Value {
    json!({"name": role.as_str(), "built_in": true, "permissions": permission_names(role.grants())})
}

fn custom_json(role: &CustomRole) -> Value {
    let mut v = json!(role);
    v["built_in"] = json!(false);
    v
}

/// The built-in roles (but the platform admin's), then the space's own.
pub async fn list_roles(call: &Call<'_>) -> Result<Response, AppError> {
    let mut items: Vec<Value> = Role::ALL.into_iter().skip(1).map(built_in_json).collect();
    items.extend(members::list_roles(call.db(), &call.space()?).await?.iter().map(custom_json));
    Ok(page_response(items, None))
}

pub async fn get_role(call: &Call<'_>, name: &str) -> Result<Response, AppError> {
    if let Some(role) = Role::parse(name).filter(|r| *r != Role::PlatformAdmin) {
        return Ok(json_response(200, &built_in_json(role)));
    }
    let role = members::get_role(call.db(), &call.space()?, name)
        .await?
        .ok_or_else(|| AppError::not_found(format!("role {name} not found")))?;
    Ok(json_response(200, &custom_json(&role)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolePut {
    #[serde(default)]
    description: String,
    permissions: Vec<Permission>,
}

pub async fn put_role(call: &Call<'_>, name: &str) -> Result<Response, AppError> {
    check_custom_role_name(name).map_err(AppError::bad_request)?;
    let body: RolePut = call.body()?;
    if body.description.chars().count() > 500 {
        return Err(AppError::bad_request("description: at most 500 characters"));
    }
    if let Some(reserved) = body.permissions.iter().find(|p| CustomRole::RESERVED.contains(p)) {
        return Err(AppError::bad_request(format!(
            "{reserved} belongs to the platform admin; no custom role holds it"
        )));
    }
    let mut permissions = body.permissions;
    permissions.sort();
    permissions.dedup();
    let role =
        CustomRole { name: name.to_string(), description: body.description, permissions, created_at: 0, updated_at: 0 };
    let space = call.space()?;
    // Redefining a role changes what its members may do: the caller must hold both versions.
    if let Some(current) = members::get_role(call.db(), &space, name).await? {
        check_may_grant(call, &RoleName::Custom(name.into()), current.grants())?;
    }
    check_may_grant(call, &RoleName::Custom(name.into()), role.grants())?;
    let (role, created) = members::put_role(call.db(), &space, role).await?;
    Ok(json_response(if created { 201 } else { 200 }, &custom_json(&role)))
}

pub async fn delete_role(call: &Call<'_>, name: &str) -> Result<Response, AppError> {
    if Role::parse(name).is_some() {
        return Err(AppError::bad_request(format!("{name} is a built-in role")));
    }
    let space = call.space()?;
    let role = members::get_role(call.db(), &space, name)
        .await?
        .ok_or_else(|| AppError::not_found(format!("role {name} not found")))?;
    check_may_grant(call, &RoleName::Custom(name.into()), role.grants())?;
    members::delete_role(call.db(), &space, name).await?;
    Ok(empty(204))
}

/// The space's audit log, newest first: `actor`, `action`, `since` and `until` (epoch
/// milliseconds, inclusive) filter it.
pub async fn list_audit(call: &Call<'_>) -> Result<Response, AppError> {
    let (limit, cursor) = call.page()?;
    let q = call.query();
    let time = |name: &str| -> Result<Option<i64>, AppError> {
        q.get(name)
            .map(|v| v.parse::<i64>().map_err(|_| AppError::bad_request(format!("{name} is epoch milliseconds"))))
            .transpose()
    };
    let text = |name: &str| -> Result<Option<String>, AppError> {
        match q.get(name) {
            Some(v) if v.len() > 256 => Err(AppError::bad_request(format!("{name}: at most 256 characters"))),
            v => Ok(v.cloned()),
        }
    };
    let filter =
        AuditFilter { actor: text("actor")?, action: text("action")?, since: time("since")?, until: time("until")? };
    let (records, next) = audit::list(call.db(), &call.space()?, &filter, limit, cursor).await?;
    Ok(page_response(records.iter().map(|r| json!(r)).collect(), next))
}
