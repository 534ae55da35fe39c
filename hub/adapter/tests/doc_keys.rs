//! docs/adapters.md names every key `adapter.toml` accepts, and no key it refuses. The keys
//! come from the code itself: each table is given an unknown key, and serde's refusal lists the
//! fields that table's struct accepts (`unknown field …, expected one of …`).

use std::collections::BTreeSet;

use hub_adapter::Manifest;
use hub_protocols::{AuthSpec, SCHEMES};

const DOC: &str = include_str!("../../../docs/adapters.md");
const UNKNOWN: &str = "zz_not_a_key";

/// The backticked names after `expected` in a serde unknown-field message.
fn expected_fields(message: &str) -> BTreeSet<String> {
    assert!(
        message.contains(&format!("unknown field `{UNKNOWN}`")),
        "not an unknown-field refusal: {message}"
    );
    let (_, list) = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("no field list in: {message}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The fields of the table `prefix` leads to, read from the refusal of an unknown key there.
fn fields_of(prefix: &str) -> BTreeSet<String> {
    let manifest = format!("partner = \"x\"\n{prefix}\n{UNKNOWN} = 1\n");
    let e = toml::from_str::<Manifest>(&manifest).expect_err("an unknown key is refused");
    expected_fields(e.message())
}

/// Every key of `adapter.toml` outside `[auth]`, dotted from the root (`pull.response.items`).
fn manifest_keys() -> BTreeSet<String> {
    let e = toml::from_str::<Manifest>(&format!("{UNKNOWN} = 1\n")).expect_err("refused");
    let mut keys: BTreeSet<String> = expected_fields(e.message());
    for (table, header) in [
        ("answer", "[answer]"),
        ("answer.codes", "[[answer.codes]]"),
        ("delivery", "[[delivery]]"),
        ("pull", "[[pull]]"),
        ("pull.response", "[[pull]]\n[pull.response]"),
        ("file", "[[file]]"),
        ("batch", "[[batch]]"),
        ("delivery.file", "[[delivery]]\n[delivery.file]"),
    ] {
        keys.extend(
            fields_of(header)
                .into_iter()
                .map(|f| format!("{table}.{f}")),
        );
    }
    keys
}

/// A scheme's parameters (besides `scheme`), from the refusal of an unknown one.
fn scheme_keys(scheme: &str) -> BTreeSet<String> {
    let mut table = toml::Table::new();
    table.insert("scheme".into(), scheme.into());
    table.insert(UNKNOWN.into(), 1.into());
    let problems = AuthSpec::parse(Some(&table)).expect_err("an unknown parameter is refused");
    if scheme == "hub-v1" {
        // hub-v1 refuses any parameter without a serde struct behind it.
        assert_eq!(problems[0].key, format!("auth.{UNKNOWN}"));
        return BTreeSet::new();
    }
    expected_fields(&problems[0].message)
}

/// The rows of the section of docs/adapters.md that lists the keys: `(first cell, second cell)`
/// with the backticks of the first cell taken off.
fn doc_rows() -> Vec<(String, String)> {
    let section = DOC
        .split("\n## Every key of `adapter.toml`")
        .nth(1)
        .expect("docs/adapters.md has the section `## Every key of `adapter.toml``");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let mut cells = l.split('|').skip(1);
            let first = cells.next().unwrap().trim().trim_matches('`').to_string();
            (first, cells.next().unwrap_or_default().trim().to_string())
        })
        .collect()
}

#[test]
fn every_key_the_manifest_accepts_is_in_the_doc_and_nothing_else() {
    let code = manifest_keys();
    // The code's list is not empty nor trivial: it holds keys every manifest has.
    for key in ["partner", "answer.codes.outcome", "pull.response.item_id"] {
        assert!(code.contains(key), "{key} missing from {code:?}");
    }
    let doc: BTreeSet<String> = doc_rows()
        .into_iter()
        .map(|(first, _)| first)
        .filter(|first| !SCHEMES.contains(&first.as_str()))
        .collect();
    let undocumented: Vec<_> = code.difference(&doc).collect();
    let unknown: Vec<_> = doc.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/adapters.md lacks {undocumented:?} and names {unknown:?}, which the manifest refuses"
    );
}

#[test]
fn every_auth_scheme_is_in_the_doc_with_exactly_its_parameters() {
    let rows = doc_rows();
    for scheme in SCHEMES {
        let row = rows
            .iter()
            .find(|(first, _)| first == scheme)
            .unwrap_or_else(|| panic!("docs/adapters.md has no row for scheme `{scheme}`"));
        let doc: BTreeSet<String> = row
            .1
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect();
        assert_eq!(
            doc,
            scheme_keys(scheme),
            "the parameters of `{scheme}` in docs/adapters.md"
        );
    }
}
