//! `hub-bench run smoke|full|profile`: one invocation that starts what it needs, measures the
//! ceilings and the hub's ingest path in the same run on the same machine, and reports.
//!
//! Order: `ceiling-http` (the bare server, its own process), `ceiling-produce` (bare producer
//! shapes in this process), the per-stage costs (in this process, nothing else running), then
//! one `hub serve` for `ingest-1k`, `ingest-1k-xml-gbk` and the open-loop pair (the hub at
//! half of its best closed-loop rate, and the bare producer at the same rate: the broker's
//! own latency there). Every level has a warm-up whose answers are checked but not measured.
//!
//! Ingest requests are signed as partners sign them (hub-security's `sign_request`: fresh
//! random nonce, current time). The warm-up signs live, and its rate sizes a pool signed
//! before the window (in parallel, while nothing is measured) so the generator does not take
//! the hub's CPU for signing; if the pool runs out, requests are signed live and counted. Every
//! nonce is used once; a pool is used within seconds, far inside the gateway's ±5 minute window.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;

use crate::loadgen::{closed_loop, open_loop, HttpClient, LoadResult};
use crate::payload::{Format, Requests, Signer};
use crate::procs::{start_plain, start_sink, tail, Hub, HubOptions};
use crate::produce::{ceiling_burst, fresh_topic, section, ProduceClient};
use crate::report::{Report, Row};
use crate::stages::{self, Sizes};
use crate::stats::{ProcUsage, ProcWindow};

/// Record size of `ceiling-produce` (the request bodies are the same size).
const RECORD_BYTES: usize = 1024;
/// Partitions of the bare producer's topics: those of `hotline.ticket.dispatched.v1`.
const PARTITIONS: i32 = 8;
/// Most requests signed ahead for one window (≈ 300 bytes each).
const MAX_PRESIGNED: usize = 3_000_000;

pub const SCENARIOS: [&str; 8] = [
    "ceiling-http",
    "ceiling-produce",
    "stages",
    "plain-pipeline",
    "ingest-1k",
    "ingest-1k-xml-gbk",
    "open-loop",
    crate::egress::NAME,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// ≤ 60 s of measuring; exits non-zero unless every scenario produced numbers and every
    /// request was answered 200.
    Smoke,
    /// Every scenario at 8, 64 and 256 connections, 20 s each (about 7 minutes).
    Full,
    /// ingest-1k at 8 connections with the hub under a profiler (`--hub-wrapper`, default
    /// valgrind's callgrind).
    Profile,
}

/// Options of `hub-bench run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[arg(value_enum)]
    pub mode: Mode,
    /// Scenarios to run (default: all): ceiling-http, ceiling-produce, stages, plain-pipeline,
    /// ingest-1k, ingest-1k-xml-gbk, open-loop, egress.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Connection counts of the closed-loop levels (default: smoke 8,64; full 8,64,256).
    #[arg(long, value_delimiter = ',')]
    pub connections: Vec<usize>,
    /// Seconds measured per level (default: smoke 3, full 20).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Seconds of warm-up before each level (default: smoke 1, full 3).
    #[arg(long)]
    pub warmup_s: Option<f64>,
    /// Records the egress scenario delivers per partner delay (default: smoke 2000, full 20000).
    #[arg(long)]
    pub egress_records: Option<usize>,
    /// Open-loop rate (requests/s); default half of the best ingest-1k closed-loop rate.
    #[arg(long)]
    pub open_rate: Option<f64>,
    /// Connections of the open-loop runs (default: smoke 64, full 256).
    #[arg(long)]
    pub open_connections: Option<usize>,
    /// The `hub` binary (release build).
    #[arg(long, env = "HUB_BENCH_HUB_BIN")]
    pub hub_bin: Option<PathBuf>,
    /// Where the hub's temporary folder (configuration, SQLite state, log) goes; default the
    /// system's temporary folder (on the machine's disk: the state store's fsyncs are real).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The hub's `state.url` instead of SQLite in the temporary folder (e.g. postgres://…).
    #[arg(long)]
    pub state_url: Option<String>,
    /// The hub's log level (`info` writes the access line of every request, as in production).
    #[arg(long, default_value = "info")]
    pub hub_log_level: String,
    /// Run the hub under this command, e.g. "valgrind --tool=callgrind".
    #[arg(long)]
    pub hub_wrapper: Option<String>,
    /// How long the hub may take to answer /readyz 200.
    #[arg(long)]
    pub ready_timeout_s: Option<u64>,
    /// Folder for the JSON and markdown results.
    #[arg(long, default_value = "var/bench")]
    pub out_dir: PathBuf,
    /// Append the results to this markdown file (`ops/bench.sh full`: docs/performance.md).
    #[arg(long)]
    pub append_doc: Option<PathBuf>,
    /// The command line to record with the results.
    #[arg(long)]
    pub command: Option<String>,
    /// The broker's process id, to report its CPU.
    #[arg(long, env = "HUB_BENCH_BROKER_PID")]
    pub broker_pid: Option<u32>,
}

struct Plan {
    scenarios: BTreeSet<String>,
    http_levels: Vec<usize>,
    ingest_levels: Vec<usize>,
    xml_levels: Vec<usize>,
    produce_levels: Vec<usize>,
    burst: usize,
    warmup: Duration,
    duration: Duration,
    open_connections: usize,
    egress_records: usize,
    sizes: Sizes,
    ready_timeout: Duration,
    stop_grace: Duration,
}

impl Plan {
    fn new(a: &RunArgs) -> anyhow::Result<Self> {
        let mut scenarios: BTreeSet<String> = a.scenarios.iter().cloned().collect();
        for s in &scenarios {
            if !SCENARIOS.contains(&s.as_str()) {
                bail!("unknown scenario `{s}` (known: {})", SCENARIOS.join(", "));
            }
        }
        let mut p = match a.mode {
            Mode::Smoke => Plan {
                scenarios: BTreeSet::new(),
                http_levels: vec![64],
                ingest_levels: vec![8, 64],
                xml_levels: vec![64],
                produce_levels: vec![256],
                burst: 5_000,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(3),
                open_connections: 64,
                egress_records: 2_000,
                sizes: Sizes {
                    cpu_ops: 500,
                    nonce_ops: 100,
                    produce_ops: 200,
                },
                ready_timeout: Duration::from_secs(60),
                stop_grace: Duration::from_secs(60),
            },
            Mode::Full => Plan {
                scenarios: BTreeSet::new(),
                http_levels: vec![8, 64, 256],
                ingest_levels: vec![8, 64, 256],
                xml_levels: vec![8, 64, 256],
                produce_levels: vec![256, 1024],
                burst: 100_000,
                warmup: Duration::from_secs(3),
                duration: Duration::from_secs(20),
                open_connections: 256,
                egress_records: 20_000,
                sizes: Sizes {
                    cpu_ops: 20_000,
                    nonce_ops: 1_000,
                    produce_ops: 2_000,
                },
                ready_timeout: Duration::from_secs(60),
                stop_grace: Duration::from_secs(60),
            },
            Mode::Profile => Plan {
                scenarios: ["ingest-1k".to_string()].into(),
                http_levels: vec![],
                ingest_levels: vec![8],
                xml_levels: vec![],
                produce_levels: vec![],
                burst: 0,
                warmup: Duration::from_secs(5),
                duration: Duration::from_secs(30),
                open_connections: 0,
                egress_records: 0,
                sizes: Sizes {
                    cpu_ops: 0,
                    nonce_ops: 0,
                    produce_ops: 0,
                },
                // Under valgrind the hub starts and stops tens of times slower.
                ready_timeout: Duration::from_secs(900),
                stop_grace: Duration::from_secs(600),
            },
        };
        if scenarios.is_empty() {
            scenarios = if p.scenarios.is_empty() {
                SCENARIOS.iter().map(|s| s.to_string()).collect()
            } else {
                p.scenarios.clone()
            };
        }
        p.scenarios = scenarios;
        if !a.connections.is_empty() {
            p.http_levels = a.connections.clone();
            p.ingest_levels = a.connections.clone();
            p.xml_levels = a.connections.clone();
        }
        if let Some(d) = a.duration_s {
            p.duration = Duration::from_secs_f64(d);
        }
        if let Some(w) = a.warmup_s {
            p.warmup = Duration::from_secs_f64(w);
        }
        if let Some(c) = a.open_connections {
            p.open_connections = c;
        }
        if let Some(n) = a.egress_records {
            p.egress_records = n;
        }
        if p.scenarios.contains(crate::egress::NAME) && p.egress_records == 0 {
            bail!("--egress-records must be at least 1");
        }
        if let Some(t) = a.ready_timeout_s {
            p.ready_timeout = Duration::from_secs(t);
        }
        // A pre-signed request must still be inside the gateway's ±5 minute window when sent.
        if p.duration > Duration::from_secs(200) {
            bail!("--duration-s is at most 200 (signed requests must stay inside the gateway's time window)");
        }
        Ok(p)
    }

    fn has(&self, s: &str) -> bool {
        self.scenarios.contains(s)
    }
}

/// CPU and memory of the process under test, this process and the broker over one window.
struct Windows {
    sut: ProcWindow,
    generator: Option<ProcWindow>,
    broker: Option<ProcWindow>,
}

impl Windows {
    fn start(sut: u32, broker: Option<u32>) -> Self {
        let me = std::process::id();
        Self {
            sut: ProcWindow::start(sut),
            generator: (sut != me).then(|| ProcWindow::start(me)),
            broker: broker.map(ProcWindow::start),
        }
    }

    fn finish(&self, row: &mut Row) {
        row.sut_usage = self.sut.finish();
        row.generator = self.generator.as_ref().and_then(ProcWindow::finish);
        row.broker = self.broker.as_ref().and_then(ProcWindow::finish);
    }
}

pub(crate) fn print_row(r: &Row) {
    let cores = |u: &Option<ProcUsage>| u.map_or("–".into(), |u| format!("{:.2}", u.cores));
    eprintln!(
        "  {:<18} {:<22} {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  not-200 {}  {} CPU {} cores, peak {:.0} MB; generator {}; broker {}",
        r.scenario,
        r.shape,
        r.rate,
        r.latencies.ms(0.5),
        r.latencies.ms(0.99),
        r.failed(),
        r.sut,
        cores(&r.sut_usage),
        r.sut_usage.map_or(f64::NAN, |u| u.peak_rss_mb),
        cores(&r.generator),
        cores(&r.broker),
    );
}

fn git(repo: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")?
            .split_once(':')
            .map(|x| x.1.trim().to_string())
    });
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0);
    json!({
        "cores": std::thread::available_parallelism().map_or(1, |p| p.get()),
        "memory_gib": mem_gib.map(|g| (g * 10.0).round() / 10.0),
        "cpu": model,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        // ops/bench.sh's HUB_BENCH_BUILD; `debug` runs (CI's smoke) prove the harness, not speed.
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The broker's command line (its storage engine says memory or SQLite).
fn broker_desc(pid: Option<u32>, bootstrap: &str) -> String {
    let cmdline = pid
        .and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let storage = cmdline
        .iter()
        .position(|a| a == "--storage-engine")
        .and_then(|i| cmdline.get(i + 1));
    match storage {
        Some(s) => format!("Tansu at {bootstrap}, storage {s}"),
        None => format!("broker at {bootstrap}"),
    }
}

pub async fn run(a: RunArgs, bootstrap: &str, linger_ms: u64) -> anyhow::Result<bool> {
    let plan = Plan::new(&a)?;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().unwrap_or(repo);
    let bus = section(bootstrap, linger_ms);
    let broker_pid = a
        .broker_pid
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    let me = std::process::id();
    let state_dir = a.state_dir.clone().unwrap_or_else(std::env::temp_dir);
    let stamp = chrono::Utc::now();
    let ts = stamp.format("%Y%m%dT%H%M%SZ").to_string();
    std::fs::create_dir_all(&a.out_dir)?;

    let mut report = Report::default();
    let commit = git(&repo, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&repo, &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let command = a
        .command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let m = &mut report.meta;
    m.insert(
        "date".into(),
        json!(stamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    // Other work on a shared machine shows here (1-, 5- and 15-minute load averages).
    m.insert("loadavg_start".into(), json!(loadavg()));
    m.insert("commit".into(), json!(commit));
    m.insert("work_tree_dirty".into(), json!(dirty));
    m.insert("command".into(), json!(command));
    m.insert("mode".into(), json!(format!("{:?}", a.mode).to_lowercase()));
    m.insert("machine".into(), machine());
    m.insert("broker".into(), json!(broker_desc(broker_pid, bootstrap)));
    m.insert(
        "settings".into(),
        json!({
            "scenarios": plan.scenarios, "warmup_s": plan.warmup.as_secs_f64(),
            "duration_s": plan.duration.as_secs_f64(), "http_connections": plan.http_levels,
            "ingest_connections": plan.ingest_levels, "xml_connections": plan.xml_levels,
            "produce_concurrency": plan.produce_levels, "burst_records": plan.burst,
            "open_connections": plan.open_connections, "egress_records": plan.egress_records,
            "egress_concurrency": crate::egress::CONCURRENCY, "egress_delays_ms": crate::egress::DELAYS_MS,
            "body_bytes": crate::payload::BODY_BYTES,
            "record_bytes": RECORD_BYTES, "partitions": PARTITIONS, "linger_ms": linger_ms,
            "hub_log_level": a.hub_log_level, "hub_wrapper": a.hub_wrapper,
            "state": a.state_url.clone().unwrap_or_else(|| format!("sqlite in {}", state_dir.display())),
        }),
    );

    if plan.has("ceiling-http") {
        eprintln!("ceiling-http: a bare hyper server answering 200 to the same requests");
        let (sink, addr) = start_sink()?;
        let signer = Arc::new(Signer::new(Format::Json));
        // The bare server checks nothing: one signed pool, cycled.
        let requests = Arc::new(Requests::with_pool(
            Arc::clone(&signer),
            Format::Json,
            signer.presign(0, 4096),
            true,
        ));
        for &c in &plan.http_levels {
            let clients = HttpClient::many(addr, Arc::clone(&requests), c).await?;
            let (clients, warm) = closed_loop(clients, plan.warmup).await;
            let w = Windows::start(sink.pid(), broker_pid);
            let (clients, res) = closed_loop(clients, plan.duration).await;
            let mut row = Row::from_load(
                "ceiling-http",
                format!("closed c={c}"),
                &warm,
                &res,
                "http-sink",
            );
            w.finish(&mut row);
            row.closed_connections = Some(c);
            print_row(&row);
            report.rows.push(row);
            drop(clients);
        }
        let (status, in_time) = sink.stop(Duration::from_secs(10))?;
        // The sink is stopped by a signal it does not handle: only "it stopped" matters.
        report
            .checks
            .push(("http-sink stopped".into(), in_time, format!("{status}")));
    }

    if plan.has("ceiling-produce") {
        eprintln!("ceiling-produce: a bare rdkafka producer (acks=all, idempotent), {RECORD_BYTES}-byte records");
        let topic = fresh_topic(&bus, "ceiling", PARTITIONS).await?;
        let w = Windows::start(me, broker_pid);
        let burst = ceiling_burst(&bus, &topic, plan.burst, RECORD_BYTES, true).await?;
        let done = LoadResult {
            sent: burst.records as u64,
            ok: burst.records as u64,
            measured: burst.records as u64,
            window: burst.elapsed,
            latencies: burst.latencies,
            ..Default::default()
        };
        let mut row = Row::from_load(
            "ceiling-produce",
            format!("burst n={}", plan.burst),
            &LoadResult::default(),
            &done,
            "hub-bench",
        );
        w.finish(&mut row);
        print_row(&row);
        report.rows.push(row);
        for &c in &plan.produce_levels {
            let topic = fresh_topic(&bus, "ceiling", PARTITIONS).await?;
            let clients = ProduceClient::many(&bus, &topic, RECORD_BYTES, c)?;
            let (clients, warm) = closed_loop(clients, plan.warmup).await;
            let w = Windows::start(me, broker_pid);
            let (_clients, res) = closed_loop(clients, plan.duration).await;
            let mut row = Row::from_load(
                "ceiling-produce",
                format!("closed c={c}"),
                &warm,
                &res,
                "hub-bench",
            );
            w.finish(&mut row);
            print_row(&row);
            report.rows.push(row);
        }
    }

    if plan.has("stages") {
        eprintln!("per-stage costs, in-process");
        let (stages, fields, record_bytes) =
            stages::run(&repo, &state_dir, &bus, &plan.sizes).await?;
        for s in &stages {
            eprintln!(
                "  {:<18} mean {:>9.1} µs  p99 {:>9.1} µs  {:>9.0}/s{}",
                s.name,
                s.mean_us,
                s.p99_us,
                s.per_s,
                s.cpu_us
                    .map_or(String::new(), |c| format!("  CPU {c:.1} µs/op"))
            );
        }
        report.stages = stages;
        report.pii_fields_sealed = fields;
        report.record_bytes = record_bytes;
    }

    if plan.has("plain-pipeline") {
        eprintln!("plain-pipeline: the hub's path as straight code (verify, map, seal, Avro, produce acks=all), no state store");
        let topic = fresh_topic(&bus, "plain", PARTITIONS).await?;
        let (plain, addr) = start_plain(&repo, bootstrap, linger_ms, &topic)?;
        let measured = signed_levels(
            &plan,
            addr,
            plain.pid(),
            (
                "plain-pipeline",
                "plain-pipeline",
                Format::Json,
                &plan.ingest_levels,
            ),
            broker_pid,
            &mut report,
        )
        .await;
        let (status, in_time) = plain.stop(Duration::from_secs(10))?;
        report.checks.push((
            "plain-pipeline stopped".into(),
            in_time,
            format!("{status}"),
        ));
        measured?;
    }

    let hub_options = || HubOptions {
        bin: a.hub_bin.clone().unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo.join("target"), PathBuf::from);
            target.join("release/hub")
        }),
        repo: repo.clone(),
        bootstrap: bootstrap.to_string(),
        linger_ms,
        state_url: a.state_url.clone(),
        state_dir: state_dir.clone(),
        log_level: a.hub_log_level.clone(),
        wrapper: a.hub_wrapper.clone(),
        contracts_dir: None,
        mappings_dir: None,
        extra_config: String::new(),
    };
    let ingest = ["ingest-1k", "ingest-1k-xml-gbk", "open-loop"]
        .iter()
        .any(|s| plan.has(s));
    if ingest || plan.has(crate::egress::NAME) {
        // What exactly is measured: the binary's own version line (version, commit, librdkafka).
        let version = std::process::Command::new(hub_options().bin)
            .arg("version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        report.meta.insert("hub_version".into(), json!(version));
    }
    if ingest {
        let options = hub_options();
        eprintln!("starting the hub ({})", options.bin.display());
        let mut hub = Hub::start(&options)?;
        let ready_in = hub.wait_ready(plan.ready_timeout).await?;
        eprintln!(
            "  ready in {:.1} s (state {})",
            ready_in.as_secs_f64(),
            hub.state_url
        );
        report
            .meta
            .insert("hub_ready_s".into(), json!(ready_in.as_secs_f64()));
        let measured = ingest_levels(&plan, &hub, broker_pid, &mut report).await;
        if measured.is_ok() {
            // The hub's own view of where the time went, over every request above.
            let scraped = crate::loadgen::get(hub.admin, "/metrics").await;
            let stages = match &scraped {
                Ok((200, body)) => crate::hub_stages::parse(&String::from_utf8_lossy(body)),
                _ => Vec::new(),
            };
            let expected = ["verify", "nonce_claim", "map", "seal", "encode", "produce"];
            let missing: Vec<&str> = expected
                .iter()
                .copied()
                .filter(|e| !stages.iter().any(|s| s.stage == *e))
                .collect();
            report.checks.push((
                "the hub's stage histograms cover verify, nonce_claim, map, seal, encode, produce"
                    .into(),
                missing.is_empty(),
                match &scraped {
                    Ok((status, _)) => format!("/metrics {status}; missing {missing:?}"),
                    Err(e) => format!("/metrics: {e}"),
                },
            ));
            for s in &stages {
                eprintln!(
                    "  hub {:<12} n {:>8}  mean {:>9.1} µs  p50 {:>9.1} µs  p99 {:>9.1} µs",
                    s.stage, s.count, s.mean_us, s.p50_us, s.p99_us
                );
            }
            report.hub_stages = stages;
        }
        let open = match measured {
            Ok(()) if plan.has("open-loop") => {
                open_loop_pair(&plan, &a, &hub, &bus, broker_pid, &mut report).await
            }
            other => other,
        };
        let (status, in_time) = hub.process.stop(plan.stop_grace)?;
        let log_bytes = std::fs::metadata(&hub.log_file).map_or(0, |m| m.len());
        let log_tail = tail(&hub.log_file, 20);
        report.meta.insert("hub_log_bytes".into(), json!(log_bytes));
        report.checks.push((
            "hub stopped cleanly on SIGTERM (exit 0 within the grace period)".into(),
            status.success() && in_time,
            format!("{status}"),
        ));
        if let Err(e) = open {
            bail!("{e:#}\nthe hub's last log lines:\n{log_tail}");
        }
        if !status.success() {
            eprintln!("the hub's last log lines:\n{log_tail}");
        }
    }

    if plan.has(crate::egress::NAME) {
        let setup = crate::egress::Setup {
            repo: &repo,
            state_dir: &state_dir,
            bootstrap,
            bus: &bus,
            broker_pid,
            records: plan.egress_records,
            ready_timeout: plan.ready_timeout,
            stop_grace: plan.stop_grace,
        };
        crate::egress::run(&setup, hub_options, &mut report).await?;
    }

    report.meta.insert("loadavg_end".into(), json!(loadavg()));
    report.compute();
    report.check_rows();
    for s in &plan.scenarios {
        let present = match s.as_str() {
            "stages" => !report.stages.is_empty(),
            "open-loop" => report.rows.iter().any(|r| r.open_loop),
            other => report.rows.iter().any(|r| r.scenario == other),
        };
        report
            .checks
            .push((format!("scenario {s} ran"), present, String::new()));
    }

    let md = report.markdown();
    println!("{md}");
    eprintln!("{}", report.checks_text());
    let json_path = a.out_dir.join(format!("{ts}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report.to_json())?)?;
    std::fs::write(a.out_dir.join(format!("{ts}.md")), &md)?;
    eprintln!("results: {}", json_path.display());

    if let Some(doc) = &a.append_doc {
        if report.passed() {
            append_doc(doc, &report, &md, &json_path, dirty)?;
            eprintln!("appended to {}", doc.display());
        } else {
            eprintln!("checks failed: not appended to {}", doc.display());
        }
    }
    Ok(report.passed())
}

/// The closed-loop levels of the ingest scenarios against the running hub.
async fn ingest_levels(
    plan: &Plan,
    hub: &Hub,
    broker_pid: Option<u32>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let hub_pid = hub.process.pid();
    for (scenario, format, levels) in [
        ("ingest-1k", Format::Json, &plan.ingest_levels),
        ("ingest-1k-xml-gbk", Format::XmlGbk, &plan.xml_levels),
    ] {
        if !plan.has(scenario) {
            continue;
        }
        eprintln!(
            "{scenario}: signed {} pushes to the hub, closed loop",
            format.mapping()
        );
        signed_levels(
            plan,
            hub.gateway,
            hub_pid,
            (scenario, "hub", format, levels),
            broker_pid,
            report,
        )
        .await?;
    }
    Ok(())
}

/// Closed-loop levels of signed pushes (fresh nonces, pre-signed pools) against the server at
/// `addr` (process `pid`): `what` is (scenario, process name, body format, connection counts).
async fn signed_levels(
    plan: &Plan,
    addr: std::net::SocketAddr,
    pid: u32,
    what: (&'static str, &'static str, Format, &[usize]),
    broker_pid: Option<u32>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (scenario, sut, format, levels) = what;
    {
        let signer = Arc::new(Signer::new(format));
        for &c in levels {
            let live = Arc::new(Requests::live(Arc::clone(&signer), format));
            let clients = HttpClient::many(addr, live, c).await?;
            let (mut clients, warm) = closed_loop(clients, plan.warmup).await;
            // The warm-up's rate, with margin, sizes the pool for the window.
            let expected = warm.rate().max(100.0) * 1.5 * plan.duration.as_secs_f64();
            let n = (expected as usize + 4 * c).min(MAX_PRESIGNED);
            let pool = signer.presign(warm.sent as usize, n);
            let requests = Arc::new(Requests::with_pool(
                Arc::clone(&signer),
                format,
                pool,
                false,
            ));
            for client in &mut clients {
                client.use_requests(Arc::clone(&requests));
            }
            let w = Windows::start(pid, broker_pid);
            let (clients, res) = closed_loop(clients, plan.duration).await;
            let mut row = Row::from_load(scenario, format!("closed c={c}"), &warm, &res, sut);
            w.finish(&mut row);
            row.closed_connections = Some(c);
            row.presigned = n;
            row.signed_live = requests.signed_live();
            print_row(&row);
            report.rows.push(row);
            drop(clients);
        }
    }
    Ok(())
}

/// ingest-1k at a fixed rate (default half of its best closed-loop rate), then the bare
/// producer at the same rate: the broker's own latency at that load.
async fn open_loop_pair(
    plan: &Plan,
    a: &RunArgs,
    hub: &Hub,
    bus: &hub_bus::BusSection,
    broker_pid: Option<u32>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let best = report
        .rows
        .iter()
        .filter(|r| r.scenario == "ingest-1k")
        .map(|r| r.rate)
        .fold(0.0, f64::max);
    let rate = match a.open_rate {
        Some(r) => r,
        None if best > 0.0 => (best / 2.0).max(1.0),
        None => bail!("open-loop needs --open-rate, or ingest-1k measured first"),
    };
    let c = plan.open_connections.max(1);
    let total = plan.warmup + plan.duration;
    eprintln!(
        "open loop at {rate:.0} requests/s ({c} connections): the hub, then the broker alone"
    );
    let signer = Arc::new(Signer::new(Format::Json));
    let n = ((rate * total.as_secs_f64() * 1.05) as usize + 1000).min(MAX_PRESIGNED);
    let requests = Arc::new(Requests::with_pool(
        Arc::clone(&signer),
        Format::Json,
        signer.presign(0, n),
        false,
    ));
    let clients = HttpClient::many(hub.gateway, Arc::clone(&requests), c).await?;
    let (clients, warm) = open_loop(clients, rate, plan.warmup).await;
    let w = Windows::start(hub.process.pid(), broker_pid);
    let (clients, res) = open_loop(clients, rate, plan.duration).await;
    let shape = format!("open {rate:.0}/s c={c}");
    let mut row = Row::from_load("ingest-1k", shape.clone(), &warm, &res, "hub");
    w.finish(&mut row);
    row.open_loop = true;
    row.presigned = n;
    row.signed_live = requests.signed_live();
    print_row(&row);
    report.rows.push(row);
    drop(clients);

    let topic = fresh_topic(bus, "open", PARTITIONS).await?;
    let clients = ProduceClient::many(bus, &topic, RECORD_BYTES, c)?;
    let (clients, warm) = open_loop(clients, rate, plan.warmup).await;
    let w = Windows::start(std::process::id(), broker_pid);
    let (_clients, res) = open_loop(clients, rate, plan.duration).await;
    let mut row = Row::from_load("broker-open", shape, &warm, &res, "hub-bench");
    w.finish(&mut row);
    row.open_loop = true;
    print_row(&row);
    report.rows.push(row);
    Ok(())
}

fn append_doc(
    doc: &std::path::Path,
    report: &Report,
    md: &str,
    json_path: &std::path::Path,
    dirty: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let meta = &report.meta;
    let s = |k: &str| {
        meta.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string()
    };
    let date = s("date");
    let m = meta.get("machine").cloned().unwrap_or_default();
    let settings = meta.get("settings").cloned().unwrap_or_default();
    let mut text = format!(
        "\n## {} — benchmark harness, full run (commit {}{})\n\n",
        date.get(..10).unwrap_or(&date),
        s("commit"),
        if dirty {
            ", work tree with uncommitted changes"
        } else {
            ""
        }
    );
    text.push_str(&format!("Command: `{}`\n\n", s("command")));
    text.push_str(&format!(
        "Machine: {} cores ({}), {} GiB, Linux {}; {}; hub state: {}; hub log level `{}`; \
         {} s measured per level after a {} s warm-up; 1,024-byte bodies and records; \
         topics of {} partitions; `linger.ms` {}. Hub binary: `{}`. Started {}; load average \
         {} at the start, {} at the end (2 cores: above 2 means other work shared the machine). \
         JSON: `{}` (not in git).\n\n",
        m["cores"],
        m["cpu"].as_str().unwrap_or("?"),
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or("?"),
        s("broker"),
        settings["state"].as_str().unwrap_or("?"),
        settings["hub_log_level"].as_str().unwrap_or("?"),
        settings["duration_s"],
        settings["warmup_s"],
        settings["partitions"],
        settings["linger_ms"],
        s("hub_version"),
        date,
        s("loadavg_start"),
        s("loadavg_end"),
        json_path.display(),
    ));
    text.push_str(md);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(doc)
        .with_context(|| format!("cannot append to {}", doc.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
