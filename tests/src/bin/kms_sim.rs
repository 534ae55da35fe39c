//! A KMS simulator for the tests: a real HTTP server speaking the API `hub_security::kms`
//! documents (`POST /v1/wrap`, `POST /v1/unwrap`), holding SM4 master keys, and verifying the
//! caller's signature with the hub's own scheme, and signing every successful answer
//! (`X-Kms-Answer-Signature`, bound to the request's nonce) as the client requires. Prints
//! `LISTENING <addr>` once it accepts.
//!
//! usage: kms-sim --app-id hub --secret S --master ID=HEX [--master …]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use hub_security::signing::{header, RequestParts, SignatureMethod, VerifyingCredential};
use hub_security::sm::{random, sm4_gcm_decrypt, sm4_gcm_encrypt};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[arg(long)]
    app_id: String,
    #[arg(long)]
    secret: String,
    /// Master keys as ID=HEX (16 bytes).
    #[arg(long = "master")]
    masters: Vec<String>,
}

struct Kms {
    app_id: String,
    secret: Vec<u8>,
    credential: VerifyingCredential,
    masters: BTreeMap<String, [u8; 16]>,
}

type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, code: &str) -> Answer {
    (status, Json(json!({ "code": code })))
}

/// A 200 answer signed for the request (its path and nonce) with the caller's secret.
fn signed(kms: &Kms, headers: &HeaderMap, uri: &Uri, value: &Value) -> Response {
    let body = value.to_string();
    let nonce = headers
        .get(header::NONCE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signature = hub_security::kms::sign_answer(&kms.secret, uri.path(), nonce, body.as_bytes());
    (
        StatusCode::OK,
        [
            ("content-type", "application/json".to_string()),
            (hub_security::kms::ANSWER_SIGNATURE, signature),
        ],
        body,
    )
        .into_response()
}

impl Kms {
    fn verify(&self, headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Result<(), Answer> {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        if h(header::APP_ID) != self.app_id || h(header::SIGNATURE_METHOD) != "HMAC-SM3" {
            return Err(refuse(StatusCode::UNAUTHORIZED, "KMS_UNAUTHORIZED"));
        }
        let ts: i64 = h(header::TIMESTAMP).parse().unwrap_or_default();
        let now = chrono::Utc::now().timestamp_millis();
        if (now - ts).abs() > 300_000 {
            return Err(refuse(StatusCode::UNAUTHORIZED, "KMS_TIMESTAMP"));
        }
        let nonce = h(header::NONCE);
        let parts = RequestParts {
            method: SignatureMethod::HmacSm3,
            http_method: "POST",
            path: uri.path(),
            raw_query: uri.query().unwrap_or(""),
            app_id: &self.app_id,
            timestamp_ms: ts,
            nonce: &nonce,
            body,
            signed_headers: &[],
        };
        self.credential
            .verify(&parts.canonical(), &h(header::SIGNATURE))
            .map_err(|_| refuse(StatusCode::UNAUTHORIZED, "KMS_SIGNATURE_INVALID"))
    }

    fn master(&self, request: &Value) -> Result<(&str, [u8; 16]), Answer> {
        let id = request["master_key_id"].as_str().unwrap_or_default();
        let (id, key) = self
            .masters
            .get_key_value(id)
            .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "KMS_MASTER_KEY_UNKNOWN"))?;
        Ok((id.as_str(), *key))
    }

    /// The checks every call shares: a valid signature, a JSON body, a known master key.
    fn authorize(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        body: &[u8],
    ) -> Result<(Value, &str, [u8; 16]), Answer> {
        self.verify(headers, uri, body)?;
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        let (id, master) = self.master(&request)?;
        Ok((request, id, master))
    }
}

async fn wrap(State(kms): State<Arc<Kms>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let (request, id, master) = match kms.authorize(&headers, &uri, &body) {
        Ok(r) => r,
        Err(a) => return a.into_response(),
    };
    let Some(plain) = request["plaintext"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
    else {
        return refuse(StatusCode::BAD_REQUEST, "KMS_BAD_REQUEST").into_response();
    };
    let nonce: [u8; 12] = random();
    let mut out = nonce.to_vec();
    out.extend(sm4_gcm_encrypt(&master, &nonce, id.as_bytes(), &plain).expect("a 16-byte key"));
    signed(
        &kms,
        &headers,
        &uri,
        &json!({ "ciphertext": hex::encode(out) }),
    )
}

async fn unwrap(
    State(kms): State<Arc<Kms>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (request, id, master) = match kms.authorize(&headers, &uri, &body) {
        Ok(r) => r,
        Err(a) => return a.into_response(),
    };
    let Some(sealed) = request["ciphertext"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() > 28)
    else {
        return refuse(StatusCode::BAD_REQUEST, "KMS_BAD_REQUEST").into_response();
    };
    let nonce: [u8; 12] = sealed[..12].try_into().expect("checked length");
    match sm4_gcm_decrypt(&master, &nonce, id.as_bytes(), &sealed[12..]) {
        Ok(plain) => signed(
            &kms,
            &headers,
            &uri,
            &json!({ "plaintext": hex::encode(plain) }),
        ),
        Err(_) => refuse(StatusCode::BAD_REQUEST, "KMS_DECRYPT_FAILED").into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut masters = BTreeMap::new();
    for m in &args.masters {
        let (id, key) = m
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--master ID=HEX"))?;
        let key: [u8; 16] = hex::decode(key)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("16-byte master keys"))?;
        masters.insert(id.to_string(), key);
    }
    let kms = Arc::new(Kms {
        app_id: args.app_id,
        secret: args.secret.clone().into_bytes(),
        credential: VerifyingCredential::HmacSm3 {
            secret: args.secret.into_bytes(),
        },
        masters,
    });
    let app = Router::new()
        .route("/v1/wrap", post(wrap))
        .route("/v1/unwrap", post(unwrap))
        .with_state(kms);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("LISTENING {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
