//! One delivery route: a consumer-group member that reads its topic (and the replay topic),
//! delivers each record to the partner in order per key, and commits what is finished.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_adapter::answer::{business_fields, classify, Verdict};
use hub_adapter::backoff::full_jitter;
use hub_adapter::breaker::Permit;
use hub_adapter::manifest::{AnswerSpec, DeliverySpec};
use hub_adapter::PartnerClient;
use hub_bus::{BusSection, Consumer, Delivery, Lifecycle, Producer};
use hub_contracts::reply::ReplyOutcome;
use hub_contracts::{Catalog, Contract};
use hub_mapping::{Direction, Mapping, MappingSet};
use hub_security::field::FieldCipher;
use hub_state::StateStore;
use metrics::{counter, gauge, histogram};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::deadletter::{dead_letter, header_value, Failure};
use crate::offsets::OffsetTracker;
use crate::{header, DEAD_LETTER_TOPIC, REPLAY_TOPIC};

/// How often each route's consumer lag is sampled.
const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// What every route shares.
pub struct EgressContext {
    pub catalog: Arc<Catalog>,
    pub mappings: Arc<MappingSet>,
    pub cipher: FieldCipher,
    pub producer: Producer,
    pub state: StateStore,
    pub bus: BusSection,
    /// Schema ids of an external registry by topic; absent: the hub's own.
    pub schema_ids: HashMap<String, u32>,
    /// How often finished offsets are committed.
    pub commit_interval: Duration,
    /// Consumer groups are `<group_prefix>.<partner>.<delivery>`.
    pub group_prefix: String,
    /// The file store deliveries with a `file` read from (`docs/files.md`).
    pub files: Option<hub_files::FileStore>,
    /// The download links a delivery with `file.style = "url"` sends (`[files]`
    /// `download_base_url`); absent: such a delivery dead-letters `FILE_CONFIG_INVALID`.
    pub download_links: Option<hub_files::transfer::DownloadLinks>,
}

impl EgressContext {
    fn schema_id(&self, contract: &Contract) -> u32 {
        hub_contracts::framing_schema_id(&self.schema_ids, contract)
    }

    fn contract(&self, topic: &str) -> Option<&Contract> {
        self.catalog.contract(topic)
    }
}

/// One delivery of one partner, as configured.
#[derive(Clone)]
pub struct RouteSpec {
    pub partner: String,
    pub delivery: DeliverySpec,
    pub answer: AnswerSpec,
    pub client: Arc<PartnerClient>,
    /// The partner's SFTP server, for a delivery with `transport = "sftp"` ([`crate::sftp`]).
    pub sftp: Option<crate::sftp::SftpTarget>,
}

impl RouteSpec {
    /// `<partner>/<delivery>`, the route's name in metrics, dead letters and logs.
    pub fn route(&self) -> String {
        format!("{}/{}", self.partner, self.delivery.name)
    }

    /// The consumer group of the route.
    pub fn group_id(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}", self.partner, self.delivery.name)
    }
}

/// Why the egress could not start.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("EGRESS_CONFIG: {0}")]
    Config(String),
    #[error(transparent)]
    Bus(#[from] hub_bus::BusError),
}

/// Everything one route's tasks need.
pub(crate) struct Route {
    pub(crate) ctx: Arc<EgressContext>,
    pub(crate) spec: RouteSpec,
    pub(crate) name: String,
    mapping: Mapping,
    contract: Contract,
    dead_letters: Contract,
    /// For a request: the mapping that reads the answer and its reply contract.
    reply: Option<Reply>,
}

/// The reply side of a request route (`docs/request-reply.md`).
struct Reply {
    mapping: Mapping,
    contract: Contract,
}

/// Starts one worker per route on the lifecycle; each stops when the lifecycle's token is
/// cancelled, after committing what it finished.
pub fn start_routes(
    ctx: Arc<EgressContext>,
    routes: Vec<RouteSpec>,
    lifecycle: &Lifecycle,
) -> Result<Vec<String>, EgressError> {
    let dead_letters = ctx.contract(DEAD_LETTER_TOPIC).cloned().ok_or_else(|| {
        EgressError::Config(format!("contract `{DEAD_LETTER_TOPIC}` is not loaded"))
    })?;
    let mut started = Vec::new();
    let mut prepared = Vec::new();
    for spec in routes {
        let name = spec.route();
        let mapping = ctx
            .mappings
            .get(&spec.partner, &spec.delivery.mapping)
            .filter(|m| m.direction == Direction::Outbound)
            .cloned()
            .ok_or_else(|| {
                EgressError::Config(format!(
                    "{name}: outbound mapping `{}` is not loaded",
                    spec.delivery.mapping
                ))
            })?;
        let contract = ctx.contract(&mapping.contract).cloned().ok_or_else(|| {
            EgressError::Config(format!(
                "{name}: contract `{}` is not loaded",
                mapping.contract
            ))
        })?;
        let reply = match &spec.delivery.reply {
            None => None,
            Some(reply) => {
                let mapping = ctx
                    .mappings
                    .get(&spec.partner, reply)
                    .filter(|m| m.direction == Direction::Inbound)
                    .cloned()
                    .ok_or_else(|| {
                        EgressError::Config(format!(
                            "{name}: reply mapping `{reply}` is not an inbound mapping"
                        ))
                    })?;
                let contract = ctx.contract(&mapping.contract).cloned().ok_or_else(|| {
                    EgressError::Config(format!(
                        "{name}: reply contract `{}` is not loaded",
                        mapping.contract
                    ))
                })?;
                let problems = hub_contracts::reply::reply_contract_problems(&contract);
                if !problems.is_empty() {
                    return Err(EgressError::Config(format!(
                        "{name}: {}",
                        problems.join("; ")
                    )));
                }
                Some(Reply { mapping, contract })
            }
        };
        // The worker stops reading while its window is full (a key retrying for up to its
        // retry budget). It must stay in the group meanwhile: librdkafka's poll-interval check
        // would otherwise evict it after 5 minutes. Heartbeats (the session) still detect a
        // dead process. Pausing partitions instead is not an option: librdkafka drops what it
        // had fetched for a paused partition, and records were lost that way.
        let consumer = Consumer::with_properties(
            &ctx.bus,
            &spec.group_id(&ctx.group_prefix),
            &[contract.declaration.topic.as_str(), REPLAY_TOPIC],
            &[("max.poll.interval.ms", "86400000")],
        )?;
        prepared.push((
            Arc::new(Route {
                ctx: Arc::clone(&ctx),
                spec,
                name: name.clone(),
                mapping,
                contract,
                dead_letters: dead_letters.clone(),
                reply,
            }),
            consumer,
        ));
        started.push(name);
    }
    for (route, consumer) in prepared {
        // Consumer lag of the route's group (hub_bus_consumer_lag_records), beside the worker.
        lifecycle.spawn(
            consumer
                .lag_probe()
                .run(LAG_SAMPLE_EVERY, lifecycle.token().clone()),
        );
        // Every partner's breaker series exists from the start (closed), not from its first
        // failure, so dashboards and alerts see the partner.
        gauge!("hub_egress_breaker_open", "partner" => route.spec.partner.clone()).set(0.0);
        let token = lifecycle.token().clone();
        let span = info_span!("egress", route = %route.name);
        lifecycle.spawn(run(route, consumer, token).instrument(span));
    }
    Ok(started)
}

/// How a record's handling ended.
pub(crate) enum Finish {
    /// Delivered, dead-lettered or skipped: its offset may be committed.
    Done,
    /// Stopped by shutdown before it finished: it will be read again.
    Abandoned,
}

/// The record's key for ordering: the Kafka key; a keyless record is its own key.
fn order_key(d: &Delivery) -> String {
    match &d.key {
        Some(k) => String::from_utf8_lossy(k).into_owned(),
        None => format!("\u{0}{}/{}/{}", d.topic, d.partition, d.offset),
    }
}

async fn run(route: Arc<Route>, consumer: Consumer, token: CancellationToken) {
    info!(group = %route.spec.group_id(&route.ctx.group_prefix), topic = %route.contract.declaration.topic, "delivery route started");
    let window = route.spec.client.section.window.max(1);
    let mut offsets = OffsetTracker::default();
    // Records waiting behind the one of their key in flight.
    let mut waiting: HashMap<String, VecDeque<Delivery>> = HashMap::new();
    let mut running: JoinSet<(String, String, i32, i64, Finish)> = JoinSet::new();
    let mut commit_tick = tokio::time::interval(route.ctx.commit_interval);
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let task_token = token.child_token();
    let mut was_full = false;

    let spawn = |running: &mut JoinSet<_>, d: Delivery, key: String| {
        let route = Arc::clone(&route);
        let token = task_token.clone();
        let (topic, partition, offset) = (d.topic.clone(), d.partition, d.offset);
        running.spawn(async move {
            let finish = handle(&route, d, &token).await;
            (key, topic, partition, offset, finish)
        });
    };

    loop {
        tokio::select! {
            biased;
            () = token.cancelled() => break,
            Some(joined) = running.join_next() => {
                let Ok((key, topic, partition, offset, finish)) = joined else { continue };
                if let Finish::Done = finish {
                    offsets.finish(&topic, partition, offset);
                }
                match waiting.get_mut(&key).and_then(VecDeque::pop_front) {
                    Some(next) => spawn(&mut running, next, key),
                    None => { waiting.remove(&key); }
                }
            }
            next = consumer.next(), if offsets.held() < window => match next {
                Ok(d) => {
                    if !offsets.read(&d.topic, d.partition, d.offset) {
                        continue;
                    }
                    let key = order_key(&d);
                    match waiting.get_mut(&key) {
                        // A record of this key is in flight: keep the order.
                        Some(queue) => queue.push_back(d),
                        None => {
                            waiting.insert(key.clone(), VecDeque::new());
                            spawn(&mut running, d, key);
                        }
                    }
                }
                Err(e) => {
                    // The broker is away: librdkafka reconnects by itself; wait a moment
                    // instead of spinning on the error.
                    warn!(code = e.code(), error = %e, "reading the route's topic failed");
                    tokio::select! {
                        () = token.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            },
            _ = commit_tick.tick() => commit(&consumer, &mut offsets).await,
        }
        let held = offsets.held();
        gauge!("hub_egress_held_messages", "route" => route.name.clone()).set(held as f64);
        let full = held >= window;
        if full && !was_full {
            info!(
                held,
                window, "window full: not reading until held records finish"
            );
        }
        was_full = full;
    }

    // Shutdown: records in flight finish their current attempt or are abandoned (read again
    // later); what finished is committed.
    task_token.cancel();
    while let Some(joined) = running.join_next().await {
        if let Ok((_, topic, partition, offset, Finish::Done)) = joined {
            offsets.finish(&topic, partition, offset);
        }
    }
    commit(&consumer, &mut offsets).await;
    info!("delivery route stopped");
}

async fn commit(consumer: &Consumer, offsets: &mut OffsetTracker) {
    let due = offsets.committable();
    if due.is_empty() {
        return;
    }
    match consumer.commit_offsets(due.clone()).await {
        Ok(()) => offsets.committed(&due),
        // Not assigned any more (rebalance) or the coordinator is away: the records will be
        // delivered again by whoever reads them next; the partner removes duplicates by the
        // idempotency key.
        Err(e) => warn!(code = e.code(), error = %e, "commit failed; will retry"),
    }
}

/// Sleeps `d` unless shutdown comes first (then `false`).
pub(crate) async fn pause(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        () = token.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// Delivers one record, retrying as the policy says, or dead-letters it.
async fn handle(route: &Route, d: Delivery, token: &CancellationToken) -> Finish {
    let started = Instant::now();
    let labels = [("route", route.name.clone())];
    // The replay topic is shared by every route: keep only this route's replays.
    if d.topic == REPLAY_TOPIC {
        if header_value(&d, header::REPLAY_ROUTE) != Some(route.name.as_bytes()) {
            return Finish::Done;
        }
        counter!("hub_egress_replays_total", &labels).increment(1);
    }
    let message_id = d
        .envelope
        .as_ref()
        .map(|e| e.message_id.to_string())
        .unwrap_or_default();
    let span = hub_telemetry::hop_span!("delivery", message_id = %message_id, topic = %d.topic, partition = d.partition, offset = d.offset);
    // The delivery continues the record's trace (a new one if it has none or a broken one); the
    // partner receives this hop as its parent.
    let record_trace = d
        .envelope
        .as_ref()
        .ok()
        .and_then(|e| e.traceparent.as_deref());
    let (hop, refused) = hub_telemetry::continue_from_header(&span, record_trace);
    let continued = record_trace.is_some() && refused.is_none();
    async {
        let envelope = match &d.envelope {
            Ok(e) => e.clone(),
            Err(e) => {
                let f = failure("EGRESS_MALFORMED", format!("the envelope headers are not valid: {e}"), 0);
                // Without its envelope the request has no id to answer to: a dead letter only.
                return give_up(route, &d, f, None, token).await;
            }
        };
        let framed = d.payload.as_deref().unwrap_or_default();
        let schema_id = route.ctx.schema_id(&route.contract);
        let rendered = match hub_pipeline::render(
            &route.mapping,
            &route.ctx.catalog,
            &route.contract,
            &route.ctx.cipher,
            schema_id,
            framed,
        ) {
            Ok(r) => r,
            Err(e) => {
                let f = failure(e.code(), e.to_string(), 0);
                let asked = Asked { envelope: &envelope, hop: &hop, outcome: ReplyOutcome::Failed };
                return give_up(route, &d, f, Some(asked), token).await;
            }
        };
        let spec = &route.spec.delivery;
        // An SFTP delivery uploads the file its record names instead of sending a request.
        if spec.transport == hub_adapter::manifest::Transport::Sftp {
            return crate::sftp::deliver(route, &d, &envelope, &rendered.body, started, token).await;
        }
        // A delivery with a file: the file its record references put into the body.
        let rendered = match (&spec.file, &route.ctx.files) {
            (None, _) => rendered,
            (Some(_), None) => {
                let f = failure("FILE_CONFIG_INVALID", "the delivery sends a file but the hub has no [files] store".into(), 0);
                let asked = Asked { envelope: &envelope, hop: &hop, outcome: ReplyOutcome::Failed };
                return give_up(route, &d, f, Some(asked), token).await;
            }
            (Some(file), Some(store)) => match crate::files::put_file(store, route.ctx.download_links.as_ref(), &route.mapping, file, rendered).await {
                Ok(r) => r,
                Err(e) => {
                    let f = failure(e.code(), e.detail.clone(), 0);
                    let asked = Asked { envelope: &envelope, hop: &hop, outcome: ReplyOutcome::Failed };
                    return give_up(route, &d, f, Some(asked), token).await;
                }
            },
        };
        let client = &route.spec.client;
        let policy = &client.section;
        // The delivery's transport (HTTP, a GET's query, SOAP 1.1/1.2): hub_adapter::transport.
        let wire = match hub_adapter::transport::encode(spec, rendered.body, &rendered.content_type) {
            Ok(w) => w,
            Err(e) => {
                let asked = Asked { envelope: &envelope, hop: &hop, outcome: ReplyOutcome::Failed };
                return give_up(route, &d, failure(e.code(), e.to_string(), 0), Some(asked), token).await;
            }
        };
        let mut headers: Vec<(&str, String)> = wire.headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        if let Some(h) = &spec.idempotency_header {
            headers.push((h.as_str(), envelope.message_id.to_string()));
        }
        headers.push((hub_telemetry::TRACEPARENT, hop.to_string()));
        if let Some(ts) = envelope.tracestate.as_ref().filter(|_| continued) {
            headers.push((hub_telemetry::TRACESTATE, ts.clone()));
        }
        headers.push(("x-request-id", envelope.message_id.to_string()));
        let budget = Duration::from_millis(policy.retry_budget_ms);
        let mut attempts: u32 = 0;
        loop {
            // The breaker decides whether a request may go out; waiting for it costs no attempt.
            let probe = loop {
                match client.breaker.permit() {
                    Permit::Go { probe } => break probe,
                    Permit::Wait(w) => {
                        gauge!("hub_egress_breaker_open", "partner" => route.spec.partner.clone()).set(1.0);
                        if !pause(w.min(Duration::from_secs(5)), token).await {
                            return Finish::Abandoned;
                        }
                    }
                }
            };
            attempts += 1;
            let call = client.call(
                &wire.method,
                &spec.path,
                &wire.query,
                wire.body.clone(),
                &wire.content_type,
                &headers,
            );
            let result = tokio::select! {
                r = call => r,
                () = token.cancelled() => {
                    if probe { client.breaker.abandon_probe(); }
                    return Finish::Abandoned;
                }
            };
            let (verdict, answer_text) = match &result {
                Ok(a) => {
                    let v = classify(&route.spec.answer, a);
                    let (code, message) = business_fields(&route.spec.answer, &a.body);
                    (v, answer_summary(a.status, code, message))
                }
                Err(no) => (no.verdict(), hub_security::mask::free_text(&format!("{no:?}"), 500)),
            };
            client.breaker.record(verdict.partner_ok(), probe);
            gauge!("hub_egress_breaker_open", "partner" => route.spec.partner.clone())
                .set(if client.breaker.state() == hub_adapter::breaker::BreakerState::Closed { 0.0 } else { 1.0 });
            counter!("hub_egress_attempts_total", "route" => route.name.clone(), "outcome" => verdict.reason()).increment(1);
            match verdict {
                Verdict::Delivered { code } => {
                    if let (Some(reply), Ok(answer)) = (&route.reply, &result) {
                        match answered(route, reply, &envelope, answer, code.as_deref()) {
                            Ok(n) => {
                                if !send_reply(route, &envelope, &hop, n, ReplyOutcome::Answered, None, token).await {
                                    return Finish::Abandoned;
                                }
                            }
                            Err(e) => {
                                // The partner answered, but not in a shape the reply contract
                                // takes: the asking app is told, and a person looks at it.
                                let mut f = failure(
                                    e.code(),
                                    format!("the answer does not fit the reply contract: {}", hub_security::mask::free_text(&e.to_string(), 500)),
                                    attempts,
                                );
                                f.partner_code = code;
                                f.partner_answer = Some(answer_text);
                                let asked = Asked { envelope: &envelope, hop: &hop, outcome: ReplyOutcome::Failed };
                                return give_up(route, &d, f, Some(asked), token).await;
                            }
                        }
                    }
                    counter!("hub_egress_messages_total", "route" => route.name.clone(), "outcome" => "delivered").increment(1);
                    histogram!("hub_egress_delivery_seconds", &labels).record(started.elapsed().as_secs_f64());
                    info!(attempts, code = code.as_deref().unwrap_or("-"), "delivered");
                    route.ctx.state.trace_event(delivered_event(route, &d, &envelope, attempts, code, started));
                    return Finish::Done;
                }
                Verdict::Permanent { reason, code } => {
                    let mut f = failure(reason, format!("the partner refused the message: {answer_text}"), attempts);
                    f.partner_code = code;
                    f.partner_answer = Some(answer_text);
                    let asked = Asked { envelope: &envelope, hop: &hop, outcome: ReplyOutcome::Refused };
                    return give_up(route, &d, f, Some(asked), token).await;
                }
                Verdict::Retry { reason, code, after } => {
                    let spent = started.elapsed();
                    let wait = full_jitter(
                        Duration::from_millis(policy.backoff_initial_ms),
                        Duration::from_millis(policy.backoff_max_ms),
                        attempts,
                    )
                    .max(after.unwrap_or_default());
                    if attempts >= policy.max_attempts || spent + wait > budget {
                        let mut f = failure(
                            "EGRESS_RETRY_EXHAUSTED",
                            format!("{attempts} attempts in {} s; last: {reason} ({answer_text})", spent.as_secs()),
                            attempts,
                        );
                        f.partner_code = code;
                        f.partner_answer = Some(answer_text);
                        let asked = Asked { envelope: &envelope, hop: &hop, outcome: ReplyOutcome::Failed };
                        return give_up(route, &d, f, Some(asked), token).await;
                    }
                    counter!("hub_egress_retries_total", "route" => route.name.clone(), "reason" => reason).increment(1);
                    warn!(attempts, reason, wait_ms = wait.as_millis() as u64, "delivery failed; will retry");
                    if !pause(wait, token).await {
                        return Finish::Abandoned;
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// What the dead letter, its index and the logs say of a partner's answer: status, business
/// code and message, masked and cut once here (`hub_security::mask::free_text`), because the
/// partner's message is free text that can quote a citizen's phone or ID number back. Both the
/// dead letter's `reason` and its `partner_answer` are built from this, never from the raw text.
fn answer_summary(status: u16, code: Option<String>, message: Option<String>) -> String {
    let text = format!(
        "HTTP {status} code={} message={}",
        code.unwrap_or_else(|| "-".into()),
        message.unwrap_or_else(|| "-".into())
    );
    hub_security::mask::free_text(&text, 500)
}

/// The message trace's `delivered` step: route, attempts, partner code, duration, and which
/// record (a replay comes from the replay topic).
fn delivered_event(
    route: &Route,
    d: &Delivery,
    envelope: &hub_bus::Envelope,
    attempts: u32,
    partner_code: Option<String>,
    started: Instant,
) -> hub_state::TraceEvent {
    hub_state::TraceEvent::new("delivered", envelope.message_id.to_string())
        .correlation(envelope.correlation_id.as_str())
        .object(envelope.object_id.as_str())
        .detail(serde_json::json!({
            "route": route.name, "attempts": attempts, "partner_code": partner_code,
            "duration_ms": started.elapsed().as_millis() as u64,
            "source": { "topic": d.topic, "partition": d.partition, "offset": d.offset },
        }))
}

pub(crate) fn failure(code: &str, reason: String, attempts: u32) -> Failure {
    Failure {
        reason_code: code.to_string(),
        reason,
        partner_code: None,
        partner_answer: None,
        attempts,
    }
}

/// The request a reply answers: its envelope, the delivery's trace hop, and how it ended.
pub(crate) struct Asked<'a> {
    envelope: &'a hub_bus::Envelope,
    hop: &'a hub_telemetry::TraceParent,
    outcome: ReplyOutcome,
}

/// Writes the dead letter, retrying while Kafka or the state store is away (nothing is
/// committed until it is written, so shutdown in between loses nothing); then, for a request,
/// the reply that says it failed, so the asking app is never left waiting.
pub(crate) async fn give_up(
    route: &Route,
    d: &Delivery,
    f: Failure,
    asked: Option<Asked<'_>>,
    token: &CancellationToken,
) -> Finish {
    let schema_id = route.ctx.schema_id(&route.dead_letters);
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        match dead_letter(
            &route.dead_letters,
            schema_id,
            &route.ctx.producer,
            &route.ctx.state,
            &route.name,
            d,
            &f,
        )
        .await
        {
            Ok(entry) => {
                counter!("hub_egress_messages_total", "route" => route.name.clone(), "outcome" => "dead_lettered").increment(1);
                counter!("hub_egress_dead_letters_total", "route" => route.name.clone(), "reason" => f.reason_code.clone()).increment(1);
                warn!(dead_letter = %entry.id, reason = %f.reason_code, attempts = f.attempts, "dead-lettered");
                break;
            }
            Err(e) => {
                let wait = full_jitter(Duration::from_millis(200), Duration::from_secs(30), tries);
                warn!(error = %e, wait_ms = wait.as_millis() as u64, "the dead letter could not be written; retrying");
                if !pause(wait, token).await {
                    return Finish::Abandoned;
                }
            }
        }
    }
    let (Some(reply), Some(asked)) = (&route.reply, asked) else {
        return Finish::Done;
    };
    let record = hub_contracts::reply::failed_record(
        &reply.contract,
        &asked.envelope.message_id.to_string(),
        &asked.envelope.object_id,
        hub_contracts::reply::NotAnswered {
            outcome: asked.outcome,
            reason_code: &f.reason_code,
            reason: &f.reason,
            partner_code: f.partner_code.as_deref(),
        },
        &now_text(),
    );
    let schema_id = route.ctx.schema_id(&reply.contract);
    match hub_pipeline::frame_record(&reply.contract, &route.ctx.cipher, schema_id, record) {
        Ok(n) => {
            let sent = send_reply(
                route,
                asked.envelope,
                asked.hop,
                n,
                asked.outcome,
                Some(&f.reason_code),
                token,
            )
            .await;
            if sent {
                Finish::Done
            } else {
                Finish::Abandoned
            }
        }
        // The reply contract passed the shape check at start, so this is a hub defect; the
        // dead letter holds the request for a replay once it is fixed.
        Err(e) => {
            tracing::error!(code = e.code(), error = %e, "the failure reply could not be made");
            counter!("hub_egress_replies_total", "route" => route.name.clone(), "outcome" => "unencodable").increment(1);
            Finish::Done
        }
    }
}

/// The partner's answer through the reply mapping, with the hub's fields set.
fn answered(
    route: &Route,
    reply: &Reply,
    request: &hub_bus::Envelope,
    answer: &hub_adapter::PartnerAnswer,
    partner_code: Option<&str>,
) -> Result<hub_pipeline::Normalized, hub_pipeline::NormalizeError> {
    let request_id = request.message_id.to_string();
    hub_pipeline::normalize_with(
        &reply.mapping,
        &route.ctx.catalog,
        &route.ctx.cipher,
        |c| route.ctx.schema_id(c),
        &answer.body,
        |record| {
            hub_contracts::reply::complete_answered(
                record,
                &reply.contract,
                &request_id,
                &request.object_id,
                partner_code,
                &now_text(),
            )
        },
    )
}

/// Produces a reply (acks=all) as a message caused by the request, in its correlation and its
/// trace; retries while Kafka is away. `false`: shutdown came first (the request will be read
/// and sent again, and answered again: apps take the latest reply of a request).
async fn send_reply(
    route: &Route,
    request: &hub_bus::Envelope,
    hop: &hub_telemetry::TraceParent,
    reply: hub_pipeline::Normalized,
    outcome: ReplyOutcome,
    reason_code: Option<&str>,
    token: &CancellationToken,
) -> bool {
    let mut envelope = reply.envelope(&route.spec.partner, &route.spec.partner);
    envelope.correlation_id = request.correlation_id.clone();
    envelope.causation_id = Some(request.message_id);
    envelope.traceparent = Some(hop.to_string());
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        match route
            .ctx
            .producer
            .send(&reply.topic, &envelope, &reply.framed)
            .await
        {
            Ok(put) => {
                counter!("hub_egress_replies_total", "route" => route.name.clone(), "outcome" => outcome.as_str()).increment(1);
                info!(reply = %envelope.message_id, outcome = outcome.as_str(), topic = %reply.topic, "replied");
                let detail = serde_json::json!({
                    "route": route.name, "outcome": outcome.as_str(), "reason_code": reason_code,
                    "reply_message_id": envelope.message_id.to_string(),
                    "topic": put.topic, "partition": put.partition, "offset": put.offset,
                });
                route.ctx.state.trace_event(
                    hub_state::TraceEvent::new("replied", request.message_id.to_string())
                        .correlation(request.correlation_id.as_str())
                        .object(request.object_id.as_str())
                        .detail(detail),
                );
                let (event_type, version) =
                    (envelope.event_type.clone(), envelope.contract_version);
                route.ctx.state.trace_event(
                    hub_state::TraceEvent::new("produced", envelope.message_id.to_string())
                        .correlation(envelope.correlation_id.as_str())
                        .object(envelope.object_id.as_str())
                        .detail(serde_json::json!({
                            "contract": event_type, "version": version,
                            "topic": put.topic, "partition": put.partition, "offset": put.offset,
                        })),
                );
                return true;
            }
            Err(e) => {
                let wait = full_jitter(Duration::from_millis(200), Duration::from_secs(30), tries);
                warn!(code = e.code(), error = %e, wait_ms = wait.as_millis() as u64, "the reply could not be produced; retrying");
                if !pause(wait, token).await {
                    return false;
                }
            }
        }
    }
}

/// Now, as contracts write times (RFC 3339, China Standard Time, milliseconds).
fn now_text() -> String {
    hub_bus::now_shanghai().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}
