//! Configuration sections every domain app shares, beside `hub-config`'s `[bus]` and `[log]`:
//! its database, its HTTP listener, its consumer group and its API tokens. Each validates itself
//! (`hub_config::Validate`), so an app's loader reports every problem with file, line and key.

use std::net::SocketAddr;

use serde::Deserialize;

use hub_config::{join_key, Invalid, Validate};

use crate::auth::TokenEntry;

/// `[database]`: where the app keeps its tables.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://path.db` (relative to the configuration file's folder) or
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// Connection pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// PostgreSQL schema of the app's tables (default: the app's name). Ignored for SQLite,
    /// where each app has its own file.
    #[serde(default)]
    pub schema: Option<String>,
}

fn default_max_connections() -> u32 {
    8
}

impl Validate for DatabaseSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let known = ["sqlite://", "postgres://", "postgresql://"];
        if !known.iter().any(|s| self.url.starts_with(s)) {
            out.push(Invalid::new(
                join_key(prefix, "url"),
                "must start with sqlite://, postgres:// or postgresql://",
            ));
        } else if self.url == "sqlite://" {
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
        if let Some(s) = &self.schema {
            let ok = s
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                out.push(Invalid::new(
                    join_key(prefix, "schema"),
                    "must be a lower-case identifier (a-z, 0-9, _), at most 63 characters",
                ));
            }
        }
        out
    }
}

/// Where a partition starts when the app's database has no offset for it yet.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// From the oldest record Kafka still holds (a new app catches up on what is retained).
    #[default]
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// `[consumer]`: the app's consumer group.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSection {
    /// Kafka consumer group id. Partitions are shared among the group's members; where each
    /// member starts reading comes from the app's database, never from the group's commits.
    pub group_id: String,
    /// Where a partition without a stored offset starts.
    #[serde(default)]
    pub start_at: StartAt,
    /// How long the ids of applied messages are kept for de-duplication (days). Longer than the
    /// topics' retention, so any record Kafka can still replay is recognised.
    #[serde(default = "default_dedup_retention_days")]
    pub dedup_retention_days: u32,
}

fn default_dedup_retention_days() -> u32 {
    35
}

impl Validate for ConsumerSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.group_id.trim().is_empty() {
            out.push(Invalid::new(
                join_key(prefix, "group_id"),
                "must not be empty",
            ));
        }
        if !(1..=3650).contains(&self.dedup_retention_days) {
            out.push(Invalid::new(
                join_key(prefix, "dedup_retention_days"),
                format!("{} is outside 1..=3650", self.dedup_retention_days),
            ));
        }
        out
    }
}

/// `[http]`: the app's API listener.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: SocketAddr,
    /// Largest request body accepted (bytes).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// API callers: each a bearer token given by its SM3 digest, with a role.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

fn default_max_body_bytes() -> usize {
    256 * 1024
}

impl Validate for HttpSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            out.push(Invalid::new(
                join_key(prefix, "max_body_bytes"),
                format!("{} is outside 1 KiB..=16 MiB", self.max_body_bytes),
            ));
        }
        if self.tokens.is_empty() {
            out.push(Invalid::new(
                join_key(prefix, "tokens"),
                "lists no token: nobody could use the API",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut digests = std::collections::BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let key = format!("{}[{i}]", join_key(prefix, "tokens"));
            if t.name.trim().is_empty() {
                out.push(Invalid::new(join_key(&key, "name"), "must not be empty"));
            } else if !names.insert(t.name.as_str()) {
                out.push(Invalid::new(
                    join_key(&key, "name"),
                    format!("`{}` is used by another token", t.name),
                ));
            }
            let hex_ok = t.sm3.len() == 64 && t.sm3.chars().all(|c| c.is_ascii_hexdigit());
            if !hex_ok {
                out.push(Invalid::new(
                    join_key(&key, "sm3"),
                    "must be the SM3 digest of the token: 64 hex digits",
                ));
            } else if !digests.insert(t.sm3.to_ascii_lowercase()) {
                out.push(Invalid::new(
                    join_key(&key, "sm3"),
                    "is the digest of another token too: each caller needs its own token",
                ));
            }
        }
        out
    }
}
