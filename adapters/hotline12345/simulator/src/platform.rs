//! The platform's state and its rules, without HTTP: tickets, idempotency answers, nonces,
//! planned faults and counters, behind one mutex that is never held across an `await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use hub_security::signing::{
    header, nonce_is_valid, received_signed_headers, RequestParts, SignatureMethod,
    VerifyingCredential,
};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::codes;
use crate::config::SimulatorConfig;
use crate::faults::{Endpoint, Fault, FaultBook, FaultRule};
use crate::generate::{to_gbk_xml, to_json_bytes, Generator};
use crate::model::{
    apply, validate, Action, ExtensionView, HistoryEntry, PushFormat, Rules, Ticket, TicketState,
};
use crate::push::{PushOutcome, PushRecord, Pusher};
use crate::time::{fmt_local, now_s, parse_local};

/// Counters of everything the platform saw and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests to the platform's APIs (`/api/v1/...`), every answer counted.
    pub requests: u64,
    pub requests_by_endpoint: BTreeMap<String, u64>,
    /// Bureau actions applied (answered `0000`, first time).
    pub applied: u64,
    /// Requests answered from the idempotency store (a repeated `X-Idempotency-Key`).
    pub duplicates: u64,
    /// Requests refused with `4001`.
    pub bad_signatures: u64,
    /// Every business refusal by code (`1001`…`4001`, injected ones too).
    pub refusals_by_code: BTreeMap<String, u64>,
    /// Requests a fault rule was applied to.
    pub faults_injected: u64,
    pub queries: u64,
    /// Pushes to the hub (one per message, whatever the attempts) by how they ended.
    pub pushes_accepted: u64,
    /// Of the accepted: the hub said it already had the message.
    pub pushes_duplicate: u64,
    pub pushes_refused: u64,
    pub pushes_unreachable: u64,
    /// Every HTTP attempt of every push.
    pub push_attempts: u64,
}

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

#[derive(Serialize, Deserialize)]
struct StoredAnswer {
    /// HTTP status code.
    status: u16,
    body: Value,
}

/// [`Saved`] borrowed, for writing without copying.
#[derive(Serialize)]
struct SavedRef<'a> {
    tickets: &'a BTreeMap<String, Ticket>,
    answers: &'a HashMap<String, StoredAnswer>,
    nonces: &'a HashMap<String, i64>,
}

/// What the state file holds: the platform's memory of tickets and of answered requests.
#[derive(Serialize, Deserialize)]
struct Saved {
    tickets: BTreeMap<String, Ticket>,
    answers: HashMap<String, StoredAnswer>,
    nonces: HashMap<String, i64>,
}

pub(crate) struct Inner {
    tickets: BTreeMap<String, Ticket>,
    duplicates_by_ticket: HashMap<String, u32>,
    answers: HashMap<String, StoredAnswer>,
    /// Nonce → timestamp (ms) of the request that used it.
    nonces: HashMap<String, i64>,
    faults: FaultBook,
    stats: Stats,
    generator: Generator,
}

/// What the HTTP layer is to do with a request.
pub(crate) enum Reply {
    Json {
        status: StatusCode,
        body: Value,
        retry_after: Option<u64>,
    },
    /// Answer `reply` after `delay`.
    Late(Duration, Box<Reply>),
    /// Drop the connection.
    Reset,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply::Json {
            status: StatusCode::OK,
            body,
            retry_after: None,
        }
    }
}

/// Work to start once the lock is released.
enum FollowUp {
    ApproveExtension(String),
    Close(String),
}

pub(crate) struct Platform {
    pub cfg: SimulatorConfig,
    inner: Mutex<Inner>,
    pusher: Option<Pusher>,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl Platform {
    pub fn new(cfg: SimulatorConfig) -> Arc<Self> {
        let generator = Generator::new(cfg.seed, cfg.ticket_prefix, cfg.unit.clone());
        let pusher = cfg.hub_url.as_deref().map(|url| Pusher::new(&cfg, url));
        Arc::new(Platform {
            inner: Mutex::new(Inner {
                tickets: BTreeMap::new(),
                duplicates_by_ticket: HashMap::new(),
                answers: HashMap::new(),
                nonces: HashMap::new(),
                faults: FaultBook::default(),
                stats: Stats::default(),
                generator,
            }),
            pusher,
            cfg,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// Loads the state file, if there is one; returns how many tickets it held.
    pub(crate) fn restore(&self, path: &std::path::Path) -> anyhow::Result<usize> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        let saved: Saved = serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a simulator state file: {e}", path.display()))?;
        let mut inner = self.lock();
        let n = saved.tickets.len();
        inner.tickets = saved.tickets;
        inner.answers = saved.answers;
        inner.nonces = saved.nonces;
        Ok(n)
    }

    /// A cheap sign that something changed since the last save.
    pub(crate) fn fingerprint(&self) -> (usize, usize, usize, usize, u64) {
        let inner = self.lock();
        let history: usize = inner.tickets.values().map(|t| t.history.len()).sum();
        let pushes: usize = inner.tickets.values().map(|t| t.pushes.len()).sum();
        (
            inner.tickets.len(),
            inner.answers.len(),
            history,
            pushes,
            inner.stats.requests,
        )
    }

    /// Writes the state file: to a temporary file beside it, then renamed over it, so a crash
    /// mid-write leaves the previous state.
    pub(crate) fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let bytes = {
            let inner = self.lock();
            serde_json::to_vec(&SavedRef {
                tickets: &inner.tickets,
                answers: &inner.answers,
                nonces: &inner.nonces,
            })?
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough test state; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ticket_prefix(&self) -> u32 {
        self.lock().generator.prefix()
    }

    // ---- views and control ------------------------------------------------------------

    pub fn ticket(&self, no: &str) -> Option<TicketView> {
        let inner = self.lock();
        let dups = inner.duplicates_by_ticket.get(no).copied().unwrap_or(0);
        inner.tickets.get(no).map(|t| view(t, dups))
    }

    pub fn tickets(&self) -> Vec<TicketView> {
        let inner = self.lock();
        let mut all: Vec<&Ticket> = inner.tickets.values().collect();
        all.sort_by(|a, b| (a.dispatched_at, &a.no).cmp(&(b.dispatched_at, &b.no)));
        all.into_iter()
            .map(|t| {
                view(
                    t,
                    inner.duplicates_by_ticket.get(&t.no).copied().unwrap_or(0),
                )
            })
            .collect()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn inject(&self, rule: FaultRule) {
        info!(rule = ?rule, "fault rule added");
        self.lock().faults.add(rule);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn faults(&self) -> Vec<FaultRule> {
        self.lock().faults.rules().to_vec()
    }

    pub fn approve_extension(&self, no: &str) -> bool {
        let approved = self
            .lock()
            .tickets
            .get_mut(no)
            .is_some_and(|t| t.approve_extension(now_s()));
        if approved {
            info!(ticket = no, "extension approved");
        }
        approved
    }

    // ---- signatures ---------------------------------------------------------------------

    /// Checks the hub's signature headers: app id, method, timestamp window, nonce (fresh and
    /// never seen), and the HMAC-SM3 signature over the canonical request.
    fn verify(
        &self,
        inner: &mut Inner,
        headers: &HeaderMap,
        path: &str,
        raw_query: &str,
        body: &[u8],
    ) -> Result<(), &'static str> {
        let app_id = header_text(headers, header::APP_ID);
        if app_id != self.cfg.hub_app_id {
            return Err("unknown app id");
        }
        let method = SignatureMethod::parse(header_text(headers, header::SIGNATURE_METHOD))
            .filter(|m| *m == SignatureMethod::HmacSm3)
            .ok_or("unsupported signature method")?;
        let timestamp_ms: i64 = header_text(headers, header::TIMESTAMP)
            .parse()
            .map_err(|_| "bad timestamp")?;
        let now_ms = Utc::now().timestamp_millis();
        let window = i64::try_from(self.cfg.timestamp_window.as_millis()).unwrap_or(i64::MAX);
        let in_window = now_ms
            .checked_sub(timestamp_ms)
            .and_then(i64::checked_abs)
            .is_some_and(|skew| skew <= window);
        if !in_window {
            return Err("timestamp outside the window");
        }
        let nonce = header_text(headers, header::NONCE);
        if !nonce_is_valid(nonce) {
            return Err("bad nonce");
        }
        // The headers the hub signs besides the five (its idempotency key, the encryption
        // mode); a protected header outside the signature is refused like a bad signature.
        let signed_headers = received_signed_headers(
            headers
                .get(header::SIGNED_HEADERS)
                .and_then(|v| v.to_str().ok()),
            |n| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            },
        )
        .map_err(|_| "signed headers malformed, missing or a protected header unsigned")?;
        let parts = RequestParts {
            method,
            http_method: "POST",
            path,
            raw_query,
            app_id,
            timestamp_ms,
            nonce,
            body,
            signed_headers: &signed_headers,
        };
        let credential = VerifyingCredential::HmacSm3 {
            secret: self.cfg.hub_hmac_secret.as_bytes().to_vec(),
        };
        credential
            .verify(&parts.canonical(), header_text(headers, header::SIGNATURE))
            .map_err(|_| "signature does not verify")?;
        // Claimed only once the signature verifies, so a forger cannot burn nonces. Nonces
        // older than the window can no longer be replayed (the timestamp check refuses them).
        inner.nonces.retain(|_, ts| {
            now_ms
                .checked_sub(*ts)
                .and_then(i64::checked_abs)
                .is_some_and(|skew| skew <= window)
        });
        if inner
            .nonces
            .insert(nonce.to_string(), timestamp_ms)
            .is_some()
        {
            return Err("nonce reused");
        }
        Ok(())
    }

    fn refuse(inner: &mut Inner, code: &'static str, data: Value) -> Reply {
        *inner.stats.refusals_by_code.entry(code.into()).or_default() += 1;
        Reply::ok(codes::envelope(code, data))
    }

    fn fault_reply(inner: &mut Inner, fault: Fault) -> Reply {
        inner.stats.faults_injected += 1;
        match fault {
            // Handled by the caller: the effect is applied first.
            Fault::Delay { .. } => unreachable!("a delay is applied by the caller"),
            Fault::Hold { ms } => Reply::Late(
                Duration::from_millis(ms),
                Box::new(Reply::Json {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: codes::envelope(codes::MAINTENANCE, json!({})),
                    retry_after: None,
                }),
            ),
            Fault::Status { status } => Reply::Json {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body: json!({ "code": "9999", "msg": "系统内部错误" }),
                retry_after: None,
            },
            Fault::Throttle { retry_after_secs } => {
                *inner
                    .stats
                    .refusals_by_code
                    .entry(codes::BUSY.into())
                    .or_default() += 1;
                Reply::Json {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    body: codes::envelope(codes::BUSY, json!({})),
                    retry_after: Some(retry_after_secs),
                }
            }
            Fault::Reset => Reply::Reset,
            Fault::Code { code } => {
                *inner
                    .stats
                    .refusals_by_code
                    .entry(code.clone())
                    .or_default() += 1;
                let msg = codes::message(&code);
                Reply::ok(json!({ "code": code, "msg": msg, "data": {} }))
            }
        }
    }

    // ---- the bureau's actions -------------------------------------------------------------

    /// `POST /api/v1/tickets/{action}`.
    pub fn handle_action(
        self: &Arc<Self>,
        action: Action,
        headers: &HeaderMap,
        path: &str,
        raw_query: &str,
        body: &[u8],
    ) -> Reply {
        let (reply, follow_ups) = {
            let mut inner = self.lock();
            self.action_locked(&mut inner, action, headers, path, raw_query, body)
        };
        for f in follow_ups {
            self.start(f);
        }
        reply
    }

    fn action_locked(
        &self,
        inner: &mut Inner,
        action: Action,
        headers: &HeaderMap,
        path: &str,
        raw_query: &str,
        body: &[u8],
    ) -> (Reply, Vec<FollowUp>) {
        inner.stats.requests += 1;
        *inner
            .stats
            .requests_by_endpoint
            .entry(action.as_str().into())
            .or_default() += 1;
        if let Err(why) = self.verify(inner, headers, path, raw_query, body) {
            inner.stats.bad_signatures += 1;
            warn!(action = action.as_str(), why, "request refused: signature");
            return (
                Self::refuse(inner, codes::SIGNATURE_FAILED, json!({})),
                vec![],
            );
        }
        let doc: Option<Value> = serde_json::from_slice(body).ok();
        let ticket_no = doc
            .as_ref()
            .and_then(|d| d.get("gdbh"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string());
        let key = Some(header_text(headers, "x-idempotency-key").trim())
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        if let Some(stored) = key.as_ref().and_then(|k| inner.answers.get(k)) {
            let reply = Reply::Json {
                status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                body: stored.body.clone(),
                retry_after: None,
            };
            inner.stats.duplicates += 1;
            if let Some(no) = &ticket_no {
                *inner.duplicates_by_ticket.entry(no.clone()).or_default() += 1;
            }
            info!(
                action = action.as_str(),
                ticket = ticket_no.as_deref().unwrap_or("-"),
                "duplicate request answered from the idempotency store"
            );
            return (reply, vec![]);
        }
        let endpoint = match action {
            Action::Sign => Endpoint::Sign,
            Action::Return => Endpoint::Return,
            Action::Extension => Endpoint::Extension,
            Action::Reply => Endpoint::Reply,
        };
        let mut late = None;
        match inner.faults.take(endpoint, ticket_no.as_deref()) {
            None => {}
            Some(Fault::Delay { ms }) => {
                inner.stats.faults_injected += 1;
                late = Some(Duration::from_millis(ms));
            }
            Some(f) => {
                warn!(action = action.as_str(), ticket = ticket_no.as_deref().unwrap_or("-"), fault = ?f, "fault injected");
                return (Self::fault_reply(inner, f), vec![]);
            }
        }
        let (reply, follow_ups) = self.decide(inner, action, doc, key);
        let reply = match late {
            Some(d) => Reply::Late(d, Box::new(reply)),
            None => reply,
        };
        (reply, follow_ups)
    }

    /// The business answer of a verified, fault-free request; stored under its key.
    fn decide(
        &self,
        inner: &mut Inner,
        action: Action,
        doc: Option<Value>,
        key: Option<String>,
    ) -> (Reply, Vec<FollowUp>) {
        let now = now_s();
        let doc = doc.unwrap_or(Value::Null);
        let mut follow_ups = vec![];
        let (code, data) = match validate(action, &doc) {
            Err(code) => (code, json!({})),
            Ok(no) => match inner.tickets.get_mut(&no) {
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
                    t.record(action.as_str(), key.as_deref(), code, doc.clone(), now);
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
        let ticket = doc.get("gdbh").and_then(|v| v.as_str()).unwrap_or("-");
        info!(
            action = action.as_str(),
            ticket, code, "bureau request handled"
        );
        let reply = if code == codes::OK {
            inner.stats.applied += 1;
            Reply::ok(codes::envelope(code, data.clone()))
        } else {
            Self::refuse(inner, code, data.clone())
        };
        if let Some(k) = key {
            inner.answers.insert(
                k,
                StoredAnswer {
                    status: StatusCode::OK.as_u16(),
                    body: codes::envelope(code, data),
                },
            );
        }
        (reply, follow_ups)
    }

    // ---- the pull API ---------------------------------------------------------------------

    /// `POST /api/v1/tickets/query`: tickets dispatched in `[kssj, jssj)`, by dispatch time
    /// then number, one page.
    pub fn handle_query(
        &self,
        headers: &HeaderMap,
        path: &str,
        raw_query: &str,
        body: &[u8],
    ) -> Reply {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.stats.requests += 1;
        inner.stats.queries += 1;
        *inner
            .stats
            .requests_by_endpoint
            .entry("query".into())
            .or_default() += 1;
        if let Err(why) = self.verify(inner, headers, path, raw_query, body) {
            inner.stats.bad_signatures += 1;
            warn!(why, "query refused: signature");
            return Self::refuse(inner, codes::SIGNATURE_FAILED, json!({}));
        }
        match inner.faults.take(Endpoint::Query, None) {
            None => {}
            Some(Fault::Delay { ms }) => {
                inner.stats.faults_injected += 1;
                let reply = self.query_page(inner, body);
                return Reply::Late(Duration::from_millis(ms), Box::new(reply));
            }
            Some(f) => return Self::fault_reply(inner, f),
        }
        self.query_page(inner, body)
    }

    fn query_page(&self, inner: &mut Inner, body: &[u8]) -> Reply {
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return Self::refuse(inner, codes::MALFORMED, json!({}));
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
            return Self::refuse(inner, codes::MALFORMED, json!({}));
        };
        if page == 0 || size == 0 || size > 1000 {
            return Self::refuse(inner, codes::MALFORMED, json!({}));
        }
        let now = Utc::now();
        let delay = chrono::Duration::from_std(self.cfg.index_delay).unwrap_or_default();
        let mut matching: Vec<&Ticket> = inner
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
        Reply::ok(codes::envelope(
            codes::OK,
            json!({ "list": list, "total": total, "pageNo": page, "pageSize": size }),
        ))
    }

    // ---- the platform's own acts ----------------------------------------------------------

    fn lifecycle_pushes(&self) -> bool {
        self.cfg.lifecycle.enabled && self.can_push()
    }

    fn can_push(&self) -> bool {
        self.cfg.push && self.pusher.is_some()
    }

    fn start(self: &Arc<Self>, follow_up: FollowUp) {
        let p = Arc::clone(self);
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = p.run_follow_up(follow_up) => {}
            }
        });
    }

    async fn run_follow_up(self: Arc<Self>, follow_up: FollowUp) {
        match follow_up {
            FollowUp::ApproveExtension(no) => {
                if let Some(d) = self.cfg.extension_approve_after {
                    tokio::time::sleep(d).await;
                    self.approve_extension(&no);
                }
            }
            FollowUp::Close(no) => {
                tokio::time::sleep(self.cfg.lifecycle.close_after).await;
                if let Err(e) = self.push_close(&no).await {
                    warn!(ticket = %no, error = %e, "close not pushed");
                    return;
                }
                tokio::time::sleep(self.cfg.lifecycle.visit_after).await;
                if let Err(e) = self.push_visit(&no).await {
                    warn!(ticket = %no, error = %e, "visit not pushed");
                }
            }
        }
    }

    /// Makes a batch of tickets; pushes them (concurrently) when asked and allowed; returns
    /// their numbers once every push has ended.
    pub async fn create_tickets(self: &Arc<Self>, batch: TicketBatch) -> Vec<String> {
        let ratio = batch.xml_ratio.clamp(0.0, 1.0);
        let mut made = Vec::with_capacity(batch.count);
        {
            let mut inner = self.lock();
            let now = now_s();
            let at = batch.dispatched_at.unwrap_or(now);
            // Exactly round(count · ratio) XML tickets (the fraction drawn at random), spread
            // at random over the batch: a test of ten at 0.3 gets three.
            let exact = batch.count as f64 * ratio;
            let mut xml = exact.floor() as usize;
            if inner.generator.rng().random_bool(exact.fract()) {
                xml += 1;
            }
            let mut formats = vec![PushFormat::Json; batch.count];
            for f in formats.iter_mut().take(xml) {
                *f = PushFormat::Xml;
            }
            rand::seq::SliceRandom::shuffle(&mut formats[..], inner.generator.rng());
            for format in formats {
                let dispatch = loop {
                    let d = inner.generator.dispatch(at);
                    let no = d["gdbh"].as_str().unwrap_or_default();
                    if !inner.tickets.contains_key(no) {
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
                inner.tickets.insert(t.no.clone(), t);
            }
        }
        if batch.push && self.can_push() {
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
                    let p = Arc::clone(self);
                    let cancel = self.cancel.clone();
                    let no = no.clone();
                    self.tasks.spawn(async move {
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = tokio::time::sleep(after) => {
                                let open = p.ticket(&no).is_some_and(|t| {
                                    matches!(t.state, TicketState::Dispatched | TicketState::Signed)
                                });
                                if open && p.lifecycle_pushes() {
                                    if let Err(e) = p.push_urge(&no).await {
                                        warn!(ticket = %no, error = %e, "urge not pushed");
                                    }
                                }
                            }
                        }
                    });
                }
            }
        }
        made
    }

    async fn send(
        &self,
        no: &str,
        kind: &str,
        mapping: &str,
        content_type: &str,
        body: Vec<u8>,
        pmid: String,
    ) -> Result<PushRecord, SimError> {
        let pusher = self
            .pusher
            .as_ref()
            .filter(|_| self.cfg.push)
            .ok_or(SimError::NoHub)?;
        let record = pusher
            .push(kind, mapping, content_type, &body, &pmid, &self.cancel)
            .await;
        let mut inner = self.lock();
        inner.stats.push_attempts += u64::from(record.attempts);
        match record.outcome {
            PushOutcome::Accepted => {
                inner.stats.pushes_accepted += 1;
                if record.duplicate {
                    inner.stats.pushes_duplicate += 1;
                }
            }
            PushOutcome::Refused => inner.stats.pushes_refused += 1,
            PushOutcome::Unreachable => inner.stats.pushes_unreachable += 1,
        }
        if let Some(t) = inner.tickets.get_mut(no) {
            t.pushes.push(record.clone());
        }
        Ok(record)
    }

    /// Pushes (or re-pushes, byte for byte and with the same partner message id) the dispatch
    /// of ticket `no`.
    pub async fn push_dispatch(&self, no: &str) -> Result<PushRecord, SimError> {
        let (format, body) = {
            let inner = self.lock();
            let t = inner
                .tickets
                .get(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            (t.format, t.push_body.clone())
        };
        let (mapping, content_type) = match format {
            PushFormat::Json => ("dispatch_json", "application/json; charset=utf-8"),
            PushFormat::Xml => ("dispatch_xml", "application/xml; charset=GBK"),
        };
        self.send(
            no,
            "dispatch",
            mapping,
            content_type,
            body,
            format!("{no}-PD"),
        )
        .await
    }

    /// A platform act on a ticket: checks and changes its state under the lock, then pushes.
    async fn platform_act(
        &self,
        no: &str,
        kind: &str,
        make: impl FnOnce(&mut Inner, &str) -> Result<(Value, String), SimError>,
    ) -> Result<PushRecord, SimError> {
        if !self.can_push() {
            return Err(SimError::NoHub);
        }
        let (body, pmid) = {
            let mut inner = self.lock();
            let (body, pmid) = make(&mut inner, no)?;
            let t = inner.tickets.get_mut(no).expect("checked by make");
            t.record(kind, None, codes::OK, body.clone(), now_s());
            (body, pmid)
        };
        info!(ticket = no, kind, "platform act");
        let mapping = format!("{kind}_json");
        self.send(
            no,
            kind,
            &mapping,
            "application/json; charset=utf-8",
            to_json_bytes(&body),
            pmid,
        )
        .await
    }

    /// 督办: urges an open ticket (the first a reminder, later ones formal orders).
    pub async fn push_urge(&self, no: &str) -> Result<PushRecord, SimError> {
        self.platform_act(no, "urge", |inner, no| {
            let t = inner
                .tickets
                .get_mut(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            if matches!(t.state, TicketState::Closed | TicketState::Returned) {
                return Err(SimError::State(t.state));
            }
            t.urge_count += 1;
            let n = t.urge_count;
            let body = inner.generator.urge(no, n, now_s());
            Ok((body, format!("{no}-DB{n}")))
        })
        .await
    }

    /// 销单: closes a ticket, as completed when it was replied to and as withdrawn otherwise.
    pub async fn push_close(&self, no: &str) -> Result<PushRecord, SimError> {
        self.platform_act(no, "close", |inner, no| {
            let t = inner
                .tickets
                .get_mut(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            if matches!(t.state, TicketState::Closed | TicketState::Returned) {
                return Err(SimError::State(t.state));
            }
            let replied = t.state == TicketState::Replied;
            t.state = TicketState::Closed;
            let body = inner.generator.close(no, replied, now_s());
            Ok((body, format!("{no}-XD")))
        })
        .await
    }

    /// 回访: the platform's visit of a closed ticket's caller.
    pub async fn push_visit(&self, no: &str) -> Result<PushRecord, SimError> {
        self.platform_act(no, "visit", |inner, no| {
            let t = inner
                .tickets
                .get(no)
                .ok_or_else(|| SimError::UnknownTicket(no.into()))?;
            if t.state != TicketState::Closed {
                return Err(SimError::State(t.state));
            }
            let n = t.history.iter().filter(|h| h.action == "visit").count() + 1;
            let body = inner.generator.visit(no, now_s());
            Ok((body, format!("{no}-HF{n}")))
        })
        .await
    }
}
