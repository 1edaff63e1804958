//! The `Store` contract, run against the embedded store and DynamoDB (moto).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard::adapters::aws::DynamoStore;
use switchyard::adapters::embedded::{Database, EmbeddedStore};
use switchyard::ports::{
    Clock, Condition, Item, Key, ManualClock, PortError, Query, Store, WriteOp, cursor, query_all,
};
use switchyard_tests::aws_resources;

fn item(pk: &str, sk: &str, n: i64) -> Item {
    Item::new(Key::new(pk, sk), json!({"n": n}))
}

async fn contract(store: Arc<dyn Store>, clock: ManualClock) {
    let key = Key::new("P#1", "A#1");
    // put-if-absent, get
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.put(item("P#1", "A#1", 1), Condition::IfAbsent).await.unwrap();
    assert_eq!(store.put(item("P#1", "A#1", 2), Condition::IfAbsent).await, Err(PortError::ConditionFailed));
    let got = store.get(&key).await.unwrap().expect("item");
    assert_eq!((got.data.clone(), got.version), (json!({"n": 1}), 1));
    // optimistic concurrency
    store.put(item("P#1", "A#1", 2).with_version(2), Condition::IfVersion(1)).await.unwrap();
    assert_eq!(
        store.put(item("P#1", "A#1", 3).with_version(2), Condition::IfVersion(1)).await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(store.get(&key).await.unwrap().unwrap().data, json!({"n": 2}));
    assert_eq!(store.put(item("P#1", "NOPE", 0), Condition::IfExists).await, Err(PortError::ConditionFailed));
    assert_eq!(store.put(item("P#1", "NOPE", 0), Condition::IfVersion(1)).await, Err(PortError::ConditionFailed));
    // conditional delete
    assert_eq!(store.delete(&key, Condition::IfVersion(1)).await, Err(PortError::ConditionFailed));
    store.delete(&key, Condition::IfVersion(2)).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    store.delete(&key, Condition::None).await.unwrap();
    assert_eq!(store.delete(&key, Condition::IfExists).await, Err(PortError::ConditionFailed));

    // prefix queries with pagination, both directions, isolated from other prefixes/partitions
    for i in 0..25 {
        store.put(item("P#q", &format!("X#{i:03}"), i), Condition::None).await.unwrap();
    }
    store.put(item("P#q", "Y#000", 99), Condition::None).await.unwrap();
    store.put(item("P#other", "X#000", 98), Condition::None).await.unwrap();
    let first = store.query(&Query::prefix("P#q", "X#").limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.items[0].key.sk, "X#000");
    let second = store.query(&Query::prefix("P#q", "X#").limit(10).after(first.next.clone())).await.unwrap();
    assert_eq!(second.items[0].key.sk, "X#010");
    let all = query_all(store.as_ref(), Query::prefix("P#q", "X#").limit(7), 1000).await.unwrap();
    let sks: Vec<_> = all.iter().map(|i| i.key.sk.clone()).collect();
    assert_eq!(sks, (0..25).map(|i| format!("X#{i:03}")).collect::<Vec<_>>());
    let desc = query_all(store.as_ref(), Query::prefix("P#q", "X#").limit(4).descending(), 1000).await.unwrap();
    assert_eq!(desc.first().unwrap().key.sk, "X#024");
    assert_eq!(desc.len(), 25);
    assert_eq!(desc.last().unwrap().key.sk, "X#000");
    // a forged cursor outside the prefix is refused, not followed
    let forged = Query::prefix("P#q", "X#").after(Some(cursor::encode("Y#000")));
    assert!(matches!(store.query(&forged).await, Err(PortError::Rejected(_))));
    assert!(matches!(
        store.query(&Query::prefix("P#q", "X#").after(Some("%%%".into()))).await,
        Err(PortError::Rejected(_))
    ));

    // expiry: invisible from its time on, and absent for put-if-absent
    let now = clock.now_secs();
    store.put(item("P#ttl", "T#1", 1).expiring_at(now + 10), Condition::None).await.unwrap();
    store.put(item("P#ttl", "T#2", 2), Condition::None).await.unwrap();
    assert!(store.get(&Key::new("P#ttl", "T#1")).await.unwrap().is_some());
    clock.advance(Duration::from_secs(11));
    assert_eq!(store.get(&Key::new("P#ttl", "T#1")).await.unwrap(), None);
    let live = store.query(&Query::prefix("P#ttl", "T#")).await.unwrap();
    assert_eq!(live.items.len(), 1);
    store.put(item("P#ttl", "T#1", 3), Condition::IfAbsent).await.unwrap();
    assert_eq!(store.put(item("P#ttl", "T#1", 4), Condition::IfExists).await, Ok(()));

    // counters with a ceiling, and windows that expire
    let counter = Key::new("P#c", "Q#events");
    let exp = clock.now_secs() + 60;
    assert_eq!(store.add_counter(&counter, 2, Some(3), Some(exp)).await.unwrap(), Some(2));
    assert_eq!(store.add_counter(&counter, 1, Some(3), Some(exp)).await.unwrap(), Some(3));
    assert_eq!(store.add_counter(&counter, 1, Some(3), Some(exp)).await.unwrap(), None);
    assert_eq!(store.add_counter(&counter, -1, None, None).await.unwrap(), Some(2));
    assert_eq!(store.get(&counter).await.unwrap().unwrap().data, json!(2));
    assert_eq!(store.add_counter(&Key::new("P#c", "big"), 5, Some(3), None).await.unwrap(), None);
    clock.advance(Duration::from_secs(61));
    assert_eq!(store.add_counter(&counter, 1, Some(3), Some(clock.now_secs() + 60)).await.unwrap(), Some(1));

    // N parallel adds against a ceiling of K admit exactly K (windowed quotas)
    let window = Key::new("P#c", "Q#parallel");
    let adds = (0..12).map(|_| store.add_counter(&window, 1, Some(5), Some(clock.now_secs() + 60)));
    let granted = futures::future::join_all(adds).await;
    let mut values: Vec<i64> = granted.iter().filter_map(|r| r.clone().ok().flatten()).collect();
    values.sort();
    assert_eq!(values, [1, 2, 3, 4, 5], "{granted:?}");

    // rollups: named number fields added in one write, read back as an object
    let rollup = Key::new("P#m", "M#2026-12-02T10#flow");
    let fields = |pairs: &[(&str, i64)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect::<Vec<_>>();
    store.add_fields(&rollup, &fields(&[("started", 1), ("d_le_25", 1)]), Some(clock.now_secs() + 60)).await.unwrap();
    store.add_fields(&rollup, &fields(&[("started", 1), ("step_failed:slack.post", 2)]), None).await.unwrap();
    let stored = store.get(&rollup).await.unwrap().unwrap();
    assert_eq!(stored.data, json!({"started": 2, "d_le_25": 1, "step_failed:slack.post": 2}));
    assert_eq!(stored.expires_at, Some(clock.now_secs() + 60), "the first add sets the expiry");
    let one = fields(&[("started", 1)]);
    let parallel = (0..8).map(|_| store.add_fields(&rollup, &one, None));
    assert!(futures::future::join_all(parallel).await.iter().all(Result::is_ok));
    assert_eq!(store.get(&rollup).await.unwrap().unwrap().data["started"], 10, "no lost update");
    assert!(matches!(store.add_fields(&rollup, &[], None).await, Err(PortError::Rejected(_))));
    let listed = store.query(&Query::prefix("P#m", "M#2026-12-02")).await.unwrap();
    assert_eq!(listed.items[0].data["d_le_25"], 1);

    // transactions: all or nothing, and which operation failed
    store.put(item("P#t", "A", 1), Condition::None).await.unwrap();
    let ops = vec![
        WriteOp::Put { item: item("P#t", "B", 1), condition: Condition::IfAbsent },
        WriteOp::Put { item: item("P#t", "A", 2), condition: Condition::IfAbsent },
    ];
    assert_eq!(store.transact(ops).await, Err(PortError::TransactionCancelled { failed: vec![1] }));
    assert_eq!(store.get(&Key::new("P#t", "B")).await.unwrap(), None, "nothing applied");
    let ops = vec![
        WriteOp::Put { item: item("P#t", "B", 1), condition: Condition::IfAbsent },
        WriteOp::Delete { key: Key::new("P#t", "A"), condition: Condition::IfVersion(1) },
        WriteOp::Check { key: Key::new("P#other", "X#000"), condition: Condition::IfExists },
    ];
    store.transact(ops).await.unwrap();
    assert!(store.get(&Key::new("P#t", "B")).await.unwrap().is_some());
    assert_eq!(store.get(&Key::new("P#t", "A")).await.unwrap(), None);
    let twice = vec![
        WriteOp::Put { item: item("P#t", "C", 1), condition: Condition::None },
        WriteOp::Delete { key: Key::new("P#t", "C"), condition: Condition::None },
    ];
    assert!(matches!(store.transact(twice).await, Err(PortError::Rejected(_))));
    let too_many = (0..101)
        .map(|i| WriteOp::Put { item: item("P#t", &format!("M#{i}"), i), condition: Condition::None })
        .collect();
    assert!(matches!(store.transact(too_many).await, Err(PortError::Rejected(_))));

    // gauge counters taken inside a transaction: the ceiling cancels it, nothing applied
    let gauge = Key::new("P#g", "Q#flows");
    let create = |sk: &str, delta: i64| {
        vec![
            WriteOp::Put { item: item("P#g", sk, 1), condition: Condition::IfAbsent },
            WriteOp::Add { key: gauge.clone(), delta, ceiling: Some(2) },
        ]
    };
    store.transact(create("F#1", 1)).await.unwrap();
    store.transact(create("F#2", 1)).await.unwrap();
    assert_eq!(store.transact(create("F#3", 1)).await, Err(PortError::TransactionCancelled { failed: vec![1] }));
    assert_eq!(store.get(&Key::new("P#g", "F#3")).await.unwrap(), None, "the refused write is not applied");
    assert_eq!(store.get(&gauge).await.unwrap().unwrap().data, json!(2));
    let remove = vec![
        WriteOp::Delete { key: Key::new("P#g", "F#1"), condition: Condition::IfExists },
        WriteOp::Add { key: gauge.clone(), delta: -1, ceiling: None },
    ];
    store.transact(remove).await.unwrap();
    store.transact(create("F#3", 1)).await.unwrap();
    assert_eq!(store.get(&gauge).await.unwrap().unwrap().data, json!(2));
    let over = vec![WriteOp::Add { key: Key::new("P#g", "Q#new"), delta: 3, ceiling: Some(2) }];
    assert_eq!(store.transact(over).await, Err(PortError::TransactionCancelled { failed: vec![0] }));
    // N parallel takes against a ceiling of K admit exactly K
    let takes = (0..12).map(|i| {
        let store = store.clone();
        async move {
            let ops = vec![
                WriteOp::Put { item: item("P#par", &format!("F#{i}"), 1), condition: Condition::IfAbsent },
                WriteOp::Add { key: Key::new("P#par", "Q#flows"), delta: 1, ceiling: Some(5) },
            ];
            // A DynamoDB transaction may also be cancelled by a concurrent one; retry those.
            for _ in 0..20 {
                match store.transact(ops.clone()).await {
                    Err(PortError::Unavailable(_)) => continue,
                    other => return other.is_ok(),
                }
            }
            false
        }
    });
    let admitted = futures::future::join_all(takes).await.into_iter().filter(|ok| *ok).count();
    assert_eq!(admitted, 5);
    assert_eq!(store.query(&Query::prefix("P#par", "F#")).await.unwrap().items.len(), 5);

    // DynamoDB's 400 KB item limit holds on both backends
    let big = Item::new(Key::new("P#big", "B"), json!({"blob": "x".repeat(410 * 1024)}));
    assert!(matches!(store.put(big, Condition::None).await, Err(PortError::Rejected(_))));
    let fits = Item::new(Key::new("P#big", "B"), json!({"blob": "x".repeat(390 * 1024)}));
    store.put(fits, Condition::None).await.unwrap();
}

fn clock() -> ManualClock {
    ManualClock::at(chrono::Utc::now().timestamp_millis())
}

#[tokio::test]
async fn store_contract_embedded() {
    let clock = clock();
    contract(Arc::new(EmbeddedStore::new(Database::in_memory(), Arc::new(clock.clone()))), clock).await;
}

#[tokio::test]
async fn store_contract_embedded_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dev.db");
    let clock = clock();
    let db = Database::open(path.to_str().unwrap()).unwrap();
    contract(Arc::new(EmbeddedStore::new(db, Arc::new(clock.clone()))), clock).await;
    assert!(path.exists());
}

#[tokio::test]
async fn store_contract_dynamodb() {
    let (sdk, settings) = aws_resources(5).await;
    let clock = clock();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), settings.table, Arc::new(clock.clone()));
    contract(Arc::new(store), clock).await;
}
