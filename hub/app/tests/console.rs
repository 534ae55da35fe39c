//! The operators' console end to end: a real `hub serve` against the test broker and a
//! stand-in 12345 platform that refuses one ticket with a permanent code (so there is a dead
//! letter), operators created with `hub operator add`, signed pushes flowing while headless
//! Chromium (Playwright, tests/console/) logs in, watches the counts change, opens the
//! adapter page, finds a ticket in the trace, replays the dead letter, and switches to
//! English; a viewer gets no replay button and the API refuses it. A consumer group of the
//! test's own (a stand-in domain app committing to Kafka) appears as an app node with its
//! topic edge and lag, in the API and in the browser's apps table. Screenshots are kept in
//! var/test-artifacts/console/. Without /usr/bin/chromium, tests/console/node_modules or a CJK
//! font that fontconfig offers Chromium for `zh-cn`, this test fails and says how to install them.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_bus::{now_shanghai, Envelope, Producer};
use hub_security::field::{FieldCipher, KeyRing};
use hub_security::signing::SigningCredential;
use serde_json::{json, Value};
use support::isolate::{isolate, Isolated};
use support::partner::{Fault, Platform};
use support::*;

const PARTNER_SECRET: &str = "console-test-partner-secret-01";
const APP_SECRET: &str = "console-test-app-secret-0123456789";
const DISPATCH: &str = "/v1/hotline12345/dispatch_json";
const CHROMIUM: &str = "/usr/bin/chromium";

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
    let producer = Producer::new(&bus_section("console-test")).unwrap();
    producer.send(topic, &envelope, &framed).await.unwrap();
    envelope.message_id.to_string()
}

/// `hub operator add <name> --role <role>` with the password on stdin.
fn add_operator(config: &Path, name: &str, role: &str, password: &str) {
    let mut child = Command::new(HUB)
        .args([
            "operator",
            "add",
            name,
            "--role",
            role,
            "--config",
            config.to_str().unwrap(),
        ])
        .env_remove("HUB_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "operator add: {}", text(&out.stderr));
}

fn tests_dir() -> PathBuf {
    repo().join("tests/console")
}

/// Fails (never skips) when the browser or the Playwright package is missing.
fn require_browser() {
    let missing_chromium = !Path::new(CHROMIUM).exists();
    let missing_modules = !tests_dir().join("node_modules/@playwright/test").exists();
    // Without a CJK font Chromium draws every Chinese character as an empty box, and the
    // screenshots no longer show what an operator sees.
    let cjk_font = Command::new("fc-match")
        .args(["--format=%{lang}", "sans:lang=zh-cn"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split('|')
                .any(|l| l == "zh-cn")
        })
        .unwrap_or(false);
    if !cjk_font {
        panic!(
            "the console's browser test needs a CJK font for Chromium (fc-match 'sans:lang=zh-cn' \
             finds none):\n  apt-get install -y fonts-noto-cjk fontconfig"
        );
    }
    if missing_chromium || missing_modules {
        panic!(
            "the console's browser test needs headless Chromium and Playwright:\n\
             {}{}",
            if missing_chromium {
                "  apt-get install -y chromium chromium-driver   # provides /usr/bin/chromium\n"
            } else {
                ""
            },
            if missing_modules {
                "  cd tests/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci\n"
            } else {
                ""
            }
        );
    }
}

async fn signed_push(client: &reqwest::Client, gateway: u16, body: &[u8]) -> Value {
    let signed = SigningCredential::HmacSm3 {
        secret: APP_SECRET.as_bytes().to_vec(),
    }
    .sign_request(
        "hotline-console",
        "POST",
        DISPATCH,
        "",
        body,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut req = client
        .post(format!("http://127.0.0.1:{gateway}{DISPATCH}"))
        .body(body.to_vec());
    for (k, v) in &signed {
        req = req.header(*k, v);
    }
    hub_answer(req.send().await.unwrap().json().await.unwrap())
}

fn dlq_json(config: &Path, about: &str) -> Vec<Value> {
    let out = hub(
        &[
            "dlq",
            "list",
            "--about",
            about,
            "--json",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn operators_use_the_console_in_a_real_browser() {
    require_browser();
    let platform = Platform::new(PARTNER_SECRET);
    let base = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let Isolated {
        contracts,
        mappings,
        topic: signed_topic,
    } = isolate(dir.path());
    let p = uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    let (delivered_ticket, refused_ticket) = (format!("GDC{p}01"), format!("GDC{p}02"));
    platform.plan(&refused_ticket, vec![Fault::Code("1004")]);
    let (admin, gateway) = (free_port(), free_port());
    let config = write_config(
        dir.path(),
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics_open = true\nregistry_open = true\n[bus]\nbootstrap_servers = \"{}\"\n\
             [state]\nurl = \"sqlite://state/hub.db\"\n[contracts]\ndir = \"{}\"\n\
             [mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n[log]\nformat = \"json\"\n\
             [console]\nsession_idle_minutes = 15\nsession_max_hours = 2\nsecure_cookie = false\n\
             [gateway]\nlisten = \"127.0.0.1:{gateway}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [[gateway.apps]]\napp_id = \"hotline-console\"\npartner = \"hotline12345\"\nhmac_secret = \"{APP_SECRET}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"console-test-{p}\"\n\
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
    let operator_password = format!("op-{p}-correct-horse");
    let viewer_password = format!("vw-{p}-battery-staple");
    add_operator(&config, "duty-operator", "operator", &operator_password);
    add_operator(&config, "duty-viewer", "viewer", &viewer_password);
    // A password too short, a role that does not exist and a taken name are refused.
    for (name, role, pw) in [
        ("short-pw", "viewer", "abc"),
        ("bad-role", "root", "long-enough-password"),
        ("duty-viewer", "viewer", "long-enough-password"),
    ] {
        let mut child = Command::new(HUB)
            .args([
                "operator",
                "add",
                name,
                "--role",
                role,
                "--config",
                config.to_str().unwrap(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n").as_bytes())
            .unwrap();
        assert!(!child.wait().unwrap().success(), "{name} {role} accepted");
    }

    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let mut cmd = Command::new(HUB);
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

    // The page and its headers; the API refuses without a session.
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{}/console/", serving.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("/console/assets/app.js"));
    let echarts = client
        .get(format!("{}/console/assets/echarts.min.js", serving.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        echarts.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let anon = client
        .get(format!("{}/console/api/overview", serving.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(
        anon.json::<Value>().await.unwrap()["code"],
        "CONSOLE_AUTH_REQUIRED"
    );

    // One delivered ticket (found by its number in the browser), one refused for good.
    let delivered_id = produce_signed(&contracts, &signed_topic, &delivered_ticket).await;
    produce_signed(&contracts, &signed_topic, &refused_ticket).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let dead = loop {
        let rows = dlq_json(&config, &refused_ticket);
        if let Some(r) = rows.into_iter().next() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter for {refused_ticket}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(dead["status"], "pending");
    assert_eq!(dead["reason_code"], "EGRESS_PARTNER_REFUSED");
    loop {
        let out = hub(
            &[
                "trace",
                &delivered_id,
                "--json",
                "--no-consumers",
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
        );
        if text(&out.stdout).contains("\"delivered\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{delivered_ticket} not delivered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A domain app of this test's own: a consumer group (not under the egress prefix) that
    // reads the isolated topic and commits to Kafka, as the hotline app does. The console
    // samples the cluster's groups every 15 s and draws it as an app node.
    let app_group = format!("console-app-{p}");
    let app = hub_bus::Consumer::new(
        &bus_section("console-test-app"),
        &app_group,
        &[signed_topic.as_str()],
    )
    .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(60), app.next())
        .await
        .expect("the test's app reads a record")
        .unwrap();
    app.commit(&read).await.unwrap();
    let login = client
        .post(format!("{}/console/api/login", serving.admin))
        .json(&json!({ "name": "duty-viewer", "password": viewer_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let app_deadline = Instant::now() + Duration::from_secs(90);
    let (app_row, app_edge) = loop {
        let v: Value = client
            .get(format!("{}/console/api/overview", serving.admin))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let row = v["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["group"] == app_group.as_str())
            .cloned();
        let edge = v["graph"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["target"] == format!("app:{app_group}"))
            .cloned();
        let node = v["graph"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["id"] == format!("app:{app_group}") && n["kind"] == "app");
        if let (Some(row), Some(edge), true) = (row, edge, node) {
            // This hub's own egress groups (its `group_prefix`) are not apps; those of other
            // hubs on the shared broker are.
            let own = format!("console-test-{p}.");
            assert!(
                !v["apps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["group"].as_str().unwrap().starts_with(&own)),
                "{}",
                v["apps"]
            );
            break (row, edge);
        }
        assert!(
            Instant::now() < app_deadline,
            "no app node {app_group} in the overview: {}",
            json!({ "apps": v["apps"], "apps_status": v["apps_status"] })
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(app_edge["source"], format!("topic:{signed_topic}"));
    assert_eq!(app_edge["kind"], "consumption");
    assert!(app_edge["consumption"]["lag"].is_i64(), "{app_edge}");
    let app_topic = &app_row["topics"][0];
    assert_eq!(app_topic["topic"], signed_topic.as_str());
    assert!(app_topic["committed"].as_i64().unwrap() > read.offset);
    let lag = app_topic["lag"].as_i64().expect("a lag value");
    assert!(lag >= 0, "{app_row}");
    assert!(
        app_topic["high_watermark"].as_i64().unwrap() >= app_topic["committed"].as_i64().unwrap(),
        "{app_row}"
    );

    // Traffic while the browser watches: a signed push every 300 ms.
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let first = signed_push(&client, gateway, &body).await;
    assert!(
        first["code"] == "ACCEPTED" || first["code"] == "DUPLICATE",
        "{first}"
    );
    let running = Arc::new(AtomicBool::new(true));
    let traffic = {
        let (running, client) = (Arc::clone(&running), client.clone());
        tokio::spawn(async move {
            let mut sent = 0u32;
            while running.load(Ordering::Acquire) {
                signed_push(&client, gateway, &body).await;
                sent += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            sent
        })
    };

    let artifacts = repo().join("var/test-artifacts/console");
    std::fs::create_dir_all(&artifacts).unwrap();
    let run = tokio::process::Command::new("npx")
        .args(["--no-install", "playwright", "test"])
        .current_dir(tests_dir())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("CHROMIUM", CHROMIUM)
        .env("CONSOLE_URL", format!("{}/console/", serving.admin))
        .env("CONSOLE_ARTIFACTS", &artifacts)
        .env("OPERATOR_NAME", "duty-operator")
        .env("OPERATOR_PASSWORD", &operator_password)
        .env("VIEWER_NAME", "duty-viewer")
        .env("VIEWER_PASSWORD", &viewer_password)
        .env("TICKET", &delivered_ticket)
        .env("DEAD_TICKET", &refused_ticket)
        .env("DEAD_LETTER_ID", dead["id"].as_str().unwrap())
        .env("PERSONAL_NAME", "王五")
        .env("APP_GROUP", &app_group)
        .output()
        .await
        .expect("npx runs (is Node.js installed?)");
    running.store(false, Ordering::Release);
    let sent = traffic.await.unwrap();
    let report = format!("{}\n{}", text(&run.stdout), text(&run.stderr));
    std::fs::write(artifacts.join("playwright.log"), &report).unwrap();
    assert!(run.status.success(), "Playwright failed:\n{report}");
    assert!(sent > 0);
    for shot in [
        "01-login",
        "03-overview-live",
        "03b-apps",
        "05-trace",
        "08-replayed",
        "09-english",
        "10-viewer-no-replay",
    ] {
        assert!(
            artifacts.join(format!("{shot}.png")).exists(),
            "no screenshot {shot}"
        );
    }

    // The replay was done, by the operator, and audited; so were the logins.
    let after = dlq_json(&config, &refused_ticket);
    let replayed = after.iter().find(|r| r["id"] == dead["id"]).unwrap();
    assert_eq!(replayed["status"], "replayed", "{after:?}");
    let audit = hub(
        &[
            "audit",
            "tail",
            "-n",
            "200",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let audit = text(&audit.stdout);
    for needle in [
        "console.login_failed",
        "console.login",
        "console.trace",
        "console.dlq_viewed",
        "dlq.replay",
        "console:duty-operator",
        "console.logout",
        "operator.added",
    ] {
        assert!(audit.contains(needle), "audit has no {needle}:\n{audit}");
    }
    drop(app);
    let mut serving = serving;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serving.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(serving.child.wait().unwrap().success());
}
