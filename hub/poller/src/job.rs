//! One pull job: its schedule loop, and one run (windows and pages) under the job's lease.
//!
//! Pages are asked for as `[pull] paging` says: by page number (`{page}`, `{page_size}`), by
//! offset (`{offset}`, `{limit}`) or by the partner's cursor token (`{cursor}`, read from
//! `response.next_cursor`); every mode works inside the time windows (`{since}`, `{until}`).
//! The page's position (number and token) is saved with the cursor after each page, so a run
//! that stops resumes at the page it had reached.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone};
use hub_adapter::answer::{business_fields, classify, Verdict};
use hub_adapter::manifest::{AnswerSpec, Paging, PullSpec};
use hub_adapter::schedule::{parse_cron, parse_hours, with_jitter, within_hours, Schedule};
use hub_adapter::PartnerClient;
use hub_bus::{now_shanghai, shanghai, Delivery, Envelope, Lifecycle, Producer};
use hub_contracts::{Catalog, Contract};
use hub_mapping::{Mapping, MappingSet};
use hub_pipeline::{normalize, NormalizeError};
use hub_security::field::FieldCipher;
use hub_state::{Receipt, StateStore};
use metrics::{counter, gauge};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::cursor::{Cursor, Window};

/// What every job shares.
pub struct PullContext {
    pub catalog: Arc<Catalog>,
    pub mappings: Arc<MappingSet>,
    pub cipher: FieldCipher,
    pub producer: Producer,
    pub state: StateStore,
    /// Schema ids of an external registry by topic; absent: the hub's own.
    pub schema_ids: HashMap<String, u32>,
    /// This replica, as the lease holder.
    pub instance_id: String,
    /// How long a lease lasts without renewal (a dead replica's job is taken over after it).
    pub lease_ttl: Duration,
}

impl PullContext {
    fn schema_id(&self, contract: &Contract) -> u32 {
        hub_contracts::framing_schema_id(&self.schema_ids, contract)
    }
}

/// One configured pull.
#[derive(Clone)]
pub struct PullJob {
    pub partner: String,
    pub spec: PullSpec,
    pub answer: AnswerSpec,
    pub client: Arc<PartnerClient>,
}

impl PullJob {
    /// `<partner>/pull.<job>`: the job's name in metrics, leases, cursors and dead letters.
    pub fn route(&self) -> String {
        format!("{}/pull.{}", self.partner, self.spec.name)
    }
}

/// Why a run stopped before it caught up. The cursor stays where the last finished page left
/// it; the next tick goes on from there.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("PULL_LEASE_HELD: another replica is running this pull")]
    LeaseHeld,
    #[error("PULL_LEASE_LOST: the lease was lost during the run")]
    LeaseLost,
    #[error("PULL_PARTNER_FAILED: {0}")]
    Partner(String),
    #[error("PULL_PAGE_UNREADABLE: {0}")]
    Page(String),
    #[error("PULL_ITEM_IN_PROGRESS: item `{0}` is being produced by an earlier attempt; retry at the next tick")]
    InProgress(String),
    #[error("PULL_CONFIG: {0}")]
    Config(String),
    #[error(transparent)]
    Bus(#[from] hub_bus::BusError),
    #[error(transparent)]
    State(#[from] hub_state::StateError),
    #[error("PULL_STOPPED: shutdown during the run")]
    Stopped,
    /// An item could not be sealed for its dead letter: it is not written in clear.
    #[error("PERSONAL_DATA_UNPROTECTED: {0}")]
    Unprotected(String),
}

impl RunError {
    pub fn code(&self) -> &'static str {
        match self {
            RunError::LeaseHeld => "PULL_LEASE_HELD",
            RunError::LeaseLost => "PULL_LEASE_LOST",
            RunError::Partner(_) => "PULL_PARTNER_FAILED",
            RunError::Page(_) => "PULL_PAGE_UNREADABLE",
            RunError::InProgress(_) => "PULL_ITEM_IN_PROGRESS",
            RunError::Config(_) => "PULL_CONFIG",
            RunError::Bus(e) => e.code(),
            RunError::State(e) => e.code(),
            RunError::Stopped => "PULL_STOPPED",
            RunError::Unprotected(_) => "PERSONAL_DATA_UNPROTECTED",
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub pages: u32,
    pub produced: u32,
    pub duplicates: u32,
    pub dead_lettered: u32,
    /// The watermark after the run.
    pub watermark_ms: i64,
}

/// Starts every job's schedule loop on the lifecycle.
pub fn start_pulls(
    ctx: Arc<PullContext>,
    jobs: Vec<PullJob>,
    lifecycle: &Lifecycle,
) -> Result<Vec<String>, RunError> {
    let mut names = Vec::new();
    let mut prepared = Vec::new();
    for job in jobs {
        let schedule = match (&job.spec.every_ms, &job.spec.cron) {
            (Some(ms), _) => Schedule::Every(Duration::from_millis(*ms)),
            (None, Some(c)) => Schedule::Cron(Box::new(parse_cron(c).map_err(RunError::Config)?)),
            (None, None) => return Err(RunError::Config(format!("{}: no schedule", job.route()))),
        };
        names.push(job.route());
        prepared.push((job, schedule));
    }
    for (job, schedule) in prepared {
        let ctx = Arc::clone(&ctx);
        let token = lifecycle.token().clone();
        let span = info_span!("pull", job = %job.route());
        lifecycle.spawn(schedule_loop(ctx, job, schedule, token).instrument(span));
    }
    Ok(names)
}

async fn schedule_loop(
    ctx: Arc<PullContext>,
    job: PullJob,
    schedule: Schedule,
    token: CancellationToken,
) {
    let hours = job.spec.active_hours.as_deref().and_then(parse_hours);
    let route = job.route();
    info!("pull job scheduled");
    loop {
        let wait = with_jitter(
            schedule.until_next(&now_shanghai()),
            Duration::from_millis(job.spec.jitter_ms),
        );
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        if let Some(h) = &hours {
            if !within_hours(h, &now_shanghai()) {
                continue;
            }
        }
        // Each run is a hop starting its own trace; the items it produces carry it.
        let run_span = hub_telemetry::hop_span!("pull_run");
        hub_telemetry::continue_trace(&run_span, None);
        let outcome = run_once(&ctx, &job, &token)
            .instrument(run_span.clone())
            .await;
        // The run's outcome is logged in its span too (no await while it is entered).
        let _in_run = run_span.enter();
        match outcome {
            Ok(r) => {
                counter!("hub_poller_runs_total", "pull" => route.clone(), "outcome" => "ok")
                    .increment(1);
                if r.produced + r.dead_lettered > 0 {
                    info!(
                        pages = r.pages,
                        produced = r.produced,
                        duplicates = r.duplicates,
                        dead_lettered = r.dead_lettered,
                        "pull run finished"
                    );
                }
            }
            Err(RunError::LeaseHeld) => {
                counter!("hub_poller_runs_total", "pull" => route.clone(), "outcome" => "lease_held").increment(1);
            }
            Err(RunError::Stopped) => break,
            Err(e) => {
                counter!("hub_poller_runs_total", "pull" => route.clone(), "outcome" => e.code())
                    .increment(1);
                warn!(code = e.code(), error = %e, "pull run stopped; the next tick goes on from the saved cursor");
            }
        }
    }
    info!("pull job stopped");
}

fn lease_name(job: &PullJob) -> String {
    format!("pull:{}", job.route())
}

fn cursor_name(job: &PullJob) -> String {
    format!("pull:{}", job.route())
}

/// One run: takes the lease, pulls window after window until caught up, releases the lease.
pub async fn run_once(
    ctx: &PullContext,
    job: &PullJob,
    token: &CancellationToken,
) -> Result<RunReport, RunError> {
    let lease = lease_name(job);
    if !ctx
        .state
        .acquire_lease(&lease, &ctx.instance_id, ctx.lease_ttl)
        .await?
    {
        return Err(RunError::LeaseHeld);
    }
    let result = run_windows(ctx, job, token, &lease).await;
    if let Err(e) = ctx.state.release_lease(&lease, &ctx.instance_id).await {
        warn!(error = %e, "lease not released; it expires by itself");
    }
    result
}

async fn run_windows(
    ctx: &PullContext,
    job: &PullJob,
    token: &CancellationToken,
    lease: &str,
) -> Result<RunReport, RunError> {
    let spec = &job.spec;
    let mapping = ctx
        .mappings
        .get(&job.partner, &spec.mapping)
        .ok_or_else(|| RunError::Config(format!("mapping `{}` is not loaded", spec.mapping)))?;
    let cursor_key = cursor_name(job);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut cursor = match ctx.state.cursor(&cursor_key).await? {
        Some(text) => Cursor::parse(&text).ok_or_else(|| {
            RunError::Config(format!("cursor `{cursor_key}` is not readable: {text}"))
        })?,
        None => Cursor {
            watermark_ms: now_ms - i64::try_from(spec.initial_lookback_ms).unwrap_or(0),
            window: None,
        },
    };
    let mut report = RunReport::default();
    loop {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let end = now_ms - i64::try_from(spec.settle_ms).unwrap_or(0);
        let window = match cursor.window.clone() {
            Some(w) => w,
            None => {
                let since = cursor.watermark_ms;
                let until = end.min(since + i64::try_from(spec.max_window_ms).unwrap_or(i64::MAX));
                if until <= since {
                    break;
                }
                Window {
                    since_ms: since,
                    until_ms: until,
                    next_page: 1,
                    next_cursor: None,
                }
            }
        };
        let mut page = window.next_page;
        let mut page_token = window.next_cursor.clone();
        loop {
            if token.is_cancelled() {
                return Err(RunError::Stopped);
            }
            let (items, next_token) = fetch_page(job, &window, page, page_token.as_deref()).await?;
            report.pages += 1;
            let count = items.len();
            for item in items {
                put_item(ctx, job, mapping, &item, &mut report, None).await?;
            }
            failpoint("poller.after_page_produced");
            let finished = match spec.paging {
                Paging::Page | Paging::Offset => count < spec.page_size as usize,
                // The last page is the one without a token (or an empty one, so a partner
                // that always sends a token cannot keep a run going forever).
                Paging::Cursor => {
                    if next_token.is_some() && next_token == page_token {
                        return Err(RunError::Page(format!(
                            "合作方对第 {page} 页返回了相同的游标 / the partner answered page {page} with the cursor it was asked for"
                        )));
                    }
                    next_token.is_none() || count == 0
                }
            };
            // Only now, with every item of the page on Kafka, does the cursor move.
            cursor = if finished {
                Cursor {
                    watermark_ms: window.until_ms,
                    window: None,
                }
            } else {
                Cursor {
                    watermark_ms: cursor.watermark_ms,
                    window: Some(Window {
                        next_page: page + 1,
                        next_cursor: next_token.clone(),
                        ..window.clone()
                    }),
                }
            };
            ctx.state
                .save_cursor(&cursor_key, &cursor.to_text())
                .await?;
            if !ctx
                .state
                .acquire_lease(lease, &ctx.instance_id, ctx.lease_ttl)
                .await?
            {
                return Err(RunError::LeaseLost);
            }
            if finished {
                break;
            }
            page += 1;
            page_token = next_token;
        }
        gauge!("hub_poller_lag_seconds", "pull" => job.route())
            .set((chrono::Utc::now().timestamp_millis() - cursor.watermark_ms) as f64 / 1000.0);
        if window.until_ms >= end {
            break;
        }
    }
    report.watermark_ms = cursor.watermark_ms;
    Ok(report)
}

/// Test hook: `HUB_FAILPOINT=<name>` aborts the process when the named point is reached, so a
/// test can crash the poller exactly between producing a page and saving its cursor. Unset in
/// production, where it costs one environment lookup per page.
fn failpoint(name: &str) {
    if std::env::var("HUB_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

fn format_time(ms: i64, format: &str) -> String {
    if format == "epoch_ms" {
        return ms.to_string();
    }
    let t: DateTime<FixedOffset> = shanghai()
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(now_shanghai);
    t.format(format).to_string()
}

/// The request's parameters with `{since}`, `{until}`, `{page}`, `{page_size}`, `{offset}`,
/// `{limit}` and `{cursor}` filled in. A value that is exactly one of the numbers becomes a
/// number; `{cursor}` is text (empty on a window's first page).
fn fill(
    spec: &PullSpec,
    window: &Window,
    page: u32,
    cursor: Option<&str>,
) -> serde_json::Map<String, Value> {
    let since = format_time(window.since_ms, &spec.time_format);
    let until = format_time(window.until_ms, &spec.time_format);
    let offset = u64::from(page.saturating_sub(1)) * u64::from(spec.page_size);
    let mut out = serde_json::Map::new();
    for (k, v) in &spec.request {
        let value = match v {
            toml::Value::String(s) if s == "{page}" => Value::from(page),
            toml::Value::String(s) if s == "{page_size}" || s == "{limit}" => {
                Value::from(spec.page_size)
            }
            toml::Value::String(s) if s == "{offset}" => Value::from(offset),
            toml::Value::String(s) => Value::String(
                s.replace("{since}", &since)
                    .replace("{until}", &until)
                    .replace("{page}", &page.to_string())
                    .replace("{page_size}", &spec.page_size.to_string())
                    .replace("{offset}", &offset.to_string())
                    .replace("{limit}", &spec.page_size.to_string())
                    .replace("{cursor}", cursor.unwrap_or_default()),
            ),
            other => serde_json::to_value(other).unwrap_or(Value::Null),
        };
        out.insert(k.clone(), value);
    }
    out
}

/// One page: its items, and the next page's token (`paging = "cursor"`).
async fn fetch_page(
    job: &PullJob,
    window: &Window,
    page: u32,
    cursor: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), RunError> {
    let spec = &job.spec;
    let params = fill(spec, window, page, cursor);
    let soap = spec.transport.is_soap();
    let (query, body) = if soap {
        (String::new(), soap_request(spec, params)?)
    } else if spec.method == "GET" {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let enc = |s: &str| {
                    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                };
                format!("{}={}", enc(k), enc(&v))
            })
            .collect();
        (q.join("&"), Vec::new())
    } else {
        (
            String::new(),
            serde_json::to_vec(&Value::Object(params)).unwrap_or_default(),
        )
    };
    let (method, body, content_type, headers) = if soap {
        // The operation element in its envelope, with the SOAP content type and action.
        let wire = hub_adapter::transport::encode_with(
            spec.transport,
            &spec.method,
            spec.soap_action.as_deref(),
            body,
            "application/xml; charset=utf-8",
        )
        .map_err(|e| RunError::Config(e.to_string()))?;
        (wire.method, wire.body, wire.content_type, wire.headers)
    } else {
        (
            spec.method.clone(),
            body,
            "application/json; charset=utf-8".to_string(),
            Vec::new(),
        )
    };
    let headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let answer = job
        .client
        .call(&method, &spec.path, &query, body, &content_type, &headers)
        .await
        .map_err(|e| RunError::Partner(format!("{e:?}")))?;
    match classify(&job.answer, &answer) {
        Verdict::Delivered { .. } => {}
        other => {
            let (code, message) = business_fields(&job.answer, &answer.body);
            return Err(RunError::Partner(format!(
                "{} (HTTP {}, code {}, {})",
                other.reason(),
                answer.status,
                code.unwrap_or_else(|| "-".into()),
                hub_security::mask::free_text(&message.unwrap_or_default(), 200)
            )));
        }
    }
    let doc: Value = if soap {
        // The content of the response element, read within the payload limits.
        match hub_adapter::answer::read_soap(&answer.body) {
            Some(hub_adapter::answer::SoapAnswer::Body(doc)) => doc,
            _ => {
                return Err(RunError::Page(
                    "页面不是 SOAP 应答 / the page is not a SOAP answer".into(),
                ))
            }
        }
    } else {
        serde_json::from_slice(&answer.body)
            .map_err(|e| RunError::Page(format!("the page is not JSON: {e}")))?
    };
    let next = spec
        .response
        .next_cursor
        .as_deref()
        .and_then(|p| text_at(&doc, p));
    match doc.pointer(&spec.response.items) {
        Some(Value::Array(items)) => Ok((items.clone(), next)),
        Some(Value::Null) | None => Ok((Vec::new(), next)),
        // XML: one repeated element is an object, an empty container an empty string.
        Some(Value::Object(item)) if soap => Ok((vec![Value::Object(item.clone())], next)),
        Some(Value::String(s)) if soap && s.is_empty() => Ok((Vec::new(), next)),
        Some(_) => Err(RunError::Page(format!(
            "`{}` is not an array",
            spec.response.items
        ))),
    }
}

/// A SOAP pull's request: the operation element (`soap_operation`, in `soap_namespace`) with
/// the filled parameters as its children, in `xml_order`.
fn soap_request(
    spec: &PullSpec,
    params: serde_json::Map<String, Value>,
) -> Result<Vec<u8>, RunError> {
    let operation = spec
        .soap_operation
        .clone()
        .ok_or_else(|| RunError::Config("soap_operation is not set".into()))?;
    let mut element = serde_json::Map::new();
    if let Some(ns) = &spec.soap_namespace {
        element.insert("@xmlns".into(), Value::String(ns.clone()));
    }
    element.extend(params);
    let mut order = hub_mapping::XmlOrder::new();
    order.insert(operation.clone(), spec.xml_order.clone());
    hub_mapping::xml::from_value_ordered(
        &operation,
        &Value::Object(element),
        hub_mapping::Charset::Utf8,
        &order,
    )
    .map_err(|e| RunError::Config(format!("the SOAP request cannot be written: {e}")))
}

fn text_at(item: &Value, pointer: &str) -> Option<String> {
    match item.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Where a dead letter of an item comes from: the replay record it was read from, when it
/// is a replay (so a replay that fails again is a new dead letter, not the replayed one).
type ReplaySource<'a> = Option<&'a Delivery>;

/// Produces one item, unless an earlier run already did.
async fn put_item(
    ctx: &PullContext,
    job: &PullJob,
    mapping: &Mapping,
    item: &Value,
    report: &mut RunReport,
    replay: ReplaySource<'_>,
) -> Result<(), RunError> {
    let route = job.route();
    let pulled_at = chrono::Utc::now().timestamp_millis();
    let Some(item_id) = text_at(item, &job.spec.response.item_id) else {
        return Err(RunError::Page(format!(
            "an item has no id at `{}`",
            job.spec.response.item_id
        )));
    };
    let item_key = match job
        .spec
        .response
        .item_version
        .as_deref()
        .and_then(|p| text_at(item, p))
    {
        Some(v) => format!("{}:{item_id}:{v}", job.spec.name),
        None => format!("{}:{item_id}", job.spec.name),
    };
    let receipts_app = format!("pull:{}", job.partner);
    let bytes = serde_json::to_vec(item).unwrap_or_default();
    let normalized = match normalize(
        mapping,
        &ctx.catalog,
        &ctx.cipher,
        |c| ctx.schema_id(c),
        &bytes,
    ) {
        Ok(n) => n,
        Err(e) => {
            let failure = normalize_failure(&e);
            dead_letter_item(ctx, job, &item_id, &item_key, bytes, failure, replay).await?;
            report.dead_lettered += 1;
            counter!("hub_poller_items_total", "pull" => route, "outcome" => "dead_lettered")
                .increment(1);
            return Ok(());
        }
    };
    let mut envelope = normalized.envelope(&job.partner, &route);
    envelope.traceparent = hub_telemetry::current().map(|t| t.to_string());
    let stale_after = i64::try_from(ctx.producer.delivery_timeout().as_millis())
        .unwrap_or(i64::MAX)
        .saturating_mul(2);
    match ctx
        .state
        .claim_receipt(
            &receipts_app,
            &item_key,
            &envelope.message_id.to_string(),
            &normalized.topic,
            stale_after,
        )
        .await?
    {
        Receipt::Done { .. } => {
            report.duplicates += 1;
            counter!("hub_poller_items_total", "pull" => route, "outcome" => "duplicate")
                .increment(1);
            return Ok(());
        }
        Receipt::InProgress => return Err(RunError::InProgress(item_key)),
        Receipt::Claimed { message_id } => {
            if let Ok(id) = message_id.parse() {
                envelope.message_id = id;
                envelope.correlation_id = message_id;
            }
        }
    }
    let put = match ctx
        .producer
        .send(&normalized.topic, &envelope, &normalized.framed)
        .await
    {
        Ok(put) => put,
        Err(e) => {
            let _ = ctx.state.release_receipt(&receipts_app, &item_key).await;
            return Err(e.into());
        }
    };
    ctx.state.complete_receipt(&receipts_app, &item_key).await?;
    // The message trace: which pull brought the item, and where it went on Kafka.
    let message_id = envelope.message_id.to_string();
    let event = |stage: &str| {
        hub_state::TraceEvent::new(stage, message_id.as_str())
            .correlation(envelope.correlation_id.as_str())
            .object(envelope.object_id.as_str())
    };
    ctx.state.trace_event(hub_state::TraceEvent {
        at_ms: pulled_at,
        ..event("pulled").detail(serde_json::json!({
            "pull": route, "item_id": item_id, "bytes": bytes.len(),
        }))
    });
    ctx.state
        .trace_event(event("produced").detail(serde_json::json!({
            "contract": envelope.event_type, "version": envelope.contract_version,
            "topic": put.topic, "partition": put.partition, "offset": put.offset,
        })));
    report.produced += 1;
    counter!("hub_poller_items_total", "pull" => route, "outcome" => "produced").increment(1);
    Ok(())
}

/// Why the mapping refused an item, as a dead letter says it.
fn normalize_failure(e: &NormalizeError) -> hub_egress::deadletter::Failure {
    hub_egress::deadletter::Failure {
        reason_code: e.code().to_string(),
        reason: e.to_string(),
        partner_code: None,
        partner_answer: None,
        attempts: 1,
    }
}

/// The context an item is sealed under in its dead letter (and opened under on replay).
fn sealing_context(job: &PullJob) -> String {
    format!("pull/{}", job.route())
}

/// An item the mapping refuses goes to the dead-letter topic with its bytes, sealed; its
/// "source" is the pull and the item's id (offset: a stable hash of it, so a repeated page
/// finds it), or the replay record it came back on.
async fn dead_letter_item(
    ctx: &PullContext,
    job: &PullJob,
    item_id: &str,
    item_key: &str,
    bytes: Vec<u8>,
    failure: hub_egress::deadletter::Failure,
    replay: ReplaySource<'_>,
) -> Result<(), RunError> {
    let dl_contract = ctx
        .catalog
        .contract(hub_egress::DEAD_LETTER_TOPIC)
        .ok_or_else(|| RunError::Config("the dead-letter contract is not loaded".into()))?;
    let digest = hub_security::sm::sm3_hex(item_key.as_bytes());
    let offset = i64::from_str_radix(&digest[..15], 16).unwrap_or_default();
    let mut envelope = Envelope::new(
        "pull.item",
        1,
        job.partner.clone(),
        job.route(),
        item_id,
        now_shanghai(),
    );
    envelope.traceparent = hub_telemetry::current().map(|t| t.to_string());
    // The raw item is the partner's own shape, whose personal fields no contract names: it
    // leaves the poller only sealed as a whole, under the key ring, so the dead-letter topic,
    // the replay topic and `hub dlq show` never hold it in clear.
    let sealed = hub_egress::deadletter::seal_payload(&ctx.cipher, &sealing_context(job), &bytes)
        .map_err(|e| RunError::Unprotected(e.to_string()))?;
    let headers = hub_egress::deadletter::mark_sealed(envelope.to_headers());
    let (topic, partition, offset) = match replay {
        Some(r) => (r.topic.clone(), r.partition, r.offset),
        None => (sealing_context(job), -1, offset),
    };
    let d = Delivery {
        topic,
        partition,
        offset,
        key: Some(item_id.as_bytes().to_vec()),
        headers: Some(headers),
        payload: Some(sealed),
        envelope: Ok(envelope),
    };
    hub_egress::deadletter::dead_letter(
        dl_contract,
        ctx.schema_id(dl_contract),
        &ctx.producer,
        &ctx.state,
        &job.route(),
        &d,
        &failure,
    )
    .await
    .map_err(dead_letter_error)?;
    Ok(())
}

fn dead_letter_error(e: hub_egress::deadletter::DeadLetterError) -> RunError {
    match e {
        hub_egress::deadletter::DeadLetterError::Bus(b) => RunError::Bus(b),
        hub_egress::deadletter::DeadLetterError::State(s) => RunError::State(s),
        other => RunError::Config(other.to_string()),
    }
}

/// Starts, for every job, the reader of its replays: a dead letter of the job replayed
/// (`hub dlq replay`, the console) comes back on the replay topic with the job's route; the
/// item is opened, mapped again (with the mappings as they are now) and produced like a pulled
/// item, or dead-lettered again if it is still refused. Call it once the topics exist.
pub fn start_replays(
    ctx: Arc<PullContext>,
    bus: &hub_bus::BusSection,
    jobs: &[PullJob],
    lifecycle: &Lifecycle,
) -> Result<(), RunError> {
    for job in jobs {
        let group = format!("hub-poller.{}.{}", job.partner, job.spec.name);
        let consumer = hub_bus::Consumer::new(bus, &group, &[hub_egress::REPLAY_TOPIC])?;
        let span = info_span!("pull_replay", job = %job.route());
        lifecycle.spawn(
            replay_loop(
                Arc::clone(&ctx),
                job.clone(),
                consumer,
                lifecycle.token().clone(),
            )
            .instrument(span),
        );
    }
    Ok(())
}

async fn replay_loop(
    ctx: Arc<PullContext>,
    job: PullJob,
    consumer: hub_bus::Consumer,
    token: CancellationToken,
) {
    let route = job.route();
    loop {
        let next = tokio::select! {
            () = token.cancelled() => return,
            r = consumer.next() => r,
        };
        let d = match next {
            Ok(d) => d,
            Err(e) => {
                warn!(code = e.code(), error = %e, "reading replays failed; will retry");
                if !wait(&token, Duration::from_millis(500)).await {
                    return;
                }
                continue;
            }
        };
        let ours = hub_egress::deadletter::header_value(&d, hub_egress::header::REPLAY_ROUTE)
            == Some(route.as_bytes());
        if ours {
            // Until it is produced or dead-lettered again: Kafka or the state store being away
            // is waited out, never a reason to drop the replay.
            loop {
                match replay_item(&ctx, &job, &d).await {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(code = e.code(), error = %e, "replay failed; will retry");
                        if !wait(&token, Duration::from_secs(1)).await {
                            return;
                        }
                    }
                }
            }
        }
        if let Err(e) = consumer.commit(&d).await {
            warn!(code = e.code(), error = %e, "replay offset not committed; it may be read again");
        }
    }
}

async fn wait(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = token.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// One replayed item: opened, and put like a pulled item (a receipt makes a second replay of
/// an item already produced a no-op).
async fn replay_item(ctx: &PullContext, job: &PullJob, d: &Delivery) -> Result<(), RunError> {
    let mapping = ctx
        .mappings
        .get(&job.partner, &job.spec.mapping)
        .ok_or_else(|| RunError::Config(format!("mapping `{}` is not loaded", job.spec.mapping)))?;
    let payload = d.payload.clone().unwrap_or_default();
    let opened = if hub_egress::deadletter::is_payload_sealed(d) {
        hub_egress::deadletter::open_payload(&ctx.cipher, &sealing_context(job), &payload)
            .map_err(|e| e.to_string())
    } else {
        // Dead letters written before items were sealed.
        Ok(payload)
    };
    let item = opened.and_then(|b| {
        serde_json::from_slice::<Value>(&b).map_err(|e| format!("the item is not JSON: {e}"))
    });
    let item = match item {
        Ok(item) => item,
        Err(why) => return unreadable_replay(ctx, job, d, why).await,
    };
    counter!("hub_poller_replays_total", "pull" => job.route()).increment(1);
    let mut report = RunReport::default();
    match put_item(ctx, job, mapping, &item, &mut report, Some(d)).await {
        Err(RunError::Page(why)) => unreadable_replay(ctx, job, d, why).await,
        other => other,
    }
}

/// A replay that cannot be read (a key gone from the ring, an item without its id) is
/// dead-lettered again as it came, still sealed: never dropped.
async fn unreadable_replay(
    ctx: &PullContext,
    job: &PullJob,
    d: &Delivery,
    why: String,
) -> Result<(), RunError> {
    warn!(code = "PULL_REPLAY_UNREADABLE", error = %why, "a replayed item cannot be read");
    let dl_contract = ctx
        .catalog
        .contract(hub_egress::DEAD_LETTER_TOPIC)
        .ok_or_else(|| RunError::Config("the dead-letter contract is not loaded".into()))?;
    let failure = hub_egress::deadletter::Failure {
        reason_code: "PULL_REPLAY_UNREADABLE".into(),
        reason: hub_security::mask::free_text(&why, 300),
        partner_code: None,
        partner_answer: None,
        attempts: 1,
    };
    hub_egress::deadletter::dead_letter(
        dl_contract,
        ctx.schema_id(dl_contract),
        &ctx.producer,
        &ctx.state,
        &job.route(),
        d,
        &failure,
    )
    .await
    .map_err(dead_letter_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(paging: &str, request: &str) -> PullSpec {
        toml::from_str(&format!(
            "name = \"p\"\nmapping = \"m\"\npath = \"/q\"\nevery_ms = 1000\npage_size = 20\npaging = \"{paging}\"\n\
             time_format = \"epoch_ms\"\n[request]\n{request}\n[response]\nitems = \"/items\"\nitem_id = \"/id\"\n"
        ))
        .unwrap()
    }

    fn window() -> Window {
        Window {
            since_ms: 1_000,
            until_ms: 2_000,
            next_page: 1,
            next_cursor: None,
        }
    }

    #[test]
    fn offset_paging_fills_offset_and_limit_as_numbers() {
        let s = spec(
            "offset",
            "offset = \"{offset}\"\nlimit = \"{limit}\"\nfrom = \"{since}\"\nrange = \"{offset}-{limit}\"",
        );
        let got = Value::Object(fill(&s, &window(), 3, None));
        assert_eq!(
            got,
            serde_json::json!({"offset": 40, "limit": 20, "from": "1000", "range": "40-20"})
        );
    }

    #[test]
    fn cursor_paging_fills_the_token_empty_on_the_first_page() {
        let s = spec("cursor", "after = \"{cursor}\"\nuntil = \"{until}\"");
        assert_eq!(
            Value::Object(fill(&s, &window(), 1, None)),
            serde_json::json!({"after": "", "until": "2000"})
        );
        assert_eq!(
            Value::Object(fill(&s, &window(), 2, Some("tok+/=2"))),
            serde_json::json!({"after": "tok+/=2", "until": "2000"})
        );
    }

    #[test]
    fn a_saved_window_without_a_token_still_reads() {
        let c = Cursor::parse(
            r#"{"watermark_ms":5,"window":{"since_ms":1,"until_ms":2,"next_page":3}}"#,
        )
        .unwrap();
        assert_eq!(c.window.unwrap().next_cursor, None);
    }
}
