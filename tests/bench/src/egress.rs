//! The `egress` scenario: deliveries per second from `hotline.ticket.signed.v1` to a partner
//! simulator, against a bare rdkafka consumer reading the same records in the same run.
//!
//! * Isolation: the shared test broker keeps what earlier runs produced on the real topic, and
//!   a fresh consumer group reads from the earliest offset. So the run copies the contracts and
//!   mappings into its own folder and renames the signed-ticket topic there
//!   (`hotline.ticket.signed_b<10 hex>.v1`, as `hub/app/tests/egress.rs` does); the hub reads
//!   those copies.
//! * N records are produced before any hub runs (framed Avro, `signer_name` sealed with the
//!   development key ring, one ticket number each so the keys spread over the partitions).
//! * `egress-consume`: a bare rdkafka consumer (new group, earliest) reads the N records: what
//!   reading them costs without the egress; the ratio's baseline.
//! * `egress`: for each partner delay (0 and 50 ms), a bare hyper server in this process
//!   answers 200 `{"code":"0000","msg":"成功"}` to every POST, after the delay, and notes the
//!   arrival of each distinct idempotency key. A hub (new consumer group) delivers the N
//!   records with `partners.hotline12345.concurrency = 64`; the rate is N over the time from
//!   the first delivery's arrival to the N-th's. The hub's CPU and peak RSS are taken from its
//!   readiness to the N-th delivery (deliveries start right after it).
//!
//! The run fails (a check) unless every one of the N records arrived at the partner.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hub_bus::admin::{TopicAdmin, TopicSpec};
use hub_bus::{now_shanghai, BusSection, Envelope, Producer};
use hub_security::field::{FieldCipher, KeyRing};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;
use serde_json::json;

use crate::loadgen::LoadResult;
use crate::procs::{tail, Hub, HubOptions};
use crate::report::{Report, Row};
use crate::stats::ProcWindow;

/// The scenario's name on the command line.
pub const NAME: &str = "egress";
/// The partner's concurrency in the hub's configuration (the issue's "concurrency of 64").
pub const CONCURRENCY: usize = 64;
/// Partner answer delays measured.
pub const DELAYS_MS: [u64; 2] = [0, 50];
/// No new delivery for this long (after the first) ends the run as failed.
const STALL: Duration = Duration::from_secs(15);
const SECRET: &str = "hub-bench-egress-secret-0123456789";
const ANSWER: &str = r#"{"code":"0000","msg":"成功"}"#;

/// Contracts and mappings of this run alone, with a signed-ticket topic of its own.
struct Isolated {
    _dir: tempfile::TempDir,
    contracts: PathBuf,
    mappings: PathBuf,
    topic: String,
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("{}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn isolate(repo: &Path, state_dir: &Path) -> anyhow::Result<Isolated> {
    let dir = tempfile::Builder::new()
        .prefix("hub-bench-egress-")
        .tempdir_in(state_dir)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("hotline.ticket.signed_b{}.v1", &id[..10]);
    let contracts = dir.path().join("contracts/schemas");
    copy_dir(&repo.join("contracts/schemas"), &contracts)?;
    let mappings = dir.path().join("mappings");
    copy_dir(&repo.join("mappings"), &mappings)?;
    for file in [
        contracts.join("hotline/ticket_signed.v1.avsc"),
        mappings.join("hotline12345/mappings.toml"),
    ] {
        let text = std::fs::read_to_string(&file)?;
        let renamed = text.replace("\"hotline.ticket.signed.v1\"", &format!("\"{topic}\""));
        if renamed == text {
            bail!("{} does not name hotline.ticket.signed.v1", file.display());
        }
        std::fs::write(&file, renamed)?;
    }
    Ok(Isolated {
        _dir: dir,
        contracts,
        mappings,
        topic,
    })
}

/// Produces `n` signed-ticket records (distinct ticket numbers), as the gateway would have.
async fn produce(repo: &Path, bus: &BusSection, iso: &Isolated, n: usize) -> anyhow::Result<()> {
    let catalog =
        hub_contracts::load_dir(&iso.contracts).map_err(|e| anyhow::anyhow!("contracts: {e:?}"))?;
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == iso.topic)
        .context("the isolated contract")?;
    TopicAdmin::new(bus, Duration::from_secs(15))?
        .ensure(&[TopicSpec {
            name: iso.topic.clone(),
            partitions: contract.declaration.partitions,
            config: Default::default(),
        }])
        .await?;
    let cipher = FieldCipher::new(KeyRing::from_file(&repo.join("ops/dev-keyring.toml"))?);
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    let event = iso.topic.trim_end_matches(".v1");
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let ticket = format!("BENCH{run}{i:07}");
        let mut record = json!({
            "ticket_no": ticket,
            "handling_unit_code": "11310000002420347T",
            "handling_unit_name": "上海市水务局",
            "signer_name": "王五",
            "signed_at": "2026-11-22T09:45:00+08:00",
            "occurred_at": "2026-11-22T09:45:00+08:00"
        });
        crate::stages::seal(&cipher, contract, &mut record);
        let framed = hub_contracts::frame(
            contract.schema_id(),
            &contract
                .encode(&record)
                .map_err(|e| anyhow::anyhow!("encode: {e:?}"))?,
        );
        let envelope = Envelope::new(
            event,
            1,
            "hotline-app",
            "water-bureau",
            ticket,
            now_shanghai(),
        );
        records.push((envelope, framed));
    }
    let producer = Producer::new(bus)?;
    let results: Vec<_> = stream::iter(records.iter())
        .map(|(env, framed)| producer.send(&iso.topic, env, framed))
        .buffer_unordered(512)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(())
}

/// Reads `n` records of `topic` with a bare rdkafka consumer (new group, earliest): the time
/// from the first record to the n-th.
async fn bare_consume(bootstrap: &str, topic: &str, n: usize) -> anyhow::Result<Duration> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("hub-bench-egress-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut first = None;
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.recv()).await {
            Err(_) => bail!("the bare consumer read {got} of {n} records within 120 s"),
            Ok(Err(e)) => eprintln!("  bare consumer: {e}"),
            Ok(Ok(_)) => {
                first.get_or_insert_with(Instant::now);
                got += 1;
            }
        }
    }
    Ok(first.map_or(Duration::ZERO, |f| f.elapsed()))
}

/// What the partner simulator saw.
#[derive(Default)]
struct Seen {
    requests: u64,
    keys: HashSet<Bytes>,
    /// Arrival of each distinct idempotency key, in order.
    arrivals: Vec<Instant>,
    not_sign: u64,
}

/// A bare hyper server on a free port answering 200 `{"code":"0000","msg":"成功"}` to every
/// request, after `delay`.
async fn partner(delay: Duration) -> anyhow::Result<(SocketAddr, Arc<Mutex<Seen>>, Abort)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let state = Arc::clone(&state);
                    async move {
                        let now = Instant::now();
                        let key = req
                            .headers()
                            .get("x-idempotency-key")
                            .map(|v| Bytes::copy_from_slice(v.as_bytes()));
                        let sign = req.uri().path() == "/api/v1/tickets/sign";
                        {
                            let mut s = state.lock().unwrap();
                            s.requests += 1;
                            if !sign {
                                s.not_sign += 1;
                            } else if let Some(k) = key {
                                if s.keys.insert(k) {
                                    s.arrivals.push(now);
                                }
                            }
                        }
                        req.into_body().collect().await?;
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let mut resp =
                            Response::new(Full::new(Bytes::from_static(ANSWER.as_bytes())));
                        resp.headers_mut().insert(
                            CONTENT_TYPE,
                            HeaderValue::from_static("application/json; charset=utf-8"),
                        );
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, seen, Abort(task)))
}

/// Stops the partner's accept loop when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn partner_config(base: SocketAddr, group_prefix: &str, adapters: &Path) -> String {
    format!(
        r#"
[adapters]
dir = '{adapters}'

[partners.hotline12345]
base_url = "http://{base}"
app_id = "water-bureau-hub"
hmac_secret = "{SECRET}"
deliveries = ["sign"]
concurrency = {CONCURRENCY}
rate_per_second = 100000
burst = 100000

[egress]
group_prefix = "{group_prefix}"
"#,
        adapters = adapters.display(),
    )
}

/// Everything the scenario needs from the harness.
pub struct Setup<'a> {
    pub repo: &'a Path,
    pub state_dir: &'a Path,
    pub bootstrap: &'a str,
    pub bus: &'a BusSection,
    pub broker_pid: Option<u32>,
    pub records: usize,
    pub ready_timeout: Duration,
    pub stop_grace: Duration,
}

pub async fn run(
    s: &Setup<'_>,
    options: impl Fn() -> HubOptions,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = s.records;
    let iso = isolate(s.repo, s.state_dir)?;
    eprintln!(
        "{NAME}: {n} signed-ticket records on {}, delivered to a local partner (concurrency {CONCURRENCY})",
        iso.topic
    );
    let started = Instant::now();
    produce(s.repo, s.bus, &iso, n).await?;
    eprintln!(
        "  produced {n} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let me = std::process::id();
    let w = ProcWindow::start(me);
    let broker = s.broker_pid.map(ProcWindow::start);
    let took = bare_consume(s.bootstrap, &iso.topic, n).await?;
    let baseline = n as f64 / took.as_secs_f64().max(1e-9);
    let mut row = Row::from_load(
        "egress-consume",
        format!("bare consumer n={n}"),
        &LoadResult::default(),
        &done(n as u64, took),
        "hub-bench",
    );
    row.sut_usage = w.finish();
    row.broker = broker.as_ref().and_then(ProcWindow::finish);
    crate::harness::print_row(&row);
    report.rows.push(row);

    for delay_ms in DELAYS_MS {
        let delay = Duration::from_millis(delay_ms);
        let (addr, seen, _stop) = partner(delay).await?;
        let group = format!(
            "hub-bench-egress-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let mut o = options();
        o.contracts_dir = Some(iso.contracts.clone());
        o.mappings_dir = Some(iso.mappings.clone());
        o.extra_config = partner_config(addr, &group, &s.repo.join("adapters"));
        let mut hub = Hub::start(&o)?;
        let measured = async {
            hub.wait_ready(s.ready_timeout).await?;
            let hub_w = ProcWindow::start(hub.process.pid());
            let gen_w = ProcWindow::start(me);
            let broker_w = s.broker_pid.map(ProcWindow::start);
            // Generous: the slowest expected rate is far above n / (60 s + n / 100).
            let within = Duration::from_secs(60) + Duration::from_millis(10 * n as u64);
            let deadline = Instant::now() + within;
            let (mut last, mut last_at) = (0, Instant::now());
            loop {
                let got = seen.lock().unwrap().arrivals.len();
                if got >= n {
                    break;
                }
                if got != last {
                    (last, last_at) = (got, Instant::now());
                } else if got > 0 && last_at.elapsed() > STALL {
                    bail!("{got} of {n} records delivered, then none for {STALL:?}");
                }
                if let Some(status) = hub.process.exited() {
                    bail!("the hub exited ({status}) after {got} of {n} deliveries");
                }
                if Instant::now() >= deadline {
                    bail!("{got} of {n} records delivered within {within:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok((
                hub_w.finish(),
                gen_w.finish(),
                broker_w.and_then(|b| b.finish()),
            ))
        }
        .await;
        let (status, in_time) = hub.process.stop(s.stop_grace)?;
        report.checks.push((
            format!("egress hub (partner delay {delay_ms} ms) stopped cleanly on SIGTERM"),
            status.success() && in_time,
            format!("{status}"),
        ));
        let (hub_usage, gen_usage, broker_usage) = match measured {
            Ok(u) => u,
            Err(e) => {
                let kept = std::env::temp_dir().join(format!("hub-bench-egress-{group}.log"));
                let _ = std::fs::copy(&hub.log_file, &kept);
                let e = {
                    let seen = seen.lock().unwrap();
                    e.context(format!(
                        "partner saw {} requests, {} distinct keys, {} to other paths; hub log kept in {}",
                        seen.requests,
                        seen.keys.len(),
                        seen.not_sign,
                        kept.display()
                    ))
                };
                report.checks.push((
                    format!("egress, partner delay {delay_ms} ms: all {n} records delivered"),
                    false,
                    format!("{e:#}"),
                ));
                eprintln!(
                    "  FAIL egress delay {delay_ms} ms: {e:#}\n  the hub's last log lines:\n{}",
                    tail(&hub.log_file, 20)
                );
                continue;
            }
        };
        let seen = seen.lock().unwrap();
        let span = seen.arrivals[n - 1].duration_since(seen.arrivals[0]);
        let mut row = Row::from_load(
            NAME,
            format!("delay {delay_ms} ms c={CONCURRENCY} n={n}"),
            &LoadResult::default(),
            &done(n as u64, span),
            "hub",
        );
        row.sut_usage = hub_usage;
        row.generator = gen_usage;
        row.broker = broker_usage;
        row.closed_connections = Some(CONCURRENCY);
        row.ratio = Some((row.rate / baseline, baseline));
        crate::harness::print_row(&row);
        eprintln!(
            "  partner saw {} requests, {} distinct deliveries, {} to other paths",
            seen.requests,
            seen.keys.len(),
            seen.not_sign
        );
        report.checks.push((
            format!("egress, partner delay {delay_ms} ms: all {n} records delivered"),
            seen.keys.len() == n && seen.not_sign == 0,
            format!(
                "{} distinct, {} requests, {} to other paths",
                seen.keys.len(),
                seen.requests,
                seen.not_sign
            ),
        ));
        report.rows.push(row);
    }
    let rows: Vec<&Row> = report.rows.iter().filter(|r| r.scenario == NAME).collect();
    for r in rows {
        let line = format!(
            "egress, {}: {:.0} deliveries/s, {:.3} of the bare consumer's {baseline:.0} records/s",
            r.shape,
            r.rate,
            r.rate / baseline
        );
        report.summary.push(line);
    }
    Ok(())
}

/// `n` completions over `window`, as a load result.
fn done(n: u64, window: Duration) -> LoadResult {
    LoadResult {
        sent: n,
        ok: n,
        measured: n,
        window,
        ..Default::default()
    }
}
