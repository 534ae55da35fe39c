//! `ak-sk`: an access key id and a secret access key, the request signed as a cloud API signs
//! it. One published scheme is implemented exactly: **AWS Signature Version 4**
//! (`AWS4-HMAC-SHA256`), which S3-compatible storage and many API gateways speak, tested
//! against AWS's published examples (`tests/ak_sk_vectors.rs`).
//!
//! Canonical request (lines joined by `\n`):
//!
//! ```text
//! <METHOD>
//! <canonical URI>        the path as sent, URI-encoded once more except for s3 (`/` kept)
//! <canonical query>      names and values RFC 3986-encoded, sorted by name then value
//! <canonical headers>    `name:value\n` per signed header, names lower case and sorted,
//!                        values trimmed with inner runs of spaces collapsed
//! <signed headers>       the names joined by `;`
//! <payload hash>         lowercase hex SHA-256 of the body
//! ```
//!
//! String to sign: `AWS4-HMAC-SHA256\n<X-Amz-Date>\n<date>/<region>/<service>/aws4_request\n`
//! followed by the hex SHA-256 of the canonical request; the key is derived as
//! `HMAC("AWS4"+secret, date)` → region → service → `"aws4_request"`, and the signature is
//! the hex HMAC-SHA256 of the string to sign. The `Authorization` header reads
//! `AWS4-HMAC-SHA256 Credential=<access key>/<scope>, SignedHeaders=<names>, Signature=<hex>`.

use serde::Deserialize;

use crate::digest::{hmac_sha256, sha256};
use crate::{
    equal, Claim, Credentials, InboundRequest, InboundVerifier, OutboundCredentials,
    OutboundRequest, OutboundSigner, Refusal, SignError, SpecProblem,
};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Vendors whose scheme is implemented.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
pub enum Vendor {
    #[serde(rename = "aws-sigv4")]
    AwsSigV4,
}

/// `[auth]` with `scheme = "ak-sk"`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AkSkSpec {
    /// The published scheme: `aws-sigv4` (the only one implemented).
    #[serde(default = "default_vendor")]
    pub vendor: Vendor,
    /// The region of the credential scope (`cn-north-1`, `us-east-1`, …).
    pub region: String,
    /// The service of the credential scope (`execute-api`, `s3`, …; `s3` signs the path
    /// without encoding it again).
    pub service: String,
    /// Headers signed besides `host` and `x-amz-date` (and `x-amz-content-sha256`), when the
    /// request carries them (e.g. `content-type`).
    #[serde(default)]
    pub sign_headers: Vec<String>,
    /// Send `x-amz-content-sha256` with the payload hash (S3 requires it).
    #[serde(default)]
    pub content_sha256_header: bool,
}

fn default_vendor() -> Vendor {
    Vendor::AwsSigV4
}

impl AkSkSpec {
    pub fn check(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        for (key, v) in [("region", &self.region), ("service", &self.service)] {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                out.push(SpecProblem::error(
                    format!("auth.{key}"),
                    "must be lower-case letters, digits and -",
                ));
            }
        }
        for h in &self.sign_headers {
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                out.push(SpecProblem::error(
                    "auth.sign_headers",
                    format!("`{h}` is not a header name"),
                ));
            }
        }
        out
    }

    fn double_encode(&self) -> bool {
        self.service != "s3"
    }
}

/// One request's parts, as SigV4 signs them.
#[derive(Debug, Clone)]
pub struct SigV4Input<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// The signed headers (any case; values as sent).
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub double_encode: bool,
}

/// Intermediate values, for tests and the worked example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4 {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
    pub scope: String,
}

fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Signs with SigV4 and returns every intermediate value.
pub fn sigv4(input: &SigV4Input<'_>, secret: &[u8]) -> SigV4 {
    let uri = if input.path.is_empty() {
        "/".to_string()
    } else if input.double_encode {
        uri_encode(input.path, true)
    } else {
        input.path.to_string()
    };
    let query = hub_security::signing::canonical_query(input.query);
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{uri}\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        input.method.to_ascii_uppercase(),
        input.payload_hash
    );
    let date = &input.amz_date[..input.amz_date.len().min(8)];
    let scope = format!("{date}/{}/{}/aws4_request", input.region, input.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        input.amz_date,
        hex::encode(sha256(canonical_request.as_bytes()))
    );
    let mut k = b"AWS4".to_vec();
    k.extend_from_slice(secret);
    let k_date = hmac_sha256(&k, date.as_bytes());
    let k_region = hmac_sha256(&k_date, input.region.as_bytes());
    let k_service = hmac_sha256(&k_region, input.service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    SigV4 {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
        scope,
    }
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time in milliseconds.
pub fn amz_date(now_ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(now_ms).map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
}

/// Signs the hub's calls.
pub struct AkSkSigner {
    spec: AkSkSpec,
    access_key: String,
    secret: Vec<u8>,
}

impl AkSkSigner {
    pub fn new(spec: AkSkSpec, credentials: OutboundCredentials) -> Result<Self, SignError> {
        let secret = credentials.secret.ok_or_else(|| {
            SignError::Credential("ak-sk needs the secret access key (hmac_secret)".into())
        })?;
        Ok(Self {
            spec,
            access_key: credentials.app_id,
            secret,
        })
    }
}

#[async_trait::async_trait]
impl OutboundSigner for AkSkSigner {
    fn scheme(&self) -> &'static str {
        "ak-sk"
    }

    async fn sign(&self, request: &mut OutboundRequest, now_ms: i64) -> Result<(), SignError> {
        let date = amz_date(now_ms)
            .ok_or_else(|| SignError::Unsignable("the clock is out of range".into()))?;
        let payload_hash = hex::encode(sha256(&request.body));
        request.set_header("X-Amz-Date", date.clone());
        if self.spec.content_sha256_header {
            request.set_header("X-Amz-Content-Sha256", payload_hash.clone());
        }
        let mut signed = vec![("host".to_string(), request.host.clone())];
        for (n, v) in &request.headers {
            let lower = n.to_ascii_lowercase();
            if lower == "x-amz-date"
                || lower == "x-amz-content-sha256"
                || self
                    .spec
                    .sign_headers
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&lower))
            {
                signed.push((lower, v.clone()));
            }
        }
        let out = sigv4(
            &SigV4Input {
                method: &request.method,
                path: &request.path,
                query: &request.query,
                headers: &signed,
                payload_hash: &payload_hash,
                amz_date: &date,
                region: &self.spec.region,
                service: &self.spec.service,
                double_encode: self.spec.double_encode(),
            },
            &self.secret,
        );
        request.set_header(
            "Authorization",
            format!(
                "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
                self.access_key, out.scope, out.signed_headers, out.signature
            ),
        );
        Ok(())
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Reads an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut c = credential?.split('/');
    let (ak, date, region, service, term) = (c.next()?, c.next()?, c.next()?, c.next()?, c.next()?);
    if term != "aws4_request" || c.next().is_some() || ak.is_empty() {
        return None;
    }
    let signature = signature?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Authorization {
        access_key: ak.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed?.split(';').map(str::to_string).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Verifies pushes signed with SigV4. SigV4 has no nonce: the signature itself is claimed as
/// the nonce, so the same signed request is accepted once within the window.
pub struct AkSkVerifier {
    pub spec: AkSkSpec,
}

fn parse_amz_date(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

impl InboundVerifier for AkSkVerifier {
    fn scheme(&self) -> &'static str {
        "ak-sk"
    }

    fn claim(&self, request: &InboundRequest<'_>) -> Result<Claim, Refusal> {
        let auth = request.header("authorization").ok_or(Refusal::Missing)?;
        if !auth.starts_with(ALGORITHM) {
            return Err(Refusal::MethodUnsupported);
        }
        let auth = parse_authorization(&auth).ok_or(Refusal::Missing)?;
        let date = request.header("x-amz-date").ok_or(Refusal::Missing)?;
        let timestamp_ms = parse_amz_date(&date).ok_or(Refusal::Timestamp)?;
        Ok(Claim {
            app_id: auth.access_key,
            timestamp_ms: Some(timestamp_ms),
            nonce: Some(auth.signature),
        })
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        _claim: &Claim,
        credentials: &Credentials,
    ) -> Result<(), Refusal> {
        let secret = credentials.secret.as_ref().ok_or(Refusal::Signature)?;
        let auth = request
            .header("authorization")
            .and_then(|a| parse_authorization(&a))
            .ok_or(Refusal::Missing)?;
        let date = request.header("x-amz-date").ok_or(Refusal::Missing)?;
        if auth.region != self.spec.region
            || auth.service != self.spec.service
            || !date.starts_with(&auth.date)
        {
            return Err(Refusal::Signature);
        }
        // host and x-amz-date must be signed; every named header must be present.
        if !auth.signed_headers.iter().any(|h| h == "host")
            || !auth.signed_headers.iter().any(|h| h == "x-amz-date")
        {
            return Err(Refusal::SignedHeadersInvalid);
        }
        let mut headers = Vec::new();
        for name in &auth.signed_headers {
            let v = request.header(name).ok_or(Refusal::SignedHeadersInvalid)?;
            headers.push((name.clone(), v));
        }
        for p in hub_security::signing::PROTECTED_HEADERS {
            if request.header(p).is_some() && !auth.signed_headers.iter().any(|h| h == p) {
                return Err(Refusal::HeaderUnsigned);
            }
        }
        let payload_hash = hex::encode(sha256(request.body));
        if let Some(claimed) = request.header("x-amz-content-sha256") {
            if claimed != payload_hash {
                return Err(Refusal::Signature);
            }
        }
        let out = sigv4(
            &SigV4Input {
                method: request.method,
                path: request.path,
                query: request.query,
                headers: &headers,
                payload_hash: &payload_hash,
                amz_date: &date,
                region: &self.spec.region,
                service: &self.spec.service,
                double_encode: self.spec.double_encode(),
            },
            secret,
        );
        if equal(out.signature.as_bytes(), auth.signature.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::Signature)
        }
    }
}
