//! Per-stage costs of the ingest path, measured in this process by calling the library
//! functions the gateway calls, in its order, on the same 1 KB requests. The live hub has no
//! metrics histograms yet (the Prometheus issue adds them); until then this is where the time
//! of one request goes, one stage at a time, on one core with nothing else running.
//!
//! CPU stages (one thread, every operation timed): `verify` (canonical string with the SM3 of
//! the body, then HMAC-SM3), `decrypt` (SM4-GCM of a 1 KB body, what an encrypted push adds;
//! ingest-1k sends plain bodies), `map` (decode, parse, VRL, contract validation), `seal`
//! (SM4-GCM of each personal field the contract marks), `encode` (Avro), `frame` (schema id
//! and the Confluent header). I/O stages: `nonce-claim` (the replay check's write to the
//! state store, on the same kind of store and disk as the hub's), and `produce`
//! (`hub_bus::Producer::send`, answered after `acks=all`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hub_bus::{now_shanghai, BusSection, Envelope, Producer};
use hub_contracts::{Catalog, Contract};
use hub_mapping::MappingSet;
use hub_security::field::{FieldCipher, KeyRing};
use hub_security::signing::{RequestParts, SignatureMethod, VerifyingCredential};
use serde_json::Value;

use crate::payload::{Format, Signer, APP_ID, HMAC_SECRET, PARTNER};
use crate::stats::{cpu_seconds, Latencies};

/// One stage's numbers.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: &'static str,
    /// What it calls.
    pub calls: &'static str,
    pub ops: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Operations per second on one core (CPU stages), or completed per second at the given
    /// concurrency (I/O stages).
    pub per_s: f64,
    /// CPU microseconds of this whole process per operation (I/O stages: their CPU cost).
    pub cpu_us: Option<f64>,
    /// Part of the ingest-1k (JSON) path: summed for the per-request CPU estimate.
    pub on_ingest_path: bool,
}

fn timed(name: &'static str, calls: &'static str, ops: usize, mut f: impl FnMut(usize)) -> Stage {
    // Warm caches and the allocator first.
    for i in 0..ops.min(200) {
        f(i);
    }
    let mut lat = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let t = Instant::now();
        f(i);
        lat.push(u32::try_from(t.elapsed().as_nanos() / 100).unwrap_or(u32::MAX));
    }
    let wall = start.elapsed();
    // Tenths of microseconds, kept as integers: divide back.
    let l = Latencies::new(lat);
    Stage {
        name,
        calls,
        ops,
        mean_us: l.mean_us() / 10.0,
        p50_us: l.us(0.5) / 10.0,
        p99_us: l.us(0.99) / 10.0,
        per_s: ops as f64 / wall.as_secs_f64(),
        cpu_us: None,
        on_ingest_path: true,
    }
}

/// The loaded contracts and mappings, as the hub loads them.
pub struct Loaded {
    pub catalog: Catalog,
    pub set: MappingSet,
}

pub fn load(repo: &std::path::Path) -> anyhow::Result<Loaded> {
    let catalog = hub_contracts::load_dir(&repo.join("contracts/schemas"))
        .map_err(|p| anyhow::anyhow!("contracts: {} problems", p.len()))?;
    let set = MappingSet::load(&repo.join("mappings"), &catalog).map_err(|p| {
        anyhow::anyhow!(
            "mappings: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    Ok(Loaded { catalog, set })
}

/// Seals every personal field of `contract` in `record` (top-level and nested object paths,
/// as the contract lists them), with the gateway's context `<topic>/<path>`.
pub fn seal(cipher: &FieldCipher, contract: &Contract, record: &mut Value) -> usize {
    let mut sealed = 0;
    for field in &contract.pii {
        let context = format!("{}/{}", contract.declaration.topic, field.path);
        let mut at = Some(&mut *record);
        for seg in field.path.split('.') {
            at = at.and_then(|v| v.get_mut(seg));
        }
        if let Some(Value::String(s)) = at {
            if FieldCipher::is_sealed(s) {
                continue;
            }
            *s = cipher.seal(&context, s).expect("sealing works");
            sealed += 1;
        }
    }
    sealed
}

/// How many operations each stage runs.
pub struct Sizes {
    pub cpu_ops: usize,
    pub nonce_ops: usize,
    pub produce_ops: usize,
}

pub async fn run(
    repo: &std::path::Path,
    state_dir: &std::path::Path,
    bus: &BusSection,
    sizes: &Sizes,
) -> anyhow::Result<(Vec<Stage>, usize, usize)> {
    let loaded = load(repo)?;
    let (catalog, set) = (&loaded.catalog, &loaded.set);
    let json = set
        .get(PARTNER, Format::Json.mapping())
        .context("dispatch_json mapping")?;
    let xml = set
        .get(PARTNER, Format::XmlGbk.mapping())
        .context("dispatch_xml mapping")?;
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == json.contract)
        .context("the dispatch contract")?;
    let signer = Signer::new(Format::Json);
    let xml_bodies = Format::XmlGbk.bodies();
    let n = sizes.cpu_ops;
    let bodies = signer.bodies().len();
    let mut stages = Vec::new();

    let signed = signer.presign(0, n);
    let verifier = VerifyingCredential::HmacSm3 {
        secret: HMAC_SECRET.as_bytes().to_vec(),
    };
    stages.push(timed(
        "verify",
        "RequestParts::canonical (SM3 of the body) + VerifyingCredential::verify (HMAC-SM3)",
        n,
        |i| {
            let s = &signed[i % signed.len()];
            let parts = RequestParts {
                method: SignatureMethod::HmacSm3,
                http_method: "POST",
                path: signer.path(),
                raw_query: "",
                app_id: APP_ID,
                timestamp_ms: s.timestamp.to_str().unwrap_or("0").parse().unwrap_or(0),
                nonce: s.nonce.to_str().unwrap_or(""),
                body: &signer.bodies()[s.body],
                signed_headers: &[],
            };
            verifier
                .verify(&parts.canonical(), s.signature.to_str().unwrap_or(""))
                .expect("a fresh signature verifies");
        },
    ));

    let key = [7u8; 16];
    let sealed_bodies: Vec<(Vec<u8>, [u8; 12])> = signer
        .bodies()
        .iter()
        .take(64)
        .map(|b| {
            let nonce = hub_security::sm::random::<12>();
            (
                hub_security::sm::sm4_gcm_encrypt(&key, &nonce, b"", b).expect("encrypts"),
                nonce,
            )
        })
        .collect();
    let mut decrypt = timed(
        "decrypt",
        "hub_security::sm::sm4_gcm_decrypt of a 1 KB body (encrypted pushes only)",
        n,
        |i| {
            let (ct, nonce) = &sealed_bodies[i % sealed_bodies.len()];
            hub_security::sm::sm4_gcm_decrypt(&key, nonce, b"", ct).expect("decrypts");
        },
    );
    decrypt.on_ingest_path = false;
    stages.push(decrypt);

    stages.push(timed(
        "map",
        "Mapping::inbound_unvalidated, JSON: UTF-8 check, parse, VRL program (validation is in encode)",
        n,
        |i| {
            json.inbound_unvalidated(&signer.bodies()[i % bodies])
                .expect("maps");
        },
    ));
    let mut map_xml = timed(
        "map (xml-gbk)",
        "Mapping::inbound_unvalidated, GBK XML: decode, parse, VRL program (validation is in encode)",
        n,
        |i| {
            xml.inbound_unvalidated(&xml_bodies[i % xml_bodies.len()])
                .expect("maps");
        },
    );
    map_xml.on_ingest_path = false;
    stages.push(map_xml);

    let ring = KeyRing::from_file(&repo.join("ops/dev-keyring.toml"))?;
    let cipher = FieldCipher::new(ring);
    let records: Vec<Value> = signer
        .bodies()
        .iter()
        .map(|b| json.inbound(b, catalog).expect("maps"))
        .collect();
    let mut pii_fields = 0;
    {
        // Cloning a record is not part of the stage: the copies are made before the timing,
        // one per call (warm-up included), so no value is sealed twice.
        let mut copies: Vec<Value> = (0..n + 200).map(|i| records[i % bodies].clone()).collect();
        let mut next = 0;
        stages.push(timed(
            "seal",
            "FieldCipher::seal (SM4-GCM) of each x-pii field of the contract",
            n,
            |_| {
                pii_fields = seal(&cipher, contract, &mut copies[next]);
                next += 1;
            },
        ));
    }
    let sealed: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            seal(&cipher, contract, &mut r);
            r
        })
        .collect();
    stages.push(timed(
        "encode",
        "Contract::encode: JSON record → Avro value (validated on the way) → Avro binary",
        n,
        |i| {
            contract.encode(&sealed[i % bodies]).expect("encodes");
        },
    ));
    let datum = contract.encode(&sealed[0]).expect("encodes");
    stages.push(timed(
        "frame",
        "Contract::schema_id (kept since load) + hub_contracts::frame",
        n,
        |_| {
            let framed = hub_contracts::frame(contract.schema_id(), &datum);
            std::hint::black_box(framed);
        },
    ));

    stages.extend(nonce_claims(state_dir, sizes.nonce_ops).await?);
    stages.extend(produce(bus, sizes.produce_ops, &datum).await?);
    // What the hub puts on Kafka for one request: Confluent header + Avro datum.
    let record_bytes = 5 + datum.len();
    Ok((stages, pii_fields, record_bytes))
}

/// The replay check's write: sequential (its latency) and 64 at once (what the store takes).
async fn nonce_claims(state_dir: &std::path::Path, ops: usize) -> anyhow::Result<Vec<Stage>> {
    let dir = tempfile::Builder::new()
        .prefix("hub-bench-stages-")
        .tempdir_in(state_dir)?;
    let section = hub_state::StateSection {
        url: format!("sqlite://{}", dir.path().join("state.db").display()),
        max_connections: 8,
        ..Default::default()
    };
    let store = hub_state::StateStore::connect(&section, dir.path()).await?;
    let window = Duration::from_secs(600);
    let mut lat = Vec::with_capacity(ops);
    let start = Instant::now();
    for _ in 0..ops {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let t = Instant::now();
        anyhow::ensure!(
            store.claim_nonce(APP_ID, &nonce, window).await?,
            "fresh nonce refused"
        );
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    let wall = start.elapsed();
    let l = Latencies::new(lat);
    let sequential = Stage {
        name: "nonce-claim",
        calls: "StateStore::claim_nonce on SQLite (WAL, synchronous=FULL) in the hub's state folder, one at a time",
        ops,
        mean_us: l.mean_us(),
        p50_us: l.us(0.5),
        p99_us: l.us(0.99),
        per_s: ops as f64 / wall.as_secs_f64(),
        cpu_us: None,
        on_ingest_path: false,
    };

    let concurrent = 64;
    let per_task = (ops * 2).div_ceil(concurrent);
    let pid = std::process::id();
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrent)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let nonce = uuid::Uuid::new_v4().simple().to_string();
                    let t = Instant::now();
                    store.claim_nonce(APP_ID, &nonce, window).await?;
                    lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                Ok::<_, anyhow::Error>(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let wall = start.elapsed();
    let done = lat.len();
    let cpu = cpu0
        .zip(cpu_seconds(pid))
        .map(|(a, b)| (b - a) * 1e6 / done as f64);
    let l = Latencies::new(lat);
    let parallel = Stage {
        name: "nonce-claim c=64",
        calls: "the same, 64 at once (pool of 8 connections, as the hub's default)",
        ops: done,
        mean_us: l.mean_us(),
        p50_us: l.us(0.5),
        p99_us: l.us(0.99),
        per_s: done as f64 / wall.as_secs_f64(),
        cpu_us: cpu,
        on_ingest_path: true,
    };
    store.close().await;
    Ok(vec![sequential, parallel])
}

/// `Producer::send` of the framed record: one at a time (latency), then 64 at once
/// (throughput and the CPU this process spends per record, librdkafka's threads included).
async fn produce(bus: &BusSection, ops: usize, datum: &[u8]) -> anyhow::Result<Vec<Stage>> {
    let topic = crate::produce::fresh_topic(bus, "stages", 8).await?;
    let producer = Producer::new(bus)?;
    let framed = Arc::new(hub_contracts::frame(1, datum));
    let envelope = |i: usize| {
        Envelope::new(
            "hotline.ticket.dispatched",
            1,
            PARTNER,
            APP_ID,
            format!("GD{:014}", i % crate::payload::DISTINCT_BODIES),
            now_shanghai(),
        )
    };
    // The first send of a fresh producer fetches metadata and a producer id: not steady state.
    producer.send(&topic, &envelope(0), &framed).await?;
    let mut lat = Vec::with_capacity(ops);
    let start = Instant::now();
    for i in 0..ops {
        let env = envelope(i);
        let t = Instant::now();
        producer.send(&topic, &env, &framed).await?;
        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    let wall = start.elapsed();
    let l = Latencies::new(lat);
    let sequential = Stage {
        name: "produce",
        calls: "hub_bus::Producer::send (envelope headers, acks=all), one at a time",
        ops,
        mean_us: l.mean_us(),
        p50_us: l.us(0.5),
        p99_us: l.us(0.99),
        per_s: ops as f64 / wall.as_secs_f64(),
        cpu_us: None,
        on_ingest_path: false,
    };

    let concurrent = 64;
    let total = ops * 10;
    let per_task = total.div_ceil(concurrent);
    let pid = std::process::id();
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrent)
        .map(|w| {
            let (producer, topic, framed) = (producer.clone(), topic.clone(), Arc::clone(&framed));
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task);
                for k in 0..per_task {
                    let env = Envelope::new(
                        "hotline.ticket.dispatched",
                        1,
                        PARTNER,
                        APP_ID,
                        format!(
                            "GD{:014}",
                            (w * per_task + k) % crate::payload::DISTINCT_BODIES
                        ),
                        now_shanghai(),
                    );
                    let t = Instant::now();
                    producer.send(&topic, &env, &framed).await?;
                    lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                Ok::<_, anyhow::Error>(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let wall = start.elapsed();
    let done = lat.len();
    let cpu = cpu0
        .zip(cpu_seconds(pid))
        .map(|(a, b)| (b - a) * 1e6 / done as f64);
    let l = Latencies::new(lat);
    let parallel = Stage {
        name: "produce c=64",
        calls: "the same, 64 at once: throughput, and CPU per record of the whole process",
        ops: done,
        mean_us: l.mean_us(),
        p50_us: l.us(0.5),
        p99_us: l.us(0.99),
        per_s: done as f64 / wall.as_secs_f64(),
        cpu_us: cpu,
        on_ingest_path: true,
    };
    Ok(vec![sequential, parallel])
}
