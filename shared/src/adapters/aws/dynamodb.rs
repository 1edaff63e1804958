use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update};

use super::{classify, error_code};
use crate::ports::{
    Clock, Condition, Item, Key, MAX_PAGE_SIZE, Page, PortError, PortResult, Query, Store, WriteOp, cursor,
};

/// Attribute names of the one table. `d` holds the JSON document, `n` a counter, `v` the version
/// and `ttl` the expiry (the attribute the table's TimeToLiveSpecification names).
const PK: &str = "pk";
const SK: &str = "sk";
const DATA: &str = "d";
const COUNTER: &str = "n";
const VERSION: &str = "v";
const TTL: &str = "ttl";
/// Prefix of the number attributes `add_fields` keeps (read back as the item's fields).
const FIELD: &str = "f.";

/// `Store` over one DynamoDB table.
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        DynamoStore { client, table: table.into(), clock }
    }
}

type Attrs = HashMap<String, AttributeValue>;

fn key_attrs(key: &Key) -> Attrs {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(key.pk.clone())),
        (SK.to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

fn item_attrs(item: &Item) -> PortResult<Attrs> {
    let mut attrs = key_attrs(&item.key);
    let data =
        serde_json::to_string(&item.data).map_err(|e| PortError::invalid(format!("unserializable item: {e}")))?;
    crate::ports::store_limits::check_size(&item.key, data.len())?;
    attrs.insert(DATA.into(), AttributeValue::S(data));
    attrs.insert(VERSION.into(), AttributeValue::N(item.version.to_string()));
    if let Some(expires_at) = item.expires_at {
        attrs.insert(TTL.into(), AttributeValue::N(expires_at.to_string()));
    }
    Ok(attrs)
}

fn number(attrs: &Attrs, name: &str) -> Option<i64> {
    match attrs.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn string<'a>(attrs: &'a Attrs, name: &str) -> Option<&'a str> {
    match attrs.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn is_live(attrs: &Attrs, now: i64) -> bool {
    number(attrs, TTL).is_none_or(|t| t > now)
}

fn parse_item(attrs: &Attrs) -> PortResult<Item> {
    let (Some(pk), Some(sk)) = (string(attrs, PK), string(attrs, SK)) else {
        return Err(PortError::corrupt("item without pk/sk"));
    };
    let key = Key::new(pk, sk);
    let data = match (string(attrs, DATA), number(attrs, COUNTER)) {
        (Some(text), _) => serde_json::from_str(text)
            .map_err(|e| PortError::corrupt(format!("corrupt item {}/{}: {e}", key.pk, key.sk)))?,
        (None, Some(n)) => serde_json::Value::from(n),
        (None, None) => {
            let fields: serde_json::Map<String, serde_json::Value> = attrs
                .iter()
                .filter_map(|(name, value)| match (name.strip_prefix(FIELD), value) {
                    (Some(field), AttributeValue::N(n)) => n.parse::<i64>().ok().map(|n| (field.to_string(), n.into())),
                    _ => None,
                })
                .collect();
            if fields.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(fields) }
        }
    };
    Ok(Item { key, data, version: number(attrs, VERSION).unwrap_or(0) as u64, expires_at: number(attrs, TTL) })
}

/// A condition as a DynamoDB expression, with its names and values. Expired items count as
/// absent, exactly like the embedded store.
struct Expr {
    text: String,
    names: HashMap<String, String>,
    values: Attrs,
}

fn condition_expr(condition: Condition, now: i64) -> Option<Expr> {
    let live = "(attribute_not_exists(#ttl) OR #ttl > :now)";
    let (text, with_version) = match condition {
        Condition::None => return None,
        Condition::IfAbsent => ("attribute_not_exists(#pk) OR #ttl <= :now".to_string(), None),
        Condition::IfExists => (format!("attribute_exists(#pk) AND {live}"), None),
        Condition::IfVersion(v) => (format!("#v = :v AND {live}"), Some(v)),
    };
    let mut names = HashMap::from([("#ttl".to_string(), TTL.to_string())]);
    let mut values = HashMap::from([(":now".to_string(), AttributeValue::N(now.to_string()))]);
    if text.contains("#pk") {
        names.insert("#pk".into(), PK.into());
    }
    if let Some(v) = with_version {
        names.insert("#v".into(), VERSION.into());
        values.insert(":v".into(), AttributeValue::N(v.to_string()));
    }
    Some(Expr { text, names, values })
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    error_code(e) == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        match out.item {
            Some(attrs) if is_live(&attrs, self.clock.now_secs()) => parse_item(&attrs).map(Some),
            _ => Ok(None),
        }
    }

    async fn put(&self, item: Item, condition: Condition) -> PortResult<()> {
        let mut request = self.client.put_item().table_name(&self.table).set_item(Some(item_attrs(&item)?));
        if let Some(expr) = condition_expr(condition, self.clock.now_secs()) {
            request = request
                .condition_expression(expr.text)
                .set_expression_attribute_names(Some(expr.names))
                .set_expression_attribute_values(Some(expr.values));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(PortError::ConditionFailed),
            Err(e) => Err(classify("PutItem", e)),
        }
    }

    async fn delete(&self, key: &Key, condition: Condition) -> PortResult<()> {
        let mut request = self.client.delete_item().table_name(&self.table).set_key(Some(key_attrs(key)));
        if let Some(expr) = condition_expr(condition, self.clock.now_secs()) {
            request = request
                .condition_expression(expr.text)
                .set_expression_attribute_names(Some(expr.names))
                .set_expression_attribute_values(Some(expr.values));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(PortError::ConditionFailed),
            Err(e) => Err(classify("DeleteItem", e)),
        }
    }

    async fn query(&self, query: &Query) -> PortResult<Page> {
        let limit = query.limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let now = self.clock.now_secs();
        let mut start = match &query.cursor {
            Some(c) => Some(key_attrs(&Key::new(query.pk.clone(), cursor::decode(c, &query.sk_prefix)?))),
            None => None,
        };
        let mut items = Vec::with_capacity(limit.min(64));
        // DynamoDB applies Limit before the expiry filter, so keep reading until the page is
        // full or the partition range is exhausted.
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .filter_expression("attribute_not_exists(#ttl) OR #ttl > :now")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":pk", AttributeValue::S(query.pk.clone()))
                .expression_attribute_values(":prefix", AttributeValue::S(query.sk_prefix.clone()))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .scan_index_forward(!query.descending)
                .limit((limit - items.len()) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            for attrs in out.items.unwrap_or_default() {
                items.push(parse_item(&attrs)?);
            }
            match out.last_evaluated_key {
                Some(last) if items.len() < limit => start = Some(last),
                Some(_) => {
                    let next = items.last().map(|i| cursor::encode(&i.key.sk));
                    return Ok(Page { items, next });
                }
                None => return Ok(Page { items, next: None }),
            }
        }
    }

    async fn add_counter(
        &self,
        key: &Key,
        delta: i64,
        ceiling: Option<i64>,
        expires_at: Option<i64>,
    ) -> PortResult<Option<i64>> {
        // A few rounds at most: each retry follows another writer resetting an expired window.
        for _ in 0..5 {
            let now = self.clock.now_secs();
            let mut condition = "(attribute_not_exists(#ttl) OR #ttl > :now)".to_string();
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(key)))
                .expression_attribute_names("#n", COUNTER)
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew);
            let mut update = "SET #n = if_not_exists(#n, :zero) + :delta, #v = if_not_exists(#v, :one)".to_string();
            if let Some(exp) = expires_at {
                update.push_str(", #ttl = if_not_exists(#ttl, :exp)");
                request = request.expression_attribute_values(":exp", AttributeValue::N(exp.to_string()));
            }
            if let Some(c) = ceiling {
                if delta > c {
                    return Ok(None);
                }
                condition.push_str(" AND (attribute_not_exists(#n) OR #n <= :max)");
                request = request.expression_attribute_values(":max", AttributeValue::N((c - delta).to_string()));
            }
            match request.update_expression(update).condition_expression(condition).send().await {
                Ok(out) => return Ok(out.attributes.as_ref().and_then(|a| number(a, COUNTER))),
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(classify("UpdateItem", e)),
            }
            // Either the ceiling refused the add, or the stored window has expired and the
            // counter must start again from zero.
            let current = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| classify("GetItem", e))?;
            match current.item {
                Some(attrs) if is_live(&attrs, now) => return Ok(None),
                stale => {
                    let mut fresh = key_attrs(key);
                    fresh.insert(COUNTER.into(), AttributeValue::N(delta.to_string()));
                    fresh.insert(VERSION.into(), AttributeValue::N("1".into()));
                    if let Some(exp) = expires_at {
                        fresh.insert(TTL.into(), AttributeValue::N(exp.to_string()));
                    }
                    let mut reset = self.client.put_item().table_name(&self.table).set_item(Some(fresh));
                    reset = match stale.as_ref().and_then(|a| number(a, TTL)) {
                        Some(old_ttl) => reset
                            .condition_expression("#ttl = :old")
                            .expression_attribute_names("#ttl", TTL)
                            .expression_attribute_values(":old", AttributeValue::N(old_ttl.to_string())),
                        None => reset
                            .condition_expression("attribute_not_exists(#pk)")
                            .expression_attribute_names("#pk", PK),
                    };
                    match reset.send().await {
                        Ok(_) => return Ok(Some(delta)),
                        Err(e) if is_condition_failure(&e) => continue,
                        Err(e) => return Err(classify("PutItem", e)),
                    }
                }
            }
        }
        Err(PortError::Unavailable("counter contended, try again".into()))
    }

    async fn add_fields(&self, key: &Key, deltas: &[(String, i64)], expires_at: Option<i64>) -> PortResult<()> {
        crate::ports::store_limits::check_field_deltas(deltas)?;
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        let mut adds = Vec::with_capacity(deltas.len());
        for (i, (name, delta)) in deltas.iter().enumerate() {
            adds.push(format!("#f{i} :d{i}"));
            request = request
                .expression_attribute_names(format!("#f{i}"), format!("{FIELD}{name}"))
                .expression_attribute_values(format!(":d{i}"), AttributeValue::N(delta.to_string()));
        }
        let mut set = "#v = if_not_exists(#v, :one)".to_string();
        if let Some(exp) = expires_at {
            set.push_str(", #ttl = if_not_exists(#ttl, :exp)");
            request = request
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":exp", AttributeValue::N(exp.to_string()));
        }
        request
            .update_expression(format!("ADD {} SET {set}", adds.join(", ")))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", e))?;
        Ok(())
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        crate::ports::store_limits::check_transaction(&ops)?;
        let now = self.clock.now_secs();
        let build_error = |e: aws_sdk_dynamodb::error::BuildError| PortError::invalid(format!("transaction: {e}"));
        let mut items = Vec::with_capacity(ops.len());
        for op in &ops {
            let entry = match op {
                WriteOp::Put { item, condition } => {
                    let mut put = Put::builder().table_name(&self.table).set_item(Some(item_attrs(item)?));
                    if let Some(expr) = condition_expr(*condition, now) {
                        put = put
                            .condition_expression(expr.text)
                            .set_expression_attribute_names(Some(expr.names))
                            .set_expression_attribute_values(Some(expr.values));
                    }
                    TransactWriteItem::builder().put(put.build().map_err(build_error)?).build()
                }
                WriteOp::Delete { key, condition } => {
                    let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key_attrs(key)));
                    if let Some(expr) = condition_expr(*condition, now) {
                        delete = delete
                            .condition_expression(expr.text)
                            .set_expression_attribute_names(Some(expr.names))
                            .set_expression_attribute_values(Some(expr.values));
                    }
                    TransactWriteItem::builder().delete(delete.build().map_err(build_error)?).build()
                }
                WriteOp::Check { key, condition } => {
                    let expr = condition_expr(*condition, now)
                        .ok_or_else(|| PortError::invalid("a transaction check needs a condition"))?;
                    let check = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attrs(key)))
                        .condition_expression(expr.text)
                        .set_expression_attribute_names(Some(expr.names))
                        .set_expression_attribute_values(Some(expr.values));
                    TransactWriteItem::builder().condition_check(check.build().map_err(build_error)?).build()
                }
                WriteOp::Add { key, delta, ceiling } => {
                    let mut update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attrs(key)))
                        .update_expression("SET #n = if_not_exists(#n, :zero) + :delta, #v = if_not_exists(#v, :one)")
                        .expression_attribute_names("#n", COUNTER)
                        .expression_attribute_names("#v", VERSION)
                        .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
                        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                        .expression_attribute_values(":one", AttributeValue::N("1".into()));
                    if let Some(c) = ceiling {
                        // `#n + delta <= c`, written as `#n <= c - delta` (no arithmetic in conditions).
                        let max = c.saturating_sub(*delta);
                        let fresh = if *delta <= *c { "attribute_not_exists(#n) OR " } else { "" };
                        update = update
                            .condition_expression(format!("{fresh}#n <= :max"))
                            .expression_attribute_values(":max", AttributeValue::N(max.to_string()));
                    }
                    TransactWriteItem::builder().update(update.build().map_err(build_error)?).build()
                }
            };
            items.push(entry);
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                    cancelled,
                )) = e.as_service_error()
                {
                    let failed: Vec<usize> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                        .map(|(i, _)| i)
                        .collect();
                    if !failed.is_empty() {
                        return Err(PortError::TransactionCancelled { failed });
                    }
                    return Err(PortError::Unavailable("transaction conflicted with another, try again".into()));
                }
                Err(classify("TransactWriteItems", e))
            }
        }
    }
}
