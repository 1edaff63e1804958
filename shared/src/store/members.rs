//! People in spaces, invitations by email, and the roles a space defines.
//!
//! A membership is two items written in one transaction: the space's listing
//! (`S#{space}`/`MEMBER#{id}`) and the person's index (`P#{id}`/`SPACE#{space}`, or for an
//! invitation `INV#{id}`), so "who is in this space" and "which spaces is this person in" are
//! each one query. An invitation becomes a membership the first time its person logs in with a
//! verified email ([`claim_invitations`]): the invitation's two items are deleted and the
//! member's two written, all in one transaction.

use super::{Db, Error, keys, to_value};
use crate::domain::access::{CustomRole, Member, RoleName, invitation_id, member_id, normalize_email};
use crate::domain::ids::SpaceId;
use crate::ports::{Condition, Item, PortError, Query, WriteOp, query_all};

/// Most members listed or indexed per space or person (beyond that, one page of the API).
pub const MAX_MEMBERS: u32 = 1000;
/// Most custom roles per space.
pub const MAX_CUSTOM_ROLES: usize = 100;

/// Who a new member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A person at an identity provider.
    Subject { issuer: String, subject: String, email: Option<String> },
    /// Someone known by email only, until they log in.
    Email(String),
}

impl Identity {
    pub fn member_id(&self) -> String {
        match self {
            Identity::Subject { issuer, subject, .. } => member_id(issuer, subject),
            Identity::Email(email) => invitation_id(email),
        }
    }
}

fn writes(member: &Member) -> Vec<WriteOp> {
    let value = to_value(member);
    vec![
        WriteOp::Put {
            item: Item::new(keys::member(&member.space, &member.id), value.clone()),
            condition: Condition::None,
        },
        WriteOp::Put {
            item: Item::new(keys::membership(&member.id, &member.space), value),
            condition: Condition::None,
        },
    ]
}

fn deletes(space: &SpaceId, id: &str) -> Vec<WriteOp> {
    vec![
        WriteOp::Delete { key: keys::member(space, id), condition: Condition::None },
        WriteOp::Delete { key: keys::membership(id, space), condition: Condition::None },
    ]
}

fn invalidate(db: &Db, id: &str) {
    db.caches.memberships.remove(&id.to_string());
}

pub async fn get(db: &Db, space: &SpaceId, id: &str) -> Result<Option<Member>, Error> {
    Ok(db.store.get(&keys::member(space, id)).await?.map(|i| i.parse()).transpose()?)
}

/// Add a member or change their role. Returns the member and whether they are new.
pub async fn put(db: &Db, space: &SpaceId, who: Identity, role: RoleName) -> Result<(Member, bool), Error> {
    let id = who.member_id();
    let now = db.now_ms();
    let existing = get(db, space, &id).await?;
    let (issuer, subject, email) = match who {
        Identity::Subject { issuer, subject, email } => (Some(issuer), Some(subject), email),
        Identity::Email(email) => (None, None, Some(normalize_email(&email))),
    };
    let member = Member {
        id: id.clone(),
        space: space.clone(),
        issuer,
        subject,
        email: email.or_else(|| existing.as_ref().and_then(|m| m.email.clone())),
        role,
        created_at: existing.as_ref().map_or(now, |m| m.created_at),
        updated_at: now,
    };
    db.store.transact(writes(&member)).await?;
    invalidate(db, &id);
    Ok((member, existing.is_none()))
}

/// Change an existing member's role.
pub async fn set_role(db: &Db, space: &SpaceId, id: &str, role: RoleName) -> Result<Member, Error> {
    let mut member = get(db, space, id).await?.ok_or_else(|| Error::NotFound(format!("member {id} not found")))?;
    member.role = role;
    member.updated_at = db.now_ms();
    db.store.transact(writes(&member)).await?;
    invalidate(db, id);
    Ok(member)
}

pub async fn remove(db: &Db, space: &SpaceId, id: &str) -> Result<(), Error> {
    if get(db, space, id).await?.is_none() {
        return Err(Error::NotFound(format!("member {id} not found")));
    }
    db.store.transact(deletes(space, id)).await?;
    invalidate(db, id);
    Ok(())
}

/// One page of a space's members, in id order.
pub async fn list(
    db: &Db,
    space: &SpaceId,
    limit: u32,
    cursor: Option<String>,
) -> Result<(Vec<Member>, Option<String>), Error> {
    let page =
        db.store.query(&Query::prefix(keys::space_pk(space), keys::MEMBER_PREFIX).limit(limit).after(cursor)).await?;
    Ok((page.items.iter().map(|i| i.parse()).collect::<Result<_, _>>()?, page.next))
}

/// Every space a person (or an invited email) is in; cached per container for `CACHE_TTL`.
pub async fn memberships(db: &Db, id: &str) -> Result<Vec<Member>, Error> {
    if let Some(cached) = db.caches.memberships.get(&id.to_string()) {
        return Ok(cached);
    }
    let items =
        query_all(db.store.as_ref(), Query::prefix(keys::person_pk(id), keys::MEMBERSHIP_PREFIX), MAX_MEMBERS as usize)
            .await?;
    let members: Vec<Member> = items.iter().map(|i| i.parse()).collect::<Result<_, _>>()?;
    db.caches.memberships.put(id.to_string(), members.clone());
    Ok(members)
}

/// Turn the invitations of a verified email into memberships of the person who logged in.
/// A space where the person is already a member keeps its membership (the invitation goes).
pub async fn claim_invitations(db: &Db, issuer: &str, subject: &str, email: &str) -> Result<Vec<Member>, Error> {
    let invitation = invitation_id(email);
    let invited = memberships(db, &invitation).await?;
    if invited.is_empty() {
        return Ok(Vec::new());
    }
    let id = member_id(issuer, subject);
    let current = memberships(db, &id).await?;
    let now = db.now_ms();
    let mut claimed = Vec::new();
    for invite in invited {
        let mut ops = deletes(&invite.space, &invitation);
        if !current.iter().any(|m| m.space == invite.space) {
            let member = Member {
                id: id.clone(),
                space: invite.space.clone(),
                issuer: Some(issuer.to_string()),
                subject: Some(subject.to_string()),
                email: Some(normalize_email(email)),
                role: invite.role.clone(),
                created_at: invite.created_at,
                updated_at: now,
            };
            ops.extend(writes(&member));
            claimed.push(member);
        }
        db.store.transact(ops).await?;
    }
    invalidate(db, &invitation);
    invalidate(db, &id);
    Ok(claimed)
}

/// Record a member's email as their identity provider now reports it.
pub async fn refresh_email(db: &Db, member: &Member, email: &str) -> Result<(), Error> {
    let email = normalize_email(email);
    if member.email.as_deref() == Some(email.as_str()) {
        return Ok(());
    }
    let updated = Member { email: Some(email), updated_at: db.now_ms(), ..member.clone() };
    db.store.transact(writes(&updated)).await?;
    invalidate(db, &member.id);
    Ok(())
}

// ----- custom roles -----

pub async fn get_role(db: &Db, space: &SpaceId, name: &str) -> Result<Option<CustomRole>, Error> {
    let key = (space.to_string(), name.to_string());
    if let Some(cached) = db.caches.custom_roles.get(&key) {
        return Ok(cached);
    }
    let role: Option<CustomRole> =
        db.store.get(&keys::custom_role(space, name)).await?.map(|i| i.parse()).transpose()?;
    db.caches.custom_roles.put(key, role.clone());
    Ok(role)
}

pub async fn list_roles(db: &Db, space: &SpaceId) -> Result<Vec<CustomRole>, Error> {
    let items =
        query_all(db.store.as_ref(), Query::prefix(keys::space_pk(space), keys::CUSTOM_ROLE_PREFIX), MAX_CUSTOM_ROLES)
            .await?;
    Ok(items.iter().map(|i| i.parse()).collect::<Result<_, _>>()?)
}

/// Define or redefine a custom role. Returns it and whether it is new.
pub async fn put_role(db: &Db, space: &SpaceId, mut role: CustomRole) -> Result<(CustomRole, bool), Error> {
    let existing = db.store.get(&keys::custom_role(space, &role.name)).await?;
    if existing.is_none() && list_roles(db, space).await?.len() >= MAX_CUSTOM_ROLES {
        return Err(Error::LimitReached {
            message: format!("a space defines at most {MAX_CUSTOM_ROLES} custom roles"),
            retry_after_secs: 0,
        });
    }
    let now = db.now_ms();
    role.updated_at = now;
    role.created_at = match &existing {
        Some(item) => item.parse::<CustomRole>()?.created_at,
        None => now,
    };
    let condition = match &existing {
        Some(item) => Condition::IfVersion(item.version),
        None => Condition::IfAbsent,
    };
    let version = existing.as_ref().map_or(1, |i| i.version + 1);
    let item = Item::new(keys::custom_role(space, &role.name), to_value(&role)).with_version(version);
    match db.store.put(item, condition).await {
        Ok(()) => {}
        Err(PortError::ConditionFailed) => {
            return Err(Error::Conflict(format!("role {} changed meanwhile; retry", role.name)));
        }
        Err(e) => return Err(e.into()),
    }
    db.caches.custom_roles.remove(&(space.to_string(), role.name.clone()));
    Ok((role, existing.is_none()))
}

/// Delete a custom role nobody holds.
pub async fn delete_role(db: &Db, space: &SpaceId, name: &str) -> Result<(), Error> {
    if get_role(db, space, name).await?.is_none() {
        return Err(Error::NotFound(format!("role {name} not found")));
    }
    let mut cursor = None;
    loop {
        let (page, next) = list(db, space, 200, cursor).await?;
        if page.iter().any(|m| m.role.as_str() == name) {
            return Err(Error::Conflict(format!("role {name} is held by members; give them another role first")));
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    db.store.delete(&keys::custom_role(space, name), Condition::None).await?;
    db.caches.custom_roles.remove(&(space.to_string(), name.to_string()));
    Ok(())
}
