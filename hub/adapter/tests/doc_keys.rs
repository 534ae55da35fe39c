//! The key reference in docs/adapters.md and docs/auth-schemes.md is generated from the code
//! (`hub_adapter::reference`: the JSON Schema of the structs the loader reads `adapter.toml`
//! into, with their doc comments). These tests fail when a document differs from what the code
//! generates (`HUB_WRITE_DOCS=1` rewrites the documents instead), when a key has no doc
//! comment, and, independently of the generator, when the documented keys are not exactly the
//! keys serde accepts: each table is given an unknown key, and serde's refusal lists the
//! fields that table's struct accepts (`unknown field …, expected one of …`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hub_adapter::{reference, Manifest};
use hub_protocols::{AuthSpec, SCHEMES};

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
        ("answers.<name>", "[answers.x]"),
        ("answers.<name>.codes", "[[answers.x.codes]]"),
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

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn read_doc(name: &str) -> String {
    std::fs::read_to_string(docs_dir().join(name)).expect("the document")
}

/// The generated blocks and the document each lives in.
fn blocks() -> Vec<(&'static str, String, String)> {
    reference::blocks()
        .into_iter()
        .map(|(name, text)| {
            let doc = if name == "adapter-keys" || name == "auth-schemes" {
                "adapters.md"
            } else {
                "auth-schemes.md"
            };
            (doc, name, text)
        })
        .collect()
}

#[test]
fn the_documents_hold_what_the_code_generates() {
    let write = std::env::var_os("HUB_WRITE_DOCS").is_some();
    let mut stale = Vec::new();
    for (doc, name, generated) in blocks() {
        let text = read_doc(doc);
        let current = reference::block(&text, &name)
            .unwrap_or_else(|| panic!("docs/{doc} has no block `{name}`: add its markers"));
        if current == format!("\n{generated}") {
            continue;
        }
        if write {
            let new = reference::splice(&text, &name, &generated).unwrap();
            std::fs::write(docs_dir().join(doc), new).unwrap();
        } else {
            stale.push(format!("docs/{doc} block `{name}`"));
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the code's doc comments: run HUB_WRITE_DOCS=1 cargo test -p hub-adapter --test doc_keys"
    );
}

#[test]
fn every_key_has_a_doc_comment_that_names_its_values() {
    let problems = reference::problems();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The first cells of the generated table `name` in `doc`, backticks taken off.
fn first_cells(doc: &str, name: &str) -> Vec<String> {
    let text = read_doc(doc);
    reference::block(&text, name)
        .unwrap_or_else(|| panic!("docs/{doc} has no block `{name}`"))
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.split('|')
                .nth(1)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
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
    let doc: BTreeSet<String> = first_cells("adapters.md", "adapter-keys")
        .into_iter()
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
    let summary = read_doc("adapters.md");
    let summary = reference::block(&summary, "auth-schemes").expect("the schemes summary");
    for scheme in SCHEMES {
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| `{scheme}` |")))
            .unwrap_or_else(|| panic!("docs/adapters.md has no row for scheme `{scheme}`"));
        let listed: BTreeSet<String> = row
            .split('|')
            .nth(2)
            .unwrap()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect();
        assert_eq!(
            listed,
            scheme_keys(scheme),
            "the parameters of `{scheme}` in docs/adapters.md"
        );
        if *scheme != "hub-v1" {
            let table: BTreeSet<String> = first_cells("auth-schemes.md", &format!("auth-{scheme}"))
                .into_iter()
                .collect();
            assert_eq!(
                table,
                scheme_keys(scheme),
                "the parameters of `{scheme}` in docs/auth-schemes.md"
            );
        }
    }
}
