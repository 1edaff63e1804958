//! Alert rules, their state and their events in the store.
//!
//! - `ALERT#{id}` in the space's partition: the rule with its state (firing or not, since
//!   when, the last value), written with optimistic concurrency so two overlapping ticks
//!   fire a rule once.
//! - `ALERTS` partition, one item per rule (`{space}#{id}`): the index the scheduler's tick
//!   walks, kept in step with the rules.
//! - `ALERTEV#{ulid}` in the space's partition: what fired and resolved, kept 30 days, with
//!   the outcome of its webhook delivery.
//! - The space's alert signing secret (`whsec_…`), set by the space, is in the space's secret
//!   document; it is never returned.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Db, Error, leases};
use crate::domain::alerts::{AlertRule, MAX_RULES};
use crate::domain::ids::{AlertId, SpaceId, ulid_at};
use crate::ports::{Condition, Item, Key, PortError, Query, WriteOp, query_all};
use crate::store::keys;

pub const INDEX_PK: &str = "ALERTS";
const RULE_PREFIX: &str = "ALERT#";
const EVENT_PREFIX: &str = "ALERTEV#";
/// How long alert events are kept.
pub const EVENT_TTL_SECS: i64 = 30 * 86_400;
const SECRET_FIELD: &str = "alerts_webhook_secret";

/// A rule's state, as the last tick left it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    #[serde(default)]
    pub firing: bool,
    /// When it last fired or resolved (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<i64>,
}

/// A rule as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRule {
    pub id: AlertId,
    pub space: SpaceId,
    pub rule: AlertRule,
    #[serde(default)]
    pub state: AlertState,
    pub updated_at: i64,
}

/// A firing or a resolving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub id: String,
    pub alert: AlertId,
    /// `firing` or `resolved`.
    pub kind: String,
    pub at: i64,
    pub value: Option<f64>,
    pub threshold: f64,
    pub metric: crate::domain::alerts::AlertMetric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<crate::domain::ids::TenantId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<crate::domain::ids::FlowId>,
    /// `none` (no webhook), `delivered`, or `failed` after the attempts.
    pub delivery: String,
    #[serde(default)]
    pub attempts: u32,
}

fn rule_key(space: &SpaceId, id: &AlertId) -> Key {
    Key::new(keys::space_pk(space), format!("{RULE_PREFIX}{id}"))
}

fn index_key(space: &SpaceId, id: &AlertId) -> Key {
    Key::new(INDEX_PK, format!("{space}#{id}"))
}

pub async fn list(db: &Db, space: &SpaceId) -> Result<Vec<(StoredRule, u64)>, Error> {
    let items = query_all(db.store.as_ref(), Query::prefix(keys::space_pk(space), RULE_PREFIX), MAX_RULES).await?;
    items.iter().map(|i| Ok((i.parse()?, i.version))).collect()
}

pub async fn get(db: &Db, space: &SpaceId, id: &AlertId) -> Result<Option<(StoredRule, u64)>, Error> {
    Ok(db.store.get(&rule_key(space, id)).await?.map(|i| Ok::<_, Error>((i.parse()?, i.version))).transpose()?)
}

/// Create or replace a rule (a replaced rule starts again as not firing). Returns it and
/// whether it is new.
pub async fn put(db: &Db, space: &SpaceId, id: AlertId, rule: AlertRule) -> Result<(StoredRule, bool), Error> {
    rule.validate().map_err(|m| Error::invalid("invalid_alert", m))?;
    let existing = get(db, space, &id).await?;
    if existing.is_none() && list(db, space).await?.len() >= MAX_RULES {
        return Err(Error::QuotaExceeded(format!("a space has at most {MAX_RULES} alert rules")));
    }
    let stored = StoredRule {
        id: id.clone(),
        space: space.clone(),
        rule,
        state: AlertState::default(),
        updated_at: db.now_ms(),
    };
    let (version, condition) = match &existing {
        Some((_, v)) => (v + 1, Condition::IfVersion(*v)),
        None => (1, Condition::IfAbsent),
    };
    let value = serde_json::to_value(&stored).unwrap_or(Value::Null);
    let ops = vec![
        WriteOp::Put { item: Item::new(rule_key(space, &id), value).with_version(version), condition },
        WriteOp::Put {
            item: Item::new(index_key(space, &id), serde_json::json!({"space": space, "id": id})),
            condition: Condition::None,
        },
    ];
    match db.store.transact(ops).await {
        Ok(()) => Ok((stored, existing.is_none())),
        Err(PortError::TransactionCancelled { .. }) => {
            Err(Error::Conflict(format!("alert {id} changed meanwhile; retry")))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn delete(db: &Db, space: &SpaceId, id: &AlertId) -> Result<(), Error> {
    let ops = vec![
        WriteOp::Delete { key: rule_key(space, id), condition: Condition::IfExists },
        WriteOp::Delete { key: index_key(space, id), condition: Condition::None },
    ];
    match db.store.transact(ops).await {
        Ok(()) => Ok(()),
        Err(PortError::TransactionCancelled { .. }) => Err(Error::NotFound(format!("alert {id} not found"))),
        Err(e) => Err(e.into()),
    }
}

/// Every rule of every space (the tick's walk): (space, id) pairs.
pub async fn index(db: &Db) -> Result<Vec<(SpaceId, AlertId)>, Error> {
    let items = query_all(db.store.as_ref(), Query::prefix(INDEX_PK, ""), 100_000).await?;
    Ok(items
        .iter()
        .filter_map(|i| {
            let space = SpaceId::parse(i.data.get("space")?.as_str()?).ok()?;
            let id = AlertId::parse(i.data.get("id")?.as_str()?).ok()?;
            Some((space, id))
        })
        .collect())
}

/// Save a rule's new state if nobody did since `version`; `false` when someone did.
pub async fn save_state(db: &Db, rule: &StoredRule, version: u64) -> Result<bool, Error> {
    let item = Item::new(rule_key(&rule.space, &rule.id), serde_json::to_value(rule).unwrap_or(Value::Null))
        .with_version(version + 1);
    match db.store.put(item, Condition::IfVersion(version)).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub fn new_event_id(db: &Db) -> String {
    ulid_at(db.now_ms()).to_string()
}

pub async fn put_event(db: &Db, space: &SpaceId, event: &AlertEvent) -> Result<(), Error> {
    let item = Item::new(
        Key::new(keys::space_pk(space), format!("{EVENT_PREFIX}{}", event.id)),
        serde_json::to_value(event).unwrap_or(Value::Null),
    )
    .expiring_at(event.at / 1000 + EVENT_TTL_SECS);
    db.store.put(item, Condition::None).await?;
    Ok(())
}

/// The space's alert events, newest first.
pub async fn events(
    db: &Db,
    space: &SpaceId,
    limit: u32,
    cursor: Option<String>,
) -> Result<(Vec<AlertEvent>, Option<String>), Error> {
    let page = db
        .store
        .query(&Query::prefix(keys::space_pk(space), EVENT_PREFIX).descending().limit(limit).after(cursor))
        .await?;
    Ok((page.items.iter().map(|i| i.parse()).collect::<Result<_, _>>()?, page.next))
}

/// The space's alert signing secret, if set.
pub async fn signing_secret(db: &Db, space: &SpaceId) -> Result<Option<String>, Error> {
    let owner = super::credentials::space_owner(space);
    Ok(db.secrets.get(&owner).await?.and_then(|d| d.0.get(SECRET_FIELD).and_then(Value::as_str).map(str::to_string)))
}

/// Set the space's alert signing secret: Standard Webhooks' `whsec_` and the base64 of 24 to
/// 64 random bytes.
pub async fn set_signing_secret(db: &Db, space: &SpaceId, secret: &str) -> Result<(), Error> {
    let key = secret.strip_prefix("whsec_").and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    if !key.is_some_and(|b| (24..=64).contains(&b.len())) {
        return Err(Error::invalid("invalid_secret", "the secret is whsec_ and the base64 of 24 to 64 random bytes"));
    }
    let owner = super::credentials::space_owner(space);
    let lease_key = keys::space_lease(space, "secrets");
    leases::with_lease(
        db,
        lease_key,
        std::time::Duration::from_secs(30),
        std::time::Duration::from_secs(10),
        || async {
            let mut document = db.secrets.get_fresh(&owner).await?.unwrap_or_default();
            document.0.insert(SECRET_FIELD.into(), Value::String(secret.to_string()));
            db.secrets.put(&owner, &document).await?;
            Ok::<(), Error>(())
        },
    )
    .await
}
