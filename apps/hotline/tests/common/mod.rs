//! Support for the hotline app's tests: the real broker (`HUB_TEST_KAFKA_EXACT_BOOTSTRAP`, started by
//! `ops/test.sh` or `ops/broker.sh start test`), a fresh SQLite file or PostgreSQL database
//! (`HUB_TEST_POSTGRES_URL`) per run, fresh topics, contract records produced as the hub
//! produces them (sealed, Avro, Confluent-framed, envelope in headers), condition waits with a
//! deadline, and a canonical dump of the app's tables.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use app_kit::db::Db;
use app_kit::on_db;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use hotline_app::config::{HotlineConfig, TopicsSection};
use hotline_app::kinds::{Contracts, Kind};
use hub_bus::admin::{TopicAdmin, TopicSpec};
use hub_bus::{now_shanghai, BusSection, Envelope, Producer};
use hub_config::Loaded;
use hub_security::field::FieldCipher;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

/// The handling unit the test app serves, and one it does not.
pub const UNIT: &str = "11310000002420347T";
pub const OTHER_UNIT: &str = "11310000OTHERUNIT0";

/// Tokens of the test configuration.
pub const VIEWER: &str = "test-viewer-token";
pub const HANDLER: &str = "test-handler-token";
pub const TRAINEE: &str = "test-trainee-token";

/// Made-up personal values (not the golden fixtures' values, which the PII scan looks for).
pub const CALLER_NAME: &str = "测试甲";
pub const CALLER_PHONE: &str = "13900001111";
pub const ADDRESS: &str = "浦东新区测试路一号";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The exact test broker (SQLite storage): these tests kill the app and restart its consumer
/// at the offsets stored in its database, often inside a batch the hub produced as one, which
/// the fast memory-storage broker does not serve (docs/broker.md).
pub fn kafka_bootstrap() -> String {
    std::env::var("HUB_TEST_KAFKA_EXACT_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "HUB_TEST_KAFKA_EXACT_BOOTSTRAP is not set. Run the tests with ops/test.sh, or start \
             the broker with `ops/broker.sh start exact` and export \
             HUB_TEST_KAFKA_EXACT_BOOTSTRAP=127.0.0.1:19093"
        )
    })
}

pub fn bus() -> BusSection {
    BusSection {
        bootstrap_servers: kafka_bootstrap(),
        client_id: "hotline-tests".into(),
        compression: hub_config::sections::Compression::Lz4,
        delivery_timeout_ms: 30_000,
        linger_ms: 0,
        session_timeout_ms: 6_000,
        replication_factor: 1,
        librdkafka: BTreeMap::new(),
    }
}

pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}.{}", &id[..12])
}

/// Fresh topics for every role; inbound ones have several partitions.
pub async fn fresh_topics() -> TopicsSection {
    let base = unique("test.hotline");
    let t = |k: Kind| format!("{base}.{}", k.as_str());
    let topics = TopicsSection {
        dispatched: t(Kind::Dispatched),
        urged: t(Kind::Urged),
        visited: t(Kind::Visited),
        closed: t(Kind::Closed),
        signed: t(Kind::Signed),
        returned: t(Kind::Returned),
        extension_requested: t(Kind::ExtensionRequested),
        replied: t(Kind::Replied),
    };
    let admin = TopicAdmin::new(&bus(), Duration::from_secs(15)).expect("admin client");
    let specs: Vec<TopicSpec> = Kind::ALL
        .iter()
        .map(|k| TopicSpec {
            name: topics.of(*k).to_string(),
            partitions: if k.is_inbound() { 3 } else { 1 },
            config: BTreeMap::new(),
        })
        .collect();
    admin.ensure(&specs).await.expect("test topics created");
    topics
}

/// Which database a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BOTH: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

fn pg_admin_url() -> String {
    std::env::var("HUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database for one run: a SQLite file in a temporary folder, or a fresh PostgreSQL database
/// (dropped by [`TestDb::drop_db`]).
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", path.join("var/hotline.db").display()),
                pg_name: None,
                _dir: dir,
                dir: path,
            },
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("hotline_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL is needed at {admin} (set HUB_TEST_POSTGRES_URL): {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Self {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    _dir: dir,
                    dir: path,
                }
            }
        }
    }

    pub async fn drop_db(self) {
        if let Some(name) = &self.pg_name {
            let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// The app's database, connected (and migrated) as the app does.
    pub async fn connect(&self) -> Db {
        let section = app_kit::config::DatabaseSection {
            url: self.url.clone(),
            max_connections: 2,
            schema: None,
        };
        Db::connect(
            &section,
            &self.dir,
            hotline_app::NAME,
            hotline_app::MIGRATIONS,
        )
        .await
        .expect("test database")
    }
}

/// A test configuration file in `dir`; returns its path.
pub fn write_config(dir: &Path, db_url: &str, topics: &TopicsSection, group: &str) -> PathBuf {
    write_config_for(dir, db_url, topics, group, UNIT, "127.0.0.1:0")
}

/// Like [`write_config`], serving the handling unit `unit` with the API on `listen`.
pub fn write_config_for(
    dir: &Path,
    db_url: &str,
    topics: &TopicsSection,
    group: &str,
    unit: &str,
    listen: &str,
) -> PathBuf {
    let repo = repo();
    let topic_lines: String = Kind::ALL
        .iter()
        .map(|k| format!("{} = \"{}\"\n", k.as_str(), topics.of(*k)))
        .collect();
    let text = format!(
        r#"
[app]
shutdown_grace_ms = 15000

[http]
listen = "{listen}"

[[http.tokens]]
name = "viewer"
sm3 = "{viewer}"
role = "viewer"

[[http.tokens]]
name = "handler"
sm3 = "{handler}"
role = "handler"
personal_data = true

[[http.tokens]]
name = "trainee"
sm3 = "{trainee}"
role = "handler"
personal_data = false

[bus]
bootstrap_servers = "{bootstrap}"
client_id = "hotline-test"
session_timeout_ms = 6000

[database]
url = "{db_url}"
max_connections = 4

[consumer]
group_id = "{group}"

[topics]
{topic_lines}
[hotline]
handling_units = ["{unit}"]
return_window_hours = 24
partner = "test-bureau"

[contracts]
dir = "{contracts}"

[security]
key_ring = "{key_ring}"

[log]
format = "json"
level = "info,app_kit=debug"
"#,
        viewer = app_kit::auth::token_digest(VIEWER),
        handler = app_kit::auth::token_digest(HANDLER),
        trainee = app_kit::auth::token_digest(TRAINEE),
        bootstrap = kafka_bootstrap(),
        contracts = repo.join("contracts/schemas").display(),
        key_ring = repo.join("ops/dev-keyring.toml").display(),
    );
    let path = dir.join(format!("{}.toml", unique("hotline")));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn load(path: &Path) -> Loaded<HotlineConfig> {
    hub_config::load_with_env(path, hotline_app::config::ENV_PREFIX, &[])
        .unwrap_or_else(|e| panic!("test configuration: {e}"))
}

pub fn contracts() -> Contracts {
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).expect("contracts");
    Contracts::new(catalog).unwrap()
}

pub fn cipher() -> FieldCipher {
    let ring = hub_security::field::KeyRing::from_file(&repo().join("ops/dev-keyring.toml"))
        .expect("dev key ring");
    FieldCipher::new(ring)
}

pub fn rfc(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A dispatch record of `ticket_no` for `unit`, dispatched at `at`, due to sign within
/// `sign_in` and handle within `handle_in`.
pub fn dispatch(
    ticket_no: &str,
    unit: &str,
    at: DateTime<FixedOffset>,
    sign_in: chrono::Duration,
    handle_in: chrono::Duration,
) -> Value {
    json!({
        "ticket_no": ticket_no,
        "channel": "HOTLINE_12345",
        "title": "小区门口积水",
        "appeal_content": "市民反映小区门口雨后积水，影响出行。",
        "category_code": "0301",
        "category_name": "排水防汛",
        "urgency": "NORMAL",
        "district_code": "310115",
        "address": ADDRESS,
        "caller_name": CALLER_NAME,
        "caller_phone": CALLER_PHONE,
        "handling_unit_code": unit,
        "handling_unit_name": "上海市水务局",
        "sign_deadline": rfc(at + sign_in),
        "handle_deadline": rfc(at + handle_in),
        "dispatched_at": rfc(at),
        "attachments": null,
        "occurred_at": rfc(at),
    })
}

pub fn urge(ticket_no: &str, count: i32, at: DateTime<FixedOffset>) -> Value {
    json!({
        "ticket_no": ticket_no,
        "urge_no": null,
        "urge_kind": "REMINDER",
        "urge_count": count,
        "opinion": "请尽快办理。",
        "urged_by_org_name": "上海市12345市民服务热线管理办公室",
        "urged_by_org_code": "SH12345ZX",
        "handling_unit_code": UNIT,
        "handling_unit_name": "上海市水务局",
        "respond_deadline": null,
        "urged_at": rfc(at),
        "occurred_at": rfc(at),
    })
}

pub fn visit(ticket_no: &str, satisfaction: &str, at: DateTime<FixedOffset>) -> Value {
    json!({
        "ticket_no": ticket_no,
        "visit_method": "PHONE",
        "satisfaction": satisfaction,
        "resolution": "RESOLVED",
        "remark": null,
        "handling_unit_code": UNIT,
        "handling_unit_name": "上海市水务局",
        "visited_at": rfc(at),
        "occurred_at": rfc(at),
    })
}

pub fn close(ticket_no: &str, at: DateTime<FixedOffset>, with_unit: bool) -> Value {
    json!({
        "ticket_no": ticket_no,
        "close_kind": "COMPLETED",
        "merged_into_ticket_no": null,
        "remark": null,
        "handling_unit_code": if with_unit { Value::from(UNIT) } else { Value::Null },
        "handling_unit_name": if with_unit { Value::from("上海市水务局") } else { Value::Null },
        "closed_at": rfc(at),
        "occurred_at": rfc(at),
    })
}

/// Produces contract records as the hub does.
pub struct Feed {
    pub producer: Producer,
    pub contracts: Contracts,
    pub cipher: FieldCipher,
    pub topics: TopicsSection,
}

impl Feed {
    pub fn new(topics: &TopicsSection) -> Self {
        Self {
            producer: Producer::new(&bus()).unwrap(),
            contracts: contracts(),
            cipher: cipher(),
            topics: topics.clone(),
        }
    }

    /// The framed payload and a fresh envelope for `record` of `kind`.
    pub fn message(&self, kind: Kind, record: &Value) -> (Envelope, Vec<u8>) {
        let contract = self.contracts.get(kind);
        let mut sealed = record.clone();
        hub_pipeline::pii::seal_record(&self.cipher, contract, &mut sealed).unwrap();
        let datum = contract
            .encode(&sealed)
            .unwrap_or_else(|e| panic!("test record breaks {}: {e:?}", kind.as_str()));
        let (event_type, version) = hub_pipeline::split_topic(kind.contract_topic());
        let occurred = record["occurred_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .unwrap_or_else(now_shanghai);
        let envelope = Envelope::new(
            event_type,
            version,
            "hotline12345",
            "hotline12345-city",
            record["ticket_no"].as_str().unwrap(),
            occurred,
        );
        (envelope, hub_contracts::frame(contract.schema_id(), &datum))
    }

    /// Sends an already built message (again, for duplicates).
    pub async fn send_message(&self, kind: Kind, envelope: &Envelope, payload: &[u8]) {
        self.producer
            .send(self.topics.of(kind), envelope, payload)
            .await
            .expect("test record produced");
    }

    pub async fn send(&self, kind: Kind, record: &Value) -> Envelope {
        let (envelope, payload) = self.message(kind, record);
        self.send_message(kind, &envelope, &payload).await;
        envelope
    }
}

/// Waits until `check` says yes, looking every 100 ms; fails naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {timeout:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// High watermark of every partition of `topics`.
pub fn end_offsets(topics: &[&str]) -> BTreeMap<(String, i32), i64> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", unique("watermarks"))
        .create()
        .unwrap();
    let mut out = BTreeMap::new();
    for t in topics {
        let meta = consumer
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .unwrap();
        for p in meta.topics()[0].partitions() {
            let (_, high) = consumer
                .fetch_watermarks(t, p.id(), Duration::from_secs(10))
                .unwrap();
            out.insert((t.to_string(), p.id()), high);
        }
    }
    out
}

/// The stored next offsets of the app's consumer.
pub async fn stored_offsets(db: &Db) -> BTreeMap<(String, i32), i64> {
    let sql = "SELECT topic, partition_no, next_offset FROM app_consumer_offsets WHERE consumer = 'hotline'";
    on_db!(db, p => {
        let rows = sqlx::query(sql).fetch_all(p).await.unwrap();
        rows.iter()
            .map(|r| ((r.get::<String, _>(0), r.get::<i32, _>(1)), r.get::<i64, _>(2)))
            .collect()
    })
}

/// Waits until the app has stored offsets at the end of every non-empty inbound partition.
pub async fn wait_caught_up(db: &Db, topics: &TopicsSection, timeout: Duration) {
    let names: Vec<&str> = Kind::INBOUND.iter().map(|k| topics.of(*k)).collect();
    let end: BTreeMap<_, _> = end_offsets(&names)
        .into_iter()
        .filter(|(_, high)| *high > 0)
        .collect();
    wait_for("the app to reach the end of its topics", timeout, || {
        let end = end.clone();
        async move {
            let stored = stored_offsets(db).await;
            end.iter().all(|(k, high)| stored.get(k) == Some(high))
        }
    })
    .await;
}

pub async fn count(db: &Db, sql: &str) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap())
}

/// Every row of the app's tables as text, in a fixed order, without the columns that hold the
/// wall clock of processing (`updated_at_ms`, `processed_at_ms`, `rejected_at_ms`,
/// `created_at_ms`, `sent_at_ms`). Two runs over the same messages must give the same dump.
pub async fn dump(db: &Db) -> String {
    let tables: [(&str, &str, &str); 5] = [
        (
            "hotline_tickets",
            "ticket_no, status, channel, title, appeal_content, category_code, category_name, \
             urgency, district_code, address_sealed, address_masked, caller_name_sealed, \
             caller_name_masked, caller_phone_sealed, caller_phone_masked, handling_unit_code, \
             handling_unit_name, sign_deadline, sign_deadline_ms, handle_deadline, \
             handle_deadline_ms, active_deadline_ms, requested_deadline, dispatched_at, \
             dispatched_at_ms, attachments, signed_at, returned_at, extension_requested_at, \
             replied_at, closed_at, closed_at_ms, close_kind, urge_count, last_urged_at, \
             last_urged_at_ms, satisfaction, visit_resolution, visited_at, visited_at_ms, \
             dispatch_message_id, correlation_id, dispatch_count, version",
            "ticket_no",
        ),
        (
            "hotline_ticket_events",
            "message_id, ticket_no, kind, direction, contract_topic, occurred_at, \
             occurred_at_ms, actor, correlation_id, causation_id, record, record_masked",
            "message_id",
        ),
        (
            "app_consumer_offsets",
            "consumer, topic, partition_no, next_offset",
            "consumer, topic, partition_no",
        ),
        (
            "app_processed_messages",
            "consumer, message_id, topic, partition_no, record_offset, outcome",
            "consumer, message_id",
        ),
        (
            "app_rejected_messages",
            "consumer, topic, partition_no, record_offset, message_id, code, reason",
            "consumer, topic, partition_no, record_offset",
        ),
    ];
    let mut out = String::new();
    for (table, columns, order) in tables {
        let cols: Vec<&str> = columns.split(',').map(str::trim).collect();
        let select: Vec<String> = cols.iter().map(|c| format!("CAST({c} AS TEXT)")).collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY {order}", select.join(", "));
        out.push_str(&format!("== {table}\n"));
        let rows: Vec<Vec<Option<String>>> = on_db!(db, p => {
            sqlx::query(&sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..cols.len()).map(|i| r.get::<Option<String>, _>(i)).collect())
                .collect()
        });
        for row in rows {
            let fields: Vec<String> = cols
                .iter()
                .zip(row)
                .map(|(c, v)| format!("{c}={}", v.unwrap_or_else(|| "NULL".into())))
                .collect();
            out.push_str(&fields.join(" | "));
            out.push('\n');
        }
    }
    out
}

/// An HTTP client of the app's API.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("API answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("API answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Reads `count` records of `topic` from the beginning (fresh group), or fails after
/// `timeout` saying how many came.
pub async fn read_topic(topic: &str, count: usize, timeout: Duration) -> Vec<hub_bus::Delivery> {
    let consumer = hub_bus::Consumer::new(&bus(), &unique("readback"), &[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while got.len() < count {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Ok(d)) => got.push(d),
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => panic!(
                "read {} of {count} records of {topic} in {timeout:?}",
                got.len()
            ),
        }
    }
    got
}

pub mod process;
pub mod scenario;
