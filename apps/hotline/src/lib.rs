//! `hotline-app`: the water-affairs bureau's 12345 hotline app (issue #6, part 3).
//!
//! The city 12345 platform (and 12319, 110, 12314) dispatches citizen tickets (工单) to the
//! bureau through the hub. This app:
//!
//! * consumes `hotline.ticket.{dispatched,urged,visited,closed}.v1` into its own tables, with
//!   its Kafka offsets stored in the same database transaction as the table writes
//!   (`app_kit::consumer`), so a replayed or duplicated message has no second effect;
//! * keeps each ticket's state machine ([`machine`]) and its deadline status (overdue, due
//!   within 24 h, on time);
//! * serves case handlers a small HTTP API ([`api`]) to list and inspect tickets and to sign,
//!   return, request an extension and reply; each action produces the outbound contract event
//!   (`hotline.ticket.{signed,returned,extension_requested,replied}.v1`) through a
//!   transactional outbox (`app_kit::outbox`), which the hub's egress delivers to 12345;
//! * shows personal data (caller name, phone, address; staff names) in clear only to callers
//!   whose token allows it, masked to everyone else, and never logs it.
//!
//! Modules: [`config`] (the TOML file), [`kinds`] (the eight events and their contracts),
//! [`machine`] (states, actions, deadlines), [`store`] (SQL), [`inbound`] (the consumer's
//! handler), [`actions`] (what handlers do), [`view`] (what the API shows), [`api`] (routes),
//! [`metrics`] (its own metrics, beside the kit's, on `GET /metrics`).
//! See `apps/hotline/README.md`.

pub mod actions;
pub mod api;
pub mod config;
pub mod inbound;
pub mod kinds;
pub mod machine;
pub mod metrics;
pub mod store;
pub mod view;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use app_kit::auth::Tokens;
use app_kit::consumer::ConsumerSpec;
use app_kit::db::{Db, Migrations};
use app_kit::outbox::Relay;
use hub_bus::{Lifecycle, Producer};
use hub_config::Loaded;
use hub_security::field::FieldCipher;
use tracing::{error, info, warn};

use crate::config::HotlineConfig;
use crate::kinds::{Contracts, Kind};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The app's migrations, for `app_kit::db::Db::connect`.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// The name of the app's consumer in `app_consumer_offsets`, and its PostgreSQL schema.
pub const NAME: &str = "hotline";

/// How often old message ids and orphan events are purged.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Why the app could not start. `exit_code` says how: 2 for configuration, 1 for the rest.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("HOTLINE_CONFIG: {0}")]
    Config(String),
    #[error("{0}")]
    Unavailable(String),
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) => 2,
            StartError::Unavailable(_) => 1,
        }
    }
}

/// What `check` and `start` load from files: contracts, key ring, tokens.
pub struct Files {
    pub contracts: Arc<Contracts>,
    pub cipher: Arc<FieldCipher>,
    pub tokens: Arc<Tokens>,
}

/// Loads and checks everything the configuration points at, without touching the database or
/// the broker.
pub async fn load_files(loaded: &Loaded<HotlineConfig>) -> Result<Files, StartError> {
    let cfg = &loaded.config;
    let dir = loaded.resolve(&cfg.contracts.dir);
    let catalog = hub_contracts::load_dir(&dir).map_err(|problems| {
        StartError::Config(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let contracts = Contracts::new(catalog).map_err(StartError::Config)?;
    let ring_path = loaded.resolve(&cfg.security.key_ring);
    let ring = match &cfg.security.kms {
        Some(k) => {
            let kms = hub_security::kms::HttpKms::new(
                &k.url,
                &k.app_id,
                &k.hmac_secret,
                k.allow_plain_http,
            )
            .map_err(|e| StartError::Config(e.to_string()))?;
            hub_security::kms::load_key_ring(&ring_path, Some(&kms)).await
        }
        None => {
            hub_security::kms::load_key_ring::<hub_security::kms::HttpKms>(&ring_path, None).await
        }
    }
    .map_err(|e| StartError::Config(format!("key ring {}: {e}", ring_path.display())))?;
    let tokens = Tokens::new(&cfg.http.tokens).map_err(StartError::Config)?;
    Ok(Files {
        contracts: Arc::new(contracts),
        cipher: Arc::new(FieldCipher::new(ring)),
        tokens: Arc::new(tokens),
    })
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
    stats: Arc<app_kit::consumer::Stats>,
}

impl Running {
    /// What the consumer did with the records it read since start.
    pub fn consumer_stats(&self) -> &app_kit::consumer::Stats {
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
        let clean = report.is_clean() && !self.failed.load(Ordering::SeqCst);
        if clean {
            info!("hotline-app stopped cleanly");
        } else {
            warn!(
                tasks_abandoned = report.tasks_abandoned,
                records_unflushed = report.records_unflushed,
                failed = self.failed.load(Ordering::SeqCst),
                "hotline-app stopped, not cleanly"
            );
        }
        clean
    }
}

/// Starts the consumer, the outbox relay, housekeeping and the HTTP API.
pub async fn start(loaded: &Loaded<HotlineConfig>) -> Result<Running, StartError> {
    let cfg = &loaded.config;
    let files = load_files(loaded).await?;
    // The recorder first, so the consumer, outbox and API record from the start (`/metrics`).
    app_kit::metrics::install(NAME, metrics::HOTLINE);
    let base_dir = loaded
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let db = Db::connect(&cfg.database, &base_dir, NAME, MIGRATIONS)
        .await
        .map_err(|e| StartError::Unavailable(e.to_string()))?;
    info!(backend = ?db.backend(), "database connected, migrations applied");
    let producer = Producer::new(&cfg.bus).map_err(|e| StartError::Unavailable(e.to_string()))?;
    let lifecycle = Lifecycle::new();
    let failed = Arc::new(AtomicBool::new(false));

    let relay = Relay::new(db.clone(), producer.clone());
    let notify = relay.notifier();
    lifecycle.spawn(relay.run(lifecycle.token().clone()));

    let handler = Arc::new(inbound::Inbound {
        contracts: Arc::clone(&files.contracts),
        cipher: Arc::clone(&files.cipher),
        topics: cfg.topics.clone(),
        units: cfg
            .hotline
            .handling_units
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
    });
    let spec = ConsumerSpec {
        name: NAME.into(),
        group_id: cfg.consumer.group_id.clone(),
        topics: Kind::INBOUND
            .iter()
            .map(|k| cfg.topics.of(*k).to_string())
            .collect(),
        start_at: cfg.consumer.start_at,
    };
    let stats = Arc::new(app_kit::consumer::Stats::default());
    {
        let (db, bus, stop, lc, failed, stats) = (
            db.clone(),
            cfg.bus.clone(),
            lifecycle.token().clone(),
            lifecycle.clone(),
            Arc::clone(&failed),
            Arc::clone(&stats),
        );
        lifecycle.spawn(async move {
            if let Err(e) = app_kit::consumer::run(db, bus, spec, handler, stats, stop).await {
                // Without its consumer the app is not doing its job: stop the whole process.
                error!(error = %e, "consumer failed; stopping");
                failed.store(true, Ordering::SeqCst);
                lc.stop();
            }
        });
    }
    {
        let (db, stop) = (db.clone(), lifecycle.token().clone());
        let keep = Duration::from_secs(u64::from(cfg.consumer.dedup_retention_days) * 86_400);
        lifecycle.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
                }
                match app_kit::consumer::purge_processed(&db, keep).await {
                    Ok(n) if n > 0 => info!(purged = n, "old message ids forgotten"),
                    Ok(_) => {}
                    Err(e) => warn!(code = e.code(), error = %e, "purge of old message ids failed"),
                }
                match app_kit::outbox::purge_sent(&db, keep).await {
                    Ok(n) if n > 0 => info!(purged = n, "produced outbox rows purged"),
                    Ok(_) => {}
                    Err(e) => warn!(code = e.code(), error = %e, "purge of the outbox failed"),
                }
                let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
                match store::purge_orphan_events(&db, keep_ms).await {
                    Ok(n) if n > 0 => {
                        info!(purged = n, "events of never-dispatched tickets purged")
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "purge of orphan events failed"),
                }
            }
        });
    }

    lifecycle.spawn(metrics::sample(db.clone(), lifecycle.token().clone()));

    let state = Arc::new(api::ApiState {
        deps: actions::ActionDeps {
            db: db.clone(),
            contracts: files.contracts,
            cipher: files.cipher,
            topics: cfg.topics.clone(),
            partner: cfg.hotline.partner.clone(),
            return_window_ms: i64::from(cfg.hotline.return_window_hours) * 3_600_000,
            relay: notify,
        },
    });
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|e| {
            lifecycle.stop();
            StartError::Unavailable(format!("cannot listen on {}: {e}", cfg.http.listen))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Unavailable(e.to_string()))?;
    let router = api::router(state, files.tokens, cfg.http.max_body_bytes);
    let stop = lifecycle.token().clone();
    lifecycle.spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            error!(error = %e, "HTTP listener failed");
        }
    });
    info!(%addr, "hotline-app listening");
    Ok(Running {
        addr,
        db,
        lifecycle,
        producer,
        failed,
        grace: Duration::from_millis(cfg.app.shutdown_grace_ms),
        stats,
    })
}

/// `hotline-app serve`: runs until SIGTERM or SIGINT. Exit 0 on a clean stop, 1 otherwise, 2
/// when the configuration is wrong.
pub async fn serve(loaded: Loaded<HotlineConfig>) -> ExitCode {
    // Kept to the end of `serve`: dropping it exports the last spans (at most 2 s).
    let _telemetry = app_kit::logging::init(&loaded.config.log, "hotline-app");
    info!(config = %loaded.path.display(), version = env!("CARGO_PKG_VERSION"), "hotline-app starting");
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
            error!(error = %e, "hotline-app cannot start");
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
