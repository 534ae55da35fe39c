//! Environment overrides: `PREFIX_SECTION__KEY=value` sets `section.key`.

/// One environment variable that overrides a configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    /// The variable's name, e.g. `HUB_BUS__BOOTSTRAP_SERVERS`.
    pub var: String,
    /// The dotted key it sets, e.g. `bus.bootstrap_servers`.
    pub key: String,
    /// The raw value.
    pub value: String,
}

/// The overrides among `vars`, sorted by variable name so the result does not depend on the
/// order the process environment happens to list them in.
pub(crate) fn collect(prefix: &str, vars: &[(String, String)]) -> Vec<EnvOverride> {
    let lead = format!("{prefix}_");
    let mut out: Vec<EnvOverride> = vars
        .iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(&lead)?;
            if !rest.contains("__") {
                return None;
            }
            let key = rest
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            Some(EnvOverride {
                var: name.clone(),
                key,
                value: value.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

/// Parses an override's value: a TOML literal when it is one, else a plain string.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Sets the override's key in `table`, creating intermediate tables.
pub(crate) fn apply(table: &mut toml::Table, o: &EnvOverride) -> Result<(), String> {
    let parts: Vec<&str> = o.key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("the variable name has an empty key segment (`___` or a trailing `__`)".into());
    }
    let (last, parents) = parts
        .split_last()
        .expect("collect() never yields an empty key");
    let mut cur = table;
    for (depth, p) in parents.iter().enumerate() {
        let entry = cur
            .entry((*p).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(format!(
                    "`{}` is a value in the file, not a table, so `{}` cannot be set under it",
                    parts[..=depth].join("."),
                    o.key
                ))
            }
        };
    }
    cur.insert((*last).to_string(), parse_value(&o.value));
    Ok(())
}
