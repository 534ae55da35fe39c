//! What a simulator is started with. Defaults suit a test: no pushes to a hub unless one is
//! given, no lifecycle follow-ups, extensions approved after one second.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::generate::Unit;
pub use sim_kit::RetryConfig;

/// The platform's follow-ups after the bureau acts (the `serve` demo turns them on).
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub enabled: bool,
    /// Urge (督办) a ticket that has no reply this long after its dispatch; `None`: never.
    pub urge_after: Option<Duration>,
    /// Close (销单) a replied ticket this long after its reply.
    pub close_after: Duration,
    /// Visit (回访) a closed ticket this long after its close.
    pub visit_after: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            enabled: false,
            urge_after: Some(Duration::from_secs(120)),
            close_after: Duration::from_secs(5),
            visit_after: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Where the platform's APIs listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The hub's base URL (`http://127.0.0.1:9480`); `None`: nothing is pushed.
    pub hub_url: Option<String>,
    /// Whether tickets are pushed to the hub, or only offered to the query API.
    pub push: bool,
    /// The platform's app id at the hub's gateway, and its HMAC-SM3 secret (pushes).
    pub platform_app_id: String,
    pub platform_hmac_secret: String,
    /// The hub's app id at the platform, and its HMAC-SM3 secret (deliveries and queries).
    pub hub_app_id: String,
    pub hub_hmac_secret: String,
    /// Allowed clock difference of a signed request.
    pub timestamp_window: Duration,
    /// How long after signing a ticket may still be returned (退单时限).
    pub return_window: Duration,
    /// Approve an extension this long after it is asked; `None`: leave it pending.
    pub extension_approve_after: Option<Duration>,
    /// The query API lists a ticket only this long after it is made (the platform indexes
    /// dispatches with a delay; adapter.toml's `settle_ms`).
    pub index_delay: Duration,
    pub lifecycle: LifecycleConfig,
    pub retry: RetryConfig,
    /// Seed of the generated content; `None`: random.
    pub seed: Option<u64>,
    /// Run prefix of the ticket numbers (0–99); `None`: from the seed or random.
    pub ticket_prefix: Option<u32>,
    /// The handling unit tickets are dispatched to.
    pub unit: Unit,
    /// Where the platform keeps its tickets and answered idempotency keys across restarts
    /// (written every few seconds and at shutdown); `None`: in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hub_url: None,
            push: true,
            platform_app_id: "hotline12345-city".into(),
            platform_hmac_secret: "dev-only-hotline-secret-change-me".into(),
            hub_app_id: "water-bureau-hub".into(),
            hub_hmac_secret: "dev-only-12345-secret-change-me".into(),
            timestamp_window: Duration::from_secs(300),
            return_window: Duration::from_secs(24 * 3600),
            extension_approve_after: Some(Duration::from_secs(1)),
            index_delay: Duration::ZERO,
            lifecycle: LifecycleConfig::default(),
            retry: RetryConfig::default(),
            seed: None,
            ticket_prefix: None,
            unit: Unit::default(),
            state_file: None,
        }
    }
}
