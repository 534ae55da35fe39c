//! The app runtime: one builder that wires what every domain app needs, so an app is its tables,
//! its handlers and its API.
//!
//! 1. [`load_files`]: the contracts, the key ring (through the KMS when `[security.kms]` is set)
//!    and the API tokens, checked without touching the database or the broker (`check`).
//! 2. [`Runtime::start`]: metrics (`GET /metrics`), the database with the app's migrations, the
//!    Kafka producer, the transactional outbox's relay, and a lifecycle for graceful shutdown.
//! 3. [`Runtime::consume`]: the consumer over the app's topics, whose offsets are written in the
//!    same transaction as the handler's table writes; if it fails for good the app stops.
//! 4. [`Runtime::housekeep`]: the app's own hourly purge, beside the kit's (old message ids,
//!    produced outbox rows).
//! 5. [`Runtime::serve`]: the HTTP API behind bearer tokens and roles, with `/healthz`,
//!    `/readyz`, `/metrics`, a body limit, request metrics and trace hops; returns [`Running`].
//! 6. [`run`]: the `serve` command — logs and traces, start, SIGTERM/SIGINT, drain, exit code.
//!
//! ```ignore
//! let files = app_kit::runtime::load_files(&SPEC, loaded).await?;
//! let mut rt = Runtime::start(&SPEC, loaded).await?;
//! rt.consume(topics, Arc::new(MyHandler { … }));
//! rt.housekeep(|db, keep| async move { my_store::purge(&db, keep).await; });
//! rt.serve(my_api::router(state), files.tokens).await
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Json, Router};
use hub_bus::{Lifecycle, Producer};
use hub_config::Loaded;
use hub_security::field::FieldCipher;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::ApiError;
use crate::auth::{require_caller, Tokens};
use crate::config::{AppConfig, BusSection, ConsumerSection};
use crate::consumer::{ConsumerSpec, Handler, Stats};
use crate::db::{Db, Migrations};
use crate::metrics::Metric;
use crate::outbox::Relay;

/// How often old message ids, produced outbox rows and the app's own leftovers are purged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// What the runtime needs to know about an app.
#[derive(Clone, Copy)]
pub struct AppSpec {
    /// The app's name: its consumer in `app_consumer_offsets`, its PostgreSQL schema, the `app`
    /// label of its metrics (`hotline`).
    pub name: &'static str,
    /// The process's name in logs and traces (`hotline-app`).
    pub service: &'static str,
    /// Prefix of the environment overrides (`HOTLINE`); `<PREFIX>_CONFIG` is also the code of a
    /// configuration error.
    pub env_prefix: &'static str,
    pub migrations: Migrations,
    /// The app's own metrics, beside the kit's.
    pub metrics: &'static [Metric],
}

/// Why the app could not start. `exit_code` says how: 2 for configuration, 1 for the rest.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{prefix}_CONFIG: {message}")]
    Config {
        prefix: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unavailable(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config { .. } => 2,
            StartError::Unavailable(_) => 1,
        }
    }

    /// A configuration error of the app `spec`.
    pub fn config(spec: &AppSpec, message: impl Into<String>) -> Self {
        StartError::Config {
            prefix: spec.env_prefix,
            message: message.into(),
        }
    }
}

/// What the configuration points at, loaded and checked.
pub struct Files {
    pub catalog: hub_contracts::Catalog,
    pub cipher: Arc<FieldCipher>,
    pub tokens: Arc<Tokens>,
}

/// Loads the contracts, the key ring and the tokens, without touching the database or the
/// broker.
pub async fn load_files<C: AppConfig>(
    spec: &AppSpec,
    loaded: &Loaded<C>,
) -> Result<Files, StartError> {
    let cfg = &loaded.config;
    let dir = loaded.resolve(&cfg.contracts().dir);
    let catalog = hub_contracts::load_dir(&dir).map_err(|problems| {
        StartError::config(
            spec,
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let security = cfg.security();
    let ring_path = loaded.resolve(&security.key_ring);
    let ring = match &security.kms {
        Some(k) => {
            let kms = hub_security::kms::HttpKms::new(
                &k.url,
                &k.app_id,
                &k.hmac_secret,
                k.allow_plain_http,
            )
            .map_err(|e| StartError::config(spec, e.to_string()))?;
            hub_security::kms::load_key_ring(&ring_path, Some(&kms)).await
        }
        None => {
            hub_security::kms::load_key_ring::<hub_security::kms::HttpKms>(&ring_path, None).await
        }
    }
    .map_err(|e| StartError::config(spec, format!("key ring {}: {e}", ring_path.display())))?;
    let tokens = Tokens::new(&cfg.http().tokens).map_err(|e| StartError::config(spec, e))?;
    Ok(Files {
        catalog,
        cipher: Arc::new(FieldCipher::new(ring)),
        tokens: Arc::new(tokens),
    })
}

type Purge = Box<dyn Fn(Db, Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// An app being started: its database, producer, outbox relay and lifecycle, to which the app
/// adds its consumer, background work and API.
pub struct Runtime {
    spec: AppSpec,
    pub db: Db,
    pub producer: Producer,
    /// Wakes the outbox relay: notify it after a transaction that enqueued messages commits.
    pub relay: Arc<Notify>,
    lifecycle: Lifecycle,
    failed: Arc<AtomicBool>,
    stats: Arc<Stats>,
    bus: BusSection,
    consumer: ConsumerSection,
    listen: SocketAddr,
    max_body_bytes: usize,
    grace: Duration,
    purges: Vec<Purge>,
}

impl Runtime {
    /// Installs the metrics recorder, connects the database and applies the app's migrations,
    /// makes the producer and starts the outbox relay.
    pub async fn start<C: AppConfig>(
        spec: &AppSpec,
        loaded: &Loaded<C>,
    ) -> Result<Runtime, StartError> {
        let cfg = &loaded.config;
        // The recorder first, so the consumer, outbox and API record from the start.
        crate::metrics::install(spec.name, spec.metrics);
        let base_dir = loaded
            .path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let db = Db::connect(cfg.database(), &base_dir, spec.name, spec.migrations)
            .await
            .map_err(|e| StartError::Unavailable(e.to_string()))?;
        info!(backend = ?db.backend(), "database connected, migrations applied");
        let producer =
            Producer::new(cfg.bus()).map_err(|e| StartError::Unavailable(e.to_string()))?;
        let lifecycle = Lifecycle::new();
        let relay = Relay::new(db.clone(), producer.clone());
        let notify = relay.notifier();
        lifecycle.spawn(relay.run(lifecycle.token().clone()));
        Ok(Runtime {
            spec: *spec,
            db,
            producer,
            relay: notify,
            lifecycle,
            failed: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(Stats::default()),
            bus: cfg.bus().clone(),
            consumer: cfg.consumer().clone(),
            listen: cfg.http().listen,
            max_body_bytes: cfg.http().max_body_bytes,
            grace: Duration::from_millis(cfg.app().shutdown_grace_ms),
            purges: Vec::new(),
        })
    }

    /// Cancelled when the app stops.
    pub fn token(&self) -> CancellationToken {
        self.lifecycle.token().clone()
    }

    /// Runs `task` until the app stops (the drain waits for it).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.lifecycle.spawn(task);
    }

    /// Consumes `topics` with `handler` (offsets in the app's database, committed with the
    /// handler's writes). Without its consumer the app is not doing its job: a consumer that
    /// fails for good stops the whole process.
    pub fn consume<H: Handler>(&self, topics: Vec<String>, handler: Arc<H>) {
        let spec = ConsumerSpec {
            name: self.spec.name.into(),
            group_id: self.consumer.group_id.clone(),
            topics,
            start_at: self.consumer.start_at,
        };
        let (db, bus, stop, lc, failed, stats) = (
            self.db.clone(),
            self.bus.clone(),
            self.lifecycle.token().clone(),
            self.lifecycle.clone(),
            Arc::clone(&self.failed),
            Arc::clone(&self.stats),
        );
        self.lifecycle.spawn(async move {
            if let Err(e) = crate::consumer::run(db, bus, spec, handler, stats, stop).await {
                error!(error = %e, "consumer failed; stopping");
                failed.store(true, Ordering::SeqCst);
                lc.stop();
            }
        });
    }

    /// Adds the app's own hourly purge; `keep` is `[consumer] dedup_retention_days`.
    pub fn housekeep<F, Fut>(&mut self, purge: F)
    where
        F: Fn(Db, Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.purges
            .push(Box::new(move |db, keep| Box::pin(purge(db, keep))));
    }

    fn start_housekeeping(&mut self) {
        let purges = std::mem::take(&mut self.purges);
        let (db, stop) = (self.db.clone(), self.lifecycle.token().clone());
        let keep = Duration::from_secs(u64::from(self.consumer.dedup_retention_days) * 86_400);
        self.lifecycle.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
                }
                match crate::consumer::purge_processed(&db, keep).await {
                    Ok(n) if n > 0 => info!(purged = n, "old message ids forgotten"),
                    Ok(_) => {}
                    Err(e) => warn!(code = e.code(), error = %e, "purge of old message ids failed"),
                }
                match crate::outbox::purge_sent(&db, keep).await {
                    Ok(n) if n > 0 => info!(purged = n, "produced outbox rows purged"),
                    Ok(_) => {}
                    Err(e) => warn!(code = e.code(), error = %e, "purge of the outbox failed"),
                }
                for purge in &purges {
                    purge(db.clone(), keep).await;
                }
            }
        });
    }

    /// Starts housekeeping and serves `api` (the app's routes, each needing a caller) behind
    /// `tokens`, with `/healthz`, `/readyz` (the database answers) and `/metrics` open, on
    /// `[http] listen`.
    pub async fn serve(mut self, api: Router, tokens: Arc<Tokens>) -> Result<Running, StartError> {
        self.start_housekeeping();
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| {
                self.lifecycle.stop();
                StartError::Unavailable(format!("cannot listen on {}: {e}", self.listen))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Unavailable(e.to_string()))?;
        let router = http_router(api, tokens, self.db.clone(), self.max_body_bytes);
        let stop = self.lifecycle.token().clone();
        self.lifecycle.spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                error!(error = %e, "HTTP listener failed");
            }
        });
        info!(%addr, "{} listening", self.spec.service);
        Ok(Running {
            addr,
            db: self.db,
            lifecycle: self.lifecycle,
            producer: self.producer,
            failed: self.failed,
            grace: self.grace,
            stats: self.stats,
            service: self.spec.service,
        })
    }
}

/// The app's HTTP API: `api` behind bearer tokens, beside the open `/healthz`, `/readyz` and
/// `/metrics`; unknown routes answer `ROUTE_NOT_FOUND`; bodies are limited; every request is
/// measured and runs in a trace hop.
pub fn http_router(api: Router, tokens: Arc<Tokens>, db: Db, max_body_bytes: usize) -> Router {
    let api = api.route_layer(from_fn_with_state(tokens, require_caller));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz).with_state(db))
        .route("/metrics", get(crate::metrics::render))
        .merge(api)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "ROUTE_NOT_FOUND",
                "没有这个接口",
                "no such route",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .route_layer(axum::middleware::from_fn(crate::logging::http_hop))
}

async fn readyz(State(db): State<Db>) -> Result<Json<Value>, ApiError> {
    db.ping().await.map_err(|e| ApiError::unavailable(&e))?;
    Ok(Json(json!({"status": "ready"})))
}

/// A running app.
pub struct Running {
    /// Where the HTTP API listens.
    pub addr: SocketAddr,
    pub db: Db,
    lifecycle: Lifecycle,
    producer: Producer,
    failed: Arc<AtomicBool>,
    grace: Duration,
    stats: Arc<Stats>,
    service: &'static str,
}

impl Running {
    /// What the consumer did with the records it read since start.
    pub fn consumer_stats(&self) -> &Stats {
        &self.stats
    }

    /// Asks every task to stop (as SIGTERM does).
    pub fn stop(&self) {
        self.lifecycle.stop();
    }

    /// Stops on SIGTERM or SIGINT.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        self.lifecycle.stop_on_signals()
    }

    /// Waits for the stop, lets work in hand finish, flushes the producer and closes the
    /// database. True when all of it finished cleanly and no task had failed.
    pub async fn wait(self) -> bool {
        let report = self.lifecycle.drain(Some(&self.producer), self.grace).await;
        self.db.close().await;
        let failed = self.failed.load(Ordering::SeqCst);
        let clean = report.is_clean() && !failed;
        if clean {
            info!("{} stopped cleanly", self.service);
        } else {
            warn!(
                tasks_abandoned = report.tasks_abandoned,
                records_unflushed = report.records_unflushed,
                failed,
                "{} stopped, not cleanly",
                self.service
            );
        }
        clean
    }
}

/// The `serve` command: logs and traces as `[log]` says, start with `start`, run until SIGTERM
/// or SIGINT, drain. Exit 0 on a clean stop, 1 otherwise, 2 when the configuration is wrong.
pub async fn run<C, F>(spec: &AppSpec, loaded: Loaded<C>, start: F) -> ExitCode
where
    C: AppConfig,
    F: AsyncFnOnce(&Loaded<C>) -> Result<Running, StartError>,
{
    // Kept to the end: dropping it exports the last spans (at most 2 s).
    let _telemetry = crate::logging::init(loaded.config.log(), spec.service);
    info!(config = %loaded.path.display(), version = env!("CARGO_PKG_VERSION"), "{} starting", spec.service);
    for o in &loaded.overrides {
        // Names only: overrides are how secrets (database passwords) reach the process.
        info!(
            variable = o.var,
            key = o.key,
            "configuration key set from the environment"
        );
    }
    let running = match start(&loaded).await {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "{} cannot start", spec.service);
            return ExitCode::from(e.exit_code());
        }
    };
    if let Err(e) = running.stop_on_signals() {
        error!(error = %e, "cannot watch for signals");
        running.stop();
    }
    if running.wait().await {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
