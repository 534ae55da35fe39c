//! The processes the harness starts: the hub (`hub serve` on a configuration written here)
//! and the bare HTTP server of `ceiling-http` (this binary's `http-sink`). Both are stopped
//! with SIGTERM; a process still running when its handle is dropped (the harness failed
//! half-way) is killed, so no benchmark leaves a hub behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::loadgen::get_status;
use crate::payload::{APP_ID, HMAC_SECRET, PARTNER};

/// A child process, killed if dropped while running.
pub struct Guarded {
    child: Option<Child>,
}

impl Guarded {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Has it exited already (and how)?
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `grace` (SIGKILL after that). Returns the exit status and
    /// whether it stopped within the grace period.
    pub fn stop(mut self, grace: Duration) -> anyhow::Result<(ExitStatus, bool)> {
        let mut child = self.child.take().context("already stopped")?;
        if let Some(status) = child.try_wait()? {
            return Ok((status, true));
        }
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok((status, true));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill()?;
        Ok((child.wait()?, false))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The bare server of `ceiling-http`: this binary's `http-sink` in a child process.
pub fn start_sink() -> anyhow::Result<(Guarded, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["http-sink", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start hub-bench http-sink")?;
    let stdout = child.stdout.take().context("sink stdout")?;
    let guarded = Guarded { child: Some(child) };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .context("the sink did not say where it listens")?
        .parse()?;
    Ok((guarded, addr))
}

/// The server of `plain-pipeline`: this binary's `plain-pipeline` in a child process, producing
/// to `topic` on `bootstrap` with linger `linger_ms`.
pub fn start_plain(
    repo: &Path,
    bootstrap: &str,
    linger_ms: u64,
    topic: &str,
) -> anyhow::Result<(Guarded, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--bootstrap")
        .arg(bootstrap)
        .arg("--linger-ms")
        .arg(linger_ms.to_string())
        .args([
            "plain-pipeline",
            "--listen",
            "127.0.0.1:0",
            "--topic",
            topic,
        ])
        .arg("--repo")
        .arg(repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start hub-bench plain-pipeline")?;
    let stdout = child.stdout.take().context("plain-pipeline stdout")?;
    let guarded = Guarded { child: Some(child) };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .context("plain-pipeline did not start (see its error above)")?
        .parse()?;
    Ok((guarded, addr))
}

/// How to run the hub.
pub struct HubOptions {
    pub bin: PathBuf,
    pub repo: PathBuf,
    pub bootstrap: String,
    pub linger_ms: u64,
    /// `state.url`; `None`: SQLite in `state_dir`.
    pub state_url: Option<String>,
    pub state_dir: PathBuf,
    pub log_level: String,
    /// A command the hub runs under (`valgrind --tool=callgrind …`), split on spaces.
    pub wrapper: Option<String>,
    /// Contracts and mappings other than the repository's (the egress scenario's copies with
    /// a topic of their own).
    pub contracts_dir: Option<PathBuf>,
    pub mappings_dir: Option<PathBuf>,
    /// More configuration appended as it is (the egress scenario's partner and `[egress]`).
    pub extra_config: String,
}

/// A running `hub serve`.
pub struct Hub {
    pub process: Guarded,
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
    pub state_url: String,
    pub log_file: PathBuf,
    /// Keeps the temporary folder of the configuration (and of the state, by default).
    _dir: tempfile::TempDir,
}

/// A TOML literal string (no escapes: the harness's own paths never hold a `'`).
fn lit(s: &str) -> anyhow::Result<String> {
    if s.contains('\'') || s.contains('\n') {
        bail!("path `{s}` cannot be written as a TOML literal string");
    }
    Ok(format!("'{s}'"))
}

/// The configuration: the example's app credentials, limits raised so they never cap the
/// benchmark, plain HTTP on a free port, JSON logs to a file.
fn config_text(
    o: &HubOptions,
    gateway: u16,
    admin: u16,
    state_url: &str,
) -> anyhow::Result<String> {
    let path = |p: &str| lit(&o.repo.join(p).display().to_string());
    Ok(format!(
        r#"# Written by hub-bench for one benchmark run.
[hub]
shutdown_grace_ms = 30000
# The development key ring and secrets of the repository (refused by the production profile).
profile = "development"

[admin]
listen = "127.0.0.1:{admin}"
# The harness scrapes /metrics without a token (loopback only).
metrics_open = true

[bus]
bootstrap_servers = "{bootstrap}"
client_id = "hub-bench-hub"
linger_ms = {linger}

[state]
url = {state_url}

[contracts]
dir = {contracts}

[mappings]
dir = {mappings}

[gateway]
listen = "127.0.0.1:{gateway}"
plain_http = true
# Above the 256 connections of the largest level: the limit must not be what is measured.
max_concurrent_requests = 4096
key_ring = {key_ring}

[[gateway.apps]]
app_id = "{APP_ID}"
partner = "{PARTNER}"
hmac_secret = "{HMAC_SECRET}"
# Far above any rate this machine reaches: the benchmark measures the path, not the limiter.
rate_per_second = 10000000
burst = 10000000

[log]
format = "json"
level = "{level}"
{extra}"#,
        bootstrap = o.bootstrap,
        linger = o.linger_ms,
        state_url = lit(state_url)?,
        contracts = match &o.contracts_dir {
            Some(d) => lit(&d.display().to_string())?,
            None => path("contracts/schemas")?,
        },
        mappings = match &o.mappings_dir {
            Some(d) => lit(&d.display().to_string())?,
            None => path("mappings")?,
        },
        key_ring = path("ops/dev-keyring.toml")?,
        level = o.log_level,
        extra = o.extra_config,
    ))
}

impl Hub {
    /// Writes the configuration and starts `hub serve` (not yet ready: see [`Hub::wait_ready`]).
    pub fn start(o: &HubOptions) -> anyhow::Result<Self> {
        if !o.bin.is_file() {
            bail!(
                "no hub binary at {} (build it with `cargo build --release -p hub`, or pass --hub-bin)",
                o.bin.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("hub-bench-")
            .tempdir_in(&o.state_dir)
            .with_context(|| format!("cannot create a folder in {}", o.state_dir.display()))?;
        let (gateway, admin) = (free_port()?, free_port()?);
        let state_url = o
            .state_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("hub-state.db").display()));
        let config = dir.path().join("hub.toml");
        std::fs::write(&config, config_text(o, gateway, admin, &state_url)?)?;
        // The log stays in the temporary folder: at `info` it is one line per request.
        let log_file = dir.path().join("hub.log");
        let log = std::fs::File::create(&log_file)
            .with_context(|| format!("cannot create {}", log_file.display()))?;
        let mut argv: Vec<String> = o
            .wrapper
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        argv.push(o.bin.display().to_string());
        argv.extend(["serve", "--config"].map(String::from));
        argv.push(config.display().to_string());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        // Only the written configuration counts: no HUB_* override from the caller's shell.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUB_")) {
            cmd.env_remove(k);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", argv.join(" ")))?;
        Ok(Self {
            process: Guarded { child: Some(child) },
            gateway: SocketAddr::from(([127, 0, 0, 1], gateway)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            state_url,
            log_file,
            _dir: dir,
        })
    }

    /// Polls `/readyz` until 200 (broker reachable, state writable, topics present), then
    /// until the gateway accepts connections: `/readyz` can answer 200 before the gateway's
    /// listener is bound (the admin listener starts first; seen under valgrind).
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.exited() {
                bail!(
                    "the hub exited at start ({status}); its log:\n{}",
                    tail(&self.log_file, 20)
                );
            }
            if let Ok(200) = get_status(self.admin, "/readyz").await {
                if tokio::net::TcpStream::connect(self.gateway).await.is_ok() {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > within {
                bail!(
                    "the hub was not ready within {within:?}; its log:\n{}",
                    tail(&self.log_file, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
