//! `hub adapter new <name>`: writes the skeleton of a new partner into a repository, so adding a
//! partner starts from files that already pass `hub check` and edits no shared file.
//!
//! The skeleton (templates in `hub/app/templates/adapter/`, `{{partner}}`, `{{family}}` and
//! `{{crate}}` filled in): the adapter manifest and README, a simulator crate on the simulator
//! kit (a workspace member through the root manifest's `adapters/*/simulator` glob), a mapping
//! folder with one example inbound mapping and its fixtures, and the example's contract. Nothing
//! that exists is overwritten: every target is checked before the first file is written, and each
//! file is created with `create_new`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AdapterAction {
    /// Write the skeleton of a new partner: adapters/<name>/ (adapter.toml, README.md,
    /// simulator/), mappings/<name>/ (one example mapping with fixtures) and the example's
    /// contract; it passes `hub check` and overwrites nothing.
    New {
        /// The partner's name: lower-case ASCII letters, digits and `_`, starting with a letter.
        name: String,
        /// The contract family (topic prefix, contracts/schemas/<family>/): lower-case letters
        /// and digits. Default: the name without `_`.
        #[arg(long)]
        family: Option<String>,
        /// The repository's root folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

/// Why no skeleton was written; each starts with its stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewAdapterError {
    /// `ADAPTER_NAME_INVALID`.
    NameInvalid(String),
    /// `ADAPTER_FAMILY_INVALID`.
    FamilyInvalid(String),
    /// `ADAPTER_EXISTS`: the adapter or mapping folder, or a file to write, is already there.
    Exists(PathBuf),
    /// `ADAPTER_ROOT_INVALID`: `--dir` is not a repository root.
    RootInvalid(PathBuf),
    /// `ADAPTER_WRITE_FAILED`.
    Write(PathBuf, String),
}

impl NewAdapterError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NameInvalid(_) => "ADAPTER_NAME_INVALID",
            Self::FamilyInvalid(_) => "ADAPTER_FAMILY_INVALID",
            Self::Exists(_) => "ADAPTER_EXISTS",
            Self::RootInvalid(_) => "ADAPTER_ROOT_INVALID",
            Self::Write(..) => "ADAPTER_WRITE_FAILED",
        }
    }
}

impl fmt::Display for NewAdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Self::NameInvalid(n) => write!(
                f,
                "{code}: 合作方名称 `{n}` 无效，只能用小写字母、数字和下划线，以字母开头，最长 64 个字符 / \
                 partner name `{n}` is invalid: lower-case ASCII letters, digits and `_`, starting with a letter, at most 64 characters"
            ),
            Self::FamilyInvalid(n) => write!(
                f,
                "{code}: 契约族名 `{n}` 无效，只能用小写字母和数字，以字母开头（主题名 <family>.<object>.<event>.v<N> 的第一段），`hub` 为枢纽自用 / \
                 contract family `{n}` is invalid: lower-case ASCII letters and digits, starting with a letter (the first part of topic \
                 <family>.<object>.<event>.v<N>); `hub` is the hub's own"
            ),
            Self::Exists(p) => write!(
                f,
                "{code}: {} 已存在，不覆盖任何文件 / {} already exists; nothing is overwritten",
                p.display(),
                p.display()
            ),
            Self::RootInvalid(p) => write!(
                f,
                "{code}: {} 不是仓库根目录（缺少 adapters/、mappings/ 或 contracts/schemas/），请用 --dir 指定 / \
                 {} is not the repository's root (no adapters/, mappings/ or contracts/schemas/); give it with --dir",
                p.display(),
                p.display()
            ),
            Self::Write(p, e) => write!(
                f,
                "{code}: 无法写入 {} / cannot write {}: {e}",
                p.display(),
                p.display()
            ),
        }
    }
}

impl std::error::Error for NewAdapterError {}

/// A partner name: what `adapters/<name>/`, `mappings/<name>/`, `/v1/<name>/…`,
/// `[partners.<name>]` and the crate `<name>-simulator` all accept.
pub fn is_partner_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A contract family: the first part of a topic, which `hub_contracts::TOPIC_PATTERN` allows no
/// `_` in; `hub` holds the hub's own contracts.
pub fn is_family_name(family: &str) -> bool {
    family != "hub"
        && family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Each file of the skeleton: its path from the repository root and its template.
fn skeleton(partner: &str, family: &str) -> Vec<(PathBuf, &'static str)> {
    let adapter = Path::new("adapters").join(partner);
    let mappings = Path::new("mappings").join(partner);
    let fixtures = mappings.join("fixtures/example_json");
    macro_rules! template {
        ($file:literal) => {
            include_str!(concat!("../templates/adapter/", $file))
        };
    }
    vec![
        (adapter.join("adapter.toml"), template!("adapter.toml")),
        (adapter.join("README.md"), template!("README.md")),
        (
            adapter.join("simulator/Cargo.toml"),
            template!("simulator.Cargo.toml"),
        ),
        (
            adapter.join("simulator/src/lib.rs"),
            template!("simulator.lib.rs"),
        ),
        (
            adapter.join("simulator/tests/api.rs"),
            template!("simulator.test.rs"),
        ),
        (mappings.join("mappings.toml"), template!("mappings.toml")),
        (
            mappings.join("example.inbound.vrl"),
            template!("example.inbound.vrl"),
        ),
        (
            fixtures.join("normal.input.json"),
            template!("normal.input.json"),
        ),
        (
            fixtures.join("normal.expected.json"),
            template!("normal.expected.json"),
        ),
        (
            fixtures.join("missing_id.input.json"),
            template!("missing_id.input.json"),
        ),
        (
            fixtures.join("missing_id.error.json"),
            template!("missing_id.error.json"),
        ),
        (
            Path::new("contracts/schemas")
                .join(family)
                .join("example_received.v1.avsc"),
            template!("example_received.v1.avsc"),
        ),
    ]
}

/// Writes the skeleton of partner `name` under `root`; returns the files written (relative to
/// `root`), or why nothing was written.
pub fn new_adapter(
    root: &Path,
    name: &str,
    family: Option<&str>,
) -> Result<Vec<PathBuf>, NewAdapterError> {
    if !is_partner_name(name) {
        return Err(NewAdapterError::NameInvalid(name.to_string()));
    }
    let family = family.map_or_else(|| name.replace('_', ""), str::to_string);
    if !is_family_name(&family) {
        return Err(NewAdapterError::FamilyInvalid(family));
    }
    if !["adapters", "mappings", "contracts/schemas"]
        .iter()
        .all(|d| root.join(d).is_dir())
    {
        return Err(NewAdapterError::RootInvalid(root.to_path_buf()));
    }
    // An existing folder is an existing adapter (or, for mappings/tables, the code tables).
    for folder in [
        Path::new("adapters").join(name),
        Path::new("mappings").join(name),
    ] {
        if root.join(&folder).exists() {
            return Err(NewAdapterError::Exists(root.join(folder)));
        }
    }
    let files = skeleton(name, &family);
    if let Some((path, _)) = files.iter().find(|(p, _)| root.join(p).exists()) {
        return Err(NewAdapterError::Exists(root.join(path)));
    }
    let crate_name = format!("{name}_simulator");
    for (path, template) in &files {
        let text = template
            .replace("{{partner}}", name)
            .replace("{{family}}", &family)
            .replace("{{crate}}", &crate_name);
        let full = root.join(path);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // create_new: a file that appeared since the check above is still not overwritten.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&full)?
                .write_all(text.as_bytes())
        };
        write().map_err(|e| NewAdapterError::Write(full.clone(), e.to_string()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// `hub adapter …`.
pub fn run(action: AdapterAction) -> ExitCode {
    match action {
        AdapterAction::New { name, family, dir } => {
            match new_adapter(&dir, &name, family.as_deref()) {
                Ok(files) => {
                    println!(
                        "已创建合作方 {name} 的骨架，共 {} 个文件 / wrote the skeleton of partner {name}, {} files:",
                        files.len(),
                        files.len()
                    );
                    for f in &files {
                        println!("  {}", f.display());
                    }
                    println!(
                        "下一步 / next: adapters/{name}/README.md; `hub check`; `cargo test -p {name}-simulator`"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    // A name or folder that cannot be used is a usage error (2); an existing
                    // adapter or a failed write is the command failing (1).
                    match e {
                        NewAdapterError::NameInvalid(_)
                        | NewAdapterError::FamilyInvalid(_)
                        | NewAdapterError::RootInvalid(_) => ExitCode::from(2),
                        NewAdapterError::Exists(_) | NewAdapterError::Write(..) => {
                            ExitCode::from(1)
                        }
                    }
                }
            }
        }
    }
}
