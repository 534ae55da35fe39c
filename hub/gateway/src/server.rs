//! Serving the partners' router on accepted connections, plain or TLS, with the connection-level
//! time limits: a client has `header_timeout_ms` to send a request's headers (and an idle
//! keep-alive connection is closed after as long), and `tls_handshake_timeout_ms` to finish
//! the TLS handshake. A connection that never sends anything is closed, never kept.
//!
//! Each connection is a task of the hub's lifecycle, so a drain waits for the requests in
//! flight; on shutdown a connection finishes its current request and closes.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::GatewaySection;

/// The address a request's connection came from (a request extension). Behind a proxy this is
/// the proxy's address.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Time limits of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// To send a request's headers, from the first byte (or from the end of the previous
    /// request on a kept-alive connection).
    pub header_timeout: Duration,
    /// To complete the TLS handshake.
    pub handshake_timeout: Duration,
}

impl ConnectionLimits {
    pub fn of(config: &GatewaySection) -> Self {
        Self {
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            handshake_timeout: Duration::from_millis(config.tls_handshake_timeout_ms),
        }
    }
}

/// Serves HTTP/1.1 on one connection until it closes, or until `stop` (then the request in
/// flight is finished first).
pub(crate) async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = router.layer(axum::Extension(Peer(peer)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Serves `router` over plain HTTP until shutdown (local development, or behind a
/// TLS-terminating proxy).
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    lifecycle: hub_bus::Lifecycle,
) {
    let stop = lifecycle.token().clone();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        lifecycle.spawn(serve_connection(
            tcp,
            peer,
            router.clone(),
            limits,
            stop.clone(),
        ));
    }
}
