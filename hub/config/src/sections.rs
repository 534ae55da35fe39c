//! Configuration sections shared by the hub and the domain apps, so that every program in the
//! workspace is configured the same way for the bus, the state store, logging and its admin
//! listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use crate::{join_key, Invalid, Validate};

/// `[bus]`: the Kafka cluster and how we talk to it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BusSection {
    /// Comma-separated `host:port` list of brokers.
    pub bootstrap_servers: String,
    /// Client id reported to the brokers (shows up in broker logs and quotas).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Producer batch compression.
    #[serde(default)]
    pub compression: Compression,
    /// How long the producer keeps trying one record before reporting it failed
    /// (librdkafka `message.timeout.ms`). A send answers only after the broker's verdict.
    #[serde(default = "default_delivery_timeout_ms")]
    pub delivery_timeout_ms: u64,
    /// How long the producer waits to fill a batch (librdkafka `linger.ms`). 0 by default:
    /// every ingress answer waits for its record's acknowledgement, and measurements
    /// (docs/performance.md) showed 5 ms (librdkafka's default) cutting closed-loop throughput
    /// at 64 connections to a fifth while adding 5 ms to every answer.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Consumer group session timeout: how soon a dead consumer's partitions move on.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// Replication factor for the topics the hub creates (3 on a production cluster).
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i16,
    /// Extra librdkafka properties (e.g. `security.protocol`), passed through as written.
    /// Properties that carry the hub's delivery guarantees cannot be overridden here.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

/// Properties the bus sets itself because the delivery guarantees depend on them.
pub const GUARANTEED_PROPERTIES: &[&str] = &[
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "bootstrap.servers",
    "metadata.broker.list",
];

fn default_client_id() -> String {
    "shanghai-hub".into()
}
fn default_delivery_timeout_ms() -> u64 {
    30_000
}
fn default_linger_ms() -> u64 {
    0
}
fn default_session_timeout_ms() -> u64 {
    10_000
}
fn default_replication_factor() -> i16 {
    1
}

/// Producer compression codecs built into the bundled librdkafka.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    #[default]
    Lz4,
}

impl Compression {
    /// The librdkafka name of the codec.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

impl Validate for BusSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let servers: Vec<&str> = self
            .bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            out.push(Invalid::new(
                join_key(prefix, "bootstrap_servers"),
                "must list at least one broker as host:port",
            ));
        }
        for s in &servers {
            let ok = s
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                out.push(Invalid::new(
                    join_key(prefix, "bootstrap_servers"),
                    format!("`{s}` is not host:port"),
                ));
            }
        }
        if self.client_id.trim().is_empty() {
            out.push(Invalid::new(
                join_key(prefix, "client_id"),
                "must not be empty",
            ));
        }
        if !(1_000..=600_000).contains(&self.delivery_timeout_ms) {
            out.push(Invalid::new(
                join_key(prefix, "delivery_timeout_ms"),
                format!("{} is outside 1000..=600000 ms", self.delivery_timeout_ms),
            ));
        }
        if self.linger_ms > 1_000 {
            out.push(Invalid::new(
                join_key(prefix, "linger_ms"),
                format!(
                    "{} is above 1000 ms; ingress answers wait for it",
                    self.linger_ms
                ),
            ));
        }
        if !(1_000..=300_000).contains(&self.session_timeout_ms) {
            out.push(Invalid::new(
                join_key(prefix, "session_timeout_ms"),
                format!("{} is outside 1000..=300000 ms", self.session_timeout_ms),
            ));
        }
        if self.replication_factor < 1 {
            out.push(Invalid::new(
                join_key(prefix, "replication_factor"),
                "must be at least 1",
            ));
        }
        for k in self.librdkafka.keys() {
            if GUARANTEED_PROPERTIES.contains(&k.as_str()) {
                out.push(Invalid::new(
                    join_key(&join_key(prefix, "librdkafka"), k),
                    "is set by the hub to keep its delivery guarantees and cannot be overridden",
                ));
            }
        }
        out
    }
}

/// `[state]`: where the program keeps its own state.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// `sqlite://relative/or/absolute/path.db` (the embedded default) or
    /// `postgres://user@host:port/db` (production, and required for several replicas).
    /// A relative SQLite path is relative to the configuration file's folder.
    #[serde(default = "default_state_url")]
    pub url: String,
    /// Connection pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Days an idempotency receipt (partner message id → the hub's answer) is kept after it was
    /// first claimed; a retry after that is treated as a new message. Purged in the background.
    #[serde(default = "default_receipt_retention_days")]
    pub receipt_retention_days: u32,
}

fn default_receipt_retention_days() -> u32 {
    7
}

fn default_state_url() -> String {
    "sqlite://var/hub-state.db".into()
}
fn default_max_connections() -> u32 {
    8
}

impl Default for StateSection {
    fn default() -> Self {
        Self {
            url: default_state_url(),
            max_connections: default_max_connections(),
            receipt_retention_days: default_receipt_retention_days(),
        }
    }
}

impl Validate for StateSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let known = ["sqlite://", "postgres://", "postgresql://"];
        if !known.iter().any(|s| self.url.starts_with(s)) {
            out.push(Invalid::new(
                join_key(prefix, "url"),
                format!(
                    "`{}` must start with sqlite://, postgres:// or postgresql://",
                    self.url
                ),
            ));
        } else if self.url.starts_with("sqlite://") && self.url.len() == "sqlite://".len() {
            out.push(Invalid::new(
                join_key(prefix, "url"),
                "names no database file after sqlite://",
            ));
        }
        if self.max_connections == 0 || self.max_connections > 200 {
            out.push(Invalid::new(
                join_key(prefix, "max_connections"),
                format!("{} is outside 1..=200", self.max_connections),
            ));
        }
        if self.receipt_retention_days == 0 || self.receipt_retention_days > 3_650 {
            out.push(Invalid::new(
                join_key(prefix, "receipt_retention_days"),
                format!("{} is outside 1..=3650", self.receipt_retention_days),
            ));
        }
        out
    }
}

/// `[log]`: structured logs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter: `info`, or `info,hub_bus=debug`.
    #[serde(default = "default_level")]
    pub level: String,
    /// An OpenTelemetry collector's OTLP/HTTP endpoint (`http(s)://host:4318`); absent: spans
    /// are not exported (trace ids are still logged and propagated).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; absent: the program's own name.
    #[serde(default)]
    pub otlp_service_name: Option<String>,
    /// Share of new traces exported (0.0–1.0); a continued trace follows its parent's choice.
    #[serde(default = "default_sample_ratio")]
    pub trace_sample_ratio: f64,
}

// `trace_sample_ratio` is never NaN (validation refuses anything outside 0.0–1.0).
impl Eq for LogSection {}

fn default_level() -> String {
    "info".into()
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_level(),
            otlp_endpoint: None,
            otlp_service_name: None,
            trace_sample_ratio: default_sample_ratio(),
        }
    }
}

/// One JSON object per line (production) or human-readable text (a terminal).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

impl Validate for LogSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        for directive in self.level.split(',').map(str::trim) {
            let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
            if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                out.push(Invalid::new(
                    join_key(prefix, "level"),
                    format!("`{directive}` does not end in one of {}", LEVELS.join(", ")),
                ));
            }
        }
        if let Some(url) = &self.otlp_endpoint {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                out.push(Invalid::new(
                    join_key(prefix, "otlp_endpoint"),
                    format!("`{url}` must be an http:// or https:// URL of an OTLP/HTTP collector"),
                ));
            }
        }
        if self
            .otlp_service_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            out.push(Invalid::new(
                join_key(prefix, "otlp_service_name"),
                "must not be empty",
            ));
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            out.push(Invalid::new(
                join_key(prefix, "trace_sample_ratio"),
                format!("{} is not between 0.0 and 1.0", self.trace_sample_ratio),
            ));
        }
        out
    }
}

/// `[admin]`: the operators' listener (health, readiness, metrics, registry, trace, console).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token that opens `/metrics`, `/registry/…` and `/api/v1/trace/…` (scrapers,
    /// registry clients, scripts); at least 16 characters. Write it `token_env` or `token_file`
    /// to keep it out of the file. Absent: those endpoints answer 401 unless opened below.
    #[serde(default)]
    pub token: Option<String>,
    /// Serve `/metrics` without the token. Only on a loopback listener.
    #[serde(default)]
    pub metrics_open: bool,
    /// Serve the read-only schema registry (`/registry/…`) without the token. Only on a
    /// loopback listener.
    #[serde(default)]
    pub registry_open: bool,
}

impl std::fmt::Debug for AdminSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in Debug output.
        f.debug_struct("AdminSection")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("metrics_open", &self.metrics_open)
            .field("registry_open", &self.registry_open)
            .finish()
    }
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9470))
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token: None,
            metrics_open: false,
            registry_open: false,
        }
    }
}

impl Validate for AdminSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.token.as_ref().is_some_and(|t| t.chars().count() < 16) {
            out.push(Invalid::new(
                join_key(prefix, "token"),
                "must be at least 16 characters",
            ));
        }
        for (open, key) in [
            (self.metrics_open, "metrics_open"),
            (self.registry_open, "registry_open"),
        ] {
            if open && !self.listen.ip().is_loopback() {
                out.push(Invalid::new(
                    join_key(prefix, key),
                    format!(
                        "ADMIN_OPEN_OFF_LOOPBACK: an endpoint without the token is allowed only on a loopback listener, not {}",
                        self.listen
                    ),
                ));
            }
        }
        out
    }
}
