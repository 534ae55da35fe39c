use std::path::Path;

use super::*;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn the_shipped_contracts_load_and_declare_their_topics() {
    let catalog = load_dir(&schemas_dir()).unwrap_or_else(|p| {
        panic!(
            "shipped contracts have problems:\n{}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let topics = catalog.topics();
    let dlq = topics
        .iter()
        .find(|t| t.name == "hub.message.deadlettered.v1")
        .expect("the dead-letter topic is declared");
    assert_eq!(dlq.partitions, 3);
    assert_eq!(dlq.config["cleanup.policy"], "delete");
}

const GOOD: &str = r#"{
  "type": "record", "name": "Sample", "namespace": "cn.gov.sh.test.v1",
  "doc": "样例 / sample",
  "x-hub": {"topic": "test.sample.created.v1", "key": "id", "partitions": 1,
            "retention_ms": 1000, "cleanup_policy": "delete", "compatibility": "BACKWARD",
            "volume": "test"},
  "fields": [{"name": "id", "type": "string"}]
}"#;

fn load_one(text: &str) -> Result<Catalog, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sample.avsc"), text).unwrap();
    load_dir(dir.path()).map_err(|p| p.iter().map(ToString::to_string).collect())
}

#[test]
fn a_good_contract_loads() {
    let c = load_one(GOOD).unwrap();
    assert_eq!(c.contracts[0].full_name, "cn.gov.sh.test.v1.Sample");
}

#[test]
fn broken_json_names_its_line() {
    let err = load_one("{\n\"type\": \"record\",\n,\n}").unwrap_err();
    assert!(err[0].contains("sample.avsc:3: not valid JSON"), "{err:?}");
}

#[test]
fn a_bad_topic_name_and_unknown_key_field_are_both_reported() {
    let text = GOOD
        .replace("test.sample.created.v1", "Test-Sample")
        .replace("\"key\": \"id\"", "\"key\": \"nope\"");
    let err = load_one(&text).unwrap_err();
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(
        err[0].contains("sample.avsc:4: key `x-hub.topic`: `Test-Sample`"),
        "{err:?}"
    );
    assert!(
        err[1].contains("key `x-hub.key`: `nope` is not a field"),
        "{err:?}"
    );
}

#[test]
fn a_missing_declaration_key_is_named() {
    let text = GOOD.replace("\"volume\": \"test\"", "\"volumes\": \"test\"");
    let err = load_one(&text).unwrap_err();
    assert!(
        err[0].contains("key `x-hub.volumes`: unknown field"),
        "{err:?}"
    );
}

#[test]
fn a_non_backward_mode_needs_a_reason() {
    let text = GOOD.replace("\"BACKWARD\"", "\"NONE\"");
    let err = load_one(&text).unwrap_err();
    assert!(err[0].contains("x-hub.compatibility_reason"), "{err:?}");
}

#[test]
fn an_invalid_avro_schema_is_refused() {
    let text = GOOD.replace("\"type\": \"string\"", "\"type\": \"strin\"");
    let err = load_one(&text).unwrap_err();
    assert!(err[0].contains("not a valid Avro schema"), "{err:?}");
}

#[test]
fn two_contracts_cannot_share_a_topic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.avsc"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("b.avsc"),
        GOOD.replace("\"Sample\"", "\"Other\""),
    )
    .unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err[0].to_string().contains("is already declared by"),
        "{}",
        err[0]
    );
}
