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
    /// Where the adapter manifests are (`adapters/<partner>/adapter.toml`).
    #[serde(default)]
    pub adapters: AdaptersSection,
    /// The partners this deployment delivers to or pulls from, by adapter name.
    #[serde(default)]
    pub partners: std::collections::BTreeMap<String, hub_adapter::PartnerSection>,
    #[serde(default)]
    pub egress: EgressSection,
    #[serde(default)]
    pub poller: PollerSection,
    /// The message trace (`docs/trace.md`).
    #[serde(default)]
    pub trace: TraceSection,
    #[serde(default)]
    pub log: LogSection,
    /// The operators' console on the admin listener (`docs/console.md`).
    #[serde(default)]
    pub console: hub_console::ConsoleSection,
    /// Signed checkpoints and retention of the audit chain (`docs/security.md`).
    #[serde(default)]
    pub audit: AuditSection,
    /// The file store (`docs/files.md`); absent: the hub keeps no files, and an adapter that
    /// declares files is refused at start.
    #[serde(default)]
    pub files: Option<hub_files::config::FilesSection>,
}

/// `[audit]`: signed checkpoints of the audit chain and its retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// File holding the HMAC-SM3 key (hex, at least 16 bytes) that signs the chain's
    /// checkpoints, relative to this file's folder. Absent: no checkpoints and no retention;
    /// verification reads the whole chain.
    #[serde(default)]
    pub checkpoint_key_file: Option<PathBuf>,
    /// How often the chain is verified from its newest checkpoint and a new checkpoint signed.
    #[serde(default = "default_checkpoint_minutes")]
    pub checkpoint_interval_minutes: u64,
    /// Records older than this, and covered by a checkpoint, are deleted.
    #[serde(default = "default_audit_retention_days")]
    pub retention_days: u32,
}

fn default_checkpoint_minutes() -> u64 {
    10
}

fn default_audit_retention_days() -> u32 {
    365
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            checkpoint_key_file: None,
            checkpoint_interval_minutes: default_checkpoint_minutes(),
            retention_days: default_audit_retention_days(),
        }
    }
}

impl AuditSection {
    /// The checkpoint key, read from its file (resolved by the caller), if one is configured.
    pub fn key(
        &self,
        resolve: impl Fn(&std::path::Path) -> PathBuf,
    ) -> Result<Option<hub_state::CheckpointKey>, String> {
        let Some(file) = &self.checkpoint_key_file else {
            return Ok(None);
        };
        let path = resolve(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("audit.checkpoint_key_file {}: {e}", path.display()))?;
        let text = text.trim();
        let bytes: Option<Vec<u8>> = (text.len() % 2 == 0)
            .then(|| {
                (0..text.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                    .collect()
            })
            .flatten();
        let bytes = bytes
            .ok_or_else(|| format!("audit.checkpoint_key_file {}: not hex", path.display()))?;
        hub_state::CheckpointKey::new(bytes)
            .map(Some)
            .map_err(|e| format!("audit.checkpoint_key_file {}: {e}", path.display()))
    }
}

/// `[trace]`: the message trace kept in the state store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSection {
    /// Trace events older than this many days are purged (checked hourly).
    #[serde(default = "default_trace_retention_days")]
    pub retention_days: u32,
    /// Trace events waiting to be written at most; beyond it they are dropped and counted
    /// (`hub_trace_events_dropped_total`) rather than slowing pushes and deliveries down.
    #[serde(default = "default_trace_queue_capacity")]
    pub queue_capacity: usize,
}

fn default_trace_retention_days() -> u32 {
    30
}

fn default_trace_queue_capacity() -> usize {
    10_000
}

impl Default for TraceSection {
    fn default() -> Self {
        Self {
            retention_days: default_trace_retention_days(),
            queue_capacity: default_trace_queue_capacity(),
        }
    }
}

/// `[adapters]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptersSection {
    /// Folder of the partner adapter folders, relative to this file's folder.
    #[serde(default = "default_adapters_dir")]
    pub dir: PathBuf,
}

fn default_adapters_dir() -> PathBuf {
    PathBuf::from("adapters")
}

impl Default for AdaptersSection {
    fn default() -> Self {
        Self {
            dir: default_adapters_dir(),
        }
    }
}

/// `[egress]`: settings shared by every delivery route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// How often each route commits the offsets of finished records. A crash repeats at most
    /// this much work (the partner removes the duplicates by the idempotency key).
    #[serde(default = "default_commit_interval")]
    pub commit_interval_ms: u64,
    /// Consumer groups of the routes are `<group_prefix>.<partner>.<delivery>`. Change it only
    /// to run a second, independent set of deliveries against the same cluster.
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
}

fn default_group_prefix() -> String {
    "hub-egress".into()
}

fn default_commit_interval() -> u64 {
    1_000
}

impl Default for EgressSection {
    fn default() -> Self {
        Self {
            commit_interval_ms: default_commit_interval(),
            group_prefix: default_group_prefix(),
        }
    }
}

/// `[poller]`: settings shared by every pull job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerSection {
    /// How long a job's lease lasts without renewal: a replica that dies mid-run holds its
    /// pull this long before another takes over.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_ms: u64,
}

fn default_lease_ttl() -> u64 {
    60_000
}

impl Default for PollerSection {
    fn default() -> Self {
        Self {
            lease_ttl_ms: default_lease_ttl(),
        }
    }
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
    /// `production` (the default) refuses to start with development keys or secrets, plain
    /// HTTP on a non-loopback address, an insecure console cookie or a KMS over plain http;
    /// `development` allows them (the local stack, the tests).
    #[serde(default)]
    pub profile: Profile,
}

/// `[hub] profile`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Production,
    Development,
}

fn default_grace_ms() -> u64 {
    20_000
}

impl Default for HubSection {
    fn default() -> Self {
        Self {
            instance_id: None,
            shutdown_grace_ms: default_grace_ms(),
            profile: Profile::default(),
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
    /// Nesting levels a payload (pushed, pulled, or a partner's answer) may have at most; deeper
    /// ones are refused `INPUT_TOO_DEEP` before anything recurses over them (8–128).
    #[serde(default = "default_max_input_depth")]
    pub max_input_depth: usize,
    /// Elements plus attributes (XML), or values (JSON), a payload may have at most; more are
    /// refused `INPUT_TOO_MANY_NODES` (100–10000000).
    #[serde(default = "default_max_input_nodes")]
    pub max_input_nodes: usize,
}

fn default_mappings_dir() -> PathBuf {
    PathBuf::from("mappings")
}

fn default_max_input_depth() -> usize {
    hub_mapping::InputLimits::DEFAULT_MAX_DEPTH
}

fn default_max_input_nodes() -> usize {
    hub_mapping::InputLimits::DEFAULT_MAX_NODES
}

impl Default for MappingsSection {
    fn default() -> Self {
        Self {
            dir: default_mappings_dir(),
            max_input_depth: default_max_input_depth(),
            max_input_nodes: default_max_input_nodes(),
        }
    }
}

impl MappingsSection {
    pub fn input_limits(&self) -> hub_mapping::InputLimits {
        hub_mapping::InputLimits {
            max_depth: self.max_input_depth,
            max_nodes: self.max_input_nodes,
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
        for (name, p) in &self.partners {
            out.extend(p.validate(&join_key(prefix, &format!("partners.{name}"))));
        }
        if !self.partners.is_empty() && self.gateway.is_none() {
            out.push(Invalid::new(
                join_key(prefix, "partners"),
                "partners need the field-encryption key ring of [gateway] (key_ring) to open and seal personal data",
            ));
        }
        if !(100..=60_000).contains(&self.egress.commit_interval_ms) {
            out.push(Invalid::new(
                join_key(prefix, "egress.commit_interval_ms"),
                format!("{} is outside 100..=60000", self.egress.commit_interval_ms),
            ));
        }
        if !(1..=3_650).contains(&self.trace.retention_days) {
            out.push(Invalid::new(
                join_key(prefix, "trace.retention_days"),
                format!("{} is outside 1..=3650", self.trace.retention_days),
            ));
        }
        if !(1..=1_000_000).contains(&self.trace.queue_capacity) {
            out.push(Invalid::new(
                join_key(prefix, "trace.queue_capacity"),
                format!("{} is outside 1..=1000000", self.trace.queue_capacity),
            ));
        }
        for (key, message) in self.console.problems() {
            out.push(Invalid::new(
                join_key(prefix, &format!("console.{key}")),
                message,
            ));
        }
        if !(8..=hub_mapping::InputLimits::MAX_MAX_DEPTH).contains(&self.mappings.max_input_depth) {
            out.push(Invalid::new(
                join_key(prefix, "mappings.max_input_depth"),
                format!("{} is outside 8..=128", self.mappings.max_input_depth),
            ));
        }
        if !(100..=10_000_000).contains(&self.mappings.max_input_nodes) {
            out.push(Invalid::new(
                join_key(prefix, "mappings.max_input_nodes"),
                format!(
                    "{} is outside 100..=10000000",
                    self.mappings.max_input_nodes
                ),
            ));
        }
        if !(1..=1_440).contains(&self.audit.checkpoint_interval_minutes) {
            out.push(Invalid::new(
                join_key(prefix, "audit.checkpoint_interval_minutes"),
                format!(
                    "{} is outside 1..=1440",
                    self.audit.checkpoint_interval_minutes
                ),
            ));
        }
        if !(1..=36_500).contains(&self.audit.retention_days) {
            out.push(Invalid::new(
                join_key(prefix, "audit.retention_days"),
                format!("{} is outside 1..=36500", self.audit.retention_days),
            ));
        }
        if !(5_000..=3_600_000).contains(&self.poller.lease_ttl_ms) {
            out.push(Invalid::new(
                join_key(prefix, "poller.lease_ttl_ms"),
                format!("{} is outside 5000..=3600000", self.poller.lease_ttl_ms),
            ));
        }
        if let Some(f) = &self.files {
            out.extend(f.validate(&join_key(prefix, "files")));
        }
        if self.hub.profile == Profile::Production {
            out.extend(self.production_problems(prefix));
        }
        out
    }
}

/// Markers of the development secrets that ship with the repository (public, in git): a
/// secret containing one of them is refused in production.
const DEVELOPMENT_SECRET_MARKERS: &[&str] = &[
    "dev-only",
    "change-me",
    "do-not-use",
    "test-only",
    "test-secret",
];

fn is_development_secret(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    DEVELOPMENT_SECRET_MARKERS.iter().any(|m| lower.contains(m))
}

impl HubConfig {
    /// What the production profile refuses in the configuration itself (the key ring file is
    /// checked by [`crate::profile::key_ring_problem`]). Each message starts with its code.
    fn production_problems(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let key = |k: &str| join_key(prefix, k);
        let refuse = |code: &str, what: String| {
            format!("{code}: {what} (profile = \"production\"; set [hub] profile = \"development\" only on a development machine)")
        };
        if !self.admin.listen.ip().is_loopback() {
            out.push(Invalid::new(
                key("admin.listen"),
                refuse("PROFILE_PLAIN_HTTP", format!("the admin listener serves plain HTTP and may listen only on a loopback address (put a TLS proxy in front), not {}", self.admin.listen)),
            ));
        }
        if self
            .admin
            .token
            .as_deref()
            .is_some_and(is_development_secret)
        {
            out.push(Invalid::new(
                key("admin.token"),
                refuse(
                    "PROFILE_DEVELOPMENT_SECRET",
                    "a development token (public); use token_env or token_file".into(),
                ),
            ));
        }
        if self.console.enabled && !self.console.secure_cookie {
            out.push(Invalid::new(
                key("console.secure_cookie"),
                refuse("PROFILE_INSECURE_COOKIE", "the console's session cookie must be Secure (operators reach the console through HTTPS)".into()),
            ));
        }
        if let Some(g) = &self.gateway {
            if g.plain_http && !g.listen.ip().is_loopback() {
                out.push(Invalid::new(
                    key("gateway.plain_http"),
                    refuse("PROFILE_PLAIN_HTTP", format!("plain HTTP on {}, a non-loopback address; use [gateway.tls] or listen on loopback behind a TLS proxy", g.listen)),
                ));
            }
            if let Some(k) = &g.kms {
                if !k.url.to_ascii_lowercase().starts_with("https://") {
                    out.push(Invalid::new(
                        key("gateway.kms.url"),
                        refuse(
                            "PROFILE_KMS_PLAIN_HTTP",
                            "the KMS must be reached over https".into(),
                        ),
                    ));
                }
                if is_development_secret(&k.hmac_secret) {
                    out.push(Invalid::new(
                        key("gateway.kms.hmac_secret"),
                        refuse(
                            "PROFILE_DEVELOPMENT_SECRET",
                            "a development secret (public)".into(),
                        ),
                    ));
                }
            }
            for (i, app) in g.apps.iter().enumerate() {
                if app
                    .hmac_secret
                    .as_deref()
                    .is_some_and(is_development_secret)
                {
                    out.push(Invalid::new(
                        key(&format!("gateway.apps[{i}].hmac_secret")),
                        refuse("PROFILE_DEVELOPMENT_SECRET", format!("app `{}` has a development secret (public); give it its own, e.g. hmac_secret_env or hmac_secret_file", app.app_id)),
                    ));
                }
            }
        }
        for (name, p) in &self.partners {
            if p.hmac_secret.as_deref().is_some_and(is_development_secret) {
                out.push(Invalid::new(
                    key(&format!("partners.{name}.hmac_secret")),
                    refuse(
                        "PROFILE_DEVELOPMENT_SECRET",
                        "a development secret (public); use hmac_secret_env or hmac_secret_file"
                            .into(),
                    ),
                ));
            }
        }
        if let Some(f) = &self.files {
            // Download links are bearer tokens until they expire: never over plain HTTP.
            if f.download_base_url
                .as_deref()
                .is_some_and(|u| !u.to_ascii_lowercase().starts_with("https://"))
            {
                out.push(Invalid::new(
                    key("files.download_base_url"),
                    refuse(
                        "PROFILE_PLAIN_HTTP",
                        "download links must be https:// URLs (they carry their own credential)"
                            .into(),
                    ),
                ));
            }
            if f.download_secret
                .as_deref()
                .is_some_and(is_development_secret)
            {
                out.push(Invalid::new(
                    key("files.download_secret"),
                    refuse(
                        "PROFILE_DEVELOPMENT_SECRET",
                        "a development secret (public); use download_secret_file or HUB_FILES__DOWNLOAD_SECRET with a secret of your own".into(),
                    ),
                ));
            }
        }
        if let Some(r) = &self.registry {
            if r.password.as_deref().is_some_and(is_development_secret) {
                out.push(Invalid::new(
                    key("registry.password"),
                    refuse(
                        "PROFILE_DEVELOPMENT_SECRET",
                        "a development secret (public)".into(),
                    ),
                ));
            }
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
