//! The app runtime of the thin domain apps (`apps/`), so each app holds only its business (its
//! tables, its handlers and its API):
//!
//! * [`runtime`]: the builder that wires configuration, key ring and KMS, database and
//!   migrations, consumer, outbox relay, HTTP API with tokens, metrics, tracing and graceful
//!   shutdown; [`cli`]: the `serve` / `check` / `hash-token` command line;
//! * [`db`]: one data-access layer over SQLite (embedded default) and PostgreSQL (production,
//!   the app's own schema), with each app's sqlx migrations;
//! * [`consumer`]: a Kafka consumer whose offsets live in the app's database and are written in
//!   the same transaction as the app's table writes, de-duplicating by the envelope's message
//!   id; on every partition assignment it seeks to the stored offsets;
//! * [`outbox`]: the transactional outbox and the relay that produces it to Kafka at least once
//!   with stable message ids;
//! * [`auth`] and [`api`]: bearer-token callers configured as SM3 digests with roles, and the
//!   one error shape (stable code, Chinese and English message);
//! * [`personal`]: masking personal fields of a contract record for callers who may not see
//!   them;
//! * [`config`] and [`logging`]: the configuration sections every app shares (declared once;
//!   an app adds its own with [`app_config!`]) and the logs;
//! * [`metrics`]: Prometheus metrics on `GET /metrics` (consumer, outbox, HTTP API, and the
//!   app's own).
//!
//! # Tables every app creates
//!
//! The kit's SQL expects these tables in the app's database; an app's first migration creates
//! them (SQLite and PostgreSQL variants: `apps/hotline/migrations/*/0001_*.sql`):
//!
//! | table | key | holds |
//! |---|---|---|
//! | `app_consumer_offsets` | (consumer, topic, partition_no) | `next_offset`: the next record to read |
//! | `app_processed_messages` | (consumer, message_id) | every message id applied (or rejected), for de-duplication |
//! | `app_rejected_messages` | (consumer, topic, partition_no, record_offset) | records that can never be applied, with a code |
//! | `app_outbox` | seq; message_id unique | messages to produce: envelope, topic, framed payload, when sent |

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod db;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod personal;
pub mod runtime;

pub use db::{Backend, Db, DbError, Migrations, Tx};
pub use runtime::{AppSpec, Running, Runtime, StartError};
