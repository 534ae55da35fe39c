//! `hub-bench`: measures the hub's paths against ceilings taken in the same run on the same
//! machine, and reports numbers and ratios (never pass/fail on absolute times: these machines
//! are shared and noisy).
//!
//! `hub-bench produce` (the foundation's benchmark):
//! * `ceiling-produce`: a bare rdkafka producer, idempotent with `acks=all` and the hub's own
//!   producer settings, enqueues every record at once and waits for all delivery reports.
//! * `bus-send`: the hub's `hub_bus::Producer::send` (envelope headers, key, waiting for the
//!   delivery report) in a closed loop at a given concurrency, as the ingress path will use it.
//!
//! Needs a running broker: `ops/bench.sh` starts one and runs this in release mode.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use futures::stream::{FuturesUnordered, StreamExt};
use hub_bus::admin::{TopicAdmin, TopicSpec};
use hub_bus::{now_shanghai, producer_config, BusSection, Envelope, Producer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

#[derive(Parser)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "HUB_BENCH_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:19092"
    )]
    bootstrap: String,
    /// Producer `linger.ms` for every scenario (the hub's default is 0).
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mapping throughput on one core: a representative 12345 dispatch ticket as GBK XML and as
    /// JSON, through decode, parse, the VRL program and contract validation (and Avro encoding),
    /// against the bare decode-and-parse of the same bytes measured in the same run.
    Mapping {
        /// Iterations per scenario.
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Producer ceiling and the hub's send path.
    Produce {
        /// Records per scenario.
        #[arg(long, default_value_t = 50_000)]
        count: usize,
        /// Payload bytes per record.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Concurrent senders for `bus-send` (comma-separated for several runs).
        #[arg(long, default_value = "64,256", value_delimiter = ',')]
        concurrency: Vec<usize>,
        /// Partitions of the benchmark topics.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
}

/// Results of one scenario.
struct Outcome {
    scenario: String,
    records: usize,
    elapsed: Duration,
    /// Per-record latency (enqueue to delivery report), microseconds, sorted.
    latencies_us: Vec<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Payload bytes that do not compress to nothing (so lz4 does not flatter the numbers).
fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..size)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"0123456789abcdefghijklmnopqrstuvwxyz"[(x >> 59) as usize % 36]
        })
        .collect()
}

fn section(bootstrap: &str, linger_ms: u64) -> BusSection {
    BusSection {
        bootstrap_servers: bootstrap.to_string(),
        client_id: "hub-bench".into(),
        compression: hub_config::sections::Compression::Lz4,
        delivery_timeout_ms: 60_000,
        linger_ms,
        session_timeout_ms: 10_000,
        replication_factor: 1,
        librdkafka: Default::default(),
    }
}

async fn fresh_topic(bus: &BusSection, name: &str, partitions: i32) -> anyhow::Result<String> {
    let topic = format!(
        "bench.{name}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    TopicAdmin::new(bus, Duration::from_secs(15))?
        .ensure(&[TopicSpec {
            name: topic.clone(),
            partitions,
            config: Default::default(),
        }])
        .await?;
    Ok(topic)
}

async fn ceiling_produce(
    bus: &BusSection,
    topic: &str,
    count: usize,
    size: usize,
) -> anyhow::Result<Outcome> {
    let producer: FutureProducer = producer_config(bus).create()?;
    let payloads: Vec<Vec<u8>> = (0..64).map(|i| payload(size, i)).collect();
    let keys: Vec<String> = (0..count).map(|i| format!("obj-{}", i % 1000)).collect();
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    for (i, key) in keys.iter().enumerate() {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(&payloads[i % payloads.len()]);
        let sent_at = Instant::now();
        let fut = producer.send(record, Timeout::After(Duration::from_secs(60)));
        pending.push(async move { (fut.await, sent_at.elapsed()) });
    }
    let mut latencies_us = Vec::with_capacity(count);
    while let Some((result, latency)) = pending.next().await {
        result
            .map_err(|(e, _)| e)
            .context("ceiling record not delivered")?;
        latencies_us.push(latency.as_micros() as u64);
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Ok(Outcome {
        scenario: "ceiling-produce".into(),
        records: count,
        elapsed,
        latencies_us,
    })
}

async fn bus_send(
    bus: &BusSection,
    topic: &str,
    count: usize,
    size: usize,
    concurrency: usize,
) -> anyhow::Result<Outcome> {
    let producer = Producer::new(bus)?;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (producer, next, topic) = (producer.clone(), next.clone(), topic.to_string());
        let body = payload(size, worker as u64);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let env = Envelope::new(
                    "bench.record.sent",
                    1,
                    "hub-bench",
                    "bench",
                    format!("obj-{}", i % 1000),
                    now_shanghai(),
                );
                let t = Instant::now();
                producer.send(&topic, &env, &body).await?;
                lat.push(t.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut latencies_us = Vec::with_capacity(count);
    for t in tasks {
        latencies_us.extend(t.await??);
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Ok(Outcome {
        scenario: format!("bus-send c={concurrency}"),
        records: count,
        elapsed,
        latencies_us,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bus = section(&args.bootstrap, args.linger_ms);
    match args.command {
        Cmd::Mapping { iterations } => mapping_bench(iterations)?,
        Cmd::Produce {
            count,
            size,
            concurrency,
            partitions,
            json,
        } => {
            let mut outcomes = Vec::new();
            let topic = fresh_topic(&bus, "ceiling", partitions).await?;
            outcomes.push(ceiling_produce(&bus, &topic, count, size).await?);
            for c in concurrency {
                let topic = fresh_topic(&bus, "bussend", partitions).await?;
                outcomes.push(bus_send(&bus, &topic, count, size, c).await?);
            }
            let ceiling = outcomes[0].rate();
            println!("| scenario | records | records/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | ratio to ceiling |");
            println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            let mut rows = Vec::new();
            for o in &outcomes {
                let mbps = o.rate() * size as f64 / 1e6;
                println!(
                    "| {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    o.scenario,
                    o.records,
                    o.rate(),
                    mbps,
                    o.pct(0.5),
                    o.pct(0.9),
                    o.pct(0.99),
                    o.pct(1.0),
                    o.rate() / ceiling
                );
                rows.push(serde_json::json!({
                    "scenario": o.scenario, "records": o.records, "payload_bytes": size,
                    "elapsed_s": o.elapsed.as_secs_f64(), "records_per_s": o.rate(), "mb_per_s": mbps,
                    "p50_ms": o.pct(0.5), "p90_ms": o.pct(0.9), "p99_ms": o.pct(0.99), "max_ms": o.pct(1.0),
                    "ratio_to_ceiling": o.rate() / ceiling,
                }));
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&rows)?)?;
            }
        }
    }
    Ok(())
}

/// Runs `f` `iterations` times on this thread and returns records per second.
fn per_second(iterations: usize, mut f: impl FnMut()) -> f64 {
    // Warm up caches and allocator first.
    for _ in 0..iterations.min(500) {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    iterations as f64 / start.elapsed().as_secs_f64()
}

fn mapping_bench(iterations: usize) -> anyhow::Result<()> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = hub_contracts::load_dir(&repo.join("contracts/schemas"))
        .map_err(|p| anyhow::anyhow!("contracts: {}", p.len()))?;
    let set = hub_mapping::MappingSet::load(&repo.join("mappings"), &catalog).map_err(|p| {
        anyhow::anyhow!(
            "mappings: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let fixtures = repo.join("mappings/hotline12345/fixtures");
    let xml = std::fs::read(fixtures.join("dispatch_xml/normal_gbk.input.xml"))?;
    let json = std::fs::read(fixtures.join("dispatch_json/normal.input.json"))?;
    let xml_mapping = set
        .get("hotline12345", "dispatch_xml")
        .context("dispatch_xml mapping")?;
    let json_mapping = set
        .get("hotline12345", "dispatch_json")
        .context("dispatch_json mapping")?;
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == "hotline.ticket.dispatched.v1")
        .context("dispatch contract")?;

    let rows = [
        (
            "xml-gbk: decode + parse only (baseline)",
            per_second(iterations, || {
                let _ = xml_mapping.read_input(&xml).expect("readable");
            }),
        ),
        (
            "xml-gbk: decode + parse + VRL + validate",
            per_second(iterations, || {
                let _ = xml_mapping.inbound(&xml, &catalog).expect("maps");
            }),
        ),
        (
            "xml-gbk: … + Avro encode",
            per_second(iterations, || {
                let record = xml_mapping.inbound(&xml, &catalog).expect("maps");
                let _ = contract.encode(&record).expect("encodes");
            }),
        ),
        (
            "json: decode + parse only (baseline)",
            per_second(iterations, || {
                let _ = json_mapping.read_input(&json).expect("readable");
            }),
        ),
        (
            "json: decode + parse + VRL + validate",
            per_second(iterations, || {
                let _ = json_mapping.inbound(&json, &catalog).expect("maps");
            }),
        ),
    ];
    println!(
        "payloads: GBK XML {} bytes, JSON {} bytes; one thread; {iterations} iterations each",
        xml.len(),
        json.len()
    );
    println!("| scenario | records/s (one core) | ratio to its baseline |");
    println!("|---|---:|---:|");
    for (i, (name, rate)) in rows.iter().enumerate() {
        let baseline = if i < 3 { rows[0].1 } else { rows[3].1 };
        println!("| {name} | {rate:.0} | {:.2} |", rate / baseline);
    }
    Ok(())
}
