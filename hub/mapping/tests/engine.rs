//! The mapping engine on small, purpose-built mapping folders: diagnostics, contract
//! validation with paths and lines, XML in GBK both ways, code tables, fixture coverage.

use std::path::Path;

use hub_contracts::Catalog;
use hub_mapping::{run_fixtures, MappingSet};
use serde_json::json;

const CONTRACT: &str = r#"{
  "type": "record", "name": "Sample", "namespace": "cn.gov.sh.test.v1",
  "doc": "样例 / sample",
  "x-hub": {"topic": "test.sample.created.v1", "key": "ticket_no", "partitions": 1,
            "retention_ms": 1000, "cleanup_policy": "delete", "compatibility": "BACKWARD",
            "volume": "test"},
  "fields": [
    {"name": "ticket_no", "type": "string", "doc": "编号 / number"},
    {"name": "district", "type": ["null", "string"], "default": null, "doc": "区 / district"},
    {"name": "occurred_at", "type": {"type": "string", "x-format": "date-time"}, "doc": "时间 / when"}
  ]
}"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(manifest: &str, files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("contracts")).unwrap();
        std::fs::write(dir.path().join("contracts/sample.avsc"), CONTRACT).unwrap();
        std::fs::create_dir_all(dir.path().join("mappings/partner")).unwrap();
        std::fs::write(dir.path().join("mappings/partner/mappings.toml"), manifest).unwrap();
        for (name, body) in files {
            let path = dir.path().join("mappings").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        Self { dir }
    }
    fn catalog(&self) -> Catalog {
        hub_contracts::load_dir(&self.dir.path().join("contracts")).unwrap()
    }
    fn load(&self) -> Result<MappingSet, Vec<String>> {
        MappingSet::load(&self.dir.path().join("mappings"), &self.catalog())
            .map_err(|p| p.iter().map(ToString::to_string).collect())
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
}

const INBOUND: &str = r#"partner = "partner"
[[mapping]]
name = "in"
direction = "inbound"
contract = "test.sample.created.v1"
program = "in.vrl"
format = "json"
"#;

#[test]
fn a_compile_error_names_the_file_and_line() {
    let f = Fixture::new(
        INBOUND,
        &[(
            "partner/in.vrl",
            b"# comment\n. = {\n  \"ticket_no\": upcase(.x\n}\n",
        )],
    );
    let errors = f
        .load()
        .err()
        .expect("the program does not compile")
        .join("\n");
    assert!(errors.contains("partner/in.vrl:"), "{errors}");
    assert!(
        errors.contains("syntax error") || errors.contains("error[E"),
        "{errors}"
    );
}

#[test]
fn a_manifest_naming_no_contract_or_program_is_refused() {
    let manifest = INBOUND.replace("test.sample.created.v1", "test.nothing.here.v1");
    let f = Fixture::new(&manifest, &[("partner/in.vrl", b". = {}\n")]);
    let errors = f.load().err().unwrap().join("\n");
    assert!(
        errors.contains("no contract declares topic `test.nothing.here.v1`"),
        "{errors}"
    );

    let f = Fixture::new(INBOUND, &[]);
    let errors = f.load().err().unwrap().join("\n");
    assert!(errors.contains("mapping `in`: cannot read"), "{errors}");

    let f = Fixture::new(
        &INBOUND.replace("format = \"json\"", "format = \"yaml\""),
        &[("partner/in.vrl", b". = {}\n")],
    );
    let errors = f.load().err().unwrap().join("\n");
    assert!(
        errors.contains("mappings.toml:7: unknown variant `yaml`"),
        "{errors}"
    );
}

#[test]
fn an_output_that_breaks_the_contract_names_every_path_and_the_line_setting_it() {
    let program = b"# maps a sample\nticket = .n\n. = {\n  \"ticket_no\": ticket,\n  \"district\": \"310115\",\n  \"occurred_at\": \"yesterday\",\n  \"colour\": \"red\"\n}\n";
    let f = Fixture::new(INBOUND, &[("partner/in.vrl", program)]);
    let set = f.load().unwrap();
    let m = set.get("partner", "in").unwrap();
    let err = m.inbound(br#"{"n": 42}"#, &f.catalog()).unwrap_err();
    assert_eq!(err.code, "MAPPING_OUTPUT_INVALID");
    let text = err.to_string();
    for expected in [
        "mapping partner/in: the record does not satisfy contract `test.sample.created.v1`",
        "ticket_no: expected a string, got a number (set at in.vrl:4)",
        "occurred_at: `yesterday` is not an RFC 3339 time with an offset",
        "(set at in.vrl:6)",
        "colour: is not a field of the contract (set at in.vrl:7)",
    ] {
        assert!(text.contains(expected), "expected `{expected}` in:\n{text}");
    }
}

#[test]
fn code_tables_and_gbk_xml_reach_the_program() {
    let manifest = r#"partner = "partner"
[[mapping]]
name = "in_xml"
direction = "inbound"
contract = "test.sample.created.v1"
program = "in.vrl"
format = "xml"
encoding = "gbk"

[[mapping]]
name = "out_xml"
direction = "outbound"
contract = "test.sample.created.v1"
program = "out.vrl"
format = "xml"
encoding = "gbk"
xml_root = "hz"
"#;
    let inbound = "code = string!(.qh)\nname = get!(%tables.districts, [code])\nif is_null(name) { abort \"未知区划 / unknown district\" }\n. = {\"ticket_no\": string!(.bh) + \"@\" + string!(%xml_root), \"district\": name, \"occurred_at\": \"2026-11-22T09:30:00+08:00\"}\n";
    let outbound = ". = {\"@bb\": \"1\", \"gdbh\": .ticket_no, \"qh\": .district}\n";
    let f = Fixture::new(
        manifest,
        &[
            ("partner/in.vrl", inbound.as_bytes()),
            ("partner/out.vrl", outbound.as_bytes()),
            (
                "tables/districts.json",
                "{\"310115\": \"浦东新区\"}".as_bytes(),
            ),
        ],
    );
    let set = f.load().unwrap();
    let catalog = f.catalog();
    let (gbk, _, _) = encoding_rs::GBK
        .encode("<?xml version=\"1.0\" encoding=\"GBK\"?><gd><bh>工单1</bh><qh>310115</qh></gd>");
    let record = set
        .get("partner", "in_xml")
        .unwrap()
        .inbound(&gbk, &catalog)
        .unwrap();
    assert_eq!(
        record,
        json!({"ticket_no": "工单1@gd", "district": "浦东新区", "occurred_at": "2026-11-22T09:30:00+08:00"})
    );
    let (gbk, _, _) = encoding_rs::GBK
        .encode("<?xml version=\"1.0\" encoding=\"GBK\"?><gd><bh>1</bh><qh>999999</qh></gd>");
    let err = set
        .get("partner", "in_xml")
        .unwrap()
        .inbound(&gbk, &catalog)
        .unwrap_err();
    assert_eq!(
        (err.code, err.at.as_deref()),
        ("MAPPING_FAILED", Some("in.vrl:3"))
    );
    assert!(err.message.contains("未知区划 / unknown district"), "{err}");

    let bytes = set
        .get("partner", "out_xml")
        .unwrap()
        .outbound(&record)
        .unwrap();
    let (text, _, malformed) = encoding_rs::GBK.decode(&bytes);
    assert!(!malformed);
    assert_eq!(
        text,
        "<?xml version=\"1.0\" encoding=\"GBK\"?><hz bb=\"1\"><gdbh>工单1@gd</gdbh><qh>浦东新区</qh></hz>"
    );
}

#[test]
fn a_mapping_without_an_invalid_case_fails_its_fixture_coverage() {
    let program =
        b". = {\"ticket_no\": string!(.n), \"occurred_at\": \"2026-11-22T09:30:00+08:00\"}\n";
    let f = Fixture::new(
        INBOUND,
        &[
            ("partner/in.vrl", program),
            ("partner/fixtures/in/ok.input.json", br#"{"n": "A1"}"#),
            (
                "partner/fixtures/in/ok.expected.json",
                br#"{"ticket_no": "A1", "occurred_at": "2026-11-22T09:30:00+08:00"}"#,
            ),
            ("partner/fixtures/in/wrong.input.json", br#"{"n": "A2"}"#),
            (
                "partner/fixtures/in/wrong.expected.json",
                br#"{"ticket_no": "B2", "occurred_at": "2026-11-22T09:30:00+08:00"}"#,
            ),
        ],
    );
    let set = f.load().unwrap();
    let outcomes = run_fixtures(&set, &f.catalog());
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.failure.clone().map(|m| format!("[{}] {m}", o.case)))
        .collect();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(
        failures[0].starts_with("[wrong] output differs"),
        "{failures:#?}"
    );
    assert!(
        failures[1].contains("needs at least one passing case and one invalid case; has 2 and 0"),
        "{failures:#?}"
    );
    assert!(f.root().exists());
}

#[test]
fn an_answer_mapping_has_no_contract_and_runs_its_fixtures() {
    let manifest = r#"partner = "partner"
[[mapping]]
name = "answer"
direction = "answer"
program = "answer.vrl"
format = "json"
"#;
    let program = b"rtn = \"9999\"\nif .code == \"ACCEPTED\" { rtn = \"0000\" }\n. = {\"rtnCode\": rtn, \"rtnMsg\": .message_zh}\n";
    let f = Fixture::new(
        manifest,
        &[
            ("partner/answer.vrl", program),
            (
                "partner/fixtures/answer/ok.input.json",
                br#"{"code": "ACCEPTED", "message_zh": "ok", "http_status": 200}"#,
            ),
            (
                "partner/fixtures/answer/ok.expected.json",
                br#"{"rtnCode": "0000", "rtnMsg": "ok"}"#,
            ),
            (
                "partner/fixtures/answer/bad.input.json",
                br#"{"code": "AUTH_REPLAY", "message_zh": 5}"#,
            ),
            (
                "partner/fixtures/answer/bad.expected.json",
                br#"{"rtnCode": "9999", "rtnMsg": 5}"#,
            ),
        ],
    );
    let set = f.load().unwrap();
    assert_eq!(set.answer_of("partner").unwrap().name, "answer");
    let outcomes = run_fixtures(&set, &f.catalog());
    let failures: Vec<_> = outcomes.iter().filter_map(|o| o.failure.clone()).collect();
    // Two passing cases and no invalid one: only the coverage rule complains.
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("has 2 and 0"), "{failures:?}");

    let with_contract = manifest.replace(
        "format = \"json\"",
        "format = \"json\"\ncontract = \"test.sample.created.v1\"",
    );
    let f = Fixture::new(&with_contract, &[("partner/answer.vrl", program)]);
    let errors = f.load().err().unwrap().join("\n");
    assert!(
        errors.contains("an answer mapping has no contract"),
        "{errors}"
    );
}

#[test]
fn a_form_push_is_read_as_flat_fields_and_a_form_is_written_back() {
    let manifest = r#"partner = "partner"
[[mapping]]
name = "in_form"
direction = "inbound"
contract = "test.sample.created.v1"
program = "in.vrl"
format = "form"
encoding = "gbk"

[[mapping]]
name = "out_form"
direction = "outbound"
contract = "test.sample.created.v1"
program = "out.vrl"
format = "form"
"#;
    let f = Fixture::new(
        manifest,
        &[
            (
                "partner/in.vrl",
                b". = {\"ticket_no\": .gdbh, \"district\": .qx, \"occurred_at\": \"2026-11-22T09:45:00+08:00\"}\n",
            ),
            (
                "partner/out.vrl",
                b". = {\"gdbh\": .ticket_no, \"qx\": .district}\n",
            ),
        ],
    );
    let set = f.load().unwrap();
    let catalog = f.catalog();
    let inbound = set.get("partner", "in_form").unwrap();
    // 黄浦区 in GBK, percent-encoded; `+` a space, `%2B` a plus.
    let body = b"gdbh=GD+1%2B2&qx=%BB%C6%C6%D6%C7%F8";
    let record = inbound.inbound(body, &catalog).unwrap();
    assert_eq!(record["ticket_no"], "GD 1+2");
    assert_eq!(record["district"], "黄浦区");
    let outbound = set.get("partner", "out_form").unwrap();
    assert_eq!(
        outbound.content_type(),
        "application/x-www-form-urlencoded; charset=utf-8"
    );
    let written = outbound
        .outbound(&json!({"ticket_no": "a&b=c", "district": "黄浦区", "occurred_at": "x"}))
        .unwrap();
    assert_eq!(
        String::from_utf8(written).unwrap(),
        "gdbh=a%26b%3Dc&qx=%E9%BB%84%E6%B5%A6%E5%8C%BA"
    );
}

const XSD: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="Case"><xs:complexType><xs:sequence>
    <xs:element name="TicketNo"/><xs:element name="When"/><xs:element name="District"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>"#;

fn xml_manifest(extra: &str) -> String {
    format!(
        r#"partner = "partner"
[[mapping]]
name = "out_xml"
direction = "outbound"
contract = "test.sample.created.v1"
program = "out.vrl"
format = "xml"
xml_root = "Case"
{extra}
"#
    )
}

const OUT_XML: &[u8] =
    b". = {\"TicketNo\": .ticket_no, \"District\": .district, \"When\": .occurred_at, \"Zz\": 1, \"Aa\": 2}\n";

#[test]
fn outbound_xml_follows_the_xsd_order_not_the_sorted_one() {
    let f = Fixture::new(
        &xml_manifest("xsd = \"case.xsd\""),
        &[
            ("partner/out.vrl", OUT_XML),
            ("partner/case.xsd", XSD.as_bytes()),
        ],
    );
    let set = f.load().unwrap();
    let m = set.get("partner", "out_xml").unwrap();
    let out = m
        .outbound(&json!({"ticket_no": "GD1", "district": "黄浦区", "occurred_at": "t"}))
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        // Sorted would be Aa, District, TicketNo, When, Zz; unlisted children follow, sorted.
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Case><TicketNo>GD1</TicketNo><When>t</When><District>黄浦区</District><Aa>2</Aa><Zz>1</Zz></Case>"
    );
    // xml_order wins over the XSD for what it names.
    let f = Fixture::new(
        &xml_manifest("xsd = \"case.xsd\"\nxml_order = [\"Zz\", \"TicketNo\"]"),
        &[
            ("partner/out.vrl", OUT_XML),
            ("partner/case.xsd", XSD.as_bytes()),
        ],
    );
    let set = f.load().unwrap();
    let out = set
        .get("partner", "out_xml")
        .unwrap()
        .outbound(&json!({"ticket_no": "GD1", "district": "d", "occurred_at": "t"}))
        .unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .ends_with("<Case><Zz>1</Zz><TicketNo>GD1</TicketNo><Aa>2</Aa><District>d</District><When>t</When></Case>"));
}

#[test]
fn xsd_problems_name_the_line_and_key_of_mappings_toml() {
    let f = Fixture::new(
        &xml_manifest("xsd = \"missing.xsd\""),
        &[("partner/out.vrl", OUT_XML)],
    );
    let errors = f.load().err().expect("refused").join("\n");
    assert!(
        errors.contains("mappings.toml:9: mapping `out_xml`: key `xsd`"),
        "{errors}"
    );
    let wrong_root = XSD.replace("\"Case\"", "\"Other\"");
    let f = Fixture::new(
        &xml_manifest("xsd = \"case.xsd\""),
        &[
            ("partner/out.vrl", OUT_XML),
            ("partner/case.xsd", wrong_root.as_bytes()),
        ],
    );
    let errors = f.load().err().expect("refused").join("\n");
    assert!(
        errors.contains("no sequence for the root element <Case>"),
        "{errors}"
    );
    let f = Fixture::new(
        &INBOUND.replace(
            "format = \"json\"",
            "format = \"json\"\nxml_order = [\"a\"]",
        ),
        &[("partner/in.vrl", b". = {}\n")],
    );
    let errors = f.load().err().expect("refused").join("\n");
    assert!(
        errors.contains("mappings.toml:8: mapping `in`: key `xml_order`"),
        "{errors}"
    );
}
