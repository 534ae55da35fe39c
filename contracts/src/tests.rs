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

#[test]
fn the_schema_id_kept_at_load_is_the_fingerprint_of_the_schema() {
    let catalog = load_dir(&schemas_dir()).expect("shipped contracts load");
    assert!(!catalog.contracts.is_empty());
    for c in &catalog.contracts {
        assert_eq!(c.schema_id(), schema_id(&c.schema), "{}", c.full_name);
    }
}

#[test]
fn contracts_are_found_by_topic_even_after_the_list_is_changed() {
    let mut catalog = load_dir(&schemas_dir()).expect("shipped contracts load");
    for c in &catalog.contracts {
        let found = catalog.contract(&c.declaration.topic).expect("found");
        assert_eq!(found.full_name, c.full_name);
    }
    assert!(catalog.contract("no.such.topic.v1").is_none());
    // The index was built at load; a changed public list must still be answered correctly.
    let removed = catalog.contracts.remove(0);
    assert!(catalog.contract(&removed.declaration.topic).is_none());
    let last = catalog.contracts.last().expect("more than one").clone();
    assert_eq!(
        catalog
            .contract(&last.declaration.topic)
            .map(|c| &c.full_name),
        Some(&last.full_name)
    );
}

const GOOD: &str = r#"{
  "type": "record", "name": "Sample", "namespace": "cn.gov.sh.test.v1",
  "doc": "样例 / sample",
  "x-hub": {"topic": "test.sample.created.v1", "key": "id", "partitions": 1,
            "retention_ms": 1000, "cleanup_policy": "delete", "compatibility": "BACKWARD",
            "volume": "test"},
  "fields": [{"name": "id", "type": "string", "doc": "编号 / id"}]
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

#[test]
fn personal_data_and_times_follow_the_conventions() {
    let text = GOOD.replace(
        r#""fields": [{"name": "id", "type": "string", "doc": "编号 / id"}]"#,
        r#""fields": [
            {"name": "id", "type": "string", "doc": "编号 / id"},
            {"name": "holder", "type": {"type": "record", "name": "Holder", "fields": [
                {"name": "id_number", "type": ["null", "string"], "default": null, "x-pii": "id_number", "doc": "证件号码 / id number"}
            ]}, "doc": "持证主体 / holder"},
            {"name": "occurred_at", "type": {"type": "string", "x-format": "date-time"}, "doc": "发生时间 / when"}
        ]"#,
    );
    let c = load_one(&text).unwrap();
    assert_eq!(
        c.contracts[0].pii,
        vec![PiiField {
            path: "holder.id_number".into(),
            kind: "id_number".into()
        }]
    );
    assert_eq!(
        c.contracts[0].date_times,
        vec![DateTimeField {
            path: "occurred_at".into()
        }]
    );
}

#[test]
fn convention_breaches_are_each_reported() {
    let text = GOOD.replace(
        r#""fields": [{"name": "id", "type": "string", "doc": "编号 / id"}]"#,
        r#""fields": [
            {"name": "id", "type": "string", "doc": "编号 / id"},
            {"name": "phone", "type": "long", "x-pii": "phone", "doc": "电话 / phone"},
            {"name": "secret", "type": "string", "x-pii": "password", "doc": "x / x"},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "x / x"},
            {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["OPEN", "SHUT"], "doc": "OPEN: 开 / open"}, "doc": "x / x"},
            {"name": "nodoc", "type": "string"}
        ]"#,
    );
    let err = load_one(&text).unwrap_err().join("\n");
    for expected in [
        "key `phone`: a personal-data field must be a string",
        "key `secret.x-pii`: `password` is not one of",
        "key `at.logicalType`: timestamp-millis carries no time zone",
        "key `state`: enum doc does not explain SHUT",
        "key `nodoc`: has no doc",
    ] {
        assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
    }
}

const NOTICE: &str = r#"{
  "type": "record", "name": "NoticeIssued", "namespace": "cn.gov.sh.test.v1",
  "doc": "缴款书已开具 / payment notice issued",
  "x-hub": {"topic": "test.notice.issued.v1", "key": "notice_no", "partitions": 1,
            "retention_ms": 1000, "cleanup_policy": "delete", "compatibility": "BACKWARD",
            "volume": "test"},
  "fields": [
    {"name": "notice_no", "type": "string", "doc": "缴款书编号 / notice number"},
    {"name": "payer_name", "type": "string", "x-pii": "name", "doc": "缴款人 / payer"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}, "doc": "金额 / amount"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["ISSUED", "PAID"], "doc": "ISSUED: 已开具 / issued; PAID: 已缴款 / paid"}, "doc": "状态 / status"},
    {"name": "due_date", "type": {"type": "int", "logicalType": "date"}, "doc": "缴款期限 / due date"},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
        {"name": "code", "type": "string", "doc": "项目编码 / item code"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}, "doc": "金额 / amount"}
    ]}}, "doc": "收费项目 / items"},
    {"name": "remark", "type": ["null", "string"], "default": null, "doc": "备注 / remark"},
    {"name": "occurred_at", "type": {"type": "string", "x-format": "date-time"}, "doc": "发生时间 / when"}
  ]
}"#;

fn notice() -> Contract {
    load_one(NOTICE).unwrap().contracts.remove(0)
}

#[test]
fn a_valid_record_encodes_and_decodes_with_exact_money() {
    let c = notice();
    let record = serde_json::json!({
        "notice_no": "JK3100202611220001", "payer_name": "张三", "amount": "1234.50",
        "status": "ISSUED", "due_date": "2026-12-31",
        "items": [{"code": "103040101", "amount": "1000"}, {"code": "103040102", "amount": "234.5"}],
        "occurred_at": "2026-11-22T09:30:00+08:00"
    });
    let datum = c.encode(&record).unwrap();
    let back = c.decode(&datum).unwrap();
    let apache_avro::types::Value::Record(fields) = back else {
        panic!("a record")
    };
    let get = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let apache_avro::types::Value::Decimal(d) = get("amount") else {
        panic!("a decimal")
    };
    let unscaled: Vec<u8> = d.try_into().unwrap();
    assert_eq!(unscaled, vec![0x01, 0xe2, 0x3a], "123450 hundredths");
    // The absent optional field took its default.
    assert_eq!(
        get("remark"),
        apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null))
    );
    assert_eq!(get("due_date"), apache_avro::types::Value::Date(20818));
}

#[test]
fn every_offending_path_is_reported_at_once() {
    let c = notice();
    let record = serde_json::json!({
        "payer_name": 42, "amount": 12.5, "status": "CANCELLED", "due_date": "31/12/2026",
        "items": [{"code": "a", "amount": "1.234"}, {"code": "b"}],
        "occurred_at": "2026-11-22 09:30:00", "colour": "red"
    });
    let errors: Vec<String> = c
        .to_avro(&record)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expected = [
        "notice_no: is required by the contract and missing",
        "payer_name: expected a string, got a number",
        "amount: 12.5 is a binary fraction; send the amount as a decimal string",
        "status: `CANCELLED` is not a symbol of Status (ISSUED, PAID)",
        "due_date: `31/12/2026` is not a date YYYY-MM-DD",
        "items[0].amount: `1.234` has 3 decimal places; the contract allows 2",
        "items[1].amount: is required by the contract and missing",
        "occurred_at: `2026-11-22 09:30:00` is not an RFC 3339 time with an offset",
        "colour: is not a field of the contract",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(expected) {
        assert!(got.starts_with(want), "expected `{want}`, got `{got}`");
    }
}

#[test]
fn decimals_that_do_not_fit_are_refused() {
    let c = notice();
    for (amount, why) in [
        ("12345678901234567.00", "does not fit decimal(18, 2)"),
        ("1.2.3", "is not a decimal number"),
        ("12.", "is not a decimal number"),
        ("", "is not a decimal number"),
    ] {
        let record = serde_json::json!({
            "notice_no": "n", "payer_name": "p", "amount": amount, "status": "PAID",
            "due_date": 0, "items": [], "occurred_at": "2026-11-22T09:30:00+08:00"
        });
        let errors = c.to_avro(&record).unwrap_err();
        assert_eq!(errors.len(), 1, "{amount}: {errors:?}");
        assert!(errors[0].problem.contains(why), "{amount}: {}", errors[0]);
    }
}

#[test]
fn the_registry_serves_each_contract_as_version_one_of_its_topic_subject() {
    let catalog = load_one(GOOD).unwrap();
    let registry = Registry::from_catalog(&catalog);
    let subject = "test.sample.created.v1-value";
    assert_eq!(registry.subjects().collect::<Vec<_>>(), vec![subject]);
    assert_eq!(registry.versions(subject), Some(vec![1]));
    let latest = registry.version(subject, VersionRef::Latest).unwrap();
    assert_eq!(latest.id, catalog.contracts[0].schema_id());
    assert_eq!(registry.by_id(latest.id).unwrap().subject, subject);
    assert!(registry.version(subject, VersionRef::Number(2)).is_none());
    assert_eq!(VersionRef::parse("-1"), Some(VersionRef::Latest));
    assert_eq!(VersionRef::parse("0"), None);
    // The id is a function of the schema alone: same schema, same id; changed schema, new id.
    let again = load_one(GOOD).unwrap();
    assert_eq!(again.contracts[0].schema_id(), latest.id);
    let changed = load_one(
        &GOOD
            .replace(r#""name": "id""#, r#""name": "ident""#)
            .replace(r#""key": "id""#, r#""key": "ident""#),
    )
    .unwrap();
    assert_ne!(changed.contracts[0].schema_id(), latest.id);
}

#[test]
fn compatibility_is_judged_by_the_declared_mode_and_names_the_field() {
    let catalog = load_one(GOOD).unwrap();
    let registry = Registry::from_catalog(&catalog);
    let subject = "test.sample.created.v1-value";
    let with = |extra: &str| {
        format!(
            r#"{{"type": "record", "name": "Sample", "namespace": "cn.gov.sh.test.v1",
                 "fields": [{{"name": "id", "type": "string"}}{extra}]}}"#
        )
    };
    // An optional field with a default: old data still reads.
    let ok = registry
        .check(
            subject,
            VersionRef::Latest,
            &with(r#", {"name": "note", "type": ["null", "string"], "default": null}"#),
        )
        .unwrap();
    assert!(ok.is_empty(), "{ok:?}");
    // A required field without a default: old data cannot fill it.
    let bad = registry
        .check(
            subject,
            VersionRef::Latest,
            &with(r#", {"name": "district", "type": "string"}"#),
        )
        .unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].starts_with("BACKWARD"), "{}", bad[0]);
    assert!(
        bad[0].contains(
            "field `district`: a field the reader has and the writer lacks needs a default value"
        ),
        "{}",
        bad[0]
    );
    // A field's type changed.
    let bad = registry.check(subject, VersionRef::Latest, r#"{"type": "record", "name": "Sample", "namespace": "cn.gov.sh.test.v1", "fields": [{"name": "id", "type": "int"}]}"#).unwrap();
    assert!(bad[0].contains("field `id`"), "{}", bad[0]);

    assert_eq!(
        registry.check("nope-value", VersionRef::Latest, "{}"),
        Err(RegistryError::SubjectNotFound)
    );
    assert!(matches!(
        registry.check(subject, VersionRef::Latest, "{"),
        Err(RegistryError::InvalidSchema(_))
    ));
}

#[test]
fn enum_symbols_may_be_added_but_not_removed_backward() {
    let old: apache_avro::Schema =
        apache_avro::Schema::parse_str(r#"{"type": "enum", "name": "S", "symbols": ["A", "B"]}"#)
            .unwrap();
    let fewer =
        apache_avro::Schema::parse_str(r#"{"type": "enum", "name": "S", "symbols": ["A"]}"#)
            .unwrap();
    let more = apache_avro::Schema::parse_str(
        r#"{"type": "enum", "name": "S", "symbols": ["A", "B", "C"]}"#,
    )
    .unwrap();
    assert!(compatibility_problems(Compatibility::Backward, &old, &more).is_empty());
    let p = compatibility_problems(Compatibility::Backward, &old, &fewer);
    assert!(p[0].contains("an enum lost symbols"), "{p:?}");
    assert!(compatibility_problems(Compatibility::None, &old, &fewer).is_empty());
    assert_eq!(
        compatibility_problems(Compatibility::Full, &old, &more).len(),
        1,
        "FULL also reads new data with the old schema"
    );
}

#[test]
fn decimals_are_compared_by_precision_and_scale() {
    let with = |p: u32, s: u32, extra: &str| {
        apache_avro::Schema::parse_str(&format!(
            r#"{{"type": "record", "name": "R", "fields": [
                {{"name": "amount", "type": {{"type": "bytes", "logicalType": "decimal", "precision": {p}, "scale": {s}}}}},
                {{"name": "items", "type": {{"type": "array", "items": {{"type": "record", "name": "I", "fields": [
                    {{"name": "amount", "type": {{"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}}}}]}}}}}}
                {extra}]}}"#
        ))
        .unwrap()
    };
    let base = with(18, 2, "");
    assert!(
        compatibility_problems(Compatibility::Backward, &base, &base).is_empty(),
        "identical schemas are compatible"
    );
    let optional = with(
        18,
        2,
        r#", {"name": "note", "type": ["null", "string"], "default": null}"#,
    );
    assert!(compatibility_problems(Compatibility::Backward, &base, &optional).is_empty());
    let rescaled = compatibility_problems(Compatibility::Backward, &base, &with(18, 4, ""));
    assert_eq!(rescaled.len(), 1, "{rescaled:?}");
    assert!(
        rescaled[0].contains("field `amount`: decimal(18, 2) became decimal(18, 4)"),
        "{rescaled:?}"
    );
}

#[test]
fn superseded_versions_stay_resolvable_in_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
    std::fs::create_dir_all(dir.path().join("history/test.sample.created.v1")).unwrap();
    std::fs::write(
        dir.path().join("history/test.sample.created.v1/1.avsc"),
        GOOD,
    )
    .unwrap();
    let evolved = GOOD.replace(
        r#"{"name": "id", "type": "string", "doc": "编号 / id"}]"#,
        r#"{"name": "id", "type": "string", "doc": "编号 / id"}, {"name": "note", "type": ["null", "string"], "default": null, "doc": "备注 / note"}]"#,
    );
    std::fs::write(dir.path().join("schemas/sample.avsc"), &evolved).unwrap();
    let catalog = load_dir(&dir.path().join("schemas")).unwrap();
    let registry = Registry::from_catalog(&catalog);
    let subject = "test.sample.created.v1-value";
    assert_eq!(registry.versions(subject), Some(vec![1, 2]));
    let v1 = registry.version(subject, VersionRef::Number(1)).unwrap();
    let v2 = registry.version(subject, VersionRef::Latest).unwrap();
    assert_ne!(v1.id, v2.id);
    assert_eq!(v2.id, catalog.contracts[0].schema_id());
    assert_eq!(
        registry.by_id(v1.id).unwrap().version,
        1,
        "the old id still resolves"
    );

    // History equal to the current schema, or for a topic without a contract, is refused.
    std::fs::write(dir.path().join("schemas/sample.avsc"), GOOD).unwrap();
    let err = load_dir(&dir.path().join("schemas")).unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains("history keeps superseded versions only"),
        "{}",
        err[0]
    );
    std::fs::create_dir_all(dir.path().join("history/test.gone.away.v1")).unwrap();
    std::fs::write(
        dir.path().join("history/test.gone.away.v1/1.avsc"),
        GOOD.replace("test.sample.created.v1", "test.gone.away.v1"),
    )
    .unwrap();
    std::fs::write(dir.path().join("schemas/sample.avsc"), &evolved).unwrap();
    let err = load_dir(&dir.path().join("schemas")).unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains("no contract declares that topic"),
        "{}",
        err[0]
    );
}
