//! The message trace on a running hub, against the real broker and a stand-in for the 12345
//! platform: a signed push is traced by its message id, ticket number and correlation id
//! (received → produced with topic, partition and offset, and the consumer groups past it); a
//! refused push by its request id with its code; a delivery as delivered with its attempts and
//! a refused one as dead-lettered with its reason; through `hub trace` and the admin API, with
//! no personal data in either; an unknown id answers TRACE_NOT_FOUND.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use hub_bus::{now_shanghai, Envelope, Producer};
use hub_security::field::{FieldCipher, KeyRing};
use hub_security::signing::SigningCredential;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use serde_json::{json, Value};
use support::isolate::{isolate, Isolated};
use support::partner::{Fault, Platform};
use support::*;

const PARTNER_SECRET: &str = "trace-test-partner-secret-0123";
const APP_SECRET: &str = "trace-test-app-secret-0123456789";
const DISPATCH: &str = "/v1/hotline12345/dispatch_json";
const DISPATCHED: &str = "hotline.ticket.dispatched.v1";

/// `hub trace <id> --json`: exit success and the answer.
fn trace_cli(config: &Path, id: &str) -> (bool, Value, String) {
    let out = hub(
        &["trace", id, "--json", "--config", config.to_str().unwrap()],
        &[],
    );
    let answer = serde_json::from_str(&text(&out.stdout)).unwrap_or(Value::Null);
    (out.status.success(), answer, text(&out.stderr))
}

/// The stages of every message of an answer, as `stage` strings in order.
fn stages(answer: &Value) -> Vec<String> {
    answer["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["events"].as_array().unwrap().iter())
        .map(|e| e["stage"].as_str().unwrap().to_string())
        .collect()
}

fn event<'a>(answer: &'a Value, stage: &str) -> &'a Value {
    answer["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["events"].as_array().unwrap().iter())
        .find(|e| e["stage"] == stage)
        .unwrap_or_else(|| panic!("no `{stage}` event in {answer}"))
}

/// Asks `hub trace` until `done` holds for the answer (the trace is written in batches).
async fn trace_until(config: &Path, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, answer, _) = trace_cli(config, id);
        if done(&answer) {
            return answer;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(config.with_file_name("hub.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{what}: not traced within 60 s: {answer}\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A `hotline.ticket.signed.v1` event for `ticket` on the isolated topic, sealed like the
/// hotline app would; returns its message id.
async fn produce_signed(contracts: &Path, topic: &str, ticket: &str) -> String {
    let catalog = hub_contracts::load_dir(contracts).unwrap();
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == topic)
        .unwrap();
    let ring = KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    let mut record = json!({
        "ticket_no": ticket,
        "handling_unit_code": "11310000002420347T",
        "handling_unit_name": "上海市水务局",
        "signer_name": "王五",
        "signed_at": "2026-11-22T09:45:00+08:00",
        "occurred_at": "2026-11-22T09:45:00+08:00"
    });
    hub_pipeline::pii::seal_record(&FieldCipher::new(ring), contract, &mut record).unwrap();
    let framed = hub_contracts::frame(contract.schema_id(), &contract.encode(&record).unwrap());
    let envelope = Envelope::new(
        topic.trim_end_matches(".v1"),
        1,
        "hotline-app",
        "water-bureau",
        ticket,
        now_shanghai(),
    );
    let producer = Producer::new(&bus_section("trace-test")).unwrap();
    producer.send(topic, &envelope, &framed).await.unwrap();
    envelope.message_id.to_string()
}

#[tokio::test]
async fn a_message_is_traced_from_its_push_or_delivery_to_its_end() {
    let platform = Platform::new(PARTNER_SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let Isolated {
        contracts,
        mappings,
        topic: signed_topic,
    } = isolate(dir.path());
    let p = uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    let (delivered_ticket, refused_ticket) = (format!("GDT{p}01"), format!("GDT{p}02"));
    platform.plan(&refused_ticket, vec![Fault::Code("1004")]);
    let (admin, gateway) = (free_port(), free_port());
    let config = write_config(
        dir.path(),
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics_open = true\nregistry_open = true\n[bus]\nbootstrap_servers = \"{}\"\n\
             [state]\nurl = \"sqlite://state/hub.db\"\n[contracts]\ndir = \"{}\"\n\
             [mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n[log]\nformat = \"json\"\n\
             [trace]\nretention_days = 7\n\
             [gateway]\nlisten = \"127.0.0.1:{gateway}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [[gateway.apps]]\napp_id = \"hotline-test\"\npartner = \"hotline12345\"\nhmac_secret = \"{APP_SECRET}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"trace-test-{p}\"\n\
             [partners.hotline12345]\nbase_url = \"{base}\"\napp_id = \"water-bureau-hub\"\n\
             hmac_secret = \"{PARTNER_SECRET}\"\ndeliveries = [\"sign\"]\ntimeout_ms = 1000\nmax_attempts = 3\n\
             backoff_initial_ms = 50\nbackoff_max_ms = 200\n",
            kafka(),
            contracts.display(),
            mappings.display(),
            repo().join("adapters").display(),
            repo().join("ops/dev-keyring.toml").display(),
        ),
    );
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let mut cmd = std::process::Command::new(HUB);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUB_")) {
        cmd.env_remove(k);
    }
    let child = cmd
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(log)
        .spawn()
        .unwrap();
    let serving = Serving::new(child, format!("http://127.0.0.1:{admin}"));
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;

    // A signed push, traced by message id, ticket number and correlation id.
    let correlation = format!("case-trace-{p}");
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let signed = SigningCredential::HmacSm3 {
        secret: APP_SECRET.as_bytes().to_vec(),
    }
    .sign_request_with(
        "hotline-test",
        "POST",
        DISPATCH,
        "",
        &body,
        chrono::Utc::now().timestamp_millis(),
        &[("x-correlation-id", &correlation)],
    );
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("http://127.0.0.1:{gateway}{DISPATCH}"))
        .header("x-correlation-id", &correlation)
        .body(body.clone());
    for (k, v) in &signed {
        req = req.header(*k, v);
    }
    let answer = hub_answer(req.send().await.unwrap().json().await.unwrap());
    assert_eq!(answer["code"], "ACCEPTED", "{answer}");
    let message_id = answer["message_id"].as_str().unwrap().to_string();
    let pushed = trace_until(&config, &message_id, "the push", |a| {
        stages(a) == ["received", "produced"]
    })
    .await;
    let m = &pushed["messages"][0];
    assert_eq!(m["message_id"], message_id.as_str());
    assert_eq!(m["object_id"], "GD20261122000123");
    assert_eq!(m["correlation_id"], correlation.as_str());
    let received = event(&pushed, "received");
    assert_eq!(received["detail"]["app_id"], "hotline-test");
    assert_eq!(received["detail"]["route"], "hotline12345/dispatch_json");
    assert_eq!(received["detail"]["bytes"], body.len());
    assert_eq!(received["detail"]["verdict"], "ACCEPTED");
    assert!(received["actor"].as_str().unwrap().starts_with("hub:"));
    let produced = event(&pushed, "produced")["detail"].clone();
    assert_eq!(produced["topic"], DISPATCHED);
    assert_eq!(produced["contract"], "hotline.ticket.dispatched");
    let (partition, offset) = (
        produced["partition"].as_i64().unwrap(),
        produced["offset"].as_i64().unwrap(),
    );
    assert!(partition >= 0 && offset >= 0, "{produced}");
    for other in ["GD20261122000123", correlation.as_str()] {
        let (ok, by_other, _) = trace_cli(&config, other);
        assert!(ok);
        assert_eq!(
            by_other["messages"][0]["message_id"],
            message_id.as_str(),
            "by {other}"
        );
        assert_eq!(stages(&by_other), ["received", "produced"], "by {other}");
    }
    // Nothing of the payload's personal data is kept.
    let all = pushed.to_string();
    for clear in ["13800138000", "张三", "浦东新区"] {
        assert!(!all.contains(clear), "{clear} is in the trace");
    }

    // A group that has committed past the record is listed as having consumed it (live).
    let group = format!("trace-test-reader-{p}");
    {
        let bus = bus_section("trace-test");
        let reader: BaseConsumer = hub_bus::consumer_config(&bus, &group).create().unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(
            DISPATCHED,
            partition as i32,
            rdkafka::Offset::Offset(offset + 1),
        )
        .unwrap();
        reader.commit(&tpl, CommitMode::Sync).unwrap();
    }
    // Without the admin token the trace API (which also lists the broker's consumer groups)
    // answers nothing.
    let anonymous = client
        .get(format!("{}/api/v1/trace/{message_id}", serving.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let refusal: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(refusal["code"], "ADMIN_UNAUTHORIZED");
    let api = client
        .get(format!("{}/api/v1/trace/{message_id}", serving.admin))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 200);
    let api: Value = api.json().await.unwrap();
    assert_eq!(api["id"], message_id.as_str());
    assert_eq!(stages(&api), ["received", "produced"]);
    let consumed = api["messages"][0]["consumed"].as_array().unwrap();
    let check = &api["consumed_check"];
    assert_eq!(check["asked"], true, "{check}");
    if check["complete"] == true {
        let mine = consumed.iter().find(|c| c["group"] == group.as_str());
        let mine = mine.unwrap_or_else(|| panic!("{group} not among {consumed:?} ({check})"));
        assert_eq!(mine["live"], true);
        assert_eq!(mine["committed"], offset + 1);
        assert_eq!(mine["topic"], DISPATCHED);
    } else {
        eprintln!("the shared broker has more groups than 5 s can ask: {check}");
    }

    // A refused push has no message id: it is traced by its request id, with its code.
    let request_id = format!("req-trace-{p}");
    let mut bad = client
        .post(format!("http://127.0.0.1:{gateway}{DISPATCH}"))
        .header("x-request-id", &request_id)
        .header("x-correlation-id", &correlation)
        .body(body.clone());
    for (k, v) in &signed {
        // Signed once already: the nonce is a replay, and the body is another one anyway.
        bad = bad.header(*k, v);
    }
    let status = bad.send().await.unwrap().status().as_u16();
    assert!(status >= 400, "{status}");
    let rejected = trace_until(&config, &request_id, "the refusal", |a| {
        stages(a) == ["rejected"]
    })
    .await;
    let detail = &event(&rejected, "rejected")["detail"];
    assert_eq!(detail["code"], "AUTH_REPLAY", "{detail}");
    assert_eq!(detail["status"], status);
    assert_eq!(detail["route"], "hotline12345/dispatch_json");

    // Deliveries: one taken by the platform, one it refuses for good.
    let delivered_id = produce_signed(&contracts, &signed_topic, &delivered_ticket).await;
    let refused_id = produce_signed(&contracts, &signed_topic, &refused_ticket).await;
    let delivered = trace_until(&config, &delivered_ticket, "the delivery", |a| {
        stages(a).contains(&"delivered".to_string())
    })
    .await;
    assert_eq!(
        delivered["messages"][0]["message_id"],
        delivered_id.as_str()
    );
    let d = &event(&delivered, "delivered")["detail"];
    assert_eq!(d["route"], "hotline12345/sign");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["source"]["topic"], signed_topic.as_str());
    assert!(d["duration_ms"].as_u64().is_some());
    let refused = trace_until(&config, &refused_id, "the dead letter", |a| {
        stages(a).contains(&"dead_lettered".to_string())
    })
    .await;
    let d = &event(&refused, "dead_lettered")["detail"];
    assert_eq!(d["reason_code"], "EGRESS_PARTNER_REFUSED", "{d}");
    assert_eq!(d["partner_code"], "1004");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["topic"], "hub.message.deadlettered.v1");
    assert!(d["offset"].as_i64().is_some() && d["dead_letter_id"].as_str().is_some());
    assert!(!refused.to_string().contains("王五"), "no personal data");

    // The operator's table, Chinese and English headers.
    let out = hub(
        &[
            "trace",
            "GD20261122000123",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for want in [
        "环节 / stage",
        "时间 / at",
        &format!("消息 / message {message_id}"),
        "received",
        &format!("topic={DISPATCHED}"),
        "共 1 条消息 / 1 message(s)",
    ] {
        assert!(table.contains(want), "`{want}` not in:\n{table}");
    }

    // An unknown id: exit 1 and a clear message; the API answers 404 TRACE_NOT_FOUND.
    let (ok, answer, stderr) = trace_cli(&config, "GD-NO-SUCH-TICKET");
    assert!(!ok);
    assert_eq!(answer["found"], false);
    assert!(stderr.contains("TRACE_NOT_FOUND"), "{stderr}");
    let missing = client
        .get(format!("{}/api/v1/trace/GD-NO-SUCH-TICKET", serving.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(missing["code"], "TRACE_NOT_FOUND");
    assert_eq!(missing["id"], "GD-NO-SUCH-TICKET");

    let mut serving = serving;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serving.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(serving.child.wait().unwrap().success(), "a clean stop");
}
