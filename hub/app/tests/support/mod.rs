//! Shared by the `hub` binary's integration tests: run the binary, serve it, wait for it.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub mod broker;
pub mod isolate;
pub mod logged;
pub mod partner;
pub mod synthetic;

#[path = "../../../../tests/python/peer.rs"]
pub mod peer;

#[path = "../../../../tests/node/peer.rs"]
pub mod node_peer;

pub const HUB: &str = env!("CARGO_BIN_EXE_hub");
/// The `[admin] token` of the tests' hubs (`/api/v1/trace`; `/metrics` and `/registry` are
/// opened on their loopback listeners).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `hub` with a clean environment of HUB_* variables plus `env`.
pub fn hub(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(HUB);
    cmd.args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUB_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("hub runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("hub.toml");
    std::fs::write(&path, body).unwrap();
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn kafka() -> String {
    std::env::var("HUB_TEST_KAFKA_BOOTSTRAP")
        .expect("HUB_TEST_KAFKA_BOOTSTRAP is not set: run the tests with ops/test.sh")
}

/// A running `hub serve` that is killed if the test fails before stopping it.
pub struct Serving {
    pub child: Child,
    pub admin: String,
    /// Reads the hub's piped stderr while it runs: a pipe nobody reads fills up (64 KiB), and
    /// the hub's next log line then blocks the request that writes it. The lines are handed
    /// over by [`stop_and_collect_logs`].
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Serving {
    /// A started `hub serve`; its stderr, when piped, is drained from now on.
    pub fn new(mut child: Child, admin: String) -> Self {
        let log = child.stderr.take().map(|stderr| {
            std::thread::spawn(move || {
                BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                    .collect()
            })
        });
        Self { child, admin, log }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_serving(dir: &Path, bootstrap: &str) -> Serving {
    start_serving_with(dir, bootstrap, "")
}

/// Like [`start_serving`], with more configuration appended (e.g. a `[gateway]` section).
pub fn start_serving_with(dir: &Path, bootstrap: &str, extra: &str) -> Serving {
    start_serving_env(dir, bootstrap, extra, &[])
}

/// Like [`start_serving_with`], with `HUB_*` overrides in the environment (e.g. the state URL).
pub fn start_serving_env(
    dir: &Path,
    bootstrap: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Serving {
    let port = free_port();
    let contracts = repo().join("contracts/schemas");
    let path = write_config(
        dir,
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics_open = true\nregistry_open = true\n[bus]\nbootstrap_servers = \"{bootstrap}\"\n\
             [state]\nurl = \"sqlite://state/hub.db\"\n[contracts]\ndir = \"{}\"\n\
             [mappings]\ndir = \"{}\"\n[log]\nformat = \"json\"\n{extra}",
            contracts.display(),
            repo().join("mappings").display()
        ),
    );
    serve_config(&path, &format!("http://127.0.0.1:{port}"), env)
}

/// `hub serve` with a configuration the test wrote itself, whose admin listener is at `admin`
/// (`http://127.0.0.1:<port>`), with `HUB_*` overrides in the environment.
pub fn serve_config(config: &Path, admin: &str, env: &[(&str, &str)]) -> Serving {
    let mut cmd = Command::new(HUB);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUB_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let child = cmd
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("hub serve starts");
    Serving::new(child, admin.to_string())
}

/// Polls `url` until it answers `status`, for at most `within`.
pub async fn wait_for_status(url: &str, status: u16, within: Duration) -> serde_json::Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(5)).send().await {
            if r.status().as_u16() == status {
                return r.json().await.unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn stop_and_collect_logs(mut s: Serving) -> (std::process::ExitStatus, String) {
    kill(Pid::from_raw(s.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = s.child.wait().unwrap();
    let logs = s
        .log
        .take()
        .map(|reader| reader.join().expect("log reader"))
        .unwrap_or_default();
    (status, logs.join("\n"))
}

/// A `[bus]` section for the test broker.
pub fn bus_section(client_id: &str) -> hub_config::sections::BusSection {
    hub_config::sections::BusSection {
        bootstrap_servers: kafka(),
        client_id: client_id.into(),
        compression: hub_config::sections::Compression::Lz4,
        delivery_timeout_ms: 30_000,
        linger_ms: 0,
        session_timeout_ms: 10_000,
        replication_factor: 1,
        librdkafka: Default::default(),
    }
}

/// The hub's unified answer inside a partner's envelope, read back the way that partner's
/// integrators would: the 12345 platform gets `{"code": "0000", "msg", "data": {"hub_code", …}}`
/// (mappings/hotline12345/answer.vrl). Any other answer is returned as it is.
pub fn hub_answer(v: serde_json::Value) -> serde_json::Value {
    let Some(data) = v.get("data").filter(|d| d.get("hub_code").is_some()) else {
        return v;
    };
    let mut unified = serde_json::json!({
        "code": data["hub_code"],
        "message_zh": v["msg"],
        "partner_code": v["code"],
    });
    for key in [
        "message_en",
        "request_id",
        "message_id",
        "topic",
        "duplicate",
        "detail",
    ] {
        if let Some(x) = data.get(key) {
            unified[key] = x.clone();
        }
    }
    unified
}

/// `hub dlq list --json` of the hub of `config`, about `about` (a ticket, a case number) when
/// given: one JSON value per dead letter.
pub fn dlq_list(config: &Path, about: Option<&str>) -> Vec<serde_json::Value> {
    let mut args = vec!["dlq", "list", "--json"];
    if let Some(about) = about {
        args.extend(["--about", about]);
    }
    args.extend(["--config", config.to_str().unwrap()]);
    let out = hub(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The gateway's OpenAPI document (`gateway` is its base URL), checked by an OpenAPI 3
/// validator independent of the hub (`tests/python/openapi_validate.py`).
pub async fn openapi(gateway: &str) -> serde_json::Value {
    let doc: serde_json::Value = reqwest::get(format!("{gateway}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verdict: Vec<String> = peer::run("openapi_validate.py", &serde_json::json!([doc]));
    assert_eq!(verdict, ["ok"], "the document is not valid OpenAPI 3");
    doc
}

/// `hub check` of `config` passes, then `hub serve` of it runs and is ready; its admin
/// listener is on `admin`.
pub async fn check_and_serve(config: &Path, admin: u16) -> Serving {
    let check = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let serving = serve_config(config, &format!("http://127.0.0.1:{admin}"), &[]);
    wait_for_status(
        &format!("http://127.0.0.1:{admin}/readyz"),
        200,
        std::time::Duration::from_secs(60),
    )
    .await;
    serving
}
