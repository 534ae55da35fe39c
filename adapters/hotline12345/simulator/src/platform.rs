//! The platform's state and its rules, without HTTP: tickets and the data generator, kept in the
//! simulator kit's core (which adds idempotency answers, nonces, planned faults and counters),
//! behind one mutex that is never held across an `await`.

use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};

use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sim_kit::auth::hub_v1::{HubV1Signer, HubV1Verifier};
use sim_kit::auth::Inbound;
use sim_kit::{Call, CallKind, Core, Decision, Kit, KitConfig, NoHub, Push, Reply};
use tracing::{info, warn};

use crate::codes::{self, PlatformCodes};
use crate::config::SimulatorConfig;
use crate::faults::{Endpoint, FaultRule};
use crate::generate::{to_gbk_xml, to_json_bytes, Generator};
use crate::model::{
    apply, validate, Action, ExtensionView, HistoryEntry, PushFormat, Rules, Ticket, TicketState,
};
use crate::time::{fmt_local, now_s, parse_local};
use sim_kit::{PushOutcome, PushRecord};

/// Counters of everything the platform saw and did (the kit's).
pub use sim_kit::Stats;

/// Everything about a ticket, as tests and the control API see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketView {
    pub ticket_no: String,
    pub state: TicketState,
    pub state_zh: String,
    pub format: PushFormat,
    /// Local time, `YYYY-MM-DD HH:MM:SS`.
    pub dispatched_at: String,
    pub sign_deadline: String,
    /// The current one (moved by an approved extension).
    pub handle_deadline: String,
    pub category_code: String,
    pub district_code: String,
    pub urgent: bool,
    /// No caller name or phone.
    pub anonymous: bool,
    /// The dispatch as the JSON push and the query API carry it.
    pub dispatch: Value,
    pub extensions: Vec<ExtensionView>,
    pub history: Vec<HistoryEntry>,
    /// Every idempotency key of a request about this ticket, in order of first sight.
    pub idempotency_keys: Vec<String>,
    /// Requests about this ticket answered from the idempotency store.
    pub duplicates: u32,
    pub pushes: Vec<PushRecord>,
    /// Whether the hub accepted the dispatch push; `None` when it was not pushed.
    pub hub_accepted: Option<bool>,
}

impl TicketView {
    /// The applied bureau actions (`sign`, `return`, …) in order: one entry per effect.
    pub fn effects(&self) -> Vec<&HistoryEntry> {
        self.history
            .iter()
            .filter(|h| h.code == codes::OK && Action::parse(&h.action).is_some())
            .collect()
    }
}

fn view(t: &Ticket, duplicates: u32) -> TicketView {
    let s = |k: &str| t.dispatch[k].as_str().unwrap_or_default().to_string();
    TicketView {
        ticket_no: t.no.clone(),
        state: t.state,
        state_zh: t.state.zh().to_string(),
        format: t.format,
        dispatched_at: fmt_local(t.dispatched_at),
        sign_deadline: s("qssx"),
        handle_deadline: t.handle_deadline.clone(),
        category_code: s("sqlb"),
        district_code: s("qh"),
        urgent: s("jjcd") == "1",
        anonymous: t.dispatch.get("ldrxm").is_none() && t.dispatch.get("lxdh").is_none(),
        dispatch: t.dispatch.clone(),
        extensions: t.extensions.clone(),
        history: t.history.clone(),
        idempotency_keys: t.idempotency_keys.clone(),
        duplicates,
        hub_accepted: t
            .pushes
            .iter()
            .rev()
            .find(|p| p.kind == "dispatch")
            .map(|p| p.outcome == PushOutcome::Accepted),
        pushes: t.pushes.clone(),
    }
}

/// Why a platform-side act was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    UnknownTicket(String),
    /// The ticket's state does not allow it.
    State(TicketState),
    /// No hub URL is configured, or pushes are turned off.
    NoHub,
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::UnknownTicket(no) => write!(f, "unknown ticket {no}"),
            SimError::State(s) => write!(f, "not allowed in state {s:?} ({})", s.zh()),
            SimError::NoHub => write!(f, "no hub to push to (no hub URL, or pushes are off)"),
        }
    }
}

impl std::error::Error for SimError {}

impl From<NoHub> for SimError {
    fn from(_: NoHub) -> Self {
        SimError::NoHub
    }
}

/// A batch of new tickets.
#[derive(Debug, Clone)]
pub struct TicketBatch {
    pub count: usize,
    /// Share pushed as GBK XML, 0.0–1.0.
    pub xml_ratio: f64,
    /// Dispatch time of every ticket of the batch; `None`: now.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// Push them to the hub (when the configuration allows); `false`: only offered to the
    /// query API.
    pub push: bool,
}

/// The platform's own state: its tickets (kept in the state file) and the generator (not).
pub(crate) struct Tickets {
    tickets: BTreeMap<String, Ticket>,
    generator: Generator,
}

impl sim_kit::PartnerState for Tickets {
    fn save(&self) -> serde_json::Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("tickets".into(), serde_json::to_value(&self.tickets)?);
        Ok(m)
    }

    fn restore(&mut self, mut saved: Map<String, Value>) -> serde_json::Result<usize> {
        let tickets = saved.remove("tickets").unwrap_or(Value::Null);
        self.tickets = serde_json::from_value(tickets)?;
        Ok(self.tickets.len())
    }

    fn fingerprint(&self) -> u64 {
        let history: usize = self.tickets.values().map(|t| t.history.len()).sum();
        let pushes: usize = self.tickets.values().map(|t| t.pushes.len()).sum();
        (self.tickets.len() + history * 7919 + pushes * 104_729) as u64
    }
}

type PlatformKit = Kit<Tickets, FaultRule>;

/// Work to start once the lock is released.
enum FollowUp {
    ApproveExtension(String),
    Close(String),
}

pub(crate) struct Platform {
    pub cfg: SimulatorConfig,
    pub kit: Arc<PlatformKit>,
}

impl Platform {
    pub fn new(cfg: SimulatorConfig) -> Arc<Self> {
        let generator = Generator::new(cfg.seed, cfg.ticket_prefix, cfg.unit.clone());
        let kit = Kit::new(
            KitConfig {
                adapter: "hotline12345".into(),
                hub_url: cfg.hub_url.clone(),
                push: cfg.push,
                retry: cfg.retry.clone(),
                state_file: cfg.state_file.clone(),
            },
            Tickets {
                tickets: BTreeMap::new(),
                generator,
            },
            Arc::new(PlatformCodes),
            Box::new(HubV1Verifier {
                app_id: cfg.hub_app_id.clone(),
                secret: cfg.hub_hmac_secret.as_bytes().to_vec(),
                window: cfg.timestamp_window,
            }),
            Box::new(HubV1Signer {
                app_id: cfg.platform_app_id.clone(),
                secret: cfg.platform_hmac_secret.as_bytes().to_vec(),
            }),
        );
        Arc::new(Platform { cfg, kit })
    }

    fn lock(&self) -> MutexGuard<'_, Core<Tickets, FaultRule>> {
        self.kit.lock()
    }

    pub fn ticket_prefix(&self) -> u32 {
        self.lock().state.generator.prefix()
    }

    // ---- views and control ------------------------------------------------------------

    pub fn ticket(&self, no: &str) -> Option<TicketView> {
        let core = self.lock();
        core.state
            .tickets
            .get(no)
            .map(|t| view(t, core.duplicates_of(no)))
    }

    pub fn tickets(&self) -> Vec<TicketView> {
        let core = self.lock();
        let mut all: Vec<&Ticket> = core.state.tickets.values().collect();
        all.sort_by(|a, b| (a.dispatched_at, &a.no).cmp(&(b.dispatched_at, &b.no)));
        all.into_iter()
            .map(|t| view(t, core.duplicates_of(&t.no)))
            .collect()
    }

    pub fn approve_extension(&self, no: &str) -> bool {
        let approved = self
            .lock()
            .state
            .tickets
            .get_mut(no)
            .is_some_and(|t| t.approve_extension(now_s()));
        if approved {
            info!(ticket = no, "extension approved");
        }
        approved
    }

    // ---- the bureau's actions -------------------------------------------------------------

    /// `POST /api/v1/tickets/{action}`.
    pub fn handle_action(self: &Arc<Self>, action: Action, http: Inbound<'_>) -> Reply {
        let doc: Option<Value> = serde_json::from_slice(http.body).ok();
        let ticket_no = doc
            .as_ref()
            .and_then(|d| d.get("gdbh"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string());
        let endpoint = match action {
            Action::Sign => Endpoint::Sign,
            Action::Return => Endpoint::Return,
            Action::Extension => Endpoint::Extension,
            Action::Reply => Endpoint::Reply,
        };
        let call = Call {
            endpoint,
            name: action.as_str(),
            kind: CallKind::Action,
            object: ticket_no.as_deref(),
            http,
        };
        let (reply, follow_ups) = self
            .kit
            .handle(call, |state, key| self.decide(state, action, doc, key));
        for f in follow_ups {
            self.start(f);
        }
        reply
    }

    /// The business answer of a verified, fault-free request.
    fn decide(
        &self,
        state: &mut Tickets,
        action: Action,
        doc: Option<Value>,
        key: Option<&str>,
    ) -> (Decision, Vec<FollowUp>) {
        let now = now_s();
        let doc = doc.unwrap_or(Value::Null);
        let mut follow_ups = vec![];
        let (code, data) = match validate(action, &doc) {
            Err(code) => (code, json!({})),
            Ok(no) => match state.tickets.get_mut(&no) {
                None => (codes::TICKET_NOT_FOUND, json!({ "gdbh": no })),
                Some(t) => {
                    let rules = Rules {
                        return_window: self.cfg.return_window,
                    };
                    let result = apply(t, action, &doc, now, &rules);
                    let code = match &result {
                        Ok(_) => codes::OK,
                        Err(c) => c,
                    };
                    t.record(action.as_str(), key, code, doc.clone(), now);
                    match result {
                        Ok(data) => {
                            match action {
                                Action::Extension if self.cfg.extension_approve_after.is_some() => {
                                    follow_ups.push(FollowUp::ApproveExtension(no.clone()))
                                }
                                Action::Reply if self.lifecycle_pushes() => {
                                    follow_ups.push(FollowUp::Close(no.clone()))
                                }
                                _ => {}
                            }
                            (codes::OK, data)
                        }
                        Err(c) => (c, json!({ "gdbh": no, "gdzt": t.state.zh() })),
                    }
                }
            },
        };
        let decision = Decision {
            code: code.to_string(),
            data,
        };
        (decision, follow_ups)
    }

    // ---- the pull API ---------------------------------------------------------------------

    /// `POST /api/v1/tickets/query`: tickets dispatched in `[kssj, jssj)`, by dispatch time
    /// then number, one page.
    pub fn handle_query(&self, http: Inbound<'_>) -> Reply {
        let call = Call {
            endpoint: Endpoint::Query,
            name: "query",
            kind: CallKind::Query,
            object: None,
            http,
        };
        let (reply, _) = self.kit.handle(call, |state, _| {
            let (code, data) = self.query_page(state, http.body);
            (
                Decision {
                    code: code.into(),
                    data,
                },
                Vec::<()>::new(),
            )
        });
        reply
    }

    fn query_page(&self, state: &Tickets, body: &[u8]) -> (&'static str, Value) {
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return (codes::MALFORMED, json!({}));
        };
        let time = |k: &str| doc.get(k).and_then(Value::as_str).and_then(parse_local);
        // Page numbers may come as numbers or numeric strings (a filled-in template).
        let number = |k: &str| match doc.get(k) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let (Some(since), Some(until), Some(page), Some(size)) = (
            time("kssj"),
            time("jssj"),
            number("pageNo"),
            number("pageSize"),
        ) else {
            return (codes::MALFORMED, json!({}));
        };
        if page == 0 || size == 0 || size > 1000 {
            return (codes::MALFORMED, json!({}));
        }
        let now = Utc::now();
        let delay = chrono::Duration::from_std(self.cfg.index_delay).unwrap_or_default();
        let mut matching: Vec<&Ticket> = state
            .tickets
            .values()
            .filter(|t| t.dispatched_at >= since && t.dispatched_at < until)
            .filter(|t| t.created_at + delay <= now)
            .collect();
        matching.sort_by(|a, b| (a.dispatched_at, &a.no).cmp(&(b.dispatched_at, &b.no)));
        let total = matching.len();
        let list: Vec<Value> = matching
            .into_iter()
            .skip(((page - 1) * size) as usize)
            .take(size as usize)
            .map(|t| t.dispatch.clone())
            .collect();
        info!(kssj = %fmt_local(since), jssj = %fmt_local(until), page, size, total, returned = list.len(), "query answered");
        (
            codes::OK,
            json!({ "list": list, "total": total, "pageNo": page, "pageSize": size }),
        )
    }

    // ---- the platform's own acts ----------------------------------------------------------

    fn lifecycle_pushes(&self) -> bool {
        self.cfg.lifecycle.enabled && self.kit.can_push()
    }

    fn start(self: &Arc<Self>, follow_up: FollowUp) {
        let p = Arc::clone(self);
        self.kit.spawn(async move {
            match follow_up {
                FollowUp::ApproveExtension(no) => {
                    if let Some(d) = p.cfg.extension_approve_after {
                        tokio::time::sleep(d).await;
                        p.approve_extension(&no);
                    }
                }
                FollowUp::Close(no) => {
                    tokio::time::sleep(p.cfg.lifecycle.close_after).await;
                    if let Err(e) = p.push_close(&no).await {
                        warn!(ticket = %no, error = %e, "close not pushed");
                        return;
                    }
                    tokio::time::sleep(p.cfg.lifecycle.visit_after).await;
                    if let Err(e) = p.push_visit(&no).await {
                        warn!(ticket = %no, error = %e, "visit not pushed");
                    }
                }
            }
        });
    }

    /// Makes a batch of tickets; pushes them (concurrently) when asked and allowed; returns
    /// their numbers once every push has ended.
    pub async fn create_tickets(self: &Arc<Self>, batch: TicketBatch) -> Vec<String> {
        let ratio = batch.xml_ratio.clamp(0.0, 1.0);
        let mut made = Vec::with_capacity(batch.count);
        {
            let mut core = self.lock();
            let state = &mut core.state;
            let now = now_s();
            let at = batch.dispatched_at.unwrap_or(now);
            // Exactly round(count · ratio) XML tickets (the fraction drawn at random), spread
            // at random over the batch: a test of ten at 0.3 gets three.
            let exact = batch.count as f64 * ratio;
            let mut xml = exact.floor() as usize;
            if state.generator.rng().random_bool(exact.fract()) {
                xml += 1;
            }
            let mut formats = vec![PushFormat::Json; batch.count];
            for f in formats.iter_mut().take(xml) {
                *f = PushFormat::Xml;
            }
            rand::seq::SliceRandom::shuffle(&mut formats[..], state.generator.rng());
            for format in formats {
                let dispatch = loop {
                    let d = state.generator.dispatch(at);
                    let no = d["gdbh"].as_str().unwrap_or_default();
                    if !state.tickets.contains_key(no) {
                        break d;
                    }
                };
                let bytes = match format {
                    PushFormat::Json => to_json_bytes(&dispatch),
                    PushFormat::Xml => to_gbk_xml(&dispatch),
                };
                // Made now, to the millisecond: the query API's indexing delay counts from here.
                let t = Ticket::new(dispatch, format, bytes, Utc::now());
                // Never the caller's data in the log: number, codes and format only.
                info!(
                    ticket = %t.no,
                    format = ?format,
                    category = t.dispatch["sqlb"].as_str().unwrap_or("-"),
                    district = t.dispatch["qh"].as_str().unwrap_or("-"),
                    urgent = t.dispatch["jjcd"] == "1",
                    "ticket dispatched"
                );
                made.push(t.no.clone());
                state.tickets.insert(t.no.clone(), t);
            }
        }
        if batch.push && self.kit.can_push() {
            let mut set = tokio::task::JoinSet::new();
            for no in made.clone() {
                let p = Arc::clone(self);
                set.spawn(async move {
                    let _ = p.push_dispatch(&no).await;
                });
            }
            while set.join_next().await.is_some() {}
        }
        if self.cfg.lifecycle.enabled {
            if let Some(after) = self.cfg.lifecycle.urge_after {
                for no in &made {
                    let (p, no) = (Arc::clone(self), no.clone());
                    self.kit.spawn(async move {
                        tokio::time::sleep(after).await;
                        let open = p.ticket(&no).is_some_and(|t| {
                            matches!(t.state, TicketState::Dispatched | TicketState::Signed)
                        });
                        if open && p.lifecycle_pushes() {
                            if let Err(e) = p.push_urge(&no).await {
                                warn!(ticket = %no, error = %e, "urge not pushed");
                            }
                        }
                    });
                }
            }
        }
        made
    }

    /// Pushes one message about ticket `no` and keeps the record with the ticket.
    async fn send(
        &self,
        no: &str,
        kind: &str,
        mapping: &str,
        content_type: &str,
        body: &[u8],
        pmid: &str,
    ) -> Result<PushRecord, SimError> {
        let record = self
            .kit
            .send(Push {
                kind,
                mapping,
                content_type,
                body,
                partner_message_id: pmid,
            })
            .await?;
        if let Some(t) = self.lock().state.tickets.get_mut(no) {
            t.pushes.push(record.clone());
        }
        Ok(record)
    }

    /// Pushes (or re-pushes, byte for byte and with the same partner message id) the dispatch
    /// of ticket `no`.
    pub async fn push_dispatch(&self, no: &str) -> Result<PushRecord, SimError> {
        let (format, body) = {
            let core = self.lock();
            let t = core
                .state
                .tickets
                .get(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            (t.format, t.push_body.clone())
        };
        let (mapping, content_type) = match format {
            PushFormat::Json => ("dispatch_json", "application/json; charset=utf-8"),
            PushFormat::Xml => ("dispatch_xml", "application/xml; charset=GBK"),
        };
        let pmid = format!("{no}-PD");
        self.send(no, "dispatch", mapping, content_type, &body, &pmid)
            .await
    }

    /// A platform act on a ticket: checks and changes its state under the lock, then pushes.
    async fn platform_act(
        &self,
        no: &str,
        kind: &str,
        make: impl FnOnce(&mut Tickets, &str) -> Result<(Value, String), SimError>,
    ) -> Result<PushRecord, SimError> {
        if !self.kit.can_push() {
            return Err(SimError::NoHub);
        }
        let (body, pmid) = {
            let mut core = self.lock();
            let state = &mut core.state;
            let (body, pmid) = make(state, no)?;
            let t = state.tickets.get_mut(no).expect("checked by make");
            t.record(kind, None, codes::OK, body.clone(), now_s());
            (body, pmid)
        };
        info!(ticket = no, kind, "platform act");
        let mapping = format!("{kind}_json");
        let bytes = to_json_bytes(&body);
        self.send(
            no,
            kind,
            &mapping,
            "application/json; charset=utf-8",
            &bytes,
            &pmid,
        )
        .await
    }

    /// 督办: urges an open ticket (the first a reminder, later ones formal orders).
    pub async fn push_urge(&self, no: &str) -> Result<PushRecord, SimError> {
        self.platform_act(no, "urge", |state, no| {
            let t = state
                .tickets
                .get_mut(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            if matches!(t.state, TicketState::Closed | TicketState::Returned) {
                return Err(SimError::State(t.state));
            }
            t.urge_count += 1;
            let n = t.urge_count;
            let body = state.generator.urge(no, n, now_s());
            Ok((body, format!("{no}-DB{n}")))
        })
        .await
    }

    /// 销单: closes a ticket, as completed when it was replied to and as withdrawn otherwise.
    pub async fn push_close(&self, no: &str) -> Result<PushRecord, SimError> {
        self.platform_act(no, "close", |state, no| {
            let t = state
                .tickets
                .get_mut(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            if matches!(t.state, TicketState::Closed | TicketState::Returned) {
                return Err(SimError::State(t.state));
            }
            let replied = t.state == TicketState::Replied;
            t.state = TicketState::Closed;
            let body = state.generator.close(no, replied, now_s());
            Ok((body, format!("{no}-XD")))
        })
        .await
    }

    /// 回访: the platform's visit of a closed ticket's caller.
    pub async fn push_visit(&self, no: &str) -> Result<PushRecord, SimError> {
        self.platform_act(no, "visit", |state, no| {
            let t = state
                .tickets
                .get(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            if t.state != TicketState::Closed {
                return Err(SimError::State(t.state));
            }
            let n = t.history.iter().filter(|h| h.action == "visit").count() + 1;
            let body = state.generator.visit(no, now_s());
            Ok((body, format!("{no}-HF{n}")))
        })
        .await
    }
}
