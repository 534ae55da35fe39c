//! A synthetic partner of `hub/app/tests/synthetic/<partner>/` installed in a test's own
//! folder: the repository's contracts plus the partner's, its mappings and its adapter, every
//! topic of the partner and every pull job renamed with a suffix of this test alone (the broker
//! is shared with other tests and earlier runs).

use std::path::{Path, PathBuf};

use super::isolate::copy_dir;
use super::repo;

pub struct Synthetic {
    pub partner: String,
    pub contracts: PathBuf,
    pub mappings: PathBuf,
    pub adapters: PathBuf,
    /// `_t<10 hex>`: appended to the partner's topics' event part and to its pull names.
    pub suffix: String,
}

impl Synthetic {
    /// The renamed topic of `topic` (`synthsoap.case.submitted.v1`).
    pub fn topic(&self, topic: &str) -> String {
        let (head, version) = topic.rsplit_once('.').unwrap();
        format!("{head}{}.{version}", self.suffix)
    }

    /// The renamed pull job `name`.
    pub fn pull(&self, name: &str) -> String {
        format!("{name}{}", self.suffix)
    }

    pub fn adapter_toml(&self) -> PathBuf {
        self.adapters.join(&self.partner).join("adapter.toml")
    }
}

fn source(partner: &str) -> PathBuf {
    repo().join("hub/app/tests/synthetic").join(partner)
}

/// Installs `partner` (family `family`) under `dir`.
pub fn install(dir: &Path, partner: &str, family: &str) -> Synthetic {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let suffix = format!("_t{}", &id[..10]);
    let from = source(partner);
    let contracts = dir.join("contracts/schemas");
    copy_dir(&repo().join("contracts/schemas"), &contracts);
    copy_dir(&from.join("contracts"), &contracts.join(family));
    let mappings = dir.join("mappings");
    copy_dir(&from.join("mappings"), &mappings.join(partner));
    let adapters = dir.join("adapters");
    copy_dir(&from.join("adapter"), &adapters.join(partner));
    let s = Synthetic {
        partner: partner.to_string(),
        contracts,
        mappings,
        adapters,
        suffix,
    };
    // Topics: in the partner's contracts and mappings.
    let mut topics = Vec::new();
    for entry in std::fs::read_dir(s.contracts.join(family)).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let topic = v["x-hub"]["topic"].as_str().unwrap().to_string();
        std::fs::write(
            &path,
            text.replace(&format!("\"{topic}\""), &format!("\"{}\"", s.topic(&topic))),
        )
        .unwrap();
        topics.push(topic);
    }
    let manifest = s.mappings.join(partner).join("mappings.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    for t in &topics {
        text = text.replace(&format!("\"{t}\""), &format!("\"{}\"", s.topic(t)));
    }
    std::fs::write(&manifest, text).unwrap();
    // Pull names (their replay groups and leases are named after them).
    let adapter = s.adapter_toml();
    let text = std::fs::read_to_string(&adapter).unwrap();
    let mut out = String::new();
    let mut in_pull = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_pull = t == "[[pull]]";
        }
        match t.strip_prefix("name = \"") {
            Some(rest) if in_pull => {
                let name = rest.trim_end_matches('"');
                out.push_str(&format!("name = \"{}\"\n", s.pull(name)));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    std::fs::write(&adapter, out).unwrap();
    s
}
