//! `hub-bench http-sink`: the `ceiling-http` server. A bare hyper HTTP/1.1 server, in its own
//! process like the hub, on the same kind of tokio runtime, that reads each request's whole
//! body and answers 200 with a JSON body the size of the hub's answer. Nothing is checked or
//! computed: it is what serving HTTP alone costs on this machine.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// About the size and shape of the hub's `ACCEPTED` answer.
const ANSWER: &[u8] = br#"{"code":"ACCEPTED","message_zh":"\u5df2\u63a5\u6536","message_en":"accepted","request_id":"0190b8d2-4b1c-7d3e-9f00-000000000000","message_id":"0190b8d2-4b1c-7d3e-9f00-000000000001","topic":"hotline.ticket.dispatched.v1","duplicate":false}"#;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    req.into_body().collect().await?;
    let mut resp = Response::new(Full::new(Bytes::from_static(ANSWER)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Serves until the process is stopped; prints `listening <addr>` first so the harness
/// learns the port.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr()?)?;
        out.flush()?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
