//! `hub-bench plain-pipeline`: the `plain-pipeline` server. The hub's ingest path written as
//! straight code, for speed, in its own process like the hub: a bare hyper HTTP/1.1 server
//! that, for every request,
//!
//! 1. verifies the HMAC-SM3 signature (the canonical string with the SM3 of the body), and
//!    refuses a bad one with 401;
//! 2. parses the JSON body and maps it with the same VRL program as the hub
//!    (`mappings/hotline12345`, `dispatch_json`, the same code tables);
//! 3. seals the contract's personal fields with SM4-GCM (`ops/dev-keyring.toml`);
//! 4. validates and encodes the record as Avro in one pass, with the contract's schema id
//!    (computed once) in the Confluent header;
//! 5. produces it keyed by the ticket number with the hub's producer settings (`acks=all`,
//!    idempotent, lz4, linger 0) and answers 200 only after the broker's acknowledgement
//!    (503 when it fails).
//!
//! No replay store, no envelope headers, no access log, no metrics, no trace: it is what the
//! work itself costs on this machine, so the hub is held against it in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hub_contracts::Contract;
use hub_mapping::Mapping;
use hub_security::field::{FieldCipher, KeyRing};
use hub_security::signing::{header, RequestParts, SignatureMethod, VerifyingCredential};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::Value;

use crate::payload::{Format, HMAC_SECRET, PARTNER};

/// The same size and shape as the hub's `ACCEPTED` answer (and the http-sink's).
const ANSWER: &[u8] = br#"{"code":"ACCEPTED","message_zh":"\u5df2\u63a5\u6536","message_en":"accepted","request_id":"0190b8d2-4b1c-7d3e-9f00-000000000000","message_id":"0190b8d2-4b1c-7d3e-9f00-000000000001","topic":"hotline.ticket.dispatched.v1","duplicate":false}"#;

struct Pipeline {
    mapping: Mapping,
    contract: Contract,
    schema_id: u32,
    cipher: FieldCipher,
    verifier: VerifyingCredential,
    /// `<topic>/<path>` of each personal field, its path split once.
    personal: Vec<(String, Vec<String>)>,
    producer: FutureProducer,
    topic: String,
    path: String,
}

fn respond(status: StatusCode, body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

impl Pipeline {
    fn load(
        repo: &std::path::Path,
        bus: &hub_bus::BusSection,
        topic: &str,
    ) -> anyhow::Result<Self> {
        let loaded = crate::stages::load(repo)?;
        let mapping = loaded
            .set
            .get(PARTNER, Format::Json.mapping())
            .context("the dispatch_json mapping")?
            .clone();
        let contract = loaded
            .catalog
            .contract(&mapping.contract)
            .context("the dispatch contract")?
            .clone();
        let personal = contract
            .pii
            .iter()
            .map(|f| {
                (
                    format!("{}/{}", contract.declaration.topic, f.path),
                    f.path.split('.').map(str::to_string).collect(),
                )
            })
            .collect();
        let ring = KeyRing::from_file(&repo.join("ops/dev-keyring.toml"))?;
        Ok(Self {
            schema_id: contract.schema_id(),
            mapping,
            contract,
            cipher: FieldCipher::new(ring),
            verifier: VerifyingCredential::HmacSm3 {
                secret: HMAC_SECRET.as_bytes().to_vec(),
            },
            personal,
            producer: hub_bus::producer_config(bus).create()?,
            topic: topic.to_string(),
            path: Format::Json.path(),
        })
    }

    /// Steps 1–4: the framed record and its key, or the status to refuse with.
    fn prepare(
        &self,
        headers: &hyper::HeaderMap,
        body: &[u8],
    ) -> Result<(Vec<u8>, String), StatusCode> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(app_id), Some(ts), Some(nonce), Some(signature)) = (
            get(header::APP_ID),
            get(header::TIMESTAMP),
            get(header::NONCE),
            get(header::SIGNATURE),
        ) else {
            return Err(StatusCode::UNAUTHORIZED);
        };
        let parts = RequestParts {
            method: SignatureMethod::HmacSm3,
            http_method: "POST",
            path: &self.path,
            raw_query: "",
            app_id,
            timestamp_ms: ts.parse().map_err(|_| StatusCode::UNAUTHORIZED)?,
            nonce,
            body,
            // The load generator signs no header besides the scheme's own.
            signed_headers: &[],
        };
        self.verifier
            .verify(&parts.canonical(), signature)
            .map_err(|_| StatusCode::UNAUTHORIZED)?;
        let mut record = self
            .mapping
            .inbound_unvalidated(body)
            .map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
        for (context, path) in &self.personal {
            let mut at = Some(&mut record);
            for seg in path {
                at = at.and_then(|v| v.get_mut(seg.as_str()));
            }
            if let Some(Value::String(s)) = at {
                *s = self
                    .cipher
                    .seal(context, s)
                    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            }
        }
        let key = record
            .get(&self.contract.declaration.key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let datum = self
            .contract
            .encode(&record)
            .map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
        Ok((hub_contracts::frame(self.schema_id, &datum), key))
    }

    async fn answer(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let (framed, key) = match self.prepare(&parts.headers, &body) {
            Ok(p) => p,
            Err(status) => return Ok(respond(status, b"{}")),
        };
        let record = FutureRecord::to(&self.topic).key(&key).payload(&framed);
        Ok(
            match self
                .producer
                .send(record, Timeout::After(Duration::from_secs(60)))
                .await
            {
                Ok(_) => respond(StatusCode::OK, ANSWER),
                Err(_) => respond(StatusCode::SERVICE_UNAVAILABLE, b"{}"),
            },
        )
    }
}

/// Serves until the process is stopped; prints `listening <addr>` once ready (contracts,
/// mappings and the producer loaded, the producer warmed with one record).
pub async fn serve(
    listen: SocketAddr,
    repo: &std::path::Path,
    bus: &hub_bus::BusSection,
    topic: &str,
) -> anyhow::Result<()> {
    let pipeline = Arc::new(Pipeline::load(repo, bus, topic)?);
    // The producer's first record (metadata, producer id) before any request is timed.
    pipeline
        .producer
        .send(
            FutureRecord::to(topic)
                .key("warm-up")
                .payload(&b"warm-up"[..]),
            Timeout::After(Duration::from_secs(60)),
        )
        .await
        .map_err(|(e, _)| e)
        .context("warm-up record not delivered")?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr()?)?;
        out.flush()?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let pipeline = Arc::clone(&pipeline);
        tokio::spawn(async move {
            let service = service_fn(move |req| Arc::clone(&pipeline).answer(req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
