//! Partner authentication schemes, as building blocks an adapter selects in its `adapter.toml`:
//!
//! ```toml
//! [auth]
//! scheme = "app-key-sign"     # hub-v1 (default) | app-key-sign | ak-sk | sm2-cert |
//!                             # oauth2-client-credentials
//! digest = "hmac-sm3"         # …and the scheme's own parameters (docs/auth-schemes.md)
//! ```
//!
//! Each scheme is one module behind two traits:
//!
//! * [`OutboundSigner`]: signs a call of the hub to the partner — any request, by method, path,
//!   query, headers and body ([`OutboundRequest`]), changing headers, query or body as the
//!   scheme requires;
//! * [`InboundVerifier`]: checks a push of the partner to the hub in two steps, [`claim`]
//!   (who says it calls, when, with which nonce: no secret needed) and [`verify`] (with that
//!   caller's [`Credentials`]). The gateway does what all schemes share between the two: the
//!   time window (without overflow), looking the caller up (an unknown caller answered like a
//!   bad signature), and claiming the nonce in the state store shared by all replicas.
//!
//! Credentials never come from the adapter folder: the hub's configuration holds them
//! (`[partners.<name>]` for outbound, `[[gateway.apps]]` for inbound). [`AuthSpec`] is what the
//! adapter declares; [`AuthSpec::parse`] checks it key by key so `hub check` can name the key.
//!
//! [`claim`]: InboundVerifier::claim
//! [`verify`]: InboundVerifier::verify

pub mod ak_sk;
pub mod app_key_sign;
pub mod canonical_json;
pub mod digest;
pub mod hub_v1;
pub mod oauth2;
pub mod sm2_cert;

use std::fmt;
use std::sync::Arc;

pub use ak_sk::AkSkSpec;
pub use app_key_sign::AppKeySignSpec;
pub use oauth2::OAuth2Spec;
pub use sm2_cert::Sm2CertSpec;

/// A request of the hub to a partner, as the scheme may change it before it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// `POST`, `GET`, … (upper case).
    pub method: String,
    /// `host[:port]` as the `Host` header will carry it (schemes that sign the host).
    pub host: String,
    /// The path as sent, already percent-encoded.
    pub path: String,
    /// The raw query, already percent-encoded, without `?`.
    pub query: String,
    /// Headers to send, in order; names as given.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for OutboundRequest {
    /// Never the body (personal data) nor header values (tokens, signatures).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl OutboundRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets header `name`, replacing any value it had.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
    }
}

/// A push of a partner, as the gateway received it.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Headers, names lower case, in arrival order.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl InboundRequest<'_> {
    /// Every value of header `name` (lower case), joined by `,`.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// What a request says about its caller, read before any secret is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The app id / app key / access key / client id: who the caller says it is.
    pub app_id: String,
    /// When it says it signed, in Unix milliseconds; `None` for a scheme without one.
    pub timestamp_ms: Option<i64>,
    /// Its single-use value, claimed by the gateway once the request verifies.
    pub nonce: Option<String>,
}

/// The credentials of one caller, from the hub's configuration (never from the adapter).
#[derive(Clone, Default)]
pub struct Credentials {
    /// The shared secret (HMAC key, app secret, secret access key).
    pub secret: Option<Vec<u8>>,
    /// The caller's SM2 public key (`04‖x‖y` or `x‖y`), given bare or read from its certificate.
    pub sm2_public_key: Option<Vec<u8>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field(
                "sm2_public_key",
                &self.sm2_public_key.as_ref().map(hex::encode),
            )
            .finish()
    }
}

/// Why a push was refused. The gateway answers each with its stable code (`docs/errors.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header or parameter the scheme needs is missing or unreadable.
    #[error("AUTH_HEADERS_MISSING")]
    Missing,
    /// The signature method or algorithm named in the request is not the one agreed.
    #[error("AUTH_METHOD_UNSUPPORTED")]
    MethodUnsupported,
    /// The timestamp is unreadable.
    #[error("AUTH_TIMESTAMP_OUT_OF_WINDOW")]
    Timestamp,
    /// The nonce is malformed.
    #[error("AUTH_NONCE_INVALID")]
    Nonce,
    /// The signature does not verify (or the caller has no credential for it).
    #[error("AUTH_SIGNATURE_INVALID")]
    Signature,
    /// A header that steers the request is outside the signature (hub-v1).
    #[error("AUTH_HEADER_UNSIGNED")]
    HeaderUnsigned,
    /// The list of signed headers is malformed or names an absent header.
    #[error("AUTH_SIGNED_HEADERS_INVALID")]
    SignedHeadersInvalid,
    /// A bearer token the hub issued has expired.
    #[error("AUTH_TOKEN_EXPIRED")]
    TokenExpired,
}

/// Why the hub could not sign a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The credential in the partner section does not fit the scheme.
    #[error("AUTH_CREDENTIAL_INVALID: {0}")]
    Credential(String),
    /// The request cannot be signed as the scheme requires (e.g. a JSON body field placement
    /// with a body that is not a JSON object).
    #[error("AUTH_REQUEST_UNSIGNABLE: {0}")]
    Unsignable(String),
    /// No access token could be had from the partner's token endpoint (never the token or the
    /// secret in the message).
    #[error("AUTH_TOKEN_UNAVAILABLE: {0}")]
    Token(String),
}

impl SignError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SignError::Credential(_) => "AUTH_CREDENTIAL_INVALID",
            SignError::Unsignable(_) => "AUTH_REQUEST_UNSIGNABLE",
            SignError::Token(_) => "AUTH_TOKEN_UNAVAILABLE",
        }
    }
}

/// Signs the hub's calls to one partner.
#[async_trait::async_trait]
pub trait OutboundSigner: Send + Sync {
    /// The scheme's name, as `adapter.toml` writes it.
    fn scheme(&self) -> &'static str;
    /// Signs `request` in place at `now_ms` (headers, query or body as the scheme needs).
    async fn sign(&self, request: &mut OutboundRequest, now_ms: i64) -> Result<(), SignError>;
    /// The partner answered 401 to a signed call: a scheme holding a token drops it and says
    /// `true` (the caller signs and sends once more); others say `false`.
    async fn unauthorized(&self) -> bool {
        false
    }
}

/// Verifies one partner's pushes.
pub trait InboundVerifier: Send + Sync {
    fn scheme(&self) -> &'static str;
    /// Who the request says it comes from, when, with which nonce.
    fn claim(&self, request: &InboundRequest<'_>) -> Result<Claim, Refusal>;
    /// Checks the request against the caller's credentials.
    fn verify(
        &self,
        request: &InboundRequest<'_>,
        claim: &Claim,
        credentials: &Credentials,
    ) -> Result<(), Refusal>;
}

/// A problem with `[auth]`, at a key (`auth.digest`) of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// The key, from the manifest's root: `auth`, `auth.digest`, …
    pub key: String,
    pub message: String,
    /// A warning (`hub check` prints it; loading goes on), not an error.
    pub warning: bool,
}

impl SpecProblem {
    pub fn error(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            warning: false,
        }
    }
    pub fn warning(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            warning: true,
        }
    }
}

/// The names of the schemes, as `[auth] scheme` takes them.
pub const SCHEMES: &[&str] = &[
    "hub-v1",
    "app-key-sign",
    "ak-sk",
    "sm2-cert",
    "oauth2-client-credentials",
];

/// `[auth]` of an adapter: the scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AuthSpec {
    #[default]
    HubV1,
    AppKeySign(AppKeySignSpec),
    AkSk(AkSkSpec),
    Sm2Cert(Sm2CertSpec),
    OAuth2(OAuth2Spec),
}

/// Deserialises a scheme's parameters, naming the key of the first problem.
pub(crate) fn params<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
) -> Result<T, SpecProblem> {
    let mut rest = table.clone();
    rest.remove("scheme");
    serde_path_to_error::deserialize(toml::Value::Table(rest)).map_err(|e| {
        let message = e.inner().to_string();
        // An unknown or missing field is named in the message; a bad value by the path.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let path = e.path().to_string();
        let key = match named {
            Some(field) => format!("auth.{field}"),
            None if !path.is_empty() && path != "." => format!("auth.{path}"),
            None => "auth".into(),
        };
        SpecProblem::error(key, message)
    })
}

impl AuthSpec {
    /// The JSON Schema of a scheme's parameters, from the same struct [`AuthSpec::parse`]
    /// reads them into (`None` for `hub-v1`, which takes none, and for an unknown scheme).
    /// The key reference in docs/auth-schemes.md is generated from it.
    pub fn parameters_schema(scheme: &str) -> Option<schemars::Schema> {
        match scheme {
            "app-key-sign" => Some(schemars::schema_for!(AppKeySignSpec)),
            "ak-sk" => Some(schemars::schema_for!(AkSkSpec)),
            "sm2-cert" => Some(schemars::schema_for!(Sm2CertSpec)),
            "oauth2-client-credentials" => Some(schemars::schema_for!(OAuth2Spec)),
            _ => None,
        }
    }

    /// Reads `[auth]` (absent: hub-v1). Returns the spec with its warnings, or every problem.
    pub fn parse(
        table: Option<&toml::Table>,
    ) -> Result<(Self, Vec<SpecProblem>), Vec<SpecProblem>> {
        let Some(table) = table else {
            return Ok((AuthSpec::HubV1, Vec::new()));
        };
        let scheme = match table.get("scheme") {
            None => "hub-v1",
            Some(toml::Value::String(s)) => s.as_str(),
            Some(_) => return Err(vec![SpecProblem::error("auth.scheme", "must be a string")]),
        };
        let spec = match scheme {
            "hub-v1" => {
                if let Some(k) = table.keys().find(|k| *k != "scheme") {
                    return Err(vec![SpecProblem::error(
                        format!("auth.{k}"),
                        "hub-v1 takes no parameters (docs/security.md)",
                    )]);
                }
                AuthSpec::HubV1
            }
            "app-key-sign" => AuthSpec::AppKeySign(params(table).map_err(|p| vec![p])?),
            "ak-sk" => AuthSpec::AkSk(params(table).map_err(|p| vec![p])?),
            "sm2-cert" => AuthSpec::Sm2Cert(params(table).map_err(|p| vec![p])?),
            "oauth2-client-credentials" => AuthSpec::OAuth2(params(table).map_err(|p| vec![p])?),
            other => {
                return Err(vec![SpecProblem::error(
                    "auth.scheme",
                    format!("unknown scheme `{other}`; one of {}", SCHEMES.join(", ")),
                )])
            }
        };
        let problems = spec.check();
        if problems.iter().any(|p| !p.warning) {
            Err(problems)
        } else {
            Ok((spec, problems))
        }
    }

    /// The scheme's name.
    pub fn scheme(&self) -> &'static str {
        match self {
            AuthSpec::HubV1 => "hub-v1",
            AuthSpec::AppKeySign(_) => "app-key-sign",
            AuthSpec::AkSk(_) => "ak-sk",
            AuthSpec::Sm2Cert(_) => "sm2-cert",
            AuthSpec::OAuth2(_) => "oauth2-client-credentials",
        }
    }

    /// The scheme and its parameters as JSON, `scheme` first among the keys it adds: never
    /// credentials (`[auth]` holds none). The gateway's OpenAPI document shows it as
    /// `x-hub-auth`, so an integrator sees exactly what the hub verifies.
    pub fn describe(&self) -> serde_json::Value {
        let params = match self {
            AuthSpec::HubV1 => Ok(serde_json::Value::Object(Default::default())),
            AuthSpec::AppKeySign(s) => serde_json::to_value(s),
            AuthSpec::AkSk(s) => serde_json::to_value(s),
            AuthSpec::Sm2Cert(s) => serde_json::to_value(s),
            AuthSpec::OAuth2(s) => serde_json::to_value(s),
        };
        let mut map = match params {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        map.insert("scheme".into(), serde_json::Value::from(self.scheme()));
        serde_json::Value::Object(map)
    }

    /// Problems of the parameters beyond their types (errors and warnings).
    pub fn check(&self) -> Vec<SpecProblem> {
        match self {
            AuthSpec::HubV1 => Vec::new(),
            AuthSpec::AppKeySign(s) => s.check(),
            AuthSpec::AkSk(s) => s.check(),
            AuthSpec::Sm2Cert(s) => s.check(),
            AuthSpec::OAuth2(s) => s.check(),
        }
    }

    /// The verifier of the partner's pushes.
    pub fn verifier(&self) -> Arc<dyn InboundVerifier> {
        match self {
            AuthSpec::HubV1 => Arc::new(hub_v1::HubV1Verifier),
            AuthSpec::AppKeySign(s) => Arc::new(s.clone()),
            AuthSpec::AkSk(s) => Arc::new(ak_sk::AkSkVerifier { spec: s.clone() }),
            AuthSpec::Sm2Cert(s) => Arc::new(s.clone()),
            AuthSpec::OAuth2(_) => Arc::new(oauth2::OAuth2Verifier),
        }
    }

    /// The signer of the hub's calls, with the hub's credentials at the partner.
    pub fn signer(
        &self,
        credentials: OutboundCredentials,
    ) -> Result<Arc<dyn OutboundSigner>, SignError> {
        match self {
            AuthSpec::HubV1 => Ok(Arc::new(hub_v1::HubV1Signer::new(credentials)?)),
            AuthSpec::AppKeySign(s) => Ok(Arc::new(app_key_sign::AppKeySigner::new(
                s.clone(),
                credentials,
            )?)),
            AuthSpec::AkSk(s) => Ok(Arc::new(ak_sk::AkSkSigner::new(s.clone(), credentials)?)),
            AuthSpec::Sm2Cert(s) => Ok(Arc::new(sm2_cert::Sm2CertSigner::new(
                s.clone(),
                credentials,
            )?)),
            AuthSpec::OAuth2(s) => Ok(Arc::new(oauth2::OAuth2Signer::new(s.clone(), credentials)?)),
        }
    }
}

/// The hub's own credentials at a partner (`[partners.<name>]`).
#[derive(Clone, Default)]
pub struct OutboundCredentials {
    /// The hub's app id / app key / access key id at the partner.
    pub app_id: String,
    /// The shared secret (HMAC key, app secret, secret access key).
    pub secret: Option<Vec<u8>>,
    /// The hub's SM2 private key.
    pub sm2_private_key: Option<hub_security::sm::Sm2PrivateKey>,
    /// The hub's certificate (DER), sent by schemes that carry it.
    pub certificate_der: Option<Vec<u8>>,
    /// The partner's base URL (a token endpoint given as a path is on it).
    pub base_url: String,
    /// The partner's HTTP client (its timeouts and TLS identity), for schemes that call the
    /// partner themselves (a token endpoint).
    pub http: Option<reqwest::Client>,
}

impl fmt::Debug for OutboundCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundCredentials")
            .field("app_id", &self.app_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field(
                "sm2_private_key",
                &self.sm2_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "certificate_der",
                &self.certificate_der.as_ref().map(Vec::len),
            )
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub(crate) fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SM2 public key (`04‖x‖y`) of an X.509 certificate, PEM or DER.
pub fn sm2_public_key_of_certificate(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        pem.contents
    } else {
        bytes.to_vec()
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let key = cert.public_key().subject_public_key.data.to_vec();
    if key.len() == 65 && key[0] == 4 {
        Ok(key)
    } else {
        Err("the certificate's public key is not an uncompressed SM2 point".into())
    }
}

/// The DER bytes of a certificate given as PEM or DER.
pub fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        Ok(pem.contents)
    } else {
        Ok(bytes.to_vec())
    }
}
