//! Declarative mappings between partner payloads and contract records.
//!
//! A mapping is a VRL program (the Vector Remap Language: a maintained language with a
//! type-checking compiler, good diagnostics and a standard library), not Rust code. Each partner
//! folder under `mappings/` holds a `mappings.toml` manifest naming its mappings, their programs,
//! the contract each produces or consumes, the payload format (JSON, XML or a form) and charset
//! (UTF-8, GBK, GB18030), and `fixtures/` with golden cases. Code tables (districts,
//! categories, …) are JSON files in `mappings/tables/` that every program reads as
//! `%tables.<name>`.
//!
//! Inbound: bytes → charset decode → JSON, XML or form tree → program → record → contract
//! validation. Outbound: contract record → program → JSON, XML (children in the order of the
//! partner's XSD, [`xsd`]) or form ([`form`]) → charset encode → bytes.
//!
//! Every failure is a [`MappingError`] with a stable code, the mapping's name, the program line
//! where VRL stopped (or where the offending field is set) and, for contract violations, every
//! offending field path.

pub mod fields;
mod fixtures;
pub mod form;
pub mod limits;
mod program;
mod target;
pub mod xml;
pub mod xsd;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hub_contracts::{Catalog, RecordError};
use serde::Deserialize;

pub use fixtures::{run_fixtures, FixtureOutcome};
pub use limits::InputLimits;
pub use program::{CompileProblem, Program, RunError};
pub use xsd::XmlOrder;

/// Which way a mapping goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Partner payload → contract record.
    Inbound,
    /// Contract record → partner payload.
    Outbound,
    /// The hub's unified answer → the partner's acknowledgement envelope (at most one per
    /// partner; no contract).
    Answer,
}

/// The partner payload's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Xml,
    /// `application/x-www-form-urlencoded`: an object of scalar fields ([`form`]).
    Form,
}

/// The partner payload's charset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Charset {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "gbk")]
    Gbk,
    #[serde(rename = "gb18030")]
    Gb18030,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    partner: String,
    #[serde(rename = "mapping", default)]
    mappings: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    name: String,
    direction: Direction,
    /// The contract's topic; not for `answer` mappings.
    #[serde(default)]
    contract: String,
    program: PathBuf,
    format: Format,
    #[serde(default)]
    encoding: Charset,
    /// Outbound XML only: the root element to write.
    #[serde(default)]
    xml_root: Option<String>,
    /// Outbound XML only: the partner's XML Schema (beside `mappings.toml`), whose
    /// `xs:sequence`s fix the order of each element's children.
    #[serde(default)]
    xsd: Option<PathBuf>,
    /// Outbound XML only: element orders written by hand, over the XSD's: a list (the root's
    /// children) or a table of element name → its children.
    #[serde(default)]
    xml_order: Option<XmlOrderSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum XmlOrderSpec {
    Root(Vec<String>),
    Elements(BTreeMap<String, Vec<String>>),
}

/// The line (1-based) of `key` in the `index`-th (0-based) `[[array]]` table of a TOML text:
/// the line that sets it, or the table's header when it is not written. For problems located
/// by file, line and key.
pub fn entry_line(text: &str, array: &str, index: usize, key: &str) -> Option<usize> {
    let header = format!("[[{array}]]");
    let mut seen = 0usize;
    let mut header_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            if header_line.is_some() {
                // Left the entry (a sub-table of it still belongs to it).
                if !t.starts_with(&format!("[{array}.")) {
                    break;
                }
                continue;
            }
            if t.replace(' ', "") == header {
                if seen == index {
                    header_line = Some(i + 1);
                }
                seen += 1;
            }
            continue;
        }
        if header_line.is_some() {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    header_line
}

/// One mapping, ready to run.
#[derive(Clone)]
pub struct Mapping {
    pub partner: String,
    pub name: String,
    pub direction: Direction,
    /// The topic of the contract it produces (inbound) or reads (outbound).
    pub contract: String,
    pub format: Format,
    pub charset: Charset,
    pub xml_root: Option<String>,
    /// Outbound XML: the order of each element's children (from `xsd` and `xml_order`).
    pub xml_order: Arc<XmlOrder>,
    /// The partner folder (holds `fixtures/`).
    pub folder: PathBuf,
    program: Arc<Program>,
    /// `%` for every run: `{"tables": {…}}`, built once because converting the tables on every
    /// record cost more than the program itself.
    metadata: Arc<vrl::value::Value>,
    /// How deep and how large a payload this mapping reads may be.
    limits: InputLimits,
}

/// A mapping failure, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// `MAPPING_INPUT_UNREADABLE`, `INPUT_TOO_DEEP`, `INPUT_TOO_MANY_NODES`, `MAPPING_FAILED`,
    /// `MAPPING_OUTPUT_INVALID` or `MAPPING_OUTPUT_UNENCODABLE`.
    pub code: &'static str,
    /// `partner/name`.
    pub mapping: String,
    /// `program.vrl:line`, where known.
    pub at: Option<String>,
    pub message: String,
    /// For `MAPPING_OUTPUT_INVALID`: each offending contract path, with the program line that
    /// sets it where one does.
    pub fields: Vec<(RecordError, Option<String>)>,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: mapping {}", self.code, self.mapping)?;
        if let Some(at) = &self.at {
            write!(f, " ({at})")?;
        }
        write!(f, ": {}", self.message)?;
        for (e, at) in &self.fields {
            write!(f, "\n  {e}")?;
            if let Some(at) = at {
                write!(f, " (set at {at})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for MappingError {}

/// A problem loading the mappings, located.
#[derive(Debug, Clone)]
pub struct Problem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Every mapping under a folder.
#[derive(Clone, Default)]
pub struct MappingSet {
    pub mappings: Vec<Mapping>,
    /// partner → mapping name → position in `mappings`, built at load (every request looks its
    /// mapping up).
    index: HashMap<String, HashMap<String, usize>>,
}

impl MappingSet {
    /// Loads `root/tables/*.json` and every `root/<partner>/mappings.toml`, compiling each
    /// program once, and checks each names a contract of `catalog` whose direction fits.
    pub fn load(root: &Path, catalog: &Catalog) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let tables = load_tables(&root.join("tables"), &mut problems);
        let metadata = Arc::new(vrl::value::Value::from(serde_json::json!({
            "tables": serde_json::Value::Object(tables.into_iter().collect()),
        })));
        let functions = vrl::stdlib::all();
        let mut programs: BTreeMap<PathBuf, Arc<Program>> = BTreeMap::new();
        let mut mappings = Vec::new();

        let mut partners: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(|e| {
                vec![Problem {
                    path: root.to_path_buf(),
                    line: None,
                    message: format!("cannot read the mappings folder: {e}"),
                }]
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("mappings.toml").is_file())
            .collect();
        partners.sort();

        for folder in partners {
            let manifest_path = folder.join("mappings.toml");
            let manifest_text = std::fs::read_to_string(&manifest_path).unwrap_or_default();
            let manifest: Manifest = match std::fs::read_to_string(&manifest_path)
                .map_err(|e| (None, e.to_string()))
                .and_then(|t| {
                    toml::from_str(&t).map_err(|e: toml::de::Error| {
                        let line = e.span().map(|s| t[..s.start].matches('\n').count() + 1);
                        (line, e.message().to_string())
                    })
                }) {
                Ok(m) => m,
                Err((line, message)) => {
                    problems.push(Problem {
                        path: manifest_path,
                        line,
                        message,
                    });
                    continue;
                }
            };
            for (index, entry) in manifest.mappings.into_iter().enumerate() {
                let xml_order = load_order(
                    &folder,
                    &manifest_path,
                    &manifest_text,
                    index,
                    &entry,
                    &mut problems,
                );
                let program_path = folder.join(&entry.program);
                let program = match programs.get(&program_path) {
                    Some(p) => Arc::clone(p),
                    None => {
                        let source = match std::fs::read_to_string(&program_path) {
                            Ok(s) => s,
                            Err(e) => {
                                problems.push(Problem {
                                    path: manifest_path.clone(),
                                    line: None,
                                    message: format!(
                                        "mapping `{}`: cannot read {}: {e}",
                                        entry.name,
                                        program_path.display()
                                    ),
                                });
                                continue;
                            }
                        };
                        match Program::compile(&program_path, source, &functions) {
                            Ok(p) => {
                                let p = Arc::new(p);
                                programs.insert(program_path.clone(), Arc::clone(&p));
                                p
                            }
                            Err(list) => {
                                problems.extend(list.into_iter().map(|c| Problem {
                                    path: c.path,
                                    line: c.line,
                                    message: c.message,
                                }));
                                continue;
                            }
                        }
                    }
                };
                if entry.direction == Direction::Answer {
                    if !entry.contract.is_empty() {
                        problems.push(Problem {
                            path: manifest_path.clone(),
                            line: None,
                            message: format!(
                                "mapping `{}`: an answer mapping has no contract",
                                entry.name
                            ),
                        });
                    }
                } else if !catalog
                    .contracts
                    .iter()
                    .any(|c| c.declaration.topic == entry.contract)
                {
                    problems.push(Problem {
                        path: manifest_path.clone(),
                        line: None,
                        message: format!(
                            "mapping `{}`: no contract declares topic `{}`",
                            entry.name, entry.contract
                        ),
                    });
                }
                if entry.direction != Direction::Inbound
                    && entry.format == Format::Xml
                    && entry.xml_root.is_none()
                {
                    problems.push(Problem {
                        path: manifest_path.clone(),
                        line: None,
                        message: format!("mapping `{}`: outbound XML needs `xml_root`", entry.name),
                    });
                }
                mappings.push(Mapping {
                    partner: manifest.partner.clone(),
                    name: entry.name,
                    direction: entry.direction,
                    contract: entry.contract,
                    format: entry.format,
                    charset: entry.encoding,
                    xml_root: entry.xml_root,
                    xml_order: Arc::new(xml_order),
                    folder: folder.clone(),
                    program,
                    metadata: Arc::clone(&metadata),
                    limits: InputLimits::default(),
                });
            }
        }
        let mut seen = BTreeMap::new();
        for m in &mappings {
            if seen
                .insert((m.partner.clone(), m.name.clone()), ())
                .is_some()
            {
                problems.push(Problem {
                    path: m.folder.join("mappings.toml"),
                    line: None,
                    message: format!(
                        "mapping `{}` is declared twice for partner `{}`",
                        m.name, m.partner
                    ),
                });
            }
        }
        let mut answers = BTreeMap::new();
        for m in mappings.iter().filter(|m| m.direction == Direction::Answer) {
            if answers.insert(m.partner.clone(), ()).is_some() {
                problems.push(Problem {
                    path: m.folder.join("mappings.toml"),
                    line: None,
                    message: format!(
                        "partner `{}` declares more than one answer mapping",
                        m.partner
                    ),
                });
            }
        }
        if problems.is_empty() {
            let mut index: HashMap<String, HashMap<String, usize>> = HashMap::new();
            for (i, m) in mappings.iter().enumerate() {
                index
                    .entry(m.partner.clone())
                    .or_default()
                    .entry(m.name.clone())
                    .or_insert(i);
            }
            Ok(Self { mappings, index })
        } else {
            Err(problems)
        }
    }

    /// Sets how deep and how large the payloads every mapping reads may be (the default is
    /// [`InputLimits::default`]).
    pub fn set_input_limits(&mut self, limits: InputLimits) {
        for m in &mut self.mappings {
            m.limits = limits;
        }
    }

    /// The partner's acknowledgement envelope, if it declares one.
    pub fn answer_of(&self, partner: &str) -> Option<&Mapping> {
        self.mappings
            .iter()
            .find(|m| m.partner == partner && m.direction == Direction::Answer)
    }

    pub fn get(&self, partner: &str, name: &str) -> Option<&Mapping> {
        // Checked against the mapping it points to, and a miss is searched for, so a set whose
        // public list was changed after load still answers correctly.
        let is = |m: &&Mapping| m.partner == partner && m.name == name;
        self.index
            .get(partner)
            .and_then(|by_name| by_name.get(name))
            .and_then(|&i| self.mappings.get(i))
            .filter(is)
            .or_else(|| self.mappings.iter().find(is))
    }
}

/// The element order of one mapping entry: its XSD's, with `xml_order` over it. Every problem
/// is located by line and key of `mappings.toml`.
fn load_order(
    folder: &Path,
    manifest_path: &Path,
    text: &str,
    index: usize,
    entry: &ManifestEntry,
    problems: &mut Vec<Problem>,
) -> XmlOrder {
    let mut order = XmlOrder::new();
    let at = |key: &str, message: String| Problem {
        path: manifest_path.to_path_buf(),
        line: entry_line(text, "mapping", index, key),
        message: format!("mapping `{}`: key `{key}`: {message}", entry.name),
    };
    let writes_xml = entry.format == Format::Xml && entry.direction != Direction::Inbound;
    for (key, set) in [
        ("xsd", entry.xsd.is_some()),
        ("xml_order", entry.xml_order.is_some()),
    ] {
        if set && !writes_xml {
            problems.push(at(
                key,
                "只用于输出 XML 的映射 / only for a mapping that writes XML (outbound or answer)"
                    .into(),
            ));
        }
    }
    let mut ambiguous = std::collections::BTreeSet::new();
    if let Some(file) = &entry.xsd {
        let path = folder.join(file);
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(at(
                "xsd",
                format!("无法读取 / cannot read {}: {e}", path.display()),
            )),
            Ok(xsd_text) => match xsd::read_order(&xsd_text, &InputLimits::default()) {
                Err(e) => problems.push(at(
                    "xsd",
                    format!(
                        "{} 不是可读的 XSD / is not a readable XSD: {e}",
                        path.display()
                    ),
                )),
                Ok(schema) => {
                    order = schema.order;
                    ambiguous = schema.ambiguous;
                    if let Some(root) = &entry.xml_root {
                        if !order.contains_key(root) {
                            problems.push(at(
                                "xsd",
                                format!(
                                    "{} 未以 xs:sequence 定义根元素 <{root}> / defines no sequence for the root element <{root}>",
                                    path.display()
                                ),
                            ));
                        }
                    }
                }
            },
        }
    }
    match &entry.xml_order {
        None => {}
        Some(XmlOrderSpec::Root(list)) => match &entry.xml_root {
            Some(root) => {
                ambiguous.remove(root);
                order.insert(root.clone(), list.clone());
            }
            None => problems.push(at(
                "xml_order",
                "列表形式需要 xml_root / a list needs `xml_root` (it orders the root's children)"
                    .into(),
            )),
        },
        Some(XmlOrderSpec::Elements(table)) => {
            for (name, list) in table {
                ambiguous.remove(name);
                order.insert(name.clone(), list.clone());
            }
        }
    }
    for name in ambiguous {
        problems.push(at(
            "xsd",
            format!(
                "元素 <{name}> 在 XSD 中有两种顺序，请在 xml_order 中指定 / element <{name}> has two different orders in the XSD: settle it in `xml_order`"
            ),
        ));
    }
    order
}

fn load_tables(dir: &Path, problems: &mut Vec<Problem>) -> BTreeMap<String, serde_json::Value> {
    let mut tables = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return tables;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for f in files {
        let name = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match std::fs::read_to_string(&f)
            .map_err(|e| (None, e.to_string()))
            .and_then(|t| {
                serde_json::from_str::<serde_json::Value>(&t)
                    .map_err(|e| (Some(e.line()), e.to_string()))
            }) {
            Ok(v) if v.is_object() => {
                tables.insert(name, v);
            }
            Ok(_) => problems.push(Problem {
                path: f,
                line: None,
                message: "a code table is a JSON object of code → value".into(),
            }),
            Err((line, message)) => problems.push(Problem {
                path: f,
                line,
                message,
            }),
        }
    }
    tables
}

impl Mapping {
    fn id(&self) -> String {
        format!("{}/{}", self.partner, self.name)
    }

    fn error(
        &self,
        code: &'static str,
        at: Option<String>,
        message: impl Into<String>,
    ) -> MappingError {
        MappingError {
            code,
            mapping: self.id(),
            at,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    fn file(&self) -> String {
        self.program
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A value that did not come through [`Mapping::read_input`] (an outbound record, an
    /// answer) is measured before anything recurses over it.
    fn guard_depth(&self, value: &serde_json::Value) -> Result<(), MappingError> {
        let cap = limits::VALUE_DEPTH_GUARD;
        if limits::json_depth(value, cap) > cap {
            return Err(self.error(
                limits::INPUT_TOO_DEEP,
                None,
                limits::Exceeded::Depth(cap).to_string(),
            ));
        }
        Ok(())
    }

    fn run(
        &self,
        input: serde_json::Value,
        xml_root: Option<&str>,
    ) -> Result<serde_json::Value, MappingError> {
        if let Err(e) = self.guard_depth(&input) {
            limits::drop_json(input);
            return Err(e);
        }
        // The tables are shared with every run, never copied; only this run's fields are its own.
        let mut overlay = vrl::value::ObjectMap::new();
        if let Some(root) = xml_root {
            overlay.insert("xml_root".into(), vrl::value::Value::from(root));
        }
        let overlay = vrl::value::Value::Object(overlay);
        self.program
            .run(input, &self.metadata, overlay)
            .map_err(|e| {
                let at = e.line.map(|l| format!("{}:{l}", self.file()));
                self.error("MAPPING_FAILED", at, e.message)
            })
    }

    /// How deep and how large a payload this mapping reads may be.
    pub fn input_limits(&self) -> InputLimits {
        self.limits
    }

    /// A body of this mapping's format and charset whose text fields can be read and replaced
    /// by pointer ([`fields::TextBody`]).
    pub fn text_body(&self, body: &[u8]) -> Result<fields::TextBody, fields::FieldError> {
        fields::TextBody::parse(body, self.format, self.charset, self.limits)
    }

    /// Reads partner bytes into the tree the program sees.
    pub fn read_input(
        &self,
        body: &[u8],
    ) -> Result<(serde_json::Value, Option<String>), MappingError> {
        let unreadable = |m: String| self.error("MAPPING_INPUT_UNREADABLE", None, m);
        let refused = |e: xml::InputError| match e {
            xml::InputError::Limit(limit) => self.error(limit.code(), None, limit.to_string()),
            other => unreadable(other.to_string()),
        };
        match self.format {
            Format::Json => {
                let text =
                    xml::decode(body, self.charset).map_err(|e| unreadable(e.to_string()))?;
                // Measured before serde_json (which recurses) builds anything.
                limits::check_json_text(text.as_bytes(), &self.limits)
                    .map_err(|limit| self.error(limit.code(), None, limit.to_string()))?;
                let v = serde_json::from_str(&text)
                    .map_err(|e| unreadable(xml::InputError::Json(e.to_string()).to_string()))?;
                Ok((v, None))
            }
            Format::Xml => {
                let charset = match xml::declared_encoding(body) {
                    Some(label) => xml::charset_from_label(&label).ok_or_else(|| {
                        unreadable(xml::InputError::UnknownEncoding(label).to_string())
                    })?,
                    None => self.charset,
                };
                let text = xml::decode(body, charset).map_err(|e| unreadable(e.to_string()))?;
                let (root, v) = xml::to_value_limited(&text, &self.limits).map_err(refused)?;
                Ok((v, Some(root)))
            }
            Format::Form => {
                let v = form::decode(body, self.charset, &self.limits).map_err(refused)?;
                Ok((v, None))
            }
        }
    }

    /// Inbound: partner bytes → a record of the mapping's contract, validated.
    pub fn inbound(
        &self,
        body: &[u8],
        catalog: &Catalog,
    ) -> Result<serde_json::Value, MappingError> {
        let record = self.inbound_unvalidated(body)?;
        self.validate(&record, catalog)?;
        Ok(record)
    }

    /// Inbound without the contract check: partner bytes → what the program made of them. For
    /// a caller that validates in the same pass as it encodes (the ingest path) and calls
    /// [`Mapping::validate`] only to explain a record that did not encode.
    pub fn inbound_unvalidated(&self, body: &[u8]) -> Result<serde_json::Value, MappingError> {
        let (input, root) = self.read_input(body)?;
        self.run(input, root.as_deref())
    }

    /// Checks a record against the mapping's contract; on failure names every path and, where
    /// the program sets that field, the line.
    pub fn validate(
        &self,
        record: &serde_json::Value,
        catalog: &Catalog,
    ) -> Result<(), MappingError> {
        let contract = catalog.contract(&self.contract).ok_or_else(|| {
            self.error(
                "MAPPING_OUTPUT_INVALID",
                None,
                format!("contract `{}` is not loaded", self.contract),
            )
        })?;
        contract.to_avro(record).map(|_| ()).map_err(|errors| {
            let mut e = self.error(
                "MAPPING_OUTPUT_INVALID",
                None,
                format!("the record does not satisfy contract `{}`", self.contract),
            );
            e.fields = errors
                .into_iter()
                .map(|err| {
                    let at = self
                        .line_setting(&err.path)
                        .map(|l| format!("{}:{l}", self.file()));
                    (err, at)
                })
                .collect();
            e
        })
    }

    /// The first program line that names the field at `path` (its last segment), as a pointer
    /// for the author: `ticket_no: …` or `.ticket_no = …`.
    fn line_setting(&self, path: &str) -> Option<usize> {
        let leaf = path.rsplit('.').next()?.split('[').next()?;
        if leaf.is_empty() {
            return None;
        }
        self.program
            .source
            .lines()
            .position(|l| {
                let l = l.trim_start();
                !l.starts_with('#')
                    && (l.starts_with(&format!("{leaf}:"))
                        || l.starts_with(&format!("\"{leaf}\":"))
                        || l.contains(&format!(".{leaf} ="))
                        || l.contains(&format!(".{leaf}=")))
            })
            .map(|i| i + 1)
    }

    /// The content type of what [`Mapping::outbound`] writes.
    pub fn content_type(&self) -> String {
        let charset = match self.charset {
            Charset::Utf8 => "utf-8",
            Charset::Gbk => "GBK",
            Charset::Gb18030 => "GB18030",
        };
        match self.format {
            Format::Json => format!("application/json; charset={charset}"),
            Format::Xml => format!("application/xml; charset={charset}"),
            Format::Form => format!("application/x-www-form-urlencoded; charset={charset}"),
        }
    }

    /// Outbound (and answer): a JSON value → partner bytes.
    pub fn outbound(&self, record: &serde_json::Value) -> Result<Vec<u8>, MappingError> {
        // Cloning recurses too: measure first.
        self.guard_depth(record)?;
        let payload = self.run(record.clone(), None)?;
        match self.format {
            Format::Json => {
                let text = serde_json::to_string(&payload)
                    .map_err(|e| self.error("MAPPING_OUTPUT_UNENCODABLE", None, e.to_string()))?;
                xml::encode(&text, self.charset)
                    .map_err(|m| self.error("MAPPING_OUTPUT_UNENCODABLE", None, m))
            }
            Format::Xml => {
                let root = self.xml_root.as_deref().unwrap_or("root");
                xml::from_value_ordered(root, &payload, self.charset, &self.xml_order)
                    .map_err(|m| self.error("MAPPING_OUTPUT_UNENCODABLE", None, m))
            }
            Format::Form => form::encode(&payload, self.charset)
                .map(String::into_bytes)
                .map_err(|m| self.error("MAPPING_OUTPUT_UNENCODABLE", None, m)),
        }
    }
}
