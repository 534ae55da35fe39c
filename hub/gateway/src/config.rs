//! `[gateway]`: the partners' entry.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use hub_config::{join_key, Invalid, Validate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Where partners connect.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of TLS: only for local development or behind a
    /// TLS-terminating proxy, and never together with `[gateway.tls]`.
    #[serde(default)]
    pub plain_http: bool,
    /// TLS certificate and key (rustls), reloaded on change or SIGHUP.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsSection>,
    /// How far a request's timestamp may be from the hub's clock, either way (ms).
    #[serde(default = "default_window")]
    pub timestamp_window_ms: u64,
    /// Largest accepted body; larger answers 413.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// How long a body may take to arrive; slower answers 408.
    #[serde(default = "default_read_timeout")]
    pub body_timeout_ms: u64,
    /// Requests handled at once across all partners (signature check, decryption, mapping,
    /// produce), taken after the body is read; more answer 503 with Retry-After.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    /// Bodies read at once from one source address; more answer 429 (`detail.scope =
    /// "source_uploads"`). Behind a proxy every request has the proxy's address: raise it.
    #[serde(default = "default_uploads_per_source")]
    pub max_uploads_per_source: usize,
    /// Bodies read at once for one app id (named in the request's headers, before its signature
    /// can be checked); more answer 429 (`detail.scope = "app_uploads"`).
    #[serde(default = "default_uploads_per_app")]
    pub max_uploads_per_app: usize,
    /// Time a client has to send a request's headers; an idle kept-alive connection is closed
    /// after as long (ms).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// Authentication refusals are audited once per source address and kind at once, then
    /// counted, and written as one record per source and kind at the end of each interval (ms).
    #[serde(default = "default_auth_audit_interval")]
    pub auth_audit_interval_ms: u64,
    /// Time a client has to complete the TLS handshake (ms).
    #[serde(default = "default_handshake_timeout")]
    pub tls_handshake_timeout_ms: u64,
    /// Key ring file for the field encryption of personal data (`docs/security.md`).
    pub key_ring: PathBuf,
    /// The KMS that unwraps the key ring's data keys (entries written `kms:<master>:<hex>`).
    #[serde(default)]
    pub kms: Option<KmsSection>,
    /// File holding the hub's SM2 private key (64 hex digits), with which partners wrap the
    /// SM4 keys of encrypted bodies. Absent: only pre-shared SM4 keys can be used.
    #[serde(default)]
    pub sm2_private_key_file: Option<PathBuf>,
    /// The partner systems allowed in, with their credentials.
    #[serde(default)]
    pub apps: Vec<AppSection>,
    /// Limits per route, across all apps (protects what is behind a route, e.g. a topic).
    #[serde(default)]
    pub route_limits: Vec<RouteLimit>,
}

/// `[[gateway.route_limits]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimit {
    /// `<partner>/<mapping>`, as in the path `/v1/<partner>/<mapping>`.
    pub route: String,
    pub rate_per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

/// `[gateway.kms]`: the HTTP KMS (`hub_security::kms`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSection {
    pub url: String,
    /// The hub's app id at the KMS.
    pub app_id: String,
    /// HMAC-SM3 secret the hub signs its KMS calls with, and with which the KMS signs its
    /// answers.
    pub hmac_secret: String,
    /// Accept `http://` for a KMS on a loopback address (development and tests only); https
    /// is required otherwise (`KMS_PLAIN_HTTP`).
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// One partner system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    pub app_id: String,
    /// The partner (adapter folder / mapping partner) whose routes this app may call.
    pub partner: String,
    /// Shared secret for HMAC-SM3 (set it from the environment in production:
    /// `HUB_GATEWAY__APPS` cannot address one array element, so keep secrets out of the
    /// committed file by using a separate, protected config file).
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// SM2 public key, hex of `04‖x‖y` or `x‖y`…
    #[serde(default)]
    pub sm2_public_key: Option<String>,
    /// …or the partner's X.509 certificate (PEM or DER file) holding it (sm2-cert adapters).
    #[serde(default)]
    pub sm2_certificate: Option<PathBuf>,
    /// Pre-shared SM4 key for encrypted bodies (32 hex digits), when the partner does not wrap
    /// a key with the hub's SM2 key on each request.
    #[serde(default)]
    pub sm4_key: Option<String>,
    /// Mutual TLS: this app's requests must come with a client certificate (verified against
    /// `gateway.tls.client_ca`).
    #[serde(default)]
    pub require_client_cert: bool,
    /// Mutual TLS: the app's client certificate, pinned by the SM3 digest (hex) of its DER
    /// bytes; implies `require_client_cert`.
    #[serde(default)]
    pub client_cert_sm3: Option<String>,
    /// Sustained requests per second for this app.
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    /// Burst above the sustained rate.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9480))
}
fn default_window() -> u64 {
    300_000
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_read_timeout() -> u64 {
    10_000
}
fn default_concurrency() -> usize {
    1024
}
fn default_uploads_per_source() -> usize {
    64
}
fn default_uploads_per_app() -> usize {
    256
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_auth_audit_interval() -> u64 {
    60_000
}
fn default_handshake_timeout() -> u64 {
    10_000
}
fn default_rate() -> u32 {
    200
}
fn default_burst() -> u32 {
    400
}

impl Validate for GatewaySection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        match (self.plain_http, &self.tls) {
            (true, Some(_)) => out.push(Invalid::new(
                join_key(prefix, "plain_http"),
                "choose one: plain_http = true, or a [gateway.tls] section",
            )),
            (false, None) => out.push(Invalid::new(
                join_key(prefix, "tls"),
                "the gateway needs [gateway.tls] cert and key, or plain_http = true (local development or behind a TLS-terminating proxy only)",
            )),
            _ => {}
        }
        if !(1_000..=3_600_000).contains(&self.timestamp_window_ms) {
            out.push(Invalid::new(
                join_key(prefix, "timestamp_window_ms"),
                "must be within 1000..=3600000",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            out.push(Invalid::new(
                join_key(prefix, "max_body_bytes"),
                "must be within 1 KiB..=64 MiB",
            ));
        }
        if self.max_concurrent_requests == 0 {
            out.push(Invalid::new(
                join_key(prefix, "max_concurrent_requests"),
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("max_uploads_per_source", self.max_uploads_per_source),
            ("max_uploads_per_app", self.max_uploads_per_app),
        ] {
            if value == 0 {
                out.push(Invalid::new(join_key(prefix, key), "must be at least 1"));
            }
        }
        for (key, value) in [
            ("header_timeout_ms", self.header_timeout_ms),
            ("tls_handshake_timeout_ms", self.tls_handshake_timeout_ms),
        ] {
            if !(100..=300_000).contains(&value) {
                out.push(Invalid::new(
                    join_key(prefix, key),
                    "must be within 100..=300000",
                ));
            }
        }
        if !(1_000..=3_600_000).contains(&self.auth_audit_interval_ms) {
            out.push(Invalid::new(
                join_key(prefix, "auth_audit_interval_ms"),
                "must be within 1000..=3600000",
            ));
        }
        if let Some(kms) = &self.kms {
            if let Err(e) = hub_security::kms::check_kms_url(&kms.url, kms.allow_plain_http) {
                out.push(Invalid::new(join_key(prefix, "kms.url"), e.to_string()));
            }
        }
        for (i, r) in self.route_limits.iter().enumerate() {
            if r.route.split('/').count() != 2 || r.route.starts_with('/') {
                out.push(Invalid::new(
                    join_key(prefix, &format!("route_limits[{i}].route")),
                    "write <partner>/<mapping>",
                ));
            }
            if r.rate_per_second == 0 || r.burst == 0 {
                out.push(Invalid::new(
                    join_key(prefix, &format!("route_limits[{i}].rate_per_second")),
                    "rate and burst must be at least 1",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            let key = |k: &str| join_key(prefix, &format!("apps[{i}].{k}"));
            if !seen.insert(app.app_id.clone()) {
                out.push(Invalid::new(
                    key("app_id"),
                    format!("`{}` is declared twice", app.app_id),
                ));
            }
            if app.hmac_secret.is_none()
                && app.sm2_public_key.is_none()
                && app.sm2_certificate.is_none()
            {
                out.push(Invalid::new(
                    key("app_id"),
                    "needs hmac_secret, sm2_public_key or sm2_certificate",
                ));
            }
            if app.sm2_public_key.is_some() && app.sm2_certificate.is_some() {
                out.push(Invalid::new(
                    key("sm2_certificate"),
                    "give sm2_public_key or sm2_certificate, not both",
                ));
            }
            if app.hmac_secret.as_ref().is_some_and(|s| s.len() < 16) {
                out.push(Invalid::new(
                    key("hmac_secret"),
                    "must be at least 16 bytes",
                ));
            }
            if let Some(k) = &app.sm2_public_key {
                let ok = hex::decode(k.trim())
                    .is_ok_and(|b| b.len() == 64 || (b.len() == 65 && b[0] == 4));
                if !ok {
                    out.push(Invalid::new(
                        key("sm2_public_key"),
                        "must be hex of 04‖x‖y (130 digits) or x‖y (128)",
                    ));
                }
            }
            if let Some(k) = &app.sm4_key {
                if hex::decode(k.trim()).map(|b| b.len()).ok() != Some(16) {
                    out.push(Invalid::new(
                        key("sm4_key"),
                        "must be 32 hex digits (16 bytes)",
                    ));
                }
            }
            if (app.require_client_cert || app.client_cert_sm3.is_some())
                && self.tls.as_ref().is_none_or(|t| t.client_ca.is_none())
            {
                out.push(Invalid::new(
                    key("require_client_cert"),
                    "client certificates need gateway.tls.client_ca",
                ));
            }
            if let Some(pin) = &app.client_cert_sm3 {
                if hex::decode(pin.trim()).map(|b| b.len()).ok() != Some(32) {
                    out.push(Invalid::new(
                        key("client_cert_sm3"),
                        "must be 64 hex digits (SM3 of the certificate's DER bytes)",
                    ));
                }
            }
            if app.rate_per_second == 0 || app.burst == 0 {
                out.push(Invalid::new(
                    key("rate_per_second"),
                    "rate and burst must be at least 1",
                ));
            }
        }
        out
    }
}
