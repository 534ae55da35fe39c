//! Support for the hub's end-to-end tests: where the real broker is, fresh topic and group
//! names so tests never share state, and small helpers to produce and read back records.
//!
//! The broker is the one `ops/broker.sh` starts; tests find it through
//! `HUB_TEST_KAFKA_BOOTSTRAP` (`ops/test.sh` sets it). A test that needs it and does not find it
//! fails with instructions rather than skipping: a skipped test proves nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use hub_bus::admin::{TopicAdmin, TopicSpec};
use hub_bus::{BusSection, Consumer, Delivery};

/// Bootstrap servers of the test broker.
pub fn kafka_bootstrap() -> String {
    std::env::var("HUB_TEST_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "HUB_TEST_KAFKA_BOOTSTRAP is not set. Run the tests with ops/test.sh, which starts \
             the local broker, or start one with `ops/broker.sh start test` and export \
             HUB_TEST_KAFKA_BOOTSTRAP=127.0.0.1:19092"
        )
    })
}

/// The exact test broker (SQLite storage, `HUB_TEST_KAFKA_EXACT_BOOTSTRAP`), for tests of reads
/// the memory-storage broker gets wrong (docs/broker.md).
pub fn kafka_exact_bootstrap() -> String {
    std::env::var("HUB_TEST_KAFKA_EXACT_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "HUB_TEST_KAFKA_EXACT_BOOTSTRAP is not set. Run the tests with ops/test.sh, or start \
             the broker with `ops/broker.sh start exact` and export \
             HUB_TEST_KAFKA_EXACT_BOOTSTRAP=127.0.0.1:19093"
        )
    })
}

/// A `[bus]` section for the test broker, with a short session timeout so that a killed
/// consumer's partitions move on quickly.
pub fn bus_section() -> BusSection {
    BusSection {
        bootstrap_servers: kafka_bootstrap(),
        client_id: "hub-tests".into(),
        compression: hub_config::sections::Compression::Lz4,
        delivery_timeout_ms: 30_000,
        linger_ms: 0,
        session_timeout_ms: 6_000,
        replication_factor: 1,
        librdkafka: BTreeMap::new(),
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}.{}", &id[..12])
}

/// Creates a fresh topic and returns its name.
pub async fn fresh_topic(prefix: &str, partitions: i32) -> String {
    fresh_topic_on(&kafka_bootstrap(), prefix, partitions).await
}

/// Creates a fresh topic on the broker at `bootstrap` and returns its name.
pub async fn fresh_topic_on(bootstrap: &str, prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    let section = BusSection {
        bootstrap_servers: bootstrap.to_string(),
        ..bus_section()
    };
    let admin = TopicAdmin::new(&section, Duration::from_secs(15)).expect("admin client");
    admin
        .ensure(&[TopicSpec {
            name: name.clone(),
            partitions,
            config: BTreeMap::new(),
        }])
        .await
        .expect("test topic created");
    name
}

/// Reads `count` records of `topic` from the beginning with a new group, or fails after
/// `timeout` with what it got.
pub async fn read_back(topic: &str, count: usize, timeout: Duration) -> Vec<Delivery> {
    let group = unique("readback");
    let consumer = Consumer::new(&bus_section(), &group, &[topic]).expect("consumer");
    let mut got = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + timeout;
    while got.len() < count {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Ok(d)) => got.push(d),
            Ok(Err(e)) => panic!("reading {topic} failed: {e}"),
            Err(_) => panic!(
                "read {} of {count} records from {topic} within {timeout:?}",
                got.len()
            ),
        }
    }
    got
}
