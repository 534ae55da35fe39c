//! Configuration loading shared by the hub and its domain apps.
//!
//! A configuration is one TOML file plus environment overrides. Loading never stops at the first
//! mistake it can avoid stopping at: syntax errors and type errors end parsing (serde cannot go
//! on), but semantic checks ([`Validate`]) report every problem at once. Each [`Problem`] names
//! where the offending value came from — the file with line and column, or the environment
//! variable — and the dotted key, so an operator can fix it without guessing.
//!
//! Environment overrides: a variable `PREFIX_SECTION__KEY[__SUBKEY…]` (the prefix is chosen by
//! the program, `HUB` for the hub) sets `section.key[.subkey…]`. Only variables with a `__` after
//! the prefix are overrides, so `HUB_TEST_KAFKA_BOOTSTRAP` and the like are left alone. A value
//! that reads as a TOML literal (number, boolean, quoted string, array) is taken as that literal;
//! anything else is a plain string.

mod env;
mod locate;
pub mod sections;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use env::EnvOverride;
pub use locate::Origin;

/// One thing wrong with a configuration, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the value came from.
    pub origin: Origin,
    /// Dotted key path, e.g. `bus.bootstrap_servers` (empty for whole-file problems).
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.key.is_empty()) {
            (origin, true) => write!(f, "{origin}: {}", self.message),
            (origin, false) => write!(f, "{origin}: key `{}`: {}", self.key, self.message),
        }
    }
}

/// Every problem found while loading, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A problem found by semantic validation, before it is located in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key path relative to the root of the configuration.
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Semantic checks that serde cannot express (ranges, URL schemes, cross-field rules).
pub trait Validate {
    /// Returns every problem; `prefix` is the dotted path of this section (empty at the root).
    fn validate(&self, prefix: &str) -> Vec<Invalid>;
}

/// Joins a section prefix and a key into a dotted path.
pub fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A loaded configuration, with the folder relative paths in it are resolved against.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub config: T,
    /// The file it was read from.
    pub path: PathBuf,
    /// The environment variables that overrode keys of the file.
    pub overrides: Vec<EnvOverride>,
}

impl<T> Loaded<T> {
    /// Resolves a path written in the configuration: relative paths are relative to the folder
    /// holding the configuration file, so a config works from any working directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or_else(|| Path::new(".")).join(p)
        }
    }
}

/// Reads `path`, applies overrides from the process environment under `env_prefix`, and
/// deserializes and validates the result.
pub fn load<T>(path: &Path, env_prefix: &str) -> Result<Loaded<T>, ConfigErrors>
where
    T: DeserializeOwned + Validate,
{
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, env_prefix, &vars)
}

/// Like [`load`], with the environment given explicitly (for tests and tools).
pub fn load_with_env<T>(
    path: &Path,
    env_prefix: &str,
    vars: &[(String, String)],
) -> Result<Loaded<T>, ConfigErrors>
where
    T: DeserializeOwned + Validate,
{
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Problem {
            origin: Origin::File {
                path: path.to_path_buf(),
                line: None,
                column: None,
            },
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }])
    })?;
    let (config, overrides) = parse_str::<T>(&text, path, env_prefix, vars)?;
    Ok(Loaded {
        config,
        path: path.to_path_buf(),
        overrides,
    })
}

/// Parses configuration text; `path` is used only to name the source in problems.
pub fn parse_str<T>(
    text: &str,
    path: &Path,
    env_prefix: &str,
    vars: &[(String, String)],
) -> Result<(T, Vec<EnvOverride>), ConfigErrors>
where
    T: DeserializeOwned + Validate,
{
    let locator = locate::Locator::new(path, text);
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = e
            .span()
            .map(|s| locator.line_col(s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        ConfigErrors(vec![Problem {
            origin: Origin::File {
                path: path.to_path_buf(),
                line,
                column,
            },
            key: String::new(),
            message: format!("not valid TOML: {}", e.message()),
        }])
    })?;

    let overrides = env::collect(env_prefix, vars);
    let mut problems = Vec::new();
    for o in &overrides {
        if let Err(message) = env::apply(&mut table, o) {
            problems.push(Problem {
                origin: Origin::Env(o.var.clone()),
                key: o.key.clone(),
                message,
            });
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let mut unresolved = Vec::new();
    resolve_secrets(&mut table, "", base, vars, &mut unresolved);
    if !unresolved.is_empty() {
        return Err(ConfigErrors(
            unresolved
                .into_iter()
                .map(|i| locator.problem(&overrides, &i.key, i.message))
                .collect(),
        ));
    }

    let value = toml::Value::Table(table);
    let config: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = path_to_key(e.path());
        let message = e.inner().message().to_string();
        ConfigErrors(vec![locator.problem(&overrides, &key, message)])
    })?;

    let invalid = config.validate("");
    if invalid.is_empty() {
        Ok((config, overrides))
    } else {
        let mut problems: Vec<Problem> = invalid
            .into_iter()
            .map(|i| locator.problem(&overrides, &i.key, i.message))
            .collect();
        problems.sort_by_key(|p| p.origin.sort_key());
        Err(ConfigErrors(problems))
    }
}

/// Keys that hold secrets. Each may instead be written `<key>_env = "VARIABLE"` (the value of
/// that environment variable) or `<key>_file = "PATH"` (the file's content without its trailing
/// line break; a relative path is relative to the configuration file's folder), so a secret
/// need not be in the configuration file. The value is never logged or echoed in a problem.
pub const SECRET_KEYS: &[&str] = &[
    "hmac_secret",
    "password",
    "client_secret",
    "secret_key",
    "token",
];

/// Replaces every `<secret>_env` / `<secret>_file` in `table` (recursively, arrays of tables
/// included) by `<secret>` with the value it points to.
fn resolve_secrets(
    table: &mut toml::Table,
    at: &str,
    base: &Path,
    vars: &[(String, String)],
    problems: &mut Vec<Invalid>,
) {
    for name in SECRET_KEYS {
        let env_key = format!("{name}_env");
        let file_key = format!("{name}_file");
        let from_env = table.remove(&env_key);
        let from_file = table.remove(&file_key);
        let (source_key, value) = match (from_env, from_file) {
            (None, None) => continue,
            (Some(_), Some(_)) => {
                problems.push(Invalid::new(
                    join_key(at, &env_key),
                    format!("choose one of `{env_key}` and `{file_key}`"),
                ));
                continue;
            }
            (Some(v), None) => (env_key, resolve_env(v, vars)),
            (None, Some(v)) => (file_key, resolve_file(v, base)),
        };
        if table.contains_key(*name) {
            problems.push(Invalid::new(
                join_key(at, &source_key),
                format!("`{name}` is also set: write the secret one way only"),
            ));
            continue;
        }
        match value {
            Ok(secret) => {
                table.insert(name.to_string(), toml::Value::String(secret));
            }
            Err(message) => problems.push(Invalid::new(join_key(at, &source_key), message)),
        }
    }
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        match table.get_mut(&key) {
            Some(toml::Value::Table(t)) => {
                resolve_secrets(t, &join_key(at, &key), base, vars, problems);
            }
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let toml::Value::Table(t) = item {
                        let here = format!("{}[{i}]", join_key(at, &key));
                        resolve_secrets(t, &here, base, vars, problems);
                    }
                }
            }
            _ => {}
        }
    }
}

fn resolve_env(v: toml::Value, vars: &[(String, String)]) -> Result<String, String> {
    let toml::Value::String(var) = v else {
        return Err("must be the name of an environment variable".into());
    };
    match vars.iter().find(|(k, _)| *k == var) {
        Some((_, value)) if !value.is_empty() => Ok(value.clone()),
        Some(_) => Err(format!("environment variable `{var}` is empty")),
        None => Err(format!("environment variable `{var}` is not set")),
    }
}

fn resolve_file(v: toml::Value, base: &Path) -> Result<String, String> {
    let toml::Value::String(p) = v else {
        return Err("must be the path of a file holding the secret".into());
    };
    let path = if Path::new(&p).is_absolute() {
        PathBuf::from(&p)
    } else {
        base.join(&p)
    };
    // The error names the file and the reason, never any of its content.
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), e.kind()))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(format!("`{}` is empty", path.display()));
    }
    Ok(secret)
}

/// serde_path_to_error prints `?` for the root and `[i]` for indices; we want `a.b[2].c`.
fn path_to_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
