//! Producer benchmarks: the bare rdkafka producer (the `ceiling-produce` shapes) and the hub's
//! own send path (`hub_bus::Producer::send`), both with the hub's producer settings
//! (idempotent, `acks=all`, lz4, the configured linger).
//!
//! `hub-bench produce` (the foundation's benchmark) runs the burst ceiling and `bus-send` at a
//! list of concurrencies; the harness (`hub-bench run`) uses the same burst plus closed- and
//! open-loop shapes through [`ProduceClient`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{FuturesUnordered, StreamExt};
use hub_bus::admin::{TopicAdmin, TopicSpec};
use hub_bus::{now_shanghai, producer_config, BusSection, Envelope, Producer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::loadgen::{Client, Outcome};
use crate::stats::Latencies;

/// Payload bytes that do not compress to nothing (so lz4 does not flatter the numbers).
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
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

/// The `[bus]` section every benchmark producer uses: the hub's defaults.
pub fn section(bootstrap: &str, linger_ms: u64) -> BusSection {
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

/// A new topic `bench.<name>.<random>` (never a contract topic, so the test suite's scan of
/// the contract topics never reads benchmark records).
pub async fn fresh_topic(bus: &BusSection, name: &str, partitions: i32) -> anyhow::Result<String> {
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

/// Results of a count-based producer run.
pub struct Burst {
    pub scenario: String,
    pub records: usize,
    pub elapsed: Duration,
    /// Per record, enqueue to delivery report.
    pub latencies: Latencies,
}

impl Burst {
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// The burst shape: every record enqueued at once, then every delivery report awaited (its
/// latencies are queueing times, not per-request latencies). With `warm`, one record is
/// delivered before the clock starts, so the fresh producer's start (metadata, producer id:
/// about half a second) is not timed; `hub-bench produce` keeps the original, unwarmed shape
/// so its documented numbers stay comparable.
pub async fn ceiling_burst(
    bus: &BusSection,
    topic: &str,
    count: usize,
    size: usize,
    warm: bool,
) -> anyhow::Result<Burst> {
    let producer: FutureProducer = producer_config(bus).create()?;
    let payloads: Vec<Vec<u8>> = (0..64).map(|i| payload(size, i)).collect();
    if warm {
        let record = FutureRecord::to(topic).key("warm-up").payload(&payloads[0]);
        producer
            .send(record, Timeout::After(Duration::from_secs(60)))
            .await
            .map_err(|(e, _)| e)
            .context("warm-up record not delivered")?;
    }
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
        latencies_us.push(latency.as_micros() as u32);
    }
    let elapsed = start.elapsed();
    Ok(Burst {
        scenario: "ceiling-produce".into(),
        records: count,
        elapsed,
        latencies: Latencies::new(latencies_us),
    })
}

/// `hub_bus::Producer::send` in a closed loop with `concurrency` senders.
pub async fn bus_send(
    bus: &BusSection,
    topic: &str,
    count: usize,
    size: usize,
    concurrency: usize,
) -> anyhow::Result<Burst> {
    let producer = Producer::new(bus)?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (producer, next, topic) = (producer.clone(), next.clone(), topic.to_string());
        let body = payload(size, worker as u64);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
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
                lat.push(t.elapsed().as_micros() as u32);
            }
        }));
    }
    let mut latencies_us = Vec::with_capacity(count);
    for t in tasks {
        latencies_us.extend(t.await??);
    }
    let elapsed = start.elapsed();
    Ok(Burst {
        scenario: format!("bus-send c={concurrency}"),
        records: count,
        elapsed,
        latencies: Latencies::new(latencies_us),
    })
}

/// One sender of the bare producer for the closed- and open-loop drivers: 1 KB records with
/// keys spread like the ingest's ticket numbers, no envelope headers (bare).
pub struct ProduceClient {
    producer: FutureProducer,
    topic: Arc<str>,
    payloads: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicUsize>,
}

impl ProduceClient {
    /// `n` senders sharing one producer (as the hub shares one).
    pub fn many(bus: &BusSection, topic: &str, size: usize, n: usize) -> anyhow::Result<Vec<Self>> {
        let producer: FutureProducer = producer_config(bus).create()?;
        let topic: Arc<str> = Arc::from(topic);
        let payloads = Arc::new((0..64).map(|i| payload(size, i)).collect::<Vec<_>>());
        let next = Arc::new(AtomicUsize::new(0));
        Ok((0..n)
            .map(|_| Self {
                producer: producer.clone(),
                topic: Arc::clone(&topic),
                payloads: Arc::clone(&payloads),
                next: Arc::clone(&next),
            })
            .collect())
    }
}

impl Client for ProduceClient {
    async fn call(&mut self) -> Outcome {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("GD{:014}", i % crate::payload::DISTINCT_BODIES);
        let record = FutureRecord::to(&self.topic)
            .key(&key)
            .payload(&self.payloads[i % self.payloads.len()]);
        match self
            .producer
            .send(record, Timeout::After(Duration::from_secs(60)))
            .await
        {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        }
    }
}

/// `hub-bench produce`: the foundation's table (burst ceiling, then `bus-send` at each
/// concurrency), printed as markdown and optionally written as JSON.
pub async fn produce_command(
    bus: &BusSection,
    count: usize,
    size: usize,
    concurrency: Vec<usize>,
    partitions: i32,
    json: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    let topic = fresh_topic(bus, "ceiling", partitions).await?;
    outcomes.push(ceiling_burst(bus, &topic, count, size, false).await?);
    for c in concurrency {
        let topic = fresh_topic(bus, "bussend", partitions).await?;
        outcomes.push(bus_send(bus, &topic, count, size, c).await?);
    }
    let ceiling = outcomes[0].rate();
    println!("| scenario | records | records/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | ratio to ceiling |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for o in &outcomes {
        let mbps = o.rate() * size as f64 / 1e6;
        let l = &o.latencies;
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            o.scenario,
            o.records,
            o.rate(),
            mbps,
            l.ms(0.5),
            l.ms(0.9),
            l.ms(0.99),
            l.ms(1.0),
            o.rate() / ceiling
        );
        rows.push(serde_json::json!({
            "scenario": o.scenario, "records": o.records, "payload_bytes": size,
            "elapsed_s": o.elapsed.as_secs_f64(), "records_per_s": o.rate(), "mb_per_s": mbps,
            "p50_ms": l.ms(0.5), "p90_ms": l.ms(0.9), "p99_ms": l.ms(0.99), "max_ms": l.ms(1.0),
            "ratio_to_ceiling": o.rate() / ceiling,
        }));
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
