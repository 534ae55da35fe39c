//! The egress against a partner standing in for the 12345 platform (a real HTTP server that
//! verifies signatures, removes duplicates by idempotency key and injects faults): every
//! message ends delivered exactly once or dead-lettered with the right reason; a worker killed
//! mid-delivery loses nothing; a dead letter is replayed and delivered.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use hub_bus::{now_shanghai, Envelope, Producer};
use hub_security::field::{FieldCipher, KeyRing};
use serde_json::{json, Value};
use support::broker::{cpu_seconds, PrivateBroker};
use support::isolate::{isolate, Isolated};
use support::logged::{start, stop};
use support::partner::{Fault, Platform};
use support::*;

const SECRET: &str = "egress-test-secret-0123456789";

fn unique_prefix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("GDT{}", &id[..8].to_uppercase())
}

fn config(
    dir: &Path,
    iso: &Isolated,
    base_url: &str,
    secret: &str,
    group_prefix: &str,
    extra: &str,
) -> std::path::PathBuf {
    let admin = free_port();
    let gateway = free_port();
    write_config(
        dir,
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics_open = true\nregistry_open = true\n[bus]\nbootstrap_servers = \"{}\"\n\
             [state]\nurl = \"sqlite://state/hub.db\"\n[contracts]\ndir = \"{}\"\n\
             [mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n[log]\nformat = \"json\"\n\
             [gateway]\nlisten = \"127.0.0.1:{gateway}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"{group_prefix}\"\n\
             [partners.hotline12345]\nbase_url = \"{base_url}\"\napp_id = \"water-bureau-hub\"\n\
             hmac_secret = \"{secret}\"\ndeliveries = [\"sign\"]\ntimeout_ms = 1000\nmax_attempts = 4\n\
             backoff_initial_ms = 50\nbackoff_max_ms = 300\nbreaker_failures = 1000\n{extra}",
            kafka(),
            iso.contracts.display(),
            iso.mappings.display(),
            repo().join("adapters").display(),
            repo().join("ops/dev-keyring.toml").display(),
        ),
    )
}

fn dlq_of_prefix(config: &Path, prefix: &str) -> Vec<Value> {
    let out = hub(
        &[
            "dlq",
            "list",
            "--json",
            "--limit",
            "10000",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| {
            v["object_id"]
                .as_str()
                .is_some_and(|o| o.starts_with(prefix))
        })
        .collect()
}

/// Produces a `hotline.ticket.signed.v1` event for `ticket`, personal fields sealed.
async fn produce_signed(producer: &Producer, iso: &Isolated, ticket: &str, signer: &str) -> String {
    let catalog = hub_contracts::load_dir(&iso.contracts).unwrap();
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == iso.topic)
        .unwrap();
    let ring = KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    let mut record = json!({
        "ticket_no": ticket,
        "handling_unit_code": "11310000002420347T",
        "handling_unit_name": "上海市水务局",
        "signer_name": signer,
        "signed_at": "2026-11-22T09:45:00+08:00",
        "occurred_at": "2026-11-22T09:45:00+08:00"
    });
    hub_pipeline::pii::seal_record(&FieldCipher::new(ring), contract, &mut record).unwrap();
    let framed = hub_contracts::frame(contract.schema_id(), &contract.encode(&record).unwrap());
    let event = iso.topic.trim_end_matches(".v1");
    let envelope = Envelope::new(
        event,
        1,
        "hotline-app",
        "water-bureau",
        ticket,
        now_shanghai(),
    );
    producer.send(&iso.topic, &envelope, &framed).await.unwrap();
    envelope.message_id.to_string()
}

/// Waits for `done`; on time-out fails with the tail of the hub's log beside `config`.
async fn until(config: &Path, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(config.with_file_name("hub.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "not within {within:?}: {what}\nhub log (last lines):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_message_ends_delivered_once_or_dead_lettered_with_its_reason() {
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let p = unique_prefix();
    let t = |n: u32| format!("{p}{n:02}");
    platform.plan(&t(2), vec![Fault::Status(500), Fault::Status(503)]);
    platform.plan(&t(3), vec![Fault::Throttle(1)]);
    platform.plan(&t(4), vec![Fault::Slow(Duration::from_millis(1_500))]);
    platform.plan(&t(5), vec![Fault::Reset]);
    platform.plan(&t(6), vec![Fault::Code("2001")]);
    // A refusal whose message quotes the caller back: it must be masked wherever it is kept.
    platform.plan(
        &t(7),
        vec![Fault::CodeSaying(
            "1004",
            "来电人13800138000（身份证31010119900101123X）信息不符",
        )],
    );
    platform.always.lock().unwrap().insert(t(8), 502);
    // Ticket 11's first event fails twice: its later events must wait for it.
    platform.plan(&t(11), vec![Fault::Status(500), Fault::Status(500)]);

    let iso = isolate(dir.path());
    let cfg = config(
        dir.path(),
        &iso,
        &base,
        SECRET,
        &format!("egress-test-{p}"),
        "",
    );
    let _hub = start(&cfg, &[]).await;
    let producer = Producer::new(&bus_section("egress-test")).unwrap();
    let mut ids = std::collections::HashMap::new();
    for n in [1, 2, 3, 4, 5, 6, 7, 8] {
        ids.insert(n, produce_signed(&producer, &iso, &t(n), "王五").await);
    }
    let ordered: Vec<String> = {
        let mut v = Vec::new();
        for signer in ["甲", "乙", "丙"] {
            v.push(produce_signed(&producer, &iso, &t(11), signer).await);
        }
        v
    };
    // A record that is not Avro at all.
    let garbage = Envelope::new(
        iso.topic.trim_end_matches(".v1"),
        1,
        "hotline-app",
        "water-bureau",
        t(10),
        now_shanghai(),
    );
    producer
        .send(&iso.topic, &garbage, b"not avro")
        .await
        .unwrap();

    let delivered = [1, 2, 3, 4, 5, 6];
    until(
        &cfg,
        "deliveries and dead letters",
        Duration::from_secs(90),
        || {
            delivered
                .iter()
                .all(|n| !platform.effects_for(&t(*n)).is_empty())
                && platform.effects_for(&t(11)).len() == 3
                && dlq_list(&cfg, Some(&t(7))).len() == 1
                && dlq_list(&cfg, Some(&t(8))).len() == 1
                && dlq_list(&cfg, Some(&t(10))).len() == 1
            // The hub gave up on the slow answer and asked again; the platform answered the
            // retry from its idempotency store.
            && *platform.duplicates.lock().unwrap() >= 1
        },
    )
    .await;

    for n in delivered {
        let effects = platform.effects_for(&t(n));
        assert_eq!(
            effects.len(),
            1,
            "ticket {n} taken exactly once: {effects:?}"
        );
        assert_eq!(
            effects[0].idempotency_key, ids[&n],
            "the message id is the idempotency key"
        );
        assert_eq!(effects[0].body["cbdw"]["mc"], "上海市水务局");
        assert_eq!(
            effects[0].body["qsr"], "王五",
            "personal fields are opened for the partner"
        );
    }
    assert!(
        *platform.duplicates.lock().unwrap() >= 1,
        "the slow answer was retried and removed as a duplicate"
    );
    let order: Vec<String> = platform
        .effects_for(&t(11))
        .into_iter()
        .map(|e| e.idempotency_key)
        .collect();
    assert_eq!(order, ordered, "one ticket's events are delivered in order");
    assert!(platform.effects_for(&t(7)).is_empty() && platform.effects_for(&t(8)).is_empty());

    let refused = &dlq_list(&cfg, Some(&t(7)))[0];
    assert_eq!(refused["reason_code"], "EGRESS_PARTNER_REFUSED");
    assert_eq!(refused["partner_code"], "1004");
    assert_eq!(refused["attempts"], 1);
    assert_eq!(refused["original_message_id"], ids[&7].as_str());
    let exhausted = &dlq_list(&cfg, Some(&t(8)))[0];
    assert_eq!(exhausted["reason_code"], "EGRESS_RETRY_EXHAUSTED");
    assert_eq!(exhausted["attempts"], 4);
    assert_eq!(
        dlq_list(&cfg, Some(&t(10)))[0]["reason_code"],
        "EGRESS_MALFORMED"
    );
    assert_eq!(
        *platform.bad_signatures.lock().unwrap(),
        0,
        "every request was signed correctly"
    );

    // The dead letter carries the original bytes and headers; personal data stays sealed.
    let id = refused["id"].as_str().unwrap();
    let out = hub(&["dlq", "show", id, "--config", cfg.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(shown["original"]["ticket_no"], t(7).as_str());
    assert!(
        !text(&out.stdout).contains("王五"),
        "no clear personal data in `dlq show`"
    );
    // The partner's text is masked in the reason as in partner_answer (Kafka, state, CLI).
    for clear in ["13800138000", "31010119900101123X"] {
        assert!(!text(&out.stdout).contains(clear), "{clear} in `dlq show`");
        assert!(
            !shown["reason"].as_str().unwrap().contains(clear),
            "{clear} in the reason"
        );
    }
    assert!(
        shown["reason"].as_str().unwrap().contains("138****8000"),
        "the masked answer is still there to read: {shown}"
    );
    let log = std::fs::read_to_string(cfg.with_file_name("hub.log")).unwrap_or_default();
    assert!(
        !log.contains("13800138000"),
        "the partner's answer in clear in the hub's log"
    );
    assert_eq!(
        shown["original_headers"]["hub-message-id"],
        ids[&7].as_str()
    );
}

#[tokio::test]
async fn a_dead_letter_replayed_after_the_fault_is_fixed_is_delivered_once() {
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let p = unique_prefix();
    let ticket = format!("{p}01");
    let group = format!("egress-replay-{p}");
    // The hub is configured with the wrong secret: the platform refuses every signature.
    let iso = isolate(dir.path());
    let wrong = config(
        dir.path(),
        &iso,
        &base,
        "a-wrong-secret-0123456789",
        &group,
        "",
    );
    let hub1 = start(&wrong, &[]).await;
    let producer = Producer::new(&bus_section("egress-replay-test")).unwrap();
    let id = produce_signed(&producer, &iso, &ticket, "李四").await;
    until(&wrong, "the dead letter", Duration::from_secs(60), || {
        dlq_list(&wrong, Some(&ticket)).len() == 1
    })
    .await;
    let dl = dlq_list(&wrong, Some(&ticket)).remove(0);
    assert_eq!(dl["reason_code"], "EGRESS_RETRY_EXHAUSTED");
    assert!(*platform.bad_signatures.lock().unwrap() >= 4);
    stop(hub1);

    // Fixed: same state store, right secret. The replay goes through the route again.
    let right = config(dir.path(), &iso, &base, SECRET, &group, "");
    let _hub2 = start(&right, &[]).await;
    let dl_id = dl["id"].as_str().unwrap();
    let out = hub(
        &[
            "dlq",
            "replay",
            dl_id,
            "--actor",
            "operator-zhang",
            "--config",
            right.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    until(
        &right,
        "the replayed delivery",
        Duration::from_secs(60),
        || platform.effects_for(&ticket).len() == 1,
    )
    .await;
    let effect = &platform.effects_for(&ticket)[0];
    assert_eq!(
        effect.idempotency_key, id,
        "a replay keeps the original message id"
    );

    // A second replay of the same dead letter is refused; the first is audited.
    let again = hub(
        &["dlq", "replay", dl_id, "--config", right.to_str().unwrap()],
        &[],
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("DLQ_NOT_PENDING"),
        "{}",
        text(&again.stderr)
    );
    let listed = dlq_list(&right, Some(&ticket));
    assert_eq!(listed[0]["status"], "replayed");
    let audit = hub(&["audit", "tail", "--config", right.to_str().unwrap()], &[]);
    let audit = text(&audit.stdout);
    assert!(
        audit.contains("dlq.replay") && audit.contains("operator-zhang"),
        "{audit}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(platform.effects_for(&ticket).len(), 1, "delivered once");
}

#[tokio::test]
async fn a_worker_stopped_mid_delivery_resumes_and_loses_nothing() {
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let p = unique_prefix();
    let group = format!("egress-kill-{p}");
    let tickets: Vec<String> = (1..=20).map(|n| format!("{p}{n:02}")).collect();
    // Every ticket's first request is held (and then refused), the second refused: the hub is
    // killed while the first ones are in flight, before anything was taken.
    for t in &tickets {
        platform.plan(
            t,
            vec![
                Fault::Hold(Duration::from_millis(3_000)),
                Fault::Status(503),
            ],
        );
    }
    let iso = isolate(dir.path());
    let cfg = config(dir.path(), &iso, &base, SECRET, &group, "");
    let hub1 = start(&cfg, &[]).await;
    let producer = Producer::new(&bus_section("egress-kill-test")).unwrap();
    let mut ids = Vec::new();
    for t in &tickets {
        ids.push(produce_signed(&producer, &iso, t, "赵六").await);
    }
    until(&cfg, "requests in flight", Duration::from_secs(60), || {
        *platform.requests.lock().unwrap() >= 5
    })
    .await;
    // SIGTERM: the worker abandons what is in flight (not committed) and leaves the group.
    // Not SIGKILL: a member that replaces a killed one before its session expires can be left
    // with no partitions by Tansu 0.6.0 (a coordinator defect, docs/broker.md; reproduced by
    // tests/tests/bus.rs `tansu_0_6_gives_a_member_joining_…`).
    stop(hub1);
    let taken_before = tickets
        .iter()
        .filter(|t| !platform.effects_for(t).is_empty())
        .count();
    assert!(
        taken_before < tickets.len(),
        "the kill came before everything was delivered"
    );

    let _hub2 = start(&cfg, &[]).await;
    until(
        &cfg,
        "every ticket delivered",
        Duration::from_secs(90),
        || tickets.iter().all(|t| !platform.effects_for(t).is_empty()),
    )
    .await;
    for (t, id) in tickets.iter().zip(&ids) {
        let effects = platform.effects_for(t);
        assert_eq!(effects.len(), 1, "{t} taken once");
        assert_eq!(&effects[0].idempotency_key, id);
    }
    assert!(dlq_of_prefix(&cfg, &p).is_empty(), "nothing dead-lettered");
}

#[tokio::test]
async fn while_kafka_is_away_the_egress_waits_without_spinning_and_then_loses_nothing() {
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = PrivateBroker::start(dir.path());
    let p = unique_prefix();
    let iso = isolate(dir.path());
    let cfg = config(
        dir.path(),
        &iso,
        &base,
        SECRET,
        &format!("egress-outage-{p}"),
        "",
    );
    // This hub talks to the private broker.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&kafka(), &broker.bootstrap);
    std::fs::write(&cfg, text).unwrap();
    let hub = start(&cfg, &[]).await;
    let mut section = bus_section("egress-outage-test");
    section.bootstrap_servers = broker.bootstrap.clone();
    let producer = Producer::new(&section).unwrap();
    let before: Vec<String> = (1..=5).map(|n| format!("{p}{n:02}")).collect();
    let after: Vec<String> = (6..=10).map(|n| format!("{p}{n:02}")).collect();
    for t in &before {
        produce_signed(&producer, &iso, t, "钱七").await;
    }
    until(
        &cfg,
        "the first deliveries",
        Duration::from_secs(60),
        || before.iter().all(|t| platform.effects_for(t).len() == 1),
    )
    .await;

    // The broker stops answering (frozen, its data kept) for five seconds, less than the
    // group session timeout (10 s).
    broker.signal(nix::sys::signal::Signal::SIGSTOP);
    let cpu_before = cpu_seconds(hub.child.id());
    let sender = {
        let (producer, iso, after) = (producer.clone(), iso.topic.clone(), after.clone());
        let contracts = iso_contracts(&cfg);
        tokio::spawn(async move {
            let iso = Isolated {
                contracts,
                mappings: std::path::PathBuf::new(),
                topic: iso,
            };
            for t in &after {
                produce_signed(&producer, &iso, t, "钱七").await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_used = cpu_seconds(hub.child.id()) - cpu_before;
    assert!(
        cpu_used < 2.5,
        "the hub spent {cpu_used:.1} s of CPU in 5 s while the broker was away: a busy loop"
    );
    assert!(after.iter().all(|t| platform.effects_for(t).is_empty()));

    broker.signal(nix::sys::signal::Signal::SIGCONT);
    sender.await.unwrap();
    until(
        &cfg,
        "the deliveries after the outage",
        Duration::from_secs(90),
        || after.iter().all(|t| !platform.effects_for(t).is_empty()),
    )
    .await;
    for t in before.iter().chain(&after) {
        assert_eq!(platform.effects_for(t).len(), 1, "{t} taken once");
    }
    assert!(dlq_of_prefix(&cfg, &p).is_empty(), "nothing dead-lettered");
}

/// The contracts folder the configuration at `cfg` uses.
fn iso_contracts(cfg: &Path) -> std::path::PathBuf {
    cfg.parent().unwrap().join("contracts/schemas")
}

#[tokio::test]
async fn a_stuck_key_holds_a_bounded_window_and_pausing_loses_no_record() {
    let platform = Platform::new(SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let p = unique_prefix();
    let stuck = format!("{p}000");
    // The first ticket is refused three times; the others keep the window (4) full meanwhile,
    // so the route pauses and resumes its partitions many times.
    platform.plan(
        &stuck,
        vec![Fault::Status(503), Fault::Status(503), Fault::Status(503)],
    );
    let others: Vec<String> = (1..=300).map(|n| format!("{p}{n:03}")).collect();
    let iso = isolate(dir.path());
    let cfg = config(
        dir.path(),
        &iso,
        &base,
        SECRET,
        &format!("egress-window-{p}"),
        "window = 4\n",
    );
    // Every record is on the topic before the hub starts, so the client fetches far more than
    // the window at once: pausing must not lose what it had fetched.
    let out = hub(
        &["topics", "ensure", "--config", cfg.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let producer = Producer::new(&bus_section("egress-window-test")).unwrap();
    let mut ids = std::collections::HashMap::new();
    let sends = std::iter::once(&stuck).chain(&others).map(|t| {
        let (producer, iso) = (&producer, &iso);
        async move { (t.clone(), produce_signed(producer, iso, t, "孙八").await) }
    });
    for (t, id) in futures::future::join_all(sends).await {
        ids.insert(t, id);
    }
    let _hub = start(&cfg, &[]).await;
    until(
        &cfg,
        "every ticket delivered",
        Duration::from_secs(120),
        || {
            std::iter::once(&stuck)
                .chain(&others)
                .all(|t| !platform.effects_for(t).is_empty())
        },
    )
    .await;
    for t in std::iter::once(&stuck).chain(&others) {
        let effects = platform.effects_for(t);
        assert_eq!(effects.len(), 1, "{t} taken once");
        assert_eq!(effects[0].idempotency_key, ids[t]);
    }
    let log = std::fs::read_to_string(cfg.with_file_name("hub.log")).unwrap();
    assert!(
        log.contains("window full"),
        "the window filled, so the pause path ran"
    );
}
