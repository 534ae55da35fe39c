//! What each authentication scheme adds to a request, against `hub-v1` measured in the same
//! run: the hub signing an outbound call (egress, poller) and the gateway verifying a push
//! (claim + verify), for a 1 KiB JSON body. `cargo bench -p hub-protocols --bench schemes`
//! prints a table for docs/performance.md. One core, no I/O: the schemes' own cost only
//! (`oauth2-client-credentials` is a cached bearer header out and a token lookup in, not a
//! signature, and is not measured here). Run by `cargo test --all-targets` (without `--bench`)
//! it measures each for a few milliseconds only: a smoke run whose figures mean nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use hub_protocols::{AuthSpec, Credentials, InboundRequest, OutboundCredentials, OutboundRequest};
use hub_security::sm::Sm2PrivateKey;

const SECRET: &[u8] = b"bench-secret-0123456789abcdef";
/// Each measurement runs at least this long (`cargo bench`; a smoke run: 5 ms).
const MEASURE: Duration = Duration::from_millis(1500);

fn measure_for() -> Duration {
    if std::env::args().any(|a| a == "--bench") {
        MEASURE
    } else {
        Duration::from_millis(5)
    }
}

fn spec(toml_text: &str) -> AuthSpec {
    let table: toml::Table = toml::from_str(toml_text).expect("bench spec");
    AuthSpec::parse(table.get("auth").and_then(|a| a.as_table()))
        .expect("a valid [auth]")
        .0
}

fn body() -> Vec<u8> {
    let mut s = String::from(r#"{"gdbh":"GD20261203000001","nr":""#);
    while s.len() < 1000 {
        s.push_str("市民来电反映小区供水压力不足，");
    }
    s.push_str(r#""}"#);
    s.into_bytes()
}

fn request() -> OutboundRequest {
    OutboundRequest {
        method: "POST".into(),
        host: "partner.example:8443".into(),
        path: "/api/v1/tickets/sign".into(),
        query: "a=1&b=%E5%B7%A5".into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "X-Idempotency-Key".into(),
                "0193a0f4-5b1c-7d2e-8f00-0123456789ab".into(),
            ),
        ],
        body: body(),
    }
}

/// Nanoseconds per call of `f`, run for at least [`measure_for`].
fn per_call(mut f: impl FnMut()) -> f64 {
    for _ in 0..20 {
        f();
    }
    let mut n: u64 = 0;
    let started = Instant::now();
    let measure = measure_for();
    while started.elapsed() < measure {
        for _ in 0..10 {
            f();
        }
        n += 10;
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

struct Row {
    name: &'static str,
    sign_ns: f64,
    verify_ns: f64,
}

fn measure(name: &'static str, spec: AuthSpec, sm2: Option<&Sm2PrivateKey>) -> Row {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let signer = spec
        .signer(OutboundCredentials {
            app_id: "water-bureau-hub".into(),
            secret: Some(SECRET.to_vec()),
            sm2_private_key: sm2.cloned(),
            ..Default::default()
        })
        .expect("signer");
    let now = chrono::Utc::now().timestamp_millis();
    let base = request();
    let sign_ns = per_call(|| {
        let mut req = base.clone();
        rt.block_on(signer.sign(&mut req, now)).expect("signs");
        black_box(req);
    });
    let clone_ns = per_call(|| {
        black_box(base.clone());
    });
    // The gateway's side: a request signed once, claimed and verified again and again.
    let mut signed = base.clone();
    rt.block_on(signer.sign(&mut signed, now)).expect("signs");
    let headers: Vec<(String, String)> = signed
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .chain([("host".to_string(), signed.host.clone())])
        .collect();
    let inbound = InboundRequest {
        method: &signed.method,
        path: &signed.path,
        query: &signed.query,
        headers: &headers,
        body: &signed.body,
    };
    let verifier = spec.verifier();
    let credentials = Credentials {
        secret: Some(SECRET.to_vec()),
        sm2_public_key: sm2.map(Sm2PrivateKey::public_key),
    };
    let claim = verifier.claim(&inbound).expect("claims");
    verifier
        .verify(&inbound, &claim, &credentials)
        .expect("the hub verifies what it signed");
    let verify_ns = per_call(|| {
        let claim = verifier.claim(black_box(&inbound)).expect("claims");
        verifier
            .verify(&inbound, &claim, &credentials)
            .expect("verifies");
    });
    Row {
        name,
        sign_ns: sign_ns - clone_ns,
        verify_ns,
    }
}

fn main() {
    let key = Sm2PrivateKey::generate();
    let rows = [
        measure("hub-v1 (HMAC-SM3)", AuthSpec::HubV1, None),
        measure(
            "app-key-sign hmac-sm3, query",
            spec("[auth]\nscheme = \"app-key-sign\"\ndigest = \"hmac-sm3\"\n"),
            None,
        ),
        measure(
            "app-key-sign hmac-sha256, query",
            spec("[auth]\nscheme = \"app-key-sign\"\ndigest = \"hmac-sha256\"\n"),
            None,
        ),
        measure(
            "app-key-sign sm3, headers",
            spec("[auth]\nscheme = \"app-key-sign\"\ndigest = \"sm3\"\nplacement = \"headers\"\n"),
            None,
        ),
        measure(
            "ak-sk (AWS SigV4)",
            spec(
                "[auth]\nscheme = \"ak-sk\"\nregion = \"cn-north-1\"\nservice = \"execute-api\"\n",
            ),
            None,
        ),
        measure(
            "sm2-cert, headers",
            spec("[auth]\nscheme = \"sm2-cert\"\n"),
            Some(&key),
        ),
    ];
    let (base_sign, base_verify) = (rows[0].sign_ns, rows[0].verify_ns);
    println!("| scheme | sign µs/request | × hub-v1 | verify µs/push | × hub-v1 |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.2} | {:.1} | {:.2} |",
            r.name,
            r.sign_ns / 1000.0,
            r.sign_ns / base_sign,
            r.verify_ns / 1000.0,
            r.verify_ns / base_verify
        );
    }
}
