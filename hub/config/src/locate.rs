//! Finding where a dotted key was written: a line in the file, an environment variable, or
//! nowhere (a default).

use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, TableLike};

use crate::env::EnvOverride;
use crate::Problem;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file, with the 1-based line and column of the key when known.
    File {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// An environment variable that overrode the key.
    Env(String),
}

impl Origin {
    pub(crate) fn sort_key(&self) -> (u8, usize, usize, String) {
        match self {
            Origin::File { line, column, .. } => {
                (0, line.unwrap_or(0), column.unwrap_or(0), String::new())
            }
            Origin::Env(v) => (1, 0, 0, v.clone()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                line: Some(l),
                column: Some(c),
            } => write!(f, "{}:{l}:{c}", path.display()),
            Origin::File {
                path,
                line: Some(l),
                ..
            } => write!(f, "{}:{l}", path.display()),
            Origin::File { path, .. } => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

pub(crate) struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Self {
            path,
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
        (line, column)
    }

    /// Builds a problem for `key`, pointing at the environment variable that set it, or at the
    /// deepest part of the key that the file spells out.
    pub(crate) fn problem(&self, overrides: &[EnvOverride], key: &str, message: String) -> Problem {
        let (key, message) = refine_unknown_field(key, message);
        if let Some(o) = overrides.iter().rev().find(|o| {
            key == o.key
                || key.starts_with(&format!("{}.", o.key))
                || o.key.starts_with(&format!("{key}."))
        }) {
            return Problem {
                origin: Origin::Env(o.var.clone()),
                key,
                message,
            };
        }
        let span = self.span_of(&key);
        let (line, column) = span
            .map(|s| self.line_col(s))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        Problem {
            origin: Origin::File {
                path: self.path.to_path_buf(),
                line,
                column,
            },
            key,
            message,
        }
    }

    /// Start offset of the deepest prefix of `key` present in the document.
    fn span_of(&self, key: &str) -> Option<usize> {
        enum Cur<'d> {
            Like(&'d dyn TableLike),
            Item(&'d Item),
        }
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut cur = Cur::Like(doc.as_table());
        let segs = split_key(key);
        let mut i = 0;
        while i < segs.len() {
            match segs[i] {
                Seg::Key(_) => {
                    let table: &dyn TableLike = match cur {
                        Cur::Like(t) => t,
                        Cur::Item(it) => match it.as_table_like() {
                            Some(t) => t,
                            None => break,
                        },
                    };
                    // A quoted key may itself hold dots (`"enable.idempotence"`): try the
                    // shortest run of segments that names a key here.
                    let mut found = None;
                    for j in i..segs.len() {
                        let Some(name) = join_keys(&segs[i..=j]) else {
                            break;
                        };
                        if let Some(kv) = table.get_key_value(&name) {
                            found = Some((j, kv));
                            break;
                        }
                    }
                    let Some((j, (k, child))) = found else {
                        break;
                    };
                    best = k.span().map(|s| s.start).or(best);
                    cur = Cur::Item(child);
                    i = j + 1;
                }
                Seg::Index(n) => {
                    match cur {
                        Cur::Item(Item::ArrayOfTables(a)) => {
                            let Some(t) = a.get(n) else { break };
                            best = t.span().map(|s| s.start).or(best);
                            cur = Cur::Like(t);
                        }
                        Cur::Item(Item::Value(toml_edit::Value::Array(a))) => {
                            if let Some(v) = a.get(n) {
                                best = v.span().map(|s| s.start).or(best);
                            }
                            break;
                        }
                        _ => break,
                    }
                    i += 1;
                }
            }
        }
        best
    }
}

/// Joins consecutive key segments with dots; `None` if an index is among them.
fn join_keys(segs: &[Seg<'_>]) -> Option<String> {
    let mut parts = Vec::with_capacity(segs.len());
    for s in segs {
        match s {
            Seg::Key(k) => parts.push(*k),
            Seg::Index(_) => return None,
        }
    }
    Some(parts.join("."))
}

enum Seg<'k> {
    Key(&'k str),
    Index(usize),
}

fn split_key(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Key(name));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

/// serde reports an unknown field at its parent's path; point at the field itself.
fn refine_unknown_field(key: &str, message: String) -> (String, String) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let field = &rest[..end];
            if !key.ends_with(field) {
                return (crate::join_key(key, field), message);
            }
        }
    }
    (key.to_string(), message)
}
