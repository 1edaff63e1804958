//! Port wrappers for tests: count calls per operation and inject failures, around any adapter
//! (the embedded ones or the AWS ones talking to moto).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchyard::ports::{
    Condition, Item, Key, OutgoingMessage, Page, PortError, PortResult, Query, Queue, QueueId, ReceivedMessage,
    SecretDocument, SecretOwner, Secrets, Store, WriteOp,
};

/// An operation of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Get,
    Put,
    Delete,
    Query,
    AddCounter,
    /// Metrics rollups (`Store::add_fields`).
    AddFields,
    Transact,
    Send,
    Receive,
    SecretGet,
    SecretPut,
    /// Queue acknowledgements (deletes), counted per message.
    Ack,
}

/// A failure to inject: the next `times` calls of `op` whose key (sort key, query prefix) starts
/// with `key_prefix` fail as unavailable — before reaching the adapter, or (`after`) once the
/// adapter has done the work, as when the reply of a successful call is lost.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: Op,
    pub key_prefix: String,
    pub times: u32,
    pub after: bool,
    /// Matching calls let through before the fault applies.
    pub skip: u32,
}

/// Shared counters and fault plan.
#[derive(Default)]
pub struct Instruments {
    counts: Mutex<HashMap<Op, u64>>,
    faults: Mutex<Vec<Fault>>,
    /// Every call fails with this probability besides the planned faults: half of them before
    /// the adapter is called, half after it did the work (the reply is lost).
    random_rate: Mutex<f64>,
}

impl Instruments {
    pub fn count(&self, op: Op) -> u64 {
        self.counts.lock().unwrap().get(&op).copied().unwrap_or(0)
    }
    pub fn reset_counts(&self) {
        self.counts.lock().unwrap().clear();
    }
    pub fn fail(&self, op: Op, key_prefix: &str, times: u32) {
        self.faults.lock().unwrap().push(Fault { op, key_prefix: key_prefix.into(), times, after: false, skip: 0 });
    }
    /// Let `skip` matching calls through, then fail the next `times`.
    pub fn fail_later(&self, op: Op, key_prefix: &str, skip: u32, times: u32) {
        self.faults.lock().unwrap().push(Fault { op, key_prefix: key_prefix.into(), times, after: false, skip });
    }
    /// Let the next `times` matching calls succeed, then report them failed (a lost reply).
    pub fn fail_after(&self, op: Op, key_prefix: &str, times: u32) {
        self.faults.lock().unwrap().push(Fault { op, key_prefix: key_prefix.into(), times, after: true, skip: 0 });
    }
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }
    /// Fail every call of every operation with probability `rate` (0 turns it off).
    pub fn fail_randomly(&self, rate: f64) {
        *self.random_rate.lock().unwrap() = rate;
    }
    fn add(&self, op: Op, n: u64) {
        *self.counts.lock().unwrap().entry(op).or_default() += n;
    }
    /// Count the call, and fail it if a fault matches (`Ok(true)`: fail it after the call).
    fn enter(&self, op: Op, key: &str) -> PortResult<bool> {
        self.add(op, 1);
        let mut faults = self.faults.lock().unwrap();
        if let Some(f) = faults.iter_mut().find(|f| f.op == op && f.times > 0 && key.starts_with(&f.key_prefix)) {
            if f.skip > 0 {
                f.skip -= 1;
                return Ok(false);
            }
            f.times -= 1;
            if f.after {
                return Ok(true);
            }
            return Err(PortError::Unavailable(format!("injected failure of {op:?} on {key}")));
        }
        drop(faults);
        let rate = *self.random_rate.lock().unwrap();
        if rate > 0.0 && rand::random::<f64>() < rate {
            if rand::random::<bool>() {
                return Ok(true);
            }
            return Err(PortError::Unavailable(format!("injected random failure of {op:?} on {key}")));
        }
        Ok(false)
    }
    /// Run `call` under the random failures only (operations counted elsewhere).
    async fn random<T>(&self, op: Op, call: impl std::future::Future<Output = PortResult<T>>) -> PortResult<T> {
        let rate = *self.random_rate.lock().unwrap();
        if rate > 0.0 && rand::random::<f64>() < rate {
            if rand::random::<bool>() {
                call.await?;
                return Err(PortError::Unavailable(format!("injected random lost reply of {op:?}")));
            }
            return Err(PortError::Unavailable(format!("injected random failure of {op:?}")));
        }
        call.await
    }

    /// Run `call` under the fault plan for (`op`, `key`).
    async fn around<T>(
        &self,
        op: Op,
        key: &str,
        call: impl std::future::Future<Output = PortResult<T>>,
    ) -> PortResult<T> {
        let lose_reply = self.enter(op, key)?;
        let result = call.await;
        if lose_reply && result.is_ok() {
            return Err(PortError::Unavailable(format!("injected lost reply of {op:?} on {key}")));
        }
        result
    }
}

pub struct InstrumentedStore(pub Arc<dyn Store>, pub Arc<Instruments>);
pub struct InstrumentedQueue(pub Arc<dyn Queue>, pub Arc<Instruments>);
pub struct InstrumentedSecrets(pub Arc<dyn Secrets>, pub Arc<Instruments>);

#[async_trait]
impl Store for InstrumentedStore {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        self.1.around(Op::Get, &key.sk, self.0.get(key)).await
    }
    async fn put(&self, item: Item, condition: Condition) -> PortResult<()> {
        let sk = item.key.sk.clone();
        self.1.around(Op::Put, &sk, self.0.put(item, condition)).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> PortResult<()> {
        self.1.around(Op::Delete, &key.sk, self.0.delete(key, condition)).await
    }
    async fn query(&self, query: &Query) -> PortResult<Page> {
        self.1.around(Op::Query, &query.sk_prefix, self.0.query(query)).await
    }
    async fn add_counter(
        &self,
        key: &Key,
        delta: i64,
        ceiling: Option<i64>,
        expires_at: Option<i64>,
    ) -> PortResult<Option<i64>> {
        self.1.around(Op::AddCounter, &key.sk, self.0.add_counter(key, delta, ceiling, expires_at)).await
    }
    async fn add_fields(&self, key: &Key, deltas: &[(String, i64)], expires_at: Option<i64>) -> PortResult<()> {
        self.1.around(Op::AddFields, &key.sk, self.0.add_fields(key, deltas, expires_at)).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        let first = ops.first().map(|o| o.key().sk.clone()).unwrap_or_default();
        self.1.around(Op::Transact, &first, self.0.transact(ops)).await
    }
}

#[async_trait]
impl Queue for InstrumentedQueue {
    async fn send(&self, queue: QueueId, messages: &[OutgoingMessage]) -> PortResult<()> {
        self.1.around(Op::Send, queue.name(), self.0.send(queue, messages)).await
    }
    async fn receive(
        &self,
        queue: QueueId,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        self.1.around(Op::Receive, queue.name(), self.0.receive(queue, max, visibility, wait)).await
    }
    async fn delete(&self, queue: QueueId, receipt_handle: &str) -> PortResult<()> {
        self.1.add(Op::Ack, 1);
        self.1.random(Op::Ack, self.0.delete(queue, receipt_handle)).await
    }
    async fn delete_batch(&self, queue: QueueId, receipt_handles: &[String]) -> PortResult<()> {
        self.1.add(Op::Ack, receipt_handles.len() as u64);
        self.1.random(Op::Ack, self.0.delete_batch(queue, receipt_handles)).await
    }
    async fn change_visibility(&self, queue: QueueId, receipt_handle: &str, visibility: Duration) -> PortResult<()> {
        self.0.change_visibility(queue, receipt_handle, visibility).await
    }
    async fn depth(&self, queue: QueueId) -> PortResult<u64> {
        self.0.depth(queue).await
    }
}

#[async_trait]
impl Secrets for InstrumentedSecrets {
    async fn get(&self, owner: &SecretOwner) -> PortResult<Option<SecretDocument>> {
        self.1.around(Op::SecretGet, &owner.tenant, self.0.get(owner)).await
    }
    async fn put(&self, owner: &SecretOwner, document: &SecretDocument) -> PortResult<()> {
        self.1.around(Op::SecretPut, &owner.tenant, self.0.put(owner, document)).await
    }
    async fn delete(&self, owner: &SecretOwner) -> PortResult<()> {
        self.0.delete(owner).await
    }
}
