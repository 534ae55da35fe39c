//! The project's conventions inside a contract's fields, checked on the schema's JSON because
//! they live in attributes Avro itself ignores:
//!
//! * `"x-pii": "id_number" | "phone" | "name" | "address"` on a field marks personal data; the
//!   field must be a string (or an optional string): on Kafka it holds SM4 ciphertext.
//! * `"x-format": "date-time"` on a string type: a point in time as RFC 3339 with an offset
//!   (Avro's timestamp types carry no time zone).
//! * every enum documents its symbols (`doc` names each one).
//! * `timestamp-*` logical types are refused in favour of `x-format: date-time`.

use serde_json::Value;

/// Kinds of personal data, which decide how logs mask them.
pub const PII_KINDS: &[&str] = &["id_number", "phone", "name", "address"];

/// A personal-data field: its dotted path from the record root (`applicant.id_number`,
/// `materials[].holder_name`) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiField {
    pub path: String,
    pub kind: String,
}

/// A point-in-time field: its dotted path from the record root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTimeField {
    pub path: String,
}

/// What the walk found and what is wrong.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub pii: Vec<PiiField>,
    pub date_times: Vec<DateTimeField>,
    /// (JSON key path, message).
    pub problems: Vec<(String, String)>,
}

pub(crate) fn check(schema: &Value) -> Findings {
    let mut f = Findings::default();
    let mut walker = Walker { out: &mut f };
    walker.record(schema, "");
    f
}

struct Walker<'a> {
    out: &'a mut Findings,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The non-null branches of a type (a union's, or the type itself).
fn branches(t: &Value) -> Vec<&Value> {
    match t {
        Value::Array(items) => items.iter().filter(|b| *b != "null").collect(),
        other => vec![other],
    }
}

fn is_string(t: &Value) -> bool {
    t == "string" || (t.get("type") == Some(&Value::from("string")))
}

impl Walker<'_> {
    fn record(&mut self, schema: &Value, path: &str) {
        let Some(fields) = schema.get("fields").and_then(Value::as_array) else {
            return;
        };
        for field in fields {
            let Some(name) = field.get("name").and_then(Value::as_str) else {
                continue;
            };
            let fpath = join(path, name);
            let ty = field.get("type").unwrap_or(&Value::Null);
            if let Some(kind) = field.get("x-pii") {
                let kind = kind.as_str().unwrap_or("");
                if !PII_KINDS.contains(&kind) {
                    self.out.problems.push((
                        format!("{fpath}.x-pii"),
                        format!("`{kind}` is not one of {}", PII_KINDS.join(", ")),
                    ));
                }
                let b = branches(ty);
                if b.len() != 1 || !is_string(b[0]) || b[0].get("x-format").is_some() {
                    self.out.problems.push((
                        fpath.clone(),
                        "a personal-data field must be a string or an optional string: it carries SM4 ciphertext on Kafka".into(),
                    ));
                }
                self.out.pii.push(PiiField {
                    path: fpath.clone(),
                    kind: kind.to_string(),
                });
            }
            if field
                .get("doc")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                self.out.problems.push((
                    fpath.clone(),
                    "has no doc: say what it means, in Chinese and English".into(),
                ));
            }
            self.ty(ty, &fpath);
        }
    }

    fn ty(&mut self, t: &Value, path: &str) {
        match t {
            Value::Array(union) => {
                for b in union {
                    self.ty(b, path);
                }
            }
            Value::Object(o) => {
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
                if let Some(fmt) = o.get("x-format") {
                    if fmt != "date-time" {
                        self.out.problems.push((
                            format!("{path}.x-format"),
                            format!("{fmt} is not a known format (date-time)"),
                        ));
                    } else if kind != "string" {
                        self.out.problems.push((
                            format!("{path}.x-format"),
                            "date-time goes on a string type".into(),
                        ));
                    } else {
                        self.out.date_times.push(DateTimeField {
                            path: path.to_string(),
                        });
                    }
                }
                if let Some(lt) = o.get("logicalType").and_then(Value::as_str) {
                    if lt.starts_with("timestamp-") || lt.starts_with("local-timestamp-") {
                        self.out.problems.push((
                            format!("{path}.logicalType"),
                            format!("{lt} carries no time zone: use {{\"type\": \"string\", \"x-format\": \"date-time\"}}"),
                        ));
                    }
                }
                match kind {
                    "record" => self.record(t, path),
                    "array" => {
                        self.ty(o.get("items").unwrap_or(&Value::Null), &format!("{path}[]"))
                    }
                    "map" => self.ty(
                        o.get("values").unwrap_or(&Value::Null),
                        &format!("{path}{{}}"),
                    ),
                    "enum" => {
                        let doc = o.get("doc").and_then(Value::as_str).unwrap_or("");
                        let symbols: Vec<&str> = o
                            .get("symbols")
                            .and_then(Value::as_array)
                            .map(|s| s.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        let undocumented: Vec<&str> = symbols
                            .iter()
                            .copied()
                            .filter(|s| !doc.contains(s))
                            .collect();
                        if !undocumented.is_empty() {
                            self.out.problems.push((
                                path.to_string(),
                                format!(
                                    "enum doc does not explain {}: document every code",
                                    undocumented.join(", ")
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}
