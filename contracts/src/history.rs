//! Superseded versions of contracts, kept so that schema ids on messages still within a topic's
//! retention stay resolvable after a contract evolves.
//!
//! Layout: `contracts/history/<topic>/<n>.avsc`, `n` the registry version (1, 2, …) that the file
//! was; the contract in `contracts/schemas/` is the next version. When a contract changes, its
//! previous text is copied here first; `hub contracts check --against` refuses a change that
//! did not keep it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Problem;

/// One superseded version of a contract.
#[derive(Debug, Clone)]
pub struct HistoricVersion {
    pub path: PathBuf,
    pub version: u32,
    pub schema: apache_avro::Schema,
    /// The file's JSON, as served by the registry.
    pub schema_json: serde_json::Value,
}

/// The history folder beside a schemas folder (`contracts/schemas` → `contracts/history`).
pub fn history_dir_of(schemas_dir: &Path) -> PathBuf {
    schemas_dir
        .parent()
        .map(|p| p.join("history"))
        .unwrap_or_else(|| PathBuf::from("history"))
}

/// Loads every topic's superseded versions, in version order. A missing folder is an empty
/// history.
pub fn load(dir: &Path) -> Result<BTreeMap<String, Vec<HistoricVersion>>, Vec<Problem>> {
    let mut out: BTreeMap<String, Vec<HistoricVersion>> = BTreeMap::new();
    let mut problems = Vec::new();
    let Ok(topics) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let problem = |path: &Path, message: String| Problem {
        path: path.to_path_buf(),
        line: None,
        key: String::new(),
        message,
    };
    let mut topic_dirs: Vec<PathBuf> = topics
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    topic_dirs.sort();
    for topic_dir in topic_dirs {
        let topic = topic_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut versions = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&topic_dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "avsc"));
        files.sort();
        for f in files {
            let Some(version) = f
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
            else {
                problems.push(problem(
                    &f,
                    "a history file is named <version>.avsc, e.g. 1.avsc".into(),
                ));
                continue;
            };
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(problem(&f, format!("cannot read: {e}")));
                    continue;
                }
            };
            let json: serde_json::Value = match serde_json::from_str(&text) {
                Ok(j) => j,
                Err(e) => {
                    problems.push(Problem {
                        line: Some(e.line()),
                        ..problem(&f, format!("not valid JSON: {e}"))
                    });
                    continue;
                }
            };
            if let Some(t) = json.pointer("/x-hub/topic").and_then(|t| t.as_str()) {
                if t != topic {
                    problems.push(problem(
                        &f,
                        format!("declares topic `{t}` but lies in the folder of `{topic}`"),
                    ));
                }
            }
            match apache_avro::Schema::parse_str(&text) {
                Ok(schema) => versions.push(HistoricVersion {
                    path: f,
                    version,
                    schema,
                    schema_json: json,
                }),
                Err(e) => problems.push(problem(&f, format!("not a valid Avro schema: {e}"))),
            }
        }
        versions.sort_by_key(|v| v.version);
        for (i, v) in versions.iter().enumerate() {
            if v.version != i as u32 + 1 {
                problems.push(problem(
                    &v.path,
                    format!(
                        "versions of `{topic}` must run 1, 2, 3, …; found {} in place {}",
                        v.version,
                        i + 1
                    ),
                ));
            }
        }
        out.insert(topic, versions);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}
