//! `[partners.<partner>]`: one deployment's connection to a partner and its delivery policy.

use std::path::PathBuf;

use serde::Deserialize;

use hub_config::{join_key, Invalid, Validate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerSection {
    /// The partner's API root, e.g. `https://12345.example.gov.cn/gateway`.
    pub base_url: String,
    /// The hub's app id at the partner (`X-Hub-App-Id` in hub-v1; the app key, access key id
    /// or client id of the adapter's other schemes, `docs/auth-schemes.md`).
    pub app_id: String,
    /// The shared secret the hub signs with: HMAC-SM3 key (hub-v1), app secret
    /// (app-key-sign), secret access key (ak-sk)…
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// …or a file with the hub's SM2 private key (64 hex digits): SM2-SM3 signatures (hub-v1)
    /// or sm2-cert.
    #[serde(default)]
    pub sm2_private_key_file: Option<PathBuf>,
    /// The hub's X.509 certificate (PEM or DER), for an sm2-cert adapter that sends it.
    #[serde(default)]
    pub sm2_certificate_file: Option<PathBuf>,
    /// Mutual TLS to the partner: the hub's client certificate chain (PEM)…
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// …and its private key (PEM, PKCS#8 or SEC1).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Pin the partner's server CA (PEM): only certificates from it are trusted (the
    /// system's roots are not), for partners on a private PKI.
    #[serde(default)]
    pub server_ca_file: Option<PathBuf>,
    /// Pre-shared SM4 key (32 hex digits): bodies are sent SM4-GCM encrypted with it.
    #[serde(default)]
    pub sm4_key: Option<String>,
    /// Deliveries of the adapter to run; absent: all of them.
    #[serde(default)]
    pub deliveries: Option<Vec<String>>,
    /// Pull jobs of the adapter to run (none unless listed: most deployments are pushed to).
    #[serde(default)]
    pub pulls: Vec<String>,
    /// Requests in flight to this partner at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Requests per second to this partner, and the burst above it.
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Time for one request, connection included.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Attempts per message before it is dead-lettered (the first included).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Total time a message may spend retrying before it is dead-lettered.
    #[serde(default = "default_budget")]
    pub retry_budget_ms: u64,
    /// Exponential backoff with full jitter: the n-th wait is uniform in
    /// `[0, min(backoff_max_ms, backoff_initial_ms × 2^(n-1))]`.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Consecutive failed requests that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe request is let through.
    #[serde(default = "default_breaker_open")]
    pub breaker_open_ms: u64,
    /// Messages a delivery route holds unfinished (behind a key that is retrying, or in
    /// flight) before it stops reading more: bounds how far one stuck key holds the others.
    #[serde(default = "default_window")]
    pub window: usize,
    /// The partner's SFTP server, for the adapter's `[[batch]]` pickups (`docs/files.md`).
    #[serde(default)]
    pub sftp: Option<hub_files::sftp::SftpSection>,
    /// Batch pickups of the adapter to run (none unless listed, like pulls).
    #[serde(default)]
    pub batches: Vec<String>,
}

fn default_concurrency() -> usize {
    16
}
fn default_rate() -> u32 {
    100
}
fn default_burst() -> u32 {
    50
}
fn default_timeout() -> u64 {
    10_000
}
fn default_attempts() -> u32 {
    12
}
fn default_budget() -> u64 {
    3_600_000
}
fn default_backoff_initial() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    300_000
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open() -> u64 {
    30_000
}
fn default_window() -> usize {
    1_000
}

impl Validate for PartnerSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |key: &str, why: String| out.push(Invalid::new(join_key(prefix, key), why));
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            bad("base_url", "must be an http:// or https:// URL".into());
        }
        if self.app_id.is_empty() || self.app_id.len() > 64 {
            bad("app_id", "must be 1 to 64 characters".into());
        }
        // Which credential the partner's scheme needs is checked with its adapter (`hub check`).
        if self.hmac_secret.is_none() && self.sm2_private_key_file.is_none() {
            bad(
                "hmac_secret",
                "set hmac_secret or sm2_private_key_file (the credential of the adapter's [auth] scheme)".into(),
            );
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            bad(
                "client_cert_file",
                "mutual TLS needs both client_cert_file and client_key_file".into(),
            );
        }
        if let Some(s) = &self.hmac_secret {
            if s.len() < 16 {
                bad("hmac_secret", "must be at least 16 characters".into());
            }
        }
        if let Some(k) = &self.sm4_key {
            if hex::decode(k.trim()).map(|b| b.len()) != Ok(16) {
                bad("sm4_key", "must be 32 hex digits (16 bytes)".into());
            }
        }
        for (key, v, lo, hi) in [
            ("concurrency", self.concurrency as u64, 1, 1024),
            (
                "rate_per_second",
                u64::from(self.rate_per_second),
                1,
                100_000,
            ),
            ("burst", u64::from(self.burst), 1, 100_000),
            ("timeout_ms", self.timeout_ms, 100, 600_000),
            ("max_attempts", u64::from(self.max_attempts), 1, 1_000),
            (
                "retry_budget_ms",
                self.retry_budget_ms,
                1_000,
                7 * 86_400_000,
            ),
            ("backoff_initial_ms", self.backoff_initial_ms, 1, 3_600_000),
            ("backoff_max_ms", self.backoff_max_ms, 1, 86_400_000),
            (
                "breaker_failures",
                u64::from(self.breaker_failures),
                1,
                10_000,
            ),
            ("breaker_open_ms", self.breaker_open_ms, 10, 3_600_000),
            ("window", self.window as u64, 1, 100_000),
        ] {
            if !(lo..=hi).contains(&v) {
                bad(key, format!("{v} is outside {lo}..={hi}"));
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            bad(
                "backoff_max_ms",
                "must not be below backoff_initial_ms".into(),
            );
        }
        if !self.batches.is_empty() && self.sftp.is_none() {
            bad(
                "batches",
                "batch pickups need the partner's SFTP server ([partners.<name>.sftp])".into(),
            );
        }
        if let Some(sftp) = &self.sftp {
            out.extend(sftp.validate(&join_key(prefix, "sftp")));
        }
        out
    }
}
