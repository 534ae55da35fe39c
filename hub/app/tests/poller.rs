//! The poller against a stand-in for the 12345 platform's query API: pages, a crash between
//! producing a page and saving its cursor, and two replicas sharing one PostgreSQL.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::broker::{cpu_seconds, PrivateBroker};
use support::logged::{spawn, stop};
use support::partner::Platform;
use support::*;

const SECRET: &str = "poller-test-secret-0123456789";

fn prefix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("GDP{}", &id[..8].to_uppercase())
}

/// The real adapter manifest, polling every second from an hour back.
/// The pull job's name in this test's copy of the manifest: one of this test alone. The job's
/// name makes its replay reader's consumer group and its route, and the broker is shared: under
/// the real name, another test's hub in the same group could take this test's replay, find the
/// route its own, and replay it through its own mappings.
fn job(dir: &Path) -> String {
    let file = dir.join("pull-job-name");
    if let Ok(name) = std::fs::read_to_string(&file) {
        return name;
    }
    let name = format!(
        "new_tickets_t{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    std::fs::write(&file, &name).unwrap();
    name
}

fn adapters(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("adapters/hotline12345/adapter.toml")).unwrap();
    let text = text
        .replace(
            "name = \"new_tickets\"",
            &format!("name = \"{}\"", job(dir)),
        )
        .replace("every_ms = 60000", "every_ms = 1000")
        .replace(
            "jitter_ms = 5000",
            "jitter_ms = 0\ninitial_lookback_ms = 3600000",
        )
        .replace("settle_ms = 10000", "settle_ms = 0");
    let root = dir.join("adapters");
    std::fs::create_dir_all(root.join("hotline12345")).unwrap();
    std::fs::write(root.join("hotline12345/adapter.toml"), text).unwrap();
    root
}

fn config(dir: &Path, base_url: &str, state_url: &str) -> std::path::PathBuf {
    let adapters = adapters(dir);
    let path = dir.join(format!("hub-{}.toml", free_port()));
    std::fs::write(
        &path,
        format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics_open = true\nregistry_open = true\n[bus]\nbootstrap_servers = \"{}\"\n\
             [state]\nurl = \"{state_url}\"\n[contracts]\ndir = \"{}\"\n\
             [mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n[log]\nformat = \"json\"\n\
             [poller]\nlease_ttl_ms = 5000\n\
             [gateway]\nlisten = \"127.0.0.1:{}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [partners.hotline12345]\nbase_url = \"{base_url}\"\napp_id = \"water-bureau-hub\"\n\
             hmac_secret = \"{SECRET}\"\ndeliveries = []\npulls = [\"{job}\"]\n",
            free_port(),
            kafka(),
            repo().join("contracts/schemas").display(),
            repo().join("mappings").display(),
            adapters.display(),
            free_port(),
            repo().join("ops/dev-keyring.toml").display(),
            job = job(dir),
        ),
    )
    .unwrap();
    path
}

/// `n` dispatched tickets over the last 40 minutes, whole seconds (the platform's precision).
fn seed(platform: &Platform, prefix: &str, n: usize) {
    let now = chrono::Utc::now().timestamp() * 1000;
    seed_from(platform, prefix, n, now - 40 * 60_000, 15_000);
}

/// `n` dispatched tickets from `start_ms` on, `step_ms` apart.
fn seed_from(platform: &Platform, prefix: &str, n: usize, start_ms: i64, step_ms: i64) {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut items = platform.items.lock().unwrap();
    for i in 0..n {
        let at = start_ms / 1000 * 1000 + (i as i64) * step_ms;
        let local = chrono::DateTime::from_timestamp_millis(at + 8 * 3_600_000)
            .unwrap()
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let mut item = fixture.clone();
        item["gdbh"] = json!(format!("{prefix}{i:04}"));
        item["pdsj"] = json!(local);
        items.push((at, item));
    }
}

/// Every record on the dispatch topic about our tickets: ticket → message ids seen.
async fn on_kafka(prefix: &str, expected: usize, within: Duration) -> HashMap<String, Vec<String>> {
    on_kafka_at(&kafka(), prefix, expected, within).await
}

/// [`on_kafka`] on the broker at `bootstrap`.
async fn on_kafka_at(
    bootstrap: &str,
    prefix: &str,
    expected: usize,
    within: Duration,
) -> HashMap<String, Vec<String>> {
    let group = format!("poller-readback-{}", uuid::Uuid::new_v4().simple());
    let mut section = bus_section("poller-readback");
    section.bootstrap_servers = bootstrap.to_string();
    let consumer =
        hub_bus::Consumer::new(&section, &group, &["hotline.ticket.dispatched.v1"]).unwrap();
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let deadline = Instant::now() + within;
    loop {
        // Once everything expected is there, drain what is already on the topic (a late
        // duplicate would show here) and stop at the first quiet second.
        let wait = if seen.len() >= expected {
            Duration::from_secs(1)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, consumer.next()).await {
            Ok(Ok(d)) => {
                let Ok(e) = d.envelope else { continue };
                if e.object_id.starts_with(prefix) {
                    seen.entry(e.object_id)
                        .or_default()
                        .push(e.message_id.to_string());
                }
            }
            Ok(Err(e)) => panic!("reading back failed: {e}"),
            Err(_) if seen.len() >= expected => return seen,
            Err(_) => panic!(
                "only {} of {expected} tickets reached Kafka within {within:?}",
                seen.len()
            ),
        }
    }
}

#[tokio::test]
async fn a_pull_crashed_between_producing_a_page_and_saving_its_cursor_loses_and_duplicates_nothing(
) {
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let p = prefix();
    seed(&platform, &p, 120);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &base, "sqlite://state/hub.db");

    // The first run dies right after its first page is on Kafka, before the cursor is saved.
    let mut crashing = spawn(&cfg, &[("HUB_FAILPOINT", "poller.after_page_produced")]);
    let status = tokio::task::spawn_blocking(move || {
        let s = crashing.child.wait().unwrap();
        std::mem::forget(crashing);
        s
    })
    .await
    .unwrap();
    assert!(!status.success(), "the failpoint aborted the hub");

    let _hub = spawn(&cfg, &[]);
    let seen = on_kafka(&p, 120, Duration::from_secs(90)).await;
    assert_eq!(seen.len(), 120, "no ticket lost");
    for (ticket, ids) in &seen {
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "{ticket}: a repeated item keeps its message id: {ids:?}"
        );
    }
    let total: usize = seen.values().map(Vec::len).sum();
    assert_eq!(
        total, 120,
        "the repeated page was recognised by its receipts: nothing produced twice"
    );
    assert_eq!(*platform.bad_signatures.lock().unwrap(), 0);
}

#[tokio::test]
async fn two_replicas_never_run_the_same_pull_at_once() {
    use sqlx::Connection;
    let admin_url = std::env::var("HUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("hub_poller_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let state_url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("HUB_TEST_POSTGRES_URL has no database part"),
    };

    let platform = Platform::new(SECRET);
    *platform.query_delay.lock().unwrap() = Duration::from_millis(300);
    let base = platform.serve().await;
    let p = prefix();
    seed(&platform, &p, 120);
    let dir = tempfile::tempdir().unwrap();
    let a = spawn(&config(dir.path(), &base, &state_url), &[]);
    let _b = spawn(&config(dir.path(), &base, &state_url), &[]);
    let seen = on_kafka(&p, 120, Duration::from_secs(120)).await;
    assert_eq!(
        seen.values().map(Vec::len).sum::<usize>(),
        120,
        "each ticket once"
    );
    assert_eq!(
        *platform.max_queries_in_flight.lock().unwrap(),
        1,
        "never two runs at once"
    );

    // The replica holding the lease dies; the other goes on with new tickets.
    drop(a);
    let q = prefix();
    seed(&platform, &q, 3);
    let later: Vec<(i64, Value)> = {
        let mut items = platform.items.lock().unwrap();
        let now = chrono::Utc::now().timestamp() * 1000;
        for (t, v) in items.iter_mut() {
            if v["gdbh"].as_str().unwrap_or_default().starts_with(&q) {
                // Dispatched just after now: beyond every window already pulled.
                *t = now + 2_000;
            }
        }
        items.clone()
    };
    assert!(!later.is_empty());
    let seen = on_kafka(&q, 3, Duration::from_secs(60)).await;
    assert_eq!(seen.len(), 3, "the surviving replica took the pull over");
    drop(conn);
}

#[tokio::test]
async fn while_kafka_is_away_a_pull_waits_without_spinning_and_then_loses_nothing() {
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = PrivateBroker::start(dir.path());
    let p = prefix();
    seed(&platform, &p, 20);
    let cfg = config(dir.path(), &base, "sqlite://state/hub.db");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&kafka(), &broker.bootstrap);
    std::fs::write(&cfg, text).unwrap();
    // Records the broker does not acknowledge within 5 s fail, so the outage below makes the
    // pull's produce fail (not merely wait) while the broker is away.
    let hub = spawn(&cfg, &[("HUB_BUS__DELIVERY_TIMEOUT_MS", "5000")]);
    // Ready: the private broker answers and the hub's topics exist.
    let admin = std::fs::read_to_string(&cfg)
        .unwrap()
        .split("listen = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(str::to_string)
        .unwrap();
    wait_for_status(
        &format!("http://{admin}/readyz"),
        200,
        Duration::from_secs(60),
    )
    .await;
    let first = on_kafka_at(&broker.bootstrap, &p, 20, Duration::from_secs(90)).await;
    assert_eq!(first.len(), 20);

    // Kafka goes away for 20 s; meanwhile the platform dispatches 20 more tickets, which the
    // job (every second) finds and cannot produce.
    broker.signal(nix::sys::signal::Signal::SIGSTOP);
    let now = chrono::Utc::now().timestamp() * 1000;
    seed_from(&platform, &format!("{p}L"), 20, now + 1_000, 400);
    let queries_before = *platform.queries.lock().unwrap();
    let cpu_before = cpu_seconds(hub.child.id());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let cpu_used = cpu_seconds(hub.child.id()) - cpu_before;
    let queries = *platform.queries.lock().unwrap() - queries_before;
    assert!(
        cpu_used < 5.0,
        "the hub spent {cpu_used:.1} s of CPU in 20 s while the broker was away: a busy loop"
    );
    assert!(
        queries <= 40,
        "{queries} queries in 20 s with a 1 s schedule: the job must not hammer the partner"
    );
    broker.signal(nix::sys::signal::Signal::SIGCONT);

    // Back by itself: every ticket, each under one message id. A record whose produce timed
    // out may still have been written when the broker woke; its retry carries the same id
    // (the receipt keeps it), so consumers remove the repeat.
    let seen = on_kafka_at(&broker.bootstrap, &p, 40, Duration::from_secs(120)).await;
    assert_eq!(seen.len(), 40, "no ticket lost");
    for (ticket, ids) in &seen {
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 1, "{ticket}: one message id: {ids:?}");
    }
    assert_eq!(*platform.bad_signatures.lock().unwrap(), 0);
    drop(hub);
}

/// The one line of `hub dlq list --json` about `object`, once there is one.
async fn dead_letter_about(cfg: &Path, object: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let out = hub(
            &[
                "dlq",
                "list",
                "--json",
                "--about",
                object,
                "--config",
                cfg.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows: Vec<Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if let Some(row) = rows.into_iter().find(|r| r["status"] == "pending") {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter about {object} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_refused_item_is_dead_lettered_sealed_and_replays_once_the_mapping_is_fixed() {
    use hub_security::field::{FieldCipher, KeyRing};
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let p = prefix();
    seed(&platform, &p, 2);
    let refused = format!("{p}0001");
    {
        // A district code the tables do not know (the mapping refuses it), and a caller whose
        // phone and name must not reach Kafka in clear through the dead letter.
        let mut items = platform.items.lock().unwrap();
        let item = &mut items
            .iter_mut()
            .find(|(_, v)| v["gdbh"] == refused.as_str())
            .unwrap()
            .1;
        item["qh"] = json!("310199");
        item["lxdh"] = json!("13700137000");
        item["ldrxm"] = json!("赵六六");
    }
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    support::isolate::copy_dir(&repo().join("mappings"), &mappings);
    let cfg = config(dir.path(), &base, "sqlite://state/hub.db");
    let text_of = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("\"{}\"", repo().join("mappings").display()),
        &format!("\"{}\"", mappings.display()),
    );
    std::fs::write(&cfg, text_of).unwrap();

    let hub_process = spawn(&cfg, &[]);
    on_kafka(&p, 1, Duration::from_secs(60)).await;
    let dl = dead_letter_about(&cfg, &refused, Duration::from_secs(60)).await;
    assert_eq!(
        dl["route"],
        format!("hotline12345/pull.{}", job(dir.path()))
    );
    let id = dl["id"].as_str().unwrap().to_string();

    // `dlq show` and the dead-letter record itself hold the item sealed, not in clear.
    let out = hub(
        &["dlq", "show", &id, "--config", cfg.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    for clear in ["13700137000", "赵六六"] {
        assert!(!text(&out.stdout).contains(clear), "{clear} in `dlq show`");
    }
    assert_eq!(shown["original_headers"]["hub-payload-sealed"], "sm4gcm:v1");
    let at = shown["dead_letter"].as_str().unwrap();
    let (topic, rest) = at.split_once('[').unwrap();
    let (partition, offset) = rest.split_once("]@").unwrap();
    let record = hub_bus::fetch_record(
        &bus_section("poller-test"),
        topic,
        partition.parse().unwrap(),
        offset.parse().unwrap(),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
    .unwrap();
    let raw = record.payload.unwrap();
    for clear in ["13700137000", "赵六六"] {
        assert!(
            !String::from_utf8_lossy(&raw).contains(clear),
            "{clear} on Kafka in clear"
        );
    }
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let decoded = hub_egress::deadletter::decode(
        catalog.contract(hub_egress::DEAD_LETTER_TOPIC).unwrap(),
        &raw,
    )
    .unwrap();
    let ring = KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    let item = hub_egress::deadletter::open_payload(
        &FieldCipher::new(ring),
        &format!("pull/hotline12345/pull.{}", job(dir.path())),
        &decoded.original_payload,
    )
    .unwrap();
    let item: Value = serde_json::from_slice(&item).unwrap();
    assert_eq!(
        item["lxdh"], "13700137000",
        "the sealed item opens to the partner's item"
    );

    // The mapping is fixed (the district becomes known) and the hub restarted: the replay
    // brings the item to its topic, once.
    // Stopped cleanly, so its replay reader leaves the consumer group at once.
    stop(hub_process);
    let districts = mappings.join("tables/districts.json");
    let mut table: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(&districts).unwrap()).unwrap();
    table.insert("310199".into(), json!("测试区"));
    std::fs::write(&districts, serde_json::to_string(&table).unwrap()).unwrap();
    let _hub = spawn(&cfg, &[]);
    let out = hub(
        &["dlq", "replay", &id, "--config", cfg.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let seen = on_kafka(&p, 2, Duration::from_secs(60)).await;
    assert_eq!(
        seen.get(&refused).map(Vec::len),
        Some(1),
        "the replayed item, once: {seen:?}"
    );
    let log = std::fs::read_to_string(cfg.with_extension("log")).unwrap_or_default();
    for clear in ["13700137000", "赵六六"] {
        assert!(!log.contains(clear), "{clear} in the hub's log");
    }
}
