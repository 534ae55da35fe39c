//! The OpenAPI 3 document of the partner-facing endpoints, generated from the same mappings the
//! router serves and the same `[auth]` specs the gateway verifies with, so it cannot drift from
//! them. Served at `GET /openapi.json` on the gateway.
//!
//! Each path carries its partner's scheme: as OpenAPI security schemes where the credentials
//! travel in headers or the query (hub-v1, app-key-sign in the query or headers, ak-sk,
//! sm2-cert in headers, oauth2 bearer tokens), and always as `x-hub-auth`, the scheme's
//! parameters exactly as the adapter declares them (never credentials), which also covers
//! what OpenAPI cannot express (a signature inside the body).

use hub_protocols::AuthSpec;
use serde_json::{json, Map, Value};

use crate::errors::ErrorCode;
use crate::Gateway;

/// An `apiKey` security scheme.
fn api_key(place: &str, name: &str, description: &str) -> Value {
    json!({ "type": "apiKey", "in": place, "name": name, "description": description })
}

/// The hub-v1 headers, shared by every hub-v1 partner.
fn hub_v1_schemes() -> Vec<(String, Value)> {
    let key = |name: &str, description: &str| api_key("header", name, description);
    vec![
        ("appId".into(), key("X-Hub-App-Id", "应用标识 / app id")),
        (
            "timestamp".into(),
            key(
                "X-Hub-Timestamp",
                "Unix 毫秒时间戳 / Unix time in milliseconds",
            ),
        ),
        (
            "nonce".into(),
            key(
                "X-Hub-Nonce",
                "16-64 个字符的随机数 / 16-64 characters of A-Z a-z 0-9 - _",
            ),
        ),
        (
            "signatureMethod".into(),
            key("X-Hub-Signature-Method", "HMAC-SM3 | SM2-SM3"),
        ),
        (
            "signature".into(),
            key(
                "X-Hub-Signature",
                "对规范字符串的签名（十六进制）/ lowercase hex signature over the canonical string",
            ),
        ),
    ]
}

/// A partner's security: its schemes (name → object), the requirement naming them (none when
/// the credentials travel in the body), and one sentence for the operation's description.
fn security(partner: &str, spec: &AuthSpec) -> (Vec<(String, Value)>, Option<Value>, String) {
    let named = |param: &str| format!("{partner}.{param}");
    let requirement = |schemes: &[(String, Value)]| {
        let mut r = Map::new();
        for (name, _) in schemes {
            r.insert(name.clone(), json!([]));
        }
        Some(Value::Object(r))
    };
    match spec {
        AuthSpec::HubV1 => {
            let schemes = hub_v1_schemes();
            let r = requirement(&schemes);
            (schemes, r, "hub-v1：X-Hub-* 请求头签名（docs/security.md） / hub-v1: the X-Hub-* headers over the canonical string (docs/security.md)".into())
        }
        AuthSpec::AppKeySign(s) => {
            let place = match s.placement {
                hub_protocols::app_key_sign::Placement::Query => Some("query"),
                hub_protocols::app_key_sign::Placement::Headers => Some("header"),
                _ => None,
            };
            let text = format!(
                "app-key-sign：应用密钥、时间戳、随机数及对排序参数的 {} 签名 / app key, timestamp and nonce plus a {} signature over the sorted parameters (docs/auth-schemes.md)",
                s.digest.name(),
                s.digest.name()
            );
            match place {
                Some(place) => {
                    let schemes: Vec<(String, Value)> = [
                        (&s.app_key_param, "应用密钥 / app key"),
                        (&s.timestamp_param, "时间戳 / timestamp"),
                        (&s.nonce_param, "随机数 / nonce"),
                        (&s.sign_param, "签名 / signature"),
                    ]
                    .into_iter()
                    .map(|(param, what)| (named(param), api_key(place, param, what)))
                    .collect();
                    let r = requirement(&schemes);
                    (schemes, r, text)
                }
                None => (
                    Vec::new(),
                    None,
                    format!("{text}; 参数位于请求体 / the parameters are in the body"),
                ),
            }
        }
        AuthSpec::AkSk(s) => {
            let schemes = vec![(
                named("Authorization"),
                api_key(
                    "header",
                    "Authorization",
                    &format!(
                        "AWS4-HMAC-SHA256 Credential=<ak>/<date>/{}/{}/aws4_request, SignedHeaders=…, Signature=… (with X-Amz-Date)",
                        s.region, s.service
                    ),
                ),
            )];
            let r = requirement(&schemes);
            (schemes, r, "ak-sk：规范请求的 HMAC-SHA256 签名（AWS SigV4） / ak-sk: HMAC-SHA256 over the canonical request (AWS Signature Version 4)".into())
        }
        AuthSpec::Sm2Cert(s) => {
            let text = "sm2-cert：合作方证书对应私钥的 SM2 签名 / sm2-cert: an SM2 signature with the key of the partner's certificate".to_string();
            if s.signature_in == hub_protocols::sm2_cert::Where::Header {
                let schemes: Vec<(String, Value)> = [
                    (&s.app_id_header, "应用标识 / app id"),
                    (&s.timestamp_header, "时间戳 / timestamp"),
                    (&s.nonce_header, "随机数 / nonce"),
                    (&s.signature_header, "SM2 签名 / SM2 signature"),
                ]
                .into_iter()
                .map(|(header, what)| (named(header), api_key("header", header, what)))
                .collect();
                let r = requirement(&schemes);
                (schemes, r, text)
            } else {
                (
                    Vec::new(),
                    None,
                    format!("{text}; 签名位于请求体 / the signature is inside the body"),
                )
            }
        }
        AuthSpec::OAuth2(_) => {
            let schemes = vec![(
                named("oauth2"),
                json!({
                    "type": "oauth2",
                    "description": "枢纽签发的访问令牌（客户端凭证模式） / bearer tokens the hub issues (client credentials)",
                    "flows": { "clientCredentials": { "tokenUrl": "/v1/oauth2/token", "scopes": {} } }
                }),
            )];
            let r = requirement(&schemes);
            (
                schemes,
                r,
                "oauth2-client-credentials：Authorization: Bearer <令牌 / token>".into(),
            )
        }
    }
}

fn header(name: &str, description: &str, required: bool) -> Value {
    json!({ "name": name, "in": "header", "required": required, "description": description, "schema": { "type": "string" } })
}

/// The download route of links the hub sends files as (`docs/files.md`): no credentials but
/// the link's own signature.
fn download_path() -> Value {
    let error =
        json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
    json!({ "get": {
        "operationId": "files_download",
        "summary": "下载枢纽发送的文件 / download a file the hub sent as a link",
        "description": "枢纽以链接方式发送文件时（投递 file.style = \"url\"）签发的限时链接，链接自带签名，无需其他认证；请用链接中的文件标识（sm3:后为内容的 SM3）校验所收内容。/ The expiring link a delivery with file.style = \"url\" sends: signed itself (HMAC-SM3 over the id and expiry), no other credentials. Check the SM3 of what you receive against the id (docs/files.md).",
        "tags": ["files"],
        "security": [],
        "parameters": [
            { "name": "id", "in": "path", "required": true, "description": "文件标识 / hub file id", "schema": { "type": "string", "pattern": "^sm3:[0-9a-f]{64}$" } },
            { "name": "expires", "in": "query", "required": true, "description": "过期时间（Unix 秒）/ expiry, Unix seconds", "schema": { "type": "integer" } },
            { "name": "sig", "in": "query", "required": true, "description": "链接签名（十六进制）/ the link's signature, hex", "schema": { "type": "string" } }
        ],
        "responses": {
            "200": { "description": "文件内容 / the file, with its media type and length", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
            "400": { "description": "链接无效或已过期（FILE_URL_REFUSED）/ a forged or expired link (FILE_URL_REFUSED)", "content": error.clone() },
            "404": { "description": "文件不存在（FILE_NOT_FOUND）/ no such file (FILE_NOT_FOUND)", "content": error.clone() },
            "default": { "description": "错误 / error", "content": error }
        }
    } })
}

/// Builds the document.
pub fn document(gw: &Gateway) -> Value {
    let mut paths = Map::new();
    let mut security_schemes = Map::new();
    let mut token_endpoint = false;
    for m in gw
        .mappings
        .mappings
        .iter()
        .filter(|m| gw.pushable(&m.partner, &m.name).is_some())
    {
        let spec = gw.auth_specs.get(&m.partner).cloned().unwrap_or_default();
        let (schemes, requirement, how) = security(&m.partner, &spec);
        token_endpoint |= matches!(spec, AuthSpec::OAuth2(_));
        for (name, scheme) in schemes {
            security_schemes.insert(name, scheme);
        }
        let x_hub_auth = spec.describe();
        // The mapping's own media type (JSON, XML or a form), so this cannot drift from it.
        let media = m.content_type();
        let path = format!("/v1/{}/{}", m.partner, m.name);
        // A route whose pushes carry files (`[[file]]`, docs/files.md): a multipart body is
        // documented as one, and every declaration is shown as `x-hub-files`.
        let files = gw
            .files
            .as_ref()
            .and_then(|f| f.routes.get(&format!("{}/{}", m.partner, m.name)));
        let multipart = files
            .into_iter()
            .flatten()
            .find(|f| f.style == hub_files::wiring::ReceiveStyle::Multipart);
        let body_content = match multipart {
            Some(f) => {
                let part = f.part.clone().unwrap_or_else(|| "file".into());
                json!({ "multipart/form-data": { "schema": {
                    "type": "object",
                    "required": [part],
                    "properties": { part.clone(): { "type": "string", "format": "binary" } },
                    "additionalProperties": { "type": "string" }
                } } })
            }
            None => json!({ media: { "schema": { "type": "string", "format": "binary" } } }),
        };
        let mut operation = json!({
                    "operationId": format!("{}_{}", m.partner, m.name),
                    "summary": format!("{} → {}", m.name, m.contract),
                    "description": format!(
                        "推送一条报文，映射为契约 `{}` 并发布到同名主题。/ Push one message; it is mapped to contract `{}` and published on that topic. Field names: mappings/{}/README.md. 认证 / Authentication: {how}.",
                        m.contract, m.contract, m.partner
                    ),
                    "tags": [m.partner],
                    "x-hub-auth": x_hub_auth,
                    "parameters": parameters(&spec),
                    "requestBody": { "required": true, "content": body_content },
                    "responses": {
                        "200": { "description": "已接收（已写入 Kafka，acks=all）/ accepted: on Kafka with acks=all", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
                        "default": { "description": "拒绝，未接收 / refused: nothing was accepted", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                    }
        });
        // No `security` where the credentials travel in the body: an empty list would claim
        // the operation takes none; `x-hub-auth` describes it.
        if let Some(requirement) = requirement {
            operation["security"] = json!([requirement]);
        }
        if let Some(files) = files {
            operation["x-hub-files"] = serde_json::to_value(files).unwrap_or(Value::Null);
        }
        paths.insert(path, json!({ "post": operation }));
    }
    if token_endpoint {
        paths.insert(
            "/v1/oauth2/token".into(),
            json!({
                "post": {
                    "operationId": "oauth2_token",
                    "summary": "签发访问令牌 / issue an access token (client credentials, RFC 6749 §4.4)",
                    "tags": ["oauth2"],
                    "requestBody": { "required": true, "content": { "application/x-www-form-urlencoded": { "schema": {
                        "type": "object", "required": ["grant_type"],
                        "properties": { "grant_type": { "type": "string", "enum": ["client_credentials"] }, "client_id": { "type": "string" }, "client_secret": { "type": "string" } }
                    } } } },
                    "responses": { "200": { "description": "令牌 / the token", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["access_token", "token_type", "expires_in"],
                        "properties": { "access_token": { "type": "string" }, "token_type": { "type": "string" }, "expires_in": { "type": "integer" } }
                    } } } } }
                }
            }),
        );
    }
    if gw.downloads.is_some() {
        paths.insert(
            format!("{}/{{id}}", hub_files::config::DOWNLOAD_PATH),
            download_path(),
        );
    }
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "政务集成枢纽合作方接口 / Integration hub partner API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "每个请求都按合作方的认证方案签名或携带令牌，见各接口的 security 与 x-hub-auth。/ Every request is authenticated with its partner's scheme: see each operation's security and x-hub-auth, docs/security.md and docs/auth-schemes.md. Error codes: docs/errors.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": security_schemes,
            "schemas": {
                "Accepted": {
                    "type": "object",
                    "required": ["code", "message_zh", "message_en", "request_id", "message_id", "topic", "duplicate"],
                    "properties": {
                        "code": { "type": "string", "enum": ["ACCEPTED"] },
                        "message_zh": { "type": "string" },
                        "message_en": { "type": "string" },
                        "request_id": { "type": "string" },
                        "message_id": { "type": "string", "format": "uuid" },
                        "topic": { "type": "string" },
                        "duplicate": { "type": "boolean" }
                    }
                },
                "Error": {
                    "type": "object",
                    "required": ["code", "message_zh", "message_en", "request_id"],
                    "properties": {
                        "code": { "type": "string", "enum": codes },
                        "message_zh": { "type": "string" },
                        "message_en": { "type": "string" },
                        "request_id": { "type": "string" },
                        "detail": { "type": "object" }
                    }
                }
            }
        }
    })
}

/// The headers every push may carry, and those of the partner's scheme.
fn parameters(spec: &AuthSpec) -> Vec<Value> {
    let mut out = Vec::new();
    if *spec == AuthSpec::HubV1 {
        out.push(header("X-Hub-Signed-Headers", "纳入签名的其他请求头，以 ; 分隔 / the other headers the signature covers, `;`-separated: X-Partner-Message-Id, X-Correlation-Id and X-Hub-Encryption* must be among them when sent (docs/security.md)", false));
    }
    out.push(header("X-Partner-Message-Id", "合作方报文标识，重试时不变 / the partner's id of this message, unchanged on retries: makes the push idempotent", false));
    out.push(header(
        "X-Correlation-Id",
        "业务关联标识 / correlation id of the business case",
        false,
    ));
    if *spec == AuthSpec::HubV1 {
        out.push(header(
            "X-Hub-Encryption",
            "SM4-CBC | SM4-GCM: the body is encrypted (docs/security.md)",
            false,
        ));
        out.push(header(
            "X-Hub-Encryption-Key",
            "SM4 key wrapped with the hub's SM2 public key (hex, C1C3C2)",
            false,
        ));
        out.push(header(
            "X-Hub-Encrypt-Response",
            "true: encrypt the answer with the same key",
            false,
        ));
    }
    if let AuthSpec::AkSk(_) = spec {
        out.push(header(
            "X-Amz-Date",
            "签名时间 / signing time, YYYYMMDD'T'HHMMSS'Z'",
            true,
        ));
    }
    out.push(header("traceparent", "W3C trace context", false));
    out
}
