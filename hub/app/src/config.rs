//! The hub's configuration file: the shared sections plus the hub's own.

use std::path::PathBuf;

use serde::Deserialize;

use hub_config::sections::{AdminSection, BusSection, LogSection, StateSection};
use hub_config::{join_key, Invalid, Validate};

/// The whole `hub.toml`. See `ops/hub.example.toml` for every key with its meaning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    #[serde(default)]
    pub hub: HubSection,
    #[serde(default)]
    pub admin: AdminSection,
    pub bus: BusSection,
    #[serde(default)]
    pub state: StateSection,
    #[serde(default)]
    pub contracts: ContractsSection,
    #[serde(default)]
    pub mappings: MappingsSection,
    /// An external Confluent-compatible schema registry to register the contracts into.
    #[serde(default)]
    pub registry: Option<crate::external_registry::RegistrySection>,
    /// The partners' entry; absent: the hub takes no pushes (e.g. a pull-only replica).
    #[serde(default)]
    pub gateway: Option<hub_gateway::GatewaySection>,
    #[serde(default)]
    pub log: LogSection,
}

/// `[hub]`: this instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    /// Unique name of this replica (lease holder, heartbeat row). Default: host name and pid.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// How long shutdown may take to finish in-flight work and flush the producer.
    #[serde(default = "default_grace_ms")]
    pub shutdown_grace_ms: u64,
}

fn default_grace_ms() -> u64 {
    20_000
}

impl Default for HubSection {
    fn default() -> Self {
        Self {
            instance_id: None,
            shutdown_grace_ms: default_grace_ms(),
        }
    }
}

/// `[contracts]`: where the Avro contracts are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractsSection {
    /// Folder of `*.avsc` files, relative to this configuration file's folder.
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

/// `[mappings]`: where the declarative mappings (VRL programs, manifests, fixtures, code
/// tables) are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingsSection {
    /// Folder of the partner mapping folders and `tables/`, relative to this file's folder.
    #[serde(default = "default_mappings_dir")]
    pub dir: PathBuf,
}

fn default_mappings_dir() -> PathBuf {
    PathBuf::from("mappings")
}

impl Default for MappingsSection {
    fn default() -> Self {
        Self {
            dir: default_mappings_dir(),
        }
    }
}

impl Validate for HubConfig {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if let Some(id) = &self.hub.instance_id {
            let ok = !id.is_empty()
                && id.len() <= 128
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                out.push(Invalid::new(
                    join_key(prefix, "hub.instance_id"),
                    "must be 1 to 128 characters of A-Z, a-z, 0-9, `-`, `_`, `.`",
                ));
            }
        }
        if !(1_000..=300_000).contains(&self.hub.shutdown_grace_ms) {
            out.push(Invalid::new(
                join_key(prefix, "hub.shutdown_grace_ms"),
                format!("{} is outside 1000..=300000 ms", self.hub.shutdown_grace_ms),
            ));
        }
        out.extend(self.admin.validate(&join_key(prefix, "admin")));
        out.extend(self.bus.validate(&join_key(prefix, "bus")));
        out.extend(self.state.validate(&join_key(prefix, "state")));
        out.extend(self.log.validate(&join_key(prefix, "log")));
        if let Some(r) = &self.registry {
            if !(r.external_url.starts_with("http://") || r.external_url.starts_with("https://")) {
                out.push(Invalid::new(
                    join_key(prefix, "registry.external_url"),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(g) = &self.gateway {
            out.extend(g.validate(&join_key(prefix, "gateway")));
        }
        out
    }
}

impl HubConfig {
    /// This replica's id: configured, or `<host>-<pid>` so two processes never share one.
    pub fn instance_id(&self) -> String {
        self.hub.instance_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "hub".into());
            format!("{host}-{}", std::process::id())
        })
    }
}
