//! `adapters/<partner>/adapter.toml`: a partner's protocol, as data.
//!
//! ```toml
//! partner = "hotline12345"
//!
//! [answer]                      # how to read the partner's answer to a hub request
//! format = "json"               # json | xml
//! code = "/code"                # JSON pointer to the business code (XML: path of elements)
//! message = "/msg"
//! unknown = "permanent"         # what a code not listed below means
//! [[answer.codes]]
//! code = "0"
//! outcome = "delivered"         # delivered | retryable | permanent
//! zh = "成功"
//! en = "success"
//!
//! [[delivery]]                  # one outbound route: a topic → a partner API
//! name = "sign"
//! mapping = "sign_json"         # an outbound mapping of mappings/<partner>
//! path = "/api/ticket/sign"
//! idempotency_header = "X-Idempotency-Key"
//!
//! [[delivery]]                  # a request whose answer carries data (docs/request-reply.md)
//! name = "verify"
//! mapping = "verify_request_json"
//! reply = "verify_reply_json"   # an inbound mapping: the answer → the reply contract
//! path = "/api/licence/verify"
//!
//! [[pull]]                      # one scheduled pull from a query API
//! name = "new_tickets"
//! mapping = "dispatch_json"     # the inbound mapping each item goes through
//! path = "/api/ticket/query"
//! every_ms = 60000              # or cron = "0 */5 * * * *"
//! [pull.request]                # body template; {since} {until} {page} {page_size} filled in
//! start_time = "{since}"
//! [pull.response]
//! items = "/data/list"
//! item_id = "/gdbh"
//! ```
//!
//! A SOAP partner, a form or GET delivery, offset and cursor paging (docs/adapters.md,
//! "Choosing a transport"; the encodings are [`crate::transport`]'s):
//!
//! ```toml
//! wsdl = "CaseService.wsdl"     # the partner's WSDL, kept beside adapter.toml
//! [answer]
//! format = "soap"               # pointers address inside the Body's first child
//! code = "/ResultCode"          # (the response element of any operation)
//! fault_code = "/detail/ErrorCode"   # optional: the partner's own code inside a Fault
//! [[delivery]]
//! transport = "soap12"          # http (default) | soap11 | soap12
//! soap_action = "urn:case#SubmitCase"   # must be in the WSDL
//! [[pull]]
//! transport = "soap11"          # optional: the query is a SOAP operation
//! soap_operation = "QueryCases" # its element; the request's keys are its children
//! paging = "cursor"             # page (default) | offset | cursor
//! [pull.request]
//! after = "{cursor}"
//! [pull.response]
//! next_cursor = "/data/next"
//! ```
//!
//! A batch file uploaded to the partner's SFTP server (docs/files.md, "Uploading batch files"):
//!
//! ```toml
//! [[delivery]]
//! name = "recon_out"
//! mapping = "recon_out_json"    # output {"file_id": "sm3:…", "name": "DZ_20261203.csv"}
//! transport = "sftp"            # into [partners.<p>.sftp] outbox; no path
//! file = { pointer = "/file_id", style = "sftp", file_name = "/name" }
//! ```
//!
//! ```toml
//! [auth]                        # how the partner authenticates (docs/auth-schemes.md)
//! scheme = "app-key-sign"       # hub-v1 (default) | app-key-sign | ak-sk | sm2-cert
//! digest = "hmac-sm3"           # the scheme's parameters; never its credentials
//! ```
//!
//! Loading checks everything it can before the hub starts: names, that each mapping exists in
//! the right direction, the code outcomes, the pointers, the schedules and `[auth]` (each
//! problem with its line and key; a legacy digest is a warning).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use hub_mapping::{Direction, MappingSet};
use serde::Deserialize;

/// What an answer of the partner means for the message it answers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The partner took the message.
    Delivered,
    /// Not taken now; the same message may be taken later (busy, maintenance).
    Retryable,
    /// Never taken as it is (illegal state, unknown object, refused content).
    Permanent,
}

/// Syntax of the partner's answers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AnswerFormat {
    #[default]
    Json,
    Xml,
    /// A SOAP 1.1 or 1.2 envelope: pointers address the content of the Body's first child
    /// (the operation's response element, whatever its name; element names without their
    /// namespace prefix); a Fault is classified by its code ([`crate::answer::classify`]).
    Soap,
}

/// One business code of the partner.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessCode {
    /// The code as the partner writes it.
    pub code: String,
    /// What the code means for the message: `delivered`, `retryable` or `permanent`.
    pub outcome: Outcome,
    /// Meaning in Chinese, as the partner's documentation gives it.
    pub zh: String,
    /// Meaning in English.
    pub en: String,
}

/// `[answer]`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerSpec {
    /// `json`, `xml` or `soap` (a SOAP 1.1/1.2 envelope: pointers address inside the Body's
    /// first child, the response element of whichever operation answered, element names
    /// without prefix, e.g. `/ResultCode`; a Fault is classified by its code). A route is
    /// SOAP exactly when the answer it is read by is `soap`.
    #[serde(default)]
    pub format: AnswerFormat,
    /// JSON pointer (`/code`) to the business code; for XML, the element path from the root
    /// (`/Response/Code`). Absent: the HTTP status alone decides.
    #[serde(default)]
    pub code: Option<String>,
    /// Pointer to the partner's message, kept (masked) with a dead letter.
    #[serde(default)]
    pub message: Option<String>,
    /// The outcome of a code not listed (`delivered`, `retryable` or `permanent`): `permanent`
    /// by default, so a surprise is looked at by a person instead of being retried blindly.
    #[serde(default = "default_unknown")]
    pub unknown: Outcome,
    /// `[[answer.codes]]`, one per business code; when `answer.code` is set, at least one must
    /// be `delivered`; no code twice.
    #[serde(default)]
    pub codes: Vec<BusinessCode>,
    /// SOAP only: pointer, inside a Fault (prefixes dropped: `/detail/ErrorCode`), to the
    /// partner's own code; looked up in `answer.codes` before the 1.2 Subcode and the fault
    /// code (`Client`, `Server`, `Sender`, `Receiver`).
    #[serde(default)]
    pub fault_code: Option<String>,
}

fn default_unknown() -> Outcome {
    Outcome::Permanent
}

impl Default for AnswerSpec {
    fn default() -> Self {
        Self {
            format: AnswerFormat::Json,
            code: None,
            message: None,
            unknown: default_unknown(),
            codes: Vec::new(),
            fault_code: None,
        }
    }
}

impl AnswerSpec {
    pub fn code(&self, code: &str) -> Option<&BusinessCode> {
        self.codes.iter().find(|c| c.code == code)
    }
}

/// `[[delivery]]`: messages of one contract delivered to one partner API.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverySpec {
    /// Unique among deliveries, `a-z 0-9 _`; `[partners.<partner>] deliveries` picks by it.
    pub name: String,
    /// An **outbound** mapping of `mappings/<partner>/`; its contract names the topic consumed.
    pub mapping: String,
    /// `POST`, `PUT`, `PATCH`, or `GET` (no body: the mapped object's top-level fields as
    /// query parameters; a `json` or `form` mapping).
    #[serde(default = "default_method")]
    pub method: String,
    /// Path on the partner's base URL, starting with `/`; an SFTP delivery
    /// (`transport = "sftp"`) has none.
    #[serde(default)]
    #[schemars(extend("x-default" = "required but for `transport = \"sftp\"`"))]
    pub path: String,
    /// Header carrying the message id, for a partner that removes duplicates by it.
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// An **inbound** mapping that reads the answer: the delivery is then a request whose
    /// answer is produced as a reply record onto that mapping's contract, which must have the
    /// reply fields (`request-reply.md`). Absent: the answer only says taken or refused.
    #[serde(default)]
    pub reply: Option<String>,
    /// `http` (the mapping's JSON, XML or form body as it is), `soap11` or `soap12` (the
    /// mapping's XML operation element inside a SOAP envelope; needs `wsdl` and an answer,
    /// `[answer]` or the one named by `answer`, with `format = "soap"`), or `sftp`: no HTTP
    /// request, the file the mapped body names is uploaded into the partner's
    /// `[partners.<p>.sftp] outbox` (`files.md`, "Uploading batch files"); needs `file` with
    /// `style = "sftp"`, and no `path`, `method`, `idempotency_header`, `reply`,
    /// `soap_action` or `answer`.
    #[serde(default)]
    pub transport: Transport,
    /// SOAP: the operation's action, a `soapAction` of the WSDL; `soap11` requires it (`""`
    /// allowed) and sends it as `SOAPAction: "…"`, `soap12` as the content type's `action`
    /// parameter.
    #[serde(default)]
    pub soap_action: Option<String>,
    /// The mapped body references a stored file to send with it (`files.md`, "Wiring files
    /// into an adapter"); needs `[files]` in `hub.toml`.
    #[serde(default)]
    pub file: Option<hub_files::wiring::OutboundFile>,
    /// The `[answers.<name>]` this API's answers are read by, for a partner whose APIs answer
    /// in different ways; absent: `[answer]`.
    #[serde(default)]
    pub answer: Option<String>,
}

/// `[[delivery]] transport`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The mapping's body as it is (JSON, XML or a form; `GET`: its fields as the query).
    #[default]
    Http,
    /// SOAP 1.1: `text/xml`, `SOAPAction` header.
    Soap11,
    /// SOAP 1.2: `application/soap+xml` with an `action` parameter.
    Soap12,
    /// No HTTP request: the file the mapped body names (`file = { style = "sftp", … }`) is
    /// uploaded to the partner's SFTP `outbox` (`[partners.<p>.sftp]`), `docs/files.md`.
    Sftp,
}

impl Transport {
    pub fn is_soap(self) -> bool {
        matches!(self, Transport::Soap11 | Transport::Soap12)
    }
}

/// `[[pull]] paging`: how one page of a query is asked for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Paging {
    /// `{page}` (from 1) and `{page_size}`; the last page is the first one shorter than
    /// `page_size`.
    #[default]
    Page,
    /// `{offset}` (from 0) and `{limit}` (= `page_size`); the same end.
    Offset,
    /// `{cursor}`: empty on the first page, then the token found at `response.next_cursor`;
    /// the last page is the one without a token.
    Cursor,
}

fn default_method() -> String {
    "POST".into()
}

/// `[pull.response]`: where the items and their ids are in a page.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullResponse {
    /// JSON pointer to the array of items.
    pub items: String,
    /// JSON pointer, inside an item, to the partner's id of it.
    pub item_id: String,
    /// JSON pointer, inside an item, to a version or update time: the same id with a new
    /// version is a new message; the same version is a duplicate.
    #[serde(default)]
    pub item_version: Option<String>,
    /// JSON pointer to the query's total number of items, when the partner gives it.
    #[serde(default)]
    pub total: Option<String>,
    /// `paging = "cursor"` (and only then): JSON pointer to the next page's token; absent or
    /// empty ends the window.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `[[pull]]`: a scheduled pull from a partner's query API.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullSpec {
    /// Unique among pulls, `a-z 0-9 _`; `[partners.<partner>] pulls` picks by it.
    pub name: String,
    /// The **inbound** mapping every item goes through (one item = one message).
    pub mapping: String,
    /// `GET` (the request as query parameters) or `POST` (as a JSON body).
    #[serde(default = "default_method")]
    pub method: String,
    /// Path on the partner's base URL, starting with `/`.
    pub path: String,
    /// Run every so many milliseconds (at least 1000); exactly one of `every_ms` and `cron`.
    #[serde(default)]
    pub every_ms: Option<u64>,
    /// Or a cron schedule with a seconds field, in Asia/Shanghai time.
    #[serde(default)]
    pub cron: Option<String>,
    /// Random delay added to each run, so replicas and partners are not hit in step.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Only run within these local hours, `HH:MM-HH:MM`, e.g. `07:00-22:00`.
    #[serde(default)]
    pub active_hours: Option<String>,
    /// How pages are asked for: `page` (`{page}` from 1, `{page_size}`), `offset` (`{offset}`
    /// from 0, `{limit}`) or `cursor` (`{cursor}`: empty first, then the token at
    /// `response.next_cursor`); the mode's placeholder must be in `request`, another mode's
    /// must not. Time windows (`{since}`/`{until}`) work with every mode.
    #[serde(default)]
    pub paging: Paging,
    /// Items per page, 1–1000.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Largest time window one run asks for (at least 1000); a longer gap is caught up window
    /// by window.
    #[serde(default = "default_max_window")]
    pub max_window_ms: u64,
    /// How far behind now a window ends, for partners whose latest records settle late.
    #[serde(default)]
    pub settle_ms: u64,
    /// Where the very first run starts, back from now.
    #[serde(default = "default_lookback")]
    pub initial_lookback_ms: u64,
    /// strftime format of `{since}` and `{until}`; `epoch_ms` for Unix milliseconds.
    #[serde(default = "default_time_format")]
    pub time_format: String,
    /// The request's parameters: the JSON body (POST) or the query (GET), or over SOAP the
    /// children of the operation element. Values are templated with `{since}`, `{until}` and
    /// the paging mode's placeholders (`{page}`, `{page_size}`, `{offset}`, `{limit}`,
    /// `{cursor}`); a value that is exactly a number placeholder is sent as a number.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub request: BTreeMap<String, toml::Value>,
    /// `http` (a GET query or a JSON body, JSON pages) or `soap11`/`soap12`: the request's
    /// parameters as the children of the operation element `soap_operation` in an envelope,
    /// the page read from the SOAP answer (pointers inside the response element; one
    /// repeated element is one item). `sftp` is refused: files are picked up by a `[[batch]]`.
    #[serde(default)]
    pub transport: Transport,
    /// SOAP: the query operation's action, a `soapAction` of the WSDL (`soap11` requires it).
    #[serde(default)]
    pub soap_action: Option<String>,
    /// SOAP: the request's operation element, e.g. `QueryCases`; required.
    #[serde(default)]
    pub soap_operation: Option<String>,
    /// SOAP: the operation element's namespace (`xmlns`).
    #[serde(default)]
    pub soap_namespace: Option<String>,
    /// SOAP: the order of the operation's children (keys of `request`) that the partner's
    /// schema requires; keys not listed follow, sorted.
    #[serde(default)]
    pub xml_order: Vec<String>,
    /// Where the items are in a page.
    pub response: PullResponse,
    /// The `[answers.<name>]` this API's answers are read by; absent: `[answer]`.
    #[serde(default)]
    pub answer: Option<String>,
}

fn default_page_size() -> u32 {
    50
}
fn default_max_window() -> u64 {
    3_600_000
}
fn default_lookback() -> u64 {
    86_400_000
}
fn default_time_format() -> String {
    "%Y-%m-%d %H:%M:%S".into()
}

/// One adapter manifest.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The partner name; equal to the folder's name.
    pub partner: String,
    /// Who the partner is, Chinese / English.
    #[serde(default)]
    pub description: String,
    /// How the partner's answers to the hub's requests (deliveries, pulls) read.
    #[serde(default)]
    #[schemars(extend("x-default" = "all defaults"))]
    pub answer: AnswerSpec,
    /// More ways of answering, by name, for a partner whose APIs do not all answer alike (a
    /// SOAP service beside a JSON API, two code lists): `[answers.<name>]` takes the keys of
    /// `[answer]`, and a delivery or pull picks it with `answer = "<name>"`.
    #[serde(default)]
    pub answers: BTreeMap<String, AnswerSpec>,
    /// `[[delivery]]`, one per outbound message: a topic → a partner API (egress).
    #[serde(rename = "delivery", default)]
    pub deliveries: Vec<DeliverySpec>,
    /// `[[pull]]`, one per query API polled on a schedule (the poller).
    #[serde(rename = "pull", default)]
    pub pulls: Vec<PullSpec>,
    /// The partner's WSDL, a file beside `adapter.toml`; required when a delivery is SOAP,
    /// whose `soap_action` must be a `soapAction` of it.
    #[serde(default)]
    pub wsdl: Option<PathBuf>,
    /// `[[file]]`, one per file carried by the pushes of an inbound mapping: the gateway
    /// stores it before the mapping and puts its hub file id in its place (`files.md`,
    /// "Wiring files into an adapter"); needs `[files]` in `hub.toml`.
    #[serde(rename = "file", default)]
    pub files: Vec<hub_files::wiring::InboundFile>,
    /// `[[batch]]`, one per batch file the partner leaves on its SFTP server (e.g. a daily
    /// reconciliation file): picked up on a schedule into the file store once and only once,
    /// and announced by one record (`files.md`, "SFTP batch files"); run when listed in
    /// `[partners.<partner>] batches`, with `[partners.<partner>.sftp]`.
    #[serde(rename = "batch", default)]
    pub batches: Vec<hub_files::wiring::BatchSpec>,
    /// The partner's authentication scheme, both ways: the gateway verifies its pushes with
    /// it, the hub signs its calls with it. `auth.scheme` names it; the other keys are the
    /// scheme's parameters (below), never credentials (those are the deployment's).
    #[serde(rename = "auth", default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    #[schemars(extend("x-default" = "`hub-v1`"))]
    pub auth_table: Option<toml::Table>,
    /// The partner's authentication scheme (hub-v1 when `[auth]` is absent).
    #[serde(skip)]
    pub auth: hub_protocols::AuthSpec,
    /// The file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Manifest {
    /// The answer spec a route names (`answer = "<name>"`), or `[answer]`. A name that is not
    /// declared is a load problem, so it is never seen here; it falls back to `[answer]`.
    pub fn answer_of(&self, name: Option<&str>) -> &AnswerSpec {
        name.and_then(|n| self.answers.get(n))
            .unwrap_or(&self.answer)
    }

    /// `[answer]` and every `[answers.<name>]`, with the key each is written under.
    pub fn all_answers(&self) -> impl Iterator<Item = (String, &AnswerSpec)> {
        std::iter::once(("answer".to_string(), &self.answer)).chain(
            self.answers
                .iter()
                .map(|(name, spec)| (format!("answers.{name}"), spec)),
        )
    }

    pub fn delivery(&self, name: &str) -> Option<&DeliverySpec> {
        self.deliveries.iter().find(|d| d.name == name)
    }
    pub fn pull(&self, name: &str) -> Option<&PullSpec> {
        self.pulls.iter().find(|p| p.name == name)
    }
}

/// A problem found while loading, with the file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// The line (1-based) when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Every adapter manifest under `adapters/`.
#[derive(Debug, Clone, Default)]
pub struct AdapterSet {
    pub adapters: Vec<Manifest>,
    /// What loading warns about without refusing (e.g. a legacy MD5 digest).
    pub warnings: Vec<Problem>,
}

/// The line (1-based) of `key` (`auth`, `auth.<name>`, `answers.rest.<name>`) in a manifest's
/// text: the table's header, or the line that sets the name inside that table (the last dotted
/// part is the name, the rest the table).
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let (table, name) = match key.rsplit_once('.') {
        Some((table, name)) => (table, Some(name)),
        None => (key, None),
    };
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t.trim_start_matches('[').trim_end_matches(']').trim() == table;
            if in_table && name.is_none() {
                return Some(i + 1);
            }
            continue;
        }
        if let (true, Some(name)) = (in_table, name) {
            if let Some(rest) = t.strip_prefix(name) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    // A key that is not written (a missing one): the table's header.
    if name.is_some() {
        return line_of(text, table);
    }
    None
}

/// `[auth]` of a manifest: the spec, or every problem with its line and key.
fn load_auth(m: &mut Manifest, text: &str, path: &Path) -> (Vec<Problem>, Vec<Problem>) {
    let at = |p: &hub_protocols::SpecProblem| Problem {
        path: path.to_path_buf(),
        line: line_of(text, &p.key),
        message: format!("key `{}`: {}", p.key, p.message),
    };
    match hub_protocols::AuthSpec::parse(m.auth_table.as_ref()) {
        Ok((spec, warnings)) => {
            m.auth = spec;
            (Vec::new(), warnings.iter().map(at).collect())
        }
        Err(problems) => (problems.iter().map(at).collect(), Vec::new()),
    }
}

impl AdapterSet {
    /// Reads `<root>/*/adapter.toml` and checks each against the loaded mappings. A folder
    /// without `adapter.toml` (a partner whose adapter is not written yet) is skipped.
    pub fn load(root: &Path, mappings: &MappingSet) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let mut adapters = Vec::new();
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            // No adapters folder: a hub that only takes pushes needs none.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(vec![Problem {
                    path: root.to_path_buf(),
                    line: None,
                    message: format!("cannot read the adapters folder: {e}"),
                }])
            }
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("adapter.toml").is_file())
            .collect();
        dirs.sort();
        for dir in dirs {
            let path = dir.join("adapter.toml");
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(Problem {
                        path,
                        line: None,
                        message: format!("cannot read: {e}"),
                    });
                    continue;
                }
            };
            match toml::from_str::<Manifest>(&text) {
                Ok(mut m) => {
                    m.path = path.clone();
                    let folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    if m.partner != folder {
                        problems.push(Problem {
                            path: path.clone(),
                            line: None,
                            message: format!(
                                "partner `{}` must be named like its folder `{folder}`",
                                m.partner
                            ),
                        });
                    }
                    problems.extend(check(&m, mappings).into_iter().map(|message| Problem {
                        path: path.clone(),
                        line: locate(&text, &message),
                        message,
                    }));
                    problems.extend(crate::transport::check(&m, &text, &path, &dir, mappings));
                    let (errors, warned) = load_auth(&mut m, &text, &path);
                    problems.extend(errors);
                    warnings.extend(warned);
                    adapters.push(m);
                }
                Err(e) => problems.push(Problem {
                    line: e.span().map(|s| {
                        text.as_bytes()[..s.start.min(text.len())]
                            .iter()
                            .filter(|b| **b == b'\n')
                            .count()
                            + 1
                    }),
                    path,
                    message: e.message().to_string(),
                }),
            }
        }
        if problems.is_empty() {
            Ok(Self { adapters, warnings })
        } else {
            Err(problems)
        }
    }

    pub fn get(&self, partner: &str) -> Option<&Manifest> {
        self.adapters.iter().find(|a| a.partner == partner)
    }

    /// Every request's reply contract checked against the shape replies must have
    /// ([`hub_contracts::reply::reply_contract_problems`]), with the line of its `reply` key.
    pub fn reply_problems(
        &self,
        mappings: &MappingSet,
        catalog: &hub_contracts::Catalog,
    ) -> Vec<Problem> {
        let mut out = Vec::new();
        for m in &self.adapters {
            let text = std::fs::read_to_string(&m.path).unwrap_or_default();
            for d in &m.deliveries {
                let Some(reply) = &d.reply else { continue };
                let Some(contract) = mappings
                    .get(&m.partner, reply)
                    .and_then(|map| catalog.contract(&map.contract))
                else {
                    continue; // reported by the load already
                };
                let line = text
                    .lines()
                    .position(|l| {
                        let t = l.trim_start();
                        t.starts_with("reply") && t.contains(&format!("\"{reply}\""))
                    })
                    .map(|i| i + 1);
                out.extend(
                    hub_contracts::reply::reply_contract_problems(contract)
                        .into_iter()
                        .map(|message| Problem {
                            path: m.path.clone(),
                            line,
                            message: format!("delivery `{}` key `reply`: {message}", d.name),
                        }),
                );
            }
        }
        out
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_pointer(s: &str) -> bool {
    s.is_empty() || s.starts_with('/')
}

/// The line a problem of [`check`] is about: a route's `name = "…"` line for a message about
/// `delivery `x``/`pull `x``, the `[answer]` header for one about the answer, else none.
fn locate(text: &str, message: &str) -> Option<usize> {
    let named = |kind: &str| {
        let rest = message.strip_prefix(kind)?.strip_prefix(" `")?;
        let name = rest.split('`').next()?;
        let header = format!("[[{kind}]]");
        let mut in_block = false;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                in_block = t == header;
            } else if in_block
                && t.strip_prefix("name")
                    .map(str::trim_start)
                    .and_then(|r| r.strip_prefix('='))
                    .map(|r| r.trim().trim_matches('"'))
                    == Some(name)
            {
                return Some(i + 1);
            }
        }
        None
    };
    named("delivery").or_else(|| named("pull")).or_else(|| {
        if let Some(rest) = message.strip_prefix("answers.") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            let header = format!("[answers.{name}]");
            return text.lines().position(|l| l.trim() == header).map(|i| i + 1);
        }
        message
            .starts_with("answer")
            .then(|| line_of(text, "answer"))
            .flatten()
    })
}

fn check(m: &Manifest, mappings: &MappingSet) -> Vec<String> {
    let mut out = Vec::new();
    for (key, answer) in m.all_answers() {
        if let Some(name) = key.strip_prefix("answers.") {
            if !is_name(name) {
                out.push(format!("{key}: the name must be a-z 0-9 _"));
            }
        }
        let mut names = BTreeSet::new();
        for code in &answer.codes {
            if !names.insert(code.code.clone()) {
                out.push(format!("{key} code `{}` is listed twice", code.code));
            }
        }
        for p in [&answer.code, &answer.message, &answer.fault_code]
            .into_iter()
            .flatten()
        {
            if !is_pointer(p) {
                out.push(format!("{key} pointer `{p}` must start with `/`"));
            }
        }
        if answer.code.is_some() && !answer.codes.iter().any(|c| c.outcome == Outcome::Delivered) {
            out.push(format!(
                "{key}.codes names no `delivered` code, so nothing could ever be delivered"
            ));
        }
    }
    let unknown_answer = |kind: &str, route: &str, answer: &Option<String>| {
        answer
            .as_deref()
            .filter(|a| !m.answers.contains_key(*a))
            .map(|a| {
                format!(
                    "{kind} `{route}`: answer `{a}` is not declared: add `[answers.{a}]` (declared: {:?})",
                    m.answers.keys().collect::<Vec<_>>()
                )
            })
    };
    for d in &m.deliveries {
        out.extend(unknown_answer("delivery", &d.name, &d.answer));
    }
    for p in &m.pulls {
        out.extend(unknown_answer("pull", &p.name, &p.answer));
    }
    let mut routes = BTreeSet::new();
    for d in &m.deliveries {
        if !is_name(&d.name) || !routes.insert(format!("d:{}", d.name)) {
            out.push(format!(
                "delivery `{}`: name must be unique, a-z 0-9 _",
                d.name
            ));
        }
        match mappings.get(&m.partner, &d.mapping) {
            Some(map) if map.direction == Direction::Outbound => {}
            Some(_) => out.push(format!(
                "delivery `{}`: mapping `{}` is not an outbound mapping",
                d.name, d.mapping
            )),
            None => out.push(format!(
                "delivery `{}`: mapping `{}` is not in mappings/{}/mappings.toml",
                d.name, d.mapping, m.partner
            )),
        }
        if let Some(reply) = &d.reply {
            match mappings.get(&m.partner, reply) {
                Some(map) if map.direction == Direction::Inbound => {}
                Some(_) => out.push(format!(
                    "delivery `{}`: reply mapping `{reply}` is not an inbound mapping",
                    d.name
                )),
                None => out.push(format!(
                    "delivery `{}`: reply mapping `{reply}` is not in mappings/{}/mappings.toml",
                    d.name, m.partner
                )),
            }
        }
        if d.transport != Transport::Sftp && !d.path.starts_with('/') {
            out.push(format!("delivery `{}`: path must start with `/`", d.name));
        }
        if !matches!(d.method.as_str(), "GET" | "POST" | "PUT" | "PATCH") {
            out.push(format!(
                "delivery `{}`: method must be GET, POST, PUT or PATCH",
                d.name
            ));
        }
    }
    out.extend(crate::files::check(m, mappings));
    for p in &m.pulls {
        if !is_name(&p.name) || !routes.insert(format!("p:{}", p.name)) {
            out.push(format!("pull `{}`: name must be unique, a-z 0-9 _", p.name));
        }
        match mappings.get(&m.partner, &p.mapping) {
            Some(map) if map.direction == Direction::Inbound => {}
            Some(_) => out.push(format!(
                "pull `{}`: mapping `{}` is not an inbound mapping",
                p.name, p.mapping
            )),
            None => out.push(format!(
                "pull `{}`: mapping `{}` is not in mappings/{}/mappings.toml",
                p.name, p.mapping, m.partner
            )),
        }
        match (&p.every_ms, &p.cron) {
            (Some(ms), None) if *ms >= 1_000 => {}
            (Some(_), None) => {
                out.push(format!("pull `{}`: every_ms must be at least 1000", p.name))
            }
            (None, Some(c)) => {
                if let Err(e) = crate::schedule::parse_cron(c) {
                    out.push(format!("pull `{}`: cron `{c}`: {e}", p.name));
                }
            }
            _ => out.push(format!(
                "pull `{}`: set exactly one of every_ms and cron",
                p.name
            )),
        }
        if let Some(h) = &p.active_hours {
            if crate::schedule::parse_hours(h).is_none() {
                out.push(format!(
                    "pull `{}`: active_hours `{h}` must be HH:MM-HH:MM",
                    p.name
                ));
            }
        }
        if !(1..=1000).contains(&p.page_size) {
            out.push(format!("pull `{}`: page_size must be 1..=1000", p.name));
        }
        if p.max_window_ms < 1_000 {
            out.push(format!(
                "pull `{}`: max_window_ms must be at least 1000",
                p.name
            ));
        }
        if !matches!(p.method.as_str(), "GET" | "POST") {
            out.push(format!("pull `{}`: method must be GET or POST", p.name));
        }
        if !p.path.starts_with('/') {
            out.push(format!("pull `{}`: path must start with `/`", p.name));
        }
        for ptr in [
            Some(&p.response.items),
            Some(&p.response.item_id),
            p.response.item_version.as_ref(),
            p.response.total.as_ref(),
            p.response.next_cursor.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !is_pointer(ptr) {
                out.push(format!(
                    "pull `{}`: pointer `{ptr}` must start with `/`",
                    p.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::locate;

    const TEXT: &str = "partner = \"p\"\n\n[answer]\ncode = \"/code\"\n\n[[delivery]]\nname = \"sign\"\npath = \"/a\"\n\n[[delivery]]\nname = \"reply\"\npath = \"b\"\n\n[[pull]]\nname = \"reply\"\npath = \"/q\"\n";

    #[test]
    fn a_route_problem_points_at_the_name_of_its_own_block() {
        assert_eq!(
            locate(TEXT, "delivery `reply`: path must start with `/`"),
            Some(11)
        );
        // The pull of the same name is another block.
        assert_eq!(
            locate(TEXT, "pull `reply`: every_ms must be at least 1000"),
            Some(15)
        );
        assert_eq!(
            locate(TEXT, "answer.codes names no `delivered` code"),
            Some(3)
        );
        assert_eq!(locate(TEXT, "delivery `absent`: …"), None);
    }

    #[test]
    fn named_answers_are_checked_like_answer_and_routes_name_only_declared_ones() {
        let text = "partner = \"p\"\n[answers.legacy]\ncode = \"/c\"\nmessage = \"m\"\n[[answers.legacy.codes]]\ncode = \"1\"\noutcome = \"permanent\"\nzh = \"错\"\nen = \"bad\"\n[answers.Bad]\n[[delivery]]\nname = \"d\"\nmapping = \"m\"\npath = \"/d\"\nanswer = \"nope\"\n";
        let m: super::Manifest = toml::from_str(text).unwrap();
        let got: Vec<String> = super::check(&m, &hub_mapping::MappingSet::default())
            .into_iter()
            .filter(|p| p.contains("answer"))
            .collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].starts_with("answers.Bad: the name must be a-z 0-9 _"));
        assert!(got[1].starts_with("answers.legacy pointer `m` must start with `/`"));
        assert!(got[2].starts_with("answers.legacy.codes names no `delivered` code"));
        assert!(got[3].starts_with("delivery `d`: answer `nope` is not declared"));
        assert_eq!(locate(text, &got[1]), Some(2));
        assert_eq!(locate(text, &got[3]), Some(12));
    }
}
