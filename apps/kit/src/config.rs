//! Configuration sections every domain app shares, defined once: its process (`[app]`), its
//! database, its HTTP listener and API tokens, its consumer group, where the contracts are, its
//! key ring and KMS (`[security]`), beside `hub-config`'s `[bus]` and `[log]`. Each validates
//! itself (`hub_config::Validate`), so an app's loader reports every problem with file, line
//! and key. An app declares its file with [`crate::app_config!`]: these sections plus its own.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use hub_config::sections::{BusSection, LogSection};
pub use hub_config::{join_key, Invalid, Validate};

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

/// `[app]`: the process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// How long shutdown may take to finish the record and sends in hand (ms).
    #[serde(default = "default_grace_ms")]
    pub shutdown_grace_ms: u64,
}

fn default_grace_ms() -> u64 {
    15_000
}

impl Default for AppSection {
    fn default() -> Self {
        Self {
            shutdown_grace_ms: default_grace_ms(),
        }
    }
}

impl Validate for AppSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if !(1_000..=300_000).contains(&self.shutdown_grace_ms) {
            out.push(Invalid::new(
                join_key(prefix, "shutdown_grace_ms"),
                format!("{} is outside 1000..=300000", self.shutdown_grace_ms),
            ));
        }
        out
    }
}

/// `[contracts]`: where the Avro contracts are (relative to the configuration file's folder).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractsSection {
    #[serde(default = "default_contracts_dir")]
    pub dir: PathBuf,
}

fn default_contracts_dir() -> PathBuf {
    PathBuf::from("contracts/schemas")
}

impl Default for ContractsSection {
    fn default() -> Self {
        Self {
            dir: default_contracts_dir(),
        }
    }
}

/// `[security]`: the field-encryption key ring (the hub's format, `docs/security.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// Key ring file (relative to the configuration file's folder). It must hold every key that
    /// sealed a value still in the app's tables.
    pub key_ring: PathBuf,
    /// The KMS that unwraps `kms:` entries of the key ring (as the hub's `[gateway.kms]`).
    #[serde(default)]
    pub kms: Option<KmsSection>,
}

/// `[security.kms]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSection {
    pub url: String,
    pub app_id: String,
    pub hmac_secret: String,
    /// Accept `http://` for a KMS on a loopback address (development and tests only).
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// The sections every app's configuration file has, defined once here: `[app]`, `[http]`,
/// `[bus]`, `[database]`, `[consumer]`, `[contracts]`, `[security]` and `[log]`. An app's
/// configuration type is made with [`crate::app_config!`], which adds its own sections beside
/// them and implements this trait and `hub_config::Validate`.
pub trait AppConfig: serde::de::DeserializeOwned + Validate + Send + Sync + 'static {
    fn app(&self) -> &AppSection;
    fn http(&self) -> &HttpSection;
    fn bus(&self) -> &BusSection;
    fn database(&self) -> &DatabaseSection;
    fn consumer(&self) -> &ConsumerSection;
    fn contracts(&self) -> &ContractsSection;
    fn security(&self) -> &SecuritySection;
    fn log(&self) -> &LogSection;

    /// The problems of the shared sections (an app's `Validate` adds its own sections').
    fn validate_shared(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        out.extend(self.app().validate(&join_key(prefix, "app")));
        out.extend(self.http().validate(&join_key(prefix, "http")));
        out.extend(self.bus().validate(&join_key(prefix, "bus")));
        out.extend(self.database().validate(&join_key(prefix, "database")));
        out.extend(self.consumer().validate(&join_key(prefix, "consumer")));
        out.extend(self.log().validate(&join_key(prefix, "log")));
        out
    }
}

/// Declares an app's configuration file: the shared sections of [`AppConfig`] plus the app's
/// own, each of which implements `hub_config::Validate` and is checked under its name. Unknown
/// keys are refused. The app's crate needs `serde` as a dependency.
///
/// ```ignore
/// app_kit::app_config! {
///     /// The whole configuration file.
///     pub struct LicensingConfig {
///         #[serde(default)]
///         pub topics: TopicsSection,
///         pub licensing: LicensingSection,
///     }
/// }
/// ```
#[macro_export]
macro_rules! app_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, ::serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(default)]
            pub app: $crate::config::AppSection,
            pub http: $crate::config::HttpSection,
            pub bus: $crate::config::BusSection,
            pub database: $crate::config::DatabaseSection,
            pub consumer: $crate::config::ConsumerSection,
            #[serde(default)]
            pub contracts: $crate::config::ContractsSection,
            pub security: $crate::config::SecuritySection,
            #[serde(default)]
            pub log: $crate::config::LogSection,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::config::AppConfig for $name {
            fn app(&self) -> &$crate::config::AppSection { &self.app }
            fn http(&self) -> &$crate::config::HttpSection { &self.http }
            fn bus(&self) -> &$crate::config::BusSection { &self.bus }
            fn database(&self) -> &$crate::config::DatabaseSection { &self.database }
            fn consumer(&self) -> &$crate::config::ConsumerSection { &self.consumer }
            fn contracts(&self) -> &$crate::config::ContractsSection { &self.contracts }
            fn security(&self) -> &$crate::config::SecuritySection { &self.security }
            fn log(&self) -> &$crate::config::LogSection { &self.log }
        }

        impl $crate::config::Validate for $name {
            fn validate(&self, prefix: &str) -> Vec<$crate::config::Invalid> {
                let mut out = $crate::config::AppConfig::validate_shared(self, prefix);
                $(
                    out.extend($crate::config::Validate::validate(
                        &self.$field,
                        &$crate::config::join_key(prefix, stringify!($field)),
                    ));
                )*
                out
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DemoSection {
        #[serde(default)]
        pub limit: u32,
    }

    impl Validate for DemoSection {
        fn validate(&self, prefix: &str) -> Vec<Invalid> {
            if self.limit > 10 {
                vec![Invalid::new(join_key(prefix, "limit"), "is above 10")]
            } else {
                vec![]
            }
        }
    }

    crate::app_config! {
        /// A demo app's file.
        pub struct DemoConfig {
            #[serde(default)]
            pub demo: DemoSection,
        }
    }

    const BASE: &str = r#"
[http]
listen = "127.0.0.1:0"
[[http.tokens]]
name = "a"
sm3 = "0000000000000000000000000000000000000000000000000000000000000000"
role = "viewer"
[bus]
bootstrap_servers = "127.0.0.1:9092"
[database]
url = "sqlite://demo.db"
[consumer]
group_id = "demo"
[security]
key_ring = "keys.toml"
"#;

    fn parse(text: &str) -> Result<DemoConfig, String> {
        hub_config::parse_str::<DemoConfig>(text, std::path::Path::new("demo.toml"), "DEMO", &[])
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_apps_file_is_the_shared_sections_plus_its_own() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.app().shutdown_grace_ms, 15_000);
        assert_eq!(c.contracts().dir, PathBuf::from("contracts/schemas"));
        assert_eq!(c.database().url, "sqlite://demo.db");
        assert_eq!(c.demo.limit, 0);
        // Both the shared and the app's own sections are validated, under their keys.
        let e = parse(&format!(
            "{BASE}\n[app]\nshutdown_grace_ms = 5\n[demo]\nlimit = 11\n"
        ))
        .unwrap_err();
        assert!(e.contains("app.shutdown_grace_ms"), "{e}");
        assert!(e.contains("demo.limit"), "{e}");
        // Unknown sections and keys are refused.
        let e = parse(&format!("{BASE}\n[demmo]\nlimit = 1\n")).unwrap_err();
        assert!(e.contains("demmo"), "{e}");
        assert!(parse(&format!("{BASE}\n[security.kms]\nurl = \"x\"\n")).is_err());
    }
}
