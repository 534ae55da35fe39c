//! `application/x-www-form-urlencoded` bodies and query strings, both ways.
//!
//! Outbound, a mapping's result (an object) is written as `key=value&…`: each top-level scalar
//! once, each array of scalars as the key repeated, `null` as an empty value; a nested object
//! cannot be written and is refused (`MAPPING_OUTPUT_UNENCODABLE`). Keys come out in the
//! object's order (sorted, as VRL objects are). Text is first encoded in the mapping's charset
//! (UTF-8, GBK, GB18030: legacy platforms still post GBK forms), then every byte other than
//! `A–Z a–z 0–9 * - . _` is percent-encoded and a space becomes `+`, as the WHATWG URL standard's
//! form serializer does; so `+`, `&`, `=` and `%` inside values survive the round trip.
//!
//! Inbound, a form body becomes an object of strings (a repeated key an array of strings), so
//! an inbound mapping reads a form like a flat JSON object. `+` is a space, `%XX` a byte; a `%`
//! not followed by two hex digits is kept as it is (as browsers do). The bytes are then decoded
//! strictly in the charset: an undefined byte sequence is refused, never replaced. At most
//! `max_nodes` pairs are read.

use serde_json::{Map, Value};

use crate::limits::{Exceeded, InputLimits};
use crate::xml::{decode as decode_text, encode as encode_text, InputError};
use crate::Charset;

fn keep(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_')
}

/// Percent-encodes text in `charset` as a form component (space as `+`).
pub fn encode_component(text: &str, charset: Charset) -> Result<String, String> {
    let bytes = encode_text(text, charset)?;
    let mut out = String::with_capacity(bytes.len() * 3);
    for b in bytes {
        if keep(b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Writes an object of scalars (and arrays of scalars) as a form body / query string.
pub fn encode(value: &Value, charset: Charset) -> Result<String, String> {
    let Value::Object(map) = value else {
        return Err("a form body is written from an object of fields / 表单须由对象生成".into());
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        let key = encode_component(k, charset)?;
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in values {
            let text = scalar(item).ok_or_else(|| {
                format!(
                    "表单字段 `{k}` 不是标量或标量数组 / form field `{k}` is not a scalar or a list of scalars"
                )
            })?;
            pairs.push(format!("{key}={}", encode_component(&text, charset)?));
        }
    }
    Ok(pairs.join("&"))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `+` → space, `%XX` → the byte.
fn unescape(part: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < part.len() => match (hex(part[i + 1]), hex(part[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Reads a form body into an object of strings; a repeated key becomes an array.
pub fn decode(body: &[u8], charset: Charset, limits: &InputLimits) -> Result<Value, InputError> {
    let mut map = Map::new();
    let mut nodes = 0usize;
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        nodes += 1;
        if nodes > limits.max_nodes {
            return Err(InputError::Limit(Exceeded::Nodes(limits.max_nodes)));
        }
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode_text(&unescape(k), charset)?;
        let value = Value::String(decode_text(&unescape(v), charset)?);
        match map.get_mut(&key) {
            None => {
                map.insert(key, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chinese_text_and_reserved_characters_survive_the_round_trip() {
        let v = json!({
            "title": "路灯不亮 a+b & c=d 100%",
            "n": 3,
            "ok": true,
            "none": null,
            "tags": ["水务", "x y"],
        });
        let text = encode(&v, Charset::Utf8).unwrap();
        assert_eq!(
            text,
            "n=3&none=&ok=true&tags=%E6%B0%B4%E5%8A%A1&tags=x+y&title=%E8%B7%AF%E7%81%AF%E4%B8%8D%E4%BA%AE+a%2Bb+%26+c%3Dd+100%25"
        );
        let back = decode(text.as_bytes(), Charset::Utf8, &InputLimits::default()).unwrap();
        assert_eq!(
            back,
            json!({"n": "3", "none": "", "ok": "true", "tags": ["水务", "x y"], "title": "路灯不亮 a+b & c=d 100%"})
        );
    }

    #[test]
    fn gbk_forms_are_encoded_and_decoded_in_gbk() {
        let text = encode(&json!({"nr": "路灯"}), Charset::Gbk).unwrap();
        // 路 = C2 B7, 灯 = B5 C6 in GBK.
        assert_eq!(text, "nr=%C2%B7%B5%C6");
        let back = decode(text.as_bytes(), Charset::Gbk, &InputLimits::default()).unwrap();
        assert_eq!(back, json!({"nr": "路灯"}));
        assert!(matches!(
            decode(text.as_bytes(), Charset::Utf8, &InputLimits::default()),
            Err(InputError::Charset(_))
        ));
    }

    #[test]
    fn nested_objects_are_refused_and_odd_input_is_read_leniently() {
        assert!(encode(&json!({"a": {"b": 1}}), Charset::Utf8)
            .unwrap_err()
            .contains("`a`"));
        assert!(encode(&json!(["a"]), Charset::Utf8).is_err());
        let v = decode(b"a=%zz&b&=x&c=%4", Charset::Utf8, &InputLimits::default()).unwrap();
        assert_eq!(v, json!({"a": "%zz", "b": "", "": "x", "c": "%4"}));
        let limits = InputLimits {
            max_depth: 64,
            max_nodes: 2,
        };
        assert_eq!(
            decode(b"a=1&b=2&c=3", Charset::Utf8, &limits),
            Err(InputError::Limit(Exceeded::Nodes(2)))
        );
    }
}
