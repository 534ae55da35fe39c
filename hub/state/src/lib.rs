//! The hub's own state store.
//!
//! One data-access layer over two backends: SQLite, the embedded default for a single hub, and
//! PostgreSQL, for production and whenever several hub replicas share one state (replay nonces
//! must be seen by every replica, a pull lease must exclude the others). The SQL is written once
//! in the dialect both accept (`$n` parameters, `INSERT … ON CONFLICT`), and each backend has
//! its own migration folder because their DDL types differ. Migrations run at connect time;
//! on PostgreSQL sqlx serialises concurrent migrators with an advisory lock, so replicas can
//! start together.
//!
//! Times are stored as Unix epoch milliseconds (UTC) so both backends compare them the same way.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use hub_config::sections::StateSection;

/// Errors of the state store, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("STATE_CONFIG: {0}")]
    Config(String),
    #[error("STATE_UNAVAILABLE: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("STATE_MIGRATION_FAILED: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// A group-committed batch failed; every request of the batch gets the same error.
    #[error("STATE_UNAVAILABLE: {0}")]
    Batch(#[source] Arc<sqlx::Error>),
}

impl StateError {
    pub fn code(&self) -> &'static str {
        match self {
            StateError::Config(_) => "STATE_CONFIG",
            StateError::Unavailable(_) | StateError::Batch(_) => "STATE_UNAVAILABLE",
            StateError::Migration(_) => "STATE_MIGRATION_FAILED",
        }
    }
}

/// Counts a failed operation of the store (`hub_state_errors_total{operation, code}`) and
/// passes the result on.
pub(crate) fn observed<T>(
    operation: &'static str,
    result: Result<T, StateError>,
) -> Result<T, StateError> {
    if let Err(e) = &result {
        metrics::counter!("hub_state_errors_total", "operation" => operation, "code" => e.code())
            .increment(1);
    }
    result
}

impl From<sqlx::Error> for StateError {
    fn from(e: sqlx::Error) -> Self {
        StateError::Unavailable(e)
    }
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same sqlx expression against whichever pool is configured.
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

mod audit;
mod dead_letters;
mod file_pickups;
mod file_refs;
mod operators;
mod receipts;
mod trace;
mod writer;
pub use audit::{AuditCheckpoint, AuditRecord, AuditVerdict, CheckpointKey, GENESIS};
pub use dead_letters::{DeadLetter, DeadLetterFilter};
pub use file_pickups::FilePickup;
pub use file_refs::FileHold;
pub use operators::{ConsoleSession, Operator};
pub use receipts::{Receipt, ReceiptConflict, ReceiptFingerprint};
pub use trace::{SinkOptions, StoredTraceEvent, TraceEvent, TraceResult, TraceSink};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A handle to the state store. Cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    pool: Pool,
    /// The writer task that group-commits nonces and receipts ([`writer`]).
    writer: writer::Writer,
    /// SQLite only: held by every writer of this process around its transaction, so none of
    /// them waits in SQLite's busy handler for another (one file, one writer at a time).
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Where [`StateStore::trace_event`] queues (`hub serve` attaches one; tools do not).
    trace: Option<TraceSink>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl StateStore {
    /// Connects as the section says and applies pending migrations. A relative SQLite path is
    /// resolved against `base_dir` (the configuration file's folder); its folder is created.
    pub async fn connect(section: &StateSection, base_dir: &Path) -> Result<Self, StateError> {
        let url = section.url.as_str();
        let pool = if let Some(path) = url.strip_prefix("sqlite://") {
            let (path, _query) = path.split_once('?').unwrap_or((path, ""));
            let path = if Path::new(path).is_absolute() {
                PathBuf::from(path)
            } else {
                base_dir.join(path)
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StateError::Config(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                // WAL lets readers run beside the writer; FULL sync because a nonce or a
                // cursor that is acknowledged and then lost on power failure is a real fault.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(section.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            SQLITE_MIGRATIONS
                .run(&pool)
                .await
                .map_err(StateError::Migration)?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = sqlx::postgres::PgConnectOptions::from_str(url)
                .map_err(|e| StateError::Config(format!("bad PostgreSQL URL: {e}")))?
                .application_name("shanghai-hub");
            let pool = PgPoolOptions::new()
                .max_connections(section.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            POSTGRES_MIGRATIONS
                .run(&pool)
                .await
                .map_err(StateError::Migration)?;
            Pool::Postgres(pool)
        } else {
            return Err(StateError::Config(format!(
                "`{url}` is neither sqlite:// nor postgres://"
            )));
        };
        let gate = match pool {
            Pool::Sqlite(_) => Some(Arc::new(tokio::sync::Mutex::new(()))),
            Pool::Postgres(_) => None,
        };
        let writer = writer::Writer::start(pool.clone(), gate.clone());
        Ok(Self {
            pool,
            writer,
            gate,
            trace: None,
        })
    }

    /// Takes the SQLite write gate (nothing on PostgreSQL) for one write transaction.
    pub(crate) async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.gate {
            Some(g) => Some(g.lock().await),
            None => None,
        }
    }

    /// Runs `sql` (a `DELETE` with `$1` the cut-off and `$2` the slice size) until a slice
    /// deletes fewer rows than the slice: each slice is its own short transaction, taking the
    /// write gate only for itself, so the writer task waits at most one slice.
    pub(crate) async fn delete_in_slices(&self, sql: &str, cutoff: i64) -> Result<u64, StateError> {
        const SLICE: i64 = 500;
        let mut total = 0;
        loop {
            let n = {
                let _gate = self.write_gate().await;
                on_pool!(self, p => sqlx::query(sql).bind(cutoff).bind(SLICE).execute(p).await?.rows_affected())
            };
            total += n;
            if n < SLICE as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    pub fn backend(&self) -> BackendKind {
        match self.pool {
            Pool::Sqlite(_) => BackendKind::Sqlite,
            Pool::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Versions of the migrations applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StateError> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        Ok(on_pool!(self, p => sqlx::query_scalar(sql).fetch_all(p).await?))
    }

    /// Records that `instance_id` is alive now. Used at start-up and by `/readyz`, which
    /// therefore proves the store accepts writes, not only reads.
    pub async fn heartbeat(&self, instance_id: &str, version: &str) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "INSERT INTO hub_instances (instance_id, started_at_ms, seen_at_ms, version) \
                       VALUES ($1, $2, $2, $3) \
                       ON CONFLICT (instance_id) DO UPDATE SET seen_at_ms = excluded.seen_at_ms, \
                       version = excluded.version";
            let now = now_ms();
            let _gate = self.write_gate().await;
            on_pool!(self, p => sqlx::query(sql).bind(instance_id).bind(now).bind(version).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("heartbeat", result)
    }

    /// Claims `nonce` for `app_id` until `now + window`. Returns `false` when the nonce was
    /// already claimed and has not expired: the request is a replay. Atomic across replicas.
    /// Returns only once the claim is durable; concurrent claims share one transaction and one
    /// fsync (group commit, see the `writer` module).
    pub async fn claim_nonce(
        &self,
        app_id: &str,
        nonce: &str,
        window: Duration,
    ) -> Result<bool, StateError> {
        let (app_id, nonce) = (app_id.to_string(), nonce.to_string());
        let window_ms = millis(window);
        let result = self
            .writer
            .submit(|reply| writer::Op::Nonce {
                app_id,
                nonce,
                window_ms,
                reply,
            })
            .await
            .map_err(StateError::Batch);
        observed("claim_nonce", result)
    }

    /// Deletes expired nonces in bounded slices; returns how many.
    pub async fn purge_expired_nonces(&self) -> Result<u64, StateError> {
        let sql = "DELETE FROM hub_nonces WHERE (app_id, nonce) IN \
                   (SELECT app_id, nonce FROM hub_nonces WHERE expires_at_ms < $1 LIMIT $2)";
        observed(
            "purge_expired_nonces",
            self.delete_in_slices(sql, now_ms()).await,
        )
    }

    /// The saved value of cursor `name`, if any.
    pub async fn cursor(&self, name: &str) -> Result<Option<String>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "SELECT value FROM hub_cursors WHERE name = $1";
            Ok(on_pool!(self, p => sqlx::query_scalar(sql).bind(name).fetch_optional(p).await?))
        }
        .await;
        observed("cursor", result)
    }

    /// Saves cursor `name`. Call only after the page it stands for is on Kafka.
    pub async fn save_cursor(&self, name: &str, value: &str) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "INSERT INTO hub_cursors (name, value, updated_at_ms) VALUES ($1, $2, $3) \
                       ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
                       updated_at_ms = excluded.updated_at_ms";
            let now = now_ms();
            let _gate = self.write_gate().await;
            on_pool!(self, p => sqlx::query(sql).bind(name).bind(value).bind(now).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("save_cursor", result)
    }

    /// Takes or renews lease `name` for `holder` until `now + ttl`. Returns `false` while
    /// another holder's lease has not expired. Atomic across replicas.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "INSERT INTO hub_leases (name, holder, expires_at_ms) VALUES ($1, $2, $3) \
                       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                       expires_at_ms = excluded.expires_at_ms \
                       WHERE hub_leases.holder = excluded.holder OR hub_leases.expires_at_ms < $4";
            let now = now_ms();
            let _gate = self.write_gate().await;
            let done = on_pool!(self, p => sqlx::query(sql)
                .bind(name)
                .bind(holder)
                .bind(now.saturating_add(millis(ttl)))
                .bind(now)
                .execute(p)
                .await?
                .rows_affected());
            Ok(done == 1)
        }
        .await;
        observed("acquire_lease", result)
    }

    /// Gives lease `name` up if `holder` has it, so another replica can take it at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "DELETE FROM hub_leases WHERE name = $1 AND holder = $2";
            let _gate = self.write_gate().await;
            on_pool!(self, p => sqlx::query(sql).bind(name).bind(holder).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("release_lease", result)
    }

    /// Stores the queued trace events (if a sink is attached), then closes every connection,
    /// waiting for queries in progress.
    pub async fn close(&self) {
        if let Some(sink) = &self.trace {
            sink.close().await;
        }
        // Everything queued for the writer before now is committed (or has failed) first.
        let _ = self
            .writer
            .submit(|reply| writer::Op::Barrier { reply })
            .await;
        on_pool!(self, p => p.close().await);
    }
}
