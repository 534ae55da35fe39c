//! The core every simulator shares: the partner's state behind one mutex (never held across an
//! `await`), the call pipeline (authentication → idempotency → planned faults → the partner's
//! decision → stored answer), counters, pushes, background tasks and the state file.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::{Inbound, ReplayBook, Signer, Verifier};
use crate::codes::Codes;
use crate::faults::{Fault, FaultBook, Rule};
use crate::push::{Push, PushOutcome, PushRecord, Pusher, RetryConfig};
use crate::server::Reply;
use crate::state::{read_optional, write_atomic, PartnerState};

/// The header of the hub's deliveries that makes them idempotent.
pub const IDEMPOTENCY_KEY: &str = "x-idempotency-key";

/// Counters of everything the partner saw and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Calls of the partner's API, every answer counted (control calls are not).
    pub requests: u64,
    pub requests_by_endpoint: BTreeMap<String, u64>,
    /// Actions applied (answered with the success code, first time).
    pub applied: u64,
    /// Calls answered from the idempotency store (a repeated idempotency key).
    pub duplicates: u64,
    /// Calls refused because their authentication failed.
    pub bad_signatures: u64,
    /// Every business refusal by code (planned ones too).
    pub refusals_by_code: BTreeMap<String, u64>,
    /// Calls a planned fault was applied to.
    pub faults_injected: u64,
    /// Read-only calls (queries, lookups).
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

/// What the kit is started with (the partner's own settings are its own).
#[derive(Debug, Clone)]
pub struct KitConfig {
    /// The adapter's name at the hub: pushes go to `{hub}/v1/{adapter}/{mapping}`.
    pub adapter: String,
    /// The hub's base URL; `None`: nothing is pushed.
    pub hub_url: Option<String>,
    /// Whether pushes are on.
    pub push: bool,
    pub retry: RetryConfig,
    /// Where the state is kept across restarts; `None`: in memory only.
    pub state_file: Option<PathBuf>,
}

/// How a call is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Changes something: idempotency keys apply, a success counts as applied.
    Action,
    /// Reads (a query, a lookup): no idempotency, counted in `queries`.
    Query,
}

/// A call of the hub to the partner's API.
pub struct Call<'a, E> {
    pub endpoint: E,
    /// The endpoint's name, for counters and logs.
    pub name: &'a str,
    pub kind: CallKind,
    /// The object the call is about (ticket number, …), when the partner can tell; planned
    /// faults may pick it. Never personal data: it is logged.
    pub object: Option<&'a str>,
    pub http: Inbound<'a>,
}

/// The partner's business answer to a verified, fault-free call.
#[derive(Debug, Clone)]
pub struct Decision {
    pub code: String,
    pub data: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAnswer {
    /// HTTP status code.
    status: u16,
    body: Value,
}

/// The state under the lock: the partner's own, and the kit's.
pub struct Core<S, R> {
    pub state: S,
    pub stats: Stats,
    answers: HashMap<String, StoredAnswer>,
    replay: ReplayBook,
    duplicates_by_object: HashMap<String, u32>,
    faults: FaultBook<R>,
}

impl<S, R> Core<S, R> {
    /// Calls about `object` answered from the idempotency store since start.
    pub fn duplicates_of(&self, object: &str) -> u32 {
        self.duplicates_by_object.get(object).copied().unwrap_or(0)
    }

    fn count_refusal(&mut self, code: &str) {
        *self.stats.refusals_by_code.entry(code.into()).or_default() += 1;
    }
}

/// A push could not be made: no hub is configured, or pushes are off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoHub;

/// A running partner's shared core. `S`: its state; `R`: its fault rules.
pub struct Kit<S, R: Rule> {
    cfg: KitConfig,
    core: Mutex<Core<S, R>>,
    codes: Arc<dyn Codes>,
    verifier: Box<dyn Verifier>,
    pusher: Option<Pusher>,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
}

impl<S: PartnerState, R: Rule> Kit<S, R> {
    pub fn new(
        cfg: KitConfig,
        state: S,
        codes: Arc<dyn Codes>,
        verifier: Box<dyn Verifier>,
        signer: Box<dyn Signer>,
    ) -> Arc<Self> {
        let pusher = cfg.hub_url.as_deref().map(|url| {
            Pusher::new(
                url,
                &cfg.adapter,
                signer,
                Arc::clone(&codes),
                cfg.retry.clone(),
            )
        });
        Arc::new(Kit {
            core: Mutex::new(Core {
                state,
                stats: Stats::default(),
                answers: HashMap::new(),
                replay: ReplayBook::default(),
                duplicates_by_object: HashMap::new(),
                faults: FaultBook::default(),
            }),
            codes,
            verifier,
            pusher,
            cfg,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    pub fn config(&self) -> &KitConfig {
        &self.cfg
    }

    pub fn codes(&self) -> &dyn Codes {
        &*self.codes
    }

    pub fn lock(&self) -> MutexGuard<'_, Core<S, R>> {
        // A panic while holding the lock leaves consistent-enough test state; keep serving.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- calls ------------------------------------------------------------------------------

    /// Answers a call of the hub: counts it, verifies it, answers a repeated idempotency key
    /// from the store, applies a planned fault, or asks `decide` (under the lock, with the
    /// idempotency key) for the business answer, which is stored under the key. Returns the
    /// reply and the partner's follow-ups to start once the lock is released.
    pub fn handle<F>(
        &self,
        call: Call<'_, R::Endpoint>,
        decide: impl FnOnce(&mut S, Option<&str>) -> (Decision, Vec<F>),
    ) -> (Reply, Vec<F>) {
        let mut guard = self.lock();
        let core = &mut *guard;
        core.stats.requests += 1;
        *core
            .stats
            .requests_by_endpoint
            .entry(call.name.into())
            .or_default() += 1;
        if call.kind == CallKind::Query {
            core.stats.queries += 1;
        }
        let object = call.object.unwrap_or("-");
        let now_ms = Utc::now().timestamp_millis();
        if let Err(why) = self.verifier.verify(&call.http, &mut core.replay, now_ms) {
            core.stats.bad_signatures += 1;
            warn!(
                endpoint = call.name,
                scheme = self.verifier.scheme(),
                why,
                "call refused: authentication"
            );
            return (self.refuse(core, self.codes.signature_failed()), vec![]);
        }
        let key = (call.kind == CallKind::Action)
            .then(|| call.http.header(IDEMPOTENCY_KEY).trim())
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        if let Some(stored) = key.as_ref().and_then(|k| core.answers.get(k)) {
            let reply = Reply::Json {
                status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                body: stored.body.clone(),
                retry_after: None,
            };
            core.stats.duplicates += 1;
            if let Some(o) = call.object {
                *core.duplicates_by_object.entry(o.to_string()).or_default() += 1;
            }
            info!(
                endpoint = call.name,
                object, "duplicate call answered from the idempotency store"
            );
            return (reply, vec![]);
        }
        let mut late = None;
        match core.faults.take(call.endpoint, call.object) {
            None => {}
            Some(Fault::Delay { ms }) => {
                core.stats.faults_injected += 1;
                late = Some(Duration::from_millis(ms));
            }
            Some(f) => {
                warn!(endpoint = call.name, object, fault = ?f, "fault injected");
                return (self.fault_reply(core, f), vec![]);
            }
        }
        let (decision, follow_ups) = decide(&mut core.state, key.as_deref());
        let Decision { code, data } = decision;
        if code == self.codes.ok() {
            if call.kind == CallKind::Action {
                core.stats.applied += 1;
            }
        } else {
            core.count_refusal(&code);
        }
        info!(endpoint = call.name, object, code, "call handled");
        let body = self.codes.envelope(&code, data);
        if let Some(k) = key {
            core.answers.insert(
                k,
                StoredAnswer {
                    status: StatusCode::OK.as_u16(),
                    body: body.clone(),
                },
            );
        }
        let reply = Reply::ok(body);
        let reply = match late {
            Some(d) => Reply::Late(d, Box::new(reply)),
            None => reply,
        };
        (reply, follow_ups)
    }

    fn refuse(&self, core: &mut Core<S, R>, code: &str) -> Reply {
        core.count_refusal(code);
        Reply::ok(self.codes.envelope(code, json!({})))
    }

    fn fault_reply(&self, core: &mut Core<S, R>, fault: Fault) -> Reply {
        core.stats.faults_injected += 1;
        let codes = &*self.codes;
        match fault {
            // The caller handles a delay: the effect is applied first.
            Fault::Delay { .. } => unreachable!("a delay is applied by the caller"),
            Fault::Hold { ms } => Reply::Late(
                Duration::from_millis(ms),
                Box::new(Reply::Json {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: codes.envelope(codes.maintenance(), json!({})),
                    retry_after: None,
                }),
            ),
            Fault::Status { status } => Reply::Json {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body: codes.server_error(),
                retry_after: None,
            },
            Fault::Throttle { retry_after_secs } => {
                core.count_refusal(codes.busy());
                Reply::Json {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    body: codes.envelope(codes.busy(), json!({})),
                    retry_after: Some(retry_after_secs),
                }
            }
            Fault::Reset => Reply::Reset,
            Fault::Code { code } => self.refuse(core, &code),
            Fault::Signature => self.refuse(core, codes.signature_failed()),
        }
    }

    // ---- the fault book and counters ----------------------------------------------------------

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Adds a fault rule (after the ones in force).
    pub fn inject(&self, rule: R) {
        info!(rule = ?rule, "fault rule added");
        self.lock().faults.add(rule);
    }

    pub fn faults(&self) -> Vec<R> {
        self.lock().faults.rules().to_vec()
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    // ---- pushes -------------------------------------------------------------------------------

    /// Whether pushes can be made (a hub is configured and pushes are on).
    pub fn can_push(&self) -> bool {
        self.cfg.push && self.pusher.is_some()
    }

    /// Signs the next `n` pushes with a wrong key (the hub must refuse them).
    pub fn sign_wrongly(&self, n: u32) -> Result<(), NoHub> {
        self.pusher.as_ref().ok_or(NoHub)?.sign_wrongly(n);
        Ok(())
    }

    /// Pushes one message (with its retries) and counts how it ended.
    pub async fn send(&self, push: Push<'_>) -> Result<PushRecord, NoHub> {
        let pusher = self
            .pusher
            .as_ref()
            .filter(|_| self.cfg.push)
            .ok_or(NoHub)?;
        let record = pusher.push(push, &self.cancel).await;
        let mut core = self.lock();
        core.stats.push_attempts += u64::from(record.attempts);
        match record.outcome {
            PushOutcome::Accepted => {
                core.stats.pushes_accepted += 1;
                if record.duplicate {
                    core.stats.pushes_duplicate += 1;
                }
            }
            PushOutcome::Refused => core.stats.pushes_refused += 1,
            PushOutcome::Unreachable => core.stats.pushes_unreachable += 1,
        }
        Ok(record)
    }

    /// Runs `work` as a background task that ends at shutdown.
    pub fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = work => {}
            }
        });
    }

    // ---- the state file -----------------------------------------------------------------------

    /// Loads the state file, if there is one; returns how many objects it held.
    pub fn restore(&self, path: &Path) -> anyhow::Result<usize> {
        let Some(bytes) =
            read_optional(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        else {
            return Ok(0);
        };
        let bad = |e: serde_json::Error| {
            anyhow::anyhow!("{}: not a simulator state file: {e}", path.display())
        };
        let mut saved: Map<String, Value> = serde_json::from_slice(&bytes).map_err(bad)?;
        let answers = saved.remove("answers").unwrap_or(Value::Null);
        let nonces = saved.remove("nonces").unwrap_or(Value::Null);
        let answers: HashMap<String, StoredAnswer> = if answers.is_null() {
            HashMap::new()
        } else {
            serde_json::from_value(answers).map_err(bad)?
        };
        let replay: ReplayBook = if nonces.is_null() {
            ReplayBook::default()
        } else {
            serde_json::from_value(nonces).map_err(bad)?
        };
        let mut core = self.lock();
        let n = core.state.restore(saved).map_err(bad)?;
        core.answers = answers;
        core.replay = replay;
        Ok(n)
    }

    /// Writes the state file atomically (write, then rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let bytes = {
            let core = self.lock();
            let mut saved = core.state.save()?;
            saved.insert("answers".into(), serde_json::to_value(&core.answers)?);
            saved.insert("nonces".into(), serde_json::to_value(&core.replay)?);
            serde_json::to_vec(&saved)?
        };
        write_atomic(path, &bytes)?;
        Ok(())
    }

    /// A cheap sign that something changed since the last save.
    fn fingerprint(&self) -> u64 {
        let core = self.lock();
        let mut h = DefaultHasher::new();
        (
            core.state.fingerprint(),
            core.answers.len(),
            core.replay.len(),
            core.stats.requests,
            core.stats.push_attempts,
        )
            .hash(&mut h);
        h.finish()
    }

    /// With a state file: restores it now, and saves it every 2 s when something changed (and
    /// at [`Self::shutdown`]). Returns how many objects were restored.
    pub fn keep_state(self: &Arc<Self>) -> anyhow::Result<usize> {
        let Some(path) = self.cfg.state_file.clone() else {
            return Ok(0);
        };
        let n = self.restore(&path)?;
        info!(objects = n, file = %path.display(), "state restored");
        let kit = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut last = kit.fingerprint();
            loop {
                tokio::select! {
                    _ = kit.cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                let now = kit.fingerprint();
                if now != last {
                    match kit.save(&path) {
                        Ok(()) => last = now,
                        Err(e) => warn!(error = %e, "state not saved"),
                    }
                }
            }
        });
        Ok(n)
    }

    /// Stops background work (waiting at most 5 s for answers and pushes in flight) and saves
    /// the state file.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        if let Some(path) = &self.cfg.state_file {
            if let Err(e) = self.save(path) {
                warn!(error = %e, "state not saved at shutdown");
            }
        }
    }
}
