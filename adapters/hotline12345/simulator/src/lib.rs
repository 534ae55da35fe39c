//! A simulator of the city 12345 hotline platform (12345 市民服务热线), as the water bureau's
//! hub sees it: a real HTTP server, for a newcomer running the hub locally and for the
//! end-to-end tests, which start it in-process.
//!
//! It plays both sides of the platform's protocol (`adapters/hotline12345/adapter.toml`,
//! message shapes in `mappings/hotline12345/`):
//!
//! - **Server** — the APIs the hub's egress and poller call: `POST /api/v1/tickets/{sign,
//!   return, extension, reply}` and `POST /api/v1/tickets/query`. Each request's signature is
//!   verified (`hub-v1`), a repeated `X-Idempotency-Key` gets the first answer again without a
//!   second effect, and the ticket state machine ([`model`]) decides the business code of the
//!   platform's envelope ([`codes`]).
//! - **Client** — tickets generated with realistic content ([`generate`]) are pushed to the
//!   hub's gateway as JSON or GBK XML, signed, with a stable `X-Partner-Message-Id`, and
//!   retried with backoff; optionally followed by urges, closes and visits.
//! - **Control** — a library API ([`SimulatorHandle`]) and an unsigned HTTP API under
//!   `/sim/...` (local use only) to push tickets, look at tickets and counters, and plan
//!   faults ([`FaultRule`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hotline12345_simulator::{Simulator, SimulatorConfig};
//! let sim = Simulator::start(SimulatorConfig {
//!     hub_url: Some("http://127.0.0.1:9480".into()),
//!     ..SimulatorConfig::default()
//! })
//! .await?;
//! let tickets = sim.push_tickets(10, 0.3).await;
//! println!("{} at {}", tickets.len(), sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Logs never carry personal data: tickets are named by number, category and district only.
//!
//! Built on the simulator kit (`sim-kit`): the HTTP server, authentication, idempotency, the
//! fault book, the control API, the state file and the pushes are the kit's; this crate is the
//! platform's state machine ([`model`]), its data generator ([`generate`]) and its codes
//! ([`codes`]).

pub mod codes;
pub mod config;
pub mod faults;
pub mod generate;
pub mod model;
mod platform;
mod server;
/// The platform's wire times (Shanghai local time), from the kit.
pub use sim_kit::time;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::info;

pub use config::{LifecycleConfig, RetryConfig, SimulatorConfig};
pub use faults::{Endpoint, Fault, FaultRule};
pub use model::{Action, ExtensionStatus, ExtensionView, HistoryEntry, PushFormat, TicketState};
pub use platform::{SimError, Stats, TicketBatch, TicketView};
pub use sim_kit::{PushOutcome, PushRecord};

use platform::Platform;

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` (port 0: a free port) and serves until
    /// [`SimulatorHandle::shutdown`].
    pub async fn start(config: SimulatorConfig) -> anyhow::Result<SimulatorHandle> {
        let listen = config.listen;
        let platform = Platform::new(config);
        platform.kit.keep_state()?;
        let (addr, server) =
            sim_kit::listen(&platform.kit, listen, server::router(Arc::clone(&platform))).await?;
        info!(
            %addr,
            hub = platform.cfg.hub_url.as_deref().unwrap_or("-"),
            push = platform.cfg.push,
            ticket_prefix = platform.ticket_prefix(),
            "12345 platform simulator listening"
        );
        Ok(SimulatorHandle {
            platform,
            addr,
            base_url: format!("http://{addr}"),
            server,
        })
    }
}

/// A running simulator.
pub struct SimulatorHandle {
    platform: Arc<Platform>,
    addr: SocketAddr,
    base_url: String,
    server: tokio::task::JoinHandle<()>,
}

impl SimulatorHandle {
    /// `http://127.0.0.1:<port>`: the hub's `[partners.hotline12345] base_url`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.platform.cfg
    }

    /// The 2-digit run prefix inside this run's ticket numbers.
    pub fn ticket_prefix(&self) -> u32 {
        self.platform.ticket_prefix()
    }

    /// Dispatches `n` new tickets now, a share `xml_ratio` of them as GBK XML; pushes them to
    /// the hub when the configuration has a hub and `push` on (otherwise they are only offered
    /// to the query API). Returns once every push has ended; each ticket's
    /// [`TicketView::pushes`] tells how.
    pub async fn push_tickets(&self, n: usize, xml_ratio: f64) -> Vec<String> {
        self.create_tickets(TicketBatch {
            count: n,
            xml_ratio,
            dispatched_at: None,
            push: true,
        })
        .await
    }

    /// Dispatches tickets without pushing them: only the query API offers them.
    pub async fn offer_tickets(
        &self,
        n: usize,
        dispatched_at: Option<DateTime<Utc>>,
    ) -> Vec<String> {
        self.create_tickets(TicketBatch {
            count: n,
            xml_ratio: 0.0,
            dispatched_at,
            push: false,
        })
        .await
    }

    /// The general form of [`Self::push_tickets`].
    pub async fn create_tickets(&self, batch: TicketBatch) -> Vec<String> {
        self.platform.create_tickets(batch).await
    }

    /// Pushes the dispatch of `ticket_no` again: the same bytes and the same partner message
    /// id, so the hub should answer it as a duplicate.
    pub async fn push_duplicate(&self, ticket_no: &str) -> Result<PushRecord, SimError> {
        self.platform.push_dispatch(ticket_no).await
    }

    /// 督办 (`urge_json`).
    pub async fn push_urge(&self, ticket_no: &str) -> Result<PushRecord, SimError> {
        self.platform.push_urge(ticket_no).await
    }

    /// 销单 (`close_json`): completed when replied to, withdrawn otherwise.
    pub async fn push_close(&self, ticket_no: &str) -> Result<PushRecord, SimError> {
        self.platform.push_close(ticket_no).await
    }

    /// 回访 (`visit_json`) of a closed ticket.
    pub async fn push_visit(&self, ticket_no: &str) -> Result<PushRecord, SimError> {
        self.platform.push_visit(ticket_no).await
    }

    /// Approves the pending extension of `ticket_no` now; `false` when none pends.
    pub fn approve_extension(&self, ticket_no: &str) -> bool {
        self.platform.approve_extension(ticket_no)
    }

    pub fn ticket(&self, ticket_no: &str) -> Option<TicketView> {
        self.platform.ticket(ticket_no)
    }

    /// Every ticket, by dispatch time then number.
    pub fn tickets(&self) -> Vec<TicketView> {
        self.platform.tickets()
    }

    pub fn stats(&self) -> Stats {
        self.platform.kit.stats()
    }

    /// Adds a fault rule (after the ones in force).
    pub fn inject(&self, rule: FaultRule) {
        self.platform.kit.inject(rule)
    }

    pub fn faults(&self) -> Vec<FaultRule> {
        self.platform.kit.faults()
    }

    pub fn clear_faults(&self) {
        self.platform.kit.clear_faults()
    }

    /// Signs the next `n` pushes with a wrong key: the hub must refuse them
    /// (`POST /sim/bad_signatures`). Fails when nothing is pushed.
    pub fn sign_pushes_wrongly(&self, n: u32) -> Result<(), SimError> {
        Ok(self.platform.kit.sign_wrongly(n)?)
    }

    /// Waits until `check` holds for the ticket (e.g. the hub's delivery arrived), polling;
    /// the last view, or `None` on timeout.
    pub async fn wait_for_ticket(
        &self,
        ticket_no: &str,
        timeout: Duration,
        check: impl Fn(&TicketView) -> bool,
    ) -> Option<TicketView> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.ticket(ticket_no).filter(|t| check(t)) {
                return Some(t);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops accepting, ends pushes and follow-ups, closes connections (waiting at most 5 s
    /// for answers in flight).
    pub async fn shutdown(self) {
        self.platform.kit.shutdown().await;
        let _ = self.server.await;
        info!(addr = %self.addr, "12345 platform simulator stopped");
    }
}
