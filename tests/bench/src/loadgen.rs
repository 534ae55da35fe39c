//! The load generator: N clients (HTTP connections, or producer senders) driven either
//!
//! * closed-loop: each client sends its next request when the previous answer arrives, for a
//!   fixed duration; throughput is what completed inside the window; or
//! * open-loop: requests are due at a fixed rate whatever the answers do, and each latency is
//!   measured from the time the request was *due*, not when a free client sent it, so a stall
//!   shows up as the queueing it causes for everything behind it (no coordinated omission).
//!
//! The HTTP client is hyper's HTTP/1.1 connection API: one kept-alive TCP connection per
//! client, `TCP_NODELAY` as real partner clients set it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

use crate::payload::{Names, Requests, APP_ID};
use crate::stats::Latencies;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200 (HTTP) or acknowledged (producer).
    Ok,
    /// Any other HTTP status.
    Status(u16),
    /// No answer: connection or produce error.
    Error,
}

/// Something that sends one request at a time.
pub trait Client: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Outcome> + Send;
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests sent, whatever their answer.
    pub sent: u64,
    /// Answered 200 / acknowledged.
    pub ok: u64,
    /// Other statuses, by code.
    pub statuses: BTreeMap<u16, u64>,
    /// No answer at all.
    pub errors: u64,
    /// Requests counted in the window (closed loop: completed inside it; open loop: due in it).
    pub measured: u64,
    /// The window's length.
    pub window: Duration,
    /// Latencies of the measured requests.
    pub latencies: Latencies,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.measured as f64 / self.window.as_secs_f64()
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    latencies_us: Vec<u32>,
}

impl Tally {
    fn count(&mut self, outcome: Outcome) {
        self.sent += 1;
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Status(s) => *self.statuses.entry(s).or_default() += 1,
            Outcome::Error => self.errors += 1,
        }
    }
}

fn merge(tallies: Vec<Tally>, window: Duration) -> LoadResult {
    let mut r = LoadResult {
        window,
        ..Default::default()
    };
    let mut lat = Vec::new();
    for t in tallies {
        r.sent += t.sent;
        r.ok += t.ok;
        r.errors += t.errors;
        for (k, v) in t.statuses {
            *r.statuses.entry(k).or_default() += v;
        }
        lat.extend(t.latencies_us);
    }
    r.measured = lat.len() as u64;
    r.latencies = Latencies::new(lat);
    r
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Closed loop for `duration`: every client sends back to back. Only requests that complete
/// inside the window count (and only successful ones have their latency kept, so a fast error
/// cannot flatter the percentiles).
pub async fn closed_loop<C: Client>(clients: Vec<C>, duration: Duration) -> (Vec<C>, LoadResult) {
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut t = Tally::default();
                while Instant::now() < end {
                    let sent = Instant::now();
                    let outcome = c.call().await;
                    let done = Instant::now();
                    t.count(outcome);
                    if outcome == Outcome::Ok && done <= end {
                        t.latencies_us.push(micros(done - sent));
                    }
                }
                (c, t)
            })
        })
        .collect();
    let mut clients = Vec::new();
    let mut tallies = Vec::new();
    for task in tasks {
        let (c, t) = task.await.expect("load task");
        clients.push(c);
        tallies.push(t);
    }
    (clients, merge(tallies, duration))
}

/// Open loop: request k is due at `start + k / rate`, for `duration`; its latency runs from
/// when it was due to its answer. A request can only leave on a free client, so if all are
/// busy the wait is in the latency, as it would be for a real partner. Tokio's timers tick in
/// milliseconds, so a request may leave up to 1 ms after it was due; the broker's own run in
/// the same shape has the same offset.
pub async fn open_loop<C: Client>(
    clients: Vec<C>,
    rate: f64,
    duration: Duration,
) -> (Vec<C>, LoadResult) {
    let start = Instant::now() + Duration::from_millis(5);
    let total = (rate * duration.as_secs_f64()).floor() as u64;
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut t = Tally::default();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        break;
                    }
                    let due = start + Duration::from_secs_f64(k as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let outcome = c.call().await;
                    t.count(outcome);
                    if outcome == Outcome::Ok {
                        t.latencies_us.push(micros(due.elapsed()));
                    }
                }
                (c, t)
            })
        })
        .collect();
    let mut clients = Vec::new();
    let mut tallies = Vec::new();
    for task in tasks {
        let (c, t) = task.await.expect("load task");
        clients.push(c);
        tallies.push(t);
    }
    // The achieved rate: everything due in the window, over the time it took to answer it.
    let window = start.elapsed().max(duration);
    (clients, merge(tallies, window))
}

/// One HTTP/1.1 connection sending signed requests.
pub struct HttpClient {
    addr: SocketAddr,
    host: HeaderValue,
    uri: Uri,
    names: Arc<Names>,
    app_id: HeaderValue,
    method: HeaderValue,
    requests: Arc<Requests>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the peer closes or the sender is dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

impl HttpClient {
    /// `n` connected clients.
    pub async fn many(
        addr: SocketAddr,
        requests: Arc<Requests>,
        n: usize,
    ) -> anyhow::Result<Vec<Self>> {
        let names = Arc::new(Names::default());
        let uri: Uri = requests.path().parse()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Self {
                addr,
                host: HeaderValue::from_str(&addr.to_string())?,
                uri: uri.clone(),
                names: Arc::clone(&names),
                app_id: HeaderValue::from_static(APP_ID),
                method: HeaderValue::from_static("HMAC-SM3"),
                requests: Arc::clone(&requests),
                sender: Some(connect(addr).await?),
            });
        }
        Ok(out)
    }

    /// Where the following requests come from (a fresh signed pool for the next window).
    pub fn use_requests(&mut self, requests: Arc<Requests>) {
        self.requests = requests;
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let (body, signed) = self.requests.take();
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        let n = &self.names;
        h.insert(HOST, self.host.clone());
        h.insert(CONTENT_TYPE, self.requests.content_type.clone());
        h.insert(n.app_id.clone(), self.app_id.clone());
        h.insert(n.timestamp.clone(), signed.timestamp);
        h.insert(n.nonce.clone(), signed.nonce);
        h.insert(n.method.clone(), self.method.clone());
        h.insert(n.signature.clone(), signed.signature);
        req
    }
}

impl Client for HttpClient {
    async fn call(&mut self) -> Outcome {
        if self.sender.is_none() {
            match connect(self.addr).await {
                Ok(s) => self.sender = Some(s),
                Err(_) => {
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Outcome::Error;
                }
            }
        }
        let req = self.request();
        let sender = self.sender.as_mut().expect("connected above");
        let answer = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            // The whole answer is read, as a partner reads it.
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        match answer {
            Ok(200) => Outcome::Ok,
            Ok(s) => Outcome::Status(s),
            Err(_) => {
                self.sender = None;
                Outcome::Error
            }
        }
    }
}

/// `GET http://addr/path` → status (readiness polls).
pub async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    Ok(get(addr, path).await?.0)
}

/// `GET http://addr/path` → status and body (the hub's `/metrics`).
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let mut sender = connect(addr).await?;
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = path.parse()?;
    req.headers_mut()
        .insert(HOST, HeaderValue::from_str(&addr.to_string())?);
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
