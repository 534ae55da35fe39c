//! `{{partner}}-simulator`: the {{partner}} platform as the hub meets it, on the simulator kit
//! (`adapters/sim-kit`): one example API, `POST /api/example/submit`, that keeps the records it
//! is sent. The kit does the rest (the hub's signature, idempotency keys, planned faults, the
//! `/sim/…` control API, the state file, pushes to the hub).
//!
//! Written by `hub adapter new`; replace the example with the partner's codes ([`ExampleCodes`]),
//! its objects and state machine ([`Records`]) and one route per API of its specification.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sim_kit::auth::hub_v1::{HubV1Signer, HubV1Verifier};
use sim_kit::auth::Inbound;
use sim_kit::{
    Call, CallKind, Codes, Conn, Decision, FaultRule, Kit, KitConfig, PartnerState, RetryConfig,
};

/// The partner's business codes; they must agree with `[answer]` of
/// `adapters/{{partner}}/adapter.toml`.
pub struct ExampleCodes;

impl Codes for ExampleCodes {
    fn ok(&self) -> &'static str {
        "0"
    }
    fn signature_failed(&self) -> &'static str {
        "3"
    }
    fn busy(&self) -> &'static str {
        "2"
    }
    // The example has no code of its own for maintenance: it answers "busy".
    fn maintenance(&self) -> &'static str {
        "2"
    }
    fn message(&self, code: &str) -> &'static str {
        match code {
            "0" => "成功",
            "1" => "请求被拒绝",
            "2" => "系统繁忙，请稍后重试",
            "3" => "签名验证失败",
            _ => "失败",
        }
    }
    fn envelope_code<'a>(&self, answer: &'a Value) -> Option<&'a str> {
        answer.get("code").and_then(Value::as_str)
    }
}

/// The partner's objects: the records it was sent, by id (what the state file keeps).
#[derive(Default)]
pub struct Records {
    pub received: BTreeMap<String, Value>,
}

impl PartnerState for Records {
    fn save(&self) -> serde_json::Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("received".into(), serde_json::to_value(&self.received)?);
        Ok(m)
    }
    fn restore(&mut self, mut saved: Map<String, Value>) -> serde_json::Result<usize> {
        self.received = serde_json::from_value(saved.remove("received").unwrap_or_default())?;
        Ok(self.received.len())
    }
    fn fingerprint(&self) -> u64 {
        self.received.len() as u64
    }
}

/// The partner's APIs, for counters and planned faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Submit,
}

pub type ExampleKit = Kit<Records, FaultRule<Endpoint>>;

/// Who signs what: the hub's credential at the partner (its calls are verified with it) and
/// the partner's own at the hub (its pushes are signed with it).
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The hub's base URL; `None`: nothing is pushed.
    pub hub_url: Option<String>,
    pub hub_app_id: String,
    pub hub_secret: Vec<u8>,
    pub app_id: String,
    pub secret: Vec<u8>,
    pub state_file: Option<PathBuf>,
}

/// A running simulator.
pub struct Simulator {
    pub kit: Arc<ExampleKit>,
    pub addr: SocketAddr,
}

/// Starts the simulator on `listen` (port 0: a free port).
pub async fn start(listen: SocketAddr, config: SimulatorConfig) -> std::io::Result<Simulator> {
    let kit = Kit::new(
        KitConfig {
            adapter: "{{partner}}".into(),
            hub_url: config.hub_url,
            push: true,
            retry: RetryConfig::default(),
            state_file: config.state_file,
        },
        Records::default(),
        Arc::new(ExampleCodes),
        Box::new(HubV1Verifier {
            app_id: config.hub_app_id,
            secret: config.hub_secret,
            window: Duration::from_secs(300),
        }),
        Box::new(HubV1Signer {
            app_id: config.app_id,
            secret: config.secret,
        }),
    );
    kit.keep_state().map_err(std::io::Error::other)?;
    let routes = Router::new()
        .route("/api/example/submit", post(submit))
        .with_state(Arc::clone(&kit));
    let (addr, _task) = sim_kit::listen(&kit, listen, routes).await?;
    Ok(Simulator { kit, addr })
}

/// `POST /api/example/submit {"id": …}`: keeps the record; refuses one without an id.
async fn submit(
    State(kit): State<Arc<ExampleKit>>,
    conn: Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let doc: Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = doc.get("id").and_then(Value::as_str).map(str::to_string);
    let call = Call {
        endpoint: Endpoint::Submit,
        name: "submit",
        kind: CallKind::Action,
        object: id.as_deref(),
        http: Inbound {
            http_method: method.as_str(),
            path: uri.path(),
            raw_query: uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        },
    };
    let (reply, _) = kit.handle(call, |records: &mut Records, _key| {
        let code = match &id {
            Some(id) => {
                records.received.insert(id.clone(), doc.clone());
                "0"
            }
            None => "1",
        };
        (
            Decision {
                code: code.into(),
                data: json!({ "received": records.received.len() }),
            },
            Vec::<()>::new(),
        )
    });
    conn.answer(reply).await
}
