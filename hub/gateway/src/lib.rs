//! The gateway: the unified entry every partner push goes through (统一入口、统一鉴权、统一加密、
//! 统一异常处理、统一日志记录).
//!
//! `POST /v1/{partner}/{mapping}` runs, in order:
//!
//! 1. before the body is read ([`admission`]): a declared length over the limit (413), the
//!    header part of authentication (app id, signature method, time window, nonce format), an
//!    upload slot of the source address and of the app (429);
//! 2. body read with a size limit (413) and a time limit (408); then, under the global
//!    concurrency limit (503), authentication ([`auth`]): the signature over the canonical
//!    string (`docs/security.md`), then the nonce is claimed in the state store shared by all
//!    replicas (409 on replay) and the app's rate limit (429);
//! 3. an optional `X-Partner-Message-Id` makes the push idempotent: a retry gets the first
//!    answer and produces no second event;
//! 4. the partner's inbound mapping (VRL) and contract validation;
//! 5. every personal field of the contract sealed with SM4-GCM;
//! 6. Avro encoding in the Confluent wire format, the envelope as headers, and the produce,
//!    answered only after the broker's `acks=all` acknowledgement.
//!
//! Every refusal is an [`errors::ApiError`] with a stable code; every request is one access-log
//! line (no personal data); authentication failures and replays are written to the audit chain.
//! A partner's own answer envelope, declared as an `answer` mapping, wraps every answer of its
//! routes. The OpenAPI document is served at `GET /openapi.json`.

mod admission;
pub mod auth;
pub mod config;
pub mod encryption;
pub mod errors;
pub mod files;
mod ingest;
pub mod metrics;
mod oauth;
pub mod openapi;
pub mod refusals;
pub mod server;
pub mod tls;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::routing::post;
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hub_bus::Producer;
use hub_contracts::Catalog;
use hub_mapping::MappingSet;
use hub_security::field::FieldCipher;
use hub_security::signing::VerifyingCredential;
use hub_state::StateStore;
use tokio::sync::Semaphore;

pub use config::{AppSection, GatewaySection, KmsSection, RouteLimit};
pub use errors::{ApiError, ErrorCode};

/// A partner app as the gateway knows it.
pub struct App {
    pub app_id: String,
    pub partner: String,
    pub credentials: Vec<VerifyingCredential>,
    /// Pre-shared SM4 key for encrypted bodies.
    pub sm4_key: Option<[u8; 16]>,
    /// Mutual TLS: a client certificate is required; `Some(pin)` requires that one.
    pub client_cert: Option<Option<String>>,
    /// The same credentials for the adapters' other schemes (`hub_protocols`).
    pub scheme_credentials: hub_protocols::Credentials,
    limiter: DefaultKeyedRateLimiter<()>,
}

/// Everything a request needs, shared by all of them.
pub struct Gateway {
    pub config: GatewaySection,
    pub apps: HashMap<String, App>,
    pub catalog: Arc<Catalog>,
    pub mappings: Arc<MappingSet>,
    pub cipher: FieldCipher,
    /// The hub's SM2 key that unwraps partners' SM4 keys.
    pub sm2_key: Option<hub_security::sm::Sm2PrivateKey>,
    pub producer: Producer,
    pub state: StateStore,
    /// `hub:<instance>`, the actor of the audit records the gateway writes.
    pub actor: String,
    concurrency: Semaphore,
    uploads: Arc<admission::Uploads>,
    /// Authentication refusals of the current interval, for the audit chain.
    pub refusals: refusals::RefusalAudit,
    route_limits: HashMap<String, DefaultKeyedRateLimiter<()>>,
    schema_ids: HashMap<String, u32>,
    /// Verifiers of the partners whose adapter declares a scheme other than hub-v1.
    pub(crate) schemes: HashMap<String, std::sync::Arc<dyn hub_protocols::InboundVerifier>>,
    /// Every partner's declared scheme (the token endpoint reads the oauth2 ones).
    pub(crate) auth_specs: HashMap<String, hub_protocols::AuthSpec>,
    /// Topics of the reply contracts (`docs/request-reply.md`), found once at start: a reply is
    /// produced by the egress for a request the hub made, never pushed by a partner.
    reply_topics: std::collections::HashSet<String>,
    /// The file store and the routes whose pushes carry files (`files`).
    pub(crate) files: Option<files::FileIntake>,
    /// The download links the hub serves (`GET /v1/files/{id}`), when configured.
    pub(crate) downloads: Option<files::Downloads>,
}

/// Key files, resolved against the configuration file's folder.
pub struct KeyFiles<'a> {
    /// The field-encryption key ring, already loaded (and unwrapped by the KMS if any).
    pub key_ring: hub_security::field::KeyRing,
    pub sm2_private_key: Option<&'a std::path::Path>,
}

/// The hub's parts the gateway works with.
pub struct Dependencies {
    pub catalog: Arc<Catalog>,
    pub mappings: Arc<MappingSet>,
    pub producer: Producer,
    pub state: StateStore,
    /// `hub:<instance>`, the actor of the audit records the gateway writes.
    pub actor: String,
    /// Schema ids assigned by an external registry, by topic; absent: the hub's own ids.
    pub schema_ids: HashMap<String, u32>,
    /// The authentication scheme of each partner whose adapter declares one other than
    /// hub-v1 (`[auth]`); absent partners use hub-v1.
    pub auth: HashMap<String, hub_protocols::AuthSpec>,
    /// Folder that relative files of `[[gateway.apps]]` (certificates) are read from.
    pub config_dir: std::path::PathBuf,
}

/// Why the gateway could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("gateway.key_ring: {0}")]
    KeyRing(String),
    #[error("gateway.apps: {0}")]
    App(String),
}

impl Gateway {
    /// Builds the gateway: credentials parsed, keys read, limiters made.
    pub fn new(
        config: GatewaySection,
        keys: KeyFiles<'_>,
        deps: Dependencies,
    ) -> Result<Self, BuildError> {
        let Dependencies {
            catalog,
            mappings,
            producer,
            state,
            actor,
            schema_ids,
            auth,
            config_dir,
        } = deps;
        let (ring, sm2_key_path) = (keys.key_ring, keys.sm2_private_key);
        let sm2_key = match sm2_key_path {
            None => None,
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    BuildError::KeyRing(format!("sm2_private_key_file {}: {e}", p.display()))
                })?;
                Some(
                    hub_security::sm::Sm2PrivateKey::from_hex(text.trim())
                        .map_err(|e| BuildError::KeyRing(format!("sm2_private_key_file: {e}")))?,
                )
            }
        };
        let mut apps = HashMap::new();
        for a in &config.apps {
            let mut credentials = Vec::new();
            if let Some(secret) = &a.hmac_secret {
                credentials.push(VerifyingCredential::HmacSm3 {
                    secret: secret.as_bytes().to_vec(),
                });
            }
            let mut sm2_public_key = None;
            if let Some(key) = &a.sm2_public_key {
                let public_key = hex::decode(key.trim())
                    .map_err(|e| BuildError::App(format!("{}: sm2_public_key: {e}", a.app_id)))?;
                sm2_public_key = Some(public_key);
            }
            if let Some(file) = &a.sm2_certificate {
                let path = config_dir.join(file);
                let bytes = std::fs::read(&path).map_err(|e| {
                    BuildError::App(format!(
                        "{}: sm2_certificate {}: {e}",
                        a.app_id,
                        path.display()
                    ))
                })?;
                let public_key = hub_protocols::sm2_public_key_of_certificate(&bytes)
                    .map_err(|e| BuildError::App(format!("{}: sm2_certificate: {e}", a.app_id)))?;
                sm2_public_key = Some(public_key);
            }
            if let Some(public_key) = &sm2_public_key {
                credentials.push(VerifyingCredential::Sm2 {
                    public_key: public_key.clone(),
                });
            }
            let scheme_credentials = hub_protocols::Credentials {
                secret: a.hmac_secret.as_ref().map(|s| s.as_bytes().to_vec()),
                sm2_public_key,
            };
            let per_second = NonZeroU32::new(a.rate_per_second.max(1)).expect("at least 1");
            let burst = NonZeroU32::new(a.burst.max(1)).expect("at least 1");
            let sm4_key = match &a.sm4_key {
                None => None,
                Some(k) => Some(
                    hex::decode(k.trim())
                        .ok()
                        .and_then(|b| <[u8; 16]>::try_from(b).ok())
                        .ok_or_else(|| {
                            BuildError::App(format!("{}: sm4_key is not 16 bytes of hex", a.app_id))
                        })?,
                ),
            };
            apps.insert(
                a.app_id.clone(),
                App {
                    app_id: a.app_id.clone(),
                    partner: a.partner.clone(),
                    credentials,
                    sm4_key,
                    client_cert: match (&a.client_cert_sm3, a.require_client_cert) {
                        (Some(pin), _) => Some(Some(pin.trim().to_ascii_lowercase())),
                        (None, true) => Some(None),
                        (None, false) => None,
                    },
                    scheme_credentials,
                    limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                },
            );
        }
        let concurrency = Semaphore::new(config.max_concurrent_requests);
        let route_limits = config
            .route_limits
            .iter()
            .map(|r| {
                let per_second = NonZeroU32::new(r.rate_per_second.max(1)).expect("at least 1");
                let burst = NonZeroU32::new(r.burst.max(1)).expect("at least 1");
                (
                    r.route.clone(),
                    RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                )
            })
            .collect();
        let schemes = auth
            .iter()
            .filter(|(_, spec)| **spec != hub_protocols::AuthSpec::HubV1)
            .map(|(partner, spec)| (partner.clone(), spec.verifier()))
            .collect();
        let reply_topics = catalog
            .contracts
            .iter()
            .filter(|c| hub_contracts::reply::is_reply_contract(c))
            .map(|c| c.declaration.topic.clone())
            .collect();
        Ok(Self {
            schemes,
            auth_specs: auth,
            reply_topics,
            config,
            apps,
            catalog,
            mappings,
            cipher: FieldCipher::new(ring),
            sm2_key,
            producer,
            state,
            actor,
            concurrency,
            uploads: Arc::default(),
            refusals: refusals::RefusalAudit::default(),
            route_limits,
            schema_ids,
            files: None,
            downloads: None,
        })
    }

    /// The mapping a partner may push to at `/v1/{partner}/{mapping}`: an inbound one that is
    /// not a reply mapping.
    pub fn pushable(&self, partner: &str, mapping: &str) -> Option<&hub_mapping::Mapping> {
        self.mappings
            .get(partner, mapping)
            .filter(|m| m.direction == hub_mapping::Direction::Inbound)
            .filter(|m| !self.reply_topics.contains(&m.contract))
    }

    /// Stores the files of the routes that declare them (`[[file]]`) in `store` before their
    /// mapping (`docs/files.md`).
    pub fn with_files(
        mut self,
        store: hub_files::FileStore,
        routes: HashMap<String, Vec<hub_files::wiring::InboundFile>>,
    ) -> Self {
        self.files = Some(files::FileIntake { store, routes });
        self
    }

    /// Serves the download links `links` signs (a delivery's `file.style = "url"`) at
    /// `GET /v1/files/{id}`, streamed from `store` (`docs/files.md`).
    pub fn with_downloads(
        mut self,
        store: hub_files::FileStore,
        links: hub_files::transfer::DownloadLinks,
    ) -> Self {
        self.downloads = Some(files::Downloads { store, links });
        self
    }

    /// The partners' router.
    pub fn router(self: Arc<Self>) -> Router {
        let openapi = Arc::new(openapi::document(&self));
        Router::new()
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let doc = Arc::clone(&openapi);
                    async move { axum::Json((*doc).clone()) }
                }),
            )
            .route("/v1/oauth2/token", post(oauth::token))
            // Download links (`files`); a partner named `files` still pushes here with POST.
            .route(
                "/v1/files/{id}",
                axum::routing::get(files::download).post(ingest::ingest_files_partner),
            )
            .route("/v1/{partner}/{mapping}", post(ingest::ingest))
            .fallback(ingest::not_found)
            .with_state(self)
    }
}

impl Gateway {
    /// Charges the route's limit, if it has one; `Err(seconds)` to wait when exceeded.
    pub(crate) fn charge_route(&self, route: &str) -> Result<(), u64> {
        let Some(limiter) = self.route_limits.get(route) else {
            return Ok(());
        };
        limiter.check_key(&()).map_err(|not_until| {
            let clock = governor::clock::DefaultClock::default();
            not_until
                .wait_time_from(governor::clock::Clock::now(&clock))
                .as_secs_f64()
                .ceil() as u64
        })
    }
}

impl Gateway {
    /// The id a message of `contract` is framed with: the external registry's when one is
    /// configured, else the hub's own.
    pub(crate) fn schema_id(&self, contract: &hub_contracts::Contract) -> u32 {
        hub_contracts::framing_schema_id(&self.schema_ids, contract)
    }
}
