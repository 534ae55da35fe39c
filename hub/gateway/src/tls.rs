//! TLS on the partners' entry, with rustls (ring provider).
//!
//! The certificate and key are read from PEM files and reloaded without a restart: on SIGHUP,
//! and when either file's modification time changes (checked every few seconds), new
//! handshakes use the new pair; connections already open keep theirs. A pair that fails to
//! load is reported and the previous pair stays in use.
//!
//! Mutual TLS: with `client_ca`, client certificates issued by those CAs are verified during
//! the handshake, and the SM3 digest of the leaf travels with each request as a
//! [`ClientCertificate`] extension, for the per-app checks in `auth`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// `[gateway.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files are checked for changes (ms).
    #[serde(default = "default_check")]
    pub check_interval_ms: u64,
    /// Mutual TLS: PEM bundle of the CAs whose client certificates are accepted. Clients may
    /// still connect without one; apps that must present one say so (`require_client_cert`,
    /// `client_cert_sm3`). A partner's self-signed certificate is added here as its own CA.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// The client certificate of the connection a request came on: SM3 of its DER bytes, hex.
#[derive(Debug, Clone, Default)]
pub struct ClientCertificate(pub Option<String>);

fn default_check() -> u64 {
    5_000
}

/// The current certificate, swapped in place on reload.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match()
        .map_err(|e| format!("the key does not belong to the certificate: {e}"))?;
    Ok(pair)
}

/// Publishes the expiry of the pair now in use (`hub_gateway_tls_cert_expiry_seconds`).
fn publish_expiry(pair: &CertifiedKey) {
    if let Some(leaf) = pair.cert.first() {
        crate::metrics::tls_certificate(leaf.as_ref());
    }
}

impl ReloadingCert {
    /// Loads the pair; an error here stops the start.
    pub fn load(section: &TlsSection) -> Result<Self, String> {
        let pair = load_pair(&section.cert, &section.key)?;
        publish_expiry(&pair);
        Ok(Self {
            current: RwLock::new((
                Arc::new(pair),
                modified(&section.cert),
                modified(&section.key),
            )),
            cert: section.cert.clone(),
            key: section.key.clone(),
        })
    }

    /// Reloads if `force` or if a file changed; returns whether a new pair is in use.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let (cm, km) = (modified(&self.cert), modified(&self.key));
        {
            let current = self.current.read().expect("not poisoned");
            if !force && current.1 == cm && current.2 == km {
                return Ok(false);
            }
        }
        let pair = load_pair(&self.cert, &self.key)?;
        publish_expiry(&pair);
        *self.current.write().expect("not poisoned") = (Arc::new(pair), cm, km);
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().expect("not poisoned").0))
    }
}

/// Keeps the certificate fresh: SIGHUP and file changes.
pub async fn watch(cert: Arc<ReloadingCert>, every: Duration, stop: CancellationToken) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "no SIGHUP handler: certificates reload on file change only");
            None
        }
    };
    let mut tick = tokio::time::interval(every);
    loop {
        let force = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        match cert.reload(force) {
            Ok(true) => info!(cert = %cert.cert.display(), "TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, "TLS certificate not reloaded; the previous one stays in use")
            }
        }
    }
}

/// Serves `router` over TLS until shutdown; each connection is a task of `lifecycle`, so the
/// drain waits for the requests in flight. The handshake and each request's headers have
/// their time limits (`limits`).
pub async fn serve(
    listener: TcpListener,
    cert: Arc<ReloadingCert>,
    client_ca: Option<&Path>,
    router: Router,
    limits: crate::server::ConnectionLimits,
    lifecycle: hub_bus::Lifecycle,
) -> Result<(), String> {
    let stop = lifecycle.token().clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                roots
                    .add(c.map_err(|e| format!("{}: {e}", path.display()))?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client CA {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, router, stop) = (acceptor.clone(), router.clone(), stop.clone());
        lifecycle.spawn(async move {
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        info!(peer = %peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        info!(peer = %peer, "TLS handshake timed out");
                        return;
                    }
                };
            // The client certificate, if the partner presented one, travels with each request.
            let client = ClientCertificate(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| hub_security::sm::sm3_hex(leaf.as_ref())),
            );
            let router = router.layer(axum::Extension(client));
            crate::server::serve_connection(tls, peer, router, limits, stop).await;
        });
    }
}
