//! The hub's contracts: one Avro schema file per canonical event under `contracts/schemas/`,
//! each declaring, in its `x-hub` attribute, the Kafka topic it goes to, its key field, its
//! partition count and retention, and its compatibility mode.
//!
//! [`load_dir`] reads every `*.avsc` below a folder and checks each one (valid JSON, a valid
//! Avro schema, a complete and consistent `x-hub` declaration, the topic naming convention).
//! It reports every problem it finds with the file and line, so `hub check` can show them all.
//! See `docs/contracts.md` for the conventions.

mod conventions;
pub mod history;
mod record;
mod registry;
pub mod reply;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hub_bus::admin::TopicSpec;
use serde::Deserialize;

pub use conventions::{DateTimeField, PiiField, PII_KINDS};
pub use record::{frame, unframe, RecordError, WireError};
pub use registry::{
    compatibility_problems, schema_id, subject_of, Registry, RegistryError, SchemaVersion,
    VersionRef,
};

/// Topic names: `<family>.<object>.<event>.v<major>`, lower case, `_` inside words.
pub const TOPIC_PATTERN: &str = r"^[a-z][a-z0-9]*(\.[a-z][a-z0-9_]*){2}\.v[1-9][0-9]*$";

/// Compatibility modes a contract may declare (Confluent Schema Registry's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

impl Compatibility {
    /// The mode's name in Confluent's API (`BACKWARD`, `FULL_TRANSITIVE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
            Compatibility::None => "NONE",
        }
    }
}

/// Kafka `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    Delete,
    Compact,
}

/// The `x-hub` declaration of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    pub topic: String,
    /// Field of the record whose value is the Kafka key (the partner's object id).
    pub key: String,
    pub partitions: i32,
    pub retention_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    pub compatibility: Compatibility,
    /// Why a mode other than BACKWARD was chosen; required in that case.
    #[serde(default)]
    pub compatibility_reason: Option<String>,
    /// Expected volume, the reason for the partitions and retention chosen.
    pub volume: String,
}

/// One loaded contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub path: PathBuf,
    /// Avro full name, e.g. `cn.gov.sh.hub.v1.MessageDeadLettered`.
    pub full_name: String,
    pub declaration: Declaration,
    pub schema: apache_avro::Schema,
    /// The schema file as JSON, project attributes (`x-hub`, `x-pii`, …) included.
    pub schema_json: serde_json::Value,
    /// Fields holding personal data, encrypted field by field before Kafka.
    pub pii: Vec<PiiField>,
    /// Fields holding a point in time (RFC 3339 with offset).
    pub date_times: Vec<DateTimeField>,
    /// The schema's named types, resolved once for validation.
    pub(crate) named_types:
        std::collections::HashMap<apache_avro::schema::Name, apache_avro::Schema>,
    /// The hub's registry id of the schema (its Rabin fingerprint), computed once at load:
    /// fingerprinting the canonical form took a third of the ingest handler's instructions
    /// when it was done for every message.
    pub(crate) schema_id: u32,
}

impl Contract {
    /// The topic as the bus creates it.
    pub fn topic_spec(&self) -> TopicSpec {
        let d = &self.declaration;
        let mut config = BTreeMap::new();
        config.insert("retention.ms".to_string(), d.retention_ms.to_string());
        config.insert(
            "cleanup.policy".to_string(),
            match d.cleanup_policy {
                CleanupPolicy::Delete => "delete",
                CleanupPolicy::Compact => "compact",
            }
            .to_string(),
        );
        TopicSpec {
            name: d.topic.clone(),
            partitions: d.partitions,
            config,
        }
    }
}

/// A problem in one contract file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: Option<usize>,
    /// The JSON key concerned, e.g. `x-hub.topic`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}", self.path.display())?,
            None => write!(f, "{}", self.path.display())?,
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every contract under a folder.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub contracts: Vec<Contract>,
    /// Superseded versions by topic (`contracts/history/`), oldest first.
    pub history: BTreeMap<String, Vec<history::HistoricVersion>>,
    /// Topic → position in `contracts`, built at load (every message looks its contract up).
    index: std::collections::HashMap<String, usize>,
}

impl Catalog {
    /// The contract of `topic`, if one is loaded.
    pub fn contract(&self, topic: &str) -> Option<&Contract> {
        // The index is checked against the contract it points to, and a miss is searched for,
        // so a catalog whose public list was changed after load still answers correctly.
        self.index
            .get(topic)
            .and_then(|&i| self.contracts.get(i))
            .filter(|c| c.declaration.topic == topic)
            .or_else(|| self.contracts.iter().find(|c| c.declaration.topic == topic))
    }

    /// The topics the contracts declare, one entry per topic, sorted by name.
    pub fn topics(&self) -> Vec<TopicSpec> {
        let mut by_name: BTreeMap<String, TopicSpec> = BTreeMap::new();
        for c in &self.contracts {
            by_name
                .entry(c.declaration.topic.clone())
                .or_insert_with(|| c.topic_spec());
        }
        by_name.into_values().collect()
    }
}

/// The id a message of `contract` is framed with: the one `external` (an external registry's
/// ids, by topic) gives, else the hub's own fingerprint id.
pub fn framing_schema_id(
    external: &std::collections::HashMap<String, u32>,
    contract: &Contract,
) -> u32 {
    external
        .get(&contract.declaration.topic)
        .copied()
        .unwrap_or_else(|| contract.schema_id())
}

/// Loads every `*.avsc` below `dir` (recursively, in path order). Returns the catalog when
/// there is no problem, and every problem otherwise.
pub fn load_dir(dir: &Path) -> Result<Catalog, Vec<Problem>> {
    let mut files = Vec::new();
    if let Err(e) = collect_files(dir, &mut files) {
        return Err(vec![Problem {
            path: dir.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the contracts folder: {e}"),
        }]);
    }
    files.sort();
    let mut problems = Vec::new();
    let mut contracts = Vec::new();
    for f in files {
        match load_file(&f) {
            Ok(c) => contracts.push(c),
            Err(mut p) => problems.append(&mut p),
        }
    }
    check_across(&contracts, &mut problems);
    let history_dir = history::history_dir_of(dir);
    let history = match history::load(&history_dir) {
        Ok(h) => h,
        Err(mut p) => {
            problems.append(&mut p);
            BTreeMap::new()
        }
    };
    for (topic, versions) in &history {
        let Some(current) = contracts.iter().find(|c| &c.declaration.topic == topic) else {
            problems.push(Problem {
                path: history_dir.join(topic),
                line: None,
                key: String::new(),
                message: format!("history of `{topic}`, but no contract declares that topic"),
            });
            continue;
        };
        if let Some(last) = versions.last() {
            if last.schema.canonical_form() == current.schema.canonical_form() {
                problems.push(Problem {
                    path: last.path.clone(),
                    line: None,
                    key: String::new(),
                    message: format!(
                        "is the same schema as the current contract {}: history keeps superseded versions only",
                        current.path.display()
                    ),
                });
            }
        }
    }
    if problems.is_empty() {
        let index = contracts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.declaration.topic.clone(), i))
            .collect();
        Ok(Catalog {
            contracts,
            history,
            index,
        })
    } else {
        Err(problems)
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "avsc") {
            out.push(path);
        }
    }
    Ok(())
}

/// Line of the first occurrence of `"key"` in the text, as a best effort for pointing at a
/// JSON key (serde_json keeps no positions for values it has parsed).
fn line_of(text: &str, key: &str) -> Option<usize> {
    let needle = format!("\"{key}\"");
    text.find(&needle)
        .map(|at| text[..at].matches('\n').count() + 1)
}

fn load_file(path: &Path) -> Result<Contract, Vec<Problem>> {
    let problem = |line: Option<usize>, key: &str, message: String| Problem {
        path: path.to_path_buf(),
        line,
        key: key.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![problem(None, "", format!("cannot read: {e}"))])?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| vec![problem(Some(e.line()), "", format!("not valid JSON: {e}"))])?;

    let mut problems = Vec::new();
    let schema = match apache_avro::Schema::parse_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(problem(None, "", format!("not a valid Avro schema: {e}")));
            None
        }
    };
    let full_name = match (json.get("namespace"), json.get("name")) {
        (Some(serde_json::Value::String(ns)), Some(serde_json::Value::String(n))) => {
            format!("{ns}.{n}")
        }
        _ => {
            problems.push(problem(
                line_of(&text, "name"),
                "namespace",
                "a contract is a record with a namespace and a name".into(),
            ));
            String::new()
        }
    };
    for key in ["doc"] {
        if json
            .get(key)
            .and_then(|v| v.as_str())
            .is_none_or(str::is_empty)
        {
            problems.push(problem(
                None,
                key,
                "is required: say in Chinese and English what the event means".into(),
            ));
        }
    }

    let findings = conventions::check(&json);
    for (key, message) in &findings.problems {
        let leaf = key
            .trim_end_matches(".x-pii")
            .trim_end_matches(".x-format")
            .trim_end_matches(".logicalType");
        let leaf = leaf
            .rsplit('.')
            .next()
            .unwrap_or(leaf)
            .trim_end_matches("[]")
            .trim_end_matches("{}");
        problems.push(problem(line_of(&text, leaf), key, message.clone()));
    }

    let declaration = match json.get("x-hub") {
        None => {
            problems.push(problem(
                None,
                "x-hub",
                "is missing: declare topic, key, partitions, retention_ms, cleanup_policy, \
                 compatibility and volume"
                    .into(),
            ));
            None
        }
        Some(v) => match serde_path_to_key(v) {
            Ok(d) => Some(d),
            Err((key, msg)) => {
                let k = if key.is_empty() {
                    "x-hub".to_string()
                } else {
                    format!("x-hub.{key}")
                };
                problems.push(problem(
                    line_of(&text, key_leaf(&key)).or(line_of(&text, "x-hub")),
                    &k,
                    msg,
                ));
                None
            }
        },
    };

    if let Some(d) = &declaration {
        let re = regex::Regex::new(TOPIC_PATTERN).expect("the topic pattern compiles");
        if !re.is_match(&d.topic) {
            problems.push(problem(
                line_of(&text, "topic"),
                "x-hub.topic",
                format!(
                    "`{}` does not follow <family>.<object>.<event>.v<major> (see docs/contracts.md)",
                    d.topic
                ),
            ));
        }
        if !(1..=256).contains(&d.partitions) {
            problems.push(problem(
                line_of(&text, "partitions"),
                "x-hub.partitions",
                format!("{} is outside 1..=256", d.partitions),
            ));
        }
        if d.retention_ms < -1 || d.retention_ms == 0 {
            problems.push(problem(
                line_of(&text, "retention_ms"),
                "x-hub.retention_ms",
                "must be positive, or -1 to keep forever".into(),
            ));
        }
        if d.compatibility != Compatibility::Backward
            && d.compatibility_reason.as_deref().is_none_or(str::is_empty)
        {
            problems.push(problem(
                line_of(&text, "compatibility"),
                "x-hub.compatibility_reason",
                "a mode other than BACKWARD needs its reason written down".into(),
            ));
        }
        let key_field = json.get("fields").and_then(|f| f.as_array()).and_then(|a| {
            a.iter()
                .find(|f| f.get("name").and_then(|n| n.as_str()) == Some(&d.key))
        });
        match key_field {
            None => problems.push(problem(
                line_of(&text, "key"),
                "x-hub.key",
                format!("`{}` is not a field of the record", d.key),
            )),
            // The key is the partner's object id, sent as the Kafka key: text, always present.
            Some(f)
                if f.get("type").is_none_or(|t| {
                    t != "string" && t.get("type") != Some(&serde_json::Value::from("string"))
                }) =>
            {
                problems.push(problem(
                    line_of(&text, "key"),
                    "x-hub.key",
                    format!(
                        "`{}` must be a required string field (it becomes the Kafka key)",
                        d.key
                    ),
                ))
            }
            Some(_) => {}
        }
    }

    match (problems.is_empty(), schema, declaration) {
        (true, Some(schema), Some(declaration)) => Ok(Contract {
            path: path.to_path_buf(),
            full_name,
            declaration,
            schema_json: json,
            pii: findings.pii,
            date_times: findings.date_times,
            named_types: record::named_types(&schema),
            schema_id: registry::schema_id(&schema),
            schema,
        }),
        _ => Err(problems),
    }
}

fn key_leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Deserializes the declaration, keeping the name of the offending key.
fn serde_path_to_key(v: &serde_json::Value) -> Result<Declaration, (String, String)> {
    Declaration::deserialize(v).map_err(|e| {
        let msg = e.to_string();
        // serde_json names the field in "missing field `x`" / "unknown field `x`".
        let key = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.starts_with("missing field") || msg.starts_with("unknown field"))
            .unwrap_or("")
            .to_string();
        (key, msg)
    })
}

/// Rules across contracts: one topic, one contract (so a topic's schema is never ambiguous),
/// and no two contracts with one Avro name.
fn check_across(contracts: &[Contract], problems: &mut Vec<Problem>) {
    let mut topics: BTreeMap<&str, &Path> = BTreeMap::new();
    let mut names: BTreeMap<&str, &Path> = BTreeMap::new();
    for c in contracts {
        if let Some(first) = topics.insert(&c.declaration.topic, &c.path) {
            problems.push(Problem {
                path: c.path.clone(),
                line: None,
                key: "x-hub.topic".into(),
                message: format!(
                    "topic `{}` is already declared by {}",
                    c.declaration.topic,
                    first.display()
                ),
            });
        }
        if let Some(first) = names.insert(&c.full_name, &c.path) {
            problems.push(Problem {
                path: c.path.clone(),
                line: None,
                key: "name".into(),
                message: format!(
                    "`{}` is already defined by {}",
                    c.full_name,
                    first.display()
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests;
