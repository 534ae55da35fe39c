//! The contracts as a schema registry, and the compatibility rules between versions.
//!
//! Subjects follow Confluent's TopicNameStrategy: the value schema of topic `t` is subject
//! `t-value`. A schema's id is derived from the Avro Parsing Canonical Form's Rabin
//! fingerprint (its low 31 bits), so every hub replica, every restart and every build gives a
//! schema the same id without coordination, and an id found on a Kafka message stays resolvable
//! for as long as the hub knows that schema.

use std::collections::BTreeMap;

use apache_avro::error::CompatibilityError;
use apache_avro::rabin::Rabin;
use apache_avro::schema::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::{Catalog, Compatibility, Contract};

/// One registered version of a subject.
#[derive(Debug, Clone)]
pub struct SchemaVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    /// The schema as the contract file writes it (minified JSON, project attributes kept).
    pub schema: String,
}

/// Read-only registry over a catalog.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    subjects: BTreeMap<String, Vec<SchemaVersion>>,
    by_id: BTreeMap<u32, SchemaVersion>,
    modes: BTreeMap<String, Compatibility>,
    parsed: BTreeMap<u32, Schema>,
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(u32),
}

impl VersionRef {
    /// Parses `latest`, `-1` (Confluent's alias for latest) or a positive number.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "latest" | "-1" => Some(VersionRef::Latest),
            n => n.parse().ok().filter(|n| *n > 0).map(VersionRef::Number),
        }
    }
}

/// The subject of a topic's value schema.
pub fn subject_of(topic: &str) -> String {
    format!("{topic}-value")
}

/// The registry id of a schema: low 31 bits of its Rabin fingerprint (never 0).
pub fn schema_id(schema: &Schema) -> u32 {
    let fp = schema.fingerprint::<Rabin>();
    let bytes: [u8; 4] = fp.bytes[..4]
        .try_into()
        .expect("a Rabin fingerprint has 8 bytes");
    (u32::from_le_bytes(bytes) & 0x7fff_ffff).max(1)
}

impl Contract {
    /// The registry id of this contract's schema (computed when the contract was loaded).
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }
}

impl Registry {
    pub fn from_catalog(catalog: &Catalog) -> Self {
        let mut r = Registry::default();
        for c in &catalog.contracts {
            let subject = subject_of(&c.declaration.topic);
            let past = catalog
                .history
                .get(&c.declaration.topic)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let versions = past
                .iter()
                .map(|h| (h.schema.clone(), h.schema_json.to_string()))
                .chain(std::iter::once((
                    c.schema.clone(),
                    c.schema_json.to_string(),
                )));
            for (n, (schema, text)) in versions.enumerate() {
                let id = schema_id(&schema);
                let v = SchemaVersion {
                    subject: subject.clone(),
                    version: n as u32 + 1,
                    id,
                    schema: text,
                };
                r.by_id.insert(id, v.clone());
                r.parsed.insert(id, schema);
                r.subjects.entry(subject.clone()).or_default().push(v);
            }
            r.modes.insert(subject, c.declaration.compatibility);
        }
        r
    }

    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.subjects.keys().map(String::as_str)
    }

    pub fn versions(&self, subject: &str) -> Option<Vec<u32>> {
        self.subjects
            .get(subject)
            .map(|v| v.iter().map(|s| s.version).collect())
    }

    pub fn version(&self, subject: &str, which: VersionRef) -> Option<&SchemaVersion> {
        let versions = self.subjects.get(subject)?;
        match which {
            VersionRef::Latest => versions.last(),
            VersionRef::Number(n) => versions.iter().find(|v| v.version == n),
        }
    }

    pub fn by_id(&self, id: u32) -> Option<&SchemaVersion> {
        self.by_id.get(&id)
    }

    pub fn mode(&self, subject: &str) -> Option<Compatibility> {
        self.modes.get(subject).copied()
    }

    /// Checks a candidate schema against a version of `subject` under the subject's mode.
    /// `Ok(messages)`: empty when compatible; `Err` when the subject, version or candidate is
    /// unusable.
    pub fn check(
        &self,
        subject: &str,
        which: VersionRef,
        candidate: &str,
    ) -> Result<Vec<String>, RegistryError> {
        if !self.subjects.contains_key(subject) {
            return Err(RegistryError::SubjectNotFound);
        }
        let existing = self
            .version(subject, which)
            .ok_or(RegistryError::VersionNotFound)?;
        let new = Schema::parse_str(candidate)
            .map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
        let old = &self.parsed[&existing.id];
        let mode = self.mode(subject).unwrap_or(Compatibility::Backward);
        Ok(compatibility_problems(mode, old, &new))
    }
}

/// Registry lookup failures, with Confluent's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject not found.")]
    SubjectNotFound,
    #[error("Version not found.")]
    VersionNotFound,
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion,
}

impl RegistryError {
    /// Confluent Schema Registry's `error_code`.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound => 40401,
            RegistryError::VersionNotFound => 40402,
            RegistryError::SchemaNotFound => 40403,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion => 42202,
        }
    }

    /// The HTTP status that goes with it.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::SubjectNotFound
            | RegistryError::VersionNotFound
            | RegistryError::SchemaNotFound => 404,
            RegistryError::InvalidSchema(_) | RegistryError::InvalidVersion => 422,
        }
    }
}

/// Why `new` may not replace `old` under `mode`, one message per broken rule, naming the
/// field path where Avro's checker names one. Empty when compatible.
///
/// apache-avro's checker does not know the `decimal` logical type (it answers "inconclusive"
/// even for two identical schemas), so decimals are compared here by precision and scale and
/// replaced by their underlying type before the rest is handed to the checker.
pub fn compatibility_problems(mode: Compatibility, old: &Schema, new: &Schema) -> Vec<String> {
    let (old, old_decimals) = without_decimals(old);
    let (new, new_decimals) = without_decimals(new);
    let mut out = Vec::new();
    let (old, new) = match (old, new) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return vec![format!("cannot compare: {e}")],
    };
    if mode != Compatibility::None {
        for (path, (p, s)) in &old_decimals {
            if let Some((p2, s2)) = new_decimals.get(path) {
                if (p, s) != (p2, s2) {
                    out.push(format!(
                        "{}: field `{path}`: decimal({p}, {s}) became decimal({p2}, {s2}); amounts already written would be read at the wrong scale",
                        mode_label(mode)
                    ));
                }
            }
        }
    }
    let backward = || {
        SchemaCompatibility::can_read(&old, &new).err().map(|e| {
            format!(
                "BACKWARD (consumers on the new schema must read data written with the old): {}",
                describe(&e)
            )
        })
    };
    let forward = || {
        SchemaCompatibility::can_read(&new, &old).err().map(|e| {
            format!(
                "FORWARD (consumers on the old schema must read data written with the new): {}",
                describe(&e)
            )
        })
    };
    match mode {
        Compatibility::None => {}
        Compatibility::Backward | Compatibility::BackwardTransitive => out.extend(backward()),
        Compatibility::Forward | Compatibility::ForwardTransitive => out.extend(forward()),
        Compatibility::Full | Compatibility::FullTransitive => {
            out.extend(backward());
            out.extend(forward());
        }
    }
    out
}

fn mode_label(mode: Compatibility) -> &'static str {
    match mode {
        Compatibility::Backward | Compatibility::BackwardTransitive => "BACKWARD",
        Compatibility::Forward | Compatibility::ForwardTransitive => "FORWARD",
        Compatibility::Full | Compatibility::FullTransitive => "FULL",
        Compatibility::None => "NONE",
    }
}

/// The schema with every decimal replaced by its underlying type, and the decimals found, by
/// field path (`items[].amount`).
fn without_decimals(schema: &Schema) -> (Result<Schema, String>, BTreeMap<String, (u64, u64)>) {
    fn walk(v: &mut serde_json::Value, path: &str, found: &mut BTreeMap<String, (u64, u64)>) {
        use serde_json::Value;
        match v {
            Value::Array(union) => union.iter_mut().for_each(|b| walk(b, path, found)),
            Value::Object(o) => {
                if o.get("logicalType").and_then(Value::as_str) == Some("decimal") {
                    let p = o.get("precision").and_then(Value::as_u64).unwrap_or(0);
                    let s = o.get("scale").and_then(Value::as_u64).unwrap_or(0);
                    found.insert(path.to_string(), (p, s));
                    o.remove("logicalType");
                    o.remove("precision");
                    o.remove("scale");
                    if o.get("type") == Some(&Value::from("bytes")) {
                        *v = Value::from("bytes");
                    }
                    return;
                }
                if let Some(fields) = o.get_mut("fields").and_then(Value::as_array_mut) {
                    for f in fields {
                        let name = f
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let fpath = if path.is_empty() {
                            name
                        } else {
                            format!("{path}.{name}")
                        };
                        if let Some(t) = f.get_mut("type") {
                            walk(t, &fpath, found);
                        }
                    }
                }
                if let Some(items) = o.get_mut("items") {
                    walk(items, &format!("{path}[]"), found);
                }
                if let Some(values) = o.get_mut("values") {
                    walk(values, &format!("{path}{{}}"), found);
                }
                if let Some(t) = o.get_mut("type") {
                    if t.is_object() || t.is_array() {
                        walk(t, path, found);
                    }
                }
            }
            _ => {}
        }
    }
    let mut found = BTreeMap::new();
    let result = serde_json::to_value(schema)
        .map_err(|e| e.to_string())
        .and_then(|mut json| {
            walk(&mut json, "", &mut found);
            Schema::parse(&json).map_err(|e| e.to_string())
        });
    (result, found)
}

/// Unwinds nested field mismatches into a dotted path: `field `a.b`: …`.
fn describe(e: &CompatibilityError) -> String {
    let mut path = Vec::new();
    let mut cur = e;
    while let CompatibilityError::FieldTypeMismatch(field, inner) = cur {
        path.push(field.as_str());
        cur = inner;
    }
    let rule = match cur {
        CompatibilityError::MissingDefaultValue(field) => {
            path.push(field.as_str());
            "a field the reader has and the writer lacks needs a default value".to_string()
        }
        CompatibilityError::MissingSymbols => {
            "an enum lost symbols the other side may still write".to_string()
        }
        CompatibilityError::MissingUnionElements => {
            "a union lost branches the other side may still write".to_string()
        }
        other => other.to_string(),
    };
    if path.is_empty() {
        rule
    } else {
        format!("field `{}`: {rule}", path.join("."))
    }
}
