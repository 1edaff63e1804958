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
    Transact,
    Send,
    Receive,
    SecretGet,
    SecretPut,
}

/// A failure to inject: the next `times` calls of `op` whose key (sort key, query prefix) starts
/// with `key_prefix` fail as unavailable.
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: Op,
    pub key_prefix: String,
    pub times: u32,
}

/// Shared counters and fault plan.
#[derive(Default)]
pub struct Instruments {
    counts: Mutex<HashMap<Op, u64>>,
    faults: Mutex<Vec<Fault>>,
}

impl Instruments {
    pub fn count(&self, op: Op) -> u64 {
        self.counts.lock().unwrap().get(&op).copied().unwrap_or(0)
    }
    pub fn reset_counts(&self) {
        self.counts.lock().unwrap().clear();
    }
    pub fn fail(&self, op: Op, key_prefix: &str, times: u32) {
        self.faults.lock().unwrap().push(Fault { op, key_prefix: key_prefix.into(), times });
    }
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }
    /// Count the call, and fail it if a fault matches.
    fn enter(&self, op: Op, key: &str) -> PortResult<()> {
        *self.counts.lock().unwrap().entry(op).or_default() += 1;
        let mut faults = self.faults.lock().unwrap();
        if let Some(f) = faults.iter_mut().find(|f| f.op == op && f.times > 0 && key.starts_with(&f.key_prefix)) {
            f.times -= 1;
            return Err(PortError::Unavailable(format!("injected failure of {op:?} on {key}")));
        }
        Ok(())
    }
}

pub struct InstrumentedStore(pub Arc<dyn Store>, pub Arc<Instruments>);
pub struct InstrumentedQueue(pub Arc<dyn Queue>, pub Arc<Instruments>);
pub struct InstrumentedSecrets(pub Arc<dyn Secrets>, pub Arc<Instruments>);

#[async_trait]
impl Store for InstrumentedStore {
    async fn get(&self, key: &Key) -> PortResult<Option<Item>> {
        self.1.enter(Op::Get, &key.sk)?;
        self.0.get(key).await
    }
    async fn put(&self, item: Item, condition: Condition) -> PortResult<()> {
        self.1.enter(Op::Put, &item.key.sk)?;
        self.0.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> PortResult<()> {
        self.1.enter(Op::Delete, &key.sk)?;
        self.0.delete(key, condition).await
    }
    async fn query(&self, query: &Query) -> PortResult<Page> {
        self.1.enter(Op::Query, &query.sk_prefix)?;
        self.0.query(query).await
    }
    async fn add_counter(
        &self,
        key: &Key,
        delta: i64,
        ceiling: Option<i64>,
        expires_at: Option<i64>,
    ) -> PortResult<Option<i64>> {
        self.1.enter(Op::AddCounter, &key.sk)?;
        self.0.add_counter(key, delta, ceiling, expires_at).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> PortResult<()> {
        let first = ops.first().map(|o| o.key().sk.clone()).unwrap_or_default();
        self.1.enter(Op::Transact, &first)?;
        self.0.transact(ops).await
    }
}

#[async_trait]
impl Queue for InstrumentedQueue {
    async fn send(&self, queue: QueueId, messages: &[OutgoingMessage]) -> PortResult<()> {
        self.1.enter(Op::Send, queue.name())?;
        self.0.send(queue, messages).await
    }
    async fn receive(
        &self,
        queue: QueueId,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        self.1.enter(Op::Receive, queue.name())?;
        self.0.receive(queue, max, visibility, wait).await
    }
    async fn delete(&self, queue: QueueId, receipt_handle: &str) -> PortResult<()> {
        self.0.delete(queue, receipt_handle).await
    }
    async fn delete_batch(&self, queue: QueueId, receipt_handles: &[String]) -> PortResult<()> {
        self.0.delete_batch(queue, receipt_handles).await
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
        self.1.enter(Op::SecretGet, &owner.tenant)?;
        self.0.get(owner).await
    }
    async fn put(&self, owner: &SecretOwner, document: &SecretDocument) -> PortResult<()> {
        self.1.enter(Op::SecretPut, &owner.tenant)?;
        self.0.put(owner, document).await
    }
    async fn delete(&self, owner: &SecretOwner) -> PortResult<()> {
        self.0.delete(owner).await
    }
}
