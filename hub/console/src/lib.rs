//! The operators' console (`docs/console.md`): a one-page web application served by the hub
//! on its admin listener under `/console`, Chinese by default with an English toggle.
//!
//! - [`assets`]: the page, its script and style sheet and the vendored Apache ECharts, embedded
//!   in the binary and served with a strict Content-Security-Policy (no inline scripts, no
//!   requests to anywhere but the hub).
//! - [`auth`]: operator accounts (argon2id), sessions (a random token in an `HttpOnly`,
//!   `SameSite=Strict` cookie; its SM3 digest in the state store), idle and absolute expiry,
//!   the CSRF header of mutating requests, login rate limits and roles (viewer, operator,
//!   admin); every login, failed login and logout is audited.
//! - [`stats`]: the flow picture and totals, computed from the hub's own metrics and a ring of
//!   snapshots kept by [`sample`]: this replica's counts since it started; and the domain apps
//!   (consumer groups not the hub's own) with their consumption rate and lag, sampled from the
//!   cluster every 15 s.
//! - [`api`]: the JSON API (overview, adapters, dead letters, message trace) with stable error
//!   codes (`CONSOLE_*`) and messages in Chinese and English.
//! - [`operators`]: `hub operator add|list|disable`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub mod api;
pub mod assets;
pub mod auth;
pub mod operators;
pub mod stats;

/// `[console]` of the hub's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// Serve the console under `/console` on the admin listener.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// A session unused for this long ends.
    #[serde(default = "default_idle")]
    pub session_idle_minutes: u32,
    /// A session ends this long after login, used or not.
    #[serde(default = "default_max_hours")]
    pub session_max_hours: u32,
    /// Mark the session cookie `Secure` (the default): browsers then never send it over plain
    /// HTTP. Operators reach the admin listener through HTTPS (a TLS-terminating proxy); only a
    /// development machine on loopback sets it false (the production profile refuses false).
    #[serde(default = "default_secure_cookie")]
    pub secure_cookie: bool,
}

fn default_enabled() -> bool {
    true
}

fn default_secure_cookie() -> bool {
    true
}

fn default_idle() -> u32 {
    30
}

fn default_max_hours() -> u32 {
    12
}

impl Default for ConsoleSection {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            session_idle_minutes: default_idle(),
            session_max_hours: default_max_hours(),
            secure_cookie: default_secure_cookie(),
        }
    }
}

impl ConsoleSection {
    /// Problems of the section, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=1_440).contains(&self.session_idle_minutes) {
            out.push((
                "session_idle_minutes",
                format!("{} is outside 1..=1440", self.session_idle_minutes),
            ));
        }
        if !(1..=168).contains(&self.session_max_hours) {
            out.push((
                "session_max_hours",
                format!("{} is outside 1..=168", self.session_max_hours),
            ));
        }
        if u64::from(self.session_idle_minutes) > u64::from(self.session_max_hours) * 60 {
            out.push((
                "session_idle_minutes",
                "is longer than session_max_hours".to_string(),
            ));
        }
        out
    }
}

/// The answer of the message trace for an id (`hub_app::trace::lookup`, passed in by `hub
/// serve` so this crate does not depend on the binary's): `Ok(answer)` or `Err((code,
/// message))`.
pub type TraceLookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Value, (String, String)>> + Send>>
        + Send
        + Sync,
>;

/// A delivery route or pull job of this deployment, for the flow picture.
#[derive(Debug, Clone)]
pub struct Flow {
    /// `<partner>/<delivery>` or `<partner>/pull.<job>`.
    pub route: String,
    pub partner: String,
    /// The topic it reads (a delivery) or writes (a pull).
    pub topic: String,
}

/// What this deployment is wired to, known at start.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Partners whose pushes the gateway takes (`[[gateway.apps]] partner`).
    pub ingress_partners: Vec<String>,
    pub routes: Vec<Flow>,
    pub pulls: Vec<Flow>,
}

/// What the console works with.
pub struct Deps {
    pub instance_id: String,
    pub state: hub_state::StateStore,
    pub bus: hub_bus::BusSection,
    pub catalog: Arc<hub_contracts::Catalog>,
    pub producer: hub_bus::Producer,
    /// Renders the hub's metrics; `None` leaves the overview empty (said so in the answer).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub trace: TraceLookup,
    pub topology: Topology,
    /// `[egress] group_prefix`: consumer groups under it are the hub's own delivery routes, not
    /// domain apps.
    pub egress_group_prefix: String,
}

/// The console: its dependencies, settings, login limits and metric history.
pub struct Console {
    pub deps: Deps,
    pub section: ConsoleSection,
    pub(crate) limits: auth::LoginLimits,
    pub(crate) stats: stats::Stats,
    /// When an operator last asked for the overview (Unix ms): the consumer groups are sampled
    /// only while someone looks, because each sample asks the cluster about every group.
    pub(crate) overview_wanted_ms: std::sync::atomic::AtomicI64,
}

/// How long after the last overview request the consumer groups are still sampled.
const APPS_WATCHED_FOR_MS: i64 = 120_000;

impl Console {
    pub fn new(deps: Deps, section: ConsoleSection) -> Arc<Self> {
        Arc::new(Self {
            deps,
            section,
            limits: auth::LoginLimits::new(),
            stats: stats::Stats::new(),
            overview_wanted_ms: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
        })
    }

    /// Notes that an operator is looking at the overview.
    pub(crate) fn overview_wanted(&self) {
        self.overview_wanted_ms.store(
            chrono::Utc::now().timestamp_millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn apps_watched(&self) -> bool {
        let last = self
            .overview_wanted_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        chrono::Utc::now().timestamp_millis() - last < APPS_WATCHED_FOR_MS
    }
}

/// The console's routes, to be nested under `/console` on the admin listener (which must be
/// served with `into_make_service_with_connect_info::<SocketAddr>()` for per-address login
/// limits).
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .merge(assets::router())
        .nest("/api", api::router(Arc::clone(&console)))
        .layer(axum::middleware::map_response(assets::security_headers))
}

/// `router` with the console mounted under `/console` (the page answers at `/console` and
/// `/console/`).
pub fn mount(router: Router, console: Arc<Console>) -> Router {
    router
        .route(
            "/console/",
            axum::routing::get(assets::index)
                .layer(axum::middleware::map_response(assets::security_headers)),
        )
        .nest("/console", self::router(console))
}

/// Keeps the metric snapshots the overview's rates and totals come from, samples the
/// cluster's consumer groups (the domain apps, see [`sample_apps`]), and purges expired
/// sessions, until `stop`.
pub async fn sample(console: Arc<Console>, stop: tokio_util::sync::CancellationToken) {
    tokio::join!(
        sample_metrics(Arc::clone(&console), stop.clone()),
        sample_apps(console, stop)
    );
}

/// Every [`stats::APPS_EVERY`] while an operator has looked at the overview in the last two
/// minutes, asks the cluster for the consumer groups that are not the hub's own
/// (`hub_bus::app_groups`: at most [`stats::APPS_MAX_GROUPS`], within [`stats::APPS_BUDGET`])
/// and keeps the answer for the overview's app nodes, until `stop`. Nobody looking, nothing
/// asked: every replica sampling every group all the time would load the cluster for nothing.
pub async fn sample_apps(console: Arc<Console>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(stats::APPS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Checked every second so the first sample follows the first look closely.
    let mut look = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = look.tick() => {}
        }
        if !console.apps_watched() {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let found = tokio::select! {
            () = stop.cancelled() => return,
            r = hub_bus::app_groups(
                &console.deps.bus,
                &console.deps.egress_group_prefix,
                stats::APPS_MAX_GROUPS,
                stats::APPS_BUDGET,
            ) => r,
        };
        if let Err(e) = &found {
            tracing::debug!(code = e.code(), error = %e, "console: consumer groups not sampled");
        }
        console.stats.record_apps(found.map_err(|e| e.to_string()));
    }
}

async fn sample_metrics(console: Arc<Console>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(stats::SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purged = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(h) = &console.deps.metrics {
            console.stats.record(&h.render());
        }
        if purged.elapsed() >= std::time::Duration::from_secs(60) {
            purged = tokio::time::Instant::now();
            let idle_ms = i64::from(console.section.session_idle_minutes) * 60_000;
            let before = chrono::Utc::now().timestamp_millis() - idle_ms;
            if let Err(e) = console.deps.state.purge_console_sessions(before).await {
                tracing::warn!(code = e.code(), error = %e, "expired console sessions not purged");
            }
            let forgotten = chrono::Utc::now().timestamp_millis() - auth::FAILURE_MEMORY_MS;
            if let Err(e) = console.deps.state.purge_login_failures(forgotten).await {
                tracing::warn!(code = e.code(), error = %e, "old failed logins not purged");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConsoleSection;

    #[test]
    fn the_session_cookie_is_secure_unless_a_development_config_says_otherwise() {
        assert!(ConsoleSection::default().secure_cookie);
        let written: ConsoleSection = serde_json::from_str(r#"{"enabled": true}"#).unwrap();
        assert!(written.secure_cookie, "an unset key means Secure");
        let dev: ConsoleSection = serde_json::from_str(r#"{"secure_cookie": false}"#).unwrap();
        assert!(!dev.secure_cookie);
    }
}
