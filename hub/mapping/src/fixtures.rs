//! Golden fixtures: every mapping proves itself on files beside it.
//!
//! `mappings/<partner>/fixtures/<mapping>/` holds cases, each an input file
//! `<case>.input.json` or `<case>.input.xml` (in the partner's charset) and one expectation:
//! `<case>.expected.json` (the record, or the outbound JSON payload), `<case>.expected.xml`
//! (an outbound XML payload, compared as text) or `<case>.error.json`
//! (`{"code": "…", "contains": ["…"]}`: the mapping must fail with that code and text).
//! Every mapping needs at least one passing case and one error case.

use std::path::{Path, PathBuf};

use hub_contracts::Catalog;
use serde::Deserialize;

use crate::{xml, Direction, Format, Mapping, MappingSet};

/// The result of one fixture case (or of a missing one).
#[derive(Debug, Clone)]
pub struct FixtureOutcome {
    /// `partner/mapping`.
    pub mapping: String,
    pub case: String,
    pub path: PathBuf,
    /// `None` when the case passed.
    pub failure: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    code: String,
    #[serde(default)]
    contains: Vec<String>,
}

/// Runs every fixture of every mapping.
pub fn run_fixtures(set: &MappingSet, catalog: &Catalog) -> Vec<FixtureOutcome> {
    let mut out = Vec::new();
    for m in &set.mappings {
        let dir = m.folder.join("fixtures").join(&m.name);
        let id = format!("{}/{}", m.partner, m.name);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        inputs.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".input."))
        });
        inputs.sort();
        let (mut passing_cases, mut error_cases) = (0, 0);
        for input in inputs {
            let name = input
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let case = name.split(".input.").next().unwrap_or_default().to_string();
            let failure = run_case(
                m,
                catalog,
                &dir,
                &case,
                &input,
                &mut passing_cases,
                &mut error_cases,
            );
            out.push(FixtureOutcome {
                mapping: id.clone(),
                case,
                path: input,
                failure,
            });
        }
        if passing_cases == 0 || error_cases == 0 {
            out.push(FixtureOutcome {
                mapping: id.clone(),
                case: "(coverage)".into(),
                path: dir.clone(),
                failure: Some(format!(
                    "needs at least one passing case and one invalid case; has {passing_cases} and {error_cases}"
                )),
            });
        }
    }
    out
}

/// The request id a reply fixture's record carries (`hub_contracts::reply`).
pub const FIXTURE_REQUEST_ID: &str = "00000000-0000-0000-0000-000000000000";
/// The time a reply fixture's record gets when its mapping sets no `occurred_at`.
pub const FIXTURE_NOW: &str = "2000-01-01T08:00:00.000+08:00";

/// An inbound case: the record as it reaches Kafka. A reply mapping's record is completed with
/// the hub's fields first, as the egress does (`request_id` [`FIXTURE_REQUEST_ID`], `outcome`
/// `answered`, no partner code, `occurred_at` [`FIXTURE_NOW`] when the program sets none), so
/// its expected output shows them.
fn inbound_case(
    m: &Mapping,
    catalog: &Catalog,
    body: &[u8],
) -> Result<serde_json::Value, crate::MappingError> {
    let reply = catalog
        .contract(&m.contract)
        .filter(|c| hub_contracts::reply::is_reply_contract(c));
    let Some(contract) = reply else {
        return m.inbound(body, catalog);
    };
    let mut record = m.inbound_unvalidated(body)?;
    hub_contracts::reply::complete_answered(
        &mut record,
        contract,
        FIXTURE_REQUEST_ID,
        "",
        None,
        FIXTURE_NOW,
    );
    m.validate(&record, catalog)?;
    Ok(record)
}

fn run_case(
    m: &Mapping,
    catalog: &Catalog,
    dir: &Path,
    case: &str,
    input: &Path,
    passing_cases: &mut usize,
    error_cases: &mut usize,
) -> Option<String> {
    let body = match std::fs::read(input) {
        Ok(b) => b,
        Err(e) => return Some(format!("cannot read: {e}")),
    };
    let result: Result<Vec<u8>, crate::MappingError> = match m.direction {
        Direction::Inbound => inbound_case(m, catalog, &body)
            .map(|record| serde_json::to_vec(&record).unwrap_or_default()),
        Direction::Answer => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(answer) => m.outbound(&answer),
            Err(e) => return Some(format!("the input answer is not JSON: {e}")),
        },
        Direction::Outbound => {
            let record: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return Some(format!("the input record is not JSON: {e}")),
            };
            // An outbound input is a contract record as egress would read it from Kafka.
            if let Err(e) = m.validate(&record, catalog) {
                return Some(format!(
                    "the input is not a valid `{}` record:\n{e}",
                    m.contract
                ));
            }
            m.outbound(&record)
        }
    };
    let error_path = dir.join(format!("{case}.error.json"));
    if error_path.exists() {
        *error_cases += 1;
        let expected: ExpectedError = match std::fs::read(&error_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => return Some(format!("{}: {e}", error_path.display())),
        };
        return match result {
            Ok(_) => Some(format!(
                "expected {} but the mapping succeeded",
                expected.code
            )),
            Err(err) => {
                let text = err.to_string();
                if err.code != expected.code {
                    Some(format!("expected {}, got:\n{text}", expected.code))
                } else {
                    let missing: Vec<&String> = expected
                        .contains
                        .iter()
                        .filter(|c| !text.contains(c.as_str()))
                        .collect();
                    (!missing.is_empty())
                        .then(|| format!("the error does not contain {missing:?}:\n{text}"))
                }
            }
        };
    }
    *passing_cases += 1;
    let output = match result {
        Ok(o) => o,
        Err(e) => return Some(format!("the mapping failed:\n{e}")),
    };
    let json_path = dir.join(format!("{case}.expected.json"));
    let xml_path = dir.join(format!("{case}.expected.xml"));
    let form_path = dir.join(format!("{case}.expected.form"));
    if json_path.exists() {
        let expected: serde_json::Value = match std::fs::read(&json_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return Some(format!("{}: {e}", json_path.display())),
        };
        let text = match xml::decode(
            &output,
            if m.direction != Direction::Inbound {
                m.charset
            } else {
                crate::Charset::Utf8
            },
        ) {
            Ok(t) => t,
            Err(e) => return Some(format!("the output is not in the partner charset: {e}")),
        };
        let got: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return Some(format!("the output is not JSON: {e}")),
        };
        (got != expected).then(|| {
            format!(
                "output differs from {}:\n got:      {}\n expected: {}",
                json_path.display(),
                serde_json::to_string(&got).unwrap_or_default(),
                serde_json::to_string(&expected).unwrap_or_default()
            )
        })
    } else if xml_path.exists() && m.format == Format::Xml {
        let expected = std::fs::read(&xml_path).unwrap_or_default();
        let decode = |b: &[u8]| xml::decode(b, m.charset).unwrap_or_else(|e| e.to_string());
        let (got, want) = (decode(&output), decode(&expected));
        (got.trim() != want.trim()).then(|| {
            format!(
                "output differs from {}:\n got:      {got}\n expected: {want}",
                xml_path.display()
            )
        })
    } else if form_path.exists() && m.format == Format::Form {
        let expected = std::fs::read_to_string(&form_path).unwrap_or_default();
        let got = String::from_utf8_lossy(&output);
        (got.trim() != expected.trim()).then(|| {
            format!(
                "output differs from {}:\n got:      {got}\n expected: {}",
                form_path.display(),
                expected.trim()
            )
        })
    } else {
        Some(format!(
            "no {case}.expected.json, {case}.expected.xml, {case}.expected.form or {case}.error.json beside the input"
        ))
    }
}
