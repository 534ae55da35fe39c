//! The OpenAPI 3 document of the partner-facing endpoints, generated from the same mappings the
//! router serves, so it cannot drift from them. Served at `GET /openapi.json` on the gateway.

use hub_mapping::{Direction, MappingSet};
use serde_json::{json, Map, Value};

use crate::errors::ErrorCode;

fn header(name: &str, description: &str, required: bool) -> Value {
    json!({ "name": name, "in": "header", "required": required, "description": description, "schema": { "type": "string" } })
}

/// Builds the document.
pub fn document(mappings: &MappingSet) -> Value {
    let mut paths = Map::new();
    for m in mappings
        .mappings
        .iter()
        .filter(|m| m.direction == Direction::Inbound)
    {
        // The mapping's own media type (JSON, XML or a form), so this cannot drift from it.
        let media = m.content_type();
        let path = format!("/v1/{}/{}", m.partner, m.name);
        paths.insert(
            path,
            json!({
                "post": {
                    "operationId": format!("{}_{}", m.partner, m.name),
                    "summary": format!("{} → {}", m.name, m.contract),
                    "description": format!(
                        "推送一条报文，映射为契约 `{}` 并发布到同名主题。/ Push one message; it is mapped to contract `{}` and published on that topic. Field names: mappings/{}/README.md.",
                        m.contract, m.contract, m.partner
                    ),
                    "tags": [m.partner],
                    "security": [{ "appId": [], "timestamp": [], "nonce": [], "signatureMethod": [], "signature": [] }],
                    "parameters": [
                        header("X-Hub-Signed-Headers", "纳入签名的其他请求头，以 ; 分隔 / the other headers the signature covers, `;`-separated: X-Partner-Message-Id, X-Correlation-Id and X-Hub-Encryption* must be among them when sent (docs/security.md)", false),
                        header("X-Partner-Message-Id", "合作方报文标识，重试时不变 / the partner's id of this message, unchanged on retries: makes the push idempotent", false),
                        header("X-Correlation-Id", "业务关联标识 / correlation id of the business case", false),
                        header("X-Hub-Encryption", "SM4-CBC | SM4-GCM: the body is encrypted (docs/security.md)", false),
                        header("X-Hub-Encryption-Key", "SM4 key wrapped with the hub's SM2 public key (hex, C1C3C2)", false),
                        header("X-Hub-Encrypt-Response", "true: encrypt the answer with the same key", false),
                        header("traceparent", "W3C trace context", false),
                    ],
                    "requestBody": { "required": true, "content": { media: { "schema": { "type": "string", "format": "binary" } } } },
                    "responses": {
                        "200": { "description": "已接收（已写入 Kafka，acks=all）/ accepted: on Kafka with acks=all", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
                        "default": { "description": "拒绝，未接收 / refused: nothing was accepted", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
                    }
                }
            }),
        );
    }
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
    let key = |name: &str, description: &str| json!({ "type": "apiKey", "in": "header", "name": name, "description": description });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "政务集成枢纽合作方接口 / Integration hub partner API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every request is signed: see docs/security.md for the canonical string (HMAC-SM3 or SM2-SM3). Error codes: docs/errors.md."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "appId": key("X-Hub-App-Id", "应用标识 / app id"),
                "timestamp": key("X-Hub-Timestamp", "Unix 毫秒时间戳 / Unix time in milliseconds"),
                "nonce": key("X-Hub-Nonce", "16-64 个字符的随机数 / 16-64 characters of A-Z a-z 0-9 - _"),
                "signatureMethod": key("X-Hub-Signature-Method", "HMAC-SM3 | SM2-SM3"),
                "signature": key("X-Hub-Signature", "对规范字符串的签名（十六进制）/ lowercase hex signature over the canonical string")
            },
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
