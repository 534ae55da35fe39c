//! One data-access layer over the two databases an app runs on: SQLite (the embedded default,
//! one file per app) and PostgreSQL (production; each app in its own schema).
//!
//! As in `hub-state`, the SQL is written once in the dialect both accept (`$n` parameters,
//! `INSERT … ON CONFLICT`) and run through [`on_db!`](crate::on_db) or [`on_tx!`](crate::on_tx),
//! which expand the same expression once per backend. DDL differs, so an app keeps two migration
//! folders (`migrations/sqlite`, `migrations/postgres`) with the same numbers, and hands both
//! migrators to [`Db::connect`]. Times are Unix epoch milliseconds (UTC) unless a column keeps a
//! partner's own RFC 3339 text.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Postgres, Sqlite, Transaction};

use crate::config::DatabaseSection;

/// Errors of the data-access layer, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DB_CONFIG: {0}")]
    Config(String),
    #[error("DB_UNAVAILABLE: {0}")]
    Unavailable(#[from] sqlx::Error),
    #[error("DB_MIGRATION_FAILED: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl DbError {
    pub fn code(&self) -> &'static str {
        match self {
            DbError::Config(_) => "DB_CONFIG",
            DbError::Unavailable(_) => "DB_UNAVAILABLE",
            DbError::Migration(_) => "DB_MIGRATION_FAILED",
        }
    }
}

/// Which database is behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The migrations of one app, one migrator per backend (`sqlx::migrate!` of each folder).
#[derive(Clone, Copy)]
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

/// A connection pool to the app's database. Cheap to clone.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction on either backend; dropped without [`Tx::commit`] it rolls back.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs the same sqlx expression against whichever pool `db` (a `&Db`) holds:
/// `on_db!(db, p => sqlx::query(SQL).bind(x).execute(p).await?)`.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs the same sqlx expression inside a transaction `tx` (a `&mut Tx`), with `$conn` bound to
/// the connection: `on_tx!(tx, c => sqlx::query(SQL).bind(x).execute(c).await?)`.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// PostgreSQL schema names an app may use: plain lower-case identifiers, so they never need
/// quoting and cannot smuggle SQL into the `CREATE SCHEMA` statement.
fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

impl Db {
    /// Connects as `section` says and applies pending migrations.
    ///
    /// SQLite: a relative path is resolved against `base_dir` (the configuration file's folder)
    /// and its folder is created. PostgreSQL: the app's tables live in the schema
    /// `section.schema` (or `default_schema`), created if missing and put first on every
    /// connection's `search_path`, so the app's SQL never names it and sqlx keeps the app's
    /// migration history (`_sqlx_migrations`) in that schema too.
    pub async fn connect(
        section: &DatabaseSection,
        base_dir: &Path,
        default_schema: &str,
        migrations: Migrations,
    ) -> Result<Self, DbError> {
        let url = section.url.as_str();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let (path, _query) = path.split_once('?').unwrap_or((path, ""));
            let path = if Path::new(path).is_absolute() {
                PathBuf::from(path)
            } else {
                base_dir.join(path)
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    DbError::Config(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                // WAL lets readers run beside the writer; FULL sync because an applied record
                // and its offset that vanish after a power cut would be applied twice.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(section.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            migrations.sqlite.run(&pool).await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let schema = section.schema.as_deref().unwrap_or(default_schema);
            if !valid_schema(schema) {
                return Err(DbError::Config(format!(
                    "schema `{schema}` must be a lower-case identifier (a-z, 0-9, _)"
                )));
            }
            let base = PgConnectOptions::from_str(url)
                .map_err(|e| DbError::Config(format!("bad PostgreSQL URL: {e}")))?
                .application_name(default_schema);
            create_schema(&base, schema).await?;
            let options = base.options([("search_path", schema)]);
            let pool = PgPoolOptions::new()
                .max_connections(section.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            migrations.postgres.run(&pool).await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(DbError::Config(format!(
                "`{url}` is neither sqlite:// nor postgres://"
            )))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that reads first and writes later could otherwise fail
    /// without waiting when another writer committed in between.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Proves the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await?.rows_affected());
        Ok(())
    }

    /// Closes every connection, waiting for queries in progress.
    pub async fn close(&self) {
        on_db!(self, p => p.close().await);
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// Creates the app's schema if it is missing. Replicas may start together: an advisory lock
/// serialises them, because two concurrent `CREATE SCHEMA IF NOT EXISTS` can still collide.
async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<(), DbError> {
    let mut conn = sqlx::PgConnection::connect_with(options).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("app-kit create schema {schema}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}

/// Now, as Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::valid_schema;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema("hotline"));
        assert!(valid_schema("app_2"));
        assert!(!valid_schema("Hotline"));
        assert!(!valid_schema("2app"));
        assert!(!valid_schema("x; DROP TABLE y"));
        assert!(!valid_schema(""));
    }
}
