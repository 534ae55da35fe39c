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
//! The generic set-up (configuration's shared sections, key ring and KMS, database and
//! migrations, consumer, outbox relay, HTTP API with tokens and roles, metrics, tracing,
//! graceful shutdown) is the app runtime's (`app_kit::runtime`); this crate is the hotline's
//! tables, handlers and API.
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
use std::process::ExitCode;
use std::sync::Arc;

use app_kit::auth::Tokens;
use app_kit::db::Migrations;
use app_kit::runtime::{AppSpec, Runtime};
use hub_config::Loaded;
use hub_security::field::FieldCipher;
use tracing::{info, warn};

use crate::config::HotlineConfig;
use crate::kinds::{Contracts, Kind};

pub use app_kit::runtime::{Running, StartError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The app's migrations, for `app_kit::db::Db::connect`.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// The name of the app's consumer in `app_consumer_offsets`, and its PostgreSQL schema.
pub const NAME: &str = "hotline";

/// What the app runtime needs to know about the app.
pub const SPEC: AppSpec = AppSpec {
    name: NAME,
    service: "hotline-app",
    env_prefix: config::ENV_PREFIX,
    migrations: MIGRATIONS,
    metrics: metrics::HOTLINE,
};

/// What `check` and `start` load from files: contracts, key ring, tokens.
pub struct Files {
    pub contracts: Arc<Contracts>,
    pub cipher: Arc<FieldCipher>,
    pub tokens: Arc<Tokens>,
}

/// Loads and checks everything the configuration points at, without touching the database or
/// the broker.
pub async fn load_files(loaded: &Loaded<HotlineConfig>) -> Result<Files, StartError> {
    let files = app_kit::runtime::load_files(&SPEC, loaded).await?;
    let contracts = Contracts::new(files.catalog).map_err(|e| StartError::config(&SPEC, e))?;
    Ok(Files {
        contracts: Arc::new(contracts),
        cipher: files.cipher,
        tokens: files.tokens,
    })
}

/// Starts the consumer, the outbox relay, housekeeping and the HTTP API.
pub async fn start(loaded: &Loaded<HotlineConfig>) -> Result<Running, StartError> {
    let cfg = &loaded.config;
    let files = load_files(loaded).await?;
    let mut rt = Runtime::start(&SPEC, loaded).await?;
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
    let topics = Kind::INBOUND
        .iter()
        .map(|k| cfg.topics.of(*k).to_string())
        .collect();
    rt.consume(topics, handler);
    rt.housekeep(|db, keep| async move {
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        match store::purge_orphan_events(&db, keep_ms).await {
            Ok(n) if n > 0 => info!(purged = n, "events of never-dispatched tickets purged"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "purge of orphan events failed"),
        }
    });
    rt.spawn(metrics::sample(rt.db.clone(), rt.token()));
    let state = Arc::new(api::ApiState {
        deps: actions::ActionDeps {
            db: rt.db.clone(),
            contracts: files.contracts,
            cipher: files.cipher,
            topics: cfg.topics.clone(),
            partner: cfg.hotline.partner.clone(),
            return_window_ms: i64::from(cfg.hotline.return_window_hours) * 3_600_000,
            relay: Arc::clone(&rt.relay),
        },
    });
    rt.serve(api::router(state), files.tokens).await
}

/// `hotline-app serve`: runs until SIGTERM or SIGINT. Exit 0 on a clean stop, 1 otherwise, 2
/// when the configuration is wrong.
pub async fn serve(loaded: Loaded<HotlineConfig>) -> ExitCode {
    app_kit::runtime::run(&SPEC, loaded, start).await
}
