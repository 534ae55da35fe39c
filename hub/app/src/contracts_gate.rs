//! `hub contracts check --against <git ref>`: the compatibility gate.
//!
//! Every contract in the working tree is compared with the contract of the same topic at the
//! given git ref, under the mode the contract declares. A contract that is new is fine; one that
//! changed incompatibly, changed its key or partitions, or disappeared is a problem, named with
//! its file, topic, field and rule. CI runs it against the previous commit of main.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hub_contracts::{compatibility_problems, load_dir, Catalog};

/// A contract as it was at the ref.
struct Old {
    path: String,
    key: String,
    partitions: i64,
    schema: apache_avro::Schema,
}

/// Why the gate could not run at all (as opposed to problems it found).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{0}")]
    Git(String),
    #[error("the contracts in the working tree have problems:\n{0}")]
    Contracts(String),
}

fn git(repo: &Path, args: &[&str]) -> Result<String, GateError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| GateError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(GateError::Git(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the gate; returns the problems found (empty: compatible).
pub fn check_against(dir: &Path, reference: &str) -> Result<(Catalog, Vec<String>), GateError> {
    let catalog = load_dir(dir).map_err(|p| {
        GateError::Contracts(
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let dir = dir
        .canonicalize()
        .map_err(|e| GateError::Git(format!("{}: {e}", dir.display())))?;
    let root = PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"])?.trim());
    let rel = dir.strip_prefix(&root).map_err(|_| {
        GateError::Git(format!(
            "{} is not inside {}",
            dir.display(),
            root.display()
        ))
    })?;
    let commit = git(
        &root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{reference}^{{commit}}"),
        ],
    )
    .map_err(|_| GateError::Git(format!("`{reference}` is not a commit of this repository")))?;
    let commit = commit.trim();

    let listing = git(
        &root,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            commit,
            "--",
            &rel.to_string_lossy(),
        ],
    )?;
    let mut old: BTreeMap<String, Old> = BTreeMap::new();
    for path in listing.lines().filter(|p| p.ends_with(".avsc")) {
        let text = git(&root, &["show", &format!("{commit}:{path}")])?;
        // An old file that no longer parses cannot constrain anything; say so and move on.
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Ok(schema) = apache_avro::Schema::parse_str(&text) else {
            continue;
        };
        let Some(topic) = json.pointer("/x-hub/topic").and_then(|t| t.as_str()) else {
            continue;
        };
        old.insert(
            topic.to_string(),
            Old {
                path: path.to_string(),
                key: json
                    .pointer("/x-hub/key")
                    .and_then(|k| k.as_str())
                    .unwrap_or("")
                    .to_string(),
                partitions: json
                    .pointer("/x-hub/partitions")
                    .and_then(|p| p.as_i64())
                    .unwrap_or(0),
                schema,
            },
        );
    }

    let mut problems = Vec::new();
    for c in &catalog.contracts {
        let d = &c.declaration;
        let Some(before) = old.remove(&d.topic) else {
            continue;
        };
        let at = c.path.display();
        for p in compatibility_problems(d.compatibility, &before.schema, &c.schema) {
            problems.push(format!("{at}: topic `{}`: {p}", d.topic));
        }
        let history = catalog
            .history
            .get(&d.topic)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let changed = before.schema.canonical_form() != c.schema.canonical_form();
        if changed
            && !history
                .iter()
                .any(|h| h.schema.canonical_form() == before.schema.canonical_form())
        {
            problems.push(format!(
                "{at}: topic `{}`: changed without keeping its previous version; copy the file as it is at {reference} to contracts/history/{}/{}.avsc so ids on messages already on Kafka stay resolvable",
                d.topic,
                d.topic,
                history.len() + 1
            ));
        }
        if matches!(
            d.compatibility,
            hub_contracts::Compatibility::BackwardTransitive
                | hub_contracts::Compatibility::ForwardTransitive
                | hub_contracts::Compatibility::FullTransitive
        ) {
            for h in history {
                for p in compatibility_problems(d.compatibility, &h.schema, &c.schema) {
                    problems.push(format!(
                        "{at}: topic `{}`: against version {}: {p}",
                        d.topic, h.version
                    ));
                }
            }
        }
        if before.key != d.key {
            problems.push(format!(
                "{at}: key `x-hub.key`: changed from `{}` to `{}`: records already on `{}` are partitioned by the old key, so one object's events would lose their order; publish a new major version instead",
                before.key, d.key, d.topic
            ));
        }
        if before.partitions != i64::from(d.partitions) {
            problems.push(format!(
                "{at}: key `x-hub.partitions`: changed from {} to {}: the hub never changes a live topic's partitions (keys would move); publish a new major version or change the cluster by hand with a plan",
                before.partitions, d.partitions
            ));
        }
    }
    for (topic, gone) in old {
        problems.push(format!(
            "{}: topic `{topic}`: the contract was removed; consumers may still read it. Keep it until every consumer has moved, then remove it in a change that says so",
            gone.path
        ));
    }
    Ok((catalog, problems))
}
