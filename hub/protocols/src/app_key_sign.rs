//! `app-key-sign`: an app key, a timestamp and a nonce, and a signature over the sorted
//! parameters (and the body), as Chinese government platforms commonly sign their APIs.
//!
//! The string signed is built from a set of parameters:
//!
//! 1. the query parameters (percent-decoded), the form fields of a form body
//!    (`placement = "form"`), or the top-level scalar fields of a JSON object body
//!    (`body = "fields"`);
//! 2. the app key, timestamp and nonce parameters (wherever `placement` puts them);
//! 3. with `body = "raw"` the body text as parameter `body_param`; with `body = "digest"` the
//!    lowercase hex digest of the body bytes (the unkeyed hash of `digest`).
//!
//! Left out: `sign_param` itself, the names in `exclude`, and (with `skip_empty`) empty
//! values. Names are cased by `key_case`, the pairs sorted by name in byte order (or in the
//! order of `order`, unlisted names last in byte order), and joined as `name=value` with `&`.
//! Then `hmac-sm3`/`hmac-sha256` sign that string with the secret as key, while `sm3`,
//! `sha256` and `md5` hash it with the secret added as `secret_mode` says
//! (`&key=<secret>` appended, or the secret before and after). The signature is hex in
//! `signature_case`. `docs/auth-schemes.md` has a worked example that a test recomputes.

use serde::Deserialize;
use serde_json::Value;

use crate::digest::Algorithm;
use crate::{
    equal, Claim, Credentials, InboundRequest, InboundVerifier, OutboundCredentials,
    OutboundRequest, OutboundSigner, Refusal, SignError, SpecProblem,
};

/// Where the app key, timestamp, nonce and signature travel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Query parameters.
    Query,
    /// Fields of an `application/x-www-form-urlencoded` body.
    Form,
    /// Headers named like the parameters.
    Headers,
    /// Top-level fields of the JSON object body.
    Json,
}

/// What of the body is signed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BodyPart {
    /// Nothing of the body (beyond form fields with `placement = "form"`).
    None,
    /// The body text as one parameter (`body_param`).
    Raw,
    /// The hex digest of the body bytes as one parameter (`body_param`).
    Digest,
    /// The top-level scalar fields of a JSON object body, as parameters.
    Fields,
}

/// Case of parameter names before sorting.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    Keep,
    Lower,
    Upper,
}

/// How the secret joins the string for unkeyed digests.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SecretMode {
    /// `<string>&<secret_param>=<secret>`.
    Append,
    /// `<secret><string><secret>`.
    Wrap,
}

/// Unit of the timestamp parameter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    Ms,
    S,
}

/// `[auth]` with `scheme = "app-key-sign"`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppKeySignSpec {
    /// `sm3`, `hmac-sm3`, `sha256`, `hmac-sha256`, or `md5` (legacy; `hub check` warns).
    pub digest: Algorithm,
    /// Where app key, timestamp, nonce and signature travel: `query`, `form` (fields of an
    /// `application/x-www-form-urlencoded` body), `headers` (named like the parameters),
    /// `json` (top-level fields of the JSON body).
    #[serde(default = "default_placement")]
    pub placement: Placement,
    /// The name of the app key parameter.
    #[serde(default = "default_app_key")]
    pub app_key_param: String,
    /// The name of the timestamp parameter.
    #[serde(default = "default_timestamp")]
    pub timestamp_param: String,
    /// The name of the nonce parameter.
    #[serde(default = "default_nonce")]
    pub nonce_param: String,
    /// The name of the signature parameter.
    #[serde(default = "default_sign")]
    pub sign_param: String,
    /// The timestamp in milliseconds (`ms`) or seconds (`s`).
    #[serde(default = "default_unit")]
    pub timestamp_unit: TimeUnit,
    /// What of the body is signed: `none`, `raw` (the body text as parameter `body_param`),
    /// `digest` (hex digest of the body bytes with the unkeyed hash of `digest` as
    /// `body_param`), `fields` (top-level string, number and boolean fields of a JSON object
    /// body).
    #[serde(default = "default_body")]
    pub body: BodyPart,
    /// The name of the body parameter.
    #[serde(default = "default_body_param")]
    pub body_param: String,
    /// Case of names before sorting: `keep`, `lower`, `upper`.
    #[serde(default = "default_case")]
    pub key_case: Case,
    /// Names put first, in this order (after casing); the rest follow in byte order.
    #[serde(default)]
    pub order: Vec<String>,
    /// Names never signed (besides `sign_param`; app key, timestamp and nonce cannot be
    /// excluded).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Leave parameters with empty values out.
    #[serde(default = "yes")]
    pub skip_empty: bool,
    /// Unkeyed digests: `append` (`<string>&<secret_param>=<secret>`) or `wrap`
    /// (`<secret><string><secret>`).
    #[serde(default = "default_secret_mode")]
    pub secret_mode: SecretMode,
    /// The name used by `append`.
    #[serde(default = "default_secret_param")]
    pub secret_param: String,
    /// Hex case of the signature sent: `lower` or `upper` (verification accepts either;
    /// `keep` is refused).
    #[serde(default = "default_signature_case")]
    pub signature_case: Case,
}

fn default_placement() -> Placement {
    Placement::Query
}
fn default_app_key() -> String {
    "appKey".into()
}
fn default_timestamp() -> String {
    "timestamp".into()
}
fn default_nonce() -> String {
    "nonce".into()
}
fn default_sign() -> String {
    "sign".into()
}
fn default_unit() -> TimeUnit {
    TimeUnit::Ms
}
fn default_body() -> BodyPart {
    BodyPart::Digest
}
fn default_body_param() -> String {
    "bodyDigest".into()
}
fn default_case() -> Case {
    Case::Keep
}
fn yes() -> bool {
    true
}
fn default_secret_mode() -> SecretMode {
    SecretMode::Append
}
fn default_secret_param() -> String {
    "key".into()
}
fn default_signature_case() -> Case {
    Case::Lower
}

fn is_param_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl AppKeySignSpec {
    pub fn check(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        if self.digest == Algorithm::Md5 {
            out.push(SpecProblem::warning(
                "auth.digest",
                "md5 is a legacy digest that can be forged; use it only for a partner that offers nothing else (sm3, hmac-sm3, sha256, hmac-sha256)",
            ));
        }
        for (key, v) in [
            ("app_key_param", &self.app_key_param),
            ("timestamp_param", &self.timestamp_param),
            ("nonce_param", &self.nonce_param),
            ("sign_param", &self.sign_param),
            ("body_param", &self.body_param),
            ("secret_param", &self.secret_param),
        ] {
            if !is_param_name(v) {
                out.push(SpecProblem::error(
                    format!("auth.{key}"),
                    "must be 1-64 characters of A-Z a-z 0-9 _ - .",
                ));
            }
        }
        let names = [
            &self.app_key_param,
            &self.timestamp_param,
            &self.nonce_param,
            &self.sign_param,
        ];
        for (i, a) in names.iter().enumerate() {
            if names[i + 1..].contains(a) {
                out.push(SpecProblem::error(
                    "auth.sign_param",
                    format!("parameter name `{a}` is used twice"),
                ));
            }
        }
        if self.placement == Placement::Json
            && matches!(self.body, BodyPart::Raw | BodyPart::Digest)
        {
            out.push(SpecProblem::error(
                "auth.body",
                "with placement = \"json\" the signature is inside the body: sign its fields (body = \"fields\")",
            ));
        }
        if self.placement == Placement::Form && self.body != BodyPart::None {
            out.push(SpecProblem::error(
                "auth.body",
                "with placement = \"form\" the form fields are the parameters: body = \"none\"",
            ));
        }
        if self.signature_case == Case::Keep {
            out.push(SpecProblem::error(
                "auth.signature_case",
                "must be lower or upper",
            ));
        }
        for x in &self.exclude {
            if [
                &self.app_key_param,
                &self.timestamp_param,
                &self.nonce_param,
            ]
            .contains(&x)
            {
                out.push(SpecProblem::error(
                    "auth.exclude",
                    format!("`{x}` must be signed: it cannot be excluded"),
                ));
            }
        }
        out
    }

    fn case(&self, name: &str) -> String {
        match self.key_case {
            Case::Keep => name.to_string(),
            Case::Lower => name.to_lowercase(),
            Case::Upper => name.to_uppercase(),
        }
    }

    /// The string the signature is computed over (before the secret is added), from every
    /// parameter of the request.
    pub fn string_to_sign(&self, params: &[(String, String)]) -> String {
        let excluded = |n: &str| {
            n == self.case(&self.sign_param) || self.exclude.iter().any(|x| self.case(x) == n)
        };
        let mut pairs: Vec<(String, &str)> = params
            .iter()
            .map(|(n, v)| (self.case(n), v.as_str()))
            .filter(|(n, v)| !excluded(n) && (!self.skip_empty || !v.is_empty()))
            .collect();
        let rank = |n: &str| {
            self.order
                .iter()
                .position(|o| self.case(o) == n)
                .unwrap_or(usize::MAX)
        };
        pairs.sort_by(|(a, av), (b, bv)| {
            rank(a)
                .cmp(&rank(b))
                .then_with(|| a.as_bytes().cmp(b.as_bytes()))
                .then_with(|| av.as_bytes().cmp(bv.as_bytes()))
        });
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The signature (hex in `signature_case`) of `string` with `secret`.
    pub fn signature(&self, string: &str, secret: &[u8]) -> String {
        let raw = if self.digest.is_hmac() {
            self.digest.hmac(secret, string.as_bytes())
        } else {
            let mut data = Vec::new();
            match self.secret_mode {
                SecretMode::Append => {
                    data.extend_from_slice(string.as_bytes());
                    data.extend_from_slice(format!("&{}=", self.secret_param).as_bytes());
                    data.extend_from_slice(secret);
                }
                SecretMode::Wrap => {
                    data.extend_from_slice(secret);
                    data.extend_from_slice(string.as_bytes());
                    data.extend_from_slice(secret);
                }
            }
            self.digest.hash(&data)
        };
        let h = hex::encode(raw);
        if self.signature_case == Case::Upper {
            h.to_uppercase()
        } else {
            h
        }
    }

    /// Every parameter of a request (query, form or JSON fields, auth headers, body part).
    fn params(
        &self,
        query: &str,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let mut params = decode_pairs(query);
        match self.placement {
            Placement::Form => params.extend(decode_pairs(
                std::str::from_utf8(body).map_err(|_| "the form body is not UTF-8")?,
            )),
            Placement::Headers => {
                for name in [
                    &self.app_key_param,
                    &self.timestamp_param,
                    &self.nonce_param,
                ] {
                    if let Some(v) = header(&name.to_ascii_lowercase()) {
                        params.push((name.clone(), v));
                    }
                }
            }
            Placement::Query | Placement::Json => {}
        }
        match self.body {
            BodyPart::None => {}
            BodyPart::Raw => params.push((
                self.body_param.clone(),
                String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8")?,
            )),
            BodyPart::Digest => {
                params.push((self.body_param.clone(), hex::encode(self.digest.hash(body))))
            }
            BodyPart::Fields => {
                if !body.is_empty() {
                    let v: Value = serde_json::from_slice(body)
                        .map_err(|_| "the body is not a JSON object")?;
                    let Value::Object(map) = v else {
                        return Err("the body is not a JSON object".into());
                    };
                    for (k, v) in map {
                        match v {
                            Value::String(s) => params.push((k, s)),
                            Value::Number(n) => params.push((k, n.to_string())),
                            Value::Bool(b) => params.push((k, b.to_string())),
                            // Null, objects and arrays are not parameters.
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok(params)
    }

    fn find<'p>(&self, params: &'p [(String, String)], name: &str) -> Option<&'p str> {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `a=1&b=%E5%B7%A5` → `[("a","1"), ("b","工")]` (`+` is a space, as forms encode it).
pub fn decode_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Form/query encoding of one value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Signs the hub's calls.
pub struct AppKeySigner {
    spec: AppKeySignSpec,
    app_key: String,
    secret: Vec<u8>,
}

impl AppKeySigner {
    pub fn new(spec: AppKeySignSpec, credentials: OutboundCredentials) -> Result<Self, SignError> {
        let secret = credentials.secret.ok_or_else(|| {
            SignError::Credential("app-key-sign needs the app secret (hmac_secret)".into())
        })?;
        Ok(Self {
            spec,
            app_key: credentials.app_id,
            secret,
        })
    }
}

#[async_trait::async_trait]
impl OutboundSigner for AppKeySigner {
    fn scheme(&self) -> &'static str {
        "app-key-sign"
    }

    async fn sign(&self, request: &mut OutboundRequest, now_ms: i64) -> Result<(), SignError> {
        let s = &self.spec;
        let timestamp = match s.timestamp_unit {
            TimeUnit::Ms => now_ms.to_string(),
            TimeUnit::S => now_ms.div_euclid(1000).to_string(),
        };
        let nonce = hex::encode(hub_security::sm::random::<16>());
        let auth = [
            (s.app_key_param.clone(), self.app_key.clone()),
            (s.timestamp_param.clone(), timestamp),
            (s.nonce_param.clone(), nonce),
        ];
        // Place the three parameters first, so the signature covers the request as sent.
        let mut json_body: Option<serde_json::Map<String, Value>> = None;
        match s.placement {
            Placement::Query | Placement::Form => {
                let mut text = if s.placement == Placement::Query {
                    std::mem::take(&mut request.query)
                } else {
                    String::from_utf8(std::mem::take(&mut request.body))
                        .map_err(|_| SignError::Unsignable("the form body is not UTF-8".into()))?
                };
                for (n, v) in &auth {
                    if !text.is_empty() {
                        text.push('&');
                    }
                    text.push_str(&format!("{}={}", encode(n), encode(v)));
                }
                if s.placement == Placement::Query {
                    request.query = text;
                } else {
                    request.body = text.into_bytes();
                }
            }
            Placement::Headers => {
                for (n, v) in &auth {
                    request.set_header(n, v.clone());
                }
            }
            Placement::Json => {
                let v: Value = if request.body.is_empty() {
                    Value::Object(Default::default())
                } else {
                    serde_json::from_slice(&request.body).map_err(|_| {
                        SignError::Unsignable("placement json needs a JSON object body".into())
                    })?
                };
                let Value::Object(mut map) = v else {
                    return Err(SignError::Unsignable(
                        "placement json needs a JSON object body".into(),
                    ));
                };
                for (n, v) in &auth {
                    map.insert(n.clone(), Value::String(v.clone()));
                }
                request.body = serde_json::to_vec(&map).expect("a JSON map serialises");
                json_body = Some(map);
            }
        }
        let lookup = |name: &str| request.header(name).map(str::to_string);
        let params = s
            .params(&request.query, lookup, &request.body)
            .map_err(SignError::Unsignable)?;
        let signature = s.signature(&s.string_to_sign(&params), &self.secret);
        match s.placement {
            Placement::Query => {
                request
                    .query
                    .push_str(&format!("&{}={}", encode(&s.sign_param), signature));
            }
            Placement::Form => {
                request.body.extend_from_slice(
                    format!("&{}={}", encode(&s.sign_param), signature).as_bytes(),
                );
            }
            Placement::Headers => request.set_header(&s.sign_param, signature),
            Placement::Json => {
                let mut map = json_body.expect("set above");
                map.insert(s.sign_param.clone(), Value::String(signature));
                request.body = serde_json::to_vec(&map).expect("a JSON map serialises");
            }
        }
        Ok(())
    }
}

impl InboundVerifier for AppKeySignSpec {
    fn scheme(&self) -> &'static str {
        "app-key-sign"
    }

    fn claim(&self, request: &InboundRequest<'_>) -> Result<Claim, Refusal> {
        let params = self.all_params(request).map_err(|_| Refusal::Missing)?;
        let (Some(app_key), Some(ts), Some(nonce), Some(_)) = (
            self.find(&params, &self.app_key_param),
            self.find(&params, &self.timestamp_param),
            self.find(&params, &self.nonce_param),
            self.find(&params, &self.sign_param),
        ) else {
            return Err(Refusal::Missing);
        };
        let ts: i64 = ts.parse().map_err(|_| Refusal::Timestamp)?;
        let timestamp_ms = match self.timestamp_unit {
            TimeUnit::Ms => ts,
            TimeUnit::S => ts.checked_mul(1000).ok_or(Refusal::Timestamp)?,
        };
        if !(8..=64).contains(&nonce.len())
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Refusal::Nonce);
        }
        Ok(Claim {
            app_id: app_key.to_string(),
            timestamp_ms: Some(timestamp_ms),
            nonce: Some(nonce.to_string()),
        })
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        _claim: &Claim,
        credentials: &Credentials,
    ) -> Result<(), Refusal> {
        let secret = credentials.secret.as_ref().ok_or(Refusal::Signature)?;
        let params = self.all_params(request).map_err(|_| Refusal::Signature)?;
        let given = self
            .find(&params, &self.sign_param)
            .ok_or(Refusal::Missing)?
            .to_ascii_lowercase();
        let expected = self
            .signature(&self.string_to_sign(&params), secret)
            .to_ascii_lowercase();
        if equal(given.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::Signature)
        }
    }
}

impl AppKeySignSpec {
    /// The parameters of a received request; with `placement = "json"` the auth fields are
    /// read out of the JSON body (and the body's fields are the parameters).
    fn all_params(&self, request: &InboundRequest<'_>) -> Result<Vec<(String, String)>, String> {
        let mut params = self.params(request.query, |n| request.header(n), request.body)?;
        if self.placement == Placement::Json && self.body != BodyPart::Fields {
            // The auth fields still come from the body.
            let v: Value = serde_json::from_slice(request.body).map_err(|_| "not a JSON object")?;
            for name in [
                &self.app_key_param,
                &self.timestamp_param,
                &self.nonce_param,
                &self.sign_param,
            ] {
                if let Some(Value::String(s)) = v.get(name.as_str()) {
                    params.push((name.clone(), s.clone()));
                }
            }
        }
        if self.placement == Placement::Headers {
            if let Some(v) = request.header(&self.sign_param.to_ascii_lowercase()) {
                params.push((self.sign_param.clone(), v));
            }
        }
        Ok(params)
    }
}
