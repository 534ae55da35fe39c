//! `sm2-cert`: SM2 signatures (SM3, id `1234567812345678`) with the partner's X.509
//! certificate or bare public key, the signature in a header or inside a signed JSON envelope.
//!
//! * `signature_in = "header"`: the signature of the canonical string (7 lines joined by `\n`:
//!   HTTP method, path, canonical query as in hub-v1, app id, timestamp, nonce, lowercase hex
//!   SM3 of the body) — or, with `signed = "body"`, of the body bytes alone — travels in
//!   `signature_header`; app id, timestamp and nonce in their headers.
//! * `signature_in = "json"`: the body is an envelope; the signature is the string at
//!   `signature_pointer`, over the canonical JSON (`canonical_json`) of the value at
//!   `data_pointer` (the whole envelope when empty), with the signature member removed first.
//!
//! Signatures are hex or base64 (`encoding`), raw `r‖s` or DER (`format`); verification
//! accepts both forms whatever `format` says, signing writes `format`. The partner's public
//! key comes from the hub's configuration (`[[gateway.apps]] sm2_public_key` or
//! `sm2_certificate`), the hub's own key and certificate from `[partners.<name>]`.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    Claim, Credentials, InboundRequest, InboundVerifier, OutboundCredentials, OutboundRequest,
    OutboundSigner, Refusal, SignError, SpecProblem,
};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Where {
    Header,
    Json,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Hex,
    Base64,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `r‖s`, 64 bytes.
    Raw,
    /// DER `SEQUENCE { INTEGER r, INTEGER s }`.
    Der,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Signed {
    /// The canonical string of the request (module docs).
    Canonical,
    /// The body bytes only.
    Body,
}

/// `[auth]` with `scheme = "sm2-cert"`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sm2CertSpec {
    /// `header`, or `json` (a signed JSON envelope).
    #[serde(default = "default_where")]
    pub signature_in: Where,
    /// Signatures as `hex` or `base64`.
    #[serde(default = "default_encoding")]
    pub encoding: Encoding,
    /// Signatures written as `raw` `r‖s` (64 bytes) or `der`; verification accepts both.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Header placement: `canonical` (7 lines: method, path, canonical query as hub-v1's, app
    /// id, timestamp, nonce, hex SM3 of the body) or `body` (the body bytes alone: `hub check`
    /// warns that method, path and time are then unsigned).
    #[serde(default = "default_signed")]
    pub signed: Signed,
    /// Header placement: the signature's header.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Header placement: the app id's header.
    #[serde(default = "default_app_id_header")]
    pub app_id_header: String,
    /// Header placement: the timestamp's header.
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
    /// Header placement: the nonce's header.
    #[serde(default = "default_nonce_header")]
    pub nonce_header: String,
    /// Outbound: a header carrying the hub's certificate (base64 of its DER bytes).
    #[serde(default)]
    pub certificate_header: Option<String>,
    /// JSON placement: JSON pointer of the signed value (`""`: the whole body).
    #[serde(default = "default_data_pointer")]
    pub data_pointer: String,
    /// JSON placement: where the signature is.
    #[serde(default = "default_signature_pointer")]
    pub signature_pointer: String,
    /// JSON placement: where the app id is.
    #[serde(default = "default_app_id_pointer")]
    pub app_id_pointer: String,
    /// JSON placement: where the timestamp is (`hub check` warns when it lies outside the
    /// signed data).
    #[serde(default = "default_timestamp_pointer")]
    pub timestamp_pointer: String,
    /// JSON placement: where the nonce is (`hub check` warns when it lies outside the signed
    /// data).
    #[serde(default = "default_nonce_pointer")]
    pub nonce_pointer: String,
}

fn default_where() -> Where {
    Where::Header
}
fn default_encoding() -> Encoding {
    Encoding::Hex
}
fn default_format() -> Format {
    Format::Raw
}
fn default_signed() -> Signed {
    Signed::Canonical
}
fn default_signature_header() -> String {
    "X-Signature".into()
}
fn default_app_id_header() -> String {
    "X-App-Id".into()
}
fn default_timestamp_header() -> String {
    "X-Timestamp".into()
}
fn default_nonce_header() -> String {
    "X-Nonce".into()
}
fn default_data_pointer() -> String {
    String::new()
}
fn default_signature_pointer() -> String {
    "/sign".into()
}
fn default_app_id_pointer() -> String {
    "/appId".into()
}
fn default_timestamp_pointer() -> String {
    "/timestamp".into()
}
fn default_nonce_pointer() -> String {
    "/nonce".into()
}

fn is_pointer(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

impl Sm2CertSpec {
    pub fn check(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        for (k, p) in [
            ("data_pointer", &self.data_pointer),
            ("signature_pointer", &self.signature_pointer),
            ("app_id_pointer", &self.app_id_pointer),
            ("timestamp_pointer", &self.timestamp_pointer),
            ("nonce_pointer", &self.nonce_pointer),
        ] {
            if !is_pointer(p) {
                out.push(SpecProblem::error(
                    format!("auth.{k}"),
                    "a JSON pointer starts with `/` (or is empty for the whole body)",
                ));
            }
        }
        if self.signature_in == Where::Json {
            if self.signature_pointer.is_empty() {
                out.push(SpecProblem::error(
                    "auth.signature_pointer",
                    "must name a member of the envelope",
                ));
            }
            for (k, p) in [
                ("timestamp_pointer", &self.timestamp_pointer),
                ("nonce_pointer", &self.nonce_pointer),
            ] {
                if !p.starts_with(&self.data_pointer) {
                    out.push(SpecProblem::warning(
                        format!("auth.{k}"),
                        format!(
                            "`{p}` lies outside the signed data `{}`: it can be changed in transit",
                            self.data_pointer
                        ),
                    ));
                }
            }
        }
        if self.signature_in == Where::Header && self.signed == Signed::Body {
            out.push(SpecProblem::warning(
                "auth.signed",
                "signing the body alone leaves method, path, query, timestamp and nonce unsigned: a request can be replayed to another path",
            ));
        }
        out
    }

    fn encode(&self, raw: &[u8; 64]) -> String {
        let bytes = match self.format {
            Format::Raw => raw.to_vec(),
            Format::Der => der_encode(raw),
        };
        match self.encoding {
            Encoding::Hex => hex::encode(bytes),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// `r‖s` from the signature text, raw or DER, in the configured encoding.
    fn decode(&self, text: &str) -> Option<[u8; 64]> {
        let bytes = match self.encoding {
            Encoding::Hex => hex::decode(text.trim()).ok()?,
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?,
        };
        if bytes.len() == 64 {
            let mut out = [0u8; 64];
            out.copy_from_slice(&bytes);
            Some(out)
        } else {
            der_decode(&bytes)
        }
    }

    /// The bytes signed in header placement.
    #[allow(clippy::too_many_arguments)]
    pub fn canonical(
        &self,
        method: &str,
        path: &str,
        query: &str,
        app_id: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Vec<u8> {
        match self.signed {
            Signed::Body => body.to_vec(),
            Signed::Canonical => [
                method.to_ascii_uppercase(),
                path.to_string(),
                hub_security::signing::canonical_query(query),
                app_id.to_string(),
                timestamp.to_string(),
                nonce.to_string(),
                hub_security::sm::sm3_hex(body),
            ]
            .join("\n")
            .into_bytes(),
        }
    }

    /// The bytes signed in JSON placement: the canonical JSON of the data, signature removed.
    pub fn envelope_data(&self, envelope: &Value) -> Option<Vec<u8>> {
        let mut doc = envelope.clone();
        remove_pointer(&mut doc, &self.signature_pointer);
        doc.pointer(&self.data_pointer)
            .map(crate::canonical_json::to_vec)
    }
}

/// DER of an SM2 signature `r‖s`.
pub fn der_encode(raw: &[u8; 64]) -> Vec<u8> {
    fn int(x: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        if v.is_empty() {
            v.push(0);
        }
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let mut body = int(&raw[..32]);
    body.extend(int(&raw[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// `r‖s` of a DER SM2 signature.
pub fn der_decode(der: &[u8]) -> Option<[u8; 64]> {
    let (&tag, rest) = der.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if tag != 0x30 || len as usize != rest.len() || len >= 0x80 {
        return None;
    }
    let mut out = [0u8; 64];
    let mut rest = rest;
    for half in 0..2 {
        let (&t, r) = rest.split_first()?;
        let (&l, r) = r.split_first()?;
        let l = l as usize;
        if t != 0x02 || l == 0 || l > 33 || r.len() < l {
            return None;
        }
        let (int, r) = r.split_at(l);
        let int = if l == 33 {
            if int[0] != 0 {
                return None;
            }
            &int[1..]
        } else {
            int
        };
        out[half * 32 + 32 - int.len()..half * 32 + 32].copy_from_slice(int);
        rest = r;
    }
    rest.is_empty().then_some(out)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn remove_pointer(doc: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    if let Some(Value::Object(map)) = doc.pointer_mut(parent) {
        map.remove(&unescape(last));
    }
}

fn set_pointer(doc: &mut Value, pointer: &str, value: Value) -> Result<(), SignError> {
    let (parent, last) = pointer
        .rsplit_once('/')
        .ok_or_else(|| SignError::Unsignable(format!("`{pointer}` is not a JSON pointer")))?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(unescape(last), value);
            Ok(())
        }
        _ => Err(SignError::Unsignable(format!(
            "the body has no object at `{parent}` to put `{last}` in"
        ))),
    }
}

fn text_at(doc: &Value, pointer: &str) -> Option<String> {
    match doc.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Signs the hub's calls with its SM2 key.
pub struct Sm2CertSigner {
    spec: Sm2CertSpec,
    app_id: String,
    key: hub_security::sm::Sm2PrivateKey,
    certificate_der: Option<Vec<u8>>,
}

impl Sm2CertSigner {
    pub fn new(spec: Sm2CertSpec, credentials: OutboundCredentials) -> Result<Self, SignError> {
        let key = credentials.sm2_private_key.ok_or_else(|| {
            SignError::Credential("sm2-cert needs the hub's SM2 key (sm2_private_key_file)".into())
        })?;
        if spec.certificate_header.is_some() && credentials.certificate_der.is_none() {
            return Err(SignError::Credential(
                "the adapter sends the hub's certificate (certificate_header): set sm2_certificate_file".into(),
            ));
        }
        Ok(Self {
            spec,
            app_id: credentials.app_id,
            key,
            certificate_der: credentials.certificate_der,
        })
    }
}

#[async_trait::async_trait]
impl OutboundSigner for Sm2CertSigner {
    fn scheme(&self) -> &'static str {
        "sm2-cert"
    }

    async fn sign(&self, request: &mut OutboundRequest, now_ms: i64) -> Result<(), SignError> {
        let s = &self.spec;
        let timestamp = now_ms.to_string();
        let nonce = hex::encode(hub_security::sm::random::<16>());
        match s.signature_in {
            Where::Header => {
                let signed = s.canonical(
                    &request.method,
                    &request.path,
                    &request.query,
                    &self.app_id,
                    &timestamp,
                    &nonce,
                    &request.body,
                );
                let signature = s.encode(&self.key.sign(&signed));
                request.set_header(&s.app_id_header, self.app_id.clone());
                request.set_header(&s.timestamp_header, timestamp);
                request.set_header(&s.nonce_header, nonce);
                request.set_header(&s.signature_header, signature);
            }
            Where::Json => {
                let mut doc: Value = serde_json::from_slice(&request.body).map_err(|_| {
                    SignError::Unsignable("a signed JSON envelope needs a JSON body".into())
                })?;
                set_pointer(
                    &mut doc,
                    &s.app_id_pointer,
                    Value::String(self.app_id.clone()),
                )?;
                set_pointer(&mut doc, &s.timestamp_pointer, Value::String(timestamp))?;
                set_pointer(&mut doc, &s.nonce_pointer, Value::String(nonce))?;
                let data = s.envelope_data(&doc).ok_or_else(|| {
                    SignError::Unsignable(format!("the body has no `{}`", s.data_pointer))
                })?;
                let signature = s.encode(&self.key.sign(&data));
                set_pointer(&mut doc, &s.signature_pointer, Value::String(signature))?;
                request.body = serde_json::to_vec(&doc).expect("a JSON value serialises");
            }
        }
        if let (Some(h), Some(der)) = (&s.certificate_header, &self.certificate_der) {
            request.set_header(h, base64::engine::general_purpose::STANDARD.encode(der));
        }
        Ok(())
    }
}

impl InboundVerifier for Sm2CertSpec {
    fn scheme(&self) -> &'static str {
        "sm2-cert"
    }

    fn claim(&self, request: &InboundRequest<'_>) -> Result<Claim, Refusal> {
        let (app_id, ts, nonce) = match self.signature_in {
            Where::Header => {
                let h = |n: &str| request.header(&n.to_ascii_lowercase());
                if h(&self.signature_header).is_none() {
                    return Err(Refusal::Missing);
                }
                (
                    h(&self.app_id_header),
                    h(&self.timestamp_header),
                    h(&self.nonce_header),
                )
            }
            Where::Json => {
                let doc: Value =
                    serde_json::from_slice(request.body).map_err(|_| Refusal::Missing)?;
                if text_at(&doc, &self.signature_pointer).is_none() {
                    return Err(Refusal::Missing);
                }
                (
                    text_at(&doc, &self.app_id_pointer),
                    text_at(&doc, &self.timestamp_pointer),
                    text_at(&doc, &self.nonce_pointer),
                )
            }
        };
        let (Some(app_id), Some(ts), Some(nonce)) = (app_id, ts, nonce) else {
            return Err(Refusal::Missing);
        };
        let timestamp_ms: i64 = ts.parse().map_err(|_| Refusal::Timestamp)?;
        if !(8..=64).contains(&nonce.len())
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Refusal::Nonce);
        }
        Ok(Claim {
            app_id,
            timestamp_ms: Some(timestamp_ms),
            nonce: Some(nonce),
        })
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        claim: &Claim,
        credentials: &Credentials,
    ) -> Result<(), Refusal> {
        let key = credentials
            .sm2_public_key
            .as_ref()
            .ok_or(Refusal::Signature)?;
        let (signed, signature) = match self.signature_in {
            Where::Header => {
                let h = |n: &str| request.header(&n.to_ascii_lowercase());
                let signature = h(&self.signature_header).ok_or(Refusal::Missing)?;
                let ts = h(&self.timestamp_header).ok_or(Refusal::Missing)?;
                let signed = self.canonical(
                    request.method,
                    request.path,
                    request.query,
                    &claim.app_id,
                    &ts,
                    claim.nonce.as_deref().unwrap_or_default(),
                    request.body,
                );
                (signed, signature)
            }
            Where::Json => {
                let doc: Value =
                    serde_json::from_slice(request.body).map_err(|_| Refusal::Missing)?;
                let signature = text_at(&doc, &self.signature_pointer).ok_or(Refusal::Missing)?;
                let signed = self.envelope_data(&doc).ok_or(Refusal::Missing)?;
                (signed, signature)
            }
        };
        let raw = self.decode(&signature).ok_or(Refusal::Signature)?;
        hub_security::sm::sm2_verify(key, &signed, &raw).map_err(|_| Refusal::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_round_trips_with_leading_zeros_and_high_bits() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a 0x00 pad
        raw[33] = 0x01; // s starts with a zero byte
        raw[63] = 0x7f;
        let der = der_encode(&raw);
        assert_eq!(der[2..5], [0x02, 33, 0x00]);
        assert_eq!(der_decode(&der), Some(raw));
        assert_eq!(der_decode(&der[..der.len() - 1]), None);
        let mut bad = der.clone();
        bad[0] = 0x31;
        assert_eq!(der_decode(&bad), None);
    }
}
