//! Canonical JSON for signatures over JSON values: object keys sorted by their UTF-8 bytes,
//! no whitespace, strings written as `serde_json` writes them (non-ASCII as is), numbers as
//! received. Python's `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
//! writes the same bytes for the values partners sign (strings, integers, booleans, null,
//! objects and arrays of them).

use serde_json::Value;

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(
                    serde_json::to_string(k)
                        .expect("a string serialises")
                        .as_bytes(),
                );
                out.push(b':');
                write(&map[k.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(v, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(
            serde_json::to_string(other)
                .expect("a scalar serialises")
                .as_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_sorted_at_every_depth() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[{"z":null,"y":true}],"c":"工单"}}"#).unwrap();
        assert_eq!(
            String::from_utf8(super::to_vec(&v)).unwrap(),
            r#"{"a":{"c":"工单","d":[{"y":true,"z":null}]},"b":1}"#
        );
    }
}
