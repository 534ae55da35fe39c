//! How a delivery's mapped body travels to the partner: the one place that turns
//! `(delivery spec, rendered body)` into `(method, query, body, content type, headers)`, and the
//! `hub check` rules of transports, encodings, WSDLs and paging.
//!
//! | `[[delivery]]` | what goes on the wire |
//! |---|---|
//! | `transport = "http"` (default), `POST`/`PUT`/`PATCH` | the mapping's bytes as they are: JSON, XML (children in the XSD's order) or a form (`format = "form"`), with the mapping's content type |
//! | `transport = "http"`, `method = "GET"` | no body; the mapped object's top-level fields as the query string (a form mapping's body *is* the query; a JSON mapping's object is form-encoded) |
//! | `transport = "soap11"` | the mapping's XML (the operation element) in a SOAP 1.1 `Envelope`/`Body`, `text/xml; charset=…`, header `SOAPAction: "<soap_action>"` |
//! | `transport = "soap12"` | the same in a SOAP 1.2 envelope, `application/soap+xml; charset=…; action="<soap_action>"` |
//! | `transport = "sftp"` | no request: the file the mapped body names is uploaded to the partner's SFTP outbox (`file = { style = "sftp", … }`, `hub_egress`) |
//!
//! A pull over SOAP (`[[pull]] transport`) goes through [`encode_with`] too: the poller writes
//! its parameters as the children of `soap_operation` and reads the page from the SOAP answer.
//!
//! The answer of a SOAP partner is read by [`crate::answer`] (`[answer] format = "soap"`): a
//! Fault is classified by its code. A body that cannot be put on the wire (a GET whose mapping
//! made a nested object) is refused with `EGRESS_UNENCODABLE` and dead-lettered: sending it
//! again would not change it.

use std::path::Path;

use hub_mapping::{Format, MappingSet};

use crate::manifest::{AnswerFormat, DeliverySpec, Manifest, Paging, Problem, Transport};

/// SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// One request as it goes to the partner (before signing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub method: String,
    /// The raw query string, already encoded (empty: none).
    pub query: String,
    pub body: Vec<u8>,
    pub content_type: String,
    /// Headers the transport adds (`SOAPAction`).
    pub headers: Vec<(String, String)>,
}

/// A body the transport cannot carry: permanent for that record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("EGRESS_UNENCODABLE: {0}")]
pub struct Unencodable(pub String);

impl Unencodable {
    pub fn code(&self) -> &'static str {
        "EGRESS_UNENCODABLE"
    }
}

/// The `charset=` parameter of a content type (`utf-8` when absent).
fn charset_label(content_type: &str) -> String {
    content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_string())
        .next()
        .unwrap_or_else(|| "utf-8".into())
}

/// The body without its XML declaration (`<?xml …?>`), which must not stand inside a Body.
fn without_prolog(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(body, |at| &body[at..]);
    if trimmed.starts_with(b"<?xml") {
        if let Some(end) = trimmed.windows(2).position(|w| w == b"?>") {
            return &trimmed[end + 2..];
        }
    }
    trimmed
}

/// Wraps an operation element (XML bytes in the charset `label`) in a SOAP envelope. The
/// envelope's own markup is ASCII, so it is valid in every charset the mappings write.
pub fn envelope(transport: Transport, operation: &[u8], label: &str) -> Vec<u8> {
    let ns = match transport {
        Transport::Soap12 => SOAP12_NS,
        _ => SOAP11_NS,
    };
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"{label}\"?><soap:Envelope xmlns:soap=\"{ns}\"><soap:Body>"
    )
    .into_bytes();
    out.extend_from_slice(without_prolog(operation));
    out.extend_from_slice(b"</soap:Body></soap:Envelope>");
    out
}

/// The query string of a GET delivery from its rendered body.
fn query_of(body: &[u8], content_type: &str) -> Result<String, Unencodable> {
    let label = charset_label(content_type);
    let charset = hub_mapping::xml::charset_from_label(&label)
        .ok_or_else(|| Unencodable(format!("不支持字符集 / charset `{label}` is not supported")))?;
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return String::from_utf8(body.to_vec())
            .map_err(|_| Unencodable("表单正文不是 ASCII / the form body is not ASCII".into()));
    }
    if !content_type.starts_with("application/json") {
        return Err(Unencodable(format!(
            "GET 只能携带表单或 JSON 对象的字段 / a GET carries the fields of a form or JSON object, not `{content_type}`"
        )));
    }
    hub_mapping::limits::check_json_text(body, &hub_mapping::InputLimits::default())
        .map_err(|e| Unencodable(e.to_string()))?;
    let text = hub_mapping::xml::decode(body, charset).map_err(|e| Unencodable(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Unencodable(e.to_string()))?;
    hub_mapping::form::encode(&value, charset).map_err(Unencodable)
}

/// Puts a rendered body on the wire as the delivery's transport says.
pub fn encode(
    spec: &DeliverySpec,
    body: Vec<u8>,
    content_type: &str,
) -> Result<Outgoing, Unencodable> {
    encode_with(
        spec.transport,
        &spec.method,
        spec.soap_action.as_deref(),
        body,
        content_type,
    )
}

/// [`encode`] for any request (a delivery's or a SOAP pull's).
pub fn encode_with(
    transport: Transport,
    method: &str,
    soap_action: Option<&str>,
    body: Vec<u8>,
    content_type: &str,
) -> Result<Outgoing, Unencodable> {
    let method = method.to_ascii_uppercase();
    match transport {
        Transport::Http if method == "GET" => Ok(Outgoing {
            query: query_of(&body, content_type)?,
            method,
            body: Vec::new(),
            content_type: String::new(),
            headers: Vec::new(),
        }),
        Transport::Http => Ok(Outgoing {
            method,
            query: String::new(),
            body,
            content_type: content_type.to_string(),
            headers: Vec::new(),
        }),
        Transport::Soap11 => {
            let label = charset_label(content_type);
            Ok(Outgoing {
                method,
                query: String::new(),
                body: envelope(Transport::Soap11, &body, &label),
                content_type: format!("text/xml; charset={label}"),
                headers: vec![(
                    "SOAPAction".into(),
                    format!("\"{}\"", soap_action.unwrap_or_default()),
                )],
            })
        }
        Transport::Soap12 => {
            let label = charset_label(content_type);
            let content_type = match soap_action.filter(|a| !a.is_empty()) {
                Some(action) => {
                    format!("application/soap+xml; charset={label}; action=\"{action}\"")
                }
                None => format!("application/soap+xml; charset={label}"),
            };
            Ok(Outgoing {
                method,
                query: String::new(),
                body: envelope(Transport::Soap12, &body, &label),
                content_type,
                headers: Vec::new(),
            })
        }
        // The egress uploads an SFTP delivery's file instead of encoding a request
        // (`hub_egress`'s SFTP path); `hub check` refuses an SFTP pull.
        Transport::Sftp => Err(Unencodable(
            "SFTP 投递不经 HTTP 发送 / an SFTP delivery is uploaded, not sent as an HTTP request"
                .into(),
        )),
    }
}

/// Every `soapAction` an operation of a WSDL declares (SOAP 1.1 and 1.2 bindings alike),
/// read with the payload limits and without a DTD.
pub fn wsdl_actions(text: &str) -> Result<Vec<String>, String> {
    use quick_xml::events::Event;
    let limits = hub_mapping::InputLimits::default();
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut depth, mut nodes) = (0usize, 0usize);
    let mut actions = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("byte {}: {e}", reader.buffer_position()))?;
        let (e, opens) = match event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::DocType(_) => return Err("a WSDL with a DOCTYPE (DTD) is refused".into()),
            Event::Eof => break,
            _ => continue,
        };
        nodes += 1;
        if depth + 1 > limits.max_depth || nodes > limits.max_nodes {
            return Err("the WSDL nests too deep or is too large".into());
        }
        if opens {
            depth += 1;
        }
        if e.local_name().as_ref() == b"operation" {
            for a in e.attributes().flatten() {
                if a.key.local_name().as_ref() == b"soapAction" {
                    let v = a.unescape_value().map_err(|e| e.to_string())?;
                    actions.push(v.into_owned());
                }
            }
        }
    }
    Ok(actions)
}

/// `hub check`'s rules for transports, encodings, the WSDL and paging: each problem with the
/// file, the line and the key.
/// The rules of an SFTP delivery (`transport = "sftp"`): a `file` of style `sftp` naming the
/// file id and the remote name, and none of the keys of an HTTP request (no answer is read).
fn sftp_rules(d: &DeliverySpec, at: &dyn Fn(&str, String) -> Problem) -> Vec<Problem> {
    let mut out = Vec::new();
    match &d.file {
        Some(f) if f.style == hub_files::wiring::SendStyle::Sftp => {}
        _ => out.push(at(
            "file",
            "SFTP 投递须声明 file = { pointer, style = \"sftp\", file_name } / an SFTP delivery needs `file = { pointer = …, style = \"sftp\", file_name = … }`".into(),
        )),
    }
    let http_only = [
        ("path", !d.path.is_empty()),
        ("method", !d.method.eq_ignore_ascii_case("POST")),
        ("idempotency_header", d.idempotency_header.is_some()),
        ("reply", d.reply.is_some()),
        ("soap_action", d.soap_action.is_some()),
        ("answer", d.answer.is_some()),
    ];
    for (key, set) in http_only {
        if set {
            out.push(at(
                key,
                "SFTP 投递上传到合作方 [partners.<p>.sftp] 的 outbox，不用此键 / an SFTP delivery uploads into the partner's `[partners.<p>.sftp] outbox` and has no HTTP request, answer or reply: remove this key".into(),
            ));
        }
    }
    out
}

pub fn check(
    m: &Manifest,
    text: &str,
    path: &Path,
    dir: &Path,
    mappings: &MappingSet,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let top = |key: &str, message: String| Problem {
        path: path.to_path_buf(),
        line: crate::manifest::line_of(text, key).or_else(|| top_line(text, key)),
        message: format!("key `{key}`: {message}"),
    };
    let at = |table: &str, index: usize, name: &str, key: &str, message: String| Problem {
        path: path.to_path_buf(),
        line: hub_mapping::entry_line(text, table, index, key),
        message: format!("{table} `{name}`: key `{table}.{key}`: {message}"),
    };
    for (key, answer) in m.all_answers() {
        if answer.fault_code.is_some() && answer.format != AnswerFormat::Soap {
            out.push(top(
                &format!("{key}.fault_code"),
                format!("只用于 SOAP 应答 / only for `[{key}] format = \"soap\"`"),
            ));
        }
    }
    // The WSDL: present, readable, and the source of every SOAP action.
    let actions = match &m.wsdl {
        None => None,
        Some(file) => {
            let wsdl = dir.join(file);
            match std::fs::read_to_string(&wsdl) {
                Err(e) => {
                    out.push(top(
                        "wsdl",
                        format!("无法读取 WSDL / cannot read {}: {e}", wsdl.display()),
                    ));
                    None
                }
                Ok(t) => match wsdl_actions(&t) {
                    Ok(a) => Some((wsdl, a)),
                    Err(e) => {
                        out.push(top(
                            "wsdl",
                            format!(
                                "{} 不是可读的 WSDL / is not a readable WSDL: {e}",
                                wsdl.display()
                            ),
                        ));
                        None
                    }
                },
            }
        }
    };
    // The rules every SOAP request (delivery or pull) and every plain one follow.
    let route_rules = |table: &str,
                       i: usize,
                       name: &str,
                       transport: Transport,
                       method: &str,
                       soap_action: Option<&str>,
                       answer: Option<&str>,
                       out: &mut Vec<Problem>| {
        // The route's answers are read by `[answer]` or the `[answers.<name>]` it names.
        let soap = m.answer_of(answer).format == AnswerFormat::Soap;
        let answer_key = match answer.filter(|a| m.answers.contains_key(*a)) {
            Some(a) => format!("answers.{a}"),
            None => "answer".to_string(),
        };
        let kind = if table == "delivery" {
            "投递"
        } else {
            "拉取"
        };
        if !transport.is_soap() {
            if soap_action.is_some() {
                out.push(at(
                    table,
                    i,
                    name,
                    "soap_action",
                    "只用于 soap11/soap12 / only for `transport = \"soap11\"` or `\"soap12\"`"
                        .into(),
                ));
            }
            if soap {
                out.push(at(table, i, name, "transport", format!("`[{answer_key}] format = \"soap\"` 的{kind}须是 SOAP / a {table} whose answers are read by `[{answer_key}] format = \"soap\"` must be SOAP (a partner whose other APIs answer otherwise declares `[answers.<name>]` for them)")));
            }
            return;
        }
        if !method.eq_ignore_ascii_case("POST") {
            out.push(at(
                table,
                i,
                name,
                "method",
                "SOAP 只用 POST / SOAP is sent with POST".into(),
            ));
        }
        if !soap {
            out.push(at(
                table,
                i,
                name,
                "transport",
                format!("SOAP 需要 `format = \"soap\"` 的应答（`[{answer_key}]`）/ SOAP needs its answer (`[{answer_key}]`) to have `format = \"soap\"`"),
            ));
        }
        match (soap_action, transport) {
            (None, Transport::Soap11) => out.push(at(
                table,
                i,
                name,
                "soap_action",
                "SOAP 1.1 需要 soap_action（可为空串）/ SOAP 1.1 needs `soap_action` (may be \"\")"
                    .into(),
            )),
            (Some(a), _) if a.chars().any(|c| c == '"' || c.is_control()) => out.push(at(
                table,
                i,
                name,
                "soap_action",
                "不能含引号或控制字符 / must not hold quotes or control characters".into(),
            )),
            _ => {}
        }
        match (&m.wsdl, &actions, soap_action) {
            (None, _, _) => out.push(at(table, i, name, "transport", "SOAP 合作方的 WSDL 须放在适配器目录并以 `wsdl` 指明 / a SOAP partner keeps its WSDL in its adapter folder, named by `wsdl`".into())),
            (Some(_), Some((wsdl, list)), Some(action)) if !action.is_empty() && !list.iter().any(|a| a == action) => {
                out.push(at(table, i, name, "soap_action", format!(
                    "WSDL {} 中没有 soapAction `{action}` / `{action}` is not a soapAction of {} (it declares {:?})",
                    wsdl.display(), wsdl.display(), list
                )));
            }
            _ => {}
        }
    };
    for (i, d) in m.deliveries.iter().enumerate() {
        if d.transport == Transport::Sftp {
            out.extend(sftp_rules(d, &|key, message| {
                at("delivery", i, &d.name, key, message)
            }));
            continue;
        }
        let format = mappings.get(&m.partner, &d.mapping).map(|map| map.format);
        route_rules(
            "delivery",
            i,
            &d.name,
            d.transport,
            &d.method,
            d.soap_action.as_deref(),
            d.answer.as_deref(),
            &mut out,
        );
        if d.transport.is_soap() && format.is_some_and(|f| f != Format::Xml) {
            out.push(at("delivery", i, &d.name, "mapping", format!(
                "SOAP 的映射须输出 XML（操作元素）/ a SOAP delivery's mapping `{}` must write XML (the operation element)",
                d.mapping
            )));
        }
        if !d.transport.is_soap()
            && d.method.eq_ignore_ascii_case("GET")
            && format == Some(Format::Xml)
        {
            out.push(at("delivery", i, &d.name, "method", format!(
                "GET 只携带查询参数：映射 `{}` 须为 json 或 form / a GET carries query parameters: mapping `{}` must be json or form",
                d.mapping, d.mapping
            )));
        }
    }
    for (i, p) in m.pulls.iter().enumerate() {
        if p.transport == Transport::Sftp {
            out.push(at("pull", i, &p.name, "transport", "SFTP 取件用 [[batch]] / files are picked up over SFTP by a `[[batch]]`, not a pull".into()));
            continue;
        }
        route_rules(
            "pull",
            i,
            &p.name,
            p.transport,
            &p.method,
            p.soap_action.as_deref(),
            p.answer.as_deref(),
            &mut out,
        );
        if p.transport.is_soap() {
            if p.soap_operation.as_deref().is_none_or(|o| o.is_empty()) {
                out.push(at("pull", i, &p.name, "soap_operation", "SOAP 拉取需要请求的操作元素名 / a SOAP pull needs its request's operation element".into()));
            }
            for k in p.xml_order.iter().filter(|k| !p.request.contains_key(*k)) {
                out.push(at(
                    "pull",
                    i,
                    &p.name,
                    "xml_order",
                    format!("`{k}` 不是 request 的键 / `{k}` is not a key of `[pull.request]`"),
                ));
            }
        } else {
            for (key, set) in [
                ("soap_operation", p.soap_operation.is_some()),
                ("soap_namespace", p.soap_namespace.is_some()),
                ("xml_order", !p.xml_order.is_empty()),
            ] {
                if set {
                    out.push(at(
                        "pull",
                        i,
                        &p.name,
                        key,
                        "只用于 soap11/soap12 / only for `transport = \"soap11\"` or `\"soap12\"`"
                            .into(),
                    ));
                }
            }
        }
        let values: Vec<&str> = p.request.values().filter_map(|v| v.as_str()).collect();
        let uses = |placeholder: &str| values.iter().any(|v| v.contains(placeholder));
        let (needs, foreign): (&[&str], &[&str]) = match p.paging {
            Paging::Page => (&[], &["{offset}", "{limit}", "{cursor}"]),
            Paging::Offset => (&["{offset}"], &["{page}", "{cursor}"]),
            Paging::Cursor => (&["{cursor}"], &["{page}", "{offset}"]),
        };
        for n in needs {
            if !uses(n) {
                out.push(at(
                    "pull",
                    i,
                    &p.name,
                    "paging",
                    format!("请求参数中须有 {n} / `{n}` must appear in `[pull.request]`"),
                ));
            }
        }
        for (k, v) in &p.request {
            if let Some(f) = foreign
                .iter()
                .find(|f| v.as_str().is_some_and(|s| s.contains(**f)))
            {
                out.push(at("pull", i, &p.name, k, format!(
                    "{f} 不属于 paging = \"{mode}\" / `{f}` is not a placeholder of paging = \"{mode}\"",
                    mode = paging_name(p.paging)
                )));
            }
        }
        match (p.paging, &p.response.next_cursor) {
            (Paging::Cursor, None) => out.push(at(
                "pull",
                i,
                &p.name,
                "paging",
                "游标分页需要 response.next_cursor / cursor paging needs `response.next_cursor`"
                    .into(),
            )),
            (Paging::Page | Paging::Offset, Some(_)) => out.push(at(
                "pull",
                i,
                &p.name,
                "next_cursor",
                "只用于 paging = \"cursor\" / only with `paging = \"cursor\"`".into(),
            )),
            _ => {}
        }
    }
    out
}

fn paging_name(p: Paging) -> &'static str {
    match p {
        Paging::Page => "page",
        Paging::Offset => "offset",
        Paging::Cursor => "cursor",
    }
}

/// The line of a top-level key (`wsdl = …` before any table).
fn top_line(text: &str, key: &str) -> Option<usize> {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            return None;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(i + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(transport: Transport, method: &str, action: Option<&str>) -> DeliverySpec {
        DeliverySpec {
            name: "d".into(),
            mapping: "m".into(),
            method: method.into(),
            path: "/x".into(),
            idempotency_header: None,
            reply: None,
            file: None,
            answer: None,
            transport,
            soap_action: action.map(String::from),
        }
    }

    const OP: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><SubmitCase xmlns=\"urn:case\"><CaseNo>C1</CaseNo></SubmitCase>";

    #[test]
    fn soap11_wraps_the_operation_and_sends_the_action_header() {
        let o = encode(
            &delivery(Transport::Soap11, "POST", Some("urn:case#SubmitCase")),
            OP.to_vec(),
            "application/xml; charset=utf-8",
        )
        .unwrap();
        assert_eq!(o.content_type, "text/xml; charset=utf-8");
        assert_eq!(
            o.headers,
            vec![(
                "SOAPAction".to_string(),
                "\"urn:case#SubmitCase\"".to_string()
            )]
        );
        assert_eq!(
            String::from_utf8(o.body).unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><SubmitCase xmlns=\"urn:case\"><CaseNo>C1</CaseNo></SubmitCase></soap:Body></soap:Envelope>"
        );
    }

    #[test]
    fn soap12_puts_the_action_in_the_content_type_and_keeps_the_charset() {
        let gbk = hub_mapping::xml::encode(
            "<?xml version=\"1.0\" encoding=\"GBK\"?><Op><T>路灯</T></Op>",
            hub_mapping::Charset::Gbk,
        )
        .unwrap();
        let o = encode(
            &delivery(Transport::Soap12, "POST", Some("urn:a")),
            gbk,
            "application/xml; charset=GBK",
        )
        .unwrap();
        assert_eq!(
            o.content_type,
            "application/soap+xml; charset=GBK; action=\"urn:a\""
        );
        assert!(o.headers.is_empty());
        let text = hub_mapping::xml::decode(&o.body, hub_mapping::Charset::Gbk).unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"GBK\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body><Op><T>路灯</T></Op></soap:Body></soap:Envelope>"
        );
        let o = encode(
            &delivery(Transport::Soap12, "POST", None),
            OP.to_vec(),
            "application/xml; charset=utf-8",
        )
        .unwrap();
        assert_eq!(o.content_type, "application/soap+xml; charset=utf-8");
    }

    #[test]
    fn a_get_carries_the_fields_as_the_query_and_no_body() {
        let json = r#"{"case_no":"C 1","title":"a+b&c=d 路灯","n":2}"#.as_bytes();
        let o = encode(
            &delivery(Transport::Http, "GET", None),
            json.to_vec(),
            "application/json; charset=utf-8",
        )
        .unwrap();
        assert_eq!(o.method, "GET");
        assert!(o.body.is_empty());
        assert_eq!(
            o.query,
            "case_no=C+1&n=2&title=a%2Bb%26c%3Dd+%E8%B7%AF%E7%81%AF"
        );
        let form = encode(
            &delivery(Transport::Http, "get", None),
            b"a=1&b=%E8%B7%AF".to_vec(),
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .unwrap();
        assert_eq!(form.query, "a=1&b=%E8%B7%AF");
        let nested = encode(
            &delivery(Transport::Http, "GET", None),
            br#"{"a":{"b":1}}"#.to_vec(),
            "application/json; charset=utf-8",
        )
        .unwrap_err();
        assert_eq!(nested.code(), "EGRESS_UNENCODABLE");
        // A POST is passed through untouched.
        let post = encode(
            &delivery(Transport::Http, "POST", None),
            json.to_vec(),
            "application/json; charset=utf-8",
        )
        .unwrap();
        assert_eq!(post.body, json.to_vec());
        assert_eq!(post.content_type, "application/json; charset=utf-8");
    }

    /// The problems `check` finds in a manifest text, as `line: message`.
    fn problems(text: &str, dir: &Path) -> Vec<String> {
        let m: Manifest = toml::from_str(text).unwrap();
        check(
            &m,
            text,
            Path::new("adapter.toml"),
            dir,
            &MappingSet::default(),
        )
        .into_iter()
        .map(|p| format!("{}: {}", p.line.unwrap_or(0), p.message))
        .collect()
    }

    #[test]
    fn check_locates_each_transport_and_paging_problem() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"partner = "p"
[answer]
fault_code = "/detail/Code"
[[delivery]]
name = "a"
mapping = "m"
path = "/a"
soap_action = "urn:x"
[[delivery]]
name = "b"
mapping = "m"
path = "/b"
transport = "soap11"
[[pull]]
name = "q"
mapping = "m"
path = "/q"
every_ms = 1000
paging = "cursor"
[pull.request]
n = "{page}"
[pull.response]
items = "/items"
item_id = "/id"
"#;
        let got = problems(text, dir.path());
        let expect = [
            "3: key `answer.fault_code`: 只用于 SOAP 应答",
            "8: delivery `a`: key `delivery.soap_action`: 只用于 soap11/soap12",
            "13: delivery `b`: key `delivery.transport`: SOAP 需要 `format = \"soap\"` 的应答（`[answer]`）",
            "9: delivery `b`: key `delivery.soap_action`: SOAP 1.1 需要 soap_action",
            "13: delivery `b`: key `delivery.transport`: SOAP 合作方的 WSDL",
            "19: pull `q`: key `pull.paging`: 请求参数中须有 {cursor}",
            "21: pull `q`: key `pull.n`: {page} 不属于 paging = \"cursor\"",
            "19: pull `q`: key `pull.paging`: 游标分页需要 response.next_cursor",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g.starts_with(e)), "{e} not in {got:#?}");
        }
        assert_eq!(got.len(), expect.len(), "{got:#?}");
    }

    #[test]
    fn an_sftp_delivery_needs_an_sftp_file_and_no_http_keys() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"partner = "p"
[[delivery]]
name = "up"
mapping = "m"
transport = "sftp"
file = { pointer = "/id", style = "sftp", file_name = "/name" }
[[delivery]]
name = "bad"
mapping = "m"
transport = "sftp"
path = "/x"
idempotency_header = "X-Id"
reply = "r"
file = { pointer = "/id", style = "base64" }
[[pull]]
name = "q"
mapping = "m"
path = "/q"
every_ms = 1000
transport = "sftp"
[pull.response]
items = "/items"
item_id = "/id"
"#;
        let got = problems(text, dir.path());
        let expect = [
            "14: delivery `bad`: key `delivery.file`: SFTP 投递须声明 file",
            "11: delivery `bad`: key `delivery.path`: SFTP 投递上传到",
            "12: delivery `bad`: key `delivery.idempotency_header`: SFTP 投递上传到",
            "13: delivery `bad`: key `delivery.reply`: SFTP 投递上传到",
            "20: pull `q`: key `pull.transport`: SFTP 取件用 [[batch]]",
        ];
        for e in expect {
            assert!(got.iter().any(|g| g.starts_with(e)), "{e} not in {got:#?}");
        }
        assert_eq!(got.len(), expect.len(), "{got:#?}");
        // No HTTP request is made of it.
        let m: Manifest = toml::from_str(text).unwrap();
        assert!(encode(&m.deliveries[0], b"{}".to_vec(), "application/json").is_err());
    }

    #[test]
    fn check_finds_soap_actions_in_the_wsdl_and_wants_every_route_soap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.wsdl"),
            r#"<definitions><binding><operation name="A"><soap:operation xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" soapAction="urn:a"/></operation></binding></definitions>"#,
        )
        .unwrap();
        let text = r#"partner = "p"
wsdl = "s.wsdl"
[answer]
format = "soap"
[[delivery]]
name = "ok"
mapping = "m"
path = "/a"
transport = "soap12"
soap_action = "urn:a"
[[delivery]]
name = "unknown"
mapping = "m"
path = "/a"
transport = "soap11"
soap_action = "urn:b"
[[pull]]
name = "q"
mapping = "m"
path = "/q"
every_ms = 1000
[pull.response]
items = "/items"
item_id = "/id"
"#;
        let got = problems(text, dir.path());
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("16: delivery `unknown`: key `delivery.soap_action`: WSDL"),
            "{got:#?}"
        );
        assert!(got[0].contains("urn:b"), "{got:#?}");
        assert!(
            got[1].starts_with(
                "17: pull `q`: key `pull.transport`: `[answer] format = \"soap\"` 的拉取须是 SOAP"
            ),
            "{got:#?}"
        );
        let missing = text.replace("s.wsdl", "none.wsdl");
        let got = problems(&missing, dir.path());
        assert!(
            got.iter()
                .any(|g| g.starts_with("2: key `wsdl`: 无法读取 WSDL")),
            "{got:#?}"
        );
    }

    #[test]
    fn a_partner_answering_both_ways_names_an_answer_per_route() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.wsdl"),
            r#"<definitions><operation><soap:operation xmlns:soap="x" soapAction="urn:a"/></operation></definitions>"#,
        )
        .unwrap();
        // A SOAP service read by `[answer]`, a JSON API beside it read by `[answers.rest]`.
        let text = r#"partner = "p"
wsdl = "s.wsdl"
[answer]
format = "soap"
[answers.rest]
format = "json"
code = "/code"
fault_code = "/x"
[[answers.rest.codes]]
code = "0"
outcome = "delivered"
zh = "成功"
en = "ok"
[[delivery]]
name = "soap"
mapping = "m"
path = "/a"
transport = "soap11"
soap_action = "urn:a"
[[delivery]]
name = "json"
mapping = "m"
path = "/b"
answer = "rest"
[[delivery]]
name = "wrong"
mapping = "m"
path = "/c"
transport = "soap11"
soap_action = "urn:a"
answer = "rest"
"#;
        let got = problems(text, dir.path());
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("8: key `answers.rest.fault_code`: 只用于 SOAP 应答"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with(
                "29: delivery `wrong`: key `delivery.transport`: SOAP 需要 `format = \"soap\"` 的应答（`[answers.rest]`）"
            ),
            "{got:#?}"
        );
        let m: Manifest = toml::from_str(text).unwrap();
        assert_eq!(m.answer_of(Some("rest")).code.as_deref(), Some("/code"));
        assert_eq!(m.answer_of(None).format, AnswerFormat::Soap);
    }

    #[test]
    fn a_soap_pull_needs_its_operation_and_orders_only_request_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.wsdl"),
            r#"<definitions><operation><soap12:operation xmlns:soap12="x" soapAction="urn:q"/></operation></definitions>"#,
        )
        .unwrap();
        let text = r#"partner = "p"
wsdl = "s.wsdl"
[answer]
format = "soap"
[[pull]]
name = "q"
mapping = "m"
path = "/q"
transport = "soap12"
soap_action = "urn:q"
xml_order = ["From", "Nope"]
every_ms = 1000
[pull.request]
From = "{since}"
[pull.response]
items = "/Cases/Case"
item_id = "/Id"
"#;
        let got = problems(text, dir.path());
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("5: pull `q`: key `pull.soap_operation`: SOAP 拉取需要"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("11: pull `q`: key `pull.xml_order`: `Nope` 不是 request 的键"),
            "{got:#?}"
        );
        let plain = text
            .replace("format = \"soap\"\n", "")
            .replace("transport = \"soap12\"\n", "")
            .replace("soap_action = \"urn:q\"\n", "");
        let got = problems(&plain, dir.path());
        assert!(
            got.iter()
                .any(|g| g.contains("key `pull.xml_order`: 只用于 soap11/soap12")),
            "{got:#?}"
        );
    }

    #[test]
    fn wsdl_actions_are_read_from_both_bindings_and_hostile_wsdls_refused() {
        let wsdl = r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/">
          <binding name="b11"><operation name="SubmitCase"><soap:operation soapAction="urn:case#SubmitCase"/></operation></binding>
          <binding name="b12"><operation name="CloseCase"><soap12:operation soapAction="urn:case#CloseCase" soapActionRequired="true"/></operation></binding>
        </definitions>"#;
        assert_eq!(
            wsdl_actions(wsdl).unwrap(),
            vec!["urn:case#SubmitCase", "urn:case#CloseCase"]
        );
        assert!(wsdl_actions("<!DOCTYPE x><definitions/>").is_err());
        let deep = "<a>".repeat(10_000) + &"</a>".repeat(10_000);
        assert!(wsdl_actions(&deep).is_err());
    }
}
