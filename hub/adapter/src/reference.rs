//! The reference of every `adapter.toml` key, generated from the structs the loader reads the
//! file into. Their JSON Schema (derived with `schemars` beside `serde::Deserialize`, so it
//! follows the same `rename`, `default` and `skip` attributes) carries each field's doc
//! comment, its default and whether it is required; this module turns it into the Markdown
//! tables of docs/adapters.md ("Every key of `adapter.toml`") and docs/auth-schemes.md (one per
//! scheme). The documents hold the tables between `<!-- generated: NAME -->` and
//! `<!-- end generated -->`; `tests/doc_keys.rs` fails when they differ from what this module
//! generates, and rewrites them with `HUB_WRITE_DOCS=1`. To change a key's documentation, edit
//! its doc comment in the code.
//!
//! A field whose default is not a plain value (a section's own defaults, another key's value)
//! says so with `#[schemars(extend("x-default" = "…"))]`.

use std::collections::BTreeSet;

use hub_protocols::{AuthSpec, SCHEMES};
use serde_json::Value;

use crate::Manifest;

/// One key of the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Dotted from the root of its table (`pull.response.items`, `digest`).
    pub key: String,
    /// `required`, `absent`, or the default value as Markdown.
    pub default: String,
    /// The field's doc comment, on one line.
    pub doc: String,
    /// The values an enumerated field takes.
    pub values: Vec<String>,
}

/// Every key of `adapter.toml` but the `[auth]` parameters, depth first, each table's required
/// keys before its optional ones.
pub fn manifest_rows() -> Vec<Row> {
    let schema = schemars::schema_for!(Manifest);
    let root = schema.as_value();
    let mut out = Vec::new();
    rows_of(root, root, "", &mut out);
    out
}

/// The parameters of one authentication scheme (none for `hub-v1`).
pub fn scheme_rows(scheme: &str) -> Vec<Row> {
    let Some(schema) = AuthSpec::parameters_schema(scheme) else {
        return Vec::new();
    };
    let root = schema.as_value();
    let mut out = Vec::new();
    rows_of(root, root, "", &mut out);
    out
}

/// What the code's documentation lacks: a key without a doc comment, an enumerated key whose
/// doc comment does not name each of its values. Empty when the reference is complete.
pub fn problems() -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |table: &str, rows: Vec<Row>| {
        for row in rows {
            if row.doc.trim().is_empty() {
                out.push(format!("{table} key `{}` has no doc comment", row.key));
            }
            for v in &row.values {
                if !row.doc.contains(&format!("`{v}`")) {
                    out.push(format!(
                        "{table} key `{}`: its doc comment does not name the value `{v}`",
                        row.key
                    ));
                }
            }
        }
    };
    check("adapter.toml", manifest_rows());
    for scheme in SCHEMES {
        check(&format!("[auth] {scheme}"), scheme_rows(scheme));
    }
    out
}

/// The table of docs/adapters.md.
pub fn manifest_table() -> String {
    table(
        "key",
        "required / default",
        "what it says",
        &manifest_rows(),
    )
}

/// The table of one scheme's parameters in docs/auth-schemes.md.
pub fn scheme_table(scheme: &str) -> String {
    table("key", "default", "meaning", &scheme_rows(scheme))
}

/// The summary of docs/adapters.md: each scheme with the names of its parameters.
pub fn schemes_summary() -> String {
    let mut s = String::from("| scheme | parameters besides `scheme` |\n|---|---|\n");
    for scheme in SCHEMES {
        let rows = scheme_rows(scheme);
        let names = if rows.is_empty() {
            "none".to_string()
        } else {
            rows.iter()
                .map(|r| {
                    if r.default == "required" {
                        format!("`{}` (required)", r.key)
                    } else {
                        format!("`{}`", r.key)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!("| `{scheme}` | {names} |\n"));
    }
    s
}

/// The generated blocks, by the name their markers carry.
pub fn blocks() -> Vec<(String, String)> {
    let mut out = vec![
        ("adapter-keys".to_string(), manifest_table()),
        ("auth-schemes".to_string(), schemes_summary()),
    ];
    for scheme in SCHEMES.iter().filter(|s| **s != "hub-v1") {
        out.push((format!("auth-{scheme}"), scheme_table(scheme)));
    }
    out
}

/// `doc` with the block `name` replaced by `generated`; an error when its markers are missing.
pub fn splice(doc: &str, name: &str, generated: &str) -> Result<String, String> {
    let begin = begin_marker(name);
    let start = doc
        .find(&begin)
        .ok_or_else(|| format!("no `{begin}` marker"))?
        + begin.len();
    let len = doc[start..]
        .find(END)
        .ok_or_else(|| format!("no `{END}` after `{begin}`"))?;
    Ok(format!(
        "{}\n{generated}{}",
        &doc[..start],
        &doc[start + len..]
    ))
}

/// The text between the markers of block `name`, as [`splice`] writes it.
pub fn block<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let begin = begin_marker(name);
    let start = doc.find(&begin)? + begin.len();
    let len = doc[start..].find(END)?;
    Some(&doc[start..start + len])
}

/// The line that opens the block `name`.
pub fn begin_marker(name: &str) -> String {
    format!("<!-- generated: {name} (from the code's doc comments: edit those, then run HUB_WRITE_DOCS=1 cargo test -p hub-adapter --test doc_keys) -->")
}

/// The line that closes a block.
pub const END: &str = "<!-- end generated -->";

fn table(key: &str, default: &str, doc: &str, rows: &[Row]) -> String {
    let mut s = format!("| {key} | {default} | {doc} |\n|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.key,
            cell(&r.default),
            cell(&r.doc)
        ));
    }
    s
}

/// Text fit for one table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The rows of the object schema `obj` (and of the tables below it), keys prefixed.
fn rows_of(root: &Value, obj: &Value, prefix: &str, out: &mut Vec<Row>) {
    let Some(props) = obj.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: BTreeSet<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Required keys first, then the optional ones; each group in the schema's (name) order.
    let mut names: Vec<&String> = props.keys().collect();
    names.sort_by_key(|n| !required.contains(n.as_str()));
    for name in names {
        let prop = &props[name];
        let key = format!("{prefix}{name}");
        let target = value_schema(root, prop);
        out.push(Row {
            key: key.clone(),
            default: default_text(prop, target, required.contains(name.as_str())),
            doc: prop
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            values: enum_values(root, target),
        });
        // A table (`[answer]`, `[[delivery]]`, `file = { … }`): its own keys follow.
        let table = match target.get("type").and_then(Value::as_str) {
            Some("array") => target.get("items").map(|i| value_schema(root, i)),
            _ => Some(target),
        };
        if let Some(t) = table.filter(|t| t.get("properties").is_some()) {
            rows_of(root, t, &format!("{key}."), out);
        } else if let Some(each) = target.get("additionalProperties").filter(|a| a.is_object()) {
            // Tables by name (`[answers.<name>]`): the keys of each.
            let t = value_schema(root, each);
            if t.get("properties").is_some() {
                rows_of(root, t, &format!("{key}.<name>."), out);
            }
        }
    }
}

/// The schema of a property's value: references followed, an optional's `null` dropped.
fn value_schema<'a>(root: &'a Value, prop: &'a Value) -> &'a Value {
    let prop = deref(root, prop);
    if let Some(any) = prop.get("anyOf").and_then(Value::as_array) {
        if let Some(inner) = any
            .iter()
            .find(|s| s.get("type").and_then(Value::as_str) != Some("null"))
        {
            return deref(root, inner);
        }
    }
    prop
}

fn deref<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name))
            .unwrap_or(schema),
        None => schema,
    }
}

/// The string values of an enumerated schema (`enum`, or `oneOf` of `const`s).
fn enum_values(root: &Value, schema: &Value) -> Vec<String> {
    let schema = deref(root, schema);
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
    }
    schema
        .get("oneOf")
        .and_then(Value::as_array)
        .map(|variants| {
            variants
                .iter()
                .flat_map(|v| enum_values(root, v).into_iter().chain(constant(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn constant(schema: &Value) -> Option<String> {
    schema
        .get("const")
        .and_then(Value::as_str)
        .map(String::from)
}

/// An `Option`: `null` is one of the schema's types.
fn nullable(prop: &Value) -> bool {
    let is_null = |s: &Value| match s.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        _ => false,
    };
    is_null(prop)
        || prop
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|any| any.iter().any(is_null))
}

fn default_text(prop: &Value, target: &Value, required: bool) -> String {
    if let Some(text) = prop.get("x-default").and_then(Value::as_str) {
        return text.to_string();
    }
    match prop.get("default") {
        Some(Value::Null) => "absent".into(),
        Some(Value::String(s)) if s.is_empty() => "`\"\"`".into(),
        Some(Value::String(s)) => format!("`{s}`"),
        Some(Value::Array(a)) if a.is_empty() => "`[]`".into(),
        Some(Value::Object(o)) if o.is_empty() => "`{}`".into(),
        Some(other) => format!("`{other}`"),
        None if required => "required".into(),
        None if nullable(prop) => "absent".into(),
        // A default the schema could not write down (the type is not serialisable): the
        // empty value of its type.
        None => match target.get("type").and_then(Value::as_str) {
            Some("array") => "`[]`".into(),
            Some("object") => "`{}`".into(),
            Some("boolean") => "`false`".into(),
            _ => "absent".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_structs() {
        let rows = manifest_rows();
        let row = |k: &str| {
            rows.iter()
                .find(|r| r.key == k)
                .unwrap_or_else(|| panic!("no row {k}"))
        };
        assert_eq!(row("partner").default, "required");
        assert_eq!(row("pull.page_size").default, "`50`");
        assert_eq!(row("delivery.method").default, "`POST`");
        assert_eq!(row("answer.unknown").default, "`permanent`");
        assert_eq!(row("pull.response.items").default, "required");
        assert_eq!(row("delivery.reply").default, "absent");
        assert_eq!(row("delivery").default, "`[]`");
        assert_eq!(row("delivery.file").default, "absent");
        assert_eq!(row("answers").default, "`{}`");
        assert_eq!(row("answers.<name>.codes.outcome").default, "required");
        assert_eq!(
            row("answer.format").values,
            vec!["json".to_string(), "xml".into(), "soap".into()]
        );
        // Serde's names, not Rust's: `[[delivery]]` is the field `deliveries`.
        assert!(rows.iter().all(|r| !r.key.starts_with("deliveries")));
        // Skipped fields are not keys.
        assert!(rows.iter().all(|r| r.key != "path"));
    }

    #[test]
    fn scheme_rows_follow_the_spec_structs() {
        assert!(scheme_rows("hub-v1").is_empty());
        let rows = scheme_rows("app-key-sign");
        assert_eq!(rows[0].key, "digest");
        assert_eq!(rows[0].default, "required");
        let skip = rows.iter().find(|r| r.key == "skip_empty").unwrap();
        assert_eq!(skip.default, "`true`");
    }

    #[test]
    fn splice_replaces_only_the_block() {
        let doc = format!("a\n{}\nold\n{END}\nb\n", begin_marker("x"));
        let new = splice(&doc, "x", "new\n").unwrap();
        assert_eq!(new, format!("a\n{}\nnew\n{END}\nb\n", begin_marker("x")));
        assert_eq!(block(&new, "x"), Some("\nnew\n"));
        assert!(splice(&doc, "y", "z").is_err());
    }
}
