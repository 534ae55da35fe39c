//! The 12345 family end to end, every part real: the 12345 platform simulator (in-process, a
//! real HTTP server) pushes 200 tickets, JSON and GBK XML, through the hub's gateway (a `hub
//! serve` process) onto Kafka; the hotline app (a `hotline-app serve` process, on PostgreSQL)
//! takes each once even when it is killed mid-stream; case handlers sign, return and reply
//! through the app's API; the hub's egress delivers those events to the platform, which applies
//! them to its own state machine; what the platform refuses ends as a dead letter that
//! `hub dlq list` shows with the platform's code.
//!
//! Needs the `hub` binary beside this test's (the workspace build, `ops/test.sh`, makes it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use app_kit::on_db;
use common::process::App;
use common::*;
use hotline12345_simulator::generate::Unit;
use hotline12345_simulator::{
    PushFormat, Simulator, SimulatorConfig, SimulatorHandle, TicketState,
};
use hotline_app::config::TopicsSection;
use hotline_app::kinds::Kind;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(240);
/// The tests of this file take turns: both write to the contract topics, and the first compares
/// two apps' offsets on them, which another test's records arriving meanwhile would make differ.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// What the platform signs its pushes with, and what the hub signs its requests with.
const PLATFORM_SECRET: &str = "e2e-platform-secret-0123456789";
const HUB_SECRET: &str = "e2e-hub-at-platform-secret-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `hub` binary of the same build as this test (`target/<profile>/hub`).
fn hub_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let hub = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("hub"))
        .unwrap();
    assert!(
        hub.exists(),
        "{} is missing: build it first (`cargo build -p hub`; ops/test.sh builds the workspace)",
        hub.display()
    );
    hub
}

/// The contract topics: the hub produces where the contracts say, so the app reads there too.
fn contract_topics() -> TopicsSection {
    let t = |k: Kind| k.contract_topic().to_string();
    TopicsSection {
        dispatched: t(Kind::Dispatched),
        urged: t(Kind::Urged),
        visited: t(Kind::Visited),
        closed: t(Kind::Closed),
        signed: t(Kind::Signed),
        returned: t(Kind::Returned),
        extension_requested: t(Kind::ExtensionRequested),
        replied: t(Kind::Replied),
    }
}

struct Hub {
    child: tokio::process::Child,
    config: PathBuf,
    admin: String,
}

impl Hub {
    /// A hub delivering to and pulling from `platform`; `partner_extra` adds keys to its
    /// `[partners.hotline12345]`, `adapters` is the folder of the adapter manifests.
    fn start(
        dir: &Path,
        gateway_port: u16,
        platform: &str,
        group_prefix: &str,
        adapters: &Path,
        partner_extra: &str,
    ) -> Self {
        let admin_port = free_port();
        let repo = repo();
        let config = dir.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                r#"[hub]
profile = "development"
[admin]
listen = "127.0.0.1:{admin_port}"
[bus]
bootstrap_servers = "{bootstrap}"
[state]
url = "sqlite://state/hub.db"
[contracts]
dir = "{contracts}"
[mappings]
dir = "{mappings}"
[adapters]
dir = "{adapters}"
[log]
format = "json"
[egress]
commit_interval_ms = 200
group_prefix = "{group_prefix}"
[partners.hotline12345]
base_url = "{platform}"
app_id = "water-bureau-hub"
hmac_secret = "{HUB_SECRET}"
timeout_ms = 5000
backoff_initial_ms = 100
backoff_max_ms = 2000
breaker_failures = 1000
{partner_extra}
[gateway]
listen = "127.0.0.1:{gateway_port}"
plain_http = true
key_ring = "{key_ring}"
[[gateway.apps]]
app_id = "hotline12345-city"
partner = "hotline12345"
hmac_secret = "{PLATFORM_SECRET}"
rate_per_second = 1000
burst = 1000
"#,
                bootstrap = kafka_bootstrap(),
                contracts = repo.join("contracts/schemas").display(),
                mappings = repo.join("mappings").display(),
                adapters = adapters.display(),
                key_ring = repo.join("ops/dev-keyring.toml").display(),
            ),
        )
        .unwrap();
        let mut cmd = tokio::process::Command::new(hub_binary());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUB_")) {
            cmd.env_remove(k);
        }
        let child = cmd
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("hub serve starts");
        Self {
            child,
            config,
            admin: format!("http://127.0.0.1:{admin_port}"),
        }
    }

    /// `hub dlq list --json` with `args`, one dead letter per line.
    fn dlq_list(&self, args: &[&str]) -> Vec<Value> {
        let out = std::process::Command::new(hub_binary())
            .args(["--config"])
            .arg(&self.config)
            .args(["dlq", "list", "--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hub dlq list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("hub dlq list --json prints JSON lines"))
            .collect()
    }

    async fn stop(mut self) {
        let pid = self.child.id().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "the hub stops cleanly: {status}");
    }
}

async fn wait_ready(url: &str) {
    wait_for(&format!("{url} to answer 200"), WAIT, || async {
        reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
}

/// Waits until the app has read every inbound topic up to `end` (the topics stay still meanwhile).
async fn wait_read_to(db: &app_kit::db::Db, end: &BTreeMap<(String, i32), i64>) {
    wait_for("the app to read to the end of its topics", WAIT, || async {
        let stored = stored_offsets(db).await;
        end.iter()
            .filter(|(_, high)| **high > 0)
            .all(|(k, high)| stored.get(k).is_some_and(|s| s >= high))
    })
    .await;
}

fn inbound_end() -> BTreeMap<(String, i32), i64> {
    let topics = contract_topics();
    let names: Vec<&str> = Kind::INBOUND.iter().map(|k| topics.of(*k)).collect();
    let end = end_offsets(&names);
    // An empty answer (the broker unreachable) would make every wait below pass vacuously.
    assert!(
        end.values().any(|high| *high > 0),
        "no end offsets for {names:?}: {end:?}"
    );
    end
}

/// The app's status of a ticket, as the platform would name it.
fn platform_name(app_status: &str) -> TicketState {
    match app_status {
        "DISPATCHED" => TicketState::Dispatched,
        "SIGNED" | "EXTENSION_REQUESTED" => TicketState::Signed,
        "REPLIED" => TicketState::Replied,
        "RETURNED" => TicketState::Returned,
        "CLOSED" => TicketState::Closed,
        other => panic!("unknown app status {other}"),
    }
}

async fn app_status(api: &Api, ticket: &str) -> String {
    let (status, body) = api
        .get(Some(HANDLER), &format!("/api/v1/tickets/{ticket}"))
        .await;
    assert_eq!(status, 200, "{ticket}: {body}");
    body["ticket"]["status"]
        .as_str()
        .or_else(|| body["status"].as_str())
        .unwrap_or_else(|| panic!("no status in {body}"))
        .to_string()
}

async fn act(api: &Api, ticket: &str, action: &str, body: Value) {
    let (status, answer) = api
        .post(
            Some(HANDLER),
            &format!("/api/v1/tickets/{ticket}/{action}"),
            body,
        )
        .await;
    assert_eq!(status, 200, "{action} {ticket}: {answer}");
    assert_eq!(answer["code"], "OK", "{action} {ticket}: {answer}");
}

/// How many times the platform applied `action` to `ticket` (answered 0000 the first time).
fn applied(sim: &SimulatorHandle, ticket: &str, action: &str) -> usize {
    sim.ticket(ticket)
        .unwrap()
        .history
        .iter()
        .filter(|h| h.action == action && h.code == "0000")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_flow_from_the_platform_to_the_app_and_the_bureaus_answers_back() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("e2e").replace('.', "");
    // A handling unit of this run only: the app serves it alone, so records other tests left
    // on the shared topics are skipped, identically by every app reading them.
    let unit = format!("113100E2E{}", &tag[3..12]).to_uppercase();

    // The platform, then the hub that pushes go to and deliveries come from.
    let gateway_port = free_port();
    let sim = Simulator::start(SimulatorConfig {
        hub_url: Some(format!("http://127.0.0.1:{gateway_port}")),
        platform_hmac_secret: PLATFORM_SECRET.into(),
        hub_hmac_secret: HUB_SECRET.into(),
        // A signed ticket can no longer be returned at the platform, while the app (24 h from
        // dispatch) still allows it: the one transition the platform must refuse here.
        return_window: Duration::ZERO,
        extension_approve_after: None,
        unit: Unit {
            code: unit.clone(),
            name: "上海市水务局（端到端测试）".into(),
        },
        ..SimulatorConfig::default()
    })
    .await
    .expect("the 12345 simulator starts");
    let hub = Hub::start(
        dir.path(),
        gateway_port,
        sim.base_url(),
        &tag,
        &repo().join("adapters"),
        "",
    );
    wait_ready(&format!("{}/readyz", hub.admin)).await;

    // Two apps on PostgreSQL: the one the handlers use, killed mid-stream below, and a
    // reference that is never interrupted.
    let topics = contract_topics();
    let main_db = TestDb::create(Backend::Postgres).await;
    let main_port = free_port();
    let main_config = write_config_for(
        &main_db.dir,
        &main_db.url,
        &topics,
        &unique("hotline-e2e"),
        &unit,
        &format!("127.0.0.1:{main_port}"),
    );
    let reference_db = TestDb::create(Backend::Postgres).await;
    let reference_config = write_config_for(
        &reference_db.dir,
        &reference_db.url,
        &topics,
        &unique("hotline-e2e-ref"),
        &unit,
        "127.0.0.1:0",
    );
    let mut app = App::start(&main_config);
    app.wait_log("database connected", 1).await;
    let mut reference = App::start(&reference_config);
    reference.wait_log("database connected", 1).await;

    // 1. 200 tickets pushed, 40 % as GBK XML; the app is killed once it holds some of them.
    let db = main_db.connect().await;
    let unit_filter = format!("handling_unit_code = '{unit}'");
    let ours = format!("SELECT COUNT(*) FROM hotline_tickets WHERE {unit_filter}");
    let (tickets, killed) = tokio::join!(sim.push_tickets(200, 0.4), async {
        wait_for("the app to store some of the tickets", WAIT, || async {
            count(&db, &ours).await >= 40
        })
        .await;
        app.signal(Signal::SIGKILL);
        app
    });
    let held = count(&db, &ours).await;
    assert!(held < 200, "killed mid-stream: it held {held} of 200");
    assert!(!killed.exit_status().await.success(), "killed, not stopped");
    let mut app = App::start(&main_config);
    assert_eq!(tickets.len(), 200);
    let mut xml = 0;
    for t in &tickets {
        let view = sim.ticket(t).unwrap();
        assert_eq!(view.hub_accepted, Some(true), "{t}: {:?}", view.pushes);
        xml += usize::from(view.format == PushFormat::Xml);
    }
    assert!(
        (40..=120).contains(&xml),
        "a real mix of JSON and XML: {xml} XML"
    );

    // A push sent again (the platform did not see the first answer) is absorbed by the hub.
    let again = sim.push_duplicate(&tickets[7]).await.expect("re-push");
    assert!(again.duplicate, "{again:?}");

    // Every ticket once, in both apps, and the killed app's tables are the reference's.
    let end = inbound_end();
    let ref_db = reference_db.connect().await;
    wait_read_to(&db, &end).await;
    wait_read_to(&ref_db, &end).await;
    let held = count(&db, &ours).await;
    if held != 200 {
        // Which tickets are missing, and what the app said about records it did not apply.
        let stored: Vec<String> = on_db!(&db, p => {
            sqlx::query_scalar(&format!("SELECT ticket_no FROM hotline_tickets WHERE {unit_filter}"))
                .fetch_all(p)
                .await
                .unwrap()
        });
        let missing: Vec<&String> = tickets.iter().filter(|t| !stored.contains(t)).collect();
        let mut seen = String::new();
        for t in &missing {
            let about = format!("ticket_no = '{t}'");
            let events = format!("SELECT COUNT(*) FROM hotline_ticket_events WHERE {about}");
            let tickets = format!("SELECT COUNT(*) FROM hotline_tickets WHERE {about}");
            seen.push_str(&format!(
                "{t}: events {} here, {} in the reference; tickets (any unit) {} here, {} in the reference; platform {:?}\n",
                count(&db, &events).await,
                count(&ref_db, &events).await,
                count(&db, &tickets).await,
                count(&ref_db, &tickets).await,
                sim.ticket(t).map(|v| v.pushes),
            ));
        }
        panic!(
            "every ticket once: {held} of 200 (the reference holds {}); missing {missing:?}\n{seen}rejected:{}",
            count(&ref_db, &ours).await,
            dump(&db)
                .await
                .split("== app_rejected_messages")
                .nth(1)
                .unwrap_or("")
        );
    }
    let dispatch_events = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM hotline_ticket_events e JOIN hotline_tickets t USING (ticket_no) \
             WHERE t.{unit_filter} AND e.kind = 'dispatched'"
        ),
    )
    .await;
    assert_eq!(dispatch_events, 200, "one dispatch event per ticket");
    let (after_crash, uninterrupted) = (dump(&db).await, dump(&ref_db).await);
    assert_eq!(
        after_crash, uninterrupted,
        "the tables after a kill and restart differ from an uninterrupted run"
    );
    reference.signal(Signal::SIGTERM);
    assert!(reference.exit_status().await.success());
    ref_db.close().await;

    // 2. The handlers act: sign 150, return 20 of the others, reply to 100 of the signed.
    app.wait_log("hotline-app listening", 1).await;
    let api = Api::new(format!("127.0.0.1:{main_port}").parse().unwrap());
    let (signed, rest) = tickets.split_at(150);
    let returned = &rest[..20];
    for t in signed {
        act(&api, t, "sign", json!({"signer_name": "王五"})).await;
    }
    // Killed again with signs still in its outbox: they are relayed after the restart, and the
    // platform takes each once (the message id is the idempotency key).
    app.signal(Signal::SIGKILL);
    assert!(!app.exit_status().await.success());
    let mut app = App::start(&main_config);
    app.wait_log("hotline-app listening", 1).await;
    for t in returned {
        act(
            &api,
            t,
            "return",
            json!({"reason": "不属于水务部门职责", "suggested_unit_name": "区生态环境局"}),
        )
        .await;
    }
    // A reply must follow its sign at the platform (the two travel on different topics).
    wait_for("the platform to see the 150 signs", WAIT, || async {
        signed.iter().all(|t| applied(&sim, t, "sign") == 1)
    })
    .await;
    for t in &signed[..100] {
        act(
            &api,
            t,
            "reply",
            json!({
                "result": "已安排人员现场处置，问题已解决。",
                "resolution": "RESOLVED",
                "caller_contacted": true,
                "handler_name": "李四"
            }),
        )
        .await;
    }
    // The app allows returning a signed ticket within 24 h of its dispatch; this platform does
    // not (return window 0): it answers 1003 and the hub dead-letters the return.
    let refused = &signed[120];
    act(
        &api,
        refused,
        "return",
        json!({"reason": "误派，退回重新分派"}),
    )
    .await;

    // 3. The platform's state agrees with the app's for every ticket but the refused one.
    wait_for("the platform to apply every action", WAIT, || async {
        returned.iter().all(|t| applied(&sim, t, "return") == 1)
            && signed[..100].iter().all(|t| applied(&sim, t, "reply") == 1)
    })
    .await;
    for t in &tickets {
        let platform = sim.ticket(t).unwrap();
        for action in ["sign", "return", "reply"] {
            assert!(applied(&sim, t, action) <= 1, "{t}: {action} applied twice");
        }
        let ours = app_status(&api, t).await;
        if t == refused {
            assert_eq!(ours, "RETURNED");
            assert_eq!(
                platform.state,
                TicketState::Signed,
                "the platform refused it"
            );
            continue;
        }
        assert_eq!(
            platform.state,
            platform_name(&ours),
            "{t}: the app says {ours}, the platform {:?}",
            platform.state
        );
    }
    let count_in = |state: TicketState| {
        tickets
            .iter()
            .filter(|t| sim.ticket(t).unwrap().state == state)
            .count()
    };
    assert_eq!(count_in(TicketState::Replied), 100);
    assert_eq!(count_in(TicketState::Signed), 50);
    assert_eq!(count_in(TicketState::Returned), 20);
    assert_eq!(count_in(TicketState::Dispatched), 30);
    let stats = sim.stats();
    assert_eq!(stats.bad_signatures, 0, "{stats:?}");

    // 4. The refused return is a dead letter with the platform's code, listed by `hub dlq`.
    let mut letters = Vec::new();
    wait_for("the refused return to be dead-lettered", WAIT, || {
        letters = hub.dlq_list(&["--route", "hotline12345/return", "--about", refused]);
        let found = !letters.is_empty();
        async move { found }
    })
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["partner_code"], "1003", "{letter}");
    assert_eq!(letter["status"], "pending", "{letter}");
    let everything = hub.dlq_list(&["--route", "hotline12345/return"]);
    assert!(
        everything
            .iter()
            .filter(|l| tickets.iter().any(|t| l["object_id"] == t.as_str()))
            .count()
            == 1,
        "only the refused return of this run is a dead letter: {everything:?}"
    );

    app.signal(Signal::SIGTERM);
    assert!(app.exit_status().await.success(), "the app stops cleanly");
    db.close().await;
    hub.stop().await;
    sim.shutdown().await;
    main_db.drop_db().await;
    reference_db.drop_db().await;
}

/// The real 12345 manifest, pulling every second with no settle time, from an hour back.
fn eager_adapters(dir: &Path) -> PathBuf {
    let manifest =
        std::fs::read_to_string(repo().join("adapters/hotline12345/adapter.toml")).unwrap();
    let manifest = manifest
        .replace("every_ms = 60000", "every_ms = 1000")
        .replace(
            "jitter_ms = 5000",
            "jitter_ms = 0\ninitial_lookback_ms = 3600000",
        )
        .replace("settle_ms = 10000", "settle_ms = 0");
    let root = dir.join("adapters");
    std::fs::create_dir_all(root.join("hotline12345")).unwrap();
    std::fs::write(root.join("hotline12345/adapter.toml"), manifest).unwrap();
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_platform_only_offers_a_query_the_hub_pulls_its_tickets_into_the_app() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let tag = unique("e2p").replace('.', "");
    let unit = format!("113100E2P{}", &tag[3..12]).to_uppercase();
    // A platform that pushes nothing: its tickets are only in its query API.
    let sim = Simulator::start(SimulatorConfig {
        hub_url: None,
        push: false,
        hub_hmac_secret: HUB_SECRET.into(),
        unit: Unit {
            code: unit.clone(),
            name: "上海市水务局（拉取测试）".into(),
        },
        ..SimulatorConfig::default()
    })
    .await
    .expect("the 12345 simulator starts");
    let first = sim.offer_tickets(30, None).await;

    let hub = Hub::start(
        dir.path(),
        free_port(),
        sim.base_url(),
        &tag,
        &eager_adapters(dir.path()),
        "deliveries = []\npulls = [\"new_tickets\"]",
    );
    wait_ready(&format!("{}/readyz", hub.admin)).await;
    // The app on its default backend, SQLite.
    let app_db = TestDb::create(Backend::Sqlite).await;
    let config = write_config_for(
        &app_db.dir,
        &app_db.url,
        &contract_topics(),
        &unique("hotline-e2p"),
        &unit,
        "127.0.0.1:0",
    );
    let mut app = App::start(&config);
    app.wait_log("database connected", 1).await;
    let db = app_db.connect().await;

    let ours = format!("SELECT COUNT(*) FROM hotline_tickets WHERE handling_unit_code = '{unit}'");
    wait_for("the pulled tickets in the app", WAIT, || async {
        count(&db, &ours).await == 30
    })
    .await;
    // Tickets dispatched later are found by the next windows.
    let later = sim.offer_tickets(10, None).await;
    wait_for("the later tickets in the app", WAIT, || async {
        count(&db, &ours).await == 40
    })
    .await;
    for t in first.iter().chain(&later) {
        let events = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM hotline_ticket_events WHERE ticket_no = '{t}' AND kind = 'dispatched'"
            ),
        )
        .await;
        assert_eq!(
            events, 1,
            "{t}: pulled once, whatever the windows overlapping"
        );
    }
    let stats = sim.stats();
    assert!(stats.queries > 0, "{stats:?}");
    assert_eq!(stats.bad_signatures, 0, "{stats:?}");
    assert_eq!(stats.pushes_accepted, 0, "nothing was pushed: {stats:?}");

    app.signal(Signal::SIGTERM);
    assert!(app.exit_status().await.success());
    db.close().await;
    hub.stop().await;
    sim.shutdown().await;
}
