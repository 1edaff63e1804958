//! Quota counters and their enforcement (the dimensions and modes are in `domain::quota`).
//!
//! Every take is one atomic counter update, never a read then a write:
//! - **windowed** dimensions (events, API calls, agent sessions, LLM tokens) add to the counter
//!   of the current UTC window (`Q#{dimension}#{window}`); under `hard_block` and
//!   `queue_for_later` the store refuses an add past the limit;
//! - **gauges** (flows, connectors, active integrations) are `WriteOp::Add`s in the same
//!   transaction as the write they count (`Q#{dimension}`), so the count and the thing counted
//!   never disagree, and a refused take leaves nothing half done;
//! - **storage** adds bytes to the bucket of the day its data expires
//!   (`Q#storage_mb#exp#{day}`): a bucket expires with the data it counts, so TTL frees it.
//!
//! Over the limit, `soft_warning` and `overage` go ahead and return a [`Notice`]; the first
//! notice of a window (one marker item put-if-absent) is the one announced as a platform
//! event. `overage` also meters what is over the limit per day (`Q#overage#{dimension}#{day}`).
//!
//! Daily counters are kept 32 days so usage has a month of history.

use chrono::{TimeZone, Utc};
use serde::Serialize;

use super::tenants::ResolvedTenant;
use super::{Db, Error};
use crate::domain::ids::{SpaceId, TenantId};
use crate::domain::quota::{self, Dimension, EffectiveQuota, Mode, Window};
use crate::ports::{Condition, Item, Key, PortError, Query, WriteOp, query_all};
use crate::store::keys;

/// A take of a windowed quota; give it back if the work it paid for did not happen.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    key: Key,
    amount: i64,
}

impl Reservation {
    pub async fn refund(self, db: &Db) {
        if let Err(e) = db.store.add_counter(&self.key, -self.amount, None, None).await {
            tracing::warn!(error = %e, amount = self.amount, "quota refund failed; the tenant loses that much of the window");
        }
    }
}

/// A dimension went past its limit and the mode let the work go ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub dimension: Dimension,
    pub mode: Mode,
    pub used: u64,
    pub limit: u64,
    /// The first notice of this window (the one to announce as a platform event).
    #[serde(skip)]
    pub first: bool,
}

impl Notice {
    /// The `Switchyard-Quota-Warning` header value.
    pub fn header(&self) -> String {
        format!("{}; used={}; limit={}; mode={}", self.dimension, self.used, self.limit, self.mode.as_str())
    }

    /// The platform event's type.
    pub fn event_type(&self) -> &'static str {
        match self.mode {
            Mode::Overage => "quota.overage",
            _ => "quota.warning",
        }
    }
}

/// What a take decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Go ahead (with a notice when past a soft limit).
    Now { reservation: Option<Reservation>, notice: Option<Notice> },
    /// Accepted but deferred: the work starts at `at_ms`, and is already counted in the
    /// window that starts then.
    Later { at_ms: i64, reservation: Reservation },
}

impl Admission {
    pub fn notice(&self) -> Option<&Notice> {
        match self {
            Admission::Now { notice, .. } => notice.as_ref(),
            Admission::Later { .. } => None,
        }
    }
    pub async fn refund(self, db: &Db) {
        match self {
            Admission::Now { reservation: Some(r), .. } | Admission::Later { reservation: r, .. } => r.refund(db).await,
            Admission::Now { reservation: None, .. } => {}
        }
    }
}

/// How many later windows `queue_for_later` looks at for room before refusing.
pub const MAX_DEFER_WINDOWS: i64 = 7;
/// How long daily counters are kept after their day (a month of usage history).
const DAILY_HISTORY_SECS: i64 = 32 * 86_400;
/// How long overage records are kept (billing looks back a year).
const OVERAGE_RETENTION_SECS: i64 = 400 * 86_400;

/// A window's label in counter keys: `2026-12-02` or `2026-12-02T21:05`.
fn label(window: Window, at_ms: i64) -> String {
    let at = Utc.timestamp_millis_opt(at_ms).single().unwrap_or_default();
    match window {
        Window::Day => at.format("%Y-%m-%d").to_string(),
        Window::Minute => at.format("%Y-%m-%dT%H:%M").to_string(),
    }
}

fn day(at_ms: i64) -> String {
    label(Window::Day, at_ms)
}

/// When a window's counter may go (epoch seconds).
fn counter_expiry(window: Window, start_ms: i64) -> i64 {
    let end = (start_ms + window.millis()) / 1000;
    match window {
        Window::Day => end + DAILY_HISTORY_SECS,
        Window::Minute => end + 60,
    }
}

/// Which partition a tenant's (or, with no tenant, a space's) counters live in.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Tenant(&'a SpaceId, &'a TenantId),
    /// The space's own counters: its API calls that name no tenant, its space-wide flows.
    Space(&'a SpaceId),
}

impl Owner<'_> {
    fn pk(&self) -> String {
        match self {
            Owner::Tenant(space, tenant) => keys::tenant_pk(space, tenant),
            Owner::Space(space) => keys::space_pk(space),
        }
    }
    pub fn of(tenant: &ResolvedTenant) -> Owner<'_> {
        Owner::Tenant(&tenant.space.id, &tenant.tenant.id)
    }
}

pub fn window_key(owner: Owner<'_>, dimension: Dimension, window: Window, at_ms: i64) -> Key {
    Key::new(owner.pk(), format!("Q#{dimension}#{}", label(window, at_ms)))
}

pub fn gauge_key(owner: Owner<'_>, dimension: Dimension) -> Key {
    Key::new(owner.pk(), format!("Q#{dimension}"))
}

const STORAGE_BUCKETS: &str = "Q#storage_mb#exp#";
const OVERAGE_PREFIX: &str = "Q#overage#";

fn notice_marker(owner: Owner<'_>, dimension: Dimension, window_label: &str) -> Key {
    Key::new(owner.pk(), format!("Q#notice#{dimension}#{window_label}"))
}

/// A tenant's effective quota on one dimension.
pub fn effective(db: &Db, tenant: &ResolvedTenant, dimension: Dimension) -> EffectiveQuota {
    quota::effective(&db.deployment.plans, tenant.plan(), &tenant.space.quotas, &tenant.tenant.quotas, dimension)
}

/// A space's own quota on one dimension (its plan and space overrides).
pub fn effective_for_space(db: &Db, space: &crate::domain::tenancy::Space, dimension: Dimension) -> EffectiveQuota {
    quota::effective(&db.deployment.plans, space.plan, &space.quotas, &Default::default(), dimension)
}

fn refused(rule: &EffectiveQuota, limit: u64, window: Window, now_ms: i64) -> Error {
    let resets_ms = window.start(now_ms) + window.millis();
    Error::LimitReached {
        message: format!("{} {} quota of {limit} reached for this tenant's plan", window.describe(), rule.dimension),
        retry_after_secs: ((resets_ms - now_ms) / 1000).max(1) as u64,
    }
}

/// Take `n` units of a windowed dimension for `owner` under `rule`, all or none.
pub async fn take_windowed(db: &Db, owner: Owner<'_>, rule: &EffectiveQuota, n: u64) -> Result<Admission, Error> {
    let Some(window) = rule.dimension.window() else {
        return Err(Error::Port(PortError::invalid(format!("{} is not a windowed quota", rule.dimension))));
    };
    let Some(limit) = rule.limit else {
        return Ok(Admission::Now { reservation: None, notice: None });
    };
    let now = db.now_ms();
    let start = window.start(now);
    let amount = i64::try_from(n).unwrap_or(i64::MAX);
    let ceiling = i64::try_from(limit).unwrap_or(i64::MAX);
    let key = window_key(owner, rule.dimension, window, now);
    match rule.mode {
        Mode::HardBlock => {
            match db.store.add_counter(&key, amount, Some(ceiling), Some(counter_expiry(window, start))).await? {
                Some(_) => Ok(Admission::Now { reservation: Some(Reservation { key, amount }), notice: None }),
                None => Err(refused(rule, limit, window, now)),
            }
        }
        Mode::QueueForLater => {
            if db.store.add_counter(&key, amount, Some(ceiling), Some(counter_expiry(window, start))).await?.is_some() {
                return Ok(Admission::Now { reservation: Some(Reservation { key, amount }), notice: None });
            }
            for ahead in 1..=MAX_DEFER_WINDOWS {
                let at_ms = start + ahead * window.millis();
                let key = window_key(owner, rule.dimension, window, at_ms);
                if db
                    .store
                    .add_counter(&key, amount, Some(ceiling), Some(counter_expiry(window, at_ms)))
                    .await?
                    .is_some()
                {
                    return Ok(Admission::Later { at_ms, reservation: Reservation { key, amount } });
                }
            }
            Err(refused(rule, limit, window, now))
        }
        Mode::SoftWarning | Mode::Overage => {
            let used =
                db.store.add_counter(&key, amount, None, Some(counter_expiry(window, start))).await?.unwrap_or(amount);
            let notice = over_limit(db, owner, rule, limit, used, amount, &label(window, now)).await?;
            Ok(Admission::Now { reservation: Some(Reservation { key, amount }), notice })
        }
    }
}

/// Take as many of `n` units as the window has room for (at least one, or a refusal), for
/// work that can be split: a poll's changes. The size is read first and then taken with the
/// ceiling, so a concurrent take can only make it retry, never pass the limit. Soft modes
/// take all `n`.
pub async fn take_up_to(db: &Db, owner: Owner<'_>, rule: &EffectiveQuota, n: u64) -> Result<(u64, Admission), Error> {
    let (Some(window), Some(limit), Mode::HardBlock | Mode::QueueForLater) =
        (rule.dimension.window(), rule.limit, rule.mode)
    else {
        return Ok((n, take_windowed(db, owner, rule, n).await?));
    };
    let hard = EffectiveQuota { mode: Mode::HardBlock, ..*rule };
    for _ in 0..3 {
        let used = used(db, owner, rule.dimension).await?;
        let room = limit.saturating_sub(used).min(n);
        if room == 0 {
            break;
        }
        match take_windowed(db, owner, &hard, room).await {
            Ok(admission) => return Ok((room, admission)),
            Err(Error::LimitReached { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(refused(rule, limit, window, db.now_ms()))
}

/// After an add that went past `limit` under a soft mode: meter the overage, and say whether
/// this is the window's first notice.
async fn over_limit(
    db: &Db,
    owner: Owner<'_>,
    rule: &EffectiveQuota,
    limit: u64,
    used: i64,
    amount: i64,
    window_label: &str,
) -> Result<Option<Notice>, Error> {
    let used = used.max(0) as u64;
    if used <= limit {
        return Ok(None);
    }
    let now = db.now_ms();
    if rule.mode == Mode::Overage {
        // Only what this take added beyond the limit (an earlier take may have crossed it).
        let over = (used - limit).min(amount.max(0) as u64) as i64;
        let key = Key::new(owner.pk(), format!("{OVERAGE_PREFIX}{}#{}", rule.dimension, day(now)));
        db.store.add_counter(&key, over, None, Some(now / 1000 + OVERAGE_RETENTION_SECS)).await?;
    }
    let marker = Item::new(notice_marker(owner, rule.dimension, window_label), serde_json::json!({"at": now}))
        .expiring_at(now / 1000 + 2 * 86_400);
    let first = match db.store.put(marker, Condition::IfAbsent).await {
        Ok(()) => true,
        Err(PortError::ConditionFailed) => false,
        Err(e) => return Err(e.into()),
    };
    Ok(Some(Notice { dimension: rule.dimension, mode: rule.mode, used, limit, first }))
}

/// A gauge's take, to put in the transaction of the write it counts (at its index, so a
/// cancellation there is `gauge_refused`). `cap` is a platform bound that holds whatever the
/// plan and mode say.
pub fn gauge_op(owner: Owner<'_>, rule: &EffectiveQuota, delta: i64, cap: Option<i64>) -> WriteOp {
    let plan = match (rule.mode, rule.limit) {
        (Mode::HardBlock, Some(limit)) => Some(i64::try_from(limit).unwrap_or(i64::MAX)),
        _ => None,
    };
    let ceiling = match (plan, cap) {
        _ if delta <= 0 => None,
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    WriteOp::Add { key: gauge_key(owner, rule.dimension), delta, ceiling }
}

/// The refusal of a gauge take that the transaction's ceiling cancelled.
pub fn gauge_refused(rule: &EffectiveQuota) -> Error {
    Error::QuotaExceeded(format!(
        "{} quota of {} reached for this plan",
        rule.dimension,
        rule.limit.map(|l| l.to_string()).unwrap_or_else(|| "unlimited".into())
    ))
}

/// After a gauge take under a soft mode committed: the notice, if the gauge is past the limit.
pub async fn gauge_notice(
    db: &Db,
    owner: Owner<'_>,
    rule: &EffectiveQuota,
    delta: i64,
) -> Result<Option<Notice>, Error> {
    let (Some(limit), Mode::SoftWarning | Mode::Overage) = (rule.limit, rule.mode) else {
        return Ok(None);
    };
    if delta <= 0 {
        return Ok(None);
    }
    let used = gauge(db, owner, rule.dimension).await?;
    over_limit(db, owner, rule, limit, used as i64, delta, &day(db.now_ms())).await
}

/// Give back `n` units of the current window (a take that turned out larger than the use).
pub async fn give_back(db: &Db, owner: Owner<'_>, dimension: Dimension, n: u64) {
    let Some(window) = dimension.window() else { return };
    let key = window_key(owner, dimension, window, db.now_ms());
    Reservation { key, amount: i64::try_from(n).unwrap_or(i64::MAX) }.refund(db).await;
}

/// A gauge's current value.
pub async fn gauge(db: &Db, owner: Owner<'_>, dimension: Dimension) -> Result<u64, Error> {
    let item = db.store.get(&gauge_key(owner, dimension)).await?;
    Ok(item.and_then(|i| i.data.as_i64()).unwrap_or(0).max(0) as u64)
}

/// The current window's usage of a windowed dimension.
pub async fn used(db: &Db, owner: Owner<'_>, dimension: Dimension) -> Result<u64, Error> {
    match dimension.window() {
        Some(window) => {
            let item = db.store.get(&window_key(owner, dimension, window, db.now_ms())).await?;
            Ok(item.and_then(|i| i.data.as_i64()).unwrap_or(0).max(0) as u64)
        }
        None if dimension == Dimension::StorageMb => storage_bytes(db, owner).await,
        None => gauge(db, owner, dimension).await,
    }
}

/// Count `bytes` written that expire at `expires_at` (epoch seconds; `None`: kept for good).
pub async fn add_storage(db: &Db, owner: Owner<'_>, bytes: u64, expires_at: Option<i64>) -> Result<(), Error> {
    if bytes == 0 {
        return Ok(());
    }
    let (bucket, expiry) = match expires_at {
        Some(at) => {
            let end_of_day = (at.div_euclid(86_400) + 1) * 86_400;
            (day(at * 1000), Some(end_of_day))
        }
        None => ("kept".to_string(), None),
    };
    let key = Key::new(owner.pk(), format!("{STORAGE_BUCKETS}{bucket}"));
    db.store.add_counter(&key, i64::try_from(bytes).unwrap_or(i64::MAX), None, expiry).await?;
    Ok(())
}

/// Bytes stored now: the live buckets (expired ones are gone with their data).
pub async fn storage_bytes(db: &Db, owner: Owner<'_>) -> Result<u64, Error> {
    let items = query_all(db.store.as_ref(), Query::prefix(owner.pk(), STORAGE_BUCKETS), 1000).await?;
    Ok(items.iter().filter_map(|i| i.data.as_i64()).map(|n| n.max(0) as u64).sum())
}

/// Whether a new run may start with `bytes` stored under the storage quota (measured, so
/// checked at admission: running work is never stopped by it).
pub async fn check_storage(db: &Db, tenant: &ResolvedTenant, bytes: u64) -> Result<Option<Notice>, Error> {
    let rule = effective(db, tenant, Dimension::StorageMb);
    let Some(limit) = rule.limit else { return Ok(None) };
    let owner = Owner::of(tenant);
    if bytes < limit {
        return Ok(None);
    }
    match rule.mode {
        Mode::HardBlock | Mode::QueueForLater => Err(gauge_refused(&rule)),
        Mode::SoftWarning | Mode::Overage => Ok(Some(Notice {
            dimension: Dimension::StorageMb,
            mode: rule.mode,
            used: bytes,
            limit,
            first: first_notice(db, owner, Dimension::StorageMb).await?,
        })),
    }
}

async fn first_notice(db: &Db, owner: Owner<'_>, dimension: Dimension) -> Result<bool, Error> {
    let now = db.now_ms();
    let marker = Item::new(notice_marker(owner, dimension, &day(now)), serde_json::json!({"at": now}))
        .expiring_at(now / 1000 + 2 * 86_400);
    match db.store.put(marker, Condition::IfAbsent).await {
        Ok(()) => Ok(true),
        Err(PortError::ConditionFailed) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// One day's count of a daily dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyCount {
    pub day: String,
    pub count: u64,
}

/// The last `days` days of a daily dimension, oldest first (days without a counter are left
/// out).
pub async fn history(db: &Db, owner: Owner<'_>, dimension: Dimension, days: u32) -> Result<Vec<DailyCount>, Error> {
    if dimension.window() != Some(Window::Day) {
        return Ok(Vec::new());
    }
    let since = day(db.now_ms() - i64::from(days.saturating_sub(1)) * 86_400_000);
    let prefix = format!("Q#{dimension}#");
    let page = db.store.query(&Query::prefix(owner.pk(), prefix.clone()).descending().limit(days)).await?;
    let mut out: Vec<DailyCount> = page
        .items
        .iter()
        .filter_map(|i| {
            let day = i.key.sk.strip_prefix(&prefix)?.to_string();
            (day >= since).then(|| DailyCount { day, count: i.data.as_i64().unwrap_or(0).max(0) as u64 })
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// Metered overage of one tenant: per day and dimension, what was used beyond the limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverageRecord {
    pub day: String,
    pub dimension: Dimension,
    pub over: u64,
}

/// A tenant's overage records with `day` in `[from, to]` (`YYYY-MM-DD`), oldest first.
pub async fn overage(db: &Db, owner: Owner<'_>, from: &str, to: &str) -> Result<Vec<OverageRecord>, Error> {
    let items = query_all(db.store.as_ref(), Query::prefix(owner.pk(), OVERAGE_PREFIX), 10_000).await?;
    let mut out: Vec<OverageRecord> = items
        .iter()
        .filter_map(|i| {
            let rest = i.key.sk.strip_prefix(OVERAGE_PREFIX)?;
            let (dimension, day) = rest.split_once('#')?;
            let record = OverageRecord {
                day: day.to_string(),
                dimension: Dimension::parse(dimension)?,
                over: i.data.as_i64().unwrap_or(0).max(0) as u64,
            };
            (record.day.as_str() >= from && record.day.as_str() <= to).then_some(record)
        })
        .collect();
    out.sort_by(|a, b| (&a.day, a.dimension).cmp(&(&b.day, b.dimension)));
    Ok(out)
}
