//! The HTTP side: one listener for the partner's API and the `/sim/...` control API.
//!
//! Connections are served one task each, by hand rather than with `axum::serve`, so that a
//! planned fault can drop a connection without an answer (a reset the hub must survive). A
//! handler answers with a [`Reply`] through the [`Conn`] extractor.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// What the HTTP layer is to do with a call.
#[derive(Debug)]
pub enum Reply {
    Json {
        status: StatusCode,
        body: Value,
        /// `Retry-After` in seconds.
        retry_after: Option<u64>,
    },
    /// Answer the inner reply after a delay.
    Late(Duration, Box<Reply>),
    /// Drop the connection without an answer.
    Reset,
}

impl Reply {
    /// HTTP 200 with `body`.
    pub fn ok(body: Value) -> Self {
        Reply::Json {
            status: StatusCode::OK,
            body,
            retry_after: None,
        }
    }
}

/// Per connection: a handler notifies it to drop the connection.
#[derive(Clone)]
struct ConnControl {
    reset: Arc<Notify>,
}

/// The connection a call came on, to answer it with a [`Reply`] (which may drop it).
pub struct Conn(Option<ConnControl>);

impl<S: Send + Sync> FromRequestParts<S> for Conn {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Conn(parts.extensions.get::<ConnControl>().cloned()))
    }
}

impl Conn {
    /// Sends `reply` (late, or not at all when it is a reset).
    pub async fn answer(&self, mut reply: Reply) -> Response {
        loop {
            match reply {
                Reply::Json {
                    status,
                    body,
                    retry_after,
                } => {
                    let mut r = (status, Json(body)).into_response();
                    if let Some(secs) = retry_after {
                        if let Ok(v) = secs.to_string().parse() {
                            r.headers_mut().insert("retry-after", v);
                        }
                    }
                    return r;
                }
                Reply::Late(delay, inner) => {
                    tokio::time::sleep(delay).await;
                    reply = *inner;
                }
                Reply::Reset => {
                    if let Some(c) = &self.0 {
                        c.reset.notify_one();
                        // The connection task drops the connection; this answer is never sent.
                        std::future::pending::<()>().await;
                    }
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            }
        }
    }
}

/// Accepts connections until `cancel` fires; open connections are then closed gracefully.
/// Each connection is a task of `tasks`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let control = ConnControl {
            reset: Arc::new(Notify::new()),
        };
        let service = TowerToHyperService::new(app.clone().layer(Extension(control.clone())));
        let cancel = cancel.clone();
        tasks.spawn(async move {
            // A clone of the socket, to make the drop a reset (SO_LINGER 0) when asked.
            let raw = stream
                .into_std()
                .and_then(|s| s.try_clone().map(|c| (s, c)));
            let Ok((std_stream, clone)) = raw else { return };
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                return;
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(error = %e, "connection ended");
                    }
                }
                _ = control.reset.notified() => {
                    if let Ok(s) = tokio::net::TcpStream::from_std(clone) {
                        let _ = s.set_zero_linger();
                    }
                    // Dropping the connection (and the clone above) closes the socket.
                }
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
