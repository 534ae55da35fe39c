//! `hub contracts check --against <ref>` on a throwaway git repository.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

const SAMPLE: &str = r#"{
  "type": "record", "name": "Sample", "namespace": "cn.gov.sh.test.v1",
  "doc": "样例 / sample",
  "x-hub": {"topic": "test.sample.created.v1", "key": "id", "partitions": 3,
            "retention_ms": 1000, "cleanup_policy": "delete", "compatibility": "BACKWARD",
            "volume": "test"},
  "fields": [
    {"name": "id", "type": "string", "doc": "编号 / id"},
    {"name": "other", "type": "string", "doc": "另一个 / other"}
  ]
}"#;

fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// A repository whose HEAD holds SAMPLE as its only contract.
fn repo_with_sample() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("contracts/schemas/test")).unwrap();
    std::fs::write(
        dir.path().join("contracts/schemas/test/sample.v1.avsc"),
        SAMPLE,
    )
    .unwrap();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "sample"]);
    dir
}

fn gate(repo: &Path, reference: &str) -> (Option<i32>, String) {
    let schemas = repo.join("contracts/schemas");
    let out = hub(
        &[
            "contracts",
            "check",
            "--dir",
            schemas.to_str().unwrap(),
            "--against",
            reference,
        ],
        &[],
    );
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

fn rewrite(repo: &Path, from: &str, to: &str) {
    let path = repo.join("contracts/schemas/test/sample.v1.avsc");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from));
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// Keeps the committed version of the sample as version 1 in the history folder.
fn keep_history(repo: &Path) {
    let dir = repo.join("contracts/history/test.sample.created.v1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1.avsc"), SAMPLE).unwrap();
}

#[test]
fn an_unchanged_or_compatibly_evolved_contract_passes() {
    let repo = repo_with_sample();
    assert_eq!(gate(repo.path(), "HEAD").0, Some(0));
    keep_history(repo.path());
    rewrite(
        repo.path(),
        r#"{"name": "other", "type": "string", "doc": "另一个 / other"}"#,
        r#"{"name": "other", "type": "string", "doc": "另一个 / other"},
    {"name": "note", "type": ["null", "string"], "default": null, "doc": "备注 / note"}"#,
    );
    let (code, out) = gate(repo.path(), "HEAD");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("compatible with HEAD: 1 contracts"), "{out}");
}

#[test]
fn an_evolved_contract_must_keep_its_previous_version() {
    let repo = repo_with_sample();
    rewrite(
        repo.path(),
        r#"{"name": "other", "type": "string", "doc": "另一个 / other"}"#,
        r#"{"name": "other", "type": "string", "doc": "另一个 / other"},
    {"name": "note", "type": ["null", "string"], "default": null, "doc": "备注 / note"}"#,
    );
    let (code, out) = gate(repo.path(), "HEAD");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("changed without keeping its previous version; copy the file as it is at HEAD to contracts/history/test.sample.created.v1/1.avsc"),
        "{out}"
    );
    keep_history(repo.path());
    assert_eq!(gate(repo.path(), "HEAD").0, Some(0));
}

#[test]
fn a_new_required_field_fails_naming_the_field_and_the_rule() {
    let repo = repo_with_sample();
    keep_history(repo.path());
    rewrite(
        repo.path(),
        r#"{"name": "other", "type": "string", "doc": "另一个 / other"}"#,
        r#"{"name": "other", "type": "string", "doc": "另一个 / other"},
    {"name": "district", "type": "string", "doc": "区 / district"}"#,
    );
    let (code, out) = gate(repo.path(), "HEAD");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("sample.v1.avsc: topic `test.sample.created.v1`: BACKWARD"),
        "{out}"
    );
    assert!(
        out.contains(
            "field `district`: a field the reader has and the writer lacks needs a default value"
        ),
        "{out}"
    );
}

#[test]
fn changing_the_key_or_the_partitions_fails() {
    let repo = repo_with_sample();
    rewrite(
        repo.path(),
        r#""key": "id", "partitions": 3"#,
        r#""key": "other", "partitions": 6"#,
    );
    let (code, out) = gate(repo.path(), "HEAD");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("key `x-hub.key`: changed from `id` to `other`"),
        "{out}"
    );
    assert!(
        out.contains("key `x-hub.partitions`: changed from 3 to 6"),
        "{out}"
    );
}

#[test]
fn a_removed_contract_fails() {
    let repo = repo_with_sample();
    std::fs::create_dir_all(repo.path().join("contracts/schemas/other")).unwrap();
    std::fs::rename(
        repo.path().join("contracts/schemas/test/sample.v1.avsc"),
        repo.path().join("contracts/schemas/other/renamed.v1.avsc"),
    )
    .unwrap();
    // A moved file keeps its topic: still fine.
    assert_eq!(gate(repo.path(), "HEAD").0, Some(0));
    std::fs::remove_file(repo.path().join("contracts/schemas/other/renamed.v1.avsc")).unwrap();
    let (code, out) = gate(repo.path(), "HEAD");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("contracts/schemas/test/sample.v1.avsc: topic `test.sample.created.v1`: the contract was removed"), "{out}");
}

#[test]
fn an_unknown_ref_is_a_usage_error() {
    let repo = repo_with_sample();
    let (code, out) = gate(repo.path(), "no-such-branch");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("`no-such-branch` is not a commit of this repository"),
        "{out}"
    );
}

#[test]
fn the_shipped_contracts_pass_against_head() {
    let (code, out) = gate(&repo(), "HEAD");
    assert_eq!(code, Some(0), "{out}");
}
