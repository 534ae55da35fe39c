//! Registering the contracts into an external Confluent-compatible schema registry.
//!
//! When `[registry] external_url` is set, the hub registers, at start, every version of every
//! contract (superseded versions from `contracts/history/` first, in order, then the current
//! one) under the subject `<topic>-value`, sets each subject's compatibility mode, and frames
//! its messages with the ids *that* registry assigned, so consumers configured with it decode
//! them. Registering an already registered schema is a no-op in Confluent's API (it answers the
//! existing id), so every replica and every restart may do it.

use std::collections::HashMap;
use std::time::Duration;

use hub_contracts::{subject_of, Catalog};
use serde::Deserialize;
use serde_json::json;

/// `[registry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Base URL of a Confluent-compatible registry, e.g. `http://schema-registry:8081`.
    pub external_url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Registers every contract; returns the external id of each topic's current schema.
pub async fn register_all(
    section: &RegistrySection,
    catalog: &Catalog,
) -> Result<HashMap<String, u32>, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let base = section.external_url.trim_end_matches('/');
    let request = |method: reqwest::Method, url: String| {
        let r = http
            .request(method, url)
            .header("content-type", CONTENT_TYPE);
        match (&section.username, &section.password) {
            (Some(u), p) => r.basic_auth(u, p.as_deref()),
            _ => r,
        }
    };
    let mut ids = HashMap::new();
    for c in &catalog.contracts {
        let topic = &c.declaration.topic;
        let subject = subject_of(topic);
        let answer = request(reqwest::Method::PUT, format!("{base}/config/{subject}"))
            .json(&json!({ "compatibility": c.declaration.compatibility.as_str() }))
            .send()
            .await
            .map_err(|e| format!("{base}: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!(
                "setting the mode of {subject}: {}",
                answer.status()
            ));
        }
        let past = catalog
            .history
            .get(topic)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let texts = past
            .iter()
            .map(|h| h.schema_json.to_string())
            .chain(std::iter::once(c.schema_json.to_string()));
        let mut last = None;
        for text in texts {
            let answer = request(
                reqwest::Method::POST,
                format!("{base}/subjects/{subject}/versions"),
            )
            .json(&json!({ "schema": text, "schemaType": "AVRO" }))
            .send()
            .await
            .map_err(|e| format!("{base}: {e}"))?;
            let status = answer.status();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!(
                    "registering {subject}: {status} {}",
                    body["message"].as_str().unwrap_or_default()
                ));
            }
            last = body["id"].as_u64().and_then(|i| u32::try_from(i).ok());
        }
        let id =
            last.ok_or_else(|| format!("registering {subject}: the registry answered no id"))?;
        ids.insert(topic.clone(), id);
    }
    Ok(ids)
}
